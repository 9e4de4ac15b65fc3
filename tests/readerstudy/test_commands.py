"""The reader study's management commands on real PostgreSQL: create_reader_study, add_reader,
simulate_readers and export_responses, their messages and refusals, and the statistics report
(``reader_report``) run on the exported files of a simulated study."""

from __future__ import annotations

import csv
import datetime as dt
import re
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from ml.models import DatasetHip, ModelVersion, Split
from readerstudy import services
from readerstudy.models import Phase, Reader, ReaderStudy, Response
from tests.readerstudy.helpers import CONDITIONS, answer_phase, invite, study_with_model

pytestmark = pytest.mark.django_db

RESPONSE_HEADER = "reader,group,training,condition,case,patient,truth,answer,seconds"
PREDICTION_HEADER = (
    "case,patient,truth,p_normal,p_fn_displaced,p_fn_nondisplaced,p_intertrochanteric,p_orif,p_arthroplasty"
)
# Both groups, two trainings each, two readers per training: the report's margin has pairs.
PANEL = [
    ("ortho1", "expert", "orthopedics_attending"),
    ("ortho2", "expert", "orthopedics_attending"),
    ("radio1", "expert", "radiology_attending"),
    ("radio2", "expert", "radiology_attending"),
    ("ores1", "resident", "orthopedics_resident"),
    ("ores2", "resident", "orthopedics_resident"),
    ("eres1", "resident", "emergency_resident"),
    ("eres2", "resident", "emergency_resident"),
]


def run(name: str, *args: str) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def refused(name: str, *args: str) -> str:
    with pytest.raises(CommandError) as info:
        run(name, *args)
    return str(info.value)


def answers_of(study: ReaderStudy) -> dict[tuple[str, str, int], str]:
    return {
        (r.reader.code, r.condition, r.case.number): r.answer
        for r in Response.objects.filter(reader__study=study).select_related("reader", "case")
    }


# --------------------------------------------------------------------------- create_reader_study


def test_create_reader_study_draws_and_freezes_and_prints_the_id(study):
    output = run(
        "create_reader_study", "--name", "second", "--cases", "5", "--seed", "9", "--dataset",
        str(study.dataset_id), "--washout-days", "0.5", "--no-progress",
    )  # fmt: skip
    created = ReaderStudy.objects.get(name="second")
    assert output.strip().splitlines()[-1] == str(created.pk)
    assert created.status == ReaderStudy.Status.OPEN and created.case_count == 5 and created.seed == 9
    assert created.washout == dt.timedelta(hours=12)
    assert created.model_version_id == study.model_version_id  # the active classifier by default
    assert created.aided_phase and created.phases == tuple(CONDITIONS)
    cases = list(created.cases.select_related("dataset_hip"))
    assert len(cases) == 5 and {c.dataset_hip.split for c in cases} == {Split.TEST}
    assert all(c.probabilities and c.predicted_class and c.crop.name and c.heatmap.name for c in cases)

    # A washout of 0 is allowed; the model can be named; the dataset can be named by its name too.
    by_name = run(
        "create_reader_study", "--name", "third", "--cases", "2", "--dataset", str(study.dataset_id),
        "--washout-days", "0", "--model", str(study.model_version_id),
    )  # fmt: skip
    assert ReaderStudy.objects.get(pk=int(by_name.split()[-1])).washout == dt.timedelta(0)


