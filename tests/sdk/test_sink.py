"""The SDK's ``Sink``: create, list, get, exist, stop, start, update, delete — rows arrive at a receiver."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer
from swagger_client import ApiClient, SinksV1beta2Api
from swagger_client.rest import ApiException
from timeplus import Environment, Sink, Stream

from tests.sdk.support import eventually, make_stream, unique
from tests.servers.http import RecordingEndpoint


def test_a_sink_made_through_the_sdk_delivers_rows_and_reports_its_status(env: Environment,
                                                                        receiver: HTTPServer) -> None:
    endpoint = RecordingEndpoint()
    url = endpoint.mount(receiver, "/hook")
    source = unique("sdk_src")
    make_stream(env, source, [("dev", "string"), ("speed", "float64")])
    sink = (Sink(env).name(unique("sdk_sink")).type("http").description("fast ones")
            .query(f"select dev, speed from {source} where speed > 50")
            .properties({"url": url, "http_header": {"Authorization": "Bearer very-secret"}}).create())
    made = sink.metadata()
    assert (made["type"], made["status"], made["message"], made["description"]) == ("http", "running", "", "fast ones")
    assert made["properties"]["url"] == url and "very-secret" not in str(made)

    Stream(env).name(source).ingest(["dev", "speed"], [["a", 10.0], ["b", 60.0], ["c", 70.5]])
    eventually(lambda: len(endpoint.bodies()) == 2, "two rows at the receiver")
    assert endpoint.bodies() == [{"dev": "b", "speed": 60.0}, {"dev": "c", "speed": 70.5}]
    assert endpoint.received[0].headers["Authorization"] == "Bearer very-secret"

    listed = {s.id: s for s in Sink(env).list()}
    assert listed[sink.id()].status == "running" and listed[sink.id()].query.endswith("where speed > 50")
    assert Sink(env).id(sink.id()).get().metadata()["name"] == made["name"]
    assert Sink(env).id(sink.id()).exist()

    assert sink.stop() is sink
    assert Sink(env).id(sink.id()).get().metadata()["status"] == "stopped"
    Stream(env).name(source).ingest(["dev", "speed"], [["d", 80.0]])
    assert sink.start() is sink
    assert Sink(env).id(sink.id()).get().metadata()["status"] == "running"
    eventually(lambda: len(endpoint.bodies()) == 3, "the row ingested while stopped, after start")
    assert endpoint.bodies()[2] == {"dev": "d", "speed": 80.0}

    sink.delete()
    assert not Sink(env).id(sink.id()).exist()


def test_a_sink_is_redefined_through_the_sdk(env: Environment, receiver: HTTPServer) -> None:
    endpoint = RecordingEndpoint()
    url = endpoint.mount(receiver, "/hook")
    source = unique("sdk_src")
    make_stream(env, source, [("dev", "string"), ("speed", "float64")])
    name = unique("sdk_sink")
    sink = Sink(env).name(name).type("http").query(f"select dev from {source}").properties({"url": url}).create()
    # Sink.update() of timeplus 1.4.1 passes (id, body) to a generated method taking (body, id), so
    # it fails against any server; the generated method it means to call works.
    api = SinksV1beta2Api(ApiClient(env._conf()))
    api.v1beta2_sinks_id_put({"name": name, "type": "http", "query": f"select dev, speed from {source}",
                              "properties": {"url": url}, "description": "with speed"}, sink.id())
    changed = Sink(env).id(sink.id()).get().metadata()
    assert (changed["query"], changed["description"]) == (f"select dev, speed from {source}", "with speed")
    Stream(env).name(source).ingest(["dev", "speed"], [["a", 1.0]])
    eventually(lambda: endpoint.bodies() == [{"dev": "a", "speed": 1.0}], "the row in the new shape")


def test_a_bad_sink_is_refused_and_nothing_is_stored(env: Environment) -> None:
    source = unique("sdk_src")
    make_stream(env, source, [("dev", "string")])
    name = unique("sdk_sink")
    with pytest.raises(ApiException) as refused:
        Sink(env).name(name).type("http").query(f"select dev from {source}").properties({"timeout": "1s"}).create()
    assert refused.value.status == 400 and "url" in refused.value.body.decode()
    assert name not in [s.name for s in Sink(env).list()]
