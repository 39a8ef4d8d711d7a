"""Which model workers are alive, per queue.

Each model worker writes its name and the time into a sorted set per queue it consumes, every AIGC_HEARTBEAT_S;
a worker counts as live if seen within AIGC_STALE_AFTER_S. Kept in Redis rather than asked of Celery (`inspect`
broadcasts and waits for replies): /healthz, /metrics and every job answer read it, and none may wait a second.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from django.conf import settings

from . import redis_client

log = logging.getLogger("generation.presence")

KEY = "aigc:workers:{queue}"
_announcing: dict = {}
_stop = threading.Event()
_cache: dict = {}


def announce(hostname: str, queues: list[str]) -> None:
    now = time.time()
    pipe = redis_client.client().pipeline()
    for queue in queues:
        key = KEY.format(queue=queue)
        pipe.zadd(key, {hostname: now})
        pipe.zremrangebyscore(key, 0, now - 24 * 3600)  # names of workers long gone
    pipe.execute()


def start(hostname: str, queues: list[str]) -> None:
    """Announce now and then every heartbeat, from a thread of its own, until `stop()`."""
    _announcing.update(hostname=hostname, queues=list(queues))
    _stop.clear()

    def loop():
        while True:
            try:
                announce(hostname, queues)
            except redis.RedisError as exc:  # Redis away: the next beat tries again
                log.warning("could not announce this worker: %s", exc)
            if _stop.wait(settings.AIGC["HEARTBEAT_S"]):
                return

    threading.Thread(target=loop, name="worker-presence", daemon=True).start()


def stop() -> None:
    """A worker shutting down leaves at once, rather than after AIGC_STALE_AFTER_S."""
    _stop.set()
    if not _announcing:
        return
    try:
        pipe = redis_client.client().pipeline()
        for queue in _announcing["queues"]:
            pipe.zrem(KEY.format(queue=queue), _announcing["hostname"])
        pipe.execute()
    except redis.RedisError:
        pass


def live_workers(queues: list[str], max_age_s: float = 0.0) -> dict[str, int] | None:
    """How many live workers consume each queue; None when Redis does not answer. `max_age_s` reuses an answer
    that recent (a list of jobs asks once, not once per job)."""
    queues = sorted(set(queues))
    cached = _cache.get(tuple(queues))
    if max_age_s and cached and time.monotonic() - cached[0] < max_age_s:
        return cached[1]
    since = time.time() - settings.AIGC["STALE_AFTER_S"]
    try:
        pipe = redis_client.client().pipeline()
        for queue in queues:
            pipe.zcount(KEY.format(queue=queue), since, "+inf")
        counts = dict(zip(queues, pipe.execute(), strict=True))
    except redis.RedisError:
        return None
    _cache[tuple(queues)] = (time.monotonic(), counts)
    return counts
