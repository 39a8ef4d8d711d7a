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


class Heartbeat:
    """Touches `heartbeat_at` of the jobs this process is running, every AIGC_HEARTBEAT_S, from one thread: one
    UPDATE for all of them. A job whose heartbeat stops (its worker died) is re-sent by the reconciler."""

    def __init__(self) -> None:
        self._jobs: set = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, job_id) -> None:
        with self._lock:
            self._jobs.add(job_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="job-heartbeat", daemon=True)
                self._thread.start()

    def remove(self, job_id) -> None:
        with self._lock:
            self._jobs.discard(job_id)

    def beat(self) -> int:
        from django.db import DatabaseError, close_old_connections
        from django.utils import timezone

        from .models import Job, JobStatus

        with self._lock:
            ids = list(self._jobs)
        if not ids:
            return 0
        try:
            return Job.objects.filter(pk__in=ids, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now())
        except DatabaseError:  # the database is away for a moment: the next beat tries again
            log.warning("could not record the heartbeat of %d running job(s)", len(ids), exc_info=True)
            close_old_connections()
            return 0

    def _loop(self) -> None:
        from django.db import connection

        while True:
            time.sleep(settings.AIGC["HEARTBEAT_S"])
            if not self.beat():
                connection.close()  # this thread's own connection: none held while no job runs here


heartbeat = Heartbeat()
