"""Training runs: one code path for the Celery task and ``manage.py train``.

``training_start`` records a run (refusing a duplicate) and queues it;
``run_training`` trains it, in a worker or in the foreground. The network,
loss and input pipeline are ``ml.core``'s; this module adds what makes a run
survive real life:

- **Checkpoints.** After every epoch the model (weights and optimizer state)
  and the run's state (history, best validation accuracy, epochs without gain)
  go into ``DATA_DIR/training/<run>/epoch-NNNN/``, written under a temporary
  name and renamed whole; the best weights so far into ``best-NNNN.weights.h5``.
  A worker that dies loses at most the epoch under way: the redelivered task
  (``acks_late``) loads the newest complete checkpoint and goes on from there.
- **One trainer at a time.** The trainer holding a run writes a heartbeat into
  its row every ``TRAINING_HEARTBEAT_SECONDS``. A delivery of a run whose heartbeat is fresh
  (a second message, or the broker redelivering a long task) does not train:
  it waits and looks again, and takes over only when the heartbeat has gone
  stale (the trainer died) or ends when the run has ended.
- **Cancelling.** The page sets ``cancel_requested``; the trainer looks at it
  between batches and stops at once; the run ends "cancelled", no model.
- **Validation** after every epoch, on a model whose BatchNorm statistics were first
  re-estimated on clean training crops (``nets.recalibrate_batch_norm``): the moving
  averages kept by training drift far from them on a small data set, and validation
  accuracy (hence early stopping) then swings between 0.15 and 0.9 from one epoch to
  the next.
- **Early stopping** as the paper: after ``config.patience`` epochs without a
  gain in the validation figure; the best epoch's weights become the model.

Two kinds of model train here, each through a ``Recipe`` (``recipe_for(run.kind)``) that
supplies what differs: its configurations, its records, building/compiling and checkpointing
its network, its training data, the validation figure the callback monitors (classifier:
``val_accuracy``; detector: ``val_mean_iou``, the mean IoU of the detected boxes with the
manual ones on the validation radiographs, a missed hip counting 0) and what follows
publishing. Everything else (checkpoints, resume, heartbeat, cancel, duplicates, history,
progress, publishing, activation) is this module's, for both.

The row is only ever changed with ``QuerySet.update`` of the fields this
module owns, so a cancel request written by the web at the same moment is
never overwritten.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotate.labels import CLASSES
from annotate.pixels import pixel_source
from common import queueing
from ml import evaluation, scoring
from ml.core import detector
from ml.core.augment import AugmentConfig
from ml.core.configs import CONFIGS, NetConfig, get_config, with_regime
from ml.core.detector import DETECTOR_CONFIGS, DetectorConfig, DetectorRecord, get_detector_config
from ml.core.modelfile import bundle_identity, sha256_file, write_bundle
from ml.core.serving import protocol_zooms
from ml.models import DatasetHip, DatasetVersion, Kind, ModelVersion, Split, TrainingRun

logger = logging.getLogger(__name__)

Progress = Callable[[str, dict[str, Any]], None]
PRECISE_BN_IMAGES = 256  # training crops whose BatchNorm statistics each validation uses
DETECTOR_BN_IMAGES = 64  # training radiographs, likewise, for a detector


class TrainingRefused(ValueError):
    """A run that may not start: a duplicate, an empty split, an unknown config, a DenseNet-169
    without its ImageNet weights (unless random weights were asked for)."""


def random_start_refusal(config: NetConfig) -> str | None:
    """Why ``config`` may not start without an explicit ``random_init``, or None. The paper
    fine-tunes ImageNet weights at lr 1e-5; a DenseNet-169 from random weights at that rate
    does not learn, and a model called ``paper`` must not quietly be something else."""
    if config.backbone != "densenet169" or config.pretrained:
        return None
    configured = settings.DENSENET169_WEIGHTS
    where = (
        f"DENSENET169_WEIGHTS is {configured!r}, which is not a file"
        if configured
        else "DENSENET169_WEIGHTS is not set"
    )
    return (
        f"config {config.name!r} fine-tunes ImageNet weights, but {where}: set DENSENET169_WEIGHTS to the "
        "Keras DenseNet-169 ImageNet 'notop' .h5 file, or ask for random weights explicitly (--random-init, "
        "the form's 'Train from random weights', or \"random_init\": true in the API)"
    )


# --------------------------------------------------------------------------- starting


def config_for(name: str, kind: str = Kind.CLASSIFIER) -> NetConfig | DetectorConfig:
    """The named configuration of ``kind`` with this site's local weights, if any: ImageNet
    weights for DenseNet-169 (``DENSENET169_WEIGHTS``), for a detector's ResNet-50 encoder
    (``RESNET50_WEIGHTS``)."""
    if kind == Kind.DETECTOR:
        try:
            detector_config = get_detector_config(name)
        except KeyError as error:
            raise TrainingRefused(str(error.args[0])) from None
        weights = settings.RESNET50_WEIGHTS
        if detector_config.backbone == "resnet50" and weights:
            detector_config = detector_config.replace(weights_path=str(weights))
        return detector_config
    if kind != Kind.CLASSIFIER:
        raise TrainingRefused(f"unknown model kind {kind!r}; known: {', '.join(Kind.values)}")
    try:
        config = get_config(name)
    except KeyError as error:
        raise TrainingRefused(str(error.args[0])) from None
    weights = settings.DENSENET169_WEIGHTS
    if config.backbone == "densenet169" and weights and Path(weights).is_file():
        config = config.replace(weights_path=str(weights))
    return config


def config_from_dict(kind: str, data: dict[str, Any]) -> NetConfig | DetectorConfig:
    """A run's stored config back as the config object of its kind."""
    return DetectorConfig.from_dict(data) if kind == Kind.DETECTOR else NetConfig.from_dict(data)


