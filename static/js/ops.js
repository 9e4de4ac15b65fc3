// The operations page: asks /api/ops/ every few seconds and rewrites its figures and tables
// in place (no reload). A failed poll is shown and tried again at the next tick.
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
  $("ops-updated").textContent = `Updated ${localTime(ops.now)}.`;
}

async function poll() {
  try {
    const response = await fetch(data.api, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
  } catch (error) {
    $("ops-updated").textContent = `Could not update (${error.message}); trying again.`;
  }
  setTimeout(poll, data.poll_ms);
}

render(data);
setTimeout(poll, data.poll_ms);
