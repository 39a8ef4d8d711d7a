"""The model engine of this worker process: loaded once, before the worker takes its first job.

Only Celery workers (and commands that run the model) touch this module's engine; the web process never
calls `get_engine`, so it never imports torch.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from django.conf import settings

from ..infra import registry

log = logging.getLogger("generation.worker")

_engines: dict = {}
_lock = threading.Lock()


def engine_config(alias: str = registry.DEFAULT_ALIAS):
    """How to build the engine of a local alias (generation/infra/registry.py)."""
    from ..engine import EngineConfig

    item = registry.entry(alias)
    if item["backend"] not in registry.LOCAL_BACKENDS:
        raise ValueError(f"alias {alias!r} is served by the {item['backend']} backend, not in this process")
    options = {k: item[k] for k in ("device", "dtype", "threads", "context", "max_rows", "flash_attn") if k in item}
    return EngineConfig(
        model_path=item["path"],
        model_name=item["name"],
        cache_dir=settings.AIGC["MODEL_CACHE_DIR"],
        backend=item["backend"],
        **options,
    )


def _build(alias: str):
    item = registry.entry(alias)
    if item["backend"] == "openai":
        from ..engine.remote import RemoteEngine

        api_key = os.environ.get(item["api_key_env"], "") if item.get("api_key_env") else ""
        return RemoteEngine(
            item["url"],
            item["model"],
            api_key=api_key,
            name=item.get("name", ""),
            timeout_s=float(item.get("timeout_s", 600)),
        )
    from ..engine import load_engine

    return load_engine(engine_config(alias))


def get_engine(alias: str = registry.DEFAULT_ALIAS):
    """The engine of `alias` in this process, loaded (and warmed up) on first use."""
    with _lock:
        if alias not in _engines:
            started = time.monotonic()
            engine = _build(alias)
            if settings.AIGC["WARMUP"]:
                log.info("%s: warm-up generation took %.2f s", alias, engine.warmup())
            log.info("%s: engine ready in %.1f s (%s)", alias, time.monotonic() - started, engine.model_name)
            _engines[alias] = engine
        return _engines[alias]


def set_engine(engine, alias: str = registry.DEFAULT_ALIAS) -> None:
    """Install an already-built engine (tests build a tiny one)."""
    with _lock:
        _engines[alias] = engine


class Heartbeat:
    """Touches `heartbeat_at` of the jobs this process is running, every AIGC_HEARTBEAT_S, from one thread: one
    UPDATE for all of them. A job whose heartbeat stops (its worker died) is re-sent by the reconciler."""

    def __init__(self) -> None:
        self._jobs: dict = {}  # job id -> the attempt (fencing token) this process runs
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, job_id, attempt: int) -> None:
        with self._lock:
            self._jobs[job_id] = attempt
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="job-heartbeat", daemon=True)
                self._thread.start()

    def remove(self, job_id) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def beat(self) -> int:
        from django.db import DatabaseError, close_old_connections
        from django.db.models import Q
        from django.utils import timezone

        from ..models import Job, JobStatus

        with self._lock:
            ids = dict(self._jobs)
        if not ids:
            return 0
        # Only this process's own claims: a job re-claimed elsewhere (a higher attempt) is not kept alive here.
        mine = Q()
        for job_id, attempt in ids.items():
            mine |= Q(pk=job_id, attempts=attempt)
        try:
            return Job.objects.filter(mine, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now())
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
