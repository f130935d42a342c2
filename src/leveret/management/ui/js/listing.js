// A list page's table of objects, paged, filtered and sorted by the API itself (RabbitMQ's
// page, page_size, name, use_regex, sort, sort_reverse), refreshed in place.

import * as api from "./api.js";
import { checkbox, field, h, messageArea, nextSort, section, select, swap, table } from "./dom.js";
import { num } from "./format.js";

const PAGE_SIZES = [20, 50, 100, 500];

/**
 * listing({key, noun, path, columns, rowKey, ctx, defaultSort}) -> {element, refresh()}
 * ``path(vhost)`` is the API path of the list; ``noun`` ("queues") names the objects.
 */
export function listing({ key, noun, path, columns, rowKey, ctx, defaultSort = "" }) {
  let saved = {};
  try {
    saved = JSON.parse(sessionStorage.getItem(`leveret.list.${key}`) || "{}") || {};
  } catch {
    saved = {};
  }
  const state = {
    name: saved.name || "", regex: !!saved.regex, page: saved.page || 1,
    pageSize: saved.pageSize || 100, sort: saved.sort ?? defaultSort, reverse: !!saved.reverse,
  };
  const save = () => sessionStorage.setItem(`leveret.list.${key}`, JSON.stringify(state));

  const heading = h("h2", {}, `All ${noun}`);
  const note = messageArea();
  const nameInput = h("input", { type: "search", name: "name", value: state.name,
    "aria-controls": `${key}-table`, spellcheck: "false" });
  const regexBox = checkbox("Regex", "use_regex", state.regex);
  const sizeSelect = select("page_size", PAGE_SIZES.map((n) => [String(n), String(n)]),
    String(state.pageSize));
  const pageInfo = h("span", { class: "page-info" });
  const prev = h("button", { type: "button", onclick: () => go(state.page - 1) }, "Previous page");
  const next = h("button", { type: "button", onclick: () => go(state.page + 1) }, "Next page");
  let tableEl = h("div", { id: `${key}-table` });

  let filterTimer = null;
  nameInput.addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      state.name = nameInput.value;
      state.page = 1;
      save();
      refresh();
    }, 300);
  });
  regexBox.querySelector("input").addEventListener("change", (e) => {
    state.regex = e.target.checked;
    state.page = 1;
    save();
    refresh();
  });
  sizeSelect.addEventListener("change", () => {
    state.pageSize = Number(sizeSelect.value);
    state.page = 1;
    save();
    refresh();
  });

  function go(page) {
    state.page = Math.max(1, page);
    save();
    refresh();
  }

  function onSort(sortKey) {
    Object.assign(state, nextSort(state, sortKey));
    save();
    refresh();
  }

  async function refresh() {
    const params = new URLSearchParams({
      page: String(state.page), page_size: String(state.pageSize), name: state.name,
      use_regex: String(state.regex), pagination: "true",
    });
    if (state.sort) { // sort= (empty) would mean "unsorted"; without it: by vhost and name
      params.set("sort", state.sort);
      params.set("sort_reverse", String(state.reverse));
    }
    let data;
    try {
      data = await api.get(`${path(ctx.vhost())}?${params}`);
    } catch (err) {
      if (err.error === "page_out_of_range" && state.page > 1) {
        state.page = 1; // the list shrank under us
        save();
        return refresh();
      }
      if (err.status === 400 && state.regex) {
        note.show(`The filter is not a valid regular expression: ${state.name}`, true);
        return undefined;
      }
      throw err;
    }
    note.clear();
    const where = ctx.vhost() ? ` in virtual host ${ctx.vhost()}` : "";
    heading.textContent = `All ${noun} (${num(data.total_count)})${where}`;
    const shown = data.filtered_count === data.total_count ? ""
      : `, ${num(data.filtered_count)} match the filter`;
    pageInfo.textContent = `Page ${data.page} of ${Math.max(1, data.page_count)}${shown}`;
    prev.disabled = data.page <= 1;
    next.disabled = data.page >= data.page_count;
    const fresh = table({
      caption: `${noun[0].toUpperCase()}${noun.slice(1)}, page ${data.page}`,
      columns, rows: data.items, state, onSort, rowKey,
      empty: state.name ? `No ${noun} match the filter.` : `No ${noun}.`,
    });
    fresh.id = `${key}-table`;
    tableEl = swap(tableEl, fresh);
    return data;
  }

  const controls = h("div", { class: "list-controls" },
    h("div", { class: "filter", role: "search" },
      field("Filter", nameInput), regexBox),
    h("div", { class: "pager" }, field("Page size", sizeSelect), pageInfo, prev, next));
  const element = section("", controls, note, tableEl);
  element.querySelector("h2").replaceWith(heading);
  heading.id = `${key}-heading`;
  element.setAttribute("aria-labelledby", heading.id);
  return { element, refresh, state };
}
