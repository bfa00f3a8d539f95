"""The ClickHouse-style HTTP query interface Proton serves (``POST /`` with the SQL, ``GET /ping``),
enough for Timeplus's database driver ``timeplus-connect``: queries answer ``Native`` blocks (or
``TabSeparated`` / ``JSONEachRow``), streaming ones block by block until their LIMIT or the client
goes away; ``INSERT INTO stream [(cols)] FORMAT Native`` appends the blocks sent as the body.

Beyond sinkflow's SQL it answers what the driver asks when it connects: ``SELECT version(),
timezone()`` and ``system.settings`` (no settings), and ``DESCRIBE`` with ClickHouse's columns.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import AsyncIterator

import orjson
import pyarrow as pa
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

import sinkflow
from sinkflow.api.context import Server, ServerDep
from sinkflow.api.native_format import decode_blocks, encode_block
from sinkflow.api.queries import execute_sql, table_rows
from sinkflow.api.text_formats import TEXT_FORMATS, format_header, format_rows, split_format
from sinkflow.engine import QueryExecution
from sinkflow.errors import InvalidInput, SinkflowError
from sinkflow.sinks.encode import json_documents

router = APIRouter()

#: A stream name as drivers write it: maybe quoted, maybe after a database name (sinkflow has one).
_NAME = r"(?:[`\"]?\w+[`\"]?\.)?[`\"]?(\w+)[`\"]?"
_INSERT = re.compile(rf"^\s*INSERT\s+INTO\s+{_NAME}\s*(?:\(([^)]*)\))?\s*$", re.IGNORECASE)
_DESCRIBE = re.compile(rf"^\s*DESC(?:RIBE)?\s+(?:TABLE\s+|STREAM\s+)?{_NAME}\s*$", re.IGNORECASE)
_HELLO = re.compile(r"^\s*SELECT\s+version\(\)\s*,\s*timezone\(\)\s*$", re.IGNORECASE)
_SETTINGS = re.compile(r"\bFROM\s+system\.settings\b", re.IGNORECASE)
_FORMATS = ("Native", "JSONEachRow", *TEXT_FORMATS)
_MEDIA = {"Native": "application/octet-stream", "JSONEachRow": "application/x-ndjson"}
_STEP = 0.25
_ENCODINGS = ("lz4", "zstd", "gzip")
_INSERT_DATA = re.compile(rb"^(\s*INSERT\s+INTO\s.*?\sFORMAT\s+\w+)[ \t]*\r?\n", re.IGNORECASE | re.DOTALL)


@router.get("/ping", response_class=PlainTextResponse)
async def ping() -> str:
    return "Ok.\n"


@router.post("/")
async def query(request: Request, srv: ServerDep) -> Response:
    """One statement: the ``query`` parameter with the body as its data, or the body alone.

    When the server requires an API key, it is the password (HTTP Basic, any user name) or the
    ``X-Api-Key`` header. Errors answer ClickHouse's way: a text body ``Code: 0. DB::Exception:
    <message>`` with the error's HTTP status and an ``X-Timeplus-Exception-Code`` header."""
    if srv.settings.auth_required and not _authorized(request, srv.settings.api_key):
        return PlainTextResponse("Code: 516. DB::Exception: the API key is required as the password\n",
                                 status_code=401, headers={"X-Timeplus-Exception-Code": "516"})
    try:
        sql, data = _statement(await request.body(), request.headers.get("content-encoding", ""),
                               request.query_params.get("query"))
        return await _answer(srv, sql, data)
    except SinkflowError as exc:
        return PlainTextResponse(f"Code: 0. DB::Exception: {exc.message}\n", status_code=exc.status,
                                 headers={"X-Timeplus-Exception-Code": "0"})


def _statement(body: bytes, encoding: str, query: str | None) -> tuple[str, bytes]:
    """The SQL and the data of a request: the ``query`` parameter and the body as its data, or
    the body alone — where an INSERT's data follows its ``FORMAT`` name and a newline. A body
    compressed as drivers send it (``Content-Encoding``: lz4, zstd, gzip) is decompressed first."""
    if encoding:
        if encoding not in _ENCODINGS:
            raise InvalidInput(f"Content-Encoding {encoding} is not accepted (only {', '.join(_ENCODINGS)})")
        try:
            body = pa.CompressedInputStream(pa.BufferReader(body), encoding).read()
        except OSError as exc:
            raise InvalidInput(f"the body is not valid {encoding} data: {exc}") from None
    if query is not None:
        return query, body
    insert = _INSERT_DATA.match(body)
    if insert is not None:
        return insert[1].decode(), body[insert.end():]
    try:
        return body.decode(), b""
    except UnicodeDecodeError:
        raise InvalidInput("the statement is not UTF-8 text") from None


