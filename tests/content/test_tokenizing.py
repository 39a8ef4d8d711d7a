"""The web side's prompt rendering and token counts must equal the engine's, without torch."""

import pytest

from generation.content.tokenizing import PromptCounter
from generation.engine import EngineConfig, load_engine
from tests.support.tiny_llama import build_llama2_style

MESSAGES = [
    {"role": "system", "content": "You write headlines."},
    {"role": "user", "content": "The council voted for a bridge. 城市议会投票决定修建新桥。 {not a placeholder}"},
]


def counter_for(engine) -> PromptCounter:
    d = engine.describe()
    return PromptCounter(
        chat_template=d["chat_template"],
        tokenizer_json=d["tokenizer_json"],
        special_tokens=d["special_tokens"],
        context_length=d["context_length"],
    )


def test_same_text_and_count_as_the_engine_chatml(tiny_engine):
    counter = counter_for(tiny_engine)
    assert counter.render(MESSAGES) == tiny_engine.tokenizer.apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=True
    )
    assert counter.count(MESSAGES) == tiny_engine.count_tokens(MESSAGES)
    assert counter.context_length == 256


@pytest.fixture(scope="module")
def llama2_engine(tmp_path_factory):
    folder = build_llama2_style(tmp_path_factory.mktemp("llama2"))
    return load_engine(EngineConfig(model_path=str(folder), cache_dir=str(tmp_path_factory.mktemp("cache"))))


def test_same_text_and_count_as_the_engine_llama2_format(llama2_engine):
    counter = counter_for(llama2_engine)
    assert counter.render(MESSAGES).startswith("<s>[INST] <<SYS>>\nYou write headlines.\n<</SYS>>")
    assert counter.count(MESSAGES) == llama2_engine.count_tokens(MESSAGES)


SAMPLES = [
    MESSAGES,
    [{"role": "user", "content": "城市议会周二投票决定在榆树河上修建一座新桥，耗资四千万美元。“这是好消息，”市长说。"}],
    [{"role": "user", "content": "def f(x):\n    return {x: [1, 2.5e-3, 'a\\tb']}  # 40% of $5,000 — naïve café"}],
    [
        {"role": "system", "content": "<|im_start|> is text here"},
        {"role": "user", "content": "  spaces   and\n\n\nnewlines "},
    ],
]


@pytest.mark.parametrize("messages", SAMPLES)
def test_the_web_counts_what_llamacpp_counts(gguf_engine, messages):
    """The llama.cpp worker tokenizes with llama.cpp; the web tier with the GGUF's vocabulary converted to a
    Hugging Face tokenizer. Both must give the same count, or the web would refuse prompts that fit (or queue
    ones that do not)."""
    counter = counter_for(gguf_engine)
    assert counter.render(messages) == gguf_engine.render_chat(messages)
    assert counter.count(messages) == gguf_engine.count_tokens(messages)
