// Parts several pages share: the virtual host choice, JSON inputs, publishing a message,
// bindings (listing, adding, removing).

import * as api from "../api.js";
import { field, form, h, link, messageArea, select, table } from "../dom.js";
import { value } from "../format.js";

/** A <select name="vhost"> of the virtual hosts, the header's choice first. */
export function vhostSelect(ctx, name = "vhost") {
  const vhosts = ctx.vhosts().length ? ctx.vhosts() : ["/"];
  return select(name, vhosts, ctx.vhost() || (vhosts.includes("/") ? "/" : vhosts[0]));
}

/** A JSON object from a text field ("" is {}); Error with a readable message otherwise. */
export function parseObject(text, what = "Arguments") {
  const trimmed = (text || "").trim();
  if (!trimmed) return {};
  let data;
  try {
    data = JSON.parse(trimmed);
  } catch (err) {
    throw new Error(`${what} must be a JSON object: ${err.message}`);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new Error(`${what} must be a JSON object, like {"key": "value"}.`);
  }
  return data;
}

export const parseArguments = (text) => parseObject(text, "Arguments");

export function exchangeHref(vhost, name) {
  return `#/exchanges/${api.enc(vhost)}/${api.enc(name || "amq.default")}`;
}

export function queueHref(vhost, name) {
  return `#/queues/${api.enc(vhost)}/${api.enc(name)}`;
}

/**
 * The "Publish message" form: to ``exchange`` of ``vhost`` (the default exchange: "").
 * ``routingKey`` prefills the routing key.
 */
export function publishForm({ vhost, exchange, routingKey = "", hint }) {
  const note = messageArea();
  const el = form({ class: "grid-form" }, async (data) => {
    note.clear();
    let headers;
    let properties;
    try {
      headers = parseObject(data.headers, "Headers");
      properties = parseObject(data.properties, "Properties");
    } catch (err) {
      note.show(err.message, true);
      return;
    }
    properties.delivery_mode = Number(data.delivery_mode);
    if (Object.keys(headers).length) properties.headers = headers;
    const target = exchange === "" ? "amq.default" : exchange;
    try {
      const result = await api.post(`/exchanges/${api.enc(vhost)}/${api.enc(target)}/publish`, {
        properties, routing_key: data.routing_key, payload: data.payload,
        payload_encoding: data.payload_encoding,
      });
      note.show(result && result.routed ? "Message published."
        : "Message published, but not routed: no queue is bound for that routing key.",
      !(result && result.routed));
    } catch (err) {
      note.show(api.describe(err), true);
    }
  },
  field("Routing key", h("input", { name: "routing_key", value: routingKey, spellcheck: "false" }),
    hint),
  field("Delivery mode", select("delivery_mode", [["1", "1 - Non-persistent"],
    ["2", "2 - Persistent"]], "1")),
  field("Headers", h("textarea", { name: "headers", rows: 2, spellcheck: "false",
    placeholder: '{"x-retry": 1}' }), "JSON object; values may be text, numbers, booleans, lists, objects"),
  field("Properties", h("textarea", { name: "properties", rows: 2, spellcheck: "false",
    placeholder: '{"content_type": "application/json", "correlation_id": "abc"}' }),
  "JSON object: content_type, content_encoding, priority, correlation_id, reply_to, expiration, message_id, timestamp, type, user_id, app_id"),
  field("Payload", h("textarea", { name: "payload", rows: 4, spellcheck: "false" })),
  field("Payload encoding", select("payload_encoding", [["string", "String (UTF-8)"],
    ["base64", "Base64"]], "string")),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Publish message")),
  note);
  return el;
}

function bindingPath(b) {
  const kind = b.destination_type === "queue" ? "q" : "e";
  return `/bindings/${api.enc(b.vhost)}/e/${api.enc(b.source)}/${kind}/${api.enc(b.destination)}`;
}

