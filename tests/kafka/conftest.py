"""Fixtures of the Kafka sink tests: a real Tansu broker (tests/servers/tansu.py), unique topics."""

from __future__ import annotations

import itertools

import pytest

from tests.servers.tansu import tansu_broker  # noqa: F401 - fixture

_names = itertools.count()


@pytest.fixture
def topic() -> str:
    """A topic no other test uses (the session's broker is shared)."""
    return f"cars-{next(_names)}"
