// The labelling page: one radiograph, the labeller's boxes, autosave, submit.
//
// The work saves itself: a PUT of the whole state ~800 ms after each change,
// and again (keepalive) when the tab is hidden or closed. Until the server
// has it, the state is also kept in localStorage, so a reload or a crash
// loses nothing. The page only ever shows what the API gives this labeller:
// their own hips, and the detector's proposals for the image (dashed; P accepts
// the next one, Shift+P all; an accepted proposal is saved with source "model",
// and the server records its provenance). A proposal carries the model's class
// only where the site turned PROPOSALS_SHOW_CLASS on; by default it is a box.

import { el } from "./lib/dom.js";
import { ApiError, api } from "./lib/http.js";
import { PROPOSAL_COLOR, hipPayload } from "./boxes/drawing.js";
import { HipPanel, renderClassLegend, renderHelp } from "./boxes/hip-panel.js";
import { BoxTool } from "./boxes/tool.js";
import { CLASS_BY_VALUE, LABEL_KEYS, SIDES } from "./boxes/vocabulary.js";
import { bindHelpOverlay, bindViewerControls, openViewer } from "./viewer-controls.js";

const SAVE_DELAY_MS = 800;
const app = document.getElementById("label-app");
const data = app.dataset;
const $ = (id) => document.getElementById(id);
const ui = {
  canvas: $("viewer"),
  readout: $("readout"),
  chooser: $("exclude-chooser"),
  help: $("help"),
  helpKeys: $("help-keys"),
  hipList: $("hip-list"),
  hipsEmpty: $("hips-empty"),
  proposals: $("proposals"),
  proposalList: $("proposal-list"),
  acceptProposals: $("accept-proposals"),
  legend: $("class-legend"),
  excluded: $("excluded"),
  note: $("note"),
  problems: $("problems"),
  error: $("error"),
  saveStatus: $("save-status"),
  submit: $("submit"),
  status: $("assignment-status"),
};
const toggleHelp = bindHelpOverlay(ui.help);

const apiUrl = data.apiUrl;
// Drafts are kept per user: on a shared workstation nobody sees another's work.
const DRAFT_PREFIX = "hipstudy:label-draft:";
const draftKey = `${DRAFT_PREFIX}${data.userId}:${data.assignmentId}`;
const DRAFT_DAYS = 14;
const readOnly = data.status === "submitted";

// --- the viewer starts fetching the pixels at once --------------------------------

const viewer = openViewer(ui.canvas, data, showError);

const tool = new BoxTool(viewer, {
  editable: !readOnly,
  onChange: changed,
  onSubmit: submit,
  onHelp: toggleHelp,
  onExcludeChooser: (open) => {
    ui.chooser.hidden = !open;
  },
});
tool.disabled = true; // until the saved state is in
const panel = new HipPanel(tool, {
  list: ui.hipList,
  empty: ui.hipsEmpty,
  excluded: ui.excluded,
  problems: ui.problems,
  readOnly,
  excludedHint: "Drawing a box clears the exclusion.",
});
tool.onSelect(() => renderPanel());
bindViewerControls(viewer, app, { readout: ui.readout, onHelp: toggleHelp });
renderHelp(ui.helpKeys, LABEL_KEYS);

// For the tests and the benchmark.
window.labelPage = { viewer, tool, state: () => payload(), saved: () => savedVersion === version };

// --- active time: seconds the tab was visible -----------------------------------------

let activeBase = 0;
let activeAccumulated = 0;
let visibleSince = document.visibilityState === "visible" ? performance.now() : null;

function activeSeconds() {
  const running = visibleSince === null ? 0 : performance.now() - visibleSince;
  return Math.round((activeBase + (activeAccumulated + running) / 1000) * 10) / 10;
}

// --- state and autosave -----------------------------------------------------------------

let loaded = false;
let version = 0; // bumped by every change
let savedVersion = 0; // the version the server has
let saving = null; // the PUT in flight
let saveTimer = null;
let retryDelay = 0;
let lastSavedAt = null;
let saveProblem = ""; // why the last save failed
let submitting = false;
let submitted = readOnly;
let nextUrl = "/label/";
let savedActive = 0; // the active seconds the server has
const ACTIVE_STEP_S = 5; // active time alone is sent when it grew by this much

