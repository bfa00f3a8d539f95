/**
 * "Send to…": turn the running query into a sink; and "Edit": the same form for a sink that exists.
 *
 * Lists the destinations the server offers (`GET /sink-types`), shows the chosen one's
 * properties as a generated form, and creates the sink with `POST /sinks`. Editing prefills the
 * form from the sink (secrets stay masked and are kept unless retyped) and sends only what
 * changed with `PATCH /sinks/{id}`. A 400 naming a `property` is shown next to that field; other
 * errors at the top of the form. A bounded query (`table(...)`) is refused by the server until
 * the user confirms, here, that the sink should send the stored rows once and stop. Existing
 * external streams are destinations too: choosing one creates
 * `CREATE MATERIALIZED VIEW name INTO external_stream AS <query>`.
 */

import { ApiError } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { FieldError, SchemaForm } from "./schema_form.js";
import { quoteIdent } from "./format.js";
import { renderHighlighted } from "./sql_highlight.js";

/** The type of a "Send to…" destination that is an existing external stream: this prefix + its name. */
const EXTERNAL = "external:";

/** Destinations in the order and with the names the console shows (unknown types follow, by name). */
const DESTINATIONS = [
  ["slack", "Slack", "a message per row to a channel"],
  ["email", "E-mail", "an e-mail per row over SMTP"],
  ["webhook", "Webhook", "trigger an action per row"],
  ["http", "HTTP", "call any HTTP API per row"],
  ["kafka", "Kafka", "JSON documents on a topic"],
  ["pulsar", "Pulsar", "messages on a topic"],
  ["clickhouse", "ClickHouse", "rows into a table"],
  ["snowflake", "Snowflake", "rows into a table"],
  ["timeplus", "Stream", "append to a sinkflow stream"],
];

