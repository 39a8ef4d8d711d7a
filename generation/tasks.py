"""Celery tasks: thin wrappers that take ids and call a service."""

import logging

from celery import shared_task
from celery.signals import worker_init

from . import services

log = logging.getLogger("generation.tasks")


@shared_task(name="generation.run_job", acks_late=True, ignore_result=True)
def run_job(job_id: str) -> None:
    services.job_run(job_id)


@worker_init.connect
def load_model_before_consuming(**kwargs) -> None:
    """Load and warm up the model in the worker's main process before it takes any job (threads pool: no
    fork afterwards, no 4 s limit as in prefork's worker_process_init)."""
    from .worker import get_engine

    log.info("loading the model engine before taking jobs")
    get_engine()
