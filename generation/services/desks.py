"""The desk a new job is filed under (the studio, the API and `/v1` alike), and what a desk admin does with
their desk: its members, their roles and shares, its budgets, its own templates, its labels on shared ones and
its house style. Each verb checks who may do it."""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q

from ..content import style as style_rules
from ..models import Dataset, DatasetItem, Desk, DeskRole, Membership, PromptTemplate, TemplateLabel, TemplateVersion
from ..selectors.budgets import MAX_BUDGET
from ..selectors.desks import desks_of, may_manage
from ..selectors.templates import desk_templates
from .templates import desk_label_move, resolve_version, template_create, template_label_move, template_version_create


def desk_for_job(user, desk: str | None = None, api_key=None) -> Desk:
    """The desk a new job is filed under: the one named (a member's), else its API key's, else the user's own
    (the default desk first, then the first by name). Raises a ValidationError on `desk`."""
    mine = desks_of(user)
    if desk:
        found = mine.filter(slug=desk).first()
        if found is None:  # another desk's name is not confirmed to exist: the same answer as an unknown one
            raise ValidationError({"desk": [f"You are not a member of a desk {desk!r}."]})
        return found
    if api_key is not None and api_key.desk_id and mine.filter(pk=api_key.desk_id).exists():
        return mine.get(pk=api_key.desk_id)
    found = mine.order_by("-is_default", "name").first()
    if found is None:
        raise ValidationError({"desk": ["You are not a member of any desk; ask a desk admin to add you."]})
    return found


def _manager(user, desk: Desk) -> None:
    if not may_manage(user, desk.pk):
        raise PermissionDenied


def _locked(desk: Desk) -> Desk:
    """Inside a transaction: the desk's row locked, so that its admins' changes to members (and its templates)
    happen one at a time and every count (its admins, its templates) is read under the lock."""
    return Desk.objects.select_for_update().select_related("organisation").get(pk=desk.pk)


def _keeps_an_admin(desk: Desk, leaving: Membership, actor) -> None:
    """A desk keeps at least one desk admin (staff aside): the last one cannot leave or step down. Call it under
    _locked(desk): two admins demoting each other at once are then counted one after the other."""
    others = desk.memberships.filter(role=DeskRole.ADMIN).exclude(pk=leaving.pk)
    if leaving.role == DeskRole.ADMIN and not others.exists() and not actor.is_superuser:
        raise ValidationError({"role": ["The desk needs a desk admin: make another member one first."]})


def _check_role(role: str) -> None:
    if role not in DeskRole.values:
        raise ValidationError({"role": [f"Choose one of {', '.join(DeskRole.values)}."]})


def _addable(desk: Desk, username: str):
    """An active user, by exact username, of the desk's organisation (on one of its desks) or on no desk yet."""
    return (
        get_user_model()
        .objects.filter(username=username, is_active=True)
        .filter(Q(memberships__desk__organisation_id=desk.organisation_id) | Q(memberships__isnull=True))
        .first()
    )


@transaction.atomic
def member_add(desk: Desk, *, actor, username: str, role: str = DeskRole.EDITOR) -> Membership:
    """A desk admin adds a user, by exact username, to their desk with a role: a colleague of the organisation
    (or someone on no desk yet). An unknown username, an inactive account and someone of another organisation get
    one answer, so the form tells nothing about who has an account."""
    desk = _locked(desk)
    _manager(actor, desk)
    _check_role(role)
    name = username.strip()
    user = _addable(desk, name)
    if user is None:
        raise ValidationError(
            {"username": [f"Nobody can be added to {desk.name} as {name!r}: check the exact username."]}
        )
    membership, created = Membership.objects.get_or_create(desk=desk, user=user, defaults={"role": role})
    if not created:  # the desk's members are on its page: this tells its admin nothing new
        raise ValidationError({"username": [f"{user.get_username()} is already a member of {desk.name}."]})
    return membership


BUDGET_FIELDS = ("tokens_per_day", "tokens_per_month", "member_tokens_per_day", "member_tokens_per_month")


