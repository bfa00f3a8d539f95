"""The ``webhook`` sink: the console's "trigger actions" destination.

Calls a webhook for every result row: a POST whose body is the optional ``body`` template
rendered for the row, or by default the whole row as a JSON document. Properties: ``url``,
``body``, ``content_type``, ``headers`` ({}), ``paralism`` (1; ``parallelism`` accepted), ``timeout`` (10s).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from sinkflow.sinks.config import BatchPolicy, Duration, SinkConfig
from sinkflow.sinks.credentials import credential_values
from sinkflow.sinks.http_properties import (
    Headers,
    UrlText,
    body_content_type,
    paralism_field,
    request_headers,
    row_sink_batch_policy,
    safe_target,
)
from sinkflow.sinks.request_per_row import RequestPerRowSink, RequestSpec
from sinkflow.sinks.template import Template, TemplateText


class WebhookConfig(SinkConfig):
    """Properties of the ``webhook`` sink. Without ``retries`` in the spec, retryable failures
    are retried until the webhook recovers (the runtime's default policy): nothing is dropped."""

    header_fields: ClassVar[tuple[str, ...]] = ("headers",)
    url_fields: ClassVar[tuple[str, ...]] = ("url",)
    template_fields: ClassVar[tuple[str, ...]] = ("body",)

    url: UrlText = Field(description="the webhook's URL")
    body: TemplateText = Field(None, description="message body template ({{ .col }}); empty: the row as JSON")
    content_type: str | None = Field(
        None, description="Content-Type header (default: application/json for the row as JSON or a body "
        "template that renders JSON, else text/plain)"
    )
    headers: Headers = Field(default_factory=dict, description="object of extra headers")
    paralism: int = paralism_field()
    timeout: Duration = Field(10.0, gt=0, description="request timeout")

    def batch_policy(self) -> BatchPolicy:
        return row_sink_batch_policy(self.paralism)

    def concurrency(self) -> int:
        return self.paralism


class WebhookSink(RequestPerRowSink):
    """POSTs one request per result row: the ``body`` template rendered, or the row as JSON.
    The Content-Type is ``content_type`` when set, else ``application/json`` for the row or a
    template that renders JSON, else ``text/plain; charset=utf-8``; the User-Agent says
    ``sinkflow/<version>``.

    Delivery guarantee: at-least-once, with an ``Idempotency-Key: <sink id>-<row number>``
    header that is the same on every resend of a row (a receiver honouring it sees each row
    once). A row is delivered when the webhook answers 2xx. With ``paralism`` 1 rows arrive
    in result order. 5xx, 429, timeouts and network errors are retryable; other 4xx are
    permanent for that row only.
    """

    config_class = WebhookConfig
    config: WebhookConfig

    def request_spec(self) -> RequestSpec:
        cfg = self.config
        template = Template.parse(cfg.body) if cfg.body else None
        return RequestSpec(
            method="POST",
            url=cfg.url,
            headers=request_headers(body_content_type(cfg.content_type, template), cfg.headers),
            timeout=cfg.timeout,
            paralism=cfg.paralism,
            target=f"webhook {safe_target(cfg.url)}",
            template=template,
            secrets=credential_values(cfg.headers),
        )
