"""Study reports on real PostgreSQL: the Report button's service, the task, the kept folders with
their inputs' hash, the report page and files (no path traversal), and ``reader_report --study``."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from readerstudy import services
from readerstudy.models import StudyReport
from readerstudy.report import reports
from readerstudy.report.reader_report import REPORT_FILES
from readerstudy.report.reporting import REPORTING_FILES
from readerstudy.tasks import build_study_report
from tests.readerstudy.helpers import answer_phase, invite, study_with_model

pytestmark = pytest.mark.django_db

ITERATIONS = 50


@pytest.fixture
def study(dicom_bytes, tiny_bundle, data_dir):
    return study_with_model(dicom_bytes, tiny_bundle, data_dir, cases=8)


def _complete(reader, *, right_every: int) -> None:
    """All three phases; the reader gives the truth for every ``right_every``-th case, else ``normal``."""
    choose = lambda case: case.truth if case.number % right_every == 0 else "normal"  # noqa: E731
    for _ in range(3):
        answer_phase(reader, choose=choose)


@pytest.fixture
def complete_study(study):
    _complete(invite(study, "erin", "expert", "orthopedics_attending"), right_every=1)
    _complete(invite(study, "ed", "expert", "orthopedics_attending"), right_every=3)
    _complete(invite(study, "ray", "resident", "orthopedics_resident"), right_every=2)
    invite(study, "ivy", "resident", "emergency_resident")  # invited, answers nothing: left out
    return study


def _start(study, user=None, **kwargs):
    return reports.report_start(study=study, user=user, iterations=ITERATIONS, queue=False, **kwargs)


def test_report_refused_with_fewer_than_two_complete_readers(study, users, client_as):
    with pytest.raises(services.StudyError, match="at least 2 readers who answered every case .* has 0"):
        _start(study)
    _complete(invite(study, "erin", "expert"), right_every=1)
    partial = invite(study, "ray", "resident", "orthopedics_resident")
    answer_phase(partial)  # phase 1 only
    with pytest.raises(services.StudyError, match="has 1$"):
        _start(study)
    page = client_as("researcher").post(reverse("study_report_start", args=[study.pk]), {"iterations": 50, "seed": 0})
    assert page.status_code == 400
    assert "at least 2 readers who answered every case under all three conditions" in page.content.decode()
    assert StudyReport.objects.count() == 0

    answer_phase(partial)
    answer_phase(partial)
    with pytest.raises(services.StudyError, match="share a group and a training.*give a margin"):
        _start(study)  # two complete readers, but no pair of one group and training for the margin
    assert _start(study, margin=0.1).status == "queued"


def test_report_refused_without_an_aided_phase_and_for_bad_settings(complete_study):
    complete_study.aided_phase = False
    complete_study.save()
    with pytest.raises(services.StudyError, match="no model or no model-aided phase"):
        _start(complete_study)
    complete_study.aided_phase = True
    complete_study.save()
    with pytest.raises(services.StudyError, match="iterations must be between"):
        reports.report_start(study=complete_study, user=None, iterations=0)
    with pytest.raises(services.StudyError, match="margin must be 0 or more"):
        _start(complete_study, margin=-0.1)


def test_the_button_queues_the_task_once(complete_study, client_as, django_capture_on_commit_callbacks):
    client = client_as("researcher")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            reverse("study_report_start", args=[complete_study.pk]), {"iterations": 50, "seed": 7, "margin": "0.1"}
        )
    report = StudyReport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("study_report_detail", args=[complete_study.pk, report.pk])
    assert len(callbacks) == 1
    assert (report.status, report.iterations, report.seed, report.margin) == ("queued", 50, 7, 0.1)
    assert report.created_by.username == "alice"
    page = client.get(response["Location"]).content.decode()
    assert 'id="report-progress"' in page and "queued" in page and "study-dashboard.js" in page
    data = client.get(reverse("study-report", args=[complete_study.pk, report.pk])).json()
    assert (data["status"], data["progress"], data["files"], data["summary"]) == ("queued", 0.0, [], None)
    bad = client.post(reverse("study_report_start", args=[complete_study.pk]), {"iterations": 0, "seed": 0})
    assert bad.status_code == 400 and StudyReport.objects.count() == 1


def test_a_built_report_has_its_files_and_the_hash_of_its_inputs(complete_study, data_dir):
    report = _start(complete_study)
    stages: list[tuple[float, str]] = []
    built = reports.report_build(report_id=report.pk, progress=lambda value, stage: stages.append((value, stage)))
    assert built.status == "done", built.error
    assert [s for _, s in stages] == ["export", "bootstrap", "figures", "pdf", "done"]
    assert [v for v, _ in stages] == sorted(v for v, _ in stages) and stages[-1][0] == 1.0
    folder = Path(data_dir) / "reader-reports" / str(report.pk)
    assert built.folder == f"reader-reports/{report.pk}"
    for name in REPORT_FILES:
        assert (folder / "report" / name).is_file(), name
    responses = (folder / "inputs" / "responses.csv").read_bytes()
    predictions = (folder / "inputs" / "model_predictions.csv").read_bytes()
    assert built.inputs_sha256 == hashlib.sha256(responses + predictions).hexdigest()
    assert json.loads((folder / "report" / "report.json").read_text())["inputs_sha256"] == built.inputs_sha256
    # The inputs are the study's complete readers only (ivy answered nothing), as exported.
    assert responses == services.study_export(study=complete_study, complete_only=True)["responses.csv"]
    lines = responses.decode().splitlines()
    assert lines[0] == "reader,group,training,condition,case,patient,truth,answer,seconds"
    assert len(lines) == 1 + 3 * 3 * 8
    assert {line.split(",")[0] for line in lines[1:]} == {"R01", "R02", "R03"}
    summary = built.summary
    assert (summary["n_readers"], summary["n_cases"], summary["iterations"]) == (3, 8, ITERATIONS)
    assert summary["margin"] >= 0 and summary["margin_source"] != "argument"
    assert {(v["task"], v["b"], v["condition_b"]) for v in summary["verdicts"]} >= {
        ("binary", "expert", "model_quality"),
        ("multiclass", "resident", "model_aided"),
    }
    assert all(v["a"] == "model" for v in summary["verdicts"])
    assert built.progress == 1.0 and built.finished_at is not None and not built.error


def test_a_built_report_has_the_summary_and_the_aided_reading_with_times(complete_study, data_dir):
    built = reports.report_build(report_id=_start(complete_study).pk)
    assert built.status == "done", built.error
    folder = reports.report_folder(built) / "report"
    data = json.loads((folder / "report.json").read_text())
    rows = {r["observer"]: r for r in data["aided"]}
    assert list(rows) == ["R01", "R02", "R03", "expert", "resident"]
    model = {c.number: c.predicted_class for c in complete_study.cases.all()}
    truth = {c.number: c.dataset_hip.hip_class for c in complete_study.cases.select_related("dataset_hip")}
    # Every reader gave the same answer in every phase: each phase-3 case is kept, right or wrong.
    for code, every in (("R01", 1), ("R02", 3), ("R03", 2)):
        answer = {n: truth[n] if n % every == 0 else "normal" for n in truth}
        phase3 = [n for n in truth if answer[n] != model[n]]
        row = rows[code]
        assert row["cases"] == len(phase3)
        assert row["kept_own_right"] == sum(answer[n] == truth[n] for n in phase3)
        assert row["kept_own_wrong"] == sum(answer[n] != truth[n] for n in phase3)
        assert row["switched_to_model_right"] == row["switched_to_model_wrong"] == row["other"] == 0
        if phase3:  # the site exports each answer's seconds: the medians are known
            assert row["median_seconds_before"] is not None and row["median_seconds_after"] is not None
    assert rows["expert"]["cases"] == rows["R01"]["cases"] + rows["R02"]["cases"]
    assert rows["expert"]["cases"] + rows["resident"]["cases"] > 0  # the model disagreed with someone
    page = (folder / "report.html").read_text(encoding="utf-8")
    opening = page.split("</h1>", 1)[1].split("<h2>", 1)[0]
    assert '<p class="summary" id="summary">' in opening and "against the experts the model was" in opening
    assert "Aided reading" in page


def test_a_training_in_both_groups_does_not_pair_across_them(study):
    """Trainings named by specialty alone: an attending and a resident of orthopedics are no pair."""
    _complete(invite(study, "erin", "expert", "orthopedics"), right_every=1)
    _complete(invite(study, "ray", "resident", "orthopedics"), right_every=2)
    with pytest.raises(services.StudyError, match="share a group and a training"):
        _start(study)
    _complete(invite(study, "rita", "resident", "orthopedics"), right_every=3)
    built = reports.report_build(report_id=_start(study).pk)
    assert built.status == "done", built.error
    folder = Path(reports.report_folder(built)) / "report"
    margin = json.loads((folder / "report.json").read_text())["margin"]
    # The residents' pair only (R02, R03: ray and rita), under 3 conditions and for both tasks.
    assert {(p["group"], p["a"], p["b"]) for p in margin["pairs"]} == {("resident", "R02", "R03")}
    assert len(margin["pairs"]) == 6
    assert margin["value"] == pytest.approx(sum(p["difference"] for p in margin["pairs"]) / 6)


def test_the_study_report_lists_its_deviations_with_the_models(complete_study, client_as):
    report = reports.report_build(report_id=_start(complete_study, margin=0.1).pk)
    assert report.status == "done", report.error
    folder = Path(reports.report_folder(report)) / "report"
    data = json.loads((folder / "report.json").read_text())
    config = complete_study.model_version.config
    assert data["model_config"]["name"] == config["name"] == "tiny"
    assert data["test_time"] == data["model_config"]["test_time"]
    keys = [d["key"] for d in data["deviations"]]
    # The analysis's own (a given margin, 50 iterations) and the tiny classifier's (random weights, small net).
    assert {"margin-given", "bootstrap-iterations", "roc-band-rule", "random-init", "smaller-network"} <= set(keys)
    assert len(keys) == len(set(keys))
    page = (folder / "report.html").read_text()
    assert "Deviations from the paper" in page and "the model&#x27;s configuration (tiny) is known" in page
    assert "configuration is unknown" not in page
    for key in keys:
        assert f"<td>{key}</td>" in page
    assert report.summary["deviations"] == keys and report.summary["estimate"] == "bootstrap-mean"
    detail = client_as("researcher").get(reverse("study_report_detail", args=[complete_study.pk, report.pk]))
    text = detail.content.decode()
    assert "κ difference (bootstrap mean)" in text and "<code>random-init</code>" in text


def test_the_study_report_says_how_much_of_its_cases_truth_came_from_proposals(complete_study):
    from annotate.labels import GroundTruthHip

    plain = reports.report_build(report_id=_start(complete_study, margin=0.1).pk)
    plain_keys = {
        d["key"]
        for d in json.loads((reports.report_folder(plain) / "report" / "report.json").read_text())["deviations"]
    }
    assert not {"proposal-boxes", "proposal-class-shown"} & plain_keys
    # One case's ground truth was an accepted proposal whose shown class the labeller kept.
    hip = complete_study.cases.select_related("dataset_hip").first().dataset_hip
    GroundTruthHip.objects.filter(radiograph_id=hip.radiograph_id, side=hip.side).update(
        provenance="proposal_class_kept"
    )
    report = reports.report_build(report_id=_start(complete_study, margin=0.1, seed=1).pk)
    data = json.loads((reports.report_folder(report) / "report" / "report.json").read_text())
    assert data["labelling"]["proposal_share"] == pytest.approx(1 / complete_study.cases.count())
    assert data["labelling"]["proposals_show_class"] is True
    assert {"proposal-boxes", "proposal-class-shown"} <= {d["key"] for d in data["deviations"]}


def test_every_report_is_kept(complete_study, data_dir):
    first = reports.report_build(report_id=_start(complete_study).pk)
    second = reports.report_build(report_id=_start(complete_study, margin=0.2).pk)
    assert first.pk != second.pk and (first.status, second.status) == ("done", "done")
    assert first.inputs_sha256 == second.inputs_sha256  # the same answers
    assert second.summary["margin"] == 0.2 and first.summary["margin"] != 0.2
    for report in (first, second):
        assert (Path(data_dir) / report.folder / "report" / "report.pdf").is_file()
    assert StudyReport.objects.filter(study=complete_study, status="done").count() == 2


def test_the_task_run_twice_builds_once_and_a_running_report_restarts_cleanly(complete_study, data_dir):
    report = _start(complete_study)
    build_study_report(report_id=report.pk)
    report.refresh_from_db()
    html = Path(data_dir) / report.folder / "report" / "report.html"
    assert report.status == "done"
    finished, stamp = report.finished_at, html.stat().st_mtime_ns
    build_study_report(report_id=report.pk)  # a redelivery: nothing is rebuilt
    report.refresh_from_db()
    assert report.finished_at == finished and html.stat().st_mtime_ns == stamp

    # A worker that died mid-way left the row running and a half-written folder.
    other = _start(complete_study)
    StudyReport.objects.filter(pk=other.pk).update(status="running", progress=0.4)
    stale = Path(data_dir) / other.folder / "report" / "half-written.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_text("junk")
    build_study_report(report_id=other.pk)
    other.refresh_from_db()
    assert other.status == "done" and other.progress == 1.0 and not stale.exists()


def test_a_failed_build_is_recorded(complete_study):
    report = _start(complete_study)
    complete_study.cases.filter(number=1).update(probabilities=None)  # predictions lose case 1
    failed = reports.report_build(report_id=report.pk)
    assert failed.status == "failed" and "case" in failed.error and failed.finished_at is not None


def test_report_page_json_and_files(complete_study, client_as):
    report = reports.report_build(report_id=_start(complete_study).pk)
    client = client_as("researcher")
    page = client.get(reverse("study_report_detail", args=[complete_study.pk, report.pk])).content.decode()
    assert report.inputs_sha256 in page
    for name in (
        "report.html",
        "report.pdf",
        "kappa_differences.csv",
        "observers.csv",
        "report.json",
        "roc_model.png",
        "roc_model.svg",
        "responses.csv",
        "model_predictions.csv",
    ):
        assert reverse("study_report_file", args=[complete_study.pk, report.pk, name]) in page, name
    assert "noninferior" in page or "superior" in page
    data = client.get(reverse("study-report", args=[complete_study.pk, report.pk])).json()
    assert (data["status"], data["progress"], data["inputs_sha256"]) == ("done", 1.0, report.inputs_sha256)
    assert data["summary"]["n_readers"] == 3 and len(data["files"]) == len(REPORT_FILES) + len(REPORTING_FILES) + 2

    html = client.get(reverse("study_report_file", args=[complete_study.pk, report.pk, "report.html"]))
    assert html.status_code == 200 and html["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in html["Content-Security-Policy"]
    assert report.inputs_sha256 in b"".join(html.streaming_content).decode()
    csv_file = client.get(reverse("study_report_file", args=[complete_study.pk, report.pk, "kappa_differences.csv"]))
    assert csv_file["Content-Disposition"].startswith("attachment")
    header = b"".join(csv_file.streaming_content).decode().splitlines()[0]
    assert header == "task,a,condition_a,b,condition_b,estimate,boot_mean,ci_low,ci_high,margin,verdict"
    dashboard = client.get(reverse("study_detail", args=[complete_study.pk])).content.decode()
    assert report.inputs_sha256[:12] in dashboard
    assert reverse("study_report_detail", args=[complete_study.pk, report.pk]) in dashboard


def test_report_files_refuse_path_traversal(complete_study, client_as, data_dir):
    report = reports.report_build(report_id=_start(complete_study).pk)
    secret = Path(data_dir) / "secret.txt"
    secret.write_text("not yours")
    client = client_as("researcher")
    base = f"/studies/{complete_study.pk}/reports/{report.pk}/"
    for name in (
        "..",
        "..%2F..%2F..%2Fsecret.txt",
        "%2E%2E%2Fsecret.txt",
        "..%5C..%5Csecret.txt",
        "secret.txt",
        "report.json.bak",
        ".",
        "inputs",
    ):
        response = client.get(base + name)
        assert response.status_code == 404, name
        assert b"not yours" not in response.content
    for name in ("../../../secret.txt", "../inputs/responses.csv", "/etc/passwd", "report/report.html"):
        assert reports.report_file_path(report, name) is None
    # A report of another study is not reachable through this study's URL.
    other = services.study_create(name="other", dataset=complete_study.dataset, cases=2, seed=9)
    assert client.get(f"/studies/{other.pk}/reports/{report.pk}/report.html").status_code == 404


def test_command_with_study_keeps_the_report_and_copies_it(complete_study, tmp_path, data_dir):
    out = tmp_path / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(
        "reader_report",
        "--study",
        complete_study.name,
        "--out",
        str(out),
        "--iterations",
        str(ITERATIONS),
        "--seed",
        "4",
        "--estimate",
        "all-cases",
        stdout=stdout,
        stderr=stderr,
    )
    report = StudyReport.objects.get()
    assert (report.status, report.iterations, report.seed) == ("done", ITERATIONS, 4)
    for name in (*REPORT_FILES, "responses.csv", "model_predictions.csv"):
        assert (out / name).is_file(), name
    digest = hashlib.sha256((out / "responses.csv").read_bytes() + (out / "model_predictions.csv").read_bytes())
    assert report.inputs_sha256 == digest.hexdigest()
    assert report.inputs_sha256 in stdout.getvalue() and "3 readers and the model" in stdout.getvalue()
    assert "100%" in stderr.getvalue() and "bootstrap" in stderr.getvalue()
    kept = json.loads((out / "report.json").read_text())
    assert kept["estimate"] == "all-cases" and "estimate-all-cases" in {d["key"] for d in kept["deviations"]}
    assert report.summary["estimate"] == "all-cases"

    with pytest.raises(CommandError, match="no study named"):
        call_command("reader_report", "--study", "nope", "--out", str(out))
    with pytest.raises(CommandError, match="not both"):
        call_command("reader_report", "--study", complete_study.name, "--responses", "r.csv", "--out", str(out))
    with pytest.raises(CommandError, match="give --responses and --predictions"):
        call_command("reader_report", "--out", str(out))
