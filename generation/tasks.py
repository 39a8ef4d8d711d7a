"""Celery tasks: thin wrappers that take ids and call a service."""

import logging
import os

from celery import shared_task
from celery.signals import worker_init

from . import services
from .services.webhooks import WEBHOOK_QUEUE

log = logging.getLogger("generation.tasks")


@shared_task(name="generation.run_job", acks_late=False, ignore_result=True)
def run_job(job_id: str) -> None:
    """Acknowledged when a worker thread starts it, not when it ends. A job whose worker dies is found by its
    stopped heartbeat and sent again by the reconciler, so an unacknowledged message adds nothing; and with one
    unacknowledged while Redis restarts, the worker (celery/kombu 5.7) crashes restoring it."""
    services.job_run(job_id)


@shared_task(name="generation.reconcile_jobs", ignore_result=True)
def reconcile_jobs() -> None:
    """Sent by celery beat every AIGC_RECONCILE_EVERY_S, on the light queue."""
    services.reconcile_jobs()


@shared_task(name="generation.deliver_webhook", acks_late=True, ignore_result=True)
def deliver_webhook(job_id: str, attempt: int = 1) -> None:
    """One attempt; a failed one is sent again, later, on the webhooks queue (never the generation workers')."""
    delay = services.webhook_deliver(job_id, attempt)
    if delay is not None:
        deliver_webhook.apply_async(args=[job_id, attempt + 1], countdown=delay, queue=WEBHOOK_QUEUE)


def loads_model(consumed_queues, generation_queue: str, environ=os.environ) -> bool:
    """Whether this worker needs the model: only if it takes generation jobs, so that a webhooks-only worker
    starts in a second without the weights. AIGC_LOAD_MODEL=0 turns loading off whatever the queues."""
    if environ.get("AIGC_LOAD_MODEL", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return generation_queue in consumed_queues


@worker_init.connect
def load_model_before_consuming(sender=None, **kwargs) -> None:
    """Load and warm up the model in the worker's main process before it takes any job (threads pool: no
    fork afterwards, no 4 s limit as in prefork's worker_process_init). The queues are the ones the worker
    really consumes: `-Q`/`-X` are applied to the app's queues before worker_init is sent."""
    queues = sorted(sender.app.amqp.queues.consume_from)
    if not loads_model(queues, sender.app.conf.task_default_queue):
        load = os.environ.get("AIGC_LOAD_MODEL", "1")
        log.info("not loading the model (queues: %s; AIGC_LOAD_MODEL=%s)", ", ".join(queues), load)
        return
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
