"""The reader study: human observers and the model against the truth, by Cohen's κ (Krogue et al. 2020).

:func:`analyse` scores every observer (binary and six-class κ, paired bootstrap CIs), the margin,
the comparisons and the ROC-band check; inputs (:mod:`~readerstudy.analysis.reader_inputs`) and
outputs (:mod:`~readerstudy.analysis.reader_outputs`) are re-exported here. Plain NumPy; no Django.
Design: docs/architecture/design-statistics.md
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml.core.roc import roc_band
from ml.core.stats import CLASS_KEYS, FRACTURE_INDICES, bootstrap_indices, bootstrap_kappa
from readerstudy.analysis.reader_inputs import (
    CONDITIONS,
    GROUPS,
    MODEL,
    MODEL_CONDITION,
    PREDICTION_COLUMNS,
    PROBABILITY_COLUMNS,
    READER_PATTERN,
    READER_RULE,
    RESPONSE_COLUMNS,
    RESPONSE_OPTIONAL_COLUMNS,
    TRAINING_PATTERN,
    TRAINING_RULE,
    Predictions,
    ReaderDataError,
    Responses,
    read_predictions,
    read_responses,
)
from readerstudy.analysis.reader_outputs import DIFFERENCE_COLUMNS, OBSERVER_COLUMNS, write_csvs
from readerstudy.analysis.synthetic import synthetic_study
from readerstudy.analysis.verdicts import (
    BORDERLINE_TOLERANCE,
    DEFAULT_ESTIMATE,
    ESTIMATES,
    binary_verdict,
    borderline,
    check_estimate,
    group_roc_points,
    noninferiority_margin,
    verdict,
)

__all__ = [
    "BORDERLINE_TOLERANCE",
    "CONDITIONS",
    "DEFAULT_ESTIMATE",
    "DIFFERENCE_COLUMNS",
    "ESTIMATES",
    "GROUPS",
    "MODEL",
    "MODEL_CONDITION",
    "MULTICLASS_NOTE",
    "OBSERVER_COLUMNS",
    "PREDICTION_COLUMNS",
    "PROBABILITY_COLUMNS",
    "READER_PATTERN",
    "READER_RULE",
    "RESPONSE_COLUMNS",
    "RESPONSE_OPTIONAL_COLUMNS",
    "TASKS",
    "TRAINING_PATTERN",
    "TRAINING_RULE",
    "Predictions",
    "ReaderDataError",
    "Responses",
    "analyse",
    "binary_verdict",
    "bootstrap_kappa",
    "borderline",
    "read_predictions",
    "read_responses",
    "synthetic_study",
    "verdict",
    "write_csvs",
]

TASKS: tuple[str, ...] = ("binary", "multiclass")
#: Label of a group's row in the observers table (``observer`` = the group name).
GROUP_MEAN = "group_mean"
MULTICLASS_NOTE = (
    "multiclass sensitivity and specificity are macro averages of the one-vs-rest figures over the six "
    "classes; a class absent from the truth has no sensitivity and is left out of that average"
)

# --------------------------------------------------------------------------- analysis


def _num(value: Any) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _summary(samples: NDArray[np.float64], level: float) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high) over the iterations where the figure is defined."""
    good = samples[np.isfinite(samples)]
    if good.size == 0:
        return math.nan, math.nan, math.nan
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(good, [tail, 100.0 - tail])
    return float(good.mean()), float(low), float(high)


def _point_metrics(truth: NDArray[np.intp], answers: NDArray[np.intp], k: int) -> dict[str, NDArray[np.float64]]:
    """Accuracy, sensitivity, specificity per observer on all cases (k = 2: binary; else macro OvR)."""
    acc = (answers == truth[None, :]).mean(axis=1)
    classes = [1] if k == 2 else list(range(k))
    sens, spec = [], []
    with np.errstate(invalid="ignore", divide="ignore"):
        for c in classes:
            pos = truth == c
            hit = answers == c
            sens.append((hit & pos).sum(axis=1) / pos.sum() if pos.any() else np.full(answers.shape[0], np.nan))
            spec.append((~hit & ~pos).sum(axis=1) / (~pos).sum() if (~pos).any() else np.full(answers.shape[0], np.nan))
    return {
        "accuracy": acc,
        "sensitivity": _nanmean_rows(np.array(sens)),
        "specificity": _nanmean_rows(np.array(spec)),
    }


