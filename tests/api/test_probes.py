"""Bad requests found by probing a running server: each gets a 4xx naming the problem, none a 500.

The probe list holds what once answered 500 (too-long names, deep nesting, a WINDOW clause, a
non-ASCII API key) beside the usual bad input; the server keeps serving after all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer

STREAM = {"name": "probed", "columns": [{"name": "k", "type": "int64"}]}


def query(text: str) -> tuple[str, str, dict[str, Any]]:
    return ("POST", "/api/v1beta2/queries", {"json": {"sql": text}})


def sink(name: str, **changes: Any) -> tuple[str, str, dict[str, Any]]:
    body = {"name": name, "type": "timeplus", "sql": "select k from probed", "properties": {"stream_name": "out"}}
    return ("POST", "/api/v1beta2/sinks", {"json": body | changes})


#: (what, request, words the answer's message must contain)
PROBES: list[tuple[str, tuple[str, str, dict[str, Any]], tuple[str, ...]]] = [
    ("a 300-character stream name", ("POST", "/api/v1beta2/streams", {"json": {**STREAM, "name": "s" * 300}}),
     ("stream name", "300 characters", "limit is 128")),
    ("a 10,000-character sink name", sink("k" * 10_000), ("sink name", "10,000 characters", "limit is 124")),
    ("a 300-character column name", ("POST", "/api/v1beta2/streams",
                                     {"json": {"name": "cols", "columns": [{"name": "c" * 300, "type": "int64"}]}}),
     ("column name", "limit is 128")),
    ("a stream name that is not an identifier", ("POST", "/api/v1beta2/streams", {"json": {**STREAM, "name": "a/b"}}),
     ("invalid stream name",)),
    ("5,000 nested parentheses", query("select " + "(" * 5000 + "k" + ")" * 5000 + " from table(probed)"),
     ("nests more than 128 levels", "line 1, column 136")),
    ("a CASE nested 2,000 deep", query("select " + "case when k > 0 then " * 2000 + "1" + " else 0 end" * 2000
                                       + " from table(probed)"), ("nests more than 128 levels",)),
    ("a 100,000-term expression", query("select " + "+".join(["k"] * 100_000) + " from table(probed)"),
     ("chains more than 256 operators",)),
    ("300,000 characters of SQL", query("select " + "+".join(["k"] * 150_000) + " from table(probed)"),
     ("SQL text is 300,025 characters long", "limit is 262,144")),
    ("a WINDOW clause", query("select k from table(probed) window w as (partition by k)"),
     ("WINDOW is not supported", "line 1, column")),
    ("an unknown stream in SQL", query("select k from table(nowhere)"), ("nowhere",)),
    ("SQL that does not parse", query("selec k from probed"), ("line 1",)),
    ("ingest into an unknown stream", ("POST", "/api/v1beta2/streams/nowhere/ingest",
                                       {"json": {"columns": ["k"], "data": [[1]]}}), ("nowhere",)),
    ("ingest into a 300-character stream name", ("POST", f"/api/v1beta2/streams/{'s' * 300}/ingest",
                                                 {"json": {"columns": ["k"], "data": [[1]]}}), ("does not exist",)),
    ("a value of the wrong type", ("POST", "/api/v1beta2/streams/probed/ingest",
                                   {"json": {"columns": ["k"], "data": [["x"]]}}), ("k",)),
    ("a body that is not JSON", ("POST", "/api/v1beta2/queries",
                                 {"content": b"{nope", "headers": {"Content-Type": "application/json"}}), ("request body is not valid JSON",)),
    ("an unknown sink type", sink("typo_sink", type="kafak"), ("unknown sink type 'kafak'",)),
    ("an unknown sink", ("GET", "/api/v1beta2/sinks/nope", {}), ("nope",)),
    ("a PATCH of an unknown field", ("PATCH", "/api/v1beta2/sinks/nope", {"json": {"x": 1}}), ("nope",)),
]


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SinkflowServer]:
    with running(SinkflowServer(tmp_path_factory.mktemp("probes") / "data")) as srv:
        with srv.client() as api:
            assert api.post("/api/v1beta2/streams", json=STREAM).status_code == 201
        yield srv


@pytest.mark.parametrize(("what", "request_", "words"), PROBES, ids=[p[0] for p in PROBES])
def test_every_probe_gets_a_4xx_naming_the_problem(probed: SinkflowServer, what: str,
                                                   request_: tuple[str, str, dict[str, Any]],
                                                   words: tuple[str, ...]) -> None:
    method, path, options = request_
    with probed.client() as api:
        response = api.request(method, path, **options)
        assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
        message = response.json()["message"]
        for word in words:
            assert word in message, f"{what}: {message!r} lacks {word!r}"
        # The server survived and still answers.
        assert api.get("/api/v1beta2/streams/probed").status_code == 200


def test_no_probe_created_anything(probed: SinkflowServer) -> None:
    with probed.client() as api:
        assert [s["name"] for s in api.get("/api/v1beta2/streams").json()] == ["probed"]
        assert api.get("/api/v1beta2/sinks").json() == []


def test_a_non_ascii_api_key_is_refused_with_401(tmp_path: Path) -> None:
    with running(SinkflowServer(tmp_path / "data", api_key="k-123456")) as srv:
        for given in ("ключ".encode(), b"k-12345\xff", "k-123456é".encode("latin-1")):
            response = httpx.get(f"{srv.url}/api/v1beta2/streams", headers=[(b"X-Api-Key", given)])
            assert response.status_code == 401, response.text
            assert "X-Api-Key" in response.json()["message"]
        assert httpx.get(f"{srv.url}/api/v1beta2/streams", headers={"X-Api-Key": "k-123456"}).status_code == 200
