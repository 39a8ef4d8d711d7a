"""Studio pages with the Django test client: login, submitting each kind, escaping, ownership."""

import pytest
from django.urls import reverse

from generation import services
from generation.models import Job, JobOutput, JobStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, user):
    client.force_login(user)
    return client


def test_pages_need_a_login(client):
    for url in ("/jobs/", "/jobs/new/", "/jobs/new/code/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_login_page_and_login(client, user):
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "editor", "password": "pw-editor-123"})
    assert response.status_code == 302


@pytest.mark.parametrize("kind, field", [("writing", "in_topic"), ("summary", "in_text"), ("headline", "in_text"), ("code", "in_instruction")])
def test_each_kind_has_a_form_that_creates_a_job(browser, kind, field, django_capture_on_commit_callbacks):
    page = browser.get(f"/jobs/new/{kind}/")
    assert page.status_code == 200 and f'name="{field}"' in page.content.decode()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = browser.post(f"/jobs/new/{kind}/", {field: "A council votes for a new bridge."})
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("job-detail", args=[job.pk])
    assert job.kind == kind and len(callbacks) == 1


def test_form_errors_are_shown_on_the_field_and_nothing_is_written(browser):
    response = browser.post("/jobs/new/headline/", {"in_text": "", "temperature": "7"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "This field is required." in html and "Ensure this value is less than or equal to 2" in html
    assert Job.objects.count() == 0


def test_service_errors_map_onto_form_fields(browser, settings):
    settings.AIGC = {**settings.AIGC, "MAX_CANDIDATES": 3}
    response = browser.post("/jobs/new/headline/", {"in_text": "story", "n": "6"})
    assert "Must be at least 1 and at most 3." in response.content.decode()
    assert Job.objects.count() == 0


def test_model_output_is_escaped(browser, user):
    job = services.job_create(user=user, kind="writing", inputs={"topic": "<b>bridges</b>"})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.create(job=job, index=0, text='<script>alert(1)</script><img src=x onerror="alert(2)">')
    html = browser.get(f"/jobs/{job.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=" in html
    assert "&lt;b&gt;bridges&lt;/b&gt;" in html


def test_job_page_polls_until_final(browser, user):
    job = services.job_create(user=user, kind="headline", inputs={"text": "story"})
    html = browser.get(f"/jobs/{job.pk}/").content.decode()
    assert "studio/job.js" in html and f"/api/v1/jobs/{job.pk}/events/" in html
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, error="The prompt is too long.")
    html = browser.get(f"/jobs/{job.pk}/").content.decode()
    assert "studio/job.js" not in html and "The prompt is too long." in html


def test_another_users_job_page_is_404_and_history_is_mine_only(browser, user, other_user):
    theirs = services.job_create(user=other_user, kind="headline", inputs={"text": "their secret story"})
    mine = services.job_create(user=user, kind="headline", inputs={"text": "my story"})
    assert browser.get(f"/jobs/{theirs.pk}/").status_code == 404
    html = browser.get("/jobs/").content.decode()
    assert "my story" in html and "their secret story" not in html
    assert str(mine.pk) in html


def test_templates_of_a_kind_are_offered_and_typed_fields_shown(browser):
    html = browser.get("/jobs/new/writing/").content.decode()
    assert "?template=blog-post" in html and "?template=social-post" in html
    html = browser.get("/jobs/new/writing/?template=social-post").content.decode()
    assert '<option value="LinkedIn" selected>' in html and 'name="in_words"' in html


def test_a_job_from_a_non_default_template(browser, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = browser.post("/jobs/new/writing/?template=social-post", {"in_topic": "our new bridge", "in_platform": "X", "in_words": "30"})
    job = Job.objects.get()
    assert response.status_code == 302 and job.template.slug == "social-post"
    assert job.inputs == {"topic": "our new bridge", "platform": "X", "words": 30}


def test_run_again_replays_with_the_same_version_inputs_and_seed(browser, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(user=user, kind="headline", inputs={"text": "story"}, params={"seed": 5})
        response = browser.post(f"/jobs/{job.pk}/rerun/")
    again = Job.objects.exclude(pk=job.pk).get()
    assert response["Location"] == reverse("job-detail", args=[again.pk])
    assert (again.template_version, again.inputs, again.params) == (job.template_version, job.inputs, job.params)
    assert browser.get(f"/jobs/{job.pk}/rerun/").status_code == 405


def test_cannot_rerun_another_users_job(browser, other_user):
    theirs = services.job_create(user=other_user, kind="headline", inputs={"text": "story"})
    assert browser.post(f"/jobs/{theirs.pk}/rerun/").status_code == 404
    assert Job.objects.count() == 1
