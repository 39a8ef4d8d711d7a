"""Outgoing webhooks against real HTTP receivers on 127.0.0.1, the real database and the real Redis broker: the
outbox, signing, retries, and the egress checks (every attack is made for real against a listening socket)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import threading
import time
from datetime import timedelta

import pytest
import redis
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from generation import services, tasks
from generation.api.serializers import JobSerializer
from generation.api.webhooks import job_body
from generation.models import Job, JobOutput, JobStatus, ReviewState, WebhookDelivery, WebhookOutbox
from generation.services import dispatch, webhooks
from generation.services.webhooks import WEBHOOK_QUEUE
from tests.support.receivers import Receiver, Trickler

pytestmark = pytest.mark.django_db

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."
HEADLINES = ["Council backs Elm River bridge", "City to build new bridge over the Elm — €40m"]


def send(delivery_id, **kw) -> bool:
    """The kick, as the send_webhook task runs it: with the API's shape of the job as the body."""
    return services.webhook_send(delivery_id, render=job_body, **kw)


def sweep_all(**kw) -> int:
    """The sweep, as the sweep_webhooks task runs it."""
    return services.webhook_sweep(render=job_body, **kw)


@pytest.fixture
def webhook_settings(settings):
    """Local receivers: private targets and plain http allowed, as AIGC_WEBHOOK_ALLOW_PRIVATE/_HTTP do."""
    settings.AIGC = {
        **settings.AIGC,
        "WEBHOOK_ATTEMPTS": 3,
        "WEBHOOK_BACKOFF_S": 2.0,
        "WEBHOOK_TIMEOUT_S": 5.0,
        "WEBHOOK_DEADLINE_S": 10.0,
        "WEBHOOK_ALLOW_PRIVATE": True,
        "WEBHOOK_ALLOW_HTTP": True,
    }
    return settings


@pytest.fixture
def strict(webhook_settings):
    """Production's egress rules (http allowed, so that the address is what is refused, not the scheme)."""
    webhook_settings.AIGC = {**webhook_settings.AIGC, "WEBHOOK_ALLOW_PRIVATE": False}
    return webhook_settings


@pytest.fixture
def receiver(webhook_settings):
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def closed_port_url(webhook_settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"  # nothing listens there: connection refused


def make_job(
    user, callback_url="", status=JobStatus.SUCCEEDED, outputs=HEADLINES, with_key=True, key=None, capture=None
) -> Job:
    """A job as the API creates it (never sent to a generation worker), then moved to `status` directly."""
    with capture(execute=False):
        job = services.job_create(user=user, kind="headline", inputs={"text": STORY})
    key = key or (user.api_keys.first() if with_key else None)
    fields = {"callback_url": callback_url, "api_key": key, "status": status}
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


def owe(job) -> WebhookOutbox:
    """The outbox row of a job that has just ended (what _finish and job_cancel write in their transaction)."""
    row = services.webhook_enqueue(job.pk)
    assert row is not None
    return row


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def test_a_finished_job_is_delivered_signed_with_its_keys_secret(job_factory, receiver, user):
    job = job_factory(callback_url=receiver.url)
    row = owe(job)
    assert send(row.pk) is True
    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    assert request["path"] == "/hooks/aigc"
    assert headers["Content-Type"] == "application/json" and headers["User-Agent"] == "aigc-studio-webhooks"
    assert headers["X-AIGC-Event"] == "job.finished" and headers["X-AIGC-Delivery"] == str(row.pk)
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
        job.pk,
        receiver.url,
        1,
        200,
        True,
    )
    assert delivery.error == "" and delivery.duration_ms is not None
    row.refresh_from_db()
    assert (row.state, row.attempts, row.leased_until) == ("delivered", 1, None) and row.finished_at
    assert send(row.pk) is False and sweep_all() == 0  # delivered once
    assert len(receiver.requests) == 1


