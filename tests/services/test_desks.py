"""What a desk admin does with their desk's members: who can be added (the answer tells nothing about who has an
account), and admins changing roles at once (the desk always keeps one). Real database, real concurrency."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction

from generation import services
from generation.models import DeskRole, Membership, Organisation
from tests.support.desks import desk, join

pytestmark = pytest.mark.django_db


@pytest.fixture
def sport(django_user_model):
    """The sport desk with `boss` (not staff) as its desk admin."""
    sport = desk("sport")
    boss = django_user_model.objects.create_user(username="boss", password="pw-boss-12345")
    join(boss, sport, DeskRole.ADMIN)
    return sport, boss


def test_who_cannot_be_added_gets_the_same_answer_as_nobody(sport, django_user_model):
    """A desk admin is not staff: an unknown username, an inactive account and someone of another organisation
    are refused alike, so adding people cannot be used to find out who has an account."""
    desk_, boss = sport
    django_user_model.objects.create_user(username="gone", password="pw-gone-12345", is_active=False)
    rival = Organisation.objects.create(name="Rival", slug="rival")
    outsider = django_user_model.objects.create_user(username="outsider", password="pw-out-12345")
    join(outsider, desk("elsewhere", organisation=rival))
    answers = []
    for name in ("nobody", "gone", "outsider"):
        with pytest.raises(ValidationError) as info:
            services.member_add(desk_, actor=boss, username=name)
        answers.append(info.value.message_dict["username"][0].replace(repr(name), "<name>"))
    assert answers[0] == answers[1] == answers[2] == "Nobody can be added to Sport as <name>: check the exact username."
    assert not Membership.objects.filter(desk=desk_, user__username__in=["gone", "outsider"]).exists()
    colleague = django_user_model.objects.create_user(username="colleague", password="pw-col-12345")
    assert services.member_add(desk_, actor=boss, username="colleague").user == colleague  # on the default desk


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_admins_demoting_each_other_at_once_leave_one_admin(sport, django_user_model):
    """The first demotion is still uncommitted when the second is asked for: the second waits on the desk's row
    and then counts the admins the first left, so it is refused."""
    desk_, boss = sport
    deputy = django_user_model.objects.create_user(username="deputy", password="pw-deputy-12345")
    join(deputy, desk_, DeskRole.ADMIN)
    boss_row, deputy_row = (Membership.objects.get(desk=desk_, user=u) for u in (boss, deputy))
    outcome = {}

    def deputy_demotes_boss():
        try:
            services.member_update(boss_row, actor=deputy, role=DeskRole.EDITOR)
            outcome["deputy"] = "demoted"
        except (ValidationError, PermissionDenied) as exc:
            outcome["deputy"] = type(exc).__name__
        finally:
            connection.close()

    with transaction.atomic():
        services.member_update(deputy_row, actor=boss, role=DeskRole.EDITOR)
        other = threading.Thread(target=deputy_demotes_boss)
        other.start()
        other.join(1.0)  # without the lock it ran to its end meanwhile, on what it could see
    other.join(30)
    assert outcome["deputy"] != "demoted"
    assert Membership.objects.filter(desk=desk_, role=DeskRole.ADMIN).count() == 1
