"""The Models pages and API: training runs (start, progress JSON, cancel), model versions
(evaluation with confidence intervals, activation, evaluation files), predictions of
stored radiographs and of an uploaded DICOM file, and that only researchers reach them."""

from __future__ import annotations

import base64
import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from PIL import Image

from annotate.models import Radiograph
from ml import scoring, training
from ml.api_serializers import time_left_seconds
from ml.evaluation import DOWNLOADS, HEADLINE
from ml.models import HipPrediction, ModelVersion, TrainingRun
from tests.ml.factories import ModelVersionFactory, TrainingRunFactory
from tests.ml.helpers import BOXES

pytestmark = pytest.mark.django_db


def figure(mean, low, high):
    return {"mean": mean, "ci_low": low, "ci_high": high, "estimate": mean}


def evaluation_dict():
    data = {key: figure(0.8, 0.7, 0.9) for key in HEADLINE}
    data["binary_accuracy"] = figure(0.912, 0.88, 0.94)
    data["binary_auc"] = figure(0.973, 0.95, 0.99)
    data["multiclass_kappa"] = figure(None, None, None)  # undefined on this split
    data["per_class"] = {
        "normal": {"sensitivity": figure(0.95, 0.9, 0.99), "specificity": figure(0.9, 0.85, 0.95),
                   "auc": figure(0.981, 0.96, 0.997)},
        "orif": {"sensitivity": figure(None, None, None), "specificity": figure(1.0, 1.0, 1.0),
                 "auc": figure(None, None, None)},
    }  # fmt: skip
    data.update(n_cases=42, n_patients=17, iterations=2000)
    return data


def make_version(dataset, *, evaluated=True, active=False, bundle="models/fake.hipmodel", config_name="cpu-small"):
    """A ModelVersion row with a bundle path that does not exist: the pages never load it."""
    return ModelVersionFactory(
        config_name=config_name,
        config={"name": config_name, "input_size": 128},
        dataset=dataset,
        bundle=bundle,
        is_active=active,
        evaluation=evaluation_dict() if evaluated else None,
    )


def fill_evaluation_dir(version):
    folder = version.evaluation_dir
    folder.mkdir(parents=True, exist_ok=True)
    png = io.BytesIO()
    Image.new("RGB", (4, 3), "white").save(png, format="PNG")
    for name in DOWNLOADS:
        if name.endswith(".png"):
            (folder / name).write_bytes(png.getvalue())
        elif name.endswith(".json"):
            (folder / name).write_text(json.dumps({"binary_accuracy": 0.9}))
        elif name.endswith(".csv"):
            (folder / name).write_text("a,b\n1,2\n")
        else:
            (folder / name).write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (folder / "secret.txt").write_text("not for download")
    (folder.parent / "outside.json").write_text("{}")
    return folder


def make_run(dataset, **fields):
    return TrainingRunFactory(dataset=dataset, **fields)


# --------------------------------------------------------------------------- who may


def page_urls(run, version, radiograph_id):
    return [
        "/models/",
        f"/models/runs/{run.pk}/",
        f"/models/versions/{version.pk}/",
        f"/models/radiographs/{radiograph_id}/predictions/",
    ]


def api_gets(run, version, radiograph_id):
    return [
        "/api/training-runs/",
        f"/api/training-runs/{run.pk}/",
        "/api/models/",
        f"/api/models/{version.pk}/",
        f"/api/models/{version.pk}/files/metrics.json",
        f"/api/radiographs/{radiograph_id}/predictions/?model={version.pk}",
    ]


@pytest.mark.parametrize("role", ["labeler", "reader", "adjudicator", "norole", None])
def test_other_roles_reach_no_page_or_endpoint(dataset, client_as, role):
    run = make_run(dataset)
    version = make_version(dataset)
    fill_evaluation_dir(version)
    radiograph_id = Radiograph.objects.first().pk
    client = client_as(role)
    for url in page_urls(run, version, radiograph_id):
        response = client.get(url)
        if role is None:
            assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
        else:
            assert response.status_code == 403, url
    posts = [
        "/models/",
        f"/models/runs/{run.pk}/cancel/",
        f"/models/versions/{version.pk}/activate/",
    ]
    for url in posts:
        response = client.post(url, {"dataset": dataset.pk, "config": "tiny", "seed": 0})
        assert response.status_code == (302 if role is None else 403), url
    for url in api_gets(run, version, radiograph_id):
        assert client.get(url).status_code in (401, 403), url
    api_posts = [
        ("/api/training-runs/", {"dataset": dataset.pk, "config": "tiny"}),
        (f"/api/training-runs/{run.pk}/cancel/", {}),
        (f"/api/models/{version.pk}/activate/", {}),
    ]
    for url, body in api_posts:
        assert client.post(url, body, content_type="application/json").status_code in (401, 403), url
    assert client.post("/api/predict/", {"boxes": "[]"}).status_code in (401, 403)
    assert TrainingRun.objects.count() == 1
    run.refresh_from_db()
    version.refresh_from_db()
    assert run.status == "queued" and not run.cancel_requested and not version.is_active


