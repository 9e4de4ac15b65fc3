"""pull_dicomweb against a real PACS: Orthanc with its DICOMweb plugin (tests/pacs.py).

The PACS holds hip and pelvis radiographs (CR and DX, one in RLE Lossless), one
older study, one chest radiograph and one CT: a pull takes exactly the hip and
pelvis radiographs from the date on, pseudonymised, in the transfer syntax the
PACS holds them in; a second pull downloads nothing; a server that fails stops
the pull with its URL and HTTP status and keeps what was imported.
"""

from __future__ import annotations

import datetime
import io
import re
from typing import Any

import pydicom
import pytest
import requests
from django.core.management import CommandError, call_command
from pydicom.uid import RLELossless

from annotate.archive import dicomweb
from annotate.archive.ingest import pseudonym
from annotate.archive.pseudonyms import uid_pseudonym
from annotate.models import Patient, Radiograph, Study
from devtools.dicom import make_dicom
from devtools.processes import free_port
from tests.support import as_ct

pytestmark = [pytest.mark.pacs, pytest.mark.django_db]

SINCE = "2024-01-01"


def rle(data: bytes) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.compress(RLELossless, encoding_plugin="pydicom")
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def instance(*, patient: str, accession: str, seed: int, **tags: Any) -> bytes:
    return make_dicom(patient_id=patient, accession=accession, seed=seed, **tags)


def sop_uid(data: bytes) -> str:
    """The pseudonymous SOP Instance UID the platform gives this file (rows, outcomes, logs)."""
    return uid_pseudonym(str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID))


def study_uid(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID)


@pytest.fixture
def pacs(orthanc: Any) -> dict[str, list[bytes]]:
    """The PACS's content, uploaded; keys say what a pull since SINCE must do with each group."""
    content = {
        # A CR hip study of two images, one of them compressed (RLE Lossless).
        "hip": [
            instance(patient="MRN-HIP-1", accession="ACC-HIP-1", seed=1, StudyDate="20240110", BodyPartExamined="HIP"),
            rle(
                instance(
                    patient="MRN-HIP-1", accession="ACC-HIP-1", seed=2, StudyDate="20240110", BodyPartExamined="HIP"
                )
            ),
        ],
        "pelvis": [
            instance(
                patient="MRN-PEL-2",
                accession="ACC-PEL-2",
                seed=3,
                StudyDate="20240212",
                Modality="DX",
                BodyPartExamined="PELVIS",
            )
        ],
        # No body part given: a hip radiograph may well come without one.
        "no_body_part": [instance(patient="MRN-NBP-3", accession="ACC-NBP-3", seed=4, StudyDate="20240405")],
        "older": [
            instance(patient="MRN-OLD-4", accession="ACC-OLD-4", seed=5, StudyDate="20231231", BodyPartExamined="HIP")
        ],
        "chest": [
            instance(patient="MRN-CHE-5", accession="ACC-CHE-5", seed=6, StudyDate="20240301", BodyPartExamined="CHEST")
        ],
        "ct": [
            as_ct(
                instance(
                    patient="MRN-CT-6", accession="ACC-CT-6", seed=7, StudyDate="20240302", BodyPartExamined="PELVIS"
                )
            )
        ],
    }
    for files in content.values():
        for data in files:
            orthanc.upload(data)
    return content


