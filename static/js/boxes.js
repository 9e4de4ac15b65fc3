// Hip boxes over a Viewer: an editable layer (draw, select, move, resize,
// delete, nudge, class and side from the keyboard, undo) and read-only layers
// in a given colour (the adjudicator's view of both labellers).
//
// Boxes are kept in ORIGINAL image pixel coordinates ({x, y, width, height}),
// whatever the zoom; the viewer's transform maps them to the screen.
//
// Keys (when the tool is editable; ignored while typing in a field):
//   1-6 class of the selected box, L / R side, Delete / Backspace remove it,
//   arrows nudge it by 1 px (Shift: 10 px), Tab selects the next box,
//   Escape deselects, Ctrl+Z undo, Ctrl+Shift+Z or Ctrl+Y redo,
//   E then 1-3 exclude the image (E then 0: not excluded), Enter submit, ? help,
//   P accept the next model proposal, Shift+P accept every proposal.
//
// Proposals (``setProposals``) are a model's boxes, drawn dashed and marked
// "proposal": they are not hips. Accepting one makes it a hip like any other
// (move, resize, side and class keys) whose source stays "model"; a proposal
// whose side already has a hip is hidden. A proposal has a ``hip_class`` only
// where the site shows the model's class (PROPOSALS_SHOW_CLASS); by default the
// API sends boxes alone, and the accepted hip waits for the labeller's class.

import { isTyping } from "./viewer.js";

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
  ["Right drag", "window / level (across: width, up and down: level)"],
  ["Wheel", "zoom around the cursor"],
  ["Middle drag / Space + drag", "pan"],
  ["F / double click", "fit to the window"],
  ["I", "invert"],
  ["D / B / T / A", "window: default / bone / soft tissue / full range"],
  ["+ / −", "zoom in / out"],
];

// The labelling page's keys: KEYS and the model proposals' (the adjudication
// page has no proposals).
export const PROPOSAL_KEYS = [
  ["P", "accept the next model proposal (dashed box; the patient's right first), then give its class"],
  ["Shift+P", "accept every model proposal"],
];
const ENTER_ROW = KEYS.findIndex(([key]) => key === "Enter");
export const LABEL_KEYS = [...KEYS.slice(0, ENTER_ROW), ...PROPOSAL_KEYS, ...KEYS.slice(ENTER_ROW)];

// The patient's left hip is on the image's right-hand half of an AP film.
export function suggestSide(box, columns) {
  return box.x + box.width / 2 > columns / 2 ? "left" : "right";
}

export function classColor(hipClass) {
  return CLASS_BY_VALUE[hipClass]?.color || UNCLASSIFIED_COLOR;
}

export function hipLabel(hip) {
  const side = hip.side === "left" ? "L" : hip.side === "right" ? "R" : "?";
  const cls = CLASS_BY_VALUE[hip.hip_class];
  return `${side} · ${cls ? cls.short : "class? press 1–6"}`;
}

const round1 = (v) => Math.round(v * 10) / 10;
let nextKey = 1;

// A hip as the page keeps it: the API's fields plus a local key.
export function makeHip(hip) {
  return {
    key: hip.key || `h${nextKey++}`,
    id: hip.id ?? null,
    side: hip.side || "right",
    hip_class: hip.hip_class || null,
    x: Number(hip.x),
    y: Number(hip.y),
    width: Number(hip.width),
    height: Number(hip.height),
    source: hip.source || "manual",
  };
}

// What the API takes. A labeller's hip is "model" (an accepted proposal) or
// "manual"; the server keeps a saved hip's source whatever is sent later.
export function hipPayload(hip) {
  const out = {
    side: hip.side,
    hip_class: hip.hip_class,
    x: round1(hip.x),
    y: round1(hip.y),
    width: round1(hip.width),
    height: round1(hip.height),
    source: hip.source === "model" ? "model" : "manual",
  };
  if (hip.id != null) out.id = hip.id;
  return out;
}

