"""The hip detector (Krogue et al. 2020, "Hip Detection"): a RetinaNet with a feature pyramid
(Lin et al. 2017) that boxes both hips of an AP pelvis radiograph and labels them right and left.

Everything network-related is keras-hub's: ``keras_hub.models.ResNetBackbone`` (ResNet-50 for
``paper``, a small ResNet for ``cpu-small`` / ``tiny``, built from scratch, no presets),
``RetinaNetBackbone`` (the FPN), ``RetinaNetObjectDetector`` (anchors, label encoder, focal
loss, smooth-L1 box loss) and ``keras_hub.layers.NonMaxSuppression`` (IoU ``nms_iou`` = 0.3,
as the paper). No hand-written anchors or losses.

Classes: ``SIDES`` = ("right", "left"); class 0 is the patient's right hip, which lies on the
image's LEFT half of an AP film. Each radiograph has at most one box per class: after NMS,
``detect`` keeps the best-scoring box of each class.

Geometry ("letterbox"). A radiograph of H x W pixels is windowed with its default window
(``crops.apply_window``, to [0, 1]), resized with its aspect ratio kept so that its long side is
``image_size`` (Pillow bilinear with antialiasing), placed at the top-left of an
``image_size`` square padded with black, replicated to 3 channels and normalised like the
classifier's input (``crops.to_model_input``: ImageNet mean/std). ``Letterbox`` holds the exact
per-axis scale (resized width / W, resized height / H), so ``box_to_input`` and
``box_from_input`` are exact inverses. Boxes here are COCO (x, y, w, h) in pixels; the model
itself works in keras' ``"yxyx"`` (absolute input pixels).

Training data: one ``DetectorRecord`` per radiograph with its labelled hips. Random-crop
augmentation (``random_crop``): a random window of the film, at least ``crop_min`` of each side
and always containing every labelled hip whole, is letterboxed instead of the whole film; boxes
follow. ``make_detector_dataset`` (a ``tf.data.Dataset``) draws the crops reproducibly from
(seed, epoch), so a resumed run sees the same crops as an uninterrupted one.

No Django import here.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .configs import JsonConfig
from .crops import apply_window, to_model_input
from .vocab import SIDES, Box, iou

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

KIND = "detector"
BLOCK_TYPES = ("bottleneck_block", "basic_block")
BOX_FORMAT = "yxyx"
PRIOR_PROBABILITY = 0.01  # RetinaNet's initial foreground probability


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class DetectorConfig(JsonConfig):
    """One detector network + training configuration.

    backbone: ``"resnet50"`` (ResNet-50 v1: bottleneck blocks (3, 4, 6, 3), filters
    (64, 128, 256, 512)) or ``"resnet"`` (any ``block_type`` / ``filters`` / ``blocks``).
    ``image_size``: the square a radiograph is letterboxed into. ``min_level`` /
    ``max_level``: the FPN levels (P3-P7 as the paper's RetinaNet). ``head_layers``: conv
    layers of each prediction head before its output (4 in RetinaNet). ``crop_min``: the
    smallest random crop, as a fraction of each side (1 = no crop augmentation).
    ``min_score``: detections scoring less are dropped. ``box_delta`` / ``box_weight``: the
    box loss is keras' Huber with that delta, weighted so against the focal loss: keras-hub's
    encoder has box variance 1 (offsets of about 0.1), where Huber with delta 1 barely pulls
    boxes tight (validation IoU stalled near 0.65 on the phantoms); delta 0.1 x 50 is about the
    classic RetinaNet's variance (0.1, 0.1, 0.2, 0.2) with smooth L1. ``weights_path``: a local weights
    file for the ResNet encoder (``encoder.load_weights``); None = random initialisation.
    """

    name: str
    backbone: str = "resnet50"
    block_type: str = "bottleneck_block"
    filters: tuple[int, ...] = (64, 128, 256, 512)
    blocks: tuple[int, ...] = (3, 4, 6, 3)
    image_size: int = 512
    min_level: int = 3
    max_level: int = 7
    head_layers: int = 4
    batch_size: int = 8
    learning_rate: float = 1e-4
    epochs: int = 100
    patience: int = 10
    lr_decay: float = 0.9
    nms_iou: float = 0.3
    min_score: float = 0.05
    max_detections: int = 10
    crop_min: float = 0.7
    box_delta: float = 0.1
    box_weight: float = 50.0
    weights_path: str | None = None

    label = "detector config"  # (not a field) names it in error messages

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple(int(v) for v in self.filters))
        object.__setattr__(self, "blocks", tuple(int(v) for v in self.blocks))
        if self.weights_path is not None:
            object.__setattr__(self, "weights_path", str(self.weights_path))
        if self.backbone not in ("resnet50", "resnet"):
            raise ValueError(f"backbone must be 'resnet50' or 'resnet', got {self.backbone!r}")
        if self.backbone == "resnet50" and (
            self.block_type != "bottleneck_block" or self.filters != (64, 128, 256, 512) or self.blocks != (3, 4, 6, 3)
        ):
            raise ValueError("resnet50 has bottleneck blocks (3, 4, 6, 3) with filters (64, 128, 256, 512)")
        if self.block_type not in BLOCK_TYPES:
            raise ValueError(f"block_type must be one of {BLOCK_TYPES}, got {self.block_type!r}")
        if len(self.filters) != 4 or len(self.blocks) != 4 or min(self.filters + self.blocks) < 1:
            raise ValueError(f"filters and blocks must be four positive numbers, got {self.filters}, {self.blocks}")
        if self.filters[0] != 64:
            raise ValueError(f"keras-hub's ResNet needs 64 filters in its first stage, got {self.filters}")
        if not 3 <= self.min_level <= 5 or not 5 <= self.max_level <= 7:
            raise ValueError(f"levels must satisfy 3 <= min_level <= 5 <= max_level <= 7, got {self.min_level}, "
                             f"{self.max_level}")  # fmt: skip
        if self.image_size < 64 or self.image_size % 2**self.max_level:
            raise ValueError(f"image_size must be >= 64 and a multiple of {2**self.max_level}, got {self.image_size}")
        for attr in ("batch_size", "epochs", "patience", "head_layers", "max_detections"):
            if int(getattr(self, attr)) < 1:
                raise ValueError(f"{attr} must be >= 1, got {getattr(self, attr)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if not 0 < self.nms_iou < 1:
            raise ValueError(f"nms_iou must be in (0, 1), got {self.nms_iou}")
        if not 0 <= self.min_score < 1:
            raise ValueError(f"min_score must be in [0, 1), got {self.min_score}")
        if not (self.box_delta > 0 and self.box_weight > 0):
            raise ValueError(f"box_delta and box_weight must be > 0, got {self.box_delta}, {self.box_weight}")
        if not 0 < self.crop_min <= 1:
            raise ValueError(f"crop_min must be in (0, 1], got {self.crop_min}")

    @property
    def kind(self) -> str:
        return KIND

    @property
    def num_classes(self) -> int:
        return len(SIDES)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 3)


DETECTOR_CONFIGS: dict[str, DetectorConfig] = {
    # RetinaNet, ResNet-50 FPN P3-P7, 512 x 512 input (the paper downsamples its radiographs).
    "paper": DetectorConfig(name="paper"),
    # A small ResNet (basic blocks) at 256 x 256 with FPN levels P4-P5 only: a hip is a third
    # of the film's width (70-90 px here), which P4's anchors (64-101 px) and P5's fit, and
    # leaving out P3 makes training three times faster. From scratch, on 2 CPU cores.
    "cpu-small": DetectorConfig(
        name="cpu-small",
        backbone="resnet",
        block_type="basic_block",
        filters=(64, 64, 128, 128),
        blocks=(1, 1, 1, 1),
        image_size=256,
        min_level=4,
        max_level=5,
        head_layers=2,
        batch_size=8,
        learning_rate=1e-3,
        epochs=20,  # the validation IoU levels off by epoch ~18 on 400 phantom studies
        patience=6,
        lr_decay=0.93,
    ),
    # For tests: 128 x 128, one block per stage, one head layer.
    "tiny": DetectorConfig(
        name="tiny",
        backbone="resnet",
        block_type="basic_block",
        filters=(64, 32, 32, 32),
        blocks=(1, 1, 1, 1),
        image_size=128,
        max_level=5,
        head_layers=1,
        batch_size=4,
        learning_rate=1e-3,
        epochs=2,
        patience=2,
        lr_decay=0.95,
        min_score=0.05,
    ),
}


def get_detector_config(name: str, **overrides: Any) -> DetectorConfig:
    """The named detector configuration, optionally with fields replaced."""
    try:
        config = DETECTOR_CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown detector config {name!r}; known: {sorted(DETECTOR_CONFIGS)}") from None
    return config.replace(**overrides) if overrides else config


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
            (lb.new_w, lb.new_h), Image.BILINEAR, box=src
        ),
        dtype=np.float32,
    )
    square = np.zeros((size, size), dtype=np.float32)
    square[: lb.new_h, : lb.new_w] = np.clip(small, 0.0, 1.0)
    return to_model_input(square), lb


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
            return np.load(self.pixels, mmap_mode="r")
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
    small = Image.fromarray(values).resize((lb.new_w, lb.new_h), Image.BILINEAR)
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

    def generate():
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


# --------------------------------------------------------------------------- the network


def _check_weights_path(path: str | None) -> str | None:
    if path is None:
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path!r} (weights are never downloaded; give a local file)")
    return path


def build_detector(config: DetectorConfig, *, steps_per_epoch: int | None = None, run_eagerly: bool = False) -> Any:
    """The RetinaNet of ``config``, compiled (Adam, lr decayed by ``lr_decay`` every
    ``steps_per_epoch`` steps when given; keras-hub's focal + Huber losses).

    Initialisation as RetinaNet's paper (Lin et al. 2017, section 4.1): the classification
    output's bias is -log((1 - pi) / pi), pi = 0.01, the box output's 0. keras-hub 0.32 puts
    that prior on the box head instead (every initial box then shifted and shrunk by e^-4.6,
    and a focal loss in the tens of thousands on the first steps), so both are set here after
    building. ``run_eagerly`` skips graph tracing (a smoke test's single step).
    """
    import keras_hub

    weights = _check_weights_path(config.weights_path)
    shape = config.input_shape
    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=list(config.filters),
        stackwise_num_blocks=list(config.blocks),
        stackwise_num_strides=[1, 2, 2, 2],
        block_type=config.block_type,
        image_shape=shape,
    )
    if weights is not None:
        encoder.load_weights(weights)
    backbone = keras_hub.models.RetinaNetBackbone(
        image_encoder=encoder,
        min_level=config.min_level,
        max_level=config.max_level,
        use_p5=False,
        image_shape=shape,
    )
    decoder = keras_hub.layers.NonMaxSuppression(
        bounding_box_format=BOX_FORMAT,
        from_logits=True,
        iou_threshold=config.nms_iou,
        confidence_threshold=config.min_score,
        max_detections=config.max_detections,
    )
    model = keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone,
        num_classes=len(SIDES),
        bounding_box_format=BOX_FORMAT,
        pre_logits_num_conv_layers=config.head_layers,
        prediction_decoder=decoder,
    )
    prior = PRIOR_PROBABILITY
    cls_bias = model.classification_head.prediction_layer.bias
    cls_bias.assign(np.full(cls_bias.shape, -math.log((1 - prior) / prior), dtype="float32"))
    box_bias = model.box_head.prediction_layer.bias
    box_bias.assign(np.zeros(box_bias.shape, dtype="float32"))
    return compile_detector(model, config, steps_per_epoch=steps_per_epoch, run_eagerly=run_eagerly)


def compile_detector(
    model: Any, config: DetectorConfig, *, steps_per_epoch: int | None = None, run_eagerly: bool = False
) -> Any:
    """Adam (global gradient-norm clip 10) at ``config.learning_rate``, times ``lr_decay``
    every ``steps_per_epoch`` steps; the losses are keras-hub's RetinaNet defaults."""
    import keras

    if steps_per_epoch is None or config.lr_decay == 1.0:
        lr: Any = config.learning_rate
    else:
        lr = keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, decay_steps=int(steps_per_epoch), decay_rate=config.lr_decay, staircase=True
        )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr, global_clipnorm=10.0),
        box_loss=keras.losses.Huber(delta=config.box_delta, reduction="sum"),
        loss_weights={"bbox_regression": config.box_weight, "cls_logits": 1.0},
        run_eagerly=run_eagerly,
    )
    return model


