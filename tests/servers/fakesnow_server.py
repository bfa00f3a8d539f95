"""A Snowflake stand-in speaking the connector's wire protocol: fakesnow's server mode on 127.0.0.1.

``fakesnow -s --host 127.0.0.1 -p PORT`` serves the Snowflake REST protocol over plain HTTP
(connect with ``host``/``port`` and ``protocol="http"``), with in-memory databases. A server
that cannot start raises :class:`RuntimeError`: the test using it fails, never skips.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.process import ServerProcess, free_port, port_accepts, running


class FakesnowServer(ServerProcess):
    """One ``fakesnow -s`` process listening on ``port``."""

    name = "fakesnow"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "fakesnow.log")
        self.port = free_port()

    def command(self) -> list[str]:
        # The venv's own script first: the test process's interpreter has fakesnow installed.
        binary = shutil.which("fakesnow", path=str(Path(sys.executable).parent)) or shutil.which("fakesnow")
        if binary is None:
            raise RuntimeError("fakesnow is not installed (pip install fakesnow==0.12.1)")
        return [binary, "-s", "--host", self.host, "-p", str(self.port)]

    def ready(self) -> bool:
        return port_accepts(self.port)


@pytest.fixture(scope="session")
def fakesnow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakesnowServer]:
    """One server shared by the session (tests use their own databases)."""
    with running(FakesnowServer(tmp_path_factory.mktemp("fakesnow"))) as server:
        yield server
