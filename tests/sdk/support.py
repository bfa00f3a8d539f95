"""Reading results through the SDK, as its users do."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from timeplus import Environment, Query, Stream

T = TypeVar("T")


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def make_stream(env: Environment, name: str, columns: list[tuple[str, str]]) -> Stream:
    stream = Stream(env).name(name)
    for column, type_name in columns:
        stream.column(column, type_name)
    return stream.create()


def rows_of(query: Query, limit: int | None = None) -> list[list[Any]]:
    """The rows of a query's SSE answer, read until its closing ``query`` event (or ``limit`` rows)."""
    rows: list[list[Any]] = []
    for event in query.result():
        if event.event == "message":
            rows.extend(json.loads(event.data))
            if limit is not None and len(rows) >= limit:
                break
        elif event.event == "query":
            break
    return rows


def select(env: Environment, sql: str) -> list[list[Any]]:
    """The rows of a bounded query run through the SDK."""
    return rows_of(Query(env).sql(sql).create())


def eventually(check: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    """``check()``'s first truthy answer, polling; fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {value!r}")
        time.sleep(0.2)
