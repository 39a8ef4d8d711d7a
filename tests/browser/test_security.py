"""The Content-Security-Policy in a real browser: every studio page, the admin's template pages and the API docs
run under it without one violation (Chromium reports each as a securitypolicyviolation event and a console
error), and what it forbids (an injected inline script or event handler) is refused. Also the login lockout as a person
meets it, through the production server."""

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from generation.infra import events
from generation.models import Job, JobOutput, JobStatus, PromptTemplate, TrainingRun, TrainingStatus
from tests.browser.conftest import shot

pytestmark = pytest.mark.browser

# Runs in every document before its own scripts (Playwright injects it through the DevTools protocol, which the
# policy does not cover): keeps each violation the page reports.
LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
}, true);
"""
CODE = "def add(a, b):\n    return a + b\n"
MARKDOWN = "# Bridge\n\nThe council **voted**.\n\n| year | cost |\n|:--|--:|\n| 2028 | 40 |\n\n```python\nx = 1\n```\n"


class Watch:
    """The violations and policy headers of every page a browser page loads."""

    def __init__(self, page):
        self.page, self.console, self.documents = page, [], []
        page.add_init_script(LISTEN)
        page.on("console", lambda m: self.console.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("response", lambda r: self.documents.append(r) if r.request.resource_type == "document" else None)

    def visit(self, url: str, ready: str | None = None):
        response = self.page.goto(url)
        if ready:
            expect(self.page.locator(ready).first).to_be_visible(timeout=30_000)
        self.page.wait_for_load_state("networkidle")
        self.check(url)
        return response

    def check(self, where: str):
        reported = self.page.evaluate("window.__csp")
        assert reported == [] and self.console == [], (where, reported, self.console)
        for response in self.documents:
            policy = response.headers.get("content-security-policy", "")
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, (response.url, policy)
        assert self.documents, where


def log_in(page, base, username, password):
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.get_by_role("button", name="Log in").click()


@pytest.fixture
def newsroom(django_user_model):
    """An editor with a finished job (markdown, a table, code) and a running one; a staff reviewer."""
    desk = django_user_model.objects.create_user(username="desk", password="pw-desk-12345")
    chief = django_user_model.objects.create_user(
        username="chief", password="pw-chief-12345", is_staff=True, is_superuser=True
    )
    chief.groups.add(Group.objects.get(name="reviewer"))
    jobs = {}
    for name, slug, status, inputs, text in (
        ("article", "article", JobStatus.SUCCEEDED, {"topic": "A bridge"}, MARKDOWN),
        ("code", "code", JobStatus.SUCCEEDED, {"instruction": "Add two numbers", "language": "python"}, CODE),
        ("running", "headline", JobStatus.RUNNING, {"text": "The council voted for a bridge."}, None),
    ):
        template = PromptTemplate.objects.get(slug=slug)
        jobs[name] = Job.objects.create(
            owner=desk,
            kind=template.kind,
            template=template,
            template_version=template.versions.get(number=1),
            inputs=inputs,
            params={"seed": 1},
            status=status,
        )
        if text:
            JobOutput.objects.create(job=jobs[name], index=0, text=text)
    return jobs


def test_studio_pages_admin_and_api_docs_report_no_violation(live_server_url, page, browser, newsroom):
    base = live_server_url
    watch = Watch(page)
    watch.visit(f"{base}/accounts/login/")
    log_in(page, base, "desk", "pw-desk-12345")
    expect(page.get_by_role("link", name="My jobs")).to_be_visible()
    for kind in ("headline", "writing", "summary", "code"):
        watch.visit(f"{base}/jobs/new/{kind}/", ready="form")
    watch.visit(f"{base}/jobs/", ready="table.jobs")
    watch.visit(f"{base}/jobs/{newsroom['article'].pk}/", ready="#output-0 table")
    page.locator("#output-0").get_by_role("button", name="Copy").click()  # ui.js, an external script, runs
    page.click("#theme-toggle")
    watch.check("job page, after the copy button and the theme toggle")
    watch.visit(f"{base}/jobs/{newsroom['code'].pk}/", ready="#output-0 .highlight")
    watch.visit(f"{base}/jobs/{newsroom['article'].pk}/outputs/0/edit/", ready="#id_text")
    # A running job: job.js follows its event stream (connect-src 'self') and shows the text as it comes.
    running = newsroom["running"]
    watch.visit(f"{base}/jobs/{running.pk}/", ready="#job-progress")
    events.publish_delta(running.pk, 0, "Council backs the bridge")
    expect(page.locator("#live-0")).to_have_text("Council backs the bridge")
    watch.check("streaming job page")
    watch.visit(f"{base}/keys/")
    page.fill("#id_name", "CMS plugin")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key")).to_be_visible()
    watch.check("the page with the new key")
    watch.visit(f"{base}/accounts/password_change/", ready="form")
    # The API docs: Swagger UI renders every operation from the schema, with its start-up script as a file.
    watch.visit(f"{base}/api/docs/", ready=".opblock")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/jobs/").first).to_be_visible()
    page.locator(".opblock").first.locator(".opblock-summary").click()  # open one: its parameters and responses
    expect(page.locator(".opblock-body").first).to_be_visible()
    watch.check("api docs, an operation open")
    shot(page, "api-docs")

    # A staff reviewer: the review queue, the health page, the admin and its prompt template pages.
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    staff = Watch(context.new_page())
    log_in(staff.page, base, "chief", "pw-chief-12345")
    expect(staff.page.get_by_role("link", name="Review")).to_be_visible()
    template = PromptTemplate.objects.get(slug="headline")
    for url, ready in (
        ("/review/", None),
        ("/health/", None),
        ("/admin/", "#content-main"),
        (f"/admin/generation/prompttemplate/{template.pk}/change/", "#versions"),
        (f"/admin/generation/prompttemplate/{template.pk}/versions/1/", "#preview-text, form"),
        (f"/admin/generation/prompttemplate/{template.pk}/diff/?a=1&b=1", "#content-main"),
        ("/admin/generation/job/", "#result_list"),
    ):
        staff.visit(base + url, ready=ready)
    # A training run's page follows the run live (its static script polls the run's JSON), under the same policy.
    run = TrainingRun.objects.create(
        template=template,
        base_version=template.versions.get(number=1),
        model_alias="tuned",
        status=TrainingStatus.RUNNING,
        progress={"step": 3, "total_steps": 10, "epoch": 1, "loss": 1.5, "tokens_per_s": 120.0, "eta_s": 20.0},
        losses=[2.0, 1.8, 1.5],
    )
    staff.visit(f"{base}/admin/generation/prompttemplate/{template.pk}/training/{run.pk}/", ready="#training-progress")
    expect(staff.page.locator("#loss-chart")).to_be_visible()
    TrainingRun.objects.filter(pk=run.pk).update(progress={**run.progress, "step": 4, "loss": 1.25})
    expect(staff.page.locator('#training-progress [data-live="step"]')).to_contain_text("4 of 10", timeout=10_000)
    staff.check("a training run's page, updated live")
    # admin.css replaced the inline style: the versions table still spans its fieldset.
    staff.visit(f"{base}/admin/generation/prompttemplate/{template.pk}/change/", ready="#versions")
    widths = staff.page.evaluate(
        "[document.querySelector('#versions table.versions').offsetWidth, document.querySelector('#versions').clientWidth]"
    )
    assert widths[0] >= widths[1] - 40, widths
    context.close()


def test_what_the_policy_forbids_is_refused_and_reported(live_server_url, page, newsroom):
    """The control for the test above: the listener does see violations, and an injected script runs nothing."""
    watch = Watch(page)
    log_in(page, live_server_url, "desk", "pw-desk-12345")
    watch.visit(f"{live_server_url}/jobs/{newsroom['article'].pk}/")
    page.evaluate("""() => {
      const s = document.createElement("script"); s.textContent = "window.__ran = 1"; document.body.appendChild(s);
      const img = document.createElement("img");
      img.setAttribute("src", "x"); img.setAttribute("onerror", "window.__ran = 2"); document.body.appendChild(img);
    }""")
    page.wait_for_timeout(500)
    assert page.evaluate("window.__ran") is None
    reported = page.evaluate("window.__csp")
    assert len(reported) >= 2 and all(r.startswith("script-src") for r in reported), reported
    # Nor eval: the policy names no 'unsafe-eval' (code Playwright evaluates is exempt, so the header is read).
    policy = watch.documents[-1].headers["content-security-policy"]
    directives = dict(d.strip().partition(" ")[::2] for d in policy.split(";") if d.strip())
    assert directives["script-src"] == "'self'" and "unsafe" not in policy, policy


def test_a_login_is_locked_after_the_set_number_of_failures(live_server_url, page, django_user_model):
    """Through uvicorn, as production serves it: the fifth wrong password shows the lockout page (429), which
    says when to try again; the right password is refused until then."""
    django_user_model.objects.create_user(username="desk", password="pw-desk-12345")
    statuses = []
    page.on("response", lambda r: statuses.append(r.status) if r.request.resource_type == "document" else None)
    watch = Watch(page)
    for attempt in range(1, 5):
        log_in(page, live_server_url, "desk", f"guess-{attempt}")
        expect(page.get_by_role("alert")).to_contain_text("didn't match")
    log_in(page, live_server_url, "desk", "guess-5")
    expect(page.get_by_role("heading", name="Too many login attempts")).to_be_visible()
    expect(page.locator("#retry-after")).to_contain_text("Try again in 15 minutes, after")
    assert statuses[-1] == 429
    watch.check("lockout page")
    shot(page, "login-locked")
    log_in(page, live_server_url, "desk", "pw-desk-12345")
    expect(page.get_by_role("heading", name="Too many login attempts")).to_be_visible()
    assert statuses[-1] == 429
