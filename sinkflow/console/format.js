/**
 * Column types and value formatting, shared by the result table, the chart and the dialogs.
 *
 * Types are Timeplus spellings as the API reports them: `float64`, `nullable(int32)`,
 * `decimal(10, 2)`, `datetime64(3, 'UTC')`, `low_cardinality(string)`, `array(string)`.
 */

/** The type without `nullable(...)` / `low_cardinality(...)` wrappers, lower-cased. */
export function baseType(type) {
  let t = String(type || "").trim().toLowerCase();
  for (;;) {
    const m = /^(nullable|low_cardinality|lowcardinality)\((.*)\)$/.exec(t);
    if (!m) return t;
    t = m[2].trim();
  }
}

/** True for integer, float and decimal types (values a chart can plot). */
export function isNumericType(type) {
  return /^(u?int\d*|float\d*|double|decimal\b.*)/.test(baseType(type));
}

/** True for date and datetime types. */
export function isTimeType(type) {
  return /^(date|datetime)/.test(baseType(type));
}

/** True for string-like types (candidate chart keys such as `cid`). */
export function isStringType(type) {
  return /^(string|uuid|fixed_string|enum)/.test(baseType(type));
}

/**
 * Milliseconds since the epoch for a time value from the API (ISO-8601 text with offset,
 * `2022-01-23 10:00:00.123`, or a number of ms); NaN when it is not a time.
 */
export function timeMs(value) {
  if (typeof value === "number") return value;
  if (typeof value !== "string") return NaN;
  let text = value.trim().replace(" ", "T");
  // A time without an offset is the server's UTC, as Timeplus prints it.
  if (!/(Z|[+-]\d\d:?\d\d)$/.test(text) && /T\d/.test(text)) text += "Z";
  return Date.parse(text);
}

const NUMBER = new Intl.NumberFormat("en-US", { maximumFractionDigits: 3 });

/**
 * A value as the table shows it, the way Timeplus prints it: datetimes as
 * `2022-01-23 10:00:00.123` (UTC), numbers as the server sent them (its shortest round-trip
 * text: a float32 126.95 is `126.95`, as in what sinks deliver; never rounded here, so the
 * table and the destination agree), JSON for arrays/objects.
 */
export function formatValue(value, type) {
  if (value === null || value === undefined) return "null";
  if (isTimeType(type) && typeof value === "string") {
    const ms = timeMs(value);
    if (!Number.isNaN(ms)) {
      const iso = new Date(ms).toISOString(); // 2022-01-23T10:00:00.123Z
      return /^date$/.test(baseType(type)) ? iso.slice(0, 10) : iso.slice(0, 23).replace("T", " ");
    }
    return value;
  }
  if (typeof value === "number") return String(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** A count with thousands separators. */
export function formatCount(n) {
  return NUMBER.format(n);
}

/** SQL identifier quoting, only when the name needs it (Timeplus uses backticks). */
export function quoteIdent(name) {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : "`" + name.replace(/`/g, "``") + "`";
}
