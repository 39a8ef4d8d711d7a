"""In-app notices, scoped to the person they are for, and the counts the nav shows on every page: each a single
query, asked only by pages that show the nav."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet

from ..models import Job, JobPurpose, Membership, Notification, ReviewState
from .desks import REVIEWS, review_desk_ids

REVIEW_PERMISSION = "generation.review_job"
PERMISSIONS_BACKEND = "django.contrib.auth.backends.ModelBackend"  # the one that grants permissions (axes grants none)
# The notices that send an author back to their own job: "My jobs (1)" counts the jobs that have one unread.
MY_JOBS_VERBS = ("approved", "sent_back")


def notifications_for(user) -> QuerySet[Notification]:
    """A user's notices, newest first, with what their line shows (actor, job, template) in the same query."""
    return (
        Notification.objects.filter(user=user)
        .select_related("event__actor", "job__template", "job__template_version")
        .order_by("-created_at", "-id")
    )


def unread_counts(user) -> dict[str, int]:
    """The nav's counts in one query: unread notices, and the user's own jobs with an unread approval or send-back."""
    if not user.is_authenticated:
        return {"unread": 0, "my_jobs": 0}
    return Notification.objects.filter(user=user, read_at__isnull=True).aggregate(
        unread=Count("id"),
        my_jobs=Count("job", distinct=True, filter=Q(job__owner=user, verb__in=MY_JOBS_VERBS)),
    )


def review_count(user, desk_ids: list[int] | None = None) -> int:
    """Jobs waiting in review on the desks this user reviews, their own left out (someone else approves those)."""
    desk_ids = review_desk_ids(user) if desk_ids is None else desk_ids
    if not desk_ids:
        return 0
    return (
        Job.objects.filter(purpose=JobPurpose.USER, desk_id__in=desk_ids, review_state=ReviewState.IN_REVIEW)
        .exclude(owner=user)
        .count()
    )


def desk_reviewer_ids(desk_id) -> set[int]:
    """Who reviews a desk's jobs, as selectors.desks.may_review decides for one user: its reviewers and admins, and
    its members who hold the site-wide review permission (superusers included); active accounts only."""
    members = Membership.objects.filter(desk_id=desk_id, user__is_active=True)
    by_role = members.filter(role__in=REVIEWS).values_list("user_id", flat=True)
    site_wide = get_user_model().objects.with_perm(REVIEW_PERMISSION, backend=PERMISSIONS_BACKEND)
    site_wide = site_wide.filter(memberships__desk_id=desk_id)
    return set(by_role) | set(site_wide.values_list("pk", flat=True))
