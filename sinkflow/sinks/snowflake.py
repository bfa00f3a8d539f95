"""The ``snowflake`` sink: result rows inserted into a Snowflake table, in committed batches.

Each batch of rows goes to Snowflake as the rows' JSON documents (the same documents the
Kafka sink writes, :func:`sinkflow.sinks.encode.json_documents`) in one
``INSERT … SELECT v:"col"::TYPE … FROM (SELECT PARSE_JSON(column1) v FROM VALUES …)`` per
chunk, inside one transaction: Snowflake restores every column's type with the same casts a
user's view over ``RECORD_CONTENT`` would use, and a batch is all in or all out.

The table is created from the query's result schema when absent (:func:`snowflake_type`);
an existing table must have a column for every result column (matched as Snowflake matches
unquoted names: case-insensitively), else ``open()`` raises :class:`PermanentError` naming it.

Delivery guarantee: exactly-once. ``write`` returns only after ``COMMIT`` succeeded, so an
acknowledged batch is durable; a failed batch is rolled back entirely and retried by the
runtime. The same transaction records, in the table ``SINKFLOW_OFFSETS`` beside the target,
the output position (:meth:`WriteContext.row_number`) after the sink's last inserted row: a
batch replayed after a crash (committed here, not yet checkpointed by the runtime) finds its
rows already recorded and inserts only the ones that are not.

Column names are created upper-cased when they are plain identifiers (``cid`` → ``CID``), so
SQL users query them unquoted; other names keep their exact spelling, quoted.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from sinkflow.errors import ConfigError
from sinkflow.sinks.base import PermanentError, RetryableError, Sink, SinkEnv, SinkError, WriteContext
from sinkflow.sinks.config import BatchPolicy, Duration, SinkConfig
from sinkflow.sinks.encode import json_documents

log = logging.getLogger(__name__)

_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
#: Rows per INSERT statement, and a bound on its text (Snowflake accepts up to 1 MB of SQL text).
ROWS_PER_STATEMENT = 1000
BYTES_PER_STATEMENT = 512 * 1024
#: Per-sink progress, committed with the rows (see the module docstring).
OFFSETS_TABLE = "SINKFLOW_OFFSETS"
LOGIN_TIMEOUT = 30
#: Shorter "secrets" are not scrubbed from messages: replacing every "p" would garble them.
MIN_SECRET_LENGTH = 4
NETWORK_TIMEOUT = 60

class SnowflakeConfig(SinkConfig):
    """The ``snowflake`` sink's properties (``host``/``port``/``protocol`` override the account's
    endpoint: PrivateLink, a proxy, or a local test server)."""

    account: str = Field(min_length=1, description="account identifier, e.g. myorg-myaccount")
    user: str = Field(min_length=1, description="login name")
    password: str | None = Field(None, description="password (or give private_key)")
    private_key: str | None = Field(None, description="PEM of an unencrypted private key for key-pair login")
    role: str | None = Field(None, description="role to use")
    warehouse: str | None = Field(None, description="warehouse that runs the inserts")
    database: str = Field(min_length=1, description="database of the table")
    schema_: str = Field("PUBLIC", alias="schema", min_length=1, description="schema of the table")
    table: str = Field(min_length=1, description="target table; created from the query's columns when absent")
    batch_count: int = Field(1000, ge=1, description="rows per committed batch")
    batch_duration: Duration = Field(1.0, description="longest wait before a batch is inserted")
    host: str | None = Field(None, description="advanced: server host instead of <account>.snowflakecomputing.com")
    port: int | None = Field(None, ge=1, le=65535, description="advanced: server port")
    protocol: Literal["https", "http"] = Field("https", description="advanced: http only for a local test server")

    secret_fields: ClassVar[tuple[str, ...]] = ("password", "private_key")

    @field_validator("private_key")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value:
            _private_key_der(value)  # raises ValueError without echoing the key
        return value or None

    @model_validator(mode="after")
    def _one_credential(self) -> SnowflakeConfig:
        if not self.password and not self.private_key:
            raise ConfigError("password", "a password or a private_key is required")
        if self.password and self.private_key:
            raise ConfigError("private_key", "give either a password or a private_key, not both")
        return self

    def batch_policy(self) -> BatchPolicy:
        """``batch_count`` rows per committed batch, or what arrived within ``batch_duration``."""
        return BatchPolicy(max_rows=self.batch_count, max_wait=self.batch_duration)


def _private_key_der(pem: str) -> bytes:
    """The PKCS#8 DER bytes of a PEM private key, as the connector takes them."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("is not an unencrypted PEM private key") from None
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def identifier(name: str) -> str:
    """A quoted Snowflake identifier: plain names upper-cased (so unquoted SQL finds them)."""
    text = name.upper() if _PLAIN_IDENTIFIER.match(name) else name
    return '"' + text.replace('"', '""') + '"'


