// Channels: every channel (mode, prefetch, unacked, rates), and one channel with its consumers.

import * as api from "../api.js";
import { dl, fill, h, link, section, table } from "../dom.js";
import { num, statRate, value, yesNo } from "../format.js";
import { listing } from "../listing.js";

export function channelHref(name) {
  return `#/channels/${api.enc(name)}`;
}

function mode(ch) {
  const modes = [];
  if (ch.confirm) modes.push(h("abbr", { class: "badge", title: "publisher confirms" }, "C"));
  if (ch.transactional) modes.push(h("abbr", { class: "badge", title: "transactional" }, "T"));
  return modes;
}

function prefetch(ch) {
  const parts = [];
  if (ch.prefetch_count) parts.push(`${num(ch.prefetch_count)} per consumer`);
  if (ch.global_prefetch_count) parts.push(`${num(ch.global_prefetch_count)} per channel`);
  return parts.join(", ") || "unlimited";
}

/** The columns of a channel table (also the connection page's). */
export function channelColumns() {
  return [
    { key: "name", label: "Channel",
      render: (ch) => link(channelHref(ch.name), ch.name, { "data-focus": `ch-${ch.name}` }) },
    { key: "vhost", label: "Virtual host" },
    { key: "user", label: "User name" },
    { key: "mode", label: "Mode", sort: "confirm", render: mode },
    { key: "state", label: "State" },
    { key: "messages_unconfirmed", label: "Unconfirmed", num: true,
      render: (ch) => num(ch.messages_unconfirmed) },
    { key: "prefetch_count", label: "Prefetch", render: prefetch },
    { key: "messages_unacknowledged", label: "Unacked", num: true,
      render: (ch) => num(ch.messages_unacknowledged) },
    { key: "publish", label: "Publish", num: true, sort: "message_stats.publish_details.rate",
      render: (ch) => statRate(ch, "publish") },
    { key: "confirm", label: "Confirm", num: true, sort: "message_stats.confirm_details.rate",
      render: (ch) => statRate(ch, "confirm") },
    { key: "deliver_get", label: "Deliver / get", num: true,
      sort: "message_stats.deliver_get_details.rate", render: (ch) => statRate(ch, "deliver_get") },
    { key: "ack", label: "Ack", num: true, sort: "message_stats.ack_details.rate",
      render: (ch) => statRate(ch, "ack") },
  ];
}

export function list(main, _params, ctx) {
  ctx.title("Channels");
  const channels = listing({
    key: "channels", noun: "channels", ctx, columns: channelColumns(),
    path: (vhost) => (vhost ? `/vhosts/${api.enc(vhost)}/channels` : "/channels"),
    rowKey: (ch) => ch.name,
  });
  fill(main, h("h1", {}, "Channels"), channels.element);
  return { refresh: channels.refresh };
}

export function show(main, params, ctx) {
  const { name } = params;
  ctx.title(`Channel ${name}`);
  const overview = h("div");
  const consumers = h("div");

  async function refresh() {
    let ch;
    try {
      ch = await api.get(`/channels/${api.enc(name)}`);
    } catch (err) {
      if (err.status === 404) {
        fill(main, h("h1", {}, `Channel ${name}`),
          h("p", { role: "alert" }, "This channel is closed. ", link("#/channels", "All channels")));
        return;
      }
      throw err;
    }
    const conn = ch.connection_details || {};
    fill(overview, dl([
      ["Connection", conn.name ? link(`#/connections/${api.enc(conn.name)}`, conn.name) : ""],
      ["Virtual host", ch.vhost],
      ["User name", ch.user],
      ["State", ch.state],
      ["Publisher confirms", yesNo(ch.confirm)],
      ["Transactional", yesNo(ch.transactional)],
      ["Prefetch", prefetch(ch)],
      ["Unacked", num(ch.messages_unacknowledged)],
      ["Unconfirmed", num(ch.messages_unconfirmed)],
      ["Uncommitted messages", num(ch.messages_uncommitted)],
      ["Uncommitted acks", num(ch.acks_uncommitted)],
      ["Publish", statRate(ch, "publish")],
      ["Deliver / get", statRate(ch, "deliver_get")],
      ["Ack", statRate(ch, "ack")],
    ]));
    fill(consumers, table({
      caption: "Consumers on this channel",
      columns: [
        { key: "queue", label: "Queue", render: (c) => link(
          `#/queues/${api.enc(c.queue.vhost)}/${api.enc(c.queue.name)}`, c.queue.name) },
        { key: "consumer_tag", label: "Consumer tag", render: (c) => h("code", {}, c.consumer_tag) },
        { key: "ack_required", label: "Ack mode",
          render: (c) => (c.ack_required ? "manual ack" : "auto ack") },
        { key: "prefetch_count", label: "Prefetch count", num: true,
          render: (c) => (c.prefetch_count ? num(c.prefetch_count) : "unlimited") },
        { key: "exclusive", label: "Exclusive", render: (c) => yesNo(c.exclusive) },
        { key: "arguments", label: "Arguments", render: (c) => value(c.arguments || {}) },
      ],
      rows: ch.consumer_details || [],
      empty: "No consumers.",
    }));
  }

  fill(main,
    h("h1", {}, h("span", { class: "kind" }, "Channel "), name),
    h("p", { class: "subtitle" }, link("#/channels", "all channels")),
    section("Overview", overview),
    section("Consumers", consumers));
  return { refresh };
}
