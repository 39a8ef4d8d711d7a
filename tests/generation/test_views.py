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
    assert "studio/job.js" in html and f"/api/v1/jobs/{job.pk}/" in html
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