def snowflake_type(arrow: pa.DataType) -> str:
    """The Snowflake column type for an Arrow result type (nested types become VARIANT).

    Timestamps keep milliseconds, the precision of the JSON documents rows travel in.
    Raises :class:`PermanentError` for types rows cannot be sent as (binary).
    """
    if pa.types.is_boolean(arrow):
        return "BOOLEAN"
    if pa.types.is_integer(arrow):
        return "NUMBER(38,0)"
    if pa.types.is_floating(arrow):
        return "FLOAT"
    if pa.types.is_decimal(arrow):
        return f"NUMBER({min(arrow.precision, 38)},{max(arrow.scale, 0)})"
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "VARCHAR"
    if pa.types.is_dictionary(arrow):
        return snowflake_type(arrow.value_type)
    if pa.types.is_timestamp(arrow):
        return "TIMESTAMP_TZ(3)" if arrow.tz else "TIMESTAMP_NTZ(3)"
    if pa.types.is_date(arrow):
        return "DATE"
    if pa.types.is_time(arrow):
        return "TIME"
    if pa.types.is_null(arrow):
        return "VARCHAR"
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow) or pa.types.is_fixed_size_binary(arrow):
        raise PermanentError(f"binary columns cannot be sent to Snowflake (type {arrow})")
    return "VARIANT"


@dataclass(frozen=True)
class _Column:
    name: str
    ident: str
    type: str

    def select_expression(self) -> str:
        """The column's value from the row's JSON document ``v``, cast back to its type."""
        path = 'v:"' + self.name.replace('"', '""') + '"'
        return path if self.type == "VARIANT" else f"{path}::{self.type}"


