"""The results as downloads (API, worklist, predictions page), a resend through the API, the
operations page's sendings, and the sending queued after an end-to-end reading."""

from __future__ import annotations

import io

import pydicom
import pytest
from django.urls import reverse

from tests.ml.factories import RadiographReadingFactory
from triage.models import ResultDestination, ResultSending
from triage.results.reading import latest_reading

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("kind", "modality"), [("sr", "SR"), ("overlay", "OT")])
def test_download_the_results(client_as, read_radiograph, kind, modality):
    response = client_as("researcher").get(reverse("results-download", args=[read_radiograph.pk, kind]))
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom"
    assert f"radiograph-{read_radiograph.pk}-{kind}.dcm" in response["Content-Disposition"]
    ds = pydicom.dcmread(io.BytesIO(response.content))
    assert ds.Modality == modality
    assert ds.SOPInstanceUID == latest_reading(radiograph=read_radiograph).uid(kind)


def test_download_refusals(client_as, read_radiograph, radiograph):
    client = client_as("researcher")
    url = reverse("results-download", args=[read_radiograph.pk, "sr"])
    assert client.get(reverse("results-download", args=[read_radiograph.pk, "pdf"])).status_code == 404
    assert client.get(reverse("results-download", args=[radiograph.pk, "sr"])).status_code == 404  # never read
    assert client.get(url, {"model": "abc"}).status_code == 400
    assert client.get(url, {"model": "99999"}).status_code == 404
    assert client_as("labeler").get(url).status_code == 403
    assert client_as(None).get(url).status_code in (401, 403)


def test_pages_offer_the_downloads(client_as, read_radiograph):
    client = client_as("researcher")
    sr = reverse("results-download", args=[read_radiograph.pk, "sr"])
    overlay = reverse("results-download", args=[read_radiograph.pk, "overlay"])
    worklist = client.get(reverse("worklist")).content.decode()
    assert sr in worklist and overlay in worklist
    page = client.get(reverse("radiograph_predictions", args=[read_radiograph.pk])).content.decode()
    assert sr in page and overlay in page


def test_resend_through_the_api_and_the_operations_page(client_as, read_radiograph):
    ResultDestination.objects.create(name="pacs", kind="stow", url="http://127.0.0.1:9/dicom-web")
    client = client_as("researcher")
    response = client.post(reverse("results-send", args=[read_radiograph.pk]))
    assert response.status_code == 202 and response.json() == {"queued": 1}
    row = ResultSending.objects.get()
    assert row.status == "queued" and row.attempts == 0
    data = client.get(reverse("results-sendings")).json()
    assert data["counts"] == {"queued": 1, "sent": 0, "failed": 0}
    assert data["recent"][0]["destination"] == "pacs"
    page = client.get(reverse("ops")).content.decode()
    assert "Results sent to the PACS" in page and 'id="results-sendings"' in page and "http://127.0.0.1:9" in page


def test_a_reading_queues_its_sending_when_enabled(read_radiograph, settings, django_capture_on_commit_callbacks):
    ResultDestination.objects.create(name="pacs", source="dicom_store", kind="stow", url="http://127.0.0.1:9/x")
    ResultDestination.objects.create(name="elsewhere", source="upload", kind="stow", url="http://127.0.0.1:9/y")
    settings.RESULTS_SEND_AFTER_READING = False
    with django_capture_on_commit_callbacks(execute=True):
        RadiographReadingFactory(radiograph=read_radiograph)
    assert not ResultSending.objects.exists()
    read_radiograph.reading.delete()
    settings.RESULTS_SEND_AFTER_READING = True
    with django_capture_on_commit_callbacks(execute=True):
        RadiographReadingFactory(radiograph=read_radiograph)
    assert [(row.destination.name, row.status) for row in ResultSending.objects.all()] == [("pacs", "queued")]
