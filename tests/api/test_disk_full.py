"""A full disk: ingest answers 507 naming the problem, and a stream sink that could not write
recovers by itself once space is back, losing nothing. The data dir is on a small tmpfs (the
test mounts one: it needs root, as the test machines run it)."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sinkflow.runtime.retry import is_disk_full, is_retriable
from tests.api.test_api import sql
from tests.servers.process import running
from tests.servers.sinkflow import SinkflowServer


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; deleting it gives the space back."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def ingest(api: httpx.Client, stream: str, ids: range) -> httpx.Response:
    return api.post(f"/api/v1beta2/streams/{stream}/ingest",
                    json={"columns": ["id", "note"], "data": [[i, "x" * 200] for i in ids]})


def wait_for(check: object, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_full_disk_gets_507_and_a_stream_sink_recovers_by_itself(small_disk: Path) -> None:
    # The data dir is the small disk itself; the server's log stays outside it.
    with running(SinkflowServer(small_disk)) as srv, srv.client() as api:
        api.post("/api/v1beta2/streams", json={"name": "src", "columns": [{"name": "id", "type": "int64"},
                                                                           {"name": "note", "type": "string"}]})
        sink = api.post("/api/v1beta2/sinks", json={"name": "copy", "type": "timeplus", "sql": "select id, note from src",
                                                    "properties": {"stream_name": "dst"}}).json()
        status = f"/api/v1beta2/sinks/{sink['id']}/status"
        assert ingest(api, "src", range(0, 1000)).status_code == 200
        # The sink creates dst when its pipeline starts, just after the sink is answered.
        wait_for(lambda: sql(api, "select count() as n from table(dst)").json().get("rows") == [{"n": 1000}], "1000 rows")
        append_bytes = sum(p.stat().st_size for p in (small_disk / "streams" / "src" / "log").glob("*.arrows"))
        filler = fill(small_disk)

        refused = ingest(api, "src", range(1000, 2000))
        assert refused.status_code == 507, refused.text
        assert refused.json()["code"] == "INSUFFICIENT_STORAGE"
        assert "no space left on the disk of the data dir" in refused.json()["message"]
        # Nothing changes while the catalog cannot be written either.
        assert api.post(f"/api/v1beta2/sinks/{sink['id']}/pause").status_code == 507
        assert api.get(status).json()["state"] == "running"

        # Room for one more append of 1,000 rows to src, not for the sink's copy of it too.
        with open(filler, "r+b") as f:
            f.truncate(filler.stat().st_size - append_bytes * 3 // 2)
        assert ingest(api, "src", range(1000, 2000)).status_code == 200
        wait_for(lambda: api.get(status).json()["state"] == "retrying", "the sink to retry on the full disk")
        assert "No space left" in api.get(status).json()["last_error"]
        filler.unlink()
        wait_for(lambda: sql(api, "select count() as n from table(dst)").json()["rows"] == [{"n": 2000}],
                 "the sink to deliver every row once space is back")
        rows = sql(api, "select count() as n, count(distinct id) as ids, min(id) as lo, max(id) as hi "
                        "from table(dst)").json()["rows"]
        assert rows == [{"n": 2000, "ids": 2000, "lo": 0, "hi": 1999}]
        assert api.get(status).json()["state"] == "running"
        assert ingest(api, "src", range(2000, 2010)).status_code == 200


def test_a_full_disk_under_the_catalog_is_retried_not_fatal(small_disk: Path) -> None:
    """SQLite's "database or disk is full" (a checkpoint, a sink's progress) is a retryable
    failure like the stream log's ENOSPC: the sink retries and recovers instead of failing."""
    db = sqlite3.connect(small_disk / "catalog.db", isolation_level=None)
    db.execute("CREATE TABLE t (v BLOB)")
    filler = fill(small_disk)
    with pytest.raises(sqlite3.OperationalError) as full:
        for _ in range(100):
            db.execute("INSERT INTO t VALUES (?)", (b"x" * 65536,))
    assert "full" in str(full.value)
    assert is_retriable(full.value) and is_disk_full(full.value)
    filler.unlink()
    db.execute("INSERT INTO t VALUES (?)", (b"x" * 65536,))
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] >= 1
