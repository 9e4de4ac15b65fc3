"""Agreement and performance statistics for the hip-fracture study (Krogue et al. 2020).

Plain NumPy (no Django, no scikit-learn): κ, accuracy, sensitivity, specificity and the patient
bootstrap, always over the six :data:`CLASS_KEYS` (fracture = the three fracture classes).
Design: docs/architecture/design-statistics.md
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.core.roc import bootstrap_auc, roc_auc
from ml.core.vocab import CLASSES, FRACTURE_CLASSES

__all__ = [
    "bootstrap_kappa",
    "BINARY_LABELS",
    "CLASS_KEYS",
    "FRACTURE_INDICES",
    "FRACTURE_KEYS",
    "KappaResult",
    "binary_metrics",
    "binary_prediction",
    "bootstrap_indices",
    "bootstrap_metrics",
    "class_indices",
    "cohen_kappa",
    "confusion_matrix",
    "fracture_probability",
    "is_fracture",
    "kappa_from_table",
    "multiclass_accuracy",
    "multiclass_prediction",
    "normalized_confusion_matrix",
    "one_vs_rest_metrics",
]

CLASS_KEYS: tuple[str, ...] = CLASSES
FRACTURE_KEYS: tuple[str, ...] = FRACTURE_CLASSES
FRACTURE_INDICES: tuple[int, ...] = tuple(CLASS_KEYS.index(k) for k in FRACTURE_KEYS)
BINARY_LABELS: tuple[bool, bool] = (False, True)

Weights = Literal["linear", "quadratic"] | None


# --------------------------------------------------------------------------- labels


def class_indices(labels: ArrayLike) -> NDArray[np.intp]:
    """Class keys (str) or integer indices -> integer indices into CLASS_KEYS."""
    return _label_indices(labels, CLASS_KEYS)


def _encode(values: ArrayLike, labels: Sequence[Any]) -> NDArray[np.intp]:
    """Map each value to its position in ``labels``; unknown values are an error, not a silent drop."""
    lookup = {label: i for i, label in enumerate(labels)}
    arr = np.asarray(values, dtype=object).ravel()
    try:
        return np.fromiter((lookup[v] for v in arr.tolist()), dtype=np.intp, count=arr.size)
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not in {list(labels)!r}") from None


def _label_indices(values: ArrayLike, labels: Sequence[Any]) -> NDArray[np.intp]:
    """Integer arrays are taken as indices into ``labels``; anything else is looked up."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() >= len(labels)):
            raise ValueError("label index out of range")
        return arr.astype(np.intp).ravel()
    return _encode(arr, labels)


def is_fracture(labels: ArrayLike) -> NDArray[np.bool_]:
    """True where the class is one of the three fracture classes."""
    return np.isin(class_indices(labels), FRACTURE_INDICES)


def _probabilities(probabilities: ArrayLike) -> NDArray[np.float64]:
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 2 or p.shape[1] != len(CLASS_KEYS):
        raise ValueError(f"probabilities must be (n, {len(CLASS_KEYS)}) in CLASS_KEYS order")
    return p


def fracture_probability(probabilities: ArrayLike) -> NDArray[np.float64]:
    """P(fracture) = sum of the three fracture-class probabilities."""
    fracture: NDArray[np.float64] = _probabilities(probabilities)[..., list(FRACTURE_INDICES)].sum(axis=-1)
    return fracture


def binary_prediction(probabilities: ArrayLike, *, threshold: float = 0.5) -> NDArray[np.bool_]:
    """Fracture when P(fracture) >= threshold."""
    return fracture_probability(probabilities) >= threshold


def multiclass_prediction(probabilities: ArrayLike) -> NDArray[np.intp]:
    """Six-class call = argmax (first class wins a tie, as np.argmax)."""
    calls: NDArray[np.intp] = np.argmax(_probabilities(probabilities), axis=1)
    return calls


# --------------------------------------------------------------------------- confusion matrices


def confusion_matrix(a: ArrayLike, b: ArrayLike, *, labels: Sequence[Any]) -> NDArray[np.int64]:
    """Counts with rows = ``a`` (truth / rater A) and columns = ``b``, over a fixed label set."""
    ia = _encode(a, labels)
    ib = _encode(b, labels)
    if ia.size != ib.size:
        raise ValueError("a and b must have the same length")
    k = len(labels)
    return np.bincount(ia * k + ib, minlength=k * k).reshape(k, k).astype(np.int64)


