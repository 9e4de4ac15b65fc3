"""What differs between training a classifier and a detector: each kind's ``Recipe`` supplies its
records, its description, its network (built, compiled or restored), its training data, the
validation figure the callback monitors and what follows publishing.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from annotate.archive.pixels import pixel_source
from annotate.labels import CLASSES
from ml import evaluation
from ml.core import detector
from ml.core.augment import AugmentConfig
from ml.core.detector import DetectorRecord
from ml.core.serving import protocol_zooms
from ml.core.vocab import Box
from ml.models import DatasetHip, DatasetVersion, Kind, ModelVersion, TrainingRun
from ml.training_state import Checkpoint, Progress, append_log

PRECISE_BN_IMAGES = 256  # training crops whose BatchNorm statistics each validation uses
DETECTOR_BN_IMAGES = 64  # training radiographs, likewise, for a detector


# --------------------------------------------------------------------------- records


def hip_records(dataset: DatasetVersion, split: str) -> list[Any]:
    """The split's hips as ``pipeline.HipRecord``s (pixels decoded from the radiographs' DICOM, or an
    older ingest's .npy, through ``annotate.archive.pixels``; both hips of a film share one pipeline cache entry)."""
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
    per-hip ``DatasetHip`` rows grouped by radiograph), pixels read through ``annotate.archive.pixels``."""

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
                hips=tuple((hip.side, cast(Box, tuple(float(v) for v in hip.box))) for hip in rows),  # four numbers
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
