"""Fixtures: real servers (a webhook receiver, Tansu, ClickHouse) each behind a ChaosProxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.runtime.support import Runtime, open_runtime
from tests.servers.clickhouse import clickhouse_server  # noqa: F401 - fixture
from tests.servers.process import free_port, running
from tests.servers.tansu import TansuBroker


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with open_runtime(tmp_path / "data") as rt:
        yield rt


@pytest.fixture
def proxied_broker(tmp_path: Path) -> Iterator[tuple[TansuBroker, int]]:
    """A Tansu broker that advertises a port nobody listens on yet: the test's proxy takes it,
    so every client connection (metadata says where the broker is) goes through the proxy."""
    proxy_port = free_port()
    with running(TansuBroker(tmp_path / "tansu", advertised_port=proxy_port)) as broker:
        yield broker, proxy_port
