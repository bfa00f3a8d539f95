"""What the row-at-a-time sinks (http, webhook, slack, e-mail) share.

* :func:`deliver_rows` — send every row of a batch with up to ``paralism`` sends in flight,
  in result order when ``paralism`` is 1, and report failed rows in one
  :class:`PartialWriteError`;
* :class:`Pacer` — spaces sends to a rate (Slack: about one message per second) and holds
  them back after a 429's ``Retry-After``;
* :func:`response_error` / :func:`transport_error` — an HTTP answer or an httpx exception
  classified as :class:`RetryableError` (network, timeout, 5xx, 429) or
  :class:`PermanentError` (other 4xx), with the server's ``Retry-After`` and a short body
  excerpt, and with every secret scrubbed from the message;
* :class:`TokenSource` — OAuth2 client-credentials tokens, cached until shortly before
  they expire;
* :class:`RequestPerRowSink` — one HTTP request per row over one ``httpx.AsyncClient``:
  the http, webhook and slack sinks only say how a row becomes a body.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote_plus

import httpx
import pyarrow as pa
from pydantic import AfterValidator, AliasChoices, Field

from sinkflow.sinks.base import (
    NotAttempted,
    PartialWriteError,
    PermanentError,
    RetryableError,
    Sink,
    SinkEnv,
    SinkError,
    WriteContext,
)
from sinkflow.sinks.config import BatchPolicy, SinkConfig
from sinkflow.sinks.encode import json_document, json_documents, row_dicts
from sinkflow.sinks.template import Template

#: Longest excerpt of a response body quoted in an error message.
EXCERPT_CHARS = 200
_REDACTED = "***"


# --------------------------------------------------------------------------- sending rows


async def deliver_rows(
    count: int, send: Callable[[int], Awaitable[None]], paralism: int, *, will_retry: bool = True
) -> None:
    """Call ``send(i)`` for every row index ``i`` in ``range(count)``, at most ``paralism`` at once.

    ``send`` raises :class:`SinkError` for a row it could not deliver. With ``paralism`` 1
    rows go strictly one after another in result order; at the first *retryable* failure
    sending stops and every later row is reported as a retryable "not sent" failure, so the
    runtime's retry delivers them in order after the failed one. A failure that will not be
    retried (a permanent one, or any when ``will_retry`` is false because the sink's retry
    policy allows no retries) does not stop the batch: that row goes to the dead-letter
    stream, so sending the next rows keeps the order of everything that is delivered.

    With ``paralism`` N > 1 every row is tried, N at a time, in no guaranteed order.

    Raises :class:`PartialWriteError` mapping each failed row index to its error; other
    exceptions from ``send`` (bugs) propagate and cancel the sends in flight.
    """
    failures: dict[int, SinkError] = {}
    if paralism <= 1:
        for index in range(count):
            try:
                await send(index)
            except SinkError as exc:
                failures[index] = exc
                if exc.retryable and will_retry:
                    not_sent = NotAttempted(
                        f"not sent: row {index} before it failed and rows are sent in order (paralism 1)",
                        retry_after=exc.retry_after,
                    )
                    failures.update(dict.fromkeys(range(index + 1, count), not_sent))
                    break
    else:
        indexes = iter(range(count))

        async def worker() -> None:
            # Workers share one iterator, so each row is taken exactly once, N in flight.
            for index in indexes:
                try:
                    await send(index)
                except SinkError as exc:
                    failures[index] = exc

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(paralism, count)):
                    group.create_task(worker())
        except ExceptionGroup as errors:  # a bug in send: surface it as itself, like paralism 1 does
            raise errors.exceptions[0] from None
    if failures:
        raise PartialWriteError(dict(sorted(failures.items())))


class Pacer:
    """Spaces the actual starts of sends at least ``1 / rate`` seconds apart, across concurrent
    callers: callers pass one at a time, so a caller woken late never crowds the next one.

    :meth:`hold` pushes the next start back (after a 429 with ``Retry-After``).
    """

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._last_start = float("-inf")
        self._held_until = 0.0
        self._turn = asyncio.Lock()

    async def wait(self) -> None:
        """Return when the caller may start its send."""
        async with self._turn:
            while (delay := max(self._last_start + self.interval, self._held_until) - time.monotonic()) > 0:
                await asyncio.sleep(delay)  # may wake a little early: check again
            self._last_start = time.monotonic()

    def hold(self, seconds: float) -> None:
        """Start no send before ``seconds`` from now."""
        self._held_until = max(self._held_until, time.monotonic() + seconds)


_PACERS: dict[tuple[str, float], Pacer] = {}


def shared_pacer(url: str, rate: float) -> Pacer:
    """The process's pacer for ``url``: every sink posting to one webhook shares its rate limit
    (Slack allows about one message per second per webhook, not per sink)."""
    return _PACERS.setdefault((url, rate), Pacer(rate))


# --------------------------------------------------------------------------- classification


def scrub(message: str, secrets: Iterable[str]) -> str:
    """``message`` with every occurrence of a (non-empty) secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, _REDACTED)
    return message


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    Returns None when absent or unreadable; a date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _excerpt(body: str) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[:EXCERPT_CHARS] + "…"


