"""Fixtures: a sink runtime over real streams, engine and catalog in a temporary data dir, and a
real HTTP receiver that records what it is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.runtime.support import Runtime, open_runtime
from tests.servers.http import RecordingEndpoint


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with open_runtime(tmp_path / "data") as rt:
        yield rt


@pytest.fixture
def receiver(httpserver: HTTPServer) -> RecordingEndpoint:
    """Records every request to its ``url``; answers 200 unless the test sets ``answer``."""
    endpoint = RecordingEndpoint()
    endpoint.mount(httpserver, "/hook")
    return endpoint
