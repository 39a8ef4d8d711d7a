"""Figures for the model path, printed as JSON. All measured in this run, on this machine, so ratios between
backends and against llama.cpp's own API hold whatever the machine's speed.

    python manage.py bench                         # every backend, engine and full path, peers, targets
    python manage.py bench --quick                 # only the in-process figures (no fresh processes, no full path)
    python manage.py bench --backends llamacpp     # one backend
    python manage.py bench --random-model llama3-8b   # GPU hosts: the transformers engine on Llama-3-8B shapes
    python manage.py bench --random-model llama3-8b --openai-url http://vllm:8000/v1 --openai-model m
                                                   # ... and a vLLM server serving the same shape, side by side

Per backend (llamacpp, transformers): a fresh process's load into an empty cache, one request at a time, 1, 8
and 32 concurrent requests, and a 5-candidate headline against a 1-candidate one of the same length. The peer
is llama.cpp itself through llama-cpp-python on the same GGUF with the same threads: its high-level API for one
request, and 32 sequences decoded in one context with its low-level batch API. The full path starts a web
server (uvicorn) and a Celery worker per backend on this machine's database and Redis, as in production: jobs
posted through the API, read back as server-sent events, timed with the server's own timestamps.
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import datetime
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
HEADLINE = [{"role": "user", "content": f"Write a headline for this news story.\n\nStory: {NEWS}"}]
ARTICLE = {"topic": "the benefits of urban cycling", "words": 120}
BACKENDS = ("llamacpp", "transformers")
TARGETS = {  # issue targets, as ratios measured in one run
    "one_job_vs_llamacpp": (">=", 0.9),
    "jobs_32_vs_llamacpp": (">=", 0.9),
    "headline_5_over_1": ("<=", 1.5),
    "worker_ready_s": ("<=", 10.0),
}


def _median_rate(run, repeat: int) -> float:
    return round(statistics.median(run() for _ in range(repeat)), 2)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


def _load_in_fresh_process(backend: str, cache_dir: str) -> float:
    """A fresh process loading the model into an empty cache and warming it up, as a new worker does."""
    cmd = [sys.executable, "manage.py", "prepare_model", "--json", "--backend", backend, "--cache-dir", cache_dir]
    out = subprocess.run(cmd, cwd=settings.BASE_DIR, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["load_s"]


def _engine(backend: str):
    import dataclasses

    from generation.engine import load_engine
    from generation.workers.engines import engine_config

    return load_engine(dataclasses.replace(engine_config(), backend=backend))


# --- the engine in this process ---------------------------------------------------------------------------


def engine_figures(engine, tokens: int, repeat: int) -> dict:
    from generation.engine import GenerationRequest

    report = {"model": engine.model_name, "device": str(getattr(engine, "device", "cpu"))}
    engine.warmup()

    def one():
        started = time.monotonic()
        result = engine.generate(GenerationRequest(messages=PROMPT, max_new_tokens=tokens, temperature=0))
        return result.completion_tokens / (time.monotonic() - started)

    report["batch1_tok_s"] = _median_rate(one, repeat)
    for concurrency in (1, 8, 32):
        requests = [
            GenerationRequest(messages=PROMPT, max_new_tokens=tokens, temperature=0.8, seed=i)
            for i in range(concurrency)
        ]
        started = time.monotonic()
        produced = sum(f.result().completion_tokens for f in [engine.submit(r) for r in requests])
        report[f"concurrent_{concurrency}_tok_s"] = round(produced / (time.monotonic() - started), 2)
    report["headline_n5_vs_n1"] = headline_ratio(engine, repeat)
    return report


def headline_messages() -> list[dict]:
    """The messages a headline job for NEWS runs with: the default headline template's production version."""
    from generation import selectors, services
    from generation.content import prompts

    template = selectors.template_default_for_kind("headline")
    if template is None:
        return HEADLINE
    version = services.resolve_version(template)
    return prompts.render_messages(version.system_prompt, version.user_template, {"text": NEWS})


