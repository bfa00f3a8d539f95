"""``dedup(stream, key…, ttl)``: which rows of a batch are first sightings of their key.

A row is dropped when its key was last *kept* less than ``ttl`` of event time before it (without
a ttl: when its key was ever kept). Rows are decided in arrival order, so replaying the log
repeats the decisions. The state is one Arrow table: the key columns ``k0``, ``k1`` … and ``t``,
the event time (µs) at which each key was last kept; it is also the snapshot format.

A batch is decided in rounds of Arrow operations over all keys at once instead of a Python loop
per row: the key columns are dictionary-encoded into one integer id per key; in each round, a
key's next kept row is its first remaining row whose time reaches the key's last kept time plus
the ttl (every earlier remaining row of the key is dropped), and the key's later rows go to the
next round. Rounds repeat while a key keeps one more row, so without a ttl there is one, and
with a ttl at least as long as a batch's time span at most two. When a short ttl makes keys keep
many rows of one batch (a round settles few rows), or after :data:`MAX_ROUNDS` rounds, the rows
left are decided one by one.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["MAX_ROUNDS", "DedupState"]

#: Vectorized rounds per batch before the remaining rows are decided one by one.
MAX_ROUNDS = 8
# ... also after a round that settled less than 1/_SLOW_ROUND of its rows.
_SLOW_ROUND = 8
# Keys are expired by event time only once there are more than this many.
_EXPIRE_ABOVE = 10_000
_UNITS = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _micros(column: pa.Array) -> pa.Array:
    """A timestamp column as int64 epoch microseconds (nanoseconds rounded down)."""
    values = column.cast(pa.int64())
    unit = column.type.unit
    return pc.divide(values, 1000) if unit == "ns" else pc.multiply(values, _UNITS[unit])


def _key_ids(columns: list[pa.Array]) -> pa.Array:
    """One int64 per row, equal for rows whose key columns are all equal (NULL equals NULL)."""
    ids: pa.Array | None = None
    for column in columns:
        encoded = pc.dictionary_encode(column, null_encoding="encode")
        codes = encoded.indices.cast(pa.int64())
        if ids is not None:
            # Re-encode the (ids, codes) pairs to 0..n-1, so several key columns never overflow.
            pairs = pc.add(pc.multiply(ids, len(encoded.dictionary)), codes)
            codes = pc.dictionary_encode(pairs).indices.cast(pa.int64())
        ids = codes
    assert ids is not None
    return ids


class DedupState:
    """The keys a dedup has kept and when (see the module docstring)."""

    def __init__(self, keys: list[str], key_types: list[pa.DataType], ttl_us: int | None) -> None:
        self.keys = keys
        self.ttl_us = ttl_us
        self.schema = pa.schema([pa.field(f"k{i}", t) for i, t in enumerate(key_types)] + [pa.field("t", pa.int64())])
        self.table: pa.Table = self.schema.empty_table()

    def __len__(self) -> int:
        return self.table.num_rows

    def restore(self, table: pa.Table) -> None:
        """Continue from a state :attr:`table` of a snapshot (the same key columns and ``t``)."""
        self.table = table.cast(self.schema)

    def filter(self, batch: pa.RecordBatch, time_column: str) -> pa.Array | None:
        """Indices (ascending) of the rows of ``batch`` to keep, None if all of them; the state
        then holds the batch's kept rows. ``time_column`` must have no NULLs."""
        n_old, n = self.table.num_rows, batch.num_rows
        incoming = [batch.column(name).cast(self.schema[i].type) for i, name in enumerate(self.keys)]
        ids = _key_ids([pa.concat_arrays([self.table.column(f"k{i}").combine_chunks(), column])
                        for i, column in enumerate(incoming)])
        old_ids, new_ids = ids.slice(0, n_old), ids.slice(n_old)
        times = _micros(batch.column(time_column))
        # Each row with the time its key was last kept before this batch (NULL: never).
        last = pc.take(self.table.column("t").combine_chunks(), pc.index_in(new_ids, value_set=old_ids))
        # Positions 0..n-1, built in Arrow: the time column has no NULLs, so every row is "valid".
        positions = pc.indices_nonzero(pc.is_valid(times)).cast(pa.int64())
        rows = pa.table({"pos": positions, "id": new_ids, "t": times, "last": last})
        kept = self._decide(rows, times)
        self._remember(incoming, kept, times, new_ids, old_ids)
        return None if len(kept) == n else kept

    def _decide(self, rows: pa.Table, times: pa.Array) -> pa.Array:
        """Positions (ascending) of the kept rows of ``rows`` (pos, id, t, last; pos ascending);
        ``times`` are the whole batch's, by position."""
        ttl = self.ttl_us
        kept: list[pa.Array] = []
        for _ in range(MAX_ROUNDS):
            due = pc.is_null(rows["last"])
            if ttl is not None:
                due = pc.or_kleene(due, pc.greater_equal(rows["t"], pc.add(rows["last"], ttl)))
            firsts = rows.filter(due).group_by("id", use_threads=False).aggregate([("pos", "min")])
            if firsts.num_rows == 0:
                return _ascending(kept)
            first_pos = firsts["pos_min"].combine_chunks()
            kept.append(first_pos)
            if ttl is None:
                return _ascending(kept)  # every later row of a kept key is a duplicate
            # A key's rows after its kept one go on, with that row's time as the last kept one;
            # the rows of keys that kept nothing are all duplicates.
            which = pc.index_in(rows["id"], value_set=firsts["id"].combine_chunks())
            later = pc.fill_null(pc.greater(rows["pos"], pc.take(first_pos, which)), False)
            before = rows.num_rows
            rows = rows.set_column(3, "last", pc.take(pc.take(times, first_pos), which)).filter(later)
            if rows.num_rows * _SLOW_ROUND > before * (_SLOW_ROUND - 1):
                break  # a round settled few rows: keys keep most of their rows
        return self._one_by_one(rows, kept)

    def _one_by_one(self, rows: pa.Table, kept: list[pa.Array]) -> pa.Array:
        """The remaining ``rows`` (every one with its key's last kept time) decided in order."""
        assert self.ttl_us is not None
        last: dict[int, int] = {}
        more: list[int] = []
        for pos, key, t, before in zip(*(rows[c].to_pylist() for c in ("pos", "id", "t", "last"))):
            if t >= last.get(key, before) + self.ttl_us:
                last[key] = t
                more.append(pos)
        return _ascending([*kept, pa.array(more, pa.int64())])

    def _remember(self, incoming: list[pa.Array], kept: pa.Array, times: pa.Array, new_ids: pa.Array,
                  old_ids: pa.Array) -> None:
        """Record each key's last kept row of the batch and expire old keys."""
        if len(kept):
            latest = pa.table({"id": pc.take(new_ids, kept), "pos": kept}).group_by("id", use_threads=False).aggregate(
                [("pos", "max")])
            at = latest["pos_max"].combine_chunks()
            fresh = pa.table([pc.take(column, at) for column in incoming] + [pc.take(times, at)], schema=self.schema)
            stale = pc.invert(pc.is_in(old_ids, value_set=latest["id"].combine_chunks()))
            self.table = pa.concat_tables([self.table.filter(stale), fresh])
        if self.ttl_us is not None and self.table.num_rows > _EXPIRE_ABOVE and len(times):
            horizon = pc.max(times).as_py() - self.ttl_us
            self.table = self.table.filter(pc.greater(self.table["t"], horizon))


def _ascending(parts: list[pa.Array]) -> pa.Array:
    joined = pa.concat_arrays(parts) if parts else pa.array([], pa.int64())
    return pc.take(joined, pc.sort_indices(joined))
