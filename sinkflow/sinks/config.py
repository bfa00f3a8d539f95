"""The shared parts of every sink's property model: durations, batching and retry policies, secrets.

Each destination module declares a pydantic model subclassing :class:`SinkConfig` whose field
names (or aliases) are exactly the spec's property names and whose defaults are the spec's
defaults. The model is the single source of truth: the API validates with it, the console
builds its form from its JSON schema, and the runtime asks it for batching and retry policies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``10s``, ``100ms``, ``1.5m``, ``2h`` or a bare number of seconds.

    Raises ``ValueError`` (which pydantic reports against the property) for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '10s' or '100ms', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    raise ValueError(f"expected a duration such as '10s' or '100ms', got {value!r}")


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration (``100ms``, ``10s``)."""
    if seconds and seconds < 1:
        return f"{round(seconds * 1000, 3):g}ms"
    return f"{seconds:g}s"


#: A duration property: accepts ``10s``/``100ms``/seconds, holds seconds, serializes as text.
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "format": "duration", "pattern": r"^\d+(\.\d+)?(ns|us|ms|s|m|h|d)?$"}),
]


def _split_list(value: Any) -> Any:
    """Accept ``a,b`` as well as ``["a", "b"]`` for list properties."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


#: A list of strings that may also be given as one comma-separated string.
StrList = Annotated[list[str], BeforeValidator(_split_list)]


@dataclass(frozen=True)
class BatchPolicy:
    """Deliver a batch when it holds ``max_rows`` rows or its oldest row waited ``max_wait`` seconds."""

    max_rows: int
    max_wait: float

    @property
    def flush_rows(self) -> int:
        """The most rows written between two flushes of a sink that acknowledges in ``flush``:
        64 batches, at least 10,000 rows and at most 100,000 (a larger batch: one).

        The runtime holds these rows until they are acknowledged (to write them again if the
        flush fails), so this bounds memory; a wide window keeps a broker busy between the
        flushes, which wait for every acknowledgement (measured with Kafka: 64 batches instead
        of 16, +20-40% rows/s).
        """
        return max(min(max(64 * self.max_rows, 10_000), 100_000), self.max_rows)


@dataclass(frozen=True)
class RetryPolicy:
    """How the runtime retries a retryable failure.

    ``max_retries`` None means retry until the destination recovers (for sinks without a
    ``retries`` property: broker or server down must lose nothing). Backoff starts at
    ``initial_backoff`` and doubles up to ``max_backoff``, with jitter.
    """

    max_retries: int | None
    initial_backoff: float = 0.5
    max_backoff: float = 30.0


class SinkConfig(BaseModel):
    """Base of every sink's property model.

    Subclasses set ``secret_fields`` (dotted paths of properties never shown back),
    ``header_fields`` and ``url_fields`` (properties that may hold credentials), and may
    override :meth:`templates`, :meth:`batch_policy` and :meth:`retry_policy`. Unknown
    properties are rejected so a typo never passes silently.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)

    idle_timeout: Duration | None = Field(
        None,
        description="Close open windows after this long without new input, so results of a quiet "
        "stream still reach the destination (processing time; off by default, as in Timeplus).",
    )

    #: Dotted property paths that are secrets: stored apart, masked in responses, never logged.
    secret_fields: ClassVar[tuple[str, ...]] = ()
    #: Header-map properties: each header whose name suggests a credential (``Authorization``,
    #: ``X-Api-Key``, ``*token*``, ``*secret*``, ``cookie``; any case) is a secret.
    header_fields: ClassVar[tuple[str, ...]] = ()
    #: URL properties: credentials inside them (``user:pass@``, ``?token=``) are secrets.
    url_fields: ClassVar[tuple[str, ...]] = ()
    #: Properties holding ``{{ .col }}`` templates, checked against the query's columns at creation.
    template_fields: ClassVar[tuple[str, ...]] = ()

    def templates(self) -> dict[str, str]:
        """Property name → template text, for every non-empty template property."""
        return {name: text for name in self.template_fields if (text := getattr(self, name, None))}

    def batch_policy(self) -> BatchPolicy:
        """How many rows the runtime hands to one ``write``, and how long it may wait for them."""
        return BatchPolicy(max_rows=100, max_wait=0.1)

    def retry_policy(self) -> RetryPolicy:
        """How retryable failures are retried."""
        return RetryPolicy(max_retries=None)

    def concurrency(self) -> int:
        """How many requests the sink may keep in flight (the http sink's ``paralism``)."""
        return 1
