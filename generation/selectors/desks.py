"""Desks and the roles in them (editor, reviewer, desk admin): who reviews or manages which desk's jobs. One
place for each rule, so the studio, the API and `/v1` cannot disagree."""

from __future__ import annotations

from ..models import Desk, DeskRole, Membership

REVIEWS = (DeskRole.REVIEWER, DeskRole.ADMIN)  # roles that review the desk's jobs
MANAGES = (DeskRole.ADMIN,)  # roles that manage the desk's members and budgets


def default_desk() -> Desk | None:
    return Desk.objects.select_related("organisation").filter(is_default=True).first()


def desks_of(user):
    """The desks a user belongs to, by name."""
    return Desk.objects.filter(memberships__user=user).select_related("organisation").order_by("name")


def role_in(user, desk_id) -> str | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, desk_id=desk_id).values_list("role", flat=True).first()


def may_review(user, desk_id) -> bool:
    """A reviewer or desk admin of that desk; the site-wide reviewer group counts as reviewer on each of the
    user's own desks (never on others)."""
    role = role_in(user, desk_id)
    return role in REVIEWS or (role is not None and user.has_perm("generation.review_job"))


def review_desk_ids(user) -> list[int]:
    """The desks whose jobs this user reviews."""
    if not user.is_authenticated:
        return []
    rows = Membership.objects.filter(user=user)
    if not user.has_perm("generation.review_job"):
        rows = rows.filter(role__in=REVIEWS)
    return list(rows.values_list("desk_id", flat=True))


def managed_desks(user):
    """The desks a user manages among their own, in one query (the nav asks on every page)."""
    if not user.is_authenticated:
        return Desk.objects.none()
    if user.is_superuser:
        return desks_of(user)
    return Desk.objects.filter(memberships__user=user, memberships__role__in=MANAGES).order_by("name")


def may_manage(user, desk_id) -> bool:
    return user.is_authenticated and (user.is_superuser or role_in(user, desk_id) in MANAGES)
