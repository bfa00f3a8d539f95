"""How late the event loop runs: the ``sinkflow_event_loop_lag_seconds`` histogram.

Sinks' I/O, live queries and the API share one event loop; whatever holds it (a long
computation between two awaits) delays all of them. :class:`LoopLagMonitor` asks the loop to
wake it every ``interval`` seconds and records how much later than asked it woke: that delay
is what any callback scheduled at that moment waited too.
"""

from __future__ import annotations

import asyncio
import bisect

#: Upper bounds (seconds) of the histogram's buckets, as Prometheus's ``le`` labels.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METRIC = "sinkflow_event_loop_lag_seconds"


class LoopLagMonitor:
    """Samples the running loop's lag every ``interval`` seconds (:meth:`run`) into a
    cumulative histogram (:meth:`prometheus_text`). Counts only grow, as Prometheus expects."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._counts = [0] * (len(BUCKETS) + 1)  # the last one: above every bound (+Inf only)
        self._sum = 0.0

    def record(self, lag: float) -> None:
        """Count one sample of ``lag`` seconds."""
        self._counts[bisect.bisect_left(BUCKETS, lag)] += 1
        self._sum += lag

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until ``stop`` is set."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            asked = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.record(max(0.0, loop.time() - asked))

    def prometheus_text(self) -> str:
        """The histogram in Prometheus's exposition format."""
        lines = [
            f"# HELP {METRIC} How much later than scheduled the event loop ran a timer (sampled every "
            f"{self.interval:g} s).",
            f"# TYPE {METRIC} histogram",
        ]
        total = 0
        for bound, count in zip(BUCKETS, self._counts, strict=False):
            total += count
            lines.append(f'{METRIC}_bucket{{le="{bound:g}"}} {total}')
        total += self._counts[-1]
        lines.append(f'{METRIC}_bucket{{le="+Inf"}} {total}')
        lines.append(f"{METRIC}_sum {self._sum:.6f}")
        lines.append(f"{METRIC}_count {total}")
        return "\n".join(lines) + "\n"
