"""The model engine: loads a LLaMA-family model and generates text. No Django imports here.

The web process never imports this package (it pulls in torch); only the Celery worker and the management
commands that run the model do.
"""

from .engine import Engine, GenerationRequest, GenerationResult
from .errors import EngineError, GenerationTimeout, PromptTooLong
from .loading import EngineConfig, load_engine

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