def normalized_confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, *, labels: Sequence[Any]) -> NDArray[np.float64]:
    """Rows = truth, each row normalised to sum 1 (a row with no cases stays all NaN)."""
    cm = confusion_matrix(y_true, y_pred, labels=labels).astype(float)
    totals = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, cm / totals, np.nan)


# --------------------------------------------------------------------------- kappa


@dataclass(frozen=True)
class KappaResult:
    kappa: float
    se: float  # asymptotic SE under the alternative (Fleiss, Cohen & Everitt 1969)
    ci_low: float
    ci_high: float
    n: int
    level: float = 0.95


def _agreement_weights(k: int, weights: Weights) -> NDArray[np.float64]:
    if weights is None:
        return np.eye(k)
    d = np.abs(np.subtract.outer(np.arange(k), np.arange(k))) / max(k - 1, 1)
    if weights == "linear":
        return 1.0 - d
    if weights == "quadratic":
        return 1.0 - d**2
    raise ValueError("weights must be None, 'linear' or 'quadratic'")


def kappa_from_table(table: ArrayLike, *, weights: Weights = None, level: float = 0.95) -> KappaResult:
    """Cohen's κ from a k×k table (rows = rater A), with the large-sample SE and normal CI.

    The variance is Fleiss, Cohen & Everitt (1969), as in statsmodels ``cohens_kappa`` and
    R statpsych ``ci.kappa``. κ is NaN when chance agreement is 1 (one category used by both).
    """
    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError("table must be square")
    n = t.sum()
    if n <= 0:
        raise ValueError("table is empty")
    p = t / n
    w = _agreement_weights(t.shape[0], weights)
    row = p.sum(axis=1)
    col = p.sum(axis=0)
    po = float((w * p).sum())
    pe = float((w * np.outer(row, col)).sum())
    if np.isclose(pe, 1.0):
        nan = float("nan")
        return KappaResult(nan, nan, nan, nan, int(n), level)
    kappa = (po - pe) / (1.0 - pe)
    # Weighted mean agreement of each row category with rater B and each column with rater A.
    w_row = w @ col
    w_col = row @ w
    inner = (w - np.add.outer(w_row, w_col) * (1.0 - kappa)) ** 2
    var = ((p * inner).sum() - (kappa - pe * (1.0 - kappa)) ** 2) / (n * (1.0 - pe) ** 2)
    se = float(np.sqrt(max(var, 0.0)))
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    return KappaResult(float(kappa), se, float(kappa - z * se), float(kappa + z * se), int(n), level)


def cohen_kappa(
    a: ArrayLike, b: ArrayLike, *, labels: Sequence[Any], weights: Weights = None, level: float = 0.95
) -> KappaResult:
    """Cohen's κ of paired ratings over a fixed label set.

    Pass all six CLASS_KEYS even if a class is absent from the sample (binary: [False, True]),
    so κ does not depend on which classes happened to occur.
    """
    return kappa_from_table(confusion_matrix(a, b, labels=labels), weights=weights, level=level)


