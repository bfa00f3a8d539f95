/**
 * The cluster as the sinks panel shows it (cluster mode only): a table of the nodes — id,
 * address, alive or down, the sinks each runs, the age of its last heartbeat — and, for each
 * sink, the node running it, with the node it came from when it moved.
 *
 * It renders what the panel's poll of `GET /cluster` and `GET /sinks` answered; in the embedded
 * mode (`{"mode": "embedded"}`) it shows nothing and the panel shows no node column.
 */

import { h, replaceChildren } from "./dom.js";

/** How long a sink's row says which node it moved from. */
const MOVE_SHOWN_MS = 5 * 60 * 1000;

/** `0.4 s`, `12 s`, `3 min` */
function formatAge(seconds) {
  if (seconds === undefined || seconds === null) return "";
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 120) return `${Math.round(seconds)} s`;
  return `${Math.round(seconds / 60)} min`;
}

export class ClusterView {
  /**
   * @param {{onShowSink: (name: string) => void}} hooks `onShowSink` brings a sink's row into view
   */
  constructor({ onShowSink }) {
    this.onShowSink = onShowSink;
    this.cluster = null;
    this.placed = new Map(); // sink id → the node last seen running it
    this.moves = new Map(); // sink id → {from, to, at} of its last move seen
    this.name = h("span.cluster-name");
    this.summary = h("span.muted.cluster-summary");
    this.body = h("tbody");
    this.el = h("div.cluster-view#cluster-view", { hidden: true },
      h("div.panel-head", {}, h("h2", {}, "Cluster ", this.name), this.summary),
      h("div.table-wrap", {}, h("table.nodes#nodes-table", {},
        h("thead", {}, h("tr", {}, ["Node", "Address", "State", "Sinks", "Last heartbeat"].map((t) => h("th", {}, t)))),
        this.body)));
  }

  /** True in cluster mode (the panel then shows a node column). */
  get active() {
    return this.cluster?.mode === "cluster";
  }

  /**
   * Show `cluster` (the answer of `GET /cluster`) and note the sinks of `sinks` (of `GET /sinks`)
   * that moved to another node since the previous call.
   */
  update(cluster, sinks) {
    this.cluster = cluster;
    const now = Date.now();
    for (const sink of sinks) {
      const node = sink.stats?.node;
      if (!node) continue; // between two nodes: it keeps the node it came from
      const before = this.placed.get(sink.id);
      if (before && before !== node) this.moves.set(sink.id, { from: before, to: node, at: now });
      this.placed.set(sink.id, node);
    }
    const known = new Set(sinks.map((s) => s.id));
    for (const id of this.placed.keys()) if (!known.has(id)) this.placed.delete(id);
    for (const [id, move] of this.moves) if (!known.has(id) || now - move.at > MOVE_SHOWN_MS) this.moves.delete(id);
    this.el.hidden = !this.active;
    if (this.active) this.render(sinks);
  }

  render(sinks) {
    const names = new Map(sinks.map((s) => [s.id, s.name]));
    const nodes = this.cluster.nodes || [];
    this.name.textContent = this.cluster.name;
    this.summary.textContent = `${nodes.length} node(s), ${nodes.filter((n) => n.alive).length} alive`;
    replaceChildren(this.body, nodes.map((node) => {
      const here = node.id === this.cluster.node;
      const owned = node.sinks.filter((id) => names.has(id)).map((id) => names.get(id)).sort();
      return h("tr", { dataset: { nodeId: node.id, alive: String(node.alive) } },
        h("td.node-id", {}, node.id, here ? h("span.here-badge", { title: "the node this console is connected to" }, "this node") : null),
        h("td.address", {}, node.address),
        h("td", {}, h(node.alive ? "span.state.node-state.state-running" : "span.state.node-state.state-failed",
          { title: node.alive ? "heartbeats arrive" : "no heartbeat within the session timeout: its sinks go to the other nodes" },
          node.alive ? "alive" : "down")),
        node.alive
          ? h("td.node-sinks", {}, owned.length ? owned.map((name) =>
              h("button.link.node-sink", { type: "button", title: "show this sink", onclick: () => this.onShowSink(name) }, name))
              : h("span.muted", {}, "none"))
          : h("td.node-sinks.muted", { title: owned.length ? `last reported running: ${owned.join(", ")}` : "" }, "—"),
        h("td.heartbeat.muted", {}, node.heartbeat_age_s === undefined ? "" : `${formatAge(node.heartbeat_age_s)} ago`));
    }));
  }

  /** The cell of the sinks table saying which node runs `sink` (and where it came from). */
  nodeCell(sink) {
    const node = sink.stats?.node;
    if (!node) {
      return h("td.node.waiting", { dataset: { node: "" }, title: sink.stats?.reason || "not running on any node" }, "—");
    }
    const move = this.moves.get(sink.id);
    const moved = move && move.to === node ? move : null;
    return h("td.node", { dataset: { node }, title: "the cluster node running this sink" }, node,
      moved ? h("span.moved.muted", { title: `moved from ${moved.from} at ${new Date(moved.at).toLocaleTimeString()}` },
        ` (was ${moved.from})`) : null);
  }
}
