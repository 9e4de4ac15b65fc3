"""Evaluating a model version on its dataset version's held-out test split, as the paper does.

The model reads the test hips (stored like any prediction), ``ml.core.report`` computes the paper's
figures with the patient bootstrap and writes them into the version's ``evaluation_dir``, with
how the model was made and read (``training_facts``) and the model audit: calibration, subgroups
and the failure gallery (docs/research/model-audit.md).
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from annotate.labels import CLASSES
from common import csvfile
from ml import scoring
from ml.checklists import MODEL_DOCUMENTS, write_model_documents
from ml.core.configs import NetConfig
from ml.core.crops import apply_window, crop_box
from ml.core.detector import DetectorConfig
from ml.core.deviations import classifier_deviations, detector_deviations
from ml.core.failures import PER_GROUP, failure_groups, gallery_figure
from ml.core.report import CLASS_LABELS, evaluation_report, save_figure, write_report
from ml.core.serving import Hip, protocol_zooms
from ml.core.stats import fracture_probability
from ml.core.subgroups import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    FIGURES,
    MIN_HIPS,
    UNKNOWN,
    age_band,
    subgroup_report,
    view_name,
)
from ml.models import DatasetHip, HipPrediction, ModelVersion, Split

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
    # the model audit (docs/research/model-audit.md)
    "calibration.csv": "text/csv",
    "reliability.csv": "text/csv",
    "calibration_binary.png": "image/png",
    "calibration_binary.svg": "image/svg+xml",
    "calibration_per_class.png": "image/png",
    "calibration_per_class.svg": "image/svg+xml",
    "subgroups.csv": "text/csv",
    "failures.csv": "text/csv",
    "failures.png": "image/png",
    "failures.svg": "image/svg+xml",
    "hips.csv": "text/csv",  # a detector's: each test hip's manual and detected box and their IoU
}
DOWNLOADS.update(MODEL_DOCUMENTS)  # CLAIM, TRIPOD+AI and the flow diagram (ml.checklists)
# What metrics.json and the version row say of how the classifier was made and read (``training_facts``).
# The model audit's keys of metrics.json, kept on the version row for its page.
AUDIT = ("calibration", "subgroups", "failures")
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
        .select_related("radiograph__study", "patient")
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
        "attributes": {key: [hip_attributes(h)[key] for h, _ in rows] for key in ATTRIBUTES},
    }


_SEXES = {"M": "male", "F": "female", "O": "other"}


def hip_attributes(hip: DatasetHip) -> dict[str, str]:
    """The subgroups of a test hip (``ml.core.subgroups.ATTRIBUTES``), from the de-identified
    header fields kept at ingest: the patient's sex, the age band at the study, the view, the
    scanner (manufacturer and model), the modality and the hip's side."""
    radiograph = hip.radiograph
    scanner = " ".join(v for v in (radiograph.manufacturer, radiograph.manufacturer_model) if v)
    return {
        "sex": _SEXES.get(hip.patient.sex, UNKNOWN),
        "age_band": age_band(radiograph.study.patient_age_years),
        "view": view_name(radiograph.view_position),
        "manufacturer": scanner or UNKNOWN,
        "modality": radiograph.modality or UNKNOWN,
        "side": hip.side,
    }


def failures(data: dict[str, Any]) -> list[dict[str, Any]]:
    """metrics.json's ``failures``: ``ml.core.failures.failure_groups`` with each hip's
    radiograph and side in place of its index."""
    groups = failure_groups(data["truth"], data["probabilities"])
    for group in groups:
        group["hips"] = [
            {"radiograph": data["hips"][h["index"]][0], "side": data["hips"][h["index"]][1], "top2": h["top2"]}
            for h in group["hips"]
        ]
    return groups


