"""The detector in the site: end-to-end reading, scoring on arrival, proposals, evaluation,
``predict`` and the API without boxes, with a real tiny RetinaNet trained on films whose hips
lie where devtools/sample_data.py's films have theirs."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from annotate.labels import HipProposal
from devtools.sample_data import film
from ml import detection
from ml.models import HipPrediction, ModelVersion
from ml.tasks import read_radiographs
from tests.ml.helpers import new_radiograph

pytestmark = pytest.mark.django_db


def test_read_radiograph_detects_classifies_and_proposes(models, dicom_bytes):
    classifier, detector = models
    radiograph = new_radiograph(dicom_bytes)
    detections, rows = detection.read_radiograph(radiograph)
    assert [d.side for d in detections] == ["right", "left"]
    assert {r.side for r in rows} == {"right", "left"}
    assert all(r.box_source == "detector" and r.model_version_id == classifier.pk for r in rows)
    for d in detections:
        x, y, w, h = d.box
        assert 0 <= x and 0 <= y and x + w <= radiograph.columns + 1e-3 and y + h <= radiograph.rows + 1e-3
    proposals = {p.side: p for p in HipProposal.objects.filter(radiograph=radiograph)}
    assert set(proposals) == {"right", "left"}
    predicted = {r.side: r.predicted_class for r in rows}
    assert {side: p.hip_class for side, p in proposals.items()} == predicted
    assert all(str(detector.pk) in p.model for p in proposals.values())


def test_a_new_radiograph_is_read_on_arrival_once(models, dicom_bytes, django_capture_on_commit_callbacks):
    classifier, _detector = models
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        radiograph = new_radiograph(dicom_bytes, 901)
    assert len(callbacks) == 1  # the reading task, queued after commit
    read_radiographs.run(radiograph_ids=[radiograph.pk])
    first = list(HipPrediction.objects.filter(radiograph=radiograph).values_list("pk", flat=True))
    read_radiographs.run(radiograph_ids=[radiograph.pk])  # delivered twice: read once
    assert list(HipPrediction.objects.filter(radiograph=radiograph).values_list("pk", flat=True)) == first
    assert len(first) == 2


def test_nothing_is_queued_without_a_detector(models, dicom_bytes, django_capture_on_commit_callbacks):
    _classifier, detector = models
    ModelVersion.objects.filter(pk=detector.pk).update(is_active=False)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        new_radiograph(dicom_bytes, 902)
    assert callbacks == []
    assert detection.read_new_radiographs() == 0


def test_activation_reads_radiographs_without_ground_truth(models, dicom_bytes, django_capture_on_commit_callbacks):
    from ml import scoring

    classifier, detector = models
    ModelVersion.objects.filter(pk=detector.pk).update(is_active=False)
    radiograph = new_radiograph(dicom_bytes, 903)
    assert detection.radiographs_to_read(classifier) == [radiograph.pk]  # the others have ground truth
    with django_capture_on_commit_callbacks(execute=True):
        scoring.activate(detector, score=False)
    assert detection.read_new_radiographs() == 1
    assert detection.radiographs_to_read(classifier) == []


def test_evaluate_a_detector(models, tmp_path):
    _classifier, detector = models
    out = tmp_path / "eval"
    call_command("evaluate", "--model", str(detector.pk), "--out", str(out), "--iterations", "50")
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("iou_mean", "iou_sd", "iou_min", "hips_missed", "hips_extra"):
        assert key in metrics
    assert metrics["hips_missed"] == 0 and metrics["hips_extra"] == 0
    assert 0.5 < metrics["iou_min"] <= metrics["iou_mean"] <= 1  # it learnt where the hips are
    for task in ("binary", "multiclass"):
        figures = metrics["classification"][task]
        assert set(figures) == {"manual", "auto", "kappa_difference"}
        assert figures["kappa_difference"]["ci_low"] is None or (
            figures["kappa_difference"]["ci_low"] <= figures["kappa_difference"]["ci_high"]
        )
    lines = (out / "hips.csv").read_text().splitlines()
    assert lines[0] == "radiograph,side,truth,manual_box,detected_box,score,iou"
    assert len(lines) == 1 + metrics["hips"]
    detector.refresh_from_db()
    assert detector.evaluation["iou_mean"] == metrics["iou_mean"]
    # Its pretraining against the paper's (ImageNet + COCO), and the deviations that apply.
    assert metrics["pretraining"] == {"encoder": "random", "heads": "random (no COCO)"}
    keys = [d["key"] for d in metrics["deviations"]]
    assert "detector-pretraining" in keys and "detector-keras-retinanet" in keys


def test_evaluate_a_detector_with_no_classifier_counts_only_hips_it_did_not_find(models, tmp_path):
    # The detector trains before any classifier may exist: its hips are found or missed by
    # the detector alone, not by whether a classifier was there to read them.
    classifier, detector = models
    ModelVersion.objects.filter(pk=classifier.pk).update(is_active=False)
    metrics = detection.evaluate_detector(detector, iterations=20)
    assert metrics["classifier"] is None and metrics["hips"] > 0
    assert metrics["hips_missed"] == 0 and 0.5 < metrics["iou_min"]
    assert set(metrics["classification"]) == {"hips", "note"} and "no classifier" in metrics["classification"]["note"]


def test_predict_without_boxes_uses_the_detector(models, dicom_bytes, tmp_path, capsys, client_as):
    path = tmp_path / "new.dcm"
    path.write_bytes(dicom_bytes(seed=950, patient_id="MRN-P", accession="ACC-P", pixels=film(950)))
    call_command("predict", str(path))
    result = json.loads(capsys.readouterr().out)
    assert result["detector_version"] == models[1].pk
    assert [h["side"] for h in result["hips"]] == ["right", "left"]
    assert {h["box_source"] for h in result["hips"]} == {"detector"}
    with path.open("rb") as handle:
        reply = client_as("researcher").post("/api/predict/", {"file": handle})
    assert reply.status_code == 200, reply.content
    body = reply.json()
    assert body["detector_version"] == models[1].pk and len(body["hips"]) == 2
    assert {h["box_source"] for h in body["hips"]} == {"detector"}


def test_model_page_shows_the_detector_figures(models, client_as):
    _classifier, detector = models
    detection.evaluate_detector(detector, iterations=20)
    page = client_as("researcher").get(f"/models/versions/{detector.pk}/").content.decode()
    assert 'id="detector-figures"' in page and 'id="auto-vs-manual"' in page
    assert "hips.csv" in page
    assert 'data-key="pretraining-encoder"><th>Pretraining, encoder</th><td>random' in page
    assert "random (no COCO)" in page and 'data-key="detector-pretraining"' in page
