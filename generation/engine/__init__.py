"""The model engine: loads a LLaMA-family model and generates text, or passes requests to a remote
OpenAI-compatible server (remote.py). No Django imports here.

Local backends (one interface, local.LocalEngine): llamacpp.py (GGUF through llama.cpp) and
transformers_backend.py (Hugging Face checkpoints through torch). What they share is kept apart from what each
computes, as vLLM keeps scheduler, model runner and detokenizer apart: sequences.py (request and row state),
scheduler.py (admit, preempt, sample, advance), output.py (detokenising, stop strings, hold-back, deltas),
sampling.py (one rule over torch or NumPy logits).

The web process never imports this package's model side; only the Celery worker and the management commands
that run the model do. Errors, request types and chat.py import without torch, and so do the remote and the
llama.cpp engines: a worker that relays to a serving engine, or serves a GGUF, needs no torch at all.
"""

from .errors import EngineError, GenerationTimeout, PromptTooLong
from .types import GenerationRequest, GenerationResult

__all__ = [
    "EngineConfig",
    "EngineError",
    "GenerationRequest",
    "GenerationResult",
    "GenerationTimeout",
    "LlamaCppEngine",
    "PromptTooLong",
    "TransformersEngine",
    "load_engine",
]


def __getattr__(name: str):
    if name == "TransformersEngine":
        from .transformers_backend import TransformersEngine

        return TransformersEngine
    if name == "LlamaCppEngine":
        from .llamacpp import LlamaCppEngine

        return LlamaCppEngine
    if name in ("EngineConfig", "load_engine"):
        from . import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
