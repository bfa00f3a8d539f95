"""The ``sinkflow`` command against a real server process, as a user at a terminal runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.servers.sinkflow import SinkflowServer


def run(server: SinkflowServer, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "sinkflow.cli", "--server", server.url, *args],
                          capture_output=True, text=True, timeout=120)
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
    shown = json.loads(run(server, "sink", "show", "copy_v").stdout)
    assert shown["query"] == "select v from src" and shown["properties"] == {"stream_name": "copied"}
    run(server, "sink", "pause", "copy_v")
    assert json.loads(run(server, "sink", "show", "copy_v").stdout)["stats"]["state"] == "paused"
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
