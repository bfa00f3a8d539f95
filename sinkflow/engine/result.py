"""What :meth:`Engine.execute` answers for any statement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

if TYPE_CHECKING:
    from sinkflow.engine.execution import QueryExecution


@dataclass
class StatementResult:
    """The result of one statement.

    ``kind`` is ``"status"`` (DDL, INSERT: ``message``, and ``count`` of rows when it applies), ``"rows"``
    (a bounded SELECT: ``table``) or ``"stream"`` (an unbounded SELECT: a started ``execution``
    the caller steps and closes).
    """

    kind: Literal["status", "rows", "stream"]
    message: str = ""
    table: pa.Table | None = None
    execution: QueryExecution | None = None
    count: int | None = None
