"""The researchers' reader-study pages on real PostgreSQL: who may see them, the create form
(queues the preparation once), the dashboard and its progress JSON, the add-reader form and the
two CSV downloads.

Who may see what: alice (researcher) every page; rita (reader, even when invited to the study),
lena (labeler) and nora (no role) get 403; an anonymous visitor is sent to the login page (the
JSON endpoints answer 403)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from common.queueing import QueueUnavailable
from readerstudy import services
from readerstudy.models import Phase, ReaderStudy, StudyReport
from readerstudy.report import reports
from readerstudy.tasks import prepare_study
from tests.readerstudy.factories import StudyReportFactory
from tests.readerstudy.helpers import answer_phase, invite, study_with_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(dicom_bytes, tiny_bundle, data_dir):
    return study_with_model(dicom_bytes, tiny_bundle, data_dir, cases=8)


def _urls(study, report):
    pages = [
        reverse("study_list"),
        reverse("study_detail", args=[study.pk]),
        reverse("study_export_file", args=[study.pk, "responses.csv"]),
        reverse("study_export_file", args=[study.pk, "model_predictions.csv"]),
        reverse("study_report_detail", args=[study.pk, report.pk]),
        reverse("study_report_file", args=[study.pk, report.pk, "responses.csv"]),
    ]
    posts = [reverse("study_add_reader", args=[study.pk]), reverse("study_report_start", args=[study.pk])]
    api = [reverse("study-progress", args=[study.pk]), reverse("study-report", args=[study.pk, report.pk])]
    return pages, posts, api


def test_role_matrix(study, users, client_as):
    services.reader_add(study=study, user=users["reader"], group="expert", training="orthopedics_attending")
    report = StudyReportFactory(study=study, folder="reader-reports/x", iterations=10)
    (reports.report_folder(report) / "inputs").mkdir(parents=True)
    (reports.report_folder(report) / "inputs" / "responses.csv").write_text("reader\n")
    pages, posts, api = _urls(study, report)

    researcher = client_as("researcher")
    for url in pages + api:
        assert researcher.get(url).status_code == 200, url
    for role in ("reader", "labeler", "norole"):
        client = client_as(role)
        for url in pages + api:
            response = client.get(url)
            assert response.status_code == 403, (role, url)
            assert b"R01" not in response.content and b"reader,group" not in response.content
        for url in posts:
            assert client.post(url, {"username": "nora", "group": "expert", "training": "x_y"}).status_code == 403
    anonymous = Client()
    for url in pages + posts:
        response = anonymous.get(url) if url in pages else anonymous.post(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    for url in api:
        assert anonymous.get(url).status_code in (401, 403), url
    assert StudyReport.objects.count() == 1 and study.readers.count() == 1  # nothing was done by the refused


def test_the_nav_links_researchers_only(study, client_as):
    assert 'href="/studies/"' in client_as("researcher").get("/").content.decode()
    assert 'href="/studies/"' not in client_as("reader").get("/").content.decode()


def test_create_form_queues_the_preparation_once(study, client_as, django_capture_on_commit_callbacks):
    client = client_as("researcher")
    page = client.get(reverse("study_list")).content.decode()
    assert study.name in page and 'value="100"' in page and 'value="7"' in page
    form = {"name": "pilot-2", "dataset": study.dataset_id, "cases": 4, "seed": 5, "washout_days": 2,
            "aided_phase": "on"}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("study_list"), form)
    created = ReaderStudy.objects.get(name="pilot-2")
    assert response.status_code == 302 and response["Location"] == reverse("study_detail", args=[created.pk])
    assert len(callbacks) == 1  # prepare_study, once, after the commit
    assert (created.status, created.case_count, created.seed, created.washout) == (
        "preparing",
        4,
        5,
        dt.timedelta(days=2),
    )
    assert created.aided_phase and created.model_version_id == study.model_version_id
    assert created.created_by.username == "alice"
    preparing = client.get(reverse("study_detail", args=[created.pk])).content.decode()
    assert "preparing" in preparing and "study-dashboard.js" in preparing
    assert client.get(reverse("study-progress", args=[created.pk])).json()["status"] == "preparing"

    prepare_study(study_id=created.pk)  # what the worker does
    prepare_study(study_id=created.pk)  # a redelivery changes nothing
    created.refresh_from_db()
    assert created.status == "open" and all(c.crop for c in created.cases.all())
    assert client.get(reverse("study-progress", args=[created.pk])).json()["status"] == "open"
    listing = client.get(reverse("study_list")).content.decode()
    assert "pilot-2" in listing and "open" in listing


def test_with_the_broker_away_no_study_or_report_is_kept_that_no_worker_would_see(study, users, client_as, request):
    request.getfixturevalue("broker_away")  # tests/ml/test_operations.py: a broker port where nothing listens
    client = client_as("researcher")
    form = {"name": "pilot-3", "dataset": study.dataset_id, "cases": 4, "seed": 5, "washout_days": 2,
            "aided_phase": "on"}  # fmt: skip
    page = client.post(reverse("study_list"), form, follow=True)
    assert page.status_code == 200 and b"task queue is unavailable; try again when it is back" in page.content
    assert not ReaderStudy.objects.filter(name="pilot-3").exists()
    for i, training in enumerate(("orthopedics_attending", "orthopedics_attending", "emergency_resident")):
        invite(study, f"sim{i}", group="expert" if i < 2 else "resident", training=training)
    call_command("simulate_readers", "--study", study.name, "--seed", "1")
    with pytest.raises(QueueUnavailable, match="task queue is unavailable"):
        reports.report_start(study=study, user=users["researcher"], iterations=10, queue=True)
    assert StudyReport.objects.count() == 0


def test_create_form_shows_the_services_message(study, client_as, django_capture_on_commit_callbacks):
    client = client_as("researcher")
    base = {"dataset": study.dataset_id, "seed": 0, "washout_days": 7, "aided_phase": "on"}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        too_many = client.post(reverse("study_list"), {**base, "name": "big", "cases": 10_000})
        taken = client.post(reverse("study_list"), {**base, "name": study.name, "cases": 2})
        bad_name = client.post(reverse("study_list"), {**base, "name": "", "cases": 2})
    assert not callbacks and ReaderStudy.objects.count() == 1
    assert too_many.status_code == 400 and "a study of 10000 cases needs more" in too_many.content.decode()
    assert f"a study named &#x27;{study.name}&#x27; exists already" in taken.content.decode()
    assert bad_name.status_code == 400 and "errorlist" in bad_name.content.decode()
    study.model_version.is_active = False
    study.model_version.save()
    no_model = client.post(reverse("study_list"), {**base, "name": "x", "cases": 2})
    assert "no classifier is active" in no_model.content.decode()
    without_aid = {**base, "name": "plain", "cases": 2}
    without_aid.pop("aided_phase")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert client.post(reverse("study_list"), without_aid).status_code == 302
    assert len(callbacks) == 1
    plain = ReaderStudy.objects.get(name="plain")
    assert plain.model_version_id is None and not plain.aided_phase


def test_dashboard_and_progress_json(study, users, client_as):
    done = invite(study, "erin", "expert", "orthopedics_attending")
    waiting = invite(study, "ray", "resident", "emergency_resident")
    fresh = invite(study, "ivy", "resident", "sports_medicine")
    for _ in range(3):
        answer_phase(done)
    answer_phase(waiting)  # phase 1 done: washout runs
    finished = Phase.objects.get(reader=waiting, condition="model_quality").finished_at
    client = client_as("researcher")
    data = client.get(reverse("study-progress", args=[study.pk])).json()
    assert (data["status"], data["cases"], data["phases"]) == (
        "open",
        8,
        ["model_quality", "full_quality", "model_aided"],
    )
    rows = {r["code"]: r for r in data["readers"]}
    assert set(rows) == {done.code, waiting.code, fresh.code}
    r = rows[done.code]
    assert [(p["answered"], p["total"]) for p in r["phases"]][:2] == [(8, 8), (8, 8)]
    aided = r["phases"][2]  # the cases shown are answered; where phase 2 agreed with the model, carried over
    assert aided["answered"] == aided["total"] and aided["answered"] + aided["carried_over"] == 8
    assert r["done"] is True and r["median_seconds"] is not None
    assert all(p["started_at"] and p["finished_at"] for p in r["phases"])
    w = rows[waiting.code]
    assert [(p["answered"], p["total"]) for p in w["phases"]] == [(8, 8), (0, 8), (0, None)]
    assert dt.datetime.fromisoformat(w["washout_ends"]) == finished + dt.timedelta(days=7)
    assert w["washout_over"] is False and w["done"] is False
    assert (w["user"], w["group"], w["training"]) == ("ray", "resident", "emergency_resident")
    f = rows[fresh.code]
    assert f["washout_ends"] is None and f["median_seconds"] is None
    assert [p["answered"] for p in f["phases"]] == [0, 0, 0]

    page = client.get(reverse("study_detail", args=[study.pk])).content.decode()
    assert "8 of 8" in page and "0 of 8" in page and "0 of ?" in page and "sports_medicine" in page
    assert (finished + dt.timedelta(days=7)).isoformat() in page
    assert reverse("study-progress", args=[study.pk]) in page and "study-dashboard.js" in page
    for name in ("responses.csv", "model_predictions.csv"):
        assert reverse("study_export_file", args=[study.pk, name]) in page
    assert "orthopedics_attending" in page  # the training suggestions


def test_add_reader_form(study, users, client_as):
    client = client_as("researcher")
    url = reverse("study_add_reader", args=[study.pk])
    response = client.post(url, {"username": "nora", "group": "resident", "training": "sports_medicine"})
    assert response.status_code == 302
    reader = study.readers.get()
    assert (reader.user.username, reader.code, reader.group, reader.training) == (
        "nora",
        "R01",
        "resident",
        "sports_medicine",
    )
    assert reader.user.groups.filter(name="reader").exists()
    again = client.post(url, {"username": "nora", "group": "resident", "training": "sports_medicine"})
    assert again.status_code == 400 and "is a reader of" in again.content.decode()
    unknown = client.post(url, {"username": "nobody", "group": "expert", "training": "radiology_attending"})
    assert "there is no active user named &#x27;nobody&#x27;" in unknown.content.decode()
    bad = client.post(url, {"username": "lena", "group": "expert", "training": "Bad Training"})
    assert bad.status_code == 400 and "a training is a lower-case key" in bad.content.decode()
    assert study.readers.count() == 1


def _csv(response):
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_downloads_have_exactly_the_issues_columns(study, users, client_as):
    reader = invite(study, "erin", "expert", "orthopedics_attending")
    answer_phase(reader, choose=lambda case: "arthroplasty")
    client = client_as("researcher")
    responses = client.get(reverse("study_export_file", args=[study.pk, "responses.csv"]))
    assert responses.status_code == 200 and responses["Content-Type"].startswith("text/csv")
    assert responses["Content-Disposition"] == 'attachment; filename="responses.csv"'
    rows = _csv(responses)
    # The issue's eight columns, in order, then the seconds each answer took (the aided-reading
    # times; reader_report reads the column when it is there).
    assert rows[0] == ["reader", "group", "training", "condition", "case", "patient", "truth", "answer",
                       "seconds"]  # fmt: skip
    assert all(float(r[8]) >= 0 for r in rows[1:])
    assert len(rows) == 1 + 8  # the raw download holds every answer so far, complete or not
    assert {(r[0], r[1], r[2], r[3], r[7]) for r in rows[1:]} == {
        ("R01", "expert", "orthopedics_attending", "model_quality", "arthroplasty")
    }
    assert sorted(int(r[4]) for r in rows[1:]) == list(range(1, 9))
    predictions = client.get(reverse("study_export_file", args=[study.pk, "model_predictions.csv"]))
    assert predictions["Content-Disposition"] == 'attachment; filename="model_predictions.csv"'
    rows = _csv(predictions)
    assert rows[0] == ["case", "patient", "truth", "p_normal", "p_fn_displaced", "p_fn_nondisplaced",
                       "p_intertrochanteric", "p_orif", "p_arthroplasty"]  # fmt: skip
    assert len(rows) == 1 + 8
    for name in ("report.html", "..", "responses.csv.bak", "..%2F..%2Fsettings.py"):
        assert client.get(f"/studies/{study.pk}/export/{name}").status_code == 404, name
