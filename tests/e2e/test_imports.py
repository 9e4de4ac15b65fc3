"""Uploading DICOM through the browser: a real Celery worker imports the files,
the import page follows the job live and gives a reason for each rejected
file, and a double click on the upload button imports once."""

from __future__ import annotations

import re
import zipfile
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
from django.db import connection
from playwright.sync_api import expect

import annotate.tasks
from annotate.models import ImportJob, Patient, Radiograph
from tests.e2e.helpers import assert_no_identifiers, hips, table_locked

pytestmark = pytest.mark.e2e

JOB_URL = re.compile(r"/imports/(\d+)/$")


@pytest.fixture
def upload_files(tmp_path, dicom_bytes) -> list[str]:
    """What a researcher might pick: a non-DICOM file, a zip with one good
    entry and one that climbs out of its folder, two radiographs and a copy of
    the second under another name. The list is in upload order, and the worker
    imports in that order: the two rejections come before the first radiograph."""
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a DICOM file at all\n")
    with zipfile.ZipFile(folder / "batch.zip", "w") as archive:
        archive.writestr("in/c.dcm", dicom_bytes(seed=3, pixels=hips(3)))
        archive.writestr("../escape.dcm", dicom_bytes(seed=4, pixels=hips(4)))
    (folder / "a.dcm").write_bytes(dicom_bytes(seed=1, pixels=hips(1)))
    (folder / "b.dcm").write_bytes(dicom_bytes(seed=2, pixels=hips(2)))
    (folder / "b-copy.dcm").write_bytes((folder / "b.dcm").read_bytes())
    return [str(folder / name) for name in ["notes.txt", "batch.zip", "a.dcm", "b.dcm", "b-copy.dcm"]]


def test_upload_shows_live_progress_and_a_reason_for_each_rejected_file(page, login, shot, upload_files, celery_worker):
    login(page, "researcher")
    page.get_by_role("link", name="Import DICOM").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Import DICOM")
    page.get_by_label("Files").set_input_files(upload_files)

    # While the patient table is locked the worker refuses the first two files
    # and then waits at the first radiograph, so the page is seen mid-import.
    with table_locked(Patient):
        with page.expect_navigation(url=JOB_URL):
            page.get_by_role("button", name="Upload and import").click()
        job_id = int(JOB_URL.search(page.url).group(1))
        page.evaluate("window.sameDocument = true")  # gone if the page reloads
        status = page.locator("#job-status")
        expect(status).to_have_text("running", timeout=20_000)
        expect(page.locator('[data-count="rejected"]')).to_have_text("2")
        expect(page.locator('[data-count="imported"]')).to_have_text("0")
        expect(page.locator("#job-total")).to_have_text("6")
        expect(page.locator("#rejected tbody tr")).to_have_count(2)
        shot(page, "import-running")

    expect(status).to_have_text("done", timeout=30_000)
    assert page.evaluate("window.sameDocument") is True, "the import page reloaded instead of updating itself"
    expect(status).to_have_class("status done")
    expect(page.locator("#job-counts")).to_have_text("imported: 3, already present: 1, rejected: 2 of 6")
    assert page.locator("#job-progress").evaluate("p => [p.value, p.max]") == [6, 6]
    rows = page.locator("#rejected tbody tr")
    expect(rows).to_have_count(2)
    reasons = dict(row.split("\t") for row in rows.all_inner_texts())
    # Named by their position in the upload (the zip's entries in name order): never by the uploaded names.
    assert reasons == {
        "file 1": "not a DICOM file",
        "file 2": "zip entry escapes the target folder",
    }, reasons
    assert_no_identifiers(page.content(), "the import page")
    shot(page, "import")

    assert ImportJob.objects.get(id=job_id).status == "done"
    assert Radiograph.objects.filter(source="upload").count() == 3
    api = page.request.get(f"/api/imports/{job_id}/")  # with the browser's session
    assert api.ok and api.json()["counts"] == {"imported": 3, "present": 1, "rejected": 2}
    assert_no_identifiers(api.text(), "the import API")

    page.get_by_role("link", name="All imports").click()
    row = page.locator("table.table tbody tr", has=page.get_by_role("link", name=str(job_id), exact=True))
    expect(row.locator(".status")).to_have_text("done")
    expect(row.locator("td").last).to_have_text("6")
    assert_no_identifiers(page.content(), "the import list")
    shot(page, "imports")


def test_double_click_on_upload_creates_one_import(page, login, tmp_path, dicom_bytes, monkeypatch):
    # No worker here: what counts is how many jobs the clicks create and queue.
    queued: list[dict] = []
    monkeypatch.setattr(annotate.tasks, "import_job_run", SimpleNamespace(delay=lambda **kw: queued.append(kw)))
    upload = tmp_path / "one.dcm"
    upload.write_bytes(dicom_bytes(seed=7))
    login(page, "researcher")
    page.goto("/imports/")
    page.get_by_label("Files").set_input_files(str(upload))
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)

    # Two clicks 150 ms apart, as a person double-clicks. The job table is
    # locked meanwhile, so the first upload cannot have answered (and left the
    # page) before the second click: without the page's guard both would post.
    box = page.get_by_role("button", name="Upload and import").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    with table_locked(ImportJob) if connection.vendor == "postgresql" else nullcontext():
        page.mouse.click(x, y)
        page.wait_for_timeout(150)
        page.mouse.click(x, y)
        page.wait_for_timeout(300)
    page.wait_for_url(JOB_URL)
    page.wait_for_timeout(300)  # a second upload, had there been one, would be done by now
    assert len(posts) == 1, posts
    assert ImportJob.objects.count() == 1
    assert queued == [{"job_id": ImportJob.objects.get().id}]
    assert page.url.endswith(f"/imports/{ImportJob.objects.get().id}/")
