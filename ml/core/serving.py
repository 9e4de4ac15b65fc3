"""Serving the hip classifier: radiograph + hip boxes -> six-class probabilities and heatmaps.

The one inference path shared by the web app, the ``predict`` command, batch scoring, the test
evaluation, the reader study's frozen readings and ``bench/infer.py``, following the model
version's test-time protocol.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import io
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from PIL import Image

from .configs import NetConfig
from .crops import CropSpec, crop_to_image_coords, hip_crop, image_to_crop_coords, to_model_input
from .stats import CLASS_KEYS, fracture_probability
from .vocab import SIDES, Box

Rect = tuple[float, float, float, float]
DEFAULT_BATCH_SIZE = 32
HEATMAP_ZOOM = 1.0
#: The zoom of the ``single`` protocol's one crop: the bounding box itself (the paper's crop).
SINGLE_ZOOM = 1.0


def protocol_zooms(config: NetConfig) -> tuple[float, ...]:
    """The zooms whose crops make a hip's probabilities under ``config.test_time``: (1.0,) for
    ``single`` (the paper's), ``config.zooms`` for ``zoom-average``."""
    if config.test_time == "single":
        return (SINGLE_ZOOM,)
    if config.test_time == "zoom-average":
        return tuple(float(z) for z in config.zooms)
    raise ValueError(f"unknown test-time protocol {config.test_time!r}")


def protocol_name(zooms: Sequence[float]) -> str:
    """What scoring at ``zooms`` is called: ``single`` for the zoom-1.0 crop alone,
    ``zoom-average`` for several zooms, ``zoom-<z>`` for one other zoom (an explicit override)."""
    values = tuple(float(z) for z in zooms)
    if values == (SINGLE_ZOOM,):
        return "single"
    if len(values) > 1:
        return "zoom-average"
    return f"zoom-{values[0]:g}"


@dataclass(frozen=True)
class Hip:
    """One hip to score: the patient's ``side`` ("right" or "left") and its ``box``
    (x, y, w, h) in image pixels (COCO). The box may reach outside the image (crops pad)."""

    side: str
    box: Box

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"hip side must be 'right' or 'left', got {self.side!r}")
        try:
            values = tuple(float(v) for v in self.box)
        except (TypeError, ValueError):
            raise ValueError(f"hip box must be four numbers (x, y, w, h), got {self.box!r}") from None
        if len(values) != 4:
            raise ValueError(f"hip box must be (x, y, w, h), got {self.box!r}")
        if not all(math.isfinite(v) for v in values) or not (values[2] > 0 and values[3] > 0):
            raise ValueError(f"hip box must have finite coordinates and positive size, got {self.box!r}")
        object.__setattr__(self, "box", values)


@dataclass
class HipPrediction:
    """The prediction for one hip (see the module docstring for each field's meaning)."""

    side: str
    box: Box
    probabilities: list[float]  # len 6, CLASS_KEYS order; the protocol's crop(s), averaged when several
    top2: list[str]
    fracture_probability: float
    predicted_class: str
    heatmap: np.ndarray = field(repr=False)  # float32 (S, S) in [0, 1], crop orientation (left hips mirrored)
    heatmap_rect: Rect  # (x0, y0, x1, y1) image rectangle of the zoom-1 crop, x0 < x1
    cam: np.ndarray = field(repr=False)  # float32 (h, w) raw CAM of predicted_class, feature resolution

    @property
    def class_index(self) -> int:
        return CLASS_KEYS.index(self.predicted_class)


# --------------------------------------------------------------------------- validation


def _as_hip(hip: Any) -> Hip:
    if isinstance(hip, Hip):
        return hip
    if isinstance(hip, Sequence) and not isinstance(hip, str) and len(hip) == 2:  # (side, box)
        return Hip(hip[0], tuple(hip[1]))
    raise ValueError(f"a hip must be a Hip or a (side, box) pair, got {hip!r}")


def _check_pixels(pixels: Any) -> np.ndarray:
    arr = np.asarray(pixels)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"pixels must be a non-empty 2-D array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"pixels must be numeric, got dtype {arr.dtype}")
    return arr


def _check_window(window: Any) -> tuple[float, float]:
    try:
        center, width = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be (centre, width), got {window!r}") from None
    if not (math.isfinite(center) and math.isfinite(width)) or width < 1:
        raise ValueError(f"window must have a finite centre and a width >= 1, got {window!r}")
    return center, width


def _check_zooms(zooms: Iterable[float]) -> tuple[float, ...]:
    out = tuple(float(z) for z in zooms)
    if not out or any(not (z > 0 and math.isfinite(z)) for z in out):
        raise ValueError(f"zooms must be a non-empty sequence of positive numbers, got {out!r}")
    return out