// Draw one box with its label; screen coordinates come from the viewer.
// ``labelAt``: "top" (above the box) or "bottom"; ``labelLine`` stacks labels (0, 1, ...).
export function drawHip(
  ctx,
  viewer,
  hip,
  {
    color,
    label,
    selected = false,
    dashed = false,
    handles = false,
    labelAt = "top",
    labelLine = 0,
    placed = null, // label rectangles already drawn this frame: this one moves off them
  } = {},
) {
  const a = viewer.imageToScreen(hip.x, hip.y);
  const b = viewer.imageToScreen(hip.x + hip.width, hip.y + hip.height);
  const x = Math.round(a.x) + 0.5;
  const y = Math.round(a.y) + 0.5;
  const w = Math.round(b.x - a.x);
  const h = Math.round(b.y - a.y);
  color = color || classColor(hip.hip_class);
  ctx.save();
  // A dark halo keeps the line visible on bright bone.
  ctx.lineWidth = selected ? 5 : 4;
  ctx.strokeStyle = "rgba(0,0,0,0.55)";
  ctx.setLineDash(dashed ? [8, 5] : []);
  ctx.strokeRect(x, y, w, h);
  ctx.lineWidth = selected ? 3 : 2;
  ctx.strokeStyle = color;
  ctx.strokeRect(x, y, w, h);
  ctx.setLineDash([]);
  if (selected) {
    ctx.fillStyle = hexAlpha(color, 0.06);
    ctx.fillRect(x, y, w, h);
  }
  if (handles) {
    for (const [hx, hy] of handlePoints(a, b)) {
      ctx.fillStyle = "#fff";
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 1;
      ctx.fillRect(Math.round(hx) - 4, Math.round(hy) - 4, 8, 8);
      ctx.strokeRect(Math.round(hx) - 3.5, Math.round(hy) - 3.5, 7, 7);
    }
  }
  const text = label ?? hipLabel(hip);
  if (text) {
    ctx.font = "600 13px system-ui, sans-serif";
    ctx.textAlign = "left";
    const tw = ctx.measureText(text).width + 10;
    const th = 19;
    let ly;
    if (labelAt === "bottom") {
      ly = y + h + 1 + labelLine * (th + 1);
      if (ly + th > viewer.cssHeight) ly = y + h - (labelLine + 1) * (th + 1); // no room below: inside
    } else {
      ly = y - (labelLine + 1) * (th + 1);
      if (ly < 0) ly = y + 1 + labelLine * (th + 1); // no room above: inside the top edge
    }
    const lx = Math.min(Math.max(0, x - 0.5), Math.max(0, viewer.cssWidth - tw));
    if (placed) {
      const step = (labelAt === "bottom" ? 1 : -1) * (th + 1);
      const hits = (r) => lx < r.x + r.w && r.x < lx + tw && ly < r.y + r.h && r.y < ly + th;
      for (let tries = 0; tries < 8 && placed.some(hits); tries++) ly += step;
      placed.push({ x: lx, y: ly, w: tw, h: th });
    }
    ctx.fillStyle = color;
    ctx.fillRect(lx, ly, tw, th);
    ctx.fillStyle = textOn(color);
    ctx.textBaseline = "middle";
    ctx.fillText(text, lx + 5, ly + th / 2 + 0.5);
  }
  ctx.restore();
}

export const PROPOSAL_COLOR = "#8fd3ff";

// The label of a proposal's dashed box: "proposal · R · 0.97 · FN displaced".
export function proposalLabel(proposal) {
  const parts = ["proposal", proposal.side === "left" ? "L" : "R", Number(proposal.score).toFixed(2)];
  const cls = CLASS_BY_VALUE[proposal.hip_class];
  if (cls) parts.push(cls.short);
  return parts.join(" · ");
}

function hexAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

function textOn(hex) {
  const n = parseInt(hex.slice(1), 16);
  const lum = 0.299 * ((n >> 16) & 255) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255);
  return lum > 140 ? "#111" : "#fff";
}

// Handles: [x, y, edges] with edges among n, s, e, w.
const HANDLES = [
  ["nw", 0, 0],
  ["n", 0.5, 0],
  ["ne", 1, 0],
  ["e", 1, 0.5],
  ["se", 1, 1],
  ["s", 0.5, 1],
  ["sw", 0, 1],
  ["w", 0, 0.5],
];
const CURSORS = {
  nw: "nwse-resize",
  se: "nwse-resize",
  ne: "nesw-resize",
  sw: "nesw-resize",
  n: "ns-resize",
  s: "ns-resize",
  e: "ew-resize",
  w: "ew-resize",
};

