"""What only the llama.cpp backend does: GGUF files as they are, candidates sharing their prompt's KV, room in
its context counted before admitting, its own threads, and no torch in its process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from generation.engine import EngineConfig, EngineError, GenerationRequest, load_engine
from generation.engine.llamacpp import LlamaRunner

ROOT = Path(__file__).resolve().parents[2]
HEADLINE = [{"role": "user", "content": "Write a headline for this story: the city council voted to build a bridge."}]


def test_the_bundled_gguf_is_served_as_it_is(gguf_engine):
    assert gguf_engine.backend == "llamacpp" and gguf_engine.model_name == "SmolLM2-135M-Instruct"
    assert len(gguf_engine.weights_sha256) == 64
    assert gguf_engine.render_chat(HEADLINE).endswith("<|im_start|>assistant\n")  # the GGUF's own chat template
    text = gguf_engine.generate(GenerationRequest(messages=HEADLINE, max_new_tokens=24, temperature=0)).texts[0]
    assert len(text.split()) >= 2 and "<|im_end|>" not in text


def test_candidates_prefill_their_prompt_once(gguf_engine, monkeypatch):
    fed = []
    original = LlamaRunner._put
    monkeypatch.setattr(
        LlamaRunner,
        "_put",
        lambda self, n, token, pos, seq, logits: fed.append(pos) or original(self, n, token, pos, seq, logits),
    )
    prompt = len(gguf_engine.encode_chat(HEADLINE))
    result = gguf_engine.generate(GenerationRequest(messages=HEADLINE, max_new_tokens=8, temperature=1.0, n=5, seed=3))
    assert fed.count(0) == 1, "the prompt went into the batch once, not once per candidate"
    # The prompt once, then each candidate's tokens (the last sampled token of a finished row is never fed).
    assert len(fed) <= prompt + result.completion_tokens
    assert len(result.texts) == 5 and len(set(result.texts)) > 1


def test_a_request_longer_than_a_row_is_refused_and_the_engine_goes_on(gguf_engine):
    """Each row has `context` positions of its own: a request that cannot fit them is refused with the numbers."""
    with pytest.raises(EngineError, match="context of"):
        gguf_engine.generate(
            GenerationRequest(messages=HEADLINE, max_new_tokens=gguf_engine.context_length, temperature=0)
        )
    assert (
        gguf_engine.generate(GenerationRequest(messages=HEADLINE, max_new_tokens=4, temperature=0)).completion_tokens
        >= 1
    )


def test_threads_rows_and_context_come_from_the_config(tmp_path):
    """With 4 rows, three requests of three candidates cannot all run at once: they wait for free rows and
    each still gets exactly what it gets alone."""
    engine = load_engine(EngineConfig(backend="llamacpp", cache_dir=str(tmp_path), threads=1, context=512, max_rows=4))
    assert engine.threads == 1 and engine.context_length == 512
    make = lambda seed: GenerationRequest(messages=HEADLINE, max_new_tokens=12, temperature=1.0, n=3, seed=seed)  # noqa: E731
    alone = [engine.generate(make(seed)).texts for seed in range(3)]
    futures = [engine.submit(make(seed)) for seed in range(3)]
    assert [f.result(timeout=120).texts for f in futures] == alone


def test_a_path_that_is_not_a_gguf_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a GGUF file"):
        load_engine(EngineConfig(backend="llamacpp", model_path=str(tmp_path / "model.bin"), cache_dir=str(tmp_path)))


def test_a_llamacpp_worker_never_imports_torch(tmp_path):
    code = (
        "import sys; from generation.engine import EngineConfig, GenerationRequest, load_engine;"
        f"e = load_engine(EngineConfig(backend='llamacpp', cache_dir={str(tmp_path)!r}, context=256, max_rows=2));"
        "e.generate(GenerationRequest(messages=[{'role': 'user', 'content': 'Hi'}], max_new_tokens=3));"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "False"
