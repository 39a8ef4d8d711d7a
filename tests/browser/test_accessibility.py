"""axe-core's WCAG 2.1 A/AA rules on every studio page, in light and in dark mode, as the system asks for them and as
the theme toggle pins them. axe-core comes from npm (package.json, package-lock.json; `make test` runs `npm ci`),
never from a CDN: nothing is fetched at run time."""

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.utils import timezone

from generation.models import (
    Desk,
    DeskRole,
    Feedback,
    Job,
    JobOutput,
    JobStatus,
    Membership,
    Notification,
    PromptTemplate,
    ReviewEvent,
    ReviewState,
)
from generation.services.api_keys import api_key_create, api_key_revoke
from tests.browser.test_studio import log_in

pytestmark = pytest.mark.browser

AXE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

# (the system's colour scheme, the theme the toggle pins or None): every way a page can end up light or dark.
MODES = {
    "light": ("light", None),
    "dark": ("dark", None),
    "dark-by-toggle": ("light", "dark"),
    "light-by-toggle": ("dark", "light"),
}

HEADLINE = "Bridge over the Elm River done by 2030"
ARTICLE = """## The new bridge

The council voted on **Tuesday**; see [the minutes](/jobs/) and `bridge_cost()`.

> Construction starts next spring.

- 40 million dollars
- ~~2027~~ 2028

| Part | Cost |
| --- | ---: |
| Deck | 25 |

```python
def bridge_cost(parts: dict[str, int]) -> int:
    \"\"\"Millions.\"\"\"
    return sum(parts.values())  # 40
```
"""
CODE = '''import math


class Bridge:
    """A bridge."""

    def __init__(self, span: float = 1.5e2) -> None:
        self.span = span  # metres
        self.name = f"Elm {span!r}"

    @property
    def arc(self):
        return [math.sin(x) for x in range(10) if x % 2 == 0 or x is None]
'''


def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `make test` (it runs `npm ci` for axe-core).")
    return AXE.read_text(encoding="utf-8")


def audit(page, source: str) -> list[dict]:
    """axe's WCAG 2.1 A/AA violations on the page as shown, every <details> opened first. The site's CSP allows only
    its own scripts, so an added <script> tag would be refused: page.evaluate() runs axe through the DevTools
    protocol (Runtime.evaluate), which the page's CSP does not govern; no bypass_csp context is needed."""
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(source + "\n;void 0")
    return page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => ({target: n.target.join(' '), data: (n.any[0] || {}).data || null}))})))",
        WCAG_TAGS,
    )


def describe(where: str, violations: list[dict]) -> list[str]:
    lines = []
    for v in violations:
        targets = ", ".join(n["target"] for n in v["nodes"][:4])
        more = f" (+{len(v['nodes']) - 4} more)" if len(v["nodes"]) > 4 else ""
        data = v["nodes"][0]["data"] if v["nodes"] else None
        colours = ""
        if v["id"] == "color-contrast" and isinstance(data, dict) and "contrastRatio" in data:
            colours = (
                f" [first: {data.get('fgColor')} on {data.get('bgColor')}, {data.get('contrastRatio')}:1,"
                f" needs {data.get('expectedContrastRatio')}]"
            )
        lines.append(
            f"{where}: {v['id']} ({v['impact']}, {len(v['nodes'])} element(s)): {v['help']}; {targets}{more}{colours}"
        )
    return lines


def job(owner, slug: str, inputs: dict, status: str, **fields) -> Job:
    template = PromptTemplate.objects.get(slug=slug)
    return Job.objects.create(
        owner=owner,
        kind=template.kind,
        template=template,
        template_version=template.versions.get(number=1),
        inputs=inputs,
        params={"seed": 1},
        status=status,
        **fields,
    )


