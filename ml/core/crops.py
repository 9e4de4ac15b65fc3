"""Hip crops as Krogue et al. 2020 make them: the hip's box, grown by a zoom, cut from the
radiograph, resized to 224 x 224, replicated to three channels, left hips flipped.

Also the display window (``apply_window``) and the model's input normalisation (``to_model_input``).
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .vocab import SIDES, Box

# keras.applications.imagenet_utils.preprocess_input(mode="torch"), used by
# keras.applications.densenet.preprocess_input.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

WINDOWINGS = ("window", "percentile")
ASPECTS = ("squash", "square")
_MARGIN = 2  # extra source pixels sliced around the box, for the resampling filter


@dataclass(frozen=True)
class CropSpec:
    """How one crop is made."""

    size: int = 224
    zoom: float = 1.0  # the box grown about its centre by this factor
    windowing: str = "window"  # "window" (DICOM default window) or "percentile" (per crop)
    percentiles: tuple[float, float] = (0.5, 99.5)  # for windowing="percentile"
    aspect: str = "squash"  # "squash": box straight to size x size; "square": box made square first

    def __post_init__(self) -> None:
        if int(self.size) != self.size or self.size < 1:
            raise ValueError(f"size must be a positive integer, got {self.size!r}")
        if not (self.zoom > 0 and math.isfinite(self.zoom)):
            raise ValueError(f"zoom must be > 0, got {self.zoom!r}")
        if self.windowing not in WINDOWINGS:
            raise ValueError(f"windowing must be one of {WINDOWINGS}, got {self.windowing!r}")
        if self.aspect not in ASPECTS:
            raise ValueError(f"aspect must be one of {ASPECTS}, got {self.aspect!r}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles!r}")


def _check_box(box: Sequence[float]) -> Box:
    if len(box) != 4:
        raise ValueError(f"box must be (x, y, w, h), got {box!r}")
    x, y, w, h = (float(v) for v in box)
    if not (w > 0 and h > 0) or not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"box must have finite coordinates and positive size, got {box!r}")
    return x, y, w, h


def _check_side(side: str) -> str:
    if side not in SIDES:
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    return side


def crop_rect(box: Sequence[float], *, zoom: float = 1.0, aspect: str = "squash") -> tuple[float, float, float, float]:
    """The image rectangle (x0, y0, x1, y1) a crop covers: the box, made square
    if aspect="square", then grown by ``zoom`` about its centre. Not clipped."""
    x, y, w, h = _check_box(box)
    if not zoom > 0:
        raise ValueError(f"zoom must be > 0, got {zoom!r}")
    if aspect not in ASPECTS:
        raise ValueError(f"aspect must be one of {ASPECTS}, got {aspect!r}")
    cx, cy = x + w / 2, y + h / 2
    if aspect == "square":
        w = h = max(w, h)
    hw, hh = w * zoom / 2, h * zoom / 2
    return cx - hw, cy - hh, cx + hw, cy + hh


def _slice_window(
    shape: tuple[int, int], rect: tuple[float, float, float, float], margin: int
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Integer window enclosing rect (plus margin), and its part inside the image."""
    rows, cols = shape
    x0, y0, x1, y1 = rect
    wx0, wy0 = math.floor(x0) - margin, math.floor(y0) - margin
    wx1, wy1 = math.ceil(x1) + margin, math.ceil(y1) + margin
    ix0, iy0 = min(max(wx0, 0), cols), min(max(wy0, 0), rows)
    ix1, iy1 = max(min(wx1, cols), ix0), max(min(wy1, rows), iy0)
    return (wx0, wy0, wx1, wy1), (ix0, iy0, ix1, iy1)


def _check_pixels(pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"pixels must be a non-empty 2-D array, got shape {pixels.shape}")
    return pixels


