"""The review queue: the jobs a reviewer's desks have submitted, with what a reviewer decides on (when it was
submitted, the author's note, the proposed candidates, the desk) read in a fixed number of queries."""

from __future__ import annotations

from django.db.models import F, OuterRef, QuerySet, Subquery

from ..models import Job, ReviewEvent, ReviewState
from .jobs import jobs_for_review


def review_queue(user, state: str = "") -> QuerySet[Job]:
    """Jobs for review (of one review state, else all but drafts), latest submission first. Each carries
    `submitted_at` and `submit_note` (its last move to review); its outputs and desk come with it."""
    last_submit = ReviewEvent.objects.filter(
        job=OuterRef("pk"), from_state=ReviewState.DRAFT, to_state=ReviewState.IN_REVIEW
    ).order_by("-created_at", "-id")
    jobs = jobs_for_review(user).select_related("desk")
    if state in ReviewState.values:
        jobs = jobs.filter(review_state=state)
    return jobs.annotate(
        submitted_at=Subquery(last_submit.values("created_at")[:1]),
        submit_note=Subquery(last_submit.values("note")[:1]),
    ).order_by(F("submitted_at").desc(nulls_last=True), "-created_at")
