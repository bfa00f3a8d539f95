"""The shared parts of every sink's property model: durations, batching and retry policies, secrets.

Each destination module declares a pydantic model subclassing :class:`SinkConfig` whose field
names (or aliases) are exactly the spec's property names and whose defaults are the spec's
defaults. The model is the single source of truth: the API validates with it, the console
builds its form from its JSON schema, and the runtime asks it for batching and retry policies.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import (AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError,
                      WithJsonSchema)

from sinkflow.errors import ConfigError

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


# -- reading what a user wrote --------------------------------------------------------------


def property_names(model: type[BaseModel]) -> list[str]:
    """The spellings users write for ``model``'s properties, in declaration order: the alias
    where there is one (``tls.disable``, ``from``), else the field name, and the accepted
    alternatives (``parallelism``)."""
    names: list[str] = []
    for name, info in model.model_fields.items():
        spellings: list[Any] = [info.alias or name]
        if isinstance(info.validation_alias, AliasChoices):
            spellings.extend(info.validation_alias.choices)
        elif isinstance(info.validation_alias, str):
            spellings.append(info.validation_alias)
        names.extend(s for s in spellings if isinstance(s, str) and s not in names)
    return names


def _nested_model(model: type[BaseModel], prop: str) -> type[BaseModel] | None:
    """The model of property ``prop`` when it is itself an object with known properties."""
    for name, info in model.model_fields.items():
        if prop in (name, info.alias):
            annotation = info.annotation
            for candidate in (annotation, *getattr(annotation, "__args__", ())):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    return candidate
    return None


def normalize_properties(model: type[BaseModel], properties: dict[str, Any]) -> dict[str, Any]:
    """``properties`` as ``model`` reads them, without changing their meaning.

    * A nested object whose keys the model spells with dots is flattened: ``{"tls": {"disable":
      true}}`` means ``tls.disable`` (both spellings are common in Timeplus examples).
    * A block switched off (``"enabled": false``) keeps only that switch: its other settings
      are not used, so they are not validated (``oauth2: {enabled: false, token_url: ""}``).
    """
    names = set(property_names(model))
    out: dict[str, Any] = {}
    for key, value in properties.items():
        if isinstance(value, dict) and key not in names and any(n.startswith(key + ".") for n in names):
            for inner, inner_value in value.items():
                out[f"{key}.{inner}"] = inner_value
        elif isinstance(value, dict) and value.get("enabled") is False:
            out[key] = {"enabled": False}
        else:
            out[key] = value
    return out


def did_you_mean(name: str, known: list[str]) -> str:
    """`` — did you mean 'x'?`` for the known name closest to ``name`` (or a known name that
    contains it, ``method`` → ``http_method``), or an empty string when none is close."""
    lowered = name.lower()
    close = difflib.get_close_matches(lowered, known, n=1, cutoff=0.6)
    if not close:
        close = [k for k in known if len(lowered) >= 3 and (lowered in k.lower() or k.lower() in lowered)][:1]
    return f" — did you mean '{close[0]}'?" if close else ""


def validation_message(model: type[BaseModel], exc: ValidationError, is_secret: Callable[[str], bool]) -> ConfigError:
    """The error a user sees for ``exc``: the first unknown property (with the closest known
    name) before anything else, since a misspelt property also makes the right one missing;
    then missing, wrong-typed or disallowed values, naming the property and what was given
    (never a secret's value)."""
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = [str(part) for part in err["loc"]]
    prop = ".".join(loc) or "properties"
    if err["type"] == "extra_forbidden":
        owner: type[BaseModel] | None = model
        for part in loc[:-1]:
            owner = _nested_model(owner, part) if owner is not None else None
        known = property_names(owner) if owner is not None else []
        return ConfigError(prop, "unknown property" + did_you_mean(loc[-1], known))
    if err["type"] == "missing":
        return ConfigError(prop, "is required")
    message = err["msg"].removeprefix("Value error, ")
    given = repr(err.get("input"))
    if "input" in err and err["type"] != "model_type" and given not in message and not is_secret(prop):
        message = f"{message} (got {given})"
    return ConfigError(prop, message)
