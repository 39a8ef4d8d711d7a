"""What the broker holds now: the messages waiting in a queue and those a worker has taken but not yet
acknowledged. Read from the Redis transport Celery uses (kombu keeps a list per queue and priority, and a hash
of unacknowledged messages), so that the reconciler can tell a message that is waiting its turn from one that
was lost (a Redis restarted without its data, a send that failed) within seconds, instead of waiting out a
long timeout for both."""

from __future__ import annotations

import base64
import json
import logging

from celery import current_app
from kombu.exceptions import KombuError
from redis import RedisError

log = logging.getLogger("generation.jobs")

# Longer queues are not read: a backlog that long is not a lost message, and reading it every sweep would cost
# more than resending after AIGC_RESEND_QUEUED_AFTER_S does.
MAX_MESSAGES = 20_000


def first_args(task_name: str, queues) -> set[str] | None:
    """The first argument (as a string) of every `task_name` message waiting in `queues` or taken by a worker
    and not yet acknowledged; None when the broker cannot be read that way (not Redis, unreachable, or more
    than MAX_MESSAGES to read)."""
    try:
        with current_app.connection_for_read() as connection:
            if connection.transport.driver_type != "redis":
                return None
            channel = connection.default_channel
            client = channel.client
            sep, steps = getattr(channel, "sep", "\x06\x16"), getattr(channel, "priority_steps", [0])
            lists = [queue if not step else f"{queue}{sep}{step}" for queue in sorted(set(queues)) for step in steps]
            unacked = getattr(channel, "unacked_key", "unacked")
            pipe = client.pipeline()
            for name in lists:
                pipe.llen(name)
            pipe.hlen(unacked)
            if sum(pipe.execute()) > MAX_MESSAGES:
                return None
            pipe = client.pipeline()
            for name in lists:
                pipe.lrange(name, 0, -1)
            pipe.hvals(unacked)
            *waiting, taken = pipe.execute()
    except (OSError, RedisError, KombuError) as exc:  # down or refusing: the caller falls back to its timeout
        log.warning("could not read the broker's queues: %s", exc)
        return None
    found = set()
    for raw in [m for messages in waiting for m in messages] + taken:
        arg = _first_arg(raw, task_name)
        if arg is not None:
            found.add(arg)
    return found


def _first_arg(raw: bytes, task_name: str) -> str | None:
    """A kombu Redis message (or an unacknowledged entry, [message, exchange, routing key]): its task's first
    argument when it is a `task_name` message; None for anything else or anything unreadable."""
    try:
        message = json.loads(raw)
        if isinstance(message, list):
            message = message[0]
        if message.get("headers", {}).get("task") != task_name:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(args[0]) if args else None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
