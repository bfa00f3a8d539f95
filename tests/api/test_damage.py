"""Damaged stream data on disk, seen from outside: the stream's status and metric report it, a
sink replaying the stream never receives it."""

from __future__ import annotations

import time
from pathlib import Path

from tests.api.test_api import sql
from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer
from tests.streams.test_checksums import damage


def test_a_sink_replaying_a_damaged_stream_gets_only_intact_rows(tmp_path: Path) -> None:
    with running(SinkflowServer(tmp_path / "data")) as srv:
        with srv.client() as api:
            api.post("/api/v1beta2/streams", json={"name": "src", "columns": [{"name": "id", "type": "int64"}]})
            for start in range(0, 300, 100):
                api.post("/api/v1beta2/streams/src/ingest",
                         json={"columns": ["id"], "data": [[i] for i in range(start, start + 100)]})
        srv.stop()
        damage(srv.data_dir / "streams" / "src" / "log", 1)
        srv.start()
        with srv.client() as api:
            created = api.post("/api/v1beta2/sinks", json={
                "name": "copy", "type": "timeplus", "properties": {"stream_name": "copied"},
                "sql": "select id from src settings seek_to='earliest'"})
            assert created.status_code == 201, created.text
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                rows = sql(api, "select count() as n from table(copied)").json().get("rows")
                if rows == [{"n": 200}]:
                    break
                time.sleep(0.2)
            copied = sql(api, "select id from table(copied) order by id").json()["rows"]
            assert [r["id"] for r in copied] == [*range(0, 100), *range(200, 300)]
            assert api.get("/api/v1beta2/streams/src").json()["damaged_rows"] == 100
            assert 'sinkflow_stream_damaged_rows_total{stream="src"} 100' in api.get("/metrics").text
    assert "rows 100..199" in srv.log_path.read_text()
