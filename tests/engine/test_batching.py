"""Requests from many threads share forward passes; each gets what it would get alone."""

import threading
from concurrent.futures import ThreadPoolExecutor

from generation.engine import GenerationRequest

PROMPTS = [
    "The council voted.",
    "Write a headline for this news story about a new bridge over the river, which opens next spring.",
    "城市议会投票决定在河上修建一座新桥。",
    "def add(a, b):",
    "Summarise the following text in at most sixty words: local businesses welcomed the decision.",
]


def request(i, **kw):
    base = dict(messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], max_new_tokens=6 + 3 * (i % 4), temperature=0.0, n=1, seed=i)
    return GenerationRequest(**{**base, **kw})


def run_together(engine, requests):
    """Submit all at once, so they are admitted into the same running batch."""
    futures = [engine.submit(r) for r in requests]
    return [f.result(timeout=120) for f in futures]


def test_greedy_output_is_the_same_alone_or_batched(tiny_engine):
    requests = [request(i) for i in range(8)]
    alone = [tiny_engine.generate(r).texts for r in requests]
    together = [res.texts for res in run_together(tiny_engine, [request(i) for i in range(8)])]
    assert together == alone


def test_seeded_sampling_is_the_same_alone_or_batched(tiny_engine):
    make = lambda i: request(i, temperature=1.0, top_p=0.9, n=2, seed=100 + i)  # noqa: E731
    alone = [tiny_engine.generate(make(i)).texts for i in range(6)]
    together = [res.texts for res in run_together(tiny_engine, [make(i) for i in range(6)])]
    assert together == alone


def test_requests_from_many_threads_join_a_running_batch(tiny_engine):
    """Threads arriving at different moments (as Celery's threads do) still get their own outputs."""
    requests = [request(i, max_new_tokens=20) for i in range(12)]
    alone = [tiny_engine.generate(r).texts for r in requests]
    with ThreadPoolExecutor(max_workers=12) as pool:
        together = list(pool.map(lambda r: tiny_engine.generate(r).texts, [request(i, max_new_tokens=20) for i in range(12)]))
    assert together == alone


def test_a_cancelled_request_leaves_the_batch_and_the_others_finish(tiny_engine):
    stop = threading.Event()
    steps = []

    def cancelled():
        steps.append(1)
        return stop.is_set() or len(steps) >= 4

    others = [request(i, max_new_tokens=25) for i in range(3)]
    expected = [tiny_engine.generate(r).texts for r in others]
    victim = request(0, max_new_tokens=200, cancelled=cancelled)
    results = run_together(tiny_engine, [victim] + [request(i, max_new_tokens=25) for i in range(3)])
    assert results[0].finish_reasons == ["cancelled"] and results[0].completion_tokens == 4
    assert [r.texts for r in results[1:]] == expected


def test_each_request_keeps_its_own_limits_and_candidates(tiny_engine):
    results = run_together(tiny_engine, [request(0, max_new_tokens=3, n=3, temperature=1.0), request(1, max_new_tokens=9)])
    assert len(results[0].texts) == 3 and results[0].completion_tokens <= 9
    assert results[1].completion_tokens <= 9 and len(results[1].texts) == 1
