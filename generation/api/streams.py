"""`GET /api/v1/jobs/<id>/events/`: a job's stream as server-sent events.

An async view: under the ASGI server an open stream holds no worker thread. Entries carry their Redis Stream
id; a reader reconnecting with `Last-Event-ID` (or `?last_event_id=`) gets exactly the entries after it.
When the stream is gone (expired, or Redis lost it) and the job is finished, the text comes from the database.

A stream costs a connection, a Redis read and a check every keep-alive, so each is bounded: a user has at most
AIGC_STREAMS_PER_USER open (counted in Redis across web processes), a stream lives at most AIGC_STREAM_MAX_S,
and at each keep-alive it checks that its key or session still stands and whether the job ended (in the
database: a worker that died between its commit and its last publish leaves a stream without an end). Redis
errors are retried with a growing pause and given up after two keep-alives; a client that leaves stops its
stream at once (the ASGI handler cancels it), which frees its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
import uuid
from contextlib import aclosing
from importlib import import_module
from types import SimpleNamespace

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.utils import timezone

from .. import selectors
from ..infra import events, redis_client
from ..models import ApiKey, Job, JobStatus
from ..services import limits
from .authentication import bearer_token, key_from_header
from .errors import error_json

log = logging.getLogger("generation.streams")

# Redis Stream ids are two unsigned 64-bit numbers; the database fallback's own ids are db-<index> and db-end.
_REDIS_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")  # ASCII digits: \d would take other scripts' digits
_DB_ID = re.compile(r"db-(?:[0-9]{1,4}|end)")
_U64 = 2**64


def _conf() -> tuple[float, float, int]:
    """(keep-alive s, lifetime s, streams per user), read at each use so that settings overrides apply."""
    aigc = settings.AIGC
    return float(aigc["STREAM_KEEPALIVE_S"]), float(aigc["STREAM_MAX_S"]), int(aigc["STREAMS_PER_USER"])


def event_stream_response(chunks) -> StreamingHttpResponse:
    """A streaming answer of server-sent events, with the headers that keep caches and proxies (nginx buffers
    unless told not to) from holding its events back. The job stream and `/v1` streams both answer with it."""
    response = StreamingHttpResponse(chunks, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def parse_last_event_id(value: str | None) -> str | None:
    """The id to resume after ("0-0" for none), or None when `value` is no id this endpoint ever sent."""
    if value is None or value == "":
        return "0-0"
    match = _REDIS_ID.fullmatch(value)
    if match:
        return value if all(int(part) < _U64 for part in match.groups()) else None
    return value if _DB_ID.fullmatch(value) else None


class StreamClosed(Exception):
    """The stream stopped for a reason of its own, not the job's: `code` says which, `status` is the HTTP
    status a caller that has not answered yet would give."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class StreamGuard:
    """One reader's open stream: its place in the user's count of open streams, and who may keep reading it.

    `key_id`: the API key that opened it; `session_key`: else the browser session. `check()` runs at every
    keep-alive and raises StreamClosed once the key is revoked, the session logged out or the user disabled."""

    def __init__(self, user_id: int, key_id: int | None = None, session_key: str | None = None) -> None:
        self.user_id, self.key_id, self.session_key = user_id, key_id, session_key
        self.member = uuid.uuid4().hex
        self.counted = False

    @classmethod
    def for_key(cls, key: ApiKey) -> StreamGuard:
        return cls(key.user_id, key_id=key.pk)

    async def take(self) -> bool:
        """Count this stream against the user's cap; False when the cap is reached. With Redis unreachable
        the stream is let through uncounted: it then backs off and ends on its own."""
        keepalive, _, cap = _conf()
        try:
            self.counted = await events.stream_slot_take(self.user_id, self.member, cap, _slot_ttl(keepalive))
        except aioredis.RedisError as exc:
            log.warning("could not count an open stream of user %s: %s", self.user_id, exc)
            return True
        return self.counted

    async def refresh(self) -> None:
        if not self.counted:
            return
        # On a Redis error the slot ages out instead; the stream's own reads report Redis errors.
        with contextlib.suppress(aioredis.RedisError):
            await events.stream_slot_take(self.user_id, self.member, _U64, _slot_ttl(_conf()[0]))

    async def release(self) -> None:
        """Idempotent; runs in the stream's `finally`, also when the client left (the task is cancelled)."""
        if not self.counted:
            return
        self.counted = False
        try:
            await asyncio.wait_for(asyncio.shield(events.stream_slot_release(self.user_id, self.member)), 5)
        except (aioredis.RedisError, TimeoutError, asyncio.CancelledError):
            log.info("could not release a stream slot of user %s; it ages out", self.user_id)

    def allowed(self) -> bool:
        """Whether the one who opened the stream may still read it (a database read)."""
        if self.key_id is not None:
            return ApiKey.objects.filter(pk=self.key_id, revoked_at__isnull=True, user__is_active=True).exists()
        if self.session_key is None:
            return True
        session = import_module(settings.SESSION_ENGINE).SessionStore(self.session_key)
        user = auth.get_user(SimpleNamespace(session=session))  # as a new request with that cookie would see it
        return user.is_authenticated and user.pk == self.user_id