function payload() {
  const state = tool.getState();
  return {
    // A box without a class waits on this computer until it has one.
    hips: state.hips.filter((hip) => hip.hip_class).map(hipPayload),
    excluded: state.excluded,
    note: ui.note.value,
    active_seconds: activeSeconds(),
  };
}

function comparable(state) {
  return JSON.stringify({
    hips: (state.hips || [])
      .map((hip) => [hip.side, hip.hip_class || "", ...["x", "y", "width", "height"].map((k) => Math.round(hip[k]))])
      .sort(),
    excluded: state.excluded || "",
    note: state.note || "",
  });
}

function writeDraft() {
  try {
    const state = tool.getState();
    localStorage.setItem(
      draftKey,
      JSON.stringify({ hips: state.hips, excluded: state.excluded, note: ui.note.value, at: Date.now() }),
    );
  } catch {
    // Storage full or refused: the server copy is all there is.
  }
}

function readDraft() {
  try {
    return JSON.parse(localStorage.getItem(draftKey) || "null");
  } catch {
    return null;
  }
}

// Forget drafts nobody came back to.
function pruneDrafts() {
  try {
    const limit = Date.now() - DRAFT_DAYS * 86400 * 1000;
    for (let i = localStorage.length - 1; i >= 0; i--) {
      const key = localStorage.key(i);
      if (!key?.startsWith(DRAFT_PREFIX)) continue;
      const at = JSON.parse(localStorage.getItem(key) || "{}").at || 0;
      if (at < limit) localStorage.removeItem(key);
    }
  } catch {
    // unreadable storage: nothing to prune
  }
}
pruneDrafts();

function clearDraft() {
  try {
    localStorage.removeItem(draftKey);
  } catch {
    // nothing to do
  }
}

let hadHips = 0;
function changed() {
  if (!loaded || submitted) return;
  if (tool.excluded && hadHips && !tool.hips.length) {
    showNotice(`Excluded: the ${hadHips === 1 ? "box was" : "boxes were"} removed (Ctrl+Z brings them back).`);
  }
  hadHips = tool.hips.length;
  version += 1;
  writeDraft();
  renderPanel();
  scheduleSave(SAVE_DELAY_MS);
}

function scheduleSave(delay) {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(save, delay);
  renderStatus();
}

function localBlockers() {
  // Two boxes on one side would be refused: keep them here until fixed.
  return tool.problems().filter((problem) => problem.startsWith("Two boxes"));
}

// After a save, give each box the id the server gave its hip (one per side).
function adoptIds(sent, answer) {
  const bySide = Object.fromEntries((answer?.hips || []).map((hip) => [hip.side, hip.id]));
  for (const { key, side } of sent) {
    const hip = tool.hips.find((h) => h.key === key);
    if (hip && bySide[side] != null && hip.side === side) hip.id = bySide[side];
  }
}

async function save() {
  clearTimeout(saveTimer);
  saveTimer = null;
  if (!loaded || submitted || submitting) return;
  if (saving) return; // the PUT in flight reschedules when it ends
  if (version === savedVersion) return renderStatus();
  if (localBlockers().length) {
    saveProblem = "blocked";
    return renderStatus();
  }
  const target = version;
  const body = payload();
  const sent = tool.hips.filter((hip) => hip.hip_class).map((hip) => ({ key: hip.key, side: hip.side }));
  saveProblem = "";
  saving = api("PUT", apiUrl, body, { csrf: data.csrf });
  renderStatus();
  let again = true;
  try {
    const answer = await saving;
    adoptIds(sent, answer);
    savedVersion = Math.max(savedVersion, target);
    savedActive = Math.max(savedActive, body.active_seconds);
    lastSavedAt = Date.now();
    retryDelay = 0;
    hideError();
    if (savedVersion === version && !tool.hips.some((hip) => !hip.hip_class)) clearDraft();
    else writeDraft();
  } catch (error) {
    if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
      // Refused: say why, keep the work, wait for the next change.
      saveProblem = "refused";
      again = false;
      showError(
        error.status === 403
          ? `${error.detail} Your work is kept on this computer; reload the page or log in again.`
          : `Not saved: ${error.detail}`,
      );
    } else {
      saveProblem = "retrying";
      retryDelay = Math.min(30000, Math.max(2000, retryDelay * 2));
      again = false;
      scheduleSave(retryDelay);
    }
  } finally {
    saving = null;
  }
  if (again && version !== savedVersion && !submitting) scheduleSave(SAVE_DELAY_MS);
  renderStatus();
}

