"""The sinkflow server itself as a subprocess on a free 127.0.0.1 port, for tests that must
see it the way users do: over HTTP, across restarts, and across a ``kill -9``.

A server that cannot start raises :class:`RuntimeError` with its log: the test fails, never skips.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers.process import ServerProcess, free_port, running


class SinkflowServer(ServerProcess):
    """``sinkflow server`` with its own data dir; :meth:`start` returns once the API answers.

    Its log is ``<data_dir>-server.log`` next to the data dir (:attr:`log_path`).
    """

    name = "sinkflow server"
    # A clean shutdown takes a last checkpoint of every sink.
    stop_grace = 15.0

    def __init__(self, data_dir: Path, *, demo: bool = False, api_key: str | None = None,
                 port: int | None = None, args: tuple[str, ...] = ()) -> None:
        super().__init__(data_dir.parent, f"{data_dir.name}-server.log")
        self.data_dir = data_dir
        self.demo = demo
        self.api_key = api_key
        self.port = port or free_port()
        #: More ``sinkflow server`` options (``--query-timeout``, ...).
        self.args = args

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self) -> httpx.Client:
        """An HTTP client for the API, carrying the API key when the server has one."""
        headers = {"X-Api-Key": self.api_key} if self.api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "sinkflow.cli", "server", "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--log-level", "warning",
                *([] if self.demo else ["--no-demo"]), *self.args]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.api_key:
            env["SINKFLOW_API_KEY"] = self.api_key
        return env

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/v1beta2/info", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SinkflowServer]:
    """One server (no demo data) shared by the tests of a module (they use their own names)."""
    with running(SinkflowServer(tmp_path_factory.mktemp("sinkflow") / "data")) as srv:
        yield srv
