/**
 * An incremental parser for `text/event-stream` bodies (the Server-Sent Events wire format).
 *
 * `EventSource` can only GET, and live queries are POSTed, so the console reads the response
 * body itself and feeds its text here chunk by chunk. Chunks may split lines and events anywhere.
 */

export class SseParser {
  constructor() {
    this.buffer = "";
    this.reset();
  }

  /** Forget the event being assembled (after it is dispatched). */
  reset() {
    this.eventType = "";
    this.dataLines = [];
  }

  /**
   * Feed the next piece of decoded text.
   * @param {string} text
   * @returns {{event: string, data: string}[]} every event completed by this piece, in order;
   *   `event` is "message" when the server named none, `data` is the data lines joined by "\n".
   */
  feed(text) {
    this.buffer += text;
    const events = [];
    // A line ends at CRLF, LF or CR; keep an unfinished last line (and a lone trailing CR,
    // whose LF may arrive in the next chunk) in the buffer.
    const lines = this.buffer.split(/\r\n|\n|\r(?!$)/);
    this.buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (this.dataLines.length) events.push({ event: this.eventType || "message", data: this.dataLines.join("\n") });
        this.reset();
        continue;
      }
      if (line.startsWith(":")) continue; // a comment, used by servers as keep-alive
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.eventType = value;
      else if (field === "data") this.dataLines.push(value);
      // "id" and "retry" matter only for EventSource reconnection, which a POSTed query does not do.
    }
    return events;
  }
}
