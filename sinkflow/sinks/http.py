"""The ``http`` sink: one HTTP request per result row to any HTTP API.

Properties (``spec/SINKS.md``): ``url``, ``content_type``, ``http_method`` (POST),
``payload_field`` (a ``{{ .col }}`` template; empty: the row as JSON), ``http_header`` ({}),
``oauth2`` (client-credentials grant), ``paralism`` (1; ``parallelism`` accepted),
``retries`` (0), ``retry_interval`` (10s), ``timeout`` (10s).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from sinkflow.sinks.config import BatchPolicy, Duration, RetryPolicy, SinkConfig, StrList
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
from sinkflow.sinks.oauth2 import OAuth2Settings
from sinkflow.sinks.request_per_row import RequestPerRowSink, RequestSpec
from sinkflow.sinks.template import Template, TemplateText

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class OAuth2Config(BaseModel):
    """The ``oauth2`` property: the OAuth2 client-credentials grant.

    When ``enabled``, ``token_url``, ``client_key`` and ``client_secret`` are required.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    enabled: bool = Field(False, description="use the OAuth2 client-credentials grant")
    client_key: str | None = Field(None, validate_default=True, description="client id")
    client_secret: str | None = Field(None, validate_default=True, description="client secret")
    token_url: UrlText | None = Field(None, validate_default=True, description="token endpoint URL")
    scopes: StrList = Field(default_factory=list, description="scopes requested, a list of strings")

    @field_validator("client_key", "client_secret", "token_url")
    @classmethod
    def _required_when_enabled(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("enabled") and not value:
            raise ValueError("is required when oauth2.enabled is true")
        return value


class HttpConfig(SinkConfig):
    """Properties of the ``http`` sink; defaults from the spec."""

    secret_fields: ClassVar[tuple[str, ...]] = ("oauth2.client_secret",)
    header_fields: ClassVar[tuple[str, ...]] = ("http_header",)
    url_fields: ClassVar[tuple[str, ...]] = ("url", "oauth2.token_url")
    template_fields: ClassVar[tuple[str, ...]] = ("payload_field",)

    url: UrlText = Field(description="target URL")
    content_type: str | None = Field(
        None, description="Content-Type header (default: application/json for the row as JSON or a payload "
        "template that renders JSON, else text/plain)"
    )
    http_method: str = Field("POST", description="GET, POST, PUT, PATCH or DELETE")
    payload_field: TemplateText = Field(None, description="request body template ({{ .col }}); empty: the row as JSON")
    http_header: Headers = Field(default_factory=dict, description="object of extra headers")
    oauth2: OAuth2Config = Field(OAuth2Config(), description="OAuth2 client-credentials settings")
    paralism: int = paralism_field()
    retries: int = Field(0, ge=0, description="retries of a row after a retryable failure")
    retry_interval: Duration = Field(10.0, description="wait before the first retry (then backing off)")
    timeout: Duration = Field(10.0, gt=0, description="request timeout")

    @field_validator("http_method", mode="before")
    @classmethod
    def _method(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().upper() in HTTP_METHODS:
            return value.strip().upper()
        raise ValueError(f"must be one of {', '.join(HTTP_METHODS)}")

    def batch_policy(self) -> BatchPolicy:
        return row_sink_batch_policy(self.paralism)

    def retry_policy(self) -> RetryPolicy:
        """``retries`` retries, backing off from ``retry_interval``."""
        return RetryPolicy(
            max_retries=self.retries, initial_backoff=self.retry_interval, max_backoff=max(30.0, self.retry_interval)
        )

    def concurrency(self) -> int:
        return self.paralism


class HttpSink(RequestPerRowSink):
    """Sends one request per result row (``payload_field`` rendered, or the row as JSON).

    Delivery guarantee: at-least-once. A row counts as delivered when the server answers
    2xx; rows of an epoch that was not acknowledged are sent again after a restart. Every
    request carries ``Idempotency-Key: <sink id>-<row number>``, the same on every resend
    of that row, so a server that honours the header sees each row exactly once.
    With ``paralism`` 1 rows arrive in result order; with N, up to N requests are in flight.
    5xx, 429 (with ``Retry-After``), timeouts and network errors are retryable; other 4xx
    are permanent for that row only.
    """

    config_class = HttpConfig
    config: HttpConfig

    def request_spec(self) -> RequestSpec:
        cfg = self.config
        template = Template.parse(cfg.payload_field) if cfg.payload_field else None
        headers = request_headers(body_content_type(cfg.content_type, template), cfg.http_header)
        oauth = cfg.oauth2
        settings = None
        if oauth.enabled:
            assert oauth.token_url and oauth.client_key and oauth.client_secret  # validated by OAuth2Config
            settings = OAuth2Settings(oauth.token_url, oauth.client_key, oauth.client_secret, list(oauth.scopes))
        return RequestSpec(
            method=cfg.http_method,
            url=cfg.url,
            headers=headers,
            timeout=cfg.timeout,
            paralism=cfg.paralism,
            target=f"{cfg.http_method} {safe_target(cfg.url)}",
            template=template,
            secrets=credential_values(cfg.http_header),
            oauth2=settings,
        )
