/**
 * Form fields generated from a sink type's JSON schema (the pydantic property model the API
 * validates with), so the dialog never drifts from the server's rules.
 *
 * What the schema says becomes the field: `required` → marked and always sent; `default` →
 * shown and pre-set (a field left at its default is not sent, the server fills it in);
 * `format: password` or a name in `secrets` → a password field; `format: duration` → a typed
 * duration field; `enum` → a select; booleans → checkboxes; arrays → a list editor; objects with
 * `properties` → a nested group; other objects → key/value rows; anything else → JSON text.
 * Properties named in `templates` get a template box with the query's columns as chips.
 * Labels and help come from `x-label` / `x-help`; the required choices of `x-one-of` (e.g.
 * ClickHouse's `dsn` or `hosts`) and the `x-prominent` properties come first, the rest under
 * "More settings".
 *
 * Editing: given the sink's stored properties (secrets masked), every field starts from its
 * stored value, a secret's field stays empty (kept unless retyped), and `values()` answers only
 * what changed, as a merge patch (`null` puts a property back to its default).
 *
 * The server remains the validator: this form only shapes input and shows the errors it names.
 */

import { h } from "./dom.js";

/** What the server shows instead of a stored secret. */
const MASK = "********";

/** A value the user typed that cannot be sent (e.g. malformed JSON); `property` names the field. */
export class FieldError extends Error {
  constructor(property, message) {
    super(message);
    this.property = property;
  }
}

/** The schema with `$ref` resolved and `anyOf: [X, null]` unwrapped; outer title/default/description win. */
function resolve(root, schema) {
  let s = schema || {};
  const outer = { ...s };
  if (s.$ref) {
    const name = s.$ref.split("/").pop();
    s = { ...((root.$defs || root.definitions || {})[name] || {}) };
    delete outer.$ref;
    s = { ...resolve(root, s), ...outer };
  }
  for (const key of ["anyOf", "oneOf"]) {
    if (Array.isArray(s[key])) {
      const options = s[key].filter((o) => o.type !== "null");
      if (options.length === 1) {
        const rest = { ...s };
        delete rest[key];
        s = { ...resolve(root, options[0]), ...rest, nullable: options.length !== s[key].length };
      }
    }
  }
  if (Array.isArray(s.allOf) && s.allOf.length === 1) {
    const rest = { ...s };
    delete rest.allOf;
    s = { ...resolve(root, s.allOf[0]), ...rest };
  }
  if ("const" in s && !s.enum) s = { ...s, enum: [s.const] };
  return s;
}

function isEmpty(value) {
  return value === undefined || (typeof value === "object" && value !== null && Object.keys(value).length === 0);
}

function describeDefault(schema) {
  const d = schema.default;
  if (d === undefined || d === null || d === "" || isEmpty(d)) return "";
  if (schema.format === "duration" && typeof d === "number") return `${d}s`;
  return typeof d === "object" ? JSON.stringify(d) : String(d);
}

/** The items a list field starts with: a stored list, or "a,b" text (lists may be written so); one empty row when none. */
function listItems(value) {
  const items = Array.isArray(value) ? value : typeof value === "string" ? value.split(",").map((v) => v.trim()).filter(Boolean) : [];
  return items.length ? items : [undefined];
}