def test_researchers_see_the_models_link(dataset, client_as):
    assert 'href="/models/"' in client_as("researcher").get("/").content.decode()
    assert 'href="/models/"' not in client_as("labeler").get("/").content.decode()


# --------------------------------------------------------------------------- training runs


def test_train_form_starts_a_run_once(dataset, client_as, django_capture_on_commit_callbacks):
    client = client_as("researcher")
    page = client.get("/models/").content.decode()
    assert 'value="cpu-small" selected' in page and "Train" in page
    form = {"dataset": dataset.pk, "config": "tiny", "seed": 3, "activate": "on"}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/models/", form)
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/models/runs/{run.pk}/"
    assert len(callbacks) == 1  # the Celery task is queued once the run is committed
    assert (run.config_name, run.seed, run.activate_when_done, run.status) == ("tiny", 3, True, "queued")
    assert run.created_by.username == "alice" and run.dataset_id == dataset.pk and run.epochs == 2

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        again = client.post("/models/", form)
    assert again.status_code == 200 and not callbacks
    assert f"training run {run.pk} already trains config" in again.content.decode()
    assert TrainingRun.objects.count() == 1
    run_id = run.pk

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        detector = client.post("/models/", {**form, "kind": "detector"})
    run = TrainingRun.objects.get(kind="detector")
    assert detector.status_code == 302 and len(callbacks) == 1
    assert run.config_name == "tiny" and run.config["image_size"] == 128  # the detector's own tiny config
    assert TrainingRun.objects.count() == 2

    bad = client.post("/models/", {"dataset": dataset.pk, "config": "nope", "seed": 0})
    assert bad.status_code == 200 and "errorlist" in bad.content.decode()
    listing = client.get("/models/").content.decode()
    assert f'href="/models/runs/{run_id}/"' in listing and "queued" in listing


def test_run_page_and_json(dataset, client_as):
    started = timezone.now() - timedelta(seconds=30)
    history = [
        {"epoch": 1, "loss": 1.5, "accuracy": 0.4, "val_loss": 1.4, "val_accuracy": 0.5, "learning_rate": 0.001,
         "seconds": 100.0},
        {"epoch": 2, "loss": 1.2, "accuracy": 0.5, "val_loss": 1.3, "val_accuracy": 0.625, "learning_rate": 0.001,
         "seconds": 120.0},
    ]  # fmt: skip
    run = make_run(
        dataset, status="running", epoch=2, epochs=10, steps=5, steps_per_epoch=20, history=history,
        log="training <b>cpu-small</b>\nepoch 1/10\n", started_at=started, epoch_started_at=started, attempts=1,
    )  # fmt: skip
    client = client_as("researcher")
    body = client.get(f"/api/training-runs/{run.pk}/").json()
    expected = {"id", "status", "config_name", "config", "dataset", "epoch", "epochs", "steps", "steps_per_epoch",
                "history", "log", "error", "attempts", "cancel_requested", "created_at", "started_at",
                "finished_at", "epoch_started_at", "time_left_seconds", "model_version", "url"}  # fmt: skip
    assert expected <= set(body)
    assert (body["status"], body["epoch"], body["epochs"], body["dataset"]) == ("running", 2, 10, dataset.pk)
    assert body["url"] == f"/api/training-runs/{run.pk}/" and body["model_version"] is None
    # 110 s per epoch on average, 7.75 epochs left: 8 more and three quarters of the current one.
    assert body["time_left_seconds"] == pytest.approx(110 * 7.75)
    assert body["best_val_accuracy"] == 0.625
    assert [r["id"] for r in client.get("/api/training-runs/").json()] == [run.pk]

    page = client.get(f"/models/runs/{run.pk}/").content.decode()
    for element in ('id="run-status"', 'id="run-epoch"', 'id="run-progress"', 'id="run-time-left"',
                    'id="run-history"', 'id="run-log"', 'id="run-cancel"'):  # fmt: skip
        assert element in page, element
    assert "&lt;b&gt;cpu-small&lt;/b&gt;" in page and "<b>cpu-small</b>" not in page  # the log is escaped
    assert "0.6250" in page and "run-model-link" not in page
    listing = client.get("/models/").content.decode()
    assert "0.625" in listing and "2/10" in listing


