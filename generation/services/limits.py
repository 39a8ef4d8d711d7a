"""Limits checked before a job is queued: requests per minute per API key (a Redis counter per minute) and
tokens per UTC day per user (from the jobs in the database: what finished jobs used, plus the most that jobs
still in flight can use). Both answer with how long to wait."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.db.models import Q, Sum

from .. import events
from ..models import FINAL_STATUSES, Job


class LimitExceeded(Exception):
    """A request over a limit: refused with HTTP 429 and Retry-After."""

    def __init__(self, message: str, retry_after: int, code: str) -> None:
        super().__init__(message)
        self.message, self.retry_after, self.code = message, max(1, int(retry_after)), code


def requests_per_minute(api_key) -> int:
    return api_key.requests_per_minute or settings.AIGC["REQUESTS_PER_MINUTE"]


def check_request_rate(api_key) -> None:
    """Counts this request against the key's minute; raises when the minute's allowance is used up."""
    limit = requests_per_minute(api_key)
    now = time.time()
    window = int(now // 60)
    key = f"ratelimit:key:{api_key.prefix}:{window}"  # the prefix is random: never reused by another key
    try:
        pipe = events.client().pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count = pipe.execute()[0]
    except events.redis.RedisError:
        return  # limits are a courtesy to others; never refuse work because Redis hiccuped
    if count > limit:
        raise LimitExceeded(
            f"Rate limit reached: this key may send {limit} requests a minute. Try again in a moment.",
            retry_after=60 - (now % 60),
            code="rate_limit_exceeded",
        )


def tokens_per_day(user) -> int:
    quota = getattr(user, "quota", None)
    return (quota.tokens_per_day if quota and quota.tokens_per_day is not None else None) or settings.AIGC["TOKENS_PER_DAY"]


def _today_start() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def tokens_used_today(user) -> int:
    """Tokens of today's finished jobs, plus the most today's queued and running jobs may still use."""
    today = Job.objects.filter(owner=user, created_at__gte=_today_start())
    used = today.filter(status__in=FINAL_STATUSES).aggregate(
        n=Sum("prompt_tokens", default=0) + Sum("completion_tokens", default=0)
    )["n"]
    in_flight = sum(_most_tokens(p) for p in today.filter(~Q(status__in=FINAL_STATUSES)).values_list("params", flat=True))
    return (used or 0) + in_flight


def _most_tokens(params: dict) -> int:
    return int(params.get("max_new_tokens") or 0) * int(params.get("n") or 1)


def check_token_quota(user, params: dict) -> None:
    """Refuses a job that could take the user past their tokens for today."""
    limit, used, most = tokens_per_day(user), tokens_used_today(user), _most_tokens(params)
    if used + most > limit:
        reset = _today_start() + timedelta(days=1)
        raise LimitExceeded(
            f"Daily token quota reached: {used} of {limit} tokens used today (UTC), and this job may use up to "
            f"{most}. The quota resets at 00:00 UTC.",
            retry_after=(reset - datetime.now(timezone.utc)).total_seconds(),
            code="quota_exceeded",
        )