function handlePoints(a, b) {
  return HANDLES.map(([, fx, fy]) => [a.x + (b.x - a.x) * fx, a.y + (b.y - a.y) * fy]);
}

// A read-only set of hips in one colour (e.g. one labeller's work).
export class BoxLayer {
  constructor(
    viewer,
    { hips = [], color = "#4aa3ff", name = "", dashed = true, visible = true, labelAt = "bottom", labelLine = 0 } = {},
  ) {
    this.viewer = viewer;
    this.labelAt = labelAt;
    this.labelLine = labelLine;
    this.hips = hips.map(makeHip);
    this.color = color;
    this.name = name;
    this.dashed = dashed;
    this.visible = visible;
  }

  draw(ctx, placed = []) {
    if (!this.visible) return;
    for (const hip of this.hips) {
      const cls = CLASS_BY_VALUE[hip.hip_class];
      const label = `${this.name ? `${this.name}: ` : ""}${hip.side === "left" ? "L" : "R"} · ${cls ? cls.short : "?"}`;
      drawHip(ctx, this.viewer, hip, {
        color: this.color,
        label,
        dashed: this.dashed,
        labelAt: this.labelAt,
        labelLine: this.labelLine,
        placed,
      });
    }
  }
}

// The editable layer.
export class BoxTool {
  constructor(
    viewer,
    { editable = true, keyboard = true, onChange = null, onSubmit = null, onHelp = null, onExcludeChooser = null } = {},
  ) {
    this.viewer = viewer;
    this.editable = editable;
    this.hips = [];
    this.proposals = [];
    this.excluded = "";
    this.selectedKey = null;
    this.layers = [];
    this.undoStack = [];
    this.redoStack = [];
    this.onChange = onChange;
    this.onSubmit = onSubmit;
    this.onHelp = onHelp;
    this.onExcludeChooser = onExcludeChooser;
    this.choosingExclusion = false;
    this.action = null;
    this.selectListeners = [];
    viewer.onRender((ctx) => this.draw(ctx));
    if (editable) viewer.setTool(this);
    if (editable && keyboard) window.addEventListener("keydown", (event) => this._key(event));
  }

  // --- state ---------------------------------------------------------------------

  addLayer(layer) {
    this.layers.push(layer);
    this.viewer.requestRender();
    return layer;
  }

  get selected() {
    return this.hips.find((hip) => hip.key === this.selectedKey) || null;
  }

  snapshot() {
    return JSON.stringify({ hips: this.hips, excluded: this.excluded, selectedKey: this.selectedKey });
  }

  // Replace the whole state (restoring from the server); not an undo step unless asked.
  setState({ hips = [], excluded = "" } = {}, { undoable = false, notify = false } = {}) {
    if (undoable) this._pushUndo();
    this.hips = hips.map(makeHip);
    this.excluded = excluded || "";
    if (!this.selected) this.selectedKey = null;
    this._changed(notify);
  }

  getState() {
    return { hips: this.hips.map((hip) => ({ ...hip })), excluded: this.excluded };
  }

  // Mutate with an undo step; fn returns false to cancel.
  change(fn) {
    const before = this.snapshot();
    if (fn() === false) return false;
    if (this.snapshot() === before) return false;
    this.undoStack.push(before);
    if (this.undoStack.length > 200) this.undoStack.shift();
    this.redoStack = [];
    this._changed(true);
    return true;
  }

  _pushUndo(before = this.snapshot()) {
    this.undoStack.push(before);
    if (this.undoStack.length > 200) this.undoStack.shift();
    this.redoStack = [];
  }

  _restore(text) {
    const state = JSON.parse(text);
    this.hips = state.hips.map(makeHip);
    this.excluded = state.excluded;
    this.selectedKey = state.selectedKey;
    this._changed(true);
  }

  undo() {
    if (!this.undoStack.length) return false;
    this.redoStack.push(this.snapshot());
    this._restore(this.undoStack.pop());
    return true;
  }

  redo() {
    if (!this.redoStack.length) return false;
    this.undoStack.push(this.snapshot());
    this._restore(this.redoStack.pop());
    return true;
  }

  _changed(notify) {
    this.viewer.requestRender();
    if (notify && this.onChange) this.onChange(this.getState());
    this._emitSelect();
  }

