"""Real SMTP servers (aiosmtpd) for the e-mail sink tests: STARTTLS + AUTH, SMTPS, plain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.process import running
from tests.servers.smtp import SmtpServer


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    """STARTTLS required, AUTH required (user ``alerts``)."""
    with running(SmtpServer(tmp_path, "starttls")) as server:
        yield server


@pytest.fixture
def smtps(tmp_path: Path) -> Iterator[SmtpServer]:
    """TLS from the first byte (SMTPS), AUTH required."""
    with running(SmtpServer(tmp_path, "ssl")) as server:
        yield server


@pytest.fixture
def smtp_plain(tmp_path: Path) -> Iterator[SmtpServer]:
    """No TLS, no AUTH."""
    with running(SmtpServer(tmp_path, "none")) as server:
        yield server
