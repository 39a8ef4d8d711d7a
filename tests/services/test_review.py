"""Feedback, final text and review moves: who may do what, and what is kept."""

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError

from generation import services
from generation.models import Feedback, Job, JobOutput, JobStatus, ReviewEvent, ReviewState

pytestmark = pytest.mark.django_db


@pytest.fixture
def done_job(user):
    job = services.job_create(user=user, kind="headline", inputs={"text": "A council votes for a bridge."})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    job.refresh_from_db()
    JobOutput.objects.create(job=job, index=0, text="Council backs new bridge")
    return job


def test_new_users_are_editors_and_reviewers_have_the_permission(user, reviewer):
    assert list(user.groups.values_list("name", flat=True)) == ["editor"]
    assert not services.is_reviewer(user) and services.is_reviewer(reviewer)


def test_feedback_is_one_per_user_and_output_and_keeps_the_version(done_job, user):
    output = done_job.outputs.get()
    services.feedback_set(output, user=user, rating=1, comment="Sharp")
    services.feedback_set(output, user=user, rating=-1, comment="Too long after all")
    feedback = Feedback.objects.get()
    assert (feedback.rating, feedback.comment, feedback.template_version_id) == (
        -1,
        "Too long after all",
        done_job.template_version_id,
    )
    with pytest.raises(ValidationError) as err:
        services.feedback_set(output, user=user, rating=5)
    assert "rating" in err.value.message_dict


def test_others_cannot_rate_edit_or_cancel(done_job, other_user):
    output = done_job.outputs.get()
    with pytest.raises(PermissionDenied):
        services.feedback_set(output, user=other_user, rating=1)
    with pytest.raises(PermissionDenied):
        services.output_edit(output, user=other_user, text="mine now")
    with pytest.raises(PermissionDenied):
        services.job_cancel(done_job, user=other_user)


def test_final_text_is_kept_beside_the_model_text(done_job, user):
    output = services.output_edit(done_job.outputs.get(), user=user, text="Council approves Elm River bridge\r\n")
    output.refresh_from_db()
    assert output.text == "Council backs new bridge" and output.final_text == "Council approves Elm River bridge\n"
    assert output.current_text == output.final_text
    with pytest.raises(ValidationError) as err:
        services.output_edit(output, user=user, text="   ")
    assert "text" in err.value.message_dict


def test_review_flow_owner_submits_reviewer_approves_and_edits_stop(done_job, user, reviewer):
    assert services.review_moves(done_job, user) == [ReviewState.IN_REVIEW]
    with pytest.raises(PermissionDenied):
        services.review_move(done_job, user=reviewer, to_state=ReviewState.IN_REVIEW)  # only the owner submits
    services.review_move(done_job, user=user, to_state=ReviewState.IN_REVIEW, note="please check")
    with pytest.raises(PermissionDenied):
        services.review_move(done_job, user=user, to_state=ReviewState.APPROVED)  # owners do not approve their own
    assert set(services.review_moves(done_job, reviewer)) == {ReviewState.DRAFT, ReviewState.APPROVED}
    services.review_move(done_job, user=reviewer, to_state=ReviewState.APPROVED)
    assert Job.objects.get(pk=done_job.pk).review_state == ReviewState.APPROVED
    with pytest.raises(ValidationError):
        services.output_edit(done_job.outputs.get(), user=user, text="late change")
    log = list(ReviewEvent.objects.values_list("from_state", "to_state", "actor__username", "note"))
    assert log == [("draft", "in_review", "editor", "please check"), ("in_review", "approved", "reviewer", "")]


def test_impossible_moves_and_unfinished_jobs_are_refused(done_job, user, reviewer):
    with pytest.raises(ValidationError) as err:
        services.review_move(done_job, user=reviewer, to_state=ReviewState.APPROVED)  # not submitted yet
    assert "to_state" in err.value.message_dict
    queued = services.job_create(user=user, kind="headline", inputs={"text": "story"})
    with pytest.raises(ValidationError):
        services.review_move(queued, user=user, to_state=ReviewState.IN_REVIEW)
    assert not ReviewEvent.objects.exists()


