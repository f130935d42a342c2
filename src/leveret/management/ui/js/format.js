// Numbers, rates, sizes and times as people read them.

import { h } from "./dom.js";

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

export function num(value) {
  if (value === undefined || value === null || value === "") return "";
  return typeof value === "number" ? integer.format(value) : String(value);
}

/** A rate from a *_details object (or a number): "12.5/s". */
export function rate(details) {
  const value = typeof details === "number" ? details : details && details.rate;
  if (value === undefined || value === null) return "";
  return `${decimal.format(value)}/s`;
}

/** message_stats.<name>_details.rate of an object, formatted. */
export function statRate(obj, name) {
  const stats = obj && obj.message_stats;
  return rate(stats ? stats[`${name}_details`] : undefined) || "0/s";
}

/** message_stats.<name>_details.rate of an object, as a number (for sorting). */
export function statValue(obj, name) {
  const stats = obj && obj.message_stats;
  const details = stats ? stats[`${name}_details`] : undefined;
  return details && typeof details.rate === "number" ? details.rate : 0;
}

export function bytes(value) {
  if (typeof value !== "number") return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = value;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i ? decimal.format(v) : integer.format(v)} ${units[i]}`;
}

/** Milliseconds since the epoch (or seconds, if small) as a local date and time. */
export function time(value) {
  if (value === undefined || value === null || value === "") return "";
  const ms = typeof value === "number" && value < 1e11 ? value * 1000 : value;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function duration(ms) {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hh = Math.floor(s / 3600);
  s -= hh * 3600;
  const mm = Math.floor(s / 60);
  s -= mm * 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${s}s`;
  return `${s}s`;
}

export function yesNo(value) {
  return value ? "yes" : "no";
}

/**
 * Any JSON value (arguments, headers, client properties) as nodes: tables become definition
 * lists, arrays numbered lists (x-death is an array of tables), the rest text.
 */
const TIME_KEYS = new Set(["time", "timestamp"]);

export function value(v, key = "") {
  if (v === null || v === undefined) return h("span", { class: "muted" }, "null");
  if (v === "") return h("span", { class: "muted" }, '""');
  if (typeof v === "number" && TIME_KEYS.has(key) && v > 0) {
    // AMQP timestamps are seconds since the epoch (x-death's time, the timestamp property)
    return [new Date(v * 1000).toISOString().replace(".000Z", "Z"), " ",
      h("span", { class: "muted" }, `(${v})`)];
  }
  if (Array.isArray(v)) {
    if (!v.length) return h("span", { class: "muted" }, "[]");
    return h("ol", { class: "array" }, v.map((item) => h("li", {}, value(item))));
  }
  if (typeof v === "object") {
    const keys = Object.keys(v);
    if (!keys.length) return h("span", { class: "muted" }, "{}");
    return h("dl", { class: "table" },
      keys.map((k) => [h("dt", {}, k), h("dd", {}, value(v[k], k))]));
  }
  if (typeof v === "boolean") return v ? "true" : "false";
  return String(v);
}

/** Queue features as RabbitMQ's list shows them: short badges, each with its meaning. */
export function queueFeatures(q) {
  const args = q.arguments || {};
  const feats = [];
  if (q.durable) feats.push(["D", "durable"]);
  if (q.auto_delete) feats.push(["AD", "auto-delete"]);
  if (q.exclusive) feats.push(["Excl", "exclusive"]);
  if ("x-message-ttl" in args) feats.push(["TTL", `message TTL: ${args["x-message-ttl"]} ms`]);
  if ("x-expires" in args) feats.push(["Exp", `auto-expire: ${args["x-expires"]} ms`]);
  if ("x-dead-letter-exchange" in args) {
    feats.push(["DLX", `dead-letter exchange: "${args["x-dead-letter-exchange"]}"`]);
  }
  if ("x-dead-letter-routing-key" in args) {
    feats.push(["DLK", `dead-letter routing key: "${args["x-dead-letter-routing-key"]}"`]);
  }
  if ("x-max-length" in args) feats.push(["Lim", `max length: ${args["x-max-length"]}`]);
  if ("x-max-length-bytes" in args) {
    feats.push(["Lim B", `max length bytes: ${args["x-max-length-bytes"]}`]);
  }
  if ("x-max-priority" in args) feats.push(["Pri", `max priority: ${args["x-max-priority"]}`]);
  if (args["x-single-active-consumer"]) feats.push(["SAC", "single active consumer"]);
  return badges(feats);
}

export function exchangeFeatures(x) {
  const feats = [];
  if (x.durable) feats.push(["D", "durable"]);
  if (x.auto_delete) feats.push(["AD", "auto-delete"]);
  if (x.internal) feats.push(["I", "internal"]);
  const args = x.arguments || {};
  if (args["alternate-exchange"]) feats.push(["AE", `alternate exchange: "${args["alternate-exchange"]}"`]);
  return badges(feats);
}

function badges(feats) {
  if (!feats.length) return "";
  return h("span", { class: "features" },
    feats.map(([short, long]) => h("abbr", { class: "badge", title: long }, short,
      h("span", { class: "visually-hidden" }, ` (${long})`))));
}
