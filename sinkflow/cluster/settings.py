"""How a node joins a cluster: bootstrap servers, identity, security, internal topic names."""

from __future__ import annotations

import os
import re
import socket
import zlib
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from sinkflow.errors import ConfigError, InvalidInput

#: Kafka properties of the cluster connection accepted from the Kafka sink's property names.
SECURITY_PROPERTIES = ("sasl", "username", "password", "tls.disable", "tls.skip_verify_server", "tls.ca_file")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


@dataclass(frozen=True)
class ClusterSettings:
    """One node's view of its cluster.

    ``bootstrap``: Kafka bootstrap servers (``host:port,...``). ``name`` prefixes every internal
    topic and the consumer group, so several sinkflow clusters can share one Kafka cluster.
    ``secret_key``: the Fernet key (``SINKFLOW_SECRET_KEY``) every node uses to encrypt and
    decrypt sink secrets in the catalog topic. ``properties``: the connection's security
    settings, named as the Kafka sink names them. ``session_timeout_ms`` bounds how long a dead
    node keeps its sinks; ``work_partitions`` is the number of units sinks are hashed into.
    """

    bootstrap: str
    secret_key: str = field(repr=False)
    node_id: str = field(default_factory=socket.gethostname)
    name: str = "sinkflow"
    properties: dict[str, Any] = field(default_factory=dict, repr=False)
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    work_partitions: int = 32

    def __post_init__(self) -> None:
        if not self.bootstrap.strip():
            raise InvalidInput("--cluster needs Kafka bootstrap servers, e.g. 'kafka1:9092,kafka2:9092'")
        for what, value in (("--cluster-name", self.name), ("--node-id", self.node_id)):
            if not _NAME.match(value):
                raise InvalidInput(f"{what} '{value}' is invalid: use 1-100 letters, digits, '.', '_' and '-'")
        if not self.secret_key:
            raise InvalidInput("cluster mode needs SINKFLOW_SECRET_KEY (the same Fernet key on every node) to "
                               "encrypt sink secrets in Kafka; make one with: python -c \"from "
                               "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\"")
        unknown = sorted(set(self.properties) - set(SECURITY_PROPERTIES))
        if unknown:
            raise ConfigError(unknown[0], f"is not a cluster connection property (known: {', '.join(SECURITY_PROPERTIES)})")
        self.kafka_config()  # checks the security properties now, naming the one at fault

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka's connection settings, mapped exactly as the Kafka sink maps its properties.

        Raises :class:`ConfigError` naming a bad property."""
        from sinkflow.sinks.kafka import KafkaConfig, librdkafka_config

        try:
            config = KafkaConfig.model_validate({**self.properties, "brokers": self.bootstrap, "topic": self.name})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(".".join(str(p) for p in first["loc"]) or "cluster", first["msg"]) from None
        return librdkafka_config(config)

    # -- internal topics -------------------------------------------------------------------

    @property
    def catalog_topic(self) -> str:
        """Compacted: sinks (secrets encrypted), streams, checkpoints, stream-sink progress."""
        return f"{self.name}.catalog"

    @property
    def nodes_topic(self) -> str:
        """Compacted: each node's latest heartbeat."""
        return f"{self.name}.nodes"

    @property
    def work_topic(self) -> str:
        """Empty; its partitions are the units of work the consumer group hands out."""
        return f"{self.name}.work"

    @property
    def group(self) -> str:
        return f"{self.name}.workers"

    def stream_topic(self, stream: str, incarnation: str) -> str:
        """The topic of one incarnation of a stream (a stream dropped and created again gets a new one)."""
        return f"{self.name}.stream.{stream}.{incarnation}"

    def work_partition(self, sink_id: str) -> int:
        return work_partition(sink_id, self.work_partitions)


def work_partition(sink_id: str, partitions: int) -> int:
    """The unit of work (a partition of the work topic) a sink belongs to: stable for the sink's
    life, the same on every node."""
    return zlib.crc32(sink_id.encode()) % partitions


def settings_from_environment(bootstrap: str, node_id: str, name: str, properties: dict[str, Any]) -> ClusterSettings:
    """Settings for ``sinkflow server --cluster``: the secret key from ``SINKFLOW_SECRET_KEY``,
    the group's timeouts from ``SINKFLOW_CLUSTER_SESSION_TIMEOUT_MS`` /
    ``SINKFLOW_CLUSTER_HEARTBEAT_MS``, the units of work from ``SINKFLOW_CLUSTER_WORK_PARTITIONS``
    (the same on every node; only read when the cluster's work topic is created).

    Raises :class:`InvalidInput` or :class:`ConfigError` naming what is wrong."""
    numbers: dict[str, int] = {}
    for variable, key in (("SINKFLOW_CLUSTER_SESSION_TIMEOUT_MS", "session_timeout_ms"),
                          ("SINKFLOW_CLUSTER_HEARTBEAT_MS", "heartbeat_interval_ms"),
                          ("SINKFLOW_CLUSTER_WORK_PARTITIONS", "work_partitions")):
        text = os.environ.get(variable)
        if text is not None:
            if not text.strip().isdigit() or int(text) <= 0:
                raise InvalidInput(f"{variable} must be a positive whole number, got '{text}'")
            numbers[key] = int(text)
    return ClusterSettings(bootstrap=bootstrap, secret_key=os.environ.get("SINKFLOW_SECRET_KEY", ""),
                           node_id=node_id, name=name, properties=properties, **numbers)
