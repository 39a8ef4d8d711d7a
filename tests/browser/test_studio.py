"""The studio in a real browser, on the real model: write, watch it stream, refresh mid-stream, rate, edit,
submit, approve as a reviewer; and model output holding HTML or script runs nothing, live or final."""

import json
import re
import urllib.request
from datetime import timedelta
from io import StringIO
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from playwright.sync_api import expect

from generation import services
from generation.infra import events
from generation.models import Feedback, Job, JobOutput, JobStatus, PromptTemplate, ReviewState
from tests.browser.conftest import shot

pytestmark = pytest.mark.browser

STORY = (
    "The city council voted on Tuesday to build a new bridge over the Elm River, at a cost of 40 million dollars. "
    "Construction starts next spring and should finish in 2028."
)
FINAL = "Elm River bridge approved: work starts in spring"
XSS = '<script>window.__xss = 1</script><img src="x" onerror="window.__xss = 2"> **bold** <a href="javascript:window.__xss=3">link</a>'


def log_in(page, base, username, password):
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="My jobs")).to_be_visible()


@pytest.fixture
def people(django_user_model):
    django_user_model.objects.create_user(username="desk", password="pw-desk-12345")
    reviewer = django_user_model.objects.create_user(username="chief", password="pw-chief-12345")
    reviewer.groups.add(Group.objects.get(name="reviewer"))


