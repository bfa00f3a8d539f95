"""Sharded streams in cluster mode, with real processes (one Tansu broker, three sinkflow nodes):
a stream on several Kafka partitions, placed by ``sharding_expr`` or in turn, ingested on one
node and read whole, in one order, on another; what Kafka holds per partition.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import httpx
import pyarrow as pa
import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.servers.sinkflow_cluster import ClusterNodes, SinkflowNode, call, ingest, sql, wait_for


def stream_topic(node: SinkflowNode, cluster: ClusterNodes, stream: str) -> str:
    """The data topic of ``stream``: the one of its cluster's stream topics with its name."""
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": f"look-{time.monotonic_ns()}"})
    try:
        topics = consumer.list_topics(timeout=10).topics
    finally:
        consumer.close()
    prefix = f"{cluster.name}.stream.{stream}."
    found = [t for t in topics if t.startswith(prefix) and not t.endswith(".order")]
    assert len(found) == 1, f"stream topics of '{stream}': {found}"
    return found[0]


def rows_per_partition(bootstrap: str, topic: str, partitions: int, schema: pa.Schema) -> dict[int, list[dict[str, Any]]]:
    """Every row stored in each partition of ``topic`` (its Arrow IPC messages), read from the start."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.monotonic_ns()}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    rows: dict[int, list[dict[str, Any]]] = defaultdict(list)
    ended: set[int] = set()
    try:
        deadline = time.monotonic() + 30
        while len(ended) < partitions and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                ended.add(message.partition())
                continue
            if message.value():  # not a node's empty catch-up marker
                batch = pa.ipc.read_record_batch(pa.py_buffer(message.value()), schema)
                rows[message.partition()].extend(batch.to_pylist())
    finally:
        consumer.close()
    assert len(ended) == partitions, "a partition was not read to its end"
    return rows


def ingest_rows(node: SinkflowNode, stream: str, columns: list[str], data: list[list[Any]]) -> None:
    call(node, "POST", f"/streams/{stream}/ingest", json={"columns": columns, "data": data})


def test_a_sharded_stream_ingested_on_one_node_is_read_whole_on_another(nodes: list[SinkflowNode],
                                                                       cluster: ClusterNodes) -> None:
    a, b, c = nodes
    sql(a, "CREATE STREAM metrics (device int64, reading int64) SETTINGS shards=3, sharding_expr='device'")
    wait_for(lambda: any(s["name"] == "metrics" for s in call(b, "GET", "/streams")), "stream 'metrics' on n1")
    for batch in range(8):
        ingest_rows(b, "metrics", ["device", "reading"], [[d, batch * 100 + d] for d in range(9)])
    sql(c, "INSERT INTO metrics (device, reading) VALUES (4, 9999)")

    expected = sorted([batch * 100 + d for batch in range(8) for d in range(9)] + [9999])
    query = "select device, reading, _tp_sn from table(metrics) order by _tp_sn"
    seen: dict[str, list[dict[str, Any]]] = {}
    for node in nodes:
        seen[node.node_id] = wait_for(lambda: (r := sql(node, query)["rows"]) and len(r) == len(expected) and r,
                                      f"every row of 'metrics' on {node.node_id}")
        assert sorted(r["reading"] for r in seen[node.node_id]) == expected
    # One order on every node: the same rows at the same _tp_sn.
    assert seen["n0"] == seen["n1"] == seen["n2"]
    assert [r["_tp_sn"] for r in seen["n2"]] == list(range(len(expected)))
    # Within a device (a partition), rows keep the order they were ingested in.
    by_device: dict[int, list[int]] = defaultdict(list)
    for row in seen["n0"]:
        by_device[row["device"]].append(row["reading"])
    assert all(readings == sorted(readings) for readings in by_device.values())

    # Kafka holds each device's rows in the partition sharding_expr names: device % 3.
    topic = stream_topic(a, cluster, "metrics")
    schema = pa.schema([("device", pa.int64()), ("reading", pa.int64()), ("_tp_time", pa.timestamp("ms", "UTC"))])
    stored = rows_per_partition(cluster.bootstrap, topic, 3, schema)
    assert set(stored) == {0, 1, 2}
    for partition, rows in stored.items():
        assert {r["device"] % 3 for r in rows} == {partition}
    assert sorted(r["reading"] for rows in stored.values() for r in rows) == expected


def test_a_stream_without_sharding_expr_spreads_whole_appends(nodes: list[SinkflowNode],
                                                             cluster: ClusterNodes) -> None:
    a, b, _ = nodes
    sql(a, "CREATE STREAM clicks (n int64) SETTINGS shards=2")
    wait_for(lambda: any(s["name"] == "clicks" for s in call(b, "GET", "/streams")), "stream 'clicks' on n1")
    for start in range(0, 60, 10):
        ingest(b, "clicks", range(start, start + 10))
    rows = wait_for(lambda: (r := sql(a, "select n from table(clicks) order by _tp_sn")["rows"]) and len(r) == 60 and r,
                    "every row of 'clicks' on n0")
    assert [r["n"] for r in rows] == list(range(60)), "appends made one after another are read in that order"
    schema = pa.schema([("n", pa.int64()), ("_tp_time", pa.timestamp("ms", "UTC"))])
    stored = rows_per_partition(cluster.bootstrap, stream_topic(a, cluster, "clicks"), 2, schema)
    # Each append went whole to one partition, and both partitions were used.
    assert set(stored) == {0, 1}
    for part in stored.values():
        numbers = [r["n"] for r in part]
        assert all(numbers[i:i + 10] == list(range(numbers[i], numbers[i] + 10)) for i in range(0, len(numbers), 10))


def test_a_bad_sharding_setting_is_refused_by_name(nodes: list[SinkflowNode]) -> None:
    a = nodes[0]
    for settings, named in (("shards=0", "'shards'"), ("shards=2, sharding_expr='nope + 1'", "unknown column 'nope'")):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            sql(a, f"CREATE STREAM refused (n int64) SETTINGS {settings}")
        body = json.loads(refused.value.response.text)
        assert refused.value.response.status_code == 400 and named in body["message"], body
    assert all(s["name"] != "refused" for s in call(a, "GET", "/streams"))


def test_a_random_stream_is_generated_by_one_node(nodes: list[SinkflowNode]) -> None:
    a, b, c = nodes
    sql(a, "CREATE RANDOM STREAM dice (face int64 DEFAULT 1 + rand() % 6) SETTINGS eps=100")
    since_first = "_tp_time {} (select min(_tp_time) from table(dice)) + interval {} second"
    # Wait until rows stamped 7 s after the first exist, then count the first 6 s by the rows'
    # own times (whichever node generates them, however loaded the machine is).
    wait_for(lambda: sql(b, f"select count() as n from table(dice) where {since_first.format('>=', 7)}")["rows"][0]["n"],
             "seven seconds of random rows", timeout=60)
    row = sql(c, "select count() as n, min(face) as low, max(face) as high from table(dice) "
                 f"where {since_first.format('<', 6)}")["rows"][0]
    # One generator gives about 600; three nodes each generating would give about 1,800.
    assert 0 < row["n"] < 1_000, f"{row['n']} rows in 6 s at eps=100"
    assert 1 <= row["low"] <= row["high"] <= 6
    sql(a, "DROP STREAM dice")
