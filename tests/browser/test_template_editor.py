"""A curator edits a template in the admin with the row editor (static/studio/template-editor.js): variables as rows,
placeholders offered as variables, unused ones flagged, errors on the row at fault, a live preview with its token
count and the diff against production; the save posts the same JSON the textarea always posted."""

import re

import pytest
from playwright.sync_api import expect

from generation import services
from generation.models import PromptTemplate
from tests.browser.conftest import shot
from tests.browser.test_accessibility import axe_source

pytestmark = pytest.mark.browser

VARIABLES = [
    {"name": "product", "type": "text", "required": True, "max_length": 100, "help": "The product's name"},
    {"name": "tone", "type": "choice", "choices": ["playful", "serious"], "default": "playful"},
]


@pytest.fixture
def curator(django_user_model):
    user = django_user_model.objects.create_superuser("curator", "curator@example.com", "pw-curator-12345")
    template = services.template_create(
        slug="tagline",
        kind="writing",
        name="Tagline",
        user=user,
        system_prompt="You write taglines.",
        user_template="Write a {tone} tagline for {product}.",
        variables=VARIABLES,
        default_params={"max_new_tokens": 24},
        output_format="headline",
    )
    return template


def log_in_admin(page, base):
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "curator")
    page.fill("#id_password", "pw-curator-12345")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#site-name")).to_be_visible()


def tokens(page) -> int:
    status = page.locator("#te-status")
    expect(status).to_contain_text("prompt tokens", timeout=15_000)
    return int(re.match(r"(\d+) prompt tokens", status.text_content()).group(1))


def test_curator_edits_variables_as_rows_with_a_live_preview(live_server_url, page, worker_queue, curator):
    problems = []
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    log_in_admin(page, live_server_url)
    page.goto(f"{live_server_url}/admin/generation/prompttemplate/{curator.pk}/change/")

    # The JSON textarea became rows; the panel shows the prompt for the sample inputs and its token count.
    rows = page.locator("#te-variables tr.te-row")
    expect(rows).to_have_count(2)
    expect(page.locator("#id_variables")).to_be_hidden()
    expect(rows.nth(0).locator("[data-key=name]")).to_have_value("product")
    expect(rows.nth(1).locator("[data-key=type]")).to_have_value("choice")
    expect(page.locator("#te-prompt")).to_contain_text("Write a playful tagline for [product].")
    before = tokens(page)
    expect(page.locator("#te-diff")).to_contain_text("Same as production (v1).")

    # A new row, not used in either prompt: flagged on its row.
    page.get_by_role("button", name="Add a variable").click()
    expect(rows).to_have_count(3)
    rows.nth(2).locator("[data-key=name]").fill("audience")
    note = page.locator("#te-variables .te-unused:visible")
    expect(note).to_have_text("'audience' is not used in either prompt.")
    described = rows.nth(2).locator("[data-key=name]").get_attribute("aria-describedby")
    assert note.get_attribute("id") in described.split()

    # Placeholders typed into the prompt: the undeclared one is offered, the flag goes away.
    page.fill("#id_user_template", "Write a {tone} tagline for {product} aimed at {audience}, in {city}.")
    offer = page.get_by_role("button", name="Add variable city")
    expect(offer).to_be_visible()
    expect(page.locator("#te-variables .te-unused:visible")).to_have_count(0)
    offer.click()
    expect(rows).to_have_count(4)
    expect(offer).to_have_count(0)
    expect(rows.nth(3).locator("[data-key=name]")).to_have_value("city")

    # The preview follows: the new text with the stand-in sample, more tokens; the sample inputs drive it.
    expect(page.locator("#te-prompt")).to_contain_text("aimed at , in [city].")
    page.fill("#te-sample-audience", "night owls")
    expect(page.locator("#te-prompt")).to_contain_text("aimed at night owls, in [city].")
    after = tokens(page)
    assert after > before
    shot(page, "admin-template-editor")

    # A server error (a default longer than the row's max_length) lands on that row.
    city = rows.nth(3)
    city.locator("[data-key=max_length]").fill("3")
    city.locator("[data-key=default]").fill("Lisbon")
    error = page.locator("#te-variables tr.te-row-messages:visible .errorlist li")
    expect(error).to_have_text("Default: At most 3 characters (got 6).", timeout=15_000)
    expect(city.locator("[data-key=default]")).to_have_attribute("aria-invalid", "true")
    errors_id = city.locator("[data-key=default]").get_attribute("aria-describedby")
    expect(page.locator(f"#{errors_id}")).to_contain_text("At most 3 characters")
    expect(page.locator("#te-status")).to_have_text("Fix the errors below to see the preview.")
    city.locator("[data-key=max_length]").fill("20")
    expect(error).to_have_count(0)
    expect(page.locator("#te-prompt")).to_contain_text("in Lisbon.")

    # A client-side check: min above max on a number row, shown on that row; the row is then removed.
    page.get_by_role("button", name="Add a variable").click()
    words = rows.nth(4)
    words.locator("[data-key=name]").fill("words")
    words.locator("[data-key=type]").select_option("number")
    words.locator("[data-key=min]").fill("10")
    words.locator("[data-key=max]").fill("5")
    expect(error).to_have_text("Minimum: The minimum (10) is above the maximum (5).")
    expect(words.locator("[data-key=min]")).to_have_attribute("aria-invalid", "true")
    words.get_by_role("button", name="Remove words").click()
    expect(rows).to_have_count(4)
    expect(error).to_have_count(0)

    # The diff against production follows the edit.
    diff = page.locator("#te-diff pre[data-field=user_template]")
    expect(diff).to_contain_text("-Write a {tone} tagline for {product}.")
    expect(diff).to_contain_text("+Write a {tone} tagline for {product} aimed at {audience}, in {city}.")
    expect(page.locator("#te-diff pre[data-field=variables]")).to_contain_text('"name": "city"')

    assert problems == []  # no script error, nothing refused by the CSP (axe-core, below, applies inline styles)

    # The editor's own elements pass axe's WCAG A/AA rules.
    page.evaluate(axe_source() + "\n;void 0")
    violations = page.evaluate(
        "() => axe.run({include: [['#te-editor'], ['#te-panel']]}, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}).then(r => r.violations.map(v => v.id + ': ' + v.help))"
    )
    assert violations == []

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("ul.messagelist")).to_contain_text("Saved as version 2")
    version = PromptTemplate.objects.get(slug="tagline").versions.order_by("-number").first()
    assert version.number == 2
    assert version.user_template == "Write a {tone} tagline for {product} aimed at {audience}, in {city}."
    assert version.variables == [
        *VARIABLES,
        {"name": "audience", "type": "text"},
        {"name": "city", "type": "text", "required": True, "default": "Lisbon", "max_length": 20},
    ]
