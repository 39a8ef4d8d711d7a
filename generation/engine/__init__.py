"""The model engine: loads a LLaMA-family model and generates text, or passes requests to a remote
OpenAI-compatible server (remote.py). No Django imports here.

The web process never imports this package's model side (it pulls in torch); only the Celery worker and the
management commands that run the model do. Errors and request types import without torch, and so does the
remote engine: a worker that only forwards to a serving engine needs no torch at all.
"""

from .errors import EngineError, GenerationTimeout, PromptTooLong
from .types import GenerationRequest, GenerationResult

__all__ = [
    "Engine",
    "EngineConfig",
    "EngineError",
    "GenerationRequest",
    "GenerationResult",
    "GenerationTimeout",
    "PromptTooLong",
    "load_engine",
]


def __getattr__(name: str):
    if name == "Engine":
        from .engine import Engine

        return Engine
    if name in ("EngineConfig", "load_engine"):
        from . import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