def test_time_left_before_the_first_epoch_uses_the_current_pace(dataset):
    now = timezone.now()
    run = make_run(dataset, status="running", epochs=4, steps=10, steps_per_epoch=40,
                   epoch_started_at=now - timedelta(seconds=25))  # fmt: skip
    assert time_left_seconds(run, now=now) == pytest.approx(100 * 3.75)
    assert time_left_seconds(make_run(dataset, status="running", epochs=4)) is None
    assert time_left_seconds(make_run(dataset, status="queued")) is None


def test_api_starts_runs_and_refuses_duplicates_and_bad_input(dataset, client_as, django_capture_on_commit_callbacks):
    client = client_as("researcher")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            "/api/training-runs/", {"dataset": dataset.pk, "config": "tiny", "seed": 0}, content_type="application/json"
        )
    assert response.status_code == 201 and len(callbacks) == 1
    body = response.json()
    assert body["status"] == "queued" and body["config_name"] == "tiny" and body["config"]["name"] == "tiny"
    again = client.post(
        "/api/training-runs/", {"dataset": dataset.pk, "config": "tiny"}, content_type="application/json"
    )
    assert again.status_code == 400 and "already trains" in again.json()["detail"]
    unknown = client.post("/api/training-runs/", {"dataset": 999999, "config": "tiny"}, content_type="application/json")
    assert unknown.status_code == 400 and "999999" in unknown.json()["detail"]
    config = client.post("/api/training-runs/", {"dataset": dataset.pk, "config": "x"}, content_type="application/json")
    assert config.status_code == 400 and config.json()["detail"]
    assert client.post("/api/training-runs/", {"seed": 1}, content_type="application/json").status_code == 400
    assert TrainingRun.objects.count() == 1


def test_cancel_a_queued_run_and_refuse_an_ended_one(dataset, client_as):
    client = client_as("researcher")
    run = make_run(dataset)
    response = client.post(f"/api/training-runs/{run.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = client.post(f"/api/training-runs/{run.pk}/cancel/")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]

    other = make_run(dataset)
    response = client.post(f"/models/runs/{other.pk}/cancel/", follow=True)
    other.refresh_from_db()
    assert other.status == "cancelled" and other.cancel_requested
    assert response.redirect_chain[-1][0] == f"/models/runs/{other.pk}/"
    again = client.post(f"/models/runs/{other.pk}/cancel/", follow=True)
    assert "has already ended" in again.content.decode()
    assert client.get(f"/models/runs/{other.pk}/cancel/").status_code == 405

    running = make_run(dataset, status="running")
    client.post(f"/models/runs/{running.pk}/cancel/")
    running.refresh_from_db()
    assert running.status == "running" and running.cancel_requested  # the trainer stops it between batches


def test_a_succeeded_run_links_its_model(dataset, client_as):
    run = make_run(dataset, status="succeeded", finished_at=timezone.now())
    version = make_version(dataset)
    version.training_run = run
    version.save()
    client = client_as("researcher")
    body = client.get(f"/api/training-runs/{run.pk}/").json()
    assert body["model_version"] == version.pk and body["model_version_url"] == f"/models/versions/{version.pk}/"
    page = client.get(f"/models/runs/{run.pk}/").content.decode()
    assert f'id="run-model-link" href="/models/versions/{version.pk}/"' in page


# --------------------------------------------------------------------------- model versions


def test_activate_leaves_exactly_one_active(dataset, client_as, django_capture_on_commit_callbacks):
    first = make_version(dataset, active=True)
    second = make_version(dataset)
    client = client_as("researcher")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(f"/models/versions/{second.pk}/activate/")
    assert response.status_code == 302 and response["Location"] == f"/models/versions/{second.pk}/"
    assert len(callbacks) == 1  # scoring of the radiographs it has not read is queued
    assert list(ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True)) == [second.pk]
    with django_capture_on_commit_callbacks(execute=False):
        body = client.post(f"/api/models/{first.pk}/activate/").json()
    assert body["is_active"] and body["id"] == first.pk
    assert list(ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True)) == [first.pk]
    back = client.post(f"/models/versions/{second.pk}/activate/", {"next": "/models/"})
    assert back["Location"] == "/models/"
    evil = client.post(f"/models/versions/{first.pk}/activate/", {"next": "https://evil.example/"})
    assert evil["Location"] == f"/models/versions/{first.pk}/"
    assert client.get(f"/models/versions/{first.pk}/activate/").status_code == 405


