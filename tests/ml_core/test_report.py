"""ml.core.report against scikit-learn, a hand-worked case, and the files it must write."""

from __future__ import annotations

import csv
import json
import math
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from ml.core.report import REPORT_KEYS, evaluation_report, metric_rows, write_report
from ml.core.stats import CLASS_KEYS, FRACTURE_INDICES

EXPECTED_KEYS = {
    "binary_accuracy",
    "binary_sensitivity",
    "binary_specificity",
    "binary_auc",
    "binary_kappa",
    "multiclass_accuracy",
    "multiclass_kappa",
    "per_class",
    "confusion_matrix",
    "roc",
    "thresholds",
    "calibration",
    "n_cases",
    "n_patients",
    "iterations",
    "seed",
    "level",
}
FIGURE_KEYS = {"mean", "ci_low", "ci_high", "estimate"}
EXPECTED_FILES = [
    "metrics.json",
    "metrics.csv",
    "confusion_matrix.csv",
    "roc_binary.csv",
    "roc_per_class.csv",
    "thresholds.csv",
    "calibration.csv",
    "reliability.csv",
    *(
        f"{stem}.{fmt}"
        for stem in (
            "confusion_matrix",
            "roc_binary",
            "roc_per_class",
            "thresholds",
            "calibration_binary",
            "calibration_per_class",
        )
        for fmt in ("png", "svg")
    ),
]


