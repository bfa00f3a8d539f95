"""Classifying an HTTP answer, or a request that got none, as a sink error.

:func:`response_error` and :func:`transport_error` give :class:`RetryableError` (network,
timeout, 5xx, 429) or :class:`PermanentError` (other 4xx, redirects), with the server's
``Retry-After`` and a short body excerpt, and with every secret scrubbed from the message.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable

import aiohttp

from sinkflow.sinks.base import PermanentError, RetryableError, SinkError
from sinkflow.sinks.http_client import Answer
from sinkflow.sinks.redact import scrub

#: Longest excerpt of a response body quoted in an error message.
EXCERPT_CHARS = 200


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


def body_excerpt(body: str) -> str:
    """``body`` on one line, cut to :data:`EXCERPT_CHARS` characters."""
    flat = " ".join(body.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[:EXCERPT_CHARS] + "…"


def response_error(answer: Answer, target: str, secrets: Iterable[str] = ()) -> SinkError | None:
    """None for a 2xx answer, else its error: 429 and 5xx retryable (with ``Retry-After``),
    other 4xx permanent, and 3xx permanent too (redirects are not followed: a POST must not
    silently turn into something else). The message names ``target``, the status and an
    excerpt of the body, scrubbed of ``secrets``."""
    status, reason = answer.status, answer.reason
    if status < 300:
        return None
    if status < 400:
        return PermanentError(
            f"{target} answered HTTP {status} {reason}: redirects are not followed; configure the final URL"
        )
    # Scrub before cutting: a secret cut in half by the excerpt would no longer match.
    quoted = body_excerpt(scrub(answer.body.decode("utf-8", "replace"), secrets))
    message = scrub(f"{target} answered HTTP {status} {reason}: {quoted}".rstrip(": "), secrets)
    if status == 429 or status >= 500:
        return RetryableError(message, retry_after=parse_retry_after(answer.headers.get("Retry-After")))
    return PermanentError(message)


#: Client errors after which the same request may succeed later: the connection failed or broke,
#: or the server answered something that is not HTTP (a proxy or server restarting).
_TRANSIENT = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError)


def transport_error(exc: aiohttp.ClientError | TimeoutError, target: str, timeout: float,
                    secrets: Iterable[str] = ()) -> SinkError:
    """A request that got no answer: timeouts, network and TLS errors are retryable; a request
    the client refused to build (an invalid URL) is permanent. The message is scrubbed of secrets."""
    if isinstance(exc, TimeoutError):
        return RetryableError(f"{target} did not answer within {timeout:g}s ({type(exc).__name__})")
    detail = scrub(f"{type(exc).__name__}: {exc}".rstrip(": "), secrets)
    if isinstance(exc, _TRANSIENT):
        return RetryableError(f"{target} unreachable: {detail}")
    return PermanentError(f"request to {target} failed: {detail}")