// The tab is hidden or closing: send what we have now, even if the page goes
// away (keepalive). Nothing is sent when the server is up to date.
function flush() {
  if (!loaded || submitted || submitting) return;
  if (localBlockers().length) return;
  const body = payload();
  if (version === savedVersion && body.active_seconds - savedActive < ACTIVE_STEP_S) return;
  const target = version;
  const sent = tool.hips.filter((hip) => hip.hip_class).map((hip) => ({ key: hip.key, side: hip.side }));
  clearTimeout(saveTimer);
  api("PUT", apiUrl, body, { csrf: data.csrf, keepalive: true }).then(
    (answer) => {
      adoptIds(sent, answer);
      savedVersion = Math.max(savedVersion, target);
      savedActive = Math.max(savedActive, body.active_seconds);
      lastSavedAt = Date.now();
      if (savedVersion === version && !tool.hips.some((hip) => !hip.hip_class)) clearDraft();
      renderStatus();
    },
    () => scheduleSave(SAVE_DELAY_MS),
  );
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") {
    if (visibleSince !== null) activeAccumulated += performance.now() - visibleSince;
    visibleSince = null;
    flush();
  } else if (visibleSince === null) {
    visibleSince = performance.now();
  }
});
window.addEventListener("pagehide", flush);

ui.note.addEventListener("input", changed);
ui.submit.addEventListener("click", submit);
ui.acceptProposals.addEventListener("click", () => {
  tool.acceptProposals({ all: true });
  ui.acceptProposals.blur();
});

// --- submit ---------------------------------------------------------------------------

async function submit() {
  if (!loaded || submitting || submitted) return;
  const problems = tool.problems();
  if (problems.length) return showError(problems.join(" "));
  if (!tool.hips.length && !tool.excluded) {
    return showError("Draw a box around each hip, or exclude the image (E, then 1–3).");
  }
  submitting = true;
  clearTimeout(saveTimer);
  ui.submit.disabled = true;
  ui.submit.textContent = "Submitting…";
  renderStatus();
  if (saving) await saving.catch(() => {});
  try {
    const answer = await api("POST", `${apiUrl}submit/`, payload(), { csrf: data.csrf });
    submitted = true;
    tool.disabled = true;
    clearDraft();
    ui.saveStatus.textContent = "Submitted — opening the next image…";
    ui.saveStatus.className = "save-status ok";
    window.location.assign(answer?.next_url || nextUrl);
  } catch (error) {
    submitting = false;
    ui.submit.disabled = false;
    ui.submit.replaceChildren("Submit", el("kbd", {}, "Enter"));
    showError(`Not submitted: ${error.detail || error.message}`);
    if (version !== savedVersion) scheduleSave(SAVE_DELAY_MS);
    renderStatus();
  }
}

// --- the panel ------------------------------------------------------------------------------

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = false;
}

function hideError() {
  ui.error.hidden = true;
  ui.error.textContent = "";
}

let notice = null; // {text, until}: a passing message in the notice box
function showNotice(text, ms = 6000) {
  notice = { text, until: Date.now() + ms };
  setTimeout(renderPanel, ms + 50);
  renderPanel();
}


function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  const m = Math.round(s / 60);
  return m < 60 ? `${m} min ago` : `${Math.round(m / 60)} h ago`;
}

function renderStatus() {
  let text;
  let kind = "";
  if (!loaded) text = "Loading…";
  else if (submitted) {
    text = "Submitted";
    kind = "ok";
  } else if (submitting) {
    text = "Submitting…";
    kind = "pending";
  } else if (saveProblem === "blocked") {
    text = "Not saved — one hip per side";
    kind = "bad";
  } else if (saveProblem === "refused") {
    text = "Not saved — see the message below";
    kind = "bad";
  } else if (saveProblem === "retrying") {
    text = "Not saved — retrying";
    kind = "bad";
  } else if (saving) {
    text = "Saving…";
    kind = "pending";
  } else if (version !== savedVersion) {
    text = "Saving…";
    kind = "pending";
  } else if (lastSavedAt) {
    text = `Saved ${ago(Date.now() - lastSavedAt)}`;
    kind = "ok";
  } else {
    text = "Saved";
    kind = "ok";
  }
  if (ui.saveStatus.textContent !== text) ui.saveStatus.textContent = text;
  ui.saveStatus.className = `save-status ${kind}`;
  ui.saveStatus.dataset.state = submitted ? "submitted" : version === savedVersion && !saving ? "saved" : "unsaved";
}
setInterval(renderStatus, 1000);

