"""The live job page tells the truth in a real browser: first-round candidates the checks refused are greyed with
the reason while others are re-written unseen, the counter follows those tokens; a job cancelled while it ran
waits for its worker to save, then shows the text written before the cancel and the tokens charged."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from generation.infra import events
from generation.models import Job, JobOutput, JobStatus, PromptTemplate
from tests.browser.conftest import shot

pytestmark = pytest.mark.browser


@pytest.fixture
def running(django_user_model):
    django_user_model.objects.create_user(username="desk", password="pw-desk-12345")
    template = PromptTemplate.objects.get(slug="headline")
    return Job.objects.create(
        owner=django_user_model.objects.get(username="desk"),
        kind=template.kind,
        template=template,
        template_version=template.versions.get(number=1),
        inputs={"text": "The council voted for a bridge."},
        params={"seed": 1, "n": 3},
        status=JobStatus.RUNNING,
        started_at=timezone.now(),
    )


def log_in(page, base):
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", "desk")
    page.fill("#id_password", "pw-desk-12345")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="My jobs")).to_be_visible()


def test_refused_candidates_are_greyed_and_a_cancel_keeps_the_text(live_server_url, page, running):
    base = live_server_url
    log_in(page, base)
    page.goto(f"{base}/jobs/{running.pk}/")
    expect(page.locator("#job-progress")).to_be_visible()
    for index, text in enumerate(["Council backs bridge", "Mayor Amber Ruiz opens", "Bridge vote passes"]):
        events.publish_delta(running.pk, index, text, tokens=4)
    events.publish_discard(running.pk, 1, "grounding")
    events.publish_status(running.pk, "resampling", round=1, of=4, rejected=[1], missing=1, want=3)
    events.publish_progress(running.pk, 1, 42)
    expect(page.locator("#live-1")).to_contain_text("Refused by the checks (grounding)")
    expect(page.locator("#live-1")).to_have_class("output prose live muted")
    expect(page.locator("#live-0")).to_have_text("Council backs bridge")  # kept candidates unmarked
    expect(page.locator("#queue-note")).to_have_text("Checking facts: re-writing 1 of 3…")
    expect(page.locator("#job-tokens")).to_have_text("· 42 tokens so far")
    shot(page, "job-resampling")

    # Cancelled: final at once, the worker still saving what was written.
    now = timezone.now()
    Job.objects.filter(pk=running.pk).update(status=JobStatus.CANCELLED, finished_at=now, attempts=1)
    page.goto(f"{base}/jobs/{running.pk}/")
    expect(page.locator("#job-stopping")).to_be_visible()
    JobOutput.objects.create(job=running, index=0, text="Council backs bridge", finish_reason="cancelled")
    Job.objects.filter(pk=running.pk).update(prompt_tokens=20, completion_tokens=12)
    events.publish_end(running.pk, JobStatus.CANCELLED)
    expect(page.locator("#job-stopped")).to_have_text("Stopped: the text written before you cancelled.")
    expect(page.locator("#output-0")).to_contain_text("Council backs bridge")
    expect(page.locator("#job-usage")).to_contain_text("Tokens: 20 prompt, 12 completion")
    shot(page, "job-cancelled-kept")