def _nanmean_rows(values: NDArray[np.float64]) -> NDArray[np.float64]:
    ok = np.isfinite(values)
    counts = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.where(ok, values, 0.0).sum(axis=0) / counts, np.nan)


def _check_against_predictions(resp: Responses, pred: Predictions) -> NDArray[np.intp]:
    """Row of ``pred`` for each case of ``resp.cases()``; cross-file disagreements are errors."""
    where = {case: i for i, case in enumerate(pred.case.tolist())}
    first_row: dict[str, int] = {}
    for i, case in enumerate(resp.case.tolist()):
        first_row.setdefault(case, i)
    out = []
    for case, i in first_row.items():
        if case not in where:
            raise ReaderDataError(resp.source, int(resp.row[i]), "case", f"case {case!r} is not in {pred.source}")
        j = where[case]
        if resp.truth[i] != pred.truth[j]:
            raise ReaderDataError(
                resp.source,
                int(resp.row[i]),
                "truth",
                f"case {case!r} has truth {CLASS_KEYS[resp.truth[i]]!r} here but "
                f"{CLASS_KEYS[pred.truth[j]]!r} in {pred.source} row {pred.row[j]}",
            )
        if resp.patient[i] != pred.patient[j]:
            raise ReaderDataError(
                resp.source,
                int(resp.row[i]),
                "patient",
                f"case {case!r} has patient {resp.patient[i]!r} here but {pred.patient[j]!r} in {pred.source} "
                f"row {pred.row[j]}",
            )
        out.append(j)
    return np.array(out, dtype=np.intp)


@dataclass(frozen=True)
class _Observer:
    name: str
    group: str
    training: str
    condition: str


def _observers(resp: Responses, case_pos: Mapping[str, int]) -> tuple[list[_Observer], NDArray[np.intp]]:
    """Model first, then each condition's readers (experts, then residents, in file order), with answers."""
    info: dict[str, tuple[str, str]] = {}
    for reader, group, training in zip(resp.reader.tolist(), resp.group.tolist(), resp.training.tolist(), strict=True):
        info.setdefault(reader, (group, training))
    readers = sorted(info, key=lambda r: GROUPS.index(info[r][0]))  # stable: file order within a group
    observers = [_Observer(MODEL, MODEL, MODEL, MODEL_CONDITION)]
    slot = {}
    for condition in CONDITIONS:
        for reader in readers:
            slot[(reader, condition)] = len(observers)
            observers.append(_Observer(reader, info[reader][0], info[reader][1], condition))
    answers = np.zeros((len(observers), len(case_pos)), dtype=np.intp)
    rows = np.fromiter(
        (slot[(r, c)] for r, c in zip(resp.reader.tolist(), resp.condition.tolist(), strict=True)),
        dtype=np.intp,
        count=resp.row.size,
    )
    cols = np.fromiter((case_pos[c] for c in resp.case.tolist()), dtype=np.intp, count=resp.row.size)
    answers[rows, cols] = resp.answer
    return observers, answers


