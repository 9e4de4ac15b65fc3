"""Training input pipeline for the hip classifier (Krogue et al. 2020): records -> ``tf.data.Dataset``.

Training follows the config's regime (``online-random`` or ``paper-fixed``), reproducible from
(seed, epoch, element); validation and test read the plain crop at one zoom. Pixels are cached
per radiograph in a byte-bounded LRU.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import tensorflow as tf  # noqa: E402

from common.lru import ByteBoundedLRU  # noqa: E402
from ml.core.augment import AugmentConfig, augment_hip, paper_variant, paper_variants  # noqa: E402
from ml.core.configs import TRAINING_REGIMES, NetConfig  # noqa: E402
from ml.core.crops import CropSpec, hip_crop, to_model_input  # noqa: E402

PixelSource = Callable[[], np.ndarray] | str | os.PathLike[str]
DEFAULT_CACHE_BYTES = 1 << 30  # 1 GiB: ~70 radiographs of 3000 x 2500 uint16


@dataclass(frozen=True)
class HipRecord:
    """One hip: where its radiograph's pixels come from, the window, the box.

    pixels: a callable returning the 2-D array (uint16 "higher = brighter", as
    ``annotate.archive.dicom.decode_dicom`` gives) or a path to a ``.npy`` file.
    window: (centre, width) in pixel units. box: (x, y, w, h) in pixels (COCO).
    side: "right" or "left" (the patient's side). label: class index 0..5.
    radiograph: the cache key shared by the hips of one film; default the
    path (for a path) or the callable's identity (pass the same callable for
    both hips, or set this)."""

    pixels: PixelSource
    window: tuple[float, float]
    box: tuple[float, float, float, float]
    side: str
    label: int
    patient: str = ""
    radiograph: str | None = None
    invert: bool = False
    cache_key: object = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', got {self.side!r}")
        if int(self.label) != self.label or self.label < 0:
            raise ValueError(f"label must be a class index >= 0, got {self.label!r}")
        if self.radiograph is not None:
            key: object = ("radiograph", str(self.radiograph))
        elif callable(self.pixels):
            key = ("callable", id(self.pixels))
        else:
            key = ("path", str(Path(self.pixels)))
        object.__setattr__(self, "cache_key", key)

    def load_pixels(self) -> np.ndarray:
        """The full-resolution 2-D pixels (no caching)."""
        if callable(self.pixels):
            arr = self.pixels()
        else:
            arr = np.load(Path(self.pixels), mmap_mode="r")
        arr = np.asarray(arr)
        if arr.ndim != 2:
            raise ValueError(f"pixels must be 2-D, got shape {arr.shape}")
        return arr


class PixelCache:
    """The loaded radiographs of the records, in a thread-safe LRU bounded in bytes
    (:class:`common.lru.ByteBoundedLRU`); a memory-mapped array is read into memory first."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._lru = ByteBoundedLRU(max_bytes)

    @property
    def max_bytes(self) -> int:
        return self._lru.max_bytes

    @property
    def loads(self) -> int:
        return self._lru.loads

    @property
    def nbytes(self) -> int:
        return self._lru.nbytes

    def __len__(self) -> int:
        return len(self._lru)

    def get(self, record: HipRecord) -> np.ndarray:
        pixels: np.ndarray = self._lru.get(record.cache_key, lambda: np.ascontiguousarray(record.load_pixels()))
        return pixels


def element_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of element ``index`` in epoch ``epoch``."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Record indices in the order epoch ``epoch`` visits them."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n).astype(np.int64)


def images_per_hip(regime: str, zooms: Sequence[float]) -> int:
    """Training elements per hip and epoch: 1 (``online-random``) or the size of the paper's
    fixed set, ``len(zooms) x 4`` (``paper-fixed``)."""
    if regime not in TRAINING_REGIMES:
        raise ValueError(f"regime must be one of {TRAINING_REGIMES}, got {regime!r}")
    return len(paper_variants(zooms)) if regime == "paper-fixed" else 1


def make_example(
    record: HipRecord,
    pixels: np.ndarray,
    *,
    size: int,
    augment: AugmentConfig | None,
    rng: np.random.Generator | None = None,
    zoom: float = 1.0,
    variant: tuple[float, str] | None = None,
) -> np.ndarray:
    """One model input (size, size, 3) float32: with ``variant`` = (zoom, kind) that image of
    the paper's fixed set (``augment.paper_variant``; needs ``augment`` and ``rng``); else
    randomly augmented if ``augment`` (needs ``rng``), else the plain crop at ``zoom``."""
    if augment is not None and rng is None:
        raise ValueError("augmentation needs rng")
    if variant is not None:
        if augment is None or rng is None:
            raise ValueError("a paper-fixed variant needs augment and rng")
        crop = paper_variant(
            pixels,
            record.box,
            record.side,
            zoom=variant[0],
            kind=variant[1],
            window=record.window,
            rng=rng,
            config=augment,
            spec=CropSpec(size=size),
            invert=record.invert,
        )
    elif augment is not None:
        assert rng is not None
        crop = augment_hip(
            pixels,
            record.box,
            record.side,
            window=record.window,
            rng=rng,
            config=augment,
            spec=CropSpec(size=size),
            invert=record.invert,
        )
    else:
        crop = hip_crop(
            pixels,
            record.box,
            record.side,
            window=record.window,
            spec=CropSpec(size=size, zoom=zoom),
            invert=record.invert,
        )
    return to_model_input(crop)


