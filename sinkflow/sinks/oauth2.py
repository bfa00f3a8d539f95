"""OAuth2 client-credentials tokens for the HTTP sinks: :class:`TokenSource` fetches them and
caches each until shortly before it expires."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from urllib.parse import quote_plus

import aiohttp
import orjson

from sinkflow.sinks.base import PermanentError
from sinkflow.sinks.http_client import Answer, HttpClient
from sinkflow.sinks.http_errors import body_excerpt, response_error, transport_error
from sinkflow.sinks.redact import scrub


@dataclass(frozen=True)
class OAuth2Settings:
    """Where and as whom a :class:`RequestPerRowSink` fetches client-credentials tokens."""

    token_url: str
    client_id: str
    client_secret: str
    scopes: list[str] = field(default_factory=list)


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
        client: HttpClient,
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
        answer: Answer | None = None
        for basic in styles:
            answer = await self._post(form, basic)
            if answer.status < 400:
                self._basic_auth = basic
                break
            if answer.status not in (400, 401):
                break
        assert answer is not None
        target = "OAuth2 token endpoint"
        if error := response_error(answer, target, self.secrets):
            if isinstance(error, PermanentError):
                hint = "check client_key/client_secret/scopes"
                error = PermanentError(f"OAuth2 token request refused ({hint}): {error.message}")
            raise error
        try:
            payload = orjson.loads(answer.body)
            token = str(payload["access_token"])
            expires_in = float(payload["expires_in"]) if payload.get("expires_in") is not None else None
        except (ValueError, KeyError, TypeError):
            quoted = body_excerpt(scrub(answer.body.decode("utf-8", "replace"), self.secrets))
            raise PermanentError(f"{target} answered without an access_token: {quoted}") from None
        self._token = token
        self._expires_at = float("inf")
        if expires_in is not None:
            self._expires_at = time.monotonic() + expires_in - min(30.0, expires_in / 10)
        return token

    async def _post(self, form: dict[str, str], basic: bool) -> Answer:
        headers = {"Accept": "application/json"}
        if basic:
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
            pair = f"{quote_plus(self._client_id)}:{quote_plus(self._client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            data = form
        else:
            data = {**form, "client_id": self._client_id, "client_secret": self._client_secret}
        try:
            return await self._client.request("POST", self._token_url, data, headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, "OAuth2 token endpoint", self._timeout, self.secrets) from None
