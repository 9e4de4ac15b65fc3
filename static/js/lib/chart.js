// Small charts drawn as inline SVG (no library, no download): lines per series
// (learning curves), points (arrival-to-score), bars (a histogram) and values
// with their confidence intervals (κ). Colours and sizes are SVG attributes, so
// the Content-Security-Policy needs nothing for them. Each chart replaces the
// children of its container; the page keeps its table as the accessible
// fallback, and the SVG carries a title and role="img".
//
// Every drawn mark has data- attributes saying what it shows (data-series,
// data-x, data-y, data-value), for the tests and for anyone reading the DOM.

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 520;
const HEIGHT = 250;
const MARGIN = { top: 18, right: 16, bottom: 44, left: 58 };
export const PALETTE = ["#2f6fd6", "#d9622b", "#2a9d5c", "#a23fbf", "#c9a100", "#5b6b7c"];

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const finite = (v) => typeof v === "number" && Number.isFinite(v);

// About ``count`` round tick values covering [lo, hi].
export function ticks(lo, hi, count = 5) {
  if (!finite(lo) || !finite(hi)) return [];
  if (hi === lo) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function extent(values, { zero = false, pad = 0.05 } = {}) {
  const list = values.filter(finite);
  if (!list.length) return [0, 1];
  let lo = Math.min(...list);
  let hi = Math.max(...list);
  if (zero) lo = Math.min(lo, 0);
  if (hi === lo) {
    hi = lo + (Math.abs(lo) || 1) * 0.5;
    lo = zero ? lo : lo - (Math.abs(lo) || 1) * 0.5;
  }
  const margin = (hi - lo) * pad;
  return [zero && lo === 0 ? 0 : lo - margin, hi + margin];
}

function label(value) {
  if (!finite(value)) return "";
  const abs = Math.abs(value);
  if (abs !== 0 && (abs >= 10000 || abs < 0.01)) return value.toPrecision(2);
  return String(Number(value.toPrecision(4)));
}

// The frame: axes, grid, tick labels and axis titles; returns the scales.
function frame(root, { xDomain, yDomain, xLabel, yLabel, xTicks, xFormat = label, yFormat = label }) {
  const [x0, x1] = xDomain;
  const [y0, y1] = yDomain;
  const w = WIDTH - MARGIN.left - MARGIN.right;
  const h = HEIGHT - MARGIN.top - MARGIN.bottom;
  const sx = (v) => MARGIN.left + ((v - x0) / (x1 - x0 || 1)) * w;
  const sy = (v) => MARGIN.top + h - ((v - y0) / (y1 - y0 || 1)) * h;
  const axes = svg("g", { class: "axes", "font-size": 12, fill: "#555" });
  for (const v of ticks(y0, y1)) {
    axes.append(
      svg("line", { x1: MARGIN.left, x2: MARGIN.left + w, y1: sy(v), y2: sy(v), stroke: "#e3e7ec" }),
      svg("text", { x: MARGIN.left - 6, y: sy(v) + 4, "text-anchor": "end" }, yFormat(v)),
    );
  }
  for (const v of xTicks ?? ticks(x0, x1)) {
    axes.append(
      svg("line", { x1: sx(v), x2: sx(v), y1: MARGIN.top + h, y2: MARGIN.top + h + 4, stroke: "#888" }),
      svg("text", { x: sx(v), y: MARGIN.top + h + 16, "text-anchor": "middle" }, xFormat(v)),
    );
  }
  axes.append(
    svg("line", { x1: MARGIN.left, x2: MARGIN.left + w, y1: MARGIN.top + h, y2: MARGIN.top + h, stroke: "#888" }),
    svg("line", { x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: MARGIN.top + h, stroke: "#888" }),
  );
  if (xLabel) axes.append(svg("text", { x: MARGIN.left + w / 2, y: HEIGHT - 6, "text-anchor": "middle" }, xLabel));
  if (yLabel) {
    const y = MARGIN.top + h / 2;
    axes.append(svg("text", { x: 12, y, "text-anchor": "middle", transform: `rotate(-90 12 ${y})` }, yLabel));
  }
  root.append(axes);
  return { sx, sy, w, h };
}

function chartRoot(container, title, kind) {
  const root = svg(
    "svg",
    { class: `chart ${kind}`, viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: "100%", role: "img", "aria-label": title },
    svg("title", {}, title),
  );
  container.replaceChildren(root);
  return root;
}

function legend(container, series) {
  const list = document.createElement("ul");
  list.className = "chart-legend";
  for (const s of series) {
    const item = document.createElement("li");
    const mark = svg("svg", { width: 22, height: 10, "aria-hidden": "true" });
    mark.append(
      svg("line", { x1: 1, x2: 21, y1: 5, y2: 5, stroke: s.color, "stroke-width": 2, "stroke-dasharray": s.dashed ? "5 3" : null }),
    );
    item.append(mark, ` ${s.name}`);
    list.append(item);
  }
  container.append(list);
}

// Lines: ``series`` [{name, color, dashed, points: [[x, y], ...]}]; one <path
// class="series"> per series (data-points: how many points it joins) and a dot
// per point. A series without a finite point is left out.
// ``xDomain`` fixes the x axis (a run's epochs, so that the curves grow into it).
export function lineChart(container, { title, series, xLabel = "", yLabel = "", integerX = false, xDomain = null }) {
  const root = chartRoot(container, title, "line-chart");
  const shown = series
    .map((s, i) => ({ color: PALETTE[i % PALETTE.length], ...s, points: s.points.filter(([x, y]) => finite(x) && finite(y)) }))
    .filter((s) => s.points.length);
  const xs = shown.flatMap((s) => s.points.map(([x]) => x));
  const ys = shown.flatMap((s) => s.points.map(([, y]) => y));
  if (!xDomain) xDomain = xs.length ? [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)] : [0, 1];
  else xDomain = [Math.min(xDomain[0], ...xs), Math.max(xDomain[1], ...xs)];
  const yDomain = extent(ys);
  let xTicks;
  if (integerX) xTicks = ticks(...xDomain).filter(Number.isInteger);
  const { sx, sy } = frame(root, { xDomain, yDomain, xLabel, yLabel, xTicks });
  for (const s of shown) {
    const d = s.points.map(([x, y], i) => `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
    const group = svg("g", { class: "series-group", "data-series": s.key ?? s.name });
    group.append(
      svg("path", {
        class: "series",
        "data-series": s.key ?? s.name,
        "data-points": s.points.length,
        d,
        fill: "none",
        stroke: s.color,
        "stroke-width": 2,
        "stroke-dasharray": s.dashed ? "6 4" : null,
      }),
      ...s.points.map(([x, y]) =>
        svg(
          "circle",
          { class: "point", "data-series": s.key ?? s.name, "data-x": x, "data-y": y, cx: sx(x), cy: sy(y), r: 3, fill: s.color },
          svg("title", {}, `${s.name}: ${label(y)} at ${label(x)}`),
        ),
      ),
    );
    root.append(group);
  }
  if (!shown.length) root.append(svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", fill: "#777" }, "No data yet"));
  legend(container, shown);
  return root;
}

// Points: [{x, y, key, title}] (x may be a time in ms with ``xFormat``).
export function scatterChart(container, { title, points, xLabel = "", yLabel = "", xFormat, color = PALETTE[0] }) {
  const root = chartRoot(container, title, "scatter-chart");
  const shown = points.filter((p) => finite(p.x) && finite(p.y));
  const xs = shown.map((p) => p.x);
  const xDomain = extent(xs, { pad: 0.03 });
  const yDomain = extent(shown.map((p) => p.y), { zero: true });
  const { sx, sy } = frame(root, { xDomain, yDomain, xLabel, yLabel, xFormat, xTicks: xs.length ? ticks(...xDomain, 4) : [] });
  for (const p of shown) {
    root.append(
      svg(
        "circle",
        { class: "point", "data-key": p.key, "data-x": p.x, "data-y": p.y, cx: sx(p.x), cy: sy(p.y), r: 4, fill: color, "fill-opacity": 0.75 },
        svg("title", {}, p.title ?? `${label(p.y)}`),
      ),
    );
  }
  if (!shown.length) root.append(svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", fill: "#777" }, "No data yet"));
  return root;
}

// Bars: [{label, value}] side by side (a histogram's bins), each with its count above it.
export function barChart(container, { title, bars, xLabel = "", yLabel = "", color = PALETTE[0] }) {
  const root = chartRoot(container, title, "bar-chart");
  const max = Math.max(1, ...bars.map((b) => b.value).filter(finite));
  const n = Math.max(bars.length, 1);
  const { sy, w } = frame(root, { xDomain: [0, n], yDomain: [0, max * 1.1], xLabel, yLabel, xTicks: [] });
  const slot = w / n;
  bars.forEach((b, i) => {
    const x = MARGIN.left + i * slot;
    const y = sy(b.value || 0);
    root.append(
      svg(
        "rect",
        { class: "bar", "data-label": b.label, "data-value": b.value, x: x + 2, y, width: Math.max(1, slot - 4), height: sy(0) - y, fill: color },
        svg("title", {}, `${b.label}: ${b.value}`),
      ),
      svg("text", { x: x + slot / 2, y: y - 4, "text-anchor": "middle", "font-size": 11, fill: "#333" }, b.value),
      svg("text", { x: x + slot / 2, y: sy(0) + 16, "text-anchor": "middle", "font-size": 11, fill: "#555" }, b.label),
    );
  });
  return root;
}

// Values with confidence intervals, one row each: [{label, value, low, high}],
// on [domainLow, domainHigh]; the value is written beside its dot.
export function intervalChart(container, { title, items, domain = [0, 1], xLabel = "", digits = 3 }) {
  const root = svg("svg", { class: "chart interval-chart", width: "100%", role: "img", "aria-label": title }, svg("title", {}, title));
  container.replaceChildren(root);
  const rowHeight = 36;
  const height = MARGIN.top + items.length * rowHeight + MARGIN.bottom;
  root.setAttribute("viewBox", `0 0 ${WIDTH} ${height}`);
  const left = 130;
  const w = WIDTH - left - MARGIN.right - 60;
  const [d0, d1] = domain;
  const sx = (v) => left + ((Math.min(Math.max(v, d0), d1) - d0) / (d1 - d0)) * w;
  const axisY = MARGIN.top + items.length * rowHeight;
  const axes = svg("g", { class: "axes", "font-size": 12, fill: "#555" });
  for (const v of ticks(d0, d1)) {
    axes.append(
      svg("line", { x1: sx(v), x2: sx(v), y1: MARGIN.top, y2: axisY, stroke: "#e3e7ec" }),
      svg("text", { x: sx(v), y: axisY + 16, "text-anchor": "middle" }, label(v)),
    );
  }
  axes.append(svg("line", { x1: left, x2: left + w, y1: axisY, y2: axisY, stroke: "#888" }));
  if (xLabel) axes.append(svg("text", { x: left + w / 2, y: height - 6, "text-anchor": "middle" }, xLabel));
  root.append(axes);
  items.forEach((item, i) => {
    const y = MARGIN.top + i * rowHeight + rowHeight / 2;
    const g = svg("g", { class: "interval", "data-label": item.key ?? item.label, "data-value": item.value ?? "" });
    g.append(svg("text", { x: left - 8, y: y + 4, "text-anchor": "end", "font-size": 12, fill: "#222" }, item.label));
    if (finite(item.value)) {
      if (finite(item.low) && finite(item.high)) {
        g.append(
          svg("line", { class: "ci", x1: sx(item.low), x2: sx(item.high), y1: y, y2: y, stroke: "#2f6fd6", "stroke-width": 2 }),
          svg("line", { x1: sx(item.low), x2: sx(item.low), y1: y - 6, y2: y + 6, stroke: "#2f6fd6", "stroke-width": 2 }),
          svg("line", { x1: sx(item.high), x2: sx(item.high), y1: y - 6, y2: y + 6, stroke: "#2f6fd6", "stroke-width": 2 }),
        );
      }
      const ci = finite(item.low) && finite(item.high) ? ` (${item.low.toFixed(digits)}–${item.high.toFixed(digits)})` : "";
      g.append(
        svg("circle", { cx: sx(item.value), cy: y, r: 5, fill: "#1c3f7a" }, svg("title", {}, `${item.label}: ${item.value.toFixed(digits)}${ci}`)),
        svg("text", { class: "value", x: left + w + 8, y: y + 4, "font-size": 12, fill: "#222" }, item.value.toFixed(digits)),
      );
    } else {
      g.append(svg("text", { class: "value", x: left + w + 8, y: y + 4, "font-size": 12, fill: "#777" }, "–"));
    }
    root.append(g);
  });
  return root;
}
