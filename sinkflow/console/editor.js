/**
 * The SQL editor: a plain <textarea> over a highlighted <pre> that mirrors its text.
 *
 * The textarea keeps native editing (undo, selection, IME, accessibility); its text is
 * transparent and the <pre> underneath shows the same characters coloured. Both use the same
 * font metrics (see .editor in style.css) so they line up exactly.
 */

import { h } from "./dom.js";
import { offsetOf, renderHighlighted } from "./sql_highlight.js";

export class SqlEditor {
  /**
   * @param {HTMLElement} host element to fill
   * @param {{initial?: string, onRun?: () => void}} options `onRun` is called on Ctrl/Cmd+Enter
   */
  constructor(host, { initial = "", onRun = () => {} } = {}) {
    this.code = h("code");
    this.highlight = h("pre.editor-highlight", { "aria-hidden": "true" }, this.code);
    this.textarea = h("textarea.editor-input", {
      spellcheck: "false",
      autocapitalize: "off",
      autocomplete: "off",
      "aria-label": "SQL query",
      id: "sql-input",
    });
    this.errorOffset = null;
    host.classList.add("editor");
    host.replaceChildren(this.highlight, this.textarea);

    this.textarea.addEventListener("input", () => {
      this.errorOffset = null; // the marked text changed; the old position means nothing now
      this.render();
    });
    this.textarea.addEventListener("scroll", () => this.syncScroll());
    this.textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        onRun();
      } else if (event.key === "Tab" && !event.shiftKey) {
        event.preventDefault();
        this.textarea.setRangeText("  ", this.textarea.selectionStart, this.textarea.selectionEnd, "end");
        this.render();
      }
    });
    this.value = initial;
  }

  get value() {
    return this.textarea.value;
  }

  set value(text) {
    this.textarea.value = text;
    this.errorOffset = null;
    this.render();
  }

  /**
   * Mark the server's error position and put the caret there.
   * @param {{line: number, column: number}|null} position 1-based; null clears the mark
   */
  markError(position) {
    if (!position) {
      this.errorOffset = null;
    } else {
      this.errorOffset = offsetOf(this.value, position.line, position.column);
      this.textarea.focus();
      this.textarea.setSelectionRange(this.errorOffset, this.errorOffset);
    }
    this.render();
  }

  render() {
    renderHighlighted(this.code, this.textarea.value, this.errorOffset);
    this.syncScroll();
  }

  syncScroll() {
    this.highlight.scrollTop = this.textarea.scrollTop;
    this.highlight.scrollLeft = this.textarea.scrollLeft;
  }
}