@pytest.fixture
def studio(django_user_model):
    """Jobs in every state, outputs with a finding, an edit, a rating, Markdown and highlighted code; API keys."""
    desk = django_user_model.objects.create_user(username="desk", password="pw-desk-12345")
    chief = django_user_model.objects.create_user(username="chief", password="pw-chief-12345", is_staff=True)
    chief.groups.add(Group.objects.get(name="reviewer"))
    Membership.objects.filter(user=chief).update(role=DeskRole.ADMIN)
    newsroom = Desk.objects.get(is_default=True)
    newsroom.tokens_per_day = 1000  # the chart's budget line, and a bar over it (the fixture's jobs use more)
    newsroom.save()
    now = timezone.now()
    done = {"prompt_tokens": 120, "completion_tokens": 40, "started_at": now, "finished_at": now, "attempts": 1}
    story = "The city council agreed on Tuesday to build a new bridge over the Elm River. It should finish in 2028."

    headline = job(
        desk,
        "headline",
        {"text": story},
        JobStatus.SUCCEEDED,
        review_state=ReviewState.IN_REVIEW,
        findings=1,
        timings={"total_s": 1.5, "first_token_s": 0.2},
        **done,
    )
    start = HEADLINE.index("2030")
    marked = JobOutput.objects.create(
        job=headline,
        index=0,
        text=HEADLINE,
        score=0.87,
        checks=[
            {
                "check": "grounding",
                "rule": "year",
                "start": start,
                "end": start + 4,
                "text": "2030",
                "reason": 'The source gives no "2030".',
            }
        ],
    )
    edited = JobOutput.objects.create(
        job=headline,
        index=1,
        text="Council agrees to build a bridge",
        final_text="Elm River bridge approved: work starts in spring",
        edited_at=now,
        score=0.5,
    )
    Feedback.objects.create(output=marked, user=desk, template_version=headline.template_version, rating=-1)
    Feedback.objects.create(
        output=edited, user=desk, template_version=headline.template_version, rating=1, comment="Clear"
    )
    submitted = ReviewEvent.objects.create(
        job=headline, actor=desk, from_state=ReviewState.DRAFT, to_state=ReviewState.IN_REVIEW, note="Please check"
    )
    Notification.objects.create(user=chief, job=headline, event=submitted, verb="submitted", message="submitted")

    article = job(desk, "article", {"topic": "The Elm River bridge"}, JobStatus.SUCCEEDED, **done)
    Job.objects.filter(pk=article.pk).update(review_state=ReviewState.APPROVED)
    approved = ReviewEvent.objects.create(
        job=article, actor=chief, from_state=ReviewState.IN_REVIEW, to_state=ReviewState.APPROVED
    )
    Notification.objects.create(user=desk, job=article, event=approved, verb="approved", message="approved")
    JobOutput.objects.create(job=article, index=0, text=ARTICLE)
    code = job(desk, "code", {"task": "A bridge class", "language": "python"}, JobStatus.SUCCEEDED, **done)
    JobOutput.objects.create(job=code, index=0, text=CODE)
    failed = job(desk, "summary", {"text": story}, JobStatus.FAILED, error="The model ran out of memory.")
    running = job(desk, "summary", {"text": story}, JobStatus.RUNNING, started_at=now)
    job(desk, "summary", {"text": story}, JobStatus.QUEUED)
    job(desk, "summary", {"text": story}, JobStatus.CANCELLED)

    api_key_create(desk, name="Newsroom CMS")
    old, _ = api_key_create(desk, name="Old plugin")
    api_key_revoke(old)
    return {"headline": headline, "article": article, "code": code, "failed": failed, "running": running}


def set_mode(page, base: str, mode: str) -> None:
    scheme, pinned = MODES[mode]
    page.emulate_media(color_scheme=scheme)
    page.goto(f"{base}/accounts/login/")
    if pinned:
        # The toggle flips the shown theme and remembers it (localStorage) for the next pages.
        page.click("#theme-toggle")
        assert page.evaluate("document.documentElement.dataset.theme") == pinned


def check_mode(page, mode: str) -> None:
    """The page is in the mode meant: the toggle's choice (or none) on <html>, and a dark or light background."""
    scheme, pinned = MODES[mode]
    assert page.evaluate("document.documentElement.dataset.theme || null") == pinned
    rgb = page.evaluate("getComputedStyle(document.body).backgroundColor")
    r, g, b = (int(x) for x in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3])
    assert ((r + g + b) / 3 < 128) == ((pinned or scheme) == "dark"), f"{mode}: body background {rgb}"


