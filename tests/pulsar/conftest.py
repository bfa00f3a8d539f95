"""Fixtures of the Pulsar sink tests: a real pulsar-lite broker (see tests/servers/pulsar.py)."""

from __future__ import annotations

import itertools

import pytest

from tests.clickhouse.car_results import car_runtime  # noqa: F401 - fixture
from tests.servers.pulsar import pulsar_server  # noqa: F401 - fixture

_names = itertools.count()


@pytest.fixture
def topic() -> str:
    """A topic no other test uses (the session's broker is shared)."""
    return f"persistent://public/default/cars-{next(_names)}"
