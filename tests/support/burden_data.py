"""Real rows for the editor-burden tests (selectors, API, metrics): jobs, outputs with final text, review events at
set times and ratings, over two versions of one template and a second template that must not be mixed in."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from generation.models import (
    Feedback,
    Job,
    JobOutput,
    JobStatus,
    PromptTemplate,
    ReviewEvent,
    ReviewState,
    TemplateVersion,
)

TEN = "the city council voted on tuesday to build a bridge"
ONE_CHANGED = TEN.replace("bridge", "tunnel")  # 0.1
THREE_CHANGED = TEN.replace("city", "town").replace("voted", "agreed").replace("bridge", "tunnel")  # 0.3

DRAFT, IN_REVIEW, APPROVED = ReviewState.DRAFT, ReviewState.IN_REVIEW, ReviewState.APPROVED


def _version(template: PromptTemplate, number: int) -> TemplateVersion:
    return TemplateVersion.objects.create(template=template, number=number, user_template="Write about {topic}.")


def _job(owner, version: TemplateVersion, state: str, *, finished_at, outputs=(), created_at=None) -> Job:
    """A succeeded job finished at `finished_at`; `outputs`: (text, final_text or None[, chosen]) tuples, chosen
    unless the third item says otherwise (an approved job always has a choice)."""
    job = Job.objects.create(
        owner=owner,
        kind=version.template.kind,
        template=version.template,
        template_version=version,
        status=JobStatus.SUCCEEDED,
        finished_at=finished_at,
        review_state=state,
    )
    if created_at is not None:
        Job.objects.filter(pk=job.pk).update(created_at=created_at)
    for index, (text, final, *chosen) in enumerate(outputs):
        JobOutput.objects.create(
            job=job,
            index=index,
            text=text,
            chosen=chosen[0] if chosen else True,
            final_text=final or "",
            edited_at=finished_at + timedelta(seconds=5) if final is not None else None,
        )
    return job


def _moves(job: Job, start, *moves) -> None:
    """(seconds after `start`, actor, from, to) review events, with their times set."""
    for seconds, actor, frm, to in moves:
        event = ReviewEvent.objects.create(job=job, actor=actor, from_state=frm, to_state=to)
        ReviewEvent.objects.filter(pk=event.pk).update(created_at=start + timedelta(seconds=seconds))


def build(owner, reviewer) -> dict:
    """The scenario; returns the template and versions. Expected figures are in tests/selectors/test_burden.py."""
    t0 = timezone.now() - timedelta(days=1)
    template = PromptTemplate.objects.create(kind="writing", slug="burden-article", name="Burden article")
    v1, v2, v3 = _version(template, 1), _version(template, 2), _version(template, 3)  # v3 never ran
    other = PromptTemplate.objects.create(kind="summary", slug="burden-other", name="Burden other")
    o1 = _version(other, 1)

    # v1, approved after being sent back once: edited output (0.1) beside an unedited one, both chosen, and a
    # candidate left aside (edited, but not published: no part of the figures); approved at +400 s.
    j1 = _job(
        owner, v1, APPROVED, finished_at=t0, outputs=[(TEN, ONE_CHANGED), (TEN, None), (TEN, THREE_CHANGED, False)]
    )
    _moves(
        j1,
        t0,
        (100, owner, DRAFT, IN_REVIEW),
        (200, reviewer, IN_REVIEW, DRAFT),  # sent back: a decision
        (300, owner, DRAFT, IN_REVIEW),
        (400, reviewer, IN_REVIEW, APPROVED),
    )
    # v1, withdrawn by its owner (not a decision), then approved at +1000 s; edited 0.3.
    j2 = _job(owner, v1, APPROVED, finished_at=t0, outputs=[(TEN, THREE_CHANGED)])
    _moves(
        j2,
        t0,
        (10, owner, DRAFT, IN_REVIEW),
        (20, owner, IN_REVIEW, DRAFT),
        (30, owner, DRAFT, IN_REVIEW),
        (1000, reviewer, IN_REVIEW, APPROVED),
    )
    # v1, in review with an edited output: not approved, so not in the edit figures.
    j3 = _job(owner, v1, IN_REVIEW, finished_at=t0, outputs=[(TEN, ONE_CHANGED)])
    _moves(j3, t0, (10, owner, DRAFT, IN_REVIEW))
    # v1, sent back by a reviewer whose account was deleted since (actor NULL): still a decision.
    j4 = _job(owner, v1, DRAFT, finished_at=t0, outputs=[(TEN, None)])
    _moves(j4, t0, (10, owner, DRAFT, IN_REVIEW), (20, None, IN_REVIEW, DRAFT))
    # v1, approved then reopened: its approval is a decision, but it is not approved now.
    j5 = _job(owner, v1, DRAFT, finished_at=t0, outputs=[(TEN, THREE_CHANGED)])
    _moves(j5, t0, (10, owner, DRAFT, IN_REVIEW), (20, reviewer, IN_REVIEW, APPROVED), (30, reviewer, APPROVED, DRAFT))
    for output, user, rating in (
        (j1.outputs.get(index=0), owner, 1),
        (j1.outputs.get(index=0), reviewer, 1),
        (j2.outputs.get(), reviewer, -1),
    ):
        Feedback.objects.create(output=output, user=user, template_version=v1, rating=rating)

    # v2: one approved job, unedited, approved at +50 s, rated bad.
    j6 = _job(owner, v2, APPROVED, finished_at=t0, outputs=[(TEN, None)])
    _moves(j6, t0, (10, owner, DRAFT, IN_REVIEW), (50, reviewer, IN_REVIEW, APPROVED))
    Feedback.objects.create(output=j6.outputs.get(), user=owner, template_version=v2, rating=-1)

    # Another template, created 60 days ago: everything of its own, none of it in the other rows.
    old = t0 - timedelta(days=59)
    j7 = _job(owner, o1, APPROVED, finished_at=old, outputs=[("a b c d", "w x y z")], created_at=old)
    _moves(
        j7,
        old,
        (5, owner, DRAFT, IN_REVIEW),
        (6, reviewer, IN_REVIEW, DRAFT),
        (7, owner, DRAFT, IN_REVIEW),
        (9, reviewer, IN_REVIEW, APPROVED),
    )
    Feedback.objects.create(output=j7.outputs.get(), user=owner, template_version=o1, rating=1)
    return {"template": template, "v1": v1, "v2": v2, "v3": v3, "other": other, "o1": o1}


V1 = {
    "template": "burden-article",
    "kind": "writing",
    "version": 1,
    "jobs": 5,
    "edits": {"jobs": 2, "outputs": 3, "edited": 2, "edited_share": 2 / 3, "edited_jobs": 2, "change_ratio": 0.2},
    "approval": {"jobs": 2, "median_s": 700.0, "p90_s": 1000.0},
    "review": {"jobs": 4, "decisions": 5, "sent_back": 2, "rejection_rate": 0.4},
    "ratings": {"jobs": 2, "good": 2, "bad": 1, "good_share": 2 / 3},
}
V2 = {
    "template": "burden-article",
    "kind": "writing",
    "version": 2,
    "jobs": 1,
    "edits": {"jobs": 1, "outputs": 1, "edited": 0, "edited_share": 0.0, "edited_jobs": 0, "change_ratio": None},
    "approval": {"jobs": 1, "median_s": 50.0, "p90_s": 50.0},
    "review": {"jobs": 1, "decisions": 1, "sent_back": 0, "rejection_rate": 0.0},
    "ratings": {"jobs": 1, "good": 0, "bad": 1, "good_share": 0.0},
}
V3 = {
    "template": "burden-article",
    "kind": "writing",
    "version": 3,
    "jobs": 0,
    "edits": {"jobs": 0, "outputs": 0, "edited": 0, "edited_share": None, "edited_jobs": 0, "change_ratio": None},
    "approval": {"jobs": 0, "median_s": None, "p90_s": None},
    "review": {"jobs": 0, "decisions": 0, "sent_back": 0, "rejection_rate": None},
    "ratings": {"jobs": 0, "good": 0, "bad": 0, "good_share": None},
}
OTHER = {
    "template": "burden-other",
    "kind": "summary",
    "version": 1,
    "jobs": 1,
    "edits": {"jobs": 1, "outputs": 1, "edited": 1, "edited_share": 1.0, "edited_jobs": 1, "change_ratio": 1.0},
    "approval": {"jobs": 1, "median_s": 9.0, "p90_s": 9.0},
    "review": {"jobs": 1, "decisions": 2, "sent_back": 1, "rejection_rate": 0.5},
    "ratings": {"jobs": 1, "good": 1, "bad": 0, "good_share": 1.0},
}
