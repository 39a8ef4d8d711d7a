"""The desk a new job is filed under (the studio, the API and `/v1` alike), and what a desk admin does with
their desk: its members, their roles and shares, its budgets. Each verb checks who may do it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError

from ..models import Desk, DeskRole, Membership
from ..selectors.desks import desks_of, may_manage


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


def member_add(desk: Desk, *, actor, username: str, role: str = DeskRole.EDITOR) -> Membership:
    """A desk admin adds a user (by username) to their desk with a role."""
    _manager(actor, desk)
    if role not in DeskRole.values:
        raise ValidationError({"role": [f"Choose one of {', '.join(DeskRole.values)}."]})
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
    if role not in DeskRole.values:
        raise ValidationError({"role": [f"Choose one of {', '.join(DeskRole.values)}."]})
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
