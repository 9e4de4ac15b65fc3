"""The paper's design in training runs (issue 13): no silent random start of ``paper``, the
training regime and lr schedule as named choices, validation by the model's own test-time
protocol, BatchNorm re-estimation that can be turned off, and a model that says how it was made
(metrics.json, its page)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from devtools.sample_data import truth_dataset
from ml import training
from ml.core.configs import CONFIGS, get_config
from ml.core.crops import CropSpec, hip_crop, to_model_input
from ml.models import ModelVersion, Split, TrainingRun

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


@pytest.fixture(autouse=True)
def fast(settings):
    settings.BOOTSTRAP_ITERATIONS = 100
    settings.TRAINING_HEARTBEAT_SECONDS = 0.2
    settings.DENSENET169_WEIGHTS = None


@pytest.fixture
def dataset(dicom_bytes):
    return truth_dataset(dicom_bytes)


# --------------------------------------------------------------------------- no silent random start


def test_paper_without_imagenet_weights_is_refused_within_seconds(dataset, settings, tmp_path):
    started = time.monotonic()
    with pytest.raises(CommandError, match="DENSENET169_WEIGHTS is not set") as refused:
        call_command("train", "--config", "paper", "--dataset", str(dataset.pk), "--no-progress")
    assert time.monotonic() - started < 5
    assert "--random-init" in str(refused.value)
    # A setting that names no file is no better.
    settings.DENSENET169_WEIGHTS = str(tmp_path / "missing_notop.h5")
    with pytest.raises(CommandError, match="DENSENET169_WEIGHTS is .*missing_notop.h5.*not a file"):
        call_command("train", "--config", "paper", "--dataset", str(dataset.pk), "--no-progress")
    with pytest.raises(training.TrainingRefused, match="DENSENET169_WEIGHTS"):
        training.training_start(dataset=dataset, config_name="paper", enqueue=False)
    assert not TrainingRun.objects.exists()
    # The small CPU configurations have no ImageNet weights to miss: they start.
    assert training.training_start(dataset=dataset, config_name="tiny", enqueue=False).config["weights_path"] is None


def test_random_init_starts_paper_from_random_weights_and_says_so(dataset, settings, tmp_path):
    run = training.training_start(dataset=dataset, config_name="paper", enqueue=False, random_init=True)
    assert run.status == "queued" and run.config_name == "paper" and run.config["weights_path"] is None
    # Asked for explicitly, random weights win over a weights file that is there.
    weights = tmp_path / "densenet169_notop.h5"
    weights.write_bytes(b"not read here")
    settings.DENSENET169_WEIGHTS = str(weights)
    assert training.config_for("paper").weights_path == str(weights)
    TrainingRun.objects.all().delete()
    again = training.training_start(dataset=dataset, config_name="paper", enqueue=False, random_init=True)
    assert again.config["weights_path"] is None
    with_weights = training.training_start(dataset=dataset, config_name="paper", enqueue=False, seed=1)
    assert with_weights.config["weights_path"] == str(weights)
    assert with_weights.identity != again.identity


# --------------------------------------------------------------------------- validation protocol


def by_hand_accuracy(model, records, zooms, size) -> float:
    """The records' accuracy from the mean softmax over their crops at ``zooms``, made one by one."""
    probs = []
    for r in records:
        pixels = r.load_pixels()
        crops = [
            to_model_input(hip_crop(pixels, r.box, r.side, window=r.window, spec=CropSpec(size=size, zoom=z)))
            for z in zooms
        ]
        probs.append(np.asarray(model.predict(np.stack(crops), verbose=0)).mean(axis=0))
    return float(np.mean(np.argmax(probs, axis=1) == np.array([r.label for r in records])))


