"""Errors that reach users: each carries a stable code, a message naming the problem, and an HTTP status.

Every layer raises these (or subclasses) for bad input, so the API and CLI can answer
with ``{code, message, position?}`` without knowing where the error came from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Position:
    """A place in SQL text: 1-based line and column."""

    line: int
    column: int

    def to_dict(self) -> dict[str, int]:
        return {"line": self.line, "column": self.column}


class SinkflowError(Exception):
    """Base of every error a user may see. ``message`` names the property, column, row or SQL position."""

    code = "INTERNAL_ERROR"
    status = 500

    def __init__(self, message: str, *, position: Position | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.position is not None:
            body["position"] = self.position.to_dict()
        return body


class InvalidInput(SinkflowError):
    """The request is malformed or names something invalid; nothing was changed."""

    code = "INVALID_INPUT"
    status = 400


class SqlError(InvalidInput):
    """SQL that does not parse, plan or is not supported; ``position`` points at the offending text when known."""

    code = "SQL_ERROR"


class ConfigError(InvalidInput):
    """A sink property is missing, of the wrong type or out of range; ``prop`` names it (dotted for nested ones)."""

    code = "INVALID_PROPERTY"

    def __init__(self, prop: str, message: str) -> None:
        super().__init__(f"property '{prop}': {message}")
        self.prop = prop

    def to_dict(self) -> dict[str, object]:
        body = super().to_dict()
        body["property"] = self.prop
        return body


class NotFound(SinkflowError):
    code = "NOT_FOUND"
    status = 404


class AlreadyExists(SinkflowError):
    code = "ALREADY_EXISTS"
    status = 409


class SecretsUnavailable(SinkflowError):
    """The secrets store cannot be read or written (lost, damaged, or sealed with another key)."""

    code = "SECRETS_UNAVAILABLE"
    status = 503


class QueryStopped(SinkflowError):
    """A running statement was stopped (deleted, or its client went away); the message says why."""

    code = "QUERY_STOPPED"
    status = 409


class QueryTimedOut(QueryStopped):
    """A statement ran longer than the server's query timeout and was stopped."""

    code = "QUERY_TIMEOUT"
    status = 408
