/**
 * The streams list: names, columns with types, row counts; clicking a name queries the stream.
 * External streams and views are listed too, marked with their kind (from `SHOW STREAMS`);
 * a materialized view's badge points at its row in the sinks panel.
 *
 * It polls `GET /streams` every `intervalMs` so row counts stay current.
 */

import { h, replaceChildren } from "./dom.js";
import { formatCount, quoteIdent } from "./format.js";
import { Latest, STALE } from "./latest.js";

export class StreamsPanel {
  /**
   * @param {HTMLElement} host
   * @param {import("./api.js").ApiClient} api
   * @param {{onQuery: (sql: string) => void, onError: (message: string) => void, onShowSink?: (name: string) => void, intervalMs?: number}} hooks
   */
  constructor(host, api, { onQuery, onError, onShowSink = () => {}, intervalMs = 5000 }) {
    this.api = api;
    this.onShowSink = onShowSink;
    this.onQuery = onQuery;
    this.onError = onError;
    this.intervalMs = intervalMs;
    this.expanded = new Set();
    this.seen = new Set();
    this.latest = new Latest(); // the poll's answer may arrive after a newer refresh's
    this.list = h("ul.stream-list#stream-list");
    host.replaceChildren(h("div.panel-head", {}, h("h2", {}, "Streams")), this.list);
  }

  start() {
    const tick = async () => {
      await this.refresh();
      this.timer = setTimeout(tick, this.intervalMs);
    };
    tick();
  }

  async refresh() {
    let answer;
    try {
      answer = await this.latest.of(Promise.all([this.api.streams(), this.api.statement("SHOW STREAMS")]));
    } catch (err) {
      this.onError(`streams: ${err.message}`);
      return;
    }
    if (answer === STALE) return;
    let [streams, kinds] = answer;
    const kindOf = new Map(kinds.rows.map((r) => [r.name, r.type]));
    const listed = new Set(streams.map((s) => s.name));
    // External streams that nothing reads yet, and plain views, have no stored rows.
    const others = kinds.rows.filter((r) => !listed.has(r.name)).map((r) => ({ name: r.name, columns: [], row_count: null }));
    streams = [...streams, ...others].map((s) => ({ ...s, kind: kindOf.get(s.name) || "stream" }));
    for (const s of streams) {
      // Columns start unfolded for the first few streams the page sees, folded after that.
      if (!this.seen.has(s.name) && this.seen.size < 3) this.expanded.add(s.name);
      this.seen.add(s.name);
    }
    // Internal streams (sinks' dead letters) come after the user's, under their own heading.
    const own = streams.filter((s) => !s.internal);
    const internal = streams.filter((s) => s.internal);
    replaceChildren(this.list, [
      ...(own.length ? own.map((s) => this.item(s)) : [h("li.empty", {}, "no streams")]),
      ...(internal.length
        ? [h("li.stream-group", { title: "streams sinkflow keeps for sinks" }, "Dead letters"),
           ...internal.map((s) => this.item(s))]
        : []),
    ]);
  }

  item(stream) {
    const open = this.expanded.has(stream.name);
    const toggle = h("button.twisty", {
      type: "button", "aria-expanded": String(open), title: open ? "hide columns" : "show columns",
      onclick: () => {
        if (open) this.expanded.delete(stream.name); else this.expanded.add(stream.name);
        this.refresh();
      },
    }, open ? "▾" : "▸");
    const query = h("button.stream-name", {
      type: "button", title: `SELECT * FROM ${stream.name}`,
      onclick: () => this.onQuery(`SELECT * FROM ${quoteIdent(stream.name)}`),
    }, stream.name);
    const columns = open
      ? h("ul.columns", {}, stream.columns.map((c) =>
          h("li", c.name === stream.event_time_column ? { className: "event-time", title: "event time column" } : {},
            h("span.col-name", {}, c.name), h("span.col-type", {}, c.type))))
      : null;
    const kind = stream.kind === "stream" ? null : stream.kind === "materialized_view"
      ? h("button.kind-badge.kind-materialized_view", { type: "button", title: "show it in the sinks panel",
          onclick: () => this.onShowSink(stream.name) }, "view")
      : h(`span.kind-badge.kind-${stream.kind}`, {}, stream.kind.replace("_", " "));
    const count = stream.row_count === null ? null : h("span.row-count", { title: "rows" }, formatCount(stream.row_count ?? 0));
    return h("li.stream", { dataset: { stream: stream.name, kind: stream.kind }, title: stream.description || "" },
      h("div.stream-head", {}, toggle, query, kind, count),
      columns);
  }
}