def crop_box(pixels: np.ndarray, box: Sequence[float], *, zoom: float = 1.0, fill: float | None = None) -> np.ndarray:
    """The raw pixels of the box grown by ``zoom`` about its centre, as float32,
    at full resolution (integer pixels enclosing the rectangle: floor of its
    start, ceil of its end). Outside the image it is padded with ``fill``,
    default the image's minimum (computed only when padding is needed)."""
    pixels = _check_pixels(pixels)
    (wx0, wy0, wx1, wy1), (ix0, iy0, ix1, iy1) = _slice_window(pixels.shape, crop_rect(box, zoom=zoom), 0)
    inside = pixels[iy0:iy1, ix0:ix1]
    if (ix0, iy0, ix1, iy1) == (wx0, wy0, wx1, wy1):
        return inside.astype(np.float32)
    value = float(pixels.min()) if fill is None else float(fill)
    out = np.full((wy1 - wy0, wx1 - wx0), value, dtype=np.float32)
    out[iy0 - wy0 : iy1 - wy0, ix0 - wx0 : ix1 - wx0] = inside
    return out


_WINDOW_STRIP = 256 * 1024  # values per strip of apply_window (1 MiB of float32)

# Pillow hands an image's memory back to the system when the image goes (blocks_max 0), so
# each whole film made into a float32 image (~30 MB) is page-faulted in afresh: half of the
# detector's input preparation. Keeping a few 16 MiB blocks for reuse (at most 128 MiB held)
# lets the next film take them. Raised only, never lowered (PILLOW_BLOCKS_MAX may set more).
Image.core.set_blocks_max(max(Image.core.get_blocks_max(), 8))


