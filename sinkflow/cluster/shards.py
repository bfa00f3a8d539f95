"""Streams on several partitions (``SETTINGS shards=N``): where rows go, and the one order every
node applies them in.

A sharded stream has two topics. Its *data topic* has ``N`` partitions: an append is split by
shard (``sharding_expr`` evaluated per row, modulo ``N``; without it, each append goes whole to
the next partition in turn) and each part is produced to its partition. Its *order topic* has
one partition: once the parts are acknowledged, the appending node writes one small record
naming them (partition and offset of each). Every node applies the order topic's records in
offset order, each as one batch of its parts, to its local copy of the stream: the order of
rows, and so every row's ``_tp_sn``, is the same on every node, and a sink's checkpoint is
valid on any node, exactly as for a stream of one partition.

Within one append, rows keep their order per partition (the parts are applied in partition
order). Appends are ordered by their order records: an append acknowledged before another
starts comes first; concurrent appends are ordered as Kafka sequenced their records.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Message

from sinkflow.errors import InvalidInput
from sinkflow.streams.defaults import DefaultsCompiler
from sinkflow.streams.types import Column, parse_type

#: The most partitions a stream may have (each is followed by every node).
MAX_SHARDS = 256
_SHARD = "__shard"


@dataclass(frozen=True)
class Sharding:
    """How a stream is partitioned: ``shards`` partitions, rows placed by ``expression``
    (Timeplus SQL giving an integer) or, when it is None, whole appends in turn."""

    shards: int
    expression: str | None = None

    @classmethod
    def from_settings(cls, stream: str, ignored: dict[str, str]) -> Sharding:
        """The sharding a stream's ``SETTINGS`` ask for (``shards``, ``sharding_expr``; kept as
        text). Raises :class:`InvalidInput` naming the setting."""
        text = ignored.get("shards", "1").strip().strip("'")
        if not text.isdigit() or not 1 <= int(text) <= MAX_SHARDS:
            raise InvalidInput(f"stream '{stream}': setting 'shards' must be a whole number from 1 to {MAX_SHARDS}, "
                               f"got '{text}'")
        expression = ignored.get("sharding_expr")
        if expression is not None:
            expression = expression.strip()
            if len(expression) >= 2 and expression[0] == expression[-1] == "'":
                expression = expression[1:-1].replace("\\'", "'").replace("''", "'")
        return cls(int(text), expression or None)


class Partitioner:
    """Splits an append into its shards' parts (see the module docstring).

    Construction compiles ``sharding_expr`` against the stream's columns; raises
    :class:`InvalidInput` naming the setting when it does not parse or reads an unknown column."""

    def __init__(self, stream: str, columns: list[Column], sharding: Sharding, compiler: DefaultsCompiler) -> None:
        self.shards = sharding.shards
        self._what = f"stream '{stream}': setting 'sharding_expr' ({sharding.expression})"
        first = random.randrange(self.shards)  # nodes starting together do not all pick partition 0
        self._turn = itertools.cycle([*range(first, self.shards), *range(first)])
        self._sql: str | None = None
        self._lock = threading.Lock()
        if sharding.expression is None or self.shards == 1:
            return
        try:
            compiled = compiler(Column(_SHARD, parse_type("int64"), sharding.expression), columns)
        except InvalidInput as exc:
            reason = exc.message.removeprefix(f"column '{_SHARD}': DEFAULT {sharding.expression}: ")
            raise InvalidInput(f"{self._what}: {reason}") from None
        unknown = sorted(compiled.references - {c.name for c in columns})
        if unknown:
            raise InvalidInput(f"{self._what} reads unknown column '{unknown[0]}'")
        self._sql = compiled.sql
        self._database = duckdb.connect()

    def split(self, batch: pa.RecordBatch) -> list[tuple[int, pa.RecordBatch]]:
        """``batch``'s rows by partition (partitions without rows left out), in partition order.

        Raises :class:`InvalidInput` when ``sharding_expr`` cannot be evaluated over the rows."""
        if self.shards == 1:
            return [(0, batch)]
        if self._sql is None:
            with self._lock:
                return [(next(self._turn), batch)]
        with self._lock:
            try:
                self._database.register("__rows", pa.Table.from_batches([batch]))
                value = self._database.sql(f"SELECT {self._sql} FROM __rows").fetch_arrow_table().column(0)
            except duckdb.Error as exc:
                raise InvalidInput(f"{self._what} cannot be evaluated: {str(exc).splitlines()[0]}") from None
            finally:
                self._database.unregister("__rows")
        shard = np.mod(pc.fill_null(value, 0).to_numpy(), self.shards)
        return [(int(p), batch.take(pa.array(np.flatnonzero(shard == p)))) for p in np.unique(shard)]


class Sequencer:
    """One node's assembly of a sharded stream's local copy: data parts wait here until the
    order record naming them is applied, and order records wait for their parts (a node may read
    an order record before the parts it names; the topics are read independently).

    ``apply`` appends one assembled batch to the local copy and returns its first sequence number.
    Thread-safe; the handlers run on the replica's thread."""

    def __init__(self, schema: pa.Schema, apply: Callable[[pa.RecordBatch], int]) -> None:
        self._schema = schema
        self._apply = apply
        self._parts: dict[tuple[int, int], bytes] = {}
        self._orders: deque[tuple[list[tuple[int, int]], Future[int]]] = deque()
        self._lock = threading.Lock()

    def on_part(self, message: Message) -> int:
        """A message of the data topic: kept until its order record comes; returns its offset."""
        with self._lock:
            self._parts[(message.partition(), message.offset())] = message.value()
            self._drain()
        return int(message.offset())

    def on_order(self, message: Message) -> Future[int]:
        """A record of the order topic: the future gives the first sequence number of its batch
        once every part it names has been read and the batch applied."""
        parts = [(int(p), int(o)) for p, o in json.loads(message.value())]
        done: Future[int] = Future()
        with self._lock:
            self._orders.append((parts, done))
            self._drain()
        return done

    def _drain(self) -> None:
        while self._orders and all(part in self._parts for part in self._orders[0][0]):
            parts, done = self._orders.popleft()
            batches = [pa.ipc.read_record_batch(pa.py_buffer(self._parts.pop(part)), self._schema) for part in parts]
            try:
                first = self._apply(pa.Table.from_batches(batches, self._schema).combine_chunks().to_batches()[0])
            except Exception as exc:  # the publisher hears of it; replication goes on
                done.set_exception(exc)
            else:
                done.set_result(first)


def order_record(parts: list[tuple[int, int]]) -> bytes:
    """The order topic's record naming an append's parts (partition, offset)."""
    return json.dumps(parts).encode()

