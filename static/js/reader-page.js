// The reading page of a reader study: one case at a time, driven by the readers' API.
//
// GET current/ gives the reader's step and the case on their screen (the server
// records when it showed it); POST answers/ stores an answer and replies with
// the next state, so each case costs one request. Everything shown comes from
// those replies: the page itself knows no truth and no model output.
//
// Phase 1 (model quality): the 224 px crop as the model gets it.
// Phase 2 (full quality): the radiograph in the viewer, the hip's box outlined.
// Phase 3 (model aided): the same plus the model's heatmap (toggle H, opacity
// slider), the reader's own phase-2 answer and the model's top two classes.
// Keys 1-6 answer. While an answer is on its way, or the next image is not in
// yet, the buttons and keys do nothing: a double press cannot answer twice.

import { drawHip } from "./boxes/drawing.js";
import { renderHelp } from "./boxes/hip-panel.js";
import { CLASSES, CLASS_BY_VALUE } from "./boxes/vocabulary.js";
import { el } from "./lib/dom.js";
import { api } from "./lib/http.js";
import { PRESET_KEYS, Viewer, isTyping } from "./viewer.js";
import { VIEWER_KEYS, bindHelpOverlay } from "./viewer-controls.js";

const app = document.getElementById("reading-app");
const $ = (id) => document.getElementById(id);
const ui = {
  stage: $("stage"),
  cropStage: $("crop-stage"),
  crop: $("crop"),
  viewerStage: $("viewer-stage"),
  readout: $("readout"),
  stageStatus: $("stage-status"),
  help: $("help"),
  helpKeys: $("help-keys"),
  phaseName: $("phase-name"),
  progress: $("progress"),
  caseCount: $("case-count"),
  aided: $("aided"),
  ownAnswer: $("own-answer"),
  top2: $("top2"),
  heatmapToggle: $("heatmap-toggle"),
  heatmapOpacity: $("heatmap-opacity"),
  heatmapOpacityValue: $("heatmap-opacity-value"),
  answers: $("answers"),
  error: $("error"),
  phaseHint: $("phase-hint"),
  message: $("message"),
  messageTitle: $("message-title"),
  messageBody: $("message-body"),
};
const urls = { current: app.dataset.currentUrl, answer: app.dataset.answerUrl };
const csrf = app.dataset.csrf;

const PHASE_NAMES = {
  model_quality: "Model quality",
  full_quality: "Full quality",
  model_aided: "Model aided",
};
const PHASE_HINTS = {
  model_quality: "The hip exactly as the model gets it (a left hip is mirrored). Choose the class you see.",
  full_quality:
    "The whole radiograph: the hip to read is outlined. Window/level with the right mouse button, zoom with the wheel.",
  model_aided:
    "Your phase-2 answer differed from the model's. Look again with the model's heatmap and give your final answer.",
};
const HELP_KEYS = [
  ["1 – 6", "answer: " + CLASSES.map((c) => `${c.key} ${c.short}`).join(", ")],
  ["H", "show / hide the model's heatmap (phase 3)"],
  ["?", "this help"],
  ...VIEWER_KEYS,
];
const BOX_COLOR = "#4fc3f7";
const OVERLAY_MAX_SIDE = 2048; // the heatmap layer's resolution; the viewer stretches it over the image

let state = null; // the API's last state
let busy = false; // a request in flight
let ready = false; // the case's image is on screen
let chosen = null; // the answer being sent
let viewer = null;
let viewerAbort = null;
let caseKey = ""; // which case the stage shows
let heatmap = { caseId: null, layer: null };
let retryTimer = null;

const toggleHelp = bindHelpOverlay(ui.help);
renderHelp(ui.helpKeys, HELP_KEYS);

// --- the six answer buttons ----------------------------------------------------------

const buttons = CLASSES.map((cls) =>
  el(
    "button",
    {
      type: "button",
      "data-class": cls.value,
      "aria-pressed": "false",
      "aria-keyshortcuts": cls.key,
      title: `${cls.label} (${cls.key})`,
      onclick: (event) => {
        event.currentTarget.blur();
        submit(cls.value);
      },
    },
    el("kbd", {}, cls.key),
    el("span", { class: "swatch", style: `--c: ${cls.color}` }),
    el("span", {}, cls.label),
  ),
);
ui.answers.replaceChildren(...buttons);

function updateButtons() {
  const enabled = Boolean(state?.case) && ready && !busy;
  for (const button of buttons) {
    button.disabled = !enabled;
    button.setAttribute("aria-pressed", String(button.dataset.class === chosen));
  }
}