def load_detector_model(path: str | os.PathLike, *, compile: bool = True) -> Any:
    """A saved detector (``model.save``) loaded back; keras-hub registers its classes on import."""
    import warnings

    import keras
    import keras_hub  # noqa: F401

    with warnings.catch_warnings():  # the saved optimizer's variables are restored by load_checkpoint
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        return keras.saving.load_model(path, compile=compile)


def save_checkpoint(model: Any, folder: str | os.PathLike) -> None:
    """Write a training checkpoint into ``folder``: ``model.keras`` (the network) and
    ``optimizer.npz`` (every optimizer variable, in order). keras-hub's RetinaNet overrides
    ``compile``, so ``load_model(compile=True)`` cannot restore its optimizer; this can."""
    model.save(os.path.join(folder, "model.keras"))
    values = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(model.optimizer.variables)}
    with open(os.path.join(folder, "optimizer.npz"), "wb") as handle:
        np.savez(handle, **values)


def load_checkpoint(folder: str | os.PathLike, config: DetectorConfig, *, steps_per_epoch: int | None = None) -> Any:
    """The model of ``save_checkpoint``, compiled as ``build_detector`` does, optimizer state restored."""
    model = load_detector_model(os.path.join(folder, "model.keras"), compile=False)
    compile_detector(model, config, steps_per_epoch=steps_per_epoch)
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    with np.load(os.path.join(folder, "optimizer.npz")) as data:
        values = [data[key] for key in sorted(data.files)]
    if len(values) != len(optimizer.variables):
        raise ValueError(
            f"checkpoint has {len(values)} optimizer variables, the compiled model {len(optimizer.variables)}"
        )
    for variable, value in zip(optimizer.variables, values, strict=True):
        variable.assign(value)
    return model