/**
 * A table of bindings with an Unbind button each. ``side`` says which end to show as the
 * link: "source" (bindings to a queue or exchange) or "destination" (bindings from one).
 */
export function bindingsTable({ caption, bindings, side, onChange, note }) {
  const columns = [
    side === "source"
      ? { key: "source", label: "From",
        render: (b) => (b.source === "" ? "(Default exchange binding)"
          : link(exchangeHref(b.vhost, b.source), b.source)) }
      : { key: "destination", label: "To",
        render: (b) => link(b.destination_type === "queue" ? queueHref(b.vhost, b.destination)
          : exchangeHref(b.vhost, b.destination), b.destination) },
  ];
  if (side === "destination") columns.push({ key: "destination_type", label: "Type" });
  columns.push(
    { key: "routing_key", label: "Routing key", render: (b) => h("code", {}, b.routing_key) },
    { key: "arguments", label: "Arguments", render: (b) => value(b.arguments || {}) },
    { key: "unbind", label: "Action", render: (b) => (b.source === "" ? ""
      : h("button", {
        type: "button", class: "danger small",
        "data-focus": `unbind-${b.source}-${b.destination}-${b.properties_key}`,
        "aria-label": `Unbind ${b.source} from ${b.destination} (routing key "${b.routing_key}")`,
        onclick: async () => {
          try {
            await api.del(`${bindingPath(b)}/${api.enc(b.properties_key)}`);
            note.show(`Binding from ${b.source} to ${b.destination} removed.`);
            await onChange();
          } catch (err) {
            note.show(api.describe(err), true);
          }
        },
      }, "Unbind")) },
  );
  return table({ caption, columns, rows: bindings, empty: "No bindings." });
}

/**
 * "Add binding" form. ``fixed`` is {vhost, source} (from an exchange) or {vhost, destination,
 * destination_type: "queue"} (to a queue); the other end is typed in.
 */
export function addBindingForm({ fixed, exchanges = [], onChange }) {
  const note = messageArea();
  const toQueue = fixed.destination_type === "queue";
  const listId = `exchanges-${Math.random().toString(36).slice(2)}`;
  const el = form({ class: "grid-form" }, async (data, formEl) => {
    note.clear();
    let args;
    try {
      args = parseArguments(data.arguments);
    } catch (err) {
      note.show(err.message, true);
      return;
    }
    const source = toQueue ? data.source.trim() : fixed.source;
    const destination = toQueue ? fixed.destination : data.destination.trim();
    const kind = toQueue ? "q" : (data.destination_type === "queue" ? "q" : "e");
    if (!source || !destination) {
      note.show(toQueue ? "Name the exchange to bind from." : "Name the queue or exchange to bind to.", true);
      return;
    }
    try {
      await api.post(`/bindings/${api.enc(fixed.vhost)}/e/${api.enc(source)}/${kind}/${api.enc(destination)}`,
        { routing_key: data.routing_key, arguments: args });
      note.show(`Bound ${destination} to ${source}.`);
      formEl.querySelector("[name=routing_key]").value = "";
      await onChange();
    } catch (err) {
      note.show(api.describe(err), true);
    }
  },
  toQueue
    ? field("From exchange", h("input", { name: "source", list: listId, required: true,
      spellcheck: "false" }))
    : [field("To", select("destination_type", [["queue", "Queue"], ["exchange", "Exchange"]],
      "queue")),
    field("Name", h("input", { name: "destination", required: true, spellcheck: "false" }))],
  h("datalist", { id: listId }, exchanges.filter((x) => x !== "").map((x) => h("option", { value: x }))),
  field("Routing key", h("input", { name: "routing_key", spellcheck: "false" })),
  field("Arguments", h("textarea", { name: "arguments", rows: 2, spellcheck: "false",
    placeholder: '{"x-match": "all"}' }), "JSON object (headers exchanges match on these)"),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Bind")),
  note);
  return el;
}
