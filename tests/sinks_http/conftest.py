"""A real HTTP server (pytest-httpserver, threaded, on 127.0.0.1) receiving the sinks' requests."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pytest_httpserver import HTTPServer


@contextmanager
def serving(ssl_context: ssl.SSLContext | None = None) -> Iterator[HTTPServer]:
    """A started server on 127.0.0.1 (HTTPS with ``ssl_context``), stopped after the block."""
    # Threaded, so requests sent concurrently (paralism N) are served concurrently.
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True, ssl_context=ssl_context)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[HTTPServer]:
    with serving() as server:
        yield server


@pytest.fixture
def receiver(receiver_server: HTTPServer) -> Iterator[HTTPServer]:
    """The server with no handlers and an empty log; fails the test on a request nobody expected."""
    receiver_server.clear()
    yield receiver_server
    receiver_server.check_assertions()
