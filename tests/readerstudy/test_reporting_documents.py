"""A study report's reporting documents on real PostgreSQL: CLAIM, STARD-AI and TRIPOD+AI and the
flow diagram beside report.html, every item the platform claims filled with its figures, the
flow's counts down to each phase's answers, and the "Reporting documents" section and PDF page."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from ml.core.checklists import AUTHORS, fill
from readerstudy.models import Response
from readerstudy.report import records, reports
from readerstudy.report.reader_report import FIGURES, pdf_sections
from tests.readerstudy.helpers import answer_phase, invite, study_with_model

pytestmark = pytest.mark.django_db

CASES = 8


@pytest.fixture
def built(dicom_bytes, tiny_bundle, data_dir):
    """A study of 8 cases, three readers who answered everything and one who answered nothing,
    and its report built (50 iterations)."""
    study = study_with_model(dicom_bytes, tiny_bundle, data_dir, cases=CASES)
    for code, group, training, every in (
        ("erin", "expert", "orthopedics_attending", 1),
        ("ed", "expert", "orthopedics_attending", 3),
        ("ray", "resident", "orthopedics_resident", 2),
    ):
        reader = invite(study, code, group, training)
        for _ in range(3):
            answer_phase(reader, choose=lambda case, every=every: case.truth if case.number % every == 0 else "normal")
    invite(study, "ivy", "resident", "emergency_resident")
    report = reports.report_start(study=study, user=None, iterations=50, queue=False)
    report = reports.report_build(report_id=report.pk)
    assert report.status == "done", report.error
    return study, report


def test_the_documents_lie_beside_report_html(built):
    _, report = built
    folder = reports.report_folder(report) / "report"
    for name in ("report.html", "claim.html", "stard_ai.html", "tripod_ai.html", "flow.svg", "flow.png",
                 "claim.md", "stard_ai.md", "tripod_ai.md"):  # fmt: skip
        assert (folder / name).is_file(), name
    page = (folder / "report.html").read_text()
    assert 'id="reporting-documents"' in page
    for href in ("claim.html", "stard_ai.html", "tripod_ai.html", "flow.svg"):
        assert f'href="{href}"' in page
    assert "data:image/svg+xml;base64," in page
    data = json.loads((folder / "report.json").read_text())
    pages = len(re.findall(rb"/Type /Page\b", (folder / "report.pdf").read_bytes()))
    assert pages == sum(n for _, n in pdf_sections(data)) + len(FIGURES) + 1  # the flow diagram's page


def test_the_flow_counts_the_study_down_to_each_phase(built):
    study, report = built
    flow = records.study_flow(study=study)
    assert flow.cases == CASES == study.cases.count()
    assert [p.condition for p in flow.phases] == list(study.phases)
    for phase in flow.phases:
        answers = Response.objects.filter(case__study=study, condition=phase.condition)
        assert phase.answers == answers.count() == 3 * CASES
        assert phase.readers == answers.values("reader").distinct().count() == 3
        assert phase.cases_answered_by_all == CASES
    assert flow.labelled == sum(s.radiographs for s in flow.splits.values())
    stored = json.loads((reports.report_folder(report) / "report" / "report.json").read_text())["reporting"]["flow"]
    assert stored["received"] == flow.received and stored["cases"] == CASES


def test_every_item_the_platform_claims_is_filled_with_its_figures(built):
    study, report = built
    data = json.loads((reports.report_folder(report) / "report" / "report.json").read_text())
    complete = reports.complete_readers(study)
    facts = records.study_facts_of(study=study, report=data, complete=complete, flow=records.study_flow(study=study))
    answers = {}
    for checklist in records.STUDY_CHECKLISTS:
        rows = fill(checklist, facts)
        claimed = [r for r in rows if r["claimed"]]
        assert claimed and all(r["filled"] and r["answer"] for r in claimed), [r["number"] for r in claimed]
        assert all(r["answer"] == AUTHORS for r in rows if not r["claimed"])
        answers[checklist.key] = {r["number"]: r["answer"] for r in rows}
        html = (reports.report_folder(report) / "report" / f"{checklist.key}.html").read_text()
        assert html.count('class="filled"') == len(claimed)
    stard, claim, tripod = answers["stard_ai"], answers["claim"], answers["tripod_ai"]
    assert "3 readers" in stard["A1"] and "expert 2" in stard["A1"] and "resident 1" in stard["A1"]
    assert f"{CASES} hips" in stard["A2"] and "washout of 7.0 days" in stard["A2"]
    assert "Median time per case" in stard["A3"]
    margin = data["margin"]["value"]
    assert "50 patient-bootstrap iterations" in stard["14"] and f"{margin:.3f}" in stard["14"]
    assert "IoU ≥ 0.5" in claim["14"]
    table = data["reporting"]["flow"]
    assert f"{table['received']} received" in claim["8"] and f"{table['labelled']} labelled" in claim["8"]
    assert f"bundle SHA-256 {study.model_version.bundle_sha256}" in claim["22"]
    kappa = next(r for r in data["observers"] if r["observer"] == "model" and r["task"] == "binary")["kappa"]
    assert f"{kappa:.3f}" in claim["36"]
    assert "not computed" in tripod["23b"]  # the tiny model was never evaluated on its test split
    test_split = next(s for s in facts["table1"]["per_split"] if s["split"] == "test")
    assert f"test {test_split['patients']} patients" in claim["20"]
    titles = [d["title"] for d in data["deviations"]]
    assert all(title in claim["38"] for title in titles)


def test_the_documents_are_served_beside_the_report(built, client_as):
    study, report = built
    client = client_as("researcher")
    listed = client.get(reverse("study_report_detail", args=[study.pk, report.pk])).content.decode()
    page = client.get(reverse("study_report_file", args=[study.pk, report.pk, "report.html"]))
    assert page.status_code == 200
    body = b"".join(page.streaming_content).decode()
    for name in ("claim.html", "stard_ai.html", "tripod_ai.html", "flow.svg", "claim.md"):
        assert f'href="{name}"' in body  # relative: the file view serves it beside report.html
        url = reverse("study_report_file", args=[study.pk, report.pk, name])
        assert f'href="{url}"' in listed, name  # the report page lists it with the other files
        served = client.get(url)
        assert served.status_code == 200, name
    assert (
        client_as("reader").get(reverse("study_report_file", args=[study.pk, report.pk, "claim.html"])).status_code
        == 403
    )


def test_the_command_copies_the_documents_with_the_report(built, tmp_path):
    study, _ = built
    out = tmp_path / "out"
    call_command("reader_report", "--study", study.name, "--out", str(out), "--iterations", "20",
                 stdout=io.StringIO(), stderr=io.StringIO())  # fmt: skip
    for name in ("report.html", "claim.html", "stard_ai.html", "tripod_ai.html", "flow.svg", "flow.png"):
        assert (out / name).is_file(), name