def response_error(response: httpx.Response, target: str, secrets: Iterable[str] = ()) -> SinkError | None:
    """None for a 2xx answer, else its error: 429 and 5xx retryable (with ``Retry-After``),
    other 4xx permanent, and 3xx permanent too (redirects are not followed: a POST must not
    silently turn into something else). The message names ``target``, the status and a body
    excerpt, scrubbed of ``secrets``."""
    status = response.status_code
    if status < 300:
        return None
    if status < 400:
        return PermanentError(
            f"{target} answered HTTP {status} {response.reason_phrase}: redirects are not followed;"
            " configure the final URL"
        )
    # Scrub before cutting: a secret cut in half by the excerpt would no longer match.
    excerpt = _excerpt(scrub(response.text, secrets))
    message = scrub(f"{target} answered HTTP {status} {response.reason_phrase}: {excerpt}".rstrip(": "), secrets)
    if status == 429 or status >= 500:
        return RetryableError(message, retry_after=parse_retry_after(response.headers.get("retry-after")))
    return PermanentError(message)


def transport_error(exc: httpx.HTTPError, target: str, timeout: float, secrets: Iterable[str] = ()) -> SinkError:
    """A request that got no answer: timeouts and network errors are retryable; a malformed
    request (httpx refused to build it) is permanent. The message is scrubbed of secrets."""
    if isinstance(exc, httpx.TimeoutException):
        return RetryableError(f"{target} did not answer within {timeout:g}s ({type(exc).__name__})")
    detail = scrub(f"{type(exc).__name__}: {exc}".rstrip(": "), secrets)
    if isinstance(exc, (httpx.TransportError, httpx.StreamError)):
        return RetryableError(f"{target} unreachable: {detail}")
    return PermanentError(f"request to {target} failed: {detail}")


# --------------------------------------------------------------------------- OAuth2


class TokenSource:
    """OAuth2 client-credentials tokens for one client, fetched from ``token_url``.

    A token is reused until ``margin`` before its ``expires_in`` (the smaller of 30 s and a
    tenth of its lifetime), or until :meth:`invalidate` (the API answered 401). Concurrent
    callers share one fetch. The client authenticates with HTTP Basic first and, if the
    token endpoint refuses that, with ``client_id``/``client_secret`` form fields (as Go's
    oauth2 package does); the style that worked is remembered.

    :meth:`token` raises :class:`RetryableError` when the endpoint is unreachable or answers
    5xx/429 and :class:`PermanentError` when it refuses the client (no secret in either).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        scopes: list[str],
        timeout: float,
    ) -> None:
        self._client = client
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scopes = scopes
        self._timeout = timeout
        self._token: str | None = None
        self._expires_at = float("inf")
        self._lock = asyncio.Lock()
        self._basic_auth: bool | None = None  # None: not yet known which style the server takes

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in a message: the client secret and the current token."""
        return tuple(s for s in (self._client_secret, self._token) if s)

    def _valid(self) -> str | None:
        if self._token is not None and time.monotonic() < self._expires_at:
            return self._token
        return None

    async def token(self) -> str:
        """A valid access token, fetched when none is cached or the cached one is about to expire."""
        if token := self._valid():
            return token
        async with self._lock:
            if token := self._valid():  # another caller fetched it while we waited
                return token
            return await self._fetch()

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the API refused it); a newer token fetched meanwhile is kept."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> str:
        form = {"grant_type": "client_credentials"}
        if self._scopes:
            form["scope"] = " ".join(self._scopes)
        styles = [True, False] if self._basic_auth is None else [self._basic_auth]
        response: httpx.Response | None = None
        for basic in styles:
            response = await self._post(form, basic)
            if response.status_code < 400:
                self._basic_auth = basic
                break
            if response.status_code not in (400, 401):
                break
        assert response is not None
        target = "OAuth2 token endpoint"
        if error := response_error(response, target, self.secrets):
            if isinstance(error, PermanentError):
                hint = "check client_key/client_secret/scopes"
                error = PermanentError(f"OAuth2 token request refused ({hint}): {error.message}")
            raise error
        try:
            payload = response.json()
            token = str(payload["access_token"])
            expires_in = float(payload["expires_in"]) if payload.get("expires_in") is not None else None
        except (ValueError, KeyError, TypeError):
            excerpt = _excerpt(scrub(response.text, self.secrets))
            raise PermanentError(f"{target} answered without an access_token: {excerpt}") from None
        self._token = token
        self._expires_at = float("inf")
        if expires_in is not None:
            self._expires_at = time.monotonic() + expires_in - min(30.0, expires_in / 10)
        return token

    async def _post(self, form: dict[str, str], basic: bool) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if basic:
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
            pair = f"{quote_plus(self._client_id)}:{quote_plus(self._client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            data = form
        else:
            data = {**form, "client_id": self._client_id, "client_secret": self._client_secret}
        try:
            return await self._client.post(self._token_url, data=data, headers=headers)
        except httpx.HTTPError as exc:
            raise transport_error(exc, "OAuth2 token endpoint", self._timeout, self.secrets) from None


