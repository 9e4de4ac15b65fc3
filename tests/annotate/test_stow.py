"""STOW-RS: POST /api/dicomweb/studies (annotate/archive/stow.py).

Posted with Django's test client as a PACS would (multipart/related of
application/dicom), and by a real PACS: Orthanc's own STOW-RS client posting to
the live test server with a researcher's DRF token.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from django.contrib.auth.models import Group
from django.test import Client

from accounts.tokens import token_create
from annotate.archive.pseudonyms import uid_pseudonym
from annotate.archive.stow import CANNOT_UNDERSTAND, OUT_OF_RESOURCES
from annotate.models import Radiograph
from devtools.dicom import make_dicom
from devtools.processes import free_port, stop
from tests.accounts.factories import UserFactory
from tests.celery_worker import site_env
from tests.pacs import OrthancError

URL = "/api/dicomweb/studies"
BOUNDARY = "hipstudy-stow-boundary-3f2a"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'

REFERENCED = "00081199"
FAILED = "00081198"
CLASS_UID, INSTANCE_UID, FAILURE_REASON = "00081150", "00081155", "00081197"


def multipart(*parts: bytes, boundary: str = BOUNDARY, close: bool = True) -> bytes:
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n" for part in parts
    )
    return body + (b"--" + boundary.encode() + b"--\r\n" if close else b"")


def post(client: Client, body: bytes, content_type: str = CONTENT_TYPE, **headers: Any) -> Any:
    return client.post(URL, data=body, content_type=content_type, **headers)


def sop(data: bytes) -> tuple[str, str]:
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(ds.SOPClassUID), str(ds.SOPInstanceUID)


def items(answer: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return answer.get(tag, {}).get("Value", [])


def item_uids(item: dict[str, Any]) -> tuple[str, str]:
    return item[CLASS_UID]["Value"][0], item[INSTANCE_UID]["Value"][0]


@pytest.mark.django_db
def test_two_good_one_broken_part_gives_202_with_both_sequences(client_as, users):
    good = [make_dicom(seed=1), make_dicom(seed=2)]
    broken = make_dicom(seed=3)[:600]  # cut off inside the header

    response = post(client_as("researcher"), multipart(good[0], broken, good[1]))

    assert response.status_code == 202
    assert response["Content-Type"] == "application/dicom+json"
    answer = response.json()
    assert [item_uids(item) for item in items(answer, REFERENCED)] == [sop(good[0]), sop(good[1])]
    [failed] = items(answer, FAILED)
    assert failed[FAILURE_REASON]["Value"] == [CANNOT_UNDERSTAND]
    assert Radiograph.objects.count() == 2
    radiographs = Radiograph.objects.all()
    assert {r.sop_instance_uid for r in radiographs} == {uid_pseudonym(sop(good[0])[1]), uid_pseudonym(sop(good[1])[1])}
    assert {(r.source, r.imported_by) for r in radiographs} == {(Radiograph.Source.STOW, users["researcher"])}


@pytest.mark.django_db
def test_all_stored_gives_200_and_a_duplicate_is_a_success_with_a_warning(client_as):
    files = [make_dicom(seed=1), make_dicom(seed=2)]
    client = client_as("researcher")

    first = post(client, multipart(*files))
    assert first.status_code == 200
    assert FAILED not in first.json() and "Warning" not in first
    assert [item_uids(item) for item in items(first.json(), REFERENCED)] == [sop(f) for f in files]

    again = post(client, multipart(*files))
    assert again.status_code == 200
    assert [item_uids(item) for item in items(again.json(), REFERENCED)] == [sop(f) for f in files]
    assert again["Warning"].startswith("299 ") and "2 of the instances were held already" in again["Warning"]
    assert Radiograph.objects.count() == 2


@pytest.mark.django_db
def test_nothing_stored_gives_409(client_as):
    response = post(client_as("researcher"), multipart(b"not dicom at all", make_dicom(seed=1)[:400]))
    assert response.status_code == 409
    assert [item[FAILURE_REASON]["Value"] for item in items(response.json(), FAILED)] == [[CANNOT_UNDERSTAND]] * 2
    assert items(response.json(), REFERENCED) == []
    assert Radiograph.objects.count() == 0


@pytest.mark.django_db
def test_an_instance_over_the_file_limit_is_out_of_resources(client_as, settings):
    small, big = make_dicom(seed=1, rows=16, columns=16), make_dicom(seed=2, rows=512, columns=512)
    settings.MAX_DICOM_BYTES = len(small) + 1000
    response = post(client_as("researcher"), multipart(small, big))
    assert response.status_code == 202
    [failed] = items(response.json(), FAILED)
    assert item_uids(failed) == sop(big) and failed[FAILURE_REASON]["Value"] == [OUT_OF_RESOURCES]


@pytest.mark.django_db
def test_a_full_disk_is_out_of_resources_and_stores_no_partial_file(client_as, settings):
    media = Path(settings.MEDIA_ROOT)
    media.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(media)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs as the data folder (needs root): {mounted.stderr.decode().strip()}")
    try:
        big, small = make_dicom(seed=1, rows=1024, columns=1024), make_dicom(seed=2)  # 2 MiB of pixels, 120 KiB

        response = post(client_as("researcher"), multipart(big, small))

        assert response.status_code == 202
        [failed] = items(response.json(), FAILED)
        assert item_uids(failed) == sop(big) and failed[FAILURE_REASON]["Value"] == [OUT_OF_RESOURCES]
        assert [item_uids(item) for item in items(response.json(), REFERENCED)] == [sop(small)]
        stored = Radiograph.objects.get()
        assert sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file()) == sorted(
            [stored.original.name]  # its preview is rendered on first view
        )
    finally:
        subprocess.run(["umount", str(media)], check=True)


@pytest.mark.django_db
def test_a_body_cut_off_keeps_the_whole_parts_and_fails_the_rest(client_as):
    good = make_dicom(seed=1)
    body = multipart(good, close=False) + b"--" + BOUNDARY.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n"
    body += make_dicom(seed=2)[:5000]  # the connection dropped here
    response = post(client_as("researcher"), body)
    assert response.status_code == 202
    assert [item_uids(item) for item in items(response.json(), REFERENCED)] == [sop(good)]
    assert len(items(response.json(), FAILED)) == 1
    assert Radiograph.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=" + BOUNDARY,
        'multipart/related; type="application/dicom+json"; boundary=' + BOUNDARY,
        "application/dicom",
        "",
    ],
)
def test_a_wrong_media_type_is_415(client_as, content_type):
    response = post(client_as("researcher"), multipart(make_dicom(seed=1)), content_type=content_type)
    assert response.status_code == 415
    assert Radiograph.objects.count() == 0


@pytest.mark.django_db
def test_a_chunked_body_this_server_cannot_read_is_411(client_as):
    """Django's own servers cannot de-chunk a body (gunicorn can: see the gunicorn test)."""
    response = post(client_as("researcher"), b"0\r\n\r\n", HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 411


@pytest.mark.django_db
def test_not_multipart_inside_is_400(client_as):
    response = post(client_as("researcher"), b"no boundary anywhere in here")
    assert response.status_code == 400
    assert "boundary" in response.json()["detail"]


@pytest.mark.django_db
def test_a_body_over_the_bound_is_413_and_stores_nothing(client_as, settings):
    body = multipart(make_dicom(seed=1), make_dicom(seed=2))
    settings.DICOMWEB_STOW_MAX_BYTES = len(body) - 1
    response = post(client_as("researcher"), body)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert Radiograph.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["reader", "labeler", "adjudicator", "norole", None])
