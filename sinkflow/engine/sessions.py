"""Session windows with start/end conditions, assigned row by row as Proton does.

A key's session opens at a row meeting the start condition (which belongs to it if the range
starts with ``[``) and takes that key's later rows until one of them

* comes at or after the session's max length past its opening row: the session ends there;
* comes at or after the timeout past the session's newest row: the session ends at that time;
* meets the end condition: the session ends at that row (just after it, and with it, if the
  range ends with ``]``).

Either of the first two rows opens the next session if it meets the start condition; rows
outside any session are dropped. A session also closes when the watermark passes the earlier
of its timeout and its max length. ``window_end`` is where the session ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from sinkflow.sql.plan import WindowSpec

ASSIGN_SCHEMA = pa.schema([pa.field("__s", pa.int64()), pa.field("__ws", pa.int64())])
_FIELDS = ("id", "start", "end", "timeout", "longest", "active", "seen")


@dataclass
class _Session:
    key: tuple[Any, ...]
    id: int
    start: int | None  # the first row's time (µs); None while the session holds no row
    end: int
    timeout: int  # the session closes at a row this late or later
    longest: int  # … or at a row this late or later (its max length)
    active: bool = True
    seen: int = 0  # the newest time of its key's rows while it was the key's latest session


class SessionAssigner:
    """The open sessions per key (see the module docstring); state for the query's snapshot."""

    def __init__(self, window: WindowSpec, tick_us: int) -> None:
        self.window = window
        self.tick = tick_us  # one unit of the time column: a row included as the end ends just after it
        self._latest: dict[tuple[Any, ...], _Session] = {}
        self._sessions: dict[int, _Session] = {}
        self._key_types: list[pa.DataType] = []

    def assign(self, rows: pa.Table, keys: list[str]) -> pa.Table:
        """Each row's session (``__s`` → ``__ws``) for the rows (``__t``, ``__s``, the key columns,
        ``__cs``/``__ce`` the conditions) that belong to one, taken in event-time order."""
        self._key_types = [rows.schema.field(k).type for k in keys]
        rows = rows.sort_by([("__t", "ascending"), ("__s", "ascending")])
        columns = [rows.column(k).to_pylist() for k in keys]
        seqs, ids = [], []
        for i, (t, s, start, end) in enumerate(zip(rows.column("__t").to_pylist(), rows.column("__s").to_pylist(),
                                                   rows.column("__cs").to_pylist(), rows.column("__ce").to_pylist())):
            key = tuple(c[i] for c in columns)
            session = self._row(key, t, s, bool(start), bool(end))
            if session is not None:
                seqs.append(s)
                ids.append(session)
        return pa.table([pa.array(seqs, pa.int64()), pa.array(ids, pa.int64())], schema=ASSIGN_SCHEMA)

    def _row(self, key: tuple[Any, ...], t: int, seq: int, start: bool, end: bool) -> int | None:
        """The session the row belongs to (None: none), after it opened or closed sessions."""
        w = self.window
        session = self._latest.get(key)
        if session is not None:
            session.seen = max(session.seen, t)
        if session is not None and session.active:
            if t >= session.longest or t >= session.timeout:
                session.end = session.longest if t >= session.longest else session.timeout
                session.active = False
                return self._open(key, t, seq) if start else None
            if end:
                session.active = False
                if w.include_end:
                    return self._keep(session, t)
                session.end = max(session.end, t)
                return None
            return self._keep(session, t)
        return self._open(key, t, seq) if start else None

    def _open(self, key: tuple[Any, ...], t: int, seq: int) -> int | None:
        w = self.window
        session = self._latest.get(key)
        if session is None or session.start is not None:
            session = _Session(key, seq, None, 0, 0, 0, seen=t)
            self._sessions[seq] = session
            self._latest[key] = session
        session.active = True
        session.timeout, session.longest = t + w.size_us, t + w.max_us
        return self._keep(session, t) if w.include_start else None

    def _keep(self, session: _Session, t: int) -> int:
        if session.start is None:
            session.start = t
        if t >= session.end:
            session.end = t + self.tick
            session.timeout = t + self.window.size_us
        return session.id

    def ends(self) -> dict[int, int]:
        """When each session holding rows ends or will end at the latest (µs), by id."""
        return {s.id: s.end if not s.active else min(s.timeout, s.longest)
                for s in self._sessions.values() if s.start is not None}

    def close(self, frontier: int, per_key_delay: int | None = None) -> dict[int, int]:
        """The sessions to emit now (ended, or passed by ``frontier``; with ``per_key_delay``, by
        their key's newest time less that delay) with their ends, by id; they are forgotten."""
        done: dict[int, int] = {}
        newest: dict[tuple[Any, ...], int] = {}
        for session in self._sessions.values():
            newest[session.key] = max(newest.get(session.key, session.seen), session.seen)
        for session in list(self._sessions.values()):
            limit = frontier if per_key_delay is None else min(frontier, newest[session.key] - per_key_delay)
            if session.active and min(session.timeout, session.longest) > limit:
                continue
            if session.active:
                session.end = min(session.timeout, session.longest)
            if session.start is not None:
                done[session.id] = session.end
            del self._sessions[session.id]
            if self._latest.get(session.key) is session:
                del self._latest[session.key]
        return done

    def snapshot(self) -> pa.Table:
        sessions = list(self._sessions.values())
        columns: dict[str, pa.Array] = {
            f"__k{j}": pa.array([s.key[j] for s in sessions], typ) for j, typ in enumerate(self._key_types)}
        for name in _FIELDS:
            values = [getattr(s, name) for s in sessions]
            columns[name] = pa.array(values, pa.bool_() if name == "active" else pa.int64())
        columns["latest"] = pa.array([self._latest.get(s.key) is s for s in sessions], pa.bool_())
        return pa.table(columns)

    def restore(self, table: pa.Table) -> None:
        keys = [n for n in table.column_names if n.startswith("__k")]
        self._key_types = [table.schema.field(k).type for k in keys]
        self._sessions, self._latest = {}, {}
        for row in table.to_pylist():
            session = _Session(tuple(row[k] for k in keys), *(row[f] for f in _FIELDS))
            self._sessions[session.id] = session
            if row["latest"]:
                self._latest[session.key] = session
