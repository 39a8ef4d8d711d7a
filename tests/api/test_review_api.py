"""The review API over the real database: choose, edit, rate, submit, approve and send back with the studio's
roles and desks, and the approved feed a CMS polls, which gives exactly the chosen final text."""

import pytest
from rest_framework.test import APIClient

from generation import services
from generation.models import DeskRole, Feedback, Job, JobOutput, JobStatus, ReviewEvent
from tests.support.desks import desk, join

pytestmark = pytest.mark.django_db

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."
CANDIDATES = [
    "Amber Ruiz, Mayor of Riverton, Opens Bridge",
    "Here's a rewritten headline for the story:",
    "Council votes for Elm River bridge",
    "Bridge",
    "A bridge, at last",
]
EDITED = "Council backs new Elm River bridge"


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {services.api_key_create(user, name='cms')[1]}")
    return client


@pytest.fixture
def headlines(user):
    job = services.job_create(user=user, kind="headline", inputs={"text": STORY})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.bulk_create(JobOutput(job=job, index=i, text=t) for i, t in enumerate(CANDIDATES))
    return job


@pytest.fixture
def chief(reviewer):
    return client_for(reviewer)


def url(job, tail=""):
    return f"/api/v1/jobs/{job.pk}/{tail}"


def error(response, status):
    assert response.status_code == status, response.content
    return response.json()["error"]


def test_the_day_choose_edit_rate_submit_approve_and_the_feed_gives_the_chosen_final_text(
    api, chief, headlines, user, reviewer
):
    body = api.get(url(headlines)).json()
    assert (body["review_state"], body["chosen"], body["final_texts"]) == ("draft", [], [])

    refused = error(api.post(url(headlines, "review/"), {"action": "submit"}, format="json"), 400)
    assert refused["param"] == "chosen" and "none is chosen" in refused["message"]

    body = api.post(url(headlines, "outputs/2/choose/")).json()
    assert body["chosen"] == [2] and [o["chosen"] for o in body["outputs"]] == [False, False, True, False, False]
    body = api.patch(url(headlines, "outputs/2/"), {"final_text": EDITED, "rating": 1}, format="json").json()
    assert body["final_texts"] == [EDITED]
    assert body["outputs"][2]["text"] == CANDIDATES[2] and body["outputs"][2]["final_text"] == EDITED
    assert body["outputs"][2]["edited_at"] is not None
    assert Feedback.objects.get().rating == 1

    body = api.post(url(headlines, "review/"), {"action": "submit", "note": "The third one, tightened."}).json()
    assert body["review_state"] == "in_review"
    assert error(api.post(url(headlines, "review/"), {"action": "approve"}), 403)  # an editor approves nothing

    # The reviewer sees it (their desk's job in review), approves it with the editor's choice and text.
    assert chief.get(url(headlines)).json()["final_texts"] == [EDITED]
    body = chief.post(url(headlines, "review/"), {"action": "approve"}, format="json").json()
    assert (body["review_state"], body["chosen"], body["final_texts"]) == ("approved", [2], [EDITED])
    assert body["approved_at"] is not None

    for cms in (api, chief):
        feed = cms.get("/api/v1/approved/").json()
        keys = ("id", "kind", "template", "desk", "approved_at", "chosen", "final_texts", "html_url")
        assert [{k: job[k] for k in keys} for job in feed["results"]] == [
            {
                "id": str(headlines.pk),
                "kind": "headline",
                "template": "headline",
                "desk": headlines.desk.slug,
                "approved_at": body["approved_at"],
                "chosen": [2],
                "final_texts": [EDITED],
                "html_url": f"http://testserver/jobs/{headlines.pk}/",
            }
        ]
    # Polling again from the last approval: nothing new.
    assert chief.get("/api/v1/approved/", {"since": body["approved_at"]}).json()["results"] == []
    assert len(chief.get("/api/v1/approved/", {"desk": headlines.desk.slug}).json()["results"]) == 1
    assert len(api.get("/api/v1/jobs/", {"review_state": "approved"}).json()["results"]) == 1
    assert api.get("/api/v1/jobs/", {"review_state": "draft"}).json()["results"] == []


