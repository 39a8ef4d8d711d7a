"""Reads of prompt templates and their versions (templates are shared: every user may read them)."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from ..models import (
    PromptTemplate,
    TemplateLabel,
    TemplateVersion,
)


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
    return PromptTemplate.objects.filter(kind=kind, labels__name=TemplateLabel.PRODUCTION).order_by(
        "-is_default", "name"
    )


def versions_with_ratings(template: PromptTemplate) -> QuerySet[TemplateVersion]:
    """A template's versions, newest first, each with its thumbs-up and thumbs-down counts."""
    return template.versions.annotate(
        thumbs_up=Count("feedback", filter=Q(feedback__rating=1)),
        thumbs_down=Count("feedback", filter=Q(feedback__rating=-1)),
    ).order_by("-number")
