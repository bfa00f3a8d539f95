/**
 * The sinks panel: every sink with its live status, and pause / resume / delete / dead letters;
 * a sink's name opens its details (`onOpen`).
 *
 * It polls `GET /sinks` (each sink carries its status) and `GET /cluster` every `intervalMs`; in
 * cluster mode it shows the nodes and, in a node column, where each sink runs (cluster_view.js).
 */

import { ClusterView } from "./cluster_view.js";
import { h, replaceChildren } from "./dom.js";
import { formatCount, quoteIdent } from "./format.js";
import { Latest, STALE } from "./latest.js";
import { formatTime, lastError } from "./sink_details.js";

/** Columns of counts (right-aligned). */
const NUMERIC = new Set(["Delivered", "Retries", "Dead-lettered", "Lag"]);

/** States a sink leaves only when restarted. */
const RESTARTABLE = new Set(["failed", "stopped", "finished"]);

export class SinksPanel {
  /**
   * @param {HTMLElement} host
   * @param {import("./api.js").ApiClient} api
   * @param {{onDeadLetters: (sink: object) => void, onOpen: (sink: object) => void, onError: (message: string) => void, intervalMs?: number}} hooks
   *   `onDeadLetters` shows a sink's dead letters; `onOpen` its details; `onError` reports a failed action
   */
  constructor(host, api, { onDeadLetters, onOpen, onError, intervalMs = 2000 }) {
    this.host = host;
    this.api = api;
    this.onDeadLetters = onDeadLetters;
    this.onOpen = onOpen;
    this.onError = onError;
    this.intervalMs = intervalMs;
    this.sinks = [];
    this.confirming = null; // id of the sink whose delete awaits confirmation
    this.dropDeadLetters = false; // the confirmation's "and its dead letters" checkbox
    this.timer = null;
    this.latest = new Latest(); // the poll's answer may arrive after a newer refresh's
    this.count = h("span.count");
    this.clusterView = new ClusterView({ onShowSink: (name) => this.show(name) });
    this.head = h("thead");
    this.body = h("tbody");
    this.empty = h("p.empty", {}, "No sinks yet. Run a streaming query and click “Send to…”.");
    host.replaceChildren(
      this.clusterView.el,
      h("div.panel-head", {}, h("h2", {}, "Sinks ", this.count)),
      h("div.table-wrap", {}, h("table.sinks#sinks-table", {}, this.head, this.body)),
      this.empty,
    );
    this.render();
  }

  /** Names of the sinks known now (for unique default names). */
  names() {
    return this.sinks.map((s) => s.name);
  }

  /** Scroll to the sink (or materialized view) named `name` and highlight its row. */
  show(name) {
    const row = this.body.querySelector(`tr[data-sink-name="${CSS.escape(name)}"]`);
    if (!row) return;
    row.scrollIntoView({ block: "nearest" });
    row.classList.remove("flash");
    void row.offsetWidth; // restart the highlight animation
    row.classList.add("flash");
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
    let answer;
    try {
      answer = await this.latest.of(Promise.all([this.api.sinks(), this.api.cluster()]));
    } catch (err) {
      this.onError(`sinks: ${err.message}`);
      return;
    }
    if (answer === STALE) return;
    const [sinks, cluster] = answer;
    this.sinks = sinks;
    this.clusterView.update(cluster, sinks);
    this.render();
  }

  render() {
    const clustered = this.clusterView.active;
    this.count.textContent = this.sinks.length ? `(${this.sinks.length})` : "";
    this.empty.hidden = this.sinks.length > 0;
    const columns = ["Sink", "State", ...(clustered ? ["Node"] : []), "Delivered", "Retries", "Dead-lettered", "Lag", "Last error", ""];
    replaceChildren(this.head, h("tr", {}, columns.map((t) => h(NUMERIC.has(t) ? "th.num" : "th", {}, t))));
    replaceChildren(this.body, this.sinks.map((sink) => this.row(sink, clustered)));
  }

  row(sink, clustered) {
    const st = sink.stats || {};
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
      h("td", {}, h("button.sink-name.link", { type: "button", title: sink.description || "details and edit", onclick: () => this.onOpen(sink) }, sink.name),
        h("span.type-badge", {}, sink.type),
        (sink.description || "").startsWith("materialized view") ? h("span.kind-badge.kind-materialized_view", {}, "view") : null),
      h("td", {}, h(`span.state.state-${state}`, { title: st.reason || "" }, state)),
      clustered ? this.clusterView.nodeCell(sink) : null,
      h("td.num.delivered", {}, formatCount(st.rows_delivered ?? 0)),
      h("td.num.retries", {}, formatCount(st.retries ?? 0)),
      h(st.dead_lettered ? "td.num.dead-lettered.warn" : "td.num.dead-lettered", {}, formatCount(st.dead_lettered ?? 0)),
      h("td.num.lag", {}, formatCount(st.lag ?? 0)),
      this.errorCell(st),
      h("td", {}, h("div.actions", {}, actions)),
    );
  }

  /** The last error; a past one (delivered since) muted and marked so, each with its time. */
  errorCell(status) {
    const { text, at, past } = lastError(status);
    if (!text) return h("td.last-error.none", {}, "—");
    const when = at ? formatTime(at) : "";
    return h(past ? "td.last-error.past" : "td.last-error", { title: `${past ? "past error (delivered since)" : "last error"} ${when}: ${text}` },
      past ? `past · ${text}` : text);
  }

  async act(sink, action) {
    if (action === "ask-delete" || action === "keep") {
      this.confirming = action === "ask-delete" ? sink.id : null;
      this.dropDeadLetters = false;
      this.render();
      return;
    }
    if (action === "dlq") {
      this.onDeadLetters(sink);
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

/** The query that lists a sink's dead letters. */
export function deadLetterQuery(sink) {
  return `SELECT * FROM table(${quoteIdent(`${sink.name}_dlq`)})`;
}
