"""The jobs API contract that editorial tools rely on (DESIGN.md)."""

import pytest
from rest_framework.test import APIClient

from generation import services
from generation.models import Job, JobOutput, JobStatus

pytestmark = pytest.mark.django_db

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."


def post(client, body, **headers):
    return client.post("/api/v1/jobs/", body, format="json", **headers)


def test_no_key_is_401_with_a_bearer_challenge():
    response = post(APIClient(), {"kind": "headline", "inputs": {"text": STORY}})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["type"] == "authentication_error"
    assert Job.objects.count() == 0


def test_bad_key_is_401(api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}x")
    assert client.get("/api/v1/jobs/").status_code == 401


def test_a_browser_session_needs_the_csrf_token_and_a_key_does_not(user, api_key):
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(user)
    body = {"kind": "headline", "inputs": {"text": STORY}}
    refused = post(session, body)
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    assert Job.objects.count() == 0
    session.get("/jobs/new/")  # a page with a form sets the CSRF cookie
    assert post(session, body, HTTP_X_CSRFTOKEN=session.cookies["csrftoken"].value).status_code == 202
    keyed = APIClient(enforce_csrf_checks=True)
    keyed.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert post(keyed, body).status_code == 202 and Job.objects.count() == 2


def test_create_is_202_with_the_job(api, user):
    response = post(api, {"kind": "headline", "inputs": {"text": STORY}, "params": {"seed": 4}})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["kind"] == "headline" and body["template"] == "headline"
    assert body["params"] == {"max_new_tokens": 32, "temperature": 0.8, "top_p": 0.95, "n": 5, "seed": 4}
    assert body["outputs"] == [] and body["usage"] == {"prompt_tokens": None, "completion_tokens": None}
    assert body["html_url"] == f"http://testserver/jobs/{body['id']}/"
    assert Job.objects.get().owner == user


