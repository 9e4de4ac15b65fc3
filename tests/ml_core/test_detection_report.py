"""The detector's evaluation figures against hand computations and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from ml.core.detection_report import detection_report, iou, match_hips
from ml.core.stats import CLASS_KEYS, bootstrap_indices, fracture_probability


def test_iou_of_known_boxes():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_match_counts_missed_and_extra_sides():
    ious, missed, extra = match_hips({"right": (0, 0, 10, 10), "left": (50, 0, 10, 10)}, {"right": (0, 0, 10, 5)})
    assert ious == {"right": 0.5, "left": 0.0} and missed == ["left"] and extra == []
    _, missed, extra = match_hips({"right": (0, 0, 10, 10)}, {"right": (0, 0, 10, 10), "left": (9, 9, 1, 1)})
    assert missed == [] and extra == ["left"]


def onehot(indices, sharp=0.9):
    p = np.full((len(indices), 6), (1 - sharp) / 5)
    p[np.arange(len(indices)), indices] = sharp
    return p


def test_report_figures_match_a_hand_computation():
    rng = np.random.default_rng(0)
    n = 60
    truth = rng.integers(0, 6, n)
    manual = np.where(rng.random(n) < 0.8, truth, rng.integers(0, 6, n))
    auto = np.where(rng.random(n) < 0.7, truth, rng.integers(0, 6, n))
    found = rng.random(n) < 0.9
    ious = np.where(found, rng.uniform(0.6, 0.95, n), 0.0)
    patients = rng.integers(0, 40, n)
    report = detection_report(
        ious=ious, hips_extra=2, truth=truth, manual_probabilities=onehot(manual),
        auto_probabilities=onehot(auto), found=found, patients=patients, iterations=300, seed=1,
    )  # fmt: skip
    assert report["iou_mean"] == pytest.approx(ious.mean())
    assert report["iou_sd"] == pytest.approx(ious.std(ddof=1))
    assert report["iou_min"] == 0.0 and report["hips_missed"] == int((~found).sum()) and report["hips_extra"] == 2
    multi = report["classification"]["multiclass"]
    k_manual = cohen_kappa_score(truth[found], manual[found], labels=range(6))
    k_auto = cohen_kappa_score(truth[found], auto[found], labels=range(6))
    assert multi["manual"]["kappa"] == pytest.approx(k_manual)
    assert multi["auto"]["kappa"] == pytest.approx(k_auto)
    assert multi["kappa_difference"]["estimate"] == pytest.approx(k_auto - k_manual)
    assert multi["manual"]["accuracy"] == pytest.approx((manual[found] == truth[found]).mean())
    binary = report["classification"]["binary"]
    fx = lambda idx: (fracture_probability(onehot(idx)) >= 0.5).astype(int)  # noqa: E731
    truth_fx = np.isin(truth, [1, 2, 3]).astype(int)
    assert binary["auto"]["kappa"] == pytest.approx(cohen_kappa_score(truth_fx[found], fx(auto)[found]))
    # The CI by a slow loop over the same bootstrap draws.
    idx = bootstrap_indices(patients[found], iterations=300, seed=1)
    diffs = [
        cohen_kappa_score(truth[found][i], auto[found][i], labels=range(6))
        - cohen_kappa_score(truth[found][i], manual[found][i], labels=range(6))
        for i in idx
    ]
    assert multi["kappa_difference"]["ci_low"] == pytest.approx(np.percentile(diffs, 2.5))
    assert multi["kappa_difference"]["ci_high"] == pytest.approx(np.percentile(diffs, 97.5))
    assert len(CLASS_KEYS) == 6


def test_no_found_hips_has_no_classification_figures():
    report = detection_report(
        ious=[0.0, 0.0], hips_extra=0, truth=[0, 1], manual_probabilities=onehot([0, 1]),
        auto_probabilities=onehot([0, 0]), found=[False, False], patients=[1, 2], iterations=10,
    )  # fmt: skip
    assert report["hips_missed"] == 2 and report["classification"]["hips"] == 0
    assert "binary" not in report["classification"]
    with pytest.raises(ValueError, match="no manual hips"):
        detection_report(
            ious=[], hips_extra=0, truth=[], manual_probabilities=np.zeros((0, 6)),
            auto_probabilities=np.zeros((0, 6)), found=[], patients=[],
        )  # fmt: skip


def test_without_a_classifier_only_the_detection_figures():
    report = detection_report(
        ious=[0.9, 0.0, 0.8], hips_extra=1, truth=[0, 1, 2], manual_probabilities=None,
        auto_probabilities=None, found=[True, False, True], patients=[1, 2, 3], iterations=10,
    )  # fmt: skip
    assert report["hips_missed"] == 1 and report["hips_extra"] == 1 and report["hips"] == 3
    assert report["classification"] == {"hips": 0, "note": "no classifier: only the detection figures"}
