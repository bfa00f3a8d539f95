"""The SDK's ``Stream``: create (with Timeplus's nulls), list, get, exist, ingest, delete."""

from __future__ import annotations

from pathlib import Path

import pytest
from swagger_client.rest import ApiException
from timeplus import Environment, Stream
from timeplus.error import TimeplusAPIError

from tests.sdk.support import make_stream, select, unique
from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer


def test_a_stream_made_through_the_sdk_reports_timeplus_fields_and_stores_rows(env: Environment) -> None:
    name = unique("sdk_s")
    stream = (Stream(env).name(name).column("dev", "string").column("speed", "float64")
              .logstore_retention_bytes(1_000_000_000).ttl_expression("to_datetime(_tp_time) + INTERVAL 7 DAY")
              .description("devices").create())
    made = stream.metadata()
    assert (made.name, made.engine, made.mode, made.description) == (name, "Stream", "append", "devices")
    assert made.logstore_retention_ms == 7 * 86_400_000 and made.logstore_retention_bytes == 1_000_000_000
    assert made.ttl_expression == "to_datetime(_tp_time) + INTERVAL 1 WEEK"
    assert [(c.name, c.type) for c in made.columns][:2] == [("dev", "string"), ("speed", "float64")]

    listed = {s.name: s for s in Stream(env).list()}
    assert listed[name].engine == "Stream" and listed[name].logstore_retention_ms == 7 * 86_400_000
    assert Stream(env).name(name).exist()
    got = Stream(env).name(name).get().metadata()
    assert (got.name, got.ttl_expression, got.description) == (name, made.ttl_expression, "devices")

    Stream(env).name(name).ingest(["dev", "speed"], [["a", 10.5], ["b", 20.0]])
    assert select(env, f"select dev, speed from table({name})") == [["a", 10.5], ["b", 20.0]]

    Stream(env).name(name).delete()
    assert not Stream(env).name(name).exist()
    with pytest.raises(TimeplusAPIError):
        Stream(env).name(name).get()


def test_a_stream_without_limits_reports_them_unlimited(env: Environment) -> None:
    name = unique("sdk_s")
    made = make_stream(env, name, [("a", "int64")]).metadata()
    assert (made.logstore_retention_ms, made.logstore_retention_bytes, made.ttl_expression) == (-1, -1, "")


@pytest.mark.parametrize(("change", "named"), [
    (lambda s: s.mode("bogus_kv"), "mode"),
    (lambda s: s.ttl_expression("to_datetime(a) + INTERVAL 1 DAY"), "'ttl_expression'"),
    (lambda s: s.ttl_expression("forever"), "'ttl_expression'"),
    (lambda s: s.event_time_timezone("Asia/Tokyo"), "'event_time_timezone'"),
])
def test_what_sinkflow_cannot_honour_is_refused_by_name(env: Environment, change, named: str) -> None:  # type: ignore[no-untyped-def]
    name = unique("sdk_s")
    with pytest.raises(ApiException) as refused:
        change(Stream(env).name(name).column("a", "int64")).create()
    assert refused.value.status == 400 and named in refused.value.body.decode()
    assert not Stream(env).name(name).exist()


def test_ingest_as_json_lines(env: Environment) -> None:
    """Timeplus's ``streaming`` format (JSON lines); the ingest formats arrive with the perf branch."""
    name = unique("sdk_s")
    make_stream(env, name, [("dev", "string"), ("speed", "float64")])
    Stream(env).name(name).ingest(payload='{"dev":"c","speed":1.5}\n{"dev":"d","speed":2.5}', format="streaming")
    assert select(env, f"select dev, speed from table({name})") == [["c", 1.5], ["d", 2.5]]


def test_a_workspace_address_and_an_api_key_work_as_with_timeplus(tmp_path: Path) -> None:
    key = "s" * 60
    with running(SinkflowServer(tmp_path / "data", api_key=key)) as guarded:
        env = Environment().address(guarded.url).workspace("my_ws").apikey(key)
        name = unique("sdk_s")
        make_stream(env, name, [("a", "int64")])
        Stream(env).name(name).ingest(["a"], [[1], [2]])
        assert select(env, f"select a from table({name})") == [[1], [2]]
        with pytest.raises(ApiException) as refused:
            Stream(Environment().address(guarded.url).workspace("my_ws").apikey("x" * 60)).list()
        assert refused.value.status == 401
