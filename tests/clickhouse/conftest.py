"""Fixtures of the ClickHouse sink tests: a real clickhouse-server (see tests/servers/clickhouse.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from tests.clickhouse.car_pipeline import car_runtime  # noqa: F401 - fixture
from tests.servers.clickhouse import clickhouse_server, private_clickhouse_server  # noqa: F401 - fixtures

_names = itertools.count()


@pytest.fixture
def table_name() -> str:
    """A table name no other test uses (the session's server is shared)."""
    return f"cars_{next(_names)}"


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Names unique within the session, for tests needing several tables."""
    return lambda prefix: f"{prefix}_{next(_names)}"
