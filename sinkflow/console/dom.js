/**
 * Tiny DOM helpers shared by every console module.
 *
 * `h()` builds elements without innerHTML, so values from the server (stream names, row
 * values, error messages) are always inserted as text and can never inject markup.
 */

/**
 * Create an element.
 * @param {string} tag element name, optionally with an id and classes: "button#run.primary.small"
 * @param {Object<string, any>} [attrs] attributes; `on<event>` keys add listeners, `dataset` sets data-*,
 *   boolean `true` sets an empty attribute, `false`/null/undefined skip it
 * @param {...(Node|string|number|null|undefined|false|Array)} children text or nodes; falsy ones are skipped
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const [name, ...parts] = tag.match(/^[a-z0-9]+|[.#][\w-]+/gi);
  const el = document.createElement(name);
  for (const part of parts) {
    if (part[0] === "#") el.id = part.slice(1);
    else el.classList.add(part.slice(1));
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value") {
      el.value = value; // the property: a textarea has no value attribute
    } else if (key === "className") {
      el.className = value;
    } else if (key === "htmlFor") {
      el.htmlFor = value; // the `for` attribute: what binds a label to its input
    } else if (key in el && typeof value !== "string") {
      el[key] = value; // properties such as checked, value (numbers), disabled
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (flattening arrays, skipping null/undefined/false) to `parent`. */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Remove every child of `el` and optionally put `children` in their place. */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** `document.getElementById` that fails loudly when the page lacks the element. */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`console page has no element #${id}`);
  return el;
}