  select(key) {
    if (this.selectedKey === key) return;
    this.selectedKey = key;
    this.viewer.requestRender();
    this._emitSelect();
  }

  onSelect(callback) {
    this.selectListeners.push(callback);
  }

  _emitSelect() {
    for (const callback of this.selectListeners) callback(this.selected);
  }

  // --- edits ---------------------------------------------------------------------

  add(hip, { select = true } = {}) {
    const made = makeHip(hip);
    this.change(() => {
      this.hips.push(made);
      if (this.excluded) this.excluded = ""; // a box means the image is not excluded
      if (select) this.selectedKey = made.key;
    });
    return made;
  }

  // Put ``hip`` on its side, replacing whatever box held that side.
  putOnSide(hip) {
    const made = makeHip({ ...hip, id: null, key: null });
    this.change(() => {
      const old = this.hips.find((h) => h.side === made.side);
      if (old) made.id = old.id; // the same hip, edited
      this.hips = this.hips.filter((h) => h.side !== made.side);
      this.hips.push(made);
      this.excluded = "";
      this.selectedKey = made.key;
    });
    return made;
  }

  remove(key = this.selectedKey) {
    return this.change(() => {
      const before = this.hips.length;
      this.hips = this.hips.filter((hip) => hip.key !== key);
      if (this.hips.length === before) return false;
      if (this.selectedKey === key) this.selectedKey = null;
    });
  }

  setClass(hipClass, key = this.selectedKey) {
    return this.change(() => {
      const hip = this.hips.find((h) => h.key === key);
      if (!hip) return false;
      hip.hip_class = hipClass;
    });
  }

  // Set a box's side; a box already on that side takes the other one.
  setSide(side, key = this.selectedKey) {
    return this.change(() => {
      const hip = this.hips.find((h) => h.key === key);
      if (!hip || hip.side === side) return false;
      const other = this.hips.find((h) => h !== hip && h.side === side);
      if (other) other.side = hip.side;
      hip.side = side;
    });
  }

  setExcluded(reason) {
    return this.change(() => {
      if (reason === this.excluded) return false;
      this.excluded = reason;
      if (reason) {
        // An excluded image has no hips (Ctrl+Z brings them back).
        this.hips = [];
        this.selectedKey = null;
      }
    });
  }

  nudge(dx, dy) {
    const hip = this.selected;
    if (!hip) return false;
    const before = this.snapshot();
    const { columns, rows } = this.viewer;
    const x = Math.min(Math.max(0, hip.x + dx), columns - hip.width);
    const y = Math.min(Math.max(0, hip.y + dy), rows - hip.height);
    if (x === hip.x && y === hip.y) return false;
    // A run of nudges is one undo step.
    const now = performance.now();
    if (!(this.lastNudge && now - this.lastNudge.time < 1000 && this.lastNudge.key === hip.key)) {
      this._pushUndo(before);
    }
    this.lastNudge = { time: now, key: hip.key };
    hip.x = x;
    hip.y = y;
    this._changed(true);
    return true;
  }

  // Problems that keep the state from being saved or submitted.
  problems() {
    const problems = [];
    const unclassified = this.hips.filter((hip) => !hip.hip_class);
    if (unclassified.length) {
      const sides = unclassified.map((hip) => SIDES[hip.side].toLowerCase()).join(" and ");
      problems.push(`Give the ${sides} hip a class (keys 1–6).`);
    }
    for (const side of Object.keys(SIDES)) {
      if (this.hips.filter((hip) => hip.side === side).length > 1) {
        problems.push(`Two boxes on the ${side} side: one hip per side (select one and press L or R, or delete it).`);
      }
    }
    return problems;
  }

  // --- model proposals -------------------------------------------------------------

  // The model's boxes for this image ({side, x, y, width, height, score, hip_class}).
  setProposals(proposals = []) {
    this.proposals = proposals.map((p) => ({
      side: p.side,
      x: Number(p.x),
      y: Number(p.y),
      width: Number(p.width),
      height: Number(p.height),
      score: Number(p.score),
      hip_class: p.hip_class || "",
    }));
    this.viewer.requestRender();
    this._emitSelect();
  }

