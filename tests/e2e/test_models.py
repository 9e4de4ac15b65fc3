"""The Models pages in headless Chromium: starting a training run from the form, its page
following the run live (status, epoch, history, the model link) without a reload, and
cancelling a queued run."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from annotate.labels import HipClass
from ml import services as ml_services
from ml.models import ModelVersion, TrainingRun
from tests.ml.factories import ModelVersionFactory
from tests.ml.helpers import ingest, write_truth

pytestmark = pytest.mark.e2e

CLASS_CYCLE = ["normal", "fn_displaced", "intertrochanteric", "normal", "fn_nondisplaced", "orif", "arthroplasty"]


@pytest.fixture
def dataset(dicom_bytes, role_groups):
    for i in range(10):
        radiograph = ingest(dicom_bytes, i)
        write_truth(radiograph, [("right", CLASS_CYCLE[(2 * i) % 7]), ("left", CLASS_CYCLE[(2 * i + 1) % 7])])
    version, _ = ml_services.dataset_freeze(seed=1)
    return version


@pytest.fixture
def queued(monkeypatch):
    """No worker runs here: record what would be queued instead of sending it to the broker."""
    from ml import tasks

    sent: list[dict] = []
    monkeypatch.setattr(tasks.train_model, "delay", lambda **kwargs: sent.append(kwargs))
    return sent


def test_train_from_the_form_and_follow_the_run_live(page, login, shot, dataset, queued):
    login(page, "researcher")
    page.get_by_role("navigation").get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Models")
    expect(page.get_by_label("Configuration")).to_have_value("cpu-small")
    page.get_by_label("Configuration").select_option("tiny")
    page.get_by_label("Seed").fill("7")
    shot(page, "models")
    with page.expect_navigation():
        page.get_by_role("button", name="Start training").click()

    run = TrainingRun.objects.get()
    assert page.url.endswith(f"/models/runs/{run.pk}/")
    assert queued == [{"run_id": run.pk}] and run.seed == 7 and run.config_name == "tiny"
    expect(page.locator("#run-status")).to_have_text("queued")
    expect(page.locator("#run-epoch")).to_have_text("0")
    expect(page.locator("#run-history tbody tr")).to_have_count(0)
    expect(page.locator("#run-loss-chart svg path.series")).to_have_count(0)  # no epoch yet
    expect(page.locator("#run-cancel")).to_be_visible()

    # The trainer reports progress: the page shows it without a reload.
    row = {"epoch": 1, "loss": 1.61, "accuracy": 0.25, "val_loss": 1.55, "val_accuracy": 0.375,
           "learning_rate": 0.001, "seconds": 12.0}  # fmt: skip
    now = timezone.now()
    TrainingRun.objects.filter(pk=run.pk).update(
        status="running", epoch=1, history=[row], steps=3, steps_per_epoch=6, started_at=now,
        epoch_started_at=now, log="training tiny\nepoch 1/2: loss 1.6100\n",
    )  # fmt: skip
    expect(page.locator("#run-status")).to_have_text("running")
    expect(page.locator("#run-epoch")).to_have_text("1")
    expect(page.locator("#run-history tbody tr")).to_have_count(1)
    expect(page.locator("#run-history tbody tr td").nth(4)).to_have_text("0.3750")
    expect(page.locator("#run-progress")).to_have_attribute("value", "3")
    expect(page.locator("#run-time-left")).to_have_text("about 6 s")  # 12 s per epoch, half an epoch left
    expect(page.locator("#run-log")).to_contain_text("epoch 1/2: loss 1.6100")
    # The learning curves: one path per series (training and validation), a point per epoch.
    assert_curves(page, epochs=1)
    expect(page.locator('#run-loss-chart circle.point[data-series="val_loss"]')).to_have_attribute("data-y", "1.55")
    shot(page, "run-running")

    # Another epoch ends: the curves grow by a point each, without a reload.
    row2 = {**row, "epoch": 2, "loss": 1.2, "accuracy": 0.5, "val_loss": 1.3, "val_accuracy": 0.5}
    TrainingRun.objects.filter(pk=run.pk).update(epoch=2, history=[row, row2], steps=0)
    expect(page.locator("#run-history tbody tr")).to_have_count(2)
    assert_curves(page, epochs=2)
    expect(page.locator('#run-score-chart circle.point[data-series="val_accuracy"]')).to_have_count(2)

    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded", epoch=2, finished_at=timezone.now())
    version = ModelVersionFactory(
        config_name="tiny", config=run.config, dataset=dataset, training_run=run, bundle="models/x.hipmodel"
    )
    expect(page.locator("#run-status")).to_have_text("succeeded")
    link = page.locator("#run-model-link")
    expect(link).to_have_attribute("href", f"/models/versions/{version.pk}/")
    expect(page.locator("#run-cancel")).to_be_hidden()
    link.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Model version {version.pk}")
    expect(page.locator("#not-evaluated")).to_be_visible()
    page.get_by_role("button", name="Activate").click()
    expect(page.locator("#model-active")).to_be_visible()
    assert ModelVersion.objects.get(pk=version.pk).is_active


def assert_curves(page, *, epochs: int) -> None:
    for chart, keys in (("#run-loss-chart", ("loss", "val_loss")), ("#run-score-chart", ("accuracy", "val_accuracy"))):
        paths = page.locator(f"{chart} svg path.series")
        expect(paths).to_have_count(2)
        for key in keys:
            path = page.locator(f'{chart} path.series[data-series="{key}"]')
            expect(path).to_have_attribute("data-points", str(epochs))
            expect(page.locator(f'{chart} circle.point[data-series="{key}"]')).to_have_count(epochs)
            # The path joins that many points: one move and epochs - 1 lines.
            d = path.get_attribute("d")
            assert d.count("M") + d.count("L") == epochs, d


def test_cancel_a_queued_run(page, login, dataset, queued):
    login(page, "researcher")
    page.goto("/models/")
    page.get_by_label("Configuration").select_option("tiny")
    with page.expect_navigation():
        page.get_by_role("button", name="Start training").click()
    expect(page.locator("#run-status")).to_have_text("queued")
    with page.expect_navigation():
        page.locator("#run-cancel").get_by_role("button", name="Cancel").click()
    expect(page.locator("#run-status")).to_have_text("cancelled")
    expect(page.locator("#run-cancel")).to_be_hidden()
    assert TrainingRun.objects.get().status == "cancelled"

    # The same config on the same dataset may be trained again once cancelled; a live duplicate is refused.
    page.goto("/models/")
    page.get_by_label("Configuration").select_option("tiny")
    with page.expect_navigation():
        page.get_by_role("button", name="Start training").click()
    page.goto("/models/")
    page.get_by_label("Configuration").select_option("tiny")
    page.get_by_role("button", name="Start training").click()
    expect(page.locator("#train-errors")).to_contain_text("already trains")
    assert TrainingRun.objects.count() == 2


def test_other_roles_do_not_see_models(page, login):
    login(page, "labeler")
    expect(page.get_by_role("navigation").get_by_role("link", name="Models")).to_have_count(0)
    assert page.goto("/models/").status == 403


def test_predictions_page_overlays_the_heatmaps(page, login, shot, dataset, data_dir, tmp_path):
    pytest.importorskip("ml.core.serving")
    from devtools.sample_data import tiny_model_version, write_tiny_bundle
    from ml import scoring
    from tests.e2e.helpers import wait_for_images

    version = tiny_model_version(write_tiny_bundle(tmp_path), dataset, data_dir)
    scoring.activate(version, score=False)
    radiograph = dataset.hips.order_by("radiograph_id").first().radiograph
    rows = scoring.predict_radiograph(version, radiograph)
    login(page, "researcher")
    page.goto(f"/models/versions/{version.pk}/")
    page.get_by_role("link", name=f"Radiograph {radiograph.pk}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Predictions for radiograph {radiograph.pk}")
    wait_for_images(page, "#prediction-figure img", 3)  # the preview and two heatmaps
    expect(page.locator(".prediction-hip")).to_have_count(2)
    for row in rows:
        hip = page.locator(f'.prediction-hip[data-side="{row.side}"]')
        expect(hip.locator(".fracture-probability")).to_have_text(f"{row.fracture_probability:.3f}")
        expect(hip.locator("tbody tr")).to_have_count(6)
        # Classes in words, as on the labelling page; the key stays in the data.
        predicted = hip.locator("tbody tr.predicted td").first
        expect(predicted).to_have_attribute("data-class", row.predicted_class)
        expect(predicted).to_have_text(HipClass(row.predicted_class).label)
        for cell in hip.locator("tbody td[data-class]").all():
            assert cell.inner_text() == HipClass(cell.get_attribute("data-class")).label
        assert "fn_" not in hip.inner_text()
    # The heatmap lies over its rectangle of the radiograph, scaled with the preview.
    preview = page.locator(".prediction-preview").bounding_box()
    right = next(row for row in rows if row.side == "right")
    heat = page.locator('.prediction-heatmap[data-side="right"]').bounding_box()
    scale = preview["width"] / radiograph.columns
    assert heat["x"] - preview["x"] == pytest.approx(right.heatmap_rect[0] * scale, abs=1.5)
    assert heat["width"] == pytest.approx((right.heatmap_rect[2] - right.heatmap_rect[0]) * scale, abs=1.5)
    shot(page, "predictions")
    page.get_by_label("Show heatmaps").uncheck()
    expect(page.locator(".prediction-heatmap").first).to_be_hidden()
    page.get_by_label("Show heatmaps").check()
    expect(page.locator(".prediction-heatmap").first).to_be_visible()


def test_model_page_shows_the_audit(page, login, shot, dataset, data_dir, tmp_path):
    """The model audit on the model page: calibration table and diagrams, the subgroup table
    ("too few" for the small ones), the failure gallery and each wrong hip's link."""
    pytest.importorskip("ml.core.serving")
    from devtools.sample_data import tiny_model_version, write_tiny_bundle
    from ml.evaluation import evaluate_version
    from tests.e2e.helpers import wait_for_images

    version = tiny_model_version(write_tiny_bundle(tmp_path), dataset, data_dir)
    report = evaluate_version(version, iterations=50)
    login(page, "researcher")
    page.goto(f"/models/versions/{version.pk}/")
    expect(page.locator("#calibration tbody tr")).to_have_count(7)  # P(fracture) and six classes
    expect(page.locator('#calibration tr[data-curve="binary"]')).to_contain_text("P(fracture)")
    wait_for_images(page, 'img[src$="calibration_binary.png"], img[src$="calibration_per_class.png"]', 2)
    rows = sum(len(groups) for groups in report["subgroups"].values())
    expect(page.locator("#subgroups tbody tr")).to_have_count(rows)
    expect(page.locator('#subgroups tr[data-attribute="side"]').first).to_contain_text("too few")
    groups = report["failures"]
    expect(page.locator("#failures tbody tr")).to_have_count(len(groups))
    wait_for_images(page, "#failure-gallery", 1)
    shot(page, "model-audit")
    hip = groups[0]["hips"][0]
    page.locator("#failures").get_by_role("link", name=f"radiograph {hip['radiograph']}, {hip['side']}").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Predictions for radiograph {hip['radiograph']}")