def test_a_signature_made_with_another_secret_does_not_verify(job_factory, receiver):
    job = job_factory(callback_url=receiver.url)
    send(owe(job).pk)
    headers, body = receiver.requests[0]["headers"], receiver.requests[0]["body"]
    forged = services.webhooks.sign("0" * 64, headers["X-AIGC-Timestamp"], body)
    assert headers["X-AIGC-Signature"] != f"sha256={forged}"
    replayed = services.webhooks.sign(job.api_key.webhook_secret, int(headers["X-AIGC-Timestamp"]) + 600, body)
    assert headers["X-AIGC-Signature"] != f"sha256={replayed}"  # the timestamp is part of what is signed


def test_a_receiver_error_is_retried_from_the_row_after_the_backoff_under_the_same_delivery_id(job_factory, receiver):
    job = job_factory(callback_url=receiver.url, status=JobStatus.FAILED, outputs=[])
    receiver.answers = [500, 200]
    row = owe(job)
    assert send(row.pk) is False
    row.refresh_from_db()
    waited = (row.next_attempt_at - WebhookDelivery.objects.get().created_at).total_seconds()
    assert row.state == "pending" and row.leased_until is None and 1.9 < waited < 2.5  # WEBHOOK_BACKOFF_S * 2**0
    assert sweep_all() == 0  # not due yet: the retry is the row's time, not a countdown message
    assert sweep_all(now=later(3)) == 1
    first, second = WebhookDelivery.objects.order_by("attempt")
    assert (first.attempt, first.status_code, first.ok) == (1, 500, False)
    assert first.error.startswith("HTTP 500") and "receiver says no" in first.error
    assert (second.attempt, second.status_code, second.ok, second.error) == (2, 200, True, "")
    # One delivery, one id: a receiver that saw the first (and answered too late) can drop the second.
    assert [r["headers"]["X-AIGC-Delivery"] for r in receiver.requests] == [str(row.pk)] * 2
    assert json.loads(receiver.requests[1]["body"])["status"] == "failed"


def test_redirects_are_not_followed(job_factory, receiver):
    job = job_factory(callback_url=receiver.url)
    receiver.answers = [302]
    assert send(owe(job).pk) is False
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status_code, delivery.ok) == (302, False) and "not followed" in delivery.error
    assert len(receiver.requests) == 1


def test_an_unreachable_receiver_backs_off_doubling_then_gives_up(job_factory, closed_port_url):
    job = job_factory(callback_url=closed_port_url, status=JobStatus.CANCELLED, outputs=[])
    row, waits = owe(job), []
    for attempt, at in ((1, None), (2, later(3)), (3, later(10))):
        send(row.pk, now=at)
        row.refresh_from_db()
        sent_at = WebhookDelivery.objects.get(attempt=attempt).created_at
        waits.append(round((row.next_attempt_at - sent_at).total_seconds()) if row.state == "pending" else None)
    assert waits == [2, 4, None] and row.state == "failed"  # WEBHOOK_ATTEMPTS is 3 here: the third is the last
    rows = list(WebhookDelivery.objects.order_by("attempt"))
    assert [(d.attempt, d.ok, d.status_code) for d in rows] == [(1, False, None), (2, False, None), (3, False, None)]
    assert all("refused" in d.error.lower() for d in rows), rows[0].error
    assert sweep_all(now=later(3600)) == 0  # given up: never sent again


def test_a_slow_receiver_times_out_without_raising(job_factory, receiver, webhook_settings):
    webhook_settings.AIGC = {**webhook_settings.AIGC, "WEBHOOK_TIMEOUT_S": 0.3}
    job = job_factory(callback_url=receiver.url)
    receiver.answers = ["slow"]
    assert send(owe(job).pk) is False
    delivery = WebhookDelivery.objects.get()
    assert not delivery.ok and "timed out" in delivery.error.lower() and delivery.duration_ms < 2000


