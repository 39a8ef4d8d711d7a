"""Many jobs in one request: all are valid and queued together, or none is written."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count

from ..models import Job, JobBatch, JobStatus
from .intake import job_create
from .limits import LimitExceeded


def batch_create(*, user, items: list[dict | None], api_key=None, errors: dict | None = None) -> JobBatch:
    """`items` are job bodies (kind or template, inputs, params, callback_url); None for an item the caller
    already found invalid (its `errors` come in, so that one answer names every bad item). Errors name the
    item: "jobs.3.inputs.text"."""
    errors = dict(errors or {})
    with transaction.atomic():
        batch = JobBatch.objects.create(owner=user)
        for i, item in enumerate(items):
            if item is None:
                continue
            try:
                job_create(user=user, api_key=api_key, batch=batch, **item)
            except ValidationError as exc:
                for field, messages in exc.message_dict.items():
                    errors[f"jobs.{i}.{field}"] = messages
            except LimitExceeded as exc:
                exc.message = f"Job {i + 1} of {len(items)}: {exc.message}"
                raise
        if errors:
            transaction.set_rollback(True)
    if errors:
        raise ValidationError(errors)
    return batch


def batch_status(batch: JobBatch) -> dict:
    """Counts by status, and one word for the whole: queued, running, succeeded, failed, cancelled or mixed."""
    counts = dict(
        Job.objects.filter(batch=batch).values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    total = sum(counts.values())
    if counts.get(JobStatus.QUEUED, 0) == total:
        overall = "queued"
    elif counts.get(JobStatus.QUEUED) or counts.get(JobStatus.RUNNING):
        overall = "running"
    elif len(counts) == 1:
        overall = next(iter(counts))
    else:
        overall = "mixed"
    return {"status": overall, "total": total, "counts": {s: counts.get(s, 0) for s in JobStatus.values}}
