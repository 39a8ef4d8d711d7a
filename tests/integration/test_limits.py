"""Limits where the cost is, against real web processes: the quota holds when many requests race for its last
tokens (several web processes, as production runs them: one process alone runs its views one at a time)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from generation import services
from generation.models import Job, UserQuota

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

BODY = {
    "kind": "headline",
    "inputs": {"text": "The council voted on Tuesday to build a new bridge."},
    "params": {"n": 2},
}


def test_concurrent_requests_at_the_last_tokens_of_a_quota_cannot_pass_it_together(cluster, user):
    key = services.api_key_create(user, name="racer")[1]
    user.api_keys.update(requests_per_minute=10_000)
    webs = [cluster.web(name=f"web-{i}", AIGC_USER_REQUESTS_PER_MINUTE="10000")[1] for i in range(3)]
    headers = {"Authorization": f"Bearer {key}"}
    first = requests.post(f"{webs[0]}/api/v1/jobs/", json=BODY, headers=headers, timeout=30)
    assert first.status_code == 202, first.text
    reserved = Job.objects.get(pk=first.json()["id"]).reserved_tokens
    assert reserved > 0
    # Room for exactly three more jobs of this size, and half of a fourth.
    UserQuota.objects.create(user=user, tokens_per_day=4 * reserved + reserved // 2)

    def post(i: int) -> int:
        return requests.post(f"{webs[i % len(webs)]}/api/v1/jobs/", json=BODY, headers=headers, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=24) as pool:
        codes = list(pool.map(post, range(24)))

    assert sorted(set(codes)) == [202, 429], codes
    assert codes.count(202) == 3, codes
    held = sum(Job.objects.filter(owner=user).values_list("reserved_tokens", flat=True))
    assert held <= 4 * reserved + reserved // 2


def test_concurrent_requests_of_a_desk_s_members_cannot_pass_its_budget_together(cluster, user, django_user_model):
    """Two members, each with their own key, through three web processes: no per-user lock serialises them, so
    only the budget's own (the organisation's row) can keep the desk within its last tokens."""
    from tests.support.desks import desk, join

    sport = desk("sport")
    colleague = django_user_model.objects.create_user(username="colleague", password="pw-colleague-123")
    keys = []
    for member in (user, colleague):
        join(member, sport)
        keys.append(services.api_key_create(member, name="racer")[1])
        member.api_keys.update(requests_per_minute=10_000)
    webs = [cluster.web(name=f"web-{i}", AIGC_USER_REQUESTS_PER_MINUTE="10000")[1] for i in range(3)]
    first = requests.post(
        f"{webs[0]}/api/v1/jobs/", json=BODY, headers={"Authorization": f"Bearer {keys[0]}"}, timeout=30
    )
    assert first.status_code == 202, first.text
    reserved = Job.objects.get(pk=first.json()["id"]).reserved_tokens
    sport.tokens_per_day = 4 * reserved + reserved // 2  # room for three more, and half of a fourth
    sport.save()

    def post(i: int) -> requests.Response:
        headers = {"Authorization": f"Bearer {keys[i % 2]}"}
        return requests.post(f"{webs[i % len(webs)]}/api/v1/jobs/", json=BODY, headers=headers, timeout=60)

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(post, range(24)))

    codes = [a.status_code for a in answers]
    assert codes.count(202) == 3 and codes.count(429) == 21, codes
    assert {a.json()["error"]["budget"] for a in answers if a.status_code == 429} == {"desk:sport daily"}
    held = sum(Job.objects.filter(desk=sport).values_list("reserved_tokens", flat=True))
    assert held <= 4 * reserved + reserved // 2
