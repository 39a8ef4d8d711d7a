"""At 1280px, the admin template page's variables editor shows all its columns: no horizontal scroll hides half
of them (static/studio/admin.css puts the live panel under the form below 1600px and lets the inputs share)."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import shot
from tests.browser.test_template_editor import curator, log_in_admin  # noqa: F401  (curator is a fixture)

pytestmark = pytest.mark.browser


def test_the_variables_editor_fits_at_1280px(live_server_url, page, curator):  # noqa: F811
    log_in_admin(page, live_server_url)
    page.goto(f"{live_server_url}/admin/generation/prompttemplate/{curator.pk}/change/")
    wrap = page.locator(".te-table-wrap")
    expect(wrap).to_be_visible()
    shot(page, "admin-variables-1280")
    scroll, client = wrap.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert scroll <= client + 1, f"the variables table scrolls: {scroll}px in {client}px"
    help_box = page.locator("table.te-variables tr.te-row").first.locator("td").nth(8)
    assert help_box.bounding_box()["x"] + help_box.bounding_box()["width"] <= 1280
