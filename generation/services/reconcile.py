"""Nothing stays stuck: jobs whose worker died, or whose message the broker lost, are sent again."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

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
    is sent again; a queued job whose message was sent long ago (the broker lost it, or was down when the job
    was created) is sent again. Duplicates are harmless: only one worker can claim a job (see `runnable`).
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
    waiting = Job.objects.filter(status=JobStatus.QUEUED).filter(
        Q(enqueued_at__lt=resend_before) | Q(enqueued_at__isnull=True, created_at__lt=resend_before)
    )
    resent = {pk: alias for pk, alias in waiting.values_list("pk", "model_alias") if pk not in requeued}
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