def headline_ratio(engine, repeat: int) -> dict:
    """A headline job's request with 5 candidates and with 1, run to the same length: a headline's 20 tokens, no
    stop string (a candidate ends early only at end-of-text, which makes the 5-candidate request shorter)."""
    from generation.engine import GenerationRequest

    messages = headline_messages()

    def timed(n: int) -> tuple[float, int]:
        request = GenerationRequest(messages=messages, max_new_tokens=20, temperature=0.8, top_p=0.95, n=n, seed=1)
        started = time.monotonic()
        result = engine.generate(request)
        return time.monotonic() - started, result.timings["steps"]

    one = [timed(1) for _ in range(repeat)]
    five = [timed(5) for _ in range(repeat)]
    one_s, five_s = statistics.median(t for t, _ in one), statistics.median(t for t, _ in five)
    return {
        "prompt_tokens": len(engine.encode_chat(messages)),
        "n1_s": round(one_s, 3),
        "n5_s": round(five_s, 3),
        "n1_steps": one[0][1],
        "n5_steps": five[0][1],
        "ratio": round(five_s / one_s, 3),
    }


def greedy_agreement(engine, count: int = 16, tokens: int = 48) -> float:
    """Share of greedy requests whose output batched (all submitted at once) equals their output alone."""
    from generation.engine import GenerationRequest

    prompts = [
        f"Write a short note about {topic}."
        for topic in (
            "bridges",
            "rivers",
            "cycling",
            "markets",
            "libraries",
            "trains",
            "parks",
            "schools",
            "bakeries",
            "museums",
            "harbours",
            "gardens",
            "theatres",
            "farms",
            "tunnels",
            "stadiums",
        )
    ][:count]
    make = lambda p: GenerationRequest(messages=[{"role": "user", "content": p}], max_new_tokens=tokens, temperature=0)  # noqa: E731
    alone = [engine.generate(make(p)).texts for p in prompts]
    together = [f.result().texts for f in [engine.submit(make(p)) for p in prompts]]
    return round(sum(a == b for a, b in zip(alone, together, strict=True)) / len(prompts), 3)


def transformers_raw_batch1(engine, tokens: int, repeat: int) -> float:
    """transformers' own generate, one prompt, greedy: what the engine adds or saves per token."""
    import torch

    ids = torch.tensor([engine.encode_chat(PROMPT)], device=engine.device)

    def run():
        started = time.monotonic()
        out = engine.model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False
        )
        return (out.shape[1] - ids.shape[1]) / (time.monotonic() - started)

    return _median_rate(run, repeat)


# --- llama.cpp itself, the peer -----------------------------------------------------------------------------


