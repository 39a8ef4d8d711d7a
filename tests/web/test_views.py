"""Studio pages with the Django test client: login, submitting each kind, escaping, ownership."""

import re

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


@pytest.mark.parametrize(
    "kind, field",
    [("writing", "in_topic"), ("summary", "in_text"), ("headline", "in_text"), ("code", "in_instruction")],
)
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
        response = browser.post(
            "/jobs/new/writing/?template=social-post",
            {"in_topic": "our new bridge", "in_platform": "X", "in_words": "30"},
        )
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


@pytest.fixture
def finished(user):
    job = services.job_create(user=user, kind="writing", inputs={"topic": "cycling in 城市"})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.create(job=job, index=0, text="# Cycling\n\nBikes are **fast**.")
    return Job.objects.get(pk=job.pk)


def test_everything_about_another_users_job_is_404(client, other_user, finished):
    from generation.models import Feedback

    client.force_login(other_user)
    pk = finished.pk
    for url in (
        f"/jobs/{pk}/",
        f"/jobs/{pk}/state/",
        f"/jobs/{pk}/download.md",
        f"/jobs/{pk}/outputs/0/edit/",
        f"/api/v1/jobs/{pk}/events/",
    ):
        assert client.get(url).status_code == 404, url
    for url, data in (
        (f"/jobs/{pk}/cancel/", {}),
        (f"/jobs/{pk}/outputs/0/feedback/", {"rating": "1"}),
        (f"/jobs/{pk}/review/", {"to_state": "in_review"}),
        (f"/jobs/{pk}/rerun/", {}),
    ):
        assert client.post(url, data).status_code == 404, url
    assert not Feedback.objects.exists() and Job.objects.get(pk=pk).review_state == "draft"


def test_output_renders_as_sanitised_markdown_and_downloads(browser, finished):
    html = browser.get(f"/jobs/{finished.pk}/").content.decode()
    assert "<h1>Cycling</h1>" in html and "<strong>fast</strong>" in html
    md = browser.get(f"/jobs/{finished.pk}/download.md")
    assert md["Content-Disposition"].endswith('.md"') and "Bikes are **fast**." in md.content.decode()
    txt = browser.get(f"/jobs/{finished.pk}/download.txt")
    assert txt["Content-Type"].startswith("text/plain") and txt.content.decode().startswith("# Cycling")
    assert browser.get(f"/jobs/{finished.pk}/download.html").status_code == 404


def test_rate_edit_and_submit_from_the_page(browser, user, finished):
    browser.post(f"/jobs/{finished.pk}/outputs/0/feedback/", {"rating": "-1", "comment": "too short"})
    browser.post(f"/jobs/{finished.pk}/outputs/0/edit/", {"text": "# Cycling\n\nBikes are quick and cheap."})
    response = browser.post(f"/jobs/{finished.pk}/outputs/0/edit/", {"text": ""})
    assert response.status_code == 200 and "This field is required." in response.content.decode()
    html = browser.get(f"/jobs/{finished.pk}/").content.decode()
    assert "<del>fast</del>" in html or "<del>**fast**</del>" in html
    assert "<ins>" in html and 'aria-pressed="true"' in html
    browser.post(f"/jobs/{finished.pk}/review/", {"to_state": "in_review"})
    assert Job.objects.get(pk=finished.pk).review_state == "in_review"
    assert (
        browser.get(f"/jobs/{finished.pk}/download.txt").content.decode() == "# Cycling\n\nBikes are quick and cheap."
    )


def test_reviewers_see_jobs_in_review_but_not_drafts(client, django_user_model, finished, user):
    from django.contrib.auth.models import Group

    reviewer = django_user_model.objects.create_user(username="rev", password="pw")
    reviewer.groups.add(Group.objects.get(name="reviewer"))
    client.force_login(reviewer)
    assert client.get(f"/jobs/{finished.pk}/").status_code == 404
    services.review_move(finished, user=user, to_state="in_review")
    assert str(finished.pk) in client.get("/review/").content.decode()
    page = client.get(f"/jobs/{finished.pk}/").content.decode()
    assert "Approve" in page and "/outputs/0/edit/" in page  # a reviewer may fix a typo while it is in review
    client.post(f"/jobs/{finished.pk}/review/", {"to_state": "approved"})
    assert Job.objects.get(pk=finished.pk).review_state == "approved"
    client.force_login(user)
    assert client.get("/review/").status_code == 404  # editors have no review queue