  // Proposals still to decide on: none on an excluded image, none for a side
  // that has a hip, the patient's right first.
  visibleProposals() {
    if (!this.editable || this.excluded) return [];
    const taken = new Set(this.hips.map((hip) => hip.side));
    return this.proposals
      .filter((p) => !taken.has(p.side))
      .sort((a, b) => (a.side === b.side ? 0 : a.side === "right" ? -1 : 1));
  }

  _hipFromProposal(p) {
    const { columns, rows } = this.viewer;
    const x = Math.min(Math.max(0, p.x), columns - 1);
    const y = Math.min(Math.max(0, p.y), rows - 1);
    // The labeller gives the class: the hip starts without one, whatever the model said.
    return makeHip({
      side: p.side,
      hip_class: null,
      x,
      y,
      width: Math.max(1, Math.min(p.width, columns - x)),
      height: Math.max(1, Math.min(p.height, rows - y)),
      source: "model",
    });
  }

  // Accept the proposal of ``side`` (default: the next visible one), or all of
  // them: they become hips (one undo step); the first new hip is selected.
  acceptProposals({ side = null, all = false } = {}) {
    const visible = this.visibleProposals();
    const chosen = all ? visible : visible.filter((p) => side === null || p.side === side).slice(0, 1);
    if (!chosen.length) return [];
    const made = chosen.map((p) => this._hipFromProposal(p));
    this.change(() => {
      this.hips.push(...made);
      this.excluded = "";
      this.selectedKey = made[0].key;
    });
    return made;
  }

  // --- pointer (called by the viewer for the left button) ---------------------------

  _hitHandle(p) {
    const hip = this.selected;
    if (!hip) return null;
    const a = this.viewer.imageToScreen(hip.x, hip.y);
    const b = this.viewer.imageToScreen(hip.x + hip.width, hip.y + hip.height);
    const points = handlePoints(a, b);
    for (let i = 0; i < HANDLES.length; i++) {
      if (Math.abs(points[i][0] - p.x) <= 7 && Math.abs(points[i][1] - p.y) <= 7) return HANDLES[i][0];
    }
    return null;
  }

  _hitBox(p) {
    const tolerance = 4 / this.viewer.scale;
    const inside = (hip) =>
      p.image.x >= hip.x - tolerance &&
      p.image.x <= hip.x + hip.width + tolerance &&
      p.image.y >= hip.y - tolerance &&
      p.image.y <= hip.y + hip.height + tolerance;
    const selected = this.selected;
    if (selected && inside(selected)) return selected;
    // The smallest box under the cursor wins (a box drawn inside another).
    const under = this.hips.filter(inside).sort((a, b) => a.width * a.height - b.width * b.height);
    return under[0] || null;
  }

  _clampPoint(q) {
    return {
      x: Math.min(Math.max(0, q.x), this.viewer.columns),
      y: Math.min(Math.max(0, q.y), this.viewer.rows),
    };
  }

  hover(event, p) {
    const handle = this._hitHandle(p);
    let cursor = "crosshair";
    if (handle) cursor = CURSORS[handle];
    else if (this._hitBox(p)) cursor = "move";
    this.viewer.canvas.style.cursor = cursor;
  }

  pointerDown(event, p) {
    if (this.choosingExclusion) this._closeChooser();
    const handle = this._hitHandle(p);
    const start = { x: p.x, y: p.y, image: { ...p.image } };
    if (handle) {
      const hip = this.selected;
      this.action = { kind: "resize", handle, hip, orig: { ...hip }, start, before: this.snapshot(), moved: false };
      return;
    }
    const hit = this._hitBox(p);
    if (hit) {
      this.select(hit.key);
      this.action = { kind: "move", hip: hit, orig: { ...hit }, start, before: this.snapshot(), moved: false };
      return;
    }
    this.action = { kind: "draw", start, before: this.snapshot(), hip: null, moved: false };
  }

