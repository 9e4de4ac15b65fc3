"""Serving the classifier: the active model, per-hip predictions with heatmaps, batch scoring.

Every prediction is stored with its model version and heatmap and follows that version's
test-time protocol; a loaded model is kept per process (``predictor``). The network work is
``ml.core.serving``'s.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from annotate.archive.pixels import radiograph_pixels
from annotate.labels import CLASSES, GroundTruthHip
from annotate.models import Radiograph
from common.queueing import enqueue
from common.storage import Buffers
from ml.core.configs import NetConfig
from ml.core.serving import Hip, Predictor, heatmap_png, protocol_zooms
from ml.models import HipPrediction, Kind, ModelVersion

logger = logging.getLogger(__name__)


class NoActiveModel(LookupError):
    """No classifier has been activated yet."""


def active_model(kind: str = Kind.CLASSIFIER) -> ModelVersion | None:
    return ModelVersion.objects.filter(kind=kind, is_active=True).first()


def require_active_model(kind: str = Kind.CLASSIFIER) -> ModelVersion:
    version = active_model(kind)
    if version is None:
        raise NoActiveModel(f"no {kind} is active yet: train one and activate it on the Models page")
    return version


def chosen_model(pk: int | None, kind: str = Kind.CLASSIFIER) -> ModelVersion:
    """Model version ``pk``, or the active one of ``kind`` when None; ``LookupError`` with a
    message for the user when there is none."""
    if pk is None:
        return require_active_model(kind)
    version = ModelVersion.objects.filter(pk=pk, kind=kind).first()
    if version is None:
        raise LookupError(f"no {kind} model version {pk}")
    return version


def test_time(version: ModelVersion) -> dict[str, Any]:
    """The test-time protocol a classifier version's predictions follow (its ``config.test_time``;
    a config stored before the field existed reads as ``zoom-average``, as it was served):
    ``{"test_time": "single" | "zoom-average", "test_time_zooms": [the zooms whose crops make
    the probabilities]}``."""

    config = NetConfig.from_dict(version.config)
    return {"test_time": config.test_time, "test_time_zooms": list(protocol_zooms(config))}


def prediction_summary(pred: Any) -> dict[str, Any]:
    """A fresh ``ml.core.serving.HipPrediction`` as JSON-safe data (the heatmap left out)."""

    return {
        "side": pred.side,
        "box": [float(v) for v in pred.box],
        "probabilities": dict(zip(CLASSES, (float(p) for p in pred.probabilities), strict=True)),
        "top2": list(pred.top2),
        "predicted_class": pred.predicted_class,
        "fracture_probability": float(pred.fracture_probability),
        "heatmap_rect": [float(v) for v in pred.heatmap_rect],
    }


def activate(version: ModelVersion, *, score: bool = True) -> ModelVersion:
    """Make ``version`` the active model of its kind and (``score``) queue scoring of every
    radiograph with hip boxes that it has not read yet."""
    with transaction.atomic():
        list(ModelVersion.objects.select_for_update().filter(kind=version.kind))  # one activation at a time
        ModelVersion.objects.filter(kind=version.kind, is_active=True).exclude(pk=version.pk).update(is_active=False)
        ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
        if score and version.kind == Kind.CLASSIFIER:
            # deferred: the tasks module imports this one
            from ml.tasks import score_radiographs

            enqueue(score_radiographs, model_version_id=version.pk)
        other = Kind.DETECTOR if version.kind == Kind.CLASSIFIER else Kind.CLASSIFIER
        if score and ModelVersion.objects.filter(kind=other, is_active=True).exists():
            # With both models active, radiographs without ground truth are read end to end.
            # deferred: ml.detection imports this module
            from ml import detection

            transaction.on_commit(detection.queue_reading_all)
    version.refresh_from_db()
    return version


@functools.lru_cache(maxsize=2)
def _predictor(pk: int, sha256: str) -> Any:
    version = ModelVersion.objects.get(pk=pk)
    return Predictor.from_bundle(version.bundle_path)


def predictor(version: ModelVersion) -> Any:
    """The loaded ``ml.core.serving.Predictor`` of ``version`` (loaded once per process)."""
    return _predictor(version.pk, version.bundle_sha256)


def hip_boxes(radiograph_id: int) -> list[Any]:
    """The hips to read on a radiograph: its ground-truth boxes (``ml.core.serving.Hip``)."""
    return hip_boxes_of([radiograph_id]).get(radiograph_id, [])


def hip_boxes_of(radiograph_ids: Iterable[int]) -> dict[int, list[Any]]:
    """``hip_boxes`` of many radiographs in one query (radiographs without hips left out)."""

    rows = GroundTruthHip.objects.filter(radiograph_id__in=list(radiograph_ids), removed_at__isnull=True)
    boxes: dict[int, list[Any]] = {}
    for row in rows.order_by("radiograph_id", "side"):
        boxes.setdefault(row.radiograph_id, []).append(Hip(side=row.side, box=row.box))
    return boxes


def load_pixels(radiograph: Radiograph) -> np.ndarray:
    """The radiograph's uint16 pixels, read-only (decoded from its DICOM through a bounded cache)."""

    return radiograph_pixels(radiograph)


