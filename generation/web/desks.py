"""The desk admin's pages: a desk's members and roles, its budgets, and its usage by day, member and template
with a chart; its own templates, its labels on shared ones and its house style. Thin views over
services/desks.py; a desk (or template) that is not the user's to manage is a 404."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial, wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .. import selectors, services
from ..models import Desk, Membership, PromptTemplate, TemplateLabel
from ..services.limits import LimitExceeded, check_request_rate
from .forms import (
    DeskBudgetForm,
    DeskLabelForm,
    DeskTemplateCreateForm,
    DeskTemplateEditForm,
    MemberAddForm,
    MembershipForm,
)
from .style_forms import DeskStyleForm, style_summary

CHART_DAYS, CHART_W, CHART_H, CHART_TOP, CHART_LEFT = 14, 560, 160, 16, 56


def rate_limited(view):
    """Each request to a desk page counts against its user's minute, as the studio's and the API's do
    (AIGC_USER_REQUESTS_PER_MINUTE): over it, a 429 saying when to try again."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            check_request_rate(user=request.user)
        except LimitExceeded as exc:
            response = HttpResponse(exc.message, status=429, content_type="text/plain; charset=utf-8")
            response["Retry-After"] = str(exc.retry_after)
            return response
        return view(request, *args, **kwargs)

    return wrapped


def _managed(request, slug: str) -> Desk:
    desk = get_object_or_404(Desk.objects.select_related("organisation"), slug=slug)
    if not selectors.may_manage(request.user, desk.pk):
        raise Http404
    return desk


@login_required
@rate_limited
def desk_list(request):
    """The desks the user manages (the nav links here only for them)."""
    desks = list(selectors.managed_desks(request.user).select_related("organisation"))
    if not desks:
        raise Http404
    return render(request, "generation/desk_list.html", {"desks": desks})


@login_required
@rate_limited
def desk_detail(request, slug: str):
    desk = _managed(request, slug)
    rows = selectors.desk_usage(desk, days=CHART_DAYS)
    members = desk.memberships.select_related("user").order_by("user__username")
    context = {
        "desk": desk,
        "members": [(m, MembershipForm(initial=_member_initial(m), prefix=f"m{m.pk}")) for m in members],
        "add_form": MemberAddForm(),
        "budget_form": DeskBudgetForm(initial={f: getattr(desk, f) for f in services.desks.BUDGET_FIELDS}),
        "standings": selectors.standings(desk, None),
        "rows": rows,
        "chart": usage_chart(rows, desk.tokens_per_day),
        "style_summary": style_summary(desk.style),
    }
    return render(request, "generation/desk_detail.html", context)


def _member_initial(m: Membership) -> dict:
    return {"role": m.role, "tokens_per_day": m.tokens_per_day, "tokens_per_month": m.tokens_per_month}


def _act(request, desk: Desk, form, verb, said, back: str = "desk-detail") -> HttpResponseRedirect:
    """One desk admin's action: the form's fields to the service verb, its refusal (or the form's) as an error
    message naming the field, else `said(result)` as a success; back to the desk's page either way."""
    try:
        if form is not None and not form.is_valid():
            raise ValidationError(form.errors)
        result = verb(**(form.cleaned_data if form is not None else {}))
    except ValidationError as exc:
        messages.error(request, services.error_line(exc))
    else:
        messages.success(request, said(result))
    return redirect(back, slug=desk.slug)


@login_required
@rate_limited
@require_POST
def member_add(request, slug: str):
    desk = _managed(request, slug)

    def said(added: Membership) -> str:
        return f"{added.user.get_username()} joined {desk.name} as {added.get_role_display()}."

    verb = partial(services.member_add, desk, actor=request.user)
    return _act(request, desk, MemberAddForm(request.POST), verb, said)


@login_required
@rate_limited
@require_POST
def member_update(request, slug: str, member_id: int):
    desk = _managed(request, slug)
    membership = get_object_or_404(Membership, desk=desk, pk=member_id)
    form = MembershipForm(request.POST, prefix=f"m{membership.pk}")
    verb = partial(services.member_update, membership, actor=request.user)
    return _act(request, desk, form, verb, lambda _: f"Saved {membership.user.get_username()}.")


@login_required
@rate_limited
@require_POST
def member_remove(request, slug: str, member_id: int):
    desk = _managed(request, slug)
    membership = get_object_or_404(Membership, desk=desk, pk=member_id)
    verb = partial(services.member_remove, membership, actor=request.user)
    return _act(request, desk, None, verb, lambda _: f"{membership.user.get_username()} left {desk.name}.")


@login_required
@rate_limited
@require_POST
def desk_budgets(request, slug: str):
    desk = _managed(request, slug)
    verb = partial(services.desk_budgets_set, desk, actor=request.user)
    return _act(request, desk, DeskBudgetForm(request.POST), verb, lambda _: f"Saved the budgets of {desk.name}.")


# --- the desk's templates and house style ---------------------------------------------------------------


