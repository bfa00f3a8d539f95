"""The byte format of an execution's snapshot: JSON scalars plus named Arrow tables.

Layout: ``MAGIC``, an 8-byte big-endian length, the JSON document, then for each table named in
the document's ``"tables"`` list an 8-byte length and an Arrow IPC stream. Arrow keeps the
partial aggregates' and dedup keys' exact types, which JSON would lose.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pyarrow as pa

from sinkflow.errors import InvalidInput

MAGIC = b"SFQS1"
_LEN = struct.Struct(">Q")


def encode(meta: dict[str, Any], tables: dict[str, pa.Table]) -> bytes:
    """Serialize ``meta`` (JSON-able) and ``tables``."""
    doc = dict(meta, tables=sorted(tables))
    text = json.dumps(doc, sort_keys=True).encode()
    parts = [MAGIC, _LEN.pack(len(text)), text]
    for name in doc["tables"]:
        sink = pa.BufferOutputStream()
        table = tables[name]
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        data = sink.getvalue().to_pybytes()
        parts += [_LEN.pack(len(data)), data]
    return b"".join(parts)


def decode(data: bytes) -> tuple[dict[str, Any], dict[str, pa.Table]]:
    """The inverse of :func:`encode`; raises :class:`InvalidInput` for bytes that are not a snapshot."""
    if not data.startswith(MAGIC):
        raise InvalidInput("not a query snapshot")
    try:
        pos = len(MAGIC)
        (n,) = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        meta = json.loads(data[pos : pos + n])
        pos += n
        tables: dict[str, pa.Table] = {}
        for name in meta.pop("tables"):
            (n,) = _LEN.unpack_from(data, pos)
            pos += _LEN.size
            tables[name] = pa.ipc.open_stream(pa.py_buffer(data[pos : pos + n])).read_all()
            pos += n
    except (struct.error, ValueError, pa.ArrowInvalid) as err:
        raise InvalidInput(f"corrupt query snapshot: {err}") from None
    return meta, tables