/** The first stream a query reads (`from tumble(car_live_data, 2s)` → car_live_data), for a default name. */
function sourceName(sql) {
  const m = /\bfrom\s+(?:(?:tumble|hop|session|table|dedup)\s*\(\s*)?`?([A-Za-z_][A-Za-z0-9_]*)/i.exec(sql);
  return m ? m[1] : "query";
}

export class SendDialog {
  /**
   * @param {HTMLDialogElement} dialog
   * @param {import("./api.js").ApiClient} api
   * @param {{onCreated: (sink: object) => void, existingNames: () => string[]}} hooks
   */
  constructor(dialog, api, { onCreated, existingNames }) {
    this.dialog = dialog;
    this.api = api;
    this.onCreated = onCreated;
    this.existingNames = existingNames;
    this.types = null; // cached GET /sink-types
    this.typeList = h("nav.dest-list", { "aria-label": "Destinations" });
    this.sqlView = h("pre.sql-view");
    this.nameInput = h("input#sink-name", { type: "text", spellcheck: "false", autocomplete: "off" });
    this.descriptionInput = h("input#sink-description", { type: "text", placeholder: "optional" });
    this.propsHost = h("div.props");
    this.formError = h("div.form-error#send-error", { role: "alert", hidden: true });
    this.boundedText = h("p");
    this.bounded = h("div.bounded-warning#bounded-warning", { role: "alert", hidden: true },
      h("strong", {}, "This query is bounded. "), this.boundedText,
      h("button#confirm-bounded", { type: "button", onclick: () => this.submit(true) }, "Send the stored rows once"));
    this.createButton = h("button.primary#create-sink", { type: "submit" }, "Create sink");
    this.title = h("h2", {}, "Send results to…");
    const simpleField = (property, label, input) =>
      h("div.field", { dataset: { property } }, h("label.field-label", { htmlFor: input.id }, h("span.prop-name", {}, label)), input, h("div.field-error", { role: "alert" }));
    this.form = h("form.send-form", { novalidate: true, onsubmit: (e) => { e.preventDefault(); this.submit(false); } },
      h("div.fields.basics", {},
        simpleField("name", "sink name", this.nameInput),
        simpleField("description", "description", this.descriptionInput)),
      h("div.field", { dataset: { property: "sql" } }, h("div.field-label", {}, h("span.prop-name", {}, "query")), this.sqlView, h("div.field-error", { role: "alert" })),
      this.formError,
      this.bounded,
      this.propsHost,
      h("footer.dialog-actions", {},
        h("button", { type: "button", onclick: () => this.dialog.close() }, "Cancel"),
        this.createButton),
    );
    dialog.replaceChildren(
      h("header.dialog-head", {}, this.title, h("button.icon", { type: "button", "aria-label": "Close", onclick: () => dialog.close() }, "×")),
      h("div.send-body", {}, this.typeList, this.form),
    );
  }

  /**
   * Open the dialog for a running query.
   * @param {{sql: string, columns: {name: string, type: string}[]}} query
   */
  async open({ sql, columns }) {
    this.editing = null;
    this.sql = sql;
    this.columns = columns;
    await this.show("");
  }

  /**
   * Open the form prefilled with an existing sink, to change it.
   * @param {object} sink the sink as `GET /sinks/{id}` answers it (secrets masked)
   */
  async edit(sink) {
    this.editing = sink;
    this.sql = sink.query;
    try {
      this.columns = await this.api.queryColumns(sink.query); // the template chips, as when it was created
    } catch {
      this.columns = []; // the form works without chips; saving reports what is wrong with the query
    }
    await this.show(sink.description || "");
  }

  async show(description) {
    renderHighlighted(this.sqlView, this.sql.trim());
    this.descriptionInput.value = description;
    this.nameInput.readOnly = Boolean(this.editing);
    this.createButton.textContent = this.editing ? "Save changes" : "Create sink";
    this.showError("");
    this.dialog.showModal();
    if (!this.types) {
      try {
        this.types = await this.api.sinkTypes();
      } catch (err) {
        this.showError(`cannot load the destinations: ${err.message}`);
        return;
      }
    }
    const known = DESTINATIONS.filter(([type]) => type in this.types);
    const others = Object.keys(this.types).filter((t) => !DESTINATIONS.some(([d]) => d === t)).sort().map((t) => [t, t, ""]);
    let externals = [];
    if (!this.editing) {
      try {
        externals = (await this.api.statement("SHOW EXTERNAL STREAMS")).rows
          .map((r) => [`${EXTERNAL}${r.name}`, `→ ${r.name}`, `external ${r.kind === "external_table" ? "table" : "stream"} (${r.type})`]);
      } catch (err) {
        this.showError(`cannot list the external streams: ${err.message}`);
      }
    }
    // An existing sink keeps its destination: only that one is listed.
    const listed = [...known, ...others, ...externals].filter(([type]) => !this.editing || type === this.editing.type);
    replaceChildren(this.typeList, listed.map(([type, label, blurb]) =>
      h("button.dest", { type: "button", "aria-pressed": "false", dataset: { sinkType: type }, onclick: () => this.choose(type) },
        h("span.dest-name", {}, label), h("span.dest-blurb", {}, blurb))));
    if (this.editing) this.choose(this.editing.type);
    else this.choose(this.type && this.type in this.types ? this.type : (known[0] || others[0])[0]);
  }

  /** Show the form for destination `type`. */
  choose(type) {
    this.type = type;
    for (const b of this.typeList.querySelectorAll(".dest")) {
      const chosen = b.dataset.sinkType === type;
      b.classList.toggle("active", chosen);
      b.setAttribute("aria-pressed", String(chosen));
    }
    if (type.startsWith(EXTERNAL)) return this.chooseExternal(type.slice(EXTERNAL.length));
    const label = (DESTINATIONS.find(([t]) => t === type) || [type, type])[1];
    this.title.textContent = this.editing ? `Edit sink ${this.editing.name} (${label})` : `Send results to ${label}`;
    this.schemaForm = new SchemaForm(this.types[type], this.columns, this.editing ? this.editing.properties : null);
    const about = this.types[type]["x-about"] || "";
    this.propsHost.replaceChildren(about ? h("p.type-about", {}, about) : "", this.schemaForm.element);
    this.nameInput.value = this.editing ? this.editing.name : this.defaultName(type);
    this.clearErrors();
  }

  /** Send to the existing external stream `name`: its settings are already stored, no form. */
  chooseExternal(name) {
    this.title.textContent = `Send results to ${name}`;
    this.schemaForm = null;
    this.propsHost.replaceChildren(h("p.type-about", {},
      `Creates a materialized view writing every result row into the external stream ${name} (its settings as created).`));
    this.nameInput.value = this.defaultName(name);
    this.clearErrors();
  }

  /** `<stream>_to_<type>`, numbered when a sink of that name exists. */
  defaultName(type) {
    const base = `${sourceName(this.sql)}_to_${type}`;
    const taken = new Set(this.existingNames());
    let name = base;
    for (let n = 2; taken.has(name); n++) name = `${base}_${n}`;
    return name;
  }

  clearErrors() {
    this.showError("");
    this.bounded.hidden = true;
    this.schemaForm?.clearErrors();
    for (const field of this.form.querySelectorAll(".basics .field.invalid, [data-property=sql].invalid")) {
      field.classList.remove("invalid");
      field.querySelector(".field-error").textContent = "";
    }
  }

  showError(message) {
    this.formError.textContent = message;
    this.formError.hidden = !message;
  }

  /** Show an error next to the field it names, or at the top of the form. */
  showFieldError(property, message) {
    const basic = this.form.querySelector(`:scope > .basics > [data-property="${CSS.escape(property || "")}"], :scope > [data-property="${CSS.escape(property || "")}"]`);
    if (basic) {
      basic.classList.add("invalid");
      basic.querySelector(".field-error").textContent = message;
      return;
    }
    if (!property || !this.schemaForm?.showError(property, message)) this.showError(message);
  }

  /** Create the sink, or save the changes of the one being edited. */
  async submit(confirmBounded) {
    this.clearErrors();
    let properties;
    try {
      properties = this.schemaForm ? this.schemaForm.values() : {};
    } catch (err) {
      if (err instanceof FieldError) return this.showFieldError(err.property, err.message);
      throw err;
    }
    const name = this.nameInput.value.trim();
    if (!name) return this.showFieldError("name", "a sink needs a name");
    const description = this.descriptionInput.value.trim();
    this.createButton.disabled = true;
    try {
      let sink;
      const external = this.type.startsWith(EXTERNAL) ? this.type.slice(EXTERNAL.length) : null;
      if (this.editing) {
        const change = { properties };
        if (description !== (this.editing.description || "")) change.description = description;
        sink = await this.api.patchSink(this.editing.id, change, confirmBounded);
      } else if (external) {
        sink = await this.createView(name, external);
      } else {
        sink = await this.api.createSink({ name, description, sql: this.sql, type: this.type, properties }, confirmBounded);
      }
      this.dialog.close();
      this.onCreated(sink, Boolean(this.editing));
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (err.code === "BOUNDED_QUERY") {
        this.boundedText.textContent = err.message.replace(/\. To create it anyway.*$/, ".");
        this.bounded.hidden = false;
        this.bounded.scrollIntoView({ block: "nearest" });
      } else if (err.position) {
        this.showFieldError("sql", `line ${err.position.line}, column ${err.position.column}: ${err.message}`);
      } else {
        this.showFieldError(err.property, err.message);
      }
    } finally {
      this.createButton.disabled = false;
    }
  }

  /** `CREATE MATERIALIZED VIEW name INTO external AS <query>`; the sink it is, as the API shows it. */
  async createView(name, external) {
    const sql = `CREATE MATERIALIZED VIEW ${quoteIdent(name)} INTO ${quoteIdent(external)} AS\n${this.sql.trim().replace(/;\s*$/, "")}`;
    try {
      await this.api.statement(sql);
    } catch (err) {
      // Positions point into the generated statement; the query starts on its second line.
      if (err instanceof ApiError && err.position) err.position = { ...err.position, line: err.position.line - 1 };
      throw err;
    }
    return (await this.api.sinks()).find((s) => s.name === name) || { name };
  }
}
