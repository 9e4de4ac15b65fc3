"""Evaluating a model version on its dataset version's held-out test split, as the paper does.

The model reads the test hips (stored like any prediction), ``ml.core.report`` computes the paper's
figures with the patient bootstrap and writes them into the version's ``evaluation_dir``, with
how the model was made and read (``training_facts``).
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from annotate.labels import CLASSES
from common import csvfile
from ml import scoring
from ml.checklists import MODEL_DOCUMENTS, write_model_documents
from ml.core.configs import NetConfig
from ml.core.detector import DetectorConfig
from ml.core.deviations import classifier_deviations, detector_deviations
from ml.core.report import evaluation_report, write_report
from ml.core.serving import Hip, protocol_zooms
from ml.core.stats import fracture_probability
from ml.models import DatasetHip, ModelVersion, Split

# Files of an evaluation that users may download (name -> content type).
DOWNLOADS = {
    "metrics.json": "application/json",
    "metrics.csv": "text/csv",
    "confusion_matrix.csv": "text/csv",
    "roc_binary.csv": "text/csv",
    "roc_per_class.csv": "text/csv",
    "thresholds.csv": "text/csv",
    "predictions.csv": "text/csv",
    "confusion_matrix.png": "image/png",
    "confusion_matrix.svg": "image/svg+xml",
    "roc_binary.png": "image/png",
    "roc_binary.svg": "image/svg+xml",
    "roc_per_class.png": "image/png",
    "roc_per_class.svg": "image/svg+xml",
    "thresholds.png": "image/png",
    "thresholds.svg": "image/svg+xml",
    "hips.csv": "text/csv",  # a detector's: each test hip's manual and detected box and their IoU
}
DOWNLOADS.update(MODEL_DOCUMENTS)  # CLAIM, TRIPOD+AI and the flow diagram (ml.checklists)
# What metrics.json and the version row say of how the classifier was made and read (``training_facts``).
FACTS = ("pretraining", "test_time", "test_time_zooms", "regime", "lr_schedule", "recalibrate_bn", "deviations")
HEADLINE = (
    "binary_accuracy",
    "binary_sensitivity",
    "binary_specificity",
    "binary_auc",
    "multiclass_accuracy",
    "binary_kappa",
    "multiclass_kappa",
)


def training_facts(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """How a model of ``kind`` with the stored ``config`` was trained and is read, for its page,
    metrics.json and reports: its pretraining and the deviations from the paper that apply
    (``ml.core.deviations``), generated from the config; for a classifier also its test-time
    protocol (and the zooms it reads), training regime, lr schedule and BatchNorm re-estimation.
    A config stored before a field existed gets the value it was made with (``legacy_defaults``)."""

    if kind == "detector":
        detector = DetectorConfig.from_dict(config)
        return {
            "pretraining": {
                "encoder": "ImageNet (RESNET50_WEIGHTS)" if detector.weights_path else "random",
                "heads": "random (no COCO)",
            },
            "deviations": detector_deviations(detector.as_dict()),
        }

    net = NetConfig.from_dict(config)
    if not net.pretrained:
        pretraining = "random"
    else:
        pretraining = "imagenet" if net.backbone == "densenet169" else "weights file"
    return {
        "pretraining": pretraining,
        "test_time": net.test_time,
        "test_time_zooms": list(protocol_zooms(net)),
        "regime": net.regime,
        "lr_schedule": net.lr_schedule,
        "recalibrate_bn": net.recalibrate_bn,
        "deviations": classifier_deviations(net.as_dict()),
    }


def test_predictions(version: ModelVersion, *, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Read the test split's hips with ``version`` (storing the predictions); returns the
    arrays the report needs, in hip order: truth indices, probabilities, patient ids."""

    hips = list(
        DatasetHip.objects.filter(dataset=version.dataset, split=Split.TEST)
        .select_related("radiograph")
        .order_by("radiograph_id", "side")
    )
    if not hips:
        raise ValueError(f"dataset version {version.dataset_id} has no test hips")
    by_radiograph: dict[int, list[DatasetHip]] = {}
    for hip in hips:
        by_radiograph.setdefault(hip.radiograph_id, []).append(hip)

    groups = list(by_radiograph.values())
    work = [(group[0].radiograph, [Hip(side=h.side, box=h.box) for h in group]) for group in groups]
    rows: list[tuple[Any, Any]] = []  # (DatasetHip, its prediction)
    for group, (_radiograph, predictions) in zip(
        groups, scoring.read_and_store(version, work, box_source="ground_truth"), strict=True
    ):
        rows.extend(zip(group, predictions, strict=True))
        if progress is not None:
            progress(len(group))
    return {
        "truth": np.array([CLASSES.index(h.hip_class) for h, _ in rows]),
        "probabilities": np.array([p.probabilities for _, p in rows], dtype=np.float64),
        "patients": np.array([h.patient_id for h, _ in rows]),
        "hips": [(h.radiograph_id, h.side, h.hip_class) for h, _ in rows],
    }


