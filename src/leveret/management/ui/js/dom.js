// Building the page: elements from data, never from HTML strings (names and message bodies
// come from clients and are shown as text), and tables that refresh without losing the
// reader's place (sorting, focus).

let uid = 0;

/** A unique id for label/aria links. */
export function newId(prefix = "f") {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * h("a", {href: "#/queues", class: "x", onclick: fn}, "text", child, [more])
 * Props: class, text, on<event> (a function), dataset (object); booleans set or drop an
 * attribute; everything else is an attribute. Children: nodes, strings, numbers, arrays; null,
 * undefined and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace the children of ``el``. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A section with a heading (h2 by default), labelled by it for screen readers. */
export function section(title, ...children) {
  const id = newId("s");
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

/** A labelled form control: <div><label>Text</label><control></div>. */
export function field(label, control, hint) {
  const id = control.id || newId("f");
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    const hintId = newId("h");
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("span", { class: "hint", id: hintId }, hint));
  }
  return h("div", { class: "field" }, ...parts);
}

export function checkbox(label, name, checked = false) {
  const id = newId("c");
  return h("div", { class: "field check" },
    h("input", { type: "checkbox", id, name, checked }), h("label", { for: id }, label));
}

export function select(name, options, value) {
  const el = h("select", { name });
  for (const opt of options) {
    const [val, text] = Array.isArray(opt) ? opt : [opt, opt];
    el.append(h("option", { value: val, selected: val === value }, text));
  }
  return el;
}

/** A definition list from [term, value] pairs (values may be nodes). */
export function dl(pairs, cls = "props") {
  const el = h("dl", { class: cls });
  for (const [term, value] of pairs) {
    if (value === undefined) continue;
    el.append(h("dt", {}, term), h("dd", {}, value === null || value === "" ? "–" : value));
  }
  return el;
}

/** A link to a page of the UI: ``link("#/queues/%2F/q", "q")``. */
export function link(href, text, props = {}) {
  return h("a", { href, ...props }, text);
}

/**
 * Replace ``old`` by ``fresh`` keeping keyboard focus: if focus was on an element with a
 * data-focus key inside ``old``, the element with the same key in ``fresh`` gets it.
 */
export function swap(old, fresh) {
  const active = document.activeElement;
  const key = active && old.contains(active) ? active.dataset.focus : undefined;
  old.replaceWith(fresh);
  if (key) {
    const again = fresh.querySelector(`[data-focus="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
  return fresh;
}

/**
 * A table: columns [{key, label, num, sort (a sort key, or false), render(row) -> node|text,
 * abbr}], with sortable headers (buttons; aria-sort on the th). ``state`` is {sort, reverse};
 * the caption is for screen readers unless ``showCaption`` (a heading usually says it);
 * ``onSort(key)`` is called when a header is pressed. Wrapped in a focusable, labelled region so
 * a wide table scrolls with the keyboard.
 */
export function table({ caption, columns, rows, state = {}, onSort, rowKey, empty = "None",
  showCaption = false }) {
  const head = h("tr");
  for (const col of columns) {
    const th = h("th", { scope: "col", class: col.num ? "num" : null });
    const label = col.abbr ? h("abbr", { title: col.abbr }, col.label) : col.label;
    if (onSort && col.sort !== false) {
      const key = col.sort || col.key;
      const active = state.sort === key;
      th.setAttribute("aria-sort", active ? (state.reverse ? "descending" : "ascending") : "none");
      th.append(h("button", {
        type: "button", class: "sort", "data-focus": `sort-${key}`,
        onclick: () => onSort(key),
      }, label, h("span", { class: "arrow", "aria-hidden": "true" })));
    } else {
      th.append(label);
    }
    head.append(th);
  }
  const body = h("tbody");
  if (!rows.length) {
    body.append(h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty)));
  }
  for (const row of rows) {
    const tr = h("tr", rowKey ? { dataset: { key: rowKey(row) } } : {});
    columns.forEach((col, i) => {
      const value = col.render ? col.render(row) : row[col.key];
      const cell = h(i === 0 ? "th" : "td", { class: col.num ? "num" : null },
        value === undefined || value === null ? "" : value);
      if (i === 0) cell.setAttribute("scope", "row");
      tr.append(cell);
    });
    body.append(tr);
  }
  const capId = newId("t");
  return h("div", { class: "table-wrap", role: "region", "aria-labelledby": capId, tabindex: "0" },
    h("table", {}, h("caption", { id: capId, class: showCaption ? null : "visually-hidden" }, caption),
      h("thead", {}, head), body));
}

/** Sort rows by a column's key (client-side tables), numbers before text, stable. */
export function sortRows(rows, state, valueOf = (row, key) => row[key]) {
  if (!state.sort) return rows;
  const sign = state.reverse ? -1 : 1;
  return [...rows].sort((a, b) => {
    const x = valueOf(a, state.sort);
    const y = valueOf(b, state.sort);
    if (typeof x === "number" && typeof y === "number") return sign * (x - y);
    return sign * String(x ?? "").localeCompare(String(y ?? ""));
  });
}

/** The next sort state after a header press: same key flips, a new key sorts ascending. */
export function nextSort(state, key) {
  return state.sort === key ? { sort: key, reverse: !state.reverse } : { sort: key, reverse: false };
}

/** A value from a dotted path: get(row, "message_stats.publish_details.rate"). */
export function pick(obj, path) {
  let value = obj;
  for (const part of path.split(".")) {
    if (value === null || value === undefined) return undefined;
    value = value[part];
  }
  return value;
}

/** A region for the outcome of an action: status text, or an error (role=alert). */
export function messageArea() {
  const el = h("div", { class: "message", "aria-live": "polite" });
  el.show = (text, isError = false) => {
    el.className = isError ? "message error" : "message ok";
    el.setAttribute("role", isError ? "alert" : "status");
    el.textContent = text;
  };
  el.clear = () => {
    el.className = "message";
    el.textContent = "";
  };
  return el;
}

/** A form: ``onsubmit(data, form)`` gets the form's values (checkboxes as booleans). */
export function form(props, onsubmit, ...children) {
  const el = h("form", { ...props, novalidate: false });
  el.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = {};
    for (const control of el.elements) {
      if (!control.name) continue;
      data[control.name] = control.type === "checkbox" ? control.checked : control.value;
    }
    onsubmit(data, el);
  });
  return append(el, children);
}