def _heatmap_name(version: ModelVersion, radiograph_id: int, side: str) -> str:
    return f"heatmaps/{version.pk}/{radiograph_id}-{side}.png"


def store_predictions(
    version: ModelVersion, radiograph_id: int, predictions: Sequence[Any], *, box_source: str
) -> list[HipPrediction]:
    rows = []
    for pred in predictions:
        name = _heatmap_name(version, radiograph_id, pred.side)
        if default_storage.exists(name):
            default_storage.delete(name)
        stored = default_storage.save(name, Buffers(heatmap_png(pred)))
        row, _ = HipPrediction.objects.update_or_create(
            model_version=version,
            radiograph_id=radiograph_id,
            side=pred.side,
            defaults={
                "box": [float(v) for v in pred.box],
                "box_source": box_source,
                "probabilities": [float(p) for p in pred.probabilities],
                "fracture_probability": float(pred.fracture_probability),
                "predicted_class": pred.predicted_class,
                "top2": list(pred.top2),
                "heatmap": stored,
                "heatmap_rect": [float(v) for v in pred.heatmap_rect],
                "created_at": timezone.now(),  # a reading again is news for the worklist
            },
        )
        rows.append(row)
    return rows


def predict_radiograph(
    version: ModelVersion, radiograph: Radiograph, hips: Sequence[Any] | None = None, *, box_source: str = ""
) -> list[HipPrediction]:
    """Read one radiograph's hips (default: its ground-truth boxes) and store the predictions."""
    if hips is None:
        hips, box_source = hip_boxes(radiograph.pk), box_source or "ground_truth"
    window = (radiograph.window_center, radiograph.window_width)
    predictions = predictor(version).predict_hips(load_pixels(radiograph), window, list(hips))
    return store_predictions(version, radiograph.pk, predictions, box_source=box_source or "manual")


def radiographs_to_score(version: ModelVersion, *, again: bool = False) -> list[int]:
    """Radiographs with ground-truth hips (``again``: all of them; else those ``version`` has not read)."""
    truth = GroundTruthHip.objects.filter(removed_at__isnull=True)
    if not again:
        truth = truth.exclude(
            radiograph_id__in=HipPrediction.objects.filter(model_version=version).values("radiograph_id")
        )
    return list(truth.values_list("radiograph_id", flat=True).distinct().order_by("radiograph_id"))


def read_and_store(
    version: ModelVersion,
    work: Sequence[tuple[Radiograph, Sequence[Any]]],
    *,
    box_source: str,
    batch_size: int = 32,
) -> Iterator[tuple[Radiograph, list[Any]]]:
    """Read each (radiograph, hips) of ``work`` with ``version`` in batches across radiographs,
    store the predictions, and yield each radiograph with its ``ml.core.serving`` predictions."""
    items = (
        (load_pixels(radiograph), (radiograph.window_center, radiograph.window_width), list(hips), False)
        for radiograph, hips in work
    )
    for (radiograph, _hips), predictions in zip(
        work, predictor(version).predict_many(items, batch_size=batch_size), strict=True
    ):
        store_predictions(version, radiograph.pk, predictions, box_source=box_source)
        yield radiograph, predictions


def score_radiographs(
    *,
    model_version_id: int,
    radiograph_ids: Iterable[int] | None = None,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Score radiographs in batches (default: every radiograph with ground-truth hips that
    this version has not read). Idempotent: a radiograph already read is read again and
    its rows replaced. Returns the number of radiographs scored."""
    version = ModelVersion.objects.get(pk=model_version_id)
    ids = radiographs_to_score(version) if radiograph_ids is None else sorted(set(radiograph_ids))
    radiographs = Radiograph.objects.in_bulk(ids)
    boxes = hip_boxes_of(ids)
    work = [(radiographs[rid], boxes[rid]) for rid in ids if rid in radiographs and rid in boxes]
    scored = 0
    for _ in read_and_store(version, work, box_source="ground_truth", batch_size=batch_size):
        scored += 1
        if progress is not None:
            progress(1)
    logger.info("model version %s scored %d radiographs", version.pk, scored)
    return scored


def queue_scoring(radiograph_ids: Sequence[int]) -> None:
    """After commit, have the active classifier read these radiographs (when one is active)."""
    if not settings.SCORE_ON_ARRIVAL or not radiograph_ids:
        return
    version = active_model()
    if version is None:
        return
    # deferred: the tasks module imports this one
    from ml.tasks import score_radiographs as task

    ids = list(radiograph_ids)
    # Robust: ground truth saved while the broker is away stands; the worker re-queues its
    # scoring when it reconnects (ml.operations.requeue_missed_work).
    enqueue(task, model_version_id=version.pk, radiograph_ids=ids, or_log="scoring")