  pointerMove(event, p) {
    const action = this.action;
    if (!action) return;
    const dist = Math.hypot(p.x - action.start.x, p.y - action.start.y);
    if (!action.moved && dist < 3) return;
    action.moved = true;
    const { columns, rows } = this.viewer;
    const dx = p.image.x - action.start.image.x;
    const dy = p.image.y - action.start.image.y;
    if (action.kind === "move") {
      const o = action.orig;
      action.hip.x = Math.min(Math.max(0, o.x + dx), columns - o.width);
      action.hip.y = Math.min(Math.max(0, o.y + dy), rows - o.height);
    } else if (action.kind === "resize") {
      const o = action.orig;
      let x1 = o.x;
      let y1 = o.y;
      let x2 = o.x + o.width;
      let y2 = o.y + o.height;
      const h = action.handle;
      if (h.includes("w")) x1 += dx;
      if (h.includes("e")) x2 += dx;
      if (h.includes("n")) y1 += dy;
      if (h.includes("s")) y2 += dy;
      const a = this._clampPoint({ x: Math.min(x1, x2), y: Math.min(y1, y2) });
      const b = this._clampPoint({ x: Math.max(x1, x2), y: Math.max(y1, y2) });
      Object.assign(action.hip, { x: a.x, y: a.y, width: Math.max(1, b.x - a.x), height: Math.max(1, b.y - a.y) });
    } else if (action.kind === "draw") {
      const a = this._clampPoint(action.start.image);
      const b = this._clampPoint(p.image);
      const box = {
        x: Math.min(a.x, b.x),
        y: Math.min(a.y, b.y),
        width: Math.max(1, Math.abs(b.x - a.x)),
        height: Math.max(1, Math.abs(b.y - a.y)),
      };
      if (!action.hip) {
        action.hip = makeHip({ ...box, side: suggestSide(box, columns), hip_class: null });
        this.hips.push(action.hip);
        this.selectedKey = action.hip.key;
      }
      Object.assign(action.hip, box);
    }
    this.viewer.requestRender();
  }

  pointerUp(event, p, cancelled) {
    const action = this.action;
    this.action = null;
    if (!action) return;
    if (cancelled) {
      this._restore(action.before);
      return;
    }
    if (!action.moved) {
      // A click: select what is under it, or nothing.
      if (action.kind === "draw") this.select(null);
      return;
    }
    if (action.kind === "draw") {
      const hip = action.hip;
      if (hip.width * this.viewer.scale < 4 || hip.height * this.viewer.scale < 4) {
        this.hips = this.hips.filter((h) => h !== hip);
        this.selectedKey = null;
        this.viewer.requestRender();
        this._emitSelect();
        return;
      }
      hip.side = suggestSide(hip, this.viewer.columns);
      this.excluded = "";
    }
    this._pushUndo(action.before);
    this._changed(true);
  }

  // --- keyboard ------------------------------------------------------------------

  _closeChooser() {
    this.choosingExclusion = false;
    this.onExcludeChooser?.(false);
  }

  openExclusionChooser() {
    this.choosingExclusion = true;
    this.onExcludeChooser?.(true);
  }

  _key(event) {
    if (isTyping(event.target) || this.disabled) return;
    const key = event.key;
    const ctrl = event.ctrlKey || event.metaKey;
    if (ctrl && !event.altKey) {
      const lower = key.toLowerCase();
      if (lower === "z" && !event.shiftKey) this.undo();
      else if ((lower === "z" && event.shiftKey) || lower === "y") this.redo();
      else return;
      event.preventDefault();
      return;
    }
    if (event.altKey) return;
    if (this.choosingExclusion) {
      event.preventDefault();
      const reason = EXCLUSIONS.find((e) => e.key === key);
      if (reason) this.setExcluded(reason.value);
      else if (key === "0") this.setExcluded("");
      this._closeChooser();
      return;
    }
    const cls = CLASSES.find((c) => c.key === key);
    if (cls) {
      if (this.selected) this.setClass(cls.value);
      event.preventDefault();
      return;
    }
    switch (key) {
      case "l":
      case "L":
        this.setSide("left");
        break;
      case "r":
      case "R":
        this.setSide("right");
        break;
      case "e":
      case "E":
        this.openExclusionChooser();
        break;
      case "p":
      case "P":
        this.acceptProposals({ all: event.shiftKey });
        break;
      case "Delete":
      case "Backspace":
        this.remove();
        break;
      case "ArrowLeft":
        this.nudge(event.shiftKey ? -10 : -1, 0);
        break;
      case "ArrowRight":
        this.nudge(event.shiftKey ? 10 : 1, 0);
        break;
      case "ArrowUp":
        this.nudge(0, event.shiftKey ? -10 : -1);
        break;
      case "ArrowDown":
        this.nudge(0, event.shiftKey ? 10 : 1);
        break;
      case "Tab": {
        const target = event.target;
        if (!this.hips.length || (target && target !== document.body && target !== this.viewer.canvas)) return;
        const index = this.hips.findIndex((hip) => hip.key === this.selectedKey);
        const step = event.shiftKey ? -1 : 1;
        const next = this.hips[(index + step + this.hips.length) % this.hips.length];
        this.select(next.key);
        break;
      }
      case "Escape":
        this.select(null);
        break;
      case "Enter":
        if (event.target?.tagName === "BUTTON" || event.target?.tagName === "A") return;
        this.onSubmit?.();
        break;
      case "?":
        this.onHelp?.();
        break;
      default:
        return;
    }
    event.preventDefault();
  }

