"""How readers changed their minds with the model (:mod:`readerstudy.analysis.aided`): hand-built
answers with known switches (a tie in the model's probabilities, a third class, a case where the
reader agreed with the model in phase 2), the pooled group rows, median times from the optional
``seconds`` column, and a plain per-answer loop on the paper-sized synthetic study.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import pytest

from ml.core.stats import CLASS_KEYS
from readerstudy.analysis import readers
from readerstudy.analysis.aided import AIDED_COLUMNS, AIDED_COUNTS, aided_rows

K = CLASS_KEYS  # normal, fn_displaced, fn_nondisplaced, intertrochanteric, orif, arthroplasty

# case: (truth, model probabilities). c1 ties normal and fn_displaced: the first class (normal) wins.
CASES: dict[str, tuple[int, list[float]]] = {
    "c1": (0, [0.4, 0.4, 0.2, 0.0, 0.0, 0.0]),
    "c2": (2, [0.1, 0.0, 0.2, 0.7, 0.0, 0.0]),
    "c3": (4, [0.0, 0.0, 0.0, 0.1, 0.3, 0.6]),
    "c4": (4, [0.0, 0.0, 0.0, 0.1, 0.3, 0.6]),
    "c5": (1, [0.1, 0.1, 0.8, 0.0, 0.0, 0.0]),
    "c6": (0, [0.9, 0.1, 0.0, 0.0, 0.0, 0.0]),
}
# reader: (group, {case: (phase 1, phase 2, phase 3 answer, phase-2 seconds, phase-3 seconds)})
READERS: dict[str, tuple[str, dict[str, tuple[int, int, int, float, float]]]] = {
    "R01": (
        "expert",
        {
            "c1": (1, 1, 0, 10.0, 20.0),  # the tie's top class is normal: switched, model right
            "c2": (2, 2, 3, 11.0, 21.0),  # switched, model wrong
            "c3": (4, 4, 4, 12.0, 22.0),  # kept own, right
            "c4": (0, 0, 0, 13.0, 23.0),  # kept own, wrong
            "c5": (0, 0, 1, 14.0, 24.0),  # other: neither their answer nor the model's (here right)
            "c6": (0, 0, 3, 99.0, 99.0),  # agreed with the model in phase 2: not a phase-3 case
        },
    ),
    "R02": (
        "expert",
        {
            "c1": (0, 0, 0, 5.0, 1.0),  # agreed with the model (the tie's normal)
            "c2": (3, 3, 3, 5.0, 1.0),  # agreed
            "c3": (3, 3, 5, 6.0, 2.0),  # switched, model wrong
            "c4": (5, 5, 5, 5.0, 1.0),  # agreed
            "c5": (1, 1, 1, 7.0, 3.0),  # kept own, right
            "c6": (2, 2, 2, 8.0, 4.0),  # kept own, wrong
        },
    ),
    "R03": (
        "resident",
        {
            "c1": (2, 2, 1, 30.0, 40.0),  # other (fn_displaced: the tie's second class is not the model's)
            "c2": (0, 0, 0, 30.0, 40.0),  # kept own, wrong
            "c3": (5, 5, 5, 1.0, 1.0),  # agreed
            "c4": (4, 4, 5, 31.0, 41.0),  # switched, model wrong
            "c5": (1, 1, 2, 32.0, 42.0),  # switched, model wrong
            "c6": (1, 1, 0, 33.0, 43.0),  # switched, model right
        },
    ),
}
EXPECTED = {  # (switched right, switched wrong, kept right, kept wrong, other), before, after
    "R01": ((1, 1, 1, 1, 1), 2 / 5, 3 / 5, (10, 11, 12, 13, 14), (20, 21, 22, 23, 24)),
    "R02": ((0, 1, 1, 1, 0), 1 / 3, 1 / 3, (6, 7, 8), (2, 3, 4)),
    "R03": ((1, 2, 0, 1, 1), 2 / 5, 1 / 5, (30, 30, 31, 32, 33), (40, 40, 41, 42, 43)),
}


def _rows(with_seconds: bool = True) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    responses = []
    for reader, (group, answers) in READERS.items():
        for phase, condition in enumerate(readers.CONDITIONS):
            for case, (truth, _) in CASES.items():
                answer = answers[case]
                row = {
                    "reader": reader,
                    "group": group,
                    "training": "orthopedics_attending" if group == "expert" else "orthopedics_resident",
                    "condition": condition,
                    "case": case,
                    "patient": f"p{case}",
                    "truth": K[truth],
                    "answer": K[int(answer[phase])],
                }
                if with_seconds:
                    row["seconds"] = "" if phase == 0 else str(answer[2 + phase])
                responses.append(row)
    predictions = [
        {
            "case": case,
            "patient": f"p{case}",
            "truth": K[truth],
            **{f"p_{k}": str(p) for k, p in zip(K, probs, strict=True)},
        }
        for case, (truth, probs) in CASES.items()
    ]
    return responses, predictions


def _aided(with_seconds: bool = True) -> list[dict[str, Any]]:
    responses, predictions = _rows(with_seconds)
    return aided_rows(responses=readers.read_responses(responses), predictions=readers.read_predictions(predictions))


def test_hand_built_switches_are_counted() -> None:
    rows = {r["observer"]: r for r in _aided()}
    for reader, (counts, before, after, seconds_before, seconds_after) in EXPECTED.items():
        row = rows[reader]
        assert list(row) == list(AIDED_COLUMNS)
        assert tuple(row[k] for k in AIDED_COUNTS) == counts, reader
        assert row["cases"] == sum(counts)
        assert row["group"] == READERS[reader][0]
        assert row["accuracy_before"] == pytest.approx(before)
        assert row["accuracy_after"] == pytest.approx(after)
        assert row["median_seconds_before"] == statistics.median(seconds_before)
        assert row["median_seconds_after"] == statistics.median(seconds_after)


def test_group_rows_pool_their_readers() -> None:
    rows = _aided()
    assert [r["observer"] for r in rows] == ["R01", "R02", "R03", "expert", "resident"]
    expert = rows[3]
    assert (expert["group"], expert["training"], expert["cases"]) == ("expert", "all", 8)
    assert tuple(expert[k] for k in AIDED_COUNTS) == (1, 2, 2, 2, 1)
    assert expert["accuracy_before"] == pytest.approx(3 / 8)
    assert expert["accuracy_after"] == pytest.approx(4 / 8)
    assert expert["median_seconds_before"] == statistics.median([10, 11, 12, 13, 14, 6, 7, 8])
    assert expert["median_seconds_after"] == statistics.median([20, 21, 22, 23, 24, 2, 3, 4])
    resident = rows[4]
    assert tuple(resident[k] for k in AIDED_COUNTS) == EXPECTED["R03"][0]


def test_without_the_seconds_column_times_are_unknown() -> None:
    rows = _aided(with_seconds=False)
    assert all(r["median_seconds_before"] is None and r["median_seconds_after"] is None for r in rows)
    assert tuple(rows[0][k] for k in AIDED_COUNTS) == EXPECTED["R01"][0]


@pytest.mark.parametrize("value", ["soon", "-1", "inf", "nan"])
def test_a_bad_time_is_refused_with_file_row_column(value: str) -> None:
    responses, _ = _rows()
    responses[4]["seconds"] = value
    with pytest.raises(readers.ReaderDataError) as error:
        readers.read_responses(responses)
    assert (error.value.row, error.value.column) == (6, "seconds")


def test_a_plain_loop_agrees_on_the_synthetic_study() -> None:
    responses, predictions = readers.synthetic_study(seed=5)
    rng = np.random.default_rng(5)
    for row in responses:
        row["seconds"] = f"{rng.gamma(2.0, 8.0):.2f}"
    resp, pred = readers.read_responses(responses), readers.read_predictions(predictions)
    model = {c: int(np.argmax(p)) for c, p in zip(pred.case, pred.probabilities, strict=True)}
    answers: dict[tuple[str, str, str], tuple[int, int, float]] = {}
    for r in responses:
        answers[(r["reader"], r["condition"], r["case"])] = (
            K.index(r["truth"]),
            K.index(r["answer"]),
            float(r["seconds"]),
        )
    for row in aided_rows(responses=resp, predictions=pred):
        names = (
            [row["observer"]]
            if row["observer"] not in readers.GROUPS
            else sorted({r["reader"] for r in responses if r["group"] == row["observer"]})
        )
        counts = dict.fromkeys(AIDED_COUNTS, 0)
        before_right = after_right = 0
        times: tuple[list[float], list[float]] = ([], [])
        for name in names:
            for case in model:
                truth, before, t2 = answers[(name, "full_quality", case)]
                _, after, t3 = answers[(name, "model_aided", case)]
                if before == model[case]:
                    continue
                if after == model[case]:
                    counts["switched_to_model_right" if model[case] == truth else "switched_to_model_wrong"] += 1
                elif after == before:
                    counts["kept_own_right" if before == truth else "kept_own_wrong"] += 1
                else:
                    counts["other"] += 1
                before_right += before == truth
                after_right += after == truth
                times[0].append(t2)
                times[1].append(t3)
        n = sum(counts.values())
        assert n > 0
        assert {k: row[k] for k in AIDED_COUNTS} == counts, row["observer"]
        assert row["cases"] == n
        assert row["accuracy_before"] == pytest.approx(before_right / n)
        assert row["accuracy_after"] == pytest.approx(after_right / n)
        assert row["median_seconds_before"] == pytest.approx(statistics.median(times[0]))
        assert row["median_seconds_after"] == pytest.approx(statistics.median(times[1]))
