// The triage worklist: asks the API every few seconds for radiographs scored since the
// last answer's cursor (with the page's filters), puts them into the table without a
// reload and highlights them; a click on a hip or a row opens the side panel with the
// preview, the heatmaps and the probabilities. Classes are named in words
// (boxes/vocabulary.js, as on the labelling page); the data keeps the keys.
import { classLabel } from "./boxes/vocabulary.js";
import { el } from "./lib/dom.js";
import { getJSON } from "./lib/http.js";
import { poll } from "./lib/poll.js";

const data = JSON.parse(document.getElementById("worklist-data").textContent);
const table = document.getElementById("worklist");
const tbody = table.querySelector("tbody");
const empty = document.getElementById("worklist-empty");
const countEl = document.getElementById("worklist-count");
const notice = document.getElementById("worklist-notice");
const panel = document.getElementById("worklist-panel");
const figure = document.getElementById("panel-figure");
const heatmapToggle = document.getElementById("panel-heatmaps");
const SIDES = ["right", "left"];
const MAX_PAGES_PER_POLL = 10;

const rows = new Map(data.results.map((row) => [row.radiograph, row]));
let cursor = data.cursor;
let count = data.count;
let waiting = 0; // newly scored radiographs counted but not shown (pages after the first)
let stopped = false;
let openId = null;

const pad = (n) => String(n).padStart(2, "0");
function localTime(iso) {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return "";
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}`;
}
const fixed = (p, digits) => (p === null || p === undefined ? "–" : Number(p).toFixed(digits));
const badge = () => el("span", { class: "flag-badge", text: "CT/MRI" });

// Times are shown in the browser's time zone, those the server wrote included.
function localiseTimes(root) {
  for (const time of root.querySelectorAll("time[datetime]")) {
    const text = localTime(time.getAttribute("datetime"));
    if (text) time.textContent = text;
  }
}

function hipCell(hip) {
  if (!hip) return el("td", { class: "hip-cell" }, el("span", { class: "help", text: "not read" }));
  const top2 = hip.top2.flatMap((t, i) => [
    i ? " · " : null,
    el("span", { "data-class": t.class, text: classLabel(t.class) }),
    ` ${fixed(t.probability, 2)}`,
  ]);
  const button = el(
    "button",
    { type: "button", class: "hip", "data-side": hip.side, title: `Show the ${hip.side} hip's heatmap` },
    el("span", { class: "hip-p", text: fixed(hip.fracture_probability, 3) }),
    " ",
    el("span", { class: "hip-class", "data-class": hip.predicted_class, text: classLabel(hip.predicted_class) }),
    hip.flagged ? " " : null,
    hip.flagged ? badge() : null,
    el("span", { class: "hip-top2" }, top2),
    el("span", { class: "hip-source", text: `box: ${hip.box_source}` }),
  );
  return el("td", { class: "hip-cell" }, button);
}

// The reading's DICOM SR and overlay (triage/results_api.py): the table holds the SR URL of a
// placeholder radiograph, 999999999.
function resultsLinks(row) {
  const pattern = table.dataset.resultsUrl || "";
  if (!pattern) return null;
  const url = (kind) => pattern.replace("999999999", String(row.radiograph)).replace(/sr\.dcm$/, `${kind}.dcm`);
  return el(
    "span",
    { class: "results-links" },
    "DICOM: ",
    el("a", { href: url("sr"), download: true, text: "SR" }),
    " · ",
    el("a", { href: url("overlay"), download: true, text: "overlay" }),
  );
}

