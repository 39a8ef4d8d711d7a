"""The one place services send Celery tasks: by their registered names, so that services never import the task
layer (tasks import services, never the other way). Called after commit: a task never sees a row its sender
has not committed."""

from __future__ import annotations

from celery import current_app

RUN_JOB = "generation.run_job"
SEND_WEBHOOK = "generation.send_webhook"


def send(task_name: str, args: list, queue: str) -> None:
    """Send one message; raises what the broker raises (callers decide whether a lost send matters)."""
    current_app.send_task(task_name, args=args, queue=queue)
