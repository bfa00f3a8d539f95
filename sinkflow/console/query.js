/**
 * Runs one live query at a time and hands its results to the page.
 *
 * Rows are collected and delivered once per animation frame (`onRows(batch)`), so the table,
 * chart and meter do their work per frame, not per row. Starting a query stops the previous
 * one; stopping aborts the connection and asks the server to stop it.
 */

import { ApiError } from "./api.js";

/**
 * @typedef {Object} QueryHandlers
 * @property {(query: {id: string, columns: {name: string, type: string}[]}) => void} onStart
 * @property {(rows: object[]) => void} onRows rows oldest first
 * @property {(error: ApiError) => void} onError bad SQL (before streaming) or a failure while streaming
 * @property {(state: string) => void} onState "starting" | "running" | "finished" | "stopped" | "failed"
 * @property {(message: string) => void} onStatus the answer of a statement without rows (CREATE, INSERT…)
 */

export class QueryRunner {
  /** @param {import("./api.js").ApiClient} api @param {QueryHandlers} handlers */
  constructor(api, handlers) {
    this.api = api;
    this.handlers = handlers;
    this.controller = null;
    this.state = "idle";
    this.id = null;
    this.sql = "";
    this.columns = null;
    this.batch = [];
    this.frame = 0;
  }

  setState(state) {
    this.state = state;
    this.handlers.onState(state);
  }

  /** Start `sql`, stopping any running query first. Resolves when the query ends or fails. */
  async run(sql) {
    await this.stop();
    const controller = new AbortController();
    this.controller = controller;
    Object.assign(this, { sql, id: null, columns: null, batch: [] });
    this.setState("starting");
    let outcome = "stopped";
    try {
      for await (const { event, data } of this.api.queryEvents(sql, controller.signal)) {
        if (this.controller !== controller) return; // stopped or superseded meanwhile
        if (event === "query" && this.id === data.id) {
          // The closing query event: the query's final status.
          this.flush();
          if (data.status === "failed") {
            this.handlers.onError(new ApiError(200, data));
            outcome = "failed";
          } else outcome = "finished";
          break;
        } else if (event === "query") {
          this.id = data.id;
          this.columns = data.columns;
          this.handlers.onStart(data);
          this.setState("running");
        } else if (event === "message") {
          this.queueRow(data);
        } else if (event === "error") {
          this.flush();
          this.handlers.onError(new ApiError(200, data));
          outcome = "failed";
          break;
        } else if (event === "status") {
          this.handlers.onStatus(data.message || data.status || "done");
          outcome = "finished";
          break;
        } else if (event === "end") {
          outcome = "finished";
          break;
        }
      }
    } catch (err) {
      if (this.controller !== controller) return;
      this.handlers.onError(err instanceof ApiError ? err : new ApiError(0, { message: String(err.message || err) }));
      outcome = "failed";
    }
    if (this.controller !== controller) return;
    this.flush();
    this.controller = null;
    controller.abort(); // closes the response when the loop left early
    this.setState(outcome);
  }

  queueRow(row) {
    this.batch.push(row);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  /** Hand the collected rows over now. */
  flush() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    if (!this.batch.length) return;
    const rows = this.batch;
    this.batch = [];
    this.handlers.onRows(rows);
  }

  /** Stop the running query, if any: close the connection and tell the server. */
  async stop() {
    const controller = this.controller;
    if (!controller) return;
    this.controller = null;
    this.flush();
    const id = this.id;
    controller.abort();
    this.setState("stopped");
    if (id) {
      try {
        await this.api.stopQuery(id);
      } catch (err) {
        // 404: the server already stopped it when the connection closed.
        if (!(err instanceof ApiError && err.status === 404)) this.handlers.onError(err);
      }
    }
  }
}
