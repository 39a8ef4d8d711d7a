"""Requests from many threads share forward passes; each gets what it would get alone (on every local backend)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from generation.engine import EngineError, GenerationRequest, GenerationTimeout

PROMPTS = [
    "The council voted.",
    "Write a headline for this news story about a new bridge over the river, which opens next spring.",
    "城市议会投票决定在河上修建一座新桥。",
    "def add(a, b):",
    "Summarise the following text in at most sixty words: local businesses welcomed the decision.",
]


def request(i, **kw):
    base = dict(
        messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
        max_new_tokens=6 + 3 * (i % 4),
        temperature=0.0,
        n=1,
        seed=i,
    )
    return GenerationRequest(**{**base, **kw})


def run_together(engine, requests):
    """Submit all at once, so they are admitted into the same running batch."""
    futures = [engine.submit(r) for r in requests]
    return [f.result(timeout=120) for f in futures]


def run_in_one_admission(engine, requests):
    """As run_together, but the model thread finds every request waiting when it next looks, rather than the
    first one alone while the others are still being encoded."""
    scheduler, held = engine._scheduler, []
    scheduler.submit = lambda active: held.append(active) or active.future  # hold them back for a moment
    try:
        futures = [engine.submit(r) for r in requests]
    finally:
        del scheduler.submit
    waiting = scheduler._waiting
    with waiting.mutex:  # all in, then one wake-up
        waiting.queue.extend(held)
        waiting.unfinished_tasks += len(held)
        waiting.not_empty.notify()
    return [f.result(timeout=120) for f in futures]


def test_greedy_output_is_the_same_alone_or_batched(engine):
    requests = [request(i) for i in range(8)]
    alone = [engine.generate(r).texts for r in requests]
    together = [res.texts for res in run_together(engine, [request(i) for i in range(8)])]
    assert together == alone


def test_seeded_sampling_is_the_same_alone_or_batched(engine):
    make = lambda i: request(i, temperature=1.0, top_p=0.9, n=2, seed=100 + i)  # noqa: E731
    alone = [engine.generate(make(i)).texts for i in range(6)]
    together = [res.texts for res in run_together(engine, [make(i) for i in range(6)])]
    assert together == alone


def test_requests_from_many_threads_join_a_running_batch(engine):
    """Threads arriving at different moments (as Celery's threads do) still get their own outputs."""
    requests = [request(i, max_new_tokens=20) for i in range(12)]
    alone = [engine.generate(r).texts for r in requests]
    with ThreadPoolExecutor(max_workers=12) as pool:
        together = list(
            pool.map(lambda r: engine.generate(r).texts, [request(i, max_new_tokens=20) for i in range(12)])
        )
    assert together == alone


def test_a_cancelled_request_leaves_the_batch_and_the_others_finish(engine):
    stop = threading.Event()
    steps = []

    def cancelled():
        steps.append(1)
        return stop.is_set() or len(steps) >= 4

    others = [request(i, max_new_tokens=25) for i in range(3)]
    expected = [engine.generate(r).texts for r in others]
    victim = request(0, max_new_tokens=200, cancelled=cancelled)
    results = run_together(engine, [victim] + [request(i, max_new_tokens=25) for i in range(3)])
    assert results[0].finish_reasons == ["cancelled"] and results[0].completion_tokens == 4
    assert [r.texts for r in results[1:]] == expected


def test_a_request_past_its_time_limit_fails_and_frees_its_rows(engine):
    """The victim fails with the reason; from then on the batch holds only the others' rows, and they finish
    with the text they would have had alone."""
    # The others are long enough to outlive the victim's deadline whatever the machine's speed: they are
    # submitted first and need far more steps than fit in 0.05 s.
    others = [request(i, max_new_tokens=180) for i in range(3)]
    expected = [engine.generate(r).texts for r in others]
    failed_at, rows_after = [], []
    scheduler = engine._scheduler

    def watch(index, text, tokens):  # runs on the model thread, between steps
        if failed_at:
            rows_after.append((tokens, scheduler.rows))

    futures = [engine.submit(r, on_delta=watch) for r in others]
    victim = engine.submit(request(0, max_new_tokens=180, n=2, temperature=1.0, time_limit=0.05))
    victim.add_done_callback(lambda f: failed_at.append(1))
    with pytest.raises(GenerationTimeout, match=r"time limit of 0\.05 s"):
        victim.result(timeout=120)
    assert [f.result(timeout=120).texts for f in futures] == expected
    # Rows leave the batch at the end of the step in which the victim failed: every later step has 3 rows or fewer.
    later = [rows for tokens, rows in rows_after if tokens > rows_after[0][0]]
    assert later and max(later) <= 3


def test_each_request_keeps_its_own_limits_and_candidates(engine):
    results = run_together(engine, [request(0, max_new_tokens=3, n=3, temperature=1.0), request(1, max_new_tokens=9)])
    assert len(results[0].texts) == 3 and results[0].completion_tokens <= 9
    assert results[1].completion_tokens <= 9 and len(results[1].texts) == 1


class DeviceMemory:
    """Gives the model a device with room for `limit` cached positions (rows x sequence length): beyond it a
    decoder layer raises CUDA's out-of-memory error, half-way through the forward pass as on a real GPU."""

    def __init__(self, model, limit):
        self.limit, self.raised = limit, 0
        self._hook = model.model.layers[1].register_forward_pre_hook(self._check, with_kwargs=True)

    def _check(self, module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        cache = kwargs.get("past_key_values")
        held = cache.get_seq_length() if cache is not None else hidden.shape[1]
        if hidden.shape[0] * held > self.limit:
            self.raised += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._hook.remove()


def test_out_of_memory_splits_the_batch_and_every_request_still_finishes(tiny_engine, caplog):
    """Both places memory runs out: admitting (prefill fewer at once) and mid-step (the newest requests wait
    with their tokens and resume later). Outputs are exactly what each request gives alone."""
    requests = lambda: [request(i, max_new_tokens=24) for i in range(6)]  # noqa: E731
    alone = [tiny_engine.generate(r).texts for r in requests()]
    lengths = [len(tiny_engine.encode_chat(r.messages)) for r in requests()]
    # Room for three prompts, but not for three rows five tokens later: six prompts at once run out (admitted
    # three at a time), then a decoding step of three rows runs out.
    with DeviceMemory(tiny_engine.model, limit=3 * (max(lengths) + 5)) as memory:
        results = run_in_one_admission(tiny_engine, requests())
    assert [r.texts for r in results] == alone
    assert "out of memory while admitting requests" in caplog.text and "out of memory in a decoding step" in caplog.text
    assert any(r.timings["preempted"] for r in results) and memory.raised >= 2


def test_a_request_too_big_for_memory_fails_alone_and_the_engine_goes_on(tiny_engine):
    with (
        DeviceMemory(tiny_engine.model, limit=8),
        pytest.raises(EngineError, match="does not fit in the model's memory"),
    ):
        tiny_engine.generate(request(1))
    assert tiny_engine.generate(request(0)).texts == tiny_engine.generate(request(0)).texts
