"""A Kafka external stream as a source: queries and materialized views read the topic, with
``_tp_time`` from the message timestamp and ``_tp_message_key``; a view over it survives a
restart and a ``kill -9`` without losing a message."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer
from tests.servers.tansu import TansuBroker

_names = itertools.count()
#: Message timestamps: fixed, so the view's _tp_time can be compared with them.
T0_MS = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC


def sql(api: httpx.Client, text: str) -> dict[str, Any]:
    response = api.post("/api/v1beta2/queries", json={"sql": text})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def produce(bootstrap: str, topic: str, first: int, count: int) -> None:
    """Messages ``first`` … ``first+count-1``: JSON with an ip, keyed ``k<n>``, timestamped T0 + n s."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for n in range(first, first + count):
        value = json.dumps({"ip": f"10.0.{n // 256}.{n % 256}", "n": n, "ok": n % 2 == 0})
        producer.produce(topic, value.encode(), key=f"k{n}".encode(), timestamp=T0_MS + n * 1000)
    assert producer.flush(30) == 0


def wait_for(check: Callable[[], bool], timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def view_rows(api: httpx.Client, view: str) -> list[dict[str, Any]]:
    return sql(api, f"SELECT * FROM table({view})")["rows"]  # type: ignore[no-any-return]


def create(api: httpx.Client, bootstrap: str, topic: str, name: str) -> None:
    sql(api, f"CREATE EXTERNAL STREAM {name}_src (raw string) SETTINGS type='kafka', brokers='{bootstrap}', "
             f"topic='{topic}'")
    sql(api, f"CREATE MATERIALIZED VIEW {name} AS SELECT json_value(raw, '$.ip') AS ip, _tp_message_key AS k, "
             f"_tp_time AS t FROM {name}_src SETTINGS seek_to='earliest'")


def test_a_view_over_a_kafka_topic_reads_every_message_with_key_and_timestamp(
        tmp_path: Path, tansu_broker: TansuBroker) -> None:
    topic = f"events-{next(_names)}"
    produce(tansu_broker.bootstrap, topic, 0, 300)
    with running(SinkflowServer(tmp_path / "data")) as server, server.client() as api:
        create(api, tansu_broker.bootstrap, topic, "ips")
        wait_for(lambda: len(view_rows(api, "ips")) >= 300)
        got = sorted(view_rows(api, "ips"), key=lambda r: int(r["k"][1:]))
        assert len(got) == 300
        assert [r["ip"] for r in got] == [f"10.0.{n // 256}.{n % 256}" for n in range(300)]
        assert [r["k"] for r in got] == [f"k{n}" for n in range(300)]
        assert got[0]["t"] == "2026-01-01T00:00:00.000+00:00" and got[299]["t"] == "2026-01-01T00:04:59.000+00:00"
        # An ad-hoc bounded query reads the same topic, decoded the same way.
        count = sql(api, "SELECT count() AS n FROM table(ips_src) WHERE json_value(raw, '$.ok') = 'true'")
        assert count["rows"] == [{"n": 150}]


def test_a_kafka_source_view_restarts_without_losing_or_repeating_messages(
        tmp_path: Path, tansu_broker: TansuBroker) -> None:
    topic = f"events-{next(_names)}"
    produce(tansu_broker.bootstrap, topic, 0, 200)
    server = SinkflowServer(tmp_path / "data")
    with running(server):
        with server.client() as api:
            create(api, tansu_broker.bootstrap, topic, "ips")
            wait_for(lambda: len(view_rows(api, "ips")) >= 200)
        server.stop()
        produce(tansu_broker.bootstrap, topic, 200, 200)  # while the server is down
        server.start()
        with server.client() as api:
            wait_for(lambda: len(view_rows(api, "ips")) >= 400)
            produce(tansu_broker.bootstrap, topic, 400, 100)
            wait_for(lambda: len(view_rows(api, "ips")) >= 500)
            time.sleep(1.0)  # a repeated message would show up by now
            keys = Counter(r["k"] for r in view_rows(api, "ips"))
    assert set(keys) == {f"k{n}" for n in range(500)}
    assert sum(keys.values()) == 500, "a clean restart repeats nothing"


def test_a_kafka_source_view_survives_kill_9(tmp_path: Path, tansu_broker: TansuBroker) -> None:
    topic = f"events-{next(_names)}"
    server = SinkflowServer(tmp_path / "data")
    with running(server):
        with server.client() as api:
            create(api, tansu_broker.bootstrap, topic, "ips")
            produce(tansu_broker.bootstrap, topic, 0, 3000)
            wait_for(lambda: len(view_rows(api, "ips")) >= 500)
        server.kill()
        produce(tansu_broker.bootstrap, topic, 3000, 1000)
        server.start()
        with server.client() as api:
            wait_for(lambda: len(set(r["k"] for r in view_rows(api, "ips"))) >= 4000)
            keys = Counter(r["k"] for r in view_rows(api, "ips"))
    assert set(keys) == {f"k{n}" for n in range(4000)}
    print(f"\nkill -9: 4000 messages all in the view; {sum(keys.values()) - 4000} repeated (at-least-once)")


def test_latest_is_the_default_and_means_messages_from_now_on(tmp_path: Path, tansu_broker: TansuBroker) -> None:
    topic = f"events-{next(_names)}"
    produce(tansu_broker.bootstrap, topic, 0, 150)  # history, before anything reads the topic
    with running(SinkflowServer(tmp_path / "data")) as server, server.client() as api:
        sql(api, f"CREATE EXTERNAL STREAM src (raw string) SETTINGS type='kafka', brokers='{tansu_broker.bootstrap}', "
                 f"topic='{topic}'")
        sql(api, "CREATE MATERIALIZED VIEW fresh AS SELECT json_value(raw, '$.ip') AS ip, _tp_message_key AS k FROM src")
        sql(api, "CREATE MATERIALIZED VIEW everything AS SELECT _tp_message_key AS k FROM src SETTINGS seek_to='earliest'")
        produce(tansu_broker.bootstrap, topic, 150, 30)
        wait_for(lambda: len(view_rows(api, "everything")) >= 180)
        wait_for(lambda: len(view_rows(api, "fresh")) >= 30)
        time.sleep(1.0)  # an old message would show up by now
        assert sorted(int(r["k"][1:]) for r in view_rows(api, "fresh")) == list(range(150, 180))
        assert sorted(int(r["k"][1:]) for r in view_rows(api, "everything")) == list(range(180))


def produce_to_partitions(bootstrap: str, topic: str, first: int, count: int) -> None:
    """Messages ``first`` … ``first+count-1``: message n goes to partition n % 3 (so it has offset
    n // 3 there), keyed ``k<n>``, with the header ``trace: t<n>``, timestamped T0 + n s."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for n in range(first, first + count):
        producer.produce(topic, json.dumps({"n": n}).encode(), key=f"k{n}".encode(), partition=n % 3,
                         timestamp=T0_MS + n * 1000, headers=[("trace", f"t{n}".encode())])
    assert producer.flush(30) == 0


def test_seek_to_offsets_per_partition_shards_and_message_metadata(tmp_path: Path, tansu_broker: TansuBroker) -> None:
    topic = f"parts-{next(_names)}"
    admin = AdminClient({"bootstrap.servers": tansu_broker.bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(10)
    produce_to_partitions(tansu_broker.bootstrap, topic, 0, 30)  # offsets 0 … 9 in each partition
    with running(SinkflowServer(tmp_path / "data")) as server, server.client() as api:
        sql(api, f"CREATE EXTERNAL STREAM src (raw string) SETTINGS type='kafka', brokers='{tansu_broker.bootstrap}', "
                 f"topic='{topic}'")
        sql(api, "CREATE MATERIALIZED VIEW from_offsets AS SELECT _tp_message_key AS k, _tp_shard AS p, _tp_sn AS o, "
                 "_tp_message_headers['trace'] AS trace FROM src SETTINGS seek_to='5,3,8'")
        sql(api, "CREATE MATERIALIZED VIEW two_shards AS SELECT _tp_message_key AS k FROM src "
                 "SETTINGS seek_to='earliest', shards='0,2'")
        sql(api, "CREATE MATERIALIZED VIEW late AS SELECT _tp_message_key AS k FROM src WHERE _tp_sn >= 8")
        sql(api, "CREATE MATERIALIZED VIEW since AS SELECT _tp_message_key AS k FROM src "
                 "SETTINGS seek_to='2026-01-01 00:00:25'")
        produce_to_partitions(tansu_broker.bootstrap, topic, 30, 15)  # offsets 10 … 14

        def keys(view: str) -> list[int]:
            return sorted(int(r["k"][1:]) for r in view_rows(api, view))

        start = {0: 5, 1: 3, 2: 8}
        wanted = {
            "from_offsets": [n for n in range(45) if n // 3 >= start[n % 3]],
            "two_shards": [n for n in range(45) if n % 3 in (0, 2)],
            "late": [n for n in range(45) if n // 3 >= 8],
            "since": list(range(25, 45)),
        }
        for view, expected_keys in wanted.items():
            wait_for(lambda: len(keys(view)) >= len(expected_keys))
        time.sleep(1.0)  # a message it should not read would show up by now
        for view, expected_keys in wanted.items():
            assert keys(view) == expected_keys, view
        rows = sorted(view_rows(api, "from_offsets"), key=lambda r: int(r["k"][1:]))
        assert all((r["p"], r["o"], r["trace"]) == (int(r["k"][1:]) % 3, int(r["k"][1:]) // 3, f"t{r['k'][1:]}")
                   for r in rows)
        # The metadata are virtual, as in Timeplus: SELECT * shows the external stream's columns.
        everything = sql(api, "SELECT * FROM table(src) WHERE _tp_shard = 1 ORDER BY _tp_sn LIMIT 2")["rows"]
        assert [json.loads(r["raw"])["n"] for r in everything] == [1, 4]
        assert not any(name.startswith(("_tp_shard", "_tp_sn", "_tp_message")) for name in everything[0])
        bad = api.post("/api/v1beta2/queries", json={"sql": "SELECT raw FROM src SETTINGS shards='one'"})
        assert bad.status_code == 400 and "shards must list partitions" in bad.json()["message"]
