"""The committed records of a topic, as a conforming broker shows them to read_committed consumers
(tests/kafka/committed.py), against transactions that commit, abort, and die with their process."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.kafka.committed import committed_values
from tests.kafka.kafka_support import consume
from tests.servers.tansu import TansuBroker

# A transactional producer that sends two messages in a transaction and waits, never committing.
_DIES_MID_TRANSACTION = textwrap.dedent("""
    import sys, time
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": sys.argv[1], "transactional.id": sys.argv[3]})
    producer.init_transactions(10)
    producer.begin_transaction()
    for value in (b"killed-1", b"killed-2"):
        producer.produce(sys.argv[2], value, partition=0)
    producer.flush(10)
    print("sent", flush=True)
    time.sleep(60)
""")


def transactional(bootstrap: str, transactional_id: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    producer.init_transactions(10)
    return producer


def send(producer: Producer, topic: str, value: bytes, commit: bool) -> None:
    producer.begin_transaction()
    producer.produce(topic, value, partition=0)
    producer.flush(10)
    if commit:
        producer.commit_transaction(10)
    else:
        producer.abort_transaction(10)


def test_only_committed_transactions_count(tansu_broker: TansuBroker, topic: str) -> None:
    bootstrap = tansu_broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until its future resolves
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result()
    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce(topic, b"outside-any-transaction", partition=1)
    plain.flush(10)
    producer = transactional(bootstrap, f"{topic}-a")
    send(producer, topic, b"committed-1", commit=True)
    send(producer, topic, b"aborted", commit=False)
    send(producer, topic, b"committed-2", commit=True)
    # A producer killed in a transaction; its successor's init_transactions aborts that one.
    child = subprocess.Popen([sys.executable, "-c", _DIES_MID_TRANSACTION, bootstrap, topic, f"{topic}-b"],
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"sent\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    successor = transactional(bootstrap, f"{topic}-b")
    send(successor, topic, b"after-the-crash", commit=True)
    # Still open when the topic is read: not committed (yet).
    producer.begin_transaction()
    producer.produce(topic, b"open", partition=0)
    producer.flush(10)

    assert sorted(committed_values(bootstrap, topic)) == sorted(
        [b"outside-any-transaction", b"committed-1", b"committed-2", b"after-the-crash"])
    producer.abort_transaction(10)


def test_tansu_shows_aborted_records_to_read_committed_consumers(tansu_broker: TansuBroker, topic: str) -> None:
    """Why committed_values exists: Tansu 0.6.0 answers every fetch with an empty list of aborted
    transactions. When this fails, the broker hides them as Kafka does, and read_committed
    consumers can check exactly-once on their own again."""
    bootstrap = tansu_broker.bootstrap
    producer = transactional(bootstrap, f"{topic}-a")
    send(producer, topic, b"aborted", commit=False)
    send(producer, topic, b"committed", commit=True)
    seen = consume(bootstrap, topic, 2, isolation="read_committed")
    assert sorted(record.value for record in seen) == [b"aborted", b"committed"]
    assert committed_values(bootstrap, topic) == [b"committed"]