def _api(base: str, path: str, key: str) -> dict:
    """GET an API path with a bearer key, as a CMS would."""
    request = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_the_day_generate_choose_edit_submit_approve_and_hand_to_the_cms(
    live_server_url, page, browser, people, tmp_path
):
    """The newsroom's day: an editor generates five headlines, watches them stream, chooses and edits one and
    submits it; the reviewer sees that choice in the queue and approves; the author hears of it; the API, the
    approved feed, the training export and a dataset from approved jobs all carry exactly the chosen final text."""
    log_in(page, live_server_url, "desk", "pw-desk-12345")
    page.goto(f"{live_server_url}/jobs/new/headline/")
    page.fill("#id_in_text", STORY)
    shot(page, "studio-new-job")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_url("**/jobs/*/")
    job = Job.objects.get()

    # Text appears while the job is still running.
    first = page.locator("#live-0")
    expect(first).not_to_be_empty(timeout=120_000)
    seen = first.text_content()
    assert Job.objects.get(pk=job.pk).status in (JobStatus.QUEUED, JobStatus.RUNNING)
    shot(page, "studio-streaming")

    # A refresh mid-stream shows everything so far (the stream replays from its start) and goes on.
    page.reload()
    if Job.objects.get(pk=job.pk).status == JobStatus.RUNNING:
        # The replay arrives delta by delta: wait for it to reach what was seen before the refresh.
        expect(page.locator("#live-0")).to_have_text(re.compile("^" + re.escape(seen.strip()[:10])), timeout=60_000)
    # When the job ends the page shows the final, server-rendered outputs.
    expect(page.locator("#job-status")).to_have_text("Succeeded", timeout=300_000)
    outputs = list(JobOutput.objects.filter(job=job).order_by("index"))
    assert len(outputs) == 5
    expect(page.locator("article.output-card")).to_have_count(5)
    expect(page.locator("#output-0 .rendered")).to_contain_text(outputs[0].text.strip())
    shot(page, "studio-finished")

    # Rate the second headline.
    page.locator("#output-1").get_by_role("button", name="Good").click()
    expect(page.locator("#output-1 button[value='1']")).to_have_attribute("aria-pressed", "true")
    feedback = Feedback.objects.get()
    assert feedback.rating == 1 and feedback.template_version_id == job.template_version_id

    # Edit it into the final text; the model's text stays beside it, with the changes shown.
    page.locator("#output-1").get_by_role("link", name="Edit").click()
    page.fill("#id_text", FINAL)
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#output-1 .rendered")).to_contain_text("Elm River bridge approved")
    page.locator("#output-1 details.diff summary").click()
    expect(page.locator("#output-1 .diff-body ins").first).to_be_visible()
    assert JobOutput.objects.get(job=job, index=1).text == outputs[1].text

    # Five candidates: the page asks for a choice before submitting; "Use this" makes it.
    expect(page.locator("#choose-first")).to_be_visible()
    page.locator("#output-1").get_by_role("button", name="Use this").click()
    expect(page.locator("#output-1").get_by_role("button", name="Use this")).to_have_attribute("aria-pressed", "true")
    assert [o.index for o in JobOutput.objects.filter(job=job, chosen=True)] == [1]
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator("#review-state")).to_have_text("In review")
    shot(page, "studio-in-review")

    # The reviewer hears of it (a count on Review), sees the proposed headline in the queue, and approves.
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    reviewer = context.new_page()
    log_in(reviewer, live_server_url, "chief", "pw-chief-12345")
    expect(
        reviewer.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile("^Review"))
    ).to_contain_text("(1)")
    reviewer.goto(f"{live_server_url}/review/")
    row = reviewer.locator("table.jobs tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(".proposed")).to_contain_text(FINAL)
    shot(reviewer, "studio-review-queue")
    row.get_by_role("link").first.click()
    expect(reviewer.locator("#output-1 .badge-chosen")).to_have_text("Chosen")
    reviewer.get_by_role("button", name="Approve").click()
    expect(reviewer.locator("#review-state")).to_have_text("Approved")
    shot(reviewer, "studio-approved")
    context.close()
    assert Job.objects.get(pk=job.pk).review_state == ReviewState.APPROVED
    approved = JobOutput.objects.get(job=job, chosen=True)
    assert approved.current_text == FINAL

    # The author sees the notice, and it leads to the job.
    page.goto(f"{live_server_url}/jobs/")
    notices = page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile("^Notices"))
    expect(notices).to_contain_text("(1)")
    notices.click()
    notice = page.locator("ul.notices li.unread a")
    expect(notice).to_have_count(1)
    expect(notice).to_contain_text("chief approved")
    expect(notice).to_be_visible()
    notice.click()
    page.wait_for_url(f"**/jobs/{job.pk}/")
    expect(page.locator("#review-state")).to_have_text("Approved")

    # The API and the approved feed give exactly the chosen final text.
    _, author_key = services.api_key_create(job.owner, name="cms")
    body = _api(live_server_url, f"/api/v1/jobs/{job.pk}/", author_key)
    assert body["review_state"] == "approved" and body["chosen"] == [1]
    assert body["final_texts"] == [FINAL]
    reviewer_user = Job._meta.get_field("owner").related_model.objects.get(username="chief")
    _, cms_key = services.api_key_create(reviewer_user, name="cms feed")
    since = (job.created_at - timedelta(minutes=1)).isoformat()
    feed = _api(live_server_url, f"/api/v1/jobs/?review_state=approved&since={quote(since)}", cms_key)
    assert [(j["id"], j["final_texts"]) for j in feed["results"]] == [(str(job.pk), [FINAL])]

    # The training export and a dataset from approved jobs carry it too.
    export = tmp_path / "training.jsonl"
    call_command("export_training", job.template.slug, "--split", "all", "--output", str(export), stderr=StringIO())
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert [line["messages"][-1]["content"] for line in lines] == [FINAL]
    dataset = services.dataset_from_approved_jobs(template=job.template, name="day", user=reviewer_user)
    assert [item.reference for item in dataset.items.all()] == [FINAL]

    # The history finds it by its words and by its state.
    page.goto(f"{live_server_url}/jobs/?q=Elm+River&review=approved")
    expect(page.locator("table.jobs tbody tr")).to_have_count(1)
    shot(page, "studio-history")


def desk_job(django_user_model, slug: str, inputs: dict, status: str) -> Job:
    """A job of a `desk` user, written straight to the database (no worker involved)."""
    owner = django_user_model.objects.create_user(username="desk", password="pw-desk-12345")
    template = PromptTemplate.objects.get(slug=slug)
    version = template.versions.get(number=1)
    return Job.objects.create(
        owner=owner,
        kind=template.kind,
        template=template,
        template_version=version,
        inputs=inputs,
        params={"seed": 1},
        status=status,
    )


