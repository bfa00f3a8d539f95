"""A TLS terminator for tests: Debian's stunnel in front of a plain-text server on 127.0.0.1.

:func:`self_signed_certificate` makes a key and a self-signed certificate with
``subjectAltName = IP:127.0.0.1`` using openssl; the certificate file is also the CA a client
must trust. A tunnel that cannot start raises :class:`RuntimeError` (the test fails).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.servers.clickhouse import free_port

START_TIMEOUT = 10.0


@dataclass(frozen=True)
class Certificate:
    """A PEM certificate (also usable as the CA file) and its private key."""

    cert_file: Path
    key_file: Path


def self_signed_certificate(directory: Path) -> Certificate:
    """A fresh RSA key and a self-signed certificate for 127.0.0.1, valid for a day."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return Certificate(cert, key)


class Stunnel:
    """One stunnel process accepting TLS on ``port`` and forwarding plain text to ``target_port``."""

    host = "127.0.0.1"

    def __init__(self, directory: Path, certificate: Certificate, target_port: int, port: int | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.certificate = certificate
        self.target_port = target_port
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start stunnel and return once its TLS port accepts connections; RuntimeError otherwise."""
        binary = shutil.which("stunnel4") or shutil.which("stunnel")
        if binary is None:
            raise RuntimeError("stunnel is not installed (apt-get install stunnel4)")
        config = self.directory / "stunnel.conf"
        config.write_text(
            "foreground = yes\n"
            f"pid =\n"
            f"output = {self.directory / 'stunnel.log'}\n"
            "[tls]\n"
            f"accept = {self.host}:{self.port}\n"
            f"connect = {self.host}:{self.target_port}\n"
            f"cert = {self.certificate.cert_file}\n"
            f"key = {self.certificate.key_file}\n"
        )
        self.process = subprocess.Popen(
            [binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"stunnel exited with {self.process.returncode}: {self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"stunnel did not listen within {START_TIMEOUT}s: {self._log_tail()}")

    def stop(self) -> None:
        """Stop stunnel by its pid (SIGTERM, then SIGKILL after 10 s)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def _log_tail(self) -> str:
        path = self.directory / "stunnel.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""
