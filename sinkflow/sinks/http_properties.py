"""Properties the HTTP sinks share: URL and header validation, content types, ``paralism``,
the per-row batch policy, which header values are secrets, and a URL as messages show it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, AliasChoices, Field
from yarl import URL

from sinkflow import __version__
from sinkflow.sinks.config import BatchPolicy
from sinkflow.sinks.template import Template


def safe_target(url: str) -> str:
    """A URL as error messages may show it: scheme, host, port and path; no credentials, no query."""
    parsed = URL(url)
    port = "" if parsed.is_default_port() else f":{parsed.port}"
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


def check_url(value: str) -> str:
    """Validate an http(s) URL property; the error message never repeats the value (it may be a secret)."""
    try:
        parsed = URL(value)
    except (ValueError, TypeError):
        raise ValueError("is not a valid URL") from None
    if parsed.host and any(char.isspace() for char in parsed.host):
        raise ValueError("is not a valid URL")
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
#: Content-Type of a rendered template that is not JSON, when none is configured.
TEXT_TYPE = "text/plain; charset=utf-8"
#: Sent with every request of the HTTP-family sinks, so receivers can tell who calls.
USER_AGENT = f"sinkflow/{__version__}"


def body_content_type(configured: str | None, template: Template | None) -> str:
    """The Content-Type of a request body: the configured one, else JSON for the row as JSON
    or a template that renders JSON (``{"text": "{{ .cid }}"}``), else plain text."""
    if configured:
        return configured
    return JSON_TYPE if template is None or template.renders_json() else TEXT_TYPE


def request_headers(content_type: str, extra: dict[str, str]) -> dict[str, str]:
    """A per-row request's headers: ``User-Agent``, ``Content-Type``, then the user's (which win)."""
    return {"User-Agent": USER_AGENT, "Content-Type": content_type, **extra}
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

