// Live status of an import job: polls the API until the job ends.
import { getJSON } from "./lib/http.js";
import { poll } from "./lib/poll.js";

const section = document.getElementById("import-status");
const statusEl = document.getElementById("job-status");
const progress = document.getElementById("job-progress");
const totalEl = document.getElementById("job-total");
const rejectedBody = document.querySelector("#rejected tbody");

function render(job) {
  statusEl.textContent = job.status;
  statusEl.className = `status ${job.status}`;
  const done = job.counts.imported + job.counts.present + job.counts.rejected;
  progress.max = Math.max(job.total, 1);
  progress.value = done;
  totalEl.textContent = job.total;
  for (const [key, value] of Object.entries(job.counts)) {
    const el = document.querySelector(`[data-count="${key}"]`);
    if (el) el.textContent = value;
  }
  if (job.rejected.length) {
    rejectedBody.replaceChildren(...job.rejected.map((item) => {
      const row = document.createElement("tr");
      for (const text of [item.name, item.reason]) {
        const cell = document.createElement("td");
        cell.textContent = text;  // never innerHTML: names come from uploads
        row.append(cell);
      }
      return row;
    }));
  }
  if (job.error) {
    let err = section.querySelector(".errors");
    if (!err) { err = document.createElement("p"); err.className = "errors"; section.append(err); }
    err.textContent = job.error;
  }
}

// A network hiccup is not the end of the job: the next tick tries again.
poll(
  async () => {
    const job = await getJSON(section.dataset.url);
    render(job);
    return job.status !== "done" && job.status !== "failed";
  },
  { intervalMs: 1000 },
);
