"""The sinkflow server itself as a subprocess on a free 127.0.0.1 port, for tests that must
see it the way users do: over HTTP, across restarts, and across a ``kill -9``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.servers.clickhouse import free_port

START_TIMEOUT = 30.0


class SinkflowServer:
    """``sinkflow server`` with its own data dir. ``start`` returns once the API answers."""

    def __init__(self, data_dir: Path, *, demo: bool = False, api_key: str | None = None,
                 port: int | None = None) -> None:
        self.data_dir = data_dir
        self.demo = demo
        self.api_key = api_key
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        headers = {"X-Api-Key": self.api_key} if self.api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def start(self) -> None:
        """Start the server; RuntimeError (with its log) when it does not answer in time."""
        args = [sys.executable, "-m", "sinkflow.cli", "server", "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--log-level", "warning"]
        if not self.demo:
            args.append("--no-demo")
        env = dict(os.environ)
        if self.api_key:
            env["SINKFLOW_API_KEY"] = self.api_key
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/api/v1beta2/info", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sinkflow server did not start:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no last checkpoint."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), killing the server if it does not stop in time."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None
