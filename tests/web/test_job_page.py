"""The job page's last mile: choosing the candidate to publish (the owner in draft, a reviewer of the desk in
review, nobody else), the three ways to run a job again (regenerate, edit inputs and run, replay), the source
shown beside the candidates, and lengths counted as a reader counts them."""

import re
import uuid

import pytest

from generation import services
from generation.models import DeskRole, Job, JobOutput, JobStatus, ReviewEvent, ReviewState
from tests.support.desks import STORY, desk, desk_with_reviewer, join

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer(user, django_user_model):
    """The editor and a reviewer on the sport desk."""
    return desk_with_reviewer(user, django_user_model)


def finished(user, kind="headline", inputs=None, texts=("Amber Ruiz opens bridge", "Council backs bridge"), **output):
    """A job that succeeded with these candidates, written without a worker."""
    job = services.job_create(user=user, kind=kind, inputs=inputs or {"text": STORY})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.bulk_create(JobOutput(job=job, index=i, text=t, **output) for i, t in enumerate(texts))
    return Job.objects.get(pk=job.pk)


def card(page: str, index: int) -> str:
    """One candidate's <article> on the page."""
    return re.search(rf'<article class="output-card[^"]*" id="output-{index}".*?</article>', page, re.DOTALL).group()


def choose(client, job, index: int, chosen: str = "1"):
    return client.post(f"/jobs/{job.pk}/outputs/{index}/choose/", {"chosen": chosen}, follow=True)


def chosen(job) -> list[int]:
    return list(JobOutput.objects.filter(job=job, chosen=True).values_list("index", flat=True))


def test_the_owner_chooses_and_takes_back_a_candidate_in_draft(client, user):
    job = finished(user)
    client.force_login(user)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert page.count(">Use this</button>") == 2 and 'aria-pressed="true"' not in card(page, 1)
    page = choose(client, job, 1).content.decode()
    assert chosen(job) == [1]
    assert "Chosen" in card(page, 1) and 'aria-current="true"' in card(page, 1)
    assert 'aria-pressed="true"' in card(page, 1) and 'value="0"' in card(page, 1)  # pressing again takes it back
    assert "not-chosen" in card(page, 0) and "Chosen" not in card(page, 0)
    choose(client, job, 0)
    assert chosen(job) == [0, 1]  # several may be chosen
    page = choose(client, job, 1, "0").content.decode()
    assert chosen(job) == [0] and "Chosen" not in card(page, 1)


def test_a_reviewer_changes_the_choice_in_review_and_it_is_logged(client, user, reviewer):
    job = finished(user)
    services.output_choose(job.outputs.get(index=0), user=user)
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    client.force_login(user)
    assert "/choose/" not in client.get(f"/jobs/{job.pk}/").content.decode()  # the owner withdraws to change it
    client.force_login(reviewer)
    assert "/choose/" in client.get(f"/jobs/{job.pk}/").content.decode()
    choose(client, job, 0, "0")
    page = choose(client, job, 1).content.decode()
    assert chosen(job) == [1]
    notes = list(ReviewEvent.objects.filter(job=job, actor=reviewer).values_list("note", flat=True))
    assert notes == ["Took back the choice of candidate 1.", "Chose candidate 2."]
    assert "Chose candidate 2." in page


def test_nobody_else_chooses(client, user, other_user, reviewer, django_user_model):
    job = finished(user)
    client.force_login(other_user)
    assert client.post(f"/jobs/{job.pk}/outputs/1/choose/", {"chosen": "1"}).status_code == 404
    services.output_choose(job.outputs.get(index=0), user=user)
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    stranger = django_user_model.objects.create_user(username="politics-chief", password="pw-chief-12345")
    join(stranger, desk("politics"), DeskRole.REVIEWER)  # a reviewer, of another desk
    client.force_login(stranger)
    assert client.post(f"/jobs/{job.pk}/outputs/1/choose/", {"chosen": "1"}).status_code == 404
    assert client.post(f"/jobs/{job.pk}/outputs/9/choose/", {"chosen": "1"}).status_code == 404
    assert chosen(job) == [0]


def test_submit_without_a_choice_is_explained_before_and_after_pressing(client, user):
    job = finished(user)
    client.force_login(user)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Choose a candidate first" in page and 'aria-describedby="choose-first-submit"' in page
    page = client.post(f"/jobs/{job.pk}/review/", {"to_state": "in_review"}, follow=True).content.decode()
    assert "Choose the candidate to submit first" in page
    assert Job.objects.get(pk=job.pk).review_state == ReviewState.DRAFT
    page = choose(client, job, 1).content.decode()
    assert "Choose a candidate first" not in page


def test_an_approved_job_shows_its_choice_read_only(client, user, reviewer):
    job = finished(user)
    services.output_choose(job.outputs.get(index=1), user=user)
    services.review_move(job, user=user, to_state=ReviewState.IN_REVIEW)
    services.review_move(job, user=reviewer, to_state=ReviewState.APPROVED)
    for who in (user, reviewer):
        client.force_login(who)
        page = client.get(f"/jobs/{job.pk}/").content.decode()
        assert "Chosen" in card(page, 1) and "not-chosen" in card(page, 0)
        assert "/choose/" not in page
    download = client.get(f"/jobs/{job.pk}/download.txt").content.decode()
    assert "Council backs bridge" in download and "Amber Ruiz" not in download


