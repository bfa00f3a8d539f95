"""Python and remote user-defined functions as a client uses them against a real server: the
statements of Timeplus's docs (docs/py-udf.md, docs/remote-udf.md), batch calls, errors naming the
function, persistence across a restart, and a streaming query calling one."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.api.test_api import read_sse, rows, sql, unique
from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer


def add_five(name: str) -> str:
    """docs/py-udf.md's first example, under ``name``."""
    return (f"CREATE OR REPLACE FUNCTION {name}(value uint16) RETURNS int LANGUAGE PYTHON AS $$\n"
            f"def {name}(value):\n"
            "    for i in range(len(value)):\n"
            "        value[i] = value[i] + 5\n"
            "    return value\n"
            "$$;")


@pytest.fixture
def api(server: SinkflowServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def test_a_python_function_from_the_docs_is_called_over_a_batch_of_rows(api: httpx.Client) -> None:
    fn, stream = unique("add_five"), unique("n")
    assert sql(api, add_five(fn)).status_code == 200
    assert rows(api, f"SELECT {fn}(1) AS v") == [{"v": 6}]
    assert sql(api, f"CREATE STREAM {stream} (n uint16)").status_code == 200
    assert sql(api, f"INSERT INTO {stream} (n) VALUES (1), (2), (30)").status_code == 200
    assert rows(api, f"SELECT n, {fn}(n) AS v FROM table({stream}) ORDER BY n") == [
        {"n": 1, "v": 6}, {"n": 2, "v": 7}, {"n": 30, "v": 35}]
    # Two arguments, strings: one list per argument.
    joined = unique("joined")
    created = sql(api, f"CREATE FUNCTION {joined}(a string, b int64) RETURNS string LANGUAGE PYTHON AS $$\n"
                       f"def {joined}(a, b):\n    return [x.upper() + str(y) for x, y in zip(a, b)]\n$$")
    assert created.status_code == 200, created.text
    assert rows(api, f"SELECT {joined}('ab', n) AS s FROM table({stream}) ORDER BY n") == [
        {"s": "AB1"}, {"s": "AB2"}, {"s": "AB30"}]
    again = sql(api, f"CREATE FUNCTION {joined}(a string, b int64) RETURNS string LANGUAGE PYTHON AS 'def {joined}(a, b): return a'")
    assert again.status_code == 409 and "OR REPLACE" in again.json()["message"]
    assert sql(api, f"DROP FUNCTION {joined}").status_code == 200
    gone = sql(api, f"SELECT {joined}('a', 1)")
    assert gone.status_code == 400 and f"unknown function '{joined}'" in gone.json()["message"]
    assert sql(api, f"DROP FUNCTION IF EXISTS {joined}").status_code == 200
    assert sql(api, f"DROP FUNCTION {joined}").status_code == 404


def test_errors_in_the_users_code_name_the_function_and_the_python_error(api: httpx.Client) -> None:
    broken, short, wrong = unique("broken"), unique("short"), unique("wrong")
    assert sql(api, f"CREATE FUNCTION {broken}(x int32) RETURNS int32 LANGUAGE PYTHON AS $$\n"
                    f"def {broken}(x):\n    return [v // 0 for v in x]\n$$").status_code == 200
    failed = sql(api, f"SELECT {broken}(1)")
    assert failed.status_code == 400
    assert f"Python function '{broken}' failed: ZeroDivisionError" in failed.json()["message"]
    assert sql(api, f"CREATE FUNCTION {short}(x int32) RETURNS int32 LANGUAGE PYTHON AS $$\n"
                    f"def {short}(x):\n    return []\n$$").status_code == 200
    answer = sql(api, f"SELECT {short}(number::int32) FROM numbers(3)")
    assert answer.status_code == 400 and "returned 0 values for 3 rows" in answer.json()["message"]
    syntax = sql(api, f"CREATE FUNCTION {wrong}(x int32) RETURNS int32 LANGUAGE PYTHON AS $$\ndef {wrong}(x:\n$$")
    assert syntax.status_code == 400 and "SyntaxError" in syntax.json()["message"]
    misnamed = sql(api, f"CREATE FUNCTION {wrong}(x int32) RETURNS int32 LANGUAGE PYTHON AS $$\ndef other(x):\n    return x\n$$")
    assert misnamed.status_code == 400 and f"no function named '{wrong}'" in misnamed.json()["message"]
    assert sql(api, f"SELECT {wrong}(1)").status_code == 400  # nothing was created
    builtin = sql(api, "CREATE FUNCTION lower(x string) RETURNS string LANGUAGE PYTHON AS 'def lower(x): return x'")
    assert builtin.status_code == 400 and "built-in" in builtin.json()["message"]
    assert rows(api, "SELECT lower('AB') AS s") == [{"s": "ab"}]


def test_other_languages_aggregates_and_package_installs_are_refused_by_name(api: httpx.Client) -> None:
    js = sql(api, "CREATE OR REPLACE FUNCTION magic_number(v int)\nRETURNS bool\nLANGUAGE JAVASCRIPT AS $$\n"
                  "function magic_number(values){\n  return values.map(v=>42)\n}\n$$")
    assert js.status_code == 400 and "LANGUAGE JAVASCRIPT" in js.json()["message"]
    aggregate = sql(api, "CREATE OR REPLACE AGGREGATE FUNCTION getMax(value uint16) RETURNS uint16 LANGUAGE PYTHON AS $$\n"
                         "class getMax:\n    pass\n$$")
    assert aggregate.status_code == 400 and "aggregate" in aggregate.json()["message"]
    install = sql(api, "SYSTEM INSTALL PYTHON PACKAGE 'requests'")
    assert install.status_code == 400 and "arbitrary code" in install.json()["message"]
    uninstall = sql(api, "SYSTEM UNINSTALL PYTHON PACKAGE 'requests'")
    assert uninstall.status_code == 400
    packages = {row["package_name"].lower(): row["version"] for row in rows(api, "SYSTEM LIST PYTHON PACKAGES")}
    assert packages["pyarrow"] and packages["duckdb"]


def test_a_streaming_query_calls_a_python_function_on_each_new_row(api: httpx.Client) -> None:
    fn, stream = unique("add_five"), unique("s")
    assert sql(api, add_five(fn)).status_code == 200
    assert sql(api, f"CREATE STREAM {stream} (n uint16)").status_code == 200

    def feed() -> None:
        assert sql(api, f"INSERT INTO {stream} (n) VALUES (10), (20), (0)").status_code == 200

    with api.stream("POST", "/api/v1beta2/queries", json={"sql": f"SELECT n, {fn}(n) AS v FROM {stream} LIMIT 3"},
                    headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        events = read_sse(response, on_start=lambda: threading.Thread(target=feed).start())
    tailed = [row for event, batch in events if event == "row" for row in batch]
    assert sorted(map(tuple, tailed)) == [(0, 5), (10, 15), (20, 25)]


def test_a_remote_function_posts_json_columns_and_reads_the_result(api: httpx.Client, httpserver: HTTPServer) -> None:
    bodies: list[dict[str, object]] = []
    headers: list[str | None] = []

    def answer(request: Request) -> Response:
        body = json.loads(request.data)
        bodies.append(body)
        headers.append(request.headers.get("passcode"))
        result = [f"{ip}:{n}" for ip, n in zip(body["ip"], body["n"])]
        return Response(json.dumps({"result": result}), content_type="application/json")

    httpserver.expect_request("/udf", method="POST").respond_with_handler(answer)
    httpserver.expect_request("/broken", method="POST").respond_with_data("no", status=500)
    fn, broken = unique("lookup"), unique("down")
    created = sql(api, f"CREATE REMOTE FUNCTION {fn}(ip string, n int32) RETURNS string\n"
                       f" URL '{httpserver.url_for('/udf')}'\n AUTH_METHOD 'auth_header'\n"
                       " AUTH_HEADER 'passcode'\n AUTH_KEY 's3cret-key';")
    assert created.status_code == 200, created.text
    assert "s3cret" not in created.text
    got = rows(api, f"SELECT {fn}(concat('10.0.0.', to_string(number)), number::int32) AS r FROM numbers(3) ORDER BY r")
    assert got == [{"r": "10.0.0.0:0"}, {"r": "10.0.0.1:1"}, {"r": "10.0.0.2:2"}]
    assert len(bodies) == 1 and bodies[0] == {"ip": ["10.0.0.0", "10.0.0.1", "10.0.0.2"], "n": [0, 1, 2]}
    assert headers == ["s3cret-key"]
    assert sql(api, f"CREATE REMOTE FUNCTION {broken}(ip string) RETURNS string URL '{httpserver.url_for('/broken')}' "
                    "AUTH_METHOD 'none'").status_code == 200
    failed = sql(api, f"SELECT {broken}('1.2.3.4')")
    assert failed.status_code == 400 and f"remote function '{broken}' failed" in failed.json()["message"]
    assert "HTTP 500" in failed.json()["message"]


def test_functions_survive_a_restart_with_the_auth_key_sealed(tmp_path: Path, httpserver: HTTPServer) -> None:
    fn, remote = unique("add_five"), unique("echo")
    httpserver.expect_request("/echo", method="POST", headers={"passcode": "very-s3cret"}).respond_with_handler(
        lambda request: Response(json.dumps({"result": json.loads(request.data)["x"]}), content_type="application/json"))
    data_dir = tmp_path / "data"
    with running(SinkflowServer(data_dir)) as first, first.client() as api:
        assert sql(api, add_five(fn)).status_code == 200
        assert sql(api, f"CREATE REMOTE FUNCTION {remote}(x string) RETURNS string URL '{httpserver.url_for('/echo')}' "
                        "AUTH_METHOD 'auth_header' AUTH_HEADER 'passcode' AUTH_KEY 'very-s3cret'").status_code == 200
    assert "very-s3cret" not in "".join(p.read_text(errors="replace") for p in data_dir.rglob("*") if p.is_file())
    with running(SinkflowServer(data_dir)) as second, second.client() as api:
        assert rows(api, f"SELECT {fn}(37) AS v, {remote}('hi') AS e") == [{"v": 42, "e": "hi"}]
        assert sql(api, f"DROP FUNCTION {fn}").status_code == 200
        assert sql(api, f"DROP FUNCTION {remote}").status_code == 200
        assert sql(api, f"DROP FUNCTION {remote}").status_code == 404
        assert sql(api, f"DROP FUNCTION IF EXISTS {remote}").status_code == 200
    with running(SinkflowServer(data_dir)) as third, third.client() as api:
        assert sql(api, f"SELECT {fn}(37)").status_code == 400
        assert sql(api, f"SELECT {remote}('hi')").status_code == 400


def test_sql_and_python_functions_drop_alike(api: httpx.Client) -> None:
    lam, py = unique("twice"), unique("add_five")
    assert sql(api, f"CREATE FUNCTION {lam} AS (x) -> x * 2").status_code == 200
    assert sql(api, add_five(py)).status_code == 200
    assert rows(api, f"SELECT {lam}({py}(1)) AS v") == [{"v": 12}]
    assert sql(api, f"DROP FUNCTION {lam}").status_code == 200
    assert sql(api, f"DROP FUNCTION {py}").status_code == 200
    assert sql(api, f"SELECT {lam}(1)").status_code == 400 and sql(api, f"SELECT {py}(1)").status_code == 400


def dictionary(name: str, stream: str) -> str:
    return (f"CREATE DICTIONARY {name} (id uint32, label string, weight float64) PRIMARY KEY id "
            f"SOURCE(TIMEPLUS(STREAM '{stream}')) LAYOUT(HASHED()) LIFETIME(MIN 0 MAX 1000)")


def test_a_streaming_query_looks_up_a_dictionary_and_calls_a_python_function(api: httpx.Client) -> None:
    dims, facts, dic, fn = unique("dims"), unique("facts"), unique("dic"), unique("add_five")
    assert sql(api, f"CREATE MUTABLE STREAM {dims} (id uint32, label string, weight float64) PRIMARY KEY id").status_code == 200
    assert sql(api, f"INSERT INTO {dims} (id, label, weight) VALUES (1, 'one', 0.5), (2, 'two', 2)").status_code == 200
    assert sql(api, f"CREATE STREAM {facts} (id uint32, n uint16)").status_code == 200
    created = sql(api, dictionary(dic, dims))
    assert created.status_code == 200, created.text
    assert sql(api, add_five(fn)).status_code == 200
    # A dimension row changed after the dictionary was created is what lookups see.
    assert sql(api, f"INSERT INTO {dims} (id, label, weight) VALUES (2, 'deux', 3)").status_code == 200

    def feed() -> None:
        assert sql(api, f"INSERT INTO {facts} (id, n) VALUES (1, 10), (2, 20), (9, 0)").status_code == 200

    query = (f"SELECT id, dict_get('{dic}', 'label', id) AS label, dict_get_or_default('{dic}', 'weight', id, -1) AS w, "
             f"dict_has('{dic}', id) AS known, {fn}(n) AS v FROM {facts} LIMIT 3")
    with api.stream("POST", "/api/v1beta2/queries", json={"sql": query},
                    headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        events = read_sse(response, on_start=lambda: threading.Thread(target=feed).start())
    tailed = sorted(tuple(row) for event, batch in events if event == "row" for row in batch)
    assert tailed == [(1, "one", 0.5, 1, 15), (2, "deux", 3.0, 1, 25), (9, "", -1.0, 0, 5)]
    assert {row["name"]: row["source"] for row in rows(api, "SHOW DICTIONARIES")}[dic] == dims


def test_dictionaries_refuse_sources_they_cannot_read_and_survive_a_restart(tmp_path: Path) -> None:
    with running(SinkflowServer(tmp_path / "data")) as first, first.client() as api:
        mysql = sql(api, "CREATE DICTIONARY d (id uint32, v string) PRIMARY KEY id "
                         "SOURCE(MYSQL(HOST 'h' PORT 3306 USER 'u' PASSWORD 'p' TABLE 't' DB 'db')) LAYOUT(HASHED()) LIFETIME(0)")
        assert mysql.status_code == 400 and "SOURCE(MYSQL)" in mysql.json()["message"]
        assert "'p'" not in mysql.text
        unknown = sql(api, "SELECT dict_get('nope', 'v', 1)")
        assert unknown.status_code == 400 and "dictionary 'nope' does not exist" in unknown.json()["message"]
        assert sql(api, "CREATE STREAM dims (id uint32, label string, weight float64)").status_code == 200
        assert sql(api, "INSERT INTO dims (id, label, weight) VALUES (7, 'seven', 7)").status_code == 200
        assert sql(api, dictionary("dic", "dims")).status_code == 200
        assert sql(api, dictionary("dic", "dims")).status_code == 409
        attribute = sql(api, "SELECT dict_get('dic', 'nope', 1)")
        assert attribute.status_code == 400 and "no attribute 'nope'" in attribute.json()["message"]
    with running(SinkflowServer(tmp_path / "data")) as second, second.client() as api:
        assert rows(api, "SELECT dict_get('dic', 'label', 7) AS l") == [{"l": "seven"}]
        assert sql(api, "DROP DICTIONARY dic").status_code == 200
        assert rows(api, "SHOW DICTIONARIES") == []
        assert sql(api, "SELECT dict_get('dic', 'label', 7)").status_code == 400