def test_cancel_a_queued_job_ends_its_stream(user):
    """Read back from the real Redis: readers of the stream get the end, a worker gets the cancel flag."""
    import json

    from generation.infra import events, redis_client

    job = services.job_create(user=user, kind="headline", inputs={"text": "story"})
    assert services.job_cancel(job, user=user) is True
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    entries = redis_client.client().xrange(events.stream_key(job.pk))
    assert [(f[b"event"], json.loads(f[b"data"])) for _, f in entries] == [(b"done", {"status": "cancelled"})]
    assert services.job_cancel(Job.objects.get(pk=job.pk), user=user) is False
    assert len(redis_client.client().xrange(events.stream_key(job.pk))) == 1  # ended once
    assert events.CancelFlag(job.pk)() is True  # a worker running it would stop at its next step


def test_a_reviewer_cannot_approve_their_own_job(django_user_model, reviewer):
    """Four eyes: a reviewer's own job is approved by another reviewer; the move is not even offered."""
    job = services.job_create(user=reviewer, kind="headline", inputs={"text": "A council votes for a bridge."})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    job.refresh_from_db()
    services.review_move(job, user=reviewer, to_state=ReviewState.IN_REVIEW)
    assert services.review_moves(job, reviewer) == [ReviewState.DRAFT]  # withdraw only
    with pytest.raises(ValidationError) as err:
        services.review_move(job, user=reviewer, to_state=ReviewState.APPROVED)
    assert "another reviewer must approve it" in err.value.message_dict["to_state"][0]
    assert Job.objects.get(pk=job.pk).review_state == ReviewState.IN_REVIEW
    second = django_user_model.objects.create_user(username="second", password="pw-second-123")
    second.groups.add(Group.objects.get(name="reviewer"))
    second = django_user_model.objects.get(pk=second.pk)
    assert ReviewState.APPROVED in services.review_moves(job, second)
    services.review_move(job, user=second, to_state=ReviewState.APPROVED)
    assert Job.objects.get(pk=job.pk).review_state == ReviewState.APPROVED


def test_outputs_cannot_be_edited_while_the_job_is_in_review(done_job, user, reviewer):
    """The reviewer approves the text they read: in review it is frozen; withdrawn or sent back, it is a draft."""
    output = done_job.outputs.get()
    assert services.review.outputs_editable(done_job, user)
    services.review_move(done_job, user=user, to_state=ReviewState.IN_REVIEW)
    assert not services.review.outputs_editable(done_job, user)
    with pytest.raises(ValidationError) as err:
        services.output_edit(output, user=user, text="Changed under the reviewer")
    assert "in review" in err.value.message_dict["text"][0]
    output.refresh_from_db()
    assert output.final_text == "" and output.edited_at is None
    services.review_move(done_job, user=reviewer, to_state=ReviewState.DRAFT, note="tighten it")  # sent back
    edited = services.output_edit(output, user=user, text="Council backs Elm River bridge")
    assert edited.final_text == "Council backs Elm River bridge"


def test_an_edit_is_refused_when_the_job_left_draft_since_it_was_read(done_job, user):
    """The page read the job in draft, then it was submitted from another tab: the write checks the state."""
    stale = Job.objects.get(pk=done_job.pk)
    output = stale.outputs.get()
    services.review_move(done_job, user=user, to_state=ReviewState.IN_REVIEW)
    with pytest.raises(ValidationError):
        services.output_edit(output, user=user, text="Slipped in")
    assert JobOutput.objects.get(pk=output.pk).final_text == ""


@pytest.fixture
def candidates_job(user):
    """A finished job with three candidates, as a headline job has several."""
    job = services.job_create(user=user, kind="headline", inputs={"text": "A council votes for a bridge."})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.bulk_create(
        JobOutput(job=job, index=i, text=t)
        for i, t in enumerate(["Amber Ruiz, Mayor of Riverton, backs bridge", "Bridge vote", "Council backs bridge"])
    )
    return Job.objects.get(pk=job.pk)


def chosen(job) -> list[int]:
    return list(JobOutput.objects.filter(job=job, chosen=True).values_list("index", flat=True))