def test_create_by_template_slug(api):
    response = post(api, {"template": "summary", "inputs": {"text": STORY, "words": "20"}})
    assert response.status_code == 202
    assert response.json()["kind"] == "summary"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"kind": "headline", "inputs": {}}, "inputs.text"),
        ({"kind": "headline", "inputs": {"text": STORY}, "params": {"temperature": 9}}, "params.temperature"),
        ({"kind": "headline", "inputs": {"text": STORY}, "params": {"n": "five"}}, "params.n"),
        ({"kind": "sonnet", "inputs": {"text": STORY}}, "kind"),
        ({"inputs": {"text": STORY}}, "kind"),
        ({"template": "missing", "inputs": {"text": STORY}}, "template"),
        ({"kind": "headline", "inputs": {"text": STORY}, "colour": "red"}, "colour"),
        ({"kind": "headline", "inputs": "just text"}, "inputs"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_writes_nothing(api, body, field):
    response = post(api, body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["param"] == field and field in error["fields"]
    assert field in error["message"]
    assert Job.objects.count() == 0


def test_malformed_json_is_400(api):
    response = api.post("/api/v1/jobs/", b'{"kind": ', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_get_returns_the_full_contract(api, user):
    job = services.job_create(user=user, kind="headline", inputs={"text": STORY})
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.SUCCEEDED, prompt_tokens=90, completion_tokens=40, model_name="m"
    )
    JobOutput.objects.bulk_create([JobOutput(job=job, index=i, text=f"Headline {i}") for i in range(5)])
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    for key in (
        "id",
        "status",
        "kind",
        "template",
        "template_version",
        "inputs",
        "params",
        "outputs",
        "usage",
        "error",
        "created_at",
        "started_at",
        "finished_at",
        "html_url",
    ):
        assert key in body
    assert body["status"] == "succeeded"
    assert body["outputs"] == [
        {
            "index": i,
            "text": f"Headline {i}",
            "final_text": f"Headline {i}",
            "edited_at": None,
            "chosen": False,
            "checks": [],
            "score": None,
        }
        for i in range(5)
    ]
    assert (body["review_state"], body["approved_at"], body["chosen"], body["final_texts"]) == ("draft", None, [], [])
    assert body["usage"] == {"prompt_tokens": 90, "completion_tokens": 40}


def test_another_users_job_is_404_and_not_listed(api, other_user):
    theirs = services.job_create(user=other_user, kind="headline", inputs={"text": STORY})
    assert api.get(f"/api/v1/jobs/{theirs.pk}/").status_code == 404
    assert api.get("/api/v1/jobs/").json()["results"] == []
    assert api.get("/api/v1/jobs/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_list_shows_my_jobs_newest_first(api, user):
    ids = [str(services.job_create(user=user, kind="code", inputs={"instruction": f"task {i}"}).pk) for i in range(3)]
    body = api.get("/api/v1/jobs/").json()
    assert [j["id"] for j in body["results"]] == ids[::-1] and body["next"] is None


def test_list_filters_and_cursor_pages(api, user):
    from datetime import timedelta

    from django.utils import timezone

    codes = [services.job_create(user=user, kind="code", inputs={"instruction": f"task {i}"}) for i in range(5)]
    headline = services.job_create(user=user, kind="headline", inputs={"text": STORY})
    Job.objects.filter(pk=codes[0].pk).update(status=JobStatus.SUCCEEDED, created_at=timezone.now() - timedelta(days=3))
    assert [j["id"] for j in api.get("/api/v1/jobs/?kind=headline").json()["results"]] == [str(headline.pk)]
    assert [j["id"] for j in api.get("/api/v1/jobs/?status=succeeded").json()["results"]] == [str(codes[0].pk)]
    assert len(api.get("/api/v1/jobs/?template=code").json()["results"]) == 5
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert len(api.get("/api/v1/jobs/", {"created_after": since}).json()["results"]) == 5
    seen, url = [], "/api/v1/jobs/?page_size=2"
    while url:
        page = api.get(url).json()
        seen += [j["id"] for j in page["results"]]
        url = page["next"]
    assert len(seen) == 6 == len(set(seen))
    assert api.get("/api/v1/jobs/?cursor=nonsense").json()["error"]["param"] == "cursor"
    bad = api.get("/api/v1/jobs/?status=lost&page_size=500")
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"status", "page_size"}


def test_idempotency_key_returns_the_same_job_and_refuses_another_body(api):
    body = {"kind": "headline", "inputs": {"text": STORY}}
    first = post(api, body, HTTP_IDEMPOTENCY_KEY="story-42")
    again = post(api, body, HTTP_IDEMPOTENCY_KEY="story-42")
    assert (first.status_code, again.status_code) == (202, 200) and first.json()["id"] == again.json()["id"]
    other = post(api, {"kind": "headline", "inputs": {"text": STORY + " Updated."}}, HTTP_IDEMPOTENCY_KEY="story-42")
    assert other.status_code == 409 and other.json()["error"]["param"] == "Idempotency-Key"
    assert Job.objects.count() == 1
    assert post(api, body, HTTP_IDEMPOTENCY_KEY="story-43").status_code == 202 and Job.objects.count() == 2


def test_cancel_a_queued_job_then_again_is_409(api, user):
    job = services.job_create(user=user, kind="headline", inputs={"text": STORY})
    response = api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"


def test_callback_url_is_kept_and_needs_an_api_key(api, client, user):
    response = post(
        api, {"kind": "headline", "inputs": {"text": STORY}, "callback_url": "https://cms.example.com/hook"}
    )
    assert response.status_code == 202 and response.json()["callback_url"] == "https://cms.example.com/hook"
    assert Job.objects.get().api_key == user.api_keys.get()
    client.force_login(user)
    session = client.post(
        "/api/v1/jobs/",
        {"kind": "headline", "inputs": {"text": STORY}, "callback_url": "https://x.example/h"},
        content_type="application/json",
    )
    assert session.status_code == 400 and session.json()["error"]["param"] == "callback_url"
    bad = post(api, {"kind": "headline", "inputs": {"text": STORY}, "callback_url": "not a url"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "callback_url"


def test_usage_by_day_and_template(api, user):
    job = services.job_create(user=user, kind="headline", inputs={"text": STORY})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, prompt_tokens=90, completion_tokens=60)
    body = api.get("/api/v1/usage/").json()
    assert body["days"][0]["template"] == "headline" and body["days"][0]["total_tokens"] == 150
    assert body["tokens_used_today"] == 150 and body["requests_per_minute"] == 120


def test_invalid_utf8_and_oversized_bodies_are_4xx_in_the_error_shape(api):
    bad = api.post(
        "/api/v1/jobs/", b'{"kind": "headline", "inputs": {"text": "\xff\xfe"}}', content_type="application/json"
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "parse_error"
    big = api.post(
        "/api/v1/jobs/",
        '{"kind": "headline", "inputs": {"text": "' + "a" * 3_000_000 + '"}}',
        content_type="application/json",
    )
    assert big.status_code == 413 and "larger than" in big.json()["error"]["message"]
    assert Job.objects.count() == 0
