"""Starting a node with bad cluster settings fails with a message naming the problem."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from sinkflow.cli import main
from sinkflow.cluster.catalog import secret_box
from sinkflow.cluster.settings import ClusterSettings, work_partition
from sinkflow.errors import ConfigError, InvalidInput

KEY = Fernet.generate_key().decode()


def test_cluster_mode_refuses_to_start_without_a_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SINKFLOW_SECRET_KEY", raising=False)
    result = CliRunner().invoke(main, ["server", "--cluster", "127.0.0.1:9092", "--no-demo"])
    assert result.exit_code != 0
    assert "SINKFLOW_SECRET_KEY" in result.output


def test_the_connection_takes_the_kafka_sinks_property_names() -> None:
    settings = ClusterSettings("k1:9093,k2:9093", KEY, "a", properties={
        "sasl": "scram-sha-512", "username": "svc", "password": "pw", "tls.skip_verify_server": True})
    conf = settings.kafka_config()
    assert conf["bootstrap.servers"] == "k1:9093,k2:9093"
    assert (conf["security.protocol"], conf["sasl.mechanism"], conf["sasl.username"]) == ("SASL_SSL", "SCRAM-SHA-512", "svc")
    assert conf["enable.ssl.certificate.verification"] is False
    plain = ClusterSettings("k1:9092", KEY, "a", properties={"tls.disable": True}).kafka_config()
    assert plain["security.protocol"] == "PLAINTEXT"


@pytest.mark.parametrize(("properties", "named"), [
    ({"sasl": "plain"}, "username"),
    ({"sasl": "kerberos"}, "sasl"),
    ({"linger.ms": 5}, "linger.ms"),
])
def test_a_bad_connection_property_is_named(properties: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as error:
        ClusterSettings("k1:9092", KEY, "a", properties=properties)
    assert error.value.prop == named


def test_a_bad_node_id_or_key_is_refused() -> None:
    with pytest.raises(InvalidInput, match="--node-id 'a b'"):
        ClusterSettings("k1:9092", KEY, "a b")
    with pytest.raises(InvalidInput, match="not a Fernet key"):
        secret_box("not-a-key")


def test_a_sink_keeps_its_unit_of_work() -> None:
    ids = [f"sink-{i}" for i in range(200)]
    units = [work_partition(i, 8) for i in ids]
    assert units == [work_partition(i, 8) for i in ids]
    assert set(units) == set(range(8))