def test_regenerate_makes_a_new_job_with_a_new_seed_linked_to_the_original(client, user):
    job = finished(user)
    client.force_login(user)
    response = client.post(f"/jobs/{job.pk}/regenerate/")
    again = Job.objects.exclude(pk=job.pk).get()
    assert response["Location"] == f"/jobs/{again.pk}/"
    assert again.rerun_of_id == job.pk and again.params["seed"] != job.params["seed"]
    assert again.inputs == job.inputs and again.template_version_id == job.template_version_id
    page = client.get(response["Location"]).content.decode()
    assert "Regenerated from" in page and f'href="/jobs/{job.pk}/"' in page


def test_replay_keeps_the_seed_and_says_so(client, user):
    job = finished(user)
    client.force_login(user)
    response = client.post(f"/jobs/{job.pk}/rerun/")
    again = Job.objects.exclude(pk=job.pk).get()
    assert again.rerun_of_id == job.pk and again.params == job.params
    assert "Replay of" in client.get(response["Location"]).content.decode()


def test_only_the_owner_runs_a_job_again(client, user, other_user):
    job = finished(user)
    client.force_login(other_user)
    for action in ("regenerate", "rerun"):
        assert client.post(f"/jobs/{job.pk}/{action}/").status_code == 404
    assert Job.objects.count() == 1


def test_edit_inputs_and_run_starts_from_the_original(client, user):
    job = services.job_create(user=user, kind="headline", inputs={"text": STORY}, params={"n": 3, "temperature": 0.4})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    client.force_login(user)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/jobs/new/headline/?from={job.pk}"' in page
    form = client.get(f"/jobs/new/?from={job.pk}").content.decode()
    assert STORY in form and 'name="n" value="3"' in form and 'name="temperature" value="0.4"' in form
    assert f'name="seed" value="{job.params["seed"]}"' not in form  # a new job draws a new seed
    response = client.post(f"/jobs/new/headline/?from={job.pk}", {"in_text": "The mayor opened the bridge.", "n": "3"})
    again = Job.objects.exclude(pk=job.pk).get()
    assert response["Location"] == f"/jobs/{again.pk}/"
    assert again.rerun_of_id == job.pk and again.inputs == {"text": "The mayor opened the bridge."}
    assert again.params["n"] == 3
    assert "Inputs edited from" in client.get(response["Location"]).content.decode()


def test_edit_inputs_of_another_users_job_is_404(client, user, other_user):
    job = finished(user)
    client.force_login(other_user)
    assert client.get(f"/jobs/new/?from={job.pk}").status_code == 404
    assert client.post(f"/jobs/new/headline/?from={job.pk}", {"in_text": "x"}).status_code == 404
    assert client.get(f"/jobs/new/?from={uuid.uuid4()}").status_code == 404
    assert client.get("/jobs/new/?from=not-a-job").status_code == 404
    assert Job.objects.count() == 1


def test_the_source_is_open_and_labelled_as_the_form_asked_for_it(client, user):
    job = finished(user, inputs={"text": STORY + "\n\nThe bridge opens in 2028."})
    client.force_login(user)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    source = re.search(r'<section class="job-source".*?</section>', page, re.DOTALL).group()
    assert "<dt>Article</dt>" in source and "<dt>text</dt>" not in source
    assert (
        '<div class="long" tabindex="0" role="region" aria-label="Article">' in source
        and "The bridge opens in 2028." in source
    )
    assert "<details" not in source and 'class="job-layout with-source"' in page


def test_code_is_counted_in_lines(client, user):
    job = finished(
        user, kind="code", inputs={"instruction": "Add two numbers."}, texts=["def add(a, b):\n    return a + b\n"]
    )
    client.force_login(user)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "2 lines" in page and " words<" not in page


def test_counts_say_words_or_characters_by_the_text_in_chinese(client, user):
    english = finished(user, texts=["Council backs new bridge"])
    chinese = finished(user, texts=["市议会批准新建大桥"])
    client.force_login(user)
    page = client.get(f"/jobs/{english.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "4 词" in page and "4 字" not in page
    page = client.get(f"/jobs/{chinese.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "9 字" in page
    assert "4 words" in client.get(f"/jobs/{english.pk}/").content.decode()


def test_a_candidate_cut_at_the_token_limit_says_so(client, user):
    job = finished(
        user, kind="writing", inputs={"topic": "bridges"}, texts=["Bridges matter. They carry"], finish_reason="length"
    )
    client.force_login(user)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "Stopped at the token limit: the unfinished last sentence was cut." in page
    page = client.get(f"/jobs/{job.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "已达到 token 上限而停止：未写完的最后一句已被删去。" in page
