"""A Snowflake stand-in speaking the connector's wire protocol: fakesnow's server mode on 127.0.0.1.

``fakesnow -s --host 127.0.0.1 -p PORT`` serves the Snowflake REST protocol over plain HTTP
(connect with ``host``/``port`` and ``protocol="http"``), with in-memory databases. A server
that cannot start raises :class:`RuntimeError`: the test using it fails, never skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.clickhouse import free_port

START_TIMEOUT = 30.0


class FakesnowServer:
    """One ``fakesnow -s`` process listening on ``port``."""

    host = "127.0.0.1"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and return once its port accepts connections; RuntimeError otherwise."""
        binary = shutil.which("fakesnow", path=str(Path(sys.executable).parent)) or shutil.which("fakesnow")
        if binary is None:
            raise RuntimeError("fakesnow is not installed (pip install fakesnow==0.12.1)")
        log = open(self.directory / "fakesnow.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [binary, "-s", "--host", self.host, "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fakesnow exited with {self.process.returncode}: {self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"fakesnow did not listen within {START_TIMEOUT}s: {self._log_tail()}")

    def stop(self) -> None:
        """Stop the server by its pid (SIGTERM, then SIGKILL after 5 s)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def _log_tail(self) -> str:
        path = self.directory / "fakesnow.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@pytest.fixture(scope="session")
def fakesnow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakesnowServer]:
    server = FakesnowServer(tmp_path_factory.mktemp("fakesnow"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
