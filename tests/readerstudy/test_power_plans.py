"""Planning a study's power on real PostgreSQL: the command on two CSVs (the exact columns, clear
errors for bad input) and the study page's Plan button, its task, the live status and the table."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from readerstudy import power_plans
from readerstudy.analysis.power import POWER_COLUMNS
from readerstudy.analysis.readers import PREDICTION_COLUMNS, RESPONSE_COLUMNS
from readerstudy.analysis.synthetic import synthetic_study
from readerstudy.tasks import build_power_plan
from tests.ml_core.helpers import write_csv
from tests.readerstudy.helpers import answer_phase, invite, study_with_model

PLAN = {"cases": "4,8", "readers_per_training": "2", "simulations": 5, "iterations": 20, "seed": 0}


@pytest.fixture
def pilot_csvs(tmp_path: Path) -> tuple[Path, Path]:
    responses, predictions = synthetic_study(n_cases=30, n_patients=26, seed=1)
    return (
        write_csv(tmp_path / "responses.csv", responses, RESPONSE_COLUMNS),
        write_csv(tmp_path / "model_predictions.csv", predictions, PREDICTION_COLUMNS),
    )


def _plan(responses: Path, predictions: Path, out: Path, *extra: str) -> str:
    stdout = io.StringIO()
    call_command(
        "plan_reader_study",
        f"--responses={responses}",
        f"--predictions={predictions}",
        f"--out={out}",
        "--no-progress",
        *extra,
        stdout=stdout,
    )
    return stdout.getvalue()


def test_the_command_writes_power_csv_with_the_exact_columns(pilot_csvs, tmp_path):
    out = tmp_path / "plan"
    text = _plan(*pilot_csvs, out, "--cases=10,20", "--readers-per-training=2,3", "--simulations=8", "--iterations=50")
    assert {p.name for p in out.iterdir()} == {"power.csv", "power.json", "power.png", "power.svg"}
    with open(out / "power.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == POWER_COLUMNS
    body = [dict(zip(POWER_COLUMNS, r, strict=True)) for r in rows[1:]]
    assert {(r["cases"], r["readers_per_training"]) for r in body} == {
        ("10", "2"),
        ("10", "3"),
        ("20", "2"),
        ("20", "3"),
    }
    assert len(body) % 4 == 0 and all(0.0 <= float(r["power"]) <= 1.0 for r in body)
    assert (out / "power.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / "power.svg").read_text()
    assert f"{len(body)} power rows" in text
    # the pilot has 2 radiology readers per group: 3 per training brings readers made from theirs
    assert "note: 3 readers per training is more than the pilot has of expert/radiology_attending (2)" in text


def test_bad_input_gives_a_clear_error_and_writes_nothing(pilot_csvs, tmp_path):
    responses, predictions = pilot_csvs
    broken = tmp_path / "broken.csv"
    broken.write_text(responses.read_text().replace("reader,group", "who,group", 1))
    with pytest.raises(CommandError, match=r"broken.csv, row 1, column 'reader': missing column"):
        _plan(broken, predictions, tmp_path / "out")
    unknown = tmp_path / "unknown.csv"
    unknown.write_text(responses.read_text().replace(",normal\n", ",broken_hip\n", 1))
    with pytest.raises(CommandError, match=r"unknown.csv, row \d+, column '(truth|answer)': unknown class key"):
        _plan(unknown, predictions, tmp_path / "out")
    with pytest.raises(CommandError, match="not a comma-separated list of whole numbers"):
        _plan(responses, predictions, tmp_path / "out", "--cases=ten")
    with pytest.raises(CommandError, match="at least 2"):
        _plan(responses, predictions, tmp_path / "out", "--readers-per-training=1")
    with pytest.raises(CommandError, match="No such file"):
        _plan(tmp_path / "missing.csv", predictions, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the study's page


@pytest.fixture
def pilot_study(dicom_bytes, tiny_bundle, data_dir):
    study = study_with_model(dicom_bytes, tiny_bundle, data_dir, cases=8)
    # Experts always right, residents always "normal": experts − residents is superior in the pilot
    # whatever the (untrained) model answers, so the plan has targets.
    readers = [
        (invite(study, "erin", "expert", "orthopedics_attending"), True),
        (invite(study, "ed", "expert", "orthopedics_attending"), True),
        (invite(study, "ray", "resident", "orthopedics_resident"), False),
        (invite(study, "rita", "resident", "orthopedics_resident"), False),
    ]
    for reader, right in readers:
        for _ in range(3):
            answer_phase(reader, choose=lambda case, right=right: case.truth if right else "normal")
    return study


@pytest.mark.django_db
def test_the_page_runs_a_plan_and_shows_the_table(pilot_study, client_as, django_capture_on_commit_callbacks):
    client = client_as("researcher")
    page = client.get(reverse("study_detail", args=[pilot_study.pk])).content.decode()
    assert 'id="power-plan"' in page and reverse("study_power_start", args=[pilot_study.pk]) in page
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("study_power_start", args=[pilot_study.pk]), PLAN)
    assert response.status_code == 302, response.content.decode()
    plan = response["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert response["Location"] == reverse("study_power_detail", args=[pilot_study.pk, plan])
    assert len(callbacks) == 1  # the task, sent once the request commits
    status = client.get(reverse("study_power_json", args=[pilot_study.pk, plan])).json()
    assert (status["status"], status["progress"], status["files"]) == ("queued", 0.0, [])
    assert status["settings"]["cases"] == [4, 8]
    live = client.get(response["Location"]).content.decode()
    assert 'id="power-progress"' in live and "power-plan.js" in live and 'id="power-table"' not in live

    build_power_plan(study_id=pilot_study.pk, plan=plan)  # what the worker runs
    status = client.get(reverse("study_power_json", args=[pilot_study.pk, plan])).json()
    assert status["status"] == "done", status["error"]
    assert {f["name"] for f in status["files"]} == {"power.csv", "power.json", "power.png", "power.svg"}
    rows = power_plans.plan_rows(pilot_study, plan)
    assert {("expert", "resident", "superior")} <= {(r["a"], r["b"], r["target"]) for r in rows}
    assert {(r["cases"], r["readers_per_training"]) for r in rows} == {(4, 2), (8, 2)}
    page = client.get(response["Location"]).content.decode()
    assert 'id="power-table"' in page and page.count("<tr>") == len(rows) + 1
    assert reverse("study_power_file", args=[pilot_study.pk, plan, "power.svg"]) in page
    csv_file = client.get(reverse("study_power_file", args=[pilot_study.pk, plan, "power.csv"]))
    assert b"".join(csv_file.streaming_content).decode().splitlines()[0] == ",".join(POWER_COLUMNS)
    assert plan in client.get(reverse("study_detail", args=[pilot_study.pk])).content.decode()


@pytest.mark.django_db
def test_the_page_refuses_bad_settings_and_hides_plans_from_others(pilot_study, client_as):
    client = client_as("researcher")
    url = reverse("study_power_start", args=[pilot_study.pk])
    bad = client.post(url, {**PLAN, "cases": "ten"})
    assert bad.status_code == 400 and "not a list of whole numbers" in bad.content.decode()
    bad = client.post(url, {**PLAN, "readers_per_training": "1"})
    assert bad.status_code == 400 and "between 2 and" in bad.content.decode()
    assert power_plans.plans_of(pilot_study) == []
    plan = power_plans.plan_start(study=pilot_study, user=None, cases=[4], readers_per_training=[2], queue=False)
    for name in ("report.html", "responses.csv", "power.csv"):  # not its files, or not written yet
        assert client.get(reverse("study_power_file", args=[pilot_study.pk, plan, name])).status_code == 404
    assert client.get(reverse("study_power_detail", args=[pilot_study.pk, "0" * 12])).status_code == 404
    assert client.get(f"/studies/{pilot_study.pk}/power/..%2F..%2Fx/").status_code == 404
    for role in ("reader", "labeler"):
        assert client_as(role).get(reverse("study_power_detail", args=[pilot_study.pk, plan])).status_code == 403
        assert client_as(role).post(url, PLAN).status_code == 403


@pytest.mark.django_db
def test_a_study_without_a_pilot_pair_is_refused(dicom_bytes, tiny_bundle, data_dir, client_as):
    study = study_with_model(dicom_bytes, tiny_bundle, data_dir, cases=8)
    erin = invite(study, "erin", "expert", "orthopedics_attending")
    ray = invite(study, "ray", "resident", "orthopedics_resident")
    url = reverse("study_power_start", args=[study.pk])
    for _ in range(3):
        answer_phase(erin)
    page = client_as("researcher").post(url, PLAN)
    assert page.status_code == 400 and "at least 2 readers who answered every case" in page.content.decode()
    for _ in range(3):
        answer_phase(ray)
    page = client_as("researcher").post(url, PLAN)
    assert page.status_code == 400 and "share a group and a training" in page.content.decode()
    assert power_plans.plans_of(study) == []
