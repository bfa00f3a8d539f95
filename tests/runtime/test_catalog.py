"""The catalog keeps sinks, secrets (apart) and checkpoints across restarts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sinkflow.catalog import Catalog, Checkpoint, SinkRecord
from sinkflow.errors import AlreadyExists, NotFound


def _record(name: str = "alerts") -> SinkRecord:
    return SinkRecord(id=f"id-{name}", name=name, description="d", sql="select 1", type="slack",
                      properties={"template": "{{ .x }}"}, secrets={"url": "https://hooks.example/T0/B0/secret"})


def test_sinks_and_checkpoints_survive_reopen(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    catalog.add_sink(_record())
    catalog.save_checkpoint("id-alerts", Checkpoint(7, b"\x00state", {"rows_delivered": 70}, 1.0))
    catalog.set_paused("id-alerts", True)
    catalog.close()

    reopened = Catalog(tmp_path)
    [record] = reopened.sinks()
    assert (record.name, record.paused, record.secrets) == ("alerts", True, {"url": "https://hooks.example/T0/B0/secret"})
    checkpoint = reopened.checkpoint("id-alerts")
    assert checkpoint is not None
    assert (checkpoint.epoch, checkpoint.snapshot, checkpoint.counters) == (7, b"\x00state", {"rows_delivered": 70})


def test_secrets_are_stored_apart_and_private(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    catalog.add_sink(_record())
    catalog.close()
    assert b"secret" not in (tmp_path / "catalog.db").read_bytes()
    assert stat.S_IMODE((tmp_path / "secrets.db").stat().st_mode) == 0o600


def test_duplicate_names_and_unknown_ids_are_refused(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    catalog.add_sink(_record())
    with pytest.raises(AlreadyExists, match="'alerts'"):
        catalog.add_sink(_record())
    with pytest.raises(NotFound):
        catalog.delete_sink("nope")
    catalog.delete_sink("id-alerts")
    assert catalog.sinks() == []
    assert catalog.checkpoint("id-alerts") is None
