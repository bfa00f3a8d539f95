"""Fixtures of the ClickHouse sink tests: a real clickhouse-server (see tests/servers/clickhouse.py)."""

from __future__ import annotations

import itertools

import pytest

from tests.servers.clickhouse import clickhouse_server, private_clickhouse_server  # noqa: F401 - fixtures

_names = itertools.count()


@pytest.fixture
def table_name() -> str:
    """A table name no other test uses (the session's server is shared)."""
    return f"cars_{next(_names)}"

