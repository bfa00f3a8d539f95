"""The catalog keeps sinks, secrets (apart) and checkpoints across restarts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sinkflow.catalog import Catalog, Checkpoint, SinkRecord
from sinkflow.errors import AlreadyExists, NotFound, SecretsUnavailable


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


def _modes(data_dir: Path) -> dict[str, int]:
    return {path.name: stat.S_IMODE(path.stat().st_mode) for path in data_dir.iterdir()
            if path.name.startswith("secret")}


def test_every_file_holding_a_secret_is_private_and_sealed(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    catalog.add_sink(_record())
    # While the store is open its -wal and -shm files exist and hold the latest writes.
    modes = _modes(tmp_path)
    assert {"secrets.db", "secrets.db-wal", "secrets.db-shm", "secret.key"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes
    for name in ("secrets.db", "secrets.db-wal"):
        assert b"hooks.example" not in (tmp_path / name).read_bytes(), f"{name} holds the secret in clear"
    catalog.close()
    assert b"hooks.example" not in (tmp_path / "secrets.db").read_bytes()


def test_the_key_may_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SINKFLOW_SECRET_KEY", "a long random text for this test only")
    catalog = Catalog(tmp_path)
    catalog.add_sink(_record())
    catalog.close()
    assert not (tmp_path / "secret.key").exists()
    [record] = Catalog(tmp_path).sinks()
    assert record.secrets == {"url": "https://hooks.example/T0/B0/secret"} and record.secrets_error == ""
    monkeypatch.setenv("SINKFLOW_SECRET_KEY", "another key")
    [record] = Catalog(tmp_path).sinks()
    assert record.secrets == {}
    assert "cannot be decrypted with the key from $SINKFLOW_SECRET_KEY" in record.secrets_error


def test_a_lost_secrets_store_is_reported_on_the_sinks_that_need_it(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    catalog.add_sink(_record())
    catalog.add_sink(SinkRecord(id="id-plain", name="plain", description="", sql="select 1", type="timeplus",
                                properties={"stream_name": "out"}))
    catalog.close()
    for path in tmp_path.glob("secrets.db*"):
        path.unlink()
    records = {r.name: r for r in Catalog(tmp_path).sinks()}
    assert "its secrets (url) are missing from the secrets store" in records["alerts"].secrets_error
    assert records["plain"].secrets_error == ""


def test_a_damaged_secrets_store_is_reported_and_refuses_new_secrets(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    catalog.add_sink(_record())
    catalog.close()
    for path in tmp_path.glob("secrets.db*"):
        path.write_bytes(b"\x13garbage" * 512)
    damaged = Catalog(tmp_path)
    [record] = damaged.sinks()
    assert "secrets store" in record.secrets_error and "cannot be read" in record.secrets_error
    with pytest.raises(SecretsUnavailable, match="cannot be read"):
        damaged.add_sink(_record("more"))
    assert [r.name for r in damaged.sinks()] == ["alerts"]
