// The broker's totals over the last minutes, sampled from /api/overview by the page itself (the
// API gives current figures and rates only). Kept in sessionStorage so a reload keeps the chart.

const KEY = "leveret.history";
export const SECONDS = 600;

let samples = load();

function load() {
  try {
    const data = JSON.parse(sessionStorage.getItem(KEY) || "[]");
    return Array.isArray(data) ? data : [];
  } catch {
    return [];
  }
}

function rateOf(stats, name) {
  const details = stats && stats[`${name}_details`];
  return details && typeof details.rate === "number" ? details.rate : 0;
}

/** Add a sample from an /api/overview answer. */
export function record(overview) {
  const now = Date.now();
  const stats = overview.message_stats || {};
  const totals = overview.queue_totals || {};
  samples.push({
    t: now,
    publish: rateOf(stats, "publish"),
    deliver: rateOf(stats, "deliver_get"),
    ack: rateOf(stats, "ack"),
    ready: totals.messages_ready || 0,
    unacked: totals.messages_unacknowledged || 0,
  });
  samples = samples.filter((s) => s.t >= now - SECONDS * 1000);
  try {
    sessionStorage.setItem(KEY, JSON.stringify(samples));
  } catch {
    // storage full or off: the chart still works for this page's life
  }
}

/** The chart's window, seconds: the shortest of 1, 2, 5 or 10 minutes that holds the samples. */
export function span() {
  const oldest = samples.length ? samples[0].t : Date.now();
  const have = (Date.now() - oldest) / 1000;
  return [60, 120, 300, SECONDS].find((s) => s >= have) || SECONDS;
}

/** [[time, value], ...] of one figure. */
export function series(name) {
  return samples.map((s) => [s.t, s[name]]);
}

export function clear() {
  samples = [];
  sessionStorage.removeItem(KEY);
}