def llamacpp_peer(
    engine, messages: list[dict], tokens: int, repeat: int, lengths: list[int], temperature: float = 0.0
) -> dict:
    """llama.cpp itself, measured in a process of its own: two llama.cpp contexts driven from two threads of
    one process slow each other down (each keeps its own OpenMP team spinning on the same cores)."""
    args = {
        "path": engine.path,
        "threads": engine.threads,
        "messages": messages,
        "tokens": tokens,
        "repeat": repeat,
        "lengths": lengths,
        "temperature": temperature,
        "prompt": engine.encode_chat(messages),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json") as fh:
        json.dump(args, fh)
        fh.flush()
        out = subprocess.run(
            [sys.executable, "manage.py", "bench", "--peer", fh.name],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return json.loads(out)


def peer_figures(
    path: str,
    threads: int,
    messages: list[dict],
    tokens: int,
    repeat: int,
    lengths: list[int],
    temperature: float,
    prompt: list[int],
) -> dict:
    """llama.cpp through llama-cpp-python on the same GGUF and thread count, doing the same work as the studio:
    its high-level API for one request (prompt evaluated afresh each time; llama.cpp's own sampler, greedy and
    at `temperature`), and one sequence per length in `lengths` decoded together in one context with its batch
    API: all prompts prefilled in one call, then a step for every unfinished sequence until each has produced
    its length (the lengths the studio's jobs produced), greedy."""
    import llama_cpp as lc
    import llama_cpp.llama_cpp as low
    import numpy as np

    from generation.engine.llamacpp import model_params

    # Llama() takes no option for the extra buffers; it reads llama.cpp's defaults while it loads, so it is
    # given the studio's for that moment (the same weights layout on both sides of the comparison).
    default_params, low.llama_model_default_params = low.llama_model_default_params, model_params
    try:
        llm = lc.Llama(model_path=path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
    finally:
        low.llama_model_default_params = default_params

    def one(t: float):
        def run():
            llm.reset()  # no prefix reuse between runs: each pays its prefill, as a new job does
            started = time.monotonic()
            out = llm.create_chat_completion(messages=messages, max_tokens=tokens, temperature=t, seed=1)
            return out["usage"]["completion_tokens"] / (time.monotonic() - started)

        return run

    report = {
        "api": "llama_cpp.Llama.create_chat_completion",
        "threads": threads,
        "process": "its own",
        "batch1_greedy_tok_s": _median_rate(one(0.0), repeat),
    }
    if temperature:
        report[f"batch1_temperature_{temperature:g}_tok_s"] = _median_rate(one(temperature), repeat)
    model, n_vocab = llm._model.model, llm.n_vocab()
    sequences = len(lengths)
    params = lc.llama_context_default_params()
    params.n_ctx, params.n_seq_max = sequences * (len(prompt) + max(lengths) + 8), sequences
    params.n_batch = sequences * len(prompt) + sequences
    params.n_threads = params.n_threads_batch = threads
    ctx = lc.llama_init_from_model(model, params)
    batch = lc.llama_batch_init(params.n_batch, 0, 1)

    def put(n, token, pos, seq, logits):
        batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.logits[n] = token, pos, 1, logits
        batch.seq_id[n][0] = seq

    try:
        started = time.monotonic()
        n = 0
        for seq in range(sequences):
            for pos, token in enumerate(prompt):
                put(n, token, pos, seq, pos == len(prompt) - 1)
                n += 1
        batch.n_tokens = n
        assert lc.llama_decode(ctx, batch) == 0
        running = list(range(sequences))  # logits row i belongs to running[i]
        produced = [1] * sequences
        while True:
            logits = np.ctypeslib.as_array(lc.llama_get_logits(ctx), shape=(len(running), n_vocab))
            picks = logits.argmax(axis=1).tolist()
            step = [(seq, token) for seq, token in zip(running, picks, strict=True) if produced[seq] < lengths[seq]]
            if not step:
                break
            for i, (seq, token) in enumerate(step):
                put(i, token, len(prompt) + produced[seq] - 1, seq, True)
                produced[seq] += 1
            batch.n_tokens = len(step)
            running = [seq for seq, _ in step]
            assert lc.llama_decode(ctx, batch) == 0
        report[f"sequences_{sequences}_tok_s"] = round(sum(lengths) / (time.monotonic() - started), 2)
        report["sequence_lengths"] = f"{min(lengths)}-{max(lengths)} tokens, {sum(lengths)} in all"
    finally:
        lc.llama_batch_free(batch)
        lc.llama_free(ctx)
    return report


# --- random weights of a published shape (GPU hosts) ---------------------------------------------------------

RANDOM_SHAPES = {
    "llama3-8b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        max_position_embeddings=8192,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
    ),
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=49152,
        max_position_embeddings=2048,
    ),
}


def _bundled_tokenizer():
    """The bundled model's vocabulary as a transformers tokenizer (any tokenizer does for random weights)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from generation.engine.loading import bundled_gguf_path, gguf_tokenizer_json, weights_hash

    gguf, cache = bundled_gguf_path(), Path(settings.AIGC["MODEL_CACHE_DIR"])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(gguf_tokenizer_json(gguf, weights_hash(gguf, cache), cache)),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    return tokenizer


def _memory_bandwidth_gb_s(device: str, size_mb: int) -> float:
    """Copy throughput of a buffer far larger than the caches: bytes read plus bytes written per second."""
    import torch

    src = torch.ones(size_mb * 1024 * 1024 // 4, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(5):
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


def random_model_figures(shape: str, tokens: int) -> dict:
    """Decode speed of the transformers engine on a random-weight Llama of a given shape, against the
    memory-bandwidth bound. Text is meaningless; what counts is tokens per second."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from generation.engine import TransformersEngine
    from generation.engine.loading import resolve_device_dtype

    device, dtype = resolve_device_dtype("auto", "auto")
    config = LlamaConfig(**RANDOM_SHAPES[shape], attn_implementation="sdpa")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(previous)
    engine = TransformersEngine(model, _bundled_tokenizer(), f"random {shape}", "random", device)
    engine.warmup()
    weights_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    report = {
        "shape": shape,
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "parameters_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 3),
    }
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name()
    report["transformers"] = concurrency_figures(engine, tokens, (1, 64))
    bandwidth = _memory_bandwidth_gb_s(str(device), 2048 if device.type == "cuda" else 512)
    bound = bandwidth * 1e9 / weights_bytes
    report.update(
        {
            "memory_bandwidth_gb_s": round(bandwidth, 1),
            "weights_gb": round(weights_bytes / 1e9, 2),
            "batch1_bound_tok_s": round(bound, 2),
            "batch1_share_of_bound": round(report["transformers"]["concurrent_1_tok_s"] / bound, 3),
        }
    )
    return report


def concurrency_figures(engine, tokens: int, levels) -> dict:
    from generation.engine import GenerationRequest

    out = {}
    for concurrency in levels:
        requests = [
            GenerationRequest(messages=PROMPT, max_new_tokens=tokens, temperature=0.8, seed=i)
            for i in range(concurrency)
        ]
        if hasattr(engine, "submit"):
            started = time.monotonic()
            produced = sum(f.result().completion_tokens for f in [engine.submit(r) for r in requests])
        else:  # the remote engine: one thread per request, as a worker's threads call it
            results = []
            threads = [
                threading.Thread(target=lambda r=r, out=results: out.append(engine.generate(r))) for r in requests
            ]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            produced = sum(r.completion_tokens for r in results)
        out[f"concurrent_{concurrency}_tok_s"] = round(produced / (time.monotonic() - started), 2)
    return out


# --- the command --------------------------------------------------------------------------------------------


class Command(BaseCommand):
    help = "Measure every backend (engine and full path) against llama.cpp's own API in one run; print JSON."

    def add_arguments(self, parser):
        parser.add_argument("--quick", action="store_true", help="Only the in-process figures.")
        parser.add_argument("--backends", default=",".join(BACKENDS), help="Comma-separated: llamacpp, transformers.")
        parser.add_argument("--tokens", type=int, default=64)
        parser.add_argument("--repeat", type=int, default=3)
        parser.add_argument("--jobs", type=int, default=32, help="Concurrent jobs for the full path.")
        parser.add_argument(
            "--random-model",
            choices=sorted(RANDOM_SHAPES),
            help="Only: the transformers engine on a randomly initialised "
            "Llama of this shape (llama3-8b: the published Llama-3-8B config, for GPU hosts), 1 and 64 concurrent requests.",
        )
        parser.add_argument(
            "--openai-url", help="With --random-model: also a server (vLLM) at this URL, same requests."
        )
        parser.add_argument("--openai-model", default="", help="The model id that server serves.")
        parser.add_argument("--peer", metavar="ARGS_JSON", help=argparse.SUPPRESS)  # the peer's own process

    def handle(
        self, quick, backends, tokens, repeat, jobs, random_model, openai_url, openai_model, peer=None, **options
    ):
        if peer:
            self.stdout.write(json.dumps(peer_figures(**json.loads(Path(peer).read_text()))))
            return
        if random_model:
            report = random_model_figures(random_model, tokens)
            if openai_url:
                from generation.engine.remote import RemoteEngine

                remote = RemoteEngine(openai_url, openai_model, api_key=os.environ.get("VLLM_API_KEY", ""))
                remote.warmup()
                report["openai"] = {"url": openai_url, **concurrency_figures(remote, tokens, (1, 64))}
            self.stdout.write(json.dumps(report, indent=2))
            return
        from django.core.management import call_command

        from generation.engine.loading import cpu_has_native_bf16

        call_command("migrate", interactive=False, verbosity=0)  # the templates the jobs run with
        chosen = [b.strip() for b in backends.split(",") if b.strip()]
        report = {"machine": {"cpus": os.cpu_count(), "native_bf16": cpu_has_native_bf16()}, "tokens": tokens}
        engines = {}
        for backend in chosen:
            self.stderr.write(f"{backend}: engine figures...")
            engines[backend] = _engine(backend)
            figures = engine_figures(engines[backend], tokens, repeat)
            if backend == "transformers":
                figures["raw_transformers_batch1_tok_s"] = transformers_raw_batch1(engines[backend], tokens, repeat)
                figures["dtype"] = str(engines[backend].model.dtype).removeprefix("torch.")
            if backend == "llamacpp":
                figures["threads"] = engines[backend].threads
                figures["greedy_agreement_batched_vs_alone"] = greedy_agreement(engines[backend])
            if not quick:
                with tempfile.TemporaryDirectory() as empty:
                    figures["fresh_process_load_s"] = _load_in_fresh_process(backend, empty)
            report[backend] = figures
        full = {}
        if not quick:
            for backend in chosen:
                self.stderr.write(f"{backend}: full path...")
                full[backend] = FullPath(self.stderr).measure(backend, jobs)
            report["full_path"] = full
        if "llamacpp" in engines:
            self.stderr.write("llama.cpp's own API...")
            # Like with like: the full path's writing job (sampled at its temperature) if it ran, else the engine
            # figures' greedy prompt.
            path = full.get("llamacpp")
            peer = llamacpp_peer(
                engines["llamacpp"],
                path["messages"] if path else PROMPT,
                path["max_new_tokens"] if path else tokens,
                repeat,
                lengths=path["lengths"] if path else [tokens] * jobs,
                temperature=0.8 if path else 0.0,
            )
            report["llamacpp_peer"] = {
                "single": peer,
                "messages": "the full path's job" if path else "the engine figures' prompt",
            }
            report["targets"] = targets(report)
        for figures in full.values():
            figures.pop("messages", None)
            figures.pop("lengths", None)
            figures.pop("streamed_lengths", None)
        self.stdout.write(json.dumps(report, indent=2, ensure_ascii=False))


def targets(report: dict) -> dict:
    """The issue's targets, each with its measured value and whether it holds."""
    peer = report["llamacpp_peer"]["single"]
    engine = report["llamacpp"]
    path = report.get("full_path", {}).get("llamacpp")
    jobs = next((k for k in peer if k.startswith("sequences_")), None)
    # A sampled job against llama.cpp sampling at the same temperature, greedy against greedy; and never against
    # the slower of the two.
    sampled = peer.get(next((k for k in peer if k.startswith("batch1_temperature_")), ""), None)
    peer_one = max(peer["batch1_greedy_tok_s"], sampled or 0) if path else peer["batch1_greedy_tok_s"]
    values = {
        "one_job_vs_llamacpp": (path["one_job_decode_tok_s"] if path else engine["batch1_tok_s"]) / peer_one,
        "jobs_32_vs_llamacpp": (
            path[f"concurrent_{jobs.split('_')[1]}_tok_s"] if path else engine["concurrent_32_tok_s"]
        )
        / peer[jobs],
        "headline_5_over_1": engine["headline_n5_vs_n1"]["ratio"],
    }
    if path:
        values["worker_ready_s"] = path["worker_ready_s"]
    out = {"measured_through": "full path (API, Celery, database, SSE)" if path else "the engine in process"}
    for name, value in values.items():
        op, bound = TARGETS[name]
        out[name] = {
            "value": round(value, 3),
            "target": f"{op} {bound}",
            "met": value >= bound if op == ">=" else value <= bound,
        }
    return out


def _throughput(jobs: list[dict]) -> float:
    created, finished = min(j["created_at"] for j in jobs), max(j["finished_at"] for j in jobs)
    return round(sum(j["completion_tokens"] for j in jobs) / (finished - created), 2)


def _parse_time(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


class FullPath:
    """Jobs through the API, a Celery worker and the database, started here as in production (Procfile)."""

    def __init__(self, log) -> None:
        self.log = log

    def measure(self, backend: str, concurrent: int) -> dict:
        from generation import services
        from generation.infra import processes
        from generation.models import Job

        redis_url, redis_server = settings.REDIS_URL, None
        if not processes.redis_answers(redis_url):
            redis_server, redis_url = processes.embedded_redis()
        queue = f"bench-{uuid.uuid4().hex[:8]}"
        user, _ = get_user_model().objects.get_or_create(username="bench")
        # Limits are for users; a benchmark of the engine must not be throttled by them.
        _, key = services.api_key_create(user, name=f"bench {backend}")
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        port = processes.free_port()
        self.base = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as tmp:
            env = processes.process_env(
                REDIS_URL=redis_url,
                CELERY_BROKER_URL=redis_url,
                AIGC_QUEUE=queue,
                WEB_CONCURRENCY=1,
                AIGC_MODELS=json.dumps({"default": {"backend": backend}}),
                AIGC_MODEL_CACHE_DIR=str(Path(tmp) / "cache"),
                AIGC_REQUESTS_PER_MINUTE="100000",
                AIGC_TOKENS_PER_DAY="1000000000",
            )
            worker_log, web_log = Path(tmp) / "worker.log", Path(tmp) / "web.log"
            started = time.monotonic()
            worker = self.worker = processes.start_worker(env, queue, worker_log, concurrency=max(64, concurrent))
            web = self.web = processes.start_web(env, port, web_log)
            try:
                processes.wait_for_worker(worker, worker_log, timeout=900)
                report = {"worker_ready_s": round(time.monotonic() - started, 2), "worker_cache": "empty"}
                # The worker takes jobs from here; once per model it also prepares the web tier's tokenizer (a
                # child process for some seconds). The jobs measured below start after that, as on every
                # later start of a worker.
                report["model_published_s"] = self._wait_published(
                    started_at=time.time() - (time.monotonic() - started)
                )
                processes.wait_for_web(web, f"{self.base}/api/v1/templates/", web_log)
                self.log.write(f"{backend} full path: one job at a time...")
                sequential = [self._job(seed) for seed in range(3)]
                self.log.write(f"{backend} full path: {concurrent} jobs at once, nobody reading...")
                together, together_cpu = self._at_once(concurrent, stream=False)
                self.log.write(f"{backend} full path: {concurrent} jobs at once, each read as a stream...")
                streamed, streamed_cpu = self._at_once(concurrent)
            finally:
                processes.stop(web)
                processes.stop(worker)
                if redis_server is not None:
                    redis_server.shutdown()
        first = Job.objects.get(pk=sequential[0]["id"])
        everyone = sequential + streamed + together
        latency = [j["stream_latency_ms"] for j in everyone if j["stream_latency_ms"] is not None]
        ttft = [j["first_text_ms"] for j in streamed if j["first_text_ms"] is not None]
        report.update(
            {
                "job": "writing/article, 120 words, temperature 0.8, a seed per job",
                "messages": first.messages,
                "max_new_tokens": first.params["max_new_tokens"],
                "lengths": [max(1, j["completion_tokens"]) for j in together],
                "streamed_lengths": [max(1, j["completion_tokens"]) for j in streamed],
                # Server timestamps: completion tokens over the job's own time, started (claimed) to finished (saved).
                "one_job_decode_tok_s": round(
                    statistics.median(
                        j["completion_tokens"] / (j["finished_at"] - j["started_at"]) for j in sequential
                    ),
                    2,
                ),
                "one_job_e2e_s": [j["seconds"] for j in sequential],
                "one_job_engine_s": [j["engine_s"] for j in sequential],
                # All completion tokens over the time from the first job created to the last finished; with a reader
                # on every job's event stream (web tier and readers on the same cores), and without.
                f"concurrent_{concurrent}_tok_s": _throughput(together),
                f"concurrent_{concurrent}_streamed_tok_s": _throughput(streamed),
                f"concurrent_{concurrent}_cpu_s": together_cpu,
                f"concurrent_{concurrent}_streamed_cpu_s": streamed_cpu,
                # From the POST to the first text on the job's event stream, with all jobs posted at once.
                f"concurrent_{concurrent}_first_text_ms_p50": round(_percentile(ttft, 0.5), 1),
                f"concurrent_{concurrent}_first_text_ms_p95": round(_percentile(ttft, 0.95), 1),
                # From the engine producing a job's first token to a reader of its event stream receiving text.
                "stream_latency_ms_p50": round(_percentile(latency, 0.5), 1),
                "stream_latency_ms_p95": round(_percentile(latency, 0.95), 1),
                "failed": sum(j["status"] != "succeeded" for j in everyone),
            }
        )
        return report

    def _wait_published(self, started_at: float, timeout: float = 300) -> float | None:
        from generation.models import ModelInfo

        since = datetime.fromtimestamp(started_at).astimezone()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = ModelInfo.objects.filter(alias="default", updated_at__gte=since).first()
            if info is not None:
                return round(info.updated_at.timestamp() - started_at, 2)
            time.sleep(0.2)
        return None

    def _request(self, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        return urllib.request.urlopen(urllib.request.Request(self.base + path, data, self.headers), timeout=900)

    def _job(self, seed: int, stream: bool = True) -> dict:
        """Post one job, read its event stream to the end (or, without `stream`, look at it twice a second until
        it is final), then fetch it."""
        posted = time.time()
        with self._request(
            "/api/v1/jobs/", {"kind": "writing", "inputs": ARTICLE, "params": {"seed": seed, "temperature": 0.8}}
        ) as resp:
            job_id = json.load(resp)["id"]
        first_text = None
        if stream:
            with self._request(f"/api/v1/jobs/{job_id}/events/") as events:
                for raw in events:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        event = line[7:]
                        if event == "delta" and first_text is None:
                            first_text = time.time()
                        if event in ("done", "error"):
                            break
        while True:
            with self._request(f"/api/v1/jobs/{job_id}/") as resp:
                job = json.load(resp)
            if stream or job["status"] not in ("queued", "running"):
                break
            self._final.wait()  # set when the database says every job of the run is final (see _at_once)
        ended = time.time()
        produced = job["timings"].get("first_token_at")
        return {
            "id": job_id,
            "status": job["status"],
            "seconds": round(ended - posted, 3),
            "engine_s": job["timings"].get("total_s"),
            "completion_tokens": job["usage"]["completion_tokens"] or 0,
            "created_at": _parse_time(job["created_at"]),
            "started_at": _parse_time(job["started_at"]),
            "finished_at": _parse_time(job["finished_at"]),
            "stream_latency_ms": (first_text - produced) * 1e3 if first_text and produced else None,
            "first_text_ms": (first_text - posted) * 1e3 if first_text else None,
        }

    def _at_once(self, count: int, stream: bool = True) -> tuple[list[dict], dict]:
        """`count` jobs posted at once. Without `stream` nobody reads them while they run: this process looks
        at the database once a second for all of them, so that polling clients do not take the cores the
        figure is about. Also returns the CPU seconds each process used meanwhile."""
        from generation.models import Job, JobStatus

        results: list[dict] = []
        self._final = threading.Event()
        before = self._cpu()
        threads = [
            threading.Thread(target=lambda s=seed: results.append(self._job(s, stream)))
            for seed in range(100, 100 + count)
        ]
        started = time.time()
        for thread in threads:
            thread.start()
        if not stream:
            since = datetime.fromtimestamp(started).astimezone()
            running = (JobStatus.QUEUED, JobStatus.RUNNING)
            while (
                Job.objects.filter(created_at__gte=since).count() < count
                or Job.objects.filter(created_at__gte=since, status__in=running).exists()
            ):
                time.sleep(1)
            self._final.set()
        for thread in threads:
            thread.join()
        after = self._cpu()
        return results, {name: round(after[name] - before[name], 1) for name in after}

    def _cpu(self) -> dict:
        """CPU seconds used so far by the worker, the web server, Redis and this process (the clients)."""
        from generation.infra import redis_client

        def of(pid) -> float:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        out = {"worker": of(self.worker.pid), "web": of(self.web.pid), "clients (this process)": of(os.getpid())}
        with contextlib.suppress(Exception):  # another machine's Redis has no /proc entry here
            out["redis"] = of(redis_client.client().info("server")["process_id"])
        return out
