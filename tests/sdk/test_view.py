"""The SDK's ``View``, plain and materialized: made through REST as SQL statements, so the same
records as ``CREATE [MATERIALIZED] VIEW`` (these need the SQL pipeline statements)."""

from __future__ import annotations

import httpx
import pytest
from swagger_client.rest import ApiException
from timeplus import Environment, Query, Stream, View
from timeplus.error import TimeplusAPIError

from tests.sdk.support import eventually, make_stream, rows_of, select, unique


def _sql(env: Environment, statement: str) -> None:
    """Run a DDL statement as a plain client does (the SDK reads every answer as SSE)."""
    conf = env._conf()
    answer = httpx.post(f"{conf.host}/v1beta2/queries", json={"sql": statement})
    assert answer.status_code == 200, answer.text


def test_a_plain_view_is_made_listed_and_dropped(env: Environment) -> None:
    source = unique("sdk_src")
    make_stream(env, source, [("dev", "string"), ("speed", "float64")])
    name = unique("sdk_v")
    made = View(env).name(name).query(f"select dev, speed from {source} where speed > 50").create().metadata()
    assert (made.name, made.materialized, made.target_stream) == (name, False, "")
    assert made.query == f"select dev, speed from {source} where speed > 50"
    assert [(c.name, c.type) for c in made.columns][:2] == [("dev", "string"), ("speed", "float64")]
    assert View(env).name(name).exist() and View(env).name(name).get().metadata().name == name
    View(env).name(name).delete()
    assert not View(env).name(name).exist()
    with pytest.raises(TimeplusAPIError):
        View(env).name(name).get()


def test_a_query_reads_a_plain_view(env: Environment) -> None:
    """Reading FROM a plain view needs the engine's subqueries as well (branch 'engine')."""
    source = unique("sdk_src")
    make_stream(env, source, [("dev", "string"), ("speed", "float64")])
    name = unique("sdk_v")
    View(env).name(name).query(f"select dev, speed from {source} where speed > 50").create()
    query = Query(env).sql(f"select dev from {name} limit 2").create()
    Stream(env).name(source).ingest(["dev", "speed"], [["a", 10.0], ["b", 60.0], ["c", 70.0]])
    assert rows_of(query) == [["b"], ["c"]]


def test_a_materialized_view_writes_into_its_target_stream(env: Environment) -> None:
    source, target = unique("sdk_src"), unique("sdk_out")
    make_stream(env, source, [("dev", "string"), ("speed", "float64")])
    make_stream(env, target, [("dev", "string"), ("fast", "float64")])
    name = unique("sdk_mv")
    made = (View(env).name(name).materialized(True).target_stream(target)
            .query(f"select dev, speed * 2 as fast from {source} where speed > 50").create().metadata())
    assert (made.materialized, made.target_stream) == (True, target)
    Stream(env).name(source).ingest(["dev", "speed"], [["a", 10.0], ["b", 60.0]])
    assert eventually(lambda: select(env, f"select dev, fast from table({target})"), "the view's row") == [["b", 120.0]]
    assert name in [v.name for v in View(env).list() if v.materialized]
    View(env).name(name).delete()
    assert not View(env).name(name).exist()


def test_a_materialized_view_without_target_keeps_its_own_rows(env: Environment) -> None:
    source = unique("sdk_src")
    make_stream(env, source, [("dev", "string"), ("speed", "float64")])
    name = unique("sdk_mv")
    made = (View(env).name(name).materialized(True).query(f"select dev, speed from {source} where speed > 50")
            .create().metadata())
    assert (made.materialized, made.target_stream, made.logstore_retention_ms) == (True, "", -1)
    Stream(env).name(source).ingest(["dev", "speed"], [["a", 10.0], ["b", 60.0]])
    assert eventually(lambda: select(env, f"select dev, speed from table({name})"), "the view's row") == [["b", 60.0]]
    View(env).name(name).delete()


def test_a_view_made_in_sql_is_the_view_the_sdk_lists(env: Environment) -> None:
    source = unique("sdk_src")
    make_stream(env, source, [("dev", "string")])
    name = unique("sdk_v")
    _sql(env, f"CREATE VIEW {name} AS select dev from {source}")
    listed = {v.name: v for v in View(env).list()}
    assert listed[name].query == f"select dev from {source}" and listed[name].materialized is False
    View(env).name(name).delete()
    assert name not in [v.name for v in View(env).list()]


def test_a_bad_view_is_refused_by_name(env: Environment) -> None:
    with pytest.raises(ApiException) as refused:
        View(env).name(unique("sdk_v")).query("select dev from no_such_stream_here").create()
    assert refused.value.status in (400, 404) and "no_such_stream_here" in refused.value.body.decode()
    with pytest.raises(ApiException) as refused:
        View(env).name(unique("sdk_v")).query("select 1").target_stream("x").create()
    assert refused.value.status == 400 and "'target_stream'" in refused.value.body.decode()
