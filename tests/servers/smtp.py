"""A real SMTP server for tests: aiosmtpd on a free 127.0.0.1 port, in a thread of the test process.

Modes: ``starttls`` (plain connect, STARTTLS required before AUTH and mail), ``ssl`` (TLS from
the first byte, SMTPS) and ``none`` (no TLS, no AUTH). AUTH PLAIN/LOGIN is checked against
``users``; a wrong password is answered ``535``. The certificate is self-signed for
``IP:127.0.0.1``, made into the given directory. Every accepted message is kept in
:attr:`SmtpServer.messages`; recipients in :attr:`SmtpServer.unknown_recipients` are refused
with ``550``. A server that cannot start raises: the test using it fails, never skips.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers.certificates import self_signed_certificate
from tests.servers.process import free_port

Mode = Literal["starttls", "ssl", "none"]


@dataclass
class Received:
    """One accepted message: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.server.unknown_recipients:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd hook
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.server.messages.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos), message, login))
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1: :meth:`start`, then send to :attr:`port`, read :attr:`messages`, :meth:`stop`."""

    host = "127.0.0.1"

    def __init__(self, directory: Path, mode: Mode = "starttls", users: dict[str, str] | None = None) -> None:
        self.mode = mode
        self.users = users if users is not None else {"alerts": "s3cret-pw"}
        self.certificate = self_signed_certificate(directory)
        self.port = free_port()
        self.messages: list[Received] = []
        self.refused_logins = 0
        #: Recipients answered ``550 No such user``.
        self.unknown_recipients: set[str] = set()
        self._controller: Controller | None = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and self.users.get(data.login.decode()) == data.password.decode()
        )
        if not ok:
            self.refused_logins += 1
            return AuthResult(success=False, handled=False)  # not handled: aiosmtpd answers 535
        return AuthResult(success=True, auth_data=data)

    def start(self) -> None:
        """Start serving; returns once the server answers. Raises when it cannot start."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certificate.cert_file, self.certificate.key_file)
        kwargs: dict[str, Any] = {}
        if self.mode == "starttls":
            kwargs = {"tls_context": context, "require_starttls": True, "auth_required": True,
                      "authenticator": self._authenticate}
        elif self.mode == "ssl":
            kwargs = {"ssl_context": context, "auth_required": True, "auth_require_tls": False,
                      "authenticator": self._authenticate}
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, ready_timeout=10, **kwargs)
        self._controller.start()

    def stop(self) -> None:
        """Stop serving (open connections are dropped); :meth:`start` serves again on the same port."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
