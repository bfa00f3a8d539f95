"""Timeplus's own clients (PyPI ``timeplus``, ``timeplus-connect``) against a real sinkflow server subprocess."""

from __future__ import annotations

import pytest
from timeplus import Environment

from tests.servers.sinkflow import SinkflowServer, server  # noqa: F401 - fixture
from tests.sinks_http.conftest import receiver, receiver_server  # noqa: F401 - fixtures


@pytest.fixture
def env(server: SinkflowServer) -> Environment:  # noqa: F811 - the fixture
    """The SDK's environment pointed at the server (the SDK insists on a 60-character key; a
    loopback server without a key of its own does not check it)."""
    return Environment().address(server.url).apikey("k" * 60)
