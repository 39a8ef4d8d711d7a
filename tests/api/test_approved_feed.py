"""The approved feed a CMS polls, as DESIGN.md promises it: GET /api/v1/jobs/?review_state=approved&since=&desk=,
with GET /api/v1/approved/ as its alias (one implementation): a reviewer gets the desk's approved jobs, oldest
approval first, each with the chosen final text; `since` is exclusive; a bad since or desk is a 400 naming it."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from generation import services
from generation.models import DeskRole, Job, JobOutput, JobStatus, ReviewState
from tests.support.desks import STORY, desk, join

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {services.api_key_create(user, name='cms')[1]}")
    return client


def approved(user, on, text: str, at) -> Job:
    """A job of `user` on desk `on`, approved at `at` with its second candidate chosen and edited to `text`."""
    job = services.job_create(user=user, kind="headline", inputs={"text": STORY}, desk=on.slug)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, review_state=ReviewState.APPROVED, approved_at=at)
    JobOutput.objects.create(job=job, index=0, text="Bridge")
    JobOutput.objects.create(job=job, index=1, text="Council votes bridge", final_text=text, edited_at=at, chosen=True)
    return job


@pytest.fixture
def metro(user, django_user_model):
    on = desk("metro")
    join(user, on)
    chief = django_user_model.objects.create_user(username="metro-chief", password="pw-chief-12345")
    join(chief, on, DeskRole.REVIEWER)
    now = timezone.now()
    later = approved(user, on, "Later", now - timedelta(minutes=1))
    earlier = approved(user, on, "Earlier", now - timedelta(minutes=5))
    services.job_create(user=user, kind="headline", inputs={"text": STORY}, desk=on.slug)  # a draft: not in the feed
    return {"desk": on, "chief": client_for(chief), "jobs": [earlier, later], "now": now}


def test_the_jobs_list_with_review_state_approved_is_the_feed(metro):
    chief = metro["chief"]
    feed = chief.get("/api/v1/jobs/", {"review_state": "approved", "desk": "metro"}).json()
    assert [j["id"] for j in feed["results"]] == [str(j.pk) for j in metro["jobs"]]  # oldest approval first
    assert [j["final_texts"] for j in feed["results"]] == [["Earlier"], ["Later"]]
    assert [j["chosen"] for j in feed["results"]] == [[1], [1]]
    assert chief.get("/api/v1/approved/", {"desk": "metro"}).json() == feed  # the alias answers the same

    since = feed["results"][0]["approved_at"]  # exclusive: polling from the last one seen gives what came after
    after = chief.get("/api/v1/jobs/", {"review_state": "approved", "since": since}).json()
    assert [j["final_texts"] for j in after["results"]] == [["Later"]]
    assert chief.get("/api/v1/approved/", {"since": since}).json() == after
    assert chief.get("/api/v1/jobs/", {"review_state": "approved", "since": metro["now"].isoformat()}).json() == {
        "next": None,
        "previous": None,
        "results": [],
    }
    # Without review_state=approved the list is the caller's own jobs, as before: the reviewer has none.
    assert chief.get("/api/v1/jobs/").json()["results"] == []


def test_bad_since_or_desk_is_a_400_naming_it(api, metro):
    def param(response):
        assert response.status_code == 400, response.content
        return response.json()["error"]["param"]

    assert param(api.get("/api/v1/jobs/", {"review_state": "approved", "since": "yesterday"})) == "since"
    assert param(api.get("/api/v1/jobs/", {"review_state": "approved", "desk": "not-mine"})) == "desk"
    assert param(api.get("/api/v1/jobs/", {"review_state": "approved", "desk": "bad slug!"})) == "desk"
    assert param(api.get("/api/v1/jobs/", {"since": metro["now"].isoformat()})) == "since"  # only with approved
    assert param(api.get("/api/v1/jobs/", {"desk": "not-mine"})) == "desk"
    assert param(api.get("/api/v1/approved/", {"since": "yesterday"})) == "since"
    assert len(api.get("/api/v1/jobs/", {"desk": "metro"}).json()["results"]) == 3  # the editor's own, by desk
