"""Reads of jobs, batches and usage, always scoped to the user who asks: the history, the API and the streams
show nothing else."""

from __future__ import annotations

from datetime import UTC, timedelta

from django.db.models import Count, Q, QuerySet, Sum, TextField
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone

from ..content import language
from ..infra import presence, registry
from ..models import (
    FINAL_STATUSES,
    Job,
    JobBatch,
    JobPurpose,
    JobStatus,
    ReviewState,
)
from .desks import review_desk_ids


def jobs_visible_to(user) -> QuerySet[Job]:
    """A user's own jobs: the history, the API and the streams show nothing else (evaluation jobs are shown
    with their experiment, never as anyone's work)."""
    return (
        Job.objects.filter(owner=user, purpose=JobPurpose.USER)
        .select_related("template", "template_version")
        .prefetch_related("outputs")
    )


def job_for_user(user, job_id) -> Job | None:
    return jobs_visible_to(user).filter(pk=job_id).first()


def jobs_for_review(user) -> QuerySet[Job]:
    """What a reviewer sees besides their own jobs: the jobs of the desks they review, submitted for review or
    approved. Another desk's job is not there (a 404 to them, like anyone's job)."""
    return (
        Job.objects.filter(purpose=JobPurpose.USER, desk_id__in=review_desk_ids(user))
        .exclude(review_state=ReviewState.DRAFT)
        .select_related("owner", "template", "template_version")
        .prefetch_related("outputs")
    )


def job_for_page(user, job_id) -> Job | None:
    """The job page: the owner's job, or, for a reviewer, a job in review or approved (read-only to them)."""
    job = job_for_user(user, job_id)
    if job is None:
        job = jobs_for_review(user).filter(pk=job_id).first()
    return job


def chosen_outputs(job: Job) -> list:
    """The candidates an editor chose, by index: what approval, exports, webhooks and training take."""
    return [o for o in job.outputs.all() if o.chosen]


def outputs_for_export(job: Job) -> list:
    """What a download carries: the chosen candidates once there are any, else every candidate (a draft
    nobody has chosen from yet)."""
    return chosen_outputs(job) or list(job.outputs.all())


def approved_jobs(user, *, desk: str = "", since=None) -> QuerySet[Job]:
    """The approved feed a CMS polls: approved jobs the user may see (their own, and those of the desks they
    review), optionally of one desk (its slug) and approved after `since`, oldest approval first."""
    jobs = (
        Job.objects.filter(purpose=JobPurpose.USER, review_state=ReviewState.APPROVED, approved_at__isnull=False)
        .filter(Q(owner=user) | Q(desk_id__in=review_desk_ids(user)))
        .select_related("template", "desk")
        .prefetch_related("outputs")
    )
    if desk:
        jobs = jobs.filter(desk__slug=desk)
    if since is not None:
        jobs = jobs.filter(approved_at__gt=since)
    return jobs


def queue_position(job: Job) -> int | None:
    """1 for the next job to run; None when the job is not waiting."""
    if job.status != JobStatus.QUEUED:
        return None
    ahead = Job.objects.filter(status=JobStatus.QUEUED, model_alias=job.model_alias, created_at__lt=job.created_at)
    return ahead.count() + 1


def job_notice(job: Job) -> str | None:
    """What the user should know about a job's model, said in the API and on the job page: no live worker hosts
    it while the job is queued (it runs as soon as one starts), or it does not write the job's language well."""
    notices = [n for n in (_no_worker(job), _language_notice(job)) if n]
    return " ".join(notices) or None


def _no_worker(job: Job) -> str | None:
    if job.status != JobStatus.QUEUED:
        return None
    queue = registry.queue_for(job.model_alias)
    live = presence.live_workers([queue], max_age_s=2.0)
    if live is None or live[queue]:
        return None
    return (
        f"No worker is serving the model '{job.model_alias}' (queue {queue}) right now; the job waits until one starts."
    )


def _language_notice(job: Job) -> str | None:
    """The job's language (the one its template asks for, else its longest text input's) against the languages
    its model alias declares."""
    served = registry.languages(job.model_alias)
    wanted = (job.template_version.checks or {}).get("language") or language.language_of(_main_text(job.inputs))
    if not served or wanted is None or wanted in served:
        return None
    names = ", ".join(language.NAMES.get(code, code) for code in served)
    return (
        f"This job is in {language.NAMES.get(wanted, wanted)}, but the model '{job.model_alias}' writes {names} well: "
        "expect weak output. The operations guide lists checkpoints to serve for it."
    )


def _main_text(inputs: dict) -> str:
    texts = [v for v in inputs.values() if isinstance(v, str)]
    return max(texts, key=len, default="")


def search_jobs(
    jobs: QuerySet[Job], *, q="", kind="", status="", template="", review="", since=None, until=None, findings=False
):
    """History filters. `q` looks in inputs, outputs (model and final text) and errors; `findings` keeps the jobs
    whose outputs have check findings (unsupported claims, style)."""
    if q:
        # The inputs as text (a JSON lookup would compare JSON-escaped strings and miss Chinese words).
        jobs = (
            jobs.annotate(inputs_text=Cast("inputs", TextField()))
            .filter(
                Q(inputs_text__icontains=q)
                | Q(outputs__text__icontains=q)
                | Q(outputs__final_text__icontains=q)
                | Q(error__icontains=q)
            )
            .distinct()
        )
    filters = {"kind": kind, "status": status, "template__slug": template, "review_state": review}
    jobs = jobs.filter(**{k: v for k, v in filters.items() if v})
    if findings:
        jobs = jobs.filter(findings__gt=0)
    if since:
        jobs = jobs.filter(created_at__date__gte=since)
    if until:
        jobs = jobs.filter(created_at__date__lte=until)
    return jobs


# The API's job filters, by the names the API takes, as fields of a job: the one table the job list and the
# approved feed both read.
API_FILTERS = {
    "status": "status",
    "kind": "kind",
    "template": "template__slug",
    "review_state": "review_state",
    "desk": "desk__slug",
    "created_after": "created_at__gte",
    "created_before": "created_at__lt",
}


def api_filtered(jobs: QuerySet[Job], **filters) -> QuerySet[Job]:
    """These jobs under the API's filters (see API_FILTERS); an empty one filters nothing."""
    return jobs.filter(**{API_FILTERS[name]: value for name, value in filters.items() if value})


def api_jobs(user, **filters) -> QuerySet[Job]:
    """The API's job list filters, over the jobs the user may see."""
    return api_filtered(jobs_visible_to(user), **filters)


def usage_by_day(user, days: int) -> list[dict]:
    """Tokens by UTC day and template over the last `days` days, newest first (finished jobs only)."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        Job.objects.filter(owner=user, purpose=JobPurpose.USER, created_at__gte=since, status__in=FINAL_STATUSES)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "template__slug")
        .annotate(
            jobs=Count("id"),
            prompt_tokens=Sum("prompt_tokens", default=0),
            completion_tokens=Sum("completion_tokens", default=0),
            lost_tokens=Sum("lost_tokens", default=0),
        )
        .order_by("-day", "template__slug")
    )
    return [
        {
            "day": r["day"],
            "template": r["template__slug"],
            "jobs": r["jobs"],
            "prompt_tokens": r["prompt_tokens"],
            "completion_tokens": r["completion_tokens"],
            "lost_tokens": r["lost_tokens"],
            "total_tokens": r["prompt_tokens"] + r["completion_tokens"] + r["lost_tokens"],
        }
        for r in rows
    ]


def batch_for_user(user, batch_id) -> JobBatch | None:
    return JobBatch.objects.filter(owner=user, pk=batch_id).first()
