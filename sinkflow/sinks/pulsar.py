"""Pulsar sink: one JSON document per result row, published to a topic with pulsar-client.

**What it promises.** ``write()`` hands every row of the batch to the producer (batching on,
``block_if_queue_full`` so a slow broker slows the pipeline instead of failing it) and returns
without waiting; each send has its own completion callback. ``flush(epoch)`` returns only when
the broker acknowledged every message written since the previous flush.

**Delivery guarantee.** At-least-once: the runtime commits an epoch only after ``flush``
returned, and a replayed epoch is sent again, so a consumer may see a row twice after a
failure (no producer deduplication: pulsar-lite and default Apache Pulsar namespaces don't
enforce it).

**Errors.** A broker that can't be reached raises :class:`RetryableError` at ``open``; an
unusable topic or refused credentials raise :class:`PermanentError`. When the broker goes away
mid-stream the client reconnects by itself and ``flush`` waits for the acknowledgements (up to
the producer's 30 s send timeout, after which the sends fail). In ``flush``, failed sends
that may succeed later (timeout, disconnect) fail the epoch with :class:`RetryableError`; when
some message can never be sent as it is (too big, topic terminated), :class:`PartialWriteError`
maps every failed row (in write order since the previous flush) to its error, so the runtime
dead-letters exactly those rows and resends the others. Messages never contain a token or secret.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pulsar
import pyarrow as pa
from pydantic import model_validator

from sinkflow.errors import ConfigError
from sinkflow.sinks.base import PartialWriteError, PermanentError, RetryableError, Sink, SinkEnv, SinkError, WriteContext
from sinkflow.sinks.config import BatchPolicy, SinkConfig
from sinkflow.sinks.encode import column_texts, json_documents

log = logging.getLogger(__name__)
_OK = int(pulsar.Result.Ok)
#: How long the producer holds a batch open for more messages; flush waits at most this long
#: for the last batch of an epoch to leave.
PUBLISH_DELAY_MS = 10
#: The least room for unacknowledged messages (see PulsarConfig.max_pending).
MIN_PENDING = 20_000

#: auth_type → (required auth_params, optional auth_params). For oauth2, ``private_key`` (a
#: credentials file URL, as the Pulsar client takes it) may replace ``client_id`` + ``client_secret``.
AUTH_PARAMS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "": (frozenset(), frozenset()),
    "token": (frozenset({"token"}), frozenset()),
    "oauth2": (frozenset({"issuer_url"}), frozenset({"client_id", "client_secret", "private_key", "audience", "scope"})),
}

# Failures that sending again can't fix (exception class names equal pulsar.Result names).
_PERMANENT = frozenset(
    {
        "AuthenticationError", "AuthorizationError", "InvalidTopicName", "InvalidUrl", "InvalidConfiguration",
        "MessageTooBig", "InvalidMessage", "TopicTerminated", "IncompatibleSchema", "NotAllowedError",
        "OperationNotSupported", "UnsupportedVersionError", "ErrorGettingAuthenticationData",
    }
)  # fmt: skip


class PulsarConfig(SinkConfig):
    """Properties of the ``pulsar`` sink (spec: ``spec/SINKS.md``, table "pulsar").

    ``message_key`` (an addition to the spec) names an output column whose value keys each message.
    """

    secret_fields: ClassVar[tuple[str, ...]] = ("auth_params.token", "auth_params.client_secret", "auth_params.private_key")

    topic: str
    broker_url: str
    auth_type: Literal["", "token", "oauth2"]
    auth_params: dict[str, str] = {}
    message_key: str = ""

    @model_validator(mode="after")
    def _auth_params_match(self) -> PulsarConfig:
        if not self.broker_url.startswith(("pulsar://", "pulsar+ssl://")):
            raise ConfigError("broker_url", "must start with pulsar:// or pulsar+ssl://")
        required, optional = AUTH_PARAMS[self.auth_type]
        for name in sorted(required - self.auth_params.keys()):
            raise ConfigError(f"auth_params.{name}", f"is required when auth_type is '{self.auth_type}'")
        for name in sorted(self.auth_params.keys() - required - optional):
            allowed = ", ".join(sorted(required | optional)) or "none"
            raise ConfigError(f"auth_params.{name}", f"unknown for auth_type '{self.auth_type}' (allowed: {allowed})")
        if self.auth_type == "oauth2" and "private_key" not in self.auth_params:
            for name in ("client_id", "client_secret"):
                if name not in self.auth_params:
                    raise ConfigError(f"auth_params.{name}", "is required for oauth2 unless private_key is given")
        return self

    def batch_policy(self) -> BatchPolicy:
        """Large hand-overs: the producer batches messages itself."""
        return BatchPolicy(max_rows=1000, max_wait=0.1)

    def max_pending(self) -> int:
        """Messages the producer may hold unacknowledged: room for all the runtime writes between
        two flushes, so that a write's thread waits on a full queue only when the broker falls behind."""
        return max(MIN_PENDING, self.batch_policy().flush_rows)


