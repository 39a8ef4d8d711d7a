"""Job creation as the API offers it: with an Idempotency-Key, a retried request returns the job the first
one created instead of queueing a second."""

from __future__ import annotations

import hashlib
import json

from django.db import IntegrityError, transaction

from ..models import Job
from .intake import job_create


class IdempotencyConflict(Exception):
    """The key was used before with a different request body."""


def request_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def job_create_idempotent(*, user, idempotency_key: str, body: dict, **fields) -> tuple[Job, bool]:
    """Returns (job, created). Same key and body: the existing job. Same key, other body: IdempotencyConflict."""
    digest = request_hash(body)
    existing = Job.objects.filter(owner=user, idempotency_key=idempotency_key).first()
    if existing is None:
        try:
            with transaction.atomic():
                return job_create(user=user, idempotency_key=idempotency_key, request_hash=digest, **fields), True
        except IntegrityError:  # the same key, raced by a concurrent request that won
            existing = Job.objects.get(owner=user, idempotency_key=idempotency_key)
    if existing.request_hash != digest:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request body; use a new key for a new job."
        )
    return existing, False