def test_only_researchers_and_staff_may_store(client_as, role):
    # A STOW-RS client accepts only application/dicom+json: refused all the same, not 406.
    response = post(client_as(role), multipart(make_dicom(seed=1)), HTTP_ACCEPT="application/dicom+json")
    assert response.status_code in ((401, 403) if role is None else (403,))
    assert Radiograph.objects.count() == 0


@pytest.mark.django_db
def test_staff_may_store(client_as):
    assert post(client_as("staff"), multipart(make_dicom(seed=1))).status_code == 200


@pytest.mark.django_db
def test_a_token_client_needs_no_csrf_token_but_a_session_does(users):
    body = multipart(make_dicom(seed=1))
    session = Client(enforce_csrf_checks=True)
    session.force_login(users["researcher"])
    refused = post(session, body)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]

    _, token = token_create(user=users["researcher"])
    service = Client(enforce_csrf_checks=True)
    response = post(service, body, HTTP_AUTHORIZATION=f"Token {token}", HTTP_ACCEPT="application/dicom+json")
    assert response.status_code == 200
    assert Radiograph.objects.get().imported_by == users["researcher"]


@pytest.mark.pacs
@pytest.mark.django_db(transaction=True)
def test_orthanc_posts_a_study_by_stow_rs(orthanc, live_server):
    """Orthanc's own STOW-RS client (POST /dicom-web/servers/{name}/stow) posts to us."""
    account = UserFactory(username="pacs-router")
    account.groups.set([Group.objects.get_or_create(name="researcher")[0]])
    _, token = token_create(user=account)
    files = [make_dicom(seed=seed, BodyPartExamined="PELVIS") for seed in (11, 12, 13)]
    ids = [orthanc.upload(data) for data in files]
    orthanc.add_dicomweb_server(
        "hipstudy", f"{live_server.url}/api/dicomweb/", headers={"Authorization": f"Token {token}"}
    )

    orthanc.stow_to("hipstudy", ids)

    stored = Radiograph.objects.filter(source=Radiograph.Source.STOW)
    assert {r.sop_instance_uid for r in stored} == {uid_pseudonym(sop(data)[1]) for data in files}
    assert {r.imported_by_id for r in stored} == {account.id}