// --- errors -----------------------------------------------------------------------------

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
}

// --- talking to the server ------------------------------------------------------------

async function load() {
  if (busy) return;
  busy = true;
  updateButtons();
  try {
    render(await api("GET", urls.current));
  } catch (error) {
    showError(error.detail || error.message);
    showStatus("The reading could not be loaded. Reload the page to try again.");
  } finally {
    busy = false;
    updateButtons();
  }
}

async function submit(answer) {
  const current = state?.case;
  if (!current || busy || !ready) return;
  busy = true;
  chosen = answer;
  updateButtons();
  let reloadAfter = false;
  try {
    const reply = await api(
      "POST",
      urls.answer,
      { case: current.id, condition: current.condition, answer },
      { csrf },
    );
    showError("");
    chosen = null;
    render(reply.state);
  } catch (error) {
    chosen = null;
    showError(error.detail || error.message);
    // The case or phase moved on under us (another tab, a closed phase): show where things stand.
    reloadAfter = error.status === 409 || error.status === 403;
  } finally {
    busy = false;
    updateButtons();
  }
  if (reloadAfter) await load();
}

// --- rendering a state ---------------------------------------------------------------

function render(next) {
  state = next;
  const step = next.step;
  const phaseCount = next.study.phases.length;
  if (step.status !== "open" || !next.case) {
    renderMessage(next);
    return;
  }
  app.dataset.mode = "case";
  app.dataset.condition = step.condition;
  ui.message.hidden = true;
  ui.phaseName.textContent = `Phase ${step.phase} of ${phaseCount} · ${PHASE_NAMES[step.condition]}`;
  ui.phaseHint.textContent = PHASE_HINTS[step.condition] || "";
  ui.progress.max = Math.max(1, step.total);
  ui.progress.value = step.answered;
  ui.progress.textContent = `${step.answered} of ${step.total}`;
  ui.caseCount.textContent = `Case ${next.case.position} of ${step.total}`;
  const key = `${next.case.condition}:${next.case.id}`;
  if (key !== caseKey) {
    caseKey = key;
    showCase(next.case);
  }
  renderAided(next.case);
}

function renderMessage(next) {
  const step = next.step;
  app.dataset.mode = "message";
  app.dataset.status = step.status;
  delete app.dataset.condition;
  ready = false;
  caseKey = "";
  dropViewer();
  ui.crop.removeAttribute("src");
  ui.message.hidden = false;
  ui.messageBody.replaceChildren();
  clearTimeout(retryTimer);
  if (step.status === "washout") {
    const opens = new Date(step.opens_at);
    const when = opens.toLocaleString(undefined, { dateStyle: "full", timeStyle: "short" });
    ui.messageTitle.replaceChildren(`Phase ${step.phase} opens on `, el("time", { datetime: step.opens_at }, when));
    ui.messageBody.append(
      el(
        "p",
        {},
        `You have finished phase ${step.phase - 1}. Phase ${step.phase} (${PHASE_NAMES[step.condition].toLowerCase()}) ` +
          "shows the same hips again, on the whole radiograph; to keep the two readings independent it opens " +
          "only after a washout (the time is your computer's local time).",
      ),
      el("p", {}, "You can close this page now and come back then: you will carry on where you left off."),
    );
    // A page left open moves on by itself once the washout is over (timers are capped at ~24 days).
    const wait = opens.getTime() - Date.now() + 1000;
    if (wait < 2 ** 31 - 1) retryTimer = setTimeout(load, Math.max(1000, wait));
  } else if (step.status === "done") {
    ui.messageTitle.textContent = "Thank you!";
    ui.messageBody.append(
      el("p", {}, `You have finished every phase of ${next.study.name}. Your answers are stored; there is nothing more to do.`),
    );
  } else if (step.status === "preparing") {
    ui.messageTitle.textContent = "This study is being prepared";
    ui.messageBody.append(el("p", {}, "Its cases are not ready yet. Please come back later."));
  } else if (step.status === "closed") {
    ui.messageTitle.textContent = "This study is closed";
    ui.messageBody.append(el("p", {}, "It takes no more answers."));
  } else {
    ui.messageTitle.textContent = "Nothing to read";
    ui.messageBody.append(el("p", {}, "There is no case for you in this study just now."));
  }
  showStatus("");
  updateButtons();
}

