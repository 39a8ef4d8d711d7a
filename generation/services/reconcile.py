"""Nothing stays stuck: jobs whose worker died, or whose message the broker lost, are sent again."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..infra import broker, registry
from ..models import Job, JobStatus
from . import dispatch

log = logging.getLogger("generation.jobs")


def runnable(now=None) -> Q:
    """Jobs a worker may claim: queued ones, and running ones whose worker stopped beating (it died). A running
    job with a live heartbeat is never claimed again, so a duplicate message cannot run it twice."""
    stale = (now or timezone.now()) - timedelta(seconds=settings.AIGC["STALE_AFTER_S"])
    return Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING) & (
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)
    )


def reconcile_jobs() -> dict:
    """Nothing stays stuck: a running job whose heartbeat stopped (its worker died) goes back to the queue and
    is sent again; a queued job whose message is in neither its queue nor a worker's hands (the broker lost it,
    or was down when the job was sent) is sent again once AIGC_LOST_MESSAGE_AFTER_S have passed since it was
    sent, and any queued job once AIGC_RESEND_QUEUED_AFTER_S have (where the broker cannot be read, or a worker
    died holding its message). Duplicates are harmless: only one worker can claim a job (see `runnable`).
    A job that keeps losing its worker fails after AIGC_MAX_ATTEMPTS, with the reason."""
    now = timezone.now()
    lost = Job.objects.filter(runnable(now), status=JobStatus.RUNNING)  # running, and the heartbeat stopped
    # Each job with its model alias, whose queue it goes back to.
    requeued = {
        pk: alias
        for pk, alias in lost.values_list("pk", "model_alias")
        if lost.filter(pk=pk).update(status=JobStatus.QUEUED)
    }
    resend_before = now - timedelta(seconds=settings.AIGC["RESEND_QUEUED_AFTER_S"])
    lost_before = now - timedelta(seconds=settings.AIGC["LOST_MESSAGE_AFTER_S"])
    first_before = max(resend_before, lost_before)  # whichever bound is the shorter
    waiting = Job.objects.filter(status=JobStatus.QUEUED).filter(
        Q(enqueued_at__lt=first_before) | Q(enqueued_at__isnull=True, created_at__lt=first_before)
    )
    waiting = list(waiting.values_list("pk", "model_alias", Coalesce("enqueued_at", "created_at")))
    resent = {pk: alias for pk, alias, sent_at in waiting if pk not in requeued and sent_at < resend_before}
    recent = [
        (pk, alias) for pk, alias, sent_at in waiting if pk not in requeued and resend_before <= sent_at < lost_before
    ]
    if recent:
        # A message a worker takes between the read of the jobs and this one is resent once more: harmless.
        present = broker.first_args(dispatch.RUN_JOB, {registry.queue_for(alias) for _, alias in recent})
        if present is not None:  # None: the broker cannot tell; those jobs wait for AIGC_RESEND_QUEUED_AFTER_S
            resent.update((pk, alias) for pk, alias in recent if str(pk) not in present)
    for pk, alias in {**requeued, **resent}.items():
        dispatch.job_enqueue(pk, alias)
    if requeued or resent:
        log.warning(
            "reconciler: %d running job(s) lost their worker and were re-sent; %d queued job(s) re-sent",
            len(requeued),
            len(resent),
        )
    from .evaluation import runs_advance_all  # a run whose next case was never sent (a lost advance) goes on
    from .training import training_reconcile

    return {
        "requeued_running": len(requeued),
        "resent_queued": len(resent),
        "evaluation_runs": runs_advance_all(),
        "training_runs": training_reconcile(),
    }