def _gallery_panel(prediction: HipPrediction) -> dict[str, Any]:
    """The crop of a wrong hip (the heatmap's rectangle, in the radiograph's default window) and
    its stored heatmap, as the predictions page shows them."""
    radiograph = prediction.radiograph
    x0, y0, x1, y1 = prediction.heatmap_rect
    pixels = crop_box(scoring.load_pixels(radiograph), (x0, y0, x1 - x0, y1 - y0))
    crop = apply_window(pixels, radiograph.window_center, radiograph.window_width)
    heatmap = None
    name = prediction.heatmap.name or ""
    if name and default_storage.exists(name):
        with default_storage.open(name, "rb") as handle:
            heatmap = np.array(Image.open(io.BytesIO(handle.read())).convert("RGBA"))
        heatmap[..., 3] = (heatmap[..., 3] * 0.6).astype(np.uint8)  # lighter than the page's: the crop shows through
    return {"crop": crop, "heatmap": heatmap, "title": f"radiograph {radiograph.pk}, {prediction.side}"}


def write_gallery(version: ModelVersion, groups: list[dict[str, Any]], out: Path) -> list[Path]:
    """failures.png and .svg: up to ``PER_GROUP`` wrong hips per (truth, prediction) group."""
    wanted = [(h["radiograph"], h["side"]) for g in groups for h in g["hips"][:PER_GROUP]]
    stored = {
        (p.radiograph_id, p.side): p
        for p in HipPrediction.objects.filter(
            model_version=version, radiograph_id__in={rid for rid, _ in wanted}
        ).select_related("radiograph")
    }
    shown = []
    for group in groups:
        hips: list[dict[str, Any]] = []
        for hip in group["hips"]:
            prediction = stored.get((hip["radiograph"], hip["side"]))
            if len(hips) < PER_GROUP and prediction is not None:
                hips.append({**hip, **_gallery_panel(prediction)})
        shown.append({**group, "hips": hips + group["hips"][len(hips) :]})
    return save_figure(gallery_figure(shown, labels=CLASS_LABELS), out, "failures")


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
    notify("audit", {"model_version": version.pk})
    report["subgroups"] = subgroup_report(
        data["truth"],
        data["probabilities"],
        data["patients"],
        data["attributes"],
        iterations=int(report["iterations"]),
        seed=seed,
    )
    report["failures"] = failures(data)

    def write(temp: Path) -> None:
        write_report(report, temp)
        write_gallery(version, report["failures"], temp)
        (temp / "predictions.csv").write_text(_predictions_csv(data))
        write_model_documents(version=version, folder=temp, evaluation=report)

    # The per-class ideal thresholds (Figure 8) are kept too: the worklist's CT/MRI flag reads them.
    keys = (*HEADLINE, "per_class", "thresholds", "n_cases", "n_patients", "iterations", *FACTS, *AUDIT)
    summary = {key: report[key] for key in keys}
    store_evaluation(version, summary, write, out_dir)
    return report


def audit_context(evaluation: dict[str, Any], fmt_ci: Callable[[Any], str]) -> dict[str, Any]:
    """The model audit as the model page shows it, from the version's stored ``evaluation``:
    calibration rows (ECE and Brier: estimate on all hips, mean with CI), the subgroup table and
    the failure groups. ``fmt_ci`` writes a bootstrap figure as the page writes the others."""

    def estimate(figure: Any) -> str:
        value = (figure or {}).get("estimate")
        return "–" if value is None else f"{value:.3f}"

    calibration = evaluation.get("calibration") or {}
    curves = [("binary", calibration["binary"])] if calibration.get("binary") else []
    curves += list((calibration.get("per_class") or {}).items())
    failures = evaluation.get("failures") or []
    return {
        "calibration_rows": [
            {
                "curve": curve,
                "cells": [
                    text
                    for measure in ("ece", "brier")
                    for text in (estimate(entry.get(measure)), fmt_ci(entry.get(measure)))
                ],
            }
            for curve, entry in curves
        ],
        "subgroup_rows": [
            {
                "attribute": attribute,
                "name": ATTRIBUTE_NAMES.get(attribute, attribute),
                "value": value,
                "hips": entry.get("hips"),
                "patients": entry.get("patients"),
                "note": entry.get("note", ""),
                "cells": [fmt_ci(entry.get(key)) for key, _, _ in FIGURES],
            }
            for attribute, groups in (evaluation.get("subgroups") or {}).items()
            for value, entry in groups.items()
        ],
        "subgroup_min": MIN_HIPS,
        "failure_groups": failures,
        "failure_count": sum(len(group["hips"]) for group in failures),
    }


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
