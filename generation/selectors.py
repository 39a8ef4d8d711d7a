"""Reads. Every query for jobs goes through here, scoped to the user who asks."""

from django.db.models import QuerySet

from .models import Job, Kind, PromptTemplate


def jobs_visible_to(user) -> QuerySet[Job]:
    """A user sees only their own jobs."""
    return Job.objects.filter(owner=user).select_related("template").prefetch_related("outputs")


def job_for_user(user, job_id) -> Job | None:
    return jobs_visible_to(user).filter(pk=job_id).first()


def template_default_for_kind(kind: str) -> PromptTemplate | None:
    return PromptTemplate.objects.filter(kind=kind, is_default=True).first()


def template_by_slug(slug: str) -> PromptTemplate | None:
    return PromptTemplate.objects.filter(slug=slug).first()


def kinds() -> list[tuple[str, str]]:
    return list(Kind.choices)
