// The adjudication page: both labellings over the radiograph in two colours,
// the reasons they disagree, and an editable ground-truth layer built by
// taking a labeller's hip per side or drawing with the box tool.

import { el } from "./lib/dom.js";
import { api } from "./lib/http.js";
import { BoxLayer, hipPayload } from "./boxes/drawing.js";
import { HipPanel, renderHelp } from "./boxes/hip-panel.js";
import { BoxTool } from "./boxes/tool.js";
import { CLASS_BY_VALUE, EXCLUSION_BY_VALUE, SIDES, humaniseClasses } from "./boxes/vocabulary.js";
import { bindHelpOverlay, bindViewerControls, openViewer } from "./viewer-controls.js";

export const SLOT_COLORS = { 1: "#3d8bff", 2: "#ff4fd8", 3: "#9be15d", 4: "#ffffff" };
const TRUTH_SOURCES = {
  agreement: "Agreement of two labellers",
  consensus: "Radiograph consensus",
  ct: "CT",
  mri: "MRI",
  postop: "Post-operative imaging",
  operative: "Operative fixation",
};

const app = document.getElementById("adjudicate-app");
const data = app.dataset;
const $ = (id) => document.getElementById(id);
const ui = {
  canvas: $("viewer"),
  readout: $("readout"),
  strip: $("legend-strip"),
  chooser: $("exclude-chooser"),
  help: $("help"),
  helpKeys: $("help-keys"),
  banner: $("resolved-banner"),
  labellers: $("labellers"),
  disagreements: $("disagreements"),
  compare: $("compare"),
  hipList: $("hip-list"),
  hipsEmpty: $("hips-empty"),
  source: $("truth-source"),
  excluded: $("excluded"),
  note: $("note"),
  problems: $("problems"),
  error: $("error"),
  resolve: $("resolve"),
  status: $("adjudication-status"),
};
const toggleHelp = bindHelpOverlay(ui.help);

const viewer = openViewer(ui.canvas, data, showError);

const tool = new BoxTool(viewer, {
  onChange: () => renderPanel(),
  onSubmit: resolve,
  onHelp: toggleHelp,
  onExcludeChooser: (open) => {
    ui.chooser.hidden = !open;
  },
});
tool.disabled = true;
const panel = new HipPanel(tool, {
  list: ui.hipList,
  empty: ui.hipsEmpty,
  excluded: ui.excluded,
  problems: ui.problems,
  excludedHint: "Drawing or taking a box clears the exclusion.",
});
tool.onSelect(() => renderPanel());
bindViewerControls(viewer, app, { readout: ui.readout, onHelp: toggleHelp });
renderHelp(ui.helpKeys);

let adjudication = null;
let layers = [];
let resolving = false;
window.adjudicatePage = { viewer, tool, layers: () => layers };

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = false;
}

function hideError() {
  ui.error.hidden = true;
}



function slotName(labelling) {
  return `Slot ${labelling.slot}${labelling.labeler ? ` (${labelling.labeler})` : ""}`;
}

function hipText(hip) {
  return CLASS_BY_VALUE[hip.hip_class]?.label || hip.hip_class;
}

// Copy a labeller's hip into the truth layer (replacing the truth's hip of that side).
function take(labelling, hip, button) {
  tool.putOnSide({ ...hip, source: "manual" });
  hideError();
  button?.blur();
}

// Take a labeller's whole labelling (their exclusion, or all their hips).
function takeAll(labelling) {
  tool.setState(
    { hips: labelling.hips.map((hip) => ({ ...hip, id: null })), excluded: labelling.excluded || "" },
    { undoable: true, notify: true },
  );
}

