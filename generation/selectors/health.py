"""What /healthz, the staff health page and job notices report: the database, Redis, and per model alias its
queue, live workers and waiting jobs."""

from __future__ import annotations

import redis
from django.db.models import Count

from .. import sandbox
from ..infra import presence, redis_client, registry
from ..models import (
    Job,
    JobStatus,
)


def model_health() -> dict[str, dict]:
    """Per alias: backend, queue, live workers, messages waiting in the queue and jobs queued in the database.
    `stranded` marks an alias with queued jobs and no live worker. Counts are None when Redis does not answer."""
    entries = registry.entries()
    queues = {alias: registry.queue_for(alias) for alias in entries}
    live = presence.live_workers(list(queues.values()))
    queued = dict(
        Job.objects.filter(status=JobStatus.QUEUED)
        .values("model_alias")
        .annotate(n=Count("pk"))
        .values_list("model_alias", "n")
    )
    depth = None
    try:
        pipe = redis_client.client().pipeline()
        for queue in queues.values():
            pipe.llen(queue)
        depth = dict(zip(queues.values(), pipe.execute(), strict=True))
    except redis.RedisError:
        pass
    report = {}
    for alias, item in entries.items():
        queue = queues[alias]
        workers = None if live is None else live[queue]
        report[alias] = {
            "backend": item["backend"],
            "queue": queue,
            "live_workers": workers,
            "queue_depth": None if depth is None else depth[queue],
            "queued_jobs": queued.get(alias, 0),
            "stranded": workers == 0 and queued.get(alias, 0) > 0,
        }
    return report


def health_report() -> dict:
    """For /healthz: the database, Redis, and per model alias its queue and live workers. "down" when the
    database or Redis does not answer; "degraded" when an alias has no live worker (its jobs would wait). Its
    `sandbox` says whether code checks can run here, and if not, why."""
    from django.db import DatabaseError, connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = "ok"
    except DatabaseError as exc:
        database = f"error: {type(exc).__name__}"
    try:
        redis_client.client().ping()
        redis_state = "ok"
    except redis.RedisError as exc:
        redis_state = f"error: {type(exc).__name__}"
    models = model_health() if database == "ok" else {}
    if database != "ok" or redis_state != "ok":
        status = "down"
    elif any(row["live_workers"] == 0 for row in models.values()):
        status = "degraded"
    else:
        status = "ok"
    ready, detail = sandbox.availability()
    return {
        "status": status,
        "database": database,
        "redis": redis_state,
        "models": models,
        # Whether code checks can run on this host (they never run without a sandbox); not part of the status:
        # generation goes on without them.
        "sandbox": {"ready": ready, "detail": detail},
    }
