"""The ``sinkflow`` command against a real server process, as a user at a terminal runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.servers.sinkflow import SinkflowServer


def run(server: SinkflowServer, *args: str, ok: bool = True, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """``sinkflow --server URL ARGS`` as on a terminal ``columns`` wide."""
    done = subprocess.run([sys.executable, "-m", "sinkflow.cli", "--server", server.url, *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": str(columns)})
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def test_streams_ingest_and_bounded_queries(server: SinkflowServer, tmp_path: Path) -> None:
    run(server, "stream", "create", "readings", "dev:string", "temp:float64", "ok:bool")
    assert "temp float64" in run(server, "stream", "list").stdout
    assert "float64" in run(server, "stream", "describe", "readings").stdout
    csv_file = tmp_path / "r.csv"
    csv_file.write_text("dev,temp,ok\n" + "".join(f"d{i % 3},{i / 2},{'true' if i % 2 else 'false'}\n" for i in range(2500)))
    done = run(server, "ingest", "readings", str(csv_file), "--batch-size", "1000")
    assert "ingested 2,500 rows" in done.stdout
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text("".join(json.dumps({"dev": "dz", "temp": 1.5, "ok": True}) + "\n" for _ in range(10)))
    assert "ingested 10 rows" in run(server, "ingest", "readings", str(jsonl)).stdout
    out = run(server, "query", "--format", "jsonl", "select dev, count() as n from table(readings) group by dev order by dev").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [{"dev": "d0", "n": 834}, {"dev": "d1", "n": 833}, {"dev": "d2", "n": 833}, {"dev": "dz", "n": 10}]
    table = run(server, "query", "select dev, temp from table(readings) where dev = 'dz' limit 3").stdout
    assert "3 rows" in table and "dev" in table and "temp" in table and table.count("dz") == 3
    run(server, "stream", "drop", "readings")
    assert "readings" not in run(server, "stream", "list").stdout


def test_a_bad_file_row_is_named_by_its_line_in_the_file(server: SinkflowServer, tmp_path: Path) -> None:
    run(server, "stream", "create", "strict", "n:int32")
    bad = tmp_path / "bad.csv"
    bad.write_text("n\n" + "".join(f"{i}\n" for i in range(1, 1500)) + "many\n")
    done = run(server, "ingest", "strict", str(bad), "--batch-size", "1000", ok=False)
    assert done.returncode != 0
    assert "row 1500" in done.stderr and "'n'" in done.stderr and "many" in done.stderr


def test_sink_commands(server: SinkflowServer) -> None:
    run(server, "stream", "create", "src", "v:int64")
    run(server, "sink", "create", "--name", "copy_v", "--type", "timeplus", "--sql", "select v from src",
        "-p", "stream_name=copied")
    listed = run(server, "sink", "list").stdout
    assert "copy_v" in listed and "timeplus" in listed
    shown = json.loads(run(server, "sink", "show", "copy_v", "--json").stdout)
    assert shown["query"] == "select v from src" and shown["properties"] == {"stream_name": "copied"}
    run(server, "sink", "pause", "copy_v")
    assert json.loads(run(server, "sink", "show", "copy_v", "--json").stdout)["stats"]["state"] == "paused"
    run(server, "sink", "resume", "copy_v")
    run(server, "sink", "delete", "copy_v")
    assert "copy_v" not in run(server, "sink", "list").stdout
    http_props = run(server, "sink", "types", "http").stdout
    assert "retry_interval" in http_props and '"10s"' in http_props
    refused = run(server, "sink", "create", "--name", "x", "--type", "kafka", "--sql", "select v from src",
                  "-p", "topic=t", ok=False)
    assert "brokers" in refused.stderr


def test_file_ingest_fills_column_defaults(server: SinkflowServer, tmp_path: Path) -> None:
    run(server, "query", "CREATE STREAM hits (url string, host string DEFAULT domain(url), "
                         "n int32 DEFAULT length(url))")
    assert "DEFAULT domain(url)" in run(server, "stream", "describe", "hits").stdout
    csv_file = tmp_path / "hits.csv"
    csv_file.write_text("url\nhttps://timeplus.com/docs\nhttp://a.io/\n")
    assert "ingested 2 rows" in run(server, "ingest", "hits", str(csv_file)).stdout
    out = run(server, "query", "--format", "jsonl", "select host, n from table(hits) order by n").stdout
    assert [json.loads(line) for line in out.splitlines()] == [{"host": "a.io", "n": 12}, {"host": "timeplus.com", "n": 25}]
def test_sink_show_and_update_change_only_what_is_given(server: SinkflowServer, tmp_path: Path) -> None:
    run(server, "stream", "create", "cars_cli", "cid:string", "speed_kmh:float32")
    body = tmp_path / "body.json"
    body.write_text('{"text": "car {{ .cid }} at {{ .speed_kmh }} km/h"}')
    long_name = "a_sink_whose_name_is_long_enough_to_be_cut_at_eighty_columns_by_a_table"
    run(server, "sink", "create", "--name", long_name, "--type", "webhook", "--sql",
        "select cid, speed_kmh from cars_cli", "-p", "url=http://127.0.0.1:9/hook", "-p", f"body=@{body}",
        "-p", 'headers={"Authorization": "Bearer s3cret"}', "-p", "paralism=2")
    shown = json.loads(run(server, "sink", "show", long_name, "--json").stdout)
    # A string property takes the text as given (no JSON parsing), an object one JSON, a number a number.
    assert shown["properties"]["body"] == '{"text": "car {{ .cid }} at {{ .speed_kmh }} km/h"}'
    assert shown["properties"]["headers"] == {"Authorization": "********"}
    assert shown["properties"]["paralism"] == 2

    run(server, "sink", "update", long_name, "-p", "body=car {{ .cid }}", "--description", "edited")
    after = json.loads(run(server, "sink", "show", long_name, "--json").stdout)
    assert after["properties"] == {**shown["properties"], "body": "car {{ .cid }}"}
    assert after["description"] == "edited"

    human = run(server, "sink", "show", long_name).stdout
    assert "body" in human and "car {{ .cid }}" in human and "********" in human and "s3cret" not in human
    assert "state history" in human and "last error" in human
    # The name is printed whole on an 80-column terminal.
    assert long_name in run(server, "sink", "list").stdout
    refused = run(server, "sink", "update", long_name, "-p", "bdy=x", ok=False)
    assert "unknown property — did you mean 'body'?" in refused.stderr
    run(server, "sink", "delete", long_name)


def test_a_bounded_sink_needs_the_confirmation_flag(server: SinkflowServer) -> None:
    run(server, "stream", "create", "hist", "v:int64")
    args = ("sink", "create", "--name", "once", "--type", "timeplus", "--sql", "select v from table(hist)",
            "-p", "stream_name=hist_copy")
    refused = run(server, *args, ok=False)
    assert "then stops" in refused.stderr and "--confirm-bounded" in refused.stderr
    assert "once" not in run(server, "sink", "list").stdout
    created = run(server, *args, "--confirm-bounded")
    assert "created sink once" in created.stdout and "then stops" in created.stderr
    run(server, "sink", "delete", "once")


def test_help_names_the_server_variable_and_every_command_is_described() -> None:
    top = subprocess.run([sys.executable, "-m", "sinkflow.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert "SINKFLOW_SERVER" in top.stdout
    for group in ("stream", "sink"):
        listing = subprocess.run([sys.executable, "-m", "sinkflow.cli", group, "--help"], capture_output=True,
                                 text=True, timeout=60).stdout
        commands = listing.split("Commands:")[1].strip().splitlines()
        assert commands and all(len(line.split(None, 1)) == 2 for line in commands), listing


def test_sink_types_say_secret_once_and_show_required_alternatives(server: SinkflowServer) -> None:
    slack = run(server, "sink", "types", "slack").stdout
    assert "(secret)" not in slack and slack.count("secret") == 1
    clickhouse = run(server, "sink", "types", "clickhouse", columns=250).stdout
    assert "one of dsn / hosts" in clickhouse and "one of init_sql / engine" in clickhouse


def test_the_docs_sample_file_ingests_as_the_readme_shows(server: SinkflowServer) -> None:
    sample = Path(__file__).resolve().parents[2] / "docs" / "readings.csv"
    run(server, "stream", "create", "readings_doc", "dev:string", "temp:float64")
    assert "ingested 24 rows into readings_doc" in run(server, "ingest", "readings_doc", str(sample)).stdout
    out = run(server, "query", "--format", "jsonl", "select count() as n from table(readings_doc)").stdout
    assert json.loads(out) == {"n": 24}


def test_query_prints_values_as_timeplus_does_in_csv_and_tables(server: SinkflowServer, tmp_path: Path) -> None:
    run(server, "stream", "create", "speeds_csv", "cid:string", "speed_kmh:float32", "ok:bool",
        "at:datetime64(3)")
    rows = tmp_path / "speeds.jsonl"
    rows.write_text(json.dumps({"cid": "c1", "speed_kmh": 126.95, "ok": True, "at": "2022-01-23 10:00:00"}) + "\n")
    run(server, "ingest", "speeds_csv", str(rows))
    sql = "select cid, speed_kmh, ok, at from table(speeds_csv)"
    assert run(server, "query", "--format", "csv", sql).stdout == (
        "cid,speed_kmh,ok,at\nc1,126.95,true,2022-01-23 10:00:00.000\n")
    table = run(server, "query", sql, columns=120).stdout
    assert "126.95" in table and "true" in table and "2022-01-23 10:00:00.000" in table
    assert "126.9499" not in table and "True" not in table
