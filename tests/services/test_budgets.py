"""Token budgets of the organisation, its desks and their members, per day and month: every path that spends
tokens is held, the refusal names the budget, jobs settle to what they used, and a notice comes at 80%. Real
database; jobs are created through the service (no worker needed to hold a reservation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from generation import selectors, services
from generation.models import Desk, DeskRole, Job, JobPurpose, JobStatus, Membership
from generation.selectors import budgets as budget_reads
from generation.services.limits import LimitExceeded
from tests.support.desks import STORY, desk, join

pytestmark = pytest.mark.django_db


def create(user, **kw):
    return services.job_create(user=user, **{"kind": "headline", "inputs": {"text": STORY}, **kw})


@pytest.fixture
def sport(user):
    sport = desk("sport")
    join(user, sport)
    return sport


def reservation(user) -> int:
    """What one headline job of the tests reserves (no tokenizer published: the byte bound of its prompt)."""
    probe = create(user)
    Job.objects.filter(pk=probe.pk).delete()
    return probe.reserved_tokens


def test_a_desk_s_daily_budget_refuses_the_job_that_would_pass_it_and_names_it(user, sport):
    most = reservation(user)
    sport.tokens_per_day = 2 * most + most // 2
    sport.save()
    create(user), create(user)
    with pytest.raises(LimitExceeded) as info:
        create(user)
    assert info.value.code == "budget_exceeded" and info.value.budget == "desk:sport daily"
    assert "desk:sport daily" in info.value.message
    reset = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    assert abs(info.value.retry_after - (reset - datetime.now(UTC)).total_seconds()) < 5
    assert Job.objects.filter(desk=sport).count() == 2  # nothing written for the refused one


def test_each_scope_and_period_is_its_own_budget(user, django_user_model, sport):
    most = reservation(user)
    colleague = django_user_model.objects.create_user(username="colleague", password="pw-colleague-123")
    join(colleague, sport)
    # A member's share: the desk's default for each member, and a membership's own figure over it.
    sport.member_tokens_per_month = most
    sport.save()
    create(user)
    with pytest.raises(LimitExceeded) as info:
        create(user)
    assert info.value.budget == "member:editor@sport monthly"
    create(colleague)  # the colleague's share is their own
    join(user, sport, tokens_per_month=3 * most)
    create(user)
    # The organisation's budget holds across its desks.
    politics = desk("politics")
    join(colleague, politics)
    organisation = sport.organisation
    organisation.tokens_per_day = 4 * most
    organisation.save()
    create(colleague, desk="politics")
    with pytest.raises(LimitExceeded) as info:
        create(colleague, desk="politics")
    assert info.value.budget == f"organisation:{organisation.slug} daily"


def test_a_job_settles_to_what_it_used_on_every_end(user, sport):
    most = reservation(user)
    sport.tokens_per_day = 10 * most
    sport.save()
    done, cancelled_queued, cancelled_running, died = (create(user) for _ in range(4))
    Job.objects.filter(pk=done.pk).update(status=JobStatus.SUCCEEDED, prompt_tokens=40, completion_tokens=10)
    services.job_cancel(cancelled_queued, user=user)  # never ran: pays nothing
    Job.objects.filter(pk=cancelled_running.pk).update(
        status=JobStatus.CANCELLED, started_at=done.created_at, prompt_tokens=40, completion_tokens=3
    )
    Job.objects.filter(pk=died.pk).update(status=JobStatus.FAILED, started_at=done.created_at)  # usage unknown
    (standing,) = selectors.standings(sport, user)
    assert standing.used == 50 + 0 + 43 + most


def test_the_notice_comes_at_80_percent_and_says_which_budget(user, sport):
    most = reservation(user)
    sport.tokens_per_day = 5 * most
    sport.save()
    for _ in range(3):
        assert create(user).budget_notices == []
    (notice,) = create(user).budget_notices  # 4 of 5: 80%
    assert notice.startswith("Token budget desk:sport daily is 80% used")


def test_the_month_budget_counts_the_whole_utc_month():
    start, end = budget_reads.PERIODS["monthly"](datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def test_every_path_that_spends_tokens_is_held(user, sport):
    """Batches (the whole batch or nothing), reruns, the API's jobs with a desk named, and evaluation jobs
    (against the organisation's evaluation pool, not the desk's)."""
    most = reservation(user)
    sport.tokens_per_day = 2 * most + most // 2
    sport.save()
    first = create(user)
    with pytest.raises(LimitExceeded) as info:
        services.batch_create(user=user, items=[{"kind": "headline", "inputs": {"text": STORY}}] * 3)
    assert info.value.budget == "desk:sport daily" and "Job 2 of 3" in info.value.message
    assert Job.objects.count() == 1  # none of the batch was written
    services.job_rerun(first, user=user)
    with pytest.raises(LimitExceeded):
        services.job_rerun(first, user=user)
    assert Job.objects.count() == 2

    organisation = sport.organisation
    organisation.evaluation_tokens_per_day = most
    organisation.save()
    evaluation = create(user, purpose=JobPurpose.EVALUATION)  # the desk's budget is spent; its own pool is not
    with pytest.raises(LimitExceeded) as info:
        create(user, purpose=JobPurpose.EVALUATION)
    assert info.value.budget == f"evaluation:{organisation.slug} daily"
    assert evaluation.desk == sport


def test_a_job_goes_to_the_desk_named_else_the_key_s_else_the_user_s(user, sport, django_user_model):
    politics = desk("politics")
    assert create(user).desk == sport
    Membership.objects.create(desk=politics, user=user)
    assert create(user, desk="politics").desk == politics
    key, _ = services.api_key_create(user, name="politics desk")
    key.desk = politics
    key.save()
    assert create(user, api_key=key).desk == politics
    with pytest.raises(ValidationError) as info:
        create(user, desk="features")  # no such desk, or not theirs: the same answer
    assert list(info.value.message_dict) == ["desk"]
    outsider = django_user_model.objects.create_user(username="outsider", password="pw-outsider-123")
    Membership.objects.filter(user=outsider).delete()
    with pytest.raises(ValidationError) as info:
        create(outsider)
    assert "not a member of any desk" in info.value.message_dict["desk"][0]


def test_staff_s_cap_on_a_desk_holds_whatever_its_admin_sets(user, sport, django_user_model):
    """The desk's admin sets its budgets and members' shares, within the cap staff set (which they cannot change):
    an edit above it is refused naming the field, and every job is held against the cap as well."""
    most = reservation(user)
    boss = django_user_model.objects.create_user(username="boss", password="pw-boss-12345")
    join(boss, sport, DeskRole.ADMIN)
    cap = 2 * most + most // 2
    Desk.objects.filter(pk=sport.pk).update(cap_tokens_per_day=cap)  # the admin, as staff
    sport.refresh_from_db()
    for field in ("tokens_per_day", "member_tokens_per_day"):
        with pytest.raises(ValidationError) as info:
            services.desk_budgets_set(sport, actor=boss, **{field: cap + 1})
        assert f"At most {cap}" in info.value.message_dict[field][0]
    with pytest.raises(ValidationError) as info:
        services.member_update(Membership.objects.get(user=user), actor=boss, role="editor", tokens_per_day=cap + 1)
    assert list(info.value.message_dict) == ["tokens_per_day"]
    services.desk_budgets_set(sport, actor=boss, tokens_per_day=None, tokens_per_month=10 * cap)  # within it
    sport.refresh_from_db()
    assert (sport.tokens_per_day, sport.cap_tokens_per_day) == (None, cap)
    create(user), create(user)
    with pytest.raises(LimitExceeded) as info:
        create(user)
    assert info.value.budget == "desk-cap:sport daily"
    # A share set before staff lowered the cap is held to the cap.
    Membership.objects.filter(user=user).update(tokens_per_day=10 * cap)
    member = next(s for s in selectors.standings(sport, user) if s.name.startswith("member:"))
    assert member.limit == cap