def test_model_detail_shows_the_evaluation_with_confidence_intervals(dataset, client_as):
    version = make_version(dataset, active=True)
    fill_evaluation_dir(version)
    client = client_as("researcher")
    page = client.get(f"/models/versions/{version.pk}/").content.decode()
    assert "0.912 (0.88–0.94)" in page and "0.973 (0.95–0.99)" in page
    assert "42 hips of 17 patients" in page and "2000 bootstrap iterations" in page
    assert 'data-class="normal"' in page and "0.981 (0.96–1.00)" in page  # Table 2, the AUC rounds up
    assert 'data-class="orif"' in page and "1.000 (1.00–1.00)" in page
    for name in ("confusion_matrix.png", "roc_binary.png", "roc_per_class.png", "thresholds.png"):
        assert f'<img src="/api/models/{version.pk}/files/{name}"' in page, name
    for name in DOWNLOADS:
        assert f'href="/api/models/{version.pk}/files/{name}"' in page, name
    assert "secret.txt" not in page and "● active" in page and "Not evaluated yet" not in page

    listing = client.get("/models/").content.decode()
    assert "0.912 (0.88–0.94)" in listing and "0.973 (0.95–0.99)" in listing

    body = client.get(f"/api/models/{version.pk}/").json()
    assert body["evaluation"]["binary_accuracy"]["mean"] == 0.912 and body["is_active"]
    assert set(body["files"]) == set(DOWNLOADS)
    assert body["files"]["metrics.json"] == f"/api/models/{version.pk}/files/metrics.json"
    assert [v["id"] for v in client.get("/api/models/").json()] == [version.pk]


def test_model_page_lists_how_it_was_made_and_its_deviations_from_the_paper(dataset, client_as):
    from ml.core.configs import get_config
    from ml.core.deviations import classifier_deviations

    client = client_as("researcher")
    small = get_config("cpu-small").as_dict()
    version = make_version(dataset)
    ModelVersion.objects.filter(pk=version.pk).update(config=small)
    page = client.get(f"/models/versions/{version.pk}/").content.decode()
    assert 'data-key="pretraining"><th>Pretraining</th><td><strong>random weights</strong>' in page
    assert 'data-key="test_time"><th>Test-time protocol</th><td>single (zoom 1.0)' in page
    assert f'data-key="regime"><th>Training regime</th><td>{small["regime"]}' in page
    assert 'data-key="lr_schedule"><th>Learning-rate schedule</th><td>per_epoch' in page
    assert "Deviations from the paper" in page and "docs/research/deviations.md" in page
    # Generated from the configuration: every applicable registry entry, and only those.
    rows = classifier_deviations(small)
    assert {"random-init", "smaller-network", "optimiser-settings"} <= {d["key"] for d in rows}
    for row in rows:
        assert f'data-key="{row["key"]}"' in page, row["key"]
    assert 'data-key="test-time-zoom-average"' not in page and 'data-key="lr-decay-keras2"' not in page

    # A stored config from before the fields existed says what it was made with: zoom-average.
    ModelVersion.objects.filter(pk=version.pk).update(config={"name": "cpu-small", "input_size": 128})
    page = client.get(f"/models/versions/{version.pk}/").content.decode()
    assert "zoom-average (zooms 1.0, 1.5)" in page and 'data-key="test-time-zoom-average"' in page
    assert 'data-key="online-random-regime"' in page

    # The paper's configuration with ImageNet weights and the paper's readings.
    paper = get_config("paper", weights_path="/weights/densenet169_notop.h5").as_dict()
    ModelVersion.objects.filter(pk=version.pk).update(config=paper)
    page = client.get(f"/models/versions/{version.pk}/").content.decode()
    assert "ImageNet (DENSENET169_WEIGHTS)" in page and "paper-fixed" in page
    assert 'data-key="random-init"' not in page and 'data-key="smaller-network"' not in page


