"""One HTTP request per row: :class:`RequestPerRowSink` sends each row of a batch over one
:class:`~sinkflow.sinks.http_client.HttpClient`; the http, webhook and slack sinks only say
how a row becomes a body."""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass

import aiohttp
import pyarrow as pa

from sinkflow.sinks.base import PermanentError, Sink, SinkEnv, WriteContext
from sinkflow.sinks.config import SinkConfig
from sinkflow.sinks.delivery import deliver_rows
from sinkflow.sinks.encode import json_document, json_documents, row_dicts
from sinkflow.sinks.http_client import HttpClient
from sinkflow.sinks.http_errors import response_error, transport_error
from sinkflow.sinks.oauth2 import OAuth2Settings, TokenSource
from sinkflow.sinks.pacing import shared_pacer
from sinkflow.sinks.template import Template


@dataclass(frozen=True)
class RequestSpec:
    """How a :class:`RequestPerRowSink` sends: everything but the body.

    ``template`` renders a row's body; without one the body is the row as a JSON document.
    ``target`` names the destination in error messages and must not contain a secret;
    ``secrets`` are scrubbed from every message (webhook URLs, header tokens).
    ``rate`` (requests per second) paces sends when set.
    """

    method: str
    url: str
    headers: dict[str, str]
    timeout: float
    paralism: int
    target: str
    template: Template | None = None
    secrets: tuple[str, ...] = ()
    oauth2: OAuth2Settings | None = None
    rate: float | None = None


class RequestPerRowSink(Sink):
    """One HTTP request per result row, with an ``Idempotency-Key`` header per row.

    Subclasses give the :class:`RequestSpec` (:meth:`request_spec`) and may wrap each row's
    text into their payload (:meth:`wrap`). Up to ``paralism`` requests are in flight over one
    :class:`~sinkflow.sinks.http_client.HttpClient` (opened in :meth:`open`, closed in
    :meth:`close`); with ``paralism`` 1 rows arrive in result order. A row is acknowledged when its request is answered 2xx, so ``write``
    returns only once the whole batch is delivered, or raises :class:`PartialWriteError`
    naming exactly the rows that were not (see :func:`deliver_rows`). With OAuth2 a 401
    fetches a new token and sends the row once more.
    """

    def __init__(self, config: SinkConfig, env: SinkEnv) -> None:
        super().__init__(config, env)
        self.spec = self.request_spec()
        self._client: HttpClient | None = None
        self._tokens: TokenSource | None = None
        self._pacer = shared_pacer(self.spec.url, self.spec.rate) if self.spec.rate else None
        self._will_retry = config.retry_policy().max_retries != 0

    @abc.abstractmethod
    def request_spec(self) -> RequestSpec:
        """Method, URL, headers, limits and pacing of this sink's requests."""

    def wrap(self, body: bytes) -> bytes:
        """The request body for a row's rendered template or JSON document (as is by default)."""
        return body

    async def open(self) -> None:
        """Open the connection pool; with OAuth2, fetch a first token so bad credentials fail here."""
        spec = self.spec
        self._client = HttpClient(spec.paralism, spec.timeout)
        if spec.oauth2 is not None:
            oauth = spec.oauth2
            self._tokens = TokenSource(
                self._client, oauth.token_url, oauth.client_id, oauth.client_secret, oauth.scopes, spec.timeout
            )
            await self._tokens.token()

    async def write(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        """Send every row of ``batch``; see the class contract."""
        # In a worker thread: encoding makes dozens of Arrow calls, each giving the GIL up and
        # waiting to get it back, which on the event loop would hold up every sink and client.
        bodies = await asyncio.to_thread(encode_rows, batch, self.spec.template)
        send = lambda i: self._send(bodies[i], ctx.row_key(i))  # noqa: E731
        await deliver_rows(len(bodies), send, self.spec.paralism, will_retry=self._will_retry)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _secrets(self) -> tuple[str, ...]:
        return self.spec.secrets + (self._tokens.secrets if self._tokens else ())

    async def _send(self, body: bytes | PermanentError, key: str) -> None:
        client = self._client
        if client is None:
            raise RuntimeError("write() before open()")
        if isinstance(body, PermanentError):
            raise body
        spec = self.spec
        content = self.wrap(body)
        headers = {**spec.headers, "Idempotency-Key": key}
        retried_auth = False
        while True:
            token = None
            if self._tokens is not None:
                token = await self._tokens.token()
                headers["Authorization"] = f"Bearer {token}"
            if self._pacer is not None:
                await self._pacer.wait()
            try:
                answer = await client.request(spec.method, spec.url, content, headers)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise transport_error(exc, spec.target, spec.timeout, self._secrets()) from None
            if answer.status == 401 and token is not None and not retried_auth:
                # The token was revoked or expired early: one more try with a fresh one.
                self._tokens.invalidate(token)  # type: ignore[union-attr]
                retried_auth = True
                continue
            error = response_error(answer, spec.target, self._secrets())
            if error is None:
                return
            if error.retry_after is not None and self._pacer is not None:
                self._pacer.hold(error.retry_after)
            raise error


def encode_rows(batch: pa.RecordBatch, template: Template | None) -> list[bytes | PermanentError]:
    """Each row's text: ``template`` rendered, or the row as a JSON document.

    A row holding a value the encoding cannot represent (binary, an interval) gets a
    :class:`PermanentError` in its place, so only that row fails. Row-JSON is built column by
    column (:func:`json_documents`) and falls back to row by row only to find such rows.
    """
    if template is None:
        try:
            return list(json_documents(batch))
        except (TypeError, ValueError):
            pass
    out: list[bytes | PermanentError] = []
    for row in row_dicts(batch):
        try:
            out.append(template.render(row).encode() if template is not None else json_document(row))
        except (TypeError, ValueError) as exc:
            out.append(PermanentError(f"row cannot be encoded: {exc}"))
    return out
