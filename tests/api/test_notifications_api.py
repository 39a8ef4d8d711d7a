"""Notices over the API: the caller's own, a cursor page newest first with an `unread` filter, and marking them
read by ids or all; another user's notices are neither listed nor marked."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from generation import services
from generation.models import Job, JobOutput, JobStatus, Notification, ReviewState
from tests.support.desks import STORY, desk_with_reviewer

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {services.api_key_create(user, name='cms')[1]}")
    return client


@pytest.fixture
def chief(user, django_user_model):
    """The editor and a reviewer on the sport desk."""
    return desk_with_reviewer(user, django_user_model)


def sent_back(owner, chief, note: str) -> Job:
    job = services.job_create(user=owner, kind="headline", inputs={"text": STORY})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.create(job=job, index=0, text="Council backs a bridge")
    job = Job.objects.get(pk=job.pk)
    services.review_move(job, user=owner, to_state=ReviewState.IN_REVIEW)
    return services.review_move(job, user=chief, to_state=ReviewState.DRAFT, note=note)


def test_the_caller_s_notices_newest_first_and_the_unread_filter(api, user, chief):
    first = sent_back(user, chief, "Name the cost.")
    second = sent_back(user, chief, "Too long.")
    page = api.get("/api/v1/notifications/").json()
    assert [(n["job"], n["verb"], n["note"], n["actor"]) for n in page["results"]] == [
        (str(second.pk), "sent_back", "Too long.", "sport-chief"),
        (str(first.pk), "sent_back", "Name the cost.", "sport-chief"),
    ]
    assert page["results"][0]["message"].startswith("sport-chief sent “The city council")
    assert page["results"][0]["html_url"] == f"http://testserver/jobs/{second.pk}/"
    assert page["results"][0]["read_at"] is None
    services.notifications_read(user, job=first)
    unread = api.get("/api/v1/notifications/?unread=true").json()["results"]
    assert [n["job"] for n in unread] == [str(second.pk)]
    read = api.get("/api/v1/notifications/?unread=false").json()["results"]
    assert [n["job"] for n in read] == [str(first.pk)] and read[0]["read_at"] is not None
    cursor = api.get("/api/v1/notifications/?page_size=1").json()
    assert len(cursor["results"]) == 1 and cursor["next"]
    assert api.get(cursor["next"]).json()["results"][0]["job"] == str(first.pk)


def test_another_user_s_notices_are_invisible_and_untouchable(api, user, chief):
    sent_back(user, chief, "Name the cost.")
    waiting = Job.objects.get(pk=sent_back(user, chief, "Again").pk)
    services.review_move(waiting, user=user, to_state=ReviewState.IN_REVIEW)  # waits for the chief's review
    theirs = client_for(chief)
    submitted = Notification.objects.get(user=chief, read_at__isnull=True)
    assert [n["verb"] for n in theirs.get("/api/v1/notifications/?unread=true").json()["results"]] == ["submitted"]
    assert {n["verb"] for n in api.get("/api/v1/notifications/").json()["results"]} == {"sent_back"}
    body = api.post("/api/v1/notifications/read/", {"ids": [submitted.pk]}, format="json").json()
    assert body == {"marked": 0, "unread": 2}
    assert Notification.objects.get(pk=submitted.pk).read_at is None


def test_marking_read_by_ids_or_all(api, user, chief):
    sent_back(user, chief, "One")
    sent_back(user, chief, "Two")
    first = Notification.objects.filter(user=user).order_by("created_at").first()
    assert api.post("/api/v1/notifications/read/", {"ids": [first.pk]}, format="json").json() == {
        "marked": 1,
        "unread": 1,
    }
    assert api.post("/api/v1/notifications/read/", {"all": True}, format="json").json() == {"marked": 1, "unread": 0}
    assert api.get("/api/v1/notifications/?unread=true").json()["results"] == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "ids"),
        ({"ids": []}, "ids"),
        ({"ids": [1], "all": True}, "ids"),
        ({"ids": ["x"]}, "ids.0"),
        ({"every": 1}, "every"),
    ],
)
def test_bad_bodies_are_400s_naming_the_field(api, body, param):
    response = api.post("/api/v1/notifications/read/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param


def test_a_bad_filter_or_cursor_is_a_400(api):
    assert api.get("/api/v1/notifications/?unread=maybe").json()["error"]["param"] == "unread"
    assert api.get("/api/v1/notifications/?cursor=nonsense").json()["error"]["param"] == "cursor"


def test_the_schema_documents_the_notices(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert schema["paths"]["/api/v1/notifications/"]["get"]["operationId"] == "v1_notifications_list"
    assert schema["paths"]["/api/v1/notifications/read/"]["post"]["operationId"] == "v1_notifications_read"
    assert "unread" in [p["name"] for p in schema["paths"]["/api/v1/notifications/"]["get"]["parameters"]]