def _predictions_csv(data: dict[str, Any]) -> str:
    import io

    out = io.StringIO()
    writer = csvfile.writer(out)
    writer.writerow(["radiograph", "side", "truth", "predicted", "fracture_probability", *CLASSES])
    fractures = fracture_probability(data["probabilities"])
    for (rid, side, truth), probs, p_fracture in zip(data["hips"], data["probabilities"], fractures, strict=True):
        predicted = CLASSES[int(np.argmax(probs))]
        writer.writerow([rid, side, truth, predicted, f"{p_fracture:.6f}", *(f"{p:.6f}" for p in probs)])
    return out.getvalue()


def evaluate_version(
    version: ModelVersion,
    *,
    out_dir: str | Path | None = None,
    iterations: int | None = None,
    seed: int = 0,
    progress: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``version`` on its test split; write the report to its ``evaluation_dir``
    (and copy it to ``out_dir`` when given). Returns the report dict. A detector is evaluated
    by ``ml.detection.evaluate_detector`` (IoU, hips missed, automatic versus manual boxes)."""
    if version.kind == "detector":
        # deferred: ml.detection imports this module
        from ml.detection import evaluate_detector

        return evaluate_detector(version, out_dir=out_dir, iterations=iterations, seed=seed, progress=progress)

    notify = progress or (lambda event, info: None)
    notify("evaluate", {"model_version": version.pk})
    data = test_predictions(version)
    report = evaluation_report(
        data["truth"],
        data["probabilities"],
        data["patients"],
        iterations=int(iterations or settings.BOOTSTRAP_ITERATIONS),
        seed=seed,
    )
    report.update(training_facts(version.kind, version.config))

    def write(temp: Path) -> None:
        write_report(report, temp)
        (temp / "predictions.csv").write_text(_predictions_csv(data))
        write_model_documents(version=version, folder=temp, evaluation=report)

    # The per-class ideal thresholds (Figure 8) are kept too: the worklist's CT/MRI flag reads them.
    keys = (*HEADLINE, "per_class", "thresholds", "n_cases", "n_patients", "iterations", *FACTS)
    summary = {key: report[key] for key in keys}
    store_evaluation(version, summary, write, out_dir)
    return report


def store_evaluation(
    version: ModelVersion, summary: dict[str, Any], write: Callable[[Path], None], out_dir: str | Path | None
) -> None:
    """Write an evaluation's files (``write(folder)``) into a fresh temporary folder, rename it onto
    the version's ``evaluation_dir`` (a crash leaves the previous one whole), keep ``summary`` on
    the version row, and copy the files into ``out_dir`` when given."""
    folder = version.evaluation_dir
    temp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    write(temp)
    shutil.rmtree(folder, ignore_errors=True)
    temp.rename(folder)
    ModelVersion.objects.filter(pk=version.pk).update(evaluation=summary, evaluated_at=timezone.now())
    version.refresh_from_db()
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for path in folder.iterdir():
            shutil.copy2(path, out / path.name)
