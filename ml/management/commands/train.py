"""Train a model in the foreground, with the same code the Celery task runs; print the
new model version's id on the last line."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ml import training
from ml.core.configs import CONFIGS, TRAINING_REGIMES
from ml.core.detector import DETECTOR_CONFIGS
from ml.models import DatasetVersion, Kind, TrainingRun


class Command(BaseCommand):
    help = (
        "Train the hip classifier (or, with --kind detector, the hip detector) on a dataset version "
        "(default: the newest) and evaluate it on its test split."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kind", choices=[Kind.CLASSIFIER, Kind.DETECTOR], default=Kind.CLASSIFIER)
        parser.add_argument(
            "--config",
            choices=sorted(set(CONFIGS) | set(DETECTOR_CONFIGS)),
            default="cpu-small",
            help=f"classifier: {', '.join(sorted(CONFIGS))}; detector: {', '.join(sorted(DETECTOR_CONFIGS))}",
        )
        parser.add_argument("--dataset", type=int, help="dataset version id (default: the newest)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--epochs", type=int, help="most epochs (default: the config's)")
        parser.add_argument(
            "--regime",
            choices=TRAINING_REGIMES,
            help="classifier: train under this regime instead of the config's, with as many images seen "
            "(epochs and patience scaled; --epochs applies after)",
        )
        parser.add_argument(
            "--random-init",
            action="store_true",
            help="start the backbone from random weights; without it `paper` refuses to start when "
            "DENSENET169_WEIGHTS names no ImageNet weights file",
        )
        parser.add_argument("--activate", action="store_true", help="make it the active model of its kind when done")
        parser.add_argument("--resume", type=int, metavar="RUN", help="resume training run RUN from its checkpoint")
        parser.add_argument(
            "--queue", action="store_true", help="queue the run on a Celery worker of the ml queue and print its id"
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["resume"]:
            run = TrainingRun.objects.filter(pk=options["resume"]).first()
            if run is None:
                raise CommandError(f"no training run {options['resume']}")
        else:
            dataset = self._dataset(options["dataset"])
            try:
                run = training.training_start(
                    dataset=dataset,
                    config_name=options["config"],
                    kind=options["kind"],
                    seed=options["seed"],
                    activate=options["activate"],
                    epochs=options["epochs"],
                    enqueue=options["queue"],
                    random_init=options["random_init"],
                    regime=options["regime"],
                )
            except training.TrainingRefused as error:
                raise CommandError(str(error)) from error
            if options["queue"]:
                self.stdout.write(f"training run {run.pk} queued; follow it on /models/runs/{run.pk}/")
                self.stdout.write(str(run.pk))
                return
            self.stdout.write(f"training run {run.pk}: {run.kind} {run.config_name} on dataset version {dataset.pk}")
        run = training.run_training(run.pk, holder=f"cli/{os.getpid()}", progress=self._progress(options))
        if self._bar is not None:
            self._bar.close()
        self.stdout.write(run.log.rstrip().splitlines()[-1] if run.log else "")
        if run.status != "succeeded":
            raise CommandError(f"training run {run.pk} {run.status}{f': {run.error}' if run.error else ''}")
        version = run.model_version
        figures = version.evaluation or {}
        for key in ("binary_accuracy", "binary_auc", "multiclass_accuracy"):
            if isinstance(figures.get(key), dict):
                # A small test split may leave a figure or its interval undefined (None).
                mean, low, high = (_figure(figures[key].get(part)) for part in ("mean", "ci_low", "ci_high"))
                self.stdout.write(f"{key}: {mean} (95% CI {low}-{high})")
        for key in ("iou_mean", "iou_sd", "iou_min", "hips_missed", "hips_extra"):
            if isinstance(figures.get(key), int | float):
                self.stdout.write(f"{key}: {figures[key]:.3f}")
        self.stdout.write(str(version.pk))

    def _dataset(self, pk: int | None) -> DatasetVersion:
        if pk is not None:
            version = DatasetVersion.objects.filter(pk=pk).first()
            if version is None:
                raise CommandError(f"no dataset version {pk}")
            return version
        version = DatasetVersion.objects.first()
        if version is None:
            raise CommandError("no dataset version yet: run `manage.py make_dataset --seed 0` first")
        return version

    _bar: tqdm | None = None

    def _progress(self, options: dict[str, Any]):
        def progress(event: str, info: dict[str, Any]) -> None:
            if event == "start":
                self._bar = tqdm(
                    total=info["epochs"] * info["steps_per_epoch"],
                    initial=info["epoch"] * info["steps_per_epoch"],
                    unit="batch",
                    disable=options["no_progress"],
                    file=self.stderr._out,
                    desc=f"epoch {info['epoch'] + 1}",
                )
            elif event == "batch" and self._bar is not None:
                self._bar.update(1)
            elif event == "epoch" and self._bar is not None:
                self._bar.set_description(f"epoch {info['epoch'] + 1}")
                figures = " ".join(
                    f"{key} {value:.4f}"
                    for key, value in info.items()
                    if key not in ("epoch", "learning_rate", "seconds") and isinstance(value, int | float)
                )
                tqdm.write(f"epoch {info['epoch']}: {figures}", file=self.stdout._out)
            elif event == "evaluate":
                tqdm.write("evaluating on the test split", file=self.stdout._out)

        return progress


def _figure(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "n/a"
