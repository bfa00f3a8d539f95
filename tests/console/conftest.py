"""Fixtures of the console tests: the real sinkflow server (demo data on), Debian's Chromium
driven by Playwright, and a real HTTP receiver for the sinks the page creates.

Nothing here skips: without Chromium or a server that starts, the tests fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright
from pytest_httpserver import HTTPServer

from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Where the screenshots go (ignored by git); the README's copy is docs/console.png.
OUTPUT_DIR = Path(__file__).resolve().parents[2] / "test-output" / "console"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SinkflowServer]:
    """``sinkflow server`` with the demo streams being fed, on a free loopback port."""
    with running(SinkflowServer(tmp_path_factory.mktemp("console") / "data", demo=True)) as srv:
        yield srv


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Debian Chromium (never a downloaded browser)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (1440×900). A script error in the page fails the test that caused it."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))

    def on_console(message: ConsoleMessage) -> None:
        # Failed HTTP answers (a 400 the test provoked) are reported as console errors too; only
        # the page's own script errors count.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(f"console: {message.text}")

    page.on("console", on_console)
    yield page
    context.close()
    assert not errors, f"the page reported errors: {errors}"


@pytest.fixture
def receiver() -> Iterator[HTTPServer]:
    """A real HTTP server on 127.0.0.1 standing in for the webhook / Slack endpoints."""
    srv = HTTPServer(host="127.0.0.1", port=0)
    srv.start()
    yield srv
    srv.clear()
    if srv.is_running():
        srv.stop()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR
