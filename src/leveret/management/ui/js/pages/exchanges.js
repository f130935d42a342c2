// Exchanges: every exchange (paged, filtered, sorted by the API), and a form to add one.

import * as api from "../api.js";
import { checkbox, field, fill, form, h, link, messageArea, select } from "../dom.js";
import { exchangeFeatures, statRate } from "../format.js";
import { listing } from "../listing.js";
import { exchangeHref, parseArguments, vhostSelect } from "./shared.js";

export function list(main, _params, ctx) {
  ctx.title("Exchanges");
  const columns = [
    { key: "vhost", label: "Virtual host" },
    { key: "name", label: "Name", render: (x) => link(exchangeHref(x.vhost, x.name),
      x.name === "" ? "(AMQP default)" : x.name, { "data-focus": `x-${x.vhost}-${x.name}` }) },
    { key: "type", label: "Type" },
    { key: "features", label: "Features", sort: false, render: exchangeFeatures },
    { key: "in", label: "Message rate in", num: true,
      sort: "message_stats.publish_in_details.rate", render: (x) => statRate(x, "publish_in") },
    { key: "out", label: "Message rate out", num: true,
      sort: "message_stats.publish_out_details.rate", render: (x) => statRate(x, "publish_out") },
  ];
  const exchanges = listing({
    key: "exchanges", noun: "exchanges", ctx, columns,
    path: (vhost) => (vhost ? `/exchanges/${api.enc(vhost)}` : "/exchanges"),
    rowKey: (x) => `${x.vhost}\u0000${x.name}`,
  });
  fill(main, h("h1", {}, "Exchanges"), exchanges.element, addExchangeForm(ctx, exchanges.refresh));
  return { refresh: exchanges.refresh };
}

function addExchangeForm(ctx, refresh) {
  const note = messageArea();
  const body = form({ class: "grid-form" }, async (data, el) => {
    note.clear();
    let args;
    try {
      args = parseArguments(data.arguments);
    } catch (err) {
      note.show(err.message, true);
      return;
    }
    const name = data.name.trim();
    if (!name) {
      note.show("An exchange needs a name.", true);
      return;
    }
    try {
      await api.put(`/exchanges/${api.enc(data.vhost)}/${api.enc(name)}`, {
        type: data.type, durable: data.durable, auto_delete: data.auto_delete,
        internal: data.internal, arguments: args,
      });
      note.show(`Exchange ${name} added.`);
      el.querySelector("[name=name]").value = "";
      await refresh();
    } catch (err) {
      note.show(api.describe(err), true);
    }
  },
  field("Virtual host", vhostSelect(ctx)),
  field("Name", h("input", { name: "name", required: true, spellcheck: "false" })),
  field("Type", select("type", ["direct", "fanout", "headers", "topic"], "direct")),
  checkbox("Durable", "durable", true),
  checkbox("Auto delete", "auto_delete", false),
  checkbox("Internal", "internal", false),
  field("Arguments", h("textarea", { name: "arguments", rows: 2, spellcheck: "false",
    placeholder: '{"alternate-exchange": "unrouted"}' }), "JSON object"),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Add exchange")),
  note);
  return h("details", { class: "panel" }, h("summary", {}, "Add a new exchange"), body);
}
