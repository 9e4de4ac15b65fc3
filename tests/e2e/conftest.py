"""Fixtures of the browser tests: headless Chromium against pytest-django's live server.

- ``browser`` (session): the system Chromium (``CHROMIUM``, default
  ``/usr/bin/chromium``), never a downloaded one. Without it the tests are
  skipped, except under CI (``CI`` set), where they fail.
- ``page``: a fresh browser context and page per test, with the live server as
  its base URL; a JavaScript error on any page fails the test.
- ``login(page, role)``: logs in through the real login form as the named user
  of ``tests/conftest.py``'s ``users`` fixture.
- ``shot(page, name)``: a full-page screenshot in ``/tmp/e2e_shots`` when
  ``E2E_SCREENSHOTS`` is set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error, sync_playwright

# Playwright's sync API runs an asyncio event loop in the test thread, and
# Django refuses database access from a thread with a running loop
# (SynchronousOnlyOperation). The tests and the live server are plain sync
# code, so the check is switched off: the usual pytest-django + Playwright
# recipe, and the escape hatch Django documents for such environments. It is
# set at import because the session-scoped browser keeps the loop alive for
# every test that runs after the first e2e test.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from tests.accounts.factories import PASSWORD  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS_DIR = Path("/tmp/e2e_shots")


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where a skip would hide the suite."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


def _chromium_path() -> str:
    configured = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    found = shutil.which(configured)
    if not found:
        _unavailable(f"no Chromium at {configured!r} (install Debian's chromium or set CHROMIUM)")
    return str(found)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = _chromium_path()
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        except Error as exc:
            _unavailable(f"Chromium at {executable} does not start: {str(exc).splitlines()[0]}")
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the pages: {errors}"


@pytest.fixture
def role_groups(transactional_db: None) -> None:
    """The role groups come from a data migration, which the flush after each
    transactional test (live_server implies one) wipes out: make them again."""
    from django.contrib.auth.models import Group

    from common.roles import ROLES

    for role in ROLES:
        Group.objects.get_or_create(name=role)


@pytest.fixture
def users(role_groups: None, users: dict[str, Any]) -> dict[str, Any]:
    """tests/conftest.py's users, on a database that has its role groups."""
    return users


@pytest.fixture
def login(users: dict[str, Any]) -> Callable[[Any, str], Any]:
    """Log in through the login form as the user of ``role``; returns the user."""

    def log_in(page: Any, role: str) -> Any:
        user = users[role]
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(user.get_username())
        page.get_by_label("Password").fill(PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Log in").click()
        assert page.url.endswith("/"), f"login as {user} ended on {page.url}"
        return user

    return log_in


@pytest.fixture
def shot() -> Callable[[Any, str], None]:
    """Save a full-page screenshot as /tmp/e2e_shots/<name>.png when E2E_SCREENSHOTS is set."""

    def take(page: Any, name: str) -> None:
        if not os.environ.get("E2E_SCREENSHOTS"):
            return
        SHOTS_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS_DIR / f"{name}.png"), full_page=True)

    return take
