"""A real Pulsar-protocol broker for tests: pulsar-lite on a free 127.0.0.1 port.

Its metrics HTTP endpoint is turned off (it would otherwise bind 0.0.0.0:8080) and its data
lives under a temporary directory. A broker that cannot start raises :class:`RuntimeError`:
the test using it fails, never skips.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pulsar
import pytest
from pulsar_lite.binary_finder import find_pulsar_lite_binary

from tests.servers.clickhouse import free_port

START_TIMEOUT = 20.0


class PulsarServer:
    """One pulsar-lite process with its config and database under ``directory``."""

    host = "127.0.0.1"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.config_file = directory / "pulsar-lite.toml"
        self.config_file.write_text("[metrics]\nenabled = false\n")

    @property
    def url(self) -> str:
        """The ``broker_url`` a client connects to."""
        return f"pulsar://{self.host}:{self.port}"

    def start(self) -> None:
        """Start the broker and return once its port accepts connections; raises RuntimeError otherwise."""
        log = open(self.directory / "broker.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [
                find_pulsar_lite_binary(),
                "--config", str(self.config_file),
                "--addr", f"{self.host}:{self.port}",
                "--db-path", str(self.directory / "broker.db"),
                "--log-level", "warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pulsar-lite exited with {self.process.returncode}: {self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pulsar-lite did not listen within {START_TIMEOUT}s: {self._log_tail()}")

    def stop(self) -> None:
        """Stop the broker by its pid (SIGTERM, then SIGKILL after 10 s)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def _log_tail(self) -> str:
        path = self.directory / "broker.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def consume(server: PulsarServer, topic: str, expected: int) -> list[pulsar.Message]:
    """Every message of ``topic`` from the start, each once (pulsar-lite may redeliver: dedupe by id)."""
    client = pulsar.Client(server.url, logger=None)
    try:
        consumer = client.subscribe(
            topic, "check", initial_position=pulsar.InitialPosition.Earliest, consumer_type=pulsar.ConsumerType.Exclusive
        )
        seen: dict[str, pulsar.Message] = {}
        while len(seen) < expected:
            try:
                message = consumer.receive(timeout_millis=5000)
            except pulsar.Timeout:
                break
            seen.setdefault(str(message.message_id()), message)
            consumer.acknowledge(message)
        while True:  # anything beyond the expected count is a duplicate or an extra row: fail on it
            try:
                message = consumer.receive(timeout_millis=300)
            except pulsar.Timeout:
                break
            seen.setdefault(str(message.message_id()), message)
            consumer.acknowledge(message)
        return list(seen.values())
    finally:
        client.close()


@pytest.fixture(scope="session")
def pulsar_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulsarServer]:
    """One broker shared by the session (tests use their own topics)."""
    server = PulsarServer(tmp_path_factory.mktemp("pulsar"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_pulsar_server(tmp_path: Path) -> Iterator[PulsarServer]:
    """A broker of the test's own, for tests that stop and restart it (same port, same data)."""
    server = PulsarServer(tmp_path / "pulsar")
    server.start()
    try:
        yield server
    finally:
        server.stop()
