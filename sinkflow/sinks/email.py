"""The ``email`` sink: one e-mail per result row over SMTP.

Properties: ``host``, ``port`` (default by ``tls``: 587 for ``starttls``, 465 for ``ssl``,
25 for ``none``), ``username``, ``password`` (a secret), ``tls`` (``starttls`` default,
``ssl``, ``none``), ``tls_skip_verify`` (false), ``from``, ``to`` (a list, or
comma-separated), ``subject`` and ``body`` (``{{ .col }}`` templates; without a body the
row is sent as JSON), ``timeout`` (10s).
"""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any, ClassVar, Literal

import aiosmtplib
import pyarrow as pa
from pydantic import Field, ValidationInfo, field_validator

from sinkflow.sinks.base import PermanentError, RetryableError, Sink, SinkEnv, SinkError, WriteContext
from sinkflow.sinks.config import BatchPolicy, Duration, SinkConfig, StrList
from sinkflow.sinks.delivery import deliver_rows
from sinkflow.sinks.redact import scrub
from sinkflow.sinks.encode import json_document, row_dicts
from sinkflow.sinks.template import Template, TemplateText

DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


def _check_address(value: str) -> str:
    name, address = parseaddr(value)
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


class EmailConfig(SinkConfig):
    """Properties of the ``email`` sink. Without ``retries`` in the spec, retryable failures
    (server down, 4xx SMTP replies) are retried until the server recovers."""

    secret_fields: ClassVar[tuple[str, ...]] = ("password",)
    template_fields: ClassVar[tuple[str, ...]] = ("subject", "body")

    host: str = Field(min_length=1, description="SMTP server host")
    port: int | None = Field(None, ge=1, le=65535, description="SMTP port (default 587, 465 with ssl, 25 with none)")
    username: str | None = Field(None, description="user name to log in with")
    password: str | None = Field(None, validate_default=True, description="password to log in with")
    tls: Literal["starttls", "ssl", "none"] = Field("starttls", description="starttls, ssl (SMTPS) or none")
    tls_skip_verify: bool = Field(False, description="true skips server certificate verification")
    sender: str = Field(alias="from", description="sender address, e.g. Alerts <alerts@example.org>")
    to: StrList = Field(min_length=1, description="recipient addresses (a list, or comma-separated)")
    subject: TemplateText = Field(None, description="subject template ({{ .col }})")
    body: TemplateText = Field(None, description="body template ({{ .col }}); empty: the row as JSON")
    timeout: Duration = Field(10.0, gt=0, description="connection and reply timeout")

    @field_validator("password")
    @classmethod
    def _password_with_username(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("username") and not value:
            raise ValueError("is required when username is set")
        return value

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return _check_address(value)

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        return [_check_address(v) for v in value]

    def effective_port(self) -> int:
        """``port``, or the usual port of the ``tls`` mode."""
        return self.port or DEFAULT_PORTS[self.tls]

    def batch_policy(self) -> BatchPolicy:
        return BatchPolicy(max_rows=100, max_wait=0.0)


class EmailSink(Sink):
    """Sends one e-mail per result row, in result order, over one SMTP connection.

    Delivery guarantee: at-least-once. A row is delivered when the server accepted its
    message (250 after DATA). Each message's ``Message-ID`` is derived from the row's
    idempotency key (``<sink id>-<row number>@sinkflow``, the row's position in the query's
    output), the same on a resend after a restart, so mail clients can recognise a
    duplicate. A refused login (535) and 5xx replies are permanent errors (the message says
    what the server refused, never the password); a server that is down, drops the
    connection or answers 4xx is retryable.
    """

    config_class = EmailConfig
    config: EmailConfig

    def __init__(self, config: EmailConfig, env: SinkEnv) -> None:
        super().__init__(config, env)
        self._subject = Template.parse(config.subject) if config.subject else None
        self._body = Template.parse(config.body) if config.body else None
        self._smtp: aiosmtplib.SMTP | None = None
        self._where = f"SMTP server {config.host}:{config.effective_port()}"
        # The SMTP envelope takes bare addresses; the headers keep the display names.
        self._envelope_from = parseaddr(config.sender)[1]
        self._envelope_to = [parseaddr(to)[1] for to in config.to]

    async def open(self) -> None:
        """Connect (with TLS as configured) and log in, so a wrong password fails here."""
        await self._connect()

    async def write(self, batch: pa.RecordBatch, ctx: WriteContext) -> None:
        """Send every row's message in order; see :func:`sinkflow.sinks.delivery.deliver_rows`."""
        rows = row_dicts(batch)
        await deliver_rows(len(rows), lambda i: self._send(rows[i], ctx.row_key(i)), 1)

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()

    def message(self, row: dict[str, Any], key: str) -> EmailMessage:
        """The e-mail for one row."""
        cfg = self.config
        msg = EmailMessage()
        msg["From"] = cfg.sender
        msg["To"] = ", ".join(cfg.to)
        msg["Subject"] = self._subject.render(row) if self._subject else f"{self.env.sink_name}: new result"
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = f"<{key}@sinkflow>"
        msg.set_content(self._body.render(row) if self._body else json_document(row).decode())
        return msg

    async def _connect(self) -> aiosmtplib.SMTP:
        cfg = self.config
        context = ssl.create_default_context()
        if cfg.tls_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        smtp = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.effective_port(),
            username=cfg.username,
            password=cfg.password,
            use_tls=cfg.tls == "ssl",
            start_tls=cfg.tls == "starttls",
            tls_context=context if cfg.tls != "none" else None,
            timeout=cfg.timeout,
        )
        try:
            await smtp.connect()
        except Exception as exc:  # classified below; anything unexpected propagates
            smtp.close()
            raise self._error(exc) from None
        self._smtp = smtp
        return smtp

    async def _send(self, row: dict[str, Any], key: str) -> None:
        msg = self.message(row, key)
        # A connection the server closed while idle is reopened once; a second failure counts.
        for attempt in (1, 2):
            smtp = self._smtp if self._smtp is not None and self._smtp.is_connected else await self._connect()
            try:
                await smtp.send_message(msg, sender=self._envelope_from, recipients=self._envelope_to)
                return
            except aiosmtplib.SMTPServerDisconnected as exc:
                self._smtp = None
                if attempt == 2:
                    raise self._error(exc) from None
            except Exception as exc:
                raise self._error(exc) from None

    def _error(self, exc: Exception) -> SinkError:
        """An SMTP failure as a retryable or permanent error (password scrubbed). Re-raises
        anything that is not an SMTP, TLS or network problem."""
        where = self._where
        secrets = [self.config.password or ""]
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return PermanentError(
                scrub(f"{where} refused the login of user '{self.config.username}': {exc.code} {exc.message}", secrets)
            )
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            error_cls = RetryableError if any(400 <= c < 500 for c in codes) else PermanentError
            return error_cls(scrub(f"{where} refused the recipients: {detail}", secrets))
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            error_cls = RetryableError if 400 <= exc.code < 500 else PermanentError
            return error_cls(scrub(f"{where} answered {exc.code} {exc.message}", secrets))
        if self.config.tls == "starttls" and isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS" in str(exc):
            # Reachable, but without STARTTLS (the default tls mode): retrying cannot help, the
            # configuration must change.
            return PermanentError(
                f"{where} is reachable but does not offer STARTTLS (tls=starttls is the default): set tls=none "
                "to send without encryption on a network you trust, or tls=ssl for SMTPS (usually port 465)"
            )
        if isinstance(exc, aiosmtplib.SMTPNotSupported):
            return PermanentError(scrub(f"{where}: {exc}", secrets))
        cert_error = next(
            (e for e in (exc, exc.__cause__, exc.__context__) if isinstance(e, ssl.SSLCertVerificationError)), None
        )
        if cert_error is not None:
            return PermanentError(
                f"{where}: TLS certificate verification failed ({cert_error.verify_message}); "
                "set tls_skip_verify only for a server you trust"
            )
        if isinstance(exc, (aiosmtplib.SMTPException, OSError, TimeoutError)):
            return RetryableError(scrub(f"{where} unreachable: {type(exc).__name__}: {exc}", secrets))
        raise exc