def _authorized(request: Request, api_key: str | None) -> bool:
    given = request.headers.get("x-api-key", "")
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            given = base64.b64decode(credentials).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    return api_key is not None and hmac.compare_digest(given.encode(), api_key.encode())


async def _answer(srv: Server, sql: str, data: bytes) -> Response:
    sql, written = split_format(sql)
    fmt = written or "TabSeparated"
    if fmt not in _FORMATS:
        raise InvalidInput(f"FORMAT {fmt} is not served here (formats: {', '.join(_FORMATS)})")
    insert = _INSERT.match(sql)
    if insert is not None:
        return _insert(srv, insert[1], insert[2], fmt, data)
    if _HELLO.match(sql):
        return _table_answer(pa.table({"version()": [sinkflow.__version__], "timezone()": ["UTC"]}), fmt)
    if _SETTINGS.search(sql):
        return _table_answer(pa.table({"name": pa.array([], pa.string()), "value": pa.array([], pa.string()),
                                       "readonly": pa.array([], pa.uint8())}), fmt)
    described = _DESCRIBE.match(sql)
    result = await execute_sql(srv, f"DESCRIBE {described[1]}" if described else sql)
    if result.kind == "status":
        return Response(status_code=200)
    if result.kind == "rows":
        assert result.table is not None
        table = _clickhouse_describe(result.table) if described else result.table
        return _table_answer(table, fmt)
    assert isinstance(result.execution, QueryExecution)
    return StreamingResponse(_blocks(result.execution, fmt), media_type=_MEDIA.get(fmt, "text/plain"))


def _header(schema: pa.Schema, fmt: str) -> bytes:
    return format_header(schema, fmt).encode() if fmt in TEXT_FORMATS else b""


def _encode(batch: pa.RecordBatch, fmt: str) -> bytes:
    if fmt == "Native":
        return encode_block(batch)
    if fmt == "JSONEachRow":
        return b"".join(doc + b"\n" for doc in json_documents(batch))
    return format_rows(batch, fmt).encode()


def _table_answer(table: pa.Table, fmt: str) -> Response:
    """A whole result; an empty one is a block of no rows, which still names the columns."""
    batches = [b for b in table.to_batches() if b.num_rows] or [pa.RecordBatch.from_pylist([], schema=table.schema)]
    body = _header(table.schema, fmt) + b"".join(_encode(b, fmt) for b in batches)
    return Response(body, media_type=_MEDIA.get(fmt, "text/plain"))


def _clickhouse_describe(table: pa.Table) -> pa.Table:
    """``DESCRIBE`` rows with the columns ClickHouse answers (defaults, comment, codec, TTL empty)."""
    rows = table_rows(table)
    empty = [""] * len(rows)
    return pa.table({"name": [r["name"] for r in rows], "type": [r["type"] for r in rows], "default_type": empty,
                     "default_expression": empty, "comment": empty, "codec_expression": empty,
                     "ttl_expression": empty})


def _insert(srv: Server, stream: str, columns: str | None, fmt: str, data: bytes) -> Response:
    """Append the Native blocks of ``data`` to ``stream``; all blocks or none."""
    if fmt != "Native":
        raise InvalidInput(f"INSERT takes FORMAT Native here, not {fmt}")
    target = srv.store.get(stream)
    batches = decode_blocks(data)
    if columns is not None:
        named = [c.strip().strip("`\"") for c in columns.split(",")]
        for batch in batches:
            if batch.schema.names != named:
                raise InvalidInput(f"the data's columns {batch.schema.names} are not the INSERT's {named}")
    if batches:
        target.append_batch(pa.Table.from_batches(batches).combine_chunks())
    return Response(status_code=200, headers={"X-Timeplus-Summary": orjson.dumps(
        {"written_rows": str(sum(b.num_rows for b in batches))}).decode()})


async def _blocks(execution: QueryExecution, fmt: str) -> AsyncIterator[bytes]:
    """A streaming query's result, block by block; the query stops however the answer ends."""
    try:
        if header := _header(execution.schema, fmt):
            yield header
        while not execution.finished:
            for batch in await execution.step(_STEP):
                if batch.num_rows:
                    yield _encode(batch, fmt)
    finally:
        execution.close()
