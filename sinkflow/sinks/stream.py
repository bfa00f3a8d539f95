"""The ``timeplus`` sink: results appended to a sinkflow stream (stream-to-stream pipelines).

Guarantee: effectively once. Every row carries its output position; rows already appended
by this sink are skipped on a replay, so a restart does not duplicate rows (except after a
crash in the instant between an append and the record of it).
"""

from __future__ import annotations

import re
from typing import ClassVar

import pyarrow as pa
from pydantic import field_validator

from sinkflow.sinks.base import PermanentError, Sink, WriteContext
from sinkflow.sinks.config import BatchPolicy, SinkConfig

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StreamSinkConfig(SinkConfig):
    """Properties of the ``timeplus`` sink."""

    stream_name: str

    @field_validator("stream_name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be a stream name: letters, digits and '_', not starting with a digit")
        return value

    def batch_policy(self) -> BatchPolicy:
        return BatchPolicy(max_rows=10_000, max_wait=0.05)


class StreamSink(Sink):
    """Appends every result row to the stream ``stream_name``, creating it from the query's
    output schema when absent and refusing an existing stream whose columns don't fit."""

    config_class: ClassVar[type[SinkConfig]] = StreamSinkConfig
    config: StreamSinkConfig

    async def open(self) -> None:
        if self.env.streams is None:
            raise PermanentError("the stream sink needs access to sinkflow's streams")
        self.env.streams.ensure(self.config.stream_name, self.env.output_schema)

    async def write(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        assert self.env.streams is not None  # open() checked it
        self.env.streams.append(self.config.stream_name, batch, ctx)
