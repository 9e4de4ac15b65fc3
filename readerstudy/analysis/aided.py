"""How readers changed their minds with the model (DECIDE-AI): on the phase-3 cases, those where a
reader's phase-2 (full-quality) answer differs from the model's top class, whether the aided answer
switched to the model's (right or wrong), kept their own (right or wrong) or moved to a third class;
accuracy and median time before and after. From the two input files alone; plain NumPy, no Django.
Definitions: docs/research/aided-reading.md
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml.core.stats import multiclass_prediction
from readerstudy.analysis.reader_inputs import CONDITIONS, GROUPS, Predictions, Responses

__all__ = ["AIDED_COLUMNS", "AIDED_COUNTS", "GROUP_ROWS_TRAINING", "aided_rows"]

#: The counts of one row; they add up to ``cases``.
AIDED_COUNTS: tuple[str, ...] = (
    "switched_to_model_right",
    "switched_to_model_wrong",
    "kept_own_right",
    "kept_own_wrong",
    "other",
)
#: The keys of every row of :func:`aided_rows` (``report.json``'s ``aided``), in order.
AIDED_COLUMNS: tuple[str, ...] = (
    "observer",
    "group",
    "training",
    "cases",
    *AIDED_COUNTS,
    "accuracy_before",
    "accuracy_after",
    "median_seconds_before",
    "median_seconds_after",
)
#: The ``training`` of a group's row (it pools every training of the group).
GROUP_ROWS_TRAINING = "all"
_BEFORE, _AFTER = CONDITIONS[1], CONDITIONS[2]  # phase 2 (full quality) and phase 3 (model-aided)


def _grid(
    responses: Responses, condition: str, rows: NDArray[np.intp], cols: NDArray[np.intp], shape: tuple[int, int]
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """(answers, seconds) of every reader (row) and case (column) under ``condition``."""
    keep = responses.condition == condition
    answers = np.full(shape, -1, dtype=np.intp)
    seconds = np.full(shape, np.nan)
    answers[rows[keep], cols[keep]] = responses.answer[keep]
    if responses.seconds is not None:
        seconds[rows[keep], cols[keep]] = responses.seconds[keep]
    return answers, seconds


def _median(values: NDArray[np.float64]) -> float | None:
    """Median of the finite values; None when there are none."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else None


def _row(
    observer: str,
    group: str,
    training: str,
    counts: Sequence[int],
    right: tuple[int, int],
    before: NDArray[np.float64],
    after: NDArray[np.float64],
) -> dict[str, Any]:
    cases = int(sum(counts))
    return {
        "observer": observer,
        "group": group,
        "training": training,
        "cases": cases,
        **{key: int(n) for key, n in zip(AIDED_COUNTS, counts, strict=True)},
        "accuracy_before": right[0] / cases if cases else None,
        "accuracy_after": right[1] / cases if cases else None,
        "median_seconds_before": _median(before),
        "median_seconds_after": _median(after),
    }


def aided_rows(*, responses: Responses, predictions: Predictions) -> list[dict[str, Any]]:
    """One row per reader (in order of first appearance), then one per group (:data:`GROUPS` order,
    those with readers): the phase-3 cases' counts of :data:`AIDED_COUNTS`, six-class accuracy on
    them before (phase 2) and after (phase 3), and the median seconds per case on them in each phase
    (None without a ``seconds`` column). A group row pools its readers' cases; its ``observer`` is
    the group's name and its ``training`` :data:`GROUP_ROWS_TRAINING`. The model's top class is the
    argmax of its probabilities (first class wins a tie); "right" means equal to the truth. Cases
    missing from ``predictions`` raise ``KeyError``.
    """
    reader_names, first, reader_inverse = np.unique(responses.reader, return_index=True, return_inverse=True)
    order = np.argsort(first)  # readers in order of first appearance
    reader_names = reader_names[order]
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    rows = rank[reader_inverse]
    case_names, cols = np.unique(responses.case, return_inverse=True)
    shape = (len(reader_names), len(case_names))

    where = {case: i for i, case in enumerate(predictions.case.tolist())}
    model = multiclass_prediction(predictions.probabilities)[[where[c] for c in case_names.tolist()]]
    truth = np.zeros(len(case_names), dtype=np.intp)
    truth[cols] = responses.truth

    before, seconds_before = _grid(responses, _BEFORE, rows, cols, shape)
    after, seconds_after = _grid(responses, _AFTER, rows, cols, shape)
    phase3 = (before != model) & (before >= 0) & (after >= 0)
    to_model = phase3 & (after == model)
    kept = phase3 & (after == before)
    model_right = model == truth
    own_right = before == truth
    masks = np.stack(
        [
            to_model & model_right,
            to_model & ~model_right,
            kept & own_right,
            kept & ~own_right,
            phase3 & ~to_model & ~kept,
        ]
    )  # (count, reader, case)
    counts = masks.sum(axis=2)
    right = np.stack([(phase3 & own_right).sum(axis=1), (phase3 & (after == truth)).sum(axis=1)])
    seconds_before = np.where(phase3, seconds_before, np.nan)
    seconds_after = np.where(phase3, seconds_after, np.nan)

    group_of = dict(zip(responses.reader.tolist(), responses.group.tolist(), strict=True))
    training_of = dict(zip(responses.reader.tolist(), responses.training.tolist(), strict=True))
    out = [
        _row(
            name,
            group_of[name],
            training_of[name],
            counts[:, i].tolist(),
            (int(right[0, i]), int(right[1, i])),
            seconds_before[i],
            seconds_after[i],
        )
        for i, name in enumerate(reader_names.tolist())
    ]
    groups = np.array([group_of[name] for name in reader_names.tolist()], dtype=object)
    for group in GROUPS:
        members = groups == group
        if not members.any():
            continue
        out.append(
            _row(
                group,
                group,
                GROUP_ROWS_TRAINING,
                counts[:, members].sum(axis=1).tolist(),
                (int(right[0, members].sum()), int(right[1, members].sum())),
                seconds_before[members].ravel(),
                seconds_after[members].ravel(),
            )
        )
    return out
