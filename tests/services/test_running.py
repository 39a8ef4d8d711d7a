"""Running a job as its readers see it, on the real engine, database and Redis: a headline job whose first
candidates the checks refuse says so while it re-writes them (and its token counter keeps moving); a job
cancelled mid-stream keeps the text written so far and what it was charged."""

from __future__ import annotations

import json
import threading
import time

import pytest

from generation import services
from generation.infra import events, redis_client
from generation.models import Job, JobStatus
from generation.services import limits

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."


def stream_of(job_id) -> list[tuple[str, dict]]:
    return [
        (f[b"event"].decode(), json.loads(f[b"data"]))
        for _, f in redis_client.client().xrange(events.stream_key(job_id))
    ]


def joined(entries, index: int) -> str:
    text = ""
    for event, data in entries:
        if event == "delta" and data["index"] == index:
            text += data["text"]
        elif event == "replace" and data["index"] == index:
            text = data["text"]
    return text


@pytest.mark.django_db
def test_refused_first_round_candidates_are_discarded_and_the_re_writing_is_reported(user, tiny_engine, monkeypatch):
    monkeypatch.setattr(events, "PROGRESS_EVERY_S", 0)  # every re-sampling step reports (the tiny model is fast)
    job = services.job_create(
        user=user, kind="headline", inputs={"text": STORY}, params={"n": 3, "seed": 3, "max_new_tokens": 10}
    )
    services.job_run(job.pk, engine=tiny_engine)
    job.refresh_from_db()
    entries = stream_of(job.pk)
    kinds = [event for event, _ in entries]
    assert job.status == JobStatus.SUCCEEDED and job.rejections and kinds[-1] == "done"
    # The first round's text streams, then readers learn which of it the checks refused, and why.
    first_status = kinds.index("status")
    discards = [data for event, data in entries if event == "discard"]
    assert discards and kinds.index("discard") > kinds.index("delta")
    assert "discard" not in kinds[first_status:]
    assert {d["reason"] for d in discards} <= {*job.rejections, "repeat"}
    first_round = {data["index"]: data["tokens"] for event, data in entries[:first_status] if event == "delta"}
    assert {d["index"] for d in discards} <= set(first_round)
    # Each re-sampling round says what it re-writes.
    statuses = [data for event, data in entries if event == "status"]
    assert [s["round"] for s in statuses] == list(range(1, len(statuses) + 1))
    for s in statuses:
        assert (s["phase"], s["want"], s["rejected"]) == ("resampling", 3, [d["index"] for d in discards])
        assert 1 <= s["missing"] <= 3 and s["of"] >= len(statuses)
    # Its text is never shown unchecked; its tokens move the counter, on top of the first round's.
    last_progress = len(kinds) - 1 - kinds[::-1].index("progress")
    assert first_status < kinds.index("progress")
    assert not {"delta", "replace"} & set(kinds[first_status:last_progress])
    counts = [data["tokens"] for event, data in entries if event == "progress"]
    assert counts == sorted(counts) and sum(first_round.values()) < counts[0] <= counts[-1] <= job.completion_tokens
    # The old contract holds: joining each candidate's deltas (after any replace) gives its final text.
    assert [joined(entries, i) for i in range(3)] == list(job.outputs.values_list("text", flat=True))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_job_cancelled_mid_stream_keeps_the_text_written_and_the_tokens_charged(user, gguf_engine, client):
    job = services.job_create(
        user=user,
        kind="writing",
        inputs={"topic": "the history of bridges", "words": 600},
        params={"max_new_tokens": 1024, "temperature": 1.0},
    )
    runner = threading.Thread(target=services.job_run, args=(job.pk,), kwargs={"engine": gguf_engine})
    runner.start()
    deadline = time.monotonic() + 60
    while not [e for e, d in stream_of(job.pk) if e == "delta" and d["text"].strip()]:  # readers see some text
        assert time.monotonic() < deadline and runner.is_alive(), "no text was streamed"
        time.sleep(0.01)
    assert services.job_cancel(Job.objects.get(pk=job.pk), user=user)
    runner.join(60)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    (output,) = job.outputs.all()
    assert output.finish_reason == "cancelled" and output.text.strip()
    entries = stream_of(job.pk)
    assert entries[-1] == ("done", {"status": "cancelled"})
    assert joined(entries, 0) == output.text  # what readers saw is what was kept
    assert job.prompt_tokens > 0 and 0 < job.completion_tokens < 1024
    assert limits.tokens_used_today(user) == job.prompt_tokens + job.completion_tokens
    client.force_login(user)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Stopped: the text written before you cancelled." in page
    assert f"Tokens: {job.prompt_tokens} prompt, {job.completion_tokens} completion" in page


@pytest.mark.django_db
def test_a_job_cancelled_before_it_wrote_anything_keeps_no_output(user, tiny_engine):
    job = services.job_create(user=user, kind="headline", inputs={"text": STORY}, params={"n": 3})
    services.job_cancel(job, user=user)
    services.job_run(job.pk, engine=tiny_engine)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and not job.outputs.exists() and job.started_at is None
