"""A job's token stream: deltas appended to a Redis Stream `job:<id>`, read back as server-sent events.

Redis Streams give every entry an id, so a reader that joins late or reconnects with `Last-Event-ID` gets
exactly the entries after that id: no gap, no repeat. Streams are short-lived (they expire after the job
ends); the database keeps the final text, and readers of a lost stream fall back to it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref

import redis

from .redis_client import async_client, client

log = logging.getLogger("generation.events")

STREAM_TTL_S = 3600
PROGRESS_EVERY_S = 0.25  # a re-sampling round's token count: often enough to move, not one entry per token


def stream_key(job_id) -> str:
    return f"job:{job_id}"


# Open streams per user, across web processes: a sorted set per user, one member per open stream scored by
# the time (Redis's clock) it expires unless refreshed. A stream refreshes its member at each keep-alive and
# removes it when it ends; the members of a process that died age out. The server's clock, so that the hosts'
# clocks need not agree.
_SLOT_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 1)
return 1
"""


def stream_slots_key(user_id) -> str:
    return f"streams:user:{user_id}"


async def stream_slot_take(user_id, member: str, cap: int, ttl_s: float) -> bool:
    """Count one more open stream of `user_id` unless `cap` are open already (then False). Taking a slot
    already held refreshes it: the keep-alive calls this with no cap. Raises RedisError."""
    found = await async_client().eval(_SLOT_TAKE, 1, stream_slots_key(user_id), member, cap, ttl_s)
    return bool(found)


async def stream_slot_release(user_id, member: str) -> None:
    await async_client().zrem(stream_slots_key(user_id), member)


async def stream_slots_open(user_id) -> int:
    """How many streams `user_id` has open (the expired ones not counted)."""
    client = async_client()
    seconds, micros = await client.time()
    return await client.zcount(stream_slots_key(user_id), seconds + micros / 1e6, "+inf")


def _append(job_id, event: str, data: dict) -> bytes | None:
    """Append one entry to a job's stream; its id, or None if Redis did not take it. Never raises: streaming
    is best effort, the final text always reaches the database."""
    try:
        return client().xadd(stream_key(job_id), {"event": event, "data": json.dumps(data, ensure_ascii=False)})
    except redis.RedisError as exc:  # one line per event, no traceback: Redis away means many of these
        log.warning("could not publish a %s event of job %s: %s", event, job_id, exc)
        return None


def _length(job_id) -> int:
    """How many entries the job's stream holds (0 after Redis restarted empty, or on error)."""
    try:
        return client().xlen(stream_key(job_id))
    except redis.RedisError:
        return 0


def publish_delta(job_id, index: int, text: str, tokens: int | None = None) -> bytes | None:
    """One piece of new text for candidate `index`, with the candidate's tokens so far while it runs."""
    return _append(
        job_id, "delta", {"index": index, "text": text, **({"tokens": tokens} if tokens is not None else {})}
    )


def publish_discard(job_id, index: int, reason: str) -> None:
    """Candidate `index`, streamed in the first round, was refused by the checks (`reason`: grounding, chatter,
    contract, repeat...): readers grey it out. A later `delta`/`replace` for that index is its replacement."""
    _append(job_id, "discard", {"index": index, "reason": reason})


def publish_status(job_id, phase: str, **details) -> None:
    """What the job is doing while no text streams, e.g. `resampling` with its round and how many are missing."""
    _append(job_id, "status", {"phase": phase, **details})


def publish_progress(job_id, round_no: int, tokens: int) -> None:
    """Tokens generated so far by the whole job (every round), while a re-sampling round runs without streaming."""
    _append(job_id, "progress", {"round": round_no, "tokens": tokens})


def publish_end(job_id, status: str, error: str = "") -> None:
    """The last entry of a stream: the job's final status. The stream then expires."""
    key = stream_key(job_id)
    event = "error" if status == "failed" else "done"
    data = {"status": status, **({"error": error} if error else {})}
    try:
        pipe = client().pipeline()
        pipe.xadd(key, {"event": event, "data": json.dumps(data, ensure_ascii=False)})
        pipe.expire(key, STREAM_TTL_S)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not end the stream of job %s", job_id, exc_info=True)


def streamed_tokens(job_id) -> int:
    """How many tokens the job's stream says were generated: each candidate's last delta's token count (or one
    token per delta where deltas do not say), or the last `progress` count of a re-sampling round where that is
    more (it counts every round). 0 when nothing was streamed, or Redis lost the stream (or is away)."""
    try:
        entries = client().xrange(stream_key(job_id))
    except redis.RedisError:
        log.warning("could not read the stream of job %s", job_id, exc_info=True)
        return 0
    found: dict[int, int] = {}
    progress = 0
    for _, fields in entries:
        event = fields.get(b"event")
        if event not in (b"delta", b"progress"):
            continue
        try:
            data = json.loads(fields[b"data"])
            index, tokens = int(data.get("index", 0)), data.get("tokens")
        except (KeyError, ValueError, TypeError, AttributeError):
            continue
        counted = isinstance(tokens, int) and tokens > 0
        if event == b"progress":
            progress = max(progress, tokens) if counted else progress
            continue
        so_far = found.get(index, 0)
        found[index] = max(so_far, tokens) if counted else so_far + 1
    return max(sum(found.values()), progress)


