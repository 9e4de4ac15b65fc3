// The controls around a Viewer on the viewer pages (labelling, adjudication,
// reading): the toolbar and readout, and the keys overlay.

import { Viewer } from "./viewer.js";

// The viewer's own keys and mouse actions, for the help overlays of every page that has a viewer.
export const VIEWER_KEYS = [
  ["Right drag", "window / level (across: width, up and down: level)"],
  ["Wheel", "zoom around the cursor"],
  ["Middle drag / Space + drag", "pan"],
  ["F / double click", "fit to the window"],
  ["I", "invert"],
  ["D / B / T / A", "window: default / bone / soft tissue / full range"],
  ["+ / −", "zoom in / out"],
];

// A viewer on a page's canvas for the radiograph a page's data describes (pixelsUrl, rows,
// columns, windowCenter, windowWidth), its pixels fetched at once; a failure is shown by onError.
export function openViewer(canvas, data, onError) {
  const viewer = new Viewer(canvas, {
    pixelsUrl: data.pixelsUrl,
    rows: data.rows,
    columns: data.columns,
    windowCenter: data.windowCenter,
    windowWidth: data.windowWidth,
  });
  viewer.load().catch((error) => onError(`The image could not be loaded: ${error.message}. Reload the page to try again.`));
  return viewer;
}

// Wire a toolbar (buttons with data-action="fit|invert|help" and
// data-preset="default|bone|soft|full") and a readout element to a viewer.
export function bindViewerControls(viewer, root, { readout = null, onHelp = null } = {}) {
  root.querySelectorAll("[data-preset]").forEach((button) => {
    button.addEventListener("click", () => {
      viewer.preset(button.dataset.preset);
      button.blur();
    });
  });
  root.querySelectorAll("[data-action]").forEach((button) => {
    button.addEventListener("click", () => {
      const action = button.dataset.action;
      if (action === "fit") viewer.fit();
      else if (action === "invert") viewer.invert();
      else if (action === "help") onHelp?.();
      button.blur();
    });
  });
  let cursor = null;
  const update = () => {
    root.querySelectorAll("[data-preset]").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.preset === viewer.activePreset));
    });
    const invert = root.querySelector('[data-action="invert"]');
    if (invert) invert.setAttribute("aria-pressed", String(viewer.inverted));
    if (!readout) return;
    const parts = [
      `W ${Math.round(viewer.width)}`,
      `L ${Math.round(viewer.center)}`,
      `${Math.round(viewer.scale * 100)}%`,
    ];
    if (viewer.inverted) parts.push("inverted");
    if (cursor && viewer.pixels) {
      const x = Math.floor(cursor.x);
      const y = Math.floor(cursor.y);
      if (x >= 0 && y >= 0 && x < viewer.columns && y < viewer.rows) {
        parts.push(`x ${x} y ${y} = ${viewer.pixels[y * viewer.columns + x]}`);
      }
    }
    readout.textContent = parts.join(" · ");
  };
  viewer.on("window", update);
  viewer.on("view", update);
  viewer.on("load", update);
  viewer.canvas.addEventListener("pointermove", (event) => {
    cursor = viewer.clientToImage(event.clientX, event.clientY);
    update();
  });
  viewer.canvas.addEventListener("pointerleave", () => {
    cursor = null;
    update();
  });
  update();
  return update;
}

// The keys overlay of the viewer pages: "?" toggles it; Esc or a click
// outside its box closes it. Returns the toggle (true shows, false hides).
export function bindHelpOverlay(help) {
  const toggle = (force) => {
    help.hidden = typeof force === "boolean" ? !force : !help.hidden;
  };
  help.addEventListener("click", (event) => {
    if (event.target === help) toggle(false);
  });
  window.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !help.hidden) toggle(false);
  });
  return toggle;
}
