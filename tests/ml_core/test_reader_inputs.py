"""readerstudy.analysis.readers' input files: bad input named by file, row and column, DataFrames and
CSV files read like rows, and the paper-size study end to end (split from test_readers.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from readerstudy.analysis.readers import (
    DIFFERENCE_COLUMNS,
    MULTICLASS_NOTE,
    OBSERVER_COLUMNS,
    PREDICTION_COLUMNS,
    RESPONSE_COLUMNS,
    ReaderDataError,
    analyse,
    read_predictions,
    read_responses,
    synthetic_study,
    write_csvs,
)
from tests.ml_core.helpers import Rows, write_csv

# ----------------------------------------------------------------- bad input


def _bad(tmp_path: Path, responses: Rows, predictions: Rows) -> ReaderDataError:
    r = write_csv(tmp_path / "responses.csv", responses, list(dict.fromkeys(k for x in responses for k in x)))
    columns = list(dict.fromkeys(k for x in predictions for k in x))
    p = write_csv(tmp_path / "model_predictions.csv", predictions, columns)
    with pytest.raises(ReaderDataError) as info:
        analyse(r, p, iterations=5, margin=0.1)
    return info.value


def _drop(rows: Rows, column: str) -> Rows:
    return [{k: v for k, v in r.items() if k != column} for r in rows]


# Study of 6 cases, 2 readers; responses are reader-major, then condition, then case, so
# e0 model_quality c000..c005 are rows 2..7, full_quality rows 8..13, model_aided rows 14..19
# (list index = row - 2).
_READERS = [("e0", "expert", "orthopedics"), ("r0", "resident", "orthopedics")]


def _mutate(kind: str, responses: Rows, predictions: Rows) -> tuple[Rows, Rows, str, int, str]:
    """Apply one kind of damage; return the rows and the expected (file, row, column)."""
    if kind == "missing column":
        return _drop(responses, "answer"), predictions, "responses.csv", 1, "answer"
    if kind == "missing prediction column":
        return responses, _drop(predictions, "p_orif"), "model_predictions.csv", 1, "p_orif"
    if kind == "unknown class key":
        responses[3]["answer"] = "broken_hip"
        return responses, predictions, "responses.csv", 5, "answer"
    if kind == "unknown truth key":
        predictions[2]["truth"] = "Normal"
        return responses, predictions, "model_predictions.csv", 4, "truth"
    if kind == "unknown condition":
        responses[4]["condition"] = "foggy"
        return responses, predictions, "responses.csv", 6, "condition"
    if kind == "unknown group":
        responses[0]["group"] = "intern"
        return responses, predictions, "responses.csv", 2, "group"
    if kind == "case without truth":
        responses[2]["truth"] = ""
        return responses, predictions, "responses.csv", 4, "truth"
    if kind == "prediction without truth":
        predictions[1]["truth"] = ""
        return responses, predictions, "model_predictions.csv", 3, "truth"
    if kind == "truth disagrees between files":
        case = predictions[1]
        case["truth"] = "orif" if case["truth"] != "orif" else "normal"
        return responses, predictions, "responses.csv", 3, "truth"
    if kind == "answer missing for a condition":
        del responses[14]  # row 16: e0, model_aided, c002
        return responses, predictions, "responses.csv", 4, "condition"
    if kind == "condition missing for a reader":
        responses = [r for r in responses if not (r["reader"] == "e0" and r["condition"] == "model_aided")]
        return responses, predictions, "responses.csv", 2, "condition"
    if kind == "empty answer":
        responses[7]["answer"] = ""
        return responses, predictions, "responses.csv", 9, "answer"
    if kind == "case not in predictions":
        predictions = [p for p in predictions if p["case"] != "c003"]
        return responses, predictions, "responses.csv", 5, "case"
    if kind == "probability not a number":
        predictions[0]["p_normal"] = "high"
        return responses, predictions, "model_predictions.csv", 2, "p_normal"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "missing column",
        "missing prediction column",
        "unknown class key",
        "unknown truth key",
        "unknown condition",
        "unknown group",
        "case without truth",
        "prediction without truth",
        "truth disagrees between files",
        "answer missing for a condition",
        "condition missing for a reader",
        "empty answer",
        "case not in predictions",
        "probability not a number",
    ],
)
def test_bad_input_names_file_row_and_column(tmp_path: Path, kind: str) -> None:
    responses, predictions = synthetic_study(n_cases=6, n_patients=6, seed=4, readers=_READERS)
    responses, predictions, file, row, column = _mutate(kind, responses, predictions)
    err = _bad(tmp_path, responses, predictions)
    assert isinstance(err, ValueError)
    assert Path(err.file).name == file
    assert (err.row, err.column) == (row, column)
    message = str(err)
    assert file in message and f"row {row}," in message and repr(column) in message


def test_bad_rows_in_memory_name_the_default_file() -> None:
    responses, _ = synthetic_study(n_cases=6, n_patients=6, seed=4, readers=_READERS)
    responses[5]["answer"] = "?"
    with pytest.raises(ReaderDataError, match=r"^responses\.csv, row 7, column 'answer'"):
        read_responses(responses)


def test_dataframe_input() -> None:
    pd = pytest.importorskip("pandas")
    responses, predictions = synthetic_study(n_cases=10, n_patients=9, seed=8, readers=_READERS)
    from_frames = analyse(pd.DataFrame(responses), pd.DataFrame(predictions), iterations=20, margin=0.1)
    from_rows = analyse(responses, predictions, iterations=20, margin=0.1)
    assert from_frames == from_rows
    frame = pd.DataFrame(predictions)
    frame.loc[3, "truth"] = None
    with pytest.raises(ReaderDataError, match=r"model_predictions\.csv, row 5, column 'truth'"):
        read_predictions(frame)


def test_csv_files_read_like_rows(tmp_path: Path) -> None:
    responses, predictions = synthetic_study(n_cases=10, n_patients=9, seed=8, readers=_READERS)
    r = write_csv(tmp_path / "responses.csv", responses, RESPONSE_COLUMNS)
    p = write_csv(tmp_path / "model_predictions.csv", predictions, PREDICTION_COLUMNS)
    assert analyse(r, p, iterations=20, margin=0.1) == analyse(responses, predictions, iterations=20, margin=0.1)


# ----------------------------------------------------------------- the paper-size study


def test_paper_size_study_end_to_end(tmp_path: Path) -> None:
    responses, predictions = synthetic_study(n_cases=100, n_patients=90, seed=0)
    assert len({r["reader"] for r in responses}) == 10
    first = analyse(responses, predictions, iterations=2000, seed=42)
    again = analyse(read_responses(responses), read_predictions(predictions), iterations=2000, seed=42)
    assert first == again
    other = analyse(responses, predictions, iterations=2000, seed=43)
    assert other["comparisons"] != first["comparisons"]
    assert (first["n_cases"], first["n_patients"], first["iterations"]) == (100, 90, 2000)
    assert len(first["observers"]) == 2 * (1 + 3 * (10 + 2))
    assert len(first["comparisons"]) == 28
    assert {c["verdict"] for c in first["comparisons"]} <= {"superior", "noninferior", "not_noninferior"}
    assert len(first["margin"]["pairs"]) == 2 * 3 * (3 + 1 + 3 + 1)  # 3 + 1 pairs per group, per condition and task
    assert len(first["roc_check"]) == 6
    for check in first["roc_check"]:
        assert isinstance(check["below_band"], bool)
        assert check["model_superior"] == (check["kappa_verdict"] == "superior" and check["below_band"])
    for row in first["observers"]:
        assert row["kappa_ci_low"] <= row["kappa"] + 0.1 and row["kappa_ci_low"] <= row["kappa_ci_high"]

    paths = write_csvs(first, tmp_path / "out")
    with open(paths["kappa_differences.csv"], newline="") as fh:
        lines = list(csv.reader(fh))
    assert tuple(lines[0]) == DIFFERENCE_COLUMNS and len(lines) == 29
    with open(paths["observers.csv"], newline="") as fh:
        lines = list(csv.reader(fh))
    assert tuple(lines[0]) == OBSERVER_COLUMNS and len(lines) == 1 + len(first["observers"])
    report = json.loads(paths["report.json"].read_text())
    assert report["multiclass_note"] == MULTICLASS_NOTE
    assert report["comparisons"] == first["comparisons"]
