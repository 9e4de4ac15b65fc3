// Live researcher pages of a reader study.
// - The dashboard (#study-readers): polls the study's progress JSON every few seconds and redraws
//   the status and the readers' table, so it updates without a reload.
// - A report's page (#report-live): polls the report's JSON until it is done or failed, moving the
//   progress bar, then reloads once to show the summary and the files.
// Text goes in with textContent only, never innerHTML.
import { getJSON } from "./lib/http.js";
import { poll } from "./lib/poll.js";

const POLL_MS = 4000;

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function timeNode(label, iso) {
  const small = el("small", `${label} `, "help");
  const t = el("time", fmtTime(iso));
  t.dateTime = iso;
  small.append(t);
  return small;
}

function readerRow(row) {
  const tr = document.createElement("tr");
  tr.dataset.reader = row.code;
  for (const text of [row.code, row.user, row.group, row.training]) tr.append(el("td", text));
  for (const p of row.phases) {
    const td = el("td", null, "phase");
    td.dataset.condition = p.condition;
    td.append(el("span", p.text, "count")); // "0 of 44, plus 10 carried over": the server words it
    if (p.started_at) td.append(document.createElement("br"), timeNode("started", p.started_at));
    if (p.finished_at) td.append(document.createElement("br"), timeNode("finished", p.finished_at));
    tr.append(td);
  }
  const washout = el("td", null, "washout");
  if (row.washout_ends) {
    const t = el("time", fmtTime(row.washout_ends));
    t.dateTime = row.washout_ends;
    washout.append(t);
    if (row.washout_over) washout.append(" (over)");
  } else {
    washout.textContent = "–";
  }
  tr.append(washout);
  tr.append(el("td", row.median_seconds === null ? "–" : row.median_seconds.toFixed(1), "median"));
  tr.append(el("td", row.done ? "yes" : "no", "done"));
  return tr;
}

function renderStudy(table, data) {
  const status = document.getElementById("study-status");
  if (status) {
    status.textContent = data.status;
    status.className = `status ${data.status}`;
  }
  const preparing = document.getElementById("study-preparing");
  if (preparing) preparing.hidden = data.status !== "preparing";
  const error = document.getElementById("study-error");
  if (error) {
    error.hidden = !data.error;
    error.textContent = data.error || "";
  }
  const body = table.tBodies[0];
  if (data.readers.length === 0) return;
  body.replaceChildren(...data.readers.map(readerRow));
}

// While the tab is hidden nothing is asked; a network hiccup waits for the next tick.
function pollStudy(table) {
  poll(async () => renderStudy(table, await getJSON(table.dataset.url)), {
    intervalMs: POLL_MS,
    immediate: false,
    pauseWhenHidden: true,
  });
}

function pollReport(section) {
  const url = section.dataset.url;
  const status = document.getElementById("report-status");
  const stage = document.getElementById("report-stage");
  const bar = document.getElementById("report-progress");
  const percent = document.getElementById("report-percent");
  const error = document.getElementById("report-error");
  const sha = document.getElementById("report-sha256");
  const ended = (s) => s === "done" || s === "failed";
  if (ended(section.dataset.status)) return;
  poll(
    async () => {
      const data = await getJSON(url);
      status.textContent = data.status;
      status.className = `status ${data.status}`;
      stage.textContent = data.stage ? `(${data.stage})` : "";
      bar.value = data.progress;
      percent.textContent = `${Math.round(data.progress * 100)}%`;
      error.hidden = !data.error;
      error.textContent = data.error || "";
      if (data.inputs_sha256) sha.textContent = data.inputs_sha256;
      if (ended(data.status)) {
        window.location.reload(); // the summary and the file list are drawn by the server
        return false;
      }
      return true;
    },
    { intervalMs: 1500, immediate: false },
  );
}

const readersTable = document.getElementById("study-readers");
if (readersTable) pollStudy(readersTable);
const reportSection = document.getElementById("report-live");
if (reportSection) pollReport(reportSection);