# --------------------------------------------------------------------------- detecting


def select_detections(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, lb: Letterbox, min_score: float
) -> list[Detection]:
    """The best detection of each class (after NMS), boxes (yxyx, input pixels) mapped back to
    the original image and clipped to the letterboxed picture; sorted right then left. A box
    less than one original pixel wide or high once clipped is dropped."""
    best: dict[int, tuple[float, np.ndarray]] = {}
    for box, score, label in zip(boxes, scores, labels, strict=False):
        label = int(label)
        score = float(score)
        if label < 0 or label >= len(SIDES) or not math.isfinite(score) or score < min_score:
            continue
        if label not in best or score > best[label][0]:
            best[label] = (score, np.asarray(box, dtype=np.float64))
    out = []
    for label in sorted(best):
        score, (y0, x0, y1, x1) = best[label]
        x0, x1 = (min(max(v, 0.0), lb.new_w) for v in (x0, x1))
        y0, y1 = (min(max(v, 0.0), lb.new_h) for v in (y0, y1))
        if x1 <= x0 or y1 <= y0:
            continue
        box = box_from_input((x0, y0, x1 - x0, y1 - y0), lb)
        if box[2] < 1 or box[3] < 1:  # a sliver at the film's edge is not a hip
            continue
        out.append(Detection(side=SIDES[label], box=box, score=score))
    return out


