"""Timeplus types as written → canonical spelling and Arrow type (pairs in tests/fixtures/types.txt);
a query's Arrow output types map back to the same spelling."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinkflow.errors import InvalidInput
from sinkflow.streams.types import from_arrow, parse_type

FIXTURES = Path(__file__).parent.parent / "fixtures" / "types.txt"
PAIRS = [tuple(part.strip() for part in line.split("==>")) for line in FIXTURES.read_text().splitlines()
         if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize(("written", "expected"), PAIRS, ids=[p[0] for p in PAIRS])
def test_type(written: str, expected: str) -> None:
    if expected.startswith("error: "):
        with pytest.raises(InvalidInput) as info:
            parse_type(written)
        assert expected[len("error: "):] in info.value.message
        return
    name, arrow = (part.strip() for part in expected.split(" | "))
    parsed = parse_type(written)
    assert (parsed.name, str(parsed.arrow)) == (name, arrow)
    assert parse_type(parsed.name) == parsed  # the canonical spelling reads back as the same type


@pytest.mark.parametrize("written", ["decimal(9, 2)", "datetime('Asia/Tokyo')", "datetime64(6, 'UTC')",
                                     "map(string, int64)", "tuple(int32, string)", "tuple(a int32, b string)",
                                     "array(map(string, float64))"])
def test_query_output_types_map_back(written: str) -> None:
    parsed = parse_type(written)
    assert from_arrow(parsed.arrow, False).name == written
