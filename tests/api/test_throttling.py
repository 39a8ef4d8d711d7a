"""Limits before a job is queued: requests per minute per key, tokens per day per user; 429 with Retry-After."""

import pytest

from generation.models import Job, JobStatus, UserQuota

pytestmark = pytest.mark.django_db

BODY = {"kind": "headline", "inputs": {"text": "The council voted for a bridge."}}


def test_requests_per_minute_per_key(api, user, fresh_minute):
    key = user.api_keys.get()
    key.requests_per_minute = 2
    key.save()
    codes = [api.get("/api/v1/jobs/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = api.post("/api/v1/jobs/", BODY, format="json")
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 60
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and "2 requests a minute" in error["message"]
    assert Job.objects.count() == 0


def test_tokens_per_day_per_user(api, user):
    quota = UserQuota.objects.create(user=user, tokens_per_day=10**6)
    first = api.post("/api/v1/jobs/", BODY, format="json")
    assert first.status_code == 202
    reserved = Job.objects.get().reserved_tokens  # its prompt, and 32 tokens for each candidate of every round
    quota.tokens_per_day = reserved + reserved // 2
    quota.save()
    second = api.post("/api/v1/jobs/", BODY, format="json")
    assert second.status_code == 429 and int(second["Retry-After"]) > 0
    assert second.json()["error"]["code"] == "quota_exceeded" and "00:00 UTC" in second.json()["error"]["message"]
    assert Job.objects.count() == 1
    # Once the first finishes, only what it used counts.
    Job.objects.update(status=JobStatus.SUCCEEDED, prompt_tokens=20, completion_tokens=10)
    assert api.post("/api/v1/jobs/", BODY, format="json").status_code == 202


def test_the_studio_shows_the_quota_as_a_form_error(client, user):
    UserQuota.objects.create(user=user, tokens_per_day=10)
    client.force_login(user)
    response = client.post("/jobs/new/headline/", {"in_text": "A story."})
    assert response.status_code == 200 and "Daily token quota reached" in response.content.decode()
    assert Job.objects.count() == 0


def test_schema_and_docs_are_served_without_a_cdn(client):
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/v1/jobs/", "/api/v1/jobs/{job_id}/cancel/", "/api/v1/usage/"} <= set(paths)
    docs = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in docs and "cdn" not in docs.lower()


def test_a_key_over_its_limit_gets_429_on_the_event_stream_too(api, user, client, settings, fresh_minute):
    """Opening an event stream is a request like any other: it counts against the key's and the user's minute,
    and over either the stream is refused with the same 429 (a stream's cap limits how many are open, not how
    often they are opened)."""
    from generation import services

    job = services.job_create(user=user, kind="headline", inputs={"text": "The council voted for a bridge."})
    key = user.api_keys.get()
    key.requests_per_minute = 2
    key.save()
    assert [api.get("/api/v1/jobs/").status_code for _ in range(2)] == [200, 200]
    refused = api.get(f"/api/v1/jobs/{job.pk}/events/")
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 60
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and "this key may send 2 requests a minute" in error["message"]

    # A browser session counts against its user's minute, as on the rest of the API.
    settings.AIGC = {**settings.AIGC, "USER_REQUESTS_PER_MINUTE": 1}
    key.delete()  # a raised key would lift the user's limit
    client.force_login(user)
    refused = client.get(f"/api/v1/jobs/{job.pk}/events/")
    assert (
        refused.status_code == 429 and "your account may send 1 requests a minute" in refused.json()["error"]["message"]
    )
