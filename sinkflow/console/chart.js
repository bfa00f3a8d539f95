/**
 * The streaming chart, drawn on a <canvas> with no library.
 *
 * Line mode: x is the result's time column (`window_end`, `time`, `_tp_time` or the first
 * datetime column; the arrival order when there is none), y the chosen numeric column, one line
 * per key (the first string column, such as `cid`) for the `maxKeys` keys with the highest average.
 * Without a key column every numeric column can be drawn as its own line.
 * Bar mode: the latest value of each of those lines.
 */

import { h, replaceChildren } from "./dom.js";
import { formatValue, isNumericType, isStringType, isTimeType, timeMs } from "./format.js";

const PALETTE = ["#4cc9f0", "#f72585", "#ffd166", "#06d6a0", "#b388ff", "#ff8c42", "#d9d9d9", "#5e8bff", "#c5e063", "#ff9e9e"];
const TIME_COLUMNS = ["window_end", "time", "_tp_time"];
const ALL = "*";
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400].map((s) => s * 1000);
const PAD = { left: 58, right: 14, top: 14, bottom: 28 };

/** Round numbers that cover [min, max] with about `count` steps. */
function niceTicks(min, max, count) {
  if (min === max) {
    const pad = Math.abs(min) * 0.1 || 1;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const first = Math.floor(min / step) * step;
  const last = Math.ceil(max / step) * step;
  const ticks = [];
  for (let v = first; v <= last + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function timeLabel(ms, stepMs) {
  const iso = new Date(ms).toISOString(); // the table shows UTC too
  return stepMs >= 86400000 ? iso.slice(5, 10) : iso.slice(11, stepMs < 60000 ? 19 : 16);
}

export class StreamChart {
  /**
   * @param {HTMLElement} host element to fill with the controls, the canvas and the legend
   * @param {{maxKeys?: number, maxPoints?: number, trackedKeys?: number}} options
   */
  constructor(host, { maxKeys = 8, maxPoints = 600, trackedKeys = 200 } = {}) {
    this.maxKeys = Math.min(maxKeys, PALETTE.length); // one distinct colour per line
    this.maxPoints = maxPoints;
    this.trackedKeys = trackedKeys;
    this.mode = "line";
    this.metricSelect = h("select#chart-metric", { "aria-label": "Chart column", onchange: () => this.schedule() });
    this.modeButtons = ["line", "bar"].map((mode) =>
      h("button.seg", { type: "button", dataset: { mode }, onclick: () => this.setMode(mode) }, mode === "line" ? "Line" : "Bar"),
    );
    this.info = h("span.chart-info");
    this.canvas = h("canvas#chart-canvas", { role: "img", "aria-label": "Streaming chart of the query results" });
    this.legend = h("div.chart-legend#chart-legend");
    host.replaceChildren(
      h("div.chart-controls", {}, h("label", {}, "Chart ", this.metricSelect), h("div.segmented", {}, this.modeButtons), this.info),
      h("div.chart-body", {}, this.canvas),
      this.legend,
    );
    this.frame = 0;
    new ResizeObserver(() => this.schedule()).observe(this.canvas);
    this.reset([]);
    this.setMode("line");
  }

  /**
   * Start over for a new result shape.
   * @param {{name: string, type: string}[]} columns
   * @param {string} why shown instead of a chart when `columns` is empty on purpose
   */
  reset(columns, why = "") {
    const byName = new Map(columns.map((c) => [c.name, c]));
    this.columnCount = columns.length;
    this.why = why;
    this.xColumn = TIME_COLUMNS.map((n) => byName.get(n)).find((c) => c && isTimeType(c.type)) ||
      columns.find((c) => isTimeType(c.type)) || null;
    this.keyColumn = columns.find((c) => isStringType(c.type) && c !== this.xColumn) || null;
    this.metrics = columns.filter((c) => isNumericType(c.type)).map((c) => c.name);
    this.series = new Map(); // key → {points: [{x, v}], lastSeen}
    this.colorOf = new Map(); // key → the colour it was last drawn in
    this.sequence = 0;
    const options = this.metrics.map((m) => h("option", { value: m }, m));
    if (!this.keyColumn && this.metrics.length > 1) options.unshift(h("option", { value: ALL }, "all numeric columns"));
    replaceChildren(this.metricSelect, options);
    this.metricSelect.disabled = !this.metrics.length;
    this.info.textContent = this.keyColumn ? `top ${this.maxKeys} ${this.keyColumn.name} by average` : "";
    this.schedule();
  }

  /** "line" or "bar". */
  setMode(mode) {
    this.mode = mode;
    for (const b of this.modeButtons) b.classList.toggle("active", b.dataset.mode === mode);
    this.schedule();
  }

  /** Take rows (oldest first). */
  add(rows) {
    if (!this.metrics.length) return;
    for (const row of rows) {
      this.sequence += 1;
      const x = this.xColumn ? timeMs(row[this.xColumn.name]) : this.sequence;
      if (Number.isNaN(x)) continue;
      const key = this.keyColumn ? String(row[this.keyColumn.name]) : "";
      const values = {};
      for (const m of this.metrics) values[m] = row[m] === null || row[m] === undefined ? NaN : Number(row[m]);
      this.addPoint(key, { x, v: values });
    }
    this.schedule();
  }

  addPoint(key, point) {
    let series = this.series.get(key);
    if (!series) {
      if (this.series.size >= this.trackedKeys) this.evictQuietest();
      series = { points: [], lastSeen: 0 };
      this.series.set(key, series);
    }
    const pts = series.points;
    // Results usually arrive in time order; keep the rare late one in place so lines never zigzag back.
    let i = pts.length;
    while (i > 0 && pts[i - 1].x > point.x) i--;
    pts.splice(i, 0, point);
    if (pts.length > this.maxPoints) pts.shift();
    series.lastSeen = this.sequence;
  }

  evictQuietest() {
    let quietest = null;
    for (const [key, s] of this.series) if (!quietest || s.lastSeen < this.series.get(quietest).lastSeen) quietest = key;
    this.series.delete(quietest);
  }

  /** The lines to draw now: [{label, color, points: [[x, y]]}]. */
  lines() {
    const metric = this.metricSelect.value;
    if (!metric) return [];
    if (!this.keyColumn) {
      const only = this.series.get("");
      if (!only) return [];
      const metrics = metric === ALL ? this.metrics : [metric];
      return metrics.map((m, i) => ({
        label: m,
        color: PALETTE[i % PALETTE.length],
        points: only.points.map((p) => [p.x, p.v[m]]).filter(([, y]) => Number.isFinite(y)),
      }));
    }
    // The top keys by their average over the kept points (an average moves slowly, so the chosen
    // keys rarely change), shown in name order so the legend doesn't jump.
    const byName = (a, b) => a.label.localeCompare(b.label, "en", { numeric: true });
    const candidates = [...this.series.entries()].map(([key, s]) => {
      const points = s.points.map((p) => [p.x, p.v[metric]]).filter(([, y]) => Number.isFinite(y));
      const mean = points.reduce((sum, [, y]) => sum + y, 0) / (points.length || 1);
      return { label: key, points, mean };
    });
    const shown = candidates
      .sort((a, b) => b.mean - a.mean || byName(a, b))
      .slice(0, this.maxKeys)
      .sort(byName);
    this.assignColours(shown);
    return shown;
  }

  /** Give each shown line a colour no other shown line has; a key keeps its colour while it stays. */
  assignColours(lines) {
    const used = new Set();
    for (const line of lines) {
      const colour = this.colorOf.get(line.label);
      line.color = colour && !used.has(colour) ? colour : null;
      if (line.color) used.add(line.color);
    }
    for (const line of lines.filter((l) => !l.color)) {
      line.color = PALETTE.find((c) => !used.has(c)) || PALETTE[0];
      used.add(line.color);
      this.colorOf.set(line.label, line.color);
    }
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  draw() {
    const canvas = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const lines = this.lines().filter((l) => l.points.length);
    canvas.dataset.lines = String(lines.length);
    this.renderLegend(lines);
    const style = getComputedStyle(canvas);
    const muted = style.getPropertyValue("--chart-muted").trim() || "#8892a6";
    const grid = style.getPropertyValue("--chart-grid").trim() || "#2a3142";
    ctx.font = "11px system-ui, sans-serif";
    if (!lines.length) {
      ctx.fillStyle = muted;
      ctx.textAlign = "center";
      const message = this.why || !this.columnCount ? this.why || "run a query to chart its results"
        : this.metrics.length ? "waiting for rows…" : "no numeric column to chart";
      ctx.fillText(message, width / 2, height / 2);
      return;
    }
    const area = { x: PAD.left, y: PAD.top, w: width - PAD.left - PAD.right, h: height - PAD.top - PAD.bottom };
    if (this.mode === "bar") this.drawBars(ctx, area, lines, muted, grid);
    else this.drawLines(ctx, area, lines, muted, grid);
  }

  drawYAxis(ctx, area, ticks, muted, grid) {
    const [lo, hi] = [ticks[0], ticks[ticks.length - 1]];
    const yOf = (v) => area.y + area.h - ((v - lo) / (hi - lo || 1)) * area.h;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const t of ticks) {
      const y = Math.round(yOf(t)) + 0.5;
      ctx.strokeStyle = grid;
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(area.x, y);
      ctx.lineTo(area.x + area.w, y);
      ctx.stroke();
      ctx.fillStyle = muted;
      ctx.fillText(formatValue(t, "float64"), area.x - 6, y);
    }
    return yOf;
  }

  drawLines(ctx, area, lines, muted, grid) {
    let [xMin, xMax, yMin, yMax] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const l of lines) for (const [x, y] of l.points) {
      xMin = Math.min(xMin, x); xMax = Math.max(xMax, x);
      yMin = Math.min(yMin, y); yMax = Math.max(yMax, y);
    }
    if (xMin === xMax) { xMin -= 1000; xMax += 1000; }
    const yOf = this.drawYAxis(ctx, area, niceTicks(yMin, yMax, 5), muted, grid);
    const xOf = (x) => area.x + ((x - xMin) / (xMax - xMin)) * area.w;
    // x ticks: time steps (or plain numbers for arrival order), about one per 90 px
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.fillStyle = muted;
    const wanted = Math.max(2, Math.floor(area.w / 90));
    if (this.xColumn) {
      const step = TIME_STEPS.find((s) => (xMax - xMin) / s <= wanted) || TIME_STEPS[TIME_STEPS.length - 1];
      for (let t = Math.ceil(xMin / step) * step; t <= xMax; t += step) this.xLabel(ctx, area, timeLabel(t, step), xOf(t));
    } else {
      for (const t of niceTicks(xMin, xMax, wanted)) if (t >= xMin && t <= xMax) this.xLabel(ctx, area, String(t), xOf(t));
    }
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    for (const l of lines) {
      ctx.strokeStyle = l.color;
      ctx.fillStyle = l.color;
      ctx.beginPath();
      l.points.forEach(([x, y], i) => (i ? ctx.lineTo(xOf(x), yOf(y)) : ctx.moveTo(xOf(x), yOf(y))));
      ctx.stroke();
      if (l.points.length === 1 || l.points.length < area.w / 12) {
        // few points: dots make single windows visible
        for (const [x, y] of l.points) { ctx.beginPath(); ctx.arc(xOf(x), yOf(y), 2.5, 0, Math.PI * 2); ctx.fill(); }
      }
    }
  }

  /** An x-axis label centred under `x`, shifted inwards where it would overflow the canvas. */
  xLabel(ctx, area, text, x) {
    const half = ctx.measureText(text).width / 2;
    const right = this.canvas.clientWidth - 2;
    ctx.fillText(text, Math.max(half + 2, Math.min(x, right - half)), area.y + area.h + 8);
  }

  drawBars(ctx, area, lines, muted, grid) {
    const latest = lines.map((l) => ({ ...l, value: l.points[l.points.length - 1][1] }));
    const values = latest.map((b) => b.value);
    const ticks = niceTicks(Math.min(0, ...values), Math.max(0, ...values), 5);
    const yOf = this.drawYAxis(ctx, area, ticks, muted, grid);
    const slot = area.w / latest.length;
    const barWidth = Math.max(4, Math.min(64, slot * 0.6));
    ctx.textAlign = "center";
    latest.forEach((b, i) => {
      const cx = area.x + slot * (i + 0.5);
      const [y0, y1] = [yOf(0), yOf(b.value)];
      ctx.fillStyle = b.color;
      ctx.fillRect(cx - barWidth / 2, Math.min(y0, y1), barWidth, Math.max(1, Math.abs(y1 - y0)));
      ctx.fillStyle = muted;
      ctx.textBaseline = "top";
      ctx.fillText(b.label, cx, area.y + area.h + 8);
      ctx.textBaseline = "bottom";
      ctx.fillText(formatValue(b.value, "float64"), cx, Math.min(y0, y1) - 3);
    });
  }

  renderLegend(lines) {
    replaceChildren(
      this.legend,
      lines.map((l) =>
        h("span.legend-item", {}, h("span.swatch", { style: `background:${l.color}` }), l.label || "(empty)",
          h("span.legend-value", {}, formatValue(l.points[l.points.length - 1][1], "float64"))),
      ),
    );
  }
}
