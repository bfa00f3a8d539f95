"""Real SMTP servers (aiosmtpd) for the e-mail sink tests: STARTTLS + AUTH, SMTPS, plain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.smtp import SmtpServer


def _serve(directory: Path, mode: str) -> Iterator[SmtpServer]:
    server = SmtpServer(directory, mode)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    """STARTTLS required, AUTH required (user ``alerts``)."""
    yield from _serve(tmp_path, "starttls")


@pytest.fixture
def smtps(tmp_path: Path) -> Iterator[SmtpServer]:
    """TLS from the first byte (SMTPS), AUTH required."""
    yield from _serve(tmp_path, "ssl")


@pytest.fixture
def smtp_plain(tmp_path: Path) -> Iterator[SmtpServer]:
    """No TLS, no AUTH."""
    yield from _serve(tmp_path, "none")