  // --- drawing -------------------------------------------------------------------

  draw(ctx) {
    const placed = []; // labels of this frame, so that none hides another
    const selected = this.selected;
    for (const layer of this.layers) layer.draw(ctx, placed);
    for (const proposal of this.visibleProposals()) {
      const label = proposalLabel(proposal);
      drawHip(ctx, this.viewer, proposal, { color: PROPOSAL_COLOR, label, dashed: true, placed });
    }
    for (const hip of this.hips) {
      if (hip !== selected) drawHip(ctx, this.viewer, hip, { placed });
    }
    if (selected) drawHip(ctx, this.viewer, selected, { selected: true, handles: this.editable, placed });
  }
}

// --- page helpers shared by the labelling and adjudication pages -------------------

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "style") node.style.cssText = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// The key table of the help overlay.
export function renderHelp(table, keys = KEYS) {
  table.replaceChildren(...keys.map(([key, what]) => el("tr", {}, el("td", {}, key), el("td", {}, what))));
}

// The six classes with their keys; ``active`` is the selected box's class.
export function renderClassLegend(list, { active = null, onPick = null } = {}) {
  list.replaceChildren(
    ...CLASSES.map((cls) =>
      el(
        "li",
        {
          class: cls.value === active ? "active" : "",
          "data-class": cls.value,
          title: onPick ? `Set the selected hip's class (${cls.key})` : null,
          style: onPick ? "cursor: pointer" : null,
          onclick: onPick ? () => onPick(cls.value) : null,
        },
        el("kbd", {}, cls.key),
        el("span", { class: "swatch", style: `--c: ${cls.color}` }),
        el("span", {}, cls.label),
      ),
    ),
  );
}

export function classSelect(value, onChange) {
  const select = el(
    "select",
    { "aria-label": "Class", onchange: () => { onChange(select.value || null); select.blur(); } },
    el("option", { value: "" }, "— class (1–6) —"),
    CLASSES.map((cls) => el("option", { value: cls.value, selected: cls.value === value }, `${cls.key} ${cls.label}`)),
  );
  if (!value) select.classList.add("missing");
  return select;
}

// The CSRF token: Django's cookie, or the one the template rendered.
export function csrfToken(fallback = "") {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : fallback;
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

function describeErrors(data) {
  if (!data) return "";
  if (typeof data === "string") return data;
  if (Array.isArray(data)) return data.map(describeErrors).join(" ");
  if (typeof data === "object") {
    if (data.detail) return describeErrors(data.detail);
    return Object.entries(data)
      .map(([field, value]) => `${field}: ${describeErrors(value)}`)
      .join(" ");
  }
  return String(data);
}

// JSON over fetch with the session cookie and the CSRF header.
export async function api(method, url, payload, { csrf = "", keepalive = false } = {}) {
  let response;
  try {
    response = await fetch(url, {
      method,
      credentials: "same-origin",
      keepalive,
      headers: {
        Accept: "application/json",
        ...(payload !== undefined ? { "Content-Type": "application/json" } : {}),
        ...(method !== "GET" ? { "X-CSRFToken": csrfToken(csrf) } : {}),
      },
      body: payload !== undefined ? JSON.stringify(payload) : undefined,
    });
  } catch {
    throw new ApiError(0, "The server could not be reached.");
  }
  let data = null;
  const text = await response.text().catch(() => "");
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail = describeErrors(data) || `The server answered ${response.status} ${response.statusText}.`;
    throw new ApiError(response.status, detail);
  }
  return data;
}
