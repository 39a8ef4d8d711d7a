"""Outgoing webhooks against a real HTTP receiver on 127.0.0.1, the real database and the real Redis broker."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
from django.utils import timezone

from generation import services, tasks
from generation.api.serializers import JobSerializer
from generation.models import Job, JobOutput, JobStatus, WebhookDelivery
from generation.services.webhooks import WEBHOOK_QUEUE

pytestmark = pytest.mark.django_db

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."
HEADLINES = ["Council backs Elm River bridge", "City to build new bridge over the Elm — €40m"]


class Receiver:
    """An HTTP server that records each request and answers with the next of `answers` (then 200)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: list[int | str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                answer = receiver.answers.pop(0) if receiver.answers else 200
                if answer == "slow":
                    time.sleep(2)
                    answer = 200
                self.send_response(answer)
                if answer == 302:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                payload = b"ok" if answer < 300 else b"receiver says no"
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/aigc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"  # nothing listens there: connection refused


@pytest.fixture
def webhook_settings(settings):
    settings.AIGC = {**settings.AIGC, "WEBHOOK_ATTEMPTS": 3, "WEBHOOK_BACKOFF_S": 2.0, "WEBHOOK_TIMEOUT_S": 5.0}
    return settings


def make_job(user, callback_url="", status=JobStatus.SUCCEEDED, outputs=HEADLINES, with_key=True, capture=None) -> Job:
    """A job as the API creates it (never sent to a generation worker), then moved to `status` directly."""
    with capture(execute=False):
        job = services.job_create(user=user, kind="headline", inputs={"text": STORY})
    fields = {"callback_url": callback_url, "api_key": user.api_keys.get() if with_key else None, "status": status}
    if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        fields["finished_at"] = timezone.now()
    Job.objects.filter(pk=job.pk).update(**fields)
    if status == JobStatus.SUCCEEDED:
        JobOutput.objects.bulk_create(JobOutput(job=job, index=i, text=t) for i, t in enumerate(outputs))
    job.refresh_from_db()
    return job


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


@pytest.fixture
def job_factory(user, api_key, on_commit):
    return lambda **kw: make_job(user, capture=on_commit, **kw)


def test_a_finished_job_is_delivered_signed_with_its_keys_secret(job_factory, receiver, webhook_settings, user):
    job = job_factory(callback_url=receiver.url)
    assert services.webhook_deliver(job.pk, 1) is None
    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    assert request["path"] == "/hooks/aigc"
    assert headers["Content-Type"] == "application/json" and headers["User-Agent"] == "aigc-studio-webhooks"
    assert headers["X-AIGC-Event"] == "job.finished" and headers["X-AIGC-Delivery"] == f"{job.pk}-1"
    # What a receiver does: recompute the HMAC of "<timestamp>.<body>" with the secret from the API keys page.
    secret = user.api_keys.get().webhook_secret
    timestamp = headers["X-AIGC-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-AIGC-Signature"], f"sha256={expected}")
    assert abs(int(timestamp) - time.time()) < 60
    data = json.loads(body)
    assert data["id"] == str(job.pk) and data["status"] == "succeeded"
    assert [o["text"] for o in data["outputs"]] == HEADLINES  # non-ASCII sent as UTF-8, not escaped
    assert "—".encode() in body and set(data) == set(JobSerializer.Meta.fields)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.job_id, delivery.url, delivery.attempt, delivery.status_code, delivery.ok) == (
        job.pk, receiver.url, 1, 200, True,
    )  # fmt: skip
    assert delivery.error == "" and delivery.duration_ms is not None


def test_a_signature_made_with_another_secret_does_not_verify(job_factory, receiver):
    job = job_factory(callback_url=receiver.url)
    services.webhook_deliver(job.pk, 1)
    headers, body = receiver.requests[0]["headers"], receiver.requests[0]["body"]
    forged = services.webhooks.sign("0" * 64, headers["X-AIGC-Timestamp"], body)
    assert headers["X-AIGC-Signature"] != f"sha256={forged}"
    replayed = services.webhooks.sign(job.api_key.webhook_secret, int(headers["X-AIGC-Timestamp"]) + 600, body)
    assert headers["X-AIGC-Signature"] != f"sha256={replayed}"  # the timestamp is part of what is signed


