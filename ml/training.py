"""Training runs: one code path for the Celery task and ``manage.py train``.

``training_start`` records a run (refusing a duplicate) and queues it; ``run_training`` trains it,
resuming from the newest checkpoint, one trainer at a time, cancellable, with early stopping.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from common import queueing
from ml import scoring
from ml.core.configs import CONFIGS, NetConfig, get_config, with_regime
from ml.core.detector import DETECTOR_CONFIGS, DetectorConfig, get_detector_config
from ml.core.modelfile import bundle_identity, sha256_file, write_bundle
from ml.models import DatasetHip, DatasetVersion, Kind, ModelVersion, Split, TrainingRun
from ml.training_recipes import (
    DETECTOR_BN_IMAGES,
    PRECISE_BN_IMAGES,
    RECIPES,
    ClassifierRecipe,
    DetectorRecipe,
    Prepared,
    Recipe,
    detector_records,
    hip_records,
)
from ml.training_state import (
    Checkpoint,
    Progress,
    append_log,
    beat,
    heartbeat_seconds,
    latest_checkpoint,
    other_holder,
    prune_best,
    run_dir,
    save_best,
    save_checkpoint,
    update_run,
)

__all__ = [
    "Checkpoint",
    "ClassifierRecipe",
    "DETECTOR_BN_IMAGES",
    "DetectorRecipe",
    "PRECISE_BN_IMAGES",
    "Prepared",
    "Progress",
    "RECIPES",
    "Recipe",
    "TrainingRefused",
    "append_log",
    "available_configs",
    "beat",
    "config_for",
    "config_from_dict",
    "detector_records",
    "heartbeat_seconds",
    "hip_records",
    "latest_checkpoint",
    "other_holder",
    "prune_best",
    "random_start_refusal",
    "recipe_for",
    "run_dir",
    "run_training",
    "save_best",
    "save_checkpoint",
    "training_cancel",
    "training_start",
    "update_run",
]

logger = logging.getLogger(__name__)


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
    user: User | None = None,
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


# --------------------------------------------------------------------------- recipes


def recipe_for(kind: str) -> Recipe:
    try:
        return RECIPES[kind]
    except KeyError:
        raise TrainingRefused(f"unknown model kind {kind!r}; known: {', '.join(RECIPES)}") from None


# --------------------------------------------------------------------------- running


class _Cancelled(Exception):
    pass


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
