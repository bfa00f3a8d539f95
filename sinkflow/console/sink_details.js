/**
 * A sink's details: its definition (secrets masked by the server), state and its history,
 * counters, the last error with its time, the dead letters, and the way to Edit it.
 *
 * Opened from the sinks panel; refreshed from `GET /sinks/{id}` while it is open.
 */

import { h, replaceChildren } from "./dom.js";
import { formatCount } from "./format.js";
import { Latest, STALE } from "./latest.js";
import { renderHighlighted } from "./sql_highlight.js";

/** `2026-12-03 12:42:13 UTC` from Unix seconds (the server's clock). */
export function formatTime(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC";
}

/**
 * The last error as a user should read it: `{text, past, at}`; `past` once the sink delivered
 * rows after the error (it recovered), so it is not shown as a current failure.
 */
export function lastError(status) {
  const text = status.last_error || "";
  const at = status.last_error_at || null;
  const past = Boolean(text && at && status.last_delivered_at && status.last_delivered_at > at);
  return { text, at, past };
}

/** [dotted name, value] of every property; objects of known properties opened up, headers kept whole. */
function flatProperties(properties, prefix = "") {
  const rows = [];
  for (const [key, value] of Object.entries(properties || {})) {
    const opens = value && typeof value === "object" && !Array.isArray(value) && /^(oauth2|tls)$/.test(key);
    if (opens) rows.push(...flatProperties(value, `${prefix}${key}.`));
    else rows.push([prefix + key, value]);
  }
  return rows;
}

export class SinkDetails {
  /**
   * @param {HTMLDialogElement} dialog
   * @param {import("./api.js").ApiClient} api
   * @param {{onEdit: (sink: object) => void, onDeadLetters: (sink: object) => void, intervalMs?: number}} hooks
   */
  constructor(dialog, api, { onEdit, onDeadLetters, intervalMs = 2000 }) {
    this.dialog = dialog;
    this.api = api;
    this.onEdit = onEdit;
    this.onDeadLetters = onDeadLetters;
    this.intervalMs = intervalMs;
    this.sink = null;
    this.timer = null;
    this.latest = new Latest();
    this.title = h("h2");
    this.body = h("div.details-body");
    dialog.replaceChildren(
      h("header.dialog-head", {}, this.title, h("button.icon", { type: "button", "aria-label": "Close", onclick: () => dialog.close() }, "×")),
      this.body,
    );
    dialog.addEventListener("close", () => clearTimeout(this.timer));
  }

  /** Show sink `id` (or name) and keep it fresh while open. */
  async open(id) {
    this.id = id;
    this.body.replaceChildren(h("p.muted", {}, "loading…"));
    if (!this.dialog.open) this.dialog.showModal();
    await this.refresh();
  }

  async refresh() {
    clearTimeout(this.timer);
    let sink;
    try {
      // Stale: another sink was opened, or the sink was edited, while this answer was on its way.
      sink = await this.latest.of(this.api.sink(this.id));
    } catch (err) {
      replaceChildren(this.body, h("div.form-error", { role: "alert" }, `cannot load the sink: ${err.message}`));
      return;
    }
    if (sink === STALE) return;
    this.sink = sink;
    this.render(this.sink);
    if (this.dialog.open) this.timer = setTimeout(() => this.refresh(), this.intervalMs);
  }

  render(sink) {
    const st = sink.stats || {};
    const state = String(st.state || "unknown").toLowerCase();
    this.title.textContent = `Sink ${sink.name}`;
    const sql = h("pre.sql-view");
    renderHighlighted(sql, sink.query || "");
    const counter = (label, value, cls = "") => h(`div.counter${cls}`, {}, h("span.counter-value", {}, formatCount(value ?? 0)), h("span.counter-label", {}, label));
    const error = lastError(st);
    const errorBox = error.text
      ? h(error.past ? "div.last-error-box.past#sink-last-error" : "div.last-error-box#sink-last-error", {},
          h("div.error-when", {}, error.past ? `Past error, ${formatTime(error.at)} — the sink has delivered since (last at ${formatTime(st.last_delivered_at)})` : `Last error, ${formatTime(error.at)}`),
          h("div.error-text", {}, error.text))
      : h("div.last-error-box.none#sink-last-error", {}, "No error.");
    const history = (st.history || []).slice().reverse();
    replaceChildren(this.body,
      h("div.details-head", {},
        h("span.type-badge", {}, sink.type),
        h(`span.state.state-${state}#sink-state`, { title: st.reason || "" }, state),
        st.reason ? h("span.muted", {}, st.reason) : null,
        st.node ? h("span.muted#sink-node", { title: "the cluster node running this sink" }, `on node ${st.node}`) : null,
        h("span.spacer"),
        h("button.primary#edit-sink", { type: "button", onclick: () => { this.dialog.close(); this.onEdit(sink); } }, "Edit"),
      ),
      sink.description ? h("p.type-about", {}, sink.description) : null,
      h("section.details-section", {}, h("h3", {}, "Counters"),
        h("div.counters#sink-counters", {},
          counter("rows delivered", st.rows_delivered),
          counter("retries", st.retries),
          counter("dead-lettered", st.dead_lettered, st.dead_lettered ? ".warn" : ""),
          counter("rows behind", st.lag),
          counter("rows read", st.rows_read)),
        st.last_delivered_at ? h("p.muted", {}, `last delivery ${formatTime(st.last_delivered_at)}`) : null),
      h("section.details-section", {}, h("h3", {}, "Last error"), errorBox),
      h("section.details-section", {}, h("h3", {}, "Dead letters"),
        h("p", {}, st.dead_lettered
          ? `${formatCount(st.dead_lettered)} row(s) could not be delivered; they are kept in the stream ${sink.name}_dlq with their error.`
          : `None. Rows the destination refuses go to the stream ${sink.name}_dlq.`),
        h("button#sink-dead-letters", { type: "button", onclick: () => { this.dialog.close(); this.onDeadLetters(sink); } }, "Show dead letters")),
      h("section.details-section", {}, h("h3", {}, "Definition"),
        h("div.muted", {}, "query"), sql,
        h("table.props#sink-properties", {}, h("tbody", {}, flatProperties(sink.properties).map(([key, value]) =>
          h("tr", { dataset: { property: key } }, h("th", {}, key),
            h("td", {}, typeof value === "string" ? value : JSON.stringify(value))))))),
      h("section.details-section", {}, h("h3", {}, "State history"),
        h("table.history#sink-history", {},
          h("thead", {}, h("tr", {}, h("th", {}, "since"), h("th", {}, "state"), h("th", {}, "reason"))),
          h("tbody", {}, history.map((entry) => h("tr", {},
            h("td", {}, formatTime(entry.at)), h("td", {}, entry.state), h("td.reason", {}, entry.reason || "")))))),
    );
  }
}
