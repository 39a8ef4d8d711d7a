"""Reads of prompt templates and their versions: shared templates every user may read and use, and a desk's own
templates, for its members only (another desk's is as unknown to them as a slug that does not exist)."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils.translation import get_language

from ..models import (
    Audience,
    DeskLabel,
    PromptTemplate,
    TemplateLabel,
    TemplateVersion,
)


def localized(item, field: str, language: str | None = None) -> str:
    """A template's `name`/`description` (from its translations, {"zh-hans": {"name": ...}}) or a variable's
    `label`/`help` (from its "label_zh-hans" key) in the active language, else as written: a missing or empty
    translation falls back, never blanks the text."""
    language = (language or get_language() or "").lower()
    if isinstance(item, dict):  # a variable of a version
        said = item.get(f"{field}_{language}") if language else None
        return said if isinstance(said, str) and said.strip() else str(item.get(field) or "")
    translations = getattr(item, "translations", None) or {}
    entry = translations.get(language) if isinstance(translations, dict) and language else None
    said = entry.get(field) if isinstance(entry, dict) else None
    return said if isinstance(said, str) and said.strip() else str(getattr(item, field, "") or "")


def template_default_for_kind(kind: str, desk=None) -> PromptTemplate | None:
    """The template a job that names only its kind runs; with a desk, only among those the desk may use (another
    desk's own template is never its default)."""
    found = desk_templates(desk) if desk is not None else PromptTemplate.objects.all()
    return found.filter(kind=kind, is_default=True).first()


def visible_to(user) -> Q:
    """Shared templates, and the own templates of the user's desks; another desk's is unknown to them."""
    return Q(desk__isnull=True) | Q(desk__memberships__user=user)


def offered_in_studio(user) -> Q:
    """The templates the studio offers this user as tabs and filters: for everyone, and staff's trials to staff.
    API-only ones (the OpenAI-compatible chat) never appear there; the API and the jobs run on them still work
    (template_by_slug does not look at the audience)."""
    shown = Q(audience=Audience.EVERYONE)
    if user is not None and getattr(user, "is_staff", False):
        shown |= Q(audience=Audience.STAFF)
    return shown


def usable_by_desk(desk) -> Q:
    """The templates a desk's work may use: the shared ones and the desk's own."""
    return Q(desk__isnull=True) | Q(desk=desk)


def desk_templates(desk) -> QuerySet[PromptTemplate]:
    return PromptTemplate.objects.filter(usable_by_desk(desk))


def template_by_slug(slug: str, user=None) -> PromptTemplate | None:
    """A template by slug; with a user, only one they may use."""
    found = PromptTemplate.objects.filter(slug=slug)
    return (found.filter(visible_to(user)) if user is not None else found).first()


def _visible(user) -> QuerySet[PromptTemplate]:
    if user is None:
        return PromptTemplate.objects.all()
    return PromptTemplate.objects.filter(pk__in=PromptTemplate.objects.filter(visible_to(user)).values("pk"))


def templates_with_versions(user=None) -> QuerySet[PromptTemplate]:
    """Templates with their labels and every version in full; with a user, only those they may use. For one
    template's page (filter it first): a list reads templates_listed."""
    return _visible(user).prefetch_related(
        Prefetch("labels", queryset=TemplateLabel.objects.select_related("version")),
        Prefetch("versions", queryset=TemplateVersion.objects.order_by("number")),
    )


# What a list never shows of a version: its prompts, checks and note (a desk's template may hold many versions,
# each with prompts up to AIGC_MAX_PROMPT_CHARS).
VERSION_TEXTS = ("system_prompt", "user_template", "checks", "note")


def templates_listed(user=None, *, studio: bool = False) -> QuerySet[PromptTemplate]:
    """Templates for a list (the history's filter, the API's template list, the schema): their labels with the
    labelled versions' inputs and defaults, and their version numbers; no version's text is read. `studio`: only
    those the studio offers the user (offered_in_studio), for the history's filter."""
    found = _visible(user).filter(offered_in_studio(user)) if studio else _visible(user)
    return found.prefetch_related(
        Prefetch(
            "labels",
            queryset=TemplateLabel.objects.select_related("version").defer(*(f"version__{f}" for f in VERSION_TEXTS)),
        ),
        Prefetch("versions", queryset=TemplateVersion.objects.only("id", "template", "number").order_by("number")),
    )


def templates_for_kind(kind: str, user=None) -> QuerySet[PromptTemplate]:
    """The studio's tabs: the published templates of a kind that the studio offers (offered_in_studio; with a
    user: those they may use), the default first."""
    found = PromptTemplate.objects.filter(offered_in_studio(user), kind=kind, labels__name=TemplateLabel.PRODUCTION)
    if user is not None:
        found = found.filter(visible_to(user))
    return found.distinct().order_by("-is_default", "name")


def versions_with_ratings(template: PromptTemplate) -> QuerySet[TemplateVersion]:
    """A template's versions, newest first, each with its thumbs-up and thumbs-down counts."""
    return template.versions.annotate(
        thumbs_up=Count("feedback", filter=Q(feedback__rating=1)),
        thumbs_down=Count("feedback", filter=Q(feedback__rating=-1)),
    ).order_by("-number")


# A label with its version's number: what the desk's page shows of where a label points.
_LABEL_FIELDS = ("id", "template", "name", "version", "version__number", "version__template")


def templates_of_desk(desk) -> list[dict]:
    """What the desk's admin manages: each template the desk's members may use (the desk's own first), its
    versions, where its production label points for everyone and, on a shared one, for this desk."""
    numbers = TemplateVersion.objects.only("id", "template", "number").order_by("-number")
    found = (
        desk_templates(desk)
        .prefetch_related(
            Prefetch("labels", queryset=TemplateLabel.objects.select_related("version").only(*_LABEL_FIELDS)),
            Prefetch("versions", queryset=numbers),
            Prefetch(
                "desk_labels",
                queryset=DeskLabel.objects.filter(desk=desk).select_related("version").only(*_LABEL_FIELDS),
            ),
        )
        .order_by("kind", "name")
    )
    rows = []
    for template in found:
        shared = next((x.version for x in template.labels.all() if x.name == TemplateLabel.PRODUCTION), None)
        pinned = next((x.version for x in template.desk_labels.all() if x.name == TemplateLabel.PRODUCTION), None)
        own = template.desk_id == desk.pk
        rows.append(
            {
                "template": template,
                "own": own,
                "versions": list(template.versions.all()),
                # The prompts of the latest version only, of the desk's own templates: what its edit form shows.
                "latest": template.versions.order_by("-number").first() if own else None,
                "shared": shared,
                "pinned": pinned,
                "runs": pinned or shared,
            }
        )
    return sorted(rows, key=lambda row: not row["own"])
