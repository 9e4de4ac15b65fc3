// The words of the labelling vocabulary: the six classes (key, words, colour),
// the exclusions, the sides, and the keys of the labelling pages' help. Every
// page that names a class in words takes them from here (the server's
// annotate.labels.HipClass has the same words); data and the API keep the keys.

import { VIEWER_KEYS } from "../viewer-controls.js";

export const CLASSES = [
  { key: "1", value: "normal", label: "Normal", short: "Normal", color: "#3ddc84" },
  { key: "2", value: "fn_displaced", label: "Displaced femoral neck fracture", short: "FN displaced", color: "#ff4d4f" },
  {
    key: "3",
    value: "fn_nondisplaced",
    label: "Nondisplaced femoral neck fracture",
    short: "FN nondisplaced",
    color: "#ff9c2a",
  },
  {
    key: "4",
    value: "intertrochanteric",
    label: "Intertrochanteric fracture",
    short: "Intertrochanteric",
    color: "#d77bff",
  },
  { key: "5", value: "orif", label: "Previous internal fixation (ORIF)", short: "ORIF", color: "#36d1dc" },
  { key: "6", value: "arthroplasty", label: "Previous arthroplasty", short: "Arthroplasty", color: "#ffe14d" },
];
export const CLASS_BY_VALUE = Object.fromEntries(CLASSES.map((c) => [c.value, c]));
export const UNCLASSIFIED_COLOR = "#ffffff";

export const EXCLUSIONS = [
  { key: "1", value: "cross_table_lateral", label: "Cross-table lateral" },
  { key: "2", value: "no_hip", label: "No hip in view" },
  { key: "3", value: "not_diagnostic", label: "Not diagnostic" },
];
export const EXCLUSION_BY_VALUE = Object.fromEntries(EXCLUSIONS.map((e) => [e.value, e]));

export const SIDES = { right: "Right", left: "Left" };

// Every key of the labelling page, for the help overlay.
export const KEYS = [
  ["Left drag on the image", "draw a box"],
  ["Click a box", "select it"],
  ["Drag inside a box", "move it"],
  ["Drag a handle", "resize it"],
  ["1 – 6", "class of the selected box"],
  ["L / R", "side of the selected box (the patient's left / right)"],
  ["Delete / Backspace", "remove the selected box"],
  ["Arrows", "move the selected box by 1 pixel (Shift: 10)"],
  ["Tab", "select the next box"],
  ["Esc", "deselect, close a chooser"],
  ["E then 1 / 2 / 3", "exclude: cross-table lateral / no hip in view / not diagnostic"],
  ["E then 0", "not excluded"],
  ["Ctrl+Z", "undo"],
  ["Ctrl+Shift+Z / Ctrl+Y", "redo"],
  ["Enter", "submit"],
  ["?", "this help"],
  ...VIEWER_KEYS,
];

// The labelling page's keys: KEYS and the model proposals' (the adjudication
// page has no proposals).
export const PROPOSAL_KEYS = [
  ["P", "accept the next model proposal (dashed box; the patient's right first), then give its class"],
  ["Shift+P", "accept every model proposal"],
];
const ENTER_ROW = KEYS.findIndex(([key]) => key === "Enter");
export const LABEL_KEYS = [...KEYS.slice(0, ENTER_ROW), ...PROPOSAL_KEYS, ...KEYS.slice(ENTER_ROW)];

export function classColor(hipClass) {
  return CLASS_BY_VALUE[hipClass]?.color || UNCLASSIFIED_COLOR;
}

// The words of a class key ("fn_displaced" -> "Displaced femoral neck fracture");
// an unknown key is shown as it is.
export function classLabel(value) {
  return CLASS_BY_VALUE[value]?.label ?? (value == null ? "" : String(value));
}

// Every class key in a text replaced by its words ("left hip: fn_displaced / normal").
export function humaniseClasses(text) {
  return String(text).replace(
    /\b[a-z_]+\b/g,
    (word) => CLASS_BY_VALUE[word]?.label || EXCLUSION_BY_VALUE[word]?.label || word,
  );
}
