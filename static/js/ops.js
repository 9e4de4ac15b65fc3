// The operations page: asks /api/ops/ every few seconds and rewrites its figures and tables
// in place (no reload). A failed poll is shown and tried again at the next tick.
// The recent readings are drawn too: one point per radiograph, its arrival time
// against its seconds from arrival to score (the table stays under the chart).
import { scatterChart } from "./lib/chart.js";
import { getJSON } from "./lib/http.js";
import { poll } from "./lib/poll.js";

const data = JSON.parse(document.getElementById("ops-data").textContent);
const $ = (id) => document.getElementById(id);
const pad = (n) => String(n).padStart(2, "0");
const fixed = (value, digits) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));

function localTime(iso) {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return "";
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function state(id, text, ok) {
  const node = $(id);
  node.textContent = text;
  node.className = `ops-state ${ok ? "ok" : "bad"}`;
}

// The arrival time on the axis: with seconds when the readings span minutes only.
function clock(spanMs) {
  return (ms) => {
    const t = new Date(ms);
    const hm = `${pad(t.getHours())}:${pad(t.getMinutes())}`;
    if (spanMs < 10 * 60 * 1000) return `${hm}:${pad(t.getSeconds())}`;
    return spanMs < 86400 * 1000 ? hm : `${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${hm}`;
  };
}

function drawChart(recent) {
  const times = recent.map((row) => new Date(row.received_at).getTime()).filter(Number.isFinite);
  const span = times.length ? Math.max(...times) - Math.min(...times) : 0;
  scatterChart($("ops-chart"), {
    title: `Arrival to score of the last ${recent.length} readings: seconds against arrival time`,
    points: recent.map((row) => ({
      key: String(row.radiograph),
      x: new Date(row.received_at).getTime(),
      y: row.seconds,
      title: `Radiograph ${row.radiograph}: arrived ${localTime(row.received_at)}, scored in ${fixed(row.seconds, 1)} s`,
    })),
    xLabel: "Arrived",
    yLabel: "Seconds to score",
    xFormat: clock(span),
  });
}

function render(ops) {
  const day = ops.last_24h;
  $("ops-median").textContent = fixed(day.median_seconds, 1);
  $("ops-p95").textContent = fixed(day.p95_seconds, 1);
  $("ops-scored").textContent = day.scored;
  $("ops-backlog").textContent = day.backlog;
  $("ops-oldest").textContent = fixed(day.oldest_waiting_seconds, 0);
  $("ops-all-scored").textContent = ops.all_time.scored;
  $("ops-all-median").textContent = fixed(ops.all_time.median_seconds, 1);
  $("ops-all-p95").textContent = fixed(ops.all_time.p95_seconds, 1);

  const sources = $("ops-sources").querySelector("tbody");
  sources.replaceChildren(
    ...day.by_source.map((row) => {
      const tr = document.createElement("tr");
      tr.append(cell(row.label), cell(row.arrived), cell(row.scored));
      return tr;
    }),
  );
  $("ops-sources-empty").hidden = day.by_source.length > 0;

  state("ops-broker", ops.broker, ops.broker === "ok");
  state("ops-workers-default", ops.workers.default, ops.workers.default > 0);
  state("ops-workers-ml", ops.workers.ml, ops.workers.ml > 0);
  $("ops-queued-imports").textContent = ops.queued_imports;
  $("ops-live-runs").textContent = ops.live_training_runs;

  const recent = $("ops-recent").querySelector("tbody");
  recent.replaceChildren(
    ...ops.recent.map((row) => {
      const tr = document.createElement("tr");
      const link = document.createElement("a");
      link.href = `/models/radiographs/${row.radiograph}/predictions/`;
      link.textContent = `Radiograph ${row.radiograph}`;
      const first = document.createElement("td");
      first.append(link);
      tr.append(first, cell(row.source), cell(localTime(row.received_at)), cell(localTime(row.scored_at)), cell(fixed(row.seconds, 1)));
      return tr;
    }),
  );
  $("ops-recent-empty").hidden = ops.recent.length > 0;
  drawChart(ops.recent);
  $("ops-updated").textContent = `Updated ${localTime(ops.now)}.`;
}

render(data);
poll(
  async () => {
    render(await getJSON(data.api));
  },
  {
    intervalMs: data.poll_ms,
    immediate: false,
    onError: (error) => {
      $("ops-updated").textContent = `Could not update (${error.detail || error.message}); trying again.`;
    },
  },
);