def test_create_reader_study_refuses_with_clear_messages(study):
    dataset = str(study.dataset_id)
    tests = DatasetHip.objects.filter(dataset=study.dataset, split=Split.TEST).count()
    base = ("create_reader_study", "--cases", "2", "--no-progress")
    assert "unknown dataset version '999999'" in refused(*base, "--name", "x", "--dataset", "999999")
    assert "exists already" in refused(*base, "--name", study.name, "--dataset", dataset)
    message = refused("create_reader_study", "--name", "big", "--cases", str(tests + 1), "--dataset", dataset)
    assert f"has {tests} test hips" in message and f"{tests + 1} cases needs more" in message
    assert "--washout-days must be a number >= 0" in refused(
        *base, "--name", "x", "--dataset", dataset, "--washout-days", "-1"
    )
    assert "unknown model version 424242" in refused(*base, "--name", "x", "--dataset", dataset, "--model", "424242")
    assert not ReaderStudy.objects.exclude(pk=study.pk).exists()  # nothing half made

    # Without an active classifier: refused, unless phase 3 is off (then no model is needed).
    ModelVersion.objects.update(is_active=False)
    assert "no classifier is active" in refused(*base, "--name", "plain", "--dataset", dataset)
    output = run(*base, "--name", "plain", "--dataset", dataset, "--no-aided")
    plain = ReaderStudy.objects.get(name="plain")
    assert output.split()[-1] == str(plain.pk)
    assert plain.model_version is None and not plain.aided_phase and plain.status == ReaderStudy.Status.OPEN
    assert plain.phases == ("model_quality", "full_quality")


# --------------------------------------------------------------------------- add_reader


def test_add_reader_invites_and_creates_users(study, users):
    output = run(
        "add_reader", "--study", study.name, "--user", "rita", "--group", "expert", "--training",
        "orthopedics_attending",
    )  # fmt: skip
    assert output.strip() == f"R01: rita reads {study.name} as expert (orthopedics_attending)"
    reader = Reader.objects.get(study=study, user=users["reader"])
    assert (reader.code, reader.group, reader.training) == ("R01", "expert", "orthopedics_attending")

    output = run(
        "add_reader", "--study", study.name, "--user", "newdoc", "--group", "resident", "--training",
        "emergency_resident", "--create", "--password", "s3cret-pass",
    )  # fmt: skip
    assert "R02: newdoc (new user)" in output
    newdoc = get_user_model().objects.get(username="newdoc")
    assert newdoc.check_password("s3cret-pass") and newdoc.groups.filter(name="reader").exists()

    run("add_reader", "--study", study.name, "--user", "nopass", "--group", "resident", "--training", "x_y", "--create")
    assert not get_user_model().objects.get(username="nopass").has_usable_password()


def test_add_reader_refuses_with_clear_messages(study, users):
    args = ("--group", "expert", "--training", "orthopedics_attending")
    assert "no reader study named 'nope'" in refused("add_reader", "--study", "nope", "--user", "rita", *args)
    message = refused("add_reader", "--study", study.name, "--user", "ghost", *args)
    assert "no user named 'ghost'" in message and "--create" in message
    assert "group must be one of expert, resident" in refused(
        "add_reader", "--study", study.name, "--user", "rita", "--group", "student", "--training", "x_y"
    )
    assert "training 'Bad Training'" in refused(
        "add_reader", "--study", study.name, "--user", "rita", "--group", "expert", "--training", "Bad Training"
    )
    run("add_reader", "--study", study.name, "--user", "rita", *args)
    assert "is a reader of" in refused("add_reader", "--study", study.name, "--user", "rita", *args)
    # A refused invitation of a new user leaves no user behind.
    refused("add_reader", "--study", study.name, "--user", "ghost", "--group", "x", "--training", "y_z", "--create")
    assert not get_user_model().objects.filter(username="ghost").exists()
    assert "--password only goes with --create" in refused(
        "add_reader", "--study", study.name, "--user", "rita", *args, "--password", "x"
    )


# --------------------------------------------------------------------------- simulate_readers