def test_nothing_is_owed_without_a_callback_url_a_key_or_a_final_status(job_factory, receiver):
    assert services.webhook_enqueue(job_factory().pk) is None
    assert services.webhook_enqueue(job_factory(callback_url=receiver.url, with_key=False).pk) is None
    assert services.webhook_enqueue(job_factory(callback_url=receiver.url, status=JobStatus.RUNNING).pk) is None
    assert not WebhookOutbox.objects.exists() and sweep_all() == 0
    assert receiver.requests == [] and not WebhookDelivery.objects.exists()
    row = owe(job_factory(callback_url="ftp://127.0.0.1/x"))
    assert send(row.pk) is False
    assert "http" in WebhookDelivery.objects.get().error and WebhookOutbox.objects.get().state == "failed"


def test_an_approval_is_called_back_with_the_chosen_final_text(job_factory, receiver, user, reviewer):
    """The CMS hears of the approval (event job.approved) with the text approved: the chosen candidate as edited,
    not the first one. Nothing is owed before the approval."""
    job = job_factory(callback_url=receiver.url)
    chosen = job.outputs.get(index=1)
    services.output_choose(chosen, user=user)
    services.output_edit(chosen, user=user, text="Elm River bridge to cost €40m")
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    assert services.webhook_enqueue(job.pk, webhooks.APPROVED_EVENT) is None  # in review: not approved yet
    services.review_move(Job.objects.get(pk=job.pk), user=reviewer, to_state=ReviewState.APPROVED)
    row = WebhookOutbox.objects.get(job=job, event="job.approved")
    assert send(row.pk) is True
    [request] = receiver.requests
    assert request["headers"]["X-AIGC-Event"] == "job.approved"
    data = json.loads(request["body"])
    assert (data["review_state"], data["chosen"], data["final_texts"]) == (
        "approved",
        [1],
        ["Elm River bridge to cost €40m"],
    )
    assert data["outputs"][0]["final_text"] == HEADLINES[0] and data["outputs"][1]["text"] == HEADLINES[1]


def test_a_deleted_key_gives_up_with_the_reason(job_factory, receiver, user):
    row = owe(job_factory(callback_url=receiver.url))
    user.api_keys.all().delete()
    assert send(row.pk) is False
    assert "deleted" in WebhookDelivery.objects.get().error and receiver.connections == 0


# The outbox: written in the transaction that ends the job; the kick on commit is only a shortcut.


@pytest.fixture
def broker(broker_url):
    """The broker's Redis; messages a test sends to the webhooks queue are removed afterwards."""
    client = redis.Redis.from_url(broker_url)
    before = set(client.lrange(WEBHOOK_QUEUE, 0, -1))
    yield client
    for raw in set(client.lrange(WEBHOOK_QUEUE, 0, -1)) - before:
        client.lrem(WEBHOOK_QUEUE, 1, raw)