def _check_budgets(desk: Desk, budgets: dict) -> None:
    """Each budget a whole number of tokens a database integer holds, within staff's cap on the desk for its
    period (cap_tokens_per_day, cap_tokens_per_month); each error on the field it names."""
    errors = {}
    for name, value in budgets.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BUDGET:
            errors[name] = [f"A budget is a whole number of tokens, from 0 to {MAX_BUDGET}."]
            continue
        period = "day" if name.endswith("_per_day") else "month"
        cap = getattr(desk, f"cap_tokens_per_{period}")
        if cap is not None and value > cap:
            errors[name] = [f"At most {cap}: staff cap {desk.name} at {cap} tokens a {period}."]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def member_update(membership: Membership, *, actor, role: str, tokens_per_day=None, tokens_per_month=None):
    """A desk admin changes a member's role or own share of the desk's tokens (None: the desk's member share);
    a share stays within staff's cap on the desk."""
    desk = _locked(membership.desk)
    _manager(actor, desk)
    _check_role(role)
    _check_budgets(desk, {"tokens_per_day": tokens_per_day, "tokens_per_month": tokens_per_month})
    current = Membership.objects.filter(pk=membership.pk).first()
    if current is None:
        raise ValidationError({"member": ["No longer a member of the desk."]})
    if role != DeskRole.ADMIN:
        _keeps_an_admin(desk, current, actor)
    membership.role, membership.tokens_per_day, membership.tokens_per_month = role, tokens_per_day, tokens_per_month
    membership.save(update_fields=["role", "tokens_per_day", "tokens_per_month"])
    return membership


@transaction.atomic
def member_remove(membership: Membership, *, actor) -> None:
    """A desk admin takes a member off the desk; their jobs stay with the desk (its history and usage)."""
    desk = _locked(membership.desk)
    _manager(actor, desk)
    current = Membership.objects.filter(pk=membership.pk).first()
    if current is None:
        return
    _keeps_an_admin(desk, current, actor)
    current.delete()


@transaction.atomic
def desk_budgets_set(desk: Desk, *, actor, **budgets) -> Desk:
    """A desk admin sets the desk's budgets and each member's default share (None: no budget), within staff's
    cap on the desk (which only staff set, in the admin)."""
    locked = _locked(desk)
    _manager(actor, locked)
    unknown = set(budgets) - set(BUDGET_FIELDS)
    if unknown:
        raise ValidationError({name: ["Not a budget of a desk."] for name in sorted(unknown)})
    _check_budgets(locked, budgets)
    for name, value in budgets.items():
        setattr(desk, name, value)
    desk.save(update_fields=list(budgets))
    return desk


def _style_fits(desk: Desk, style: dict) -> None:
    """The house style layered under each template the desk may use, every version (a job may pin any): a style
    valid alone can still clash with a template's own rules (a replacement the template bans, too many banned
    phrases together). Refused naming each template it does not fit."""
    failed: dict[str, str] = {}
    verdicts: dict[str, str | None] = {}  # the template's own rules (as stored) -> the clash, None if none
    rows = (
        TemplateVersion.objects.filter(template__in=desk_templates(desk))
        .order_by("template__slug", "number")
        .values_list("template__slug", "number", "checks")
    )
    for slug, number, checks in rows:
        if slug in failed:
            continue
        own = (checks or {}).get("style") if isinstance(checks, dict) else None
        key = repr(own)
        if key not in verdicts:
            try:
                style_rules.parse(style_rules.layered(style, own))
                verdicts[key] = None
            except style_rules.InvalidStyle as exc:
                verdicts[key] = "; ".join(f"{k or 'style'}: {' '.join(v)}" for k, v in exc.errors.items())
        if verdicts[key] is not None:
            failed[slug] = f"Under template {slug!r} (v{number}, its own rules first): {verdicts[key]}"
    if failed:
        shown = list(failed.values())[:5]
        more = len(failed) - len(shown)
        raise ValidationError({"style": shown + ([f"And {more} more templates."] if more else [])})


@transaction.atomic
def desk_style_set(desk: Desk, *, actor, style: dict | None) -> Desk:
    """A desk admin sets the desk's house style (checked as a template's style is, alone and under every template
    the desk may use; empty: none). New jobs take it; a job keeps the style it was created under."""
    _manager(actor, desk)
    if style is not None and not isinstance(style, dict):
        raise ValidationError({"style": ["The house style is a JSON object of rules."]})
    desk.style = style or {}
    desk.clean()
    if desk.style:
        _style_fits(desk, desk.style)
    desk.save(update_fields=["style"])
    return desk


def _desk_template(desk: Desk, template: PromptTemplate) -> PromptTemplate:
    """A template this desk may work with: its own or a shared one; another desk's is unknown to it."""
    if template.desk_id not in (None, desk.pk):
        raise ValidationError({"template": [f"{desk.name} has no template {template.slug!r}."]})
    return template


# A desk's own template is saved as "<desk>--<name>": each desk has its own namespace, so whether a name is taken
# depends only on the desk's own templates and the shared ones (both in its admin's view), never on another
# desk's private ones. The name is words joined by single hyphens, so no two desks' slugs can ever meet.
NAMESPACE_SEP = "--"
_NAME = re.compile(r"[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*")


