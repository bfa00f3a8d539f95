"""Date and time functions: ``now``, truncation, parts, ``date_diff``/``date_add``, ``format_datetime``.
"""

from __future__ import annotations

from sqlglot import exp

from sinkflow.sql.functions.calls import function_name
from sinkflow.sql.functions.conversions import parse_text_time
from sinkflow.sql.functions.kinds import BOOL, DATE, DECIMAL, FLOAT, INT, STRING, TIME, mark, time_unit_of
from sinkflow.sql.functions.registry import Builder, error, fill, literal_number, literal_text, register
from sinkflow.sql.parse import DIALECT


# The optional precision and zone change how the value prints, not the instant.
register("now", "DATE_TRUNC('second', GET_CURRENT_TIMESTAMP())", 0, 1, returns=TIME)
register("now64", "DATE_TRUNC('milliseconds', GET_CURRENT_TIMESTAMP())", 0, 2, returns=TIME)
register("today", "CURRENT_DATE", 0, returns=DATE)
for _trunc in ("second", "minute", "hour", "day"):
    register(f"to_start_of_{_trunc}", f"DATE_TRUNC('{_trunc}', {{0}})", 1, returns=TIME)
# Timeplus answers a date for these (weeks start on Monday in both).
for _trunc in ("week", "month", "quarter", "year"):
    register(f"to_start_of_{_trunc}", f"CAST(DATE_TRUNC('{_trunc}', {{0}}) AS DATE)", 1, returns=DATE)


