"""The {{ .col }} template language: what renders, exactly, and what is refused, with where."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from sinkflow.errors import ConfigError, InvalidInput
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
