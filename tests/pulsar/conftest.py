"""Fixtures of the Pulsar sink tests: a real pulsar-lite broker (see tests/servers/pulsar.py)."""

from __future__ import annotations

import itertools

import pytest

from tests.servers.pulsar import private_pulsar_server, pulsar_server  # noqa: F401 - fixtures

_names = itertools.count()


@pytest.fixture
def topic() -> str:
    """A topic no other test uses (the session's broker is shared)."""
    return f"persistent://public/default/cars-{next(_names)}"
