// A small line chart in SVG: a few series over the last minutes, a y axis scaled to a round
// number, and a text alternative with the latest values (the figure's caption and legend).

import { newId } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (and > 0). */
export function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

function tickLabel(v) {
  if (v >= 1e6) return `${v / 1e6}M`;
  if (v >= 1e3) return `${v / 1e3}k`;
  return String(Math.round(v * 100) / 100);
}

/**
 * lineChart({title, unit, seconds, series: [{name, cls, points: [[timeMs, value], ...]}]})
 * -> a <figure>. ``cls`` names the line's CSS class (colour and dash pattern, so lines differ
 * without colour too). The newest point is drawn at the right edge, ``seconds`` before it at
 * the left.
 */
export function lineChart({ title, unit = "", seconds = 600, series, width = 560, height = 180 }) {
  const pad = { left: 48, right: 12, top: 10, bottom: 24 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const newest = Math.max(Date.now(), ...series.flatMap((s) => s.points.map((p) => p[0])));
  const oldest = newest - seconds * 1000;
  const top = niceCeiling(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1]))));
  const x = (t) => pad.left + ((t - oldest) / (seconds * 1000)) * innerW;
  const y = (v) => pad.top + innerH - (v / top) * innerH;

  const titleId = newId("chart");
  const descId = newId("chart");
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart",
    "aria-labelledby": `${titleId} ${descId}`, preserveAspectRatio: "xMidYMid meet",
  });
  for (let i = 0; i <= 4; i += 1) {
    const v = (top * i) / 4;
    root.append(svg("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }));
    const label = svg("text", { class: "tick", x: pad.left - 6, y: y(v) + 4, "text-anchor": "end" });
    label.textContent = tickLabel(v);
    root.append(label);
  }
  const ago = (s) => (s % 60 ? `-${s} s` : `-${s / 60} min`);
  for (const [frac, text] of [[0, ago(seconds)], [0.5, ago(seconds / 2)], [1, "now"]]) {
    const label = svg("text", {
      class: "tick", x: pad.left + frac * innerW, y: height - 6,
      "text-anchor": frac === 0 ? "start" : frac === 1 ? "end" : "middle",
    });
    label.textContent = text;
    root.append(label);
  }
  for (const s of series) {
    const pts = s.points.filter((p) => p[0] >= oldest);
    if (pts.length === 1) {
      root.append(svg("circle", { class: `line ${s.cls}`, cx: x(pts[0][0]), cy: y(pts[0][1]), r: 2 }));
    } else if (pts.length > 1) {
      root.append(svg("polyline", {
        class: `line ${s.cls}`,
        points: pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "),
      }));
    }
  }

  const latest = series.map((s) => {
    const last = s.points[s.points.length - 1];
    return { s, value: last ? last[1] : 0 };
  });
  const figure = document.createElement("figure");
  figure.className = "chart-figure";
  const caption = document.createElement("figcaption");
  const heading = document.createElement("span");
  heading.className = "chart-title";
  heading.id = titleId;
  heading.textContent = title;
  const legend = document.createElement("ul");
  legend.className = "legend";
  legend.id = descId;
  for (const { s, value } of latest) {
    const item = document.createElement("li");
    const key = svg("svg", { class: "key", width: 24, height: 10, "aria-hidden": "true" });
    key.append(svg("line", { class: `line ${s.cls}`, x1: 0, x2: 24, y1: 5, y2: 5 }));
    // the legend gives the figure itself (2,157, not the axis' 2.157k)
    const figureText = value.toLocaleString(undefined, { maximumFractionDigits: 1 });
    item.append(key, ` ${s.name}: ${figureText}${unit}`);
    legend.append(item);
  }
  caption.append(heading, legend);
  figure.append(root, caption);
  return figure;
}
