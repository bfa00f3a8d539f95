"""Fixtures of the console tests: the real sinkflow server (demo data on), Debian's Chromium
driven by Playwright (tests/servers/chromium.py), and a real HTTP receiver for the sinks the
page creates.

Nothing here skips: without Chromium or a server that starts, the tests fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.servers.chromium import browser, page, playwright  # noqa: F401 - fixtures
from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer

#: Where the screenshots go (ignored by git); the README's copy is docs/console.png.
OUTPUT_DIR = Path(__file__).resolve().parents[2] / "test-output" / "console"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SinkflowServer]:
    """``sinkflow server`` with the demo streams being fed, on a free loopback port."""
    with running(SinkflowServer(tmp_path_factory.mktemp("console") / "data", demo=True)) as srv:
        yield srv


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