def training_start(
    *,
    dataset: DatasetVersion,
    config_name: str,
    kind: str = Kind.CLASSIFIER,
    user: Any = None,
    seed: int = 0,
    activate: bool = False,
    epochs: int | None = None,
    enqueue: bool = True,
    random_init: bool = False,
    regime: str | None = None,
) -> TrainingRun:
    """Record a training run of a ``kind`` ("classifier" or "detector") model and
    (``enqueue``) queue it on the ``ml`` queue once committed.

    Refuses (``TrainingRefused``) a config/dataset pair that already has a model version
    or a queued, running or finished run: retraining an unchanged dataset with the same
    config would only make the same model again. Refuses a DenseNet-169 classifier (``paper``)
    when ``DENSENET169_WEIGHTS`` names no file, unless ``random_init``: then (and whenever
    ``random_init`` is given) the backbone starts from random weights, and the run's config
    says so (``weights_path`` None). ``regime`` (classifier): train under that regime instead
    of the config's, with as many images seen (``configs.with_regime``); ``epochs`` is applied
    after it."""
    config = config_for(config_name, kind)
    if isinstance(config, NetConfig):
        if random_init:
            config = config.replace(weights_path=None)
        elif (reason := random_start_refusal(config)) is not None:
            raise TrainingRefused(reason)
        if regime is not None:
            try:
                config = with_regime(config, regime)
            except ValueError as error:
                raise TrainingRefused(str(error)) from None
    elif regime is not None:
        raise TrainingRefused("a training regime applies to the classifier only")
    if epochs is not None:
        config = config.replace(epochs=int(epochs))
    splits = set(DatasetHip.objects.filter(dataset=dataset).values_list("split", flat=True).distinct())
    missing = {Split.TRAIN, Split.VALIDATION} - splits
    if missing:
        raise TrainingRefused(f"dataset version {dataset.pk} has no {' or '.join(sorted(missing))} hips")
    identity = bundle_identity(config, dataset.content_hash)
    existing = ModelVersion.objects.filter(identity=identity).first()
    if existing is not None:
        raise TrainingRefused(
            f"model version {existing.pk} was already trained with config {config_name!r} on dataset "
            f"version {dataset.pk}, which has not changed since"
        )
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                kind=kind,
                config_name=config_name,
                config=config.as_dict(),
                dataset=dataset,
                seed=seed,
                identity=identity,
                activate_when_done=activate,
                epochs=config.epochs,
                created_by=user if getattr(user, "is_authenticated", False) else None,
            )
    except IntegrityError:
        other = TrainingRun.objects.filter(identity=identity, status__in=["queued", "running", "succeeded"]).first()
        raise TrainingRefused(
            f"training run {other.pk if other else '?'} already trains config {config_name!r} on dataset "
            f"version {dataset.pk}"
        ) from None
    if enqueue:
        # deferred: the tasks module imports this one
        from ml.tasks import train_model

        queueing.enqueue(train_model, run_id=run.pk)
    return run


