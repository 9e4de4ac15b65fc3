"""The detector's training data: one :class:`DetectorRecord` per radiograph, random crops that keep
every labelled hip whole, training examples and reproducible epochs (seed, epoch) as a
``tf.data.Dataset`` (:func:`make_detector_dataset`). No Django import.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..crops import apply_window
from ..vocab import SIDES, Box
from .boxes import box_to_input, coco_to_yxyx, letterbox_for, model_image
from .config import DetectorConfig

# --------------------------------------------------------------------------- training data


@dataclass(frozen=True)
class DetectorRecord:
    """One training radiograph: pixels (array, path of a .npy, memory-mapped, or a callable that
    returns the array), its default window, and its labelled hips as (side, COCO box) pairs."""

    pixels: Any
    window: tuple[float, float]
    hips: tuple[tuple[str, Box], ...]
    radiograph: str = ""

    def load(self) -> np.ndarray:
        if isinstance(self.pixels, str | os.PathLike):
            loaded: np.ndarray = np.load(self.pixels, mmap_mode="r")
            return loaded
        if callable(self.pixels):
            return np.asarray(self.pixels())
        return np.asarray(self.pixels)


REDUCED_WINDOW = (2048.0, 4096.0)  # apply_window(x, *REDUCED_WINDOW) == x / 4095 for x in [0, 4095]


def reduced_record(record: DetectorRecord, max_side: int) -> DetectorRecord:
    """The record with its film windowed and downsampled (aspect kept, exact per-axis scales)
    to at most ``max_side`` pixels, hips scaled with it: training reads a few hundred kilobytes
    per example instead of a full radiograph. The pixels hold the windowed [0, 1] values times
    4095 under ``REDUCED_WINDOW``, so ``model_image`` windows them back exactly; windowing
    happens before downsampling, as ``detect`` does. Smaller films are returned unchanged."""
    pixels = record.load()
    rows, cols = pixels.shape
    if max(rows, cols) <= max_side:
        return record
    lb = letterbox_for(cols, rows, max_side)
    values = apply_window(pixels, *record.window)
    small = Image.fromarray(values).resize((lb.new_w, lb.new_h), Image.Resampling.BILINEAR)
    reduced = np.clip(np.asarray(small, dtype=np.float32), 0.0, 1.0) * np.float32(4095.0)
    hips = tuple((side, box_to_input(box, lb)) for side, box in record.hips)
    return DetectorRecord(pixels=reduced, window=REDUCED_WINDOW, hips=hips, radiograph=record.radiograph)


def random_crop(
    rng: np.random.Generator, shape: tuple[int, int], boxes: Sequence[Sequence[float]], crop_min: float
) -> tuple[float, float, float, float]:
    """A random region (x0, y0, w, h) of an image of ``shape`` (rows, cols): the same fraction
    f ~ U(crop_min, 1) of each side (aspect kept) but never smaller than the union of ``boxes``
    (grown on that axis when needed), placed uniformly where it contains every box and stays in
    the image as far as possible."""
    rows, cols = shape
    f = rng.uniform(crop_min, 1.0) if crop_min < 1 else 1.0
    cw, ch = f * cols, f * rows
    if not boxes:
        ux0, uy0, ux1, uy1 = cols / 2, rows / 2, cols / 2, rows / 2
    else:
        ux0 = min(b[0] for b in boxes)
        uy0 = min(b[1] for b in boxes)
        ux1 = max(b[0] + b[2] for b in boxes)
        uy1 = max(b[1] + b[3] for b in boxes)
    cw, ch = max(cw, ux1 - ux0), max(ch, uy1 - uy0)

    def place(lo_box: float, hi_box: float, extent: float, total: float) -> float:
        lo = max(hi_box - extent, min(0.0, lo_box))  # contains the box, starts in the image if it can
        hi = min(lo_box, max(total - extent, hi_box - extent))
        return float(rng.uniform(lo, hi)) if hi > lo else float(lo)

    return place(ux0, ux1, cw, cols), place(uy0, uy1, ch, rows), float(cw), float(ch)


def training_example(
    record: DetectorRecord, config: DetectorConfig, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (S, S, 3), boxes (2, 4) yxyx in input pixels, labels (2,)) for one radiograph;
    a random crop when ``rng`` is given. Missing hips are padded with boxes and labels -1."""
    pixels = record.load()
    region = None
    if rng is not None and config.crop_min < 1:
        region = random_crop(rng, pixels.shape, [box for _, box in record.hips], config.crop_min)
    image, lb = model_image(pixels, record.window, config.image_size, region=region)
    boxes = -np.ones((len(SIDES), 4), dtype=np.float32)
    labels = -np.ones((len(SIDES),), dtype=np.float32)
    for i, (side, box) in enumerate(sorted(record.hips, key=lambda hip: SIDES.index(hip[0]))[: len(SIDES)]):
        boxes[i] = coco_to_yxyx(box_to_input(box, lb))
        labels[i] = SIDES.index(side)
    return image, boxes, labels


def epoch_batches(
    records: Sequence[DetectorRecord], config: DetectorConfig, *, augment: bool, seed: int, epoch: int
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """One epoch of (images, {"boxes", "labels"}) batches: shuffled and randomly cropped, as
    drawn from (seed, epoch), when ``augment``; in order and uncropped otherwise."""
    if augment:
        order = np.random.default_rng([int(seed), int(epoch)]).permutation(len(records))
    else:
        order = np.arange(len(records))
    for start in range(0, len(order), config.batch_size):
        images, boxes, labels = [], [], []
        for i in order[start : start + config.batch_size]:
            rng = np.random.default_rng([int(seed), int(epoch), int(i)]) if augment else None
            image, b, lab = training_example(records[i], config, rng)
            images.append(image)
            boxes.append(b)
            labels.append(lab)
        yield np.stack(images), {"boxes": np.stack(boxes), "labels": np.stack(labels)}


def steps_per_epoch(records: Sequence[DetectorRecord], config: DetectorConfig) -> int:
    return math.ceil(len(records) / config.batch_size)


def make_detector_dataset(
    records: Sequence[DetectorRecord],
    config: DetectorConfig,
    *,
    augment: bool = True,
    seed: int = 0,
    first_epoch: int = 0,
) -> Any:
    """An endless ``tf.data.Dataset`` of training batches, epoch after epoch from
    ``first_epoch`` (so a resumed run draws what an uninterrupted one would), read from the
    records reduced once to twice ``image_size`` (``reduced_record``); fit it with
    ``steps_per_epoch=steps_per_epoch(records, config)``. keras-hub's ``fit`` takes
    ``tf.data`` (not a ``PyDataset``)."""
    import itertools

    import tensorflow as tf

    records = [reduced_record(r, 2 * config.image_size) for r in records]

    def generate() -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        for epoch in itertools.count(int(first_epoch)):
            yield from epoch_batches(records, config, augment=augment, seed=seed, epoch=epoch)

    size = config.image_size
    signature = (
        tf.TensorSpec((None, size, size, 3), tf.float32),
        {
            "boxes": tf.TensorSpec((None, len(SIDES), 4), tf.float32),
            "labels": tf.TensorSpec((None, len(SIDES)), tf.float32),
        },
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)