def analyse(
    responses: Any,
    predictions: Any,
    *,
    iterations: int = 2000,
    seed: int | np.random.Generator | None = 0,
    margin: float | None = None,
    level: float = 0.95,
    estimate: str = DEFAULT_ESTIMATE,
) -> dict[str, Any]:
    """The reader study's κ table, noninferiority margin, comparisons and ROC-band check.

    ``responses``/``predictions`` are :class:`Responses`/:class:`Predictions` or anything
    :func:`read_responses`/:func:`read_predictions` accept. Returns a JSON-safe dict (NaN as None):

    - ``observers``: rows with :data:`OBSERVER_COLUMNS`, per task: the model, each reader under each
      condition, and each group under each condition (``observer`` = group name, ``training`` =
      :data:`GROUP_MEAN`). κ on all cases with its bootstrap CI and, in the JSON only,
      ``kappa_boot_mean``; accuracy, sensitivity and specificity on all cases (multiclass: macro
      one-vs-rest, :data:`MULTICLASS_NOTE`).
    - ``margin``: ``{"value", "source" ("pairs" or "argument"), "empirical", "pairs"}``; each pair
      (same group, same training, same condition) is ``{"task", "condition", "group", "training",
      "a", "b", "kappa_a", "kappa_b", "difference"}``.
    - ``comparisons``: rows with :data:`DIFFERENCE_COLUMNS` (difference = a − b; ``estimate`` on
      all cases, ``boot_mean``/CI over the paired bootstrap; ``verdict`` with the paper's ROC-band
      rule for binary model-vs-group rows), and, in the JSON only, ``kappa_verdict`` (the verdict
      from the CI alone) and ``borderline`` (the thresholds within
      :data:`~readerstudy.analysis.verdicts.BORDERLINE_TOLERANCE` of ``ci_low``; empty when clear).
    - ``roc_check``: binary only, per condition and group: the group's mean sensitivity and
      specificity, the model's lower band at that FPR, ``below_band``, ``kappa_verdict`` (model vs
      that group from the κ CI alone), ``model_superior`` (κ CI above 0 and point below the band,
      the paper's rule) and ``verdict`` (the comparison's, as in the CSV).
    - ``estimate``: the point estimate the tables show (:data:`~readerstudy.analysis.verdicts.ESTIMATES`).
    - ``borderline``: ``{"tolerance", "seed", "iterations", "comparisons"}``, the borderline
      comparisons by (task, a, condition_a, b, condition_b, verdict, ci_low, thresholds).
    - ``multiclass_note``, ``cases``, ``n_cases``, ``n_patients``, ``iterations``, ``seed``, ``level``.

    The bootstrap draws ``bootstrap_indices(patients, iterations=iterations, seed=seed)`` with
    cases in order of first appearance in the responses, so a seed reproduces the result.
    """
    resp = responses if isinstance(responses, Responses) else read_responses(responses)
    pred = predictions if isinstance(predictions, Predictions) else read_predictions(predictions)
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    check_estimate(estimate)
    cases = resp.cases()
    pred_rows = _check_against_predictions(resp, pred)
    case_pos = {c: i for i, c in enumerate(cases)}
    patients = pred.patient[pred_rows]
    truth = pred.truth[pred_rows]
    probs = pred.probabilities[pred_rows]
    p_fracture = probs[:, list(FRACTURE_INDICES)].sum(axis=1)

    observers, answers_mc = _observers(resp, case_pos)
    answers_mc[0] = np.argmax(probs, axis=1)
    answers_bin = np.isin(answers_mc, FRACTURE_INDICES).astype(np.intp)
    answers_bin[0] = (p_fracture >= 0.5).astype(np.intp)
    truth_bin = np.isin(truth, FRACTURE_INDICES).astype(np.intp)
    tasks = {"binary": (truth_bin, answers_bin, 2), "multiclass": (truth, answers_mc, len(CLASS_KEYS))}

    idx = bootstrap_indices(patients, iterations=iterations, seed=seed)
    all_cases = np.arange(len(cases))[None, :]
    members: dict[tuple[str, str], list[int]] = {}
    for i, obs in enumerate(observers[1:], start=1):
        members.setdefault((obs.group, obs.condition), []).append(i)

    point: dict[str, NDArray[np.float64]] = {}
    boot: dict[str, NDArray[np.float64]] = {}
    metrics: dict[str, dict[str, NDArray[np.float64]]] = {}
    series: dict[str, dict[tuple[str, str], tuple[float, NDArray[np.float64]]]] = {}
    for task, (t, a, k) in tasks.items():
        point[task] = bootstrap_kappa(t, a, all_cases, n_labels=k)[0]
        boot[task] = bootstrap_kappa(t, a, idx, n_labels=k)
        metrics[task] = _point_metrics(t, a, k)
        s = {(MODEL, MODEL_CONDITION): (float(point[task][0]), boot[task][:, 0])}
        for key, ids in members.items():
            s[key] = (float(point[task][ids].mean()), boot[task][:, ids].mean(axis=1))
        series[task] = s

    margin_info = noninferiority_margin(observers, point, margin)
    value = margin_info["value"]
    # The ROC-band check comes first: the binary model-vs-group verdicts depend on it.
    try:
        band = roc_band(truth_bin.astype(bool), p_fracture, patients, seed=None, indices=idx, level=level)
    except ValueError:  # no sample with both fractures and non-fractures
        band = None
    points = group_roc_points(members, metrics["binary"], band, GROUPS, CONDITIONS)
    comparisons = []
    for task in TASKS:
        for a_key, b_key in _comparison_pairs():
            if a_key not in series[task] or b_key not in series[task]:
                continue  # a group with no readers
            (pa, sa), (pb, sb) = series[task][a_key], series[task][b_key]
            mean, low, high = _summary(sa - sb, level)
            plain = verdict(low, value)
            final = plain
            if task == "binary" and a_key[0] == MODEL and b_key[0] in GROUPS:
                final = binary_verdict(low, value, points.get(b_key, {}).get("below_band"))
            comparisons.append(
                {
                    "task": task,
                    "a": a_key[0],
                    "condition_a": a_key[1],
                    "b": b_key[0],
                    "condition_b": b_key[1],
                    "estimate": _num(pa - pb),
                    "boot_mean": _num(mean),
                    "ci_low": _num(low),
                    "ci_high": _num(high),
                    "margin": _num(value),
                    "verdict": final,
                    "kappa_verdict": plain,
                    "borderline": borderline(_num(low), value),
                }
            )

    rows = _observer_rows(observers, members, point, boot, metrics, level)
    final_of = {(c["b"], c["condition_b"]): c for c in comparisons if c["task"] == "binary" and c["a"] == MODEL}
    roc_check = []
    for key, row in points.items():
        comparison = final_of.get(key, {})
        kappa_verdict = comparison.get("kappa_verdict")
        roc_check.append(
            {
                **row,
                "kappa_verdict": kappa_verdict,
                "model_superior": bool(kappa_verdict == "superior" and row["below_band"]),
                "verdict": comparison.get("verdict"),
            }
        )
    seed_value = seed if isinstance(seed, int) or seed is None else None
    return {
        "observers": rows,
        "margin": margin_info,
        "comparisons": comparisons,
        "roc_check": roc_check,
        "estimate": estimate,
        "borderline": {
            "tolerance": BORDERLINE_TOLERANCE,
            "seed": seed_value,
            "iterations": int(idx.shape[0]),
            "comparisons": [
                {
                    **{k: c[k] for k in ("task", "a", "condition_a", "b", "condition_b", "verdict", "ci_low")},
                    "thresholds": c["borderline"],
                }
                for c in comparisons
                if c["borderline"]
            ],
        },
        "multiclass_note": MULTICLASS_NOTE,
        "cases": cases,
        "n_cases": len(cases),
        "n_patients": int(idx.shape[1]),
        "iterations": int(idx.shape[0]),
        "seed": seed_value,
        "level": level,
    }