def test_history_search_and_filters(browser, user, finished):
    services.job_create(user=user, kind="headline", inputs={"text": "a story about trains"})

    def listed(query):
        return browser.get("/jobs/?" + query).content.decode()

    assert "cycling" in listed("q=城市") and "trains" not in listed("q=城市")
    assert "cycling" in listed("q=fast")  # outputs are searched too
    assert "trains" in listed("kind=headline") and "cycling in" not in listed("kind=headline")
    assert "cycling in" in listed("status=succeeded") and "trains" not in listed("status=succeeded")
    assert "cycling in" in listed("review=draft") and "cycling in" not in listed("review=approved")
    assert "trains" in listed("template=headline") and "No job matches" in listed("since=2999-01-01")
    assert "trains" in listed("since=not-a-date")  # a bad filter is ignored, not an error


def test_queued_job_shows_its_place_in_line_and_that_no_worker_serves_its_model(browser, user, settings):
    settings.CELERY_TASK_DEFAULT_QUEUE = "no-worker-consumes-this"
    first = services.job_create(user=user, kind="headline", inputs={"text": "one"})
    second = services.job_create(user=user, kind="headline", inputs={"text": "two"})
    state = browser.get(f"/jobs/{second.pk}/state/").json()
    assert (state["status"], state["queue_position"]) == ("queued", 2)
    assert "No worker is serving the model 'default'" in state["notice"]
    page = browser.get(f"/jobs/{first.pk}/").content.decode()
    assert "number 1 in line" in page and "No worker is serving the model" in page


def test_cancel_from_the_page(browser, user):
    job = services.job_create(user=user, kind="headline", inputs={"text": "one"})
    browser.post(f"/jobs/{job.pk}/cancel/")
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED


def test_interface_in_simplified_chinese(browser):
    browser.post("/i18n/setlang/", {"language": "zh-hans", "next": "/jobs/"})
    html = browser.get("/jobs/").content.decode()
    assert '<html lang="zh-hans">' in html and "我的任务" in html


# --- Accounts and headers: login lockout, Content-Security-Policy, no-store, review rules ----------------------


def _log_in(client, path, username, password, address):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_a_login_is_locked_after_the_set_number_of_failures_from_that_address(
    client, django_user_model, settings, path
):
    """Through the real login forms (the studio's and the admin's): the limit-th wrong password locks this
    username from this address, even with the right password; the same user from another address gets in."""
    from django.test import Client

    django_user_model.objects.create_user(username="desk", password="pw-desk-12345", is_staff=True)
    limit = settings.AXES_FAILURE_LIMIT
    assert limit == 5 and settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]  # the shipped defaults
    for attempt in range(1, limit):
        response = _log_in(client, path, "desk", f"guess-{attempt}", "203.0.113.7")
        assert response.status_code == 200 and "_auth_user_id" not in client.session, attempt
    locked = _log_in(client, path, "desk", f"guess-{limit}", "203.0.113.7")
    assert locked.status_code == 429
    assert "registration/locked_out.html" in [t.name for t in locked.templates]
    page = locked.content.decode()
    assert "Too many login attempts" in page and "Try again in 15 minutes, after" in page
    assert 14 * 60 < int(locked["Retry-After"]) <= 15 * 60
    # The right password from the locked address is refused too, and does not extend the lockout.
    again = _log_in(client, path, "desk", "pw-desk-12345", "203.0.113.7")
    assert again.status_code == 429 and "_auth_user_id" not in client.session
    assert int(again["Retry-After"]) <= int(locked["Retry-After"])
    # Locking is per username and address: the editor elsewhere logs in, and another user at that address too.
    elsewhere = Client()
    assert _log_in(elsewhere, path, "desk", "pw-desk-12345", "198.51.100.20").status_code == 302
    assert "_auth_user_id" in elsewhere.session
    django_user_model.objects.create_user(username="chief", password="pw-chief-12345", is_staff=True)
    assert _log_in(Client(), path, "chief", "pw-chief-12345", "203.0.113.7").status_code == 302


