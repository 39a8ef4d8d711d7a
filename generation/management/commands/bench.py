"""Figures for the model path, printed as JSON. All measured in this run, on this machine.

    python manage.py bench                  # everything below
    python manage.py bench --quick          # only the in-process figures (no uncached load, no full path)
    python manage.py bench --e2e http://127.0.0.1:8000   # also a headline job through an already running site

In order: cold start (uncached: GGUF conversion into an empty cache; cached), raw transformers one prompt at a
time, the engine at 1, 8 and 32 concurrent requests, memory bandwidth and the batch-1 bound it sets, then the
full path: a web server (uvicorn) and a Celery worker started here on this machine's database and Redis, jobs
posted through the API and read back as server-sent events, one at a time and 32 at once.
"""

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

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


def _memory_bandwidth_gb_s(size_mb: int = 512, repeat: int = 5, device: str = "cpu") -> float:
    """Copy throughput of a buffer far larger than the caches: bytes read plus bytes written per second."""
    import torch

    src = torch.ones(size_mb * 1024 * 1024 // 4, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeat):
        _sync(device)
        started = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return 2 * src.numel() * 4 / best / 1e9


def _sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


# Published Llama-3-8B shape, and a tiny one to check the command anywhere.
RANDOM_SHAPES = {
    "llama3-8b": dict(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5,
    ),
    "tiny": dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=49152, max_position_embeddings=2048,
    ),
}  # fmt: skip


