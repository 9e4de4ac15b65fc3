"""``manage.py reader_report``: every file, exact CSV headers, the OR cross-check, the inputs hash,
a self-contained escaped HTML page, the PDF's pages, bad input writing nothing, --margin and
reproducibility by seed.

The study is :func:`ml.core.readers.synthetic_study` (paper-sized: 100 cases, 10 readers) with one
reader renamed ``<b>r&1</b>`` so the HTML escaping is exercised by a hostile id from the input file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Sequence
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from ml.core import readers
from ml.core.reader_report import FIGURES, REPORT_FILES, pdf_sections

HOSTILE = "<b>r&1</b>"
ITERATIONS = "200"
DIFFERENCE_HEADER = "task,a,condition_a,b,condition_b,estimate,boot_mean,ci_low,ci_high,margin,verdict"


def _write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _study(tmp_path: Path) -> tuple[Path, Path]:
    responses, predictions = readers.synthetic_study(seed=3)
    for row in responses:
        if row["reader"] == "r1":
            row["reader"] = HOSTILE
    return (
        _write_csv(tmp_path / "responses.csv", responses, readers.RESPONSE_COLUMNS),
        _write_csv(tmp_path / "predictions.csv", predictions, readers.PREDICTION_COLUMNS),
    )


def _run(responses: Path, predictions: Path, out: Path, *extra: str) -> str:
    stdout = StringIO()
    call_command(
        "reader_report",
        "--responses",
        str(responses),
        "--predictions",
        str(predictions),
        "--out",
        str(out),
        "--iterations",
        ITERATIONS,
        *extra,
        stdout=stdout,
    )
    return stdout.getvalue()


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, str]:
    """One run shared by the read-only checks (the report takes a few seconds to draw)."""
    base = tmp_path_factory.mktemp("reader_report")
    responses, predictions = _study(base)
    out = base / "out"
    return responses, predictions, out, _run(responses, predictions, out)


def test_every_file_is_written(made: tuple[Path, Path, Path, str]) -> None:
    _, _, out, stdout = made
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    for stem in FIGURES:
        assert (out / f"{stem}.png").read_bytes().startswith(b"\x89PNG")
        assert b"<svg" in (out / f"{stem}.svg").read_bytes()
    for name in REPORT_FILES:
        assert str(out / name) in stdout
    assert "100 cases" in stdout and "margin" in stdout
    assert stdout.count("model − ") == 12  # 2 tasks × 3 conditions × 2 groups, each with its verdict


def test_csv_headers_are_exact(made: tuple[Path, Path, Path, str]) -> None:
    _, _, out, _ = made
    diffs = (out / "kappa_differences.csv").read_text(encoding="utf-8").splitlines()
    assert diffs[0] == DIFFERENCE_HEADER
    assert len(diffs) == 1 + 28  # 14 comparisons per task
    observers = (out / "observers.csv").read_text(encoding="utf-8").splitlines()
    assert observers[0] == ",".join(readers.OBSERVER_COLUMNS)


def test_json_has_or_cross_check_and_inputs_hash(made: tuple[Path, Path, Path, str]) -> None:
    responses, predictions, out, _ = made
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    expected = hashlib.sha256(responses.read_bytes() + predictions.read_bytes()).hexdigest()
    assert report["inputs_sha256"] == expected
    rows = report["or_check"]
    assert {(r["task"], r["condition"], r["readers"]) for r in rows} == {
        (t, c, g) for t in readers.TASKS for c in readers.CONDITIONS for g in ("all", "expert", "resident")
    }
    for row in rows:
        assert row["n_readers"] == (10 if row["readers"] == "all" else 5)
        assert row["difference"] == pytest.approx(row["model_kappa"] - row["readers_kappa"])
        assert row["ci_low"] < row["difference"] < row["ci_high"]
        assert 0.0 <= row["p_value"] <= 1.0
    # The OR point estimates are the observers table's κ: the model's, and each group's mean.
    kappa = {(r["observer"], r["condition"], r["task"]): r["kappa"] for r in report["observers"]}
    for row in rows:
        assert row["model_kappa"] == pytest.approx(kappa[("model", "all", row["task"])])
        if row["readers"] != "all":
            assert row["readers_kappa"] == pytest.approx(kappa[(row["readers"], row["condition"], row["task"])])
    assert report["figures"]["roc_model"]["band"] is not None


def test_html_is_self_contained_and_escaped(made: tuple[Path, Path, Path, str]) -> None:
    _, _, out, _ = made
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert 'src="http' not in page and "<link" not in page.lower() and "<script" not in page.lower()
    assert HOSTILE not in page
    assert "&lt;b&gt;r&amp;1&lt;/b&gt;" in page
    for reader in ["e0", "e1", "e2", "e3", "e4", "r0", "r2", "r3", "r4"]:
        assert f"<td>{reader}</td>" in page
    for heading in ("Table 3", "Table 4", "Table 5", "Noninferiority margin", "Obuchowski–Rockette"):
        assert heading in page
    images = page.count("data:image/png;base64,") + page.count("<svg")
    assert images == len(FIGURES)


def test_pdf_has_the_planned_pages(made: tuple[Path, Path, Path, str]) -> None:
    _, _, out, _ = made
    data = (out / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type /Page\b", data))
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    # Tables: inputs 1, Table 3 1, Table 4 1, Table 5 1, margin 1, 48 margin pairs 2, OR 1, 74 observers 3.
    assert [n for _, n in pdf_sections(report)] == [1, 1, 1, 1, 1, 2, 1, 3]
    assert pages == 11 + len(FIGURES)


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir())
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]  # no temporary folder


def test_missing_column_names_file_row_column(tmp_path: Path) -> None:
    responses, predictions = _study(tmp_path)
    lines = predictions.read_text(encoding="utf-8").splitlines()
    rows = list(csv.DictReader(lines))
    columns = [c for c in readers.PREDICTION_COLUMNS if c != "patient"]
    _write_csv(predictions, rows, columns)
    out = tmp_path / "out"
    with pytest.raises(CommandError) as error:
        _run(responses, predictions, out)
    message = str(error.value)
    assert str(predictions) in message and "row 1" in message and "'patient'" in message
    _assert_nothing_written(out)


def test_unknown_class_key_names_file_row_column(tmp_path: Path) -> None:
    responses, predictions = _study(tmp_path)
    rows = list(csv.DictReader(responses.read_text(encoding="utf-8").splitlines()))
    rows[5]["answer"] = "banana"  # header = row 1, so the sixth data row is row 7
    _write_csv(responses, rows, readers.RESPONSE_COLUMNS)
    out = tmp_path / "out"
    out.mkdir()  # an existing empty folder stays empty
    with pytest.raises(CommandError) as error:
        _run(responses, predictions, out)
    message = str(error.value)
    assert str(responses) in message and "row 7" in message and "'answer'" in message and "banana" in message
    _assert_nothing_written(out)


def test_margin_option_and_same_seed_same_bytes(tmp_path: Path) -> None:
    responses, predictions = _study(tmp_path)
    first, second = tmp_path / "a", tmp_path / "b"
    _run(responses, predictions, first, "--margin", "0.2", "--seed", "7")
    _run(responses, predictions, second, "--margin", "0.2", "--seed", "7")
    with open(first / "kappa_differences.csv", newline="", encoding="utf-8") as fh:
        margins = {row["margin"] for row in csv.DictReader(fh)}
    assert margins == {"0.2"}
    report = json.loads((first / "report.json").read_text(encoding="utf-8"))
    assert report["margin"]["source"] == "argument" and report["seed"] == 7
    assert (first / "kappa_differences.csv").read_bytes() == (second / "kappa_differences.csv").read_bytes()


def test_existing_folder_keeps_other_files(tmp_path: Path) -> None:
    responses, predictions = _study(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    (out / "report.json").write_text("stale", encoding="utf-8")
    _run(responses, predictions, out)
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["n_cases"] == 100
    assert sorted(p.name for p in out.iterdir()) == sorted([*REPORT_FILES, "notes.txt"])


def test_crash_while_rendering_leaves_out_dir_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure after some files were rendered: no file reaches --out and the temporary folder is gone."""
    from ml.core import reader_report

    responses, predictions = _study(tmp_path)
    original = reader_report._pdf

    def broken(*args: Any, **kwargs: Any) -> bytes:
        original(*args, **kwargs)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(reader_report, "_pdf", broken)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk on fire"):
        _run(responses, predictions, out)
    _assert_nothing_written(out)
