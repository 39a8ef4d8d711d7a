"""In-app notices: who hears of each review move, written in the same transaction as the move (a refused move
leaves none); and reading them. The webhooks tell the tools; these tell the people."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone, translation
from django.utils.text import Truncator
from django.utils.translation import gettext as _

from ..models import Job, Notification, ReviewEvent, ReviewState
from ..selectors.notifications import desk_reviewer_ids

# (from, to) of a review move -> (verb, who hears of it). Sent back is a reviewer's move to draft; the owner's own
# (a withdrawal) tells nobody, since the actor never hears of their own move.
MOVE_VERBS = {
    (ReviewState.DRAFT, ReviewState.IN_REVIEW): ("submitted", "reviewers"),
    (ReviewState.IN_REVIEW, ReviewState.APPROVED): ("approved", "owner"),
    (ReviewState.IN_REVIEW, ReviewState.DRAFT): ("sent_back", "owner"),
    (ReviewState.APPROVED, ReviewState.DRAFT): ("reopened", "owner"),
}
JOB_LABEL_CHARS = 60
MAX_MESSAGE = 300  # Notification.message


def describe(verb: str, *, actor: str, job: str, note: str = "") -> str:
    """The notice's sentence in the active language: who did what to which job, and the note if any."""
    sentences = {
        "submitted": _("%(actor)s submitted “%(job)s” for review."),
        "approved": _("%(actor)s approved “%(job)s”."),
        "sent_back": _("%(actor)s sent “%(job)s” back to you."),
        "reopened": _("%(actor)s reopened “%(job)s”."),
        "choice_changed": _("%(actor)s changed the choice of candidate in “%(job)s”."),
        "edited": _("%(actor)s edited a candidate of “%(job)s”."),
    }
    text = sentences.get(verb, _("%(actor)s changed “%(job)s”.")) % {"actor": actor, "job": job}
    return f"{text} {note}" if note else text


def job_label(job: Job) -> str:
    """A job named briefly: what it is about (its main input), else its template."""
    return Truncator(" ".join(job.main_input.split())).chars(JOB_LABEL_CHARS) or job.template.name


def notify(event: ReviewEvent, verb: str, user_ids) -> list[Notification]:
    """Notices of one logged event to these users, the actor left out. Call inside the event's transaction."""
    recipients = sorted(set(user_ids) - {event.actor_id})
    if not recipients:
        return []
    job = event.job
    actor = event.actor.get_username() if event.actor else ""
    with translation.override(settings.LANGUAGE_CODE):  # the stored text (the API's) in the site's language
        message = Truncator(describe(verb, actor=actor, job=job_label(job), note=event.note)).chars(MAX_MESSAGE)
    return Notification.objects.bulk_create(
        Notification(user_id=pk, job=job, event=event, verb=verb, message=message) for pk in recipients
    )


def notify_move(event: ReviewEvent) -> list[Notification]:
    """The notices a review move owes: a submission to the desk's reviewers, anything else to the owner. A job that
    leaves review no longer waits for the other reviewers: their "submitted" notices of it are settled (read)."""
    job = event.job
    if event.from_state == ReviewState.IN_REVIEW:
        Notification.objects.filter(job=job, verb="submitted", read_at__isnull=True).update(read_at=timezone.now())
    verb, who = MOVE_VERBS[(event.from_state, event.to_state)]
    return notify(event, verb, desk_reviewer_ids(job.desk_id) if who == "reviewers" else [job.owner_id])


def notifications_read(user, *, ids=None, job=None) -> int:
    """Mark the user's unread notices read: these ids, those of one job, or (neither given) all. Another user's
    ids are ignored. Returns how many were marked."""
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=ids)
    if job is not None:
        unread = unread.filter(job=job)
    return unread.update(read_at=timezone.now())
