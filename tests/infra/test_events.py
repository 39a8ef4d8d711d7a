"""Job streams on a real Redis: whatever Redis loses mid-job, a reader joining the stream's deltas (after any
replace) ends with the job's final text."""

import json
import uuid

import pytest
import redis

from generation.infra import events, processes, redis_client


def read_back(job_id) -> dict[int, str]:
    """What a reader of the whole stream ends up showing, per candidate."""
    texts: dict[int, str] = {}
    for _, fields in redis_client.client().xrange(events.stream_key(job_id)):
        data = json.loads(fields[b"data"])
        if fields[b"event"] == b"delta":
            texts[data["index"]] = texts.get(data["index"], "") + data["text"]
        elif fields[b"event"] == b"replace":
            texts[data["index"]] = data["text"]
    return texts


@pytest.fixture
def job_id():
    job_id = f"test-{uuid.uuid4().hex}"
    yield job_id
    redis_client.client().delete(events.stream_key(job_id))


def stream(job_id, pieces, before_finish=lambda: None, during=None):
    streamer = events.JobStreamer(job_id, view=lambda raw: raw)
    for i, piece in enumerate(pieces):
        if during:
            during(i)
        streamer.on_delta(0, piece)
    before_finish()
    streamer.finish(["".join(pieces)])
    return streamer


def test_an_unbroken_stream_needs_no_replace(job_id):
    stream(job_id, ["The bridge ", "opens ", "in spring."])
    kinds = [f[b"event"] for _, f in redis_client.client().xrange(events.stream_key(job_id))]
    assert kinds == [b"delta"] * 3 and read_back(job_id) == {0: "The bridge opens in spring."}


def test_deltas_redis_refused_are_made_good_by_a_replace(job_id, monkeypatch):
    reachable = redis_client.client()
    away = redis.Redis(port=processes.free_port(), socket_connect_timeout=0.5)  # nothing listens there

    def during(i):  # Redis unreachable for the 2nd and 3rd pieces
        monkeypatch.setattr(redis_client, "_client", away if i in (1, 2) else reachable)

    stream(job_id, ["The bridge ", "opens ", "in spring ", "next year."], during=during)
    assert read_back(job_id) == {0: "The bridge opens in spring next year."}


def test_a_stream_that_lost_its_start_ends_with_a_replace(job_id):
    """Redis restarted empty mid-job: later deltas start a new stream that lacks the first ones."""
    wipe = lambda i: redis_client.client().delete(events.stream_key(job_id)) if i == 2 else None  # noqa: E731
    stream(job_id, ["The bridge ", "opens ", "in spring."], during=wipe)
    assert read_back(job_id) == {0: "The bridge opens in spring."}


def test_re_sampling_rounds_report_tokens_not_text_and_count_for_a_lost_attempt(job_id, monkeypatch):
    """A re-sampling round's text is dropped (unchecked), its tokens sent as the job's running total, which is
    what a retry charges for the lost attempt when it exceeds what the first round's deltas say."""
    monkeypatch.setattr(events, "PROGRESS_EVERY_S", 0)
    streamer = events.JobStreamer(job_id, view=lambda raw: raw)
    streamer.on_delta(0, "Council", 3)
    streamer.on_delta(1, "Bridge", 2)
    assert events.streamed_tokens(job_id) == 5
    streamer.discard(1, "grounding")
    streamer.status("resampling", round=1, of=4, rejected=[1], missing=1, want=2)
    count = streamer.counter(1, before=8)  # the first round used 8 tokens in all
    count(0, "Invented Mayor", 4)
    count(1, "Another", 2)
    entries = [
        (f[b"event"], json.loads(f[b"data"])) for _, f in redis_client.client().xrange(events.stream_key(job_id))
    ]
    assert entries[2:] == [
        (b"discard", {"index": 1, "reason": "grounding"}),
        (b"status", {"phase": "resampling", "round": 1, "of": 4, "rejected": [1], "missing": 1, "want": 2}),
        (b"progress", {"round": 1, "tokens": 12}),
        (b"progress", {"round": 1, "tokens": 14}),
    ]
    assert read_back(job_id) == {0: "Council", 1: "Bridge"}
    assert events.streamed_tokens(job_id) == 14
    streamer.finish(["Council votes", "Bridge opens"])
    count(0, "late", 9)  # a round that outlives the stream's end publishes nothing more
    assert read_back(job_id) == {0: "Council votes", 1: "Bridge opens"}
    assert events.streamed_tokens(job_id) == 14
