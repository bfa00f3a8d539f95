"""``dedup(stream, key…, ttl)``: which rows of a batch are first sightings of their key.

A row is dropped when its key was last *kept* less than ``ttl`` of event time before it (without
a ttl: when its key was ever kept). Rows are decided in arrival order, so replaying the log
repeats the decisions. The state maps each key (a tuple) to the event time (µs) it was last
kept; its snapshot form is an Arrow table with the key columns ``k0``, ``k1`` … and ``t``.

A batch is decided in rounds of Arrow operations over all its keys at once, instead of a Python
step per row: the batch's key columns are dictionary-encoded into one integer id per distinct
key, and only the distinct keys meet the state (a dict, so a batch costs the same whatever the
number of keys remembered). In each round, a key's next kept row is its first remaining row
whose time reaches the key's last kept time plus the ttl (its earlier remaining rows are
dropped), and the key's later rows go to the next round. Rounds repeat while a key keeps one
more row: without a ttl there is one, with a ttl at least as long as a batch's time span at most
two. When a short ttl makes keys keep most of their rows (a round settles few rows), or after
:data:`MAX_ROUNDS` rounds, the rows left are decided one by one.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sinkflow.engine.times import micros_array

__all__ = ["MAX_ROUNDS", "DedupState"]

#: Vectorized rounds per batch before the remaining rows are decided one by one.
MAX_ROUNDS = 8
# ... also after a round that settled less than 1/_SLOW_ROUND of its rows.
_SLOW_ROUND = 8
# Keys are expired by event time only once there are more than this many.
_EXPIRE_ABOVE = 10_000


def _key_ids(columns: list[pa.Array]) -> pa.Array:
    """One int64 per row: 0..u-1 for the u distinct keys, equal for rows whose key columns are all
    equal (NULL equals NULL)."""
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

    def __init__(self, keys: list[str], key_types: list[pa.DataType], ttl_us: int | None,
                 max_keys: int | None = None) -> None:
        self.keys = keys
        self.ttl_us = ttl_us
        self.max_keys = max_keys
        self.schema = pa.schema([pa.field(f"k{i}", t) for i, t in enumerate(key_types)] + [pa.field("t", pa.int64())])
        self.seen: dict[tuple[Any, ...], int] = {}

    def __len__(self) -> int:
        return len(self.seen)

    def to_table(self) -> pa.Table:
        """The state as a snapshot table (key columns ``k<i>`` with the keys' types, then ``t``)."""
        keys = list(self.seen)
        columns = [pa.array([k[i] for k in keys], f.type) for i, f in enumerate(self.schema) if f.name != "t"]
        return pa.table(columns + [pa.array(list(self.seen.values()), pa.int64())], schema=self.schema)

    def restore(self, table: pa.Table) -> None:
        """Continue from a :meth:`to_table` of a snapshot."""
        keys = zip(*(table.column(f"k{i}").to_pylist() for i in range(len(self.keys))))
        self.seen = dict(zip(keys, table.column("t").to_pylist()))

    def filter(self, batch: pa.RecordBatch, time_column: str) -> pa.Array | None:
        """Indices (ascending) of the rows of ``batch`` to keep, None if all of them; the state
        then holds the batch's kept rows. ``time_column`` must have no NULLs."""
        columns = [batch.column(name) for name in self.keys]
        ids = _key_ids(columns)
        times = micros_array(batch.column(time_column))
        # Positions 0..n-1, built in Arrow: the time column has no NULLs, so every row is "valid".
        positions = pc.indices_nonzero(pc.is_valid(times)).cast(pa.int64())
        # The ids are 0..u-1 in order of first appearance: each one's first row gives its key.
        _, firsts = _first_rows(ids)
        keys = list(zip(*(pc.take(column, firsts).to_pylist() for column in columns)))
        last = pc.take(pa.array(list(map(self.seen.get, keys)), pa.int64()), ids)
        kept = self._decide(pa.table({"pos": positions, "id": ids, "t": times, "last": last}), times)
        self._remember(keys, ids, kept, times)
        return None if len(kept) == batch.num_rows else kept

    def _decide(self, rows: pa.Table, times: pa.Array) -> pa.Array:
        """Positions (ascending) of the kept rows of ``rows`` (pos, id, t, last; pos ascending);
        ``times`` are the whole batch's, by position."""
        ttl = self.ttl_us
        kept: list[pa.Array] = []
        for _ in range(MAX_ROUNDS):
            due = pc.is_null(rows["last"])
            if ttl is not None:
                due = pc.or_kleene(due, pc.greater_equal(rows["t"], pc.add(rows["last"], ttl)))
            candidates = rows.filter(due)
            if candidates.num_rows == 0:
                return _ascending(kept)
            keeping, at = _first_rows(candidates["id"].combine_chunks())
            first_pos = pc.take(candidates["pos"], at).combine_chunks()
            kept.append(first_pos)
            if ttl is None:
                return _ascending(kept)  # every later row of a kept key is a duplicate
            # A key's rows after its kept one go on, with that row's time as the last kept one;
            # the rows of keys that kept nothing are all duplicates.
            which = pc.index_in(rows["id"], value_set=keeping)
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

    def _remember(self, keys: list[tuple[Any, ...]], ids: pa.Array, kept: pa.Array, times: pa.Array) -> None:
        """Record each key's last kept row of the batch and expire old keys."""
        if len(kept):
            backwards = kept[::-1]  # each key's first row backwards is its last kept one
            keeping, at = _first_rows(pc.take(ids, backwards))
            positions = pc.take(backwards, at)
            # In arrival order, re-inserted: among keys of one time, max_keys forgets the earliest arrived.
            rows = sorted(zip(positions.to_pylist(), keeping.to_pylist(), pc.take(times, positions).to_pylist()))
            for _, key_id, kept_time in rows:
                key = keys[key_id]
                self.seen.pop(key, None)
                self.seen[key] = kept_time
        if self.ttl_us is not None and len(self.seen) > _EXPIRE_ABOVE and len(times):
            horizon = pc.max(times).as_py() - self.ttl_us
            for key in [key for key, t in self.seen.items() if t <= horizon]:
                del self.seen[key]
        if self.max_keys is not None and len(self.seen) > self.max_keys:
            # Forget the keys kept longest ago (by event time) beyond the limit.
            keep = sorted(self.seen.items(), key=lambda item: item[1])[len(self.seen) - self.max_keys:]
            self.seen = dict(keep)


def _first_rows(ids: pa.Array) -> tuple[pa.Array, pa.Array]:
    """The distinct values of ``ids`` in order of first appearance, and the index of each one's first row."""
    distinct = pc.unique(ids)
    return distinct, pc.index_in(distinct, value_set=ids)


def _ascending(parts: list[pa.Array]) -> pa.Array:
    joined = pa.concat_arrays(parts) if parts else pa.array([], pa.int64())
    return pc.take(joined, pc.sort_indices(joined))
