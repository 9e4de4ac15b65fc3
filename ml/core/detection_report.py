"""The detector's evaluation on a test split (Krogue et al. 2020, Table E3), in pure NumPy.

How well the hips are found (IoU with the manual box, missed and extra boxes), and whether the
classifier reads the detected boxes as well as the manual ones (accuracy and κ on both).
Design: docs/architecture/design-statistics.md
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .stats import CLASS_KEYS, bootstrap_indices, bootstrap_kappa, fracture_probability, is_fracture
from .vocab import iou

TASKS = ("binary", "multiclass")


def match_hips(
    manual: dict[str, Sequence[float]], detected: dict[str, Sequence[float]]
) -> tuple[dict[str, float], list[str], list[str]]:
    """Per side of ``manual``: the IoU with the detected box of that side (0 if none).
    Returns (ious by side, missed sides, extra sides)."""
    ious = {side: iou(box, detected[side]) if side in detected else 0.0 for side, box in manual.items()}
    missed = sorted(side for side in manual if side not in detected)
    extra = sorted(side for side in detected if side not in manual)
    return ious, missed, extra


def _answers(probabilities: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "binary": (fracture_probability(probabilities) >= 0.5).astype(np.intp),
        "multiclass": np.argmax(probabilities, axis=1).astype(np.intp),
    }


def _num(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def detection_report(
    *,
    ious: ArrayLike,
    hips_extra: int,
    truth: ArrayLike,
    manual_probabilities: ArrayLike | None,
    auto_probabilities: ArrayLike | None,
    found: ArrayLike,
    patients: ArrayLike,
    iterations: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """The detector's figures. Per manual hip (same order in every array): ``ious`` (0 when
    missed), ``truth`` (class indices), the classifier's probabilities on the manual box and on
    the detected box (rows of missed hips are ignored), ``found`` (bool), ``patients``.

    Returns ``iou_mean``, ``iou_sd``, ``iou_min``, ``hips``, ``hips_missed``, ``hips_extra`` and
    ``classification``: per task, ``manual``/``auto`` accuracy and κ, and ``kappa_difference``
    (auto − manual) with its bootstrap mean and CI, on the found hips. Without probabilities
    (``None``: no classifier) only the detection figures."""
    iou_values = np.asarray(ious, dtype=np.float64).ravel()
    if iou_values.size == 0:
        raise ValueError("no manual hips to compare with")
    found_mask = np.asarray(found, dtype=bool).ravel()
    t = np.asarray(truth, dtype=np.intp).ravel()
    pids = np.asarray(patients).ravel()
    report: dict[str, Any] = {
        "hips": int(iou_values.size),
        "iou_mean": float(iou_values.mean()),
        "iou_sd": float(iou_values.std(ddof=1)) if iou_values.size > 1 else 0.0,
        "iou_min": float(iou_values.min()),
        "hips_below_0_5": int((iou_values < 0.5).sum()),
        "hips_missed": int((~found_mask).sum()),
        "hips_extra": int(hips_extra),
        "iterations": int(iterations),
        "seed": int(seed),
    }
    n_found = int(found_mask.sum())
    report["classification"] = {"hips": n_found, "note": "found hips only: a missed hip has no automatic reading"}
    if manual_probabilities is None or auto_probabilities is None:
        report["classification"] = {"hips": 0, "note": "no classifier: only the detection figures"}
        return report
    if n_found == 0:
        return report
    manual = np.asarray(manual_probabilities, dtype=np.float64)
    auto = np.asarray(auto_probabilities, dtype=np.float64)
    t, manual, auto, pids = t[found_mask], manual[found_mask], auto[found_mask], pids[found_mask]
    truths = {"binary": is_fracture(t).astype(np.intp), "multiclass": t}
    readings = {"manual": _answers(manual), "auto": _answers(auto)}
    indices = bootstrap_indices(pids, iterations=iterations, seed=seed)
    tail = (1.0 - level) / 2.0 * 100.0
    for task in TASKS:
        k = 2 if task == "binary" else len(CLASS_KEYS)
        answers = np.stack([readings["manual"][task], readings["auto"][task]])
        point = bootstrap_kappa(truths[task], answers, np.arange(t.size)[None], n_labels=k)[0]
        boot = bootstrap_kappa(truths[task], answers, indices, n_labels=k)
        diff = boot[:, 1] - boot[:, 0]
        good = diff[np.isfinite(diff)]
        low, high = np.percentile(good, [tail, 100.0 - tail]) if good.size else (np.nan, np.nan)
        report["classification"][task] = {
            "manual": {
                "accuracy": float((answers[0] == truths[task]).mean()),
                "kappa": _num(point[0]),
            },
            "auto": {
                "accuracy": float((answers[1] == truths[task]).mean()),
                "kappa": _num(point[1]),
            },
            "kappa_difference": {
                "estimate": _num(point[1] - point[0]),
                "boot_mean": _num(good.mean()) if good.size else None,
                "ci_low": _num(low),
                "ci_high": _num(high),
            },
        }
    return report
