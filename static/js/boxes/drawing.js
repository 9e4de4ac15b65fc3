// Hips as the pages keep them, and how they are drawn over a Viewer: one box
// with its label (drawHip), a model proposal's label, and a read-only layer of
// hips in one colour (BoxLayer: the adjudicator's view of each labeller).
//
// Boxes are kept in ORIGINAL image pixel coordinates ({x, y, width, height}),
// whatever the zoom; the viewer's transform maps them to the screen.

import { CLASS_BY_VALUE, classColor } from "./vocabulary.js";

// The patient's left hip is on the image's right-hand half of an AP film.
export function suggestSide(box, columns) {
  return box.x + box.width / 2 > columns / 2 ? "left" : "right";
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
export const HANDLES = [
  ["nw", 0, 0],
  ["n", 0.5, 0],
  ["ne", 1, 0],
  ["e", 1, 0.5],
  ["se", 1, 1],
  ["s", 0.5, 1],
  ["sw", 0, 1],
  ["w", 0, 0.5],
];
export const CURSORS = {
  nw: "nwse-resize",
  se: "nwse-resize",
  ne: "nesw-resize",
  sw: "nesw-resize",
  n: "ns-resize",
  s: "ns-resize",
  e: "ew-resize",
  w: "ew-resize",
};

export function handlePoints(a, b) {
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
