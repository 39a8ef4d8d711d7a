"""Who hears of each review move: a submission reaches the desk's reviewers, everything else the job's owner; never
the person who acted; and a refused move leaves no notice behind. A reviewer may fix a typo in review (logged)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError

from generation import selectors, services
from generation.models import DeskRole, Job, JobOutput, JobStatus, Notification, ReviewEvent, ReviewState
from tests.support.desks import STORY, desk, join

pytestmark = pytest.mark.django_db


@pytest.fixture
def sport(user, django_user_model):
    """The editor on sport; sport's reviewer and admin; a member of sport with the site-wide reviewer group; and a
    politics reviewer and a roving reviewer of another desk, who never hear of sport's jobs."""
    sport, politics = desk("sport"), desk("politics")
    join(user, sport)
    people = {}
    for name, on, role in [
        ("sport-chief", sport, DeskRole.REVIEWER),
        ("sport-admin", sport, DeskRole.ADMIN),
        ("sport-group", sport, DeskRole.EDITOR),
        ("politics-chief", politics, DeskRole.REVIEWER),
        ("roving", politics, DeskRole.EDITOR),
    ]:
        people[name] = django_user_model.objects.create_user(username=name, password="pw-12345-abc")
        join(people[name], on, role)
    for name in ("sport-group", "roving"):
        people[name].groups.add(Group.objects.get(name="reviewer"))
    return {name: django_user_model.objects.get(pk=u.pk) for name, u in people.items()}


def finished(owner, candidates=("Council backs a bridge",)) -> Job:
    job = services.job_create(user=owner, kind="headline", inputs={"text": STORY})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    for i, text in enumerate(candidates):
        JobOutput.objects.create(job=job, index=i, text=text)
    return Job.objects.get(pk=job.pk)


def notices():
    return sorted(Notification.objects.values_list("user__username", "verb"))


def test_a_submission_reaches_the_desk_s_reviewers_and_no_one_else(user, sport):
    job = finished(user)
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW, note="Tightened <b>it</b>")
    assert notices() == [("sport-admin", "submitted"), ("sport-chief", "submitted"), ("sport-group", "submitted")]
    notice = Notification.objects.filter(user=sport["sport-chief"]).get()
    assert notice.job == job and notice.event == ReviewEvent.objects.get()
    assert notice.message == f"editor submitted “{STORY[:59]}…” for review. Tightened <b>it</b>"
    assert notice.read_at is None


def test_approval_tells_the_owner_and_settles_the_other_reviewers_notices(user, sport):
    job = finished(user)
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    services.review_move(job, user=sport["sport-chief"], to_state=ReviewState.APPROVED)
    mine = Notification.objects.get(user=user)
    assert (mine.verb, mine.message.split(" “")[0]) == ("approved", "sport-chief approved")
    # The job waits for nobody now: the reviewers' "submitted" notices are read, the owner's is not.
    assert not Notification.objects.filter(verb="submitted", read_at__isnull=True).exists()
    assert selectors.unread_counts(user) == {"unread": 1, "my_jobs": 1}
    assert selectors.unread_counts(sport["sport-admin"]) == {"unread": 0, "my_jobs": 0}


def test_sent_back_and_reopened_tell_the_owner_a_withdrawal_tells_nobody(user, sport):
    chief = sport["sport-chief"]
    job = finished(user)
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    services.review_move(job, user=user, to_state=ReviewState.DRAFT)  # withdrawn by the owner
    assert not Notification.objects.filter(user=user).exists()
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    services.review_move(job, user=chief, to_state=ReviewState.DRAFT, note="Name the cost.")
    sent_back = Notification.objects.get(user=user)
    assert sent_back.verb == "sent_back" and sent_back.message.endswith("back to you. Name the cost.")
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    services.review_move(job, user=chief, to_state=ReviewState.APPROVED)
    services.review_move(job, user=sport["sport-admin"], to_state=ReviewState.DRAFT)
    assert list(Notification.objects.filter(user=user).values_list("verb", flat=True)) == [
        "reopened",
        "approved",
        "sent_back",
    ]  # newest first
    assert selectors.unread_counts(user) == {"unread": 3, "my_jobs": 1}  # one job, approved then sent back