def sent(client, task="generation.send_webhook") -> list[dict]:
    """The messages of `task` waiting in the webhooks queue: their args and ETA."""
    found = []
    for raw in client.lrange(WEBHOOK_QUEUE, 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == task:
            args = json.loads(base64.b64decode(message["body"]))[0]
            found.append({"args": args, "eta": message["headers"].get("eta")})
    return found


def test_cancelling_writes_the_delivery_with_the_cancel_and_kicks_the_sender_on_commit(
    job_factory, receiver, broker, user, on_commit
):
    job = job_factory(callback_url=receiver.url, status=JobStatus.QUEUED, outputs=[])
    before = sent(broker)
    with on_commit(execute=False) as callbacks:
        assert services.job_cancel(job, user=user)
    row = WebhookOutbox.objects.get(job=job)  # written by the cancel itself, before any commit hook ran
    assert (row.state, row.attempts, row.api_key_id) == ("pending", 0, job.api_key_id)
    assert sent(broker) == before  # nothing sent before the commit
    for callback in callbacks:
        callback()
    assert [m for m in sent(broker) if m not in before] == [{"args": [str(row.pk)], "eta": None}]
    assert not services.job_cancel(job, user=user)  # already ended: nothing more owed
    assert WebhookOutbox.objects.count() == 1


def test_a_cancel_that_rolls_back_owes_nothing(job_factory, receiver, user):
    job = job_factory(callback_url=receiver.url, status=JobStatus.QUEUED, outputs=[])
    with pytest.raises(RuntimeError), transaction.atomic():
        services.job_cancel(job, user=user)
        raise RuntimeError("the request failed after the cancel")
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED and not WebhookOutbox.objects.exists()


def test_a_job_that_ends_in_a_worker_writes_its_delivery_and_kicks(job_factory, receiver, broker, settings, on_commit):
    job = job_factory(callback_url=receiver.url, status=JobStatus.RUNNING, outputs=[])
    Job.objects.filter(pk=job.pk).update(attempts=settings.AIGC["MAX_ATTEMPTS"])  # redelivered once too often
    before = sent(broker)
    with on_commit(execute=True):
        services.job_run(job.pk)
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED
    row = WebhookOutbox.objects.get(job=job)
    assert [m for m in sent(broker) if m not in before] == [{"args": [str(row.pk)], "eta": None}]


def test_jobs_without_a_callback_or_a_key_owe_nothing(job_factory, receiver, broker, user, on_commit):
    before = sent(broker)
    no_url = job_factory(status=JobStatus.QUEUED)
    no_key = job_factory(callback_url=receiver.url, status=JobStatus.QUEUED, with_key=False)
    with on_commit(execute=True):
        for job in (no_url, no_key):
            services.job_cancel(job, user=user)
    assert sent(broker) == before and not WebhookOutbox.objects.exists()


def test_a_failed_attempt_sends_no_countdown_message_and_the_sweeper_retries_it(job_factory, receiver, broker):
    job = job_factory(callback_url=receiver.url)
    receiver.answers = [503]
    row = owe(job)
    before = sent(broker)
    tasks.send_webhook(str(row.pk))  # the task body, run here as the webhooks worker would
    assert sent(broker) == before  # the retry is the row's next_attempt_at: nothing for Redis to lose
    WebhookOutbox.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())  # its time has come
    tasks.sweep_webhooks()
    assert list(WebhookDelivery.objects.order_by("attempt").values_list("attempt", "ok")) == [(1, False), (2, True)]


def test_a_sender_that_died_mid_send_leaves_a_lease_that_runs_out(job_factory, receiver, webhook_settings):
    job = job_factory(callback_url=receiver.url)
    row = owe(job)
    claimed = webhooks._claim(timezone.now())  # a sender took it ... and died before sending
    assert claimed.pk == row.pk and claimed.attempts == 1
    assert sweep_all() == 0 and send(row.pk) is False  # leased: nobody else sends it
    lease = webhook_settings.AIGC["WEBHOOK_DEADLINE_S"] + webhooks.LEASE_MARGIN_S
    assert sweep_all(now=later(lease + 1)) == 1
    [request] = receiver.requests
    assert request["headers"]["X-AIGC-Delivery"] == str(row.pk)
    assert list(WebhookDelivery.objects.values_list("attempt", "ok")) == [(2, True)]


def test_messages_queued_before_the_outbox_become_rows(job_factory, receiver, on_commit):
    job = job_factory(callback_url=receiver.url)
    with on_commit(execute=False):
        tasks.deliver_webhook(str(job.pk), 2)  # a retry in flight during the upgrade
        tasks.deliver_webhook(str(job.pk), 3)
    assert WebhookOutbox.objects.filter(job=job).count() == 1 and sweep_all() == 1
    assert len(receiver.requests) == 1


# Egress: what a callback may reach.

REFUSED = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.170.2",
    "169.254.1.1",
    "0.0.0.0",
    "100.64.0.1",
    "100.127.255.254",
    "100.100.100.200",
    "168.63.129.16",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.1",
    "198.18.0.1",
    "::1",
    "::",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",
    "fec0::1",
    "ff02::1",
    "2001:db8::1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
]


@pytest.mark.parametrize("address", REFUSED)
def test_internal_addresses_are_refused(address):
    assert webhooks.address_refusal(address)


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::200e"]
)
def test_public_addresses_are_allowed(address):
    assert webhooks.address_refusal(address) is None


