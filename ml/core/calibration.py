"""Calibration of the classifier: reliability diagrams, expected calibration error and Brier score.

P(fracture) against any fracture and each class's probability one-vs-rest, over 10 equal-width
bins, with the paper's patient bootstrap (vectorised: one bincount per figure for all samples).
Definitions: docs/research/model-audit.md
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray

from ml.core.stats import (
    CLASS_KEYS,
    FRACTURE_INDICES,
    _summary,
    bootstrap_indices,
    class_indices,
    fracture_probability,
)

__all__ = [
    "BINS",
    "FIGURE_FIELDS",
    "bin_index",
    "bootstrap_brier",
    "bootstrap_ece",
    "brier_score",
    "calibration_figure",
    "calibration_report",
    "expected_calibration_error",
    "reliability_bins",
]

#: Equal-width bins of the predicted probability: [0, 0.1), [0.1, 0.2), ... [0.9, 1.0].
BINS = 10
#: The fields of each bootstrap figure, as in metrics.json.
FIGURE_FIELDS: tuple[str, ...] = ("estimate", "mean", "ci_low", "ci_high")


def _inputs(y_true: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    y = np.asarray(y_true).astype(bool).astype(float).ravel()
    p = np.asarray(scores, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError("y_true and scores must have the same length")
    if p.size and (not np.isfinite(p).all() or p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("scores must be probabilities in [0, 1]")
    return y, p


def bin_index(scores: ArrayLike, *, bins: int = BINS) -> NDArray[np.intp]:
    """The bin of each probability: floor(p * bins), with p = 1 in the last bin."""
    p = np.asarray(scores, dtype=float)
    index: NDArray[np.intp] = np.minimum((p * bins).astype(np.intp), bins - 1)
    return index


def reliability_bins(y_true: ArrayLike, scores: ArrayLike, *, bins: int = BINS) -> list[dict[str, Any]]:
    """The reliability diagram's points: per bin its edges, count, mean predicted probability
    and observed frequency of the positive label (None for an empty bin)."""
    y, p = _inputs(y_true, scores)
    b = bin_index(p, bins=bins)
    counts = np.bincount(b, minlength=bins)
    sum_p = np.bincount(b, weights=p, minlength=bins)
    sum_y = np.bincount(b, weights=y, minlength=bins)
    rows = []
    for k in range(bins):
        n = int(counts[k])
        rows.append(
            {
                "low": k / bins,
                "high": (k + 1) / bins,
                "count": n,
                "mean_predicted": float(sum_p[k] / n) if n else None,
                "observed": float(sum_y[k] / n) if n else None,
            }
        )
    return rows


def expected_calibration_error(y_true: ArrayLike, scores: ArrayLike, *, bins: int = BINS) -> float:
    """ECE = sum over bins of (bin count / n) * |observed frequency - mean predicted probability|."""
    return float(bootstrap_ece(y_true, scores, np.arange(np.asarray(scores).size)[None, :], bins=bins)[0])


def brier_score(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Mean squared difference between the predicted probability and the 0/1 label."""
    y, p = _inputs(y_true, scores)
    return float(np.mean((p - y) ** 2)) if p.size else float("nan")


def bootstrap_ece(y_true: ArrayLike, scores: ArrayLike, indices: ArrayLike, *, bins: int = BINS) -> NDArray[np.float64]:
    """ECE of every bootstrap sample ``indices[i]`` at once. Per sample and bin,
    count/n * |mean y - mean p| = |sum y - sum p| / n, so one weighted bincount per sum suffices."""
    y, p = _inputs(y_true, scores)
    idx = np.atleast_2d(np.asarray(indices, dtype=np.intp))
    iters, n = idx.shape
    keys = (np.arange(iters, dtype=np.intp)[:, None] * bins + bin_index(p, bins=bins)[idx]).ravel()
    sum_p = np.bincount(keys, weights=p[idx].ravel(), minlength=iters * bins).reshape(iters, bins)
    sum_y = np.bincount(keys, weights=y[idx].ravel(), minlength=iters * bins).reshape(iters, bins)
    if n == 0:
        return np.full(iters, np.nan)
    ece: NDArray[np.float64] = np.abs(sum_y - sum_p).sum(axis=1) / n
    return ece


def bootstrap_brier(y_true: ArrayLike, scores: ArrayLike, indices: ArrayLike) -> NDArray[np.float64]:
    """Brier score of every bootstrap sample ``indices[i]`` at once."""
    y, p = _inputs(y_true, scores)
    idx = np.atleast_2d(np.asarray(indices, dtype=np.intp))
    squared = (p - y) ** 2
    brier: NDArray[np.float64] = squared[idx].mean(axis=1)
    return brier


