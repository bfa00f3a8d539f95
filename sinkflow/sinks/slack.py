"""The ``slack`` sink: one message per result row to a Slack incoming webhook.

Properties (``spec/SINKS.md``): ``url`` (the webhook URL, a secret), ``template`` (a
``{{ .col }}`` template; empty: the row as JSON), ``header`` ({}), plus
``messages_per_second`` (1: Slack's documented limit per webhook) and ``timeout`` (10s).
"""

from __future__ import annotations

from typing import ClassVar

import orjson
from pydantic import Field

from sinkflow.sinks.config import BatchPolicy, Duration, RetryPolicy, SinkConfig
from sinkflow.sinks.credentials import credential_values
from sinkflow.sinks.http_properties import (
    JSON_TYPE,
    Headers,
    UrlText,
    request_headers,
    row_sink_batch_policy,
)
from sinkflow.sinks.request_per_row import RequestPerRowSink, RequestSpec
from sinkflow.sinks.template import Template, TemplateText


class SlackConfig(SinkConfig):
    """Properties of the ``slack`` sink; ``url`` is a secret (anyone holding it can post)."""

    secret_fields: ClassVar[tuple[str, ...]] = ("url",)
    header_fields: ClassVar[tuple[str, ...]] = ("header",)
    template_fields: ClassVar[tuple[str, ...]] = ("template",)

    url: UrlText = Field(description="the channel's incoming-webhook URL (a secret)")
    template: TemplateText = Field(None, description="message template ({{ .col }}); empty: the row as JSON")
    header: Headers = Field(default_factory=dict, description="object of extra HTTP headers")
    messages_per_second: float = Field(
        1.0, gt=0, le=1000, description="messages sent per second at most (Slack allows about 1 per webhook)"
    )
    timeout: Duration = Field(10.0, gt=0, description="request timeout")

    def batch_policy(self) -> BatchPolicy:
        return row_sink_batch_policy(1)

    def retry_policy(self) -> RetryPolicy:
        """Retry without limit: a message is never dropped because Slack rate-limited it (429)."""
        return RetryPolicy(max_retries=None, initial_backoff=1.0, max_backoff=30.0)


class SlackSink(RequestPerRowSink):
    """Posts ``{"text": <template rendered, or the row as JSON>}`` per result row, in order.

    Delivery guarantee: at-least-once (Slack has no idempotency key: a row of an epoch
    that was not acknowledged before a crash may be posted twice). Messages are paced to
    ``messages_per_second`` and, after a 429, held back for its ``Retry-After``; the 429
    itself is retryable without limit, so rate limiting never drops a message. Slack's
    plain-text errors (``invalid_payload`` 400, ``no_service`` 404, …) are permanent.
    The webhook URL never appears in an error message or a log line.
    """

    config_class = SlackConfig
    config: SlackConfig

    def request_spec(self) -> RequestSpec:
        cfg = self.config
        return RequestSpec(
            method="POST",
            url=cfg.url,
            headers=request_headers(JSON_TYPE, cfg.header),
            timeout=cfg.timeout,
            paralism=1,
            target="Slack webhook",
            template=Template.parse(cfg.template) if cfg.template else None,
            secrets=(cfg.url, *credential_values(cfg.header)),
            rate=cfg.messages_per_second,
        )

    def wrap(self, body: bytes) -> bytes:
        """Slack's payload: the row's text in ``{"text": …}``, JSON-escaped whatever it holds."""
        return orjson.dumps({"text": body.decode()})
