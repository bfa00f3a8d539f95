"""Fixtures of the Snowflake tests: fakesnow in-process (patched connector) and as a server,
and the Tansu broker for the Kafka route."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakesnow
import pytest
import snowflake.connector

from tests.servers.fakesnow_server import fakesnow_server  # noqa: F401 - fixture
from tests.servers.tansu import tansu_broker  # noqa: F401 - fixture

DATABASE, SCHEMA_NAME = "ANALYTICS", "STREAMING"


@pytest.fixture
def patched_snowflake() -> Iterator[Any]:
    """fakesnow patched into the connector (fresh in-memory databases); yields a connection
    with the test database and schema created, as a Snowflake admin would have prepared them."""
    with fakesnow.patch():
        connection = snowflake.connector.connect(account="test", user="tester", password="ignored")
        connection.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        connection.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{SCHEMA_NAME}")
        yield connection
        connection.close()
