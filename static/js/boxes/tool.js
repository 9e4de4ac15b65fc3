// The editable layer of hips over a Viewer: draw, select, move, resize,
// delete, nudge, class and side from the keyboard, undo, and a model's
// proposals. Read-only layers (BoxLayer, drawing.js) are drawn beneath it.
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

import { isTyping } from "../viewer.js";
import {
  CURSORS,
  HANDLES,
  PROPOSAL_COLOR,
  drawHip,
  handlePoints,
  makeHip,
  proposalLabel,
  suggestSide,
} from "./drawing.js";
import { CLASSES, EXCLUSIONS, SIDES } from "./vocabulary.js";

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
