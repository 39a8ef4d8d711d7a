"""Review per desk: a reviewer sees and moves only their desks' jobs (another desk's is a 404, as anyone's job
is), nobody approves their own job, and the review queue and nav follow the desk roles."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError

from generation import selectors, services
from generation.models import DeskRole, Job, JobOutput, JobStatus, ReviewState
from tests.support.desks import STORY, desk, join

pytestmark = pytest.mark.django_db


@pytest.fixture
def desks(user, django_user_model):
    """An editor on sport, a reviewer of sport, a reviewer of politics."""
    sport, politics = desk("sport"), desk("politics")
    join(user, sport)
    sport_chief = django_user_model.objects.create_user(username="sport-chief", password="pw-chief-12345")
    join(sport_chief, sport, DeskRole.REVIEWER)
    politics_chief = django_user_model.objects.create_user(username="politics-chief", password="pw-chief-12345")
    join(politics_chief, politics, DeskRole.REVIEWER)
    return sport_chief, politics_chief


def submitted(user) -> Job:
    job = services.job_create(user=user, kind="headline", inputs={"text": STORY})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.create(job=job, index=0, text="Council backs a bridge")
    job.refresh_from_db()
    return services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)


def test_a_reviewer_sees_and_moves_only_their_desk_s_jobs(user, desks, client):
    sport_chief, politics_chief = desks
    job = submitted(user)
    assert list(selectors.jobs_for_review(sport_chief)) == [job]
    assert list(selectors.jobs_for_review(politics_chief)) == []
    assert selectors.job_for_page(politics_chief, job.pk) is None
    with pytest.raises(PermissionDenied):
        services.review_move(job, user=politics_chief, to_state=ReviewState.APPROVED)
    with pytest.raises(PermissionDenied):
        services.feedback_set(job.outputs.get(), user=politics_chief, rating=1)
    client.force_login(politics_chief)
    assert client.get(f"/jobs/{job.pk}/").status_code == 404
    assert "Elm River" not in client.get("/review/").content.decode()
    client.force_login(sport_chief)
    assert client.get(f"/jobs/{job.pk}/").status_code == 200
    services.review_move(job, user=sport_chief, to_state=ReviewState.APPROVED)
    assert Job.objects.get(pk=job.pk).review_state == ReviewState.APPROVED


def test_nobody_approves_their_own_job_not_even_a_desk_admin(user, desks):
    sport_chief, _ = desks
    join(user, selectors.desks_of(sport_chief).get(), DeskRole.ADMIN)
    job = submitted(user)
    with pytest.raises(ValidationError) as info:
        services.review_move(job, user=user, to_state=ReviewState.APPROVED)
    assert "another reviewer" in info.value.message_dict["to_state"][0]


def test_the_site_wide_reviewer_group_reviews_only_the_user_s_own_desks(user, desks, django_user_model):
    roving = django_user_model.objects.create_user(username="roving", password="pw-roving-12345")
    roving.groups.add(Group.objects.get(name="reviewer"))
    join(roving, desk("features"))
    job = submitted(user)
    assert selectors.job_for_page(django_user_model.objects.get(pk=roving.pk), job.pk) is None
    join(roving, job.desk)
    roving = django_user_model.objects.get(pk=roving.pk)
    assert selectors.job_for_page(roving, job.pk) == job


def test_an_output_cannot_be_edited_while_its_job_is_in_review(user, desks):
    job = submitted(user)
    with pytest.raises(ValidationError) as info:
        services.output_edit(job.outputs.get(), user=user, text="Another text")
    assert "in review" in info.value.message_dict["text"][0]


def test_another_desk_s_job_is_a_404_on_every_route_that_reads_it(user, desks, client):
    """The page, its state poll, the REST API and the SSE stream, by session and by key: to a reviewer of another
    desk the job does not exist (the same answer as a job id nobody has)."""
    _, politics_chief = desks
    job = submitted(user)
    key = services.api_key_create(politics_chief, name="theirs")[1]
    routes = (f"/jobs/{job.pk}/", f"/jobs/{job.pk}/state/", f"/api/v1/jobs/{job.pk}/", f"/api/v1/jobs/{job.pk}/events/")
    client.force_login(politics_chief)
    for route in routes:
        assert client.get(route).status_code == 404, route
    client.logout()
    for route in routes[2:]:
        assert client.get(route, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 404, route
    assert client.post(f"/api/v1/jobs/{job.pk}/cancel/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 404
    client.force_login(user)  # the owner reads it everywhere
    assert [client.get(route).status_code for route in routes[:3]] == [200, 200, 200]