# --------------------------------------------------------------------------- one request per row


class _QuietRequestLog(logging.Filter):
    """httpx logs every request's full URL at INFO: one line per row, and a Slack webhook URL
    is a secret. Drop those lines; warnings and errors still pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and str(record.msg).startswith("HTTP Request:"))


logging.getLogger("httpx").addFilter(_QuietRequestLog())


@dataclass(frozen=True)
class OAuth2Settings:
    """Where and as whom a :class:`RequestPerRowSink` fetches client-credentials tokens."""

    token_url: str
    client_id: str
    client_secret: str
    scopes: list[str] = field(default_factory=list)


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
    text into their payload (:meth:`wrap`). Up to ``paralism`` requests are in flight over one ``httpx.AsyncClient``
    (opened in :meth:`open`, closed in :meth:`close`); with ``paralism`` 1 rows arrive in
    result order. A row is acknowledged when its request is answered 2xx, so ``write``
    returns only once the whole batch is delivered, or raises :class:`PartialWriteError`
    naming exactly the rows that were not (see :func:`deliver_rows`). With OAuth2 a 401
    fetches a new token and sends the row once more.
    """

    def __init__(self, config: SinkConfig, env: SinkEnv) -> None:
        super().__init__(config, env)
        self.spec = self.request_spec()
        self._client: httpx.AsyncClient | None = None
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
        self._client = httpx.AsyncClient(
            timeout=spec.timeout,
            limits=httpx.Limits(max_connections=spec.paralism, max_keepalive_connections=spec.paralism),
            follow_redirects=False,
        )
        if spec.oauth2 is not None:
            oauth = spec.oauth2
            self._tokens = TokenSource(
                self._client, oauth.token_url, oauth.client_id, oauth.client_secret, oauth.scopes, spec.timeout
            )
            await self._tokens.token()

    async def write(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        """Send every row of ``batch``; see the class contract."""
        bodies = encode_rows(batch, self.spec.template)
        send = lambda i: self._send(bodies[i], ctx.row_key(i))  # noqa: E731
        await deliver_rows(len(bodies), send, self.spec.paralism, will_retry=self._will_retry)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
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
                response = await client.request(spec.method, spec.url, content=content, headers=headers)
            except httpx.HTTPError as exc:
                raise transport_error(exc, spec.target, spec.timeout, self._secrets()) from None
            if response.status_code == 401 and token is not None and not retried_auth:
                # The token was revoked or expired early: one more try with a fresh one.
                self._tokens.invalidate(token)  # type: ignore[union-attr]
                retried_auth = True
                continue
            error = response_error(response, spec.target, self._secrets())
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


def safe_target(url: str) -> str:
    """A URL as error messages may show it: scheme, host, port and path; no credentials, no query."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


# --------------------------------------------------------------------------- shared properties


def check_url(value: str) -> str:
    """Validate an http(s) URL property; the error message never repeats the value (it may be a secret)."""
    try:
        parsed = httpx.URL(value)
    except (httpx.InvalidURL, TypeError):
        raise ValueError("is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def check_headers(value: dict[str, str]) -> dict[str, str]:
    """Validate extra HTTP headers: names are HTTP tokens, values hold no line breaks."""
    for name, text in value.items():
        if not name or not set(name) <= _TOKEN_CHARS:
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        if "\r" in text or "\n" in text:
            raise ValueError(f"the value of header {name!r} contains a line break")
    return value


#: An http(s) URL property (the error never repeats the value: webhook URLs are secrets).
UrlText = Annotated[str, AfterValidator(check_url)]
#: An object of extra HTTP headers.
Headers = Annotated[dict[str, str], AfterValidator(check_headers)]


#: Content-Type of a row sent as a JSON document.
JSON_TYPE = "application/json"
#: Content-Type of a rendered template when none is configured.
TEXT_TYPE = "text/plain; charset=utf-8"
#: Longest a per-row sink's batch waits: rows go out as soon as they exist (one request each).
ROW_SINK_MAX_WAIT = 0.0


def paralism_field() -> Any:
    """The ``paralism`` property (the spec's spelling), also accepted as ``parallelism``."""
    return Field(
        1,
        ge=1,
        le=256,
        validation_alias=AliasChoices("paralism", "parallelism"),
        description="requests in flight (1: rows arrive in result order); also spelled parallelism",
    )


def row_sink_batch_policy(paralism: int) -> BatchPolicy:
    """Batches for one-request-per-row sinks: whatever rows exist, enough to keep ``paralism`` busy."""
    return BatchPolicy(max_rows=max(100, 16 * paralism), max_wait=ROW_SINK_MAX_WAIT)
