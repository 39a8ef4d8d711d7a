"""The job event stream (SSE) over a real Redis Stream: replay, resume, fallback, ownership."""

import json
import threading
import time
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import Client
from django.utils import timezone

from generation import services
from generation.api import streams
from generation.infra import events, redis_client
from generation.models import Job, JobStatus

pytestmark = pytest.mark.django_db

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."


@pytest.fixture(autouse=True)
def _own_stream_keys(monkeypatch):
    """Each test's streams get their own keys in the shared Redis."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    monkeypatch.setattr(events, "stream_key", lambda job_id: f"{prefix}job:{job_id}")
    yield
    client = redis_client.client()
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


async def collect(chunks):
    return [chunk async for chunk in chunks]


def read(client, job, **headers):
    response = client.get(f"/api/v1/jobs/{job.pk}/events/", **headers)
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    body = b"".join(async_to_sync(collect)(response.streaming_content)).decode()
    out = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            out.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return out


def joined(entries, index=0):
    text = ""
    for _, event, data in entries:
        if event == "delta" and data["index"] == index:
            text += data["text"]
        elif event == "replace" and data["index"] == index:
            text = data["text"]
    return text


@pytest.fixture
def finished_job(user, tiny_engine, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(
            user=user, kind="headline", inputs={"text": STORY}, params={"n": 3, "seed": 9, "max_new_tokens": 12}
        )
    services.job_run(job.pk, engine=tiny_engine)
    job.refresh_from_db()
    return job


def test_the_stream_replays_every_delta_and_ends_with_the_status(api_key, finished_job):
    entries = read(Client(), finished_job, HTTP_AUTHORIZATION=f"Bearer {api_key}")
    outputs = list(finished_job.outputs.values_list("text", flat=True))
    assert entries[-1][1:] == ("done", {"status": "succeeded"})
    assert [joined(entries, i) for i in range(3)] == outputs
    assert all(entry_id for entry_id, _, _ in entries)


def test_resuming_from_an_id_gives_the_rest_without_gap_or_repeat(api_key, finished_job):
    client, auth = Client(), {"HTTP_AUTHORIZATION": f"Bearer {api_key}"}
    everything = read(client, finished_job, **auth)
    middle = len(everything) // 2
    rest = read(client, finished_job, HTTP_LAST_EVENT_ID=everything[middle - 1][0], **auth)
    assert everything[:middle] + rest == everything


def test_a_lost_stream_falls_back_to_the_database(api_key, finished_job):
    redis_client.client().delete(events.stream_key(finished_job.pk))
    entries = read(Client(), finished_job, HTTP_AUTHORIZATION=f"Bearer {api_key}")
    outputs = list(finished_job.outputs.values_list("text", flat=True))
    assert [e for _, e, _ in entries] == ["delta"] * 3 + ["done"]
    assert [joined(entries, i) for i in range(3)] == outputs
    resumed = read(Client(), finished_job, HTTP_LAST_EVENT_ID="1700000000000-0", HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert [e for _, e, _ in resumed] == ["replace"] * 3 + ["done"]  # a reader mid-stream gets whole texts


def test_a_failed_job_ends_with_an_error_event(api_key, user, tiny_engine, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(
            user=user, kind="summary", inputs={"text": "bridge " * 300}, params={"max_new_tokens": 8}
        )
    services.job_run(job.pk, engine=tiny_engine)  # beyond the tiny model's context: fails in the worker
    entries = read(Client(), job, HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert entries[-1][1] == "error" and "context of 256 tokens" in entries[-1][2]["error"]


def test_the_browser_session_can_read_its_own_stream(client, user, finished_job):
    client.force_login(user)
    assert read(client, finished_job)[-1][1] == "done"


def test_no_credentials_is_401_and_another_users_stream_is_404(finished_job, other_user):
    response = Client().get(f"/api/v1/jobs/{finished_job.pk}/events/")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    _, key = services.api_key_create(other_user)
    assert (
        Client().get(f"/api/v1/jobs/{finished_job.pk}/events/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 404
    )
    assert Job.objects.count() == 1
    assert settings.REDIS_URL


@pytest.mark.parametrize(
    "good", ["0-0", "1763906437081-0", "18446744073709551615-18446744073709551615", "db-0", "db-12", "db-end"]
)
def test_every_id_the_stream_sends_is_accepted_back(good):
    assert streams.parse_last_event_id(good) == good


@pytest.mark.parametrize(
    "bad", ["x", "1-", "-1", "1-2-3", "1763906437081", "18446744073709551616-0", "db-", "db-end2", "0-0\n", "١-٠"]
)
def test_a_malformed_resume_id_is_a_400_naming_last_event_id(api_key, finished_job, bad):
    response = Client().get(
        f"/api/v1/jobs/{finished_job.pk}/events/", HTTP_AUTHORIZATION=f"Bearer {api_key}", HTTP_LAST_EVENT_ID=bad
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "Last-Event-ID" and response.json()["error"]["code"] == "invalid"


def test_a_finished_job_whose_stream_lacks_its_end_is_ended_from_the_database(api_key, finished_job):
    """As when the worker died between its commit and its last publish: the replay ends without waiting."""
    key = events.stream_key(finished_job.pk)
    client = redis_client.client()
    end_id = client.xrevrange(key, count=1)[0][0]
    client.xdel(key, end_id)
    entries = read(Client(), finished_job, HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert entries[-1] == ("db-end", "done", {"status": "succeeded"})
    assert [joined(entries, i) for i in range(3)] == list(finished_job.outputs.values_list("text", flat=True))


def test_a_job_cancelled_while_running_is_followed_until_its_worker_saved_what_it_wrote(api_key, user, settings):
    """The cancel makes the job final at once; the worker then saves the text written so far and ends the stream.
    A reader (the job page after the cancel) waits for that end rather than end at once with nothing."""
    settings.AIGC = {**settings.AIGC, "STREAM_KEEPALIVE_S": 0.2}
    job = services.job_create(user=user, kind="headline", inputs={"text": STORY}, params={"n": 1})
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED, started_at=now, finished_at=now, attempts=1)
    events.publish_delta(job.pk, 0, "Council backs", tokens=2)
    assert streams._final_job(job.pk) is None  # not final to readers while its worker saves

    def worker_settles():
        time.sleep(1)
        events.publish_delta(job.pk, 0, " the bridge", tokens=4)
        events.publish_end(job.pk, JobStatus.CANCELLED)

    threading.Thread(target=worker_settles).start()
    entries = read(Client(), job, HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert joined(entries) == "Council backs the bridge"
    assert entries[-1][1:] == ("done", {"status": "cancelled"}) and not entries[-1][0].startswith("db-")
    Job.objects.filter(pk=job.pk).update(prompt_tokens=20, completion_tokens=4)  # what the worker settles
    assert streams._final_job(job.pk) == (JobStatus.CANCELLED, "", [])
    # A worker that never settles (it died) is waited for only so long: then the database ends the stream.
    Job.objects.filter(pk=job.pk).update(prompt_tokens=None, completion_tokens=None)
    Job.objects.filter(pk=job.pk).update(finished_at=now - timedelta(seconds=streams.SETTLE_S + 1))
    events.reset(job.pk)
    assert read(Client(), job, HTTP_AUTHORIZATION=f"Bearer {api_key}")[-1][:2] == ("db-end", "done")
