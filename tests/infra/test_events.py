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
