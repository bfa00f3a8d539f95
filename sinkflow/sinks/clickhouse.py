"""ClickHouse sink: result rows inserted into a table over the native protocol (clickhouse-driver).

**What it promises.** ``open()`` connects (``dsn``, or ``hosts`` tried in order until one
answers), creates the table when it does not exist (``init_sql``, or a ``CREATE TABLE`` built
from the query's output schema with ``engine`` and ``suffix``) and checks that every column of
the query exists in the table. ``write()`` inserts the batch, by column name and column by
column, and returns once ClickHouse answered the INSERT: a returned ``write`` is an
acknowledged batch, so ``flush()`` has nothing left to wait for.

**Delivery guarantee.** At-least-once. On servers that know ``insert_deduplication_token``
(ClickHouse 22.2 and later) every INSERT carries the token ``WriteContext.batch_key`` (sink,
position of the batch's first row in the query's output, row count), so a batch retried after
an INSERT whose answer was lost, or replayed after a restart in the same cut, is stored once by
table engines that deduplicate inserts (``Replicated*MergeTree``; ``MergeTree`` with
``non_replicated_deduplication_window``). Older servers (such as
Debian's 18.16) have no token: ``Replicated*MergeTree`` still drops a retried block that is
identical to a recent one, but other engines may store a retried batch twice.

**Errors.** Server unreachable, timeouts, "too many parts" and the like raise
:class:`RetryableError` (the runtime retries until the server is back). A refused login, an
unknown database, a table that cannot be created or lacks a query column raise
:class:`PermanentError` at ``open``; a value that does not fit its column raises
:class:`PermanentError` from ``write`` (the runtime dead-letters the batch's rows). Messages
never contain the password or the DSN.

The type mapping (and its fallbacks on old servers) is documented in ``docs/clickhouse.md``.
"""

from __future__ import annotations

import asyncio
import decimal
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors
from pydantic import Field, field_validator, model_validator

from sinkflow.errors import ConfigError
from sinkflow.sinks.base import PermanentError, RetryableError, Sink, SinkEnv, SinkError, WriteContext
from sinkflow.sinks.config import BatchPolicy, Duration, SinkConfig, StrList
from sinkflow.sinks.encode import as_printed, column_texts, holds_float32

DEFAULT_PORT = 9000


class ClickHouseConfig(SinkConfig):
    """Properties of the ``clickhouse`` sink (spec: ``spec/SINKS.md``, table "clickhouse").

    Required alternatives: ``dsn`` or ``hosts``; ``init_sql`` or ``engine``. ``dsn`` is a secret
    because it carries the password.
    """

    secret_fields: ClassVar[tuple[str, ...]] = ("password", "dsn")

    table_name: str = Field(min_length=1)
    dsn: str | None = None
    hosts: StrList | None = None
    username: str = "default"
    password: str = ""
    database: str = "default"
    engine: str | None = None
    suffix: str = ""
    init_sql: str | None = None
    batch_count: int = Field(default=128, ge=1)
    batch_duration: Duration = 0.1

    @field_validator("hosts")
    @classmethod
    def _hosts_parse(cls, hosts: list[str] | None) -> list[str] | None:
        for entry in hosts or []:
            host_port(entry)
        return hosts

    @field_validator("dsn")
    @classmethod
    def _dsn_scheme(cls, dsn: str | None) -> str | None:
        # The message must not echo the DSN: it holds the password.
        if dsn and urlsplit(dsn).scheme not in ("clickhouse", "clickhouses"):
            raise ValueError("must start with clickhouse:// or clickhouses://")
        return dsn

    @model_validator(mode="after")
    def _alternatives(self) -> ClickHouseConfig:
        # ConfigError passes through pydantic untouched, so the error names a property
        # even though it concerns two of them.
        if not self.dsn and not self.hosts:
            raise ConfigError("dsn", "dsn or hosts is required")
        if not self.init_sql and not self.engine:
            raise ConfigError("engine", "init_sql or engine is required (to create the table when it does not exist)")
        return self

    def batch_policy(self) -> BatchPolicy:
        """One INSERT per ``batch_count`` rows or per ``batch_duration``, whichever comes first."""
        return BatchPolicy(max_rows=self.batch_count, max_wait=self.batch_duration)


