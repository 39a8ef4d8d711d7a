"""The process's one Redis client: a thread-safe synchronous client for everything (queues aside, which are
Celery's), and an asyncio client per event loop for the stream readers of the web tier. Streams, presence,
rate limits, cancel flags and metrics all go through these, so connections are pooled once per process."""

from __future__ import annotations

import asyncio
import os
import threading
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings

_client = None
_lock = threading.Lock()


def client() -> redis.Redis:
    global _client
    with _lock:
        if _client is None:
            _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
        return _client


_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def async_client() -> aioredis.Redis:
    """The process's asyncio client, for stream readers. An asyncio connection belongs to the event loop that
    opened it, so there is one pool per running loop: under uvicorn (one loop per process) every stream of the
    process shares one pool, instead of opening connections of its own."""
    loop = asyncio.get_running_loop()
    with _lock:
        found = _async_clients.get(loop)
        if found is None:
            # A read blocks for up to one keep-alive: the socket timeout must be longer.
            timeout = float(settings.AIGC["STREAM_KEEPALIVE_S"]) + 10
            # Named after the process, so that CLIENT LIST shows which web process holds which stream reads.
            pool = aioredis.ConnectionPool.from_url(
                settings.REDIS_URL,
                socket_connect_timeout=5,
                socket_timeout=timeout,
                client_name=f"aigc-streams-{os.getpid()}",
            )
            found = _async_clients[loop] = aioredis.Redis(connection_pool=pool)
        return found