# --------------------------------------------------------------------------- heatmaps


def _upsample(array: np.ndarray, size: int) -> np.ndarray:
    """Bilinear (pixel centres aligned, edges clamped) resize of a 2-D float map to size x size."""
    img = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32), mode="F")
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def _heatmap(cam: np.ndarray, size: int) -> np.ndarray:
    """ReLU, upsample to the crop size, scale to max 1 (all-zero stays 0)."""
    heat = _upsample(np.maximum(cam, 0.0), size)
    heat = np.maximum(heat, 0.0)  # guard float rounding
    peak = float(heat.max())
    if peak > 0:
        heat = heat / np.float32(peak)
    clipped: np.ndarray = np.clip(heat, 0.0, 1.0).astype(np.float32)
    return clipped


def _heatmap_rect(box: Box, side: str, size: int) -> Rect:
    """The image rectangle of the zoom-1 crop, from the crop's corners (u, v) = (0, 0) and
    (size, size) through ``crop_to_image_coords`` (which mirrors u for left hips), sorted."""
    spec = CropSpec(size=size, zoom=HEATMAP_ZOOM)
    xs, ys = crop_to_image_coords(np.array([0.0, size]), np.array([0.0, size]), box, side, spec=spec)
    return float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))


def heatmap_to_image(pred: HipPrediction, shape: tuple[int, int]) -> np.ndarray:
    """The heatmap on the full image grid: float32 (H, W), each pixel (centre) inside
    ``heatmap_rect`` sampled bilinearly from ``pred.heatmap`` (left hips un-mirrored), zero
    outside the rectangle."""
    rows, cols = (int(v) for v in shape)
    if rows < 1 or cols < 1:
        raise ValueError(f"shape must be (rows, cols) >= 1, got {shape!r}")
    heat = np.asarray(pred.heatmap, dtype=np.float32)
    if heat.ndim != 2 or heat.shape[0] != heat.shape[1]:
        raise ValueError(f"heatmap must be square 2-D, got shape {heat.shape}")
    size = heat.shape[0]
    out = np.zeros((rows, cols), dtype=np.float32)
    x0, y0, x1, y1 = pred.heatmap_rect
    c0, c1 = max(math.floor(x0), 0), min(math.ceil(x1), cols)
    r0, r1 = max(math.floor(y0), 0), min(math.ceil(y1), rows)
    if c0 >= c1 or r0 >= r1:
        return out
    xc = np.arange(c0, c1, dtype=np.float64) + 0.5
    yc = np.arange(r0, r1, dtype=np.float64) + 0.5
    spec = CropSpec(size=size, zoom=HEATMAP_ZOOM)
    u, _ = image_to_crop_coords(xc, np.full_like(xc, y0), pred.box, pred.side, spec=spec)
    _, v = image_to_crop_coords(np.full_like(yc, x0), yc, pred.box, pred.side, spec=spec)
    inside_u = (u >= 0) & (u <= size)
    inside_v = (v >= 0) & (v <= size)
    # bilinear in index space: pixel (r, c) of the heatmap has its centre at (c + 0.5, r + 0.5)
    fu = np.clip(u - 0.5, 0, size - 1)
    fv = np.clip(v - 0.5, 0, size - 1)
    iu = np.minimum(np.floor(fu).astype(int), size - 2) if size > 1 else np.zeros(fu.shape, int)
    iv = np.minimum(np.floor(fv).astype(int), size - 2) if size > 1 else np.zeros(fv.shape, int)
    au = (fu - iu).astype(np.float32)
    av = (fv - iv).astype(np.float32)
    iu1 = np.minimum(iu + 1, size - 1)
    iv1 = np.minimum(iv + 1, size - 1)
    top = heat[iv][:, iu] * (1 - au) + heat[iv][:, iu1] * au
    bottom = heat[iv1][:, iu] * (1 - au) + heat[iv1][:, iu1] * au
    block = top * (1 - av)[:, None] + bottom * av[:, None]
    block *= inside_v[:, None] & inside_u[None, :]
    out[r0:r1, c0:c1] = block
    return out


# Colormaps as (position, (r, g, b)) anchors, interpolated into 256-entry LUTs.
_INFERNO = (  # matplotlib "inferno" at deciles
    "000004",
    "160b39",
    "420a68",
    "6a176e",
    "932667",
    "bc3754",
    "dd513a",
    "f37819",
    "fca50a",
    "f6d746",
    "fcffa4",
)
_JET = ((0.0, (0, 0, 128)), (0.125, (0, 0, 255)), (0.375, (0, 255, 255)), (0.625, (255, 255, 0)), (0.875, (255, 0, 0)))
COLORMAPS = ("inferno", "jet")


