"""Fixtures of the SQL pipeline tests: one sinkflow server per module and the real destinations."""

from __future__ import annotations

from tests.servers.clickhouse import clickhouse_server  # noqa: F401 - fixture
from tests.servers.pulsar import pulsar_server  # noqa: F401 - fixture
from tests.servers.sinkflow import server  # noqa: F401 - fixture
from tests.servers.tansu import tansu_broker  # noqa: F401 - fixture