def test_paper_needs_its_weights_or_an_explicit_random_start_on_the_page_and_api(
    dataset, client_as, settings, django_capture_on_commit_callbacks
):
    settings.DENSENET169_WEIGHTS = None
    client = client_as("researcher")
    assert "Train from random weights" in client.get("/models/").content.decode()
    refused = client.post("/models/", {"dataset": dataset.pk, "config": "paper", "seed": 0})
    assert refused.status_code == 200 and "DENSENET169_WEIGHTS is not set" in refused.content.decode()
    api = client.post(
        "/api/training-runs/", {"dataset": dataset.pk, "config": "paper"}, content_type="application/json"
    )
    assert api.status_code == 400 and "DENSENET169_WEIGHTS" in api.json()["detail"]
    assert not TrainingRun.objects.exists()

    with django_capture_on_commit_callbacks(execute=False):
        page = client.post("/models/", {"dataset": dataset.pk, "config": "paper", "seed": 0, "random_init": "on"})
    run = TrainingRun.objects.get()
    assert page.status_code == 302 and run.config_name == "paper" and run.config["weights_path"] is None
    training.training_cancel(run)  # frees the config/dataset pair for the API's run
    with django_capture_on_commit_callbacks(execute=False):
        api = client.post(
            "/api/training-runs/", {"dataset": dataset.pk, "config": "paper", "random_init": True},
            content_type="application/json",
        )  # fmt: skip
    assert api.status_code == 201 and api.json()["config"]["weights_path"] is None


def test_an_unevaluated_model_says_so(dataset, client_as):
    version = make_version(dataset, evaluated=False)
    client = client_as("researcher")
    page = client.get(f"/models/versions/{version.pk}/").content.decode()
    assert "Not evaluated yet" in page and ">Activate</button>" in page
    assert client.get(f"/api/models/{version.pk}/").json()["files"] == {}
    assert client.get(f"/api/models/{version.pk}/files/metrics.json").status_code == 404
    listing = client.get("/models/").content.decode()
    assert ">Activate</button>" in listing