def test_the_actor_never_hears_of_their_own_move(user, sport):
    admin = sport["sport-admin"]
    job = finished(admin)  # a desk admin's own job: the other reviewers hear of it, the admin does not
    services.review_move(job, user=admin, to_state=ReviewState.IN_REVIEW)
    assert {u for u, _ in notices()} == {"sport-chief", "sport-group"}
    services.output_choose(job.outputs.get(), user=admin, chosen=True)  # their own job: no notice to themself
    services.review_move(job, user=sport["sport-chief"], to_state=ReviewState.APPROVED)
    services.review_move(job, user=admin, to_state=ReviewState.DRAFT)  # reopened by its own owner
    assert list(Notification.objects.filter(user=admin).values_list("verb", flat=True)) == ["approved"]


def test_a_refused_move_leaves_no_notice(user, sport):
    job = finished(user, ["One", "Two"])
    with pytest.raises(ValidationError):
        services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)  # several candidates, none chosen
    with pytest.raises(PermissionDenied):
        services.review_move(job, user=sport["politics-chief"], to_state=ReviewState.IN_REVIEW)
    assert not Notification.objects.exists() and not ReviewEvent.objects.exists()
    services.output_choose(job.outputs.get(index=1), user=user)
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    with pytest.raises(PermissionDenied):
        services.review_move(job, user=user, to_state=ReviewState.APPROVED)  # an editor approves nothing
    assert not Notification.objects.filter(user=user).exists()


def test_a_reviewer_s_change_of_choice_tells_the_owner(user, sport):
    job = finished(user, ["One", "Two"])
    services.output_choose(job.outputs.get(index=0), user=user)
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    services.output_choose(job.outputs.get(index=1), user=sport["sport-chief"])
    notice = Notification.objects.get(user=user)
    assert notice.verb == "choice_changed" and notice.message.endswith("Chose candidate 2.")


def test_a_reviewer_fixes_a_typo_in_review_logged_and_told(user, sport):
    chief = sport["sport-chief"]
    job = finished(user, ["Council backs a brigde"])
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    assert services.review.outputs_editable(job, chief) and not services.review.outputs_editable(job, user)
    assert not services.review.outputs_editable(job, sport["politics-chief"])
    output = services.output_edit(job.outputs.get(), user=chief, text="Council backs a bridge")
    output.refresh_from_db()
    assert (output.text, output.final_text) == ("Council backs a brigde", "Council backs a bridge")
    assert output.edited_at is not None
    event = ReviewEvent.objects.latest("created_at")
    assert (event.actor, event.from_state, event.to_state, event.note) == (
        chief,
        "in_review",
        "in_review",
        "Edited candidate 1.",
    )
    notice = Notification.objects.get(user=user)
    assert (notice.verb, notice.event) == ("edited", event)
    # The same text again changes nothing: no second event, no second notice.
    services.output_edit(job.outputs.get(), user=chief, text="Council backs a bridge")
    assert Notification.objects.filter(user=user).count() == 1
    with pytest.raises(PermissionDenied):
        services.output_edit(job.outputs.get(), user=sport["politics-chief"], text="Not my desk")
    with pytest.raises(ValidationError):
        services.output_edit(job.outputs.get(), user=user, text="The owner waits for the review")
    services.review_move(job, user=chief, to_state=ReviewState.APPROVED)
    assert not services.review.outputs_editable(job, chief)
    with pytest.raises(ValidationError):
        services.output_edit(job.outputs.get(), user=chief, text="After approval")
    assert JobOutput.objects.get(job=job).final_text == "Council backs a bridge"


def test_a_reviewer_never_edits_a_draft(user, sport):
    job = finished(user)
    with pytest.raises(PermissionDenied):
        services.output_edit(job.outputs.get(), user=sport["sport-chief"], text="Too early")
    assert not Notification.objects.exists()


def test_reading_marks_only_the_user_s_own_notices(user, sport):
    job = finished(user)
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    chief, admin = sport["sport-chief"], sport["sport-admin"]
    theirs = Notification.objects.get(user=admin).pk
    assert services.notifications_read(chief, ids=[theirs]) == 0
    assert services.notifications_read(chief) == 1
    assert selectors.unread_counts(admin)["unread"] == 1


def test_review_count_is_the_desk_s_jobs_in_review_not_one_s_own(user, sport):
    admin = sport["sport-admin"]
    services.review_move(finished(user), user=user, to_state=ReviewState.IN_REVIEW)
    services.review_move(finished(admin), user=admin, to_state=ReviewState.IN_REVIEW)
    finished(user)  # a draft waits for nobody
    assert selectors.review_count(sport["sport-chief"]) == 2
    assert selectors.review_count(admin) == 1
    assert selectors.review_count(sport["politics-chief"]) == 0 and selectors.review_count(user) == 0