def _templates_page(request, desk: Desk, bound: dict | None = None):
    """The desk's templates page; `bound` holds a refused form by its key, shown again with its text and errors
    in place (a prompt or a style typed out is not lost to a redirect)."""
    bound = bound or {}
    rows = selectors.templates_of_desk(desk)
    for row in rows:
        t = row["template"]
        shown = row["runs"] if row["own"] else row["pinned"]  # a shared template not pinned: "follow" is chosen
        row["label_form"] = DeskLabelForm(
            versions=row["versions"],
            shared=None if row["own"] else row["shared"],
            initial={"version": shown.number if shown else None},
            prefix=f"l{t.pk}",
        )
        if row["own"]:
            latest = row["latest"]
            initial = {"system_prompt": latest.system_prompt, "user_template": latest.user_template}
            row["edit_form"] = bound.get(t.pk) or DeskTemplateEditForm(initial=initial, prefix=f"e{t.pk}")
    context = {
        "desk": desk,
        "rows": rows,
        "style_form": bound.get("style") or DeskStyleForm(initial={"style": desk.style or {}}),
        "style_summary": style_summary(desk.style),
        "create_form": bound.get("create") or DeskTemplateCreateForm(templates=selectors.desk_templates(desk)),
    }
    return render(request, "generation/desk_templates.html", context, status=400 if bound else 200)


def _save(request, desk: Desk, key, form, verb, said):
    """A desk admin's edit of text: on success back to the page with `said(result)`; refused (by the form or the
    service), the same page with the form as typed and each error on the field it names."""
    if form.is_valid():
        try:
            result = verb(**form.cleaned_data)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                for error in errors:
                    if field in form.fields:
                        form.add_error(field, error)
                    else:
                        form.add_error(None, f"{field}: {error}" if field != "__all__" else error)
        else:
            messages.success(request, said(result))
            return redirect("desk-templates", slug=desk.slug)
    return _templates_page(request, desk, bound={key: form})


@login_required
@rate_limited
def desk_templates(request, slug: str):
    """The page, and (POST) a new template of the desk's own, started from one it may use."""
    desk = _managed(request, slug)
    if request.method != "POST":
        return _templates_page(request, desk)
    form = DeskTemplateCreateForm(request.POST, templates=selectors.desk_templates(desk))
    verb = partial(services.desk_template_create, desk, actor=request.user)
    return _save(request, desk, "create", form, verb, lambda t: f"Created {t.name}, for {desk.name} only.")


@login_required
@rate_limited
@require_POST
def desk_style(request, slug: str):
    desk = _managed(request, slug)
    verb = partial(services.desk_style_set, desk, actor=request.user)
    return _save(request, desk, "style", DeskStyleForm(request.POST), verb, lambda _: "Saved the house style.")


def _template(desk: Desk, template_slug: str) -> PromptTemplate:
    return get_object_or_404(selectors.desk_templates(desk), slug=template_slug)


@login_required
@rate_limited
@require_POST
def desk_template_edit(request, slug: str, template_slug: str):
    desk = _managed(request, slug)
    template = _template(desk, template_slug)
    if template.desk_id != desk.pk:
        raise Http404
    form = DeskTemplateEditForm(request.POST, prefix=f"e{template.pk}")
    verb = partial(services.desk_template_edit, desk, template, actor=request.user)

    def said(result) -> str:
        version, created = result
        return f"Saved {template.name} v{version.number}." if created else "Nothing changed."

    return _save(request, desk, template.pk, form, verb, said)


@login_required
@rate_limited
@require_POST
def desk_template_label(request, slug: str, template_slug: str):
    desk = _managed(request, slug)
    template = _template(desk, template_slug)
    versions = template.versions.only("id", "template", "number").order_by("-number")  # numbers only
    shared = template.labels.filter(name=TemplateLabel.PRODUCTION).first() if template.desk_id is None else None
    form = DeskLabelForm(request.POST, versions=versions, shared=shared and shared.version, prefix=f"l{template.pk}")
    verb = partial(services.desk_label_set, desk, template, actor=request.user)

    def said(_) -> str:
        pinned = form.cleaned_data["version"]
        where = f"v{pinned}" if pinned else "the shared label"
        return f"{desk.name} runs {template.name} at {where}."

    return _act(request, desk, form, verb, said, back="desk-templates")


def usage_chart(rows: list[dict], daily_limit: int | None, today=None) -> dict:
    """Tokens per UTC day over the last CHART_DAYS days as bars, with the daily budget as a line: geometry only,
    drawn server-side (the CSP allows no inline style; colours come from classes in studio.css)."""
    today = today or datetime.now(UTC).date()
    days = [today - timedelta(days=i) for i in range(CHART_DAYS - 1, -1, -1)]
    totals = dict.fromkeys(days, 0)
    for row in rows:
        if row["day"] in totals:
            totals[row["day"]] += row["tokens"]
    most = max(totals.values())
    # The scale is the usage's: a budget far above it (more than twice the busiest day) is named, not drawn.
    shown_limit = daily_limit if daily_limit and daily_limit <= 2 * most else None
    top = max(most, shown_limit or 0, 1)
    plot_h = CHART_H - CHART_TOP - 24
    step = (CHART_W - CHART_LEFT) / CHART_DAYS
    bars = []
    for i, day in enumerate(days):
        h = max(1, round(totals[day] / top * plot_h)) if totals[day] else 0
        x = round(CHART_LEFT + i * step + 2)
        bars.append(
            {
                "x": x,
                "y": CHART_TOP + plot_h - h,
                "w": round(step - 4),
                "h": h,
                "tokens": totals[day],
                "day": day,
                "label_x": x + round((step - 4) / 2),
                "over": bool(daily_limit) and totals[day] > daily_limit,
            }
        )
    limit_y = CHART_TOP + plot_h - round(shown_limit / top * plot_h) if shown_limit else None
    return {
        "bars": bars,
        "width": CHART_W,
        "height": CHART_H,
        "left": CHART_LEFT,
        "base_y": CHART_TOP + plot_h,
        "label_y": CHART_H - 6,
        "top": top,
        "limit": daily_limit,
        "limit_y": limit_y,
        "total": sum(totals.values()),
    }
