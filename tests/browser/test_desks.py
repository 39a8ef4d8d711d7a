"""A desk admin in a real browser, against the real web process and worker: add a member, set a budget, watch
it fill as the member's job runs, tighten it, and the member sees the refusal naming the budget."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from generation.models import DeskRole, Job, JobStatus, Membership
from tests.browser.conftest import shot
from tests.browser.test_studio import log_in
from tests.support.desks import desk, join

pytestmark = pytest.mark.browser

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River. Work starts next spring."


def test_a_desk_admin_adds_a_member_sets_a_budget_and_the_member_meets_it(live_server_url, browser, django_user_model):
    sport = desk("sport")
    boss = django_user_model.objects.create_user(username="boss", password="pw-boss-12345")
    join(boss, sport, DeskRole.ADMIN)
    ana = django_user_model.objects.create_user(username="ana", password="pw-ana-12345")
    Membership.objects.filter(user=ana).delete()  # on no desk until the desk admin adds her

    admin_page = browser.new_context(locale="en-US").new_page()
    log_in(admin_page, live_server_url, "boss", "pw-boss-12345")
    admin_page.get_by_role("link", name="Desks").click()
    admin_page.get_by_role("link", name="Sport").click()
    admin_page.fill("#id_username", "ana")
    admin_page.select_option("#id_role", "editor")
    admin_page.get_by_role("button", name="Add", exact=True).click()
    expect(admin_page.locator(".messages")).to_contain_text("ana joined Sport as Editor")
    admin_page.fill("#id_tokens_per_day", "1000000")
    admin_page.get_by_role("button", name="Save budgets").click()
    expect(admin_page.locator("table.budgets")).to_contain_text("desk:sport daily")

    member_page = browser.new_context(locale="en-US").new_page()
    log_in(member_page, live_server_url, "ana", "pw-ana-12345")
    member_page.goto(f"{live_server_url}/jobs/new/headline/")
    member_page.fill("#id_in_text", STORY)
    member_page.get_by_role("button", name="Generate").click()
    member_page.wait_for_url("**/jobs/*/")
    expect(member_page.locator("#job-status")).to_have_text("Succeeded", timeout=180_000)
    first = Job.objects.get(owner=ana)
    assert first.desk == sport and first.status == JobStatus.SUCCEEDED
    used = first.prompt_tokens + first.completion_tokens

    # It filled: the budget's row and the chart show what the job used.
    admin_page.reload()
    expect(admin_page.locator("table.budgets")).to_contain_text(str(used))
    expect(admin_page.locator("#usage-chart rect.bar").last).to_have_attribute("height", re.compile(r"^[1-9]"))
    expect(admin_page.locator("table.jobs").last).to_contain_text("ana")
    shot(admin_page, "desk-usage")
    # Tightened to less than what one more such job may use.
    admin_page.fill("#id_tokens_per_day", str(used + first.reserved_tokens - 1))
    admin_page.get_by_role("button", name="Save budgets").click()
    expect(admin_page.locator(".messages")).to_contain_text("Saved the budgets of Sport")

    member_page.goto(f"{live_server_url}/jobs/new/headline/")
    member_page.fill("#id_in_text", STORY)
    member_page.get_by_role("button", name="Generate").click()
    expect(member_page.get_by_role("alert")).to_contain_text("Token budget desk:sport daily reached")
    shot(member_page, "desk-budget-refused")
    assert Job.objects.filter(owner=ana).count() == 1