def post_job(api, callback_url):
    return api.post(
        "/api/v1/jobs/", {"kind": "headline", "inputs": {"text": STORY}, "callback_url": callback_url}, format="json"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "https://100.64.0.1/hook",
        "https://[fd00:ec2::254]/",
        "https://localhost/hook",
        "https://hooks.localhost/hook",
        "https://LocalHost/hook",
    ],
)
def test_plainly_internal_callback_urls_are_a_400_naming_the_field(api, strict, url):
    response = post_job(api, url)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["param"] == "callback_url" and "public addresses only" in error["message"], error
    assert not Job.objects.exists()


@pytest.mark.parametrize("url", ["https://localhost./hook", "https://[fe80::1%25eth0]/hook", "https://127.1/hook"])
def test_forms_the_url_field_lets_through_or_not_are_refused_by_the_service_too(strict, url):
    with pytest.raises(ValidationError) as error:
        services.callback_url_check(url)
    assert list(error.value.message_dict) == ["callback_url"]


def test_a_local_listener_is_refused_at_creation_and_receives_nothing(api, strict):
    server = Receiver()
    try:
        response = post_job(api, server.url)
        assert response.status_code == 400 and response.json()["error"]["param"] == "callback_url"
        assert "127.0.0.1" in response.json()["error"]["message"] and "loopback" in response.json()["error"]["message"]
        assert server.connections == 0 and not Job.objects.exists()
    finally:
        server.close()


def test_a_name_that_resolves_to_a_private_address_is_refused_at_creation(api, strict, monkeypatch):
    monkeypatch.setattr(webhooks, "getaddrinfo", lambda host, port: [(socket.AF_INET, ("10.20.30.40", port))])
    response = post_job(api, "https://cms.intranet.example/hook")
    assert response.status_code == 400 and "resolves to 10.20.30.40" in response.json()["error"]["message"]


def test_plain_http_is_refused_unless_allowed(api, strict, monkeypatch):
    monkeypatch.setattr(webhooks, "getaddrinfo", lambda host, port: [(socket.AF_INET, ("93.184.215.14", port))])
    strict.AIGC = {**strict.AIGC, "WEBHOOK_ALLOW_HTTP": False}
    response = post_job(api, "http://cms.example.com/hook")
    assert response.status_code == 400 and response.json()["error"]["param"] == "callback_url"
    assert "https" in response.json()["error"]["message"]
    assert post_job(api, "https://cms.example.com/hook").status_code == 202


def test_a_name_rebound_to_loopback_after_creation_is_refused_at_send_time(api, strict, monkeypatch):
    """DNS rebinding: public when the job is created, 127.0.0.1 when the callback is sent. The real listener on
    127.0.0.1 gets no connection, and the refusal is recorded and final."""
    server = Receiver()
    answers = iter(["93.184.215.14", "127.0.0.1"])
    lookups = []

    def resolver(host, port):
        lookups.append(host)
        return [(socket.AF_INET, (next(answers), port))]

    monkeypatch.setattr(webhooks, "getaddrinfo", resolver)
    try:
        response = post_job(api, f"http://hooks.rebind.test:{server.port}/hook")
        assert response.status_code == 202, response.content
        job = Job.objects.get()
        Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now())
        row = owe(job)
        assert send(row.pk) is False
        assert lookups == ["hooks.rebind.test", "hooks.rebind.test"]  # once at creation, once at send time
        delivery = WebhookDelivery.objects.get()
        assert delivery.error.startswith("Refused:") and "127.0.0.1" in delivery.error and "loopback" in delivery.error
        assert server.connections == 0 and server.requests == []
        row.refresh_from_db()
        assert row.state == "failed"  # not retried: a refusal is not a receiver's hiccup
    finally:
        server.close()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.1", "2130706433", "[::ffff:127.0.0.1]"])