function showStatus(text) {
  ui.stageStatus.textContent = text;
}

// --- the case on the stage ---------------------------------------------------------------

function showCase(item) {
  ready = false;
  updateButtons();
  if (item.crop_url) {
    dropViewer();
    ui.viewerStage.hidden = true;
    ui.cropStage.hidden = false;
    showStatus("Loading image…");
    ui.crop.onload = () => {
      if (caseKey !== `${item.condition}:${item.id}`) return;
      ready = true;
      showStatus("");
      updateButtons();
    };
    ui.crop.onerror = () => {
      if (caseKey !== `${item.condition}:${item.id}`) return;
      showStatus("");
      showError("The image could not be loaded. Reload the page to try again.");
    };
    ui.crop.src = item.crop_url;
    return;
  }
  ui.crop.removeAttribute("src");
  ui.cropStage.hidden = true;
  ui.viewerStage.hidden = false;
  showStatus("");
  makeViewer(item);
}

function dropViewer() {
  if (!viewer) return;
  viewerAbort?.abort();
  viewer.resizeObserver.disconnect();
  viewer.canvas.remove();
  viewer = null;
  heatmap = { caseId: null, layer: null };
}

// One viewer per radiograph (the viewer loads its pixels once): a fresh canvas drops the old
// viewer's listeners with it. The page routes the viewer keys to the current one.
function makeViewer(item) {
  const old = viewer;
  dropViewer();
  const canvas = el("canvas", { id: "viewer", tabindex: "0", "aria-label": "The radiograph, with the hip to read outlined" });
  if (old === null) ui.viewerStage.querySelector("canvas")?.remove();
  ui.viewerStage.prepend(canvas);
  viewerAbort = new AbortController();
  const current = new Viewer(canvas, {
    pixelsUrl: item.pixels_url,
    rows: item.rows,
    columns: item.columns,
    windowCenter: item.window_center,
    windowWidth: item.window_width,
    keyboard: false,
    fetchInit: { cache: "no-store", signal: viewerAbort.signal },
  });
  viewer = current;
  const [x, y, width, height] = item.box;
  const hip = { x, y, width, height, side: item.side, hip_class: null };
  const label = item.side === "left" ? "Left hip" : "Right hip";
  current.onRender((ctx, v) => drawHip(ctx, v, hip, { color: BOX_COLOR, label }));
  for (const name of ["window", "view", "load"]) current.on(name, () => updateReadout(current));
  current.on("error", (error) => {
    if (viewer !== current || error.name === "AbortError") return;
    showError(`The image could not be loaded: ${error.message}. Reload the page to try again.`);
  });
  current
    .load()
    .then(() => {
      if (viewer !== current) return;
      ready = true;
      updateButtons();
      canvas.focus({ preventScroll: true });
    })
    .catch(() => {});
  if (item.heatmap_url) loadHeatmap(item, current);
  updateReadout(current);
}

function updateReadout(v) {
  if (v !== viewer) return;
  const parts = [`W ${Math.round(v.width)}`, `L ${Math.round(v.center)}`, `${Math.round(v.scale * 100)}%`];
  if (v.inverted) parts.push("inverted");
  ui.readout.textContent = parts.join(" · ");
  ui.viewerStage.querySelectorAll("[data-preset]").forEach((button) => {
    button.setAttribute("aria-pressed", String(button.dataset.preset === v.activePreset));
  });
  ui.viewerStage.querySelector('[data-action="invert"]')?.setAttribute("aria-pressed", String(v.inverted));
}

// The toolbar, bound once, acts on whichever viewer is current.
ui.viewerStage.querySelectorAll("[data-preset]").forEach((button) => {
  button.addEventListener("click", () => {
    viewer?.preset(button.dataset.preset);
    button.blur();
  });
});
ui.viewerStage.querySelectorAll("[data-action]").forEach((button) => {
  button.addEventListener("click", () => {
    const action = button.dataset.action;
    if (action === "fit") viewer?.fit();
    else if (action === "invert") viewer?.invert();
    else if (action === "help") toggleHelp();
    button.blur();
  });
});

// --- phase 3: the model's reading --------------------------------------------------------

