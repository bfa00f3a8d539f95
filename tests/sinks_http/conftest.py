"""A real HTTP server (pytest-httpserver, threaded, on 127.0.0.1) receiving the sinks' requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[HTTPServer]:
    # Threaded, so requests sent concurrently (paralism N) are served concurrently.
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def receiver(receiver_server: HTTPServer) -> Iterator[HTTPServer]:
    """The server with no handlers and an empty log; fails the test on a request nobody expected."""
    receiver_server.clear()
    yield receiver_server
    receiver_server.check_assertions()
