"""Chinese labels never wrap one character per line. A table squeezes its columns to their narrowest, and the
narrowest a Chinese label can be is one character wide: "状态" in a header, "吊销" on a button, "已完成" in a badge
came out as a column of single characters. Measured in Chromium with the CJK font `make chromium` installs, on a
desktop and a phone width, on the pages with tables and short buttons."""

import pytest
from playwright.sync_api import expect

from generation.models import Desk
from tests.browser.conftest import shot
from tests.browser.test_accessibility import studio  # noqa: F401 (the fixture: jobs in every state, API keys)
from tests.browser.test_studio import log_in

pytestmark = pytest.mark.browser

WIDTHS = (1280, 390)
# Labels: table headers, buttons and button-like links, badges, tabs, the header's links.
LABELS = "main th, main button, main .button, main .badge, main .tabs a, .topbar nav a, .topbar button"

# The lines each visible label's text takes: its text's line boxes, grouped by their top edge.
MEASURE = """selector => [...document.querySelectorAll(selector)].filter(el => el.getClientRects().length).map(el => {
  const tops = [];
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.textContent.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) if (r.width > 0) tops.push([r.top, r.height]);
  }
  tops.sort((a, b) => a[0] - b[0]);
  let lines = 0, last = null;
  for (const [top, height] of tops) if (last === null || top > last[0] + last[1] / 2) { lines++; last = [top, height]; }
  return {text: el.textContent.trim().replace(/\\s+/g, " "), tag: el.tagName.toLowerCase(), lines};
})"""


def wrapped_badly(page) -> list[str]:
    """Labels over two lines, and one-word labels (any Chinese label without a space) over one."""
    return [
        f"{m['tag']} “{m['text']}”: {m['lines']} lines"
        for m in page.evaluate(MEASURE, LABELS)
        if m["text"] and (m["lines"] > 2 or (m["lines"] > 1 and " " not in m["text"]))
    ]


def test_chinese_headers_buttons_and_badges_keep_their_words_whole(live_server_url, browser, studio):  # noqa: F811
    base = live_server_url
    desk = Desk.objects.get(is_default=True)
    headline = studio["headline"].pk
    pages = {  # who looks: {screenshot name: path}
        "desk": {
            "new": "/jobs/new/",
            "jobs": "/jobs/",
            "job": f"/jobs/{headline}/",
            "keys": "/keys/",
            "notices": "/notices/",
        },
        "chief": {
            "review": "/review/",
            "desks": "/desks/",
            "desk": f"/desks/{desk.slug}/",
            "desk-templates": f"/desks/{desk.slug}/templates/",
            "health": "/health/",
        },
    }
    found: list[str] = []
    for who, paths in pages.items():
        context = browser.new_context(viewport={"width": WIDTHS[0], "height": 800}, locale="en-US")
        page = context.new_page()
        log_in(page, base, who, f"pw-{who}-12345")
        page.select_option("#language", "zh-hans")  # as a user switches: the menu in the header
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 800})
            for name, path in paths.items():
                page.goto(f"{base}{path}")
                found.extend(f"{path} at {width} px: {line}" for line in wrapped_badly(page))
                shot(page, f"cjk-{who}-{width}-{name}")
        context.close()
    assert not found, "\n".join(found)
