"""Training runs end to end on a real (tiny) network: the train command, checkpoints and
resuming, one trainer at a time, cancelling, duplicates, publishing and evaluating the
model version, activation and scoring."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from devtools.sample_data import truth_dataset
from ml import scoring, training
from ml.core.modelfile import verify_bundle
from ml.models import DatasetHip, HipPrediction, ModelVersion, Split, TrainingRun
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
    return training.training_start(dataset=dataset, config_name="tiny", enqueue=False, **kwargs)


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing catches it."""


def test_train_command_trains_evaluates_and_prints_the_version_id(dataset, capsys, tmp_path):
    call_command("train", "--kind", "classifier", "--config", "tiny", "--dataset", str(dataset.pk), "--no-progress")
    lines = capsys.readouterr().out.strip().splitlines()
    version = ModelVersion.objects.get()
    assert lines[-1] == str(version.pk)
    run = version.training_run
    assert run.status == "succeeded" and run.epoch == 2 and [h["epoch"] for h in run.history] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"} <= set(run.history[0])
    # The paper's learning-rate decay: x0.9 per epoch (tiny config: 1e-3).
    assert run.history[1]["learning_rate"] == pytest.approx(run.history[0]["learning_rate"] * 0.9, rel=1e-5)
    manifest = verify_bundle(version.bundle_path)
    assert manifest.identity == version.identity == run.identity
    assert manifest.dataset_hash == dataset.content_hash and manifest.config.name == "tiny"
    assert not version.is_active
    # Evaluated on the test split: every test hip predicted and stored, the report written.
    test_hips = DatasetHip.objects.filter(dataset=dataset, split=Split.TEST).count()
    assert test_hips > 0
    assert version.evaluation["n_cases"] == test_hips
    for key in ("binary_accuracy", "binary_sensitivity", "binary_specificity", "binary_auc", "multiclass_accuracy"):
        assert set(version.evaluation[key]) >= {"mean", "ci_low", "ci_high"}
    # The worklist's CT/MRI flag reads the nondisplaced class's ideal threshold from here.
    assert set(version.evaluation["thresholds"]["fn_nondisplaced"]) == {"threshold", "sensitivity", "specificity"}
    assert HipPrediction.objects.filter(model_version=version).count() == test_hips
    assert (version.evaluation_dir / "metrics.json").is_file()
    assert (version.evaluation_dir / "roc_binary.svg").is_file()
    # The checkpoints are gone once the run ended well? They are kept for the record: only the last.
    assert len(list(training.run_dir(run.pk).glob("epoch-*"))) == 1

    # evaluate --model VERSION --out DIR writes the paper's figures with the documented keys.
    out = tmp_path / "eval"
    call_command("evaluate", "--model", str(version.pk), "--out", str(out), "--iterations", "100")
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("binary_accuracy", "binary_sensitivity", "binary_specificity", "binary_auc", "multiclass_accuracy"):
        assert set(metrics[key]) >= {"mean", "ci_low", "ci_high"}
    assert set(metrics["per_class"]["fn_displaced"]) == {"sensitivity", "specificity", "auc"}
    for name in ("confusion_matrix", "roc_binary", "roc_per_class", "thresholds"):
        assert (out / f"{name}.png").stat().st_size > 0 and (out / f"{name}.svg").stat().st_size > 0
    assert (out / "metrics.csv").read_text().startswith("metric,")
    assert len((out / "predictions.csv").read_text().splitlines()) == test_hips + 1

    # Training again with the same config on the unchanged dataset is refused.
    with pytest.raises(CommandError, match="already trained"):
        call_command("train", "--config", "tiny", "--dataset", str(dataset.pk), "--no-progress")
    assert TrainingRun.objects.count() == 1


def test_a_second_start_of_a_live_run_is_refused(dataset):
    run = start(dataset)
    with pytest.raises(training.TrainingRefused, match=f"training run {run.pk} already trains"):
        start(dataset)
    # A failed or cancelled run frees its config/dataset pair.
    training.training_cancel(run)
    assert TrainingRun.objects.get(pk=run.pk).status == "cancelled"
    assert start(dataset).pk != run.pk


def test_a_run_resumes_from_its_last_checkpoint_after_a_crash(dataset, settings):
    settings.TRAINING_HEARTBEAT_SECONDS = 60
    run = start(dataset)

    def die_after_first_epoch(event, info):
        if event == "epoch" and info["epoch"] == 1:
            raise Crash

    with pytest.raises(Crash):
        training.run_training(run.pk, holder="worker-1", progress=die_after_first_epoch)
    run.refresh_from_db()
    assert run.status == "running" and run.epoch == 1 and run.attempts == 1
    assert training.latest_checkpoint(run.pk).epoch == 1
    first_epoch = run.history[0]

    # While the dead trainer's heartbeat is fresh, another delivery leaves the run alone.
    again = training.run_training(run.pk, holder="worker-2")
    assert (again.status, again.attempts, again.holder) == ("running", 1, "worker-1")

    # Once it has gone silent, the next delivery takes over from the checkpoint.
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    done = training.run_training(run.pk, holder="worker-2")
    assert done.status == "succeeded", done.error
    assert done.attempts == 2 and done.epoch == 2
    assert [h["epoch"] for h in done.history] == [1, 2]
    assert done.history[0] == first_epoch  # epoch 1 was not trained again
    assert "resumed after epoch 1" in done.log
    assert ModelVersion.objects.filter(training_run=done).count() == 1

    # A redelivery after the end does nothing.
    assert training.run_training(run.pk, holder="worker-3").attempts == 2