def test_file_downloads_only_known_names(dataset, client_as):
    version = make_version(dataset)
    fill_evaluation_dir(version)
    client = client_as("researcher")
    response = client.get(f"/api/models/{version.pk}/files/metrics.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    assert json.loads(b"".join(response.streaming_content)) == {"binary_accuracy": 0.9}
    csv_response = client.get(f"/api/models/{version.pk}/files/thresholds.csv")
    assert csv_response["Content-Type"].startswith("text/csv") and "attachment" in csv_response["Content-Disposition"]
    png = client.get(f"/api/models/{version.pk}/files/roc_binary.png")
    assert png["Content-Type"] == "image/png" and "attachment" not in png.get("Content-Disposition", "")
    svg = client.get(f"/api/models/{version.pk}/files/roc_binary.svg")
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
    (version.evaluation_dir / "roc_binary.svg").unlink()
    assert client.get(f"/api/models/{version.pk}/files/roc_binary.svg").status_code == 404  # known, not written
    for name in ("secret.txt", "..%2Foutside.json", "../outside.json", "..", "%2E%2E%2Foutside.json",
                 "metrics.json%00", "metrics.json/", "..%5Coutside.json"):  # fmt: skip
        response = client.get(f"/api/models/{version.pk}/files/{name}")
        assert response.status_code == 404, name
    assert client.get("/api/models/999999/files/metrics.json").status_code == 404


def test_api_in_openapi_schema(client_as):
    response = client_as("researcher").get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    paths = set(json.loads(response.content)["paths"])
    assert {
        "/api/training-runs/",
        "/api/training-runs/{id}/",
        "/api/training-runs/{id}/cancel/",
        "/api/models/",
        "/api/models/{id}/",
        "/api/models/{id}/activate/",
        "/api/models/{id}/files/{name}",
        "/api/radiographs/{id}/predictions/",
        "/api/predictions/{id}/heatmap.png",
        "/api/predict/",
    } <= paths


# --------------------------------------------------------------------------- predictions (a real tiny model)


def test_predict_an_uploaded_dicom_without_storing_it(tiny_version, client_as, dicom_bytes):
    client = client_as("researcher")
    data = dicom_bytes(seed=123, patient_id="MRN-UPLOAD", accession="ACC-UPLOAD")
    radiographs = Radiograph.objects.count()

    def post(**fields):
        payload = {"file": io.BytesIO(data), "boxes": json.dumps(BOXES), **fields}
        payload["file"].name = "x.dcm"
        return client.post("/api/predict/", payload)

    refused = post()
    assert refused.status_code == 409 and "no classifier is active" in refused.json()["detail"]
    scoring.activate(tiny_version, score=False)
    response = post()
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_version"] == tiny_version.pk
    assert [hip["side"] for hip in body["hips"]] == ["right", "left"]
    for hip in body["hips"]:
        assert sum(hip["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert hip["predicted_class"] == hip["top2"][0] and len(hip["top2"]) == 2
        assert 0 <= hip["fracture_probability"] <= 1 and len(hip["heatmap_rect"]) == 4
        assert Image.open(io.BytesIO(base64.b64decode(hip["heatmap_png_base64"]))).mode == "RGBA"
    assert post(model=tiny_version.pk).status_code == 200
    assert Radiograph.objects.count() == radiographs and not HipPrediction.objects.exists()

    bad_boxes = client.post("/api/predict/", {"file": io.BytesIO(data), "boxes": "[{"})
    assert bad_boxes.status_code == 400 and "not valid JSON" in bad_boxes.json()["detail"]
    outside = client.post(
        "/api/predict/", {"file": io.BytesIO(data), "boxes": json.dumps([{"side": "left", "box": [900, 0, 5, 5]}])}
    )
    assert outside.status_code == 400 and "outside" in outside.json()["detail"]
    not_dicom = client.post("/api/predict/", {"file": io.BytesIO(b"not a dicom file" * 20), "boxes": json.dumps(BOXES)})
    assert not_dicom.status_code == 400 and not_dicom.json()["detail"]
    assert client.post("/api/predict/", {"boxes": json.dumps(BOXES)}).status_code == 400
    assert post(model=999999).status_code == 400


def test_predict_refuses_files_over_the_limit(tiny_version, client_as, dicom_bytes, settings):
    scoring.activate(tiny_version, score=False)
    settings.MAX_DICOM_BYTES = 1000
    response = client_as("researcher").post("/api/predict/", {"file": io.BytesIO(dicom_bytes()), "boxes": "[]"})
    assert response.status_code == 413


def test_predictions_page_and_api_of_a_stored_radiograph(tiny_version, client_as):
    radiograph = Radiograph.objects.order_by("pk").first()
    rows = scoring.predict_radiograph(tiny_version, radiograph)
    assert {row.side for row in rows} == {"right", "left"}
    client = client_as("researcher")

    api = client.get(f"/api/radiographs/{radiograph.pk}/predictions/?model={tiny_version.pk}")
    assert api.status_code == 200 and [p["side"] for p in api.json()] == ["left", "right"]
    assert client.get(f"/api/radiographs/{radiograph.pk}/predictions/").status_code == 409  # none active
    scoring.activate(tiny_version, score=False)
    listing = client.get(f"/api/radiographs/{radiograph.pk}/predictions/").json()
    assert {p["id"] for p in listing} == {row.pk for row in rows}
    heatmap = client.get(f"/api/predictions/{rows[0].pk}/heatmap.png")
    assert heatmap.status_code == 200 and heatmap["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(b"".join(heatmap.streaming_content))).mode == "RGBA"
    assert client_as("labeler").get(f"/api/predictions/{rows[0].pk}/heatmap.png").status_code == 403

    page = client.get(f"/models/radiographs/{radiograph.pk}/predictions/").content.decode()
    assert f'src="/radiographs/{radiograph.pk}/preview.jpg"' in page and 'id="show-heatmaps"' in page
    for row in rows:
        assert f'src="/api/predictions/{row.pk}/heatmap.png"' in page
        assert f"{row.fracture_probability:.3f}" in page
    assert page.count('class="prediction-box"') == 2 and "fn_displaced" in page
    detail = client.get(f"/models/versions/{tiny_version.pk}/").content.decode()
    assert f'href="/models/radiographs/{radiograph.pk}/predictions/?model={tiny_version.pk}"' in detail
    other = Radiograph.objects.order_by("pk").last()
    empty = client.get(f"/models/radiographs/{other.pk}/predictions/").content.decode()
    assert "has not read this radiograph" in empty
