"""A real ClickHouse server for tests: Debian's ``clickhouse-server`` on free 127.0.0.1 ports.

The server runs with its own config (data, logs and users under a temporary directory,
time zone UTC) and one password user allowed only from 127.0.0.1; it is ready when
``GET /ping`` answers ``Ok.``. It can be stopped and started again on the same ports in the
middle of a test (the data directory survives). A server that cannot start raises
:class:`RuntimeError`: the test using it fails, never skips.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_driver import Client

from tests.servers.process import ServerProcess, free_port, running

BINARY = "clickhouse-server"
USER = "sinkflow"
PASSWORD = "ch-test-secret-7f3a"

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


class ClickHouseServer(ServerProcess):
    """One clickhouse-server process with its own config under ``directory``."""

    name = "clickhouse-server"
    #: ClickHouse waits for open client connections on SIGTERM; its MergeTree parts are written
    #: when an INSERT returns, so killing it after a short grace loses nothing.
    stop_grace = 2.0
    user = USER
    password = PASSWORD

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "log/stdout.log")
        self.tcp_port = free_port()
        self.http_port = free_port()
        self._clients: list[Client] = []
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
        """A plain clickhouse-driver client logged in as the test user; disconnected by :meth:`stop`."""
        client = Client(host=self.host, port=self.tcp_port, user=USER, password=PASSWORD, database=database)
        self._clients.append(client)
        return client

    def stop(self) -> None:
        """Disconnect the clients :meth:`client` made (ClickHouse waits for open connections on
        SIGTERM), then stop the server."""
        clients, self._clients = self._clients, []
        for client in clients:
            client.disconnect()
        super().stop()

    def command(self) -> list[str]:
        if shutil.which(BINARY) is None:
            raise RuntimeError(f"{BINARY} is not installed (apt-get install -y clickhouse-server)")
        return [BINARY, f"--config-file={self.config_file}"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.http_port}/ping", timeout=1) as resp:
                return bool(resp.read().strip() == b"Ok.")
        except (urllib.error.URLError, OSError):
            return False

    def log_files(self) -> list[Path]:
        return [self.directory / "log" / "error.log", self.log_path]


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    """One server shared by the session (tests use their own tables)."""
    with running(ClickHouseServer(tmp_path_factory.mktemp("clickhouse"))) as server:
        yield server


@pytest.fixture
def private_clickhouse_server(tmp_path: Path) -> Iterator[ClickHouseServer]:
    """A server of the test's own, for tests that stop and restart it."""
    with running(ClickHouseServer(tmp_path / "clickhouse")) as server:
        yield server