def _slot_ttl(keepalive: float) -> float:
    """How long a slot outlives its last refresh: two keep-alives, so one late refresh does not drop it."""
    return 2 * keepalive + 5


def too_many_streams() -> JsonResponse:
    keepalive, _, cap = _conf()
    message = f"Too many open event streams: at most {cap} per user. Close one (or let one end), then retry."
    return error_json(message, 429, "too_many_streams", headers={"Retry-After": str(max(1, math.ceil(keepalive)))})


async def _user(request):
    """(user, key or None, guard) of the caller, or (None, None, None)."""
    header = request.headers.get("Authorization", "")
    if bearer_token(header) is not None:  # a bad key is refused, not tried as a session
        key = await sync_to_async(key_from_header)(header)
        return (key.user, key, StreamGuard.for_key(key)) if key else (None, None, None)
    user = await request.auser()
    if not user.is_authenticated:
        return None, None, None
    return user, None, StreamGuard(user.pk, session_key=request.session.session_key)


async def _over_rate(key: ApiKey | None, user) -> JsonResponse | None:
    """The 429 of the rest of the API (api/throttling.py) when this request is over its key's or its user's
    requests a minute, else None: opening a stream counts as a request, as every other call does."""
    try:
        await sync_to_async(limits.check_request_rate)(key, user=user)
    except limits.LimitExceeded as exc:
        return error_json(exc.message, 429, exc.code, headers={"Retry-After": str(exc.retry_after)})
    return None


async def job_events(request, job_id):
    user, key, guard = await _user(request)
    if user is None:
        message = "Authentication credentials were not provided or are invalid."
        return error_json(message, 401, "not_authenticated", headers={"WWW-Authenticate": 'Bearer realm="api"'})
    refused = await _over_rate(key, user)
    if refused is not None:
        return refused
    given = request.headers.get("Last-Event-ID")
    given = request.GET.get("last_event_id") if given is None else given
    last_id = parse_last_event_id(given)
    if last_id is None:
        message = (
            "Last-Event-ID: not an event id of this stream (`<ms>-<seq>` as sent in `id:`, or `db-<n>`, `db-end`)."
        )
        return error_json(message, 400, "invalid", param="Last-Event-ID")
    job = await sync_to_async(selectors.job_for_user)(user, job_id)
    if job is None:
        raise Http404
    if not await guard.take():
        return too_many_streams()
    return event_stream_response(_stream(job.pk, last_id, guard))


# A job cancelled while it ran is final at once, but its worker stops within a decoding step and then saves the
# text written so far and the tokens used, and ends the stream: readers wait that long for it, not forever.
SETTLE_S = 30


def _settling(job: Job) -> bool:
    """Cancelled while running, its worker not yet done saving (it settles the usage last)."""
    return (
        job.status == JobStatus.CANCELLED
        and job.started_at is not None
        and job.prompt_tokens is None
        and job.finished_at is not None
        and (timezone.now() - job.finished_at).total_seconds() < SETTLE_S
    )


def _final_job(job_id):
    job = Job.objects.filter(pk=job_id).prefetch_related("outputs").first()
    if job is None or not job.is_final or _settling(job):
        return None
    return job.status, job.error, [o.text for o in job.outputs.all()]


