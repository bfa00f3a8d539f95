"""The HTTP client the HTTP sinks share: :class:`HttpClient`, an ``aiohttp`` session set up as
a sink needs it, whose :meth:`HttpClient.request` sends one request and reads its whole
answer (:class:`Answer`)."""

from __future__ import annotations

import functools
import os
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import certifi
from yarl import URL


@functools.lru_cache(maxsize=8)
def _verifying_context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    return ssl.create_default_context(cafile=certifi.where())


def verifying_context() -> ssl.SSLContext:
    """A TLS context that verifies certificates and host names against the CA bundle named by
    ``SSL_CERT_FILE`` (or the directory ``SSL_CERT_DIR``) when set, else certifi's bundle."""
    return _verifying_context(os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None)


def env_proxy(url: str) -> tuple[URL, aiohttp.BasicAuth | None] | None:
    """The proxy the environment names for ``url`` (``HTTP_PROXY`` / ``HTTPS_PROXY``, upper or
    lower case, unless ``NO_PROXY`` exempts its host) and the credentials in the proxy's URL;
    None when it is to be reached directly."""
    target = URL(url)
    proxy = urllib.request.getproxies().get(target.scheme)
    if not proxy or (target.host and urllib.request.proxy_bypass(target.host)):
        return None
    parsed = URL(proxy if "://" in proxy else f"http://{proxy}")
    auth = aiohttp.BasicAuth(parsed.user, parsed.password or "") if parsed.user else None
    return parsed.with_user(None), auth


@dataclass(frozen=True, slots=True)
class Answer:
    """A server's whole answer to one request."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


class HttpClient:
    """Requests for one sink over one ``aiohttp`` session: at most ``paralism`` connections
    (kept alive between requests), a ``timeout`` in seconds for each whole request
    (connecting, sending, the answer and its body), TLS certificates verified
    (:func:`verifying_context`), and proxies taken from the environment (:func:`env_proxy`,
    read once per URL: looking it up on every request would cost a thread hop each).

    Create it in a running event loop; :meth:`close` it when done.
    """

    def __init__(self, paralism: int, timeout: float) -> None:
        connector = aiohttp.TCPConnector(limit=paralism, ssl=verifying_context())
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout))
        self._proxies: dict[str, tuple[URL, aiohttp.BasicAuth | None] | None] = {}

    async def request(self, method: str, url: str, data: Any, headers: Mapping[str, str]) -> Answer:
        """Send one request and read its answer to the end (so the connection is reused).

        Redirects are not followed: a 3xx is the answer (a POST must not silently turn into a
        GET somewhere else). Raises ``TimeoutError`` past the timeout and
        :class:`aiohttp.ClientError` when no answer came (see
        :func:`sinkflow.sinks.http_errors.transport_error`)."""
        if url not in self._proxies:
            self._proxies[url] = env_proxy(url)
        proxy, proxy_auth = self._proxies[url] or (None, None)
        async with self._session.request(
            method, url, data=data, headers=headers, allow_redirects=False, proxy=proxy, proxy_auth=proxy_auth
        ) as response:
            body = await response.read()
            return Answer(response.status, response.reason or "", response.headers, body)

    async def close(self) -> None:
        """Close every connection."""
        await self._session.close()
