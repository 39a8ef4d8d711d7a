"""What editors and reviewers do with a finished job: rate outputs, edit them into final text, choose the
candidate(s) to publish, move the job through review. Also cancelling. Each verb checks who may do it, so no view
can forget to.

A job with several candidates goes to review, and is approved, only with a choice made; a job with one candidate
chooses it by itself. What approval approves is the chosen candidates' final text, never simply the first."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from ..infra import events
from ..models import Feedback, Job, JobOutput, JobStatus, ReviewEvent, ReviewState
from ..selectors.desks import may_review, review_desk_ids
from .notifications import notify, notify_move
from .webhooks import APPROVED_EVENT, webhook_enqueue

MAX_FINAL_TEXT = 100_000
MAX_NOTE = 2000

# (from, to) -> who may move it: the owner, or a reviewer of the job's desk; approving takes a reviewer other
# than the owner (a reviewer's own job needs a second pair of eyes, like anyone else's).
MOVES = {
    (ReviewState.DRAFT, ReviewState.IN_REVIEW): "owner",
    (ReviewState.IN_REVIEW, ReviewState.DRAFT): "owner_or_reviewer",  # withdrawn, or sent back
    (ReviewState.IN_REVIEW, ReviewState.APPROVED): "other_reviewer",
    (ReviewState.APPROVED, ReviewState.DRAFT): "reviewer",  # reopened
}


def is_reviewer(user) -> bool:
    """Reviews some desk's jobs (the review queue is theirs to see)."""
    return bool(review_desk_ids(user))


def _allowed(user, job: Job, who: str) -> bool:
    owner, reviewer = job.owner_id == user.pk, may_review(user, job.desk_id)
    return {
        "owner": owner,
        "reviewer": reviewer,
        "owner_or_reviewer": owner or reviewer,
        "other_reviewer": reviewer and not owner,
    }[who]


def review_moves(job: Job, user) -> list[str]:
    """The states this user may move this job to now."""
    if job.status != JobStatus.SUCCEEDED:
        return []
    return [to for (frm, to), who in MOVES.items() if frm == job.review_state and _allowed(user, job, who)]


def job_cancel(job: Job, *, user) -> bool:
    """Stop a queued or running job. Returns False when it had already ended."""
    if job.owner_id != user.pk:
        raise PermissionDenied
    with transaction.atomic():  # the cancel and the callback it owes (the webhook outbox row) commit together
        cancelled = Job.objects.filter(pk=job.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now()
        )
        if cancelled:
            webhook_enqueue(job.pk)
    if cancelled:
        events.request_cancel(job.pk)  # a running job stops within a decoding step
        if job.status == JobStatus.QUEUED:
            events.publish_end(job.pk, JobStatus.CANCELLED)  # no worker will: end the stream for readers
    return bool(cancelled)


def feedback_set(output: JobOutput, *, user, rating: int, comment: str = "") -> Feedback:
    """Thumbs up (1) or down (-1) with an optional comment; one per user and output, changed in place."""
    if output.job.owner_id != user.pk and not may_review(user, output.job.desk_id):
        raise PermissionDenied
    if rating not in (1, -1):
        raise ValidationError({"rating": "Choose thumbs up or thumbs down."})
    if len(comment) > 2000:
        raise ValidationError({"comment": "Keep the comment under 2000 characters."})
    feedback, _ = Feedback.objects.update_or_create(
        output=output,
        user=user,
        defaults={"rating": rating, "comment": comment.strip(), "template_version_id": output.job.template_version_id},
    )
    return feedback


def _fixes_in_review(job: Job, user) -> bool:
    """A reviewer of the job's desk, not its owner, may fix its text while it is in review (a typo needs no send
    back); logged, and the owner told."""
    return job.review_state == ReviewState.IN_REVIEW and job.owner_id != user.pk and may_review(user, job.desk_id)


def outputs_editable(job: Job, user) -> bool:
    """Whether this user may edit the job's outputs now: the owner of a job that succeeded while it is a draft, or
    a reviewer of its desk while it is in review. Not the owner in review (the reviewer would approve a text that
    changes under them) and nobody once approved."""
    if job.status != JobStatus.SUCCEEDED:
        return False
    owner_in_draft = job.owner_id == user.pk and job.review_state == ReviewState.DRAFT
    return owner_in_draft or _fixes_in_review(job, user)


def output_edit(output: JobOutput, *, user, text: str) -> JobOutput:
    """The final text for an output, kept beside the model's: the owner's while the job is a draft, or a
    reviewer's fix while it is in review (a ReviewEvent "Edited candidate N" and a notice to the owner)."""
    job = output.job
    owner = job.owner_id == user.pk
    if not (owner or (job.review_state != ReviewState.DRAFT and may_review(user, job.desk_id))):
        raise PermissionDenied  # a draft is its owner's alone
    fixing = not owner and job.review_state == ReviewState.IN_REVIEW
    if job.review_state == ReviewState.IN_REVIEW and not fixing:
        raise ValidationError({"text": "This job is in review; withdraw it to a draft before editing."})
    if job.review_state == ReviewState.APPROVED:
        raise ValidationError({"text": "This job is approved; ask a reviewer to reopen it before editing."})
    if job.status != JobStatus.SUCCEEDED:
        raise ValidationError({"text": "Only the outputs of a job that succeeded can be edited."})
    if not text.strip():
        raise ValidationError({"text": "The final text cannot be empty."})
    if len(text) > MAX_FINAL_TEXT:
        raise ValidationError({"text": f"Keep the text under {MAX_FINAL_TEXT} characters."})
    text = text.replace("\r\n", "\n")
    if fixing and text == output.current_text:
        return output  # nothing changed: nothing to log or tell
    state, edited_at = job.review_state, timezone.now()
    with transaction.atomic():
        # Written only if the job is still in the state judged above: a move at the same moment cannot let it
        # through (an owner's edit racing a submit, a reviewer's racing an approval).
        saved = JobOutput.objects.filter(pk=output.pk, job__review_state=state).update(
            final_text=text, edited_at=edited_at
        )
        if not saved:
            raise ValidationError({"text": "This job moved on just now; reload the page."})
        if fixing:
            event = ReviewEvent.objects.create(
                job=job, actor=user, from_state=state, to_state=state, note=f"Edited candidate {output.index + 1}."
            )
            notify(event, "edited", [job.owner_id])
    output.final_text, output.edited_at = text, edited_at
    return output


