"""Detecting hips: the best box of each side after NMS (:func:`select_detections`), batched
prediction in one traced graph per model, :func:`detect_many` / :func:`detect` on radiographs and
:func:`mean_iou` against labelled boxes. No Django import.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ..vocab import SIDES, Box, iou
from .boxes import Detection, Letterbox, box_from_input, model_image
from .config import DetectorConfig

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

        def run(images: Any) -> Any:
            net: Any = ref()  # alive while the model is: the model is this function's key
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

    def flush() -> Iterator[list[Detection]]:
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
