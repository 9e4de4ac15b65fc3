// The operations page's "Results sent to the PACS" section: asks /api/results/sendings/
// every few seconds and redraws the counts and the latest sendings (triage/results_api.py).
import { el } from "./lib/dom.js";
import { getJSON } from "./lib/http.js";
import { poll } from "./lib/poll.js";

const table = document.getElementById("results-sendings");

function render(data) {
  for (const status of ["queued", "sent", "failed"]) {
    document.getElementById(`results-${status}`).textContent = String(data.counts[status] ?? 0);
  }
  table.querySelector("tbody").replaceChildren(
    ...data.recent.map((row) =>
      el(
        "tr",
        { class: `results-${row.status}` },
        el("td", { text: row.radiograph }),
        el("td", { text: `${row.destination} (${row.target})` }),
        el("td", { text: row.status }),
        el("td", { text: row.attempts }),
        el("td", {}, el("time", { datetime: row.queued_at, text: row.queued_at })),
        el("td", {}, row.sent_at ? el("time", { datetime: row.sent_at, text: row.sent_at }) : "–"),
        el("td", { text: `${row.reason}${row.retry_at ? ` (next try ${row.retry_at})` : ""}` }),
      ),
    ),
  );
  document.getElementById("results-sendings-empty").hidden = data.recent.length > 0;
}

if (table) {
  poll(async () => render(await getJSON(table.dataset.api)), { intervalMs: 5000, immediate: false, pauseWhenHidden: true });
}