function renderRow(row) {
  const hips = SIDES.map((side) => row.hips.find((hip) => hip.side === side));
  const tr = el(
    "tr",
    { class: `worklist-row${row.flagged ? " flagged" : ""}`, "data-radiograph": String(row.radiograph) },
    el("td", {}, el("a", { href: row.predictions_url, text: `Radiograph ${row.radiograph}` }), resultsLinks(row)),
    el("td", {}, el("time", { datetime: row.arrived, text: localTime(row.arrived) })),
    el("td", {}, el("time", { datetime: row.scored_at, text: localTime(row.scored_at) })),
    el("td", { text: row.study_date || "–" }),
    el("td", { text: row.patient }),
    ...hips.map(hipCell),
    el("td", { class: "max-p", text: fixed(row.max_fracture_probability, 3) }),
    el("td", { class: "flag-cell" }, row.flagged ? badge() : null),
  );
  return tr;
}

// Where a row belongs among those shown: first when newest first, else by P(fracture).
function comesBefore(a, b) {
  if (data.order === "probability" && a.max_fracture_probability !== b.max_fracture_probability) {
    return a.max_fracture_probability > b.max_fracture_probability;
  }
  if (a.scored_at !== b.scored_at) return a.scored_at > b.scored_at;
  return a.radiograph > b.radiograph;
}

function place(tr, row) {
  for (const other of tbody.querySelectorAll("tr.worklist-row")) {
    const shown = rows.get(Number(other.dataset.radiograph));
    if (shown && shown !== row && comesBefore(row, shown)) {
      tbody.insertBefore(tr, other);
      return;
    }
  }
  tbody.append(tr);
}

function highlight(tr) {
  tr.classList.add("new");
  setTimeout(() => tr.classList.remove("new"), 4000);
}

function receive(row) {
  const known = rows.get(row.radiograph);
  if (known && known.scored_at === row.scored_at) return; // seen already (the cursor overlaps)
  if (data.page !== 1) {
    if (!known) waiting += 1;
    return;
  }
  const old = tbody.querySelector(`tr[data-radiograph="${row.radiograph}"]`);
  if (old) old.remove();
  if (!known) count += 1;
  rows.set(row.radiograph, row);
  const tr = renderRow(row);
  place(tr, row);
  highlight(tr);
  if (openId === row.radiograph) openPanel(row.radiograph, null);
}

function showNotice(text) {
  notice.textContent = text;
  notice.hidden = !text;
}

function refreshStatus() {
  countEl.textContent = String(count);
  empty.hidden = rows.size > 0;
  if (waiting) {
    showNotice(`${waiting} newly scored radiograph${waiting === 1 ? "" : "s"}: see the first page.`);
  }
}

async function fetchNewer() {
  let page = 1;
  let next = cursor;
  for (;;) {
    const params = new URLSearchParams({ ...data.filters, after: cursor, page: String(page) });
    const answer = await getJSON(`${data.api}?${params}`);
    if (answer.model_version !== data.model_version) {
      stopped = true;
      showNotice("The active classifier has changed: reload the page to see its worklist.");
      return;
    }
    // Oldest first, so that rows arriving together end up newest on top.
    for (const row of [...answer.results].reverse()) receive(row);
    if (page === 1) next = answer.cursor;
    if (page >= answer.pages || page >= MAX_PAGES_PER_POLL) break;
    page += 1;
  }
  cursor = next;
  refreshStatus();
}

// Nothing is asked while the tab is hidden; a dropped request is tried again next time.
function startPolling() {
  poll(
    async () => {
      if (stopped) return false;
      await fetchNewer();
      return !stopped;
    },
    { intervalMs: data.poll_ms, immediate: false, pauseWhenHidden: true, onError: (error) => console.warn(error) },
  );
}

// ----------------------------------------------------------------- side panel

function percent(x, y, w, h, row) {
  const cols = Math.max(row.columns, 1);
  const rws = Math.max(row.rows, 1);
  return `left:${(100 * x) / cols}%;top:${(100 * y) / rws}%;width:${(100 * w) / cols}%;height:${(100 * h) / rws}%`;
}