function renderAided(item) {
  const aided = item.condition === "model_aided";
  ui.aided.hidden = !aided;
  if (!aided) {
    ui.ownAnswer.replaceChildren();
    ui.top2.replaceChildren();
    return;
  }
  const own = CLASS_BY_VALUE[item.own_answer];
  ui.ownAnswer.replaceChildren(
    el("span", { class: "swatch", style: `--c: ${own?.color || "#fff"}` }),
    " ",
    own ? own.label : item.own_answer,
  );
  ui.ownAnswer.dataset.class = item.own_answer;
  ui.top2.replaceChildren(
    ...(item.top2 || []).map((entry) => {
      const cls = CLASS_BY_VALUE[entry.class];
      const probability = entry.probability == null ? "" : `${(entry.probability * 100).toFixed(1)}%`;
      return el(
        "li",
        { "data-class": entry.class },
        el("span", { class: "swatch", style: `--c: ${cls?.color || "#fff"}` }),
        " ",
        cls ? cls.label : entry.class,
        el("span", { class: "probability" }, probability),
      );
    }),
  );
}

// The heatmap PNG covers ``heatmap_rect`` of the radiograph; the viewer stretches an overlay
// over the whole image, so the PNG is drawn at its place on a transparent layer of the
// image's proportions.
function loadHeatmap(item, owner) {
  const image = new Image();
  image.onload = () => {
    if (viewer !== owner) return;
    const scale = Math.min(1, OVERLAY_MAX_SIDE / Math.max(item.columns, item.rows));
    const layer = document.createElement("canvas");
    layer.width = Math.max(1, Math.round(item.columns * scale));
    layer.height = Math.max(1, Math.round(item.rows * scale));
    const [x0, y0, x1, y1] = item.heatmap_rect;
    const ctx = layer.getContext("2d");
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(image, x0 * scale, y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale);
    heatmap = { caseId: item.id, layer };
    applyHeatmap();
  };
  image.onerror = () => {
    if (viewer === owner) showError("The model's heatmap could not be loaded.");
  };
  image.src = item.heatmap_url;
}

function applyHeatmap() {
  const opacity = Number(ui.heatmapOpacity.value) / 100;
  ui.heatmapOpacityValue.textContent = `${ui.heatmapOpacity.value}%`;
  if (!viewer) return;
  viewer.setOverlay(ui.heatmapToggle.checked ? heatmap.layer : null, { opacity });
}

ui.heatmapToggle.addEventListener("change", () => {
  applyHeatmap();
  ui.heatmapToggle.blur();
});
ui.heatmapOpacity.addEventListener("input", applyHeatmap);
ui.heatmapOpacity.addEventListener("change", () => ui.heatmapOpacity.blur());

// --- keys -------------------------------------------------------------------------------

window.addEventListener("keydown", (event) => {
  if (isTyping(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (key === "?") {
    toggleHelp();
    event.preventDefault();
    return;
  }
  const cls = CLASSES.find((c) => c.key === key);
  if (cls) {
    event.preventDefault();
    if (!event.repeat) submit(cls.value);
    return;
  }
  if (key === "h" && state?.case?.condition === "model_aided") {
    ui.heatmapToggle.checked = !ui.heatmapToggle.checked;
    applyHeatmap();
    event.preventDefault();
    return;
  }
  if (!viewer || app.dataset.mode !== "case") return;
  if (key === " ") {
    if (event.target?.tagName === "BUTTON") return;
    event.preventDefault();
    if (!viewer.spaceDown) {
      viewer.spaceDown = true;
      if (!viewer.drag) viewer.canvas.style.cursor = "grab";
    }
    return;
  }
  if (key === "i") viewer.invert();
  else if (key === "f") viewer.fit();
  else if (PRESET_KEYS[key]) viewer.preset(PRESET_KEYS[key]);
  else if (key === "+" || key === "=") viewer.zoomAt(1.25, viewer.cssWidth / 2, viewer.cssHeight / 2);
  else if (key === "-" || key === "_") viewer.zoomAt(0.8, viewer.cssWidth / 2, viewer.cssHeight / 2);
  else return;
  event.preventDefault();
});
window.addEventListener("keyup", (event) => {
  if (event.key === " " && viewer) {
    viewer.spaceDown = false;
    if (!viewer.drag) viewer.canvas.style.cursor = "";
  }
});
window.addEventListener("blur", () => {
  if (viewer) viewer.spaceDown = false;
});

// For the browser tests.
window.readingPage = {
  state: () => state,
  viewer: () => viewer,
  ready: () => ready && !busy && Boolean(state),
  busy: () => busy,
  heatmapShown: () => Boolean(viewer?.overlay) && viewer.overlay === heatmap.layer,
  heatmapOpacity: () => viewer?.overlayOpacity ?? null,
};

load();
