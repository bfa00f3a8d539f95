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
 *
 * The server remains the validator: this form only shapes input and shows the errors it names.
 */

import { h } from "./dom.js";

/** A header name suggesting a credential: the same rule as sinkflow/sinks/credentials.py. */
const CREDENTIAL_NAME = /auth|cookie|token|key|secret|passw|pwd|credential|session|signature|^sig$|^x-amz-|jwt|bearer/i;

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
   * @param {object} schema one entry of `GET /sink-types`: a JSON schema plus `secrets` and `templates`
   * @param {{name: string, type: string}[]} columns the query's output columns (template chips)
   */
  constructor(schema, columns) {
    this.root = schema;
    this.columns = columns;
    this.secrets = new Set(schema.secrets || []);
    // Header maps whose credential-like headers are secrets (the server's rule, any case).
    this.secretHeaders = new Set(schema.secret_headers || []);
    this.templates = new Set(schema.templates || []);
    const required = new Set(schema.required || []);
    const entries = Object.entries(schema.properties || {});
    const rank = ([name]) => (required.has(name) ? 0 : this.templates.has(name) ? 1 : 2);
    entries.sort((a, b) => rank(a) - rank(b)); // stable: schema order within each group

    this.fields = []; // top-level {name, read}
    const main = h("div.fields");
    const optional = h("div.fields");
    for (const [name, prop] of entries) {
      const field = this.field(name, prop, required.has(name));
      this.fields.push({ name, read: field.read });
      (rank([name]) < 2 ? main : optional).append(field.el);
    }
    const optionalCount = optional.childElementCount;
    this.more = optionalCount
      ? h("details.more", {}, h("summary", {}, `Optional properties (${optionalCount}) — defaults apply when left as they are`), optional)
      : null;
    this.element = h("div.schema-form", {}, main, this.more);
  }

  /**
   * The properties to send: required fields always (when filled), others only when changed.
   * @throws {FieldError} when a field holds text that cannot be sent (malformed JSON)
   */
  values() {
    const out = {};
    for (const { name, read } of this.fields) {
      const value = read();
      if (value !== undefined) out[name] = value;
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

  /** One property's field. @returns {{el: HTMLElement, read: () => any}} */
  field(path, rawSchema, required) {
    const schema = resolve(this.root, rawSchema);
    const leaf = path.split(".").pop();
    const isTemplate = this.templates.has(path);
    const isSecret = this.secrets.has(path) || schema.format === "password" || schema.writeOnly === true;
    const control = this.control(path, schema, { isTemplate, isSecret });
    const kind = isTemplate ? "template" : isSecret ? "secret" : schema.format === "duration" ? "duration" : control.kind;
    const defaultText = describeDefault(schema);
    const label = h("label.field-label", { htmlFor: control.id || null },
      h("span.prop-name", {}, leaf),
      required ? h("span.required", { title: "required" }, "*") : null,
      h("span.kind", {}, kind),
    );
    const hint = [schema.description, defaultText ? `default: ${defaultText}` : "", schema.format === "duration" ? "e.g. 500ms, 10s, 2m" : ""]
      .filter(Boolean).join(" · ");
    const el = h(control.group ? "fieldset.field.group" : "div.field", { dataset: { property: path, kind } },
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
    return { el, read };
  }

  /** The input(s) for one property. @returns {{el, read, kind, id?, group?}} */
  control(path, schema, { isTemplate, isSecret }) {
    const id = `prop-${path.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
    const initial = schema.default;

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
        placeholder: initial ?? "",
      });
      return { el: input, id, kind: type, read: () => (input.value === "" ? undefined : Number(input.value)) };
    }
    if (type === "string") {
      const input = h("input", {
        id,
        type: isSecret ? "password" : "text",
        autocomplete: isSecret ? "new-password" : "off",
        spellcheck: "false",
        placeholder: describeDefault(schema) || (schema.format === "duration" ? "10s" : ""),
        pattern: schema.format === "duration" && schema.pattern ? schema.pattern.replace(/^\^|\$$/g, "") : null,
      });
      return { el: input, id, kind: schema.format || "text", read: () => input.value.trim() };
    }
    if (type === "array" && ["string", "integer", "number", undefined].includes(resolve(this.root, schema.items).type)) {
      const itemType = resolve(this.root, schema.items).type;
      const { el, rows } = rowsEditor("+ add item", (value) => {
        const input = h("input", { type: itemType === "string" || !itemType ? "text" : "number", value: value ?? "" });
        return { el: input, focus: () => input.focus(), read: () => (input.value === "" ? undefined : itemType === "string" || !itemType ? input.value : Number(input.value)) };
      }, Array.isArray(initial) && initial.length ? initial : [undefined]); // one empty row invites the first item
      return {
        el, kind: "list",
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
        if (initial && typeof initial === "object" && name in initial && !("default" in merged)) merged.default = initial[name];
        return { name, ...this.field(`${path}.${name}`, merged, nestedRequired.has(name)) };
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
        const secret = (name) => this.secrets.has(`${path}.${name}`) || (this.secretHeaders.has(path) && CREDENTIAL_NAME.test(name));
        const mask = () => { value.type = secret(key.value.trim()) ? "password" : "text"; };
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
    const area = h("textarea.json", { id, rows: 2, spellcheck: "false", placeholder: initial === undefined ? "JSON" : JSON.stringify(initial) });
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
