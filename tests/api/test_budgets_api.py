"""Budget refusals where users meet them: a 429 with Retry-After naming the budget in the API, in `/v1`'s error
shape and in the studio's form; the 80% notice in the answer and on the page; the budgets in the usage API."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from generation.models import Job
from tests.support.desks import STORY, desk, join

pytestmark = pytest.mark.django_db

BODY = {"kind": "headline", "inputs": {"text": STORY}}


@pytest.fixture
def sport(user):
    sport = desk("sport")
    join(user, sport)
    return sport


def test_the_api_refuses_with_429_and_names_the_budget(api, user, sport):
    first = api.post("/api/v1/jobs/", BODY, format="json")
    assert first.status_code == 202 and first.json()["desk"] == "sport" and first.json()["budget_notices"] == []
    most = Job.objects.get().reserved_tokens
    sport.tokens_per_day = most + most // 4  # the first job holds 80% of it
    sport.save()
    assert api.get(f"/api/v1/jobs/{first.json()['id']}/").json()["budget_notices"] == []  # said when created
    refused = api.post("/api/v1/jobs/", BODY, format="json")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded" and error["budget"] == "desk:sport daily"
    assert "desk:sport daily" in error["message"]
    (budget,) = api.get("/api/v1/usage/").json()["budgets"]
    assert (
        budget["name"] == "desk:sport daily"
        and budget["used"] == most
        and budget["share"] == pytest.approx(0.8, abs=0.01)
    )
    assert Job.objects.count() == 1


def test_a_job_that_reaches_80_percent_says_so_in_its_answer(api, sport):
    api.post("/api/v1/jobs/", BODY, format="json")
    most = Job.objects.get().reserved_tokens
    sport.tokens_per_day = 2 * most + most // 2
    sport.save()
    answer = api.post("/api/v1/jobs/", BODY, format="json").json()
    (notice,) = answer["budget_notices"]
    assert notice.startswith("Token budget desk:sport daily is 80% used")


def test_the_openai_compatible_api_refuses_in_its_own_shape(api_key, user, sport):
    sport.tokens_per_day = 1
    sport.save()
    response = Client().post(
        "/v1/chat/completions",
        json.dumps({"model": "default", "messages": [{"role": "user", "content": "Name a bridge."}]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key}",
    )
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    error = response.json()["error"]
    assert error["type"] == "insufficient_quota" and error["budget"] == "desk:sport daily"
    assert Job.objects.count() == 0


def test_a_named_desk_that_is_not_the_user_s_is_a_400_on_desk(api, sport):
    desk("politics")
    response = api.post("/api/v1/jobs/", {**BODY, "desk": "politics"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["param"] == "desk"
    assert Job.objects.count() == 0


def test_the_studio_shows_the_refusal_and_the_notice(client, user, sport):
    client.force_login(user)
    client.post("/jobs/new/headline/", {"in_text": STORY})
    most = Job.objects.get().reserved_tokens
    sport.tokens_per_day = 2 * most + most // 2
    sport.save()
    page = client.post("/jobs/new/headline/", {"in_text": STORY}, follow=True).content.decode()
    assert "Token budget desk:sport daily is 80% used" in page
    refused = client.post("/jobs/new/headline/", {"in_text": STORY})
    assert refused.status_code == 200 and "Token budget desk:sport daily reached" in refused.content.decode()
    assert Job.objects.count() == 2


def test_a_member_of_several_desks_chooses_one_in_the_studio(client, user, sport):
    from generation.models import Membership

    politics = desk("politics")
    Membership.objects.create(desk=politics, user=user)
    client.force_login(user)
    form = client.get("/jobs/new/headline/").content.decode()
    assert 'name="desk"' in form and "Politics" in form
    client.post("/jobs/new/headline/", {"in_text": STORY, "desk": "politics"})
    assert Job.objects.get().desk == politics