def reset(job_id) -> None:
    """A job that runs again (redelivered after a worker died) starts its stream afresh."""
    try:
        client().delete(stream_key(job_id))
    except redis.RedisError:
        log.warning("could not reset the stream of job %s", job_id, exc_info=True)


def sse(event: str, data: str, event_id: str | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id else []
    lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return "\n".join(lines) + "\n\n"


def publish_replace(job_id, index: int, text: str) -> None:
    """Post-processing changed text already streamed for candidate `index`: here is its whole final text."""
    _append(job_id, "replace", {"index": index, "text": text})


class JobStreamer:
    """Streams a job's candidates as they are written, shaped as the final output will be.

    Only text that shaping will keep is sent (`view(raw)` must extend what was sent); when the job ends, the
    rest of each final output follows as a delta, or, if post-processing changed text already sent, as one
    `replace` event. So joining a candidate's deltas (after any replace) always gives its final output.
    If Redis lost deltas (it was restarted or unreachable mid-job), every candidate ends with a `replace`."""

    def __init__(self, job_id, view) -> None:
        self.job_id = job_id
        self.view = view
        self.raw: dict[int, str] = {}
        self.sent: dict[int, str] = {}
        self.live = True
        self.gap = False  # a delta Redis did not take: readers may lack some text
        self.appended = 0
        self.first_sent_at: float | None = None  # wall clock, to measure how soon readers see text

    def on_delta(self, index: int, text: str, tokens: int | None = None) -> None:
        if not self.live:
            return
        self.raw[index] = self.raw.get(index, "") + text
        shown, sent = self.view(self.raw[index]), self.sent.get(index, "")
        if len(shown) > len(sent) and shown.startswith(sent):
            taken = publish_delta(self.job_id, index, shown[len(sent) :], tokens) is not None
            self.gap, self.appended = self.gap or not taken, self.appended + taken
            self.sent[index] = shown
            self.first_sent_at = self.first_sent_at or time.time()

    def discard(self, index: int, reason: str) -> None:
        if self.live:
            publish_discard(self.job_id, index, reason)

    def status(self, phase: str, **details) -> None:
        if self.live:
            publish_status(self.job_id, phase, **details)

    def counter(self, round_no: int, before: int):
        """The delta callback of a re-sampling round: its text is dropped (those candidates are judged before
        anyone sees them), its token counts sent as `progress`, the job's total with the `before` of earlier
        rounds, at most every PROGRESS_EVERY_S."""
        counts: dict[int, int] = {}
        last = 0.0

        def on_delta(index: int, text: str, tokens: int | None = None) -> None:
            nonlocal last
            counts[index] = tokens if tokens is not None else counts.get(index, 0) + 1
            now = time.monotonic()
            if self.live and now - last >= PROGRESS_EVERY_S:
                last = now
                publish_progress(self.job_id, round_no, before + sum(counts.values()))

        return on_delta

    def finish(self, outputs: list[str]) -> None:
        self.live = False
        # A stream that lost its start (Redis restarted empty mid-job, then took later deltas) has a gap too.
        self.gap = self.gap or (self.appended > 0 and _length(self.job_id) < self.appended)
        for index, final in enumerate(outputs):
            sent = self.sent.get(index, "")
            if self.gap:
                publish_replace(self.job_id, index, final)
            elif final.startswith(sent):
                if len(final) > len(sent):
                    publish_delta(self.job_id, index, final[len(sent) :])
            else:
                publish_replace(self.job_id, index, final)


def cancel_key(job_id) -> str:
    return f"job:{job_id}:cancel"


def request_cancel(job_id) -> None:
    """Tell the worker running the job to stop it (the database already says cancelled)."""
    try:
        client().set(cancel_key(job_id), 1, ex=STREAM_TTL_S)
    except redis.RedisError:
        log.warning("could not signal the cancel of job %s; it stops when it finishes", job_id, exc_info=True)


class CancelFlag:
    """Polled by the engine between decoding steps: has this job been cancelled? Answered from memory: one
    watcher thread per process asks Redis about every running job's flag in one round trip every `EVERY`
    seconds, so the model's thread never waits on Redis, however many jobs share its batch."""

    EVERY = 0.1

    def __init__(self, job_id) -> None:
        self.key = cancel_key(job_id)
        self.value = False
        _watcher.check([self])  # once now, from the job's own thread: a job cancelled already stops at once
        _watcher.add(self)

    def __call__(self) -> bool:
        return self.value


class _CancelWatcher:
    def __init__(self) -> None:
        self._flags: weakref.WeakSet[CancelFlag] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, flag: CancelFlag) -> None:
        with self._lock:
            self._flags.add(flag)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="cancel-watcher", daemon=True)
                self._thread.start()

    def poll(self) -> None:
        with self._lock:
            flags = [f for f in self._flags if not f.value]  # a flag once set stays set; jobs' flags go with them
        self.check(flags)

    @staticmethod
    def check(flags: list) -> None:
        if not flags:
            return
        try:
            pipe = client().pipeline(transaction=False)
            for flag in flags:
                pipe.exists(flag.key)
            for flag, found in zip(flags, pipe.execute(), strict=True):
                flag.value = flag.value or bool(found)
        except redis.RedisError:  # Redis away: jobs go on, and are cancelled when it answers again
            pass

    def _loop(self) -> None:
        while True:
            time.sleep(CancelFlag.EVERY)
            self.poll()


_watcher = _CancelWatcher()
