"""Per-sink status and counters, and their Prometheus text form."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class SinkState(str, Enum):
    STARTING = "starting"
    RUNNING = "running"
    RETRYING = "retrying"  # the destination is failing retryably; rows wait, none are lost
    PAUSED = "paused"
    FAILED = "failed"  # stopped for good until restarted; ``reason`` says why
    FINISHED = "finished"  # a bounded query delivered all its rows
    STOPPED = "stopped"


#: Counters that survive a restart: they are committed with each checkpoint.
COUNTERS = ("rows_delivered", "retries", "dead_lettered", "rows_emitted", "epochs")
#: State changes kept in ``history`` (the newest last).
HISTORY_LENGTH = 20


@dataclass
class SinkStatus:
    """What a user checks about a sink. ``last_error`` never holds a secret (the pipeline
    scrubs every secret value out of it).

    Assigning ``state`` appends ``{state, reason, at}`` to ``history`` when the state changes;
    assigning a non-empty ``last_error`` stamps ``last_error_at``; a rise of ``rows_delivered``
    stamps ``last_delivered_at`` (Unix seconds), so a user can tell a past error from a
    current one.
    """

    state: SinkState = SinkState.STARTING
    reason: str = ""
    rows_read: int = 0
    rows_delivered: int = 0
    retries: int = 0
    dead_lettered: int = 0
    #: Rows of the sink's streams whose results are not delivered yet (unread ones included).
    lag: int = 0
    #: How long the oldest of those rows has been waiting, in seconds (0 when none waits).
    lag_seconds: float = 0.0
    last_error: str = ""
    rows_emitted: int = 0
    epochs: int = 0
    last_checkpoint_at: float | None = None
    extra: dict[str, int] = field(default_factory=dict)
    last_error_at: float | None = None
    last_delivered_at: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    node: str | None = None  # the cluster node running the sink (None in the embedded mode)
    #: Measures (lag, lag_seconds) now, while the sink's query runs; read by :meth:`refresh`.
    lag_probe: Callable[[], tuple[int, float]] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._record_state(self.state)

    def __setattr__(self, name: str, value: Any) -> None:
        before = self.__dict__.get(name)
        super().__setattr__(name, value)
        if name == "state" and value != before and "history" in self.__dict__:
            self._record_state(value)
        elif name == "reason" and self.__dict__.get("history") and self.history[-1]["state"] == self.state.value:
            self.history[-1]["reason"] = value  # the pipeline says why right after the change
        elif name == "last_error" and value:
            super().__setattr__("last_error_at", time.time())
        elif name == "rows_delivered" and before is not None and value > before:
            super().__setattr__("last_delivered_at", time.time())

    def _record_state(self, state: SinkState) -> None:
        self.history.append({"state": state.value, "reason": self.reason, "at": time.time()})
        del self.history[:-HISTORY_LENGTH]

    def counters(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}

    def restore_counters(self, counters: dict[str, int]) -> None:
        for name in COUNTERS:  # restored, not new: no delivery time is stamped
            value = int(counters.get(name, 0))
            if name == "retries":
                # Retries are attempts made, not positions in the output: a restart from the
                # checkpoint (itself after a failure) must not forget the ones since it.
                value = max(value, self.retries)
            object.__setattr__(self, name, value)

    def refresh(self) -> SinkStatus:
        """Bring ``lag`` and ``lag_seconds`` up to this moment (a slow destination can hold a
        delivery for long: they must not wait for the pipeline's next step). Returns self."""
        if self.lag_probe is not None:
            self.lag, self.lag_seconds = self.lag_probe()
        return self

    def to_dict(self) -> dict[str, object]:
        self.refresh()
        body = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "lag_probe"}
        body["extra"] = dict(self.extra)
        body["state"] = self.state.value
        return body


_METRICS = (
    ("sinkflow_sink_rows_read_total", "counter", "rows_read", "Rows the sink's query read from its streams."),
    ("sinkflow_sink_rows_delivered_total", "counter", "rows_delivered", "Result rows acknowledged by the destination."),
    ("sinkflow_sink_retries_total", "counter", "retries", "Retries of deliveries and of connecting."),
    ("sinkflow_sink_dead_lettered_total", "counter", "dead_lettered", "Rows sent to the dead-letter stream."),
    ("sinkflow_sink_lag_rows", "gauge", "lag", "Rows of the sink's streams whose results are not delivered yet."),
    ("sinkflow_sink_lag_seconds", "gauge", "lag_seconds", "How long the oldest undelivered row has waited."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(statuses: dict[str, tuple[str, SinkStatus]]) -> str:
    """Prometheus exposition text for ``{sink_id: (sink_name, status)}``."""
    lines: list[str] = []
    for _, status in statuses.values():
        status.refresh()
    for metric, kind, attr, help_text in _METRICS:
        lines.append(f"# HELP {metric} {help_text}")
        lines.append(f"# TYPE {metric} {kind}")
        for sink_id, (name, status) in statuses.items():
            lines.append(f'{metric}{{sink_id="{_label(sink_id)}",sink="{_label(name)}"}} {getattr(status, attr)}')
    lines.append("# HELP sinkflow_sink_up 1 when the sink is running, 0 otherwise.")
    lines.append("# TYPE sinkflow_sink_up gauge")
    for sink_id, (name, status) in statuses.items():
        up = 1 if status.state is SinkState.RUNNING else 0
        lines.append(f'sinkflow_sink_up{{sink_id="{_label(sink_id)}",sink="{_label(name)}",state="{status.state.value}"}} {up}')
    return "\n".join(lines) + "\n"


def stream_prometheus_text(damaged: dict[str, int]) -> str:
    """Prometheus exposition text for streams: ``{stream name: damaged rows}``."""
    lines = ["# HELP sinkflow_stream_damaged_rows_total Rows found damaged on disk (checksum mismatch), never served.",
             "# TYPE sinkflow_stream_damaged_rows_total counter"]
    lines.extend(f'sinkflow_stream_damaged_rows_total{{stream="{_label(name)}"}} {rows}' for name, rows in damaged.items())
    return "\n".join(lines) + "\n"
