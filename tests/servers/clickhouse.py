"""A real ClickHouse server for tests: Debian's ``clickhouse-server`` on free 127.0.0.1 ports.

The server runs with its own config (data, logs and users under a temporary directory,
time zone UTC) and one password user allowed only from 127.0.0.1. It can be stopped and
started again on the same ports in the middle of a test (the data directory survives).
A server that cannot start raises :class:`RuntimeError`: the test using it fails, never skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_driver import Client

BINARY = "clickhouse-server"
USER = "sinkflow"
PASSWORD = "ch-test-secret-7f3a"
START_TIMEOUT = 30.0
STOP_GRACE = 2.0

_CONFIG = """<yandex>
  <logger><level>warning</level><log>{dir}/log/server.log</log><errorlog>{dir}/log/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <path>{dir}/data/</path>
  <tmp_path>{dir}/tmp/</tmp_path>
  <user_files_path>{dir}/user_files/</user_files_path>
  <users_config>{dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>
"""

_USERS = """<yandex>
  <profiles><default></default></profiles>
  <users>
    <{user}>
      <password>{password}</password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </{user}>
  </users>
  <quotas><default></default></quotas>
</yandex>
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ClickHouseServer:
    """One clickhouse-server process with its own config under ``directory``."""

    host = "127.0.0.1"
    user = USER
    password = PASSWORD

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.tcp_port = free_port()
        self.http_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        for sub in ("data", "tmp", "user_files", "log"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        (directory / "users.xml").write_text(_USERS.format(user=USER, password=PASSWORD))
        self.config_file = directory / "config.xml"
        self.config_file.write_text(
            _CONFIG.format(dir=directory, http_port=self.http_port, tcp_port=self.tcp_port)
        )

    @property
    def address(self) -> str:
        """``host:port`` of the native protocol, as the sink's ``hosts`` property takes it."""
        return f"{self.host}:{self.tcp_port}"

    def dsn(self, database: str = "default", password: str | None = None) -> str:
        """A clickhouse-driver DSN for the test user."""
        return f"clickhouse://{USER}:{password or PASSWORD}@{self.address}/{database}"

    def client(self, database: str = "default") -> Client:
        """A plain clickhouse-driver client logged in as the test user."""
        return Client(host=self.host, port=self.tcp_port, user=USER, password=PASSWORD, database=database)

    def start(self) -> None:
        """Start the server and return once ``GET /ping`` answers ``Ok.``; raises RuntimeError otherwise."""
        if shutil.which(BINARY) is None:
            raise RuntimeError(f"{BINARY} is not installed (apt-get install -y clickhouse-server)")
        out = open(self.directory / "log" / "stdout.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [BINARY, f"--config-file={self.config_file}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"clickhouse-server exited with {self.process.returncode}: {self._log_tail()}")
            if self._ping():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"clickhouse-server did not answer /ping within {START_TIMEOUT}s: {self._log_tail()}")

    def stop(self) -> None:
        """Stop the server by its pid and wait until it is gone.

        SIGTERM first; ClickHouse then waits for open client connections, so after a short grace
        it is killed (its MergeTree parts are written when an INSERT returns, so none is lost).
        """
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def _ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.http_port}/ping", timeout=1) as resp:
                return bool(resp.read().strip() == b"Ok.")
        except (urllib.error.URLError, OSError):
            return False

    def _log_tail(self) -> str:
        texts = []
        for name in ("error.log", "stdout.log"):
            path = self.directory / "log" / name
            if path.exists():
                texts.append(path.read_text(errors="replace")[-2000:])
        return "\n".join(texts)


def running_server(directory: Path) -> Iterator[ClickHouseServer]:
    """Body of a fixture: a started server, stopped afterwards whatever happened."""
    server = ClickHouseServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    """One server shared by the session (tests use their own tables)."""
    yield from running_server(tmp_path_factory.mktemp("clickhouse"))


@pytest.fixture
def private_clickhouse_server(tmp_path: Path) -> Iterator[ClickHouseServer]:
    """A server of the test's own, for tests that stop and restart it."""
    yield from running_server(tmp_path / "clickhouse")