def _graph_predict(model: Any) -> Any:
    """``model`` then ``model.decode_predictions`` as one ``tf.function``, made once per model
    (kept in a weak dictionary, so it goes with the model). It retraces once per batch size
    (keras-hub's NMS needs a static batch); the arithmetic and the outputs are those of the
    eager calls."""
    fn = _GRAPH_PREDICT.get(model)
    if fn is None:
        import tensorflow as tf

        ref = weakref.ref(model)  # the tf.function must not keep its own key alive

        def run(images):
            net = ref()
            return net.decode_predictions(net(images, training=False), images)

        fn = _GRAPH_PREDICT[model] = tf.function(run)
    return fn


_GRAPH_PREDICT: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def predict_batch(model: Any, images: np.ndarray) -> dict[str, np.ndarray]:
    """The decoded (NMS'd) detections of a batch of model inputs: "boxes" (N, max_detections, 4)
    yxyx input pixels, "confidence", "labels" (-1 where empty), "num_detections". Runs the
    network and keras-hub's ``decode_predictions`` as one ``tf.function`` (``_graph_predict``;
    eagerly they cost 2-3x more on the CPU for cpu-small, ~1.35x for paper), or eagerly on
    another Keras backend (``predict_on_batch`` passes its input in a form RetinaNet's
    ``predict_step`` does not unpack)."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        decoded = _graph_predict(model)(tf.convert_to_tensor(np.asarray(images, dtype=np.float32)))
    else:
        decoded = model.decode_predictions(model(images, training=False), images)
    return {key: np.asarray(value) for key, value in decoded.items()}


def detect_many(
    model: Any,
    config: DetectorConfig,
    items: Iterable[tuple[np.ndarray, tuple[float, float]]],
    *,
    batch_size: int = 8,
) -> Iterator[list[Detection]]:
    """``detect`` for many (pixels, window) pairs, ``batch_size`` radiographs per model call."""
    batch: list[tuple[np.ndarray, Letterbox]] = []

    def flush():
        images = np.stack([image for image, _ in batch])
        out = predict_batch(model, images)
        boxes = np.asarray(out["boxes"])
        scores = np.asarray(out["confidence"])
        labels = np.asarray(out["labels"])
        for i, (_, lb) in enumerate(batch):
            yield select_detections(boxes[i], scores[i], labels[i], lb, config.min_score)
        batch.clear()

    for pixels, window in items:
        batch.append(model_image(pixels, window, config.image_size))
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()


def detect(model: Any, config: DetectorConfig, pixels: np.ndarray, window: tuple[float, float]) -> list[Detection]:
    """Both hips of one radiograph: at most one box per side (NMS at ``config.nms_iou``, then
    the best box of each class), in original pixels, sorted right then left; [] when nothing
    scores ``config.min_score`` or more."""
    return next(detect_many(model, config, [(pixels, window)], batch_size=1))


def mean_iou(
    detections: Sequence[Sequence[Detection]], truths: Sequence[Sequence[tuple[str, Box]]]
) -> tuple[float, list[float]]:
    """Mean IoU of the detected boxes with the manual ones, per labelled hip (a hip with no
    detection of its side counts 0); also the per-hip IoUs."""
    values = []
    for found, hips in zip(detections, truths, strict=True):
        by_side = {d.side: d.box for d in found}
        for side, box in hips:
            values.append(iou(by_side[side], box) if side in by_side else 0.0)
    return (float(np.mean(values)) if values else 0.0), values