@pytest.mark.parametrize(
    ("test_time", "recalibrate_bn", "zooms"),
    [("single", True, (1.0,)), ("zoom-average", False, (1.0, 1.5))],
)
def test_validation_uses_the_models_test_time_protocol(dataset, monkeypatch, test_time, recalibrate_bn, zooms):
    name = f"tiny-{test_time}"
    monkeypatch.setitem(
        CONFIGS, name, get_config("tiny").replace(name=name, test_time=test_time, recalibrate_bn=recalibrate_bn)
    )
    run = training.training_start(dataset=dataset, config_name=name, enqueue=False)
    config = training.config_from_dict(run.kind, run.config)
    train = training.hip_records(dataset, Split.TRAIN)
    val = training.hip_records(dataset, Split.VALIDATION)
    recipe = training.ClassifierRecipe()
    steps = recipe.steps_per_epoch(config, train)
    prepared = recipe.prepare(run, config, train, val, steps=steps, checkpoint=None, first_epoch=0)
    model = prepared.model
    # Some training, so that the zooms disagree and the BatchNorm statistics have drifted.
    model.fit(prepared.train_data, epochs=1, verbose=0, shuffle=False)
    norm = model.get_layer("conv1_bn")
    before = np.array(norm.moving_mean)
    figures = prepared.validate(model)
    after = np.array(norm.moving_mean)
    assert np.array_equal(before, after) is (not recalibrate_bn)  # re-estimated only when asked
    assert figures["val_accuracy"] == pytest.approx(by_hand_accuracy(model, val, zooms, config.input_size))
    assert math.isfinite(figures["val_loss"])


# --------------------------------------------------------------------------- a run under the paper's regime


def test_a_paper_fixed_run_with_keras2_decay_trains_and_its_model_says_how(dataset, monkeypatch, client_as, tmp_path):
    name = "tiny-paper"
    config = get_config("tiny").replace(name=name, regime="paper-fixed", lr_schedule="keras2_inverse_time",
                        test_time="zoom-average", recalibrate_bn=False, epochs=1)  # fmt: skip
    monkeypatch.setitem(CONFIGS, name, config)
    run = training.training_start(dataset=dataset, config_name=name, enqueue=False)
    ended = training.run_training(run.pk, holder="w")
    assert ended.status == "succeeded", ended.error
    n_train = len(training.hip_records(dataset, Split.TRAIN))
    # 2 zooms x (plain + 3 augmentations) = 8 images per hip and epoch.
    assert ended.steps_per_epoch == math.ceil(8 * n_train / config.batch_size)
    assert "regime paper-fixed (8 images per hip per epoch)" in ended.log
    assert "validation by test-time protocol zoom-average (zooms [1.0, 1.5])" in ended.log
    assert "BatchNorm re-estimation off" in ended.log and "random initial weights" in ended.log
    # Keras 2.2's inverse-time decay, per optimizer step: after one epoch's steps.
    lr = ended.history[0]["learning_rate"]
    assert lr == pytest.approx(config.learning_rate / (1 + 0.9 * ended.steps_per_epoch), rel=1e-4)

    version = ModelVersion.objects.get(training_run=ended)
    out = tmp_path / "eval"
    call_command("evaluate", "--model", str(version.pk), "--out", str(out), "--iterations", "50")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pretraining"] == "random"
    assert (metrics["test_time"], metrics["test_time_zooms"]) == ("zoom-average", [1.0, 1.5])
    assert (metrics["regime"], metrics["lr_schedule"], metrics["recalibrate_bn"]) == (
        "paper-fixed", "keras2_inverse_time", False
    )  # fmt: skip
    keys = [d["key"] for d in metrics["deviations"]]
    assert {"test-time-zoom-average", "random-init", "lr-decay-keras2", "smaller-network"} <= set(keys)
    assert not {"online-random-regime", "batchnorm-recalibration", "lr-decay-per-epoch"} & set(keys)
    assert all(d["title"] and d["choice"] for d in metrics["deviations"])
    # The same in the version's own evaluation folder and on its row.
    stored = json.loads((version.evaluation_dir / "metrics.json").read_text())
    assert stored["deviations"] == metrics["deviations"] and stored["pretraining"] == "random"
    version.refresh_from_db()
    assert version.evaluation["regime"] == "paper-fixed"

    page = client_as("researcher").get(f"/models/versions/{version.pk}/").content.decode()
    assert "random weights" in page and "zoom-average" in page and "paper-fixed" in page
    assert 'data-key="lr-decay-keras2"' in page and 'data-key="online-random-regime"' not in page