def _to_start_of_interval(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    interval = args[1]
    unit = interval.args.get("unit") if isinstance(interval, exp.Interval) else None
    if unit is None or unit.name.upper() not in ("MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY"):
        raise error("to_start_of_interval takes an interval of milliseconds, seconds, minutes, hours or days "
                     "such as INTERVAL 5 MINUTE", interval)
    # Buckets are aligned to the epoch, as in Timeplus.
    return fill("TIME_BUCKET({1}, {0}, TIMESTAMPTZ '1970-01-01 00:00:00+00')", args)


register("to_start_of_interval", _to_start_of_interval, 2, returns=0)


def _date_trunc(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    unit = _unit_literal(args[0])
    if unit == "microsecond":
        raise error("date_trunc takes year, quarter, month, week, day, hour, minute or second", args[0])
    # A datetime in every case: date_trunc('month', now()) is the first instant of the month.
    return fill(f"DATE_TRUNC('{unit}', CAST({{0}} AS TIMESTAMPTZ))", args[1:2])


register("date_trunc", _date_trunc, 2, returns=TIME)
for _names, _part in (("to_year year", "year"), ("to_quarter quarter", "quarter"), ("to_month month", "month"),
                      ("to_day_of_month day", "day"), ("to_day_of_year day_of_year", "doy"),
                      ("to_day_of_week day_of_week weekday", "isodow"), ("to_hour hour", "hour"),
                      ("to_minute minute", "minute"), ("to_second second", "second")):
    register(_names, f"CAST(DATE_PART('{_part}', {{0}}) AS INTEGER)", 1, returns=INT)


def _to_unix_timestamp(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    value = parse_text_time(args[0], None) if kinds[0] == STRING else args[0]
    return fill("CAST(FLOOR(EPOCH({0})) AS BIGINT)", [value])


register("to_unix_timestamp", _to_unix_timestamp, 1, returns=INT)
register("to_unix_timestamp64_milli", "EPOCH_MS({0})", 1, returns=INT)
register("from_unix_timestamp", "TO_TIMESTAMP({0})", 1, returns=TIME)
register("from_unix_timestamp64_milli", "CAST(EPOCH_MS({0}) AS TIMESTAMPTZ)", 1, returns=TIME)

# Unit names, with the short ones Timeplus documents for date_diff (m is minutes, not months).
_UNITS = {
    "microsecond": "microsecond", "microseconds": "microsecond", "us": "microsecond",
    "millisecond": "millisecond", "milliseconds": "millisecond", "ms": "millisecond",
    "second": "second", "seconds": "second", "s": "second",
    "minute": "minute", "minutes": "minute", "m": "minute",
    "hour": "hour", "hours": "hour", "h": "hour",
    "day": "day", "days": "day", "d": "day",
    "week": "week", "weeks": "week",
    "month": "month", "months": "month",
    "quarter": "quarter", "quarters": "quarter",
    "year": "year", "years": "year",
}


def _unit_literal(node: exp.Expression) -> str:
    text = node.name if isinstance(node, (exp.Var, exp.Literal, exp.Column)) else ""
    unit = _UNITS.get(text.lower())
    if unit is None:
        raise error(f"unknown time unit '{text.lower() or node.sql(DIALECT)}' (use us, ms, second, minute, hour, "
                     "day, week, month, quarter or year)", node)
    return unit


def _date_diff(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    unit = _unit_literal(args[0])
    if unit == "week":
        # Timeplus counts Monday week boundaries crossed; DuckDB's 'week' counts whole weeks.
        return fill("DATE_DIFF('day', DATE_TRUNC('week', {0}), DATE_TRUNC('week', {1})) // 7", args[1:])
    return fill(f"DATE_DIFF('{unit}', {{0}}, {{1}})", args[1:])


def _date_shift(sign: str) -> Builder:
    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        if len(args) == 2:  # date_add(t, INTERVAL 1 SECOND)
            moment, kind, whole_days = args[0], kinds[0], False
            result = fill(f"{{0}} {sign} {{1}}", args)
        else:  # date_add(unit, n, t)
            unit = _unit_literal(args[0])
            moment, kind = args[2], kinds[2]
            whole_days = unit in ("day", "week", "month", "quarter", "year")
            result = fill(f"{{1}} {sign} TO_{unit.upper()}S(CAST({{0}} AS BIGINT))", args[1:])
        if kind == DATE and whole_days:
            return mark(fill("CAST({0} AS DATE)", [result]), DATE)  # a date stays a date
        return mark(result, TIME, time_unit_of(moment))

    return build


register("date_diff", _date_diff, 3, returns=INT)
register("date_add", _date_shift("+"), 2, 3)
register("date_sub", _date_shift("-"), 2, 3)


# format_datetime placeholders that strftime spells differently; the others listed in
# _SAME_SPECIFIERS mean the same in both. %i is ClickHouse's minute, %h its 12-hour hour.
_SPECIFIERS = {"i": "%M", "F": "%Y-%m-%d", "T": "%H:%M:%S", "D": "%m/%d/%y", "c": "%m", "h": "%I", "k": "%H",
               "l": "%I", "n": "\n", "t": "\t", "r": "%I:%M %p", "R": "%H:%M", "W": "%A", "s": "%S"}
_SAME_SPECIFIERS = "YymdHMSjpIuwabVG%"
# Placeholders strftime has no spelling for, as DuckDB expressions of the time {0}.
_COMPUTED_SPECIFIERS = {
    "e": "LPAD(CAST(DAYOFMONTH({0}) AS VARCHAR), 2, ' ')",
    "C": "LPAD(CAST(YEAR({0}) // 100 AS VARCHAR), 2, '0')",
    "Q": "CAST(QUARTER({0}) AS VARCHAR)",
}


_FRACTION_SPECIFIERS = {"ms": "%g", "us": "%f", "ns": "%n"}
# The offset of zone {1} at the time {0}, as +HHMM.
_ZONE_OFFSET = ("LIST_TRANSFORM([CAST(EPOCH(TIMEZONE({1}, CAST({0} AS TIMESTAMPTZ))) - EPOCH(CAST({0} AS TIMESTAMPTZ)) "
                "AS BIGINT)], lambda __tp_off: PRINTF('%s%02d%02d', CASE WHEN __tp_off < 0 THEN '-' ELSE '+' END, "
                "ABS(__tp_off) // 3600, ABS(__tp_off) % 3600 // 60))[1]")


def _format_datetime(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    fmt = literal_text(args[1], "format_datetime's format")
    # The optional third argument is the time zone the wall-clock time is printed in.
    value = fill("TIMEZONE({1}, {0})", [args[0], args[2]]) if len(args) > 2 else args[0]
    parts: list[exp.Expression] = []
    out: list[str] = []

    def flush() -> None:
        if out:
            parts.append(fill("STRFTIME({0}, {1})", [value, exp.Literal.string("".join(out))]))
            out.clear()

    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char == "%" and i + 1 < len(fmt):
            spec = fmt[i + 1]
            if spec == "f":  # the fraction in the digits of the type's precision ('0' for whole seconds)
                out.append(_FRACTION_SPECIFIERS.get(time_unit_of(args[0]) or "s", "0") if kinds[0] == TIME else "0")
            elif spec == "z" and len(args) < 3:
                out.append("+0000")  # times are UTC unless a zone is given
            elif spec == "z":
                flush()
                parts.append(fill(_ZONE_OFFSET, [args[0], args[2]]))
            elif spec in _COMPUTED_SPECIFIERS:
                flush()
                parts.append(fill(_COMPUTED_SPECIFIERS[spec], [value]))
            elif spec not in _SPECIFIERS and spec not in _SAME_SPECIFIERS:
                # Refused rather than printed differently from Timeplus.
                raise error(f"format_datetime: unsupported format specifier '%{spec}'", args[1])
            else:
                out.append(_SPECIFIERS.get(spec, f"%{spec}"))
            i += 2
            continue
        out.append(char)
        i += 1
    flush()
    result = parts[0] if parts else exp.Literal.string("")
    for part in parts[1:]:
        result = exp.DPipe(this=result, expression=part, safe=True)
    return result


register("format_datetime", _format_datetime, 2, 3, returns=STRING)
register("yesterday", "CAST(CURRENT_DATE - 1 AS DATE)", 0, returns=DATE)
# The first instant Timeplus knows (earliest_ts() seeks a streaming query to the start of a stream).
register("earliest_timestamp earliest_ts", "TIMESTAMPTZ '1970-01-01 00:00:00+00'", 0, returns=TIME)
register("to_unix_timestamp64_micro", "EPOCH_US({0})", 1, returns=INT)
register("to_unix_timestamp64_nano", "EPOCH_NS({0})", 1, returns=INT)
register("from_unix_timestamp64_micro", "MAKE_TIMESTAMPTZ(CAST({0} AS BIGINT))", 1, returns=TIME)
register("from_unix_timestamp64_nano", "MAKE_TIMESTAMPTZ(CAST({0} // 1000 AS BIGINT))", 1, returns=TIME)
for _name, _format in (("to_yyyymm", "%Y%m"), ("to_yyyymmdd", "%Y%m%d"), ("to_yyyymmddhhmmss", "%Y%m%d%H%M%S")):
    register(_name, f"CAST(STRFTIME({{0}}, '{_format}') AS UBIGINT)", 1, returns=INT)
for _minutes, _word in ((5, "five"), (10, "ten"), (15, "fifteen")):
    register(f"to_start_of_{_word}_minutes",
             f"TIME_BUCKET(INTERVAL {_minutes} MINUTE, {{0}}, TIMESTAMPTZ '1970-01-01 00:00:00+00')", 1, returns=TIME)
register("to_last_day_of_month", "LAST_DAY({0})", 1, returns=DATE)
# The zone of a datetime only changes how it prints: the instant is the same.
register("to_timezone", "{0}", 2, returns=0)


def _add_unit(unit: str, sign: str) -> Builder:
    """add_<unit>s(t, n[, zone]) / subtract_<unit>s(t, n[, zone]): date_add(unit, n, t) /
    date_sub(unit, n, t); with a zone, days, months and years follow that zone's calendar."""
    shift = _date_shift(sign)

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        if len(args) < 3 or kinds[0] == DATE:  # a date has no zone
            return shift([exp.Var(this=unit), args[1], args[0]], [None, kinds[1], kinds[0]], node)
        wall = fill("TIMEZONE({1}, CAST({0} AS TIMESTAMPTZ))", [args[0], args[2]])  # the zone's wall clock
        shifted = shift([exp.Var(this=unit), args[1], wall], [None, kinds[1], None], node)
        return mark(fill("TIMEZONE({1}, {0})", [shifted, args[2]]), TIME, time_unit_of(args[0]))

    return build


for _unit in ("second", "minute", "hour", "day", "week", "month", "quarter", "year"):
    register(f"add_{_unit}s", _add_unit(_unit, "+"), 2, 3)
    register(f"subtract_{_unit}s", _add_unit(_unit, "-"), 2, 3)

register("month_name", "MONTHNAME({0})", 1, returns=STRING)
register("day_name", "DAYNAME({0})", 1, returns=STRING)


def _make_date(first: int, last: str) -> Builder:
    """make_date(year, month, day) for a type holding years ``first`` up to the date ``last``:
    fractions are dropped, a day past the month's end runs into the next month (1984-02-30 is
    1984-03-01), and a year, month (1..12) or day (1..31) out of range gives 1970-01-01, as in
    Proton."""
    part = "TRUNC(CAST({%d} AS DOUBLE))"
    year, month, day = (part % i for i in range(3))
    made = (f"MAKE_DATE(CAST({year} AS BIGINT), CAST({month} AS BIGINT), 1) + CAST({day} AS INTEGER) - 1")
    template = (f"CASE WHEN {{0}} IS NULL OR {{1}} IS NULL OR {{2}} IS NULL THEN NULL "
                f"WHEN {year} BETWEEN {first} AND {last[:4]} AND {month} BETWEEN 1 AND 12 AND {day} BETWEEN 1 AND 31 "
                f"AND {made} <= DATE '{last}' THEN {made} ELSE DATE '1970-01-01' END")

    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        for arg, kind in zip(args, kinds):
            if kind not in (INT, FLOAT, DECIMAL, BOOL, None):
                raise error("make_date takes numbers for the year, month and day", arg)
        # Booleans count as 0 and 1.
        numbers = [fill("CAST({0} AS TINYINT)", [a]) if k == BOOL else a for a, k in zip(args, kinds)]
        return fill(template, numbers)

    return build


register("make_date", _make_date(1970, "2149-06-06"), 3, returns=DATE)
register("make_date32", _make_date(1900, "2299-12-31"), 3, returns=DATE)


def _make_datetime(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    """``make_datetime(y, mo, d, h, mi, s[, tz])`` / ``make_datetime64(y, mo, d, h, mi, s[, fraction
    [, precision[, tz]]])``: the fraction counts units of the precision (default 3)."""
    parts = [fill("CAST({0} AS BIGINT)", [a]) for a in args[:6]]
    seconds: exp.Expression = parts[5]
    if function_name(node) == "make_datetime64" and len(args) > 6:
        precision = int(args[7].this) if len(args) > 7 and isinstance(args[7], exp.Literal) else 3
        seconds = fill(f"{{0}} + CAST({{1}} AS DOUBLE) / {10 ** precision}", [parts[5], args[6]])
    moment = fill("MAKE_TIMESTAMP({0}, {1}, {2}, {3}, {4}, {5})", [*parts[:5], seconds])
    zone = args[-1] if args and isinstance(args[-1], exp.Literal) and args[-1].is_string and len(args) > 6 else None
    if zone is not None:
        return mark(fill("TIMEZONE({1}, {0})", [moment, zone]), TIME)
    return mark(fill("CAST({0} AS TIMESTAMPTZ)", [moment]), TIME)


register("make_datetime make_datetime64", _make_datetime, 6, 9)


# --- weeks (MySQL's week modes, as Proton's to_week / to_year_week) --------------------------------
def _week_one(year: str, monday_first: bool, four_days: bool, new_year: bool) -> str:
    """DuckDB SQL for the first day of week 1 of ``year`` (SQL): the week holding January 1 when
    ``new_year``, else the first week with 4 or more days of the year (``four_days``) or the
    first week starting in the year."""
    jan1 = f"MAKE_DATE({year}, 1, 1)"
    # Days since the week began (INTEGER: DuckDB adds no BIGINT to a DATE).
    weekday = f"CAST({'ISODOW' if monday_first else 'DAYOFWEEK'}({jan1}) - {1 if monday_first else 0} AS INTEGER)"
    if new_year:
        return f"({jan1} - {weekday})"
    late = f"{weekday} >= 4" if four_days else f"{weekday} <> 0"
    return f"({jan1} + CASE WHEN {late} THEN 7 - {weekday} ELSE -{weekday} END)"


def _week_mode(node: exp.Expression | None) -> int:
    mode = 0 if node is None else literal_number(node, "the week mode")
    if mode != int(mode) or not 0 <= mode <= 9:
        raise error("the week mode must be an integer 0..9", node)
    return int(mode)


def _week_parts(mode: int, year_week: bool) -> tuple[str, str]:
    """DuckDB SQL for the (year, week) of the date ``__tp_day`` in week ``mode``: bit 1 Monday first,
    bit 2 weeks 1..53 (days before week 1 belong to the last week of the year before), bit 4
    (flipped for Sunday-first modes) week 1 starts on the first weekday of the year rather than
    holding 4 days, bit 8 week 1 holds January 1. ``year_week`` counts as bit 2 does."""
    monday_first = bool(mode & 1)
    spans_years = bool(mode & 2) or bool(mode & 8) or year_week
    four_days = not (bool(mode & 4) ^ (not monday_first))
    day, year = "__tp_day", "YEAR(__tp_day)"
    this, before, after = (_week_one(y, monday_first, four_days, bool(mode & 8))
                           for y in (year, f"{year} - 1", f"{year} + 1"))
    if not spans_years:
        return year, f"CASE WHEN {day} < {this} THEN 0 ELSE ({day} - {this}) // 7 + 1 END"
    week = (f"CASE WHEN {day} < {this} THEN ({day} - {before}) // 7 + 1 WHEN {day} >= {after} THEN 1 "
            f"ELSE ({day} - {this}) // 7 + 1 END")
    return f"CASE WHEN {day} < {this} THEN {year} - 1 WHEN {day} >= {after} THEN {year} + 1 ELSE {year} END", week


def _to_week(year_week: bool) -> Builder:
    def build(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
        year, week = _week_parts(_week_mode(args[1] if len(args) > 1 else None), year_week)
        moment = parse_text_time(args[0], None) if kinds[0] == STRING else args[0]
        if len(args) > 2 and kinds[0] != DATE:  # the date in that zone
            moment = fill("TIMEZONE({1}, CAST({0} AS TIMESTAMPTZ))", [moment, args[2]])
        result = f"CAST(({year}) * 100 + ({week}) AS UINTEGER)" if year_week else f"CAST({week} AS UTINYINT)"
        # The date is named once (a one-element list's lambda): the formula uses it a dozen times.
        return fill(f"LIST_TRANSFORM([CAST({{0}} AS DATE)], lambda __tp_day: {result})[1]", [moment])

    return build


register("to_week", _to_week(False), 1, 3, returns=INT)
register("to_year_week", _to_week(True), 1, 3, returns=INT)


# --- modified Julian days (days since 1858-11-17) --------------------------------------------------
register("to_modified_julian_day", "CAST(CAST({0} AS DATE) - DATE '1858-11-17' AS INTEGER)", 1, returns=INT)
register("to_modified_julian_day_or_null", "CAST(TRY_CAST({0} AS DATE) - DATE '1858-11-17' AS INTEGER)", 1,
         returns=INT)
# Days of the years 0000 … 9999 only, as in Proton.
_FROM_MJD = ("CASE WHEN {0} IS NULL THEN NULL WHEN {0} BETWEEN -678941 AND 2973483 "
             "THEN CAST(DATE '1858-11-17' + CAST({0} AS INTEGER) AS DATE) ELSE %s END")
register("from_modified_julian_day",
         _FROM_MJD % "ERROR('the modified Julian day ' || {0} || ' is outside the years 0 to 9999')", 1, returns=DATE)
register("from_modified_julian_day_or_null", _FROM_MJD % "NULL", 1, returns=DATE)

# time_diff(a, b): date_diff('second', a, b); utc_timestamp(): now() (Timeplus's clock is UTC).
register("time_diff", "DATE_DIFF('second', CAST({0} AS TIMESTAMPTZ), CAST({1} AS TIMESTAMPTZ))", 2, returns=INT)
register("utc_timestamp", "DATE_TRUNC('second', GET_CURRENT_TIMESTAMP())", 0, returns=TIME)


def _from_unixtime(args: list[exp.Expression], kinds: list[str | None], node: exp.Expression) -> exp.Expression:
    """from_unixtime(seconds) is a datetime; from_unixtime(x, format[, zone]) is format_datetime's
    text of x (seconds, a date or a datetime)."""
    moment = fill("TO_TIMESTAMP({0})", args[:1]) if kinds[0] in (INT, FLOAT, DECIMAL, None) else args[0]
    if len(args) == 1:
        return mark(moment, TIME, "s")
    return mark(_format_datetime([moment, *args[1:]], [TIME, *kinds[1:]], node), STRING)


register("from_unixtime", _from_unixtime, 1, 3)
