"""Celery tasks: thin wrappers that take ids and call a service."""

import logging
import os
import threading

from celery import shared_task
from celery.signals import worker_init, worker_shutdown

from . import sandbox, services
from .api.webhooks import job_body
from .infra import presence, registry

log = logging.getLogger("generation.tasks")

# The reconciler's queue, which nothing slow shares (settings.CELERY_BEAT_SCHEDULE; Procfile: maintenance).
MAINTENANCE_QUEUE = "maintenance"


@shared_task(name="generation.run_job", acks_late=False, ignore_result=True)
def run_job(job_id: str) -> None:
    """Acknowledged when a worker thread starts it, not when it ends. A job whose worker dies is found by its
    stopped heartbeat and sent again by the reconciler, so an unacknowledged message adds nothing; and with one
    unacknowledged while Redis restarts, the worker (celery/kombu 5.7) crashes restoring it."""
    from .workers.engines import get_engine, heartbeat

    services.job_run(job_id, engine_for=get_engine, heartbeat=heartbeat)


@shared_task(name="generation.train_adapter", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def train_adapter(run_id: str) -> None:
    """Acknowledged when it ends: a training worker that restarts gets the run again and resumes it from its
    last checkpoint (the run's stale heartbeat lets the new claim in; the reconciler re-sends a lost one)."""
    from .workers.engines import get_engine

    services.training_execute(run_id, engine_for=get_engine)


@shared_task(name="generation.reconcile_jobs", ignore_result=True)
def reconcile_jobs() -> None:
    """Sent by celery beat every AIGC_RECONCILE_EVERY_S, on the maintenance queue: never behind webhooks."""
    services.reconcile_jobs()


# Webhook tasks are acknowledged when they start: the outbox row, not the message, is the record of what is owed,
# and a sender that dies leaves a lease the sweeper sees run out.


@shared_task(name="generation.send_webhook", acks_late=False, ignore_result=True)
def send_webhook(delivery_id: str) -> None:
    """The kick sent once a job's final state (and its outbox row) is committed: send that delivery now."""
    services.webhook_send(delivery_id, render=job_body)


@shared_task(name="generation.sweep_webhooks", acks_late=False, ignore_result=True)
def sweep_webhooks() -> None:
    """Sent by celery beat every AIGC_OUTBOX_SWEEP_EVERY_S, on the webhooks queue: every delivery that is due."""
    services.webhook_sweep(render=job_body)


@shared_task(name="generation.deliver_webhook", acks_late=False, ignore_result=True)
def deliver_webhook(job_id: str, attempt: int = 1) -> None:
    """Messages queued before the outbox existed (an upgrade with retries pending): the job's callback becomes an
    outbox row, once, and is sent from there."""
    services.webhook_enqueue(job_id)


def hosted_aliases(consumed_queues, environ=os.environ) -> list[str]:
    """The model aliases this worker serves: those whose queues it consumes, so that a webhooks-only worker
    starts in a second without weights. AIGC_LOAD_MODEL=0 hosts none whatever the queues."""
    if environ.get("AIGC_LOAD_MODEL", "1").strip().lower() in ("0", "false", "no", "off"):
        return []
    return registry.aliases_for_queues(consumed_queues)


@worker_init.connect
def load_model_before_consuming(sender=None, **kwargs) -> None:
    """Load and warm up the engine of each hosted alias in the worker's main process before it takes any job
    (threads pool: no fork afterwards, no 4 s limit as in prefork's worker_process_init). The queues are the ones
    the worker really consumes: `-Q`/`-X` are applied to the app's queues before worker_init is sent. Then the
    worker announces itself on those queues, for /healthz and the jobs waiting on them."""
    queues = sorted(sender.app.amqp.queues.consume_from)
    aliases = hosted_aliases(queues)
    if not aliases:
        load = os.environ.get("AIGC_LOAD_MODEL", "1")
        log.info("hosting no model (queues: %s; AIGC_LOAD_MODEL=%s)", ", ".join(queues), load)
        return
    from .workers.engines import get_engine

    log.info("loading the engines of %s before taking jobs", ", ".join(aliases))
    engines = {alias: get_engine(alias) for alias in aliases}
    # Published from a thread: the llama.cpp engine converts its GGUF's tokenizer for the web tier once (some
    # seconds), and the worker need not wait for that to take jobs; its engine checks each prompt meanwhile.
    threading.Thread(target=_publish_all, args=(engines,), name="publish-model-info", daemon=True).start()
    presence.start(sender.hostname, [registry.queue_for(a) for a in aliases])


@worker_init.connect
def announce_sandbox(sender=None, **kwargs) -> None:
    """Say at start whether this worker can run code checks (a case or job measured here says so too)."""
    ready, detail = sandbox.availability()
    if ready:
        log.info("code checks run in a sandbox: %s", detail)
    else:
        log.warning("code checks will not run on this worker: they need a sandbox (%s)", detail)


@worker_shutdown.connect
def leave(sender=None, **kwargs) -> None:
    presence.stop()


def _publish_all(engines: dict) -> None:
    from django.db import connection

    try:
        for alias, engine in engines.items():
            publish_model_info(alias, engine)
    finally:
        connection.close()  # this thread's own


def publish_model_info(alias: str, engine) -> None:
    """Tell the web tier what this worker serves (context size, tokenizer, chat template). A remote engine has
    nothing to publish: its server checks the context itself."""
    try:
        description = engine.describe()
        if description is not None:
            services.model_info_publish(alias, description)
    except Exception:  # the database may be briefly away at start; jobs are still checked by the engine
        log.exception("could not publish the description of model %s", alias)