def test_others_see_nothing_and_roles_are_the_studios(api, chief, headlines, other_user, reviewer):
    stranger = client_for(other_user)
    assert error(stranger.get(url(headlines)), 404)
    assert error(stranger.post(url(headlines, "outputs/0/choose/")), 404)
    assert error(chief.get(url(headlines)), 404)  # a draft is the owner's alone, even to a reviewer
    assert error(chief.post(url(headlines, "outputs/0/choose/")), 404)
    api.post(url(headlines, "outputs/0/choose/"))
    api.post(url(headlines, "review/"), {"action": "submit"})
    assert stranger.get("/api/v1/approved/").json()["results"] == []

    # In review: the reviewer may change the choice and fix a text (each logged, the owner told); the editor neither.
    fixed = chief.patch(url(headlines, "outputs/2/"), {"final_text": "Fixed typo"}, format="json").json()
    assert fixed["outputs"][2]["final_text"] == "Fixed typo" and fixed["review_state"] == "in_review"
    assert error(api.patch(url(headlines, "outputs/2/"), {"final_text": "Late"}, format="json"), 400)["param"] == (
        "final_text"
    )
    assert error(api.post(url(headlines, "outputs/2/choose/")), 400)["param"] == "chosen"
    assert chief.delete(url(headlines, "outputs/0/choose/")).json()["chosen"] == []
    assert chief.post(url(headlines, "outputs/2/choose/")).json()["chosen"] == [2]
    assert ReviewEvent.objects.filter(from_state="in_review", to_state="in_review").count() == 3
    # Ratings are the reviewer's to give too.
    assert (
        chief.patch(url(headlines, "outputs/2/"), {"rating": -1, "comment": "Flat"}, format="json").status_code == 200
    )
    assert Feedback.objects.get().user == reviewer

    # Sent back with a note: a draft again, the owner's; out of the reviewer's sight.
    body = chief.post(url(headlines, "review/"), {"action": "send_back", "note": "Name the cost."}).json()
    assert body["review_state"] == "draft" and body["chosen"] == [2]
    assert ReviewEvent.objects.order_by("-created_at").first().note == "Name the cost."
    assert error(chief.get(url(headlines)), 404)


@pytest.mark.parametrize(
    ("tail", "body", "param"),
    [
        ("outputs/0/", {}, "final_text"),
        ("outputs/0/", {"final_text": "   "}, "final_text"),
        ("outputs/0/", {"rating": 5}, "rating"),
        ("outputs/0/", {"comment": "no rating"}, "rating"),
        ("outputs/0/", {"final_text": "ok", "colour": "red"}, "colour"),
        ("review/", {"action": "publish"}, "action"),
        ("review/", {}, "action"),
        ("review/", {"action": "approve"}, "action"),  # a draft cannot be approved
        ("review/", {"action": "submit", "note": "x" * 2001}, "note"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(api, headlines, tail, body, param):
    method = api.patch if tail.startswith("outputs") else api.post
    assert error(method(url(headlines, tail), body, format="json"), 400)["param"] == param
    assert not JobOutput.objects.filter(job=headlines).exclude(final_text="").exists()
    assert Job.objects.get(pk=headlines.pk).review_state == "draft"


def test_unknown_candidates_and_bad_feed_queries(api, headlines, other_user):
    one = api.get(url(headlines, "outputs/2/")).json()
    assert (one["index"], one["text"], one["final_text"], one["chosen"]) == (2, CANDIDATES[2], CANDIDATES[2], False)
    assert error(api.post(url(headlines, "outputs/9/choose/")), 404)
    assert error(api.patch(url(headlines, "outputs/70000/"), {"rating": 1}, format="json"), 404)
    assert error(api.get("/api/v1/approved/", {"since": "yesterday"}), 400)["param"] == "since"
    join(other_user, desk("sport"), DeskRole.ADMIN)  # a desk, but not one of the key holder's
    assert error(api.get("/api/v1/approved/", {"desk": "sport"}), 400)["param"] == "desk"