def _stop_if_cancelled() -> None:
    """When the client leaves, the ASGI handler cancels the stream's task. A layer below may swallow that
    cancel (asgiref's sync_to_async can wait for its thread and return normally; the old loop was seen going
    on for ever for clients long gone, the task still marked as being cancelled): so the stream asks itself."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _db(func, *args):
    """`sync_to_async(func)(*args)`, not outliving a cancel."""
    result = await sync_to_async(func)(*args)
    _stop_if_cancelled()
    return result


def _keepalive_check(job_id, guard: StreamGuard | None):
    """At each keep-alive, in one trip to the database: (the job's final state or None, reader still allowed)."""
    return _final_job(job_id), guard is None or guard.allowed()


def _from_database(final, fresh: bool):
    """The job's text from the database. A fresh reader gets it as deltas; a reader that had part of the
    stream gets one `replace` per candidate, so nothing is doubled or missed."""
    status, error, texts = final
    for index, text in enumerate(texts):
        yield (
            "delta" if fresh else "replace",
            json.dumps({"index": index, "text": text}, ensure_ascii=False),
            f"db-{index}",
        )
    end = "error" if status == "failed" else "done"
    yield end, json.dumps({"status": status, **({"error": error} if error else {})}, ensure_ascii=False), "db-end"


class _Backoff:
    """Redis errors in a row: each pause twice the last, up to one keep-alive; after `give_up_s` of nothing but
    errors the reader gives up. An error never makes a reader retry at once."""

    FIRST_S = 0.1

    def __init__(self, most_s: float, give_up_s: float) -> None:
        self.most_s, self.give_up_s = most_s, give_up_s
        self.since: float | None = None
        self.pause = 0.0

    def reset(self) -> None:
        self.since, self.pause = None, 0.0

    async def wait(self) -> bool:
        """Pause before the next try; False (without pausing) once it is time to give up."""
        now = time.monotonic()
        self.since = self.since or now
        if now - self.since >= self.give_up_s:
            return False
        self.pause = min(max(self.pause * 2, self.FIRST_S), self.most_s)
        await asyncio.sleep(self.pause)
        return True


async def job_event_entries(job_id, last_id: str = "0-0", guard: StreamGuard | None = None):
    """A job's events after `last_id` (already validated) as (event, data, id), ending with its done/error
    event; None at each keep-alive while nothing happens, so that a caller can keep its connection alive.
    Raises StreamClosed when the stream must stop before the job ends (lifetime, a revoked reader, Redis
    unreachable for two keep-alives). Releases `guard`'s slot however it ends."""
    keepalive, lifetime, _ = _conf()
    key = events.stream_key(job_id)
    started = time.monotonic()
    deadline, next_check = started + lifetime, started + keepalive
    backoff = _Backoff(keepalive, 2 * keepalive)
    fresh = last_id == "0-0"
    if last_id.startswith("db-"):
        last_id = "0-0"
    try:
        client = redis_client.async_client()
        # A finished job's stream is replayed without waiting, then ended: by its end entry, or from the
        # database when the stream has none (lost, or its worker died between commit and publish).
        final = await _db(_final_job, job_id)
        while True:
            _stop_if_cancelled()
            now = time.monotonic()
            if now >= deadline:
                raise StreamClosed(
                    "stream_lifetime",
                    f"The stream reached its maximum lifetime ({lifetime:g} s); reconnect with Last-Event-ID to go on.",
                    408,
                )
            try:
                if final is not None:
                    batch = await client.xread({key: last_id}, count=200)
                else:
                    block_ms = max(1, int((min(next_check, deadline) - now) * 1000))  # 0 would block for ever
                    batch = await client.xread({key: last_id}, block=block_ms, count=200)
                backoff.reset()
            except aioredis.RedisError as exc:
                if final is not None:
                    break  # Redis cannot replay it: the database can
                log.info("job %s: reading its stream failed: %s", job_id, exc)
                if not await backoff.wait():
                    final, _ = await _db(_keepalive_check, job_id, None)
                    if final is not None:
                        break
                    raise StreamClosed(
                        "stream_unavailable",
                        "The job's stream cannot be read now; reconnect with Last-Event-ID to go on.",
                        503,
                    ) from exc
                batch = None
            if batch:
                for entry_id, fields in batch[0][1]:
                    last_id, fresh = entry_id.decode(), False
                    event = fields[b"event"].decode()
                    yield event, fields[b"data"].decode(), last_id
                    if event in ("done", "error"):
                        return
            elif final is not None:
                break  # replayed all there is, and no end entry: the database ends it
            if time.monotonic() >= next_check:
                final, allowed = await _db(_keepalive_check, job_id, guard)
                if not allowed:
                    raise StreamClosed(
                        "credentials_revoked", "The key or session that opened this stream is no longer valid.", 401
                    )
                if guard is not None:
                    await guard.refresh()
                next_check = time.monotonic() + keepalive
                if final is None:
                    yield None
        for entry in _from_database(final, fresh):
            yield entry
    finally:
        if guard is not None:
            await guard.release()


async def _stream(job_id, last_id: str, guard: StreamGuard):
    try:
        async with aclosing(job_event_entries(job_id, last_id, guard)) as entries:  # closed (slot freed) with this one
            async for entry in entries:
                yield (
                    ": waiting\n\n" if entry is None else events.sse(*entry)
                )  # a comment keeps proxies from closing an idle stream
    except StreamClosed as exc:
        # No `done`: the job goes on. EventSource reconnects after `retry` ms with Last-Event-ID (and stops on
        # the 401 a revoked key then gets); other clients do the same.
        log.info("job %s: stream closed (%s)", job_id, exc.code)
        yield f": closed: {exc.code}: {exc.message}\nretry: {int(_conf()[0] * 1000)}\n\n"