def test_simulate_readers_answers_every_phase_through_the_rules(study):
    readers = [invite(study, name, group, training) for name, group, training in PANEL[:2] + PANEL[4:6]]
    started = invite(study, "started", "resident", "emergency_resident")
    answer_phase(started)  # phase 1 done by a person: the simulation leaves them alone
    before = answers_of(study)
    output = run("simulate_readers", "--study", study.name, "--seed", "4")
    assert "Simulated 4 reader(s)" in output and started.code not in output

    now = timezone.now()
    cases = dict(study.cases.values_list("pk", "predicted_class"))
    for reader in readers:
        assert f"{reader.code} {reader.group} {reader.training} ({reader.user}): 6 model_quality" in output
        rows = list(Response.objects.filter(reader=reader))
        assert len(rows) == len(cases) * len(CONDITIONS)
        by = {c: {r.case_id: r for r in rows if r.condition == c} for c in CONDITIONS}
        assert all(set(by[c]) == set(cases) for c in CONDITIONS)
        # Phase 3: the carried-over rows are exactly the cases where phase 2 agreed with the model.
        agree = {pk for pk, r in by["full_quality"].items() if r.answer == cases[pk]}
        assert {pk for pk, r in by["model_aided"].items() if r.carried_over} == agree
        assert all(by["model_aided"][pk].answer == by["full_quality"][pk].answer for pk in agree)
        # Times look real: seconds per answer, the washout between phases 1 and 2, all in the past.
        for r in rows:
            assert r.submitted_at <= now
            if not r.carried_over:
                assert 4 <= r.seconds <= 25
        phases = {p.condition: p for p in reader.phases.all()}
        assert all(p.finished_at for p in phases.values())
        assert phases["full_quality"].started_at >= phases["model_quality"].finished_at + study.washout
        assert phases["model_aided"].started_at > phases["full_quality"].finished_at
        assert f"({len(agree)} carried over from phase 2)" in output

    after = answers_of(study)
    assert {k: v for k, v in after.items() if k[0] == started.code} == before
    assert Phase.objects.filter(reader=started).count() == 1
    assert "nothing to simulate" in run("simulate_readers", "--study", study.name)
    assert answers_of(study) == after


def test_simulate_readers_is_seeded_and_can_pick_readers(study, users):
    # A second study of the same hips (same dataset, size and seed) with the same panel.
    run("create_reader_study", "--name", "twin", "--cases", "6", "--seed", "3", "--dataset", str(study.dataset_id),
        "--no-progress")  # fmt: skip
    twin = ReaderStudy.objects.get(name="twin")
    assert list(twin.cases.values_list("dataset_hip_id", flat=True)) == list(
        study.cases.values_list("dataset_hip_id", flat=True)
    )
    for name, group, training in PANEL[:4]:
        invite(study, name, group, training)
        invite(twin, name, group, training)
    run("simulate_readers", "--study", study.name, "--seed", "7")
    run("simulate_readers", "--study", twin.name, "--seed", "7")
    assert answers_of(study) == answers_of(twin) and len(answers_of(study)) == 4 * 6 * 3

    # Another seed, other answers; --user picks readers.
    other = services.study_prepare(
        study_id=services.study_create(name="other", dataset=study.dataset, cases=6, seed=3).pk
    )
    for name, group, training in PANEL[:4]:
        invite(other, name, group, training)
    output = run("simulate_readers", "--study", "other", "--seed", "8", "--user", "ortho1", "--user", "radio1")
    assert "Simulated 2 reader(s)" in output
    assert {code for code, _, _ in answers_of(other)} == {"R01", "R03"}
    run("simulate_readers", "--study", "other", "--seed", "8")
    assert answers_of(other) != answers_of(study)


def test_simulate_readers_refuses_with_clear_messages(study):
    assert "no reader study named 'nope'" in refused("simulate_readers", "--study", "nope")
    assert "not readers of hips: ghost" in refused("simulate_readers", "--study", study.name, "--user", "ghost")
    ReaderStudy.objects.filter(pk=study.pk).update(status=ReaderStudy.Status.FAILED, error="no pixels")
    assert "study hips is failed, not open: no pixels" in refused("simulate_readers", "--study", study.name)