def test_loopback_forms_are_refused_at_send_time_by_the_real_resolver(job_factory, strict, host):
    """Jobs whose callback_url was stored before these checks (or while private targets were allowed): at send
    time the real resolver's answer is checked and the listener behind it gets nothing."""
    server = Receiver()
    try:
        job = job_factory(callback_url=f"http://{host}:{server.port}/hook")
        assert send(owe(job).pk) is False
        delivery = WebhookDelivery.objects.get()
        assert delivery.error.startswith("Refused:") and server.connections == 0, delivery.error
    finally:
        server.close()


def test_allowed_private_targets_are_called_at_the_checked_address_with_the_original_host(
    job_factory, receiver, monkeypatch
):
    """The name is resolved once; the connection goes to that address (a second lookup would have said
    10.255.255.1, where nothing answers) and the Host header is the URL's."""
    answers = iter(["127.0.0.1", "10.255.255.1"])
    monkeypatch.setattr(webhooks, "getaddrinfo", lambda host, port: [(socket.AF_INET, (next(answers), port))])
    job = job_factory(callback_url=f"http://hooks.customer.test:{receiver.port}/hooks/aigc")
    assert send(owe(job).pk) is True
    [request] = receiver.requests
    assert request["headers"]["Host"] == f"hooks.customer.test:{receiver.port}" and receiver.connections == 1


