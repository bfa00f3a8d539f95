"""Keeping secrets out of messages: :func:`scrub` replaces each secret in a text by ``***``."""

from __future__ import annotations

from collections.abc import Iterable

_REDACTED = "***"


def scrub(message: str, secrets: Iterable[str]) -> str:
    """``message`` with every occurrence of a (non-empty) secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, _REDACTED)
    return message