def test_html_and_script_in_model_output_run_nothing(live_server_url, page, django_user_model):
    """Live (streamed into the page) and final (rendered as markdown by the server)."""
    job = desk_job(django_user_model, "article", {"topic": XSS}, JobStatus.RUNNING)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, live_server_url, "desk", "pw-desk-12345")
    page.goto(f"{live_server_url}/jobs/{job.pk}/")
    events.publish_delta(job.pk, 0, XSS)
    expect(page.locator("#live-0")).to_contain_text("<script>window.__xss = 1</script>")
    assert page.evaluate("window.__xss") is None
    shot(page, "xss-live")

    JobOutput.objects.create(job=job, index=0, text=XSS)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    events.publish_end(job.pk, JobStatus.SUCCEEDED)
    expect(page.locator("#job-status")).to_have_text("Succeeded")
    rendered = page.locator("#output-0 .rendered")
    expect(rendered.locator("strong")).to_have_text("bold")
    assert rendered.locator("script, img, [onerror], a[href^='javascript']").count() == 0
    assert page.evaluate("window.__xss") is None and dialogs == []
    shot(page, "xss-final")


def test_chinese_interface_dark_theme_and_chinese_content(live_server_url, page, django_user_model):
    job = desk_job(
        django_user_model, "summary", {"text": "城市议会周二投票决定在榆树河上修建一座新桥。"}, JobStatus.SUCCEEDED
    )
    JobOutput.objects.create(job=job, index=0, text="议会批准修建新桥，明年春天开工。")
    log_in(page, live_server_url, "desk", "pw-desk-12345")
    page.select_option("#language", "zh-hans")
    expect(page.get_by_role("link", name="我的任务")).to_be_visible()
    page.goto(f"{live_server_url}/jobs/{job.pk}/")
    expect(page.locator("#output-0 .rendered")).to_contain_text("议会批准修建新桥，明年春天开工。")
    expect(page.locator("#output-0 .words")).to_have_text("14 字")  # each Chinese character is a word
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.click("#theme-toggle")
    assert page.evaluate("document.documentElement.dataset.theme") in ("dark", "light")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != light
    page.reload()  # the choice is remembered
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != light
    shot(page, "studio-zh-dark")


def test_an_unsupported_claim_is_marked_with_its_reason_and_markup_in_it_runs_nothing(
    live_server_url, page, django_user_model
):
    from generation.content import checks, formats

    story = "The city council agreed on Tuesday to build a new bridge. It should finish in 2028."
    job = desk_job(django_user_model, "headline", {"text": story}, JobStatus.SUCCEEDED)
    text = "Bridge <img src=x onerror=alert(document.domain)> done by 2030 <script>alert(document.cookie)</script>"
    verdict = checks.review(checks.parse({}), formats.spec("headline"), "headline", text, job.inputs)
    assert [f.text for f in verdict.unsupported] == ["2030"]
    JobOutput.objects.create(job=job, index=0, text=verdict.text, checks=[f.as_json() for f in verdict.findings])
    clean = Job.objects.create(
        owner=job.owner,
        kind=job.kind,
        template=job.template,
        template_version=job.template_version,
        inputs=job.inputs,
        params=job.params,
        status=JobStatus.SUCCEEDED,
    )
    JobOutput.objects.create(job=clean, index=0, text="Council agrees to build a bridge")
    Job.objects.filter(pk=job.pk).update(findings=len(verdict.findings))
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, live_server_url, "desk", "pw-desk-12345")

    page.goto(f"{live_server_url}/jobs/{job.pk}/")
    mark = page.locator("#output-0 .rendered mark.finding")
    expect(mark).to_have_count(1)
    expect(mark).to_have_text("2030")
    expect(mark).to_have_attribute("title", 'The source gives no "2030".')
    mark.focus()  # keyboard users reach the reason too
    described = page.locator(f"#{mark.get_attribute('aria-describedby')}")
    expect(described).to_contain_text('The source gives no "2030".')
    expect(page.locator("#output-0 .rendered")).to_contain_text("<img src=x onerror=alert(document.domain)>")
    assert page.locator("#output-0 .rendered").locator("script, img, [onerror]").count() == 0
    assert dialogs == []
    shot(page, "finding-marked")

    page.goto(f"{live_server_url}/jobs/?findings=on")
    rows = page.locator("table.jobs tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("a").first).to_have_attribute("href", f"/jobs/{job.pk}/")
