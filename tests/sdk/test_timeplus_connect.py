"""Timeplus's database driver ``timeplus-connect`` over sinkflow's ClickHouse-style HTTP interface."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
import timeplus_connect
from timeplus_connect.driver.exceptions import DatabaseError
from urllib.parse import urlparse

from tests.sdk.support import unique
from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer


def connect(server: SinkflowServer, password: str = "") -> timeplus_connect.driver.Client:
    where = urlparse(server.url)
    return timeplus_connect.get_client(host=where.hostname, port=where.port, password=password)


def test_rows_inserted_through_the_driver_are_read_back(server: SinkflowServer) -> None:
    client = connect(server)
    name = unique("tc")
    client.command(f"CREATE STREAM {name} (cid string, speed float64, at datetime64(3, 'UTC'), tag nullable(string))")
    day = datetime(2024, 1, 1, tzinfo=timezone.utc)
    client.insert(name, [["a", 1.5, day, None], ["b", 2.5, day, "x"]], column_names=["cid", "speed", "at", "tag"])
    result = client.query(f"SELECT cid, speed, at, tag FROM table({name})")
    assert result.column_names == ("cid", "speed", "at", "tag")
    assert [(r[0], r[1], r[2].replace(tzinfo=timezone.utc), r[3]) for r in result.result_rows] == [
        ("a", 1.5, day, None), ("b", 2.5, day, "x")]
    # The same rows through the REST API.
    with server.client() as api:
        rows = api.post("/api/v1beta2/queries", json={"sql": f"select cid from table({name})"}).json()["rows"]
    assert rows == [{"cid": "a"}, {"cid": "b"}]


def test_a_streaming_query_sends_blocks_until_its_limit(server: SinkflowServer) -> None:
    client = connect(server)
    name = unique("tc")
    client.command(f"CREATE STREAM {name} (n int64)")

    done = threading.Event()

    def feed() -> None:
        # The driver returns the stream only with its first block, so nothing tells when the query
        # has started reading: the same rows go in until it has them.
        feeder = connect(server)
        while not done.is_set():
            feeder.insert(name, [[i] for i in range(5)], column_names=["n"])
            done.wait(0.2)

    threading.Thread(target=feed).start()
    try:
        with client.query_row_block_stream(f"SELECT n * 10 AS tens FROM {name} LIMIT 3") as stream:
            rows = [row for block in stream for row in block]
    finally:
        done.set()
    assert rows == [(0,), (10,), (20,)]


def test_errors_name_the_problem(server: SinkflowServer) -> None:
    client = connect(server)
    with pytest.raises(DatabaseError, match="no_such_stream_here"):
        client.query("SELECT a FROM table(no_such_stream_here)")
    name = unique("tc")
    client.command(f"CREATE STREAM {name} (n int64)")
    with pytest.raises(DatabaseError, match="'n'"):
        client.insert(name, [["not a number"]], column_names=["n"], column_type_names=["string"])
    assert client.query(f"SELECT count() AS c FROM table({name})").result_rows == [(0,)]


def test_the_api_key_is_the_password(tmp_path: Path) -> None:
    key = "c" * 40
    with running(SinkflowServer(tmp_path / "data", api_key=key)) as guarded:
        client = connect(guarded, password=key)
        name = unique("tc")
        client.command(f"CREATE STREAM {name} (n int64)")
        client.insert(name, [[1]], column_names=["n"])
        assert client.query(f"SELECT n FROM table({name})").result_rows == [(1,)]
        with pytest.raises(DatabaseError):
            connect(guarded, password="wrong")
