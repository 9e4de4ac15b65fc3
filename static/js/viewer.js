// A radiograph viewer on a 2D canvas: 16-bit pixels fetched once, window/level
// through a 65536-entry lookup table, zoom and pan by a view transform.
//
//   const viewer = new Viewer(canvas, {pixelsUrl, rows, columns, windowCenter, windowWidth});
//   await viewer.load();
//   viewer.onRender((ctx, viewer) => { ... });   // overlays, in CSS pixels of the canvas
//   viewer.imageToScreen(x, y) / viewer.screenToImage(x, y)
//   viewer.setWindow(center, width); viewer.invert(); viewer.preset("bone"); viewer.fit();
//   viewer.setOverlay(imageOrCanvas, {opacity});   // a heatmap in image coordinates
//   viewer.setTool({pointerDown, pointerMove, pointerUp, hover})   // left button
//
// Mouse: left button goes to the tool (boxes); right drag = window/level
// (horizontal: width, vertical: level); middle drag or space + drag = pan;
// wheel = zoom around the cursor; double click = fit.
// Keys: I invert, F fit, D default window, B bone, T soft tissue, A full range,
// + / - zoom, space (held) pan.
//
// Image coordinates are those of the original pixels: pixel (i, j) covers
// [i, i + 1) x [j, j + 1); a box stored in them is the same whatever the zoom.
// The pixels stream in: each chunk goes through the lookup table as it
// arrives and the rows received so far are shown, so the full image is on
// screen one frame after the last byte.
//
// Performance marks: "viewer:pixels-loaded" (last byte in), "viewer:first-paint"
// (after the frame that shows the full-resolution image); measure
// "viewer:window" (the last window/level re-render, LUT to canvas);
// viewer.lastWindowMs holds the same. Also exported: afterNextPaint(), isTyping().
// The toolbar, readout and keys overlay are wired by viewer-controls.js.

export const PRESETS = {
  default: "Default",
  bone: "Bone",
  soft: "Soft tissue",
  full: "Full range",
};
export const PRESET_KEYS = { d: "default", b: "bone", t: "soft", a: "full" };

const MIN_SCALE = 0.02;
const MAX_SCALE = 32;

// Resolves just after the browser has painted the next frame (at once in a hidden tab).
export function afterNextPaint() {
  return new Promise((resolve) => {
    if (document.visibilityState === "hidden") return resolve();
    requestAnimationFrame(() => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => resolve();
      channel.port2.postMessage(null);
    });
  });
}

export function isTyping(target) {
  if (!target || !target.tagName) return false;
  const tag = target.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
}

export class Viewer {
  // progressive: "paint" (the rows show as they arrive), "convert" (converted
  // as they arrive, shown at the end) or false (converted at the end).
  // fetchInit: extra options of the pixels' fetch (e.g. {cache: "no-store"}).
  constructor(
    canvas,
    { pixelsUrl, rows, columns, windowCenter, windowWidth, keyboard = true, progressive = "paint", fetchInit = {} } = {},
  ) {
    this.progressive = progressive;
    this.fetchInit = fetchInit;
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.pixelsUrl = pixelsUrl;
    this.rows = Number(rows);
    this.columns = Number(columns);
    const width = Number(windowWidth) > 0 ? Number(windowWidth) : 65536;
    const center = Number.isFinite(Number(windowCenter)) ? Number(windowCenter) : width / 2;
    this.defaultWindow = { center, width };
    this.center = center;
    this.width = width;
    this.inverted = false;
    this.pixels = null; // Uint16Array, rows x columns, row-major
    this.stats = null; // {min, max, percentile(q)} once computed
    this.lut = new Uint32Array(65536);
    this.image = null; // ImageData of the full image
    this.image32 = null;
    this.offscreen = document.createElement("canvas");
    this.offscreen.width = this.columns;
    this.offscreen.height = this.rows;
    this.offCtx = this.offscreen.getContext("2d", { alpha: false });
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.fitted = true;
    this.cssWidth = 0;
    this.cssHeight = 0;
    this.dpr = 1;
    this.overlay = null;
    this.overlayOpacity = 0.5;
    this.renderCallbacks = [];
    this.listeners = {};
    this.tool = null;
    this.spaceDown = false;
    this.drag = null;
    this.imageDirty = true;
    this.frameRequested = false;
    this.painted = false;
    this.loadError = null;
    this.progress = 0;
    this.lastWindowMs = 0;
    this._resize();
    this._bindPointer();
    if (keyboard) this._bindKeyboard();
    this.resizeObserver = new ResizeObserver(() => {
      this._resize();
      this.renderNow();
    });
    this.resizeObserver.observe(canvas.parentElement || canvas);
  }

