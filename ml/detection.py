"""The detector in the site: loading it, reading a radiograph end to end (boxes as proposals, the
classifier on the found hips, predictions with ``box_source="detector"``), scoring on arrival (a
task on the ``ml`` queue), and its evaluation on the test split.
Design: docs/architecture/design-models.md.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from django.conf import settings
from django.db import transaction

from annotate.labels import CLASSES, GroundTruthHip
from annotate.models import Radiograph
from common import csvfile
from common.queueing import enqueue
from ml.core.detection_report import detection_report, match_hips
from ml.core.detector import detect as run
from ml.core.detector import detect_many
from ml.core.modelfile import load_bundle
from ml.core.serving import Hip
from ml.core.vocab import Box
from ml.evaluation import store_evaluation, training_facts
from ml.models import DatasetHip, HipPrediction, Kind, ModelVersion, RadiographReading, Split
from ml.proposals import proposals_store
from ml.scoring import active_model, load_pixels, predictor, store_predictions

logger = logging.getLogger(__name__)

DETECTOR_DOWNLOADS = {"metrics.json": "application/json", "hips.csv": "text/csv"}


@functools.lru_cache(maxsize=2)
def _detector(pk: int, sha256: str) -> tuple[Any, Any]:
    version = ModelVersion.objects.get(pk=pk)
    model, config, _manifest = load_bundle(version.bundle_path)
    return model, config


def detector(version: ModelVersion) -> tuple[Any, Any]:
    """The loaded (model, DetectorConfig) of a detector version, loaded once per process."""
    if version.kind != Kind.DETECTOR:
        raise ValueError(f"model version {version.pk} is a {version.kind}, not a detector")
    return _detector(version.pk, version.bundle_sha256)


def detect(version: ModelVersion, pixels: np.ndarray, window: tuple[float, float]) -> list[Any]:
    """``ml.core.detector.Detection`` of each hip found (at most one per side)."""

    model, config = detector(version)
    return run(model, config, pixels, window)


def hips_of(detections: Iterable[Any]) -> list[Any]:
    return [Hip(side=d.side, box=cast(Box, tuple(float(v) for v in d.box))) for d in detections]  # four numbers


def read_radiograph(
    radiograph: Radiograph,
    *,
    detector_version: ModelVersion | None = None,
    classifier: ModelVersion | None = None,
    proposals: bool = True,
) -> tuple[list[Any], list[HipPrediction]]:
    """Detect, crop and classify the hips of a stored radiograph with the active (or given)
    models; store the predictions and (``proposals``) the boxes as labelling proposals.
    Returns (detections, stored predictions)."""
    detector_version = detector_version or active_model(Kind.DETECTOR)
    classifier = classifier or active_model(Kind.CLASSIFIER)
    if detector_version is None or classifier is None:
        raise LookupError("reading a radiograph without boxes needs an active detector and an active classifier")
    pixels = load_pixels(radiograph)
    window = (radiograph.window_center, radiograph.window_width)
    detections = detect(detector_version, pixels, window)
    predictions = predictor(classifier).predict_hips(pixels, window, hips_of(detections)) if detections else []
    with transaction.atomic():
        rows = store_predictions(classifier, radiograph.pk, predictions, box_source="detector")
        if proposals:
            proposals_store(
                radiograph_id=radiograph.pk,
                detections=detections,
                model_version=detector_version,
                classifications={p.side: p.predicted_class for p in predictions},
            )
        reading_record(radiograph, detector_version=detector_version, classifier=classifier)
    return detections, rows


def reading_record(radiograph: Radiograph, *, detector_version: ModelVersion, classifier: ModelVersion) -> None:
    """Keep when this radiograph's end-to-end reading was first stored (its arrival-to-score
    time, see ``ml.operations``). Idempotent: a later reading keeps the first record."""
    from django.utils import timezone

    now = timezone.now()
    RadiographReading.objects.get_or_create(
        radiograph_id=radiograph.pk,
        defaults={
            "detector_version": detector_version,
            "classifier_version": classifier,
            "scored_at": now,
            "seconds": max(0.0, (now - radiograph.received_at).total_seconds()),
        },
    )


def radiographs_to_read(classifier: ModelVersion) -> list[int]:
    """Radiographs without ground-truth boxes that ``classifier`` has not read yet. A film read
    with no hip found (a knee sent by mistake) has no prediction but its reading row: read."""

    truth = GroundTruthHip.objects.filter(removed_at__isnull=True).values("radiograph_id")
    read = HipPrediction.objects.filter(model_version=classifier).values("radiograph_id")
    read_empty = RadiographReading.objects.filter(classifier_version=classifier).values("radiograph_id")
    return list(
        Radiograph.objects.exclude(pk__in=truth)
        .exclude(pk__in=read)
        .exclude(pk__in=read_empty)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def radiograph_ids_read_empty(classifier: ModelVersion, ids: Sequence[int]) -> list[int]:
    """Of ``ids``, those ``classifier`` read end to end without finding a hip."""

    return list(
        RadiographReading.objects.filter(classifier_version=classifier, radiograph_id__in=ids).values_list(
            "radiograph_id", flat=True
        )
    )


def read_new_radiographs(
    *, radiograph_ids: Sequence[int] | None = None, progress: Callable[[int], None] | None = None
) -> int:
    """Read each radiograph (default: every one without ground truth that the active classifier
    has not read) end to end. Idempotent: a radiograph already read by the active classifier is
    skipped. Returns the number read."""
    detector_version, classifier = active_model(Kind.DETECTOR), active_model(Kind.CLASSIFIER)
    if detector_version is None or classifier is None:
        return 0
    ids = radiographs_to_read(classifier) if radiograph_ids is None else list(radiograph_ids)
    done = set(
        HipPrediction.objects.filter(model_version=classifier, radiograph_id__in=ids).values_list(
            "radiograph_id", flat=True
        )
    ) | set(radiograph_ids_read_empty(classifier, ids))
    count = 0
    for radiograph in Radiograph.objects.filter(pk__in=[i for i in ids if i not in done]).order_by("pk"):
        try:
            read_radiograph(radiograph, detector_version=detector_version, classifier=classifier)
        except (OSError, ValueError) as error:  # an unreadable pixel file: log it, read the others
            logger.warning("radiograph %s could not be read: %s", radiograph.pk, error)
            continue
        count += 1
        if progress is not None:
            progress(1)
    return count


def queue_reading(radiograph_ids: Sequence[int]) -> None:
    """After commit, read these radiographs end to end when a detector and a classifier are active."""
    if not settings.SCORE_ON_ARRIVAL or not radiograph_ids:
        return
    if active_model(Kind.DETECTOR) is None or active_model(Kind.CLASSIFIER) is None:
        return
    # deferred: the tasks module imports this one
    from ml.tasks import read_radiographs

    ids = list(radiograph_ids)
    # Robust: a radiograph that arrives while the broker is away is stored all the same; the
    # worker re-queues its reading when it reconnects (ml.operations.requeue_missed_work).
    enqueue(read_radiographs, radiograph_ids=ids, or_log="reading")


# --------------------------------------------------------------------------- evaluation


def _test_radiographs(version: ModelVersion) -> list[tuple[Radiograph, dict[str, DatasetHip]]]:
    hips = DatasetHip.objects.filter(dataset=version.dataset, split=Split.TEST).select_related("radiograph")
    by_radiograph: dict[int, tuple[Radiograph, dict[str, DatasetHip]]] = {}
    for hip in hips.order_by("radiograph_id", "side"):
        by_radiograph.setdefault(hip.radiograph_id, (hip.radiograph, {}))[1][hip.side] = hip
    if not by_radiograph:
        raise ValueError(f"dataset version {version.dataset_id} has no test hips")
    return list(by_radiograph.values())


def evaluate_detector(
    version: ModelVersion,
    *,
    classifier: ModelVersion | None = None,
    out_dir: str | Path | None = None,
    iterations: int | None = None,
    seed: int = 0,
    progress: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The detector on its dataset's test split: IoU with the manual boxes, hips missed and extra,
    and the classifier (the active one, or ``classifier``) on automatic versus manual boxes.
    Writes metrics.json and hips.csv into the version's evaluation folder (and ``out_dir``)."""

    notify = progress or (lambda event, info: None)
    notify("evaluate", {"model_version": version.pk})
    classifier = classifier or active_model(Kind.CLASSIFIER)
    model, config = detector(version)
    work = _test_radiographs(version)
    items = ((load_pixels(radiograph), (radiograph.window_center, radiograph.window_width)) for radiograph, _ in work)
    rows: list[dict[str, Any]] = []
    extra = 0
    for (radiograph, manual), detections in zip(work, detect_many(model, config, items), strict=True):
        found = {d.side: d for d in detections}
        ious, _missed, extras = match_hips({s: h.box for s, h in manual.items()}, {s: d.box for s, d in found.items()})
        extra += len(extras)
        for side, hip in manual.items():
            rows.append(
                {
                    "radiograph": radiograph,
                    "hip": hip,
                    "side": side,
                    "iou": ious[side],
                    "detected": found.get(side),
                }
            )
    manual_p = np.full((len(rows), len(CLASSES)), np.nan)
    auto_p = np.full((len(rows), len(CLASSES)), np.nan)
    if classifier is not None:
        reader = predictor(classifier)
        by_radiograph: dict[int, list[int]] = {}
        for i, row in enumerate(rows):
            by_radiograph.setdefault(row["radiograph"].pk, []).append(i)
        for indices in by_radiograph.values():
            radiograph = rows[indices[0]]["radiograph"]
            pixels, window = load_pixels(radiograph), (radiograph.window_center, radiograph.window_width)
            manual_hips = [Hip(side=rows[i]["side"], box=rows[i]["hip"].box) for i in indices]
            for i, pred in zip(indices, reader.predict_hips(pixels, window, manual_hips), strict=True):
                manual_p[i] = pred.probabilities
            found_idx = [i for i in indices if rows[i]["detected"] is not None]
            auto_hips = [Hip(side=rows[i]["side"], box=tuple(rows[i]["detected"].box)) for i in found_idx]
            auto_predictions = reader.predict_hips(pixels, window, auto_hips) if auto_hips else []
            for i, pred in zip(found_idx, auto_predictions, strict=True):
                auto_p[i] = pred.probabilities
    # A hip is missed when the detector found no box of its side, whether or not a classifier
    # is there to read the boxes it found.
    report = detection_report(
        ious=[row["iou"] for row in rows],
        hips_extra=extra,
        truth=[CLASSES.index(row["hip"].hip_class) for row in rows],
        manual_probabilities=np.nan_to_num(manual_p) if classifier is not None else None,
        auto_probabilities=np.nan_to_num(auto_p) if classifier is not None else None,
        found=[row["detected"] is not None for row in rows],
        patients=[row["hip"].patient_id for row in rows],
        iterations=int(iterations or settings.BOOTSTRAP_ITERATIONS),
        seed=seed,
    )
    report["classifier"] = classifier.pk if classifier is not None else None
    if classifier is None:
        report["classification"]["note"] = "no classifier is active: only the detection figures"
    report["model_version"] = version.pk

    report.update(training_facts(version.kind, version.config))  # pretraining and deviations from the paper
    _write_evaluation(version, report, rows, out_dir)
    return report