@dataclass(frozen=True)
class PulsarAuth:
    """How the client authenticates: ``method`` and the parameter string the Pulsar client takes.

    ``params`` is the token for ``token`` and the JSON parameter string of
    ``AuthenticationOauth2`` for ``oauth2``; it is a secret, kept out of ``repr``.
    """

    method: Literal["token", "oauth2"]
    params: str = field(repr=False)

    def build(self) -> pulsar.Authentication:
        """The pulsar-client authentication object."""
        if self.method == "token":
            return pulsar.AuthenticationToken(self.params)
        return pulsar.AuthenticationOauth2(self.params)


def pulsar_auth(auth_type: str, auth_params: dict[str, str]) -> PulsarAuth | None:
    """The authentication a validated config asks for, or None for ``auth_type`` ``""``.

    oauth2 with ``client_id`` + ``client_secret`` is given to the client as an inline credentials
    file (``data:application/json;base64,…``), the form its ``private_key`` parameter documents.
    """
    if auth_type == "":
        return None
    if auth_type == "token":
        return PulsarAuth("token", auth_params["token"])
    params = {"issuer_url": auth_params["issuer_url"]}
    if "private_key" in auth_params:
        params["private_key"] = auth_params["private_key"]
    else:
        credentials = json.dumps({"client_id": auth_params["client_id"], "client_secret": auth_params["client_secret"]})
        params["private_key"] = "data:application/json;base64," + base64.b64encode(credentials.encode()).decode()
    for name in ("audience", "scope"):
        if name in auth_params:
            params[name] = auth_params[name]
    return PulsarAuth("oauth2", json.dumps(params))


def _classify(failure: BaseException | str) -> SinkError:
    name = failure if isinstance(failure, str) else type(failure).__name__
    message = f"Pulsar send failed: {name}"
    return PermanentError(message) if name in _PERMANENT else RetryableError(message)


