/**
 * The console page: wires the API client, the editor, the live results, the chart, the
 * streams and sinks panels and the dialogs together. Each part lives in its own module.
 */

import { ApiClient } from "./api.js";
import { byId } from "./dom.js";
import { SqlEditor } from "./editor.js";
import { StreamChart } from "./chart.js";
import { formatCount } from "./format.js";
import { QueryRunner } from "./query.js";
import { ResultTable, RowMeter } from "./results.js";
import { SendDialog } from "./send_dialog.js";
import { SinkDetails } from "./sink_details.js";
import { SinksPanel, deadLetterQuery } from "./sinks_panel.js";
import { StreamsPanel } from "./streams_panel.js";

/** The document's example: 2-second downsampling of the car telemetry, per car. */
const CAR_QUERY =
  "select window_end as time,cid,avg(speed_kmh) as speed_kmh,max(total_km) as total_km," +
  "avg(gas_percent) as gas_percent,min(locked) as locked,min(in_use) as in_use " +
  "from tumble(car_live_data,2s) group by cid, window_end";

const RUNNING = new Set(["starting", "running"]);

const api = new ApiClient();
const table = new ResultTable(byId("results-table"), { limit: 500 });
const chart = new StreamChart(byId("chart-panel"));
const meter = new RowMeter();
const errorBox = byId("query-error");
const notice = byId("notice");
let noticeTimer = 0;

/** A short message in the top bar (action failures, confirmations). */
function notify(message, kind = "info") {
  notice.textContent = message;
  notice.className = `notice notice-${kind}`;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (notice.hidden = true), kind === "error" ? 8000 : 4000);
}

function showQueryError(error) {
  const at = error.position ? `line ${error.position.line}, column ${error.position.column}` : "";
  const where = at && !error.message.includes(at) ? `${at}: ` : ""; // said once, even when the message says it
  errorBox.textContent = `${error.code ? error.code + " · " : ""}${where}${error.message}`;
  errorBox.hidden = false;
  editor.markError(error.position);
}

function clearQueryError() {
  errorBox.hidden = true;
  errorBox.textContent = "";
  editor.markError(null);
}

const runner = new QueryRunner(api, {
  onStart({ columns }) {
    table.reset(columns);
    chart.reset(chartEnabled ? columns : [], chartEnabled ? "" : "no chart for dead-letter rows");
    meter.reset();
  },
  onRows(rows) {
    table.add(rows);
    chart.add(rows);
    meter.add(rows.length);
  },
  onError: showQueryError,
  onStatus(message) {
    notify(message);
    streams.refresh(); // a CREATE or INSERT may have changed the streams
  },
  onState(state) {
    const running = RUNNING.has(state);
    // The last rows wait for an animation frame: show them before the state says the query ended,
    // so "finished" never stands above a table that is still filling.
    if (!running) table.flush();
    const stateEl = byId("query-state");
    stateEl.textContent = state;
    stateEl.className = `state state-${state}`;
    byId("stop-button").disabled = !running;
    // A finished bounded query can be sent too (the server then asks to confirm: it sends once).
    byId("send-button").disabled = !(state === "running" || (state === "finished" && runner.columns));
    updateStats();
  },
});

const editor = new SqlEditor(byId("editor"), { initial: CAR_QUERY, onRun: () => run() });

/**
 * Run `sql` (or the editor's text), replacing the editor's text when `sql` is given.
 * `chart: false` for results a chart would misrepresent (dead letters: one raw row each).
 */
function run(sql, { chart: charted = true } = {}) {
  if (sql !== undefined) editor.value = sql;
  clearQueryError();
  chartEnabled = charted;
  runner.run(editor.value);
}
let chartEnabled = true;

/** Show a sink's dead letters in the results, and bring the results into view. */
function showDeadLetters(sink) {
  run(deadLetterQuery(sink), { chart: false });
  byId("results-table").closest(".results-row").scrollIntoView({ block: "start", behavior: "smooth" });
}

function updateStats() {
  byId("rows-total").textContent = formatCount(meter.total);
  byId("row-rate").textContent = RUNNING.has(runner.state) ? meter.rate().toFixed(1) : "0";
  const seconds = Math.floor((performance.now() - meter.started) / 1000);
  byId("elapsed").textContent = RUNNING.has(runner.state) ? `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}` : "";
}

const sinks = new SinksPanel(byId("sinks-panel"), api, {
  onDeadLetters: showDeadLetters,
  onOpen: (sink) => details.open(sink.id),
  onError: (m) => notify(m, "error"),
});
const streams = new StreamsPanel(byId("streams-panel"), api, {
  onQuery: run, onError: (m) => notify(m, "error"), onShowSink: (name) => sinks.show(name),
});
const sendDialog = new SendDialog(byId("send-dialog"), api, {
  existingNames: () => sinks.names(),
  onCreated(sink, edited) {
    const warning = (sink.warnings || [])[0];
    notify(warning ? `sink ${sink.name} ${edited ? "saved" : "created"}: ${warning}` : `sink ${sink.name} ${edited ? "saved" : "created"}`,
      warning ? "warn" : "info");
    sinks.refresh();
    if (edited) details.open(sink.id);
  },
});
const details = new SinkDetails(byId("sink-dialog"), api, {
  onEdit: (sink) => sendDialog.edit(sink),
  onDeadLetters: showDeadLetters,
});

byId("run-button").addEventListener("click", () => run());
byId("stop-button").addEventListener("click", () => runner.stop());
byId("send-button").addEventListener("click", () => sendDialog.open({ sql: runner.sql, columns: runner.columns || [] }));
setInterval(updateStats, 500);

// --- API key: asked for when the server requires one, or when it refuses the one we sent.
const keyDialog = byId("key-dialog");
let keyWaiters = [];

/** Ask for the key (once, however many calls are waiting). Resolves when one is entered. */
function askForKey(message = "") {
  byId("key-error").textContent = message;
  byId("api-key-button").hidden = false;
  if (!keyDialog.open) keyDialog.showModal();
  return new Promise((resolve) => keyWaiters.push(resolve));
}

byId("key-form").addEventListener("submit", () => {
  api.setApiKey(byId("key-input").value.trim());
  byId("key-input").value = "";
  const waiters = keyWaiters;
  keyWaiters = [];
  waiters.forEach((resolve) => resolve());
  streams.refresh();
  sinks.refresh();
});
keyDialog.addEventListener("cancel", (event) => {
  if (!api.apiKey) event.preventDefault(); // without a key nothing on the page can work
});
byId("api-key-button").addEventListener("click", () => askForKey());
api.onUnauthorized = (error) => askForKey(api.apiKey ? `the server refused this key: ${error.message}` : "");

async function main() {
  let info;
  try {
    info = await api.info();
  } catch (err) {
    notify(`cannot reach the server: ${err.message}`, "error");
    return;
  }
  byId("server-version").textContent = info.version ? `v${info.version}` : "";
  if (info.auth_required) {
    byId("api-key-button").hidden = false;
    if (!api.apiKey) await askForKey();
  }
  streams.start();
  sinks.start();
}

main();
