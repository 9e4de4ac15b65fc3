"""The reader study's input files: ``responses.csv`` and ``model_predictions.csv`` read and validated.

:func:`read_responses` and :func:`read_predictions` accept a path, a DataFrame or row dicts; bad input
raises :class:`ReaderDataError` naming the file, row and column. Re-exported by
:mod:`readerstudy.analysis.readers`. Plain NumPy; no Django.
Design: docs/architecture/design-statistics.md
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml.core.stats import CLASS_KEYS

CONDITIONS: tuple[str, ...] = ("model_quality", "full_quality", "model_aided")
GROUPS: tuple[str, ...] = ("expert", "resident")
MODEL = "model"
MODEL_CONDITION = "all"  # the model's answers do not depend on the reading condition
RESPONSE_COLUMNS: tuple[str, ...] = ("reader", "group", "training", "condition", "case", "patient", "truth", "answer")
#: Read when present: ``seconds`` from the case's display to the answer (empty: unknown).
RESPONSE_OPTIONAL_COLUMNS: tuple[str, ...] = ("seconds",)
PROBABILITY_COLUMNS: tuple[str, ...] = tuple(f"p_{key}" for key in CLASS_KEYS)
PREDICTION_COLUMNS: tuple[str, ...] = ("case", "patient", "truth", *PROBABILITY_COLUMNS)
#: A training, as the site accepts it (``readerstudy.models.training_validator`` is built on it):
#: a lower-case key such as ``orthopedics_attending``.
TRAINING_PATTERN = r"^[a-z][a-z0-9_]{1,49}$"
TRAINING_RULE = "a lower-case key like orthopedics_attending (a letter, then letters, digits or _; 2 to 50)"
#: A reader: a letter or digit, then letters, digits, ``.``, ``-`` or ``_``, at most 16 characters (the
#: site's reader codes, R01, R02, ..., and their field's length). Not the model's name nor a group's.
READER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$"
READER_RULE = "a code like R01 (a letter or digit, then letters, digits, '.', '-' or '_'; at most 16)"
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
    header = []
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
    seconds: NDArray[np.float64] | None = None  # per entry, NaN where empty; None without the column

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
    every reader answering every case under every condition, and, when the optional ``seconds``
    column is there, an empty cell or a number >= 0 in it.
    """
    name, header, rows = _table(source, name)
    _require_columns(name, header, RESPONSE_COLUMNS)
    if not rows:
        raise ReaderDataError(name, 2, "reader", "no data rows")
    out: dict[str, list[Any]] = {c: [] for c in RESPONSE_COLUMNS}
    numbers: list[int] = []
    seconds: list[float] = []
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
        if "seconds" in header:
            seconds.append(_seconds(name, number, rec.get("seconds", "")))
        values = (reader, group, training, condition, case, patient, truth, answer)
        for column, cell in zip(RESPONSE_COLUMNS, values, strict=True):
            out[column].append(cell)
        numbers.append(number)
    _check_complete(name, seen, list(reader_first), list(case_first), case_first)
    obj = {c: np.array(out[c], dtype=object) for c in RESPONSE_COLUMNS[:6]}
    return Responses(
        source=name,
        row=np.array(numbers, dtype=np.intp),
        truth=np.array(out["truth"], dtype=np.intp),
        answer=np.array(out["answer"], dtype=np.intp),
        seconds=np.array(seconds, dtype=float) if "seconds" in header else None,
        **obj,
    )


def _seconds(name: str, number: int, text: str) -> float:
    """The optional ``seconds`` cell: a finite number >= 0, or NaN when empty."""
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ReaderDataError(name, number, "seconds", f"{text!r} is not a number")
    if not (math.isfinite(value) and value >= 0):
        raise ReaderDataError(name, number, "seconds", f"{text!r} is not a time in seconds (a number >= 0)")
    return value


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
