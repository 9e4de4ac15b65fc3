"""ml.core.roc against scikit-learn and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from ml.core.roc import (
    RocBand,
    auc,
    best_threshold,
    bootstrap_auc,
    point_below_band,
    roc_auc,
    roc_band,
    roc_curve,
)
from ml.core.stats import bootstrap_indices


def _random_case(seed: int, n: int = 200, *, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    s = rng.random(n) + 0.6 * y
    if ties:  # coarse scores give many tied values, the case where AUC conventions differ
        s = np.round(s, 1)
    return y, s


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("drop", [False, True])
def test_roc_curve_matches_sklearn(seed: int, ties: bool, drop: bool) -> None:
    y, s = _random_case(seed, ties=ties)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=drop)
    rfpr, rtpr, rthr = skm.roc_curve(y, s, drop_intermediate=drop)
    np.testing.assert_allclose(fpr, rfpr)
    np.testing.assert_allclose(tpr, rtpr)
    np.testing.assert_allclose(thr[1:], rthr[1:])
    assert thr[0] == np.inf


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_auc_matches_sklearn(seed: int, ties: bool) -> None:
    y, s = _random_case(seed, ties=ties)
    expected = skm.roc_auc_score(y, s)
    assert roc_auc(y, s) == pytest.approx(expected, abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    assert auc(fpr, tpr) == pytest.approx(expected, abs=1e-12)
    assert auc(fpr, tpr) == pytest.approx(skm.auc(fpr, tpr), abs=1e-12)


def test_auc_hand_computed_with_tie() -> None:
    # Pairs (pos, neg): (0.8,0.1) win, (0.8,0.4) win, (0.4,0.1) win, (0.4,0.4) tie -> 3.5 / 4.
    assert roc_auc([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(0.875)


def test_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError):
        roc_auc([1, 1], [0.2, 0.3])


def test_bootstrap_auc_equals_per_sample_auc() -> None:
    y, s = _random_case(7, n=120, ties=True)
    pids = np.repeat(np.arange(60), 2)
    idx = bootstrap_indices(pids, iterations=50, seed=3)
    fast = bootstrap_auc(y, s, idx)
    for row, value in zip(idx, fast, strict=True):
        yy, ss = y[row], s[row]
        if yy.all() or not yy.any():
            assert np.isnan(value)
        else:
            assert value == pytest.approx(skm.roc_auc_score(yy, ss), abs=1e-12)


def test_bootstrap_auc_nan_without_positives() -> None:
    out = bootstrap_auc([0, 1], [0.1, 0.9], np.array([[0, 0], [0, 1]]))
    assert np.isnan(out[0]) and out[1] == 1.0


def test_roc_band_vertical_average_hand_case() -> None:
    # With indices fixed to the full sample, every "bootstrap" curve is the observed one:
    # the band collapses onto the observed ROC, interpolated linearly between its points.
    y = np.array([1, 1, 0, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    idx = np.tile(np.arange(6), (3, 1))
    band = roc_band(y, s, None, seed=None, indices=idx, grid=[0.0, 1 / 6, 1 / 3, 2 / 3, 1.0])
    # ROC: (0,0) (0,1/3) (0,2/3) (1/3,2/3) (1/3,1) (2/3,1) (1,1); top of the vertical at fpr 0 / 1/3.
    np.testing.assert_allclose(band.tpr_mean, [2 / 3, 2 / 3, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(band.tpr_low, band.tpr_mean)
    np.testing.assert_allclose(band.tpr_high, band.tpr_mean)
    assert band.iterations == 3


def test_roc_band_matches_interpolated_sklearn_curves() -> None:
    y, s = _random_case(11, n=150, ties=True)
    pids = np.arange(150) // 2
    idx = bootstrap_indices(pids, iterations=40, seed=5)
    grid = np.linspace(0, 1, 21)
    band = roc_band(y, s, pids, seed=None, indices=idx, grid=grid)
    curves = []
    for row in idx:
        fpr, tpr, _ = skm.roc_curve(y[row], s[row], drop_intermediate=False)
        # Fawcett's rule: last point with fpr <= x, then interpolate to the next one.
        vals = []
        for x in grid:
            i = np.searchsorted(fpr, x, side="right") - 1
            if i + 1 < fpr.size and fpr[i + 1] > fpr[i]:
                vals.append(tpr[i] + (tpr[i + 1] - tpr[i]) * (x - fpr[i]) / (fpr[i + 1] - fpr[i]))
            else:
                vals.append(tpr[i])
        curves.append(vals)
    curves = np.array(curves)
    np.testing.assert_allclose(band.tpr_mean, curves.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(band.tpr_low, np.percentile(curves, 2.5, axis=0), atol=1e-12)
    np.testing.assert_allclose(band.tpr_high, np.percentile(curves, 97.5, axis=0), atol=1e-12)


def test_roc_band_reproducible_and_ordered() -> None:
    y, s = _random_case(2, n=300)
    pids = np.arange(300) // 3
    a = roc_band(y, s, pids, iterations=200, seed=42)
    b = roc_band(y, s, pids, iterations=200, seed=42)
    np.testing.assert_array_equal(a.tpr_low, b.tpr_low)
    assert a.fpr.size == 101
    # (The mean may fall outside the percentile band where nearly every curve is at 1.)
    assert (a.tpr_low <= a.tpr_high).all()
    assert ((a.tpr_mean >= 0) & (a.tpr_mean <= 1)).all()
    assert (np.diff(a.tpr_mean) >= -1e-12).all()  # averaged ROC curves stay monotone


def test_best_threshold_closest_to_corner() -> None:
    y = np.array([1, 1, 0, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    best = best_threshold(y, s)
    # Candidates: t=0.8 -> (0, 2/3) dist 1/3; t=0.6 -> (1/3, 1) dist 1/3; tie -> higher threshold.
    assert best.threshold == pytest.approx(0.8)
    assert best.sensitivity == pytest.approx(2 / 3)
    assert best.specificity == pytest.approx(1.0)


def test_best_threshold_against_brute_force() -> None:
    y, s = _random_case(4, n=100)
    best = best_threshold(y, s)
    dists = []
    for t in np.unique(s):
        pred = s >= t
        sens = (pred & y).sum() / y.sum()
        spec = (~pred & ~y).sum() / (~y).sum()
        dists.append(np.hypot(1 - spec, 1 - sens))
    assert np.hypot(1 - best.specificity, 1 - best.sensitivity) == pytest.approx(min(dists))


def test_point_below_band() -> None:
    grid = np.array([0.0, 0.5, 1.0])
    band = RocBand(
        fpr=grid,
        tpr_mean=np.array([0.6, 0.9, 1.0]),
        tpr_low=np.array([0.5, 0.75, 1.0]),
        tpr_high=np.array([0.8, 1.0, 1.0]),
        iterations=10,
    )
    assert point_below_band(0.25, 0.5, band)  # lower band at 0.25 is 0.625
    assert not point_below_band(0.25, 0.625, band)  # on the band is not below
    assert not point_below_band(0.25, 0.95, band)
    with pytest.raises(ValueError):
        point_below_band(1.5, 0.5, band)