def output_choose(output: JobOutput, *, user, chosen: bool = True) -> JobOutput:
    """Choose a candidate (or take the choice back); several may be chosen. The owner chooses while the job is a
    draft; a reviewer of its desk may change the choice while it is in review, and that change is logged as a
    ReviewEvent (from and to "in review", the note saying what changed). Nobody changes an approved choice
    without reopening the job."""
    job = output.job
    owner, reviewer = job.owner_id == user.pk, may_review(user, job.desk_id)
    state = job.review_state
    if not (owner or (reviewer and state != ReviewState.DRAFT)):
        raise PermissionDenied
    if job.status != JobStatus.SUCCEEDED:
        raise ValidationError({"chosen": "Only the candidates of a job that succeeded can be chosen."})
    if state == ReviewState.APPROVED:
        raise ValidationError(
            {"chosen": "This job is approved; ask a reviewer to reopen it before changing the choice."}
        )
    if state == ReviewState.IN_REVIEW and not reviewer:
        raise ValidationError({"chosen": "This job is in review; withdraw it to a draft to change the choice."})
    was = JobOutput.objects.filter(pk=output.pk).values_list("chosen", flat=True).first()
    with transaction.atomic():
        # Written only while the job is still in the state judged above: a move at the same moment wins.
        saved = JobOutput.objects.filter(pk=output.pk, job__review_state=state).update(chosen=chosen)
        if not saved:
            raise ValidationError({"chosen": "Someone else moved this job just now; reload the page."})
        if state == ReviewState.IN_REVIEW and was != chosen:
            verb = "Chose" if chosen else "Took back the choice of"
            event = ReviewEvent.objects.create(
                job=job, actor=user, from_state=state, to_state=state, note=f"{verb} candidate {output.index + 1}."
            )
            notify(event, "choice_changed", [job.owner_id])
    output.chosen = chosen
    return output


def _settle_choice(job: Job, verb: str) -> None:
    """Before a submit or an approval: a job with one candidate chooses it; one with several needs a choice."""
    outputs = list(JobOutput.objects.filter(job=job).values_list("pk", "chosen"))
    if any(chosen for _, chosen in outputs):
        return
    if len(outputs) == 1:
        JobOutput.objects.filter(pk=outputs[0][0]).update(chosen=True)
    elif outputs:
        raise ValidationError(
            {
                "chosen": f"Choose the candidate to {verb} first: this job has {len(outputs)} candidates and none "
                "is chosen."
            }
        )


def review_move(job: Job, *, user, to_state: str, note: str = "") -> Job:
    """Move a job through review, if this user may make this move; recorded as a ReviewEvent. Submitting and
    approving need a chosen candidate (see _settle_choice); approving also dates the approval and owes the
    job.approved webhook, and every move owes its notices (services.notifications), in the same transaction."""
    who = MOVES.get((job.review_state, to_state))
    if who is None:
        raise ValidationError({"to_state": f"A job cannot go from {job.get_review_state_display()} to {to_state}."})
    if who == "other_reviewer" and job.owner_id == user.pk and may_review(user, job.desk_id):
        raise ValidationError({"to_state": "You cannot approve your own job: another reviewer must approve it."})
    if not _allowed(user, job, who):
        raise PermissionDenied
    if job.status != JobStatus.SUCCEEDED:
        raise ValidationError({"to_state": "Only a job that succeeded can be reviewed."})
    if len(note) > MAX_NOTE:
        raise ValidationError({"note": f"Keep the note under {MAX_NOTE} characters."})
    fields = {"review_state": to_state}
    if to_state == ReviewState.APPROVED:
        fields["approved_at"] = timezone.now()
    elif job.review_state == ReviewState.APPROVED:
        fields["approved_at"] = None  # reopened: no longer in the approved feed
    with transaction.atomic():
        if to_state in (ReviewState.IN_REVIEW, ReviewState.APPROVED):
            _settle_choice(job, "submit" if to_state == ReviewState.IN_REVIEW else "approve")
        moved = Job.objects.filter(pk=job.pk, review_state=job.review_state).update(**fields)
        if not moved:
            raise ValidationError({"to_state": "Someone else moved this job just now; reload the page."})
        event = ReviewEvent.objects.create(
            job=job, actor=user, from_state=job.review_state, to_state=to_state, note=note.strip()
        )
        notify_move(event)  # the people who hear of it, in the same transaction
        if to_state == ReviewState.APPROVED:
            webhook_enqueue(job.pk, APPROVED_EVENT)
    for name, value in fields.items():
        setattr(job, name, value)
    return job