def make_certificate(tmp_path, name: str) -> tuple[str, str]:
    """A self-signed certificate for `name` (openssl), as (certificate, key) paths."""
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def test_https_to_the_checked_address_uses_the_original_name_for_sni_and_the_certificate(
    job_factory, webhook_settings, tmp_path, monkeypatch
):
    cert, key = make_certificate(tmp_path, "hooks.customer.test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = Receiver(context)
    monkeypatch.setenv("SSL_CERT_FILE", cert)  # the client trusts this certificate only (the default context)
    monkeypatch.setattr(webhooks, "getaddrinfo", lambda host, port: [(socket.AF_INET, ("127.0.0.1", port))])
    try:
        good = job_factory(callback_url=f"https://hooks.customer.test:{server.port}/hooks/aigc")
        assert send(owe(good).pk) is True, WebhookDelivery.objects.get().error
        assert server.server_names == ["hooks.customer.test"]
        assert server.requests[0]["headers"]["Host"] == f"hooks.customer.test:{server.port}"
        # Another name at the same address: the certificate is not for it, so nothing is sent.
        other = job_factory(callback_url=f"https://other.customer.test:{server.port}/hooks/aigc")
        assert send(owe(other).pk) is False
        error = WebhookDelivery.objects.get(job=other).error
        assert "CERTIFICATE_VERIFY_FAILED" in error or "certificate" in error.lower(), error
        assert len(server.requests) == 1
    finally:
        server.close()


def test_a_receiver_trickling_one_byte_a_second_is_cut_at_the_deadline(job_factory, webhook_settings):
    """Each read gets a byte within the per-read timeout, so only a wall-clock deadline can end the attempt."""
    webhook_settings.AIGC = {**webhook_settings.AIGC, "WEBHOOK_TIMEOUT_S": 5.0, "WEBHOOK_DEADLINE_S": 3.0}
    trickler = Trickler()
    try:
        job = job_factory(callback_url=trickler.url)
        row = owe(job)
        started = time.monotonic()
        assert send(row.pk) is False
        elapsed = time.monotonic() - started
        assert 2.9 < elapsed < 4.0, elapsed
        delivery = WebhookDelivery.objects.get()
        assert "deadline of 3 s" in delivery.error and 2900 <= delivery.duration_ms < 4000, delivery.error
        row.refresh_from_db()
        assert row.state == "pending" and row.leased_until is None  # retried later, like any failure
    finally:
        trickler.close()


# The cap on deliveries in flight per key.


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_deliveries_in_flight_are_capped_per_key_and_the_rest_deferred_not_dropped(
    user, api_key, webhook_settings, on_commit, broker, monkeypatch
):
    monkeypatch.setattr(
        dispatch, "job_enqueue", lambda job_id, alias: None
    )  # these jobs never run: no message for them
    webhook_settings.AIGC = {**webhook_settings.AIGC, "WEBHOOK_MAX_IN_FLIGHT_PER_KEY": 2}
    receiver = Receiver()
    receiver.answers = ["hold"] * 10
    first_key = user.api_keys.get()
    other_key = services.api_key_create(user, name="another tool")[0]
    rows = [owe(make_job(user, callback_url=receiver.url, key=first_key, capture=on_commit)) for _ in range(4)]
    other = owe(make_job(user, callback_url=receiver.url, key=other_key, capture=on_commit))
    results = []

    def sweep():
        try:
            results.append(sweep_all())
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
            time.sleep(0.3)  # one sweeper after another, each claiming while the earlier ones hold theirs
        deadline = time.monotonic() + 10
        while len(receiver.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        keys = [WebhookOutbox.objects.get(pk=r["headers"]["X-AIGC-Delivery"]).api_key_id for r in receiver.requests]
        assert sorted(keys) == sorted([first_key.pk, first_key.pk, other_key.pk])  # 2 of the first key, and the other's
        waiting = WebhookOutbox.objects.filter(api_key=first_key, state="pending", leased_until__isnull=True)
        assert waiting.count() == 2 and results == [0]  # deferred, and the fourth sweeper found nothing it may take
    finally:
        receiver.release.set()
        for thread in threads:
            thread.join(30)
        receiver.close()
    assert sweep_all() == 0  # the sweepers that held the first ones sent the deferred ones after
    assert WebhookOutbox.objects.filter(state="delivered").count() == 5 and receiver.most_in_flight == 3
    ids = [r["headers"]["X-AIGC-Delivery"] for r in receiver.requests]
    assert sorted(ids) == sorted(str(r.pk) for r in [*rows, other])  # each exactly once


# The webhooks worker never loads the model.


def test_only_workers_that_take_generation_jobs_load_the_model(settings):
    settings.CELERY_TASK_DEFAULT_QUEUE = "generation"
    settings.AIGC = {**settings.AIGC, "MODELS": {"default": {}, "big": {"device": "cuda"}}}
    assert tasks.hosted_aliases(["generation"], environ={}) == ["default"]
    assert tasks.hosted_aliases(["generation", "webhooks"], environ={}) == ["default"]
    assert tasks.hosted_aliases(["generation.big", "generation"], environ={}) == ["default", "big"]
    assert tasks.hosted_aliases(["webhooks"], environ={}) == []
    assert tasks.hosted_aliases([tasks.MAINTENANCE_QUEUE], environ={}) == []
    assert tasks.hosted_aliases(["generation"], environ={"AIGC_LOAD_MODEL": "0"}) == []
    settings.CELERY_TASK_DEFAULT_QUEUE = "itest-1"  # AIGC_QUEUE renames every model's queue
    assert tasks.hosted_aliases(["itest-1.big"], environ={"AIGC_LOAD_MODEL": "1"}) == ["big"]


@pytest.mark.parametrize("queues, loads", [(None, True), ("webhooks", False), ("generation,webhooks", True)])
def test_worker_init_sees_the_queues_given_with_dash_q(queues, loads, monkeypatch):
    """A real WorkController, as `celery worker -Q ...` builds it (not started): worker_init runs our handler."""
    from celery import Celery

    import generation.workers.engines

    loaded = []
    monkeypatch.delenv("AIGC_LOAD_MODEL", raising=False)
    monkeypatch.setattr(generation.workers.engines, "get_engine", lambda alias: loaded.append("engine") or "engine")
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
    send(owe(job).pk)
    delivery = WebhookDelivery.objects.get()
    listing = admin_client.get("/admin/generation/webhookdelivery/?ok__exact=0").content.decode()
    assert closed_port_url in listing and "Add webhook delivery" not in listing
    assert admin_client.get(f"/admin/generation/webhookdelivery/{delivery.pk}/change/").status_code == 200
    assert admin_client.post("/admin/generation/webhookdelivery/add/", {}).status_code == 403
    page = admin_client.get(f"/admin/generation/job/{job.pk}/change/").content.decode()
    assert "Webhook deliveries" in page and "ConnectionRefusedError" in page