def test_a_job_with_several_candidates_is_submitted_only_with_one_chosen(candidates_job, user):
    with pytest.raises(ValidationError) as err:
        services.review_move(candidates_job, user=user, to_state=ReviewState.IN_REVIEW)
    assert "none is chosen" in err.value.message_dict["chosen"][0]
    assert Job.objects.get(pk=candidates_job.pk).review_state == ReviewState.DRAFT and not ReviewEvent.objects.exists()
    services.output_choose(candidates_job.outputs.get(index=2), user=user)
    services.output_choose(candidates_job.outputs.get(index=1), user=user)
    services.output_choose(candidates_job.outputs.get(index=1), user=user, chosen=False)  # changed their mind
    assert chosen(candidates_job) == [2]
    services.review_move(candidates_job, user=user, to_state=ReviewState.IN_REVIEW)
    assert Job.objects.get(pk=candidates_job.pk).review_state == ReviewState.IN_REVIEW


def test_a_job_with_one_candidate_chooses_it_when_submitted(done_job, user):
    assert chosen(done_job) == []
    services.review_move(done_job, user=user, to_state=ReviewState.IN_REVIEW)
    assert chosen(done_job) == [0]


def test_who_may_choose_when_and_a_reviewers_change_is_logged(candidates_job, user, reviewer, other_user):
    with pytest.raises(PermissionDenied):
        services.output_choose(candidates_job.outputs.get(index=0), user=reviewer)  # a draft is the owner's
    with pytest.raises(PermissionDenied):
        services.output_choose(candidates_job.outputs.get(index=0), user=other_user)
    services.output_choose(candidates_job.outputs.get(index=0), user=user)
    services.review_move(candidates_job, user=user, to_state=ReviewState.IN_REVIEW)
    job = Job.objects.get(pk=candidates_job.pk)
    with pytest.raises(ValidationError) as err:
        services.output_choose(job.outputs.get(index=2), user=user)  # not under the reviewer's eyes
    assert "chosen" in err.value.message_dict
    # The reviewer prefers the grounded headline to the invented one.
    services.output_choose(job.outputs.get(index=2), user=reviewer)
    services.output_choose(job.outputs.get(index=0), user=reviewer, chosen=False)
    assert chosen(job) == [2]
    log = list(ReviewEvent.objects.values_list("from_state", "to_state", "actor__username", "note"))
    assert log[1:] == [
        ("in_review", "in_review", "reviewer", "Chose candidate 3."),
        ("in_review", "in_review", "reviewer", "Took back the choice of candidate 1."),
    ]
    services.review_move(job, user=reviewer, to_state=ReviewState.APPROVED)
    with pytest.raises(ValidationError):
        services.output_choose(job.outputs.get(index=1), user=reviewer)  # approved: reopen first
    assert chosen(job) == [2]


def test_approval_needs_a_choice_dates_the_job_and_a_reopen_clears_the_date(candidates_job, user, reviewer):
    # Submitted before choices existed: the reviewer must choose before approving.
    Job.objects.filter(pk=candidates_job.pk).update(review_state=ReviewState.IN_REVIEW)
    job = Job.objects.get(pk=candidates_job.pk)
    with pytest.raises(ValidationError) as err:
        services.review_move(job, user=reviewer, to_state=ReviewState.APPROVED)
    assert "chosen" in err.value.message_dict and Job.objects.get(pk=job.pk).approved_at is None
    services.output_choose(job.outputs.get(index=1), user=reviewer)
    services.review_move(job, user=reviewer, to_state=ReviewState.APPROVED)
    approved = Job.objects.get(pk=job.pk)
    assert approved.review_state == ReviewState.APPROVED and approved.approved_at is not None
    services.review_move(approved, user=reviewer, to_state=ReviewState.DRAFT, note="One more fact to check.")
    assert Job.objects.get(pk=job.pk).approved_at is None
    with pytest.raises(ValidationError) as err:
        services.review_move(Job.objects.get(pk=job.pk), user=user, to_state=ReviewState.IN_REVIEW, note="x" * 2001)
    assert "note" in err.value.message_dict