function renderStatic() {
  const labellings = adjudication.labellings;
  ui.labellers.replaceChildren(
    ...labellings.map((l) =>
      el(
        "li",
        { "data-slot": l.slot },
        el("input", {
          type: "checkbox",
          checked: true,
          "aria-label": `Show ${slotName(l)}`,
          title: "Show or hide this labeller's boxes",
          onchange: (event) => {
            const layer = layers.find((x) => x.slot === l.slot);
            layer.visible = event.target.checked;
            viewer.requestRender();
          },
        }),
        el("span", { class: "line", style: `--c: ${SLOT_COLORS[l.slot] || "#fff"}` }),
        el("span", {}, slotName(l)),
      ),
    ),
    el(
      "li",
      {},
      el("span", { style: "width: 13px" }),
      el("span", { class: "line", style: "--c: #e9eef5; border-top-style: solid" }),
      el("span", {}, "Ground truth (colour of its class)"),
    ),
  );
  ui.strip.replaceChildren(
    ...labellings.map((l) => el("span", { style: `--c: ${SLOT_COLORS[l.slot] || "#fff"}` }, slotName(l))),
    el("span", { style: "--c: #e9eef5" }, "Truth: solid"),
  );
  const reasons = adjudication.disagreements || [];
  ui.disagreements.replaceChildren(
    ...(reasons.length
      ? reasons.map((r) => el("li", { title: r }, humaniseClasses(r)))
      : [el("li", {}, "None recorded.")]),
  );

  // One row per side (and exclusion, note), one column per labeller.
  const head = el("tr", {}, el("th", {}, ""), ...labellings.map((l) => el("th", {}, slotName(l))));
  const rows = [];
  for (const side of ["right", "left"]) {
    const hips = labellings.map((l) => l.hips.find((h) => h.side === side) || null);
    const differ = new Set(hips.map((h) => (h ? h.hip_class : "-"))).size > 1;
    rows.push(
      el(
        "tr",
        { "data-side": side },
        el("th", {}, `${SIDES[side]} hip`),
        ...labellings.map((l, i) => {
          const hip = hips[i];
          if (!hip) return el("td", { class: differ ? "differs" : "" }, el("span", { class: "none" }, "no box"));
          return el(
            "td",
            { class: differ ? "differs" : "" },
            el("div", {}, hipText(hip)),
            el(
              "button",
              {
                type: "button",
                "data-take": `${l.slot}-${side}`,
                title: `Copy ${slotName(l)}'s ${side} hip into the ground truth`,
                "aria-label": `Take slot ${l.slot}'s ${side} hip`,
                onclick: (event) => take(l, hip, event.currentTarget),
              },
              "Take",
            ),
          );
        }),
      ),
    );
  }
  const exclusions = labellings.map((l) => l.excluded || "");
  if (exclusions.some(Boolean)) {
    const differ = new Set(exclusions).size > 1;
    rows.push(
      el(
        "tr",
        {},
        el("th", {}, "Excluded"),
        ...labellings.map((l) =>
          el(
            "td",
            { class: differ ? "differs" : "" },
            l.excluded ? EXCLUSION_BY_VALUE[l.excluded]?.label || l.excluded : el("span", { class: "none" }, "no"),
            l.excluded
              ? el("div", {}, el("button", { type: "button", onclick: () => takeAll(l) }, "Take this exclusion"))
              : null,
          ),
        ),
      ),
    );
  }
  if (labellings.some((l) => l.note)) {
    rows.push(
      el(
        "tr",
        {},
        el("th", {}, "Note"),
        ...labellings.map((l) => el("td", {}, l.note || el("span", { class: "none" }, "—"))),
      ),
    );
  }
  ui.compare.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));

  const truth = adjudication.truth;
  if (adjudication.status !== "pending" && truth.decided_at) {
    const when = new Date(truth.decided_at).toLocaleString();
    const source = TRUTH_SOURCES[truth.truth_source] || truth.truth_source;
    ui.banner.textContent = `${adjudication.status === "agreed" ? "Agreed" : "Resolved"}: ${source}${truth.decided_by ? `, by ${truth.decided_by}` : ""}, ${when}. Resolving again replaces the ground truth (the history keeps both).`;
    ui.banner.hidden = false;
  }
  ui.status.textContent = adjudication.status;
}

function renderPanel() {
  panel.render();
}

ui.source.addEventListener("change", () => {
  ui.source.blur();
  hideError();
});
ui.resolve.addEventListener("click", resolve);

async function resolve() {
  if (!adjudication || resolving) return;
  const problems = tool.problems();
  if (problems.length) return showError(problems.join(" "));
  if (!tool.hips.length && !tool.excluded) {
    return showError("Give at least one hip (take one or draw it), or exclude the radiograph.");
  }
  if (!ui.source.value) {
    ui.source.focus();
    return showError("Choose the source of truth.");
  }
  resolving = true;
  ui.resolve.disabled = true;
  ui.resolve.textContent = "Resolving…";
  hideError();
  try {
    const answer = await api(
      "POST",
      `${data.apiUrl}resolve/`,
      {
        hips: tool.hips.map((hip) => {
          const out = hipPayload(hip);
          delete out.id;
          return out;
        }),
        truth_source: ui.source.value,
        note: ui.note.value,
        excluded: tool.excluded,
      },
      { csrf: data.csrf },
    );
    tool.disabled = true;
    ui.resolve.textContent = "Resolved — opening the queue…";
    window.location.assign(answer?.next_url || "/adjudicate/");
  } catch (error) {
    resolving = false;
    ui.resolve.disabled = false;
    ui.resolve.replaceChildren("Resolve", el("kbd", {}, "Enter"));
    showError(`Not resolved: ${error.detail || error.message}`);
  }
}

api("GET", data.apiUrl)
  .then((answer) => {
    adjudication = answer;
    layers = answer.labellings.map((l, index) => {
      const layer = new BoxLayer(viewer, {
        hips: l.hips,
        color: SLOT_COLORS[l.slot] || "#fff",
        name: String(l.slot),
        labelAt: "bottom",
        labelLine: index,
      });
      layer.slot = l.slot;
      return tool.addLayer(layer);
    });
    const truth = answer.truth || {};
    if (answer.status !== "pending") {
      tool.setState({ hips: truth.hips || [], excluded: truth.excluded || "" });
      ui.note.value = truth.note || "";
      if (truth.truth_source && truth.truth_source !== "agreement") ui.source.value = truth.truth_source;
    }
    renderStatic();
    renderPanel();
    tool.disabled = false;
    ui.resolve.disabled = answer.status === "agreed";
    if (answer.status === "agreed") {
      tool.disabled = true;
      showError("The labellers agreed on this radiograph: its ground truth is theirs, nothing to adjudicate.");
    }
  })
  .catch((error) => showError(`${error.detail || error.message} Reload the page to try again.`));

renderPanel();
