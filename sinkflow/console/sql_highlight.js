/**
 * A small SQL tokenizer for the editor's highlighting (Timeplus dialect).
 *
 * It never fails: any character it does not recognise becomes a one-character "other"
 * token, so the highlighted text is always exactly the editor's text.
 */

const KEYWORDS = new Set(`
  select from where group by order having limit offset as and or not in is null like ilike between
  case when then else end distinct all union join left right inner outer full cross on using with
  asc desc insert into values create drop stream streams table view materialized show describe
  explain if exists emit changes periodic after watermark delay settings interval true false
  partition over seek_to external random default primary key array tuple map
  second seconds minute minutes hour hours day days
`.split(/\s+/).filter(Boolean));

// Order matters: comments and strings before operators, durations (`2s`) before plain numbers.
const RULES = [
  ["space", /\s+/y],
  ["comment", /--[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/y],
  ["string", /'(?:[^'\\]|\\[\s\S]|'')*(?:'|$)/y],
  ["ident", /`(?:[^`]|``)*(?:`|$)|"(?:[^"]|"")*(?:"|$)/y],
  ["number", /\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ns|us|ms|s|m|h|d|w|y)?\b/iy],
  ["word", /[A-Za-z_][A-Za-z0-9_]*/y],
  ["operator", /<=|>=|<>|!=|==|\|\||::|[-+*/%=<>!]/y],
  ["punct", /[(),.;[\]{}]/y],
];

/**
 * Split `sql` into tokens.
 * @returns {{type: string, text: string, start: number}[]} types: space, comment, string, ident,
 *   number, keyword, function, word, operator, punct, other
 */
export function tokenize(sql) {
  const tokens = [];
  let pos = 0;
  while (pos < sql.length) {
    let matched = null;
    for (const [type, re] of RULES) {
      re.lastIndex = pos;
      const m = re.exec(sql);
      if (m && m[0].length) {
        matched = { type, text: m[0], start: pos };
        break;
      }
    }
    if (!matched) matched = { type: "other", text: sql[pos], start: pos };
    if (matched.type === "word") {
      if (KEYWORDS.has(matched.text.toLowerCase())) matched.type = "keyword";
      else if (/^\s*\(/.test(sql.slice(pos + matched.text.length, pos + matched.text.length + 20))) matched.type = "function";
    }
    tokens.push(matched);
    pos += matched.text.length;
  }
  return tokens;
}

/** Offset in `text` of a 1-based (line, column); clamped to the text. */
export function offsetOf(text, line, column) {
  let offset = 0;
  for (let l = 1; l < line; l++) {
    const next = text.indexOf("\n", offset);
    if (next < 0) return text.length;
    offset = next + 1;
  }
  const lineEnd = text.indexOf("\n", offset);
  const lineLength = (lineEnd < 0 ? text.length : lineEnd) - offset;
  return offset + Math.min(Math.max(column - 1, 0), lineLength);
}

/**
 * Fill `target` with highlighted spans for `sql`.
 * @param {HTMLElement} target
 * @param {string} sql
 * @param {number|null} errorOffset when set, the token at this offset is marked as the error
 *   (a zero-width mark at the end of the text when the error is there, e.g. "unexpected end")
 */
export function renderHighlighted(target, sql, errorOffset = null) {
  const fragment = document.createDocumentFragment();
  let marked = false;
  for (const token of tokenize(sql)) {
    const span = document.createElement("span");
    span.className = `tok-${token.type}`;
    span.textContent = token.text;
    const end = token.start + token.text.length;
    if (errorOffset !== null && !marked && errorOffset >= token.start && errorOffset < end && token.type !== "space") {
      span.classList.add("tok-error");
      marked = true;
    }
    fragment.append(span);
  }
  if (errorOffset !== null && !marked) {
    const span = document.createElement("span");
    span.className = "tok-error tok-error-gap";
    span.textContent = " ";
    fragment.append(span);
  }
  // A trailing newline in a <pre> collapses; a final space keeps the last line's height.
  fragment.append("\n ");
  target.replaceChildren(fragment);
}
