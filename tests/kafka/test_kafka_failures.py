"""The Kafka sink when things go wrong: TLS verification, a broker that goes away and comes back,
and secrets that must not leak into errors or logs."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from sinkflow.sinks import kafka as kafka_sink
from sinkflow.sinks import rdkafka
from sinkflow.sinks.base import PermanentError, RetryableError, WriteContext
from tests.clickhouse.car_results import car_batch
from tests.kafka.committed import committed_values
from tests.kafka.kafka_support import consume, deliver, make_sink
from tests.servers.certificates import Certificate, self_signed_certificate
from tests.servers.process import free_port, running
from tests.servers.stunnel import Stunnel
from tests.servers.tansu import TansuBroker


class TlsBroker:
    """A Tansu broker reachable only through stunnel (TLS, self-signed certificate for 127.0.0.1)."""

    def __init__(self, directory: Path) -> None:
        self.certificate: Certificate = self_signed_certificate(directory / "cert")
        self.tls_port = free_port()
        self.broker = TansuBroker(directory / "broker", advertised_port=self.tls_port)
        self.tunnel = Stunnel(directory / "stunnel", self.certificate, self.broker.port, self.tls_port)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.tls_port}"


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    tls = TlsBroker(tmp_path_factory.mktemp("kafka-tls"))
    with running(tls.broker), running(tls.tunnel):
        yield tls


async def test_tls_with_verification_and_no_ca_fails_clearly_at_open(tls_broker: TlsBroker, topic: str) -> None:
    sink = make_sink({"brokers": tls_broker.bootstrap, "topic": topic})  # TLS on, verification on, public CAs
    with pytest.raises(PermanentError) as failure:
        await sink.open()
    await sink.close()
    assert "certificate verify failed" in failure.value.message
    assert tls_broker.bootstrap in failure.value.message


@pytest.mark.parametrize("how", ["skip_verify", "ca_file"])
async def test_tls_delivers_with_skip_verify_or_with_the_ca(tls_broker: TlsBroker, topic: str, how: str) -> None:
    props: dict[str, object] = {"brokers": tls_broker.bootstrap, "topic": topic}
    if how == "skip_verify":
        props["tls.skip_verify_server"] = True
    else:
        props["tls.ca_file"] = str(tls_broker.certificate.cert_file)
    batches = [car_batch(0), car_batch(1)]
    sink = make_sink(props)
    await sink.open()
    await deliver(sink, batches)
    await sink.close()

    tls_consumer = {"security.protocol": "SSL", "ssl.ca.location": str(tls_broker.certificate.cert_file)}
    records = consume(tls_broker.bootstrap, topic, 6, extra=tls_consumer)
    assert sorted((json.loads(r.value)["time"], json.loads(r.value)["cid"]) for r in records) == sorted(
        (row["time"].isoformat(timespec="milliseconds"), row["cid"]) for b in batches for row in b.to_pylist()
    )


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A broker this test alone stops and starts again."""
    with running(TansuBroker(tmp_path / "tansu")) as broker:
        yield broker


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_broker_down_mid_stream_then_back_loses_nothing(
    own_broker: TansuBroker, topic: str, guarantee: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A flush gives up on an unreachable broker after STALL_TIMEOUT without any delivery; the
    # outcome checked here does not depend on its length, the suite's run time does.
    monkeypatch.setattr(kafka_sink, "STALL_TIMEOUT", 1.5)
    sink = make_sink(
        {"brokers": own_broker.bootstrap, "topic": topic, "tls.disable": True, "delivery_guarantee": guarantee}
    )
    await sink.open()
    await deliver(sink, [car_batch(0)])

    own_broker.stop()
    down = car_batch(1)
    await sink.write(down, WriteContext("sink-1", 2, 3))
    with pytest.raises(RetryableError) as failure:
        await sink.flush(2)
    assert own_broker.bootstrap in failure.value.message
    with pytest.raises(RetryableError):  # still down: the runtime's retry fails the same way
        await deliver(sink, [down], first_epoch=2, first_row=3)

    # The broker comes back on the same address. It keeps topics in memory only, so it comes
    # back empty, like a replaced broker: the sink creates the topic again.
    own_broker.start()
    for _attempt in range(10):  # the runtime retries the epoch until it is acknowledged
        try:
            await deliver(sink, [down], first_epoch=2, first_row=3)
            break
        except RetryableError:
            await asyncio.sleep(0.5)
    else:
        pytest.fail("epoch 2 was never delivered after the broker came back")
    await deliver(sink, [car_batch(2)], first_epoch=3, first_row=6)
    await sink.close()

    records = consume(own_broker.bootstrap, topic, 6)
    received = sorted((json.loads(r.value)["time"], json.loads(r.value)["cid"]) for r in records)
    assert received == sorted(
        (row["time"].isoformat(timespec="milliseconds"), row["cid"])
        for b in (down, car_batch(2))
        for row in b.to_pylist()
    )


async def test_the_password_never_appears_in_errors_or_logs(
    tansu_broker: TansuBroker, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    password = "pa55-Secret-Value"
    caplog.set_level(logging.DEBUG, logger="sinkflow")
    # SASL against a broker without SASL: the login cannot succeed, librdkafka complains at length.
    sink = make_sink(
        {
            "brokers": tansu_broker.bootstrap,
            "topic": topic,
            "tls.disable": True,
            "sasl": "scram-sha-512",
            "username": "api-key",
            "password": password,
        }
    )
    with pytest.raises((PermanentError, RetryableError)) as failure:
        await sink.open()
        await deliver(sink, [car_batch(0)])
    await sink.close()
    assert password not in failure.value.message and password not in str(failure.value)
    assert caplog.records, "librdkafka's complaints should be logged"
    assert all(password not in record.getMessage() for record in caplog.records)


async def test_a_refused_sasl_login_fails_clearly_without_the_password(
    tmp_path: Path, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    password = "Wonder-Land-42"
    caplog.set_level(logging.DEBUG, logger="sinkflow")
    # SCRAM required, no such user
    with running(TansuBroker(tmp_path / "tansu-auth", authentication=True)) as broker:
        sink = make_sink(
            {"brokers": broker.bootstrap, "topic": topic, "tls.disable": True, "sasl": "scram-sha-512",
             "username": "alice", "password": password}
        )
        with pytest.raises(PermanentError) as failure:
            await sink.open()
        await sink.close()
    assert "SASL SCRAM authentication failed" in failure.value.message
    assert broker.bootstrap in failure.value.message and password not in failure.value.message
    assert all(password not in record.getMessage() for record in caplog.records)


async def test_rows_written_before_a_refused_write_are_sent_again_not_lost(tansu_broker: TansuBroker, topic: str) -> None:
    sink = make_sink({"brokers": tansu_broker.bootstrap, "topic": topic, "tls.disable": True})
    await sink.open()
    earlier = car_batch(0)
    await sink.write(earlier, WriteContext("sink-1", 1, 0))  # written, not yet flushed
    refused = car_batch(1)
    note = refused.schema.get_field_index("note")
    refused = refused.set_column(note, "note", pa.array(["x" * 2_000_000] * refused.num_rows))  # > message.max.bytes
    with pytest.raises(PermanentError, match="(?i)too large"):
        await sink.write(refused, WriteContext("sink-1", 2, 3))
    # The runtime dead-letters the refused rows, then flushes what it holds as written: that
    # flush must not succeed, since the failed write discarded the earlier messages too ...
    with pytest.raises(RetryableError, match="sent again"):
        await sink.flush(2)
    # ... so that the runtime writes them again, as after any failed flush.
    await deliver(sink, [earlier], first_epoch=1, first_row=0)
    await sink.close()

    records = consume(tansu_broker.bootstrap, topic, earlier.num_rows)
    received = {(json.loads(r.value)["time"], json.loads(r.value)["cid"]) for r in records}
    assert received == {(row["time"].isoformat(timespec="milliseconds"), row["cid"]) for row in earlier.to_pylist()}


async def test_tls_against_a_plain_text_broker_says_so(tansu_broker: TansuBroker, topic: str) -> None:
    sink = make_sink({"brokers": tansu_broker.bootstrap, "topic": topic})  # TLS on by default
    with pytest.raises(RetryableError) as failure:
        await sink.open()
    await sink.close()
    assert failure.value.message == (f"kafka broker {tansu_broker.bootstrap}: TLS handshake failed: is the broker "
                                     "plain text? set tls.disable=true")


async def test_exactly_once_a_commit_that_never_returns_fails_the_epoch_and_the_retry_commits_it_once(
    tansu_broker: TansuBroker, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # librdkafka's send_offsets_to_transaction, as it was seen to hang after connection resets:
    # the first call waits until released, long after its timeout.
    real = rdkafka._lib.rd_kafka_send_offsets_to_transaction
    release = threading.Event()
    calls: list[int] = []

    def hangs_the_first_time(*args: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            release.wait(60)
        return real(*args)

    monkeypatch.setattr(rdkafka._lib, "rd_kafka_send_offsets_to_transaction", hangs_the_first_time)
    monkeypatch.setattr(rdkafka, "HANG_GRACE", 0.5)
    monkeypatch.setattr(kafka_sink, "TRANSACTION_TIMEOUT", 2.0)
    props = {"brokers": tansu_broker.bootstrap, "topic": topic, "tls.disable": True, "delivery_guarantee": "exactly_once"}
    batches = [car_batch(0), car_batch(1)]
    sink = make_sink(props, sink_id="eos-hang")
    await sink.open()
    try:
        await sink.write(batches[0], WriteContext("eos-hang", 1, 0))
        with pytest.raises(RetryableError) as failure:
            await sink.flush(1)
        assert "send_offsets_to_transaction did not return" in failure.value.message
        # The runtime writes the failed epoch again and goes on: a new producer fences the hung one.
        await deliver(sink, batches)
    finally:
        release.set()
        await sink.close()

    committed = [json.loads(value) for value in committed_values(tansu_broker.bootstrap, topic)]
    assert sorted((doc["time"], doc["cid"]) for doc in committed) == sorted(
        (row["time"].isoformat(timespec="milliseconds"), row["cid"]) for b in batches for row in b.to_pylist())