def training_cancel(run: TrainingRun) -> bool:
    """Ask a live run to stop; a queued run ends at once. False when it had already ended."""
    changed = TrainingRun.objects.filter(pk=run.pk, status__in=TrainingRun.LIVE).update(cancel_requested=True)
    TrainingRun.objects.filter(pk=run.pk, status="queued").update(
        status="cancelled", finished_at=timezone.now(), log=f"{run.log}cancelled before it started\n"
    )
    return bool(changed)


# --------------------------------------------------------------------------- heartbeat


def heartbeat_seconds() -> float:
    return float(settings.TRAINING_HEARTBEAT_SECONDS)


def beat(run_id: int, holder: str) -> None:
    TrainingRun.objects.filter(pk=run_id).update(holder=holder, heartbeat_at=timezone.now())


def other_holder(run: TrainingRun, holder: str) -> str | None:
    """Another trainer holding ``run`` with a fresh heartbeat, if any."""
    if not run.holder or run.holder == holder or run.heartbeat_at is None:
        return None
    silent = (timezone.now() - run.heartbeat_at).total_seconds()
    return run.holder if silent < 3 * heartbeat_seconds() else None


# --------------------------------------------------------------------------- checkpoints


@dataclass
class Checkpoint:
    epoch: int  # epochs completed
    path: Path
    state: dict[str, Any]


def run_dir(run_id: int) -> Path:
    return Path(settings.DATA_DIR) / "training" / str(run_id)


def latest_checkpoint(run_id: int) -> Checkpoint | None:
    folder = run_dir(run_id)
    if not folder.is_dir():
        return None
    done = sorted(p for p in folder.glob("epoch-[0-9][0-9][0-9][0-9]") if (p / "state.json").is_file())
    if not done:
        return None
    path = done[-1]
    state = json.loads((path / "state.json").read_text())
    return Checkpoint(epoch=int(state["epoch"]), path=path, state=state)