def desk_template_slug(desk: Desk, slug: str) -> str:
    """The slug a desk's own template is saved under: the desk's namespace and the name its admin gave."""
    prefix = f"{desk.slug}{NAMESPACE_SEP}"
    name = slug.strip()
    name = name.removeprefix(prefix)
    if not _NAME.fullmatch(name):
        raise ValidationError(
            {"slug": ["Letters, digits and '_', in words joined by single hyphens (no '--', no hyphen at an end)."]}
        )
    most = PromptTemplate._meta.get_field("slug").max_length
    if len(prefix) + len(name) > most:
        raise ValidationError(
            {"slug": [f"At most {most - len(prefix)} characters: the template is saved as {prefix}<slug>."]}
        )
    return prefix + name


def _gate_copied(source: PromptTemplate, copy: PromptTemplate, actor) -> None:
    """A copy keeps the source's promotion gate: its settings, and the source's gate dataset (its latest version's
    cases) as the copy's own, so the copy's protected labels move only as the source's do."""
    PromptTemplate.objects.filter(pk=copy.pk).update(gate=source.gate, gate_dataset=source.gate_dataset)
    copy.gate, copy.gate_dataset = source.gate, source.gate_dataset
    if not source.gate_dataset:
        return
    cases = Dataset.objects.filter(template=source, name=source.gate_dataset).order_by("-version").first()
    if cases is None:
        return  # the source's protected moves wait for the dataset too; the copy's say so the same way
    dataset = Dataset.objects.create(
        template=copy,
        name=cases.name,
        description=f"{cases} for {copy.slug}. {cases.description}".strip(),
        origin=cases.origin,
        created_by=actor,
    )
    DatasetItem.objects.bulk_create(
        DatasetItem(
            dataset=dataset,
            index=item.index,
            inputs=item.inputs,
            reference=item.reference,
            checks=item.checks,
            seed=item.seed,
            source_job_id=item.source_job_id,
        )
        for item in cases.items.order_by("index")
    )


@transaction.atomic
def desk_template_create(desk: Desk, *, actor, source: PromptTemplate, slug: str, name: str) -> PromptTemplate:
    """A desk admin starts the desk's own template from a shared one (or one of the desk's): a copy of what its
    production label runs for the desk, and of its promotion gate, shown to the desk's members only, to be edited
    from there. Saved as "<desk>--<slug>"; a desk has at most AIGC_MAX_TEMPLATES_PER_DESK of its own."""
    desk = _locked(desk)  # its templates are counted one creation at a time
    _manager(actor, desk)
    full = desk_template_slug(desk, slug)
    start = resolve_version(_desk_template(desk, source), desk=desk)
    most, has = settings.AIGC["MAX_TEMPLATES_PER_DESK"], desk.templates.count()
    if has >= most:
        raise ValidationError({"desk": [f"{desk.name} has {has} templates of its own, the most a desk may have."]})
    copy = template_create(
        slug=full,
        kind=source.kind,
        name=name,
        description=source.description,
        user=actor,
        desk=desk,
        note=f"From {source.slug} v{start.number}",
        **start.content(),
    )
    _gate_copied(source, copy, actor)
    return copy


def desk_template_edit(desk: Desk, template: PromptTemplate, *, actor, note: str = "", **changes):
    """A desk admin saves an edit of the desk's own template (its prompts) as a new version; the labels stay
    where they are until moved. Returns (version, created) as template_version_create does; a template keeps at
    most AIGC_MAX_VERSIONS_PER_TEMPLATE versions."""
    _manager(actor, desk)
    if template.desk_id != desk.pk:
        raise ValidationError({"template": [f"{template.slug!r} is not {desk.name}'s own template."]})
    latest = template.versions.order_by("-number").first()
    return template_version_create(
        template=template,
        user=actor,
        note=note,
        max_versions=settings.AIGC["MAX_VERSIONS_PER_TEMPLATE"],
        **{**latest.content(), **changes},
    )


def desk_label_set(
    desk: Desk, template: PromptTemplate, *, actor, version: int | None, label: str = TemplateLabel.PRODUCTION
):
    """A desk admin points a label for their desk: on the desk's own template, the template's label; on a shared
    one, the desk's own label over it (None: follow the shared label again). Both through the promotion gate."""
    _manager(actor, desk)
    _desk_template(desk, template)
    found = None if version is None else resolve_version(template, version=version)
    if template.desk_id == desk.pk:
        if found is None:
            raise ValidationError({"version": ["Choose the version the label points at."]})
        return template_label_move(template=template, label=label, version=found, user=actor)
    return desk_label_move(desk=desk, template=template, label=label, version=found, user=actor)