  // --- events ------------------------------------------------------------------

  on(name, callback) {
    (this.listeners[name] ||= []).push(callback);
    return () => {
      this.listeners[name] = this.listeners[name].filter((cb) => cb !== callback);
    };
  }

  _emit(name, detail) {
    for (const callback of this.listeners[name] || []) callback(detail, this);
  }

  onRender(callback) {
    this.renderCallbacks.push(callback);
    this.requestRender();
    return () => {
      this.renderCallbacks = this.renderCallbacks.filter((cb) => cb !== callback);
    };
  }

  setTool(tool) {
    this.tool = tool;
  }

  // --- loading -----------------------------------------------------------------

  // Fetch the pixels (once), paint the first full-resolution frame.
  async load() {
    if (this.pixels) return this;
    if (this._loading) return this._loading;
    this._loading = this._load().catch((error) => {
      this.loadError = error;
      this.renderNow();
      this._emit("error", error);
      throw error;
    });
    return this._loading;
  }

  async _load() {
    const expected = this.rows * this.columns * 2;
    // Everything the first paint needs is made while the bytes are on their way.
    this.image = this.offCtx.createImageData(this.columns, this.rows);
    this.image32 = new Uint32Array(this.image.data.buffer);
    this._buildLut();
    this.imageDirty = false;
    this.loading = true;
    const response = await fetch(this.pixelsUrl, { credentials: "same-origin", ...this.fetchInit });
    if (!response.ok) throw new Error(`the image could not be loaded (HTTP ${response.status})`);
    let buffer;
    if (response.body && expected > 0 && this.progressive) {
      // Streamed into one buffer of the known size; each chunk goes through
      // the lookup table as it arrives, and the rows received so far are shown.
      buffer = new ArrayBuffer(expected);
      const bytes = new Uint8Array(buffer);
      const pixels = new Uint16Array(buffer);
      const reader = response.body.getReader();
      let offset = 0;
      let converted = 0; // pixels through the LUT
      let shownRows = 0; // rows on the offscreen canvas
      let lastShown = performance.now();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (offset + value.length > expected) throw new Error("the image has more pixels than its size says");
        bytes.set(value, offset);
        offset += value.length;
        if (this.imageDirty) {
          // The window changed while loading: start the conversion over.
          this._buildLut();
          this.imageDirty = false;
          converted = 0;
          shownRows = 0;
        }
        const upTo = offset >> 1;
        this._convert(pixels, converted, upTo);
        converted = upTo;
        this.progress = offset / expected;
        const now = performance.now();
        if (this.progressive === "paint" && now - lastShown > 150) {
          const rows = Math.floor(converted / this.columns);
          if (rows > shownRows) {
            this.offCtx.putImageData(this.image, 0, 0, 0, shownRows, this.columns, rows - shownRows);
            shownRows = rows;
          }
          lastShown = now;
          this._emit("progress", this.progress);
          this.requestRender();
        }
      }
      if (offset !== expected) throw new Error(`the image is incomplete (${offset} of ${expected} bytes)`);
      performance.mark("viewer:pixels-loaded");
      this.pixels = pixels;
      if (this.imageDirty) this._renderImage();
      else this.offCtx.putImageData(this.image, 0, 0, 0, shownRows, this.columns, this.rows - shownRows);
    } else {
      buffer = await response.arrayBuffer();
      if (buffer.byteLength !== expected) throw new Error("the image does not have the size its header says");
      performance.mark("viewer:pixels-loaded");
      this.pixels = new Uint16Array(buffer);
      this._renderImage();
    }
    this.progress = 1;
    this.loading = false;
    this.renderNow();
    this.painted = true;
    this._emit("load", this);
    // The mark goes after the frame that shows the image (rasterised and
    // composited), not after the draw calls, which the browser may defer.
    afterNextPaint().then(() => performance.mark("viewer:first-paint"));
    // Statistics for the presets, off the critical path of the first paint.
    setTimeout(() => this._computeStats(), 0);
    return this;
  }

  _computeStats() {
    if (this.stats || !this.pixels) return this.stats;
    const hist = new Uint32Array(65536);
    const px = this.pixels;
    for (let i = 0, n = px.length; i < n; i++) hist[px[i]]++;
    let min = 0;
    while (min < 65535 && hist[min] === 0) min++;
    let max = 65535;
    while (max > 0 && hist[max] === 0) max--;
    // Percentiles without the extreme values (collimator edges, burnt-out air).
    const total = px.length - hist[min] - (max > min ? hist[max] : 0);
    const percentile = (q) => {
      if (total <= 0) return min;
      const target = q * total;
      let acc = 0;
      for (let v = min + 1; v < max; v++) {
        acc += hist[v];
        if (acc >= target) return v;
      }
      return max;
    };
    this.stats = { min, max, percentile };
    return this.stats;
  }

  // --- window / level ------------------------------------------------------------

  presetWindow(name) {
    if (name === "default") return { ...this.defaultWindow };
    const stats = this._computeStats();
    if (!stats) return { ...this.defaultWindow };
    let lo;
    let hi;
    if (name === "full") {
      lo = stats.min;
      hi = stats.max + 1;
    } else if (name === "bone") {
      lo = stats.percentile(0.55);
      hi = stats.percentile(0.998);
    } else if (name === "soft") {
      lo = stats.percentile(0.02);
      hi = stats.percentile(0.7);
    } else {
      throw new Error(`unknown window preset ${name}`);
    }
    hi = Math.max(hi, lo + 2);
    return { center: (lo + hi) / 2, width: hi - lo };
  }

  preset(name) {
    const { center, width } = this.presetWindow(name);
    this.setWindow(center, width);
    this.activePreset = name;
    this._emit("window", this.windowState());
  }

  windowState() {
    return { center: this.center, width: this.width, inverted: this.inverted, preset: this.activePreset || "" };
  }

  setWindow(center, width) {
    center = Math.round(Number(center) * 10) / 10;
    width = Math.max(1, Math.round(Number(width) * 10) / 10);
    if (center === this.center && width === this.width) return;
    this.center = center;
    this.width = width;
    this.activePreset = "";
    this.imageDirty = true;
    this.requestRender();
    this._emit("window", this.windowState());
  }

  invert(value) {
    this.inverted = value === undefined ? !this.inverted : Boolean(value);
    this.imageDirty = true;
    this.requestRender();
    this._emit("window", this.windowState());
  }

  _buildLut() {
    const lut = this.lut;
    const lo = this.center - this.width / 2;
    const k = 255 / this.width;
    const inv = this.inverted;
    for (let v = 0; v < 65536; v++) {
      let g = (v - lo) * k;
      g = g <= 0 ? 0 : g >= 255 ? 255 : g | 0;
      if (inv) g = 255 - g;
      lut[v] = 0xff000000 | (g << 16) | (g << 8) | g;
    }
  }

  _convert(px, from, to) {
    const out = this.image32;
    const lut = this.lut;
    for (let i = from; i < to; i++) out[i] = lut[px[i]];
  }

  // The full-resolution 8-bit image, once per window/level change.
  _renderImage() {
    this._buildLut();
    this._convert(this.pixels, 0, this.pixels.length);
    this.offCtx.putImageData(this.image, 0, 0);
    this.imageDirty = false;
  }

  // --- view transform --------------------------------------------------------------

  imageToScreen(x, y) {
    return { x: x * this.scale + this.tx, y: y * this.scale + this.ty };
  }

  screenToImage(x, y) {
    return { x: (x - this.tx) / this.scale, y: (y - this.ty) / this.scale };
  }

  clientToImage(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    return this.screenToImage(clientX - rect.left, clientY - rect.top);
  }

  imageToClient(x, y) {
    const rect = this.canvas.getBoundingClientRect();
    const p = this.imageToScreen(x, y);
    return { x: p.x + rect.left, y: p.y + rect.top };
  }

  fit() {
    const margin = 8;
    const w = Math.max(1, this.cssWidth - 2 * margin);
    const h = Math.max(1, this.cssHeight - 2 * margin);
    this.scale = Math.min(w / this.columns, h / this.rows);
    this.tx = (this.cssWidth - this.columns * this.scale) / 2;
    this.ty = (this.cssHeight - this.rows * this.scale) / 2;
    this.fitted = true;
    this.requestRender();
    this._emit("view", this.viewState());
  }

  viewState() {
    return { scale: this.scale, tx: this.tx, ty: this.ty };
  }

  zoomAt(factor, sx, sy) {
    const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    const ratio = scale / this.scale;
    this.tx = sx - (sx - this.tx) * ratio;
    this.ty = sy - (sy - this.ty) * ratio;
    this.scale = scale;
    this.fitted = false;
    this.requestRender();
    this._emit("view", this.viewState());
  }

  panBy(dx, dy) {
    this.tx += dx;
    this.ty += dy;
    this.fitted = false;
    this.requestRender();
    this._emit("view", this.viewState());
  }

  _resize() {
    const box = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(box.width));
    const height = Math.max(1, Math.round(box.height));
    if (width === this.cssWidth && height === this.cssHeight && dpr === this.dpr) return;
    this.cssWidth = width;
    this.cssHeight = height;
    this.dpr = dpr;
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(height * dpr);
    if (this.fitted) this.fit();
  }

  // --- overlays ------------------------------------------------------------------

  // A picture (heatmap) stretched over the whole image; null removes it.
  setOverlay(source, { opacity = 0.5 } = {}) {
    this.overlay = source || null;
    this.overlayOpacity = opacity;
    this.requestRender();
  }

  // --- drawing -------------------------------------------------------------------

  requestRender() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.renderNow();
    });
  }

  renderNow() {
    const start = performance.now();
    const windowChanged = this.pixels && this.imageDirty;
    if (windowChanged) this._renderImage();
    const ctx = this.ctx;
    const dpr = this.dpr;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.globalAlpha = 1;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (this.pixels || (this.loading && this.progress > 0)) {
      ctx.setTransform(dpr * this.scale, 0, 0, dpr * this.scale, dpr * this.tx, dpr * this.ty);
      // Sharp pixels when magnified; smoothed when shrunk.
      ctx.imageSmoothingEnabled = this.scale * dpr < 2;
      ctx.drawImage(this.offscreen, 0, 0);
      if (this.overlay) {
        ctx.globalAlpha = this.overlayOpacity;
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(this.overlay, 0, 0, this.columns, this.rows);
        ctx.globalAlpha = 1;
      }
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (!this.pixels) this._drawLoading(ctx, this.loading && this.progress > 0);
    for (const callback of this.renderCallbacks) {
      ctx.save();
      callback(ctx, this);
      ctx.restore();
    }
    if (windowChanged) {
      this.lastWindowMs = performance.now() - start;
      performance.clearMeasures("viewer:window"); // keep the last one only
      performance.measure("viewer:window", { start, duration: this.lastWindowMs });
    }
    this._emit("render", this);
  }

  // "Loading image… 40%" with a bar: centred, or at the bottom over the rows already shown.
  _drawLoading(ctx, partial = false) {
    ctx.save();
    const w = Math.min(240, this.cssWidth * 0.6);
    const x = this.cssWidth / 2;
    const y = partial ? this.cssHeight - 40 : this.cssHeight / 2;
    const text = this.loadError
      ? `Could not load the image: ${this.loadError.message}`
      : `Loading image… ${Math.round(this.progress * 100)}%`;
    ctx.font = "15px system-ui, sans-serif";
    ctx.textAlign = "center";
    if (partial) {
      ctx.fillStyle = "rgba(0,0,0,0.6)";
      ctx.fillRect(x - w / 2 - 12, y - 22, w + 24, 46);
    }
    ctx.fillStyle = "#c9d3df";
    ctx.fillText(text, x, y);
    if (!this.loadError) {
      ctx.fillStyle = "#2a3645";
      ctx.fillRect(x - w / 2, y + 10, w, 4);
      ctx.fillStyle = "#5fa8ff";
      ctx.fillRect(x - w / 2, y + 10, w * this.progress, 4);
    }
    ctx.restore();
  }

  // --- input ---------------------------------------------------------------------

  _local(event) {
    const rect = this.canvas.getBoundingClientRect();
    const x = event.clientX - rect.left;
    const y = event.clientY - rect.top;
    return { x, y, image: this.screenToImage(x, y) };
  }

  _bindPointer() {
    const canvas = this.canvas;
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    canvas.addEventListener("pointerdown", (event) => {
      if (this.drag) return;
      const p = this._local(event);
      let kind = null;
      if (event.button === 1 || (event.button === 0 && (this.spaceDown || this.mode === "pan"))) kind = "pan";
      else if (event.button === 2 || (event.button === 0 && this.mode === "window")) kind = "window";
      else if (event.button === 0 && this.tool && this.pixels) kind = "tool";
      if (!kind) return;
      event.preventDefault();
      canvas.focus({ preventScroll: true });
      canvas.setPointerCapture(event.pointerId);
      this.drag = { kind, pointerId: event.pointerId, x: p.x, y: p.y, center: this.center, width: this.width };
      canvas.style.cursor = kind === "pan" ? "grabbing" : kind === "window" ? "crosshair" : canvas.style.cursor;
      if (kind === "tool") this.tool.pointerDown?.(event, p);
    });
    canvas.addEventListener("pointermove", (event) => {
      const p = this._local(event);
      const drag = this.drag;
      if (!drag) {
        if (this.tool && this.pixels && !this.spaceDown) this.tool.hover?.(event, p);
        return;
      }
      if (event.pointerId !== drag.pointerId) return;
      if (drag.kind === "pan") {
        this.panBy(p.x - drag.x, p.y - drag.y);
        drag.x = p.x;
        drag.y = p.y;
      } else if (drag.kind === "window") {
        // A full sweep of the canvas covers about the whole range of the image.
        const range = this.stats ? Math.max(64, this.stats.max - this.stats.min) : this.defaultWindow.width * 2;
        const perPixel = range / Math.max(300, this.cssWidth);
        this.setWindow(drag.center + (p.y - drag.y) * perPixel, drag.width + (p.x - drag.x) * perPixel);
      } else if (drag.kind === "tool") {
        this.tool.pointerMove?.(event, p);
      }
    });
    const end = (event) => {
      const drag = this.drag;
      if (!drag || event.pointerId !== drag.pointerId) return;
      this.drag = null;
      if (canvas.hasPointerCapture(event.pointerId)) canvas.releasePointerCapture(event.pointerId);
      canvas.style.cursor = this.spaceDown ? "grab" : "";
      if (drag.kind === "tool") this.tool.pointerUp?.(event, this._local(event), event.type === "pointercancel");
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const p = this._local(event);
        const delta = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
        this.zoomAt(Math.exp(-delta * 0.0015), p.x, p.y);
      },
      { passive: false },
    );
    canvas.addEventListener("dblclick", (event) => {
      if (this.tool?.doubleClick?.(event, this._local(event))) return;
      this.fit();
    });
  }

  _bindKeyboard() {
    window.addEventListener("keydown", (event) => {
      if (isTyping(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
      const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
      if (key === " ") {
        if (event.target?.tagName === "BUTTON") return;
        event.preventDefault();
        if (!this.spaceDown) {
          this.spaceDown = true;
          if (!this.drag) this.canvas.style.cursor = "grab";
        }
        return;
      }
      if (key === "i") this.invert();
      else if (key === "f") this.fit();
      else if (PRESET_KEYS[key]) this.preset(PRESET_KEYS[key]);
      else if (key === "+" || key === "=") this.zoomAt(1.25, this.cssWidth / 2, this.cssHeight / 2);
      else if (key === "-" || key === "_") this.zoomAt(0.8, this.cssWidth / 2, this.cssHeight / 2);
      else return;
      event.preventDefault();
    });
    window.addEventListener("keyup", (event) => {
      if (event.key === " ") {
        this.spaceDown = false;
        if (!this.drag) this.canvas.style.cursor = "";
      }
    });
    window.addEventListener("blur", () => {
      this.spaceDown = false;
    });
  }
}
