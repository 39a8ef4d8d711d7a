"""Smoke test of the browser setup: a real Chromium logs in to the real web process and gets styled pages."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_user_logs_in_and_sees_the_studio_navigation(live_server_url, page, django_user_model):
    django_user_model.objects.create_user(username="reviewer", password="pw-reviewer-123")

    page.goto(f"{live_server_url}/accounts/login/")
    page.fill("#id_username", "reviewer")
    page.fill("#id_password", "pw-reviewer-123")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("link", name="My jobs")).to_be_visible()
    expect(page.get_by_role("button", name="Log out (reviewer)")).to_be_visible()
    # studio.css loaded: the top bar is a flex row (a <header> is display: block by default).
    assert page.locator(".topbar").evaluate("e => getComputedStyle(e).display") == "flex"
    shot(page, "login")