def _figure(estimate: float, samples: NDArray[np.float64], level: float) -> dict[str, float | None]:
    summary = _summary(estimate, samples, level)
    out: dict[str, float | None] = {}
    for field in FIGURE_FIELDS:
        value = float(summary[field])
        out[field] = value if np.isfinite(value) else None
    return out


def _one(y: NDArray[np.bool_], p: NDArray[np.float64], idx: NDArray[np.intp], level: float) -> dict[str, Any]:
    return {
        "ece": _figure(expected_calibration_error(y, p), bootstrap_ece(y, p, idx), level),
        "brier": _figure(brier_score(y, p), bootstrap_brier(y, p, idx), level),
        "positives": int(y.sum()),
        "reliability": reliability_bins(y, p),
    }


def calibration_report(
    y_true: ArrayLike,
    probabilities: ArrayLike,
    patient_ids: ArrayLike,
    *,
    iterations: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    indices: ArrayLike | None = None,
) -> dict[str, Any]:
    """metrics.json's ``calibration``: ``{"binary": {...}, "per_class": {class: {...}}, "bins"}``.

    Binary is P(fracture) against any fracture class, per class that class's probability against
    the class (one vs rest). Each holds ``ece`` and ``brier`` as ``{"estimate", "mean", "ci_low",
    "ci_high"}`` (``estimate`` on all hips, the rest over the patient bootstrap), the number of
    ``positives`` and the ``reliability`` diagram's bins. ``indices``: the bootstrap samples to
    reuse (default: drawn from ``patient_ids`` with ``seed``)."""
    truth = class_indices(y_true)
    probs = np.asarray(probabilities, dtype=float)
    pids = np.asarray(patient_ids).ravel()
    if not (truth.size == probs.shape[0] == pids.size):
        raise ValueError("y_true, probabilities and patient_ids must have the same length")
    idx = (
        bootstrap_indices(pids, iterations=iterations, seed=seed)
        if indices is None
        else np.asarray(indices, dtype=np.intp)
    )
    # Softmax outputs may sum a hair above 1: clip so P(fracture) stays a probability.
    p_frac = np.clip(fracture_probability(probs), 0.0, 1.0)
    clipped = np.clip(probs, 0.0, 1.0)
    return {
        "binary": _one(np.isin(truth, FRACTURE_INDICES), p_frac, idx, level),
        "per_class": {key: _one(truth == c, clipped[:, c], idx, level) for c, key in enumerate(CLASS_KEYS)},
        "bins": BINS,
    }


def _fmt(figure: dict[str, float | None]) -> str:
    if figure["estimate"] is None:
        return "n/a"
    text = f"{figure['estimate']:.3f}"
    if figure["ci_low"] is not None and figure["ci_high"] is not None:
        text += f" ({figure['ci_low']:.3f}–{figure['ci_high']:.3f})"
    return text


def _diagram(ax: Any, entry: dict[str, Any], title: str) -> None:
    rows = [r for r in entry["reliability"] if r["count"]]
    ax.plot([0, 1], [0, 1], linestyle=":", color="0.6", linewidth=1)
    width = 1.0 / max(len(entry["reliability"]), 1)
    ax.bar(
        [r["low"] for r in rows],
        [r["observed"] for r in rows],
        width=width,
        align="edge",
        color="C0",
        alpha=0.35,
        edgecolor="C0",
    )
    ax.plot([r["mean_predicted"] for r in rows], [r["observed"] for r in rows], marker="o", color="C0")
    for r in rows:
        ax.text(r["low"] + width / 2, 0.02, str(r["count"]), ha="center", va="bottom", fontsize=6, color="0.3")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("Predicted probability", fontsize=8)
    ax.set_ylabel("Observed frequency", fontsize=8)
    ax.set_title(f"{title}\nECE {_fmt(entry['ece'])}\nBrier {_fmt(entry['brier'])}", fontsize=8)


def calibration_figure(calibration: dict[str, Any], *, labels: dict[str, str], per_class: bool) -> Figure:
    """Reliability diagram(s) from :func:`calibration_report`'s dict: P(fracture) alone, or one
    panel per class (``labels``: display name of each class key). Bin counts at the bottom."""
    if not per_class:
        fig = Figure(figsize=(5, 5.4), layout="constrained")
        _diagram(fig.add_subplot(), calibration["binary"], "P(fracture) vs any fracture")
        return fig
    keys = list(calibration["per_class"])
    ncols = 3
    nrows = max(1, -(-len(keys) // ncols))
    fig = Figure(figsize=(4 * ncols, 4.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, key in zip(axes, keys, strict=False):
        _diagram(ax, calibration["per_class"][key], f"{labels.get(key, key)} (one vs rest)")
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    return fig