def _random_model_figures(shape: str, tokens: int) -> dict:
    """Decode speed of the engine on a random-weight Llama of a given shape, against the memory-bandwidth bound.
    Text is meaningless; the bundled tokenizer encodes prompts and decodes what it can (unknown ids are skipped)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from generation.engine import Engine, GenerationRequest
    from generation.engine.loading import resolve_device_dtype
    from generation.worker import get_engine

    device, dtype = resolve_device_dtype("auto", "auto")
    config = LlamaConfig(**RANDOM_SHAPES[shape], attn_implementation="sdpa")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(previous)
    tokenizer = get_engine().tokenizer  # the configured model's: any tokenizer does for random weights
    engine = Engine(model, tokenizer, f"random {shape}", "random", device)
    engine.warmup()
    weights_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    report = {"shape": shape, "device": str(device), "dtype": str(dtype).removeprefix("torch."),
              "parameters_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 3)}  # fmt: skip
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name()
    for concurrency in (1, 64):
        requests = [
            GenerationRequest(messages=PROMPT, max_new_tokens=tokens, temperature=0.8, seed=i) for i in range(concurrency)
        ]
        _sync(device)
        started = time.monotonic()
        produced = sum(f.result().completion_tokens for f in [engine.submit(r) for r in requests])
        report[f"engine_concurrent_{concurrency}_tok_s"] = round(produced / (time.monotonic() - started), 2)
    bandwidth = _memory_bandwidth_gb_s(size_mb=2048 if device.type == "cuda" else 512, device=str(device))
    bound = bandwidth * 1e9 / weights_bytes
    report.update(
        {
            "memory_bandwidth_gb_s": round(bandwidth, 1),
            "weights_gb": round(weights_bytes / 1e9, 2),
            "batch1_bound_tok_s": round(bound, 2),
            "batch1_share_of_bound": round(report["engine_concurrent_1_tok_s"] / bound, 3),
        }
    )
    return report


class Command(BaseCommand):
    help = "Measure model load, decode speed and a headline job; print JSON."

    def add_arguments(self, parser):
        parser.add_argument("--quick", action="store_true", help="Skip the uncached load and the full path.")
        parser.add_argument("--uncached", action="store_true", help="With --quick: still time a load into an empty cache.")
        parser.add_argument("--e2e", metavar="URL", help="Also run a headline job through the site at URL.")
        parser.add_argument("--tokens", type=int, default=64)
        parser.add_argument("--repeat", type=int, default=3)
        parser.add_argument("--jobs", type=int, default=32, help="Concurrent jobs for the full path.")
        parser.add_argument(
            "--random-model", choices=sorted(RANDOM_SHAPES), help="Only: the engine on a randomly initialised Llama of this "
            "shape (llama3-8b: the published Llama-3-8B config, for GPU hosts), batch 1 and 64 concurrent requests.",
        )  # fmt: skip

    def handle(self, quick, uncached, e2e, tokens, repeat, jobs, random_model, **options):
        import torch

        if random_model:
            self.stdout.write(json.dumps(_random_model_figures(random_model, tokens), indent=2))
            return

        from generation.engine import GenerationRequest
        from generation.worker import get_engine

        report = {"machine": {"torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}}
        if uncached or not quick:
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
        if not quick:
            report["full_path"] = FullPath(self.stderr).measure(jobs)
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


ARTICLE = {"topic": "the benefits of urban cycling", "words": 120}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


class FullPath:
    """Jobs through the API, a Celery worker and the database, started here as in production (Procfile)."""

    def __init__(self, log) -> None:
        self.log = log

    def measure(self, concurrent: int) -> dict:
        from django.core.management import call_command

        from generation import processes, services

        call_command("migrate", interactive=False, verbosity=0)
        redis_url, redis_server = settings.REDIS_URL, None
        if not processes.redis_answers(redis_url):
            redis_server, redis_url = processes.embedded_redis()
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        env = processes.process_env(REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url, AIGC_QUEUE=queue, WEB_CONCURRENCY=1)
        port = processes.free_port()
        self.base = f"http://127.0.0.1:{port}"
        user, _ = get_user_model().objects.get_or_create(username="bench")
        _, key = services.api_key_create(user, name="bench")
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        with tempfile.TemporaryDirectory() as tmp:
            worker_log, web_log = Path(tmp) / "worker.log", Path(tmp) / "web.log"
            started = time.monotonic()
            worker = processes.start_worker(env, queue, worker_log, concurrency=max(64, concurrent))
            web = processes.start_web(env, port, web_log)
            try:
                processes.wait_for_worker(worker, worker_log, timeout=600)
                processes.wait_for_web(web, f"{self.base}/api/v1/templates/", web_log)
                report = {"worker_ready_s": round(time.monotonic() - started, 2)}
                self.log.write("full path: one job at a time...")
                sequential = [self._job(seed) for seed in range(3)]
                self.log.write(f"full path: {concurrent} jobs at once...")
                together, wall = self._at_once(concurrent)
            finally:
                processes.stop(web)
                processes.stop(worker)
                if redis_server is not None:
                    redis_server.shutdown()
        one_s = sum(j["seconds"] for j in sequential)
        one_tok_s = sum(j["completion_tokens"] for j in sequential) / one_s
        many_tok_s = sum(j["completion_tokens"] for j in together) / wall
        everyone = sequential + together
        latency = [j["stream_latency_ms"] for j in everyone if j["stream_latency_ms"] is not None]
        first = [j["first_text_ms"] for j in everyone if j["first_text_ms"] is not None]
        report.update(
            {
                "job": "writing/article, 120 words, temperature 0.8, a seed per job",
                "one_at_a_time_tok_s": round(one_tok_s, 2),
                f"concurrent_{concurrent}_tok_s": round(many_tok_s, 2),
                f"concurrent_{concurrent}_speedup": round(many_tok_s / one_tok_s, 2),
                "one_job_e2e_s": [j["seconds"] for j in sequential],
                "one_job_engine_s": [j["engine_s"] for j in sequential],
                "one_job_e2e_over_engine": round(statistics.median(j["seconds"] / j["engine_s"] for j in sequential), 3),
                # From the engine producing a job's first token to a reader of the job's event stream receiving text.
                "stream_latency_ms_p50": round(_percentile(latency, 0.5), 1),
                "stream_latency_ms_p95": round(_percentile(latency, 0.95), 1),
                # From the POST to the first text on the stream (includes queueing and prefill).
                "first_text_ms_p50": round(_percentile(first, 0.5), 1),
                "first_text_ms_p95": round(_percentile(first, 0.95), 1),
                "failed": sum(j["status"] != "succeeded" for j in everyone),
            }
        )
        return report

    def _request(self, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        return urllib.request.urlopen(urllib.request.Request(self.base + path, data, self.headers), timeout=900)

    def _job(self, seed: int) -> dict:
        """Post one job, read its event stream to the end, then fetch it."""
        posted = time.time()
        with self._request("/api/v1/jobs/", {"kind": "writing", "inputs": ARTICLE, "params": {"seed": seed, "temperature": 0.8}}) as resp:
            job_id = json.load(resp)["id"]
        first_text = None
        with self._request(f"/api/v1/jobs/{job_id}/events/") as stream:
            event = None
            for raw in stream:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                    if event == "delta" and first_text is None:
                        first_text = time.time()
                    if event in ("done", "error"):
                        break
        ended = time.time()
        with self._request(f"/api/v1/jobs/{job_id}/") as resp:
            job = json.load(resp)
        produced = job["timings"].get("first_token_at")
        return {
            "status": job["status"],
            "seconds": round(ended - posted, 3),
            "engine_s": job["timings"].get("total_s"),
            "completion_tokens": job["usage"]["completion_tokens"] or 0,
            "stream_latency_ms": (first_text - produced) * 1e3 if first_text and produced else None,
            "first_text_ms": (first_text - posted) * 1e3 if first_text else None,
        }

    def _at_once(self, count: int) -> tuple[list[dict], float]:
        results: list[dict] = []
        threads = [threading.Thread(target=lambda s=seed: results.append(self._job(s))) for seed in range(100, 100 + count)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results, time.monotonic() - started
