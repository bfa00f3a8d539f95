"""Timeplus's own Python SDK (PyPI ``timeplus``) against a real sinkflow server subprocess."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from timeplus import Environment

from tests.servers.sinkflow import SinkflowServer, server  # noqa: F401 - fixture


@pytest.fixture
def env(server: SinkflowServer) -> Environment:  # noqa: F811 - the fixture
    """The SDK's environment pointed at the server (the SDK insists on a 60-character key; a
    loopback server without a key of its own does not check it)."""
    return Environment().address(server.url).apikey("k" * 60)


@pytest.fixture
def receiver() -> Iterator[HTTPServer]:
    """A real HTTP server on 127.0.0.1 for the sinks' requests."""
    http = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    http.start()
    yield http
    http.clear()
    http.stop()
