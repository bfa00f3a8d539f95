/**
 * The live result table: newest row first, at most `limit` rows kept in the page.
 *
 * Rows arrive one SSE event at a time, possibly thousands per second; they are buffered and
 * put into the DOM once per animation frame, so the page stays responsive at any row rate.
 */

import { h } from "./dom.js";
import { formatValue, isNumericType } from "./format.js";

export class ResultTable {
  /**
   * @param {HTMLTableElement} table
   * @param {{limit?: number}} options
   */
  constructor(table, { limit = 500 } = {}) {
    this.table = table;
    this.limit = limit;
    this.columns = [];
    this.pending = [];
    this.frame = 0;
    this.thead = h("thead");
    this.tbody = h("tbody");
    table.replaceChildren(this.thead, this.tbody);
  }

  /** Start over with a new result shape. @param {{name: string, type: string}[]} columns */
  reset(columns) {
    this.columns = columns;
    this.pending = [];
    this.thead.replaceChildren(
      h("tr", {}, columns.map((c) => h("th", { title: c.type, className: isNumericType(c.type) ? "num" : "" }, c.name, h("span.col-type", {}, c.type)))),
    );
    this.tbody.replaceChildren();
  }

  /** Queue rows (oldest first, as they arrived) for the next frame. */
  add(rows) {
    this.pending.push(...rows);
    if (this.pending.length > this.limit) this.pending.splice(0, this.pending.length - this.limit);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  /** Put the queued rows into the DOM now (the page calls this before it says a query ended). */
  flush() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    const fragment = document.createDocumentFragment();
    for (let i = this.pending.length - 1; i >= 0; i--) fragment.append(this.rowElement(this.pending[i]));
    this.pending = [];
    this.tbody.prepend(fragment);
    while (this.tbody.childElementCount > this.limit) this.tbody.lastElementChild.remove();
  }

  rowElement(row) {
    return h(
      "tr",
      {},
      this.columns.map((c) => h(isNumericType(c.type) ? "td.num" : "td", {}, formatValue(row[c.name], c.type))),
    );
  }

  /** Number of rows shown. */
  get size() {
    return this.tbody.childElementCount + this.pending.length;
  }
}

/** Rows so far and the current row rate (rows per second over the last few seconds). */
export class RowMeter {
  constructor(windowMs = 5000) {
    this.windowMs = windowMs;
    this.reset();
  }

  reset() {
    this.total = 0;
    this.started = performance.now();
    this.samples = []; // [time, count] per arrival burst, newest last
  }

  add(count, now = performance.now()) {
    this.total += count;
    this.samples.push([now, count]);
    this.trim(now);
  }

  trim(now) {
    while (this.samples.length && this.samples[0][0] < now - this.windowMs) this.samples.shift();
  }

  /** Rows per second over the last `windowMs` (or since the start, if that is shorter). */
  rate(now = performance.now()) {
    this.trim(now);
    const span = Math.min(this.windowMs, now - this.started) / 1000;
    if (span <= 0) return 0;
    return this.samples.reduce((sum, [, n]) => sum + n, 0) / span;
  }
}
