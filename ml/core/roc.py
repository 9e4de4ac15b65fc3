"""ROC curves, AUC and bootstrap confidence bands, in plain NumPy.

No Django and no scikit-learn here: researchers call this from notebooks, and the
bootstrap needs vectorised versions anyway. The tests hold every function to
scikit-learn's ``roc_curve`` / ``roc_auc_score`` / ``auc``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "RocBand",
    "Threshold",
    "auc",
    "best_threshold",
    "bootstrap_auc",
    "point_below_band",
    "roc_auc",
    "roc_band",
    "roc_curve",
]

DEFAULT_GRID = np.linspace(0.0, 1.0, 101)


def _binary_inputs(y_true: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=float)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError("y_true and scores must be 1-D arrays of the same length")
    if y.dtype != bool:
        if not np.isin(y, [0, 1]).all():
            raise ValueError("y_true must be binary (bool or 0/1)")
        y = y.astype(bool)
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y, s


def roc_curve(
    y_true: ArrayLike, scores: ArrayLike, *, drop_intermediate: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(fpr, tpr, thresholds) exactly as scikit-learn's ``roc_curve`` returns them.

    A case counts as positive when ``score >= threshold``; the first threshold is +inf
    (the (0, 0) corner). Tied scores make one point, so ties give diagonal segments.
    """
    y, s = _binary_inputs(y_true, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_curve needs at least one positive and one negative case")
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    # Last index of each run of equal scores = one ROC point per distinct threshold.
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last].astype(float)
    fps = (last + 1) - tps
    thresholds = s_sorted[last]
    if drop_intermediate and tps.size > 2:
        # Drop points collinear with their neighbours (same rule as scikit-learn).
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        tps, fps, thresholds = tps[keep], fps[keep], thresholds[keep]
    tps = np.r_[0.0, tps]
    fps = np.r_[0.0, fps]
    thresholds = np.r_[np.inf, thresholds]
    return fps / n_neg, tps / n_pos, thresholds


def auc(x: ArrayLike, y: ArrayLike) -> float:
    """Trapezoidal area under a curve given by points sorted along x (like ``sklearn.metrics.auc``)."""
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1 or xa.size < 2:
        raise ValueError("x and y must be 1-D arrays of the same length, at least 2 points")
    dx = np.diff(xa)
    if (dx < 0).any():
        if (dx <= 0).all():
            return float(-np.sum(dx * (ya[1:] + ya[:-1]) / 2.0))
        raise ValueError("x must be monotonic")
    return float(np.sum(dx * (ya[1:] + ya[:-1]) / 2.0))


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve via Mann–Whitney U with average ranks for ties.

    Equals the trapezoidal area of the ROC curve (ties count one half), i.e.
    scikit-learn's ``roc_auc_score``.
    """
    y, s = _binary_inputs(y_true, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs at least one positive and one negative case")
    ranks = _average_ranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _average_ranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based ranks, ties sharing the average of their ranks (scipy's ``rankdata`` 'average')."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    new_group = np.r_[True, sorted_vals[1:] != sorted_vals[:-1]]
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], sorted_vals.size]  # exclusive
    avg = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(values.size, dtype=float)
    ranks[order] = avg[group]
    return ranks


def _bootstrap_counts(
    y: NDArray[np.bool_], s: NDArray[np.float64], indices: NDArray[np.intp]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per iteration, counts of positives and negatives at each distinct score, highest score first.

    Shape (iterations, n_distinct). Working on distinct scores of the full data set avoids
    sorting each bootstrap sample: a resample only changes how often each score occurs.
    """
    idx = np.asarray(indices)
    if idx.ndim != 2:
        raise ValueError("indices must be an (iterations, n) array")
    distinct, dense = np.unique(-s, return_inverse=True)  # descending score order
    n_distinct = distinct.size
    iters = idx.shape[0]
    keys = np.arange(iters)[:, None] * n_distinct + dense[idx]
    pos_mask = y[idx]
    size = iters * n_distinct
    pos = np.bincount(keys[pos_mask], minlength=size).reshape(iters, n_distinct).astype(float)
    neg = np.bincount(keys[~pos_mask], minlength=size).reshape(iters, n_distinct).astype(float)
    return pos, neg


def bootstrap_auc(y_true: ArrayLike, scores: ArrayLike, indices: ArrayLike) -> NDArray[np.float64]:
    """AUC of every bootstrap sample ``indices[i]`` at once; NaN where a sample lacks a class."""
    y, s = _binary_inputs(y_true, scores)
    pos, neg = _bootstrap_counts(y, s, np.asarray(indices))
    # Negatives scoring strictly lower than each distinct score (columns run high -> low).
    neg_below = neg.sum(axis=1, keepdims=True) - np.cumsum(neg, axis=1)
    n_pos = pos.sum(axis=1)
    n_neg = neg.sum(axis=1)
    wins = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: NDArray[np.float64] = wins / (n_pos * n_neg)
    out[(n_pos == 0) | (n_neg == 0)] = np.nan
    return out


@dataclass(frozen=True)
class RocBand:
    """Vertical-averaging band: TPR at each fixed FPR over the bootstrap curves."""

    fpr: NDArray[np.float64]
    tpr_mean: NDArray[np.float64]
    tpr_low: NDArray[np.float64]
    tpr_high: NDArray[np.float64]
    iterations: int  # bootstrap curves used (samples lacking a class are skipped)
    level: float = 0.95


