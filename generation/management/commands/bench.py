"""Figures for the model path, printed as JSON. All measured in this run, on this machine.

    python manage.py bench                  # load times, raw transformers vs the engine, a headline job
    python manage.py bench --uncached       # also the first-ever load (GGUF conversion) in a fresh cache
    python manage.py bench --e2e http://127.0.0.1:8000   # also a headline job through a running site
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

NEWS = (
    "The city council voted on Tuesday to build a new bridge over the Elm River, at a cost of 40 million dollars. "
    "Construction starts next spring and should finish in 2028. Local businesses welcomed the decision, saying the "
    "old bridge caused daily traffic jams."
)
PROMPT = [{"role": "user", "content": "Write a short article about the benefits of urban cycling."}]


def _load_in_fresh_process(cache_dir: str | None) -> float:
    cmd = [sys.executable, "manage.py", "prepare_model", "--json"] + (["--cache-dir", cache_dir] if cache_dir else [])
    out = subprocess.run(cmd, cwd=settings.BASE_DIR, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["load_s"]


def _memory_bandwidth_gb_s(size_mb: int = 512, repeat: int = 5) -> float:
    """Copy throughput of a buffer far larger than the caches: bytes read plus bytes written per second."""
    import torch

    src = torch.ones(size_mb * 1024 * 1024 // 4)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - started)
    return 2 * src.numel() * 4 / best / 1e9


class Command(BaseCommand):
    help = "Measure model load, decode speed and a headline job; print JSON."

    def add_arguments(self, parser):
        parser.add_argument("--uncached", action="store_true", help="Also time a first load into an empty cache.")
        parser.add_argument("--e2e", metavar="URL", help="Also run a headline job through the site at URL.")
        parser.add_argument("--tokens", type=int, default=64)
        parser.add_argument("--repeat", type=int, default=3)

    def handle(self, uncached, e2e, tokens, repeat, **options):
        import torch

        from generation.engine import GenerationRequest
        from generation.worker import get_engine

        report = {"machine": {"torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}}
        if uncached:
            with tempfile.TemporaryDirectory() as empty:
                report["load_uncached_s"] = _load_in_fresh_process(empty)
        report["load_cached_s"] = _load_in_fresh_process(None)

        engine = get_engine()
        report["model"] = engine.model_name
        ids = torch.tensor([engine.encode_chat(PROMPT)], device=engine.device)

        def raw():
            started = time.monotonic()
            out = engine.model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False
            )
            return (out.shape[1] - ids.shape[1]) / (time.monotonic() - started)

        def ours():
            request = GenerationRequest(messages=PROMPT, max_new_tokens=tokens, temperature=0)
            started = time.monotonic()
            result = engine.generate(request)
            return result.completion_tokens / (time.monotonic() - started)

        report["raw_transformers_batch1_tok_s"] = round(statistics.median(raw() for _ in range(repeat)), 2)
        report["engine_batch1_tok_s"] = round(statistics.median(ours() for _ in range(repeat)), 2)

        # Concurrent requests, as a worker's threads submit them: all share the engine's batches.
        params_mb = sum(p.numel() * p.element_size() for p in engine.model.parameters()) / 1e6
        for concurrency in (1, 8, 32):
            requests = [
                GenerationRequest(messages=PROMPT, max_new_tokens=tokens, temperature=0.8, seed=i) for i in range(concurrency)
            ]
            started = time.monotonic()
            futures = [engine.submit(r) for r in requests]
            produced = sum(f.result().completion_tokens for f in futures)
            report[f"engine_concurrent_{concurrency}_tok_s"] = round(produced / (time.monotonic() - started), 2)
        bandwidth = _memory_bandwidth_gb_s()
        bound = bandwidth * 1e3 / params_mb
        report["memory_bandwidth_gb_s"] = round(bandwidth, 2)
        report["weights_mb"] = round(params_mb, 1)
        report["batch1_bound_tok_s"] = round(bound, 2)
        report["raw_batch1_share_of_bound"] = round(report["raw_transformers_batch1_tok_s"] / bound, 3)
        report["engine_batch1_share_of_bound"] = round(report["engine_batch1_tok_s"] / bound, 3)

        headline = GenerationRequest(
            messages=[{"role": "user", "content": f"Write a headline for this news story.\n\nStory: {NEWS}"}],
            max_new_tokens=32, temperature=0.8, top_p=0.95, n=5, seed=1, stop=["\n"],
        )  # fmt: skip
        started = time.monotonic()
        result = engine.generate(headline)
        took = time.monotonic() - started
        report["engine_headline_n5"] = {
            "seconds": round(took, 2),
            "completion_tokens": result.completion_tokens,
            "tok_s": round(result.completion_tokens / took, 2),
        }
        if e2e:
            report["e2e_headline_job"] = self._e2e(e2e.rstrip("/"))
        self.stdout.write(json.dumps(report, indent=2))

    def _e2e(self, base: str) -> dict:
        """A headline job through the running site's API, Celery worker and database, timed from the POST."""
        from generation import services

        user, _ = get_user_model().objects.get_or_create(username="bench")
        _, key = services.api_key_create(user, name="bench")
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        body = json.dumps({"kind": "headline", "inputs": {"text": NEWS}}).encode()
        started = time.monotonic()
        with urllib.request.urlopen(urllib.request.Request(f"{base}/api/v1/jobs/", body, headers)) as resp:
            job = json.load(resp)
        while job["status"] in ("queued", "running"):
            time.sleep(0.1)
            with urllib.request.urlopen(urllib.request.Request(f"{base}/api/v1/jobs/{job['id']}/", headers=headers)) as resp:
                job = json.load(resp)
        seconds = time.monotonic() - started
        return {
            "status": job["status"],
            "seconds": round(seconds, 2),
            "outputs": len(job["outputs"]),
            "completion_tokens": job["usage"]["completion_tokens"],
            "completion_tok_s": round((job["usage"]["completion_tokens"] or 0) / seconds, 2),
        }
