/**
 * The console's only way to talk to the server: the REST API v1beta2.
 *
 * Every call carries the API key (header `X-Api-Key`) once one is set. Failures become
 * `ApiError`s holding the server's `{code, message, position?, property?}` body, so callers can
 * point at the SQL position or the sink property the server named.
 */

import { SseParser } from "./sse.js";

const BASE = "/api/v1beta2";
const KEY_STORAGE = "sinkflow.apiKey";

/** An error answer from the server (or a network failure, with status 0). */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0 when the server could not be reached)
   * @param {{code?: string, message?: string, position?: {line: number, column: number}, property?: string}} body
   */
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || (status === 0 ? "NETWORK_ERROR" : "HTTP_ERROR");
    this.position = body.position || null;
    this.property = body.property || null;
  }
}

/** The events of a one-document JSON answer: rows as a finished query, or a statement's status. */
function* jsonAnswerEvents(body) {
  if (Array.isArray(body.rows)) {
    yield { event: "query", data: { id: null, columns: body.columns || [] } };
    for (const row of body.rows) yield { event: "message", data: row };
    yield { event: "end", data: {} };
  } else {
    yield { event: "status", data: body };
  }
}

export class ApiClient {
  constructor() {
    /** @type {string|null} kept for this browser tab only */
    this.apiKey = sessionStorage.getItem(KEY_STORAGE);
    /** Called with the ApiError when the server answers 401, e.g. to ask for a key. */
    this.onUnauthorized = null;
  }

  /** Use `key` for every later call (null forgets it). */
  setApiKey(key) {
    this.apiKey = key || null;
    if (this.apiKey) sessionStorage.setItem(KEY_STORAGE, this.apiKey);
    else sessionStorage.removeItem(KEY_STORAGE);
  }

  headers(extra = {}) {
    const headers = { ...extra };
    if (this.apiKey) headers["X-Api-Key"] = this.apiKey;
    return headers;
  }

  /**
   * One JSON request.
   * @returns {Promise<any>} the decoded body (null for 204)
   * @throws {ApiError} on any non-2xx answer or network failure
   */
  async request(method, path, body = undefined) {
    const init = { method, headers: this.headers({ Accept: "application/json" }) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(BASE + path, init);
    } catch (err) {
      throw new ApiError(0, { message: `server unreachable: ${err.message}` });
    }
    if (!response.ok) throw await this.errorOf(response);
    if (response.status === 204) return null;
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }

  /** The ApiError for a failed response; a 401 is also reported to `onUnauthorized`. */
  async errorOf(response) {
    let body = {};
    try {
      body = await response.json();
    } catch {
      body = { message: `${response.status} ${response.statusText}` };
    }
    // FastAPI's own errors say {"detail": ...}; ours say {"code", "message"}.
    if (!body.message && body.detail) body = { message: typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail) };
    const error = new ApiError(response.status, body);
    if (response.status === 401 && this.onUnauthorized) this.onUnauthorized(error);
    return error;
  }

  info() { return this.request("GET", "/info"); }
  streams() { return this.request("GET", "/streams"); }
  sinkTypes() { return this.request("GET", "/sink-types"); }
  sinks() { return this.request("GET", "/sinks"); }
  /** @param {boolean} confirmBounded accept a bounded query (the server refuses it otherwise, code BOUNDED_QUERY) */
  createSink(sink, confirmBounded = false) { return this.request("POST", `/sinks${confirmBounded ? "?confirm_bounded=true" : ""}`, sink); }
  sink(id) { return this.request("GET", `/sinks/${encodeURIComponent(id)}`); }
  /** A merge patch: only the fields and properties given change; a masked secret keeps its value. */
  patchSink(id, change, confirmBounded = false) {
    return this.request("PATCH", `/sinks/${encodeURIComponent(id)}${confirmBounded ? "?confirm_bounded=true" : ""}`, change);
  }
  cluster() { return this.request("GET", "/cluster"); }
  deleteSink(id, dropDeadLetters = false) {
    const query = dropDeadLetters ? "?drop_dead_letters=true" : "";
    return this.request("DELETE", `/sinks/${encodeURIComponent(id)}${query}`);
  }
  /** @param {"pause"|"resume"|"restart"} action */
  sinkAction(id, action) { return this.request("POST", `/sinks/${encodeURIComponent(id)}/${action}`); }
  stopQuery(id) { return this.request("DELETE", `/queries/${encodeURIComponent(id)}`); }
  /** Run a statement that answers JSON (DDL, SHOW …): `{columns, rows}` or `{status, message}`. */
  statement(sql) { return this.request("POST", "/queries", { sql }); }

  /**
   * The output columns of `sql` ({name, type}[]): the query is started and stopped at its first
   * event, which names them (nothing is read beyond it).
   * @throws {ApiError} when the server refuses the query
   */
  async queryColumns(sql) {
    const controller = new AbortController();
    try {
      for await (const { event, data } of this.queryEvents(sql, controller.signal)) {
        if (event === "query") return data.columns || [];
        if (event === "error") throw new ApiError(200, data);
      }
      return [];
    } finally {
      controller.abort(); // closing the connection stops the query on the server
    }
  }

  /**
   * Start a query and yield its live events as they arrive.
   *
   * Yields `{event, data}` with `data` decoded from JSON: "query" ({id, columns, status}) first,
   * then "message" (one result row object each) and "metrics", and finally "query" again with the
   * final status (finished, canceled, failed with its message); a statement that returns no rows
   * (DDL, INSERT) yields one "status" ({status, message}). Aborting `signal` closes the
   * connection, which also stops the query on the server.
   * @throws {ApiError} when the server refuses the query before streaming (e.g. bad SQL, 400)
   */
  async *queryEvents(sql, signal) {
    let response;
    try {
      response = await fetch(BASE + "/queries", {
        method: "POST",
        headers: this.headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify({ sql }),
        signal,
      });
    } catch (err) {
      if (err.name === "AbortError") return;
      throw new ApiError(0, { message: `server unreachable: ${err.message}` });
    }
    if (!response.ok) throw await this.errorOf(response);
    if (!(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
      // Statements that are not streaming SELECTs (CREATE, INSERT, …) answer one JSON document.
      yield* jsonAnswerEvents(await response.json());
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    let names = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        for (const { event, data } of parser.feed(value)) {
          const decoded = JSON.parse(data);
          if (event === "query" && decoded.result) names = decoded.result.header.map((c) => c.name);
          // A data event carries rows as arrays in header order: hand them on one object each.
          if (event === "message" && Array.isArray(decoded)) {
            for (const row of decoded) yield { event, data: Object.fromEntries(names.map((n, i) => [n, row[i]])) };
          } else yield { event, data: decoded };
        }
      }
    } catch (err) {
      if (err.name === "AbortError") return;
      throw err;
    } finally {
      reader.releaseLock();
    }
  }
}