def _hips_csv(rows: Sequence[dict[str, Any]]) -> str:
    import io

    out = io.StringIO()
    writer = csvfile.writer(out, lineterminator="\n")
    writer.writerow(["radiograph", "side", "truth", "manual_box", "detected_box", "score", "iou"])
    for row in rows:
        found = row["detected"]
        writer.writerow(
            [
                row["radiograph"].pk,
                row["side"],
                row["hip"].hip_class,
                " ".join(f"{v:.1f}" for v in row["hip"].box),
                " ".join(f"{v:.1f}" for v in found.box) if found else "",
                f"{found.score:.4f}" if found else "",
                f"{row['iou']:.4f}",
            ]
        )
    return out.getvalue()


def _write_evaluation(
    version: ModelVersion, report: dict[str, Any], rows: Sequence[dict[str, Any]], out_dir: str | Path | None
) -> None:
    def write(temp: Path) -> None:
        (temp / "metrics.json").write_text(json.dumps(report, indent=2, allow_nan=False))
        (temp / "hips.csv").write_text(_hips_csv(rows))

    store_evaluation(version, report, write, out_dir)


def queue_reading_all() -> None:
    """Queue the end-to-end reading of every radiograph without ground truth not read yet (after an
    activation), when a detector and a classifier are active."""
    if not settings.SCORE_ON_ARRIVAL:
        return
    if active_model(Kind.DETECTOR) is None or active_model(Kind.CLASSIFIER) is None:
        return
    # deferred: the tasks module imports this one
    from ml.tasks import read_radiographs

    enqueue(read_radiographs, radiograph_ids=None)  # QueueUnavailable when the broker is away