def test_cancelling_stops_the_run_between_batches(dataset):
    run = start(dataset)

    def cancel_at_first_batch(event, info):
        if event == "batch":
            training.training_cancel(run)

    ended = training.run_training(run.pk, holder="w", progress=cancel_at_first_batch)
    assert ended.status == "cancelled" and ended.epoch == 0
    assert not ModelVersion.objects.exists()
    assert not training.run_dir(run.pk).exists()
    assert "cancelled" in ended.log


def test_a_failing_run_fails_with_its_reason(dataset):
    run = start(dataset)
    DatasetHip.objects.filter(dataset=dataset, split=Split.VALIDATION).delete()
    ended = training.run_training(run.pk, holder="w")
    assert ended.status == "failed" and "no training or no validation hips" in ended.error
    assert ended.finished_at is not None


def queued(queue: str = "ml") -> list[tuple[str, dict]]:
    """Take every message off a broker queue: (task name, kwargs)."""
    from config.celery import app

    out = []
    with app.connection_for_read() as connection:
        simple = connection.SimpleQueue(queue)
        try:
            while True:
                try:
                    message = simple.get(block=False)
                except simple.Empty:
                    break
                out.append((message.headers["task"], message.payload[1]))
                message.ack()
        finally:
            simple.close()
    return out


def test_activate_when_done_and_scoring(dataset):
    queued()
    run = start(dataset, activate=True)
    ended = training.run_training(run.pk, holder="w")
    assert ended.status == "succeeded"
    version = ModelVersion.objects.get()
    assert version.is_active and scoring.active_model() == version
    # Activating queued the scoring of every radiograph with hips, on the ml queue.
    assert queued() == [("ml.tasks.score_radiographs", {"model_version_id": version.pk})]

    # Batch scoring reads every radiograph with ground truth, once; predictions carry the version.
    n = scoring.score_radiographs(model_version_id=version.pk)
    radiographs = DatasetHip.objects.filter(dataset=dataset).values("radiograph_id").distinct().count()
    assert HipPrediction.objects.filter(model_version=version).count() == 2 * radiographs
    assert (
        n
        == radiographs
        - DatasetHip.objects.filter(dataset=dataset, split=Split.TEST).values("radiograph_id").distinct().count()
    )
    assert scoring.radiographs_to_score(version) == []
    row = HipPrediction.objects.filter(model_version=version).first()
    assert sum(row.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert row.fracture_probability == pytest.approx(sum(row.probabilities[1:4]), abs=1e-6)
    assert row.top2[0] == row.predicted_class and len(row.top2) == 2
    assert row.heatmap.storage.exists(row.heatmap.name)

    # Only one active classifier at a time.
    other = ModelVersionFactory(kind="classifier", config_name="x", dataset=dataset)
    scoring.activate(other, score=False)
    assert list(ModelVersion.objects.filter(is_active=True)) == [other]

    # New ground truth is read by the active classifier as it arrives.
    from annotate.labels import GroundTruthHip

    hip = GroundTruthHip.objects.first()
    GroundTruthHip.objects.create(
        radiograph=hip.radiograph, adjudication=hip.adjudication, side="right", hip_class="normal", x=1, y=1,
        width=50, height=50, removed_at=timezone.now(),
    )  # fmt: skip
    assert queued() == [
        ("ml.tasks.score_radiographs", {"model_version_id": other.pk, "radiograph_ids": [hip.radiograph_id]})
    ]


def test_predict_command_prints_json_per_hip(dataset, dicom_bytes, tmp_path, capsys):
    from devtools.sample_data import film

    run = start(dataset, activate=True)
    training.run_training(run.pk, holder="w")
    path = tmp_path / "new.dcm"
    path.write_bytes(dicom_bytes(seed=500, patient_id="NEW1", accession="NEWACC", pixels=film(3)))
    boxes = json.dumps([{"side": "left", "box": [130, 30, 90, 90]}, {"side": "right", "box": [20, 30, 90, 90]}])
    capsys.readouterr()
    call_command("predict", str(path), "--boxes", boxes, "--heatmaps", str(tmp_path / "maps"))
    out = json.loads(capsys.readouterr().out)
    assert out["model_version"] == ModelVersion.objects.get().pk
    assert [h["side"] for h in out["hips"]] == ["right", "left"]
    for hip in out["hips"]:
        assert sum(hip["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert hip["top2"][0] == hip["predicted_class"]
        assert hip["heatmap_url"].startswith("file://")
    assert len(list((tmp_path / "maps").glob("*.png"))) == 2

    with pytest.raises(CommandError, match="give --boxes"):
        call_command("predict", str(path))
    with pytest.raises(CommandError, match="outside"):
        call_command("predict", str(path), "--boxes", '[{"side": "right", "box": [5000, 0, 10, 10]}]')
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("predict", str(path), "--boxes", "[{")
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"DICM" + b"\0" * 50)
    with pytest.raises(CommandError, match="broken.dcm"):
        call_command("predict", str(broken), "--boxes", boxes)
