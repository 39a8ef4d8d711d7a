"""Browser tests: Playwright drives Debian's headless Chromium (`make test` installs it; Playwright downloads no
browsers) against a real uvicorn web process and a real Celery worker, both on the pytest test database.
Every test here runs with `django_db(transaction=True, serialized_rollback=True)` (see
pytest_collection_modifyitems)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

# Playwright's sync API runs an asyncio event loop in the main thread, so Django would refuse the tests' ORM
# calls (SynchronousOnlyOperation) although nothing in the test process is async. The servers keep the check
# (see tests/support/live.py: server_env).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


def pytest_collection_modifyitems(items):
    """transaction=True: the servers see only committed rows. serialized_rollback=True: what the migrations seed
    (templates, groups) comes back after each test's flush; and a flush without it re-creates content types,
    which a later serialized test (tests/integration) then fails to restore over (IntegrityError)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.django_db(transaction=True, serialized_rollback=True), append=False)


def shot(page, name: str) -> Path:
    """A full-page PNG under var/screenshots/, to look at what the browser saw."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(autouse=True)
def _fast_password_hashing():
    """Replaces tests/conftest.py's: users made here log in through the web process, which knows only the
    production password hashers."""


@pytest.fixture
def browser():
    """Headless Chromium, Debian's, with what a sandboxed CI container lacks turned off. One per test, not per
    session: while Playwright runs, the main thread counts as async, so Django keeps its connections per context
    instead of per thread. Then pytest-django's database setup and flush, and tests after these, would use a
    connection without the serialized test data (serialized_rollback restores nothing)."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (or `make test`).")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        connections.close_all()  # the ones the test opened in Playwright's context; PostgreSQL drops no busy database


@pytest.fixture
def page(browser):
    """A fresh context (cookies, storage) per test; English, as the tests read the English interface."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    yield context.new_page()
    context.close()
