// Live progress of a training run: polls the API until the run has ended, and
// draws its learning curves (training and validation, per epoch) from the
// run's history as each epoch ends; the history table stays under them.
import { lineChart } from "./lib/chart.js";
import { getJSON } from "./lib/http.js";
import { poll } from "./lib/poll.js";

const section = document.getElementById("run-live");
const statusEl = document.getElementById("run-status");
const epochEl = document.getElementById("run-epoch");
const epochsEl = document.getElementById("run-epochs");
const progress = document.getElementById("run-progress");
const stepsEl = document.getElementById("run-steps");
const timeLeftEl = document.getElementById("run-time-left");
const errorEl = document.getElementById("run-error");
const modelEl = document.getElementById("run-model");
const cancelForm = document.getElementById("run-cancel");
const historyBody = document.querySelector("#run-history tbody");
const COLUMNS = JSON.parse(document.getElementById("run-history").dataset.columns);
const logEl = document.getElementById("run-log");
const ENDED = ["succeeded", "failed", "cancelled"];
const lossChart = document.getElementById("run-loss-chart");
const scoreChart = document.getElementById("run-score-chart");
const scoreHeading = document.getElementById("run-score-heading");

// The curves of each chart: a classifier's loss and accuracy, a detector's loss
// and validation IoU; training solid, validation dashed.
const CURVES = COLUMNS.includes("accuracy")
  ? {
      loss: [["loss", "Training loss"], ["val_loss", "Validation loss"]],
      score: [["accuracy", "Training accuracy"], ["val_accuracy", "Validation accuracy"]],
      scoreTitle: "Accuracy",
    }
  : {
      loss: [["loss", "Training loss"], ["val_loss", "Validation loss"]],
      score: [["val_mean_iou", "Validation mean IoU"], ["val_min_iou", "Validation lowest IoU"]],
      scoreTitle: "Validation IoU",
    };

function curves(history, keys) {
  return keys
    .map(([key, name]) => ({
      key,
      name,
      dashed: key.startsWith("val_"),
      points: history.filter((row) => typeof row[key] === "number").map((row) => [row.epoch, row[key]]),
    }))
    .filter((series) => series.points.length);
}

let drawn = "";
function drawCurves(history, epochs) {
  const key = `${history.length}/${epochs}`;
  if (key === drawn) return;
  drawn = key;
  const xDomain = [1, Math.max(2, epochs || 0)];
  scoreHeading.textContent = CURVES.scoreTitle;
  lineChart(lossChart, {
    title: "Loss per epoch, training and validation",
    series: curves(history, CURVES.loss),
    xLabel: "Epoch",
    yLabel: "Loss",
    integerX: true,
    xDomain,
  });
  lineChart(scoreChart, {
    title: `${CURVES.scoreTitle} per epoch, training and validation`,
    series: curves(history, CURVES.score),
    xLabel: "Epoch",
    yLabel: CURVES.scoreTitle,
    integerX: true,
    xDomain,
  });
}

function fixed(value, digits) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `about ${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `about ${m} min`;
  return `about ${Math.floor(m / 60)} h ${m % 60} min`;
}

function render(run) {
  statusEl.textContent = run.status;
  statusEl.className = `status ${run.status}`;
  epochEl.textContent = run.epoch;
  epochsEl.textContent = run.epochs;
  progress.max = Math.max(run.steps_per_epoch, 1);
  progress.value = Math.min(run.steps, progress.max);
  stepsEl.textContent = `${run.steps}/${run.steps_per_epoch}`;
  const ended = ENDED.includes(run.status);
  timeLeftEl.textContent = ended ? "–" : duration(run.time_left_seconds);
  cancelForm.hidden = ended;
  errorEl.hidden = !run.error;
  errorEl.textContent = run.error || "";
  drawCurves(run.history, run.epochs);
  if (historyBody.rows.length !== run.history.length) {
    historyBody.replaceChildren(...run.history.map((row) => {
      const tr = document.createElement("tr");
      const cells = [
        String(row.epoch), ...COLUMNS.map((key) => fixed(row[key], 4)),
        typeof row.learning_rate === "number" ? String(row.learning_rate) : "–", fixed(row.seconds, 1),
      ];
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }));
  }
  if (logEl.textContent !== run.log) {
    const atEnd = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4;
    logEl.textContent = run.log;  // never innerHTML
    if (atEnd) logEl.scrollTop = logEl.scrollHeight;
  }
  if (run.model_version && !document.getElementById("run-model-link")) {
    const link = document.createElement("a");
    link.id = "run-model-link";
    link.href = run.model_version_url;
    link.textContent = `Model version ${run.model_version}`;
    modelEl.replaceChildren(link);
  }
  modelEl.hidden = !run.model_version;
}

let waitedForModel = 0;  // a run that succeeded gets its model version link a moment later

poll(
  async () => {
    const run = await getJSON(section.dataset.url);
    render(run);
    if (ENDED.includes(run.status)) {
      if (run.status !== "succeeded" || run.model_version || waitedForModel++ > 20) return false;
    }
    return true;
  },
  { intervalMs: 1500 }, // a network hiccup is not the end of the run: the next tick tries again
);
