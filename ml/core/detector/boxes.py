"""The detector's geometry: the letterbox of a radiograph into the model's square input, boxes between
the radiograph's COCO (x, y, w, h) pixels and the input's, keras' ``"yxyx"`` format, and the model
image itself (:func:`model_image`). No Django import.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..crops import apply_window, to_model_input
from ..vocab import Box

BOX_FORMAT = "yxyx"


# --------------------------------------------------------------------------- boxes


@dataclass(frozen=True)
class Detection:
    """One detected hip: ``side`` ("right" / "left"), ``box`` (x, y, w, h) in the original
    radiograph's pixels, ``score`` in [0, 1]."""

    side: str
    box: Box
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"side": self.side, "box": [float(v) for v in self.box], "score": float(self.score)}


@dataclass(frozen=True)
class Letterbox:
    """Where a source rectangle (x0, y0, width, height of the original image) lies in the
    model input: scaled by (sx, sy) to (new_w, new_h) pixels at the input's top-left corner."""

    x0: float
    y0: float
    sx: float
    sy: float
    new_w: int
    new_h: int
    size: int


def letterbox_for(width: float, height: float, size: int, *, x0: float = 0.0, y0: float = 0.0) -> Letterbox:
    """The letterbox of a ``width`` x ``height`` region (at x0, y0) into a ``size`` square,
    aspect kept: the long side becomes ``size``, the other ``round(side * size / long)`` (>= 1)."""
    if not (width > 0 and height > 0):
        raise ValueError(f"region must have a positive size, got {width} x {height}")
    scale = size / max(width, height)
    new_w = min(size, max(1, round(width * scale)))
    new_h = min(size, max(1, round(height * scale)))
    return Letterbox(x0=float(x0), y0=float(y0), sx=new_w / width, sy=new_h / height, new_w=new_w, new_h=new_h,
                     size=int(size))  # fmt: skip


def box_to_input(box: Sequence[float], lb: Letterbox) -> Box:
    """An original-image COCO box in model-input pixels (COCO)."""
    x, y, w, h = (float(v) for v in box)
    return ((x - lb.x0) * lb.sx, (y - lb.y0) * lb.sy, w * lb.sx, h * lb.sy)


def box_from_input(box: Sequence[float], lb: Letterbox) -> Box:
    """A model-input COCO box back in original-image pixels (exact inverse of ``box_to_input``)."""
    x, y, w, h = (float(v) for v in box)
    return (x / lb.sx + lb.x0, y / lb.sy + lb.y0, w / lb.sx, h / lb.sy)


def coco_to_yxyx(box: Sequence[float]) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in box)
    return (y, x, y + h, x + w)


def yxyx_to_coco(box: Sequence[float]) -> Box:
    y0, x0, y1, x1 = (float(v) for v in box)
    return (x0, y0, x1 - x0, y1 - y0)


def model_image(
    pixels: np.ndarray,
    window: tuple[float, float],
    size: int,
    *,
    region: tuple[float, float, float, float] | None = None,
    invert: bool = False,
) -> tuple[np.ndarray, Letterbox]:
    """The model input (size, size, 3) float32 for ``pixels`` (or its ``region`` x0, y0, w, h,
    which may extend past the image: black there), and its ``Letterbox``."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"pixels must be a non-empty 2-D array, got shape {pixels.shape}")
    rows, cols = pixels.shape
    x0, y0, w, h = (0.0, 0.0, float(cols), float(rows)) if region is None else (float(v) for v in region)
    lb = letterbox_for(w, h, size, x0=x0, y0=y0)
    # Integer window around the region, its part inside the image windowed, black elsewhere.
    wx0, wy0 = math.floor(x0), math.floor(y0)
    wx1, wy1 = math.ceil(x0 + w), math.ceil(y0 + h)
    ix0, iy0 = min(max(wx0, 0), cols), min(max(wy0, 0), rows)
    ix1, iy1 = max(min(wx1, cols), ix0), max(min(wy1, rows), iy0)
    values = apply_window(pixels[iy0:iy1, ix0:ix1], *window)
    if invert:
        values = 1.0 - values
    if (ix0, iy0, ix1, iy1) != (wx0, wy0, wx1, wy1):
        canvas = np.zeros((wy1 - wy0, wx1 - wx0), dtype=np.float32)
        canvas[iy0 - wy0 : iy1 - wy0, ix0 - wx0 : ix1 - wx0] = values
        values = canvas
    src = (x0 - wx0, y0 - wy0, x0 - wx0 + w, y0 - wy0 + h)
    small = np.asarray(
        Image.fromarray(np.ascontiguousarray(values, dtype=np.float32)).resize(
            (lb.new_w, lb.new_h), Image.Resampling.BILINEAR, box=src
        ),
        dtype=np.float32,
    )
    square = np.zeros((size, size), dtype=np.float32)
    square[: lb.new_h, : lb.new_w] = np.clip(small, 0.0, 1.0)
    return to_model_input(square), lb