def _lut(name: str) -> np.ndarray:
    if name == "inferno":
        anchors = [(i / 10, tuple(int(h[k : k + 2], 16) for k in (0, 2, 4))) for i, h in enumerate(_INFERNO)]
    elif name == "jet":
        anchors = [*_JET, (1.0, (128, 0, 0))]
    else:
        raise ValueError(f"colormap must be one of {COLORMAPS}, got {name!r}")
    pos = np.array([a[0] for a in anchors])
    rgb = np.array([a[1] for a in anchors], dtype=np.float64)
    t = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(t, pos, rgb[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)


_LUTS = {name: _lut(name) for name in COLORMAPS}


def heatmap_png(
    pred: HipPrediction, *, size: int | None = None, colormap: str = "inferno", max_alpha: float = 0.75
) -> bytes:
    """The heatmap as an RGBA PNG in image orientation (a left hip's map un-mirrored), to be
    stretched over ``pred.heatmap_rect`` on the radiograph. Colour from a 256-entry
    ``colormap`` LUT ("inferno" or "jet"), alpha = ``max_alpha`` * heat * 255 (transparent
    where there is no heat). ``size`` (default: the heatmap's, i.e. the crop size) is the
    PNG's width and height."""
    if colormap not in _LUTS:
        raise ValueError(f"colormap must be one of {COLORMAPS}, got {colormap!r}")
    if not 0 <= max_alpha <= 1:
        raise ValueError(f"max_alpha must be in [0, 1], got {max_alpha!r}")
    heat = np.asarray(pred.heatmap, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2-D, got shape {heat.shape}")
    if pred.side == "left":
        heat = heat[:, ::-1]
    if size is not None:
        if int(size) != size or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        if (int(size), int(size)) != heat.shape:
            heat = _upsample(heat, int(size))
    heat = np.clip(heat, 0.0, 1.0)
    index = np.rint(heat * 255).astype(np.uint8)
    rgba = np.empty((*heat.shape, 4), dtype=np.uint8)
    rgba[..., :3] = _LUTS[colormap][index]
    rgba[..., 3] = np.rint(heat * (255 * max_alpha)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# --------------------------------------------------------------------------- prediction


@dataclass
class _Job:
    """One radiograph's crops in flight through ``predict_many``."""

    hips: list[Hip]
    inputs: np.ndarray  # (n_hips * n_crop_zooms, S, S, 3)
    probs: np.ndarray  # (n_crops, K), filled as batches run
    features: list[np.ndarray | None]  # zoom-1 features per hip
    remaining: int


class Predictor:
    """Scores hips with a classifier; see the module docstring.

    ``model``: a classifier from ``nets.build_model`` (or a loaded bundle); ``config`` its
    ``NetConfig``; ``zooms``: the zoom levels averaged (default ``protocol_zooms(config)``: the
    zoom-1.0 crop alone for ``test_time="single"``, ``config.zooms`` for ``"zoom-average"``).
    ``test_time`` names the protocol applied (``protocol_name(zooms)``).
    """

    def __init__(self, model: Any, config: NetConfig, *, zooms: Sequence[float] | None = None) -> None:
        from . import nets

        self.model = model
        self.config = config
        self.zooms = _check_zooms(protocol_zooms(config) if zooms is None else zooms)
        self.test_time = config.test_time if zooms is None else protocol_name(self.zooms)
        # crops made per hip: the averaged zooms, plus zoom 1 for the heatmap if missing
        self._crop_zooms = self.zooms if HEATMAP_ZOOM in self.zooms else (*self.zooms, HEATMAP_ZOOM)
        self._heat_index = self._crop_zooms.index(HEATMAP_ZOOM)
        self._specs = tuple(CropSpec(size=config.input_size, zoom=z) for z in self._crop_zooms)
        self._cam_model = nets.cam_model(model)
        self.kernel, self.bias = nets.dense_kernel(model)
        if self.kernel.shape[1] != len(CLASS_KEYS):
            raise ValueError(f"model has {self.kernel.shape[1]} classes, serving needs {len(CLASS_KEYS)}")

    @classmethod
    def from_bundle(cls, path: str | os.PathLike[str], *, zooms: Sequence[float] | None = None) -> Predictor:
        """A predictor for the model bundle at ``path`` (``modelfile.load_bundle``)."""
        from .modelfile import load_bundle

        model, config, _ = load_bundle(path)
        return cls(model, cast(NetConfig, config), zooms=zooms)  # a classifier's bundle holds a NetConfig

    # ---------------------------------------------------------------- internals

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(features (N, h, w, C), probabilities (N, K)) for a batch of model inputs."""
        features, probs = self._cam_model.predict_on_batch(x)
        return np.asarray(features), np.asarray(probs)

    def _prepare(self, pixels: Any, window: Any, hips: Any, invert: bool) -> _Job:
        if isinstance(hips, (str, bytes)) or not isinstance(hips, Iterable):
            raise ValueError(f"hips must be a sequence of Hip, got {type(hips).__name__}")
        hip_list = [_as_hip(h) for h in hips]
        size = self.config.input_size
        n = len(hip_list) * len(self._specs)
        if not hip_list:
            return _Job([], np.zeros((0, size, size, 3), np.float32), np.zeros((0, len(CLASS_KEYS))), [], 0)
        arr = _check_pixels(pixels)
        win = _check_window(window)
        crops = np.empty((n, size, size), dtype=np.float32)
        i = 0
        for hip in hip_list:
            for spec in self._specs:
                crops[i] = hip_crop(arr, hip.box, hip.side, window=win, spec=spec, invert=bool(invert))
                i += 1
        return _Job(hip_list, to_model_input(crops), np.zeros((n, len(CLASS_KEYS))), [None] * len(hip_list), n)

    def _run(self, entries: list[tuple[_Job, int]]) -> None:
        x = np.stack([job.inputs[i] for job, i in entries])
        features, probs = self._forward(x)
        nz = len(self._crop_zooms)
        for k, (job, i) in enumerate(entries):
            job.probs[i] = probs[k]
            hip, z = divmod(i, nz)
            if z == self._heat_index:
                job.features[hip] = features[k]
            job.remaining -= 1

    def _prediction(self, hip: Hip, probs: np.ndarray, features: np.ndarray) -> HipPrediction:
        """One hip's prediction from its (averaged) probabilities and its zoom-1 crop's features."""
        size = self.config.input_size
        p = np.asarray(probs, dtype=np.float64)
        p = p / p.sum()
        order = np.argsort(-p, kind="stable")
        k = int(order[0])
        cam = (np.asarray(features, np.float32) @ self.kernel[:, k].astype(np.float32)).astype(np.float32)
        return HipPrediction(
            side=hip.side,
            box=hip.box,
            probabilities=[float(v) for v in p],
            top2=[CLASS_KEYS[int(j)] for j in order[:2]],
            fracture_probability=float(fracture_probability(p[None])[0]),
            predicted_class=CLASS_KEYS[k],
            heatmap=_heatmap(cam, size),
            heatmap_rect=_heatmap_rect(hip.box, hip.side, size),
            cam=cam,
        )

    def _assemble(self, job: _Job) -> list[HipPrediction]:
        nz = len(self._crop_zooms)
        averaged = [i for i, z in enumerate(self._crop_zooms) if z in self.zooms]
        out = []
        for h, hip in enumerate(job.hips):
            feats = job.features[h]
            assert feats is not None
            out.append(self._prediction(hip, job.probs[h * nz : (h + 1) * nz][averaged].mean(axis=0), feats))
        return out

    # ---------------------------------------------------------------- API

    def predict_hips(
        self, pixels: np.ndarray, window: tuple[float, float], hips: Sequence[Hip], *, invert: bool = False
    ) -> list[HipPrediction]:
        """Predictions for the ``hips`` of one radiograph, in order ([] for no hips).

        ``pixels``: 2-D "higher = brighter" array (``invert=True`` for MONOCHROME1 stored
        values), ``window``: (centre, width) in pixel units (``decode_dicom``'s default).
        """
        return next(self.predict_many([(pixels, window, hips, invert)], prefetch=0))

    def predict_crops(
        self, crops: np.ndarray, hips: Sequence[Hip], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> list[HipPrediction]:
        """Predictions from crops already made, one per hip: ``crops`` (N, S, S) in [0, 1]
        (S = ``config.input_size``; e.g. an 8-bit PNG / 255), each the **zoom-1.0** crop of its
        hip in crop orientation (left hips mirrored), as ``crops.hip_crop`` makes it. The
        probabilities are the model's softmax on exactly that image (the ``single`` protocol,
        whatever ``zooms``), the heatmap its CAM; ``hips`` give each side and box (for
        ``heatmap_rect``). So a reading computed here comes from the very pixels it is given."""
        hip_list = [_as_hip(h) for h in hips]
        size = self.config.input_size
        arr = np.asarray(crops, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[1:] != (size, size):
            raise ValueError(f"crops must be (N, {size}, {size}), got shape {arr.shape}")
        if len(arr) != len(hip_list):
            raise ValueError(f"{len(arr)} crops for {len(hip_list)} hips")
        if not np.isfinite(arr).all() or arr.min(initial=0.0) < 0 or arr.max(initial=0.0) > 1:
            raise ValueError("crops must lie in [0, 1]")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        out: list[HipPrediction] = []
        for start in range(0, len(arr), int(batch_size)):
            features, probs = self._forward(to_model_input(arr[start : start + int(batch_size)]))
            for k, hip in enumerate(hip_list[start : start + int(batch_size)]):
                out.append(self._prediction(hip, probs[k], features[k]))
        return out

    def predict_many(
        self, items: Iterable[tuple[Any, ...]], *, batch_size: int = DEFAULT_BATCH_SIZE, prefetch: int = 8
    ) -> Iterator[list[HipPrediction]]:
        """Batch scoring: for each item ``(pixels, window, hips[, invert])`` yields its
        ``predict_hips`` result, in order. Crops of consecutive radiographs share batches of
        ``batch_size``; a radiograph's result is yielded as soon as all its crops are scored,
        so the items are consumed lazily (about one batch of crops is held, plus the prefetched items).

        ``prefetch``: how many radiographs ahead a worker thread makes the crops of, while the
        model runs on the current batch (Pillow and the model both release the GIL); 0 makes
        them in line. The ``items`` iterator itself is always advanced on the calling thread
        (it may use thread-bound resources such as database connections), ``prefetch`` items
        ahead; only the pure crop arithmetic moves to the worker.
        """
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if int(prefetch) != prefetch or prefetch < 0:
            raise ValueError(f"prefetch must be an integer >= 0, got {prefetch!r}")
        batch_size, prefetch = int(batch_size), int(prefetch)
        jobs: deque[_Job] = deque()
        waiting: list[tuple[_Job, int]] = []
        preparing: deque[Future[_Job]] = deque()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hip-crops") if prefetch > 0 else None

        def finished() -> Iterator[list[HipPrediction]]:
            while jobs and jobs[0].remaining == 0:
                yield self._assemble(jobs.popleft())

        def admit(job: _Job) -> None:
            jobs.append(job)
            waiting.extend((job, i) for i in range(len(job.inputs)))
            while len(waiting) >= batch_size:
                self._run(waiting[:batch_size])
                del waiting[:batch_size]

        try:
            for item in items:
                if not isinstance(item, Sequence) or len(item) not in (3, 4):
                    raise ValueError("each item must be (pixels, window, hips) or (pixels, window, hips, invert)")
                args = (item[0], item[1], item[2], bool(item[3]) if len(item) == 4 else False)
                if pool is None:
                    admit(self._prepare(*args))
                else:
                    preparing.append(pool.submit(self._prepare, *args))
                    if len(preparing) <= prefetch:
                        continue
                    admit(preparing.popleft().result())
                yield from finished()
            while preparing:
                admit(preparing.popleft().result())
            if waiting:
                self._run(waiting)
                waiting.clear()
            yield from finished()
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


def naive_predict(
    model: Any,
    config: NetConfig,
    pixels: np.ndarray,
    window: tuple[float, float],
    hips: Sequence[Hip],
    *,
    zooms: Sequence[float] | None = None,
    invert: bool = False,
) -> list[np.ndarray]:
    """The baseline: ``model.predict(..., verbose=0)`` on one crop at a time, averaged over
    ``zooms`` (default ``protocol_zooms(config)``, as ``Predictor``); one (K,) probability array per hip."""
    hip_list = [_as_hip(h) for h in hips]
    if not hip_list:
        return []
    arr, win = _check_pixels(pixels), _check_window(window)
    out = []
    for hip in hip_list:
        probs = []
        for z in _check_zooms(protocol_zooms(config) if zooms is None else zooms):
            spec = CropSpec(size=config.input_size, zoom=z)
            x = to_model_input(hip_crop(arr, hip.box, hip.side, window=win, spec=spec, invert=invert))[None]
            probs.append(np.asarray(model.predict(x, verbose=0))[0])
        out.append(np.mean(probs, axis=0))
    return out


__all__ = [
    "COLORMAPS",
    "SINGLE_ZOOM",
    "Hip",
    "HipPrediction",
    "Predictor",
    "heatmap_png",
    "heatmap_to_image",
    "naive_predict",
    "protocol_name",
    "protocol_zooms",
]
