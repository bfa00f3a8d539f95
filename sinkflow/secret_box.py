"""Encryption of secrets at rest, and files only their owner may read.

Secrets are sealed with Fernet (AES-128-CBC with an HMAC-SHA256 tag) under a key taken from
``SINKFLOW_SECRET_KEY`` or, when that is unset, from ``secret.key`` in the data dir, created
with mode 0600 on first start. A copy of the data dir without the key (a backup, a disk image)
does not reveal the secrets; a changed or lost key makes them unreadable, which the sinks
that need them report.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

#: The environment variable that holds the key (any text; use 32+ random characters).
KEY_ENV = "SINKFLOW_SECRET_KEY"
KEY_FILE = "secret.key"


class SecretsUnreadable(Exception):
    """Sealed text that cannot be opened with this key (another key, or damaged text)."""


def private_file(path: Path) -> None:
    """Create ``path`` (empty) if needed and make it readable and writable by its owner only."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


class SecretBox:
    """Seals and opens secret text with the server's key."""

    def __init__(self, key_text: str, source: str) -> None:
        # Any key text works: the Fernet key is derived from it.
        digest = hashlib.sha256(key_text.strip().encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))
        #: Where the key came from, for messages (never the key itself).
        self.source = source

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> SecretBox:
        """The box for ``data_dir``: the key from ``SINKFLOW_SECRET_KEY``, else from
        ``<data_dir>/secret.key``, which is created (0600) with a random key when missing."""
        if text := os.environ.get(KEY_ENV, "").strip():
            return cls(text, f"${KEY_ENV}")
        path = data_dir / KEY_FILE
        if not path.exists():
            private_file(path)
            path.write_text(Fernet.generate_key().decode() + "\n")
        os.chmod(path, 0o600)
        return cls(path.read_text(), str(path))

    def seal(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def open(self, sealed: str) -> str:
        """The text ``sealed`` by :meth:`seal`. Raises :class:`SecretsUnreadable`."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretsUnreadable(f"cannot be decrypted with the key from {self.source}") from None
