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
    engine = get_engine()
    publish_model_info(engine)


def publish_model_info(engine) -> None:
    """Tell the web tier what this worker serves (context size, tokenizer, chat template)."""
    from django.conf import settings

    try:
        services.model_info_publish(settings.AIGC["MODEL_ALIAS"], engine.describe())
    except Exception:  # the database may be briefly away at start; jobs are still checked by the engine
        log.exception("could not publish the model's description")
