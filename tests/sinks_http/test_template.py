"""The {{ .col }} template language: what renders, exactly, and what is refused, with where."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest

from sinkflow.errors import ConfigError, InvalidInput
from sinkflow.sinks.encode import column_texts, json_documents, row_dicts
from sinkflow.sinks.template import Template, TemplateError, check_columns

ROW_1 = {"time": dt.datetime(2022, 1, 23, 10, 0, 0, 123000), "number": 50, "note": "foo"}
ROW_2 = {"time": dt.datetime(2022, 1, 23, 10, 5, 0, 123000), "number": 95, "note": "Bar"}
HOSTILE = 'say "hi"\\ \n\t<b>&</b> 😀 {{.x}} \u2028'

RENDERS = [
    # the document's own example, both rows of its table
    ("传感器数据为 {{.time}} {{.number}}，并备注: {{.note}}", ROW_1, "传感器数据为 2022-01-23 10:00:00.123 50，并备注: foo"),
    ("传感器数据为 {{.time}} {{.number}}，并备注: {{.note}}", ROW_2, "传感器数据为 2022-01-23 10:05:00.123 95，并备注: Bar"),
    ("Sensor data at {{.time}} is {{.number}}, note: {{.note}}", ROW_1, "Sensor data at 2022-01-23 10:00:00.123 is 50, note: foo"),
    ("{{ .note }}|{{.note}}|{{  .note\t}}", ROW_1, "foo|foo|foo"),
    ("no actions at all", ROW_1, "no actions at all"),
    ("", ROW_1, ""),
    ("{{.number}}{{.number}}", ROW_1, "5050"),
    ("a } b }} c { d", ROW_1, "a } b }} c { d"),
    ("{{.flag}} {{.off}}", {"flag": True, "off": False}, "true false"),
    ("{{.x}} {{.y}} {{.z}}", {"x": 2.5, "y": 3.0, "z": 0.1 + 0.2}, "2.5 3 0.30000000000000004"),
    ("[{{.missing}}] [{{.null}}]", {"null": None}, "[] []"),
    ("{{.d}} {{.day}}", {"d": decimal.Decimal("12.500"), "day": dt.date(2022, 1, 23)}, "12.500 2022-01-23"),
    ("{{.t}}", {"t": dt.datetime(2022, 1, 23, 10, 0, 0)}, "2022-01-23 10:00:00"),
    ("{{.s}}", {"s": HOSTILE}, HOSTILE),
    ("{{.速度}}", {"速度": 88}, "88"),
    ('{"note": {{ json .note }}, "n": {{.number | json}}}', ROW_1, '{"note": "foo", "n": 50}'),
    ("{{json .s}}", {"s": HOSTILE}, '"say \\"hi\\"\\\\ \\n\\t<b>&</b> 😀 {{.x}} \u2028"'),
    ("{{ json .t }}", {"t": dt.datetime(2022, 1, 23, 10, 0, 0, 123000)}, '"2022-01-23T10:00:00.123+00:00"'),
    ("{{ .d | json }} {{json .n}} {{json .b}}", {"d": decimal.Decimal("1.10"), "n": None, "b": True}, "1.10 null true"),
    ("row={{ json . }}", {"a": 1, "b": "x"}, 'row={"a":1,"b":"x"}'),
    ("{{. | json}}", {"a": [1, 2]}, '{"a":[1,2]}'),
]


@pytest.mark.parametrize(("source", "row", "expected"), RENDERS)
def test_renders_exactly(source: str, row: dict[str, object], expected: str) -> None:
    assert Template.parse(source).render(row) == expected


REFUSED = [
    ("x {{ if .a }}y{{ end }}", "unsupported construct '{{ if .a }}' at line 1, column 3"),
    ("{{range .items}}", "unsupported construct '{{range .items}}' at line 1, column 1"),
    ("line one\nab {{- .a }}", "unsupported construct '{{- .a }}' at line 2, column 4"),
    ("{{ .a -}}", "unsupported construct '{{ .a -}}' at line 1, column 1"),
    ("{{/* note */}}", "unsupported construct '{{/* note */}}' at line 1, column 1"),
    ("{{ .a.b }}", "unsupported construct '{{ .a.b }}' at line 1, column 1"),
    ("{{ . }}", "unsupported construct '{{ . }}' at line 1, column 1"),
    ("{{}}", "unsupported construct '{{}}' at line 1, column 1"),
    ("{{ note }}", "unsupported construct '{{ note }}' at line 1, column 1"),
    ('{{ printf "%d" .a }}', "unsupported construct '{{ printf \"%d\" .a }}' at line 1, column 1"),
    ("{{ .a | upper }}", "unsupported construct '{{ .a | upper }}' at line 1, column 1"),
    ("{{ json .a .b }}", "unsupported construct '{{ json .a .b }}' at line 1, column 1"),
    ("{{ .1a }}", "unsupported construct '{{ .1a }}' at line 1, column 1"),
    ("ok {{.a}} then {{ .b", "'{{' is not closed by '}}' in '{{ .b' at line 1, column 16"),
]


@pytest.mark.parametrize(("source", "message"), REFUSED)
def test_refuses_other_constructs_naming_them_and_where(source: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        Template.parse(source)
    assert caught.value.message.startswith(f"template: {message}")
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.position is not None


def test_unsupported_construct_message_lists_what_is_allowed() -> None:
    with pytest.raises(TemplateError, match=r"\(allowed: \{\{ \.col \}\}, \{\{ json \.col \}\}"):
        Template.parse("{{ if .a }}")


def test_columns_are_the_referenced_ones() -> None:
    template = Template.parse("{{.a}} {{ json .b }} {{ .c | json }} {{ json . }} {{.a}}")
    assert template.columns == frozenset({"a", "b", "c"})


def test_check_columns_accepts_known_columns() -> None:
    check_columns("{{.time}} {{ json .note }}", "template", ["time", "number", "note"])
    assert Template.parse("{{.time}} {{ json .note }}").columns <= {"time", "number", "note"}


def test_check_columns_names_the_first_unknown_column_and_the_property() -> None:
    with pytest.raises(ConfigError) as caught:
        check_columns("{{.time}} {{.speed}} {{.zzz}}", "payload_field", ["time", "number", "note"])
    assert caught.value.prop == "payload_field"
    assert caught.value.message == "property 'payload_field': unknown column 'speed' (columns: time, number, note)"


def test_check_columns_reports_a_parse_error_against_the_property() -> None:
    with pytest.raises(ConfigError) as caught:
        check_columns("{{ if .a }}", "body", ["a"])
    assert caught.value.prop == "body"
    assert "unsupported construct '{{ if .a }}' at line 1, column 1" in caught.value.message


# What docs/sinks.md promises for each type: (column, {{ .col }} text, {{ json .col }} / JSON document text).
TYPE_RENDERING = [
    ("f32", pa.array([126.95], pa.float32()), "126.95", "126.95"),
    ("f64", pa.array([0.1 + 0.2]), "0.30000000000000004", "0.30000000000000004"),
    ("whole", pa.array([3.0]), "3", "3.0"),
    ("nan", pa.array([float("nan")]), "nan", "null"),
    ("int", pa.array([42], pa.int32()), "42", "42"),
    ("dec", pa.array([decimal.Decimal("12.30")], pa.decimal128(10, 2)), "12.30", "12.30"),
    ("bool", pa.array([True]), "true", "true"),
    ("text", pa.array(['say "hi"']), 'say "hi"', '"say \\"hi\\""'),
    ("ms", pa.array([dt.datetime(2022, 1, 23, 10, 0, 0)], pa.timestamp("ms", "UTC")),
     "2022-01-23 10:00:00.000", '"2022-01-23T10:00:00.000+00:00"'),
    ("secs", pa.array([dt.datetime(2022, 1, 23, 10, 0, 0)], pa.timestamp("s", "UTC")),
     "2022-01-23 10:00:00", '"2022-01-23T10:00:00.000+00:00"'),
    ("zoned", pa.array([dt.datetime(2022, 1, 23, 10, 0, 0, 123000)], pa.timestamp("ms", "Asia/Shanghai")),
     "2022-01-23 18:00:00.123", '"2022-01-23T18:00:00.123+08:00"'),
    ("date", pa.array([dt.date(2022, 1, 23)]), "2022-01-23", '"2022-01-23"'),
    ("strings", pa.array([["a", "b"]]), "['a','b']", '["a","b"]'),
    ("floats", pa.array([[1.5, 126.95]], pa.list_(pa.float32())), "[1.5,126.95]", "[1.5,126.95]"),
    ("map", pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int32())), "{'k':1}", '{"k":1}'),
    ("null", pa.array([None], pa.int32()), "", "null"),
]


@pytest.mark.parametrize(("name", "values", "as_text", "as_json"), TYPE_RENDERING, ids=[t[0] for t in TYPE_RENDERING])
def test_each_type_renders_as_documented(name: str, values: pa.Array, as_text: str, as_json: str) -> None:
    batch = pa.record_batch({name: values})
    row = row_dicts(batch)[0]
    assert Template.parse(f"{{{{ .{name} }}}}").render(row) == as_text
    assert Template.parse(f"{{{{ json .{name} }}}}").render(row) == as_json
    assert json_documents(batch)[0].decode() == f'{{"{name}":{as_json}}}'
    assert column_texts(values) == [as_text if as_text else None]
