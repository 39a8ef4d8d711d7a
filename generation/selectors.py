"""Reads. Every query for jobs goes through here, scoped to the user who asks."""

from __future__ import annotations

import threading

from django.db.models import Prefetch, QuerySet

from .models import Job, ModelInfo, PromptTemplate, TemplateLabel, TemplateVersion


def jobs_visible_to(user) -> QuerySet[Job]:
    """A user sees only their own jobs."""
    return Job.objects.filter(owner=user).select_related("template", "template_version").prefetch_related("outputs")


def job_for_user(user, job_id) -> Job | None:
    return jobs_visible_to(user).filter(pk=job_id).first()


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