def host_port(entry: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` → (host, port); port 9000 when absent.

    Raises ``ValueError`` naming the entry when it is not a host.
    """
    problem = ValueError(f"'{entry}' is not host or host:port")
    try:
        parts = urlsplit("//" + entry.strip())
        host, port = parts.hostname, parts.port  # .port raises ValueError for a bad port
    except ValueError:
        raise problem from None
    if not host or parts.path or parts.username or parts.query:
        raise problem
    return host, port or DEFAULT_PORT


# --------------------------------------------------------------------------- type mapping


@dataclass(frozen=True)
class ServerFeatures:
    """What the connected server supports, from its version (the mapping falls back without it)."""

    datetime64: bool  # 20.1
    bool_type: bool  # 21.12
    dedup_token: bool  # 22.2: insert_deduplication_token

    @classmethod
    def of(cls, version: tuple[int, int]) -> ServerFeatures:
        return cls(datetime64=version >= (20, 1), bool_type=version >= (21, 12), dedup_token=version >= (22, 2))


_INTS = {
    pa.int8(): "Int8", pa.int16(): "Int16", pa.int32(): "Int32", pa.int64(): "Int64",
    pa.uint8(): "UInt8", pa.uint16(): "UInt16", pa.uint32(): "UInt32", pa.uint64(): "UInt64",
    pa.float32(): "Float32", pa.float64(): "Float64",
}  # fmt: skip
_UNIT_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}


def _quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    """``name`` as a ClickHouse identifier, whatever characters it holds."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def clickhouse_type(arrow_type: pa.DataType, features: ServerFeatures) -> str:
    """The ClickHouse type storing values of ``arrow_type`` (without ``Nullable``).

    Raises ``TypeError`` naming the Arrow type when ClickHouse has no counterpart here.
    """
    if arrow_type in _INTS:
        return _INTS[arrow_type]
    if pa.types.is_boolean(arrow_type):
        return "Bool" if features.bool_type else "UInt8"
    if pa.types.is_decimal(arrow_type):
        return f"Decimal({arrow_type.precision}, {arrow_type.scale})"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_binary(arrow_type):
        return "String"
    if pa.types.is_date(arrow_type):
        return "Date"
    if pa.types.is_timestamp(arrow_type):
        tz = _quote_string(arrow_type.tz or "UTC")
        digits = _UNIT_DIGITS[arrow_type.unit]
        if digits == 0 or not features.datetime64:
            # Old servers: DateTime keeps whole seconds; the fraction is dropped (docs/clickhouse.md).
            return f"DateTime({tz})"
        return f"DateTime64({digits}, {tz})"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        item = arrow_type.value_field
        inner = clickhouse_type(item.type, features)
        # ClickHouse cannot wrap Array in Nullable, but array items may be Nullable.
        return f"Array(Nullable({inner}))" if item.nullable and _nullable_allowed(inner) else f"Array({inner})"
    raise TypeError(f"type {arrow_type} has no ClickHouse counterpart in this sink")


def _nullable_allowed(ch_type: str) -> bool:
    return not ch_type.startswith("Array(")


def _identifiers(sql: str) -> set[str]:
    """Every bare or back-quoted identifier of a SQL fragment."""
    return {quoted or bare for quoted, bare in re.findall(r"`((?:[^`\\]|\\.)*)`|([A-Za-z_][A-Za-z0-9_]*)", sql)}


def create_table_sql(table: str, schema: pa.Schema, engine: str, suffix: str, features: ServerFeatures) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the query's output ``schema``.

    A column the Arrow schema marks nullable becomes ``Nullable(T)``, except columns named in
    ``suffix`` (sorting, partition or primary key): ClickHouse refuses Nullable key columns, so
    those are created plain and a NULL in them is a row error.
    """
    keys = _identifiers(suffix)
    columns = []
    for field in schema:
        ch_type = clickhouse_type(field.type, features)
        if field.nullable and field.name not in keys and _nullable_allowed(ch_type):
            ch_type = f"Nullable({ch_type})"
        columns.append(f"{quote_identifier(field.name)} {ch_type}")
    return f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(columns)}) ENGINE = {engine} {suffix}".rstrip()


# --------------------------------------------------------------------------- value conversion

Converter = Callable[[pa.Array], list[Any]]


def _unwrap(ch_type: str) -> tuple[str, bool]:
    """(inner type, nullable) of ``LowCardinality(Nullable(T))`` and friends."""
    nullable = False
    while True:
        m = re.fullmatch(r"(Nullable|LowCardinality)\((.*)\)", ch_type.strip())
        if not m:
            return ch_type.strip(), nullable
        nullable = nullable or m.group(1) == "Nullable"
        ch_type = m.group(2)


def _epoch_ints(array: pa.Array, digits: int) -> list[int | None]:
    """Timestamps as integers of 10**-digits seconds since the epoch (what the driver sends as-is).

    Integers skip the driver's per-value datetime conversions and time zone lookups.
    """
    ticks = array.cast(pa.int64())
    shift = digits - _UNIT_DIGITS[array.type.unit]
    if shift > 0:
        ticks = pc.multiply(ticks, 10**shift)
    elif shift < 0:
        ticks = pc.divide(ticks, 10**-shift)  # integer division: the finer fraction is dropped
    return ticks.to_pylist()


def _decimals(array: pa.Array) -> list[decimal.Decimal | None]:
    # Three times faster than to_pylist(), which builds each Decimal through a tuple.
    return [None if digits is None else decimal.Decimal(digits) for digits in array.cast(pa.string()).to_pylist()]


def _arrays(array: pa.Array) -> list[list[Any]]:
    # ClickHouse has no Nullable(Array): a NULL list is stored as the empty array.
    return [[] if items is None else items for items in array.to_pylist()]


def _to_pylist(array: pa.Array) -> list[Any]:
    return array.to_pylist()


def converter(arrow_type: pa.DataType, ch_type: str) -> Converter:
    """How an Arrow column becomes the Python list clickhouse-driver inserts into ``ch_type``."""
    inner, _ = _unwrap(ch_type)
    if holds_float32(arrow_type) and "Float32" not in inner:
        # Into Float64 or String a float32 goes as Timeplus prints it (126.95), without float64 noise.
        widened = converter(as_printed(pa.array([], arrow_type)).type, ch_type)
        return lambda array: widened(as_printed(array))
    if pa.types.is_timestamp(arrow_type):
        m = re.match(r"DateTime64\((\d+)", inner)
        if m:
            digits = int(m.group(1))
            return lambda array: _epoch_ints(array, digits)
        if inner.startswith("DateTime"):
            return lambda array: _epoch_ints(array, 0)
    if pa.types.is_decimal(arrow_type) and inner.startswith("Decimal"):
        return _decimals
    if inner.startswith("Array("):
        return _arrays
    text_or_bytes = any(check(arrow_type) for check in (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary))
    if (inner == "String" or inner.startswith("FixedString")) and not text_or_bytes:
        # Timeplus prints values this way (datetime as 2022-01-23 10:00:00.123), and ClickHouse parses it back.
        return column_texts
    return _to_pylist


@dataclass(frozen=True)
class _TargetColumn:
    name: str
    ch_type: str
    accepts_null: bool  # Nullable(T), or Array(T) where NULL becomes []
    convert: Converter

    @classmethod
    def of(cls, name: str, arrow_type: pa.DataType, ch_type: str) -> _TargetColumn:
        inner, nullable = _unwrap(ch_type)
        return cls(name, ch_type, nullable or inner.startswith("Array("), converter(arrow_type, ch_type))


# --------------------------------------------------------------------------- errors

_RETRYABLE_SERVER_CODES = frozenset(
    {
        ch_errors.ErrorCodes.TIMEOUT_EXCEEDED,
        ch_errors.ErrorCodes.TOO_MANY_SIMULTANEOUS_QUERIES,
        ch_errors.ErrorCodes.NO_FREE_CONNECTION,
        ch_errors.ErrorCodes.SOCKET_TIMEOUT,
        ch_errors.ErrorCodes.NETWORK_ERROR,
        ch_errors.ErrorCodes.MEMORY_LIMIT_EXCEEDED,
        ch_errors.ErrorCodes.TABLE_IS_READ_ONLY,
        ch_errors.ErrorCodes.TOO_MANY_PARTS,
        ch_errors.ErrorCodes.UNKNOWN_STATUS_OF_INSERT,
        ch_errors.ErrorCodes.ALL_CONNECTION_TRIES_FAILED,
        ch_errors.ErrorCodes.ALL_REPLICAS_ARE_STALE,
    }
)
_LOGIN_CODES = frozenset(
    {
        ch_errors.ErrorCodes.UNKNOWN_USER,
        ch_errors.ErrorCodes.WRONG_PASSWORD,
        ch_errors.ErrorCodes.REQUIRED_PASSWORD,
        ch_errors.ErrorCodes.IP_ADDRESS_NOT_ALLOWED,
        516,  # AUTHENTICATION_FAILED on servers newer than this driver's code table
    }
)
_MAX_MESSAGE = 400
# What the driver raises for a value its column can't take (TypeError & co. come from its
# column writers, e.g. text into a Decimal column).
_VALUE_ERRORS = (
    ch_errors.TypeMismatchError, ch_errors.TooLargeStringSize, ch_errors.CannotParseUuidError,
    ch_errors.CannotParseDomainError, TypeError, ValueError, OverflowError, AttributeError,
)  # fmt: skip
_NETWORK_ERRORS = (ch_errors.NetworkError, ch_errors.SocketTimeoutError, EOFError, OSError)

_T = TypeVar("_T")


def _server_text(exc: ch_errors.ServerException) -> str:
    """The server's message on one line, without the stack trace old servers append."""
    message = " ".join((exc.message or "").split("Stack trace:")[0].split())
    message = message.removeprefix("DB::Exception: ") or f"code {exc.code}"
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"


def _driver_text(exc: Exception) -> str:
    text = exc.message if isinstance(exc, ch_errors.Error) and exc.message else str(exc)
    # The driver's advice to retry with types_check means nothing to a sinkflow user.
    return text.replace(" Repeat query with types_check=True for detailed info.", "")


# --------------------------------------------------------------------------- the sink


class ClickHouseSink(Sink):
    """Inserts result batches into a ClickHouse table; see the module docstring for the guarantee."""

    config_class = ClickHouseConfig
    config: ClickHouseConfig

    def __init__(self, config: ClickHouseConfig, env: SinkEnv) -> None:  # type: ignore[override]
        super().__init__(config, env)
        self._client: Client | None = None
        self._columns: list[_TargetColumn] = []
        self._insert_sql = ""
        self._features: ServerFeatures | None = None
        if not config.init_sql:
            # A result type the mapping can't create is a configuration error, found at creation.
            for field in env.output_schema:
                try:
                    clickhouse_type(field.type, ServerFeatures.of((0, 0)))
                except TypeError as exc:
                    raise ConfigError("engine", f"column '{field.name}': {exc}; create the table with init_sql") from None

    @property
    def table(self) -> str:
        """The target table, quoted."""
        return quote_identifier(self.config.table_name)

    @property
    def server_version(self) -> tuple[int, int, int] | None:
        """The connected server's version, once opened."""
        if self._client is None or self._client.connection.server_info is None:
            return None
        return tuple(self._client.connection.server_info.version_tuple())  # type: ignore[return-value]

    async def open(self) -> None:
        """Connect, create the table when missing, and match the query's columns to the table's.

        Raises :class:`RetryableError` when no host answers, :class:`PermanentError` for a refused
        login, a failing ``init_sql``/``CREATE TABLE`` or a query column missing from the table.
        """
        await self.close()  # a reopen after a failed open starts from a fresh connection
        self._client = self._new_client()
        await self._call(self._prepare, "opening")

    def _new_client(self) -> Client:
        cfg = self.config
        if cfg.dsn:
            return Client.from_url(cfg.dsn)
        (host, port), *others = [host_port(entry) for entry in cfg.hosts or []]
        # The driver tries alt_hosts in order when a host refuses the connection.
        alt_hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in others)
        return Client(
            host=host,
            port=port,
            alt_hosts=alt_hosts or None,
            user=cfg.username,
            password=cfg.password,
            database=cfg.database,
            client_name="sinkflow",
        )

    def _prepare(self) -> None:
        client = self._require_client()
        (exists,) = client.execute(f"EXISTS TABLE {self.table}")[0]
        info = client.connection.server_info
        self._features = ServerFeatures.of((info.version_major, info.version_minor))
        if not exists:
            self._create_table(client)
        described = client.execute(f"DESCRIBE TABLE {self.table}")
        # Only ordinary and DEFAULT columns take inserted values (not MATERIALIZED / ALIAS).
        table_types = {row[0]: row[1] for row in described if row[2] in ("", "DEFAULT")}
        missing = [field.name for field in self.env.output_schema if field.name not in table_types]
        if missing:
            names = ", ".join(f"'{name}'" for name in missing)
            raise PermanentError(
                f"table {self.config.table_name} has no column {names} that the query produces "
                f"(table columns: {', '.join(table_types)})"
            )
        self._columns = [
            _TargetColumn.of(field.name, field.type, table_types[field.name]) for field in self.env.output_schema
        ]
        names = ", ".join(quote_identifier(column.name) for column in self._columns)
        self._insert_sql = f"INSERT INTO {self.table} ({names}) VALUES"

    def _create_table(self, client: Client) -> None:
        cfg = self.config
        if cfg.init_sql:
            sql, route = cfg.init_sql, "init_sql"
        else:
            assert cfg.engine is not None and self._features is not None  # the config validator ensures it
            sql = create_table_sql(self.table, self.env.output_schema, cfg.engine, cfg.suffix, self._features)
            route = "CREATE TABLE from engine and suffix"
        try:
            client.execute(sql)
        except ch_errors.ServerException as exc:
            if exc.code in _RETRYABLE_SERVER_CODES:
                raise
            raise PermanentError(f"{route} failed for table {cfg.table_name}: {_server_text(exc)}") from None
        if not client.execute(f"EXISTS TABLE {self.table}")[0][0]:
            raise PermanentError(f"init_sql ran but did not create table {cfg.table_name}")

    async def write(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        """INSERT the batch; returns once ClickHouse acknowledged it.

        Raises :class:`PermanentError` naming the column (and row) when a value can't be stored,
        :class:`RetryableError` when the server is unreachable or busy.
        """
        settings: dict[str, Any] = {}
        if self._features is not None and self._features.dedup_token:
            settings["insert_deduplication_token"] = ctx.batch_key(batch.num_rows)
        # Converting to Python values is CPU work too: it runs in the worker thread with the INSERT.
        await self._call(lambda: self._insert(self._columnar(batch), settings), "inserting")

    def _columnar(self, batch: pa.RecordBatch) -> list[list[Any]]:
        values = []
        for column in self._columns:
            array = batch.column(column.name)
            if array.null_count and not column.accepts_null:
                row = array.is_null().to_pylist().index(True)
                raise PermanentError(
                    f"row {row}: column '{column.name}' is NULL but the table column is {column.ch_type} (not Nullable)"
                )
            values.append(column.convert(array))
        return values

    def _insert(self, values: list[list[Any]], settings: dict[str, Any]) -> None:
        try:
            self._require_client().execute(self._insert_sql, values, columnar=True, settings=settings)
        except _VALUE_ERRORS as exc:
            # Raised while the driver serializes the block; it then drops the connection, so the
            # server discards the unfinished INSERT and nothing of the batch is stored.
            message = f"a value does not fit table {self.config.table_name}: {_driver_text(exc)}"
            raise PermanentError(self._scrub(message)) from None

    async def close(self) -> None:
        """Disconnect; never raises."""
        client, self._client = self._client, None
        if client is not None:
            try:
                await asyncio.to_thread(client.disconnect)
            except Exception:  # noqa: BLE001 - closing must not fail the pipeline
                pass

    def _require_client(self) -> Client:
        if self._client is None:
            raise RetryableError("the ClickHouse sink is not open")
        return self._client

    async def _call(self, fn: Callable[[], _T], doing: str) -> _T:
        """Run blocking driver work off the event loop, turning driver errors into SinkErrors."""
        try:
            return await asyncio.to_thread(fn)
        except SinkError:
            raise
        except ch_errors.ServerException as exc:
            raise self._server_error(exc, doing) from None
        except _NETWORK_ERRORS as exc:
            raise RetryableError(self._scrub(f"ClickHouse unreachable while {doing}: {exc}")) from None

    def _server_error(self, exc: ch_errors.ServerException, doing: str) -> SinkError:
        message = f"ClickHouse error {exc.code} while {doing} ({self.config.table_name}): {_server_text(exc)}"
        if exc.code in _LOGIN_CODES:
            return PermanentError(self._scrub(f"ClickHouse refused the login: {_server_text(exc)}"))
        if exc.code in _RETRYABLE_SERVER_CODES:
            return RetryableError(self._scrub(message))
        return PermanentError(self._scrub(message))

    def _scrub(self, message: str) -> str:
        """``message`` without the password or DSN, should a driver ever echo them."""
        for secret in (self.config.dsn, self.config.password, _dsn_password(self.config.dsn)):
            if secret:
                message = message.replace(secret, "********")
        return message


def _dsn_password(dsn: str | None) -> str | None:
    try:
        return urlsplit(dsn).password if dsn else None
    except ValueError:
        return None
