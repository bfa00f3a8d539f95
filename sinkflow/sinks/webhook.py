"""The ``webhook`` sink: the console's "trigger actions" destination.

Calls a webhook for every result row: a POST whose body is the optional ``body`` template
rendered for the row, or by default the whole row as a JSON document. Properties: ``url``,
``body``, ``headers`` ({}), ``paralism`` (1; ``parallelism`` accepted), ``timeout`` (10s).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from sinkflow.sinks.base import SinkEnv
from sinkflow.sinks.config import BatchPolicy, Duration, SinkConfig
from sinkflow.sinks.delivery import (
    JSON_TYPE,
    TEXT_TYPE,
    Headers,
    RequestPerRowSink,
    RequestSpec,
    UrlText,
    header_secrets,
    paralism_field,
    row_sink_batch_policy,
    safe_target,
)
from sinkflow.sinks.encode import json_document
from sinkflow.sinks.template import Template, TemplateText


class WebhookConfig(SinkConfig):
    """Properties of the ``webhook`` sink. Without ``retries`` in the spec, retryable failures
    are retried until the webhook recovers (the runtime's default policy): nothing is dropped."""

    secret_fields: ClassVar[tuple[str, ...]] = header_secrets("headers")
    template_fields: ClassVar[tuple[str, ...]] = ("body",)

    url: UrlText
    body: TemplateText = None
    headers: Headers = Field(default_factory=dict)
    paralism: int = paralism_field()
    timeout: Duration = Field(10.0, gt=0)

    def batch_policy(self) -> BatchPolicy:
        return row_sink_batch_policy(self.paralism)

    def concurrency(self) -> int:
        return self.paralism


class WebhookSink(RequestPerRowSink):
    """POSTs one request per result row: the ``body`` template rendered
    (``text/plain; charset=utf-8`` unless ``headers`` sets a Content-Type), or the row as JSON.

    Delivery guarantee: at-least-once, with an ``Idempotency-Key: <sink id>-<epoch>-<row>``
    header that is the same on every resend of a row (a receiver honouring it sees each row
    once). A row is delivered when the webhook answers 2xx. With ``paralism`` 1 rows arrive
    in result order. 5xx, 429, timeouts and network errors are retryable; other 4xx are
    permanent for that row only.
    """

    config_class = WebhookConfig
    config: WebhookConfig

    def __init__(self, config: WebhookConfig, env: SinkEnv) -> None:
        self._template = Template.parse(config.body) if config.body else None
        super().__init__(config, env)

    def request_spec(self) -> RequestSpec:
        cfg = self.config
        return RequestSpec(
            method="POST",
            url=cfg.url,
            headers={"Content-Type": TEXT_TYPE if self._template else JSON_TYPE, **cfg.headers},
            timeout=cfg.timeout,
            paralism=cfg.paralism,
            target=f"webhook {safe_target(cfg.url)}",
            secrets=tuple(v for k, v in cfg.headers.items() if k.lower() == "authorization"),
        )

    def body(self, row: dict[str, Any]) -> bytes:
        if self._template is not None:
            return self._template.render(row).encode()
        return json_document(row)
