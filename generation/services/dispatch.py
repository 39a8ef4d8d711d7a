"""The one place services send Celery tasks: by their registered names, so that services never import the task
layer (tasks import services, never the other way). Called after commit: a task never sees a row its sender
has not committed."""

from __future__ import annotations

import logging

from celery import current_app
from django.conf import settings
from django.utils import timezone

from ..infra import registry
from ..models import Job

log = logging.getLogger("generation.jobs")

RUN_JOB = "generation.run_job"
SEND_WEBHOOK = "generation.send_webhook"
TRAIN_ADAPTER = "generation.train_adapter"


def send(task_name: str, args: list, queue: str) -> None:
    """Send one message; raises what the broker raises (callers decide whether a lost send matters)."""
    current_app.send_task(task_name, args=args, queue=queue)


def job_enqueue(job_id, alias: str) -> None:
    """Send the job to its model's queue, which only workers hosting that model consume."""
    Job.objects.filter(pk=job_id).update(enqueued_at=timezone.now())
    try:
        send(RUN_JOB, [str(job_id)], queue=registry.queue_for(alias))
    except Exception:  # the broker is down: the job stays queued in the database and is sent again later
        log.exception("could not send job %s to the broker", job_id)


def training_enqueue(run_id) -> None:
    """Send a training run to the training queue; a lost send is sent again by the reconciler."""
    try:
        # Its own workers (a GPU host in production): a training run never waits behind jobs, nor delays them.
        send(TRAIN_ADAPTER, [str(run_id)], queue=settings.AIGC["TRAINING_QUEUE"])
    except Exception:
        log.exception("could not send training run %s to the broker", run_id)
