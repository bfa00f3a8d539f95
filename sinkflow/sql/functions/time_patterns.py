"""Text read by a pattern: ``parse_datetime`` (MySQL's ``%Y-%m-%d %H:%i:%s``) and
``parse_datetime_in_joda_syntax`` (Joda-Time's ``yyyy-MM-dd HH:mm:ss``), with their ``_or_null`` /
``_or_zero`` forms.

The pattern is a literal, so it becomes one RE2 regular expression with a capture group per field
when the query is planned; DuckDB then matches each row and builds the datetime from the groups.
As in Proton: the whole text must match; a field given twice takes its last value (for the hour,
the last of the 24- and 12-hour fields); without a year the year is 2000 when a month or day is
given (so 02-29 reads) and 1970 otherwise; two-digit years are 1970..2069; the result must lie in
datetime's range (1970 … 2106-02-07 06:28:15). Fields not supported (time zones, fractions of a
second, week days) are refused with an error naming them. ``%M`` is the minute, as Timeplus's
docs have it (Proton's tests read it as a month name by a setting).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from sinkflow.sql.functions.calls import function_name
from sinkflow.sql.functions.kinds import TIME
from sinkflow.sql.functions.registry import Builder, error, fill, literal_text, register

_MONTHS = ("jan(?:uary)?", "feb(?:ruary)?", "mar(?:ch)?", "apr(?:il)?", "may", "june?", "july?", "aug(?:ust)?",
           "sep(?:tember)?", "oct(?:ober)?", "nov(?:ember)?", "dec(?:ember)?")
_MONTH_ABBREVIATIONS = "['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec']"
#: Letters whose value is a number: the most digits a field of n letters reads is max(n, this).
_DIGITS = {"y": 4, "Y": 4, "x": 4, "C": 2, "M": 2, "d": 2, "D": 3, "H": 2, "k": 2, "K": 2, "h": 2, "m": 2, "s": 2,
           "w": 2}
_HOURS = "HkKh"


@dataclass
class _Pattern:
    """A Joda pattern as a regex and, per field letter, the capture group of its last use."""

    regex: str = ""
    groups: dict[str, int] = field(default_factory=dict)
    widths: dict[str, int] = field(default_factory=dict)  # letters in the field's last use
    hour: str | None = None  # the hour letter used last
    count: int = 0

    def group(self, letter: str, regex: str, width: int) -> None:
        self.count += 1
        self.regex += f"({regex})"
        self.groups[letter] = self.count
        self.widths[letter] = width
        if letter in _HOURS:
            self.hour = letter


def _field(pattern: _Pattern, char: str, run: int, node: exp.Expression, what: str) -> None:
    """Add the Joda field of ``run`` letters ``char`` to ``pattern``."""
    if char == "G":
        pattern.group("G", "(?i:ad|bc)", run)
    elif char == "a":
        pattern.group("a", "(?i:am|pm)", run)
    elif char == "M" and run >= 3:
        pattern.group("N", "(?i:" + "|".join(_MONTHS) + ")", run)
        pattern.groups.pop("M", None)
    elif char in _DIGITS:
        sign = "[+]?" if char in "yx" else ""
        digits = 2 if char in "yYx" and run == 2 else max(run, _DIGITS[char])
        low = 2 if char in "yYx" and run == 2 else 1
        pattern.group(char, f"{sign}[0-9]{{{low},{digits}}}", run)
        if char == "M":
            pattern.groups.pop("N", None)
    else:
        raise error(f"{what}: the pattern letter '{char}' is not supported", node)


def _compile_joda(fmt: str, node: exp.Expression) -> _Pattern:
    pattern = _Pattern()
    what = "parse_datetime_in_joda_syntax"
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char == "'":  # quoted literal text; '' is a quote
            end = fmt.find("'", i + 1)
            if end < 0:
                raise error(f"{what}: the pattern has an unclosed quote", node)
            pattern.regex += re.escape(fmt[i + 1:end] or "'")
            i = end + 1
            continue
        run = len(fmt) - i - len(fmt[i:].lstrip(char)) if char.isalpha() else 1
        i += run
        if char.isalpha():
            _field(pattern, char, run, node, what)
        else:
            pattern.regex += re.escape(char)
    return pattern


# MySQL specifiers as Joda fields (letter, count), and the ones that stand for several.
_MYSQL_FIELDS = {"Y": ("y", 4), "y": ("y", 2), "m": ("M", 2), "c": ("M", 1), "b": ("M", 3), "d": ("d", 2),
                 "e": ("d", 1), "j": ("D", 3), "H": ("H", 2), "k": ("H", 1), "h": ("h", 2), "I": ("h", 2),
                 "l": ("h", 1), "i": ("m", 2), "M": ("m", 2), "s": ("s", 2), "S": ("s", 2), "p": ("a", 1),
                 "C": ("C", 2)}
_MYSQL_SHORTHANDS = {"F": "%Y-%m-%d", "D": "%m/%d/%y", "T": "%H:%i:%s", "R": "%H:%i", "r": "%h:%i %p"}


def _compile_mysql(fmt: str, node: exp.Expression) -> _Pattern:
    pattern = _Pattern()
    fmt = re.sub(r"%([FDTRr])", lambda m: _MYSQL_SHORTHANDS[m.group(1)], fmt)
    i = 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            spec = fmt[i + 1]
            i += 2
            if spec == "%":
                pattern.regex += "%"
            elif spec in _MYSQL_FIELDS:
                _field(pattern, *_MYSQL_FIELDS[spec], node, "parse_datetime")
            else:
                raise error(f"parse_datetime: the format specifier '%{spec}' is not supported", node)
            continue
        pattern.regex += re.escape(fmt[i])
        i += 1
    return pattern


def _number(pattern: _Pattern, letter: str) -> str:
    return f"CAST(REPLACE(REGEXP_EXTRACT({{0}}, {{1}}, {pattern.groups[letter]}), '+', '') AS INTEGER)"


def _year(pattern: _Pattern, letter: str) -> str:
    value = _number(pattern, letter)
    if pattern.widths[letter] == 2:
        return f"(CASE WHEN {value} < 70 THEN 2000 + {value} ELSE 1900 + {value} END)"
    return value


def _sql(pattern: _Pattern) -> tuple[str, list[str]]:
    """The datetime (a TIMESTAMP of the wall-clock time) and the checks it must pass."""
    checks: list[str] = []
    has = pattern.groups.__contains__
    if has("G"):
        checks.append(f"LOWER(REGEXP_EXTRACT({{0}}, {{1}}, {pattern.groups['G']})) = 'ad'")
    if has("y") or has("Y"):
        year = _year(pattern, "y" if has("y") else "Y")
        if has("y") and has("Y"):  # both given: the later one counts
            year = _year(pattern, max("yY", key=lambda c: pattern.groups[c]))
    elif has("C"):
        year = f"({_number(pattern, 'C')} * 100)"
    else:
        year = "2000" if has("M") or has("N") or has("d") or has("D") else "1970"
    if has("N"):
        month = (f"LIST_POSITION({_MONTH_ABBREVIATIONS}, "
                 f"LOWER(SUBSTRING(REGEXP_EXTRACT({{0}}, {{1}}, {pattern.groups['N']}), 1, 3)))")
    else:
        month = _number(pattern, "M") if has("M") else "1"
    day = _number(pattern, "d") if has("d") else "1"
    # With a month or day and no week, the week year is just the year.
    by_week = has("x") and (has("w") or not (has("M") or has("N") or has("d")))
    if has("x") and not by_week:
        year = _year(pattern, "x")
    if by_week:
        week_year = _year(pattern, "x")
        week = _number(pattern, "w") if has("w") else "1"
        jan4 = f"MAKE_DATE({week_year}, 1, 4)"
        # The Monday of ISO week 1 (the week holding January 4), plus the weeks after it.
        date = f"({jan4} - CAST(ISODOW({jan4}) - 1 AS INTEGER) + CAST({week} - 1 AS INTEGER) * 7)"
        checks.append(f"{week} BETWEEN 1 AND 53")
    elif has("D"):
        day_of_year = _number(pattern, "D")
        checks.append(f"{day_of_year} BETWEEN 1 AND DAYOFYEAR(MAKE_DATE({year}, 12, 31))")
        date = f"(MAKE_DATE({year}, 1, 1) + CAST({day_of_year} - 1 AS INTEGER))"
    else:
        checks += [f"{month} BETWEEN 1 AND 12", f"{day} BETWEEN 1 AND 31"]
        date = f"TRY_CAST(PRINTF('%04d-%02d-%02d', {year}, {month}, {day}) AS DATE)"
        checks.append(f"{date} IS NOT NULL")
    checks.append(f"{year} BETWEEN 1970 AND 2106")
    hour = "0"
    if pattern.hour is not None:
        value = _number(pattern, pattern.hour)
        low, high = {"H": (0, 23), "k": (1, 24), "K": (0, 11), "h": (1, 12)}[pattern.hour]
        checks.append(f"{value} BETWEEN {low} AND {high}")
        hour = f"({value} % {high + 1 if pattern.hour in 'HK' else high})"
        if pattern.hour in "Kh" and has("a"):
            hour = f"({hour} + CASE WHEN LOWER(REGEXP_EXTRACT({{0}}, {{1}}, {pattern.groups['a']})) = 'pm' THEN 12 ELSE 0 END)"
    minute = _number(pattern, "m") if has("m") else "0"
    second = _number(pattern, "s") if has("s") else "0"
    checks += [f"{minute} BETWEEN 0 AND 59", f"{second} BETWEEN 0 AND 59"]
    moment = f"(CAST({date} AS TIMESTAMP) + TO_SECONDS(CAST({hour} * 3600 + {minute} * 60 + {second} AS BIGINT)))"
    return moment, checks


def _parse(compile_pattern: Callable[[str, exp.Expression], _Pattern], otherwise: str) -> Builder:
    """The builder reading text by the pattern ``compile_pattern`` makes; text it cannot read is
    answered with ``otherwise`` (SQL over the text {0})."""

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        pattern = compile_pattern(literal_text(args[1], f"{function_name(node)}'s pattern"), args[1])
        moment, checks = _sql(pattern)
        zoned = ("TIMEZONE({2}, %s)" if len(args) > 2 else "CAST(%s AS TIMESTAMPTZ)") % moment
        checks.append(f"{zoned} BETWEEN TIMESTAMPTZ '1970-01-01 00:00:00+00' AND TIMESTAMPTZ '2106-02-07 06:28:15+00'")
        # A check is only evaluated once the ones before it hold (CASE stops at the first).
        failures = " ".join(f"WHEN NOT ({check}) THEN {otherwise}" for check in checks)
        template = (f"CASE WHEN {{0}} IS NULL THEN NULL WHEN NOT REGEXP_FULL_MATCH({{0}}, {{1}}) THEN {otherwise} "
                    f"{failures} ELSE {zoned} END")
        return fill(template, [args[0], exp.Literal.string(pattern.regex), *args[2:3]])

    return build


_FAILED = "ERROR('cannot read ''' || {0} || ''' by the pattern')"
for _name, _compile in (("parse_datetime", _compile_mysql), ("parse_datetime_in_joda_syntax", _compile_joda)):
    register(_name, _parse(_compile, _FAILED), 2, 3, returns=TIME)
    register(f"{_name}_or_null", _parse(_compile, "NULL"), 2, 3, returns=TIME)
    register(f"{_name}_or_zero", _parse(_compile, "TIMESTAMPTZ '1970-01-01 00:00:00+00'"), 2, 3, returns=TIME)
