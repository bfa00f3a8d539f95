/**
 * The sinks panel: every sink with its live status, and pause / resume / delete / dead letters.
 *
 * It polls `GET /sinks` (each sink carries its status) every `intervalMs`.
 */

import { h, replaceChildren } from "./dom.js";
import { formatCount, quoteIdent } from "./format.js";

/** States a sink leaves only when restarted. */
const RESTARTABLE = new Set(["failed", "stopped", "finished"]);

export class SinksPanel {
  /**
   * @param {HTMLElement} host
   * @param {import("./api.js").ApiClient} api
   * @param {{onQuery: (sql: string) => void, onError: (message: string) => void, intervalMs?: number}} hooks
   *   `onQuery` runs a query in the editor (the dead-letter stream); `onError` reports a failed action
   */
  constructor(host, api, { onQuery, onError, intervalMs = 2000 }) {
    this.host = host;
    this.api = api;
    this.onQuery = onQuery;
    this.onError = onError;
    this.intervalMs = intervalMs;
    this.sinks = [];
    this.confirming = null; // id of the sink whose delete awaits confirmation
    this.dropDeadLetters = false; // the confirmation's "and its dead letters" checkbox
    this.timer = null;
    this.count = h("span.count");
    this.body = h("tbody");
    this.empty = h("p.empty", {}, "No sinks yet. Run a streaming query and click “Send to…”.");
    host.replaceChildren(
      h("div.panel-head", {}, h("h2", {}, "Sinks ", this.count)),
      h("div.table-wrap", {}, h("table.sinks#sinks-table", {},
        h("thead", {}, h("tr", {}, ["Sink", "State", "Delivered", "Retries", "Dead-lettered", "Lag", "Last error", ""].map((t) =>
          h(["Delivered", "Retries", "Dead-lettered", "Lag"].includes(t) ? "th.num" : "th", {}, t)))),
        this.body)),
      this.empty,
    );
  }

  /** Names of the sinks known now (for unique default names). */
  names() {
    return this.sinks.map((s) => s.name);
  }

  /** Poll until `stop()`. */
  start() {
    this.stop();
    const tick = async () => {
      await this.refresh();
      this.timer = setTimeout(tick, this.intervalMs);
    };
    tick();
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  async refresh() {
    try {
      this.sinks = await this.api.sinks();
    } catch (err) {
      this.onError(`sinks: ${err.message}`);
      return;
    }
    this.render();
  }

  render() {
    this.count.textContent = this.sinks.length ? `(${this.sinks.length})` : "";
    this.empty.hidden = this.sinks.length > 0;
    replaceChildren(this.body, this.sinks.map((sink) => this.row(sink)));
  }

  row(sink) {
    const st = sink.status || {};
    const state = String(st.state || "unknown").toLowerCase();
    const paused = state === "paused";
    const act = (label, action, cls = "") =>
      h(`button.small${cls}`, { type: "button", dataset: { action }, onclick: () => this.act(sink, action) }, label);
    const dropDlq = h("input.drop-dlq", { type: "checkbox", checked: this.dropDeadLetters,
      onchange: (e) => { this.dropDeadLetters = e.target.checked; } });
    const actions = this.confirming === sink.id
      ? [h("span.confirm", {}, "Delete?"),
          h("label.drop-dlq", { title: `also drop the stream ${sink.name}_dlq` }, dropDlq, "and its dead letters"),
          act("Yes, delete", "delete", ".danger"), act("Keep", "keep")]
      : [
          paused ? act("Resume", "resume") : RESTARTABLE.has(state) ? act("Restart", "restart") : act("Pause", "pause"),
          act("Dead letters", "dlq"),
          act("Delete", "ask-delete", ".danger"),
        ];
    return h("tr", { dataset: { sinkId: sink.id, sinkName: sink.name, state } },
      h("td", {}, h("div.sink-name", { title: sink.description || "" }, sink.name), h("span.type-badge", {}, sink.type)),
      h("td", {}, h(`span.state.state-${state}`, { title: st.reason || "" }, state)),
      h("td.num.delivered", {}, formatCount(st.rows_delivered ?? 0)),
      h("td.num.retries", {}, formatCount(st.retries ?? 0)),
      h(st.dead_lettered ? "td.num.dead-lettered.warn" : "td.num.dead-lettered", {}, formatCount(st.dead_lettered ?? 0)),
      h("td.num.lag", {}, formatCount(st.lag ?? 0)),
      h(st.last_error ? "td.last-error" : "td.last-error.none", { title: st.last_error || "" }, st.last_error || "—"),
      h("td", {}, h("div.actions", {}, actions)),
    );
  }

  async act(sink, action) {
    if (action === "ask-delete" || action === "keep") {
      this.confirming = action === "ask-delete" ? sink.id : null;
      this.dropDeadLetters = false;
      this.render();
      return;
    }
    if (action === "dlq") {
      this.onQuery(`SELECT * FROM table(${quoteIdent(`${sink.name}_dlq`)})`);
      return;
    }
    try {
      if (action === "delete") {
        this.confirming = null;
        await this.api.deleteSink(sink.id, this.dropDeadLetters);
      } else {
        await this.api.sinkAction(sink.id, action);
      }
    } catch (err) {
      this.onError(`${action} ${sink.name}: ${err.message}`);
    }
    await this.refresh();
  }
}