def pull(url: str, **options: Any) -> list[str]:
    out = io.StringIO()
    call_command("pull_dicomweb", url=url, no_progress=True, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue().splitlines()


def uids(*groups: list[bytes]) -> set[str]:
    return {sop_uid(data) for group in groups for data in group}


class RecordingSession(requests.Session):
    """A plain requests session that notes the path of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []
        self.hooks["response"].append(lambda response, *args, **kwargs: self.paths.append(response.request.path_url))


def test_pulls_exactly_the_hip_and_pelvis_radiographs_since_the_date(orthanc, pacs, settings):
    settings.STORE_DECOMPRESSED_PERCENT = 0  # store as received, to see what the PACS sent
    lines = pull(orthanc.dicomweb_url, since=SINCE)

    wanted = uids(pacs["hip"], pacs["pelvis"], pacs["no_body_part"])
    assert set(Radiograph.objects.values_list("sop_instance_uid", flat=True)) == wanted
    assert set(Radiograph.objects.values_list("source", flat=True)) == {Radiograph.Source.DICOMWEB}
    assert lines[-1] == "pulled 4: imported 4, present 0, rejected 0"
    chest_series = uid_pseudonym(pydicom.dcmread(io.BytesIO(pacs["chest"][0])).SeriesInstanceUID)
    assert any(f"skipped series {chest_series}" in line and "body part CHEST" in line for line in lines)
    # Not transcoded: the RLE original arrives as RLE.
    assert Radiograph.objects.get(sop_instance_uid=sop_uid(pacs["hip"][1])).transfer_syntax_uid == RLELossless
    # Pseudonymised like every other route: no patient ID or accession number is kept.
    assert set(Patient.objects.values_list("pseudo_id", flat=True)) == {
        pseudonym(mrn, purpose="patient") for mrn in ("MRN-HIP-1", "MRN-PEL-2", "MRN-NBP-3")
    }
    study = Study.objects.get(study_instance_uid=uid_pseudonym(study_uid(pacs["hip"][0])))
    assert study.accession_pseudo == pseudonym("ACC-HIP-1", purpose="accession")
    assert study.study_date == datetime.date(2024, 1, 10)


def retrieves(session: RecordingSession) -> list[str]:
    """The WADO-RS instance retrieves among the requests (searches end in /instances)."""
    return [path for path in session.paths if re.search(r"/instances/[0-9.]+$", path.split("?")[0])]


def test_a_second_pull_downloads_nothing_and_reports_them_present(orthanc, pacs):
    first, second = RecordingSession(), RecordingSession()
    since = datetime.date(2024, 1, 1)
    assert dicomweb.pull(orthanc.dicomweb_url, since, session=first).line() == (
        "pulled 4: imported 4, present 0, rejected 0"
    )
    assert len(retrieves(first)) == 4

    summary = dicomweb.pull(orthanc.dicomweb_url, since, session=second)

    assert summary.line() == "pulled 4: imported 0, present 4, rejected 0"
    assert {outcome.reason for outcome in summary.outcomes} == {"held already"}
    assert second.paths, "the second pull asked the PACS nothing"
    assert retrieves(second) == []
    assert Radiograph.objects.count() == 4
    assert pull(orthanc.dicomweb_url, since=SINCE)[-1] == "pulled 4: imported 0, present 4, rejected 0"


def test_since_excludes_older_studies_and_study_pulls_only_that_one(orthanc, pacs):
    older = study_uid(pacs["older"][0])
    lines = pull(orthanc.dicomweb_url, since="2023-06-01", study=older)
    assert set(Radiograph.objects.values_list("sop_instance_uid", flat=True)) == uids(pacs["older"])
    assert lines[-1] == "pulled 1: imported 1, present 0, rejected 0"

    lines = pull(orthanc.dicomweb_url, study=study_uid(pacs["hip"][0]))
    assert set(Radiograph.objects.values_list("sop_instance_uid", flat=True)) == uids(pacs["older"], pacs["hip"])
    assert lines[-1] == "pulled 2: imported 2, present 0, rejected 0"

    # The older study is before --since: not found, nothing pulled.
    lines = pull(orthanc.dicomweb_url, since=SINCE, study=older)
    assert lines[-1] == "pulled 0: imported 0, present 0, rejected 0"
    # A CT study is no radiograph, even when asked for by UID.
    lines = pull(orthanc.dicomweb_url, study=study_uid(pacs["ct"][0]))
    assert lines[-1] == "pulled 0: imported 0, present 0, rejected 0"
    assert Radiograph.objects.count() == 3


def test_a_dead_server_gives_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    with pytest.raises(CommandError) as error:
        pull(url, since=SINCE)
    assert f"cannot reach the DICOMweb server {url}" in str(error.value)
    assert Radiograph.objects.count() == 0


def test_an_error_answer_names_the_url_and_the_http_status(orthanc, pacs):
    url = f"{orthanc.http_url}/no-such-dicom-web"
    with pytest.raises(CommandError) as error:
        pull(url, since=SINCE)
    assert f"the DICOMweb server {url} answered HTTP 404" in str(error.value)


def test_a_server_failing_half_way_keeps_what_was_imported(orthanc, pacs):
    """After the first instance arrives, the PACS loses the others: their retrieve
    answers 404, the pull stops with that status and the first radiograph stays."""

    def lose_the_rest(outcome, done, total):
        if done == 1:
            for orthanc_id in orthanc.instances():
                orthanc.api("DELETE", f"/instances/{orthanc_id}")

    with pytest.raises(dicomweb.PullError) as error:
        dicomweb.pull(orthanc.dicomweb_url, datetime.date(2024, 1, 1), progress=lose_the_rest)
    assert "HTTP 404" in str(error.value) and orthanc.dicomweb_url in str(error.value)
    assert error.value.summary.line() == "pulled 1: imported 1, present 0, rejected 0"
    assert Radiograph.objects.count() == 1


def test_command_refuses_a_bad_date_and_no_filter():
    with pytest.raises(CommandError, match="is not a date"):
        pull("http://127.0.0.1:1/dicom-web", since="1 Jan 2024")
    with pytest.raises(CommandError, match="give --since DATE, --study UID, or both"):
        pull("http://127.0.0.1:1/dicom-web")


def without_pixels(data: bytes) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    del ds.PixelData
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_an_instance_the_ingest_refuses_is_reported_with_its_reason(orthanc):
    good = instance(patient="MRN-R-7", accession="ACC-R-7", seed=8, StudyDate="20240601", BodyPartExamined="HIP")
    bad = without_pixels(
        instance(patient="MRN-R-7", accession="ACC-R-7", seed=9, StudyDate="20240601", BodyPartExamined="HIP")
    )
    orthanc.upload(good)
    orthanc.upload(bad)

    lines = pull(orthanc.dicomweb_url, since=SINCE)

    assert f"rejected {sop_uid(bad)}: no pixel data; not an image" in lines
    assert lines[-1] == "pulled 2: imported 1, present 0, rejected 1 (no pixel data; not an image ×1)"
    assert list(Radiograph.objects.values_list("sop_instance_uid", flat=True)) == [sop_uid(good)]