# --------------------------------------------------------------------------- point metrics


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def binary_metrics(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Accuracy, sensitivity, specificity of boolean calls (NaN where undefined)."""
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    if t.shape != p.shape:
        raise ValueError("y_true and y_pred must have the same shape")
    tp = int((t & p).sum())
    tn = int((~t & ~p).sum())
    return {
        "accuracy": _ratio(tp + tn, t.size),
        "sensitivity": _ratio(tp, int(t.sum())),
        "specificity": _ratio(tn, int((~t).sum())),
    }


def multiclass_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    t = class_indices(y_true)
    p = class_indices(y_pred)
    if t.shape != p.shape:
        raise ValueError("y_true and y_pred must have the same shape")
    return _ratio(int((t == p).sum()), t.size)


def one_vs_rest_metrics(
    y_true: ArrayLike, y_pred: ArrayLike, *, labels: Sequence[str] = CLASS_KEYS
) -> dict[str, dict[str, float]]:
    """Per-class sensitivity and specificity, each class against all others."""
    t = _label_indices(y_true, labels)
    p = _label_indices(y_pred, labels)
    if t.shape != p.shape:
        raise ValueError("y_true and y_pred must have the same shape")
    out: dict[str, dict[str, float]] = {}
    for k, key in enumerate(labels):
        m = binary_metrics(t == k, p == k)
        out[key] = {"sensitivity": m["sensitivity"], "specificity": m["specificity"]}
    return out


# --------------------------------------------------------------------------- bootstrap


def bootstrap_indices(
    patient_ids: ArrayLike, *, iterations: int = 2000, seed: int | np.random.Generator | None
) -> NDArray[np.intp]:
    """The paper's bootstrap: (iterations, n_patients) indices into the cases.

    Each row first keeps one random case per patient, then draws n_patients cases with
    replacement from those kept, so no row holds two different images of one patient.
    Reproducible from ``seed`` (a numpy Generator is used as given).
    """
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    ids = np.asarray(patient_ids).ravel()
    if ids.size == 0:
        raise ValueError("no cases")
    rng = np.random.default_rng(seed)
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")  # cases grouped by patient
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    n_patients = counts.size
    # Step 1: one case per patient, uniformly within that patient's cases.
    offsets = (rng.random((iterations, n_patients)) * counts).astype(np.intp)
    offsets = np.minimum(offsets, counts - 1)  # guard the (measure-zero) rounding edge
    kept = order[starts + offsets]
    # Step 2: resample the kept cases with replacement.
    draws = rng.integers(0, n_patients, size=(iterations, n_patients))
    return np.take_along_axis(kept, draws, axis=1)


def _summary(estimate: float, samples: NDArray[np.float64], level: float) -> dict[str, float | int]:
    """Mean and percentile CI over the iterations where the metric is defined."""
    good = samples[np.isfinite(samples)]
    tail = (1.0 - level) / 2.0 * 100.0
    if good.size == 0:
        nan = float("nan")
        return {"estimate": estimate, "mean": nan, "ci_low": nan, "ci_high": nan, "iterations": 0}
    low, high = np.percentile(good, [tail, 100.0 - tail])
    return {
        "estimate": estimate,
        "mean": float(good.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "iterations": int(good.size),
    }


def _rate(hits: NDArray[np.bool_], mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Per row: hits among masked entries / masked entries (NaN where none are masked)."""
    den = mask.sum(axis=1).astype(float)
    num = (hits & mask).sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _bootstrap_kappa(truth: NDArray[np.intp], pred: NDArray[np.intp], k: int) -> NDArray[np.float64]:
    """Unweighted κ of each row of (iterations, n) label-index arrays, vectorised via bincount."""
    iters, n = truth.shape
    keys = (np.arange(iters)[:, None] * k + truth) * k + pred
    tables = np.bincount(keys.ravel(), minlength=iters * k * k).reshape(iters, k, k) / n
    po = np.trace(tables, axis1=1, axis2=2)
    pe = (tables.sum(axis=2) * tables.sum(axis=1)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isclose(pe, 1.0), np.nan, (po - pe) / (1.0 - pe))


def _safe_point(fn: Any, *args: Any) -> float:
    try:
        return float(fn(*args))
    except ValueError:  # e.g. AUC with one class only
        return float("nan")


def bootstrap_metrics(
    y_true: ArrayLike,
    probabilities: ArrayLike,
    patient_ids: ArrayLike,
    *,
    iterations: int = 2000,
    seed: int | np.random.Generator | None,
    level: float = 0.95,
    indices: ArrayLike | None = None,
) -> dict[str, Any]:
    """The model's performance with the paper's bootstrap CIs.

    Returns ``{"binary": {...}, "multiclass": {...}, "per_class": {key: {...}}, "n_cases",
    "n_patients", "iterations"}``; each figure is ``{"estimate", "mean", "ci_low", "ci_high",
    "iterations"}``: ``estimate`` on all cases, the rest over bootstrap iterations where the
    figure is defined (a sample with no positives has no sensitivity; those are skipped and
    ``iterations`` counts the ones used). Binary: accuracy, sensitivity, specificity, auc
    (of P(fracture)), kappa; multiclass: accuracy, kappa; per class (one vs rest):
    sensitivity, specificity, auc (of that class's probability).
    """
    truth = class_indices(y_true)
    probs = _probabilities(probabilities)
    pids = np.asarray(patient_ids).ravel()
    if not (truth.size == probs.shape[0] == pids.size):
        raise ValueError("y_true, probabilities and patient_ids must have the same length")
    idx = bootstrap_indices(pids, iterations=iterations, seed=seed) if indices is None else np.asarray(indices)

    k = len(CLASS_KEYS)
    truth_bin = np.isin(truth, FRACTURE_INDICES)
    p_frac = fracture_probability(probs)
    pred_bin = p_frac >= 0.5
    pred_mc = multiclass_prediction(probs)

    tb, pb = truth_bin[idx], pred_bin[idx]
    tm, pm = truth[idx], pred_mc[idx]
    point_bin = binary_metrics(truth_bin, pred_bin)

    binary = {
        "accuracy": _summary(point_bin["accuracy"], (tb == pb).mean(axis=1), level),
        "sensitivity": _summary(point_bin["sensitivity"], _rate(pb, tb), level),
        "specificity": _summary(point_bin["specificity"], _rate(~pb, ~tb), level),
        "auc": _summary(_safe_point(roc_auc, truth_bin, p_frac), bootstrap_auc(truth_bin, p_frac, idx), level),
        "kappa": _summary(
            cohen_kappa(truth_bin, pred_bin, labels=BINARY_LABELS).kappa,
            _bootstrap_kappa(tb.astype(np.intp), pb.astype(np.intp), 2),
            level,
        ),
    }
    multiclass = {
        "accuracy": _summary(multiclass_accuracy(truth, pred_mc), (tm == pm).mean(axis=1), level),
        "kappa": _summary(
            cohen_kappa(truth, pred_mc, labels=range(k)).kappa,
            _bootstrap_kappa(tm, pm, k),
            level,
        ),
    }
    point_ovr = one_vs_rest_metrics(truth, pred_mc)
    per_class: dict[str, dict[str, dict[str, float | int]]] = {}
    for c, key in enumerate(CLASS_KEYS):
        tc, pc = tm == c, pm == c
        per_class[key] = {
            "sensitivity": _summary(point_ovr[key]["sensitivity"], _rate(pc, tc), level),
            "specificity": _summary(point_ovr[key]["specificity"], _rate(~pc, ~tc), level),
            "auc": _summary(
                _safe_point(roc_auc, truth == c, probs[:, c]), bootstrap_auc(truth == c, probs[:, c], idx), level
            ),
        }
    return {
        "binary": binary,
        "multiclass": multiclass,
        "per_class": per_class,
        "n_cases": int(truth.size),
        "n_patients": int(idx.shape[1]),
        "iterations": int(idx.shape[0]),
    }


# --------------------------------------------------------------------------- κ on bootstrap samples


def bootstrap_kappa(truth: ArrayLike, answers: ArrayLike, indices: ArrayLike, *, n_labels: int) -> NDArray[np.float64]:
    """Unweighted κ of every observer on every bootstrap sample: shape (iterations, observers).

    ``truth`` is (n_cases,) and ``answers`` (observers, n_cases), both label indices in
    ``range(n_labels)``; ``indices`` is (iterations, m) case indices (one row per sample; pass
    ``np.arange(n)[None]`` for all cases). All κ tables come from one bincount over
    (observer, iteration, truth, answer) keys. κ is NaN where chance agreement is 1.
    """
    t = np.asarray(truth, dtype=np.intp).ravel()
    a = np.atleast_2d(np.asarray(answers, dtype=np.intp))
    idx = np.atleast_2d(np.asarray(indices, dtype=np.intp))
    k = int(n_labels)
    if a.shape[1] != t.size:
        raise ValueError("answers must be (observers, n_cases) with n_cases = len(truth)")
    for arr in (t, a):
        if arr.size and (arr.min() < 0 or arr.max() >= k):
            raise ValueError("labels must be indices in range(n_labels)")
    n_obs = a.shape[0]
    iters, m = idx.shape
    cell = t[None, :] * k + a  # (observers, n_cases): truth/answer cell of each case
    keys = cell[:, idx]  # (observers, iterations, m)
    keys += (np.arange(n_obs * iters, dtype=np.intp) * (k * k)).reshape(n_obs, iters, 1)
    tables = np.bincount(keys.ravel(), minlength=n_obs * iters * k * k).reshape(n_obs, iters, k, k)
    po = np.trace(tables, axis1=2, axis2=3) / m
    pe = (tables.sum(axis=3) * tables.sum(axis=2)).sum(axis=2) / float(m) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = np.where(np.isclose(pe, 1.0), np.nan, (po - pe) / (1.0 - pe))
    return kappa.T
