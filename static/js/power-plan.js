// A reader study's power plan (#power-live): polls the plan's status JSON until it is done or
// failed, moving the progress bar, then reloads once to show the table, the figure and the files.
// Text goes in with textContent only, never innerHTML.
import { getJSON } from "./lib/http.js";
import { poll } from "./lib/poll.js";

function pollPlan(section) {
  const status = document.getElementById("power-status");
  const bar = document.getElementById("power-progress");
  const percent = document.getElementById("power-percent");
  const error = document.getElementById("power-error");
  const ended = (s) => s === "done" || s === "failed";
  if (ended(section.dataset.status)) return;
  poll(
    async () => {
      const data = await getJSON(section.dataset.url);
      status.textContent = data.status;
      status.className = `status ${data.status}`;
      bar.value = data.progress;
      percent.textContent = `${Math.round(data.progress * 100)}%`;
      error.hidden = !data.error;
      error.textContent = data.error || "";
      if (ended(data.status)) {
        window.location.reload(); // the table and the files are drawn by the server
        return false;
      }
      return true;
    },
    { intervalMs: 1500, immediate: false },
  );
}

const section = document.getElementById("power-live");
if (section) pollPlan(section);
