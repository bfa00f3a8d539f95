"""Views, materialized views and external streams in cluster mode, with real processes (one Tansu
broker, three sinkflow nodes): made on one node, seen and used on the others; a materialized
view runs on one node and keeps every row when that node is killed with ``kill -9``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer

from tests.servers.sinkflow_cluster import (SESSION_TIMEOUT_MS, ClusterNodes, Feeder, SinkflowNode, call, ingest,
                                            sql, wait_for)


def rows(node: SinkflowNode, text: str) -> list[dict[str, Any]]:
    return sql(node, text)["rows"]  # type: ignore[no-any-return]


def view_node(node: SinkflowNode, name: str) -> str:
    """The node running materialized view ``name`` (its sink), once it runs somewhere."""
    sink = next(s for s in call(node, "GET", "/sinks") if s["name"] == name)
    return wait_for(lambda: call(node, "GET", f"/sinks/{sink['id']}/status")["node"], f"view '{name}' placed")


def test_a_view_made_on_one_node_is_read_on_another(nodes: list[SinkflowNode]) -> None:
    a, b, c = nodes
    sql(a, "CREATE STREAM sales (region string, amount int64)")
    wait_for(lambda: any(s["name"] == "sales" for s in call(b, "GET", "/streams")), "stream 'sales' on n1")
    sql(b, "CREATE VIEW big_sales AS SELECT region, amount FROM table(sales) WHERE amount >= 100")
    call(a, "POST", "/streams/sales/ingest", json={"columns": ["region", "amount"],
                                                   "data": [["eu", 50], ["us", 150], ["eu", 300]]})
    query = "SELECT region, amount FROM big_sales ORDER BY amount"
    got = wait_for(lambda: (r := rows(c, query)) and len(r) == 2 and r, "the view's rows on n2")
    assert got == [{"region": "us", "amount": 150}, {"region": "eu", "amount": 300}]
    shown = wait_for(lambda: rows(a, "SHOW VIEWS") or None, "the view listed on n0")
    assert [r["name"] for r in shown] == ["big_sales"]
    with pytest.raises(httpx.HTTPStatusError) as taken:
        sql(c, "CREATE VIEW big_sales AS SELECT region FROM sales")
    assert "already exists" in json.loads(taken.value.response.text)["message"]
    sql(c, "DROP VIEW big_sales")
    wait_for(lambda: not rows(a, "SHOW VIEWS"), "the view dropped on n0")


def test_a_sql_function_made_on_one_node_is_called_on_another(nodes: list[SinkflowNode]) -> None:
    a, b, c = nodes
    sql(a, "CREATE FUNCTION with_tax AS (x) -> x * 2 + 1")
    got = wait_for(lambda: _answer(b, "SELECT with_tax(20) AS v"), "the function on n1")
    assert got == [{"v": 41}]
    sql(c, "DROP FUNCTION with_tax")
    wait_for(lambda: _answer(a, "SELECT with_tax(20) AS v") is None, "the function dropped on n0")


def _answer(node: SinkflowNode, text: str) -> list[dict[str, Any]] | None:
    """The rows of ``text`` on ``node``, or None while the node refuses it."""
    try:
        return rows(node, text)
    except httpx.HTTPStatusError:
        return None


def test_a_materialized_view_into_an_external_stream_writes_kafka(nodes: list[SinkflowNode],
                                                                  cluster: ClusterNodes) -> None:
    a, b, c = nodes
    topic = f"{cluster.name}-doubled"
    sql(a, "CREATE STREAM numbers (n int64) SETTINGS shards=2")
    sql(a, f"CREATE EXTERNAL STREAM doubled_topic (n int64) SETTINGS type='kafka', brokers='{cluster.bootstrap}', "
           f"topic='{topic}', password='kafka-secret'")
    wait_for(lambda: any(r["name"] == "doubled_topic" for r in rows(b, "SHOW EXTERNAL STREAMS")),
             "the external stream on n1")
    sql(b, "CREATE MATERIALIZED VIEW doubler INTO doubled_topic AS SELECT n * 2 AS n FROM numbers")
    view_node(c, "doubler")
    ingest(c, "numbers", range(50))
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": f"check-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while len(seen) < 50 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                seen.append(json.loads(message.value())["n"])
    finally:
        consumer.close()
    assert sorted(seen) == [n * 2 for n in range(50)]
    # The external stream's secret never reaches the answer of another node.
    shown = rows(c, "SHOW CREATE doubled_topic")[0]["statement"]
    assert "kafka-secret" not in shown and "password=" in shown
    sql(a, "DROP VIEW doubler")
    sql(a, "DROP STREAM doubled_topic")
    wait_for(lambda: not rows(c, "SHOW EXTERNAL STREAMS"), "the external stream dropped on n2")


def produce(bootstrap: str, topic: str, numbers: range) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for n in numbers:
        producer.produce(topic, json.dumps({"n": n}).encode(), f"k{n}".encode())
    producer.flush(10)


def test_a_kafka_external_stream_is_read_once_for_every_node(nodes: list[SinkflowNode],
                                                               cluster: ClusterNodes) -> None:
    a, b, c = nodes
    topic = f"{cluster.name}-source"
    produce(cluster.bootstrap, topic, range(100))
    sql(a, f"CREATE EXTERNAL STREAM source_ext (raw string) SETTINGS type='kafka', brokers='{cluster.bootstrap}', "
           f"topic='{topic}'")
    wait_for(lambda: any(r["name"] == "source_ext" for r in rows(b, "SHOW EXTERNAL STREAMS")),
             "the external stream on n1")
    sql(b, "CREATE MATERIALIZED VIEW source_numbers AS SELECT to_int64(json_value(raw, '$.n')) AS n, "
           "_tp_message_key AS k FROM source_ext SETTINGS seek_to='earliest'")
    view = "SELECT n, k FROM table(source_numbers)"
    wait_for(lambda: len(rows(c, view)) >= 100, "the topic's first messages in the view, on n2")
    produce(cluster.bootstrap, topic, range(100, 150))
    wait_for(lambda: len(rows(a, view)) >= 150, "the later messages in the view, on n0")
    time.sleep(1)  # what a second reader (one per node) would add meanwhile
    got = rows(a, view)
    assert sorted(r["n"] for r in got) == list(range(150)), "messages lost or read twice"
    assert all(r["k"] == f"k{r['n']}" for r in got)
    # An ad-hoc query on any node reads the same copy of the topic.
    wait_for(lambda: rows(c, "SELECT count() AS c FROM table(source_ext)") == [{"c": 150}], "the topic's copy on n2")
    sql(a, "DROP VIEW source_numbers")
    sql(a, "DROP STREAM source_ext")


def test_materialized_views_keep_every_row_when_their_node_is_killed(nodes: list[SinkflowNode]) -> None:
    a = nodes[0]
    sql(a, "CREATE STREAM orders (n int64) SETTINGS shards=3, sharding_expr='n'")
    sql(a, "CREATE STREAM order_copies (n int64)")
    sql(a, "CREATE MATERIALIZED VIEW order_mirror AS SELECT n FROM orders")
    sql(a, "CREATE MATERIALIZED VIEW order_copier INTO order_copies AS SELECT n FROM orders")
    runner = view_node(a, "order_mirror")
    victim = next(node for node in nodes if node.node_id == runner)
    survivor = next(node for node in nodes if node is not victim)
    # The victim runs order_mirror; order_copier runs wherever the group put it (maybe there too).
    with Feeder(survivor, "orders") as feeder:
        wait_for(lambda: rows(survivor, "SELECT count() AS c FROM table(order_mirror)")[0]["c"] > 200,
                 "rows in the view before the crash")
        victim.kill()
        wait_for(lambda: call(survivor, "GET", "/sinks") and view_node(survivor, "order_mirror") != runner,
                 "the view running on another node", timeout=SESSION_TIMEOUT_MS / 1000 * 4)
        before = rows(survivor, "SELECT count() AS c FROM table(order_mirror)")[0]["c"]
        wait_for(lambda: rows(survivor, "SELECT count() AS c FROM table(order_mirror)")[0]["c"] > before + 200,
                 "rows in the view after the crash", timeout=SESSION_TIMEOUT_MS / 1000 * 4)
    sent = feeder.sent
    for view in ("order_mirror", "order_copies"):
        query = f"SELECT n FROM table({view})"
        wait_for(lambda: {r["n"] for r in rows(survivor, query)} >= set(range(sent)),
                 f"every row in {view}", timeout=SESSION_TIMEOUT_MS / 1000 * 4)
        counts = Counter(r["n"] for r in rows(survivor, query))
        assert set(counts) == set(range(sent)), f"{view}: rows lost or invented"
        duplicates = sum(counts.values()) - len(counts)
        print(f"\n{view}: {sent} rows, {duplicates} twice after kill -9 of {runner}")
        assert duplicates <= 10 * 20 * 1.5, f"{view}: {duplicates} duplicates, more than a checkpoint interval"