class SnowflakeSink(Sink):
    """Inserts result rows into ``database.schema.table``; see the module docstring for the guarantee.

    ``open()`` connects (PermanentError when the login is refused, RetryableError when
    Snowflake is unreachable), creates the table when absent and checks its columns.
    ``write()`` inserts and commits the batch. ``flush`` has nothing left to wait for.
    """

    config_class = SnowflakeConfig
    config: SnowflakeConfig

    def __init__(self, config: SnowflakeConfig, env: SinkEnv) -> None:
        super().__init__(config, env)
        self._columns = [_Column(f.name, identifier(f.name), snowflake_type(f.type)) for f in env.output_schema]
        self._table = ".".join(identifier(part) for part in (config.database, config.schema_, config.table))
        self._offsets = ".".join(identifier(part) for part in (config.database, config.schema_, OFFSETS_TABLE))
        self._insert_head = (
            f"INSERT INTO {self._table} ({', '.join(c.ident for c in self._columns)}) "
            f"SELECT {', '.join(c.select_expression() for c in self._columns)} FROM (SELECT PARSE_JSON(column1) AS v FROM VALUES "
        )
        self._connection: Any = None

    async def open(self) -> None:
        """Connect, create the table when absent, and check that it has every result column."""
        await asyncio.to_thread(self._open)

    async def write(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        """Insert the rows not inserted before in one transaction; returns once it is committed."""
        await asyncio.to_thread(self._insert, batch, ctx)

    async def close(self) -> None:
        """Close the connection."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await asyncio.to_thread(self._quietly_close, connection)

    # ------------------------------------------------------------------ blocking parts

    def _open(self) -> None:
        self._connection = self._connect()
        columns = ", ".join(f"{c.ident} {c.type}" for c in self._columns)
        self._execute(f"CREATE TABLE IF NOT EXISTS {self._table} ({columns})")
        self._execute(
            f"CREATE TABLE IF NOT EXISTS {self._offsets} (SINK_ID VARCHAR, TABLE_NAME VARCHAR, NEXT_ROW NUMBER(38,0))"
        )
        found = self._execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            [_unquoted(identifier(self.config.schema_)), _unquoted(identifier(self.config.table))],
        )
        existing = {str(row[0]).upper() for row in found}
        if existing:
            for column in self._columns:
                if _unquoted(column.ident).upper() not in existing:
                    raise PermanentError(
                        f"table {self._table} has no column for result column '{column.name}' "
                        f"(expected {column.ident} {column.type})"
                    )

    def _connect(self) -> Any:
        # Imported here: the connector takes a while to import, and a server that lists sink
        # types (importing this module) but never runs a snowflake sink should not pay for it.
        import snowflake.connector
        from snowflake.connector import errors

        cfg = self.config
        params: dict[str, Any] = {
            "account": cfg.account,
            "user": cfg.user,
            "database": cfg.database,
            "schema": cfg.schema_,
            "login_timeout": LOGIN_TIMEOUT,
            "network_timeout": NETWORK_TIMEOUT,
            "application": "sinkflow",
            "session_parameters": {"QUERY_TAG": f"sinkflow sink {self.env.sink_name}"},
        }
        for name in ("role", "warehouse", "host", "port"):
            if (value := getattr(cfg, name)) is not None:
                params[name] = value
        if cfg.protocol != "https":
            params["protocol"] = cfg.protocol
        if cfg.private_key:
            params["private_key"] = _private_key_der(cfg.private_key)
        else:
            params["password"] = cfg.password
        try:
            return snowflake.connector.connect(**params)
        except errors.Error as exc:
            raise self._error(exc, "connecting") from None

    def _insert(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        if self._connection is None:  # a failed batch closed it; reconnect for the retry
            self._connection = self._connect()
        key = [self.env.sink_id, self._table]
        self._execute("BEGIN")
        try:
            found = self._execute(f"SELECT NEXT_ROW FROM {self._offsets} WHERE SINK_ID = %s AND TABLE_NAME = %s", key)
            next_row = int(found[0][0]) if found else 0
            fresh = [i for i in range(batch.num_rows) if ctx.row_number(i) >= next_row]
            if fresh:
                rows = batch if len(fresh) == batch.num_rows else batch.take(pa.array(fresh))
                documents = [doc.decode() for doc in json_documents(rows)]
                for chunk in _chunks(documents):
                    self._execute(self._insert_head + ", ".join(["(%s)"] * len(chunk)) + ")", chunk)
                self._execute(f"DELETE FROM {self._offsets} WHERE SINK_ID = %s AND TABLE_NAME = %s", key)
                self._execute(
                    f"INSERT INTO {self._offsets} (SINK_ID, TABLE_NAME, NEXT_ROW) VALUES (%s, %s, %s)",
                    [*key, ctx.row_number(fresh[-1]) + 1],
                )
            else:
                log.info("snowflake sink %s: batch already inserted, skipped", self.env.sink_name)
            self._execute("COMMIT")
        except SinkError:
            self._rollback()
            raise

    def _execute(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        from snowflake.connector import errors

        try:
            with self._connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        except errors.Error as exc:
            raise self._error(exc, sql.split(" ", 1)[0].lower()) from None

    def _rollback(self) -> None:
        from snowflake.connector import errors

        try:
            with self._connection.cursor() as cursor:
                cursor.execute("ROLLBACK")
        except errors.Error:
            # The session is in doubt: drop it, the retry reconnects (uncommitted rows are discarded).
            connection, self._connection = self._connection, None
            self._quietly_close(connection)

    def _error(self, exc: Exception, doing: str) -> SinkError:
        from snowflake.connector import errors

        errno = getattr(exc, "errno", None)
        message = getattr(exc, "raw_msg", None) or getattr(exc, "msg", None) or str(exc)
        text = f"snowflake {doing}: {self._scrub(str(message))}"
        if errno is not None:
            text += f" (error {errno})"
        # Network trouble and timeouts are operational errors; SQL, type and privilege errors and
        # a refused login (a plain DatabaseError) are not fixed by trying again.
        retryable = isinstance(exc, (errors.OperationalError, errors.InterfaceError))
        return RetryableError(text) if retryable else PermanentError(text)

    @staticmethod
    def _quietly_close(connection: Any) -> None:
        try:
            connection.close()
        except Exception as exc:  # noqa: BLE001 - close never raises for delivery problems
            log.info("snowflake: close failed: %s", type(exc).__name__)

    def _scrub(self, message: str) -> str:
        for secret in (self.config.password, self.config.private_key):
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                message = message.replace(secret, "***")
        return message


def _unquoted(ident: str) -> str:
    return ident[1:-1].replace('""', '"')


def _chunks(documents: list[str]) -> list[list[str]]:
    """Documents grouped into statements of at most ROWS_PER_STATEMENT rows and ~BYTES_PER_STATEMENT."""
    chunks: list[list[str]] = []
    current: list[str] = []
    size = 0
    for doc in documents:
        if current and (len(current) >= ROWS_PER_STATEMENT or size + len(doc) > BYTES_PER_STATEMENT):
            chunks.append(current)
            current, size = [], 0
        current.append(doc)
        size += len(doc) + 4
    if current:
        chunks.append(current)
    return chunks
