"""Reads. Every query for jobs goes through here, scoped to the user who asks."""

from __future__ import annotations

import threading
from datetime import timedelta
from datetime import timezone as dt_timezone

import redis
from django.db.models import Count, Prefetch, Q, QuerySet, Sum, TextField
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone

from . import events, presence, registry
from .models import (
    FINAL_STATUSES,
    Job,
    JobBatch,
    JobStatus,
    ModelInfo,
    PromptTemplate,
    ReviewState,
    TemplateLabel,
    TemplateVersion,
)


def jobs_visible_to(user) -> QuerySet[Job]:
    """A user's own jobs: the history, the API and the streams show nothing else."""
    return Job.objects.filter(owner=user).select_related("template", "template_version").prefetch_related("outputs")


def job_for_user(user, job_id) -> Job | None:
    return jobs_visible_to(user).filter(pk=job_id).first()


def jobs_for_review() -> QuerySet[Job]:
    """What reviewers see besides their own jobs: jobs submitted for review, and those approved."""
    return (
        Job.objects.exclude(review_state=ReviewState.DRAFT)
        .select_related("owner", "template", "template_version")
        .prefetch_related("outputs")
    )


def job_for_page(user, job_id) -> Job | None:
    """The job page: the owner's job, or, for a reviewer, a job in review or approved (read-only to them)."""
    job = job_for_user(user, job_id)
    if job is None and user.has_perm("generation.review_job"):
        job = jobs_for_review().filter(pk=job_id).first()
    return job


def queue_position(job: Job) -> int | None:
    """1 for the next job to run; None when the job is not waiting."""
    if job.status != JobStatus.QUEUED:
        return None
    ahead = Job.objects.filter(status=JobStatus.QUEUED, model_alias=job.model_alias, created_at__lt=job.created_at)
    return ahead.count() + 1


def job_notice(job: Job) -> str | None:
    """Why a queued job may wait for good: no live worker hosts its model. Said in the API and on the job page
    rather than leaving the job silently queued; it runs as soon as such a worker starts."""
    if job.status != JobStatus.QUEUED:
        return None
    queue = registry.queue_for(job.model_alias)
    live = presence.live_workers([queue], max_age_s=2.0)
    if live is None or live[queue]:
        return None
    return (f"No worker is serving the model '{job.model_alias}' (queue {queue}) right now; "
            f"the job waits until one starts.")  # fmt: skip


def model_health() -> dict[str, dict]:
    """Per alias: backend, queue, live workers, messages waiting in the queue and jobs queued in the database.
    `stranded` marks an alias with queued jobs and no live worker. Counts are None when Redis does not answer."""
    entries = registry.entries()
    queues = {alias: registry.queue_for(alias) for alias in entries}
    live = presence.live_workers(list(queues.values()))
    queued = dict(Job.objects.filter(status=JobStatus.QUEUED).values("model_alias").annotate(n=Count("pk"))
                  .values_list("model_alias", "n"))  # fmt: skip
    depth = None
    try:
        pipe = events.client().pipeline()
        for queue in queues.values():
            pipe.llen(queue)
        depth = dict(zip(queues.values(), pipe.execute()))
    except redis.RedisError:
        pass
    report = {}
    for alias, item in entries.items():
        queue = queues[alias]
        workers = None if live is None else live[queue]
        report[alias] = {
            "backend": item["backend"], "queue": queue, "live_workers": workers,
            "queue_depth": None if depth is None else depth[queue], "queued_jobs": queued.get(alias, 0),
            "stranded": workers == 0 and queued.get(alias, 0) > 0,
        }  # fmt: skip
    return report


def search_jobs(jobs: QuerySet[Job], *, q="", kind="", status="", template="", review="", since=None, until=None):
    """History filters. `q` looks in inputs, outputs (model and final text) and errors."""
    if q:
        # The inputs as text (a JSON lookup would compare JSON-escaped strings and miss Chinese words).
        jobs = jobs.annotate(inputs_text=Cast("inputs", TextField())).filter(
            Q(inputs_text__icontains=q) | Q(outputs__text__icontains=q) | Q(outputs__final_text__icontains=q) | Q(error__icontains=q)
        ).distinct()
    filters = {"kind": kind, "status": status, "template__slug": template, "review_state": review}
    jobs = jobs.filter(**{k: v for k, v in filters.items() if v})
    if since:
        jobs = jobs.filter(created_at__date__gte=since)
    if until:
        jobs = jobs.filter(created_at__date__lte=until)
    return jobs


