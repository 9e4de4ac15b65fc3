"""The reader study: human observers and the model against the truth, by Cohen's κ (Krogue et al. 2020).

The paper ("Statistical Analysis") scores every observer by Cohen's unweighted κ against the
ground truth, binary (fracture or not) and six-class, and compares the model with the pooled
experts and residents, and the groups with each other, by the difference in κ with a 95%
bootstrap CI (2000 iterations). A difference is *superior* when its CI lies above 0 and
*noninferior* when its CI stays above −margin, the margin being the mean absolute κ difference
between two readers of the same group and training (0.103 in the paper). For the binary task a
model-vs-group *superior* also needs that group's (1 − specificity, sensitivity) point below the
lower 95% band of the model's ROC curve; otherwise the verdict is *noninferior*.

Inputs (see :func:`read_responses` and :func:`read_predictions`):

- ``responses.csv``: ``reader, group, training, condition, case, patient, truth, answer``, one
  row per reader, condition and case. ``condition`` is one of :data:`CONDITIONS`, ``group`` one
  of :data:`GROUPS`, ``truth``/``answer`` class keys (:data:`ml.core.stats.CLASS_KEYS`), ``reader``
  a code like ``R01`` (:data:`READER_PATTERN`) and ``training`` a lower-case key
  (:data:`TRAINING_PATTERN`, the site's rule), so no name can begin a spreadsheet formula. Every
  reader answers every case under every condition, so all observers are scored on the same
  cases (paired).
- ``model_predictions.csv``: ``case, patient, truth, p_normal … p_arthroplasty``. The model's
  six-class answer is the argmax; its binary answer is fracture when P(fracture) ≥ 0.5. The
  model is one observer, the same under every condition (its condition is reported as
  :data:`MODEL_CONDITION`). Cases in the predictions but not in the responses are ignored.

Bad input raises :class:`ReaderDataError` naming the file, the row (header = row 1, first data
row = row 2) and the column, so the person who exported the file can fix it.

Statistics (:func:`analyse`):

- κ of every observer, binary (2 categories) and six-class (all six keys as the label set, even
  when a class is absent from a sample, so κ does not depend on which classes were drawn).
- Bootstrap iteration (the paper's): keep one random case per patient, then draw that many cases
  with replacement (:func:`ml.core.stats.bootstrap_indices`). Every observer is scored on the
  same draw, so differences are paired. CI = percentiles ((1 − level)/2, (1 + level)/2).
- A group's κ is the mean of its members' κ (per iteration for the CI); its sensitivity and
  specificity are the means of its members' (equal to the pooled figures, since every member
  reads every case).
- All observers' κ for all iterations come from one ``np.bincount`` over
  (observer, iteration, truth, answer) keys (:func:`bootstrap_kappa`), not a Python loop:
  the paper-size study (31 observers, 2000 iterations, both tasks) takes well under a second.
- Margin pairs are two readers of the same ``group`` **and** the same ``training`` (the paper's
  pairs: the two orthopaedic attendings, the two orthopaedic residents, ...; a training named
  ``orthopedics`` in both groups never pairs an attending with a resident), for each condition
  and each task, on all cases; the margin is the mean of their |κ_i − κ_j|.
- Verdicts, the ROC-band rule, borderline verdicts (CI lower bound within 0.01 of 0 or −margin)
  and the point estimate the tables show (``estimate``: the bootstrap mean, the paper's, or the
  all-case figure) live in :mod:`readerstudy.analysis.verdicts`, re-exported here.

Multiclass sensitivity and specificity in the observers table are **macro averages** of the
one-vs-rest figures over the six classes (a class absent from the truth has no sensitivity
and is left out of that average); see :data:`MULTICLASS_NOTE`, which is also in ``report.json``.

Plain NumPy and the standard library; no Django, no pandas (a pandas DataFrame is accepted
as input by reading its columns).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from common import csvfile
from ml.core.roc import roc_band
from ml.core.stats import CLASS_KEYS, FRACTURE_INDICES, bootstrap_indices, bootstrap_kappa
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
    "RESPONSE_COLUMNS",
    "TASKS",
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

CONDITIONS: tuple[str, ...] = ("model_quality", "full_quality", "model_aided")
GROUPS: tuple[str, ...] = ("expert", "resident")
TASKS: tuple[str, ...] = ("binary", "multiclass")
MODEL = "model"
MODEL_CONDITION = "all"  # the model's answers do not depend on the reading condition
RESPONSE_COLUMNS: tuple[str, ...] = ("reader", "group", "training", "condition", "case", "patient", "truth", "answer")
PROBABILITY_COLUMNS: tuple[str, ...] = tuple(f"p_{key}" for key in CLASS_KEYS)
PREDICTION_COLUMNS: tuple[str, ...] = ("case", "patient", "truth", *PROBABILITY_COLUMNS)
OBSERVER_COLUMNS: tuple[str, ...] = (
    "observer",
    "group",
    "training",
    "condition",
    "task",
    "kappa",
    "kappa_ci_low",
    "kappa_ci_high",
    "accuracy",
    "sensitivity",
    "specificity",
)
DIFFERENCE_COLUMNS: tuple[str, ...] = (
    "task",
    "a",
    "condition_a",
    "b",
    "condition_b",
    "estimate",
    "boot_mean",
    "ci_low",
    "ci_high",
    "margin",
    "verdict",
)
#: Label of a group's row in the observers table (``observer`` = the group name).
GROUP_MEAN = "group_mean"
#: A training, as the site accepts it (``readerstudy.models.training_validator`` is built on it):
#: a lower-case key such as ``orthopedics_attending``.
TRAINING_PATTERN = r"^[a-z][a-z0-9_]{1,49}$"
TRAINING_RULE = "a lower-case key like orthopedics_attending (a letter, then letters, digits or _; 2 to 50)"
#: A reader: a letter or digit, then letters, digits, ``.``, ``-`` or ``_``, at most 16 characters (the
#: site's reader codes, R01, R02, ..., and their field's length). Not the model's name nor a group's.
READER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$"
READER_RULE = "a code like R01 (a letter or digit, then letters, digits, '.', '-' or '_'; at most 16)"
MULTICLASS_NOTE = (
    "multiclass sensitivity and specificity are macro averages of the one-vs-rest figures over the six "
    "classes; a class absent from the truth has no sensitivity and is left out of that average"
)
_PROBABILITY_TOLERANCE = 0.01  # rows of probabilities must sum to 1 within this (CSV rounding)


# --------------------------------------------------------------------------- errors and input tables


class ReaderDataError(ValueError):
    """Bad reader-study input; ``file``, ``row`` (header = 1) and ``column`` say where."""

    def __init__(self, file: str, row: int, column: str, detail: str) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.detail = detail
        super().__init__(f"{file}, row {row}, column {column!r}: {detail}")


def _cell(value: Any) -> str:
    """A cell as stripped text; None and NaN (pandas' empty cell) are empty."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value).strip()


def _table(source: Any, default_name: str) -> tuple[str, list[str], list[tuple[int, dict[str, str]]]]:
    """(file name, header, [(row number, {column: text})]) from a path, a DataFrame or row mappings.

    Row numbers count the header as row 1, as a spreadsheet does; blank lines keep their number.
    """
    if isinstance(source, str | os.PathLike):
        name = str(source)
        with open(source, newline="", encoding="utf-8-sig") as fh:
            lines = csv.reader(fh)
            header = [h.strip() for h in next(lines, [])]
            rows = [
                (number, {h: _cell(v) for h, v in zip(header, values, strict=False)})
                for number, values in enumerate(lines, start=2)
                if any(v.strip() for v in values)
            ]
        return name, header, rows
    if hasattr(source, "columns") and hasattr(source, "__getitem__") and not isinstance(source, Mapping):
        header = [str(c) for c in source.columns]
        columns = [list(source[c]) for c in source.columns]
        rows = [
            (i + 2, {h: _cell(v) for h, v in zip(header, values, strict=True)})
            for i, values in enumerate(zip(*columns, strict=True))
        ]
        return default_name, header, rows
    records = list(source)
    header: list[str] = []
    for record in records:
        header.extend(str(k) for k in record if str(k) not in header)
    rows = [(i + 2, {str(k): _cell(v) for k, v in record.items()}) for i, record in enumerate(records)]
    return default_name, header, rows


def _require_columns(name: str, header: Sequence[str], columns: Sequence[str]) -> None:
    for column in columns:
        if column not in header:
            raise ReaderDataError(name, 1, column, f"missing column {column!r}; the header must have {list(columns)}")


def _class_index(name: str, number: int, column: str, value: str, what: str) -> int:
    if not value:
        raise ReaderDataError(name, number, column, what)
    try:
        return CLASS_KEYS.index(value)
    except ValueError:
        raise ReaderDataError(name, number, column, f"unknown class key {value!r}; expected one of {list(CLASS_KEYS)}")


# --------------------------------------------------------------------------- validated inputs


@dataclass(frozen=True)
class Responses:
    """Validated ``responses.csv``: one entry per data row; ``truth``/``answer`` index CLASS_KEYS."""

    source: str
    row: NDArray[np.intp]  # file row number of each entry (header = 1)
    reader: NDArray[np.object_]
    group: NDArray[np.object_]
    training: NDArray[np.object_]
    condition: NDArray[np.object_]
    case: NDArray[np.object_]
    patient: NDArray[np.object_]
    truth: NDArray[np.intp]
    answer: NDArray[np.intp]

    def cases(self) -> list[str]:
        """Case ids in order of first appearance (the order used by :func:`analyse`)."""
        return list(dict.fromkeys(self.case.tolist()))


@dataclass(frozen=True)
class Predictions:
    """Validated ``model_predictions.csv``: one entry per case; probabilities in CLASS_KEYS order."""

    source: str
    row: NDArray[np.intp]
    case: NDArray[np.object_]
    patient: NDArray[np.object_]
    truth: NDArray[np.intp]
    probabilities: NDArray[np.float64]


def read_responses(source: Any, *, name: str = "responses.csv") -> Responses:
    """Read and validate the readers' answers from a CSV path, a DataFrame or an iterable of row dicts.

    ``name`` names the file in error messages when ``source`` is not a path. Checks: the columns,
    non-empty ids, reader names and trainings by the site's rules (:data:`READER_PATTERN`,
    :data:`TRAINING_PATTERN`), known groups, conditions and class keys, a truth for every row, one truth and
    one patient per case, one group and training per reader, no duplicate (reader, condition, case),
    and every reader answering every case under every condition.
    """
    name, header, rows = _table(source, name)
    _require_columns(name, header, RESPONSE_COLUMNS)
    if not rows:
        raise ReaderDataError(name, 2, "reader", "no data rows")
    out: dict[str, list[Any]] = {c: [] for c in RESPONSE_COLUMNS}
    numbers: list[int] = []
    case_first: dict[str, tuple[int, str, str]] = {}
    reader_first: dict[str, tuple[int, str, str]] = {}
    seen: dict[tuple[str, str, str], int] = {}
    for number, rec in rows:
        reader, case, patient = rec.get("reader", ""), rec.get("case", ""), rec.get("patient", "")
        group, training, condition = rec.get("group", ""), rec.get("training", ""), rec.get("condition", "")
        for column, value in (("reader", reader), ("case", case), ("patient", patient), ("training", training)):
            if not value:
                raise ReaderDataError(name, number, column, f"empty {column}")
        _check_names(name, number, reader, training)
        if group not in GROUPS:
            raise ReaderDataError(name, number, "group", f"unknown group {group!r}; expected one of {list(GROUPS)}")
        if condition not in CONDITIONS:
            raise ReaderDataError(
                name, number, "condition", f"unknown condition {condition!r}; expected one of {list(CONDITIONS)}"
            )
        truth = _class_index(name, number, "truth", rec.get("truth", ""), f"case {case!r} has no truth")
        answer = _class_index(
            name, number, "answer", rec.get("answer", ""), f"reader {reader!r} has no answer for case {case!r}"
        )
        first = case_first.setdefault(case, (number, rec["truth"], patient))
        if first[1] != rec["truth"]:
            raise ReaderDataError(
                name,
                number,
                "truth",
                f"case {case!r} has truth {rec['truth']!r} here but {first[1]!r} in row {first[0]}",
            )
        if first[2] != patient:
            raise ReaderDataError(
                name,
                number,
                "patient",
                f"case {case!r} has patient {patient!r} here but {first[2]!r} in row {first[0]}",
            )
        known = reader_first.setdefault(reader, (number, group, training))
        if known[1] != group:
            raise ReaderDataError(
                name,
                number,
                "group",
                f"reader {reader!r} is in group {group!r} here but {known[1]!r} in row {known[0]}",
            )
        if known[2] != training:
            raise ReaderDataError(
                name,
                number,
                "training",
                f"reader {reader!r} has training {training!r} here but {known[2]!r} in row {known[0]}",
            )
        key = (reader, condition, case)
        if key in seen:
            raise ReaderDataError(
                name,
                number,
                "case",
                f"reader {reader!r} answered case {case!r} under {condition} twice (row {seen[key]})",
            )
        seen[key] = number
        values = (reader, group, training, condition, case, patient, truth, answer)
        for column, value in zip(RESPONSE_COLUMNS, values, strict=True):
            out[column].append(value)
        numbers.append(number)
    _check_complete(name, seen, list(reader_first), list(case_first), case_first)
    obj = {c: np.array(out[c], dtype=object) for c in RESPONSE_COLUMNS[:6]}
    return Responses(
        source=name,
        row=np.array(numbers, dtype=np.intp),
        truth=np.array(out["truth"], dtype=np.intp),
        answer=np.array(out["answer"], dtype=np.intp),
        **obj,
    )


def _check_names(name: str, number: int, reader: str, training: str) -> None:
    """Reader and training names as the site accepts them: they are copied into observers.csv, the
    HTML and the PDF, so an outside file cannot bring ``=HYPERLINK(...)`` or markup in through them."""
    if re.fullmatch(READER_PATTERN, reader) is None:
        raise ReaderDataError(name, number, "reader", f"reader {reader!r} is not {READER_RULE}")
    if reader in (MODEL, *GROUPS):
        raise ReaderDataError(
            name, number, "reader", f"reader {reader!r}: {[MODEL, *GROUPS]} name the model and the groups"
        )
    if re.fullmatch(TRAINING_PATTERN, training) is None:
        raise ReaderDataError(name, number, "training", f"training {training!r} is not {TRAINING_RULE}")


def _check_complete(
    name: str,
    seen: Mapping[tuple[str, str, str], int],
    readers: Sequence[str],
    cases: Sequence[str],
    case_first: Mapping[str, tuple[int, str, str]],
) -> None:
    """Every reader answers every case under every condition (the comparisons are paired)."""
    for reader in readers:
        for case in cases:
            rows = {c: seen.get((reader, c, case)) for c in CONDITIONS}
            for condition in CONDITIONS:
                if rows[condition] is not None:
                    continue
                other = next((r for r in rows.values() if r is not None), None)
                if other is not None:
                    raise ReaderDataError(
                        name,
                        other,
                        "condition",
                        f"reader {reader!r} answered case {case!r} here but has no answer for it under {condition}",
                    )
                raise ReaderDataError(
                    name,
                    case_first[case][0],
                    "reader",
                    f"reader {reader!r} has no answer for case {case!r} (under {condition} or any condition)",
                )


def read_predictions(source: Any, *, name: str = "model_predictions.csv") -> Predictions:
    """Read and validate the model's probabilities from a CSV path, a DataFrame or row dicts.

    Checks: the columns, one row per case, non-empty case and patient, a known truth class, and
    six probabilities in [0, 1] summing to 1 (within 0.01, for rounded CSVs).
    """
    name, header, rows = _table(source, name)
    _require_columns(name, header, PREDICTION_COLUMNS)
    if not rows:
        raise ReaderDataError(name, 2, "case", "no data rows")
    cases: list[str] = []
    patients: list[str] = []
    truths: list[int] = []
    probs: list[list[float]] = []
    numbers: list[int] = []
    first: dict[str, int] = {}
    for number, rec in rows:
        case, patient = rec.get("case", ""), rec.get("patient", "")
        if not case:
            raise ReaderDataError(name, number, "case", "empty case")
        if case in first:
            raise ReaderDataError(name, number, "case", f"case {case!r} appears twice (row {first[case]})")
        first[case] = number
        if not patient:
            raise ReaderDataError(name, number, "patient", "empty patient")
        truth = _class_index(name, number, "truth", rec.get("truth", ""), f"case {case!r} has no truth")
        p: list[float] = []
        for column in PROBABILITY_COLUMNS:
            text = rec.get(column, "")
            try:
                value = float(text)
            except ValueError:
                raise ReaderDataError(name, number, column, f"{text!r} is not a number")
            if not 0.0 <= value <= 1.0:  # also rejects NaN
                raise ReaderDataError(name, number, column, f"probability {text!r} is not in [0, 1]")
            p.append(value)
        if abs(sum(p) - 1.0) > _PROBABILITY_TOLERANCE:
            raise ReaderDataError(
                name,
                number,
                f"{PROBABILITY_COLUMNS[0]}..{PROBABILITY_COLUMNS[-1]}",
                f"probabilities sum to {sum(p):.4f}",
            )
        cases.append(case)
        patients.append(patient)
        truths.append(truth)
        probs.append(p)
        numbers.append(number)
    return Predictions(
        source=name,
        row=np.array(numbers, dtype=np.intp),
        case=np.array(cases, dtype=object),
        patient=np.array(patients, dtype=object),
        truth=np.array(truths, dtype=np.intp),
        probabilities=np.array(probs, dtype=float),
    )


# --------------------------------------------------------------------------- vectorised κ


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
    first_row = {}
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
    info = {}
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


# --------------------------------------------------------------------------- output


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def write_csvs(result: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``observers.csv``, ``kappa_differences.csv`` (exactly :data:`OBSERVER_COLUMNS` /
    :data:`DIFFERENCE_COLUMNS`, one header line, empty cell for undefined) and ``report.json``
    (the whole result, including ``multiclass_note``). Returns the paths by file name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for filename, key, columns in (
        ("observers.csv", "observers", OBSERVER_COLUMNS),
        ("kappa_differences.csv", "comparisons", DIFFERENCE_COLUMNS),
    ):
        path = out / filename
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csvfile.writer(fh)  # names from an outside file may begin with '=': quoted
            writer.writerow(columns)
            for row in result[key]:
                writer.writerow([_csv_value(row[c]) for c in columns])
        paths[filename] = path
    path = out / "report.json"
    path.write_text(json.dumps(dict(result), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    paths["report.json"] = path
    return paths


# --------------------------------------------------------------------------- synthetic study


def synthetic_study(
    *,
    n_cases: int = 100,
    n_patients: int = 90,
    seed: int = 0,
    readers: Iterable[tuple[str, str, str]] | None = None,
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """A made-up study shaped like the paper's: (response rows, prediction rows) as dicts of text.

    ``n_cases`` cases from ``n_patients`` patients (the first ``n_patients`` cases one per
    patient, the rest a second image of a random patient); ``readers`` are
    (reader, group, training), by default 5 experts (3 orthopedics, 2 radiology) and 5 residents
    (the same). Experts beat residents and both improve from model-quality to full-quality to
    model-aided images; the model is right about 90% of the time. For tests and benchmarks.
    """
    if not 0 < n_patients <= n_cases:
        raise ValueError("need 0 < n_patients <= n_cases")
    rng = np.random.default_rng(seed)
    if readers is None:
        readers = [
            *((f"e{i}", "expert", "orthopedics_attending" if i < 3 else "radiology_attending") for i in range(5)),
            *((f"r{i}", "resident", "orthopedics_resident" if i < 3 else "radiology_resident") for i in range(5)),
        ]
    patient = np.r_[np.arange(n_patients), rng.integers(0, n_patients, n_cases - n_patients)]
    truth = rng.choice(len(CLASS_KEYS), n_cases, p=[0.4, 0.15, 0.1, 0.15, 0.1, 0.1])
    logits = rng.normal(0.0, 1.0, (n_cases, len(CLASS_KEYS)))
    logits[np.arange(n_cases), truth] += 2.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predictions = [
        {
            "case": f"c{i:03d}",
            "patient": f"p{patient[i]:03d}",
            "truth": CLASS_KEYS[truth[i]],
            **{col: repr(float(probs[i, j])) for j, col in enumerate(PROBABILITY_COLUMNS)},
        }
        for i in range(n_cases)
    ]
    skill = {"expert": (0.80, 0.87, 0.90), "resident": (0.62, 0.70, 0.82)}
    responses = []
    for reader, group, training in readers:
        own = rng.normal(0.0, 0.03)
        for condition, base in zip(CONDITIONS, skill[group], strict=True):
            right = rng.random(n_cases) < min(base + own, 0.99)
            wrong = (truth + rng.integers(1, len(CLASS_KEYS), n_cases)) % len(CLASS_KEYS)
            answer = np.where(right, truth, wrong)
            responses += [
                {
                    "reader": reader,
                    "group": group,
                    "training": training,
                    "condition": condition,
                    "case": f"c{i:03d}",
                    "patient": f"p{patient[i]:03d}",
                    "truth": CLASS_KEYS[truth[i]],
                    "answer": CLASS_KEYS[answer[i]],
                }
                for i in range(n_cases)
            ]
    return responses, predictions
