"""Nothing identifying at rest, and only pseudonyms leave (issue 14, items 2 and 3).

One patient's radiographs arrive by every route, with identifiers in the header, in a private
tag and in the file name: the import command, the upload form, the API, STOW-RS, and a real DCMTK
storescu to the listener (one file of which the ingest rejects). A web worker killed mid-upload
leaves its folder and its temporary file; the cleanup run at start removes them. Then every file
under DATA_DIR (names and bytes, inside the stored DICOMs too), a pg_dump of the database, the
pages, the API, every export and the logs are searched: none of the identifiers is found.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

from annotate import services
from annotate.archive.dicomnet import DicomListener
from annotate.archive.pseudonyms import pacs_link_open, uid_pseudonym
from annotate.labelling import exchange
from annotate.models import ImportJob, Radiograph
from tests.annotate.helpers import IDENTIFIERS, PRIVATE_VALUE, identifying_dicom, uids_of

pytestmark = pytest.mark.django_db(transaction=True)

FILE_NAME = "SMITH_JOHN_MRN4242"
AE_TITLE = "HIPSTUDY"


def unreadable_rle(seed: int) -> bytes:
    """Passes the listener's header check; the ingest cannot decode its pixels (a rejection)."""
    ds = pydicom.dcmread(io.BytesIO(identifying_dicom(seed)))
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([b"\x01\x00\x00\x00\x40\x00\x00\x00" + b"\x00" * 56 + b"not rle!" * 8])
    ds["PixelData"].VR = "OB"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[DicomListener]:
    started = DicomListener(ae_title=AE_TITLE, port=0, spool_dir=tmp_path / "data" / "spool", allowed_calling_ae=[])
    started.start()
    yield started
    started.stop()


