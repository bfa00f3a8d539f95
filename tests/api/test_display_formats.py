"""FORMAT JSONEachRow, Values, TSKV, Vertical and the Pretty family, against the text of Proton's
``.reference`` files (tests/queries_ported/0_stateless: 00405_pretty_formats, 00476_pretty_formats_and_widths,
00231_format_vertical_raw, 00685_output_format_json_escape_forward_slashes)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sinkflow.api.text_formats import format_header, format_rows, split_format

# SELECT number AS hello, to_string(number) AS world, (hello, world) AS tuple, null_if(hello % 3, 0) AS
# sometimes_nulls FROM system.numbers LIMIT 5
_ROWS = pa.table({
    "hello": pa.array(range(5), pa.uint64()),
    "world": [str(n) for n in range(5)],
    "tuple": pa.array([{"1": n, "2": str(n)} for n in range(5)],
                      pa.struct([("1", pa.uint64()), ("2", pa.string())])),
    "sometimes_nulls": pa.array([n % 3 or None for n in range(5)], pa.uint8()),
})

PRETTY = """\
┏━━━━━━━┳━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━━━━━━━┓
┃ \x1b[1mhello\x1b[0m ┃ \x1b[1mworld\x1b[0m ┃ \x1b[1mtuple  \x1b[0m ┃ \x1b[1msometimes_nulls\x1b[0m ┃
┡━━━━━━━╇━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━━━━━━━┩
│     0 │ 0     │ (0,'0') │            ᴺᵁᴸᴸ │
├───────┼───────┼─────────┼─────────────────┤
│     1 │ 1     │ (1,'1') │               1 │
├───────┼───────┼─────────┼─────────────────┤
│     2 │ 2     │ (2,'2') │               2 │
├───────┼───────┼─────────┼─────────────────┤
│     3 │ 3     │ (3,'3') │            ᴺᵁᴸᴸ │
├───────┼───────┼─────────┼─────────────────┤
│     4 │ 4     │ (4,'4') │               1 │
└───────┴───────┴─────────┴─────────────────┘
"""
PRETTY_COMPACT = """\
┌─\x1b[1mhello\x1b[0m─┬─\x1b[1mworld\x1b[0m─┬─\x1b[1mtuple\x1b[0m───┬─\x1b[1msometimes_nulls\x1b[0m─┐
│     0 │ 0     │ (0,'0') │            ᴺᵁᴸᴸ │
│     1 │ 1     │ (1,'1') │               1 │
│     2 │ 2     │ (2,'2') │               2 │
│     3 │ 3     │ (3,'3') │            ᴺᵁᴸᴸ │
│     4 │ 4     │ (4,'4') │               1 │
└───────┴───────┴─────────┴─────────────────┘
"""
PRETTY_SPACE = """\
 \x1b[1mhello\x1b[0m   \x1b[1mworld\x1b[0m   \x1b[1mtuple\x1b[0m     \x1b[1msometimes_nulls\x1b[0m

     0   0       (0,'0')              ᴺᵁᴸᴸ 
     1   1       (1,'1')                 1 
     2   2       (2,'2')                 2 
     3   3       (3,'3')              ᴺᵁᴸᴸ 
     4   4       (4,'4')                 1 
"""


@pytest.mark.parametrize(("fmt", "expected"), [
    ("Pretty", PRETTY), ("PrettyCompact", PRETTY_COMPACT), ("PrettySpace", PRETTY_SPACE),
    ("PrettyCompactNoEscapes", PRETTY_COMPACT.replace("\x1b[1m", "").replace("\x1b[0m", "")),
    ("PrettySpaceNoEscapes", PRETTY_SPACE.replace("\x1b[1m", "").replace("\x1b[0m", "")),
])
def test_pretty_formats_draw_protons_tables(fmt: str, expected: str) -> None:
    assert format_header(_ROWS.schema, fmt) + format_rows(_ROWS, fmt) == expected


def test_a_numeric_columns_name_is_aligned_right() -> None:
    table = pa.table({"x": pa.array([1, 1000000000], pa.uint64()), "s": ["1", "1000000000"]})
    assert format_rows(table, "PrettyCompact").splitlines()[0] == \
        "┌──────────\x1b[1mx\x1b[0m─┬─\x1b[1ms\x1b[0m──────────┐"


def test_vertical_writes_a_block_per_row_with_raw_values() -> None:
    table = pa.table({"x": ["a\tb\nc\td"]})
    assert format_rows(table, "Vertical") == "Row 1:\n──────\nx: a\tb\nc\td\n"
    two = pa.table({"a": [1, 2], "long_name": ["x", None]})
    assert format_rows(two, "Vertical") == ("Row 1:\n──────\na:         1\nlong_name: x\n\n"
                                           "Row 2:\n──────\na:         2\nlong_name: ᴺᵁᴸᴸ\n")


def test_json_each_row_quotes_64_bit_integers_and_escapes_slashes() -> None:
    table = pa.table({"url": ["/some/cool/url"], "a": pa.array([1], pa.uint8()), "b": pa.array([2], pa.uint64()),
                      "c": [[1.5]], "n": pa.array([None], pa.float64())})
    assert format_rows(table, "JSONEachRow") == '{"url":"\\/some\\/cool\\/url","a":1,"b":"2","c":[1.5],"n":null}\n'
    assert format_rows(table, "JSONCompactEachRow") == '["\\/some\\/cool\\/url",1,"2",[1.5],null]\n'


def test_values_and_tskv() -> None:
    table = pa.table({"a": pa.array([1, 2], pa.uint8()), "b": ["x'y", None]})
    assert format_rows(table, "Values") == "(1,'x\\'y'),(2,NULL)"
    assert format_rows(table, "TSKV") == "a=1\tb=x'y\na=2\tb=\\N\n"


def test_with_names_and_types_writes_the_types_line() -> None:
    table = pa.table({"a": pa.array([1], pa.uint8()), "b": ["x"]})
    assert format_header(table.schema, "TSVWithNamesAndTypes") + format_rows(table, "TSVWithNamesAndTypes") == \
        "a\tb\nuint8\tstring\n1\tx\n"


def test_format_names_are_read_in_any_case() -> None:
    assert split_format("SELECT 1 FORMAT prettycompactnoescapes") == ("SELECT 1", "PrettyCompactNoEscapes")
    assert split_format("SELECT 1 format JSONEachRow;") == ("SELECT 1", "JSONEachRow")