# --------------------------------------------------------------------------- export_responses and the report


def test_export_responses_writes_the_two_files(study, tmp_path):
    for name, group, training in PANEL[:2]:
        invite(study, name, group, training)
    run("simulate_readers", "--study", study.name)
    out = tmp_path / "new" / "folder"
    output = run("export_responses", "--study", study.name, "--out", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["model_predictions.csv", "responses.csv"]  # no temporary left
    assert f"{out / 'responses.csv'}: 36 rows" in output and f"{out / 'model_predictions.csv'}: 6 rows" in output
    lines = (out / "responses.csv").read_text().splitlines()
    assert lines[0] == RESPONSE_HEADER and len(lines) == 1 + 2 * 6 * 3
    rows = list(csv.DictReader(lines))
    stored = answers_of(study)
    assert {(r["reader"], r["condition"], int(r["case"])): r["answer"] for r in rows} == stored
    assert {r["condition"] for r in rows} == set(CONDITIONS)
    predictions = (out / "model_predictions.csv").read_text().splitlines()
    assert predictions[0] == PREDICTION_HEADER and len(predictions) == 7

    # A second export replaces the files; an unknown study is refused.
    run("export_responses", "--study", study.name, "--out", str(out))
    assert (out / "responses.csv").read_text().splitlines() == lines
    assert "no reader study named 'nope'" in refused("export_responses", "--study", "nope", "--out", str(out))


def test_export_of_a_partly_answered_study_and_complete_only(study, tmp_path):
    invite(study, "ortho1")
    partial = invite(study, "ortho2")
    run("simulate_readers", "--study", study.name, "--user", "ortho1")
    answer_phase(partial)
    run("export_responses", "--study", study.name, "--out", str(tmp_path / "all"))
    run("export_responses", "--study", study.name, "--out", str(tmp_path / "done"), "--complete-only")
    assert len((tmp_path / "all" / "responses.csv").read_text().splitlines()) == 1 + 18 + 6
    assert len((tmp_path / "done" / "responses.csv").read_text().splitlines()) == 1 + 18


def test_reader_report_runs_on_a_simulated_study(dicom_bytes, tiny_bundle, data_dir, tmp_path: Path):
    study = study_with_model(dicom_bytes, tiny_bundle, data_dir, cases=8, radiographs=40, patients=32)
    for name, group, training in PANEL:
        run("add_reader", "--study", study.name, "--user", name, "--group", group, "--training", training, "--create")
    run("simulate_readers", "--study", study.name, "--seed", "1")
    run("export_responses", "--study", study.name, "--out", str(tmp_path / "export"))
    report = tmp_path / "report"
    output = run(
        "reader_report", "--responses", str(tmp_path / "export" / "responses.csv"), "--predictions",
        str(tmp_path / "export" / "model_predictions.csv"), "--out", str(report), "--iterations", "50",
    )  # fmt: skip
    patients = len(set(study.cases.values_list("dataset_hip__patient", flat=True)))
    assert f"8 cases of {patients} patients, 8 readers and the model, 50 bootstrap iterations" in output
    assert "same-training pairs" in output
    assert (report / "report.html").exists() and (report / "report.pdf").exists()


# --------------------------------------------------------------------------- the demo's study


def test_demo_study_is_made_once_with_simulated_readers_and_one_for_a_person(study, users):
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_study", Path(__file__).parents[2] / "scripts" / "demo_study.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    person = users["reader"]
    person.username = "reader1"
    person.save()
    model = demo.wait_for_classifier(0, 0)
    assert model is not None and model.pk == study.model_version_id
    summary = demo.make_demo_study(model)
    assert "demo-study is ready" in summary and "reader1 / demo-password" in summary
    made = ReaderStudy.objects.get(name="demo-study")
    tests = DatasetHip.objects.filter(dataset=study.dataset, split=Split.TEST).count()
    assert made.case_count == min(100, tests) and made.washout == dt.timedelta(minutes=1)
    readers = {r.user.username: r for r in made.readers.select_related("user")}
    assert set(readers) == {u for u, _, _ in demo.SIMULATED} | {"reader1"}
    assert {(r.group, r.training) for r in readers.values()} >= {
        ("expert", "orthopedics_attending"), ("expert", "radiology_attending"),
        ("resident", "orthopedics_resident"), ("resident", "radiology_resident"),
        ("resident", "emergency_resident"),
    }  # fmt: skip
    assert (readers["reader1"].group, readers["reader1"].training) == ("resident", "emergency_resident")
    assert not Response.objects.filter(reader=readers["reader1"]).exists()
    assert not Phase.objects.filter(reader=readers["reader1"]).exists()
    simulated = get_user_model().objects.get(username="ortho_attending1")
    assert simulated.check_password("demo-password")
    count = Response.objects.filter(reader__study=made).count()
    assert count == len(demo.SIMULATED) * made.case_count * 3
    # A second run changes nothing.
    demo.make_demo_study(model)
    assert Response.objects.filter(reader__study=made).count() == count
    assert made.readers.count() == len(demo.SIMULATED) + 1


# --------------------------------------------------------------------------- the admin


def test_admin_edits_settings_only_and_keeps_answers(study, client):
    from tests.accounts.factories import UserFactory

    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    reader = invite(study, "ortho1")
    base = "/admin/readerstudy"
    for page in ("readerstudy", "reader", "case", "response"):
        assert client.get(f"{base}/{page}/").status_code == 200, page
    assert (
        client.get(f"{base}/response/?condition=model_quality&reader__study__id__exact={study.pk}").status_code == 200
    )
    page = client.get(f"{base}/readerstudy/{study.pk}/change/").content.decode()
    assert 'name="washout"' in page and 'name="description"' in page and 'name="seed"' not in page
    assert "R01" in page  # the readers, inline and read only
    assert client.get(f"{base}/readerstudy/add/").status_code == 403
    assert client.get(f"{base}/response/add/").status_code == 403
    # A study without answers can be deleted; one with answers cannot, and answers never can.
    assert client.get(f"{base}/readerstudy/{study.pk}/delete/").status_code == 200
    answer_phase(reader)
    response = Response.objects.filter(reader=reader).first()
    assert client.get(f"{base}/readerstudy/{study.pk}/delete/").status_code == 403
    assert client.get(f"{base}/response/{response.pk}/delete/").status_code == 403
    assert client.post(f"{base}/response/{response.pk}/change/", {"answer": "orif"}).status_code == 403
    # The settings change; the frozen fields do not.
    form = {
        "name": "hips-renamed", "description": "now described", "washout": "2 00:00:00",
        "readers-TOTAL_FORMS": "1", "readers-INITIAL_FORMS": "1", "readers-MIN_NUM_FORMS": "0",
        "readers-MAX_NUM_FORMS": "1000", "readers-0-id": str(reader.pk), "readers-0-study": str(study.pk),
        "cases-TOTAL_FORMS": "6", "cases-INITIAL_FORMS": "6", "cases-MIN_NUM_FORMS": "0", "cases-MAX_NUM_FORMS": "1000",
        **{f"cases-{i}-id": str(pk) for i, pk in enumerate(study.cases.values_list("pk", flat=True))},
        **{f"cases-{i}-study": str(study.pk) for i in range(6)},
        "seed": "99",
    }  # fmt: skip
    result = client.post(f"{base}/readerstudy/{study.pk}/change/", form)
    assert result.status_code == 302, re.findall(r'class="errorlist[^>]*>(.*?)</ul>', result.content.decode(), re.S)
    study.refresh_from_db()
    assert (study.name, study.description, study.washout, study.seed) == (
        "hips-renamed", "now described", dt.timedelta(days=2), 3,
    )  # fmt: skip
