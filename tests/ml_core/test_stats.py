"""ml.core.stats against published κ values, scikit-learn, and hand-worked bootstraps."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from ml.core.stats import (
    BINARY_LABELS,
    CLASS_KEYS,
    binary_metrics,
    binary_prediction,
    bootstrap_indices,
    bootstrap_metrics,
    class_indices,
    cohen_kappa,
    confusion_matrix,
    fracture_probability,
    is_fracture,
    kappa_from_table,
    multiclass_accuracy,
    multiclass_prediction,
    normalized_confusion_matrix,
    one_vs_rest_metrics,
)

# ----------------------------------------------------------------- kappa: published values


def test_kappa_textbook() -> None:
    assert kappa_from_table([[20, 5], [10, 15]]).kappa == pytest.approx(0.40)


def test_kappa_fleiss_statpsych() -> None:
    r = kappa_from_table([[31, 12], [4, 58]])
    assert r.kappa == pytest.approx(0.6756757, abs=1e-7)
    assert r.se == pytest.approx(0.07344761, abs=1e-8)
    assert r.ci_low == pytest.approx(0.5317210, abs=1e-7)
    assert r.ci_high == pytest.approx(0.8196303, abs=1e-7)
    assert r.n == 105


def test_kappa_sas_three_categories() -> None:
    table = [[0, 4, 1], [0, 8, 0], [0, 1, 5]]
    r = kappa_from_table(table)
    assert (round(r.kappa, 4), round(r.se, 4)) == (0.4842, 0.1380)
    assert (round(r.ci_low, 4), round(r.ci_high, 4)) == (0.2137, 0.7547)
    w = kappa_from_table(table, weights="linear")
    assert (round(w.kappa, 4), round(w.se, 4)) == (0.4701, 0.1457)
    assert (round(w.ci_low, 4), round(w.ci_high, 4)) == (0.1845, 0.7558)


def test_kappa_from_labels_equals_table() -> None:
    table = np.array([[31, 12], [4, 58]])
    a = np.repeat([False, False, True, True], table.ravel())
    b = np.repeat([False, True, False, True], table.ravel())
    r = cohen_kappa(a, b, labels=BINARY_LABELS)
    assert r == kappa_from_table(table)


# ----------------------------------------------------------------- kappa: scikit-learn


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_kappa_matches_sklearn(seed: int, weights: str | None) -> None:
    rng = np.random.default_rng(seed)
    a = rng.choice(CLASS_KEYS, 300)
    b = np.where(rng.random(300) < 0.6, a, rng.choice(CLASS_KEYS, 300))
    expected = skm.cohen_kappa_score(a, b, labels=list(CLASS_KEYS), weights=weights)
    assert cohen_kappa(a, b, labels=CLASS_KEYS, weights=weights).kappa == pytest.approx(expected, abs=1e-12)


def test_kappa_fixed_label_set_with_absent_class() -> None:
    # 'orif' and 'arthroplasty' never occur: the fixed label set must not change κ
    # (empty rows/columns add nothing) and must not raise.
    a = ["normal", "fn_displaced", "normal", "intertrochanteric", "fn_nondisplaced"]
    b = ["normal", "fn_displaced", "fn_displaced", "intertrochanteric", "normal"]
    full = cohen_kappa(a, b, labels=CLASS_KEYS)
    assert full.kappa == pytest.approx(skm.cohen_kappa_score(a, b, labels=list(CLASS_KEYS)))
    assert confusion_matrix(a, b, labels=CLASS_KEYS).shape == (6, 6)


def test_kappa_unknown_label_rejected() -> None:
    with pytest.raises(ValueError, match="not in"):
        cohen_kappa(["normal"], ["broken"], labels=CLASS_KEYS)


def test_kappa_undefined_when_one_category() -> None:
    assert np.isnan(cohen_kappa([True, True], [True, True], labels=BINARY_LABELS).kappa)


# ----------------------------------------------------------------- point metrics


@pytest.mark.parametrize("seed", range(3))
def test_confusion_matrices_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = rng.choice(CLASS_KEYS[:5], 200)  # arthroplasty absent: its row must be NaN, not an error
    p = rng.choice(CLASS_KEYS, 200)
    cm = confusion_matrix(t, p, labels=CLASS_KEYS)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(t, p, labels=list(CLASS_KEYS)))
    norm = normalized_confusion_matrix(t, p, labels=CLASS_KEYS)
    ref = skm.confusion_matrix(t, p, labels=list(CLASS_KEYS), normalize="true")
    np.testing.assert_allclose(norm[:5], ref[:5])
    np.testing.assert_allclose(norm[:5].sum(axis=1), 1.0)
    assert np.isnan(norm[5]).all()


def test_binary_metrics_hand_case() -> None:
    t = np.array([1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    p = np.array([1, 1, 0, 0, 0, 0, 1, 0], dtype=bool)
    m = binary_metrics(t, p)
    assert m == pytest.approx({"accuracy": 6 / 8, "sensitivity": 2 / 3, "specificity": 4 / 5})
    assert np.isnan(binary_metrics([False], [False])["sensitivity"])


def test_one_vs_rest_and_accuracy_match_sklearn() -> None:
    rng = np.random.default_rng(9)
    t = rng.integers(0, 6, 300)
    p = np.where(rng.random(300) < 0.5, t, rng.integers(0, 6, 300))
    assert multiclass_accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    ovr = one_vs_rest_metrics(t, p)
    assert list(ovr) == list(CLASS_KEYS)
    for k, key in enumerate(CLASS_KEYS):
        assert ovr[key]["sensitivity"] == pytest.approx(skm.recall_score(t == k, p == k))
        assert ovr[key]["specificity"] == pytest.approx(skm.recall_score(t != k, p != k))
    # Class keys and indices give the same answer.
    keys = np.array(CLASS_KEYS)
    assert one_vs_rest_metrics(keys[t], keys[p]) == ovr


def test_fracture_rules() -> None:
    probs = np.array(
        [
            [0.5, 0.2, 0.1, 0.2, 0.0, 0.0],  # P(fracture) 0.5 -> fracture (>=), argmax normal
            [0.6, 0.1, 0.1, 0.1, 0.1, 0.0],  # 0.3 -> not fracture
            [0.0, 0.0, 0.0, 0.1, 0.0, 0.9],  # arthroplasty is not a fracture
        ]
    )
    np.testing.assert_allclose(fracture_probability(probs), [0.5, 0.3, 0.1])
    np.testing.assert_array_equal(binary_prediction(probs), [True, False, False])
    np.testing.assert_array_equal(multiclass_prediction(probs), [0, 0, 5])
    np.testing.assert_array_equal(
        is_fracture(["normal", "fn_displaced", "fn_nondisplaced", "intertrochanteric", "orif", "arthroplasty"]),
        [False, True, True, True, False, False],
    )
    np.testing.assert_array_equal(class_indices(["orif", "normal"]), [4, 0])


# ----------------------------------------------------------------- bootstrap indices


def test_bootstrap_one_image_per_patient() -> None:
    rng = np.random.default_rng(0)
    pids = rng.integers(0, 40, 100)
    idx = bootstrap_indices(pids, iterations=500, seed=1)
    n_patients = np.unique(pids).size
    assert idx.shape == (500, n_patients)
    for row in idx:
        # Several draws of the same image are fine; two different images of one patient are not.
        distinct = np.unique(row)
        assert np.unique(pids[distinct]).size == distinct.size


def test_bootstrap_reproducible_from_seed() -> None:
    pids = np.arange(50) // 2
    a = bootstrap_indices(pids, iterations=100, seed=7)
    b = bootstrap_indices(pids, iterations=100, seed=7)
    c = bootstrap_indices(pids, iterations=100, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d = bootstrap_indices(pids, iterations=100, seed=np.random.default_rng(7))
    np.testing.assert_array_equal(a, d)


def test_bootstrap_four_cases_enumerated() -> None:
    # Patients A:{0,1}, B:{2}, C:{3}. Keep one of A's two images (each 1/2), then draw 3
    # cases with replacement from the 3 kept: 27 equally likely draws per kept set.
    pids = np.array(["A", "A", "B", "C"])
    idx = bootstrap_indices(pids, iterations=60_000, seed=123)
    assert idx.shape == (60_000, 3)
    freq = np.bincount(idx.ravel(), minlength=4) / idx.size
    # Each kept case is drawn 1/3 of the time; image 0 and 1 share A's third.
    np.testing.assert_allclose(freq, [1 / 6, 1 / 6, 1 / 3, 1 / 3], atol=0.01)
    # No row mixes images 0 and 1.
    assert not ((idx == 0).any(axis=1) & (idx == 1).any(axis=1)).any()
    # P(all three draws the same case) = 3 * (1/3)^3 = 1/9.
    same = (idx == idx[:, :1]).all(axis=1).mean()
    assert same == pytest.approx(1 / 9, abs=0.01)


def test_bootstrap_speed_smoke() -> None:
    # Not a timing assertion: prints the time so a slowdown shows in -s output.
    rng = np.random.default_rng(0)
    n = 500
    pids = rng.integers(0, 350, n)
    y = rng.integers(0, 6, n)
    probs = rng.dirichlet(np.ones(6), n)
    start = time.perf_counter()
    out = bootstrap_metrics(y, probs, pids, iterations=2000, seed=0)
    print(f"bootstrap_metrics 2000 x {out['n_patients']}: {time.perf_counter() - start:.3f}s")
    assert out["iterations"] == 2000


# ----------------------------------------------------------------- bootstrap metrics


def _toy_study(seed: int = 0, n: int = 240) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 6, n)
    probs = rng.dirichlet(np.ones(6), n)
    probs[np.arange(n), y] += rng.random(n)
    probs /= probs.sum(axis=1, keepdims=True)
    pids = np.arange(n) // 2  # two images per patient
    return y, probs, pids


def test_bootstrap_metrics_against_per_sample_loop() -> None:
    y, probs, pids = _toy_study()
    idx = bootstrap_indices(pids, iterations=60, seed=2)
    out = bootstrap_metrics(y, probs, pids, seed=None, indices=idx)
    frac = np.isin(y, [1, 2, 3])
    pf = probs[:, 1:4].sum(axis=1)
    pred = pf >= 0.5
    pm = probs.argmax(axis=1)
    acc, sens, spec, kap_b, auc_b, kap_mc, auc_orif = [], [], [], [], [], [], []
    for row in idx:
        acc.append(skm.accuracy_score(frac[row], pred[row]))
        sens.append(skm.recall_score(frac[row], pred[row]))
        spec.append(skm.recall_score(~frac[row], ~pred[row]))
        kap_b.append(skm.cohen_kappa_score(frac[row], pred[row], labels=[False, True]))
        auc_b.append(skm.roc_auc_score(frac[row], pf[row]))
        kap_mc.append(skm.cohen_kappa_score(y[row], pm[row], labels=list(range(6))))
        if (y[row] == 4).any():
            auc_orif.append(skm.roc_auc_score(y[row] == 4, probs[row, 4]))
    for got, ref in [
        (out["binary"]["accuracy"], acc),
        (out["binary"]["sensitivity"], sens),
        (out["binary"]["specificity"], spec),
        (out["binary"]["kappa"], kap_b),
        (out["binary"]["auc"], auc_b),
        (out["multiclass"]["kappa"], kap_mc),
        (out["per_class"]["orif"]["auc"], auc_orif),
    ]:
        assert got["mean"] == pytest.approx(np.mean(ref), abs=1e-12)
        assert got["ci_low"] == pytest.approx(np.percentile(ref, 2.5), abs=1e-12)
        assert got["ci_high"] == pytest.approx(np.percentile(ref, 97.5), abs=1e-12)
        assert got["iterations"] == len(ref)
    # Point estimates on all cases.
    assert out["binary"]["auc"]["estimate"] == pytest.approx(skm.roc_auc_score(frac, pf))
    assert out["multiclass"]["accuracy"]["estimate"] == pytest.approx(skm.accuracy_score(y, pm))
    assert out["per_class"]["normal"]["specificity"]["estimate"] == pytest.approx(skm.recall_score(y != 0, pm != 0))


def test_bootstrap_metrics_skips_undefined_iterations() -> None:
    # One rare class (orif) on a single patient: many samples miss it, so its sensitivity
    # and AUC use fewer iterations, while accuracy uses all of them.
    y, probs, pids = _toy_study(n=60)
    y = np.where(y == 4, 0, y)
    y[0] = 4
    out = bootstrap_metrics(y, probs, pids, iterations=300, seed=1)
    used = out["per_class"]["orif"]["sensitivity"]["iterations"]
    assert 0 < used < 300
    assert out["per_class"]["orif"]["auc"]["iterations"] == used
    assert out["binary"]["accuracy"]["iterations"] == 300
    assert out["n_patients"] == 30 and out["n_cases"] == 60


def test_bootstrap_metrics_structure_and_reproducibility() -> None:
    y, probs, pids = _toy_study(3)
    keys = np.array(CLASS_KEYS)[y]
    a = bootstrap_metrics(keys, probs, pids, iterations=200, seed=5)
    b = bootstrap_metrics(y, probs, pids, iterations=200, seed=5)
    assert a == b
    assert set(a["binary"]) == {"accuracy", "sensitivity", "specificity", "auc", "kappa"}
    assert set(a["multiclass"]) == {"accuracy", "kappa"}
    assert list(a["per_class"]) == list(CLASS_KEYS)
    for fig in a["binary"].values():
        assert set(fig) == {"estimate", "mean", "ci_low", "ci_high", "iterations"}
        assert fig["ci_low"] <= fig["mean"] <= fig["ci_high"]


def test_no_django_or_sklearn_import() -> None:
    # ml.core must load in a bare notebook: no Django, and scikit-learn only in these tests.
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys, ml.core.stats, ml.core.roc; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'sklearn')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
