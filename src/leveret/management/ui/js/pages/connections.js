// Connections: every client connection, and one connection (client properties, channels,
// close it with a reason).

import * as api from "../api.js";
import { dl, field, fill, form, h, link, messageArea, section, table } from "../dom.js";
import { bytes, num, time, value } from "../format.js";
import { listing } from "../listing.js";
import { channelColumns } from "./channels.js";

export function connectionHref(name) {
  return `#/connections/${api.enc(name)}`;
}

function client(c) {
  const p = c.client_properties || {};
  return [p.product, p.version].filter(Boolean).join(" ") || "";
}

export function list(main, _params, ctx) {
  ctx.title("Connections");
  const columns = [
    { key: "vhost", label: "Virtual host" },
    { key: "name", label: "Name",
      render: (c) => link(connectionHref(c.name), c.name, { "data-focus": `c-${c.name}` }) },
    { key: "user", label: "User name" },
    { key: "state", label: "State" },
    { key: "protocol", label: "Protocol" },
    { key: "client", label: "Client", sort: "client_properties.product", render: client },
    { key: "channels", label: "Channels", num: true, render: (c) => num(c.channels) },
    { key: "recv", label: "From client", num: true, sort: "recv_oct_details.rate",
      render: (c) => `${bytes(c.recv_oct_details ? c.recv_oct_details.rate : 0)}/s` },
    { key: "send", label: "To client", num: true, sort: "send_oct_details.rate",
      render: (c) => `${bytes(c.send_oct_details ? c.send_oct_details.rate : 0)}/s` },
  ];
  const connections = listing({
    key: "connections", noun: "connections", ctx, columns,
    path: (vhost) => (vhost ? `/vhosts/${api.enc(vhost)}/connections` : "/connections"),
    rowKey: (c) => c.name,
  });
  fill(main, h("h1", {}, "Connections"), connections.element);
  return { refresh: connections.refresh };
}

export function show(main, params, ctx) {
  const { name } = params;
  const base = `/connections/${api.enc(name)}`;
  ctx.title(`Connection ${name}`);
  const overview = h("div");
  const props = h("div");
  const channels = h("div");
  const note = messageArea();

  async function refresh() {
    let c;
    try {
      c = await api.get(base);
    } catch (err) {
      if (err.status === 404) {
        fill(main, h("h1", {}, `Connection ${name}`),
          h("p", { role: "alert" }, "This connection is closed. ",
            link("#/connections", "All connections")));
        return;
      }
      throw err;
    }
    const chans = await api.get(`${base}/channels`);
    fill(overview, dl([
      ["Virtual host", c.vhost],
      ["User name", c.user],
      ["State", c.state],
      ["Protocol", c.protocol],
      ["Authentication", c.auth_mechanism],
      ["Client", client(c)],
      ["Peer", `${c.peer_host}:${c.peer_port}`],
      ["Connected at", time(c.connected_at)],
      ["Heartbeat", c.timeout ? `${c.timeout} s` : "none"],
      ["Frame max", `${num(c.frame_max)} bytes`],
      ["Channel max", num(c.channel_max)],
      ["Channels", num(c.channels)],
      ["From client", `${bytes(c.recv_oct)} (${bytes(c.recv_oct_details ? c.recv_oct_details.rate : 0)}/s)`],
      ["To client", `${bytes(c.send_oct)} (${bytes(c.send_oct_details ? c.send_oct_details.rate : 0)}/s)`],
    ]));
    fill(props, value(c.client_properties || {}));
    fill(channels, table({ caption: "Channels of this connection", columns: channelColumns(),
      rows: chans, empty: "No channels." }));
  }

  const closeForm = form({ class: "grid-form" }, async (data) => {
    if (!window.confirm(`Close connection ${name}?`)) return;
    try {
      await api.del(base, { "X-Reason": data.reason });
      ctx.announce(`Connection ${name} closed.`);
      ctx.navigate("#/connections");
    } catch (err) {
      note.show(api.describe(err), true);
    }
  },
  field("Reason", h("input", { name: "reason", value: "Closed via management plugin" }),
    "The client is told this with connection.close (320 CONNECTION_FORCED)."),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "danger" }, "Force close")));

  fill(main,
    h("h1", {}, h("span", { class: "kind" }, "Connection "), name),
    h("p", { class: "subtitle" }, link("#/connections", "all connections")),
    section("Overview", overview),
    section("Client properties", props),
    section("Channels", channels),
    section("Close this connection", note, closeForm));
  return { refresh };
}