function sameValue(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Rows of inputs with add/remove buttons; `makeRow` returns {el, read} for one row. */
function rowsEditor(addLabel, makeRow, initial) {
  const list = h("div.rows");
  const rows = [];
  const add = (value) => {
    const row = makeRow(value);
    const remove = h("button.icon", { type: "button", title: "Remove", "aria-label": "Remove", onclick: () => {
      rows.splice(rows.indexOf(row), 1);
      line.remove();
    } }, "×");
    const line = h("div.row-line", {}, row.el, remove);
    rows.push(row);
    list.append(line);
    return row;
  };
  for (const value of initial) add(value);
  const el = h("div.rows-editor", {}, list, h("button.link", { type: "button", onclick: () => add(undefined).focus() }, addLabel));
  return { el, rows };
}

export class SchemaForm {
  /**
   * @param {object} schema one entry of `GET /sink-types`: a JSON schema plus `secrets`, `secret_headers`,
   *   `credential_pattern` and `templates`
   * @param {{name: string, type: string}[]} columns the query's output columns (template chips)
   * @param {object|null} stored the sink's properties when editing (secrets masked), else null
   */
  constructor(schema, columns, stored = null) {
    this.root = schema;
    this.columns = columns;
    this.stored = stored;
    this.secrets = new Set(schema.secrets || []);
    // Header maps whose credential-like entries (Authorization, X-Api-Key, *token*…) are secrets.
    this.secretHeaders = new Set(schema.secret_headers || []);
    this.credentialName = new RegExp(schema.credential_pattern || "^$", "i");
    this.templates = new Set(schema.templates || []);
    const required = new Set(schema.required || []);
    const prominent = new Set(schema["x-prominent"] || []);
    const choices = schema["x-one-of"] || [];
    const inChoice = new Set(choices.flat(2));
    const properties = schema.properties || {};
    const rank = ([name]) => (required.has(name) ? 0 : this.templates.has(name) ? 1 : prominent.has(name) ? 2 : 3);
    const entries = Object.entries(properties).filter(([name]) => !inChoice.has(name));
    entries.sort((a, b) => rank(a) - rank(b)); // stable: schema order within each group

    this.fields = []; // top-level {name, read}
    const add = (name, host) => {
      const field = this.field(name, properties[name], required.has(name), stored ? stored[name] : undefined);
      this.fields.push({ name, read: field.read, stored: stored ? stored[name] : undefined, default: properties[name].default });
      host.append(field.el);
    };
    const main = h("div.fields");
    const optional = h("div.fields");
    for (const [name] of entries.filter((e) => rank(e) < 3)) add(name, main);
    for (const group of choices) main.append(this.choiceGroup(group, properties, add));
    for (const [name] of entries.filter((e) => rank(e) === 3)) add(name, optional);
    const optionalCount = optional.childElementCount;
    this.more = optionalCount
      ? h("details.more", {}, h("summary", {}, `More settings (${optionalCount}) — defaults apply when left as they are`), optional)
      : null;
    this.element = h("div.schema-form", {}, main, this.more);
  }

  /** A required choice (`[["dsn"], ["hosts", "username", …]]`): one box, the alternatives separated by "or". */
  choiceGroup(group, properties, add) {
    const label = (name) => properties[name]?.["x-label"] || name;
    const box = h("fieldset.one-of", { dataset: { choice: group.map((c) => c[0]).join("|") } },
      h("legend", {}, "Required: ", group.map((c) => label(c[0])).join(" or ")));
    group.forEach((choice, i) => {
      if (i) box.append(h("div.or", {}, "or"));
      const alt = h("div.fields.alternative");
      for (const name of choice) if (name in properties) add(name, alt);
      box.append(alt);
    });
    return box;
  }

  /**
   * The properties to send. Creating: required fields always (when filled), others only when
   * changed from their default. Editing: only what differs from the stored value (a merge patch),
   * `null` for a property cleared back to its default; an empty secret is not sent (kept).
   * @throws {FieldError} when a field holds text that cannot be sent (malformed JSON)
   */
  values() {
    const out = {};
    for (const { name, read, stored } of this.fields) {
      const value = read();
      if (!this.stored) {
        if (value !== undefined) out[name] = value;
      } else if (value === undefined) {
        if (stored !== undefined && !this.secrets.has(name)) out[name] = null;
      } else if (!sameValue(value, stored)) {
        out[name] = value;
      }
    }
    return out;
  }

  /**
   * Show `message` next to the field named by `property` (dotted for nested ones; the nearest
   * enclosing field when the exact one has no input of its own).
   * @returns {boolean} false when no field matches (the caller shows the message elsewhere)
   */
  showError(property, message) {
    const parts = String(property || "").split(".");
    for (let n = parts.length; n > 0; n--) {
      const path = parts.slice(0, n).join(".");
      const field = [...this.element.querySelectorAll(".field")].find((f) => f.dataset.property === path);
      if (!field) continue;
      field.classList.add("invalid");
      field.querySelector(":scope > .field-error").textContent = message;
      if (this.more && this.more.contains(field)) this.more.open = true;
      field.scrollIntoView({ block: "nearest" });
      field.querySelector("input, textarea, select")?.focus();
      return true;
    }
    return false;
  }

  clearErrors() {
    for (const field of this.element.querySelectorAll(".field.invalid")) {
      field.classList.remove("invalid");
      field.querySelector(":scope > .field-error").textContent = "";
    }
  }

  /** One property's field; `stored` is its value when editing. @returns {{el: HTMLElement, read: () => any}} */
  field(path, rawSchema, required, stored = undefined) {
    const schema = resolve(this.root, rawSchema);
    const leaf = path.split(".").pop();
    const isTemplate = this.templates.has(path);
    const isSecret = this.secrets.has(path) || schema.format === "password" || schema.writeOnly === true;
    // Editing starts from the stored value; a stored secret is never shown (the server masks it).
    const start = stored === undefined || (isSecret && stored === MASK) ? schema.default : stored;
    const control = this.control(path, { ...schema, start }, { isTemplate, isSecret, storedSecret: isSecret && stored !== undefined, stored });
    const kind = isTemplate ? "template" : isSecret ? "secret" : schema.format === "duration" ? "duration" : control.kind;
    const defaultText = describeDefault(schema);
    const labelId = `label-${path.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const tag = control.group ? "legend.field-label" : control.id ? "label.field-label" : "div.field-label";
    const label = h(tag, { htmlFor: control.group ? null : control.id || null, id: labelId },
      h("span.prop-label", {}, schema["x-label"] || leaf),
      required ? h("span.required", { title: "required", "aria-label": "required" }, "*") : null,
      h("code.prop-name", { title: "property name in the API and the CLI" }, path),
    );
    const help = schema["x-help"] ?? schema.description;
    const hint = [help, defaultText ? `default: ${defaultText}` : "", schema.format === "duration" ? "e.g. 500ms, 10s, 2m" : ""]
      .filter(Boolean).join(" · ");
    const el = h(control.group ? "fieldset.field.group" : "div.field", {
      dataset: { property: path, kind },
      role: control.group || control.id ? null : "group", "aria-labelledby": control.group || control.id ? null : labelId,
    },
      label,
      control.el,
      hint ? h("div.field-hint", {}, hint) : null,
      h("div.field-error", { role: "alert" }),
    );
    const read = () => {
      const value = control.read();
      if (required) return value === "" ? undefined : value;
      // Not sent while at its default: the server's model fills the default in.
      if (value === undefined || value === "" || sameValue(value, schema.default)) return undefined;
      return value;
    };
    return { el, read, kind };
  }

  /** The input(s) for one property, starting from `schema.start`. @returns {{el, read, kind, id?, group?}} */
  control(path, schema, { isTemplate, isSecret, storedSecret, stored }) {
    const id = `prop-${path.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
    const initial = schema.start;

    if (isTemplate) return this.templateControl(id, initial);
    if (schema.enum) {
      const select = h("select", { id },
        schema.enum.map((v) => h("option", { value: String(v), selected: sameValue(v, initial) }, v === "" ? "(none)" : String(v))));
      return { el: select, id, kind: "choice", read: () => schema.enum.find((v) => String(v) === select.value) };
    }
    if (type === "boolean") {
      const box = h("input", { type: "checkbox", id, checked: initial === true });
      return { el: h("span.checkbox", {}, box), id, kind: "boolean", read: () => box.checked };
    }
    if (type === "integer" || type === "number") {
      const input = h("input", {
        type: "number", id, step: type === "integer" ? "1" : "any",
        min: schema.minimum ?? schema.exclusiveMinimum ?? null, max: schema.maximum ?? schema.exclusiveMaximum ?? null,
        placeholder: schema.default ?? "",
        value: initial !== schema.default && initial !== undefined && initial !== null ? String(initial) : null,
      });
      return { el: input, id, kind: type, read: () => (input.value === "" ? undefined : Number(input.value)) };
    }
    if (type === "string") {
      const input = h("input", {
        id,
        type: isSecret ? "password" : "text",
        autocomplete: isSecret ? "new-password" : "off",
        spellcheck: "false",
        placeholder: storedSecret ? "•••••••• kept unless you type a new one" : describeDefault(schema) || (schema.format === "duration" ? "10s" : ""),
        pattern: schema.format === "duration" && schema.pattern ? schema.pattern.replace(/^\^|\$$/g, "") : null,
        value: !isSecret && initial !== undefined && initial !== null && initial !== schema.default ? String(initial) : null,
      });
      return { el: input, id, kind: schema.format || "text", read: () => input.value.trim() };
    }
    if (type === "array" && ["string", "integer", "number", undefined].includes(resolve(this.root, schema.items).type)) {
      const itemType = resolve(this.root, schema.items).type;
      let first = true; // the first item's input is the one the field's label names
      const { el, rows } = rowsEditor("+ add item", (value) => {
        const input = h("input", { type: itemType === "string" || !itemType ? "text" : "number", value: value ?? "", id: first ? id : null });
        first = false;
        return { el: input, focus: () => input.focus(), read: () => (input.value === "" ? undefined : itemType === "string" || !itemType ? input.value : Number(input.value)) };
      }, listItems(initial)); // one empty row invites the first item
      return {
        el, id, kind: "list",
        read: () => {
          const items = rows.map((r) => r.read()).filter((v) => v !== undefined);
          return items.length ? items : undefined;
        },
      };
    }
    if (type === "object" && schema.properties) {
      const nestedRequired = new Set(schema.required || []);
      const children = Object.entries(schema.properties).map(([name, prop]) => {
        const merged = { ...prop };
        // The parent's default object (e.g. oauth2's) supplies defaults its model may not restate.
        const fallback = schema.default;
        if (fallback && typeof fallback === "object" && name in fallback && !("default" in merged)) merged.default = fallback[name];
        const storedChild = stored && typeof stored === "object" ? stored[name] : undefined;
        return { name, ...this.field(`${path}.${name}`, merged, nestedRequired.has(name), storedChild) };
      });
      return {
        el: h("div.nested", {}, children.map((c) => c.el)),
        group: true,
        kind: "group",
        read: () => {
          const out = {};
          for (const c of children) {
            const v = c.read();
            if (v !== undefined) out[c.name] = v;
          }
          return Object.keys(out).length ? out : undefined;
        },
      };
    }
    if (type === "object") {
      const { el, rows } = rowsEditor("+ add entry", (pair) => {
        const value = h("input.kv-value", { type: "text", autocomplete: "off", placeholder: "value", value: pair ? pair[1] : "" });
        // Some entries are secrets (`http_header.Authorization`, `auth_params.token`): hide their values.
        const mask = () => {
          const name = key.value.trim();
          const secret = this.secrets.has(`${path}.${name}`) || (this.secretHeaders.has(path) && this.credentialName.test(name));
          value.type = secret ? "password" : "text";
        };
        const key = h("input.kv-key", { type: "text", placeholder: "name", value: pair ? pair[0] : "", oninput: mask });
        mask();
        return { el: h("span.kv", {}, key, value), focus: () => key.focus(), read: () => (key.value.trim() ? [key.value.trim(), value.value] : undefined) };
      }, initial && typeof initial === "object" ? Object.entries(initial) : []);
      return {
        el, kind: "key/value",
        read: () => {
          const pairs = rows.map((r) => r.read()).filter(Boolean);
          return pairs.length ? Object.fromEntries(pairs) : undefined;
        },
      };
    }
    // Anything the form does not model (unions, nested arrays): JSON text, parsed here.
    const area = h("textarea.json", {
      id, rows: 2, spellcheck: "false",
      placeholder: schema.default === undefined ? "JSON" : JSON.stringify(schema.default),
      value: initial !== undefined && !sameValue(initial, schema.default) ? JSON.stringify(initial) : "",
    });
    return {
      el: area, id, kind: "json",
      read: () => {
        if (!area.value.trim()) return undefined;
        try {
          return JSON.parse(area.value);
        } catch (err) {
          throw new FieldError(path, `not valid JSON: ${err.message}`);
        }
      },
    };
  }

  /** A template textarea with one chip per query column; a chip inserts `{{ .col }}` at the caret. */
  templateControl(id, initial) {
    const example = this.columns.length ? `e.g. {{ .${this.columns[0].name} }}` : "";
    const area = h("textarea.template", { id, rows: 3, spellcheck: "false", placeholder: example, value: initial || "" });
    const insert = (text) => {
      area.focus();
      area.setRangeText(text, area.selectionStart, area.selectionEnd, "end");
      area.dispatchEvent(new Event("input", { bubbles: true }));
    };
    const chips = h("div.chips", {}, this.columns.map((c) =>
      h("button.chip", { type: "button", title: `insert the ${c.name} column (${c.type})`, dataset: { column: c.name }, onclick: () => insert(`{{ .${c.name} }}`) },
        `{{ .${c.name} }}`)));
    return { el: h("div.template-box", {}, area, chips), id, kind: "template", read: () => area.value };
  }
}