function renderPanel() {
  const selected = tool.selected;
  const notices = notice && (readOnly || Date.now() < notice.until) ? [notice.text] : [];
  panel.render({ notices });
  renderProposals();
  renderClassLegend(ui.legend, {
    active: selected?.hip_class,
    onPick: readOnly ? null : (value) => selected && tool.setClass(value),
  });
  renderStatus();
}

// The detector's proposals not yet accepted, each with its own Accept button.
function renderProposals() {
  const proposals = loaded && !submitted ? tool.visibleProposals() : [];
  ui.proposals.hidden = proposals.length === 0;
  ui.proposalList.replaceChildren(
    ...proposals.map((proposal) =>
      el(
        "li",
        { "data-side": proposal.side, title: "A model's proposal: not a label until you accept it" },
        el("span", { class: "swatch", style: `--c: ${PROPOSAL_COLOR}; border-style: dashed` }),
        el("span", { class: "side" }, SIDES[proposal.side]),
        el(
          "span",
          {},
          `score ${proposal.score.toFixed(2)}`,
          CLASS_BY_VALUE[proposal.hip_class] ? ` · ${CLASS_BY_VALUE[proposal.hip_class].short}` : "",
        ),
        el(
          "button",
          {
            type: "button",
            style: "padding: .15rem .55rem",
            "aria-label": `Accept the ${proposal.side} proposal`,
            onclick: () => tool.acceptProposals({ side: proposal.side }),
          },
          "Accept",
        ),
      ),
    ),
  );
}

// --- start: the saved state, or the unsaved draft of this computer ------------------------

function applyServer(assignment) {
  activeBase = Number(assignment.active_seconds) || 0;
  savedActive = activeBase;
  nextUrl = assignment.next_url || nextUrl;
  ui.status.textContent = assignment.status === "submitted" ? "Submitted" : "In progress";
  const serverState = { hips: assignment.hips || [], excluded: assignment.excluded || "", note: assignment.note || "" };
  const draft = readDraft();
  let state = serverState;
  let restoredDraft = false;
  if (!readOnly && draft && comparable(draft) !== comparable(serverState)) {
    // The server never got these changes (tab closed while offline, a reload
    // before the save): take them back and save them now.
    const ids = Object.fromEntries(serverState.hips.map((hip) => [hip.side, hip.id]));
    state = { ...draft, hips: draft.hips.map((hip) => ({ ...hip, id: ids[hip.side] ?? null })) };
    restoredDraft = true;
  } else if (draft) {
    clearDraft();
  }
  tool.setState({ hips: state.hips, excluded: state.excluded });
  if (!readOnly) tool.setProposals(assignment.proposals || []);
  hadHips = tool.hips.length;
  ui.note.value = state.note || "";
  loaded = true;
  tool.disabled = readOnly;
  ui.submit.disabled = readOnly;
  ui.note.disabled = readOnly;
  ui.excluded.disabled = readOnly;
  if (readOnly) {
    ui.submit.textContent = "Submitted";
    showNotice("This image is submitted and can no longer change.", 1e9);
    const next = el("a", { class: "button", href: nextUrl }, "Next image");
    ui.submit.replaceWith(next);
  }
  if (restoredDraft) {
    version += 1;
    showNotice("Restored changes from this computer that had not reached the server; saving them now.");
    scheduleSave(0);
  }
  renderPanel();
}

api("GET", apiUrl)
  .then(applyServer)
  .catch((error) => {
    ui.saveStatus.textContent = "Could not load the labelling";
    ui.saveStatus.className = "save-status bad";
    showError(`${error.detail || error.message} Reload the page to try again.`);
  });

renderPanel();
