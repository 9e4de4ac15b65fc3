"""Sending results to a real PACS (Orthanc): by C-STORE and by STOW-RS, filed under the original
study; a PACS stopped mid-sending receives everything, once, when it is back; the status rows."""

from __future__ import annotations

import io

import pydicom
import pytest
from django.core.management import CommandError, call_command

from triage.models import ResultDestination, ResultSending
from triage.results.files import build
from triage.results.reading import latest_reading
from triage.results.sending import backoff, c_store, queue_results, requeue_sendings, send_one, sendings_json

pytestmark = pytest.mark.django_db


def dimse_destination(orthanc, **extra) -> ResultDestination:
    return ResultDestination.objects.create(
        name="orthanc-dimse", kind="dimse", host="127.0.0.1", port=orthanc.dicom_port, called_ae=orthanc.aet, **extra
    )


def filed(orthanc, study_uid: str) -> dict[str, str]:
    """SOP Instance UID -> Modality of every instance Orthanc files under ``study_uid``."""
    found = orthanc.api("POST", "/tools/find", json={"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}})
    tags = [orthanc.api("GET", f"/instances/{i}/simplified-tags") for i in found]
    return {t["SOPInstanceUID"]: t.get("Modality", "") for t in tags}


@pytest.mark.parametrize("kind", ["dimse", "stow"])
def test_orthanc_receives_sr_and_overlay_under_the_original_study(kind, orthanc, read_radiograph, sent_bytes):
    sent = pydicom.dcmread(io.BytesIO(sent_bytes))
    orthanc.upload(sent_bytes)  # the PACS holds the original
    if kind == "dimse":
        dimse_destination(orthanc)
    else:
        ResultDestination.objects.create(name="orthanc-stow", kind="stow", url=orthanc.dicomweb_url)
    [row] = queue_results(radiograph_ids=[read_radiograph.pk])
    row = send_one(sending_id=row.pk)
    assert row.status == ResultSending.Status.SENT and row.attempts == 1, row.reason
    reading = latest_reading(radiograph=read_radiograph)
    instances = filed(orthanc, sent.StudyInstanceUID)
    assert instances == {sent.SOPInstanceUID: "CR", reading.uid("sr"): "SR", reading.uid("overlay"): "OT"}
    sr_id = orthanc.api("POST", "/tools/lookup", data=reading.uid("sr"))[0]["ID"]
    stored = pydicom.dcmread(io.BytesIO(orthanc.api("GET", f"/instances/{sr_id}/file")))
    reference = stored.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert reference.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == sent.SOPInstanceUID


def test_pacs_down_mid_sending_then_back_receives_results_once(orthanc, read_radiograph, settings):
    settings.RESULTS_SEND_BACKOFF = 30
    reading = latest_reading(radiograph=read_radiograph)
    study = reading.original.study_instance_uid
    destination = dimse_destination(orthanc)
    [row] = queue_results(radiograph_ids=[read_radiograph.pk])
    # Mid-sending: the SR has arrived, then the PACS goes down before the overlay.
    c_store([build(reading, "sr")], destination)
    assert sorted(filed(orthanc, study)) == [reading.uid("sr")]
    orthanc.stop()
    row = send_one(sending_id=row.pk)
    assert row.status == ResultSending.Status.FAILED and row.attempts == 1
    assert "association" in row.reason and row.retry_at is not None
    ops = sendings_json()
    assert ops["counts"]["failed"] == 1 and ops["recent"][0]["reason"] == row.reason
    assert requeue_sendings({"default"}) == 1  # what a reconnecting worker queues again
    assert requeue_sendings({"ml"}) == 0
    orthanc.start()  # the same storage: it still holds the SR that arrived before it stopped
    row = send_one(sending_id=row.pk)
    assert row.status == ResultSending.Status.SENT and row.reason == "" and row.retry_at is None
    assert row.attempts == 2 and (row.sr_uid, row.overlay_uid) == (reading.uid("sr"), reading.uid("overlay"))
    call_command("send_results", radiograph=read_radiograph.pk, now=True)  # a resend changes nothing
    assert sorted(filed(orthanc, study)) == sorted([reading.uid("sr"), reading.uid("overlay")])
    assert len(orthanc.instances()) == 2


def test_backoff_doubles_up_to_an_hour(settings):
    settings.RESULTS_SEND_BACKOFF = 30
    assert [backoff(n) for n in (1, 2, 3, 12)] == [30, 60, 120, 3600]


def test_destinations_from_settings_and_per_source(read_radiograph, settings):
    settings.RESULTS_DESTINATIONS = [
        {"name": "pacs", "source": "dicom_store", "kind": "stow", "url": "http://pacs/dicom-web", "password": "pw"},
        {"name": "other", "source": "upload", "kind": "dimse", "host": "h", "port": 104, "called_ae": "X"},
    ]
    rows = queue_results(radiograph_ids=[read_radiograph.pk])
    assert [row.destination.name for row in rows] == ["pacs"]
    destination = rows[0].destination
    assert destination.from_settings and "pw" not in destination.password_sealed


def test_send_results_command(read_radiograph, radiograph, tmp_path):
    ResultDestination.objects.create(name="pacs", kind="stow", url="http://127.0.0.1:9/dicom-web")
    out = io.StringIO()
    call_command("send_results", since="2020-01-01", stdout=out)
    assert f"radiograph {read_radiograph.pk} -> pacs: queued" in out.getvalue()
    assert ResultSending.objects.get().status == "queued"
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("send_results", since="yesterday")
    with pytest.raises(CommandError, match="no stored prediction"):
        call_command("send_results", radiograph=radiograph.pk)
    with pytest.raises(CommandError, match="no stored prediction"):
        call_command("export_results", radiograph=radiograph.pk, out=str(tmp_path))
    with pytest.raises(CommandError, match="no radiograph"):
        call_command("export_results", radiograph=10**9, out=str(tmp_path))
