"""The model audit's pure computations: ECE and Brier against a plain loop on known predictions,
the subgroup figures against a slow per-subgroup computation, and the failure groups."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.core.calibration import (
    bootstrap_brier,
    bootstrap_ece,
    brier_score,
    calibration_report,
    expected_calibration_error,
    reliability_bins,
)
from ml.core.failures import failure_groups, gallery_figure
from ml.core.report import CLASS_LABELS, evaluation_report, write_report
from ml.core.stats import CLASS_KEYS, FRACTURE_INDICES, bootstrap_indices
from ml.core.subgroups import ATTRIBUTES, MIN_HIPS, TOO_FEW, age_band, subgroup_report, view_name


def loop_ece(y, p, bins=10):
    """ECE the slow way: every case put in its bin by comparing with the edges."""
    total = 0.0
    n = len(p)
    for k in range(bins):
        low, high = k / bins, (k + 1) / bins
        members = [i for i in range(n) if low <= p[i] < high or (k == bins - 1 and p[i] == 1.0)]
        if members:
            observed = sum(y[i] for i in members) / len(members)
            predicted = sum(p[i] for i in members) / len(members)
            total += len(members) / n * abs(observed - predicted)
    return total


def loop_brier(y, p):
    return sum((p[i] - y[i]) ** 2 for i in range(len(p))) / len(p)


def test_ece_and_brier_of_known_predictions():
    # Bin [0.1, 0.2): 0.15 (0), 0.15 (1); bin [0.8, 0.9): 0.85 (1), 0.85 (1); bin [0.9, 1]: 1.0 (1).
    y = [0, 1, 1, 1, 1]
    p = [0.15, 0.15, 0.85, 0.85, 1.0]
    # |0.5 - 0.15| * 2/5 + |1 - 0.85| * 2/5 + |1 - 1| * 1/5 = 0.14 + 0.06
    assert expected_calibration_error(y, p) == pytest.approx(0.2)
    assert brier_score(y, p) == pytest.approx((0.15**2 + 0.85**2 + 2 * 0.15**2) / 5)
    bins = reliability_bins(y, p)
    assert [b["count"] for b in bins] == [0, 2, 0, 0, 0, 0, 0, 0, 2, 1]
    assert bins[1]["observed"] == 0.5 and bins[0]["observed"] is None
    assert bins[9]["mean_predicted"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_and_brier_match_a_plain_loop(seed):
    rng = np.random.default_rng(seed)
    p = np.r_[rng.uniform(size=200), [0.0, 0.1, 0.5, 0.9, 1.0]]  # bin edges included
    y = (rng.uniform(size=p.size) < p**1.5).astype(int)
    assert expected_calibration_error(y, p) == pytest.approx(loop_ece(y.tolist(), p.tolist()), abs=1e-12)
    assert brier_score(y, p) == pytest.approx(loop_brier(y.tolist(), p.tolist()), abs=1e-12)
    idx = bootstrap_indices(np.arange(p.size) // 2, iterations=30, seed=seed)
    ece, brier = bootstrap_ece(y, p, idx), bootstrap_brier(y, p, idx)
    for i, row in enumerate(idx):
        assert ece[i] == pytest.approx(loop_ece(y[row].tolist(), p[row].tolist()), abs=1e-12)
        assert brier[i] == pytest.approx(loop_brier(y[row].tolist(), p[row].tolist()), abs=1e-12)


def _synthetic(n=240, seed=5):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, len(CLASS_KEYS), size=n)
    logits = rng.normal(size=(n, len(CLASS_KEYS)))
    logits[np.arange(n), truth] += 1.2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    patients = np.arange(n) // 2  # two hips of each film's patient
    return truth, probs, patients


def test_calibration_report_is_the_loop_on_all_hips_and_on_each_bootstrap_sample():
    truth, probs, patients = _synthetic()
    report = calibration_report(truth, probs, patients, iterations=40, seed=3)
    assert set(report) == {"binary", "per_class", "bins"} and set(report["per_class"]) == set(CLASS_KEYS)
    idx = bootstrap_indices(patients, iterations=40, seed=3)
    curves = [("binary", np.isin(truth, FRACTURE_INDICES), probs[:, list(FRACTURE_INDICES)].sum(axis=1))]
    curves += [(key, truth == c, probs[:, c]) for c, key in enumerate(CLASS_KEYS)]
    for key, y, p in curves:
        entry = report["binary"] if key == "binary" else report["per_class"][key]
        y, p = y.astype(int).tolist(), np.clip(p, 0, 1).tolist()
        assert entry["ece"]["estimate"] == pytest.approx(loop_ece(y, p)), key
        assert entry["brier"]["estimate"] == pytest.approx(loop_brier(y, p)), key
        samples = [loop_ece([y[i] for i in row], [p[i] for i in row]) for row in idx]
        assert entry["ece"]["mean"] == pytest.approx(np.mean(samples)), key
        assert entry["ece"]["ci_low"] == pytest.approx(np.percentile(samples, 2.5)), key
        assert entry["ece"]["ci_high"] == pytest.approx(np.percentile(samples, 97.5)), key
        assert set(entry["ece"]) == set(entry["brier"]) == {"estimate", "mean", "ci_low", "ci_high"}


def loop_auc(y, s):
    pos = [s[i] for i in range(len(y)) if y[i]]
    neg = [s[i] for i in range(len(y)) if not y[i]]
    if not pos or not neg:
        return math.nan
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg) / (len(pos) * len(neg))


def slow_figures(truth, probs):
    """The five subgroup figures of one sample, one hip at a time."""
    t_bin = [int(t) in FRACTURE_INDICES for t in truth]
    p_frac = [float(sum(row[i] for i in FRACTURE_INDICES)) for row in probs]
    call = [p >= 0.5 for p in p_frac]
    pos = [i for i in range(len(truth)) if t_bin[i]]
    neg = [i for i in range(len(truth)) if not t_bin[i]]
    return {
        "binary_accuracy": sum(call[i] == t_bin[i] for i in range(len(truth))) / len(truth),
        "binary_sensitivity": sum(call[i] for i in pos) / len(pos) if pos else math.nan,
        "binary_specificity": sum(not call[i] for i in neg) / len(neg) if neg else math.nan,
        "binary_auc": loop_auc(t_bin, p_frac),
        "multiclass_accuracy": sum(int(np.argmax(probs[i])) == truth[i] for i in range(len(truth))) / len(truth),
    }


def test_subgroup_figures_match_a_slow_per_subgroup_computation():
    truth, probs, patients = _synthetic()
    rng = np.random.default_rng(9)
    n = truth.size
    attributes = {
        "sex": rng.choice(["female", "male"], size=n).tolist(),
        "age_band": [age_band(int(a)) for a in rng.integers(40, 100, size=n)],
        "view": ["AP"] * (n - 12) + ["frog-leg lateral"] * 12,
        "manufacturer": ["Agfa CR 85-X"] * (n - 7) + ["SIEMENS Ysio Max"] * 7,  # 7 hips: too few
        "modality": rng.choice(["CR", "DX"], size=n).tolist(),
        "side": ["right", "left"] * (n // 2),
    }
    iterations = 25
    report = subgroup_report(truth, probs, patients, attributes, iterations=iterations, seed=4)
    assert list(report) == list(ATTRIBUTES)
    for attribute in ATTRIBUTES:
        values = attributes[attribute]
        assert set(report[attribute]) == set(values)
        for value, entry in report[attribute].items():
            members = [i for i in range(n) if values[i] == value]
            assert entry["hips"] == len(members)
            assert entry["patients"] == len({int(patients[i]) for i in members})
            if len(members) < MIN_HIPS:
                assert entry == {"hips": len(members), "patients": entry["patients"], "note": TOO_FEW}
                continue
            t, p, pid = truth[members], probs[members], patients[members]
            point = slow_figures(t.tolist(), p.tolist())
            samples = [slow_figures(t[row].tolist(), p[row].tolist()) for row in
                       bootstrap_indices(pid, iterations=iterations, seed=4)]  # fmt: skip
            for key, estimate in point.items():
                assert entry[key]["estimate"] == pytest.approx(estimate), (attribute, value, key)
                defined = [s[key] for s in samples if not math.isnan(s[key])]
                assert entry[key]["mean"] == pytest.approx(np.mean(defined)), (attribute, value, key)
                assert entry[key]["ci_low"] == pytest.approx(np.percentile(defined, 2.5)), (attribute, value, key)
    assert report["manufacturer"]["SIEMENS Ysio Max"]["note"] == TOO_FEW


def test_age_bands_and_views():
    assert [age_band(a) for a in (None, 0, 64, 65, 80, 81, 104)] == [
        "unknown", "<65", "<65", "65–80", "65–80", ">80", ">80"
    ]  # fmt: skip
    assert [view_name(v) for v in ("AP", "FROG", "", "xtable", "LL", "OBL")] == [
        "AP", "frog-leg lateral", "unknown", "cross-table lateral", "other lateral", "OBL"
    ]  # fmt: skip


def test_failure_groups_are_the_wrong_hips_by_truth_and_call():
    truth, probs, _ = _synthetic(n=120)
    groups = failure_groups(truth, probs)
    pred = probs.argmax(axis=1)
    wrong = [i for i in range(truth.size) if pred[i] != truth[i]]
    assert sorted(h["index"] for g in groups for h in g["hips"]) == wrong
    keys = [(CLASS_KEYS.index(g["truth"]), CLASS_KEYS.index(g["predicted"])) for g in groups]
    assert keys == sorted(set(keys))
    for group in groups:
        for hip in group["hips"]:
            i = hip["index"]
            assert (CLASS_KEYS[truth[i]], CLASS_KEYS[pred[i]]) == (group["truth"], group["predicted"])
            assert hip["top2"][0] == [CLASS_KEYS[pred[i]], pytest.approx(probs[i].max())]
            assert hip["top2"][1][1] == pytest.approx(np.sort(probs[i])[-2])
        first = [probs[h["index"], CLASS_KEYS.index(group["predicted"])] for h in group["hips"]]
        assert first == sorted(first, reverse=True)  # the most confident mistakes first
    assert failure_groups([0, 1], np.eye(6)[:2]) == []
    figure = gallery_figure(
        [{**g, "hips": [{**h, "crop": np.zeros((8, 8)), "heatmap": None} for h in g["hips"]]} for g in groups[:2]],
        labels=CLASS_LABELS,
    )
    assert len([ax for ax in figure.axes if ax.get_visible()]) >= 2


def test_the_report_writes_calibration_and_the_added_subgroups_and_failures(tmp_path):
    truth, probs, patients = _synthetic(n=60)
    report = evaluation_report(truth, probs, patients, iterations=20, seed=0)
    report["subgroups"] = subgroup_report(
        truth, probs, patients, {a: ["x"] * 60 for a in ATTRIBUTES}, iterations=20, seed=0
    )
    report["failures"] = [{"truth": "normal", "predicted": "orif", "hips": [
        {"radiograph": 7, "side": "left", "top2": [["orif", 0.6], ["normal", 0.3]]}]}]  # fmt: skip
    names = {p.name for p in write_report(report, tmp_path)}
    assert {"calibration.csv", "reliability.csv", "subgroups.csv", "failures.csv"} <= names
    assert {f"calibration_{k}.{f}" for k in ("binary", "per_class") for f in ("png", "svg")} <= names
    lines = (tmp_path / "calibration.csv").read_text().splitlines()
    assert lines[0] == "curve,measure,mean,ci_low,ci_high,estimate" and len(lines) == 1 + 2 * 7
    assert len((tmp_path / "reliability.csv").read_text().splitlines()) == 1 + 10 * 7
    assert (tmp_path / "failures.csv").read_text().splitlines()[1] == "normal,orif,7,left,orif,0.6,normal,0.3"
