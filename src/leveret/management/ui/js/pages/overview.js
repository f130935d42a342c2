// Overview: totals, queued messages and message rates over the last minutes, the node.

import * as api from "../api.js";
import { lineChart } from "../chart.js";
import { dl, fill, h, link, section, table } from "../dom.js";
import { bytes, duration, num, rate } from "../format.js";
import * as history from "../history.js";

export function overview(main, _params, ctx) {
  ctx.title("Overview");
  const totals = h("div", { class: "totals" });
  const charts = h("div", { class: "charts" });
  const node = h("div");
  const listeners = h("div");
  fill(main,
    h("h1", {}, "Overview"),
    section("Totals", totals),
    section("Messages", charts),
    section("Node", node),
    section("Ports and contexts", listeners));

  async function refresh() {
    const [data, nodes] = await Promise.all([api.get("/overview"), api.get("/nodes")
      .catch(() => [])]);
    history.record(data);
    const objects = data.object_totals || {};
    const queued = data.queue_totals || {};
    const stats = data.message_stats || {};
    const count = (label, value, href) => h("div", { class: "stat" },
      h("span", { class: "stat-value" }, num(value || 0)),
      h("span", { class: "stat-label" }, href ? link(href, label) : label));
    fill(totals,
      h("div", { class: "stat-group", role: "group", "aria-label": "Objects" },
        count("Connections", objects.connections, "#/connections"),
        count("Channels", objects.channels, "#/channels"),
        count("Exchanges", objects.exchanges, "#/exchanges"),
        count("Queues", objects.queues, "#/queues"),
        count("Consumers", objects.consumers)),
      h("div", { class: "stat-group", role: "group", "aria-label": "Queued messages" },
        count("Ready", queued.messages_ready),
        count("Unacked", queued.messages_unacknowledged),
        count("Total", queued.messages)));
    fill(charts,
      lineChart({
        title: "Message rates (per second)", unit: "/s", seconds: history.span(),
        series: [
          { name: "Publish", cls: "s1", points: history.series("publish") },
          { name: "Deliver / get", cls: "s2", points: history.series("deliver") },
          { name: "Ack", cls: "s3", points: history.series("ack") },
        ],
      }),
      lineChart({
        title: "Queued messages", seconds: history.span(),
        series: [
          { name: "Ready", cls: "s1", points: history.series("ready") },
          { name: "Unacked", cls: "s4", points: history.series("unacked") },
        ],
      }),
      dl([
        ["Publish", rate(stats.publish_details)],
        ["Publisher confirm", rate(stats.confirm_details)],
        ["Deliver (manual ack)", rate(stats.deliver_details)],
        ["Deliver (auto ack)", rate(stats.deliver_no_ack_details)],
        ["Get", rate(stats.get_details)],
        ["Redelivered", rate(stats.redeliver_details)],
        ["Acknowledge", rate(stats.ack_details)],
        ["Unroutable (drop)", rate(stats.drop_unroutable_details)],
        ["Unroutable (return)", rate(stats.return_unroutable_details)],
      ], "props rates"));
    const n = nodes[0];
    const monitorsOnly = h("p", { class: "hint" },
      "Shown to monitoring and administrator users.");
    fill(node, n ? dl([
      ["Name", n.name],
      ["Uptime", duration(n.uptime || 0)],
      ["Memory", `${bytes(n.mem_used)}${n.mem_limit ? ` of ${bytes(n.mem_limit)} (high watermark)` : ""}`],
      ["File descriptors", `${num(n.fd_used)} of ${num(n.fd_total)}`],
      ["Disk free", bytes(n.disk_free)],
      ["Versions", `${data.product_name} ${data.product_version}, RabbitMQ ${data.rabbitmq_version} compatible, Python ${data.erlang_version}`],
    ]) : data.node ? dl([["Name", data.node]]) : monitorsOnly);
    // RabbitMQ gives the node's listeners to monitoring users only
    fill(listeners, !data.listeners ? monitorsOnly.cloneNode(true) : table({
      caption: "Listeners",
      columns: [
        { key: "protocol", label: "Protocol" },
        { key: "ip_address", label: "Bound to" },
        { key: "port", label: "Port", num: true },
      ],
      rows: data.listeners || [],
    }));
  }

  return { refresh, sample: true };
}
