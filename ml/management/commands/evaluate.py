"""Evaluate a model version on its test split: metrics.json, CSV files and figures in --out."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml import evaluation
from ml.models import ModelVersion


class Command(BaseCommand):
    help = "Evaluate a model version on its dataset's test split with the paper's bootstrap (2000 iterations)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", type=int, required=True, metavar="VERSION", help="model version id")
        parser.add_argument("--out", required=True, metavar="DIR", help="folder for metrics.json, CSV and figures")
        parser.add_argument("--iterations", type=int, help="bootstrap iterations (default BOOTSTRAP_ITERATIONS)")
        parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")

    def handle(self, *args: Any, **options: Any) -> None:
        version = ModelVersion.objects.filter(pk=options["model"]).first()
        if version is None:
            raise CommandError(f"no model version {options['model']}")
        if options["iterations"] is not None and options["iterations"] < 1:
            raise CommandError("--iterations must be at least 1")
        try:
            report = evaluation.evaluate_version(
                version, out_dir=options["out"], iterations=options["iterations"], seed=options["seed"]
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        if version.kind == "detector":
            self._detector(version, report)
            self.stdout.write(f"written to {options['out']}")
            return
        self.stdout.write(
            f"model version {version.pk} on {report['n_cases']} test hips of {report['n_patients']} patients, "
            f"{report['iterations']} bootstrap iterations"
        )
        for key in evaluation.HEADLINE:
            f = report[key]
            if f["mean"] is None:
                self.stdout.write(f"{key}: undefined")
            else:
                self.stdout.write(f"{key}: {f['mean']:.3f} (95% CI {f['ci_low']:.3f}-{f['ci_high']:.3f})")
        self.stdout.write(f"written to {options['out']}")

    def _detector(self, version: ModelVersion, report: dict[str, Any]) -> None:
        self.stdout.write(
            f"detector {version.pk} on {report['hips']} test hips: "
            f"IoU {report['iou_mean']:.3f} ± {report['iou_sd']:.3f} "
            f"(min {report['iou_min']:.3f}), {report['hips_missed']} missed, {report['hips_extra']} extra, "
            f"{report['hips_below_0_5']} below IoU 0.5"
        )
        classification = report["classification"]
        if "binary" not in classification:
            self.stdout.write(f"automatic vs manual boxes: not compared ({classification['note']})")
            return
        self.stdout.write(
            f"classifier {report['classifier']} on {classification['hips']} found hips, auto vs manual boxes:"
        )
        for task in ("binary", "multiclass"):
            figures = classification[task]
            diff = figures["kappa_difference"]
            fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
            self.stdout.write(
                f"{task}: accuracy {figures['auto']['accuracy']:.3f} vs {figures['manual']['accuracy']:.3f}, "
                f"κ {fmt(figures['auto']['kappa'])} vs {fmt(figures['manual']['kappa'])}, "
                f"difference {fmt(diff['estimate'])} (95% CI {fmt(diff['ci_low'])} to {fmt(diff['ci_high'])})"
            )
