"""Studio pages. Thin: forms validate the shape, services do the work, selectors scope reads to the user."""

import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from .. import selectors, services
from ..content import formats
from ..content.diffing import word_diff
from ..content.findings import Finding
from ..content.language import language_of
from ..content.shaping import count_words
from ..models import Feedback, JobStatus, Kind, ReviewState
from ..services.limits import LimitExceeded, check_request_rate
from ..services.review import outputs_editable
from .forms import ApiKeyForm, FeedbackForm, HistoryFilterForm, JobForm, OutputEditForm, ReviewForm, variable_field
from .rendering import render_output
from .review import not_checked


@login_required
def job_new(request, kind: str = Kind.HEADLINE):
    """The form for a new job; with ?from=<job id> ("edit inputs and run"), filled with what one of the user's own
    jobs ran with (its template version, inputs, parameters and desk), and the new job linked to it."""
    origin = _origin(request)
    if origin is not None:
        kind = origin.kind
    if kind not in Kind.values:
        raise Http404
    templates = list(selectors.templates_for_kind(kind, request.user))
    slug = origin.template.slug if origin is not None else request.GET.get("template")
    template = next((t for t in templates if t.slug == slug), None) or next(
        (t for t in templates if t.is_default), templates[0] if templates else None
    )
    if template is None or (origin is not None and template.pk != origin.template_id):
        raise Http404  # the template is no longer offered to this user: nothing to edit it in
    desks = list(selectors.desks_of(request.user))
    if template.desk_id is not None:  # a desk's own template runs on that desk only
        desks = [d for d in desks if d.pk == template.desk_id]
    # The version shown is the one the chosen desk runs (its own label on a shared template first); editing a
    # job's inputs keeps the version that job ran.
    chosen_desk = request.POST.get("desk") or (origin.desk.slug if origin is not None else None)
    desk = next((d for d in desks if d.slug == chosen_desk), None) or next(
        (d for d in desks if d.is_default), desks[0] if desks else None
    )
    version = origin.template_version if origin is not None else services.resolve_version(template, desk=desk)
    initial = JobForm.initial_from(origin) if origin is not None else None
    form = JobForm(version, request.POST or None, desks=desks, desk=desk, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            check_request_rate(user=request.user)
            job = services.job_create(
                user=request.user,
                template=template.slug,
                version=version.number,
                inputs=form.inputs(),
                params=form.params(),
                desk=form.cleaned_data.get("desk") or (desk.slug if desk else None),
                rerun_of=origin,
            )
        except ValidationError as exc:
            form.add_service_errors(exc.message_dict)
        except LimitExceeded as exc:
            form.add_error(None, exc.message)
        else:
            for notice in job.budget_notices:
                messages.warning(request, notice)
            return redirect("job-detail", job_id=job.pk)
    context = {
        "form": form,
        "kind": kind,
        "kinds": Kind.choices,
        "template": template,
        "templates": templates,
        "version": version,
        "origin": origin,
        "demo_model": selectors.demo_model_serving(),
    }
    return render(request, "generation/job_new.html", context)


def _origin(request):
    """The job named by ?from=: the user's own, else a 404 (never another's inputs)."""
    raw = request.GET.get("from")
    if not raw:
        return None
    try:
        job_id = uuid.UUID(raw)
    except ValueError:
        raise Http404 from None
    job = selectors.job_for_user(request.user, job_id)
    if job is None:
        raise Http404
    return job


def _page_job(request, job_id):
    job = selectors.job_for_page(request.user, job_id)
    if job is None:
        raise Http404
    return job


def _own_job(request, job_id):
    job = selectors.job_for_user(request.user, job_id)
    if job is None:
        raise Http404
    return job


@login_required
def job_detail(request, job_id):
    job = _page_job(request, job_id)
    is_owner = job.owner_id == request.user.pk
    services.notifications_read(request.user, job=job)  # seen here: its notices are read, however one came
    mine = {f.output_id: f for f in Feedback.objects.filter(output__job=job, user=request.user)}
    output_format = formats.spec(job.template_version.output_format)
    language = str(job.inputs.get("language", "python"))
    outputs = []
    for o in job.outputs.all():
        # Findings are spans of the model's text: marked while that is what the page shows.
        findings = [Finding.from_json(f) for f in o.checks]
        shown = [] if o.edited_at else findings
        outputs.append(
            {
                "output": o,
                "feedback": mine.get(o.pk),
                "diff": word_diff(o.text, o.final_text) if o.edited_at else None,
                "length": _length(o.current_text, code=output_format.code),
                "html": render_output(o.current_text, output_format.display, language, shown, f"finding-{o.index}"),
                "findings": [(i, f) for i, f in enumerate(shown)] if shown else [(None, f) for f in findings],
            }
        )
    review_moves = services.review_moves(job, request.user)
    chose = any(item["output"].chosen for item in outputs)
    context = {
        "job": job,
        "outputs": outputs,
        "is_owner": is_owner,
        "can_edit": outputs_editable(job, request.user),  # only in draft: what the service allows
        "can_choose": _may_choose(job, request.user),
        "chose": chose,
        # Submitting a job with several candidates takes a choice (the service refuses without one): say so.
        "choose_first": not chose and len(outputs) > 1 and ReviewState.IN_REVIEW in review_moves,
        "review_moves": [(to, ReviewState(to).label) for to in review_moves],
        "review_events": job.review_events.select_related("actor"),
        "not_checked": not_checked(job) if job.status == JobStatus.SUCCEEDED else "",
        "queue_position": selectors.queue_position(job),
        "notice": selectors.job_notice(job),
        "feedback_form": FeedbackForm(),
        "source": _source(job),
        "code_outputs": output_format.code,  # code needs the page's width: its (short) source goes above it
        "origin": _origin_of(job),
    }
    return render(request, "generation/job_detail.html", context)


def _length(text: str, *, code: bool) -> dict:
    """How long an output is, as a reader counts it: code in lines; Chinese, Japanese or Korean text in characters
    (count_words counts each of them as one); other text in words."""
    if code:
        return {"n": len(text.strip("\n").splitlines()), "unit": "lines"}
    return {"n": count_words(text), "unit": "characters" if language_of(text) in ("zh", "ja", "ko") else "words"}


def _may_choose(job, user) -> bool:
    """Whether output_choose would let this user change the choice now: the owner of a draft, a reviewer of the
    job's desk while it is in review. Only to show the buttons; the service decides."""
    if job.status != JobStatus.SUCCEEDED:
        return False
    if job.review_state == ReviewState.DRAFT:
        return job.owner_id == user.pk
    return job.review_state == ReviewState.IN_REVIEW and selectors.may_review(user, job.desk_id)


def _source(job) -> list[dict]:
    """The job's inputs labelled as the form asked for them, in the template's order; long or multi-line text is
    shown in a scrolling panel."""
    declared = {v["name"]: v for v in job.template_version.variables}
    names = [n for n in declared if job.inputs.get(n) not in (None, "")]
    names += [n for n in job.inputs if n not in declared]
    rows = []
    for name in names:
        value = str(job.inputs[name])
        label = variable_field(declared[name]).label if name in declared else name
        rows.append({"name": name, "label": label, "value": value, "long": len(value) > 280 or "\n" in value})
    return rows


def _origin_of(job) -> dict | None:
    """The job this one ran again, and how: a replay (same seed), a regeneration (a new seed) or edited inputs."""
    origin = job.rerun_of
    if origin is None:
        return None
    if origin.inputs != job.inputs or origin.template_version_id != job.template_version_id:
        how = "edited"
    elif origin.params.get("seed") == job.params.get("seed"):
        how = "replay"
    else:
        how = "regenerated"
    return {"job": origin, "how": how}


@login_required
def job_state(request, job_id):
    """Polled by the job page while a job waits: its status and place in the queue."""
    job = _own_job(request, job_id)
    return JsonResponse(
        {"status": job.status, "queue_position": selectors.queue_position(job), "notice": selectors.job_notice(job)}
    )


@login_required
@require_POST
def job_rerun(request, job_id):
    """Replay: the same template version, inputs, params and seed."""
    return _run_again(request, job_id, services.job_rerun)


@login_required
@require_POST
def job_regenerate(request, job_id):
    """Regenerate: the same template version, inputs and params with a new seed: new candidates."""
    return _run_again(request, job_id, services.job_regenerate)


def _run_again(request, job_id, verb):
    job = _own_job(request, job_id)
    try:
        check_request_rate(user=request.user)
        again = verb(job, user=request.user)
        for notice in again.budget_notices:
            messages.warning(request, notice)
        return redirect("job-detail", job_id=again.pk)
    except LimitExceeded as exc:
        messages.error(request, exc.message)
    except ValidationError as exc:  # the template version's inputs no longer validate, or the model is gone
        messages.error(request, " ".join(m for ms in exc.message_dict.values() for m in ms))
    return redirect("job-detail", job_id=job.pk)


@login_required
@require_POST
def job_cancel(request, job_id):
    job = _own_job(request, job_id)
    if services.job_cancel(job, user=request.user):
        messages.success(request, _("The job was cancelled."))
    else:
        messages.info(request, _("The job had already ended."))
    return redirect("job-detail", job_id=job.pk)


@login_required
def job_download(request, job_id, fmt: str):
    """The job's text (final text where edited) as Markdown or plain text: the chosen candidates once any is
    chosen, else every candidate."""
    if fmt not in ("md", "txt"):
        raise Http404
    job = _page_job(request, job_id)
    texts = [o.current_text for o in selectors.outputs_for_export(job)]
    output_format = formats.spec(job.template_version.output_format)
    body = output_format.download(texts, markdown=fmt == "md", language=str(job.inputs.get("language", "python")))
    if fmt == "md":
        body = f"# {job.template.name}\n\n{body}\n"
    response = HttpResponse(
        body, content_type="text/markdown; charset=utf-8" if fmt == "md" else "text/plain; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{job.template.slug}-{str(job.pk)[:8]}.{fmt}"'
    return response


def _output(request, job_id, index):
    job = _page_job(request, job_id)
    output = next((o for o in job.outputs.all() if o.index == index), None)
    if output is None:
        raise Http404
    return job, output


@login_required
@require_POST
def output_feedback(request, job_id, index: int):
    job, output = _output(request, job_id, index)
    form = FeedbackForm(request.POST)
    if form.is_valid():
        try:
            services.feedback_set(output, user=request.user, **form.cleaned_data)
            messages.success(request, _("Thanks: your rating was saved."))
        except PermissionDenied:
            raise Http404 from None
    else:
        messages.error(request, _("Choose thumbs up or thumbs down."))
    return redirect(reverse("job-detail", args=[job.pk]) + f"#output-{index}")


@login_required
@require_POST
def output_choose(request, job_id, index: int):
    """ "Use this" (chosen=1) or take the choice back (chosen=0), as services.output_choose allows."""
    job, output = _output(request, job_id, index)
    chosen = request.POST.get("chosen", "1") != "0"
    try:
        services.output_choose(output, user=request.user, chosen=chosen)
    except PermissionDenied:
        raise Http404 from None
    except ValidationError as exc:
        messages.error(request, " ".join(m for ms in exc.message_dict.values() for m in ms))
    return redirect(reverse("job-detail", args=[job.pk]) + f"#output-{index}")


@login_required
def output_edit(request, job_id, index: int):
    job, output = _output(request, job_id, index)
    # The job page shows the owner their job, and a reviewer their desk's jobs in review (which they may fix: logged,
    # and the owner told) or approved.
    fixing = job.owner_id != request.user.pk
    if not outputs_editable(job, request.user):  # say why instead of a form that fails
        why = (
            _("An approved job is not edited: reopen it first.")
            if fixing
            else _("Only a draft can be edited: withdraw the job from review, or ask a reviewer to reopen it.")
        )
        messages.error(request, why)
        return redirect(reverse("job-detail", args=[job.pk]) + f"#output-{index}")
    form = OutputEditForm(request.POST or None, initial={"text": output.current_text})
    if request.method == "POST" and form.is_valid():
        try:
            services.output_edit(output, user=request.user, text=form.cleaned_data["text"])
        except ValidationError as exc:
            form.add_error("text", exc.message_dict.get("text"))
        else:
            messages.success(request, _("Final text saved."))
            return redirect(reverse("job-detail", args=[job.pk]) + f"#output-{index}")
    return render(
        request, "generation/output_edit.html", {"job": job, "output": output, "form": form, "fixing": fixing}
    )


@login_required
@require_POST
def job_review(request, job_id):
    job = _page_job(request, job_id)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Unknown review state."))
        return redirect("job-detail", job_id=job.pk)
    try:
        services.review_move(job, user=request.user, **form.cleaned_data)
    except PermissionDenied:
        raise Http404 from None
    except ValidationError as exc:
        messages.error(request, " ".join(m for ms in exc.message_dict.values() for m in ms))
    else:
        messages.success(request, _("Review state: %(state)s.") % {"state": job.get_review_state_display()})
    return redirect("job-detail", job_id=job.pk)


@login_required
def job_list(request):
    form = HistoryFilterForm(request.GET, templates=selectors.templates_listed(request.user, studio=True))
    jobs = selectors.search_jobs(selectors.jobs_visible_to(request.user), **form.filters())
    page = Paginator(jobs, 20).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "generation/job_list.html", {"page": page, "form": form, "query": query.urlencode()})


# The full key between its creation (a POST) and the one page that shows it (the GET the POST redirects to).
NEW_KEY_SESSION = "api_key_shown_once"


@never_cache  # Cache-Control: no-store: the page holds webhook secrets, and a new key once after its creation
@login_required
def api_keys(request):
    """Create, name and revoke API keys. Creation is POST/redirect/GET: reloading the page shows the key list
    and creates nothing. The new key is kept in the session for exactly one display, the redirected GET; each
    key's webhook secret stays visible to its owner (only the user's own keys are listed), to verify callbacks."""
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            _, raw = services.api_key_create(request.user, name=form.cleaned_data["name"])
        except ValidationError as exc:
            form.add_error("name", exc.message_dict["name"])
        else:
            request.session[NEW_KEY_SESSION] = raw
            return redirect("api-keys")
    new_key = request.session.pop(NEW_KEY_SESSION, None) if request.method == "GET" else None
    keys = request.user.api_keys.all()
    context = {"form": form, "keys": keys, "new_key": new_key, "budgets": selectors.budgets_of(request.user)}
    return render(request, "generation/api_keys.html", context)


@never_cache
@login_required
def api_key_revoke(request, key_id: int):
    """GET asks for confirmation (a page, so it works without script); only a POST carrying `confirm` revokes,
    so a stray or replayed bare POST revokes nothing."""
    key = request.user.api_keys.filter(pk=key_id).first()
    if key is None:
        raise Http404
    if key.revoked_at is not None:
        return redirect("api-keys")
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        services.api_key_revoke(key)
        messages.success(request, _("Key revoked: requests with it are refused from now on."))
        return redirect("api-keys")
    return render(request, "generation/api_keys_revoke.html", {"key": key})


def home(request):
    return redirect("job-new")


@login_required
def health_page(request):
    """The same report as /healthz, for staff in the studio: which models have workers, which jobs would wait."""
    if not request.user.is_staff:
        raise Http404
    return render(request, "generation/health.html", {"report": selectors.health_report()})


def _has_metrics_token(request) -> bool:
    token = settings.AIGC["METRICS_TOKEN"]
    return bool(token) and constant_time_compare(request.headers.get("Authorization", ""), f"Bearer {token}")


@require_GET
def healthz(request):
    """Load balancers: 200 while the database and Redis answer (503 otherwise). Anyone gets only the status;
    the report (each model alias's queue, live workers, queued jobs, stranded aliases, the errors) tells how the
    site is built and where it hurts, so it goes to the metrics token, to staff sessions, and with DEBUG on and no
    token set, to anyone."""
    report = selectors.health_report()
    detailed = (
        _has_metrics_token(request)
        or (request.user.is_authenticated and request.user.is_staff)
        or (settings.DEBUG and not settings.AIGC["METRICS_TOKEN"])
    )
    body = report if detailed else {"status": report["status"]}
    return JsonResponse(body, status=503 if report["status"] == "down" else 200)


@require_GET
def metrics(request):
    """Prometheus text for scrapers that send AIGC_METRICS_TOKEN as a bearer token. With DEBUG off and no token
    set it is refused: the figures (models, queues, traffic) are not for whoever can reach the site."""
    if not settings.AIGC["METRICS_TOKEN"]:
        if not settings.DEBUG:
            return HttpResponse(
                "Metrics are off: set AIGC_METRICS_TOKEN and scrape with it as a bearer token.\n",
                status=403,
                content_type="text/plain",
            )
    elif not _has_metrics_token(request):
        response = HttpResponse("A bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    from prometheus_client import CONTENT_TYPE_LATEST

    from ..infra import metrics as studio_metrics

    return HttpResponse(
        studio_metrics.render(selectors.model_health, selectors.version_burden, selectors.usage_gauges),
        content_type=CONTENT_TYPE_LATEST,
    )
