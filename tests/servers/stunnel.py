"""A TLS terminator for tests: Debian's stunnel in front of a plain-text server on 127.0.0.1.

It serves a :class:`~tests.servers.certificates.Certificate` (see
:func:`~tests.servers.certificates.self_signed_certificate`). A tunnel that cannot start raises
:class:`RuntimeError` (the test fails).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.servers.certificates import Certificate
from tests.servers.process import ServerProcess, free_port, port_accepts


class Stunnel(ServerProcess):
    """One stunnel process accepting TLS on ``port`` and forwarding plain text to ``target_port``."""

    name = "stunnel"
    start_timeout = 10.0

    def __init__(self, directory: Path, certificate: Certificate, target_port: int, port: int | None = None) -> None:
        super().__init__(directory, "stunnel.log")
        self.certificate = certificate
        self.target_port = target_port
        self.port = port or free_port()

    def command(self) -> list[str]:
        binary = shutil.which("stunnel4") or shutil.which("stunnel")
        if binary is None:
            raise RuntimeError("stunnel is not installed (apt-get install stunnel4)")
        config = self.directory / "stunnel.conf"
        # In the foreground, stunnel logs to stderr, which is the log file.
        config.write_text(
            "foreground = yes\n"
            "pid =\n"
            "[tls]\n"
            f"accept = {self.host}:{self.port}\n"
            f"connect = {self.host}:{self.target_port}\n"
            f"cert = {self.certificate.cert_file}\n"
            f"key = {self.certificate.key_file}\n"
        )
        return [binary, str(config)]

    def ready(self) -> bool:
        return port_accepts(self.port)
