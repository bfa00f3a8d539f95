"""Result text for values that Python's own types cannot hold."""

from __future__ import annotations

import pyarrow as pa

from sinkflow.api.text_formats import tab_separated_lines


def test_times_beyond_python_years_print_saturated_to_protons_range() -> None:
    """A computed time past year 9999 (or before year 1) prints at the edge of Proton's
    datetime64 range instead of failing the whole answer; a null stays a null."""
    seconds = 3 * 10**12  # about year 97000
    for unit, per_second in (("s", 1), ("ms", 1000), ("us", 1_000_000)):
        column = pa.array([0, seconds * per_second, -seconds * per_second, None], pa.timestamp(unit, "UTC"))
        lines = tab_separated_lines(pa.table({"t": column})).splitlines()
        fraction = {"s": "", "ms": ".000", "us": ""}[unit]
        assert lines[0] == "1970-01-01 00:00:00" + fraction
        assert lines[1].startswith("2299-12-31 23:59:59")
        assert lines[2] == "1900-01-01 00:00:00" + fraction
        assert lines[3] == "\\N"
