"""A training run on a real Celery worker of the ml queue: queued from the page's code
path, trained, its worker killed with SIGKILL after the first epoch, resumed by the next
worker from the checkpoint, finished with one model version."""

from __future__ import annotations

import time

import pytest

from ml import training
from ml.models import ModelVersion, TrainingRun
from tests.ml.helpers import truth_dataset
from tests.test_worker import wait_for

TASK = "ml.tasks.train_model"


@pytest.fixture
def quick_heartbeat(monkeypatch):
    # Read by the worker processes (their settings come from the environment).
    monkeypatch.setenv("TRAINING_HEARTBEAT_SECONDS", "0.5")
    monkeypatch.setenv("BOOTSTRAP_ITERATIONS", "100")


def run_state(pk: int) -> TrainingRun:
    return TrainingRun.objects.get(pk=pk)


def test_a_training_run_survives_its_worker_being_killed(quick_heartbeat, celery_worker, dicom_bytes):
    dataset = truth_dataset(dicom_bytes, radiographs=40, patients=30)
    run = training.training_start(dataset=dataset, config_name="tiny", seed=3)  # queued on commit

    wait_for(lambda: run_state(run.pk).epoch >= 1, what="the first epoch", worker=celery_worker, timeout=180)
    celery_worker.kill()  # SIGKILL the worker and its pool process, mid-run
    killed = run_state(run.pk)
    assert killed.status == "running" and killed.attempts == 1, killed.log
    assert training.latest_checkpoint(run.pk) is not None

    # The message is either still unacknowledged or, when the first epoch outlasted the
    # (short) visibility timeout, already put back on the queue by the worker itself; a
    # training run outlasting the timeout is normal, and a second delivery must not train
    # twice. Either way it is due once the visibility timeout has passed.
    assert [m["task"] for m in celery_worker.unacked()] in ([TASK], [])
    visible_at = time.time() + celery_worker.visibility_timeout + 0.2
    wait_for(lambda: time.time() > visible_at, what="the visibility timeout", worker=celery_worker, timeout=15)
    celery_worker.start()

    ended = lambda: run_state(run.pk).status not in TrainingRun.LIVE  # noqa: E731
    wait_for(ended, what="the run to end", worker=celery_worker, timeout=240)
    done = run_state(run.pk)
    assert done.status == "succeeded", (done.error, done.log, celery_worker.output())
    assert done.attempts == 2 and "resumed after epoch" in done.log
    assert [h["epoch"] for h in done.history] == [1, 2]
    assert done.history[0] == killed.history[0]  # the first epoch was kept, not trained again
    version = ModelVersion.objects.get(training_run=done)
    assert version.evaluation["n_cases"] > 0
    # Any second delivery of the message ends without training (attempts stayed 2).
    wait_for(
        lambda: celery_worker.unacked() == [] and celery_worker.queued("ml") == 0,
        what="the broker to be empty",
        worker=celery_worker,
        timeout=30,
    )
    assert run_state(run.pk).attempts == 2
