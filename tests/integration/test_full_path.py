"""One job travels the real path: API -> PostgreSQL/SQLite -> Redis -> Celery worker -> SmolLM2 -> database."""

import json
import time

import pytest

from generation import services
from generation.infra import registry
from generation.models import Job, JobStatus, ModelInfo, PromptTemplate

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

NEWS = (
    "The city council voted on Tuesday to build a new bridge over the Elm River, at a cost of 40 million dollars. "
    "Construction starts next spring and should finish in 2028. Local businesses welcomed the decision, saying the "
    "old bridge caused daily traffic jams."
)


def wait_final(job_id, timeout=180) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.is_final:
            return job
        time.sleep(0.2)
    pytest.fail(f"job {job_id} still {job.status} after {timeout} s")


def test_headline_job_through_the_api_is_run_by_a_real_worker(worker_queue, api):
    started = time.monotonic()
    response = api.post("/api/v1/jobs/", {"kind": "headline", "inputs": {"text": NEWS}}, format="json")
    assert response.status_code == 202, response.content
    job = wait_final(response.json()["id"])
    elapsed = time.monotonic() - started
    assert job.status == JobStatus.SUCCEEDED, job.error + worker_queue.log_path.read_text()[-3000:]
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    headlines = [o["text"] for o in body["outputs"]]
    assert len(headlines) == 5
    assert all(h.strip() and "\n" not in h for h in headlines)
    assert len({h.casefold() for h in headlines}) == 5
    assert body["usage"]["prompt_tokens"] > 50 and body["usage"]["completion_tokens"] >= 5
    assert job.model_name == "SmolLM2-135M-Instruct" and len(job.weights_sha256) == 64
    print(f"\nheadline job end to end: {elapsed:.2f} s; {body['usage']}; {headlines}")


def test_a_failing_job_ends_failed_and_the_worker_lives_on(worker_queue, user):
    # A job whose stored prompt no longer fits the model (as after switching to a smaller-context model).
    template = PromptTemplate.objects.get(slug="summary")
    bad = Job.objects.create(
        owner=user,
        kind="summary",
        template=template,
        template_version=template.versions.get(number=1),
        inputs={"text": "x"},
        params={"max_new_tokens": 16, "temperature": 0, "top_p": 1.0, "n": 1, "seed": 1},
        messages=[{"role": "user", "content": "word " * 9000}],
    )
    services.dispatch.job_enqueue(bad.pk, bad.model_alias)
    good = services.job_create(user=user, kind="summary", inputs={"text": NEWS}, params={"max_new_tokens": 24})
    bad, good = wait_final(bad.pk), wait_final(good.pk)
    context = ModelInfo.objects.get(alias="default").context_length  # what the worker serves (2048 per row)
    assert bad.status == JobStatus.FAILED and f"exceed the model's context of {context} tokens" in bad.error
    assert good.status == JobStatus.SUCCEEDED and good.outputs.get().text
    assert worker_queue.poll() is None  # the worker process is still alive


def test_run_again_replays_the_same_text_with_the_real_model(worker_queue, user):
    """Sampled with a seed, and greedy: a rerun (same version, inputs, params, seed) gives the same text."""
    sampled = services.job_create(user=user, kind="headline", inputs={"text": NEWS}, params={"n": 3, "seed": 1234})
    greedy = services.job_create(
        user=user, kind="summary", inputs={"text": NEWS, "words": 30}, params={"temperature": 0, "max_new_tokens": 48}
    )
    for original in (sampled, greedy):
        original = wait_final(original.pk)
        assert original.status == JobStatus.SUCCEEDED, original.error
        replay = wait_final(services.job_rerun(original, user=user).pk)
        assert replay.template_version_id == original.template_version_id and replay.params == original.params
        texts = [list(j.outputs.values_list("text", flat=True)) for j in (original, replay)]
        assert texts[0] == texts[1] and all(texts[0])


def test_the_web_counts_prompt_tokens_exactly_as_the_engine(worker_queue, user):
    """The worker published its tokenizer and chat template; the web side's count must equal the engine's."""
    from generation import selectors
    from generation.engine import load_engine
    from generation.workers.engines import engine_config

    counter = selectors.prompt_counter("default")
    assert counter is not None and counter.context_length == registry.entry("default")["context"]
    engine = load_engine(engine_config())
    for text in (
        NEWS,
        "城市议会周二投票决定在榆树河上修建一座新桥，耗资四千万美元。",
        "Code: def f(x):\n    return {x}",
    ):
        job = services.job_create(user=user, kind="headline", inputs={"text": text})
        assert counter.count(job.messages) == engine.count_tokens(job.messages)
        assert counter.render(job.messages) == engine.render_chat(job.messages)


def test_a_prompt_beyond_the_context_is_refused_before_queueing(worker_queue, api):
    long_chinese = "城市议会周二投票决定在榆树河上修建一座新桥。" * 800  # 17,600 characters, well over the context
    response = api.post("/api/v1/jobs/", {"kind": "summary", "inputs": {"text": long_chinese}}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    context = ModelInfo.objects.get(alias="default").context_length
    assert error["param"] == "inputs.text" and f"context of {context} tokens" in error["message"]
    assert not Job.objects.exists()


def test_text_is_streamed_while_the_job_runs_and_joins_to_the_output(worker_queue, api):
    from generation.infra import events, redis_client

    response = api.post("/api/v1/jobs/", {"kind": "summary", "inputs": {"text": NEWS, "words": 40}}, format="json")
    job = wait_final(response.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    entries = redis_client.client().xrange(events.stream_key(job.pk))
    kinds = [fields[b"event"].decode() for _, fields in entries]
    assert kinds[-1] == "done" and kinds.count("delta") > 3
    text = ""
    for _, fields in entries:  # deltas append; a replace (post-processing cut text already sent) resets
        if fields[b"event"] in (b"delta", b"replace"):
            piece = json.loads(fields[b"data"])["text"]
            text = text + piece if fields[b"event"] == b"delta" else piece
    assert text == job.outputs.get().text
    first_delta_ms = int(entries[0][0].decode().split("-")[0])
    assert first_delta_ms < job.finished_at.timestamp() * 1000 - 200  # seen well before the job ended


def test_concurrent_jobs_share_the_worker_and_all_succeed(worker_queue, user):
    jobs = [
        services.job_create(
            user=user,
            kind="summary",
            inputs={"text": NEWS, "words": 20},
            params={"temperature": 0, "max_new_tokens": 24},
        )
        for _ in range(4)
    ]
    finished = [wait_final(j.pk) for j in jobs]
    assert all(j.status == JobStatus.SUCCEEDED for j in finished)
    texts = {j.outputs.get().text for j in finished}
    assert len(texts) == 1  # greedy: batched together, each gets what it would get alone
    # They overlapped: the four together took well under the sum of their durations.
    wall = (max(j.finished_at for j in finished) - min(j.started_at for j in finished)).total_seconds()
    assert wall < 0.75 * sum((j.finished_at - j.started_at).total_seconds() for j in finished)
