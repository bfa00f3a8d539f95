"""``parse_datetime_in_joda_syntax`` (and its ``_or_null`` / ``_or_zero`` forms): text read with a
Joda-Time pattern (``yyyy-MM-dd HH:mm:ss``).

The pattern is a literal, so it becomes one RE2 regular expression with a capture group per field
when the query is planned; DuckDB then matches each row and builds the datetime from the groups.
As in Proton: the whole text must match; a field given twice takes its last value (for the hour,
the last of ``H``/``k``/``K``/``h``); without a year the year is 2000 when a month or day is given
(so 02-29 reads) and 1970 otherwise; two-digit years are 1970..2069; the result must lie in
datetime's range (1970 … 2106-02-07 06:28:15). Unsupported letters (time zones ``z``/``Z``,
fractions ``S``, week days ``e``/``E``) are refused with an error naming them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlglot import exp

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


def _compile(fmt: str, node: exp.Expression) -> _Pattern:
    pattern = _Pattern()
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char == "'":  # quoted literal text; '' is a quote
            end = fmt.find("'", i + 1)
            if end < 0:
                raise error("parse_datetime_in_joda_syntax: the pattern has an unclosed quote", node)
            pattern.regex += re.escape(fmt[i + 1:end] or "'")
            i = end + 1
            continue
        run = len(fmt) - i - len(fmt[i:].lstrip(char)) if char.isalpha() else 1
        i += run
        if not char.isalpha():
            pattern.regex += re.escape(char)
        elif char == "G":
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
            raise error(f"parse_datetime_in_joda_syntax: the pattern letter '{char}' is not supported", node)
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


def _parse_joda(otherwise: str) -> Builder:
    """The builder for a failure answered by ``otherwise`` (SQL over the text {0})."""

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        pattern = _compile(literal_text(args[1], "parse_datetime_in_joda_syntax's pattern"), args[1])
        moment, checks = _sql(pattern)
        zoned = ("TIMEZONE({2}, %s)" if len(args) > 2 else "CAST(%s AS TIMESTAMPTZ)") % moment
        checks.append(f"{zoned} BETWEEN TIMESTAMPTZ '1970-01-01 00:00:00+00' AND TIMESTAMPTZ '2106-02-07 06:28:15+00'")
        # A check is only evaluated once the ones before it hold (CASE stops at the first).
        failures = " ".join(f"WHEN NOT ({check}) THEN {otherwise}" for check in checks)
        template = (f"CASE WHEN {{0}} IS NULL THEN NULL WHEN NOT REGEXP_FULL_MATCH({{0}}, {{1}}) THEN {otherwise} "
                    f"{failures} ELSE {zoned} END")
        return fill(template, [args[0], exp.Literal.string(pattern.regex), *args[2:3]])

    return build


_FAILED = "ERROR('cannot read ''' || {0} || ''' with the Joda pattern')"
register("parse_datetime_in_joda_syntax", _parse_joda(_FAILED), 2, 3, returns=TIME)
register("parse_datetime_in_joda_syntax_or_null", _parse_joda("NULL"), 2, 3, returns=TIME)
register("parse_datetime_in_joda_syntax_or_zero", _parse_joda("TIMESTAMPTZ '1970-01-01 00:00:00+00'"), 2, 3,
         returns=TIME)