def test_a_receiver_error_is_retried_after_the_backoff_then_delivered(job_factory, receiver, webhook_settings):
    job = job_factory(callback_url=receiver.url, status=JobStatus.FAILED, outputs=[])
    receiver.answers = [500, 200]
    assert services.webhook_deliver(job.pk, 1) == 2.0  # WEBHOOK_BACKOFF_S * 2**0
    assert services.webhook_deliver(job.pk, 2) is None
    first, second = WebhookDelivery.objects.order_by("attempt")
    assert (first.attempt, first.status_code, first.ok) == (1, 500, False)
    assert first.error.startswith("HTTP 500") and "receiver says no" in first.error
    assert (second.attempt, second.status_code, second.ok, second.error) == (2, 200, True, "")
    assert [r["headers"]["X-AIGC-Delivery"] for r in receiver.requests] == [f"{job.pk}-1", f"{job.pk}-2"]
    assert json.loads(receiver.requests[1]["body"])["status"] == "failed"


def test_redirects_are_not_followed(job_factory, receiver, webhook_settings):
    job = job_factory(callback_url=receiver.url)
    receiver.answers = [302]
    assert services.webhook_deliver(job.pk, 1) == 2.0
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status_code, delivery.ok) == (302, False) and "not followed" in delivery.error
    assert len(receiver.requests) == 1


def test_an_unreachable_receiver_backs_off_doubling_then_gives_up(job_factory, closed_port_url, webhook_settings):
    job = job_factory(callback_url=closed_port_url, status=JobStatus.CANCELLED, outputs=[])
    delays = [services.webhook_deliver(job.pk, attempt) for attempt in (1, 2, 3)]
    assert delays == [2.0, 4.0, None]  # WEBHOOK_ATTEMPTS is 3 here: the third failure is the last
    rows = list(WebhookDelivery.objects.order_by("attempt"))
    assert [(d.attempt, d.ok, d.status_code) for d in rows] == [(1, False, None), (2, False, None), (3, False, None)]
    assert all("refused" in d.error.lower() for d in rows), rows[0].error


def test_a_slow_receiver_times_out_without_raising(job_factory, receiver, webhook_settings):
    webhook_settings.AIGC = {**webhook_settings.AIGC, "WEBHOOK_TIMEOUT_S": 0.3}
    job = job_factory(callback_url=receiver.url)
    receiver.answers = ["slow"]
    assert services.webhook_deliver(job.pk, 1) == 2.0
    delivery = WebhookDelivery.objects.get()
    assert not delivery.ok and "timed out" in delivery.error.lower() and delivery.duration_ms < 2000


def test_nothing_is_sent_without_a_callback_url_a_key_or_an_http_url(job_factory, receiver):
    assert services.webhook_deliver(job_factory().pk, 1) is None
    assert services.webhook_deliver(job_factory(callback_url=receiver.url, with_key=False).pk, 1) is None
    assert services.webhook_deliver(job_factory(callback_url=receiver.url, status=JobStatus.RUNNING).pk, 1) is None
    assert receiver.requests == [] and not WebhookDelivery.objects.exists()
    assert services.webhook_deliver(job_factory(callback_url="ftp://127.0.0.1/x").pk, 1) is None
    assert "http" in WebhookDelivery.objects.get().error


# Scheduling: the message must reach the broker's "webhooks" queue (the generation workers never see it).


@pytest.fixture
def broker(broker_url):
    """The broker's Redis; messages a test sends to the webhooks queue are removed afterwards."""
    client = redis.Redis.from_url(broker_url)
    before = set(client.lrange(WEBHOOK_QUEUE, 0, -1))
    yield client
    for raw in set(client.lrange(WEBHOOK_QUEUE, 0, -1)) - before:
        client.lrem(WEBHOOK_QUEUE, 1, raw)


def sent(client, job_id) -> list[dict]:
    """The deliver_webhook messages for this job waiting in the webhooks queue: their args and ETA."""
    found = []
    for raw in client.lrange(WEBHOOK_QUEUE, 0, -1):
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        if message["headers"]["task"] == "generation.deliver_webhook" and args[0] == str(job_id):
            found.append({"args": args, "eta": message["headers"].get("eta")})
    return found


def test_cancelling_a_job_schedules_its_webhook_on_commit(job_factory, receiver, broker, user, on_commit):
    job = job_factory(callback_url=receiver.url, status=JobStatus.QUEUED, outputs=[])
    with on_commit(execute=False) as callbacks:
        assert services.job_cancel(job, user=user)
    assert sent(broker, job.pk) == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert sent(broker, job.pk) == [{"args": [str(job.pk)], "eta": None}]
    assert not services.job_cancel(job, user=user)  # already ended: no second callback
    assert len(sent(broker, job.pk)) == 1


def test_a_job_that_ends_in_a_worker_schedules_its_webhook(job_factory, receiver, broker, settings, on_commit):
    job = job_factory(callback_url=receiver.url, status=JobStatus.RUNNING, outputs=[])
    Job.objects.filter(pk=job.pk).update(attempts=settings.AIGC["MAX_ATTEMPTS"])  # redelivered once too often
    with on_commit(execute=True):
        services.job_run(job.pk)
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED
    assert sent(broker, job.pk) == [{"args": [str(job.pk)], "eta": None}]


