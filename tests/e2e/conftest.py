"""Browser tests: headless Chromium from Debian (/usr/bin/chromium) driven by Playwright's sync API
against pytest-django's live server. They skip, saying why, only when Chromium is not installed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu"]


def local_only(route: Any) -> None:
    """A Playwright route handler: nothing may come from outside the test server (no CDN, no tiles)."""
    if route.request.url.startswith(("http://localhost", "http://127.0.0.1", "data:")):
        route.continue_()
    else:
        route.abort()


def open_page(chromium: Any, **options: Any) -> Any:
    """A page in a new browser context (zh-CN; `options` as `new_context` takes them) that reaches only
    the test server, 15 s default timeout. Close it with `page.context.close()`."""
    context = chromium.new_context(locale="zh-CN", **options)
    context.route("**/*", local_only)
    page = context.new_page()
    page.set_default_timeout(15000)
    return page


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium not found at /usr/bin/chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run under a
    # running loop unless told that this test process knows what it is doing. Only while a browser runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    page = open_page(chromium, viewport={"width": 1280, "height": 800})
    yield page
    page.context.close()
