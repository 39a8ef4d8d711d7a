"""The desk a new job is filed under (the studio, the API and `/v1` alike), and what a desk admin does with
their desk: its members, their roles and shares, its budgets, its own templates, its labels on shared ones and
its house style. Each verb checks who may do it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from ..models import Desk, DeskRole, Membership, PromptTemplate, TemplateLabel
from ..selectors.desks import desks_of, may_manage
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


def _keeps_an_admin(desk: Desk, leaving: Membership, actor) -> None:
    """A desk keeps at least one desk admin (staff aside): the last one cannot leave or step down."""
    others = desk.memberships.filter(role=DeskRole.ADMIN).exclude(pk=leaving.pk)
    if leaving.role == DeskRole.ADMIN and not others.exists() and not actor.is_superuser:
        raise ValidationError({"role": ["The desk needs a desk admin: make another member one first."]})


def _check_role(role: str) -> None:
    if role not in DeskRole.values:
        raise ValidationError({"role": [f"Choose one of {', '.join(DeskRole.values)}."]})


def member_add(desk: Desk, *, actor, username: str, role: str = DeskRole.EDITOR) -> Membership:
    """A desk admin adds a user (by username) to their desk with a role."""
    _manager(actor, desk)
    _check_role(role)
    user = get_user_model().objects.filter(username=username.strip(), is_active=True).first()
    if user is None:
        raise ValidationError({"username": [f"No active user is called {username.strip()!r}."]})
    membership, created = Membership.objects.get_or_create(desk=desk, user=user, defaults={"role": role})
    if not created:
        raise ValidationError({"username": [f"{user.get_username()} is already a member of {desk.name}."]})
    return membership


def member_update(membership: Membership, *, actor, role: str, tokens_per_day=None, tokens_per_month=None):
    """A desk admin changes a member's role or own share of the desk's tokens (None: the desk's member share)."""
    _manager(actor, membership.desk)
    _check_role(role)
    if role != DeskRole.ADMIN:
        _keeps_an_admin(membership.desk, membership, actor)
    membership.role, membership.tokens_per_day, membership.tokens_per_month = role, tokens_per_day, tokens_per_month
    membership.save(update_fields=["role", "tokens_per_day", "tokens_per_month"])
    return membership


def member_remove(membership: Membership, *, actor) -> None:
    """A desk admin takes a member off the desk; their jobs stay with the desk (its history and usage)."""
    _manager(actor, membership.desk)
    _keeps_an_admin(membership.desk, membership, actor)
    membership.delete()


BUDGET_FIELDS = ("tokens_per_day", "tokens_per_month", "member_tokens_per_day", "member_tokens_per_month")


def desk_budgets_set(desk: Desk, *, actor, **budgets) -> Desk:
    """A desk admin sets the desk's budgets and each member's default share (None: no budget)."""
    _manager(actor, desk)
    unknown = set(budgets) - set(BUDGET_FIELDS)
    if unknown:
        raise ValidationError({name: ["Not a budget of a desk."] for name in sorted(unknown)})
    errors = {
        k: ["A budget is a whole number of tokens, 0 or more."]
        for k, v in budgets.items()
        if v is not None and (not isinstance(v, int) or v < 0)
    }
    if errors:
        raise ValidationError(errors)
    for name, value in budgets.items():
        setattr(desk, name, value)
    desk.save(update_fields=list(budgets))
    return desk


def desk_style_set(desk: Desk, *, actor, style: dict | None) -> Desk:
    """A desk admin sets the desk's house style (checked as a template's style is; empty: none). New jobs take
    it; a job keeps the style it was created under."""
    _manager(actor, desk)
    if style is not None and not isinstance(style, dict):
        raise ValidationError({"style": ["The house style is a JSON object of rules."]})
    desk.style = style or {}
    desk.clean()
    desk.save(update_fields=["style"])
    return desk


def _desk_template(desk: Desk, template: PromptTemplate) -> PromptTemplate:
    """A template this desk may work with: its own or a shared one; another desk's is unknown to it."""
    if template.desk_id not in (None, desk.pk):
        raise ValidationError({"template": [f"{desk.name} has no template {template.slug!r}."]})
    return template


@transaction.atomic
def desk_template_create(desk: Desk, *, actor, source: PromptTemplate, slug: str, name: str) -> PromptTemplate:
    """A desk admin starts the desk's own template from a shared one (or one of the desk's): a copy of what its
    production label runs for the desk, shown to the desk's members only, to be edited from there."""
    _manager(actor, desk)
    start = resolve_version(_desk_template(desk, source), desk=desk)
    return template_create(
        slug=slug,
        kind=source.kind,
        name=name,
        description=source.description,
        user=actor,
        desk=desk,
        note=f"From {source.slug} v{start.number}",
        **start.content(),
    )


def desk_template_edit(desk: Desk, template: PromptTemplate, *, actor, note: str = "", **changes):
    """A desk admin saves an edit of the desk's own template (its prompts) as a new version; the labels stay
    where they are until moved. Returns (version, created) as template_version_create does."""
    _manager(actor, desk)
    if template.desk_id != desk.pk:
        raise ValidationError({"template": [f"{template.slug!r} is not {desk.name}'s own template."]})
    latest = template.versions.order_by("-number").first()
    return template_version_create(template=template, user=actor, note=note, **{**latest.content(), **changes})


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
