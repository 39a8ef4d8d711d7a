"""Limits checked before a job is queued: requests per minute per API key and per user (Redis counters per
minute) and tokens per UTC day per user (from the jobs in the database: what settled jobs used, plus what jobs
in flight hold: each reserves, when created, the most it can use). Both answer with how long to wait."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Max, Sum

from ..infra import redis_client
from ..models import Job, JobPurpose
from ..selectors.budgets import CHARGED, PERIODS


class LimitExceeded(Exception):
    """A request over a limit: refused with HTTP 429 and Retry-After."""

    def __init__(self, message: str, retry_after: int, code: str, budget: str = "") -> None:
        super().__init__(message)
        self.message, self.retry_after, self.code = message, max(1, int(retry_after)), code
        self.budget = budget  # the budget that tripped ("desk:sport daily"), for budget refusals


def requests_per_minute(api_key) -> int:
    return api_key.requests_per_minute or settings.AIGC["REQUESTS_PER_MINUTE"]


def user_requests_per_minute(user) -> int:
    """All of a user's requests together (every key and the browser): the site's per-user limit, or more when
    an admin raised one of the user's keys above it (a raised key is trusted with that much)."""
    raised = user.api_keys.filter(revoked_at__isnull=True, requests_per_minute__isnull=False).aggregate(
        n=Max("requests_per_minute")
    )["n"]
    return max(settings.AIGC["USER_REQUESTS_PER_MINUTE"], raised or 0)


def _count(key: str) -> int | None:
    """This minute's count of a bucket, after counting this request; None when Redis did not answer."""
    try:
        pipe = redis_client.client().pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        return pipe.execute()[0]
    except redis.RedisError:
        return None  # limits are a courtesy to others; never refuse work because Redis hiccuped


def check_request_rate(api_key=None, *, user=None) -> None:
    """Counts this request against its key's minute (when it came with one) and its user's minute (always: keys
    and browser sessions alike); raises when either allowance is used up."""
    now = time.time()
    window = int(now // 60)
    buckets = []
    if api_key is not None:  # the prefix is random: never reused by another key
        buckets.append((f"ratelimit:key:{api_key.prefix}:{window}", requests_per_minute(api_key), "this key"))
        user = user or api_key.user
    if user is not None:  # with the account's creation time: a database that reuses ids never shares a bucket
        account = f"{user.pk}.{int(user.date_joined.timestamp() * 1e6)}"
        buckets.append((f"ratelimit:user:{account}:{window}", user_requests_per_minute(user), "your account"))
    for key, limit, who in buckets:
        count = _count(key)
        if count is not None and count > limit:
            raise LimitExceeded(
                f"Rate limit reached: {who} may send {limit} requests a minute. Try again in a moment.",
                retry_after=60 - (now % 60),
                code="rate_limit_exceeded",
            )


def tokens_per_day(user) -> int:
    quota = getattr(user, "quota", None)
    return (quota.tokens_per_day if quota and quota.tokens_per_day is not None else None) or settings.AIGC[
        "TOKENS_PER_DAY"
    ]


def tokens_used_today(user) -> int:
    """Tokens of the user's jobs today (evaluation jobs aside), as CHARGED counts them."""
    today = Job.objects.filter(
        owner=user, purpose=JobPurpose.USER, created_at__gte=PERIODS["daily"](datetime.now(UTC))[0]
    )
    return today.aggregate(n=Sum(CHARGED, default=0))["n"]


def lock_user(user) -> None:
    """Inside the transaction that inserts what a limit counts (a job, a key): serialises the user's creations,
    so that concurrent requests cannot each pass a check on the same last place (PostgreSQL: a row lock on the
    user; SQLite: transactions take the write lock at BEGIN, see settings)."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).exists()


def check_token_quota(user, most: int) -> None:
    """Refuses a job that could take the user past their tokens for today. Call it after lock_user, in the
    transaction that inserts the job."""
    limit, used = tokens_per_day(user), tokens_used_today(user)
    if used + most > limit:
        reset = PERIODS["daily"](datetime.now(UTC))[1]
        raise LimitExceeded(
            f"Daily token quota reached: {used} of {limit} tokens used today (UTC), and this job may use up to "
            f"{most}. The quota resets at 00:00 UTC.",
            retry_after=(reset - datetime.now(UTC)).total_seconds(),
            code="quota_exceeded",
        )
