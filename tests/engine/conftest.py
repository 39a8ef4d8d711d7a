"""Every behaviour the engine interface promises is tested on each local backend: the transformers one on a
tiny random Llama, the llama.cpp one on the bundled SmolLM2 GGUF."""

import pytest


@pytest.fixture(params=["transformers", "llamacpp"])
def engine(request):
    return request.getfixturevalue("tiny_engine" if request.param == "transformers" else "gguf_engine")