def template_default_for_kind(kind: str) -> PromptTemplate | None:
    return PromptTemplate.objects.filter(kind=kind, is_default=True).first()


def template_by_slug(slug: str) -> PromptTemplate | None:
    return PromptTemplate.objects.filter(slug=slug).first()


def templates_with_versions() -> QuerySet[PromptTemplate]:
    return PromptTemplate.objects.prefetch_related(
        Prefetch("labels", queryset=TemplateLabel.objects.select_related("version")),
        Prefetch("versions", queryset=TemplateVersion.objects.order_by("number")),
    )


def templates_for_kind(kind: str) -> QuerySet[PromptTemplate]:
    return PromptTemplate.objects.filter(kind=kind, labels__name=TemplateLabel.PRODUCTION).order_by("-is_default", "name")


_counters: dict[str, tuple[object, object]] = {}
_counters_lock = threading.Lock()


def prompt_counter(alias: str):
    """A PromptCounter for the model served under `alias`, or None before any worker has published it.
    Kept in memory and rebuilt only when a worker publishes a new model."""
    from .tokenizing import PromptCounter

    stamp = ModelInfo.objects.filter(alias=alias).values_list("updated_at", flat=True).first()
    if stamp is None:
        return None
    with _counters_lock:
        cached = _counters.get(alias)
        if cached and cached[0] == stamp:
            return cached[1]
        info = ModelInfo.objects.get(alias=alias)
        counter = PromptCounter(
            chat_template=info.chat_template,
            tokenizer_json=info.tokenizer_json,
            special_tokens=info.special_tokens,
            context_length=info.context_length,
        )
        _counters[alias] = (stamp, counter)
        return counter


def versions_with_ratings(template: PromptTemplate) -> QuerySet[TemplateVersion]:
    """A template's versions, newest first, each with its thumbs-up and thumbs-down counts."""
    return template.versions.annotate(
        thumbs_up=Count("feedback", filter=Q(feedback__rating=1)),
        thumbs_down=Count("feedback", filter=Q(feedback__rating=-1)),
    ).order_by("-number")


def api_jobs(user, *, status=None, kind=None, template=None, created_after=None, created_before=None) -> QuerySet[Job]:
    """The API's job list filters, over the user's own jobs."""
    jobs = jobs_visible_to(user)
    filters = {"status": status, "kind": kind, "template__slug": template, "created_at__gte": created_after,
               "created_at__lt": created_before}  # fmt: skip
    return jobs.filter(**{k: v for k, v in filters.items() if v})


def usage_by_day(user, days: int) -> list[dict]:
    """Tokens by UTC day and template over the last `days` days, newest first (finished jobs only)."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        Job.objects.filter(owner=user, created_at__gte=since, status__in=FINAL_STATUSES)
        .annotate(day=TruncDate("created_at", tzinfo=dt_timezone.utc))
        .values("day", "template__slug")
        .annotate(jobs=Count("id"), prompt_tokens=Sum("prompt_tokens", default=0), completion_tokens=Sum("completion_tokens", default=0))
        .order_by("-day", "template__slug")
    )
    return [
        {"day": r["day"], "template": r["template__slug"], "jobs": r["jobs"], "prompt_tokens": r["prompt_tokens"],
         "completion_tokens": r["completion_tokens"], "total_tokens": r["prompt_tokens"] + r["completion_tokens"]}  # fmt: skip
        for r in rows
    ]


def batch_for_user(user, batch_id) -> JobBatch | None:
    return JobBatch.objects.filter(owner=user, pk=batch_id).first()


def health_report() -> dict:
    """For /healthz: the database, Redis, and per model alias its queue and live workers. "down" when the
    database or Redis does not answer; "degraded" when an alias has no live worker (its jobs would wait)."""
    from django.db import DatabaseError, connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = "ok"
    except DatabaseError as exc:
        database = f"error: {type(exc).__name__}"
    try:
        events.client().ping()
        redis_state = "ok"
    except redis.RedisError as exc:
        redis_state = f"error: {type(exc).__name__}"
    models = model_health() if database == "ok" else {}
    if database != "ok" or redis_state != "ok":
        status = "down"
    elif any(row["live_workers"] == 0 for row in models.values()):
        status = "degraded"
    else:
        status = "ok"
    return {"status": status, "database": database, "redis": redis_state, "models": models}
