"""The SDK's ``ExternalStream``: made through REST as ``CREATE EXTERNAL STREAM``, so a
materialized view writes into it like into one made in SQL (these need the SQL pipeline statements)."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer
from swagger_client.rest import ApiException
from timeplus import Environment, ExternalStream, Stream, View
from timeplus.error import TimeplusAPIError

from tests.sdk.support import eventually, make_stream, unique
from tests.servers.http import RecordingEndpoint


def test_an_external_http_stream_receives_a_views_rows(env: Environment, receiver: HTTPServer) -> None:
    endpoint = RecordingEndpoint()
    url = endpoint.mount(receiver, "/hook")
    name = unique("sdk_ext")
    made = (ExternalStream(env).name(name).add_column("dev", "string").add_column("speed", "float64")
            .add_settings("type", "http").add_settings("url", url)
            .add_settings("http_header_Authorization", "Bearer very-secret").create().metadata())
    assert made.name == name and [(c.name, c.type) for c in made.columns] == [("dev", "string"), ("speed", "float64")]
    settings = {s.key: s.value for s in made.settings}
    assert settings["type"] == "http" and settings["url"] == url
    assert "very-secret" not in str(made)

    listed = {s.name: s for s in ExternalStream(env).list()}
    assert {s.key: s.value for s in listed[name].settings}["url"] == url
    assert ExternalStream(env).name(name).exist()
    assert ExternalStream(env).name(name).get().metadata().name == name

    source = unique("sdk_src")
    make_stream(env, source, [("dev", "string"), ("speed", "float64")])
    view = unique("sdk_mv")
    View(env).name(view).materialized(True).target_stream(name).query(
        f"select dev, speed from {source} where speed > 50").create()
    Stream(env).name(source).ingest(["dev", "speed"], [["a", 10.0], ["b", 60.0]])
    eventually(lambda: endpoint.bodies() == [{"dev": "b", "speed": 60.0}], "the view's row at the receiver")
    assert endpoint.received[0].headers["Authorization"] == "Bearer very-secret"

    View(env).name(view).delete()
    ExternalStream(env).name(name).delete()
    assert not ExternalStream(env).name(name).exist()
    with pytest.raises(TimeplusAPIError):
        ExternalStream(env).name(name).get()


def test_a_bad_external_stream_is_refused_by_name(env: Environment) -> None:
    name = unique("sdk_ext")
    with pytest.raises(ApiException) as refused:
        ExternalStream(env).name(name).add_column("dev", "strin").add_settings("type", "http").create()
    assert refused.value.status == 400 and "'dev'" in refused.value.body.decode()
    with pytest.raises(ApiException) as refused:
        ExternalStream(env).name(name).add_column("dev", "string").add_settings("type", "mqtt").create()
    assert refused.value.status == 400 and "mqtt" in refused.value.body.decode()
    assert not ExternalStream(env).name(name).exist()