def test_jobs_without_a_callback_or_a_key_send_nothing(job_factory, receiver, broker, user, on_commit):
    no_url = job_factory(status=JobStatus.QUEUED)
    no_key = job_factory(callback_url=receiver.url, status=JobStatus.QUEUED, with_key=False)
    jobs = [no_url, no_key]
    with on_commit(execute=True):
        for job in jobs:
            services.job_cancel(job, user=user)
    assert all(sent(broker, job.pk) == [] for job in jobs)


def test_a_failed_attempt_is_sent_again_later_on_the_webhooks_queue(job_factory, receiver, broker, webhook_settings):
    job = job_factory(callback_url=receiver.url)
    receiver.answers = [503]
    tasks.deliver_webhook(str(job.pk))  # the task body, run here as the webhooks worker would
    [message] = sent(broker, job.pk)
    assert message["args"] == [str(job.pk), 2] and message["eta"] is not None  # countdown: the backoff
    tasks.deliver_webhook(str(job.pk), 2)  # delivered: not sent again
    assert [m for m in sent(broker, job.pk) if m["args"][1:] != [2]] == []
    assert list(WebhookDelivery.objects.order_by("attempt").values_list("attempt", "ok")) == [(1, False), (2, True)]


# The webhooks worker never loads the model.


def test_only_workers_that_take_generation_jobs_load_the_model(settings):
    settings.CELERY_TASK_DEFAULT_QUEUE = "generation"
    settings.AIGC = {**settings.AIGC, "MODELS": {"default": {}, "big": {"device": "cuda"}}}
    assert tasks.hosted_aliases(["generation"], environ={}) == ["default"]
    assert tasks.hosted_aliases(["generation", "webhooks"], environ={}) == ["default"]
    assert tasks.hosted_aliases(["generation.big", "generation"], environ={}) == ["default", "big"]
    assert tasks.hosted_aliases(["webhooks"], environ={}) == []
    assert tasks.hosted_aliases(["generation"], environ={"AIGC_LOAD_MODEL": "0"}) == []
    settings.CELERY_TASK_DEFAULT_QUEUE = "itest-1"  # AIGC_QUEUE renames every model's queue
    assert tasks.hosted_aliases(["itest-1.big"], environ={"AIGC_LOAD_MODEL": "1"}) == ["big"]


@pytest.mark.parametrize("queues, loads", [(None, True), ("webhooks", False), ("generation,webhooks", True)])
def test_worker_init_sees_the_queues_given_with_dash_q(queues, loads, monkeypatch):
    """A real WorkController, as `celery worker -Q ...` builds it (not started): worker_init runs our handler."""
    from celery import Celery

    import generation.worker

    loaded = []
    monkeypatch.delenv("AIGC_LOAD_MODEL", raising=False)
    monkeypatch.setattr(generation.worker, "get_engine", lambda alias: loaded.append("engine") or "engine")
    monkeypatch.setattr(tasks, "publish_model_info", lambda alias, engine: None)
    monkeypatch.setattr(tasks.presence, "start", lambda hostname, queues: None)
    app = Celery("probe", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.task_default_queue = "generation"
    app.WorkController(queues=queues, pool_cls="threads", concurrency=1, without_mingle=True, without_gossip=True)
    assert loaded == (["engine"] if loads else [])


def test_the_api_keys_page_shows_the_owner_their_webhook_secrets(client, user, api_key, other_user):
    secret = user.api_keys.get().webhook_secret
    client.force_login(user)
    page = client.get("/keys/").content.decode()
    assert "Webhook secret" in page and "<details" in page and secret in page
    client.force_login(other_user)
    assert secret not in client.get("/keys/").content.decode()


def test_the_admin_lists_deliveries_read_only_and_under_each_job(admin_client, job_factory, closed_port_url):
    job = job_factory(callback_url=closed_port_url)
    services.webhook_deliver(job.pk, 1)
    delivery = WebhookDelivery.objects.get()
    listing = admin_client.get("/admin/generation/webhookdelivery/?ok__exact=0").content.decode()
    assert closed_port_url in listing and "Add webhook delivery" not in listing
    assert admin_client.get(f"/admin/generation/webhookdelivery/{delivery.pk}/change/").status_code == 200
    assert admin_client.post("/admin/generation/webhookdelivery/add/", {}).status_code == 403
    page = admin_client.get(f"/admin/generation/job/{job.pk}/change/").content.decode()
    assert "Webhook deliveries" in page and "ConnectionRefusedError" in page