def _tpr_at_grid(fps: NDArray[np.float64], tps: NDArray[np.float64], grid: NDArray[np.float64]) -> NDArray[np.float64]:
    """TPR of each row's ROC curve at the FPR grid (Fawcett 2006, TPR_FOR_FPR).

    Takes the last point with fpr <= x (the top of a vertical segment) and
    interpolates linearly towards the next point.
    """
    rows, n_points = fps.shape
    # Offset each row by 2*row so the flattened fpr stays sorted: one searchsorted for all rows.
    offset = 2.0 * np.arange(rows)[:, None]
    flat_f = (fps + offset).ravel()
    queries = (grid[None, :] + offset).ravel()
    last = np.searchsorted(flat_f, queries, side="right") - 1
    last = last.reshape(rows, grid.size)
    row_start = (np.arange(rows) * n_points)[:, None]
    nxt = np.minimum(last + 1, row_start + n_points - 1)
    f0 = fps.ravel()[last]
    t0 = tps.ravel()[last]
    f1 = fps.ravel()[nxt]
    t1 = tps.ravel()[nxt]
    span = f1 - f0
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(span > 0, (grid[None, :] - f0) / span, 0.0)
    tpr: NDArray[np.float64] = t0 + frac * (t1 - t0)
    return tpr


def roc_band(
    y_true: ArrayLike,
    scores: ArrayLike,
    patient_ids: ArrayLike,
    *,
    iterations: int = 2000,
    seed: int | np.random.Generator | None,
    grid: ArrayLike = DEFAULT_GRID,
    level: float = 0.95,
    indices: ArrayLike | None = None,
) -> RocBand:
    """95% ROC band by vertical averaging of bootstrap ROC curves (the paper's Figure 7).

    Bootstrap samples are the paper's one-image-per-patient resamples
    (:func:`ml.core.stats.bootstrap_indices`); pass ``indices`` to reuse samples
    already drawn for the metrics.
    """
    from ml.core.stats import bootstrap_indices  # local: stats imports roc

    y, s = _binary_inputs(y_true, scores)
    g = np.asarray(grid, dtype=float)
    if g.ndim != 1 or (np.diff(g) < 0).any() or g.min() < 0 or g.max() > 1:
        raise ValueError("grid must be increasing FPR values in [0, 1]")
    if indices is None:
        idx = bootstrap_indices(patient_ids, iterations=iterations, seed=seed)
    else:
        idx = np.asarray(indices)
    pos, neg = _bootstrap_counts(y, s, idx)
    n_pos = pos.sum(axis=1)
    n_neg = neg.sum(axis=1)
    ok = (n_pos > 0) & (n_neg > 0)
    pos, neg, n_pos, n_neg = pos[ok], neg[ok], n_pos[ok], n_neg[ok]
    if pos.shape[0] == 0:
        raise ValueError("no bootstrap sample has both positive and negative cases")
    # One point per distinct score (absent scores repeat a point, harmless) plus (0, 0).
    zeros = np.zeros((pos.shape[0], 1))
    tps = np.hstack([zeros, np.cumsum(pos, axis=1)]) / n_pos[:, None]
    fps = np.hstack([zeros, np.cumsum(neg, axis=1)]) / n_neg[:, None]
    curves = _tpr_at_grid(fps, tps, g)
    tail = (1.0 - level) / 2.0 * 100.0
    return RocBand(
        fpr=g,
        tpr_mean=curves.mean(axis=0),
        tpr_low=np.percentile(curves, tail, axis=0),
        tpr_high=np.percentile(curves, 100.0 - tail, axis=0),
        iterations=int(curves.shape[0]),
        level=level,
    )


@dataclass(frozen=True)
class Threshold:
    threshold: float
    sensitivity: float
    specificity: float


def best_threshold(y_true: ArrayLike, scores: ArrayLike) -> Threshold:
    """The ROC point closest to the top-left corner (0, 1) (the paper's Figure 8).

    Considers every distinct score as a threshold (positive when score >= threshold);
    on a tie in distance the higher threshold wins.
    """
    fpr, tpr, thr = roc_curve(y_true, scores, drop_intermediate=False)
    fpr, tpr, thr = fpr[1:], tpr[1:], thr[1:]  # the +inf threshold calls nothing positive
    dist = np.hypot(fpr, 1.0 - tpr)
    # Tolerance so float noise does not break an exact tie (e.g. 1/3 vs 1 - 2/3).
    i = int(np.flatnonzero(dist <= dist.min() + 1e-12)[0])
    return Threshold(threshold=float(thr[i]), sensitivity=float(tpr[i]), specificity=float(1.0 - fpr[i]))


def point_below_band(fpr: float, tpr: float, band: RocBand) -> bool:
    """Whether a reader's (1 − specificity, sensitivity) point lies strictly below the lower band."""
    if not (0.0 <= fpr <= 1.0 and 0.0 <= tpr <= 1.0):
        raise ValueError("fpr and tpr must lie in [0, 1]")
    lower = float(np.interp(fpr, band.fpr, band.tpr_low))
    return bool(tpr < lower)
