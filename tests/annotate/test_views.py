"""Every page and endpoint of the platform, against every role."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.urls import reverse

from annotate import services
from annotate.models import ImportJob, Radiograph

pytestmark = pytest.mark.django_db

ALL = ["researcher", "adjudicator", "labeler", "reader", "norole", "staff"]
# page (url name, args) -> roles that may open it
PAGES = {
    ("home", ()): ALL,
    ("radiograph_list", ()): ["researcher", "adjudicator", "staff"],
    ("radiograph_detail", ("rid",)): ["researcher", "adjudicator", "staff"],
    ("radiograph_preview", ("rid",)): ["researcher", "adjudicator", "staff"],
    ("import_list", ()): ["researcher", "staff"],
    ("password_change", ()): ALL,
    ("admin:index", ()): ["staff"],
}
API = {
    ("radiograph-list", ()): ["researcher", "adjudicator", "staff"],
    ("radiograph-detail", ("rid",)): ["researcher", "adjudicator", "staff"],
    ("radiograph-preview", ("rid",)): ["researcher", "adjudicator", "staff"],
    ("import-list", ()): ["researcher", "staff"],
}


@pytest.fixture
def radiograph(dicom_bytes) -> Radiograph:
    outcome = services.radiograph_ingest(data=dicom_bytes(), name="x.dcm", source="cli")
    return Radiograph.objects.get(id=outcome.radiograph_id)


def resolve(name: str, args: tuple, radiograph: Radiograph) -> str:
    return reverse(name, args=[radiograph.id if a == "rid" else a for a in args])


@pytest.mark.parametrize("page", list(PAGES), ids=lambda p: p[0])
def test_pages_by_role(page, client_as, radiograph):
    url = resolve(*page, radiograph)
    anonymous = client_as(None).get(url)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    for role in ALL:
        response = client_as(role).get(url)
        if role in PAGES[page]:
            assert response.status_code == 200, (role, url)
        elif page[0] == "admin:index":
            assert response.status_code == 302, (role, url)  # the admin sends non-staff to its login
        else:
            assert response.status_code == 403, (role, url)


@pytest.mark.parametrize("endpoint", list(API), ids=lambda p: p[0])
def test_api_by_role(endpoint, client_as, radiograph):
    url = resolve(*endpoint, radiograph)
    assert client_as(None).get(url).status_code == 403
    for role in ALL:
        expected = 200 if role in API[endpoint] else 403
        assert client_as(role).get(url).status_code == expected, (role, url)


def test_home_shows_each_role_its_next_step(client_as):
    assert b'data-role="researcher"' in client_as("researcher").get("/").content
    labeler_home = client_as("labeler").get("/").content
    assert b'data-role="labeler"' in labeler_home and b'data-role="researcher"' not in labeler_home
    assert b"has no role yet" in client_as("norole").get("/").content
    reader_home = client_as("reader").get("/").content
    assert b'data-role="reader"' in reader_home and b"Radiographs</a>" not in reader_home


def test_login_and_logout(client, users):
    from tests.accounts.factories import PASSWORD

    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    assert client.get("/").status_code == 302
    bad = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    assert bad.status_code == 200 and b"correct username and password" in bad.content


def test_password_change(client, users):
    from tests.accounts.factories import PASSWORD

    client.force_login(users["labeler"])
    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": "a-new-long-passphrase", "new_password2": "a-new-long-passphrase"},
    )
    assert response.status_code == 302
    users["labeler"].refresh_from_db()
    assert users["labeler"].check_password("a-new-long-passphrase")


def test_forged_post_without_csrf_token_is_refused(users, dicom_bytes):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(users["researcher"])
    upload = io.BytesIO(dicom_bytes())
    upload.name = "x.dcm"
    response = client.post(reverse("import_list"), {"files": [upload]})
    assert response.status_code == 403
    assert ImportJob.objects.count() == 0


def test_browser_upload_queues_an_import_and_reports_each_file(
    client_as, dicom_bytes, django_capture_on_commit_callbacks
):
    client = client_as("researcher")
    good = io.BytesIO(dicom_bytes(seed=1))
    good.name = "good.dcm"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("in/2.dcm", dicom_bytes(seed=2))
        zf.writestr("../escape.dcm", dicom_bytes(seed=3))
    archive.seek(0)
    archive.name = "batch.zip"
    junk = io.BytesIO(b"not dicom at all")
    junk.name = "notes.txt"
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("import_list"), {"files": [good, archive, junk]})
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert response["Location"] == reverse("import_detail", args=[job.id])
    assert len(callbacks) == 1  # the task is queued once, after the commit

    services.import_job_run(job_id=job.id)  # what the worker does
    job.refresh_from_db()
    assert job.status == "done" and job.total == 4
    assert job.counts() == {"imported": 2, "present": 0, "rejected": 2}
    page = client.get(reverse("import_detail", args=[job.id])).content.decode()
    assert "zip entry escapes the target folder" in page
    # Files are named by their position in the upload: the uploaded names are never kept.
    assert "<td>file 4</td><td>not a DICOM file</td>" in page and "<td>file 2</td>" in page
    assert not any(name in page for name in ("notes.txt", "batch.zip", "escape.dcm", "good.dcm"))
    # Running the job again (a redelivered task) changes nothing.
    services.import_job_run(job_id=job.id)
    assert Radiograph.objects.count() == 2 and job.items.count() == 4


def test_api_upload_and_status(client_as, dicom_bytes, django_capture_on_commit_callbacks):
    client = client_as("researcher")
    upload = io.BytesIO(dicom_bytes(seed=5))
    upload.name = "one.dcm"
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/api/imports/", {"files": [upload]})
    assert response.status_code == 202
    job_id = response.json()["id"]
    services.import_job_run(job_id=job_id)
    status = client.get(f"/api/imports/{job_id}/").json()
    assert status["status"] == "done"
    assert status["counts"] == {"imported": 1, "present": 0, "rejected": 0}
    listing = client.get("/api/radiographs/").json()
    assert listing["count"] == 1 and listing["results"][0]["modality"] == "CR"
    # Another researcher's jobs are not visible to this one.
    assert client_as("adjudicator").get(f"/api/imports/{job_id}/").status_code == 403


def test_api_token_authentication(users, client):
    from knox.models import AuthToken

    from tests.accounts.factories import PASSWORD

    token = client.post("/api/token/", {"username": "alice", "password": PASSWORD}).json()["token"]
    assert AuthToken.objects.get(user=users["researcher"]).token_key == token[:15]  # a digest is kept, not the token
    from django.test import Client

    api = Client(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/radiographs/").status_code == 200


def test_api_upload_without_files_is_a_clear_error(client_as):
    response = client_as("researcher").post("/api/imports/", {})
    assert response.status_code == 400
    assert "files" in response.json()


def test_oversized_upload_is_refused(client_as, dicom_bytes, settings):
    settings.MAX_UPLOAD_BYTES = 1000
    upload = io.BytesIO(dicom_bytes())
    upload.name = "big.dcm"
    response = client_as("researcher").post(reverse("import_list"), {"files": [upload]})
    assert response.status_code == 200 and b"Upload too large" in response.content
    upload.seek(0)
    api = client_as("researcher").post("/api/imports/", {"files": [upload]})
    assert api.status_code == 400 and "too large" in api.json()["files"]
    assert ImportJob.objects.count() == 0


def test_openapi_schema_is_served(client_as):
    response = client_as("researcher").get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/imports/" in response.content


def test_health_live(client):
    # Liveness: the process and the database (/health/ also wants the broker and workers,
    # tests/ml/test_operations.py).
    response = client.get("/health/live/")
    assert response.status_code == 200 and response.json()["database"] == "ok"