function hipSection(hip, selected) {
  const classes = Object.entries(hip.probabilities).sort((a, b) => b[1] - a[1]);
  const body = el("tbody");
  for (const [name, p] of classes) {
    const meter = el("meter", { min: "0", max: "1", value: String(p) });
    body.append(
      el(
        "tr",
        name === hip.predicted_class ? { class: "predicted" } : {},
        el("td", { "data-class": name, text: classLabel(name) }),
        el("td", { text: fixed(p, 3) }),
        el("td", { class: "bar-cell" }, meter),
      ),
    );
  }
  return el(
    "section",
    { class: `card prediction-hip${selected ? " selected" : ""}`, "data-side": hip.side },
    el("h3", { text: `${hip.side[0].toUpperCase()}${hip.side.slice(1)} hip` }, hip.flagged ? " " : null, hip.flagged ? badge() : null),
    el(
      "p",
      {},
      "Fracture probability ",
      el("strong", { class: "fracture-probability", text: fixed(hip.fracture_probability, 3) }),
      ` · top 2: ${hip.top2.map((t) => classLabel(t.class)).join(", ")}`,
    ),
    el(
      "table",
      { class: "table probabilities" },
      el("thead", {}, el("tr", {}, el("th", { text: "Class" }), el("th", { text: "Probability" }), el("th"))),
      body,
    ),
    el("p", { class: "help", text: `Box (${hip.box_source}): ${hip.box.map((v) => Math.round(v)).join(", ")}` }),
  );
}

function applyHeatmapToggle() {
  for (const img of figure.querySelectorAll(".prediction-heatmap")) img.hidden = !heatmapToggle.checked;
}

function openPanel(id, side) {
  const row = rows.get(id);
  if (!row) return;
  openId = id;
  document.getElementById("panel-title").textContent = `Radiograph ${row.radiograph}`;
  document.getElementById("panel-meta").textContent =
    `${row.patient} · study ${row.study_date || "date unknown"} · arrived ${localTime(row.arrived)}`;
  document.getElementById("panel-link").href = row.predictions_url;
  const preview = el("img", {
    class: "prediction-preview",
    src: row.preview_url,
    alt: `Radiograph ${row.radiograph}`,
    width: String(row.columns),
    height: String(row.rows),
  });
  figure.replaceChildren(preview);
  for (const hip of row.hips) {
    const [x0, y0, x1, y1] = hip.heatmap_rect;
    const [bx, by, bw, bh] = hip.box;
    figure.append(
      el("img", {
        class: "prediction-heatmap",
        src: hip.heatmap_url,
        alt: `${hip.side} hip heatmap`,
        "data-side": hip.side,
        style: percent(x0, y0, x1 - x0, y1 - y0, row),
      }),
      el("div", { class: "prediction-box", "data-side": hip.side, style: percent(bx, by, bw, bh, row) },
        el("span", { text: hip.side })),
    );
  }
  applyHeatmapToggle();
  const ordered = SIDES.map((s) => row.hips.find((hip) => hip.side === s)).filter(Boolean);
  document.getElementById("panel-hips").replaceChildren(...ordered.map((hip) => hipSection(hip, hip.side === side)));
  for (const tr of tbody.querySelectorAll("tr.selected")) tr.classList.remove("selected");
  tbody.querySelector(`tr[data-radiograph="${id}"]`)?.classList.add("selected");
  panel.hidden = false;
  panel.scrollTop = 0;
}

function closePanel() {
  panel.hidden = true;
  openId = null;
  for (const tr of tbody.querySelectorAll("tr.selected")) tr.classList.remove("selected");
}

tbody.addEventListener("click", (event) => {
  if (event.target.closest("a")) return; // the link to the predictions page
  const tr = event.target.closest("tr.worklist-row");
  if (!tr) return;
  const hip = event.target.closest("button.hip");
  openPanel(Number(tr.dataset.radiograph), hip ? hip.dataset.side : null);
});
document.getElementById("panel-close").addEventListener("click", closePanel);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !panel.hidden) closePanel();
});
heatmapToggle.addEventListener("change", applyHeatmapToggle);

localiseTimes(table);
startPolling();
