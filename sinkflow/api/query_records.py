"""The queries clients ran through ``POST /queries``, running and recent, as Timeplus's Query model."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from sinkflow.errors import NotFound

QueryStatus = Literal["running", "finished", "canceled", "failed"]

#: Finished queries kept for ``GET /queries`` (the oldest are forgotten first; running ones never).
KEPT = 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class QueryRecord:
    """One query: its SQL, result header and analysis, and how it went (times in epoch ms)."""

    sql: str
    header: list[dict[str, str]]
    analysis: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: QueryStatus = "running"
    message: str = ""
    start_time: int = field(default_factory=_now_ms)
    end_time: int = 0
    first_result_time: int = 0
    last_result_time: int = 0
    rows: int = 0
    rows_read: int = 0

    def delivered(self, rows: int) -> None:
        """Count ``rows`` sent to the client (the first ones set the response time)."""
        if rows:
            self.last_result_time = _now_ms()
            self.first_result_time = self.first_result_time or self.last_result_time
        self.rows += rows

    def end(self, status: QueryStatus, message: str = "") -> None:
        """Record how the query ended; the first ending counts (a cancel is not undone by the stream closing)."""
        if self.status == "running":
            self.status, self.message, self.end_time = status, message, _now_ms()

    def to_dict(self) -> dict[str, Any]:
        """Timeplus's Query: every field its clients require, plus sinkflow's ``columns``,
        ``started_at`` (epoch seconds) and ``rows_read``."""
        names = [c["name"] for c in self.header]

        def index(name: str) -> int:
            return names.index(name) if name in names else -1

        end = self.end_time or _now_ms()
        return {
            "id": self.id,
            "sql": self.sql,
            "name": "",
            "description": "",
            "tags": [],
            "status": self.status,
            "message": self.message,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration": end - self.start_time,
            "response_time": (self.first_result_time - self.start_time) if self.first_result_time else 0,
            "result": {"header": self.header},
            "columns": self.header,
            "analysis": self.analysis,
            "timeColumns": {"eventTime": index("_tp_time"), "windowStart": index("window_start"),
                            "windowEnd": index("window_end")},
            "started_at": self.start_time / 1000,
            "rows_read": self.rows_read,
        }


class QueryRecords:
    """The running queries and the last :data:`KEPT` finished ones, oldest first."""

    def __init__(self) -> None:
        self._records: OrderedDict[str, QueryRecord] = OrderedDict()

    def add(self, record: QueryRecord) -> QueryRecord:
        self._records[record.id] = record
        finished = [qid for qid, r in self._records.items() if r.status != "running"]
        for qid in finished[: max(0, len(finished) - KEPT)]:
            del self._records[qid]
        return record

    def get(self, query_id: str) -> QueryRecord:
        """The query ``query_id``. Raises :class:`NotFound`."""
        record = self._records.get(query_id)
        if record is None:
            raise NotFound(f"query '{query_id}' not found")
        return record

    def remove(self, query_id: str) -> QueryRecord:
        """Forget the query ``query_id``. Raises :class:`NotFound`."""
        record = self.get(query_id)
        del self._records[query_id]
        return record

    def all(self) -> list[QueryRecord]:
        """Running queries first, then finished ones, newest first within each."""
        records = list(reversed(self._records.values()))
        return [r for r in records if r.status == "running"] + [r for r in records if r.status != "running"]