def apply_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM linear VOI LUT (PS3.3 C.11.2.1.2.1) to [0, 1], float32:
    0 if x <= c - 0.5 - (w - 1) / 2, 1 if x > c - 0.5 + (w - 1) / 2,
    else (x - (c - 0.5)) / (w - 1) + 0.5."""
    c, w = float(center), float(width)
    if not (math.isfinite(c) and math.isfinite(w)) or w < 1:
        raise ValueError(f"window must have a finite centre and a width >= 1, got ({center!r}, {width!r})")
    values = np.asarray(values)
    if w == 1 or values.size == 0:  # a threshold (or nothing to window)
        return (values > c - 0.5).astype(np.float32)
    # The same four float32 steps as (x - (c - .5)) / (w - 1) + .5, clipped, in place and by
    # strips of rows that stay in the CPU cache: no whole-image temporaries (a 3000 x 2500 film
    # windows in half the time), bit-identical results.
    src = values.reshape(1, -1) if values.ndim < 2 else values.reshape(values.shape[0], -1)
    out = np.empty(src.shape, dtype=np.float32)
    lo, scale, half = np.float32(c - 0.5), np.float32(1.0 / (w - 1)), np.float32(0.5)
    rows = max(1, _WINDOW_STRIP // max(1, src.shape[1]))
    for start in range(0, src.shape[0], rows):
        o = out[start : start + rows]
        np.subtract(src[start : start + rows], lo, out=o, dtype=np.float32)
        np.multiply(o, scale, out=o)
        np.add(o, half, out=o)
        np.clip(o, 0.0, 1.0, out=o)
    return out.reshape(values.shape)


def percentile_window(values: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Map the values' own low/high percentiles to 0/1 (clipped), float32."""
    x = np.asarray(values, dtype=np.float32)
    if x.size == 0:
        return x
    sample = x
    if x.ndim == 2 and x.size > 120_000:  # percentiles of ~60k samples: fast enough
        step = math.isqrt(x.size // 60_000)
        sample = x[::step, ::step]
    lo, hi = (float(v) for v in np.percentile(sample, percentiles))
    if hi <= lo:
        return np.where(x > lo, np.float32(1.0), np.float32(0.0)).astype(np.float32)
    out = (x - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out)


def hip_crop(
    pixels: np.ndarray,
    box: Sequence[float],
    side: str,
    *,
    window: tuple[float, float] | None = None,
    spec: CropSpec = CropSpec(),  # noqa: B008 - frozen dataclass, immutable default
    invert: bool = False,
) -> np.ndarray:
    """One hip crop: (size, size) float32 in [0, 1], left hips mirrored to look
    like right hips. ``window`` = (centre, width) in the pixels' units, needed
    for windowing="window". ``invert`` for MONOCHROME1 stored values."""
    pixels = _check_pixels(pixels)
    _check_side(side)
    if spec.windowing == "window" and window is None:
        raise ValueError('windowing="window" needs window=(centre, width)')
    rect = crop_rect(box, zoom=spec.zoom, aspect=spec.aspect)
    (wx0, wy0, wx1, wy1), (ix0, iy0, ix1, iy1) = _slice_window(pixels.shape, rect, _MARGIN)
    inside = pixels[iy0:iy1, ix0:ix1]
    if spec.windowing == "window":
        assert window is not None
        vals = apply_window(inside, *window)
    else:
        vals = percentile_window(inside, spec.percentiles)
    if invert:
        vals = 1.0 - vals
    if (ix0, iy0, ix1, iy1) != (wx0, wy0, wx1, wy1):  # pad with black outside the image
        region = np.zeros((wy1 - wy0, wx1 - wx0), dtype=np.float32)
        region[iy0 - wy0 : iy1 - wy0, ix0 - wx0 : ix1 - wx0] = vals
    else:
        region = np.ascontiguousarray(vals, dtype=np.float32)
    x0, y0, x1, y1 = rect
    src = (x0 - wx0, y0 - wy0, x1 - wx0, y1 - wy0)
    img = Image.fromarray(region).resize((spec.size, spec.size), Image.Resampling.BILINEAR, box=src)
    out = np.asarray(img, dtype=np.float32)
    if side == "left":
        out = out[:, ::-1]
    return np.clip(out, 0.0, 1.0)  # new contiguous array; bilinear stays in range, clip guards rounding


def hip_crops(
    pixels: np.ndarray,
    box: Sequence[float],
    side: str,
    *,
    window: tuple[float, float] | None = None,
    size: int = 224,
    zooms: Sequence[float] = (1.0, 1.5),
    windowing: str = "window",
    aspect: str = "squash",
    invert: bool = False,
) -> list[np.ndarray]:
    """The crops of one hip at each zoom level (the paper's two box sizes)."""
    return [
        hip_crop(
            pixels,
            box,
            side,
            window=window,
            spec=CropSpec(size=size, zoom=z, windowing=windowing, aspect=aspect),
            invert=invert,
        )
        for z in zooms
    ]


def to_model_input(crop01: np.ndarray) -> np.ndarray:
    """(..., H, W) crop in [0, 1] to (..., H, W, 3) float32 as
    keras.applications.densenet.preprocess_input ("torch" mode) gives for an
    RGB image x with x / 255 == crop01: (crop01 - mean) / std per channel with
    the ImageNet mean [0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225]."""
    x = np.asarray(crop01, dtype=np.float32)[..., None]
    return ((x - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)


def crop_to_image_coords(
    u: np.ndarray | float,
    v: np.ndarray | float,
    box: Sequence[float],
    side: str,
    *,
    spec: CropSpec = CropSpec(),  # noqa: B008 - frozen dataclass, immutable default
) -> tuple[np.ndarray, np.ndarray]:
    """Crop coordinates (u right, v down, both in [0, size]; pixel (r, c) of the
    crop has its centre at u = c + 0.5, v = r + 0.5) to image (x, y), the
    flip of left hips undone. Crop corner (0, 0) is the rectangle's top-left
    for a right hip and its top-right for a left hip."""
    _check_side(side)
    x0, y0, x1, y1 = crop_rect(box, zoom=spec.zoom, aspect=spec.aspect)
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    sx, sy = (x1 - x0) / spec.size, (y1 - y0) / spec.size
    x = x0 + u * sx if side == "right" else x1 - u * sx
    return x, y0 + v * sy


def image_to_crop_coords(
    x: np.ndarray | float,
    y: np.ndarray | float,
    box: Sequence[float],
    side: str,
    *,
    spec: CropSpec = CropSpec(),  # noqa: B008 - frozen dataclass, immutable default
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``crop_to_image_coords``."""
    _check_side(side)
    x0, y0, x1, y1 = crop_rect(box, zoom=spec.zoom, aspect=spec.aspect)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sx, sy = (x1 - x0) / spec.size, (y1 - y0) / spec.size
    u = (x - x0) / sx if side == "right" else (x1 - x) / sx
    return u, (y - y0) / sy
