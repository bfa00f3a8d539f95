"""The SDK's ``Query``: bounded and streaming queries over SSE, header, cancel, get, list, batching."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from swagger_client.rest import ApiException
from timeplus import Environment, Query, Stream

from tests.sdk.support import eventually, make_stream, rows_of, unique
from tests.servers.sinkflow import SinkflowServer


def test_a_bounded_query_answers_timeplus_events(env: Environment) -> None:
    name = unique("sdk_q")
    make_stream(env, name, [("dev", "string"), ("speed", "float64")])
    Stream(env).name(name).ingest(["dev", "speed"], [["a", 1.5], ["b", 2.5], ["c", 3.5]])
    query = Query(env).sql(f"select dev, speed from table({name}) where speed > 2").create()
    assert query.header() == [{"name": "dev", "type": "string"}, {"name": "speed", "type": "float64"}]
    assert query.metadata()["status"] == "running" and query.metadata()["analysis"]["is_streaming"] is False
    events = [(e.event, json.loads(e.data)) for e in query.result()]
    assert [row for kind, data in events if kind == "message" for row in data] == [["b", 2.5], ["c", 3.5]]
    assert [kind for kind, _ in events][-2:] == ["metrics", "query"]
    closing = events[-1][1]
    assert (closing["id"], closing["status"]) == (query.id(), "finished") and closing["end_time"] >= closing["start_time"]
    finished = Query(env).id(query.id()).get().metadata()
    assert (finished.status, finished.sql, finished.result.header[1].name) == ("finished", query.metadata()["sql"], "speed")


def test_a_streaming_query_sends_new_rows_and_is_cancelled(env: Environment) -> None:
    name = unique("sdk_q")
    make_stream(env, name, [("dev", "string"), ("speed", "float64")])
    query = Query(env).sql(f"select dev, speed * 2 as double from {name} where speed > 1").create()
    assert query.metadata()["analysis"]["is_streaming"] is True
    Stream(env).name(name).ingest(["dev", "speed"], [["a", 0.5], ["b", 2.0], ["c", 3.0]])
    assert rows_of(query, limit=2) == [["b", 4.0], ["c", 6.0]]
    running = {q.id: q for q in Query(env).list()}[query.id()]
    assert running.status == "running" and running.analysis.result_columns[1].column == "double"

    query.cancel()
    assert Query(env).id(query.id()).get().metadata().status == "canceled"
    # The stream ends by itself with the query's final status.
    closing = next(e for e in query.result() if e.event == "query")
    assert json.loads(closing.data)["status"] == "canceled"


def test_a_streaming_query_with_limit_finishes_and_batches_as_asked(env: Environment) -> None:
    name = unique("sdk_q")
    make_stream(env, name, [("n", "int64")])
    query = Query(env).sql(f"select n from {name} limit 5").batching_policy(2, 100).create()

    def feed() -> None:
        Stream(env).name(name).ingest(["n"], [[i] for i in range(10)])

    threading.Thread(target=feed).start()
    batches = []
    for event in query.result():
        if event.event == "message":
            batches.append(json.loads(event.data))
        elif event.event == "query":
            assert json.loads(event.data)["status"] == "finished"
            break
    assert [row for batch in batches for row in batch] == [[i] for i in range(5)]
    assert max(len(batch) for batch in batches) <= 2
    eventually(lambda: Query(env).id(query.id()).get().metadata().status == "finished", "the query to finish")


def test_bad_sql_is_refused_before_streaming(env: Environment) -> None:
    with pytest.raises(ApiException) as refused:
        Query(env).sql("select nope from nowhere_at_all").create()
    assert refused.value.status in (400, 404) and "nowhere_at_all" in refused.value.body.decode()


def test_a_client_asking_for_json_still_gets_json(env: Environment, server: SinkflowServer) -> None:
    name = unique("sdk_q")
    make_stream(env, name, [("n", "int64")])
    Stream(env).name(name).ingest(["n"], [[7]])
    answer = httpx.post(f"{server.url}/api/v1beta2/queries", json={"sql": f"select n from table({name})"},
                        headers={"Accept": "application/json"})
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["rows"] == [{"n": 7}]


def test_an_unknown_query_is_not_found(env: Environment) -> None:
    with pytest.raises(ApiException) as missing:
        Query(env).id("no-such-query").get()
    assert missing.value.status == 404


def test_a_query_is_analyzed_without_running_and_deleted(env: Environment) -> None:
    name = unique("sdk_q")
    make_stream(env, name, [("dev", "string"), ("speed", "float64")])
    analysis = Query(env).sql(f"select dev, avg(speed) as avg_speed from tumble({name}, 5s) "
                              "group by dev, window_end").analyze()
    assert (analysis.is_streaming, analysis.has_aggr) == (True, True)
    assert [c.column for c in analysis.result_columns] == ["dev", "avg_speed"]
    assert {c.column for c in analysis.required_columns} >= {"dev", "speed"}
    with pytest.raises(ApiException) as refused:
        Query(env).sql(f"select nope from {name}").analyze()
    assert refused.value.status == 400 and "nope" in refused.value.body.decode()

    query = Query(env).sql(f"select dev from {name}").create()
    query.delete()
    with pytest.raises(ApiException) as gone:
        Query(env).id(query.id()).get()
    assert gone.value.status == 404
