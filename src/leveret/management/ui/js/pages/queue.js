// One queue: its figures, arguments, consumers and bindings; get messages (body as text or
// base64, properties, headers with x-death), publish one, add a binding, purge, delete.

import * as api from "../api.js";
import { dl, field, fill, form, h, link, messageArea, section, select, table } from "../dom.js";
import { bytes, num, queueFeatures, statRate, value, yesNo } from "../format.js";
import { addBindingForm, bindingsTable, publishForm } from "./shared.js";

export function show(main, params, ctx) {
  const { vhost, name } = params;
  const base = `/queues/${api.enc(vhost)}/${api.enc(name)}`;
  ctx.title(`Queue ${name}`);
  const overview = h("div");
  const args = h("div");
  const consumers = h("div");
  const bindings = h("div");
  const bindNote = messageArea();
  const actionNote = messageArea();
  const results = h("div", { class: "messages", "aria-live": "polite" });
  let exchangeNames = [];
  const bindForm = h("div");

  async function refresh() {
    let q;
    try {
      q = await api.get(base);
    } catch (err) {
      if (err.status === 404) {
        fill(main, h("h1", {}, `Queue ${name}`),
          h("p", { role: "alert" }, `There is no queue ${name} in virtual host ${vhost}. `,
            link("#/queues", "All queues")));
        return;
      }
      throw err;
    }
    const [queueBindings, exchanges] = await Promise.all([
      api.get(`${base}/bindings`),
      exchangeNames.length ? null : api.get(`/exchanges/${api.enc(vhost)}?columns=name`),
    ]);
    if (exchanges) {
      exchangeNames = exchanges.map((x) => x.name);
      fill(bindForm, addBindingForm({
        fixed: { vhost, destination: name, destination_type: "queue" },
        exchanges: exchangeNames, onChange: refresh,
      }));
    }
    fill(overview, h("div", { class: "columns" },
      dl([
        ["Virtual host", q.vhost],
        ["Type", q.type],
        ["Features", queueFeatures(q) || "–"],
        ["State", q.state],
        ["Durable", yesNo(q.durable)],
        ["Auto delete", yesNo(q.auto_delete)],
        ["Exclusive", yesNo(q.exclusive)],
      ]),
      dl([
        ["Ready", num(q.messages_ready)],
        ["Unacked", num(q.messages_unacknowledged)],
        ["Total", num(q.messages)],
        ["Message bytes", bytes(q.message_bytes)],
        ["Consumers", num(q.consumers)],
      ]),
      dl([
        ["Incoming", statRate(q, "publish")],
        ["Deliver / get", statRate(q, "deliver_get")],
        ["Ack", statRate(q, "ack")],
      ])));
    const argNames = Object.keys(q.arguments || {});
    fill(args, argNames.length
      ? table({
        caption: "Arguments",
        columns: [{ key: "k", label: "Argument" }, { key: "v", label: "Value" }],
        rows: argNames.map((k) => ({ k, v: value(q.arguments[k]) })),
      })
      : h("p", {}, "None."));
    consumersSection.querySelector("h2").textContent =
      `Consumers (${(q.consumer_details || []).length})`;
    bindingsSection.querySelector("h2").textContent = `Bindings (${queueBindings.length})`;
    fill(consumers, table({
      caption: "Consumers",
      columns: [
        { key: "channel", label: "Channel", render: (c) => link(
          `#/channels/${api.enc(c.channel_details.name)}`, c.channel_details.name) },
        { key: "consumer_tag", label: "Consumer tag", render: (c) => h("code", {}, c.consumer_tag) },
        { key: "ack_required", label: "Ack mode",
          render: (c) => (c.ack_required ? "manual ack" : "auto ack") },
        { key: "prefetch_count", label: "Prefetch count", num: true,
          render: (c) => (c.prefetch_count ? num(c.prefetch_count) : "unlimited") },
        { key: "exclusive", label: "Exclusive", render: (c) => yesNo(c.exclusive) },
        { key: "active", label: "Active", render: (c) => yesNo(c.active !== false) },
        { key: "arguments", label: "Arguments", render: (c) => value(c.arguments || {}) },
      ],
      rows: q.consumer_details || [],
      empty: "No consumers.",
    }));
    fill(bindings, bindingsTable({
      caption: "Bindings to this queue", bindings: queueBindings, side: "source",
      onChange: refresh, note: bindNote,
    }));
  }

  const getForm = form({ class: "grid-form" }, async (data) => {
    actionNote.clear();
    try {
      const got = await api.post(`${base}/get`, {
        count: Number(data.count) || 1, ackmode: data.ackmode, encoding: data.encoding,
        truncate: data.truncate ? Number(data.truncate) : undefined,
      });
      showMessages(results, got, data.ackmode.endsWith("requeue_true"));
      await refresh();
    } catch (err) {
      fill(results);
      actionNote.show(api.describe(err), true);
    }
  },
  field("Ack mode", select("ackmode", [
    ["ack_requeue_true", "Nack, requeue (the message stays in the queue)"],
    ["ack_requeue_false", "Ack (the message is removed)"],
    ["reject_requeue_true", "Reject, requeue"],
    ["reject_requeue_false", "Reject, no requeue (dead-letters it if the queue has a DLX)"],
  ], "ack_requeue_true")),
  field("Encoding", select("encoding", [["auto", "Auto: text if it is UTF-8, else base64"],
    ["base64", "Base64"]], "auto")),
  field("Messages", h("input", { name: "count", type: "number", min: 1, value: 1, required: true })),
  field("Truncate after (bytes)", h("input", { name: "truncate", type: "number", min: 1,
    value: 50000 })),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Get messages")));

  const purge = h("button", { type: "button", class: "danger", onclick: async () => {
    if (!window.confirm(`Purge all messages of queue ${name}?`)) return;
    try {
      await api.del(`${base}/contents`);
      actionNote.show(`Queue ${name} purged.`);
      await refresh();
    } catch (err) {
      actionNote.show(api.describe(err), true);
    }
  } }, "Purge messages");
  const remove = h("button", { type: "button", class: "danger", onclick: async () => {
    if (!window.confirm(`Delete queue ${name}?`)) return;
    try {
      await api.del(base);
      ctx.announce(`Queue ${name} deleted.`);
      ctx.navigate("#/queues");
    } catch (err) {
      actionNote.show(api.describe(err), true);
    }
  } }, "Delete queue");

  const consumersSection = section("Consumers", consumers);
  const bindingsSection = section("Bindings", bindNote, bindings,
    h("h3", {}, "Add binding to this queue"), bindForm);
  fill(main,
    h("h1", {}, h("span", { class: "kind" }, "Queue "), name),
    h("p", { class: "subtitle" }, `in virtual host ${vhost} · `, link("#/queues", "all queues")),
    actionNote,
    section("Overview", overview),
    section("Arguments", args),
    consumersSection,
    bindingsSection,
    section("Publish message", publishForm({
      vhost, exchange: "", routingKey: name,
      hint: "Published through the default exchange, which routes by queue name.",
    })),
    section("Get messages", h("p", { class: "hint" },
      "Getting messages is destructive unless they are requeued: with an ack they leave the queue."),
    getForm, results),
    section("Purge and delete", h("div", { class: "actions" }, purge, remove)));
  return { refresh };
}

function toBase64(text) {
  let bin = "";
  for (const byte of new TextEncoder().encode(text)) bin += String.fromCharCode(byte);
  return btoa(bin);
}

function fromBase64(text) {
  try {
    const bin = atob(text);
    const bytesArr = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8").decode(bytesArr);
  } catch {
    return "(not valid base64)";
  }
}

function showMessages(container, messages, requeued) {
  if (!messages.length) {
    fill(container, h("p", { role: "status" }, "Queue is empty."));
    return;
  }
  const count = `${messages.length} message${messages.length === 1 ? "" : "s"}`;
  fill(container, h("p", { role: "status" }, requeued
    ? `${count}, requeued: still in the queue.`
    : `${count} taken; ${num(messages[messages.length - 1].message_count)} left in the queue.`),
  messages.map((m, i) => {
    const id = `message-${i + 1}`;
    const { headers, ...props } = m.properties || {};
    const asText = m.payload_encoding === "base64" ? fromBase64(m.payload) : m.payload;
    const asBase64 = m.payload_encoding === "base64" ? m.payload : toBase64(m.payload);
    const body = h("pre", { class: "payload", tabindex: "0", "aria-label": `Payload of message ${i + 1}` });
    const textBtn = h("button", { type: "button", class: "small" }, "Text");
    const b64Btn = h("button", { type: "button", class: "small" }, "Base64");
    const view = (mode) => {
      body.textContent = mode === "text" ? asText : asBase64;
      textBtn.setAttribute("aria-pressed", String(mode === "text"));
      b64Btn.setAttribute("aria-pressed", String(mode === "base64"));
    };
    textBtn.addEventListener("click", () => view("text"));
    b64Btn.addEventListener("click", () => view("base64"));
    view(m.payload_encoding === "base64" ? "base64" : "text");
    return h("article", { class: "message-item", "aria-labelledby": id },
      h("h3", { id }, `Message ${i + 1}`),
      dl([
        ["Exchange", m.exchange === "" ? "(AMQP default)" : m.exchange],
        ["Routing key", m.routing_key],
        ["Redelivered", yesNo(m.redelivered)],
        ["Properties", Object.keys(props).length ? value(props) : "none"],
        ["Headers", headers && Object.keys(headers).length ? value(headers) : "none"],
        ["Payload", `${num(m.payload_bytes)} bytes, encoding: ${m.payload_encoding}`],
      ]),
      h("div", { class: "payload-view", role: "group", "aria-label": "Show payload as" },
        h("span", {}, "Show payload as "), textBtn, b64Btn),
      body);
  }));
}
