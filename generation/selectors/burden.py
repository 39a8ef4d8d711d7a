"""Editor burden per template version: how much work a version's outputs left to editors and reviewers, from data
the studio already keeps (outputs with their final text, review events, ratings). Which wording saves work is
what template curators compare versions on.

Each figure comes with the number of jobs it rests on, and is None when there is nothing to rest on:

- edits: over the chosen outputs of the version's *approved* jobs (review_state approved now): what was
  published, not the candidates left aside. Edits are made in draft (the author) or in review (a reviewer's
  fix) and an approved job is locked, so every edit of these was made before the approval that stands.
  `edited_share`: outputs whose edited_at is set / all their outputs. `change_ratio`: the mean, over the
  edited outputs, of sacrebleu's TER of final_text against text (content/burden.change_ratio; 0.1 = one word
  in ten; past 64 tokens without TER's shift search, see SHIFT_SEARCH_TOKENS there). `jobs` the approved
  jobs, `edited_jobs` those with an edited output (what change_ratio rests on).
- approval: seconds from the job's finished_at (the model done) to the in_review -> approved event that
  approved it (the latest: a reopened and re-approved job counts its whole way), so editing, waiting and
  review together; median and p90 (nearest rank) over approved jobs.
- review: decisions are moves out of in_review by someone other than the job's owner (an owner's
  in_review -> draft is a withdrawal, not a verdict); `rejection_rate` = those to draft (sent back) / all of
  them (sent back + approved). `jobs`: jobs with at least one decision.
- ratings: Feedback rows of the version (its template_version), good (1) and bad (-1), `good_share` =
  good / (good + bad); `jobs`: jobs with a rated output.

`since` restricts everything to jobs created since then (the metrics' rolling window) and lists only the
versions with such jobs. Six queries whatever the number of versions: counts are grouped in SQL (portable to
PostgreSQL and SQLite); TER and percentiles are computed here, as neither database has them in common.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.db.models import Count, F, Max, Q

from ..content import burden
from ..models import Feedback, Job, JobOutput, JobPurpose, PromptTemplate, ReviewEvent, ReviewState, TemplateVersion


def version_burden(
    version_ids=None, template: PromptTemplate | None = None, since: datetime | None = None
) -> list[dict]:
    """One row per template version (by template slug, then version number): see the module's docstring."""
    versions = TemplateVersion.objects.select_related("template").order_by("template__slug", "number")
    if version_ids is not None:
        versions = versions.filter(pk__in=list(version_ids))
    if template is not None:
        versions = versions.filter(template=template)
    users = Q(jobs__purpose=JobPurpose.USER)  # evaluation jobs are nobody's work to edit or review
    if since is not None:
        versions = versions.annotate(n_jobs=Count("jobs", filter=users & Q(jobs__created_at__gte=since))).filter(
            n_jobs__gt=0
        )
    else:
        versions = versions.annotate(n_jobs=Count("jobs", filter=users))
    versions = list(versions)
    if not versions:
        return []
    pks = [v.pk for v in versions]

    jobs = Job.objects.filter(template_version_id__in=pks, purpose=JobPurpose.USER)
    if since is not None:
        jobs = jobs.filter(created_at__gte=since)
    approved = jobs.filter(review_state=ReviewState.APPROVED)
    edited = Q(edited_at__isnull=False)

    outputs = {
        r["job__template_version_id"]: r
        for r in JobOutput.objects.filter(job__in=approved, chosen=True)
        .values("job__template_version_id")
        .annotate(
            outputs=Count("pk"),
            edited=Count("pk", filter=edited),
            jobs=Count("job_id", distinct=True),
            edited_jobs=Count("job_id", distinct=True, filter=edited),
        )
        .order_by()
    }
    changes = defaultdict(list)
    for version_id, text, final_text in (
        JobOutput.objects.filter(edited, job__in=approved, chosen=True)
        .values_list("job__template_version_id", "text", "final_text")
        .order_by()
    ):
        changes[version_id].append(burden.change_ratio(text, final_text))

    waits = defaultdict(list)
    for r in (
        ReviewEvent.objects.filter(job__in=approved, from_state=ReviewState.IN_REVIEW, to_state=ReviewState.APPROVED)
        .values("job_id", "job__template_version_id", "job__finished_at")
        .annotate(approved_at=Max("created_at"))
        .order_by()
    ):
        if r["job__finished_at"] is not None:
            waits[r["job__template_version_id"]].append((r["approved_at"] - r["job__finished_at"]).total_seconds())

    # exclude() keeps events whose actor was deleted (NULL): a decision by someone, not provably the owner's.
    decisions = {
        r["job__template_version_id"]: r
        for r in ReviewEvent.objects.filter(job__in=jobs, from_state=ReviewState.IN_REVIEW)
        .exclude(to_state=ReviewState.IN_REVIEW)  # a reviewer's change of the chosen candidate: no decision
        .exclude(actor_id=F("job__owner_id"))
        .values("job__template_version_id")
        .annotate(
            decisions=Count("pk"),
            sent_back=Count("pk", filter=Q(to_state=ReviewState.DRAFT)),
            jobs=Count("job_id", distinct=True),
        )
        .order_by()
    }

    feedback = Feedback.objects.filter(template_version_id__in=pks)
    if since is not None:
        feedback = feedback.filter(output__job__created_at__gte=since)
    ratings = {
        r["template_version_id"]: r
        for r in feedback.values("template_version_id")
        .annotate(
            good=Count("pk", filter=Q(rating=1)),
            bad=Count("pk", filter=Q(rating=-1)),
            jobs=Count("output__job_id", distinct=True),
        )
        .order_by()
    }

    rows = []
    for version in versions:
        out = outputs.get(version.pk, {})
        waited = waits.get(version.pk, [])
        decided = decisions.get(version.pk, {})
        rated = ratings.get(version.pk, {})
        good, bad = rated.get("good", 0), rated.get("bad", 0)
        ratios = changes.get(version.pk, [])
        rows.append(
            {
                "template": version.template.slug,
                "kind": version.template.kind,
                "version": version.number,
                "version_id": version.pk,
                "jobs": version.n_jobs,
                "edits": {
                    "jobs": out.get("jobs", 0),
                    "outputs": out.get("outputs", 0),
                    "edited": out.get("edited", 0),
                    "edited_share": burden.share(out.get("edited", 0), out.get("outputs", 0)),
                    "edited_jobs": out.get("edited_jobs", 0),
                    "change_ratio": sum(ratios) / len(ratios) if ratios else None,
                },
                "approval": {
                    "jobs": len(waited),
                    "median_s": burden.median(waited),
                    "p90_s": burden.percentile(waited, 0.9),
                },
                "review": {
                    "jobs": decided.get("jobs", 0),
                    "decisions": decided.get("decisions", 0),
                    "sent_back": decided.get("sent_back", 0),
                    "rejection_rate": burden.share(decided.get("sent_back", 0), decided.get("decisions", 0)),
                },
                "ratings": {
                    "jobs": rated.get("jobs", 0),
                    "good": good,
                    "bad": bad,
                    "good_share": burden.share(good, good + bad),
                },
            }
        )
    return rows
