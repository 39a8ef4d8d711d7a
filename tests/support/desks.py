"""Desks for tests: an organisation's desk with members in roles, and a job on it written without a worker."""

from __future__ import annotations

from generation.models import Desk, DeskRole, Membership, Organisation

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."


def desk(slug: str, organisation: Organisation | None = None, **budgets) -> Desk:
    organisation = organisation or Desk.objects.get(is_default=True).organisation
    return Desk.objects.create(organisation=organisation, name=slug.title(), slug=slug, **budgets)


def join(user, on: Desk, role: str = DeskRole.EDITOR, **budgets) -> Membership:
    """The user in that desk with that role, and in no other (the default desk they joined on creation left)."""
    Membership.objects.filter(user=user).exclude(desk=on).delete()
    membership, _ = Membership.objects.update_or_create(desk=on, user=user, defaults={"role": role, **budgets})
    return membership


def desk_with_reviewer(editor, user_model, slug: str = "sport"):
    """The editor on a new desk, and that desk's reviewer ("<slug>-chief"), returned: the pair review needs."""
    on = desk(slug)
    join(editor, on)
    reviewer = user_model.objects.create_user(username=f"{slug}-chief", password="pw-chief-12345")
    join(reviewer, on, DeskRole.REVIEWER)
    return reviewer
