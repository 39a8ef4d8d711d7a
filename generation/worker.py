"""The model engine of this worker process: loaded once, before the worker takes its first job.

Only Celery workers (and commands that run the model) touch this module's engine; the web process never
calls `get_engine`, so it never imports torch.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

log = logging.getLogger("generation.worker")

_engine = None
_lock = threading.Lock()


def engine_config():
    from .engine import EngineConfig

    cfg = settings.AIGC
    return EngineConfig(
        model_path=cfg["MODEL_PATH"],
        model_name=cfg["MODEL_NAME"],
        cache_dir=cfg["MODEL_CACHE_DIR"],
        device=cfg["DEVICE"],
        dtype=cfg["DTYPE"],
    )


def get_engine():
    """The process's engine, loading (and warming up) the model on first use."""
    global _engine
    with _lock:
        if _engine is None:
            from .engine import load_engine

            started = time.monotonic()
            engine = load_engine(engine_config())
            if settings.AIGC["WARMUP"]:
                log.info("warm-up generation took %.2f s", engine.warmup())
            log.info("engine ready in %.1f s", time.monotonic() - started)
            _engine = engine
        return _engine


def set_engine(engine) -> None:
    """Install an already-built engine (tests build a tiny one)."""
    global _engine
    with _lock:
        _engine = engine