def storescu(port: int, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["storescu", "-xr", "-aet", "MODALITY", "-aec", AE_TITLE, "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def stow_body(parts: list[bytes], boundary: str = "stowboundary") -> bytes:
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n" for part in parts
    )
    return body + f"--{boundary}--\r\n".encode()


def pg_dump() -> str:
    db = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
    command = ["pg_dump", "--data-only", "-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432)]
    command += ["-U", db["USER"], db["NAME"]]
    return subprocess.run(command, capture_output=True, text=True, check=True, env=env, timeout=120).stdout


def test_identifiers_sent_by_every_route_are_nowhere_at_rest_or_on_the_way_out(
    tmp_path: Path, client_as: Any, listener: DicomListener, caplog: Any, settings: Any
) -> None:
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # every upload goes through a temporary file
    caplog.set_level(logging.DEBUG)
    researcher = client_as("researcher")
    sent: list[bytes] = []

    def dicom(seed: int, **overrides: Any) -> bytes:
        sent.append(identifying_dicom(seed, **overrides))
        return sent[-1]

    # 1. manage.py import_dicom, the file named after the patient.
    source = tmp_path / "source"
    source.mkdir()
    (source / f"{FILE_NAME}.dcm").write_bytes(dicom(1))
    call_command("import_dicom", str(source), "--no-progress", stdout=io.StringIO())

    # 2. the upload form and 3. the API upload: a job each, run as the worker would.
    response = researcher.post("/imports/", {"files": [SimpleUploadedFile(f"{FILE_NAME}_form.dcm", dicom(2))]})
    assert response.status_code == 302, response.content
    response = researcher.post("/api/imports/", {"files": [SimpleUploadedFile(f"{FILE_NAME}_api.dcm", dicom(3))]})
    assert response.status_code == 202, response.content
    for job in ImportJob.objects.all():
        services.import_job_run(job_id=job.id)
    assert set(ImportJob.objects.values_list("status", flat=True)) == {"done"}

    # 4. STOW-RS.
    response = researcher.post(
        "/api/dicomweb/studies",
        stow_body([dicom(4)]),
        content_type='multipart/related; type="application/dicom"; boundary=stowboundary',
    )
    assert response.status_code == 200, response.content

    # 5. C-STORE by DCMTK storescu: one good file, one the ingest rejects.
    good, bad = tmp_path / f"{FILE_NAME}_cstore.dcm", tmp_path / f"{FILE_NAME}_bad.dcm"
    good.write_bytes(dicom(5))
    bad.write_bytes(unreadable_rle(6))
    sent.append(bad.read_bytes())
    result = storescu(listener.port, good, bad)
    assert result.returncode == 0, result.stdout + result.stderr
    assert listener.wait_idle(60)
    assert listener.counts["imported"] == 1 and listener.counts["rejected"] == 1
    rejected = Path(settings.DATA_DIR) / "spool" / "rejected"
    assert len(list(rejected.iterdir())) == 2  # the de-identified copy and its reason

    # 6. A web worker killed mid-upload: its upload folder and its temporary upload file stay.
    orphan = services.incoming_dir() / uuid.uuid4().hex / "00000"
    orphan.mkdir(parents=True)
    (orphan / "upload").write_bytes(dicom(7))
    temporary = Path(settings.FILE_UPLOAD_TEMP_DIR) / "tmpk1lled.upload.dcm"
    temporary.write_bytes(sent[-1])
    old = time.time() - 2 * settings.UPLOAD_ORPHAN_SECONDS
    for path in (orphan.parent, temporary):
        os.utime(path, (old, old))
    out = io.StringIO()
    call_command("cleanup_uploads", stdout=out)
    assert "removed: 1 folder(s), 1 temporary file(s)" in out.getvalue()

    radiographs = list(Radiograph.objects.all())
    assert len(radiographs) == 5, [r.source for r in radiographs]
    assert {r.source for r in radiographs} == {"cli", "upload", "api", "stow", "dicom_store"}

    # The link back to the PACS: the originals, but only encrypted.
    for radiograph in radiographs:
        link = pacs_link_open(radiograph.pacs_link)
        assert uid_pseudonym(link["sop_instance_uid"]) == radiograph.sop_instance_uid

    secrets = {*IDENTIFIERS.values(), PRIVATE_VALUE, FILE_NAME, "MRN4242"}
    secrets |= {part for value in IDENTIFIERS.values() for part in value.split("^")}
    secrets |= {uid for data in sent for uid in uids_of(data)}  # the PACS's own UIDs

    searched: dict[str, bytes] = {}
    for path in Path(settings.DATA_DIR).rglob("*"):
        searched[f"the name {path}"] = str(path.relative_to(settings.DATA_DIR)).encode()
        if path.is_file():
            searched[str(path)] = path.read_bytes()
            if path.suffix == ".dcm":  # inside the stored DICOMs, element by element
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                assert not any(element.tag.is_private for element in ds.iterall()), path
                searched[f"{path} (decoded)"] = str(ds).encode()
    assert any(name.endswith(".dcm") for name in searched)
    searched["pg_dump"] = pg_dump().encode()
    pages = ["/radiographs/", "/imports/", "/api/radiographs/", "/api/imports/"]
    for radiograph in radiographs:
        pages += [f"/radiographs/{radiograph.id}/", f"/api/radiographs/{radiograph.id}/"]
    for job in ImportJob.objects.all():
        pages += [f"/imports/{job.id}/", f"/api/imports/{job.id}/"]
    for page in pages:
        response = researcher.get(page)
        assert response.status_code == 200, page
        searched[page] = response.content
    for fmt in exchange.EXPORT_FORMATS:
        for ground_truth in (False, True):
            export = exchange.annotations_export(fmt=fmt, ground_truth=ground_truth)
            searched[f"export {fmt} {ground_truth}"] = export.data + export.filename.encode()
    searched["logs"] = caplog.text.encode()

    leaks = [(where, secret) for where, data in searched.items() for secret in secrets if secret.encode() in data]
    if leaks:
        for line in caplog.text.splitlines():
            if any(secret in line for _, secret in leaks):
                print("LEAK", line)
    assert not leaks, leaks[:10]

    # Item 3: the API names radiographs by their pseudonymous UIDs only.
    api = researcher.get("/api/radiographs/").json()
    rows = api["results"] if isinstance(api, dict) else api
    assert {row["sop_instance_uid"] for row in rows} == {r.sop_instance_uid for r in radiographs}
    assert all(row["sop_instance_uid"].startswith("2.25.") for row in rows)