def _synthetic(
    seed: int = 1, n: int = 300, n_patients: int = 200, classes: int = 6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n cases of n_patients patients (the first n - n_patients patients have two images)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    logits = rng.normal(size=(n, len(CLASS_KEYS)))
    logits[np.arange(n), y] += 1.5  # correlate the probabilities with the truth
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    pids = np.r_[np.arange(n_patients), np.arange(n - n_patients)]
    return y, p, pids


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _synthetic()


@pytest.fixture(scope="module")
def report(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, Any]:
    y, p, pids = data
    return evaluation_report(y, p, pids, iterations=200, seed=3)


def _figures(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = [(key, report[key]) for key in EXPECTED_KEYS if key.startswith(("binary_", "multiclass_"))]
    out += [(f"{k}.{m}", v) for k, metrics in report["per_class"].items() for m, v in metrics.items()]
    return out


def test_keys_and_shapes(report: dict[str, Any]) -> None:
    assert set(report) == EXPECTED_KEYS == set(REPORT_KEYS)
    for name, figure in _figures(report):
        assert set(figure) == FIGURE_KEYS, name
    assert set(report["per_class"]) == set(CLASS_KEYS)
    assert set(report["thresholds"]) == set(CLASS_KEYS)
    assert set(report["roc"]["per_class"]) == set(CLASS_KEYS)
    assert report["n_cases"] == 300
    assert report["n_patients"] == 200
    assert (report["iterations"], report["seed"], report["level"]) == (200, 3, 0.95)
    band = report["roc"]["binary"]["band"]
    assert len(band["fpr"]) == len(band["tpr_low"]) == len(band["tpr_high"]) == len(band["tpr_mean"])


def test_ci_contains_mean(report: dict[str, Any]) -> None:
    for name, figure in _figures(report):
        assert figure["ci_low"] <= figure["mean"] <= figure["ci_high"], name


def test_binary_matches_sklearn(data: tuple[np.ndarray, np.ndarray, np.ndarray], report: dict[str, Any]) -> None:
    y, p, _ = data
    truth = np.isin(y, FRACTURE_INDICES)
    p_frac = p[:, list(FRACTURE_INDICES)].sum(axis=1)
    pred = p_frac >= 0.5
    assert report["binary_auc"]["estimate"] == pytest.approx(skm.roc_auc_score(truth, p_frac))
    assert report["binary_accuracy"]["estimate"] == pytest.approx(skm.accuracy_score(truth, pred))
    assert report["binary_sensitivity"]["estimate"] == pytest.approx(skm.recall_score(truth, pred))
    assert report["binary_kappa"]["estimate"] == pytest.approx(skm.cohen_kappa_score(truth, pred))
    assert report["roc"]["binary"]["auc"] == pytest.approx(skm.roc_auc_score(truth, p_frac))
    fpr, tpr, _ = skm.roc_curve(truth, p_frac)
    np.testing.assert_allclose(report["roc"]["binary"]["fpr"], fpr)
    np.testing.assert_allclose(report["roc"]["binary"]["tpr"], tpr)
    assert report["roc"]["binary"]["thresholds"][0] is None  # +inf is not JSON


def test_multiclass_matches_sklearn(data: tuple[np.ndarray, np.ndarray, np.ndarray], report: dict[str, Any]) -> None:
    y, p, _ = data
    pred = p.argmax(axis=1)
    labels = list(range(6))
    cm = report["confusion_matrix"]
    assert cm["labels"] == list(CLASS_KEYS)
    np.testing.assert_array_equal(cm["counts"], skm.confusion_matrix(y, pred, labels=labels))
    np.testing.assert_allclose(cm["normalized"], skm.confusion_matrix(y, pred, labels=labels, normalize="true"))
    assert report["multiclass_accuracy"]["estimate"] == pytest.approx(skm.accuracy_score(y, pred))
    assert report["multiclass_kappa"]["estimate"] == pytest.approx(skm.cohen_kappa_score(y, pred))
    for c, key in enumerate(CLASS_KEYS):
        expected = skm.roc_auc_score(y == c, p[:, c])
        assert report["per_class"][key]["auc"]["estimate"] == pytest.approx(expected)
        assert report["roc"]["per_class"][key]["auc"] == pytest.approx(expected)
        assert report["per_class"][key]["sensitivity"]["estimate"] == pytest.approx(skm.recall_score(y == c, pred == c))


def test_thresholds_are_ideal_points(data: tuple[np.ndarray, np.ndarray, np.ndarray], report: dict[str, Any]) -> None:
    y, p, _ = data
    for c, key in enumerate(CLASS_KEYS):
        fpr, tpr, _ = skm.roc_curve(y == c, p[:, c], drop_intermediate=False)
        best = report["thresholds"][key]
        dist = math.hypot(1.0 - best["specificity"], 1.0 - best["sensitivity"])
        assert dist == pytest.approx(np.hypot(fpr, 1.0 - tpr).min())
        called = p[:, c] >= best["threshold"]
        assert best["sensitivity"] == pytest.approx(called[y == c].mean())
        assert best["specificity"] == pytest.approx((~called)[y != c].mean())


def test_hand_computed_tiny_case() -> None:
    # Fracture truth: T T T F F; P(fracture) 0.9 0.6 0.2 0.3 0.7 -> calls T T F F T.
    y = ["fn_displaced", "intertrochanteric", "fn_nondisplaced", "normal", "orif"]
    p = np.array(
        [
            [0.1, 0.9, 0.0, 0.0, 0.0, 0.0],
            [0.1, 0.0, 0.0, 0.6, 0.3, 0.0],
            [0.8, 0.0, 0.2, 0.0, 0.0, 0.0],
            [0.7, 0.1, 0.1, 0.1, 0.0, 0.0],
            [0.0, 0.0, 0.7, 0.0, 0.3, 0.0],
        ]
    )
    rep = evaluation_report(y, p, ["a", "b", "c", "d", "e"], iterations=50, seed=0)
    assert rep["binary_accuracy"]["estimate"] == pytest.approx(3 / 5)
    assert rep["binary_sensitivity"]["estimate"] == pytest.approx(2 / 3)
    assert rep["binary_specificity"]["estimate"] == pytest.approx(1 / 2)
    assert rep["multiclass_accuracy"]["estimate"] == pytest.approx(3 / 5)  # argmax: 1 3 0 0 2
    # Positives 0.9 0.6 0.2 vs negatives 0.3 0.7: 3 of 6 pairs ranked right.
    assert rep["binary_auc"]["estimate"] == pytest.approx(3 / 6)
    assert rep["confusion_matrix"]["counts"][0] == [1, 0, 0, 0, 0, 0]
    assert rep["confusion_matrix"]["normalized"][5] == [None] * 6  # no arthroplasty cases
    assert (rep["n_cases"], rep["n_patients"]) == (5, 5)


def test_absent_class_gives_none_and_still_writes(tmp_path: Path) -> None:
    y, p, pids = _synthetic(seed=2, classes=5)  # no arthroplasty in the truth
    assert not (y == 5).any()
    rep = evaluation_report(y, p, pids, iterations=100, seed=0)
    arth = rep["per_class"]["arthroplasty"]
    assert arth["auc"] == {"mean": None, "ci_low": None, "ci_high": None, "estimate": None}
    assert arth["sensitivity"]["estimate"] is None
    assert arth["specificity"]["estimate"] is not None
    assert rep["roc"]["per_class"]["arthroplasty"] == {"fpr": [], "tpr": [], "thresholds": [], "auc": None}
    assert rep["thresholds"]["arthroplasty"] == {"threshold": None, "sensitivity": None, "specificity": None}
    assert rep["confusion_matrix"]["normalized"][5] == [None] * 6
    paths = write_report(rep, tmp_path)
    assert sorted(p.name for p in paths) == sorted(EXPECTED_FILES)
    assert json.loads((tmp_path / "metrics.json").read_text()) == rep
    assert all(p.stat().st_size > 0 for p in paths)


def test_no_fracture_at_all_gives_no_binary_roc(tmp_path: Path) -> None:
    y, p, pids = _synthetic(seed=4, n=60, n_patients=50)
    y = np.where(np.isin(y, FRACTURE_INDICES), 0, y)
    rep = evaluation_report(y, p, pids, iterations=50, seed=0)
    assert rep["binary_auc"]["estimate"] is None
    assert rep["binary_sensitivity"]["estimate"] is None
    assert rep["roc"]["binary"]["band"] is None
    assert rep["roc"]["binary"]["fpr"] == []
    assert len(write_report(rep, tmp_path)) == len(EXPECTED_FILES)


def test_write_report_files(report: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "nested" / "out"
    paths = write_report(report, out)
    assert [p.name for p in paths] == EXPECTED_FILES
    assert sorted(f.name for f in out.iterdir()) == sorted(EXPECTED_FILES)  # no temporary files left
    for path in paths:
        assert path.parent == out and path.stat().st_size > 0, path
        assert path.stat().st_mode & 0o777 == 0o644, path
    for name in EXPECTED_FILES:
        path = out / name
        if name.endswith(".png"):
            with Image.open(path) as img:
                img.verify()
            with Image.open(path) as img:
                assert img.width > 200 and img.height > 200
        elif name.endswith(".svg"):
            assert ET.parse(path).getroot().tag.endswith("svg")

    loaded = json.loads((out / "metrics.json").read_text())
    assert loaded == report
    assert set(loaded) == EXPECTED_KEYS

    with (out / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["metric"] for r in rows] == [r["metric"] for r in metric_rows(report)]
    assert list(rows[0]) == ["metric", "mean", "ci_low", "ci_high", "estimate"]
    assert len(rows) == 7 + 3 * len(CLASS_KEYS)
    by_name = {r["metric"]: r for r in rows}
    assert float(by_name["binary_auc"]["estimate"]) == pytest.approx(report["binary_auc"]["estimate"])
    assert float(by_name["per_class.normal.sensitivity"]["ci_low"]) == pytest.approx(
        report["per_class"]["normal"]["sensitivity"]["ci_low"]
    )

    with (out / "confusion_matrix.csv").open(newline="") as fh:
        cm_rows = list(csv.DictReader(fh))
    assert len(cm_rows) == 36
    assert sum(int(r["count"]) for r in cm_rows) == report["n_cases"]

    with (out / "roc_per_class.csv").open(newline="") as fh:
        roc_rows = list(csv.DictReader(fh))
    assert list(roc_rows[0]) == ["class", "fpr", "tpr", "threshold"]
    assert {r["class"] for r in roc_rows} == set(CLASS_KEYS)

    with (out / "roc_binary.csv").open(newline="") as fh:
        series = [r["series"] for r in csv.DictReader(fh)]
    assert series.count("curve") == len(report["roc"]["binary"]["fpr"])
    assert series.count("band") == len(report["roc"]["binary"]["band"]["fpr"])

    with (out / "thresholds.csv").open(newline="") as fh:
        thr_rows = {r["class"]: r for r in csv.DictReader(fh)}
    assert float(thr_rows["fn_nondisplaced"]["threshold"]) == pytest.approx(
        report["thresholds"]["fn_nondisplaced"]["threshold"]
    )


def test_rewrite_from_loaded_json(report: dict[str, Any], tmp_path: Path) -> None:
    write_report(report, tmp_path / "a")
    loaded = json.loads((tmp_path / "a" / "metrics.json").read_text())
    write_report(loaded, tmp_path / "b")
    for name in EXPECTED_FILES:
        if name.endswith((".json", ".csv")):
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_metric_rows(report: dict[str, Any]) -> None:
    rows = metric_rows(report)
    assert rows[0]["metric"] == "binary_accuracy"
    assert rows[7]["metric"] == "per_class.normal.sensitivity"
    assert rows[-1]["metric"] == "per_class.arthroplasty.auc"
    assert all(set(r) == {"metric", *FIGURE_KEYS} for r in rows)


def test_seed_reproducible(data: tuple[np.ndarray, np.ndarray, np.ndarray], report: dict[str, Any]) -> None:
    y, p, pids = data
    assert evaluation_report(y, p, pids, iterations=200, seed=3) == report
    other = evaluation_report(y, p, pids, iterations=200, seed=4)
    assert other["binary_auc"]["estimate"] == report["binary_auc"]["estimate"]
    assert (other["binary_auc"]["ci_low"], other["binary_auc"]["ci_high"]) != (
        report["binary_auc"]["ci_low"],
        report["binary_auc"]["ci_high"],
    )
    assert other["roc"]["binary"]["band"]["tpr_low"] != report["roc"]["binary"]["band"]["tpr_low"]


def test_level_changes_interval(data: tuple[np.ndarray, np.ndarray, np.ndarray], report: dict[str, Any]) -> None:
    y, p, pids = data
    narrow = evaluation_report(y, p, pids, iterations=200, seed=3, level=0.5)
    assert narrow["level"] == 0.5
    assert narrow["binary_auc"]["mean"] == report["binary_auc"]["mean"]
    assert narrow["binary_auc"]["ci_high"] - narrow["binary_auc"]["ci_low"] < (
        report["binary_auc"]["ci_high"] - report["binary_auc"]["ci_low"]
    )


def test_default_iterations_fast(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    y, p, pids = data
    start = time.perf_counter()
    rep = evaluation_report(y, p, pids)
    assert time.perf_counter() - start < 5.0
    assert (rep["iterations"], rep["seed"]) == (2000, 0)
    assert rep["roc"]["binary"]["band"]["iterations"] == 2000
    json.dumps(rep, allow_nan=False)


def test_mismatched_lengths_rejected(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    y, p, pids = data
    with pytest.raises(ValueError):
        evaluation_report(y[:-1], p, pids, iterations=10)