def test_the_lockout_ends_after_the_cool_off(client, user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        _log_in(client, "/accounts/login/", "editor", "wrong", "203.0.113.7")
    assert _log_in(client, "/accounts/login/", "editor", "pw-editor-123", "203.0.113.7").status_code == 429
    from datetime import timedelta

    from axes.models import AccessAttempt
    from django.utils import timezone

    passed = settings.AXES_COOLOFF_TIME + timedelta(seconds=1)
    AccessAttempt.objects.update(attempt_time=timezone.now() - passed)  # as if the cool-off had passed
    assert _log_in(client, "/accounts/login/", "editor", "pw-editor-123", "203.0.113.7").status_code == 302


def test_a_locked_out_username_keeps_its_api_keys(client, user, api_key, settings):
    """API keys are not passwords: axes never sees them, so a lockout does not stop editorial tools."""
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        _log_in(client, "/accounts/login/", "editor", "wrong", "203.0.113.7")
    assert _log_in(client, "/accounts/login/", "editor", "pw-editor-123", "203.0.113.7").status_code == 429
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_key}", "REMOTE_ADDR": "203.0.113.7"}
    assert client.get("/api/v1/jobs/", **headers).status_code == 200
    assert client.get("/v1/models", **headers).status_code == 200
    wrong = {"HTTP_AUTHORIZATION": "Bearer aigc_nope_nope", "REMOTE_ADDR": "198.51.100.20"}
    for _ in range(3):  # nor do bad keys count as failed logins of anyone
        assert client.get("/api/v1/jobs/", **wrong).status_code == 401
    from axes.models import AccessAttempt

    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["203.0.113.7"]


def test_behind_the_tls_proxy_the_address_is_the_one_the_proxy_saw(settings, rf):
    from generation.web.accounts import client_ip

    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    assert client_ip(request) == "10.0.0.2"  # no proxy configured: the header is the client's word
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client_ip(request) == "203.0.113.7"  # the entry the proxy appended, not the one the client sent


def _policy(header: str) -> dict:
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def _inline_code(html: str) -> list[str]:
    """What a strict policy refuses in a page: inline scripts, event-handler and style attributes, javascript:
    URLs, <style> blocks."""
    from html.parser import HTMLParser

    found = []

    class Finder(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            # A JSON data block (Django's json_script) is never run, and a policy does not govern it.
            if tag == "script" and "src" not in attrs and attrs.get("type") != "application/json":
                found.append("inline <script>")
            if tag == "style":
                found.append("<style> block")
            found.extend(f"{tag} {name}=" for name in attrs if name.startswith("on") or name == "style")
            found.extend(
                f"{tag} {name}=javascript:"
                for name, value in attrs.items()
                if (value or "").strip().lower().startswith("javascript:")
            )

    Finder().feed(html)
    return found


def test_every_html_page_has_the_strict_policy_and_no_inline_code(client, django_user_model):
    """Every route of the site (walked as tests/test_urls.py does), as a superuser who owns the objects, and the
    pages anyone sees: each HTML page carries the policy, and holds nothing the policy would refuse."""
    from tests.test_urls import ROUTES, _path

    boss = django_user_model.objects.create_superuser(username="boss", password="pw-boss-123", email="b@example.com")
    job = services.job_create(user=boss, kind="writing", inputs={"topic": "plans"})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.create(
        job=job, index=0, text="# Plans\n\n| a | b |\n|:-:|--:|\n| 1 | 2 |\n\n```python\nx = 1\n```"
    )
    services.api_key_create(boss, name="cms")
    from generation.models import PromptTemplate

    template = PromptTemplate.objects.get(slug="headline")
    values = {
        "job_id": job.pk,
        "key_id": boss.api_keys.get().pk,
        "index": 0,
        "fmt": "md",
        "kind": "headline",
        "slug": "headline",
        "uidb64": "MQ",
        "token": "set-password",
        "object_id": template.pk,
        "content_type_id": 1,
        "id": template.pk,
        "pk": template.pk,
        "number": 1,
        "app_label": "generation",
        "url": "anything/",
        "batch_id": "00000000-0000-0000-0000-000000000000",
    }
    expected = _policy("; ".join(f"{k} {' '.join(v)}" for k, v in settings_policy().items()))
    assert expected["script-src"] == ["'self'"] and expected["frame-ancestors"] == ["'none'"]
    pages = []
    for anonymous in (True, False):
        if not anonymous:
            client.force_login(boss)
        for route in ROUTES:
            if route.name == "admin:view_on_site":  # a redirect to an object's page, for the content type's model
                continue
            try:
                path = _path(route.route, values)
            except KeyError:
                continue
            response = client.get(path)
            if response.status_code != 200 or not response.get("Content-Type", "").startswith("text/html"):
                continue
            assert _policy(response["Content-Security-Policy"]) == expected, path
            html = response.content.decode()
            assert _inline_code(html) == [], (path, _inline_code(html))
            pages.append(path)
    assert {
        "/accounts/login/",
        "/jobs/new/",
        f"/jobs/{job.pk}/",
        "/keys/",
        "/health/",
        "/api/docs/",
        "/admin/",
        f"/admin/generation/prompttemplate/{template.pk}/change/",
    } <= set(pages)
    assert len(pages) >= 40
    # The docs page's start-up script is a file of its own, and an error page carries the policy too.
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()
    assert "Content-Security-Policy" in client.get("/jobs/00000000-0000-0000-0000-000000000000/")


def settings_policy() -> dict:
    from django.conf import settings

    return settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]


