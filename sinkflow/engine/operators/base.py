"""The interface every streaming operator implements, and the tree EXPLAIN built from it.

An operator receives its inputs' batches with :meth:`Operator.push` (``entries``: ``(sequence
number, batch)`` pairs, the sequence numbers of a port increasing), learns that an input ended
(a bounded query) with :meth:`Operator.end`, and fires processing-time timers with
:meth:`Operator.fire` (:meth:`Operator.due` says when). Each of these returns the operator's
output tables, conforming to :attr:`Operator.schema`. Its state is what :meth:`Operator.snapshot`
returns (JSON-able scalars and named Arrow tables); an operator built from the same plan and
given that state with :meth:`Operator.restore` continues where the first one stood.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import pyarrow as pa

Entries = list[tuple[int, pa.RecordBatch]]


def sequence_numbers(first: int, n: int) -> pa.Array:
    """The int64 array ``first, first + 1, …, first + n - 1`` (numbering rows by their sequence)."""
    return pa.array(np.arange(first, first + n, dtype=np.int64))


class Operator(ABC):
    """One node of a query's operator graph (see the module docstring)."""

    schema: pa.Schema
    finished: bool = False
    #: Rows its input scans read per step at most (None: the scans' own limit); an operator
    #: that processes large steps faster asks for more while the query is behind the log.
    rows_per_step: int | None = None

    @abstractmethod
    def push(self, port: int, entries: Entries) -> list[pa.Table]:
        """Process new input rows arriving on input ``port``."""

    @abstractmethod
    def end(self, port: int) -> list[pa.Table]:
        """Input ``port`` will send nothing more; an operator whose inputs all ended finishes."""

    def due(self, now: float) -> float:
        """Seconds until :meth:`fire` has something to do (``inf``: no timer)."""
        return float("inf")

    def fire(self, now: float) -> list[pa.Table]:
        """Run the processing-time timers that are due at ``now`` (the execution's clock, in seconds)."""
        return []

    @abstractmethod
    def snapshot(self) -> tuple[dict[str, Any], dict[str, pa.Table]]:
        """The operator's state: JSON-able scalars and named Arrow tables."""

    @abstractmethod
    def restore(self, meta: dict[str, Any], tables: dict[str, pa.Table]) -> None:
        """Continue from a :meth:`snapshot` of an operator built from the same plan."""

    def stats(self) -> dict[str, int]:
        """Counters of the operator (summed over the graph by the execution)."""
        return {}

    @abstractmethod
    def describe(self) -> list[str]:
        """EXPLAIN lines of this operator alone: its own line first, then indented details."""

    def close(self) -> None:
        """Free what the operator holds (DuckDB connections, state)."""


def tree(lines: list[str], children: list[list[str]]) -> list[str]:
    """An operator's EXPLAIN lines followed by its inputs' trees, each indented under its last line."""
    depth = len(lines[-1]) - len(lines[-1].lstrip(" ")) + 2
    out = list(lines)
    for child in children:
        out.extend(" " * depth + line for line in child)
    return out
