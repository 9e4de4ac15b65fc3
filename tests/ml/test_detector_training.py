"""Training the hip detector through the classifier's machinery (ml.training): a run of kind
"detector" on a real dataset version, its history, bundle and model version, activation next
to the active classifier, resuming from a checkpoint, and the train command."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from devtools.sample_data import BOX, film, truth_dataset
from ml import scoring, training
from ml.core import detector
from ml.core.modelfile import load_bundle, verify_bundle
from ml.models import ModelVersion, TrainingRun
from tests.ml.factories import ModelVersionFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast(settings):
    settings.BOOTSTRAP_ITERATIONS = 200
    settings.TRAINING_HEARTBEAT_SECONDS = 0.2


@pytest.fixture
def dataset(dicom_bytes):
    return truth_dataset(dicom_bytes)


def start(dataset, **kwargs) -> TrainingRun:
    return training.training_start(dataset=dataset, config_name="tiny", kind="detector", enqueue=False, **kwargs)


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing catches it."""


def test_a_detector_trains_publishes_and_activates_beside_the_classifier(dataset):
    run = start(dataset, activate=True)
    assert run.kind == "detector" and run.config == detector.get_detector_config("tiny").as_dict()
    events = []
    ended = training.run_training(run.pk, holder="w", progress=lambda event, info: events.append((event, info)))
    assert ended.status == "succeeded", ended.error
    assert ended.epoch == 2 and [h["epoch"] for h in ended.history] == [1, 2]
    row = ended.history[0]
    assert {"loss", "bbox_regression_loss", "cls_logits_loss", "val_mean_iou", "val_missed", "learning_rate"} <= set(
        row
    )
    assert 0.0 <= row["val_mean_iou"] <= 1.0
    assert ended.history[1]["learning_rate"] == pytest.approx(ended.history[0]["learning_rate"] * 0.95, rel=1e-5)
    assert events[0] == ("start", {"epochs": 2, "steps_per_epoch": ended.steps_per_epoch, "epoch": 0})
    assert ended.steps_per_epoch == 4  # 14 training radiographs (of 24 at 60 %) in batches of 4
    assert sum(1 for event, _ in events if event == "batch") == 2 * ended.steps_per_epoch
    assert [info["epoch"] for event, info in events if event == "epoch"] == [1, 2]
    assert "val_mean_iou" in ended.log and "training detector tiny" in ended.log

    version = ModelVersion.objects.get(training_run=ended)
    assert version.kind == "detector" and version.identity == ended.identity
    manifest = verify_bundle(version.bundle_path)
    assert manifest.kind == "detector" and manifest.classes == detector.SIDES
    assert set(manifest.metrics) == {"best_epoch", "best_val_mean_iou", "epochs"}
    model, config, _ = load_bundle(version.bundle_path)
    assert isinstance(config, detector.DetectorConfig) and config.name == "tiny"
    found = detector.detect(model, config, film(3), (2000.0, 4000.0))
    assert len(found) <= 2 and len({d.side for d in found}) == len(found)

    # Activated as the active detector; an active classifier stays active.
    assert version.is_active and scoring.active_model("detector") == version
    classifier = ModelVersionFactory(kind="classifier", config_name="x", dataset=dataset)
    scoring.activate(classifier, score=False)
    assert set(ModelVersion.objects.filter(is_active=True)) == {version, classifier}
    other = ModelVersionFactory(kind="detector", config_name="y", dataset=dataset)
    scoring.activate(other, score=False)
    assert set(ModelVersion.objects.filter(is_active=True)) == {other, classifier}

    # The same config on the unchanged dataset is refused, as for the classifier.
    with pytest.raises(training.TrainingRefused, match="already trained"):
        start(dataset)


def test_a_detector_run_resumes_from_its_last_checkpoint_after_a_crash(dataset, settings):
    settings.TRAINING_HEARTBEAT_SECONDS = 60
    run = start(dataset)

    def die_after_first_epoch(event, info):
        if event == "epoch" and info["epoch"] == 1:
            raise Crash

    with pytest.raises(Crash):
        training.run_training(run.pk, holder="worker-1", progress=die_after_first_epoch)
    run.refresh_from_db()
    assert run.status == "running" and run.epoch == 1 and run.attempts == 1
    checkpoint = training.latest_checkpoint(run.pk)
    assert checkpoint.epoch == 1 and (checkpoint.path / "optimizer.npz").is_file()
    assert checkpoint.state["best_val_mean_iou"] == run.history[0]["val_mean_iou"]
    first_epoch = run.history[0]

    # While the dead trainer's heartbeat is fresh, another delivery leaves the run alone.
    again = training.run_training(run.pk, holder="worker-2")
    assert (again.status, again.attempts, again.holder) == ("running", 1, "worker-1")

    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    done = training.run_training(run.pk, holder="worker-2")
    assert done.status == "succeeded", done.error
    assert done.attempts == 2 and done.epoch == 2
    assert [h["epoch"] for h in done.history] == [1, 2]
    assert done.history[0] == first_epoch  # epoch 1 was not trained again
    # The optimizer went on from its state: the learning rate decayed once more, not reset.
    assert done.history[1]["learning_rate"] == pytest.approx(first_epoch["learning_rate"] * 0.95, rel=1e-5)
    assert "resumed after epoch 1" in done.log
    assert ModelVersion.objects.filter(training_run=done, kind="detector").count() == 1


def test_cancelling_a_detector_run(dataset):
    run = start(dataset)

    def cancel_at_first_batch(event, info):
        if event == "batch":
            training.training_cancel(run)

    ended = training.run_training(run.pk, holder="w", progress=cancel_at_first_batch)
    assert ended.status == "cancelled" and ended.epoch == 0
    assert not ModelVersion.objects.exists() and not training.run_dir(run.pk).exists()


def test_detector_records_group_the_hips_by_radiograph(dataset):
    from ml.models import DatasetHip, Split

    records = training.detector_records(dataset, Split.TRAIN)
    hips = DatasetHip.objects.filter(dataset=dataset, split=Split.TRAIN)
    assert len(records) == hips.values("radiograph_id").distinct().count()
    assert sum(len(r.hips) for r in records) == hips.count()
    for record in records:
        assert dict(record.hips) == BOX
        assert record.load().shape == (160, 240)


def test_train_command_trains_a_detector(dataset, capsys):
    options = ["--kind", "detector", "--config", "tiny", "--dataset", str(dataset.pk), "--epochs", "1"]
    call_command("train", *options, "--no-progress")
    lines = capsys.readouterr().out.strip().splitlines()
    version = ModelVersion.objects.get()
    assert version.kind == "detector" and lines[-1] == str(version.pk)
    assert any("val_mean_iou" in line for line in lines)
    with pytest.raises(CommandError, match="already trained"):
        call_command("train", *options)