@pytest.mark.pacs
@pytest.mark.django_db(transaction=True)
def test_orthanc_without_a_valid_token_is_refused(orthanc, live_server):
    ids = [orthanc.upload(make_dicom(seed=21))]
    orthanc.add_dicomweb_server(
        "hipstudy", f"{live_server.url}/api/dicomweb/", headers={"Authorization": "Token not-a-token"}
    )
    with pytest.raises(OrthancError, match="HTTP"):
        orthanc.stow_to("hipstudy", ids)
    assert Radiograph.objects.count() == 0


@pytest.fixture
def gunicorn(transactional_db: Any, settings: Any, tmp_path: Path) -> Iterator[str]:
    """The site under gunicorn (as in production) on the test database and data folder; its URL."""
    env = site_env(what="gunicorn")
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--workers", "1", "--threads", "2", "--timeout", "120", "--error-logfile", "-"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited with status {process.returncode}:\n{log_path.read_text()}")
            try:
                if requests.get(f"{url}/accounts/login/", timeout=5).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow to answer under load
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not answer within 60 s:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        stop(process, timeout=30)


def test_dicomweb_client_posts_a_chunked_body_through_gunicorn(gunicorn, users):
    """dicomweb-client sends a body larger than its chunk size with chunked transfer encoding
    (no Content-Length); gunicorn de-chunks it and the endpoint reads it to the end."""
    _, token = token_create(user=users["researcher"])
    sent: list[str] = []
    session = requests.Session()
    session.hooks["response"].append(lambda r, *a, **k: sent.append(r.request.headers.get("Transfer-Encoding", "")))
    client = DICOMwebClient(
        f"{gunicorn}/api/dicomweb", session=session, headers={"Authorization": f"Token {token}"}, chunk_size=32768
    )
    files = [make_dicom(seed=31), make_dicom(seed=32)]

    answer = client.store_instances([pydicom.dcmread(io.BytesIO(data)) for data in files])

    assert sent == ["chunked"]
    assert [str(item.ReferencedSOPInstanceUID) for item in answer.ReferencedSOPSequence] == [sop(f)[1] for f in files]
    assert Radiograph.objects.filter(source=Radiograph.Source.STOW).count() == 2
