"""Operations: arrival-to-score recorded by the end-to-end reading, its figures (median, p95,
backlog), the operations page and API with their roles, /health/ against a real worker, and
ML actions refused clearly (and without a stray row) while the broker cannot be reached."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pytest
from django.utils import timezone

from annotate.models import ImportJob, Radiograph
from common import health
from devtools.sample_data import truth_dataset
from ml import detection, operations
from ml.models import HipPrediction, ModelVersion, RadiographReading, TrainingRun
from tests.ml.factories import HipPredictionFactory, RadiographReadingFactory
from tests.ml.helpers import new_radiograph
from triage import operations as triage_operations

pytestmark = pytest.mark.django_db


def set_received(radiograph: Radiograph, seconds_ago: float) -> Radiograph:
    Radiograph.objects.filter(pk=radiograph.pk).update(
        received_at=timezone.now() - datetime.timedelta(seconds=seconds_ago)
    )
    radiograph.refresh_from_db()
    return radiograph


# --------------------------------------------------------------------------- arrival-to-score


def test_reading_a_radiograph_records_its_arrival_to_score_once(models, dicom_bytes):
    classifier, detector = models
    radiograph = set_received(new_radiograph(dicom_bytes, 910), 30)
    assert triage_operations.arrival_stats()["backlog"] == 1  # the others have ground truth

    before = timezone.now()
    detection.read_new_radiographs(radiograph_ids=[radiograph.pk])
    reading = RadiographReading.objects.get(radiograph=radiograph)
    assert reading.detector_version == detector and reading.classifier_version == classifier
    assert before <= reading.scored_at <= timezone.now()
    assert reading.seconds == pytest.approx((reading.scored_at - radiograph.received_at).total_seconds())
    assert reading.seconds >= 30

    # Read again (another delivery, or another classifier activated): the first record stays.
    detection.read_radiograph(radiograph, detector_version=detector, classifier=classifier)
    assert list(RadiographReading.objects.values_list("pk", "scored_at")) == [(reading.pk, reading.scored_at)]
    stats = triage_operations.arrival_stats()
    assert stats["scored"] == 1 and stats["backlog"] == 0 and stats["oldest_waiting_seconds"] is None
    assert stats["median_seconds"] == stats["p95_seconds"] == pytest.approx(reading.seconds)


def test_arrival_stats_median_p95_backlog_and_oldest(models, dicom_bytes):
    classifier, detector = models
    now = timezone.now()
    seconds = [5.0, 7.0, 9.0, 11.0, 200.0]
    read = [set_received(new_radiograph(dicom_bytes, 920 + i), s + 1) for i, s in enumerate(seconds)]
    for radiograph, s in zip(read, seconds, strict=True):
        RadiographReadingFactory(
            radiograph=radiograph, detector_version=detector, classifier_version=classifier,
            scored_at=now - datetime.timedelta(hours=30 if s == 200.0 else 1), seconds=s,
        )  # fmt: skip
        # Read by the active classifier, so no longer waiting.
        HipPredictionFactory(model_version=classifier, radiograph=radiograph)
    waiting = [set_received(new_radiograph(dicom_bytes, 930 + i), ago) for i, ago in enumerate((50, 400))]

    everything = triage_operations.arrival_stats(now=now)
    assert everything["scored"] == 5
    assert everything["median_seconds"] == pytest.approx(9.0)
    assert everything["p95_seconds"] == pytest.approx(np.percentile(seconds, 95))
    assert everything["backlog"] == 2
    assert everything["oldest_waiting_seconds"] == pytest.approx(
        (now - waiting[1].received_at).total_seconds(), abs=1e-3
    )
    day = triage_operations.arrival_stats(now - datetime.timedelta(hours=24), now=now)
    assert day["scored"] == 4 and day["median_seconds"] == pytest.approx(8.0)

    # Without an active detector nothing would read them: no backlog.
    ModelVersion.objects.filter(pk=detector.pk).update(is_active=False)
    assert triage_operations.arrival_stats()["backlog"] == 0


def test_a_film_read_with_no_hip_found_leaves_the_backlog_and_is_not_read_again(models, dicom_bytes):
    # A knee pushed by mistake: the detector finds no hip, so no prediction is stored, only
    # the reading's record. It must not wait in the backlog, nor be read on every re-queue.
    classifier, detector = models
    radiograph = new_radiograph(dicom_bytes, 940)
    assert operations.waiting_ids() == [radiograph.pk]
    RadiographReadingFactory(radiograph=radiograph, detector_version=detector, classifier_version=classifier)
    assert not HipPrediction.objects.filter(radiograph=radiograph).exists()
    assert operations.waiting_ids() == [] and detection.radiographs_to_read(classifier) == []
    assert detection.read_new_radiographs(radiograph_ids=[radiograph.pk]) == 0
    assert not HipPrediction.objects.filter(radiograph=radiograph).exists()


def test_arrival_stats_without_readings():
    assert triage_operations.arrival_stats() == {
        "scored": 0,
        "median_seconds": None,
        "p95_seconds": None,
        "backlog": 0,
        "oldest_waiting_seconds": None,
    }


# --------------------------------------------------------------------------- the page and its API


@pytest.mark.parametrize(
    ("role", "page", "api"),
    [
        ("researcher", 200, 200),
        ("staff", 200, 200),
        ("labeler", 403, 403),
        ("reader", 403, 403),
        ("adjudicator", 403, 403),
        ("norole", 403, 403),
    ],
)
def test_ops_page_and_api_by_role(client_as, role, page, api):
    client = client_as(role)
    assert client.get("/ops/").status_code == page
    assert client.get("/api/ops/").status_code == api


def test_ops_anonymous_is_sent_to_login(client):
    response = client.get("/ops/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.get("/api/ops/").status_code in (401, 403)


def test_ops_api_shows_readings_sources_and_the_broker(models, dicom_bytes, client_as):
    radiograph = set_received(new_radiograph(dicom_bytes, 940), 12)
    Radiograph.objects.filter(pk=radiograph.pk).update(source=Radiograph.Source.DICOM_STORE)
    detection.read_new_radiographs(radiograph_ids=[radiograph.pk])
    data = client_as("researcher").get("/api/ops/").json()
    assert data["last_24h"]["scored"] == 1 and data["last_24h"]["backlog"] == 0
    assert data["recent"][0]["radiograph"] == radiograph.pk and data["recent"][0]["seconds"] >= 12
    by_source = {row["source"]: row for row in data["last_24h"]["by_source"]}
    assert by_source["dicom_store"] == {
        "source": "dicom_store",
        "label": str(Radiograph.Source.DICOM_STORE.label),
        "arrived": 1,
        "scored": 1,
    }
    assert by_source["cli"]["scored"] == 0  # the training films: ground truth, never read end to end
    assert data["broker"] == "ok"  # tests/settings.py's broker is the local Redis
    assert set(data["workers"]) == {"default", "ml"} and data["poll_ms"] > 0
    page = client_as("researcher").get("/ops/")
    assert b'id="ops-median"' in page.content and b"js/ops.js" in page.content
    assert f"Radiograph {radiograph.pk}".encode() in page.content


# --------------------------------------------------------------------------- the broker away


def test_health_with_the_broker_unreachable(broker_away, client):
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok" and body["broker"].startswith("error: ") and "refused" in body["broker"]
    assert body["workers"] == {"default": 0, "ml": 0}
    live = client.get("/health/live/")
    assert live.status_code == 200 and live.json() == {"database": "ok"}


def test_training_refused_clearly_while_the_broker_is_away(broker_away, client_as, dicom_bytes):
    dataset = truth_dataset(dicom_bytes, radiographs=12, patients=10)
    client = client_as("researcher")
    api = client.post(
        "/api/training-runs/",
        json.dumps({"dataset": dataset.pk, "config": "tiny", "kind": "classifier"}),
        content_type="application/json",
    )
    assert api.status_code == 503
    assert "task queue is unavailable; try again when it is back" in api.json()["detail"]
    page = client.post(
        "/models/", {"dataset": dataset.pk, "config": "tiny", "kind": "classifier", "seed": 0}, follow=True
    )
    assert page.status_code == 200 and b"task queue is unavailable; try again when it is back" in page.content
    assert TrainingRun.objects.count() == 0  # nothing waits for a task that was never sent


def test_activation_refused_clearly_while_the_broker_is_away(broker_away, models, client_as):
    classifier, _detector = models
    ModelVersion.objects.filter(pk=classifier.pk).update(is_active=False)
    api = client_as("researcher").post(f"/api/models/{classifier.pk}/activate/")
    assert api.status_code == 503 and "task queue is unavailable" in api.json()["detail"]
    assert not ModelVersion.objects.get(pk=classifier.pk).is_active


def test_import_upload_refused_clearly_while_the_broker_is_away(broker_away, client_as, dicom_bytes, data_dir):
    client = client_as("researcher")
    upload = {"files": [_named(dicom_bytes(seed=1), "a.dcm")]}
    api = client.post("/api/imports/", upload)
    assert api.status_code == 503 and "task queue is unavailable" in api.json()["detail"]
    page = client.post("/imports/", {"files": [_named(dicom_bytes(seed=2), "b.dcm")]}, follow=True)
    assert page.status_code == 200 and b"task queue is unavailable; try again when it is back" in page.content
    assert ImportJob.objects.count() == 0
    incoming = data_dir / "incoming"
    assert not incoming.exists() or not any(incoming.iterdir())  # the uploaded files were not kept


def test_a_radiograph_arriving_while_the_broker_is_away_is_stored(
    broker_away,
    models,  # noqa: F811
    dicom_bytes,
    django_capture_on_commit_callbacks,
    caplog,
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        radiograph = new_radiograph(dicom_bytes, 950)  # its reading is published after commit: refused, logged
    assert len(callbacks) == 1
    assert "reading not queued" in caplog.text and "task queue is unavailable" in caplog.text
    assert Radiograph.objects.filter(pk=radiograph.pk).exists()
    assert operations.waiting_ids() == [radiograph.pk]  # a worker re-queues it when it reconnects


def _named(data: bytes, name: str):
    import io

    handle = io.BytesIO(data)
    handle.name = name
    return handle


@pytest.mark.worker
def test_health_with_a_real_worker_and_without(celery_worker, client):
    health._workers_cache.clear()
    response = client.get("/health/")
    assert response.status_code == 200, response.content
    assert response.json() == {"database": "ok", "broker": "ok", "workers": {"default": 1, "ml": 1}}
    celery_worker.stop()
    health._workers_cache.clear()  # the count is kept a few seconds per process
    gone = client.get("/health/")
    assert gone.status_code == 503
    assert gone.json() == {"database": "ok", "broker": "ok", "workers": {"default": 0, "ml": 0}}