def _fsync_tree(folder: Path) -> None:
    for path in [*folder.iterdir(), folder]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(
    run_id: int, model: Any, state: dict[str, Any], save_model: Callable[[Any, Path], None] | None = None
) -> Path:
    """Write the epoch's checkpoint; ``save_model(model, folder)`` writes the model into the
    folder (default: ``model.save(folder / "model.keras")``, weights and optimizer state)."""
    folder = run_dir(run_id)
    final = folder / f"epoch-{state['epoch']:04d}"
    temp = folder / f".epoch-{state['epoch']:04d}.tmp"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    if save_model is None:
        model.save(temp / "model.keras")
    else:
        save_model(model, temp)
    (temp / "state.json").write_text(json.dumps(state, indent=1))
    _fsync_tree(temp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temp, final)
    for old in folder.glob("epoch-[0-9][0-9][0-9][0-9]"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def save_best(run_id: int, model: Any, epoch: int) -> str:
    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"best-{epoch:04d}.weights.h5"
    temp = folder / f".{name}.tmp.weights.h5"
    model.save_weights(temp)
    os.replace(temp, folder / name)
    return name


def prune_best(run_id: int, keep: str) -> None:
    for old in run_dir(run_id).glob("best-*.weights.h5"):
        if old.name != keep:
            old.unlink(missing_ok=True)


# --------------------------------------------------------------------------- records


def hip_records(dataset: DatasetVersion, split: str) -> list[Any]:
    """The split's hips as ``pipeline.HipRecord``s (pixels decoded from the radiographs' DICOM, or an
    older ingest's .npy, through ``annotate.pixels``; both hips of a film share one pipeline cache entry)."""
    # deferred: TensorFlow loads only where a model trains
    from ml.core.pipeline import HipRecord

    hips = DatasetHip.objects.filter(dataset=dataset, split=split).select_related("radiograph").order_by("pk")
    return [
        HipRecord(
            pixels=pixel_source(hip.radiograph),
            window=(hip.radiograph.window_center, hip.radiograph.window_width),
            box=hip.box,
            side=hip.side,
            label=CLASSES.index(hip.hip_class),
            patient=str(hip.patient_id),
            radiograph=str(hip.radiograph_id),
        )
        for hip in hips
    ]


def detector_records(dataset: DatasetVersion, split: str) -> list[Any]:
    """The split's radiographs as ``detector.DetectorRecord``s: each with all its hips (the
    per-hip ``DatasetHip`` rows grouped by radiograph), pixels read through ``annotate.pixels``."""

    hips = DatasetHip.objects.filter(dataset=dataset, split=split).select_related("radiograph").order_by("pk")
    grouped: dict[int, list[DatasetHip]] = {}
    for hip in hips:
        grouped.setdefault(hip.radiograph_id, []).append(hip)
    records = []
    for radiograph_id, rows in grouped.items():
        radiograph = rows[0].radiograph
        records.append(
            DetectorRecord(
                pixels=pixel_source(radiograph),
                window=(radiograph.window_center, radiograph.window_width),
                hips=tuple((hip.side, tuple(float(v) for v in hip.box)) for hip in rows),
                radiograph=str(radiograph_id),
            )
        )
    return records


# --------------------------------------------------------------------------- recipes


@dataclass
class Prepared:
    """What one kind's recipe hands the common trainer for one run."""

    model: Any  # compiled, fresh or restored from the checkpoint
    train_data: Any  # for model.fit
    fit_kwargs: dict[str, Any]  # extra model.fit arguments (e.g. steps_per_epoch)
    validate: Callable[[Any], dict[str, float]]  # model -> validation figures, the monitored one included
    save_model: Callable[[Any, Path], None] | None  # checkpoint writer (None: model.save)


class Recipe:
    """What differs between training a classifier and a detector (see the module docstring)."""

    kind: str
    monitor: str  # the history key early stopping maximises
    train_keys: tuple[str, ...]  # training-log keys kept in each history row

    def records(self, dataset: DatasetVersion, split: str) -> list[Any]:
        raise NotImplementedError

    def describe(self, config: Any, train: list[Any], val: list[Any]) -> str:
        raise NotImplementedError

    def steps_per_epoch(self, config: Any, train: list[Any]) -> int:
        return math.ceil(len(train) / config.batch_size)

    def prepare(self, run: TrainingRun, config: Any, train: list[Any], val: list[Any], *, steps: int,
                checkpoint: Checkpoint | None, first_epoch: int) -> Prepared:  # fmt: skip
        raise NotImplementedError

    def after_publish(self, run: TrainingRun, version: ModelVersion, progress: Progress) -> None:
        """Evaluation on the test split (``ml.evaluation.evaluate_version`` dispatches on the kind)."""

        evaluation.evaluate_version(version, progress=lambda event, info: progress(event, info))
        append_log(run.pk, "evaluated on the test split")


class ClassifierRecipe(Recipe):
    kind = Kind.CLASSIFIER
    monitor = "val_accuracy"
    train_keys = ("loss", "accuracy")

    def records(self, dataset: DatasetVersion, split: str) -> list[Any]:
        return hip_records(dataset, split)

    def steps_per_epoch(self, config: Any, train: list[Any]) -> int:
        # deferred: TensorFlow loads only where a model trains
        from ml.core.pipeline import images_per_hip

        return math.ceil(len(train) * images_per_hip(config.regime, config.zooms) / config.batch_size)

    def describe(self, config: Any, train: list[Any], val: list[Any]) -> str:
        # deferred: TensorFlow loads only where a model trains
        from ml.core.nets import class_weights_for

        # deferred: TensorFlow loads only where a model trains
        from ml.core.pipeline import images_per_hip, records_labels

        weights = class_weights_for(config, records_labels(train))
        per_hip = images_per_hip(config.regime, config.zooms)
        return (
            f"training {config.name} on dataset version {{dataset}}: {len(train)} training hips, "
            f"{len(val)} validation hips, class weights {[round(w, 3) for w in weights]}; "
            f"regime {config.regime} ({per_hip} image{'s' if per_hip > 1 else ''} per hip per epoch), "
            f"lr schedule {config.lr_schedule}, validation by test-time protocol {config.test_time} "
            f"(zooms {list(protocol_zooms(config))}), "
            f"BatchNorm re-estimation {'on' if config.recalibrate_bn else 'off'}, "
            f"{'ImageNet' if config.pretrained else 'random'} initial weights"
        )

    def prepare(self, run, config, train, val, *, steps, checkpoint, first_epoch):  # noqa: D102
        import keras
        import numpy as np

        # deferred: TensorFlow loads only where a model trains
        from ml.core.nets import (
            build_model,
            class_weights_for,
            compile_model,
            evaluate_protocol,
            recalibrate_batch_norm,
        )

        # deferred: TensorFlow loads only where a model trains
        from ml.core.pipeline import eval_zoom_datasets, make_dataset, records_labels

        if checkpoint is not None:
            model = keras.saving.load_model(checkpoint.path / "model.keras", compile=True)
        else:
            class_weights = class_weights_for(config, records_labels(train))
            model = compile_model(build_model(config), config, class_weights, steps_per_epoch=steps)
        # first_epoch: a resumed run draws the same augmentations as an uninterrupted one.
        train_ds = make_dataset(
            train, config=config, augment=AugmentConfig(zooms=config.zooms), seed=int(run.seed), shuffle=True,
            first_epoch=first_epoch, regime=config.regime,
        )  # fmt: skip
        # Validation by the model's test-time protocol, as evaluation and serving will read it:
        # the zoom-1.0 crop alone (single) or the softmax averaged over config.zooms.
        val_sets = eval_zoom_datasets(val, config=config, zooms=protocol_zooms(config))
        val_labels = records_labels(val)
        calibration = None
        if config.recalibrate_bn:
            # Clean crops (both zooms, no other augmentation) of up to PRECISE_BN_IMAGES training
            # hips, for re-estimating the BatchNorm statistics before each validation.
            rng = np.random.default_rng(int(run.seed))
            chosen = sorted(rng.permutation(len(train))[:PRECISE_BN_IMAGES])
            calibration = make_dataset(
                [train[i] for i in chosen],
                config=config,
                augment=AugmentConfig(zooms=config.zooms, p_wiggle=0.0, p_cutout=0.0, p_masking=0.0),
                seed=int(run.seed),
                shuffle=True,
                first_epoch=first_epoch,
            )

        def validate(model: Any) -> dict[str, float]:
            if calibration is not None:
                recalibrate_batch_norm(model, calibration)
            return evaluate_protocol(model, list(val_sets.values()), val_labels)

        return Prepared(model=model, train_data=train_ds, fit_kwargs={}, validate=validate, save_model=None)


class DetectorRecipe(Recipe):
    kind = Kind.DETECTOR
    monitor = "val_mean_iou"
    train_keys = ("loss", "bbox_regression_loss", "cls_logits_loss")

    def records(self, dataset: DatasetVersion, split: str) -> list[Any]:
        return detector_records(dataset, split)

    def describe(self, config: Any, train: list[Any], val: list[Any]) -> str:
        hips = sum(len(r.hips) for r in train)
        return (
            f"training detector {config.name} on dataset version {{dataset}}: {len(train)} training radiographs "
            f"({hips} hips), {len(val)} validation radiographs"
        )

    def prepare(self, run, config, train, val, *, steps, checkpoint, first_epoch):  # noqa: D102
        import numpy as np

        # deferred: TensorFlow loads only where a model trains
        from ml.core.nets import recalibrate_batch_norm

        if checkpoint is not None:
            model = detector.load_checkpoint(checkpoint.path, config, steps_per_epoch=steps)
        else:
            model = detector.build_detector(config, steps_per_epoch=steps)
        train_ds = detector.make_detector_dataset(train, config, augment=True, seed=int(run.seed),
                                                  first_epoch=first_epoch)  # fmt: skip
        # Validation and the BatchNorm calibration read the films reduced once to twice the
        # input size (IoU does not change under the reduction's scaling of both boxes).
        reduce = 2 * config.image_size
        rng = np.random.default_rng(int(run.seed))
        chosen = sorted(rng.permutation(len(train))[:DETECTOR_BN_IMAGES])
        calibration = [
            x
            for x, _ in detector.epoch_batches(
                [detector.reduced_record(train[i], reduce) for i in chosen], config, augment=False, seed=0, epoch=0
            )
        ]
        val = [detector.reduced_record(r, reduce) for r in val]
        truths = [r.hips for r in val]

        def validate(model: Any) -> dict[str, float]:
            recalibrate_batch_norm(model, calibration)
            found = list(
                detector.detect_many(model, config, ((r.load(), r.window) for r in val), batch_size=config.batch_size)
            )
            mean, values = detector.mean_iou(found, truths)
            return {
                "val_mean_iou": mean,
                "val_min_iou": float(min(values)) if values else 0.0,
                "val_missed": float(sum(1 for d, hips in zip(found, truths, strict=True)
                                        for side, _ in hips if side not in {x.side for x in d})),
            }  # fmt: skip

        return Prepared(
            model=model,
            train_data=train_ds,
            fit_kwargs={"steps_per_epoch": steps},
            validate=validate,
            save_model=detector.save_checkpoint,
        )


RECIPES: dict[str, Recipe] = {Kind.CLASSIFIER: ClassifierRecipe(), Kind.DETECTOR: DetectorRecipe()}


def recipe_for(kind: str) -> Recipe:
    try:
        return RECIPES[kind]
    except KeyError:
        raise TrainingRefused(f"unknown model kind {kind!r}; known: {', '.join(RECIPES)}") from None


# --------------------------------------------------------------------------- running


class _Cancelled(Exception):
    pass


def update_run(run_id: int, **fields: Any) -> None:
    TrainingRun.objects.filter(pk=run_id).update(**fields)


def append_log(run_id: int, line: str) -> None:
    from django.db.models import Value
    from django.db.models.functions import Concat

    logger.info("training run %s: %s", run_id, line)
    TrainingRun.objects.filter(pk=run_id).update(log=Concat("log", Value(line + "\n")))


def _claim(run_id: int, holder: str) -> TrainingRun | None:
    """Take the run for this trainer, or None when it has ended or another trainer holds it."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        if run.status in TrainingRun.ENDED:
            return None
        if run.cancel_requested:
            run.status = "cancelled"
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "finished_at"])
            return None
        if other_holder(run, holder) is not None:
            return None
        now = timezone.now()
        TrainingRun.objects.filter(pk=run_id).update(
            status="running",
            attempts=run.attempts + 1,
            started_at=run.started_at or now,
            epoch_started_at=now,
            holder=holder,
            heartbeat_at=now,
        )
    run.refresh_from_db()
    return run


def run_training(run_id: int, *, holder: str, progress: Progress | None = None) -> TrainingRun:
    """Train run ``run_id`` to its end (or resume it from its last checkpoint).

    Returns the run as it ended; a run that another trainer holds or that has ended
    is returned untouched (check ``status``). ``progress(event, info)`` is called with
    "start" (epochs, steps_per_epoch, epoch), "batch" (step) and "epoch" (the epoch's
    history row)."""
    run = _claim(run_id, holder)
    if run is None:
        return TrainingRun.objects.get(pk=run_id)
    try:
        _train(run, holder=holder, progress=progress or (lambda event, info: None))
    except _Cancelled:
        append_log(run.pk, "cancelled")
        update_run(run.pk, status="cancelled", finished_at=timezone.now())
        shutil.rmtree(run_dir(run.pk), ignore_errors=True)
    except Exception as error:  # the run fails with the reason shown on its page; the worker goes on
        logger.exception("training run %s failed", run.pk)
        append_log(run.pk, f"failed: {type(error).__name__}: {error}")
        update_run(run.pk, status="failed", error=f"{type(error).__name__}: {error}", finished_at=timezone.now())
    return TrainingRun.objects.get(pk=run.pk)


def _train(run: TrainingRun, *, holder: str, progress: Progress) -> None:
    import keras

    # deferred: TensorFlow loads only where a model trains
    from ml.callbacks import RunCallback

    recipe = recipe_for(run.kind)
    config = config_from_dict(run.kind, run.config)
    train_records = recipe.records(run.dataset, Split.TRAIN)
    val_records = recipe.records(run.dataset, Split.VALIDATION)
    if not train_records or not val_records:
        raise TrainingRefused("the dataset version has no training or no validation hips")
    steps = recipe.steps_per_epoch(config, train_records)
    update_run(run.pk, steps_per_epoch=steps, steps=0)

    checkpoint = latest_checkpoint(run.pk)
    keras.utils.set_random_seed(int(run.seed) + (checkpoint.epoch if checkpoint else 0))
    best_key = f"best_{recipe.monitor}"
    if checkpoint is not None:
        state = checkpoint.state
    else:
        state = {"epoch": 0, "history": [], best_key: None, "best_epoch": 0, "best_weights": None, "wait": 0}
    prepared = recipe.prepare(
        run, config, train_records, val_records, steps=steps, checkpoint=checkpoint, first_epoch=state["epoch"]
    )
    model = prepared.model
    if checkpoint is not None:
        append_log(run.pk, f"resumed after epoch {checkpoint.epoch} (attempt {run.attempts})")
        update_run(run.pk, epoch=state["epoch"], history=state["history"])
    else:
        append_log(run.pk, recipe.describe(config, train_records, val_records).format(dataset=run.dataset_id))
    progress("start", {"epochs": config.epochs, "steps_per_epoch": steps, "epoch": state["epoch"]})

    callback = RunCallback(
        run.pk,
        holder=holder,
        state=state,
        config=config,
        progress=progress,
        validate=prepared.validate,
        monitor=recipe.monitor,
        train_keys=recipe.train_keys,
        save_model=prepared.save_model,
    )
    if state["epoch"] < config.epochs and state["wait"] < config.patience:
        model.fit(
            prepared.train_data,
            epochs=config.epochs,
            initial_epoch=state["epoch"],
            callbacks=[callback],
            shuffle=False,  # the pipeline shuffles, reproducibly from the seed
            verbose=0,
            **prepared.fit_kwargs,
        )
    if callback.cancelled:
        raise _Cancelled
    state = callback.state
    if state["best_weights"]:
        model.load_weights(run_dir(run.pk) / state["best_weights"])
    figure = recipe.monitor.removeprefix("val_").replace("_", " ")
    append_log(
        run.pk,
        f"stopped after epoch {state['epoch']}; best validation {figure} {state[best_key]:.4f} "
        f"at epoch {state['best_epoch']}",
    )
    version = _publish(run, model, config, state, recipe)
    append_log(run.pk, f"model version {version.pk} written")
    recipe.after_publish(run, version, progress)
    if run.activate_when_done:
        scoring.activate(version)
        append_log(run.pk, f"model version {version.pk} is now the active {run.kind}")
    update_run(run.pk, status="succeeded", finished_at=timezone.now())


def _publish(run: TrainingRun, model: Any, config: Any, state: dict[str, Any], recipe: Recipe) -> ModelVersion:
    """Write the bundle and its ModelVersion (once: a resumed run finds the version it made)."""

    existing = ModelVersion.objects.filter(identity=run.identity).first()
    if existing is not None:
        return existing
    name = f"models/{run.pk}-{run.identity[:12]}.hipmodel"
    path = Path(settings.DATA_DIR) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    best_key = f"best_{recipe.monitor}"
    metrics = {"best_epoch": state["best_epoch"], best_key: state[best_key], "epochs": state["epoch"]}
    manifest = write_bundle(
        path, model=model, config=config, dataset_hash=run.dataset.content_hash, kind=run.kind, metrics=metrics
    )
    try:
        with transaction.atomic():
            return ModelVersion.objects.create(
                kind=run.kind,
                config_name=run.config_name,
                config=run.config,
                dataset=run.dataset,
                training_run=run,
                identity=manifest.identity,
                bundle=name,
                bundle_sha256=sha256_file(path),
            )
    except IntegrityError:
        return ModelVersion.objects.get(identity=manifest.identity)


def available_configs(kind: str = Kind.CLASSIFIER) -> list[str]:
    return sorted(DETECTOR_CONFIGS if kind == Kind.DETECTOR else CONFIGS)