@pytest.mark.parametrize("mode", list(MODES))
def test_every_page_passes_axe_wcag21_aa(live_server_url, browser, studio, mode):
    source = axe_source()
    base = live_server_url
    found: list[str] = []
    audited: list[str] = []

    def check(page, name: str) -> None:
        page.wait_for_load_state("load")
        check_mode(page, mode)
        audited.append(name)
        found.extend(describe(f"[{mode}] {name} ({page.url.removeprefix(base)})", audit(page, source)))

    def visit(page, name: str, path: str) -> None:
        page.goto(f"{base}{path}")
        check(page, name)

    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    set_mode(page, base, mode)
    check(page, "login")
    page.fill("#id_username", "desk")
    page.fill("#id_password", "wrong-password")
    page.click("button[type=submit]")
    check(page, "login with an error")

    log_in(page, base, "desk", "pw-desk-12345")
    visit(page, "new job", "/jobs/new/")
    visit(page, "new code job", "/jobs/new/code/")
    visit(page, "new writing job, another template", "/jobs/new/writing/?template=blog-post")
    page.goto(f"{base}/jobs/new/headline/")
    page.get_by_role("button", name="Generate").click()  # nothing filled in: the form comes back with errors
    check(page, "new job with errors")
    visit(page, "history", "/jobs/")
    visit(page, "history filtered", "/jobs/?findings=on&status=succeeded")
    visit(page, "notices", "/notices/")  # and the nav's counts, on every page
    # What the styles under test are on: the finding's <mark>, the edit's diff, a rating, highlighted code.
    covers = {
        "headline": "#output-0 mark.finding, #output-1 .diff-body ins, #output-1 .thumb.chosen",
        "article": "#output-0 .rendered table, #output-0 .rendered .highlight",
        "code": "#output-0 .rendered .highlight .k",
        "failed": "p.error",
        "running": "#job-status.status-running",
    }
    for name, selector in covers.items():
        visit(page, f"job page: {name}", f"/jobs/{studio[name].pk}/")
        for one in selector.split(", "):
            assert page.locator(one).count() >= 1, f"job page {name}: nothing matches {one}"
    visit(page, "output edit", f"/jobs/{studio['code'].pk}/outputs/0/edit/")
    # In review, so not editable: back on the job page with an error message.
    visit(page, "output edit refused", f"/jobs/{studio['headline'].pk}/outputs/1/edit/")
    visit(page, "API keys", "/keys/")
    page.fill("#id_name", "Wire desk")
    page.get_by_role("button", name="Create key").click()
    check(page, "API keys with a new key")
    page.get_by_role("link", name="Revoke").first.click()
    check(page, "API key revoke confirmation")
    page.get_by_role("button", name="Revoke key").click()
    check(page, "API keys with a message")
    visit(page, "password change", "/accounts/password_change/")
    page.fill("#id_old_password", "not-my-password")
    page.get_by_role("button", name="Change password").click()
    check(page, "password change with errors")
    context.close()

    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    set_mode(page, base, mode)
    log_in(page, base, "chief", "pw-chief-12345")
    visit(page, "review queue", "/review/")
    visit(page, "review queue: approved", "/review/?state=approved")
    visit(page, "notices as a reviewer", "/notices/")
    visit(page, "job page as a reviewer", f"/jobs/{studio['headline'].pk}/")
    visit(page, "health", "/health/")
    visit(page, "desk page", "/desks/newsroom/")  # the chief is the default desk's admin (the fixture)
    assert page.locator("#usage-chart rect.bar").count() == 14
    page.get_by_role("button", name="Save budgets").click()
    check(page, "desk page with a message")
    visit(page, "desk templates page", "/desks/newsroom/templates/")
    assert page.locator("#template-headline form.label-form select").count() == 1
    context.close()

    assert len(audited) == 30
    assert not found, f"axe found WCAG 2.1 A/AA violations on {len(found)} page(s)/rule(s):\n" + "\n".join(found)
