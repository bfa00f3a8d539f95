"""Fixtures: real servers (a webhook receiver, Tansu, ClickHouse) each behind a ChaosProxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.runtime.support import Runtime, open_runtime
from tests.servers.clickhouse import clickhouse_server  # noqa: F401 - fixture
from tests.servers.tansu import proxied_broker  # noqa: F401 - fixture


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with open_runtime(tmp_path / "data") as rt:
        yield rt

