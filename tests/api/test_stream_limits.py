"""Event streams under attack, against a real uvicorn process, real Redis and the real database: bad resume ids,
Redis errors, clients that leave, more streams than allowed, revoked keys, logged-out sessions, streams that
would never end. The servers run with a short keep-alive and lifetime, so each case takes seconds."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from django.test import Client

from generation import services
from generation.infra import events, processes, redis_client
from generation.models import Job, JobOutput, JobStatus, PromptTemplate
from tests.support.live import server_env, start_web_server

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

KEEPALIVE_S, LIFETIME_S, CAP = 0.5, 3.0, 2
STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."


class Web:
    """A uvicorn process serving the site, as the Procfile runs it."""

    def __init__(self, proc, url: str, log_path) -> None:
        self.proc, self.url, self.log_path = proc, url, log_path

    def cpu_s(self) -> float:
        """CPU time the process has used (user + system), from /proc."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cpu_share(self, seconds: float = 3.0) -> float:
        """The share of one core the process uses over the next `seconds`."""
        before, start = self.cpu_s(), time.monotonic()
        time.sleep(seconds)
        return (self.cpu_s() - before) / (time.monotonic() - start)

    def log(self) -> str:
        return self.log_path.read_text()[-3000:]


def _start_web(tmp_path_factory, live_database_url, redis_url, **extra) -> Web:
    env = server_env(
        DATABASE_URL=live_database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        **extra,
    )
    return Web(*start_web_server(env, tmp_path_factory, "/api/v1/templates/"))


@pytest.fixture(scope="module")
def web(broker_url, live_database_url, tmp_path_factory):
    server = _start_web(
        tmp_path_factory,
        live_database_url,
        broker_url,
        AIGC_STREAM_KEEPALIVE_S=KEEPALIVE_S,
        AIGC_STREAM_MAX_S=LIFETIME_S,
        AIGC_STREAMS_PER_USER=CAP,
    )
    yield server
    processes.stop(server.proc)


@pytest.fixture(scope="module")
def web_without_redis(live_database_url, tmp_path_factory):
    """A web process whose Redis refuses every connection (nothing listens on its port): every Redis call of
    a stream fails at once. A longer keep-alive, so its streams outlive the client that closes them."""
    dead = f"redis://127.0.0.1:{processes.free_port()}/0"
    server = _start_web(tmp_path_factory, live_database_url, dead, AIGC_STREAM_KEEPALIVE_S=3, AIGC_STREAM_MAX_S=60)
    yield server
    processes.stop(server.proc)


@pytest.fixture
def rds(broker_url, settings, monkeypatch):
    """The web processes' Redis, also for the events module of this process (which publishes test streams)."""
    settings.REDIS_URL = broker_url
    monkeypatch.setattr(redis_client, "_client", None)
    client = redis.Redis.from_url(broker_url)
    yield client
    redis_client._client = None


@pytest.fixture
def key(user):
    return services.api_key_create(user, name="streams")


def bearer(key) -> dict:
    return {"Authorization": f"Bearer {key[1]}"}


