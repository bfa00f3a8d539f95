"""Runaway statements are bounded: a query timeout, cancellation by DELETE and by the client
going away, and a refused giant padding; the server keeps answering throughout."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer

QUERIES = "/api/v1beta2/queries"
# About 10 s of CPU per 20,000 rows here: far longer than any timeout below.
SLOW = "select count() as n from table(slow) where match(lpad(to_string(k), 20000, 'ab'), '(a|b)*c')"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SinkflowServer]:
    data_dir = tmp_path_factory.mktemp("limits") / "data"
    with running(SinkflowServer(data_dir, args=("--query-timeout", "1", "--memory-limit", "30000000"))) as srv:
        with srv.client() as api:
            api.post("/api/v1beta2/streams", json={"name": "slow", "columns": [{"name": "k", "type": "int64"}]})
            for start in range(0, 100_000, 50_000):
                api.post("/api/v1beta2/streams/slow/ingest",
                         json={"columns": ["k"], "data": [[i] for i in range(start, start + 50_000)]})
        yield srv


def running_ids(api: httpx.Client) -> list[str]:
    return [q["id"] for q in api.get(QUERIES).json()]


def test_a_query_past_the_timeout_is_stopped_with_408(limited: SinkflowServer) -> None:
    with limited.client() as api:
        response = api.post(QUERIES, json={"sql": SLOW})
        assert response.status_code == 408, response.text
        assert response.json()["code"] == "QUERY_TIMEOUT"
        assert "query timeout of 1s" in response.json()["message"]
        assert running_ids(api) == []
        assert api.post(QUERIES, json={"sql": "select count() as n from table(slow)"}).json()["rows"] == [{"n": 100_000}]


def test_a_computing_query_is_listed_and_stopped_by_delete(tmp_path: Path) -> None:
    with running(SinkflowServer(tmp_path / "data")) as srv, srv.client() as api:
        api.post("/api/v1beta2/streams", json={"name": "slow", "columns": [{"name": "k", "type": "int64"}]})
        api.post("/api/v1beta2/streams/slow/ingest", json={"columns": ["k"], "data": [[i] for i in range(50_000)]})
        answers: list[httpx.Response] = []
        client = threading.Thread(target=lambda: answers.append(
            srv.client().post(QUERIES, json={"sql": SLOW, "query_id": "mine"})))
        client.start()
        deadline = time.monotonic() + 20
        while "mine" not in running_ids(api) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [q["sql"] for q in api.get(QUERIES).json()] == [SLOW]
        assert api.delete(f"{QUERIES}/mine").status_code == 204
        client.join(30)
        assert answers and answers[0].status_code == 409, answers
        assert answers[0].json()["message"] == "the query was stopped: it was deleted"
        assert running_ids(api) == []


def test_a_query_whose_client_went_away_is_stopped(limited: SinkflowServer) -> None:
    with limited.client() as api, httpx.Client(base_url=limited.url, timeout=0.3) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            impatient.post(QUERIES, json={"sql": SLOW, "query_id": "gone"})
        deadline = time.monotonic() + 20
        while "gone" in running_ids(api) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "gone" not in running_ids(api)


def test_a_giant_padding_is_refused_instead_of_taking_gigabytes(limited: SinkflowServer) -> None:
    with limited.client() as api:
        response = api.post(QUERIES, json={"sql": "select lpad('a', 2000000000, 'x') as p from table(slow) limit 1"})
        assert response.status_code == 400, response.text
        assert "padded length over 16,777,216 characters is refused" in response.json()["message"]


def test_a_query_past_the_memory_limit_fails_with_a_clear_error(limited: SinkflowServer) -> None:
    with limited.client() as api:
        response = api.post(QUERIES, json={"sql": "select group_array(lpad('x', 1000, 'y')) as a from table(slow)"})
        assert response.status_code == 400, response.text[:300]
        assert "Out of Memory Error" in response.json()["message"]
        assert api.post(QUERIES, json={"sql": "select max(k) as m from table(slow)"}).json()["rows"] == [{"m": 99_999}]
