// Queues: every queue (paged, filtered, sorted by the API), and a form to add one.

import * as api from "../api.js";
import { checkbox, field, fill, form, h, link, messageArea, section, select } from "../dom.js";
import { num, queueFeatures, statRate } from "../format.js";
import { listing } from "../listing.js";
import { parseArguments, queueHref, vhostSelect } from "./shared.js";

export function list(main, _params, ctx) {
  ctx.title("Queues");
  const columns = [
    { key: "vhost", label: "Virtual host" },
    { key: "name", label: "Name",
      render: (q) => link(queueHref(q.vhost, q.name), q.name, { "data-focus": `q-${q.vhost}-${q.name}` }) },
    { key: "type", label: "Type" },
    { key: "features", label: "Features", sort: false, render: queueFeatures },
    { key: "state", label: "State" },
    { key: "messages_ready", label: "Ready", num: true, render: (q) => num(q.messages_ready) },
    { key: "messages_unacknowledged", label: "Unacked", num: true,
      render: (q) => num(q.messages_unacknowledged) },
    { key: "messages", label: "Total", num: true, render: (q) => num(q.messages) },
    { key: "consumers", label: "Consumers", num: true, render: (q) => num(q.consumers) },
    { key: "publish", label: "Incoming", num: true, abbr: "messages published per second",
      sort: "message_stats.publish_details.rate", render: (q) => statRate(q, "publish") },
    { key: "deliver_get", label: "Deliver / get", num: true,
      abbr: "messages delivered or fetched per second",
      sort: "message_stats.deliver_get_details.rate", render: (q) => statRate(q, "deliver_get") },
    { key: "ack", label: "Ack", num: true, abbr: "messages acknowledged per second",
      sort: "message_stats.ack_details.rate", render: (q) => statRate(q, "ack") },
  ];
  const queues = listing({
    key: "queues", noun: "queues", ctx, columns,
    path: (vhost) => (vhost ? `/queues/${api.enc(vhost)}` : "/queues"),
    rowKey: (q) => `${q.vhost}\u0000${q.name}`,
  });
  fill(main, h("h1", {}, "Queues"), queues.element, addQueueForm(ctx, queues.refresh));
  return { refresh: queues.refresh };
}

function addQueueForm(ctx, refresh) {
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
    if (data.type !== "classic") args["x-queue-type"] = data.type;
    const name = data.name.trim();
    if (!name) {
      note.show("A queue needs a name.", true);
      return;
    }
    try {
      await api.put(`/queues/${api.enc(data.vhost)}/${api.enc(name)}`, {
        durable: data.durable, auto_delete: data.auto_delete, arguments: args,
      });
      note.show(`Queue ${name} added.`);
      el.querySelector("[name=name]").value = "";
      await refresh();
    } catch (err) {
      note.show(api.describe(err), true);
    }
  },
  field("Virtual host", vhostSelect(ctx)),
  field("Name", h("input", { name: "name", required: true, spellcheck: "false" })),
  field("Type", select("type", [["classic", "Classic"], ["quorum", "Quorum"],
    ["stream", "Stream"]], "classic")),
  checkbox("Durable", "durable", true),
  checkbox("Auto delete", "auto_delete", false),
  field("Arguments", h("textarea", { name: "arguments", rows: 3, spellcheck: "false",
    placeholder: '{"x-message-ttl": 60000, "x-dead-letter-exchange": "dlx"}' }),
  "JSON object, e.g. x-message-ttl, x-expires, x-max-length, x-dead-letter-exchange, x-max-priority"),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Add queue")),
  note);
  return h("details", { class: "panel" }, h("summary", {}, "Add a new queue"), body);
}