def _comparison_pairs() -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """(a, b) series keys of the comparisons, in report order; difference = a − b."""
    model = (MODEL, MODEL_CONDITION)
    pairs = []
    for c in CONDITIONS:
        pairs += [(model, ("expert", c)), (model, ("resident", c)), (("expert", c), ("resident", c))]
    for g in GROUPS:
        pairs += [((g, "full_quality"), (g, "model_quality")), ((g, "model_aided"), (g, "full_quality"))]
    pairs.append((("resident", "model_aided"), ("expert", "full_quality")))
    return pairs


def _observer_rows(
    observers: Sequence[_Observer],
    members: Mapping[tuple[str, str], list[int]],
    point: Mapping[str, NDArray[np.float64]],
    boot: Mapping[str, NDArray[np.float64]],
    metrics: Mapping[str, Mapping[str, NDArray[np.float64]]],
    level: float,
) -> list[dict[str, Any]]:
    """Per task: the model, then per condition each group's readers followed by the group's mean row."""
    entries: list[tuple[str, str, str, str, list[int]]] = [(MODEL, MODEL, MODEL, MODEL_CONDITION, [0])]
    for condition in CONDITIONS:
        for group in GROUPS:
            ids = members.get((group, condition), [])
            entries += [(observers[i].name, group, observers[i].training, condition, [i]) for i in ids]
            if ids:
                entries.append((group, group, GROUP_MEAN, condition, ids))
    rows = []
    for task in TASKS:
        for name, group, training, condition, ids in entries:
            mean, low, high = _summary(boot[task][:, ids].mean(axis=1), level)
            rows.append(
                {
                    "observer": name,
                    "group": group,
                    "training": training,
                    "condition": condition,
                    "task": task,
                    "kappa": _num(point[task][ids].mean()),
                    "kappa_ci_low": _num(low),
                    "kappa_ci_high": _num(high),
                    **{key: _num(metrics[task][key][ids].mean()) for key in ("accuracy", "sensitivity", "specificity")},
                    "kappa_boot_mean": _num(mean),  # JSON only: observers.csv keeps OBSERVER_COLUMNS
                }
            )
    return rows
