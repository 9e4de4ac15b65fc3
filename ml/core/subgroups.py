"""The model's figures by subgroup of the test hips: sex, age band, view, scanner, modality and side.

Each subgroup gets the paper's patient bootstrap of its own, the figures computed as
``ml.core.stats.bootstrap_metrics`` does (only the five needed: one AUC, not seven); one of fewer
than :data:`MIN_HIPS` hips shows its count and "too few" instead of figures.
Definitions: docs/research/model-audit.md
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.core.roc import bootstrap_auc, roc_auc
from ml.core.stats import (
    FRACTURE_INDICES,
    _rate,
    _safe_point,
    _summary,
    binary_metrics,
    bootstrap_indices,
    class_indices,
    fracture_probability,
    multiclass_accuracy,
    multiclass_prediction,
)

__all__ = [
    "AGE_BANDS",
    "ATTRIBUTES",
    "FIGURES",
    "MIN_HIPS",
    "TOO_FEW",
    "UNKNOWN",
    "age_band",
    "subgroup_figures",
    "subgroup_report",
    "subgroup_rows",
    "view_name",
]

#: The attributes of metrics.json's ``subgroups``, in the order of the tables.
ATTRIBUTES: tuple[str, ...] = ("sex", "age_band", "view", "manufacturer", "modality", "side")
ATTRIBUTE_NAMES: dict[str, str] = {
    "sex": "Sex",
    "age_band": "Age band",
    "view": "View",
    "manufacturer": "Scanner (manufacturer and model)",
    "modality": "Modality",
    "side": "Side",
}
#: The figures of each subgroup: (key, section of bootstrap_metrics, metric name).
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("binary_accuracy", "binary", "accuracy"),
    ("binary_sensitivity", "binary", "sensitivity"),
    ("binary_specificity", "binary", "specificity"),
    ("binary_auc", "binary", "auc"),
    ("multiclass_accuracy", "multiclass", "accuracy"),
)
MIN_HIPS = 10
TOO_FEW = "too few"
UNKNOWN = "unknown"
AGE_BANDS: tuple[str, ...] = ("<65", "65–80", ">80")
# ViewPosition values and the canonical tokens ingest finds in descriptions -> the view's name.
_VIEWS = {
    "AP": "AP",
    "PA": "AP",
    "FROG": "frog-leg lateral",
    "XTABLE": "cross-table lateral",
    "LAT": "other lateral",
    "RL": "other lateral",
    "LL": "other lateral",
}


def age_band(age_years: int | None) -> str:
    """<65, 65–80 (both included) or >80; ``unknown`` without an age."""
    if age_years is None:
        return UNKNOWN
    if age_years < 65:
        return AGE_BANDS[0]
    return AGE_BANDS[1] if age_years <= 80 else AGE_BANDS[2]


def view_name(view_position: str) -> str:
    """The view of a stored ``Radiograph.view_position``: AP (or PA), frog-leg lateral,
    cross-table lateral, other lateral (LAT, RL, LL), another token as stored, or ``unknown``."""
    token = (view_position or "").strip().upper()
    if not token:
        return UNKNOWN
    return _VIEWS.get(token, token)


def _figure(summary: Mapping[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for field in ("estimate", "mean", "ci_low", "ci_high"):
        value = float(summary[field])
        out[field] = value if np.isfinite(value) else None
    return out


def subgroup_figures(
    truth: NDArray[np.intp], probs: NDArray[np.float64], pids: NDArray[Any], *, iterations: int, seed: int, level: float
) -> dict[str, dict[str, float | None]]:
    """The :data:`FIGURES` of one subgroup with its own patient bootstrap, vectorised over the
    iterations exactly as ``bootstrap_metrics`` computes them (the same samples for a seed)."""
    idx = bootstrap_indices(pids, iterations=iterations, seed=seed)
    truth_bin = np.isin(truth, FRACTURE_INDICES)
    p_frac = fracture_probability(probs)
    pred_bin = p_frac >= 0.5
    pred_mc = multiclass_prediction(probs)
    tb, pb = truth_bin[idx], pred_bin[idx]
    point = binary_metrics(truth_bin, pred_bin)
    auc = _safe_point(roc_auc, truth_bin, p_frac)
    summaries = {
        "binary_accuracy": _summary(point["accuracy"], (tb == pb).mean(axis=1), level),
        "binary_sensitivity": _summary(point["sensitivity"], _rate(pb, tb), level),
        "binary_specificity": _summary(point["specificity"], _rate(~pb, ~tb), level),
        "binary_auc": _summary(auc, bootstrap_auc(truth_bin, p_frac, idx), level),
        "multiclass_accuracy": _summary(
            multiclass_accuracy(truth, pred_mc), (truth[idx] == pred_mc[idx]).mean(axis=1), level
        ),
    }
    return {key: _figure(summary) for key, summary in summaries.items()}


def subgroup_report(
    y_true: ArrayLike,
    probabilities: ArrayLike,
    patient_ids: ArrayLike,
    attributes: Mapping[str, Sequence[str]],
    *,
    iterations: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, dict[str, Any]]]:
    """metrics.json's ``subgroups``: ``{attribute: {value: {...}}}`` over :data:`ATTRIBUTES`.

    ``attributes`` gives each hip's value of each attribute (in hip order). Each subgroup holds
    ``hips`` and ``patients``; with at least :data:`MIN_HIPS` hips also each of :data:`FIGURES`
    as ``{"estimate", "mean", "ci_low", "ci_high"}`` from its own patient bootstrap, else
    ``"note": "too few"``. Values are sorted, ``unknown`` last."""
    truth = class_indices(y_true)
    probs = np.asarray(probabilities, dtype=float)
    pids = np.asarray(patient_ids).ravel()
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for attribute in ATTRIBUTES:
        values = np.asarray(list(attributes[attribute]), dtype=object)
        if values.size != truth.size:
            raise ValueError(f"{attribute}: one value per hip is needed")
        groups: dict[str, dict[str, Any]] = {}
        for value in sorted(set(values.tolist()), key=lambda v: (v == UNKNOWN, str(v))):
            mask = values == value
            entry: dict[str, Any] = {"hips": int(mask.sum()), "patients": int(np.unique(pids[mask]).size)}
            if entry["hips"] < MIN_HIPS:
                entry["note"] = TOO_FEW
            else:
                figures = subgroup_figures(
                    truth[mask], probs[mask], pids[mask], iterations=iterations, seed=seed, level=level
                )
                entry.update(figures)
            groups[str(value)] = entry
        out[attribute] = groups
    return out


def subgroup_rows(subgroups: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One row per subgroup and figure (long format for subgroups.csv): attribute, value, hips,
    patients, figure, estimate, mean, ci_low, ci_high (figures empty and note "too few" when
    the subgroup is too small)."""
    rows: list[dict[str, Any]] = []
    for attribute, groups in subgroups.items():
        for value, entry in groups.items():
            base = {"attribute": attribute, "value": value, "hips": entry["hips"], "patients": entry["patients"]}
            if entry.get("note"):
                rows.append({**base, "figure": "", "note": entry["note"]})
                continue
            for key, _, _ in FIGURES:
                rows.append({**base, "figure": key, **entry[key], "note": ""})
    return rows