def test_outputs_are_edited_only_in_draft_and_the_page_offers_no_edit_otherwise(browser, user, finished):
    edit = f"/jobs/{finished.pk}/outputs/0/edit/"
    assert edit in browser.get(f"/jobs/{finished.pk}/").content.decode()
    services.review_move(finished, user=user, to_state="in_review")
    assert edit not in browser.get(f"/jobs/{finished.pk}/").content.decode()
    for response in (browser.get(edit), browser.post(edit, {"text": "Changed under the reviewer."})):
        assert response.status_code == 302 and response["Location"].endswith(f"/jobs/{finished.pk}/#output-0")
    assert JobOutput.objects.get(job=finished).final_text == ""
    page = browser.get(f"/jobs/{finished.pk}/").content.decode()
    assert "Only a draft can be edited" in page
    services.review_move(finished, user=user, to_state="draft")  # withdrawn: editable again
    assert browser.post(edit, {"text": "Changed in draft."}).status_code == 302
    assert JobOutput.objects.get(job=finished).final_text == "Changed in draft."


def test_a_reviewer_is_not_offered_and_cannot_approve_their_own_job(client, django_user_model):
    from django.contrib.auth.models import Group

    chief = django_user_model.objects.create_user(username="chief", password="pw-chief-12345")
    chief.groups.add(Group.objects.get(name="reviewer"))
    job = services.job_create(user=chief, kind="headline", inputs={"text": "A story."})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    client.force_login(chief)
    client.post(f"/jobs/{job.pk}/review/", {"to_state": "in_review"})
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'value="approved"' not in page and 'value="draft"' in page  # withdraw, but no approve
    response = client.post(f"/jobs/{job.pk}/review/", {"to_state": "approved"}, follow=True)
    assert "You cannot approve your own job" in response.content.decode()
    assert Job.objects.get(pk=job.pk).review_state == "in_review"


def test_the_admin_offers_no_way_around_review(rf, django_user_model, finished):
    """A superuser who reviews could otherwise approve their own job, or edit a text in review, in the admin."""
    from django.contrib import admin

    boss = django_user_model.objects.create_superuser(username="boss", password="pw-boss-123", email="b@example.com")
    request = rf.get("/admin/")
    request.user = boss
    job_admin = admin.site._registry[Job]
    assert {"review_state", "owner", "status"} <= set(job_admin.get_readonly_fields(request, finished))
    for inline in job_admin.get_inline_instances(request, finished):
        if inline.model is JobOutput:
            assert {"text", "final_text"} <= set(inline.get_readonly_fields(request, finished))
    from generation.models import ReviewEvent

    assert ReviewEvent not in admin.site._registry  # the review log is written by review moves only


def test_a_password_reset_is_offered_only_where_mail_can_go_out(client, user, settings, mailoutbox):
    """With no mail configured, Django's reset form would say a mail is on its way that never leaves: the login
    page says whom to ask instead, and the reset page sends nothing. With mail, the whole reset works."""
    settings.PASSWORD_RESET_BY_MAIL = False
    user.email = "editor@example.com"
    user.save()
    page = client.get("/accounts/login/").content.decode()
    assert "/accounts/password_reset/" not in page and "Ask an administrator of this studio" in page
    refused = client.post("/accounts/password_reset/", {"email": "editor@example.com"})
    assert refused.status_code == 404 and "Ask an administrator of this studio" in refused.content.decode()
    assert not mailoutbox

    settings.PASSWORD_RESET_BY_MAIL = True
    page = client.get("/accounts/login/").content.decode()
    assert 'href="/accounts/password_reset/"' in page and "Ask an administrator" not in page
    sent = client.post("/accounts/password_reset/", {"email": "editor@example.com"})
    assert sent.status_code == 302 and len(mailoutbox) == 1 and mailoutbox[0].to == ["editor@example.com"]
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mailoutbox[0].body)[1]
    form = client.get(link, follow=True)
    assert form.status_code == 200 and form.context["validlink"]
    new = {"new_password1": "a-new-pass-4711", "new_password2": "a-new-pass-4711"}
    assert client.post(form.redirect_chain[-1][0], new).status_code == 302
    client.logout()
    logged_in = client.post("/accounts/login/", {"username": "editor", "password": "a-new-pass-4711"})
    assert logged_in.status_code == 302