def make_dataset(
    records: Sequence[HipRecord],
    *,
    config: NetConfig,
    augment: AugmentConfig | None,
    seed: int,
    shuffle: bool,
    batch_size: int | None = None,
    cache_pixels: bool = True,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    zoom: float = 1.0,
    drop_remainder: bool = False,
    num_parallel_calls: int | None = None,
    prefetch: int | None = None,
    first_epoch: int = 0,
    regime: str = "online-random",
) -> tf.data.Dataset:
    """``tf.data.Dataset`` of (images float32 (B, S, S, 3), labels int32 (B,)).

    ``augment``: an ``AugmentConfig`` for training, None for validation/test (the
    plain crop at ``zoom``). ``regime`` (with ``augment`` only): ``online-random``, one
    randomly augmented crop per hip and epoch, or ``paper-fixed``, the paper's fixed set
    of ``images_per_hip`` crops per hip and epoch (see the module docstring).
    ``batch_size`` defaults to ``config.batch_size``.
    ``num_parallel_calls`` / ``prefetch`` default to ``tf.data.AUTOTUNE``.
    ``first_epoch``: the epoch number of the first iteration (a training run resumed
    after epoch e passes e, so it draws what an uninterrupted run would have drawn).
    The dataset's ``pixel_cache`` attribute is the ``PixelCache`` (None when
    ``cache_pixels`` is False). See the module docstring for determinism."""
    records = list(records)
    if not records:
        raise ValueError("no records")
    for r in records:
        if not 0 <= r.label < config.num_classes:
            raise ValueError(f"label {r.label} outside 0..{config.num_classes - 1}")
    if not zoom > 0:
        raise ValueError(f"zoom must be > 0, got {zoom!r}")
    size = int(config.input_size)
    if regime not in TRAINING_REGIMES:
        raise ValueError(f"regime must be one of {TRAINING_REGIMES}, got {regime!r}")
    variants = paper_variants(augment.zooms) if augment is not None and regime == "paper-fixed" else None
    per_hip = len(variants) if variants else 1
    n = len(records) * per_hip  # elements per epoch
    batch = int(batch_size or config.batch_size)
    cache = PixelCache(cache_bytes) if cache_pixels else None
    labels = np.array([r.label for r in records], dtype=np.int32)
    epoch_counter = [int(first_epoch)]
    counter_lock = threading.Lock()

    def order() -> Iterator[tuple[np.int64, np.int64]]:
        with counter_lock:
            epoch = epoch_counter[0]
            epoch_counter[0] += 1
        for i in epoch_order(n, seed, epoch, shuffle):
            yield np.int64(i), np.int64(epoch)

    def load(index: np.int64, epoch: np.int64) -> tuple[np.ndarray, np.int32]:
        hip, variant = divmod(int(index), per_hip)
        record = records[hip]
        pixels = cache.get(record) if cache is not None else record.load_pixels()
        rng = element_rng(seed, int(epoch), int(index)) if augment is not None else None
        image = make_example(
            record, pixels, size=size, augment=augment, rng=rng, zoom=zoom,
            variant=variants[variant] if variants else None,
        )  # fmt: skip
        return image, labels[hip]

    def tf_load(index: Any, epoch: Any) -> tuple[Any, Any]:  # TensorFlow tensors (TF is untyped)
        image, label = tf.numpy_function(load, [index, epoch], (tf.float32, tf.int32), stateful=False)
        image.set_shape((size, size, 3))
        label.set_shape(())
        return image, label

    spec = (tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.int64))
    ds = tf.data.Dataset.from_generator(order, output_signature=spec)
    parallel = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    ds = ds.map(tf_load, num_parallel_calls=parallel, deterministic=True)
    ds = ds.batch(batch, drop_remainder=drop_remainder)
    ds = ds.prefetch(tf.data.AUTOTUNE if prefetch is None else prefetch)
    ds = ds.apply(tf.data.experimental.assert_cardinality((n // batch) if drop_remainder else -(-n // batch)))
    ds.pixel_cache = cache
    return ds


def eval_zoom_datasets(
    records: Sequence[HipRecord],
    *,
    config: NetConfig,
    zooms: Sequence[float] | None = None,
    batch_size: int | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> dict[float, tf.data.Dataset]:
    """Unaugmented, unshuffled datasets, one per zoom (default ``config.zooms``),
    for test-time averaging: predictions of each are in record order."""
    zooms = tuple(config.zooms if zooms is None else zooms)
    return {
        float(z): make_dataset(
            records,
            config=config,
            augment=None,
            seed=0,
            shuffle=False,
            batch_size=batch_size,
            cache_bytes=cache_bytes,
            zoom=float(z),
        )
        for z in zooms
    }


def records_labels(records: Sequence[HipRecord]) -> np.ndarray:
    """The records' labels, int32, in record order."""
    return np.array([r.label for r in records], dtype=np.int32)


__all__ = [
    "HipRecord",
    "PixelCache",
    "element_rng",
    "epoch_order",
    "eval_zoom_datasets",
    "images_per_hip",
    "make_dataset",
    "make_example",
    "records_labels",
]
