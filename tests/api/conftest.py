"""A real sinkflow server subprocess (no demo data) shared by the API tests of a module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers.sinkflow import SinkflowServer, server  # noqa: F401 - fixture


@pytest.fixture
def api(server: SinkflowServer) -> Iterator[httpx.Client]:  # noqa: F811 - the fixture
    with server.client() as client:
        yield client


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
