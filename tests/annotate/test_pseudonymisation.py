"""No direct identifier from the phantom DICOMs reaches a table, a page, an export or a log."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pydicom
import pytest
from django.core.management import call_command

from annotate.models import Radiograph

pytestmark = pytest.mark.django_db

# What the phantoms fill in about their patient (the test's own list: the platform keeps none).
IDENTIFYING_KEYWORDS = (
    "PatientName PatientID PatientBirthDate OtherPatientIDs PatientAddress ReferringPhysicianName "
    "PerformingPhysicianName OperatorsName InstitutionName InstitutionAddress AccessionNumber StudyID"
).split()


def identifiers_in(folder: Path) -> set[str]:
    found: set[str] = set()
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in IDENTIFYING_KEYWORDS:
            value = ds.get(keyword)
            if value is None or keyword.endswith("Sequence"):
                continue
            text = str(value).strip()
            if len(text) >= 5:
                found.add(text)
                found.update(part for part in text.split("^") if len(part) >= 5)
    return found


def test_phantom_identifiers_never_stored_shown_or_logged(tmp_path, client_as, caplog):
    phantoms = tmp_path / "phantoms"
    call_command("make_phantoms", studies=4, seed=11, out=str(phantoms), stdout=io.StringIO())
    secrets = identifiers_in(phantoms)
    # The phantoms carry names, IDs, birth dates, accession numbers, institutions.
    assert len(secrets) >= 10

    out = io.StringIO()
    with caplog.at_level(logging.DEBUG):
        call_command("import_dicom", str(phantoms), "--no-progress", stdout=out, stderr=io.StringIO())
    assert Radiograph.objects.exists()

    dump = io.StringIO()
    call_command("dumpdata", "annotate", "auth", stdout=dump)
    researcher = client_as("researcher")
    pages = [researcher.get("/radiographs/").content.decode(), researcher.get("/api/radiographs/").content.decode()]
    for radiograph in Radiograph.objects.all():
        pages.append(researcher.get(f"/radiographs/{radiograph.id}/").content.decode())
        pages.append(researcher.get(f"/api/radiographs/{radiograph.id}/").content.decode())
    everything = {
        "database dump": dump.getvalue(),
        "pages and API": "\n".join(pages),
        "command output": out.getvalue(),
        "logs": caplog.text,
    }
    for where, text in everything.items():
        leaked = sorted(secret for secret in secrets if secret in text)
        assert not leaked, f"{where} shows identifiers: {leaked[:5]}"