class Stream:
    """An HTTP/1.1 request on a raw socket, so that a test decides exactly when the client leaves."""

    def __init__(
        self, base_url: str, path: str, headers: dict | None = None, method: str = "GET", body: bytes = b""
    ) -> None:
        parts = urlsplit(base_url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {parts.hostname}",
            "Connection: close",
            "Accept: text/event-stream",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.data, self.ended = b"", False
        while b"\r\n\r\n" not in self.data:
            self._recv(10)
        head, self.data = self.data.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode().split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}

    def _recv(self, timeout: float) -> None:
        self.sock.settimeout(max(timeout, 0.01))
        chunk = self.sock.recv(65536)
        if not chunk:
            self.ended = True
        self.data += chunk

    def read_until(self, needle: bytes, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while needle not in self.data and not self.ended:
            try:
                self._recv(deadline - time.monotonic())
            except TimeoutError:
                return False
        return needle in self.data

    def read_to_end(self, timeout: float) -> float:
        """Read until the server ends the response; the seconds that took (fails the test past `timeout`)."""
        start = time.monotonic()
        while not self.ended and not self.data.endswith(b"\r\n0\r\n\r\n"):
            try:
                self._recv(start + timeout - time.monotonic())
            except TimeoutError:
                pytest.fail(f"the stream was still open after {timeout} s: {self.data[-500:]!r}")
        return time.monotonic() - start

    def json(self) -> dict:
        while not self.ended:
            self._recv(10)
        return json.loads(self.data)

    def close(self) -> None:
        self.sock.close()


def events_path(job) -> str:
    return f"/api/v1/jobs/{job.pk}/events/"


def make_job(user, status=JobStatus.RUNNING, texts=()) -> Job:
    template = PromptTemplate.objects.get(slug="headline")
    job = Job.objects.create(
        owner=user,
        kind="headline",
        template=template,
        template_version=template.versions.get(number=1),
        inputs={"text": STORY},
        params={"n": max(1, len(texts)), "seed": 1},
        status=status,
    )
    for index, text in enumerate(texts):
        JobOutput.objects.create(job=job, index=index, text=text, finish_reason="stop")
    return job


def slots(rds, user) -> int:
    return rds.zcard(events.stream_slots_key(user.pk))


def wait_for(predicate, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - start


def blocked_reads(rds, web) -> int:
    """The web process's stream reads blocked in Redis now (its connections are named after its pid)."""
    name = f"aigc-streams-{web.proc.pid}"
    return sum(
        1 for c in rds.client_list() if c.get("name") == name and c.get("cmd") == "xread" and "b" in c.get("flags", "")
    )


@pytest.mark.parametrize(
    "bad", ["abc", "1-2-3", "-1-0", "1700000000000", "18446744073709551616-0", "db-", "db-x", "db-end-1"]
)
def test_a_malformed_last_event_id_is_refused_with_400_naming_it(web, rds, user, key, bad):
    job = make_job(user)
    for headers, path in (
        (bearer(key) | {"Last-Event-ID": bad}, events_path(job)),
        (bearer(key), f"{events_path(job)}?last_event_id={bad}"),
        (bearer(key), f"{events_path(job)}?last_event_id=%D9%A1-0"),
    ):  # an Arabic-Indic digit
        response = Stream(web.url, path, headers)
        assert response.status == 400, response.data
        error = response.json()["error"]
        assert (
            error["param"] == "Last-Event-ID"
            and error["type"] == "invalid_request_error"
            and "Last-Event-ID" in error["message"]
        )
        assert error["fields"] == {"Last-Event-ID": [error["message"]]}
    assert slots(rds, user) == 0  # a refused stream holds no slot


def test_bad_ids_and_redis_errors_leave_the_web_process_idle_once_clients_close(web, web_without_redis, rds, user, key):
    """The attack as reported: streams opened with a malformed id, or failing on Redis, then closed by their
    client. The web processes must go back to idle (the old loop retried at once, for ever)."""
    job = make_job(user)
    for _ in range(3):
        stream = Stream(web.url, events_path(job), bearer(key) | {"Last-Event-ID": "not-an-id"})
        assert stream.status == 400
        stream.close()
    opened = [Stream(web_without_redis.url, events_path(job), bearer(key)) for _ in range(3)]
    assert all(s.status == 200 for s in opened), opened[0].data
    while_open = web_without_redis.cpu_share(1.5)  # failing reads pause and retry: no spinning while open either
    for stream in opened:
        assert not stream.ended  # still open: the client, not the server, ends these
        stream.close()
    time.sleep(0.3)
    after = {"web": web.cpu_share(2.0), "web without redis": web_without_redis.cpu_share(2.0)}
    print(f"\nCPU share of a core: while 3 failing streams were open {while_open:.3f}; after they closed {after}")
    assert while_open < 0.15, web_without_redis.log()
    assert max(after.values()) < 0.05, web_without_redis.log()


def test_a_stream_failing_on_redis_gives_up_after_two_keep_alives(web_without_redis, user, key):
    job = make_job(user)
    stream = Stream(web_without_redis.url, events_path(job), bearer(key))
    took = stream.read_to_end(timeout=15)
    assert 5.5 < took < 12 and b": closed: stream_unavailable" in stream.data and b"retry: 3000" in stream.data


def test_a_finished_job_on_a_web_process_without_redis_ends_from_the_database(web_without_redis, user, key):
    job = make_job(user, JobStatus.SUCCEEDED, texts=["Bridge approved"])
    stream = Stream(web_without_redis.url, events_path(job), bearer(key))
    assert stream.read_to_end(timeout=2) < 2
    assert b'"text": "Bridge approved"' in stream.data and b"event: done" in stream.data


def test_a_client_that_leaves_stops_its_stream_at_once(web, rds, user, key):
    job = make_job(user)
    stream = Stream(web.url, events_path(job), bearer(key))
    assert stream.status == 200 and stream.read_until(b": waiting", 3)
    assert slots(rds, user) == 1
    wait_for(lambda: blocked_reads(rds, web) == 1, 3, "the stream's read blocked in Redis")
    stream.close()
    took = wait_for(lambda: slots(rds, user) == 0, 2, "the slot released")  # well before it would age out (6 s)
    wait_for(lambda: blocked_reads(rds, web) == 0, 2, "the Redis read closed")
    assert web.cpu_share(2.0) < 0.05
    print(f"\nslot released {took:.2f} s after the client left")


def test_streams_beyond_the_cap_get_429_until_one_closes(web, rds, user, key):
    job = make_job(user)
    opened = [Stream(web.url, events_path(job), bearer(key)) for _ in range(CAP)]
    assert [s.status for s in opened] == [200] * CAP and slots(rds, user) == CAP
    refused = Stream(web.url, events_path(job), bearer(key))
    assert refused.status == 429 and int(refused.headers["retry-after"]) >= 1
    error = refused.json()["error"]
    assert (
        error["type"] == "rate_limit_error"
        and error["code"] == "too_many_streams"
        and f"at most {CAP}" in error["message"]
    )
    # The same count for the OpenAI-compatible streams, refused before a job is made.
    jobs = Job.objects.count()
    body = json.dumps({"model": "default", "messages": [{"role": "user", "content": "Hi"}], "stream": True}).encode()
    chat = Stream(web.url, "/v1/chat/completions", bearer(key), method="POST", body=body)
    assert chat.status == 429 and chat.json()["error"]["code"] == "too_many_streams" and Job.objects.count() == jobs
    # Streams of another user are counted apart.
    other = services.api_key_create(type(user).objects.create_user(username="someone-else", password="pw-someone-123"))
    other_job = make_job(other[0].user)
    assert Stream(web.url, events_path(other_job), bearer(other)).status == 200
    opened[0].close()
    wait_for(lambda: slots(rds, user) == CAP - 1, 2, "a slot freed")
    again = Stream(web.url, events_path(job), bearer(key))
    assert again.status == 200 and again.read_until(b": waiting", 3)
    for stream in (opened[1], again):
        stream.close()
    wait_for(lambda: slots(rds, user) == 0, 2, "every slot freed")


def test_slots_of_a_dead_web_process_age_out(web, rds, user, key):
    """A process that crashed never releases its slots: they expire, as a live stream's would without refresh."""
    crashed = events.stream_slots_key(user.pk)
    now = rds.time()
    rds.zadd(crashed, {"crashed-1": now[0] + 1.0, "crashed-2": now[0] + 1.0})
    job = make_job(user)
    assert Stream(web.url, events_path(job), bearer(key)).status == 429
    time.sleep(2.1)
    stream = Stream(web.url, events_path(job), bearer(key))
    assert stream.status == 200
    stream.close()


def test_revoking_a_key_ends_its_open_stream_within_one_keep_alive(web, rds, user, key):
    job = make_job(user)
    stream = Stream(web.url, events_path(job), bearer(key))
    assert stream.read_until(b": waiting", 3)
    services.api_key_revoke(key[0])
    took = stream.read_to_end(timeout=KEEPALIVE_S * 3)
    assert b": closed: credentials_revoked" in stream.data and b"event: done" not in stream.data
    wait_for(lambda: slots(rds, user) == 0, 2, "the slot released")
    assert Stream(web.url, events_path(job), bearer(key)).status == 401  # the reconnect is refused
    print(f"\nstream ended {took:.2f} s after the key was revoked (keep-alive {KEEPALIVE_S} s)")


def test_logging_out_ends_the_sessions_open_stream(web, rds, user):
    browser = Client()
    browser.force_login(user)
    cookie = browser.cookies["sessionid"].value
    job = make_job(user)
    stream = Stream(web.url, events_path(job), {"Cookie": f"sessionid={cookie}"})
    assert stream.status == 200 and stream.read_until(b": waiting", 3)
    browser.logout()  # deletes the session, as the studio's log-out does
    stream.read_to_end(timeout=KEEPALIVE_S * 3)
    assert b": closed: credentials_revoked" in stream.data


def test_a_disabled_user_loses_open_streams(web, rds, user, key):
    job = make_job(user)
    stream = Stream(web.url, events_path(job), bearer(key))
    assert stream.read_until(b": waiting", 3)
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    stream.read_to_end(timeout=KEEPALIVE_S * 3)
    assert b": closed: credentials_revoked" in stream.data


def test_a_stream_ends_at_its_maximum_lifetime(web, rds, user, key):
    job = make_job(user)  # runs for ever: no worker takes it
    stream = Stream(web.url, events_path(job), bearer(key))
    took = stream.read_to_end(timeout=LIFETIME_S + 3)
    assert LIFETIME_S - 0.5 < took < LIFETIME_S + 1.5
    assert (
        b": closed: stream_lifetime" in stream.data and stream.data.count(b": waiting") >= LIFETIME_S / KEEPALIVE_S - 2
    )
    wait_for(lambda: slots(rds, user) == 0, 2, "the slot released")


def test_a_finished_jobs_stream_closes_after_the_replay(web, rds, user, key):
    job = make_job(user, JobStatus.SUCCEEDED, texts=["Council backs bridge"])
    events.publish_delta(job.pk, 0, "Council backs")
    events.publish_delta(job.pk, 0, " bridge")
    events.publish_end(job.pk, JobStatus.SUCCEEDED)
    stream = Stream(web.url, events_path(job), bearer(key))
    assert stream.read_to_end(timeout=KEEPALIVE_S) < KEEPALIVE_S  # not a keep-alive later
    assert stream.data.count(b"event: delta") == 2 and b"event: done" in stream.data and b"db-end" not in stream.data
    # Resumed after its last entry, it ends at once too, with the end from the database.
    last = [line for line in stream.data.decode().splitlines() if line.startswith("id: ")][-1][4:]
    resumed = Stream(web.url, events_path(job), bearer(key) | {"Last-Event-ID": last})
    assert resumed.read_to_end(timeout=KEEPALIVE_S) < KEEPALIVE_S and b"event: done" in resumed.data
    rds.delete(events.stream_key(job.pk))


def test_a_stream_left_without_its_end_entry_is_ended_from_the_database(web, rds, user, key):
    """The worker died between its commit and its last publish: the stream has deltas but no end."""
    job = make_job(user, JobStatus.SUCCEEDED, texts=["Council backs bridge"])
    events.publish_delta(job.pk, 0, "Council backs")
    stream = Stream(web.url, events_path(job), bearer(key))
    assert stream.read_to_end(timeout=KEEPALIVE_S) < KEEPALIVE_S
    assert (
        b"event: replace" in stream.data
        and b'"text": "Council backs bridge"' in stream.data
        and b"id: db-end" in stream.data
    )
    # A reader already waiting when the job ends that way: ended at the next keep-alive.
    running = make_job(user)
    events.publish_delta(running.pk, 0, "Council")
    waiting = Stream(web.url, events_path(running), bearer(key))
    assert waiting.read_until(b'"text": "Council"', 3)
    Job.objects.filter(pk=running.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.create(job=running, index=0, text="Council backs bridge", finish_reason="stop")
    assert waiting.read_to_end(timeout=KEEPALIVE_S * 3) < KEEPALIVE_S * 3
    assert b"event: replace" in waiting.data and b"id: db-end" in waiting.data
    for finished in (job, running):
        rds.delete(events.stream_key(finished.pk))


def test_one_redis_pool_serves_every_stream_of_a_process(web, rds, user, key):
    """Streams opened one after another reuse the process's pooled connections instead of each opening one."""
    job = make_job(user, JobStatus.SUCCEEDED, texts=["Bridge"])
    events.publish_delta(job.pk, 0, "Bridge")
    events.publish_end(job.pk, JobStatus.SUCCEEDED)
    name = f"aigc-streams-{web.proc.pid}"
    for _ in range(10):
        Stream(web.url, events_path(job), bearer(key)).read_to_end(timeout=3)
    ids = {c["id"] for c in rds.client_list() if c.get("name") == name}
    for _ in range(10):
        Stream(web.url, events_path(job), bearer(key)).read_to_end(timeout=3)
    after = {c["id"] for c in rds.client_list() if c.get("name") == name}
    assert ids and after == ids, (ids, after)
    rds.delete(events.stream_key(job.pk))