class _Acks:
    """Completion callbacks of the sends since the last flush, counted from the client's thread.

    :meth:`wait` awaits on the event loop (the last callback wakes it), so an epoch waiting for
    a broker that is away holds no worker thread.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._idle: asyncio.Future[None] | None = None
        self.sent = 0
        self.pending = 0
        self.failures: dict[int, SinkError] = {}

    def reserve(self, count: int) -> int:
        """Count ``count`` more sends; return the row index of the first."""
        with self._lock:
            first = self.sent
            self.sent += count
            self.pending += count
        return first

    def callback(self, index: int) -> Callable[[pulsar.Result, Any], None]:
        """The completion callback of the send of row ``index`` (reserved before)."""
        return functools.partial(self._complete, index)

    def _complete(self, index: int, result: pulsar.Result, _message_id: Any) -> None:
        with self._lock:
            if int(result) != _OK:  # comparing pybind enums costs twice as much, once per message
                self.failures[index] = _classify(result.name)
            self.pending -= 1
            idle = self._idle if self.pending == 0 else None
        if idle is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                self._loop.call_soon_threadsafe(_set_done, idle)

    async def wait(self) -> tuple[int, dict[int, SinkError]]:
        """Return (messages sent, failures) once every callback ran, and start afresh."""
        with self._lock:
            idle = self._idle = self._loop.create_future() if self.pending else None
        if idle is not None:
            await idle
        with self._lock:
            sent, failures = self.sent, self.failures
            self.sent, self.failures, self._idle = 0, {}, None
        return sent, failures


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class PulsarSink(Sink):
    """Publishes each result row as a JSON message; see the module docstring for the guarantee."""

    config_class = PulsarConfig
    config: PulsarConfig

    def __init__(self, config: PulsarConfig, env: SinkEnv) -> None:  # type: ignore[override]
        super().__init__(config, env)
        if config.message_key and config.message_key not in env.output_schema.names:
            columns = ", ".join(env.output_schema.names)
            raise ConfigError("message_key", f"column '{config.message_key}' is not in the query's output ({columns})")
        self._client: pulsar.Client | None = None
        self._producer: pulsar.Producer | None = None
        self._acks: _Acks | None = None

    async def open(self) -> None:
        """Connect and create the producer.

        Raises :class:`RetryableError` when the broker can't be reached, :class:`PermanentError`
        when it refuses the topic or the credentials.
        """
        await self.close()  # a reopen after a failed open starts afresh
        self._acks = _Acks(asyncio.get_running_loop())
        auth = pulsar_auth(self.config.auth_type, self.config.auth_params)
        self._client = pulsar.Client(
            self.config.broker_url,
            authentication=auth.build() if auth else None,
            operation_timeout_seconds=10,
            # Not a Python logger: the client would hand it two formatted DEBUG lines per message
            # (filtered only in Python), a fifth of the send cost. Warnings go to the console.
            logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn),
        )
        try:
            self._producer = await asyncio.to_thread(
                self._client.create_producer,
                self.config.topic,
                batching_enabled=True,
                batching_max_publish_delay_ms=PUBLISH_DELAY_MS,
                block_if_queue_full=True,
                max_pending_messages=self.config.max_pending(),
            )
        except pulsar.PulsarException as exc:
            await self.close()
            error = _classify(exc)
            raise type(error)(
                f"cannot create a producer for topic '{self.config.topic}' at {self.config.broker_url}: "
                f"{type(exc).__name__}"
            ) from None

    async def write(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        """Enqueue one message per row (encoding and blocking sends run off the event loop).

        Never raises for delivery problems: a send the producer refuses is reported by ``flush``.
        """
        if self._producer is None or self._acks is None:
            raise RetryableError("the Pulsar sink is not open")
        await asyncio.to_thread(self._send_all, self._producer, self._acks, batch, ctx.encoded)

    def encode(self, batch: pa.RecordBatch) -> tuple[list[bytes], list[str | None]]:
        """The batch's messages: one JSON document per row, and their partition keys."""
        documents = json_documents(batch)
        if not self.config.message_key:
            return documents, [None] * len(documents)
        return documents, column_texts(batch.column(self.config.message_key))

    def _send_all(self, producer: pulsar.Producer, acks: _Acks, batch: pa.RecordBatch,
                  encoded: tuple[list[bytes], list[str | None]] | None) -> None:
        documents, keys = encoded if encoded is not None else self.encode(batch)
        refused: pulsar.Result | None = None
        first = acks.reserve(len(documents))
        for offset, (document, key) in enumerate(zip(documents, keys, strict=True)):
            callback = acks.callback(first + offset)
            if refused is None:
                try:
                    producer.send_async(document, callback, partition_key=key)
                    continue
                except pulsar.PulsarException as exc:
                    refused = getattr(pulsar.Result, type(exc).__name__, pulsar.Result.UnknownError)
            # Not enqueued: reported by flush like a failed send, so row indexes stay in write order.
            callback(refused, None)

    async def flush(self, epoch: int) -> None:
        """Return once every message since the last flush is acknowledged; raise for the failed ones.

        The producer sends its last open batch within ``batching_max_publish_delay_ms``; waiting
        for that, instead of calling the client's blocking ``flush()``, keeps threads free.
        """
        if self._acks is None:
            raise RetryableError("the Pulsar sink is not open")
        sent, failures = await self._acks.wait()
        if not failures:
            return
        if all(error.retryable for error in failures.values()):
            first = next(iter(failures.values()))
            raise RetryableError(f"{len(failures)} of {sent} message(s) of epoch {epoch} not acknowledged: {first.message}")
        raise PartialWriteError(failures)

    async def close(self) -> None:
        """Close producer and client; never raises."""
        producer, client = self._producer, self._client
        self._producer = self._client = None

        def shut() -> None:
            for closable in (producer, client):
                if closable is not None:
                    try:
                        closable.close()
                    except Exception:  # noqa: BLE001 - closing must not fail the pipeline
                        log.debug("closing the Pulsar %s failed", type(closable).__name__, exc_info=True)

        await asyncio.to_thread(shut)
