"""A real Pulsar-protocol broker for tests: pulsar-lite on a free 127.0.0.1 port.

Its metrics HTTP endpoint is turned off (it would otherwise bind 0.0.0.0:8080) and its data
lives under a temporary directory, so it survives a stop and start on the same port. It is
ready when its port accepts connections. A broker that cannot start raises
:class:`RuntimeError`: the test using it fails, never skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pulsar
import pytest
from pulsar_lite.binary_finder import find_pulsar_lite_binary

from tests.servers.process import ServerProcess, free_port, port_accepts, running


class PulsarServer(ServerProcess):
    """One pulsar-lite process with its config and database under ``directory``."""

    name = "pulsar-lite"
    start_timeout = 20.0

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "broker.log")
        self.port = free_port()
        self.config_file = directory / "pulsar-lite.toml"
        self.config_file.write_text("[metrics]\nenabled = false\n")

    @property
    def url(self) -> str:
        """The ``broker_url`` a client connects to."""
        return f"pulsar://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            find_pulsar_lite_binary(),
            "--config", str(self.config_file),
            "--addr", f"{self.host}:{self.port}",
            "--db-path", str(self.directory / "broker.db"),
            "--log-level", "warn",
        ]  # fmt: skip

    def ready(self) -> bool:
        return port_accepts(self.port)


def consume(server: PulsarServer, topic: str, expected: int) -> list[pulsar.Message]:
    """Every message of ``topic`` from the start, each once (pulsar-lite may redeliver: dedupe by id)."""
    client = pulsar.Client(server.url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
    try:
        consumer = client.subscribe(
            topic, "check", initial_position=pulsar.InitialPosition.Earliest, consumer_type=pulsar.ConsumerType.Exclusive
        )
        seen: dict[str, pulsar.Message] = {}
        while True:
            # Up to the expected count, wait for each message; then drain briefly: a redelivered
            # message id is dropped, an extra row stays for the caller to see.
            try:
                message = consumer.receive(timeout_millis=5000 if len(seen) < expected else 300)
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
    with running(PulsarServer(tmp_path_factory.mktemp("pulsar"))) as server:
        yield server


@pytest.fixture
def private_pulsar_server(tmp_path: Path) -> Iterator[PulsarServer]:
    """A broker of the test's own, for tests that stop and restart it (same port, same data)."""
    with running(PulsarServer(tmp_path / "pulsar")) as server:
        yield server
