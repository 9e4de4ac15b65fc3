"""Create a reader study: draw its cases from a dataset's test split (``services.study_create``)
and freeze them with the model's output (``services.study_prepare``), with a progress bar on
stderr. The study's id is the last line of the output.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ml.models import DatasetVersion, Kind, ModelVersion
from readerstudy import services


def dataset_version(value: str) -> DatasetVersion:
    """A dataset version by id, or by name (the newest of that name)."""
    found = None
    if value.isdigit():
        found = DatasetVersion.objects.filter(pk=int(value)).first()
    if found is None and value:
        found = DatasetVersion.objects.filter(name=value).order_by("-created_at", "-id").first()
    if found is None:
        known = ", ".join(str(v.pk) + (f" ({v.name})" if v.name else "") for v in DatasetVersion.objects.all()[:10])
        raise CommandError(
            f"unknown dataset version {value!r}; known: {known or 'none (run manage.py make_dataset first)'}"
        )
    return found


class Command(BaseCommand):
    help = "Create a reader study: N hips drawn with a seed from a dataset version's test split, model output frozen."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="the study's name (letters, digits, '.', '-', '_')")
        parser.add_argument("--cases", type=int, default=100, help="hips drawn from the test split (default 100)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the draw and of the readers' orders")
        parser.add_argument("--dataset", required=True, metavar="VERSION", help="dataset version id (or name)")
        parser.add_argument(
            "--washout-days", type=float, default=7.0, help="days from finishing phase 1 to phase 2 (default 7; 0 ok)"
        )
        parser.add_argument("--model", type=int, metavar="V", help="classifier version id (default: the active one)")
        parser.add_argument("--no-aided", action="store_true", help="no model-aided phase 3 (then no model is needed)")
        parser.add_argument("--description", default="")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["washout_days"]
        if not math.isfinite(days) or days < 0:
            raise CommandError(f"--washout-days must be a number >= 0, got {days}")
        dataset = dataset_version(options["dataset"])
        model = None
        if options["model"] is not None:
            model = ModelVersion.objects.filter(pk=options["model"]).first()
            if model is None:
                raise CommandError(f"unknown model version {options['model']}")
            if model.kind != Kind.CLASSIFIER:
                raise CommandError(f"model version {model.pk} is a {model.kind}, not a classifier")
        try:
            study = services.study_create(
                name=options["name"],
                dataset=dataset,
                cases=options["cases"],
                seed=options["seed"],
                washout=dt.timedelta(days=days),
                aided_phase=not options["no_aided"],
                model_version=model,
                description=options["description"],
            )
        except services.StudyError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"Study {study.name}: {study.case_count} test hips of dataset {dataset.pk}, "
            f"model {study.model_version_id or 'none'}, washout {study.washout}, "
            f"phases {', '.join(study.phases)}"
        )
        bar = tqdm(
            total=study.case_count, unit="case", desc="freezing", disable=options["no_progress"], file=self.stderr._out
        )
        try:
            study = services.study_prepare(study_id=study.pk, progress=bar.update)
        except Exception as error:
            raise CommandError(
                f"preparing study {study.name} (id {study.pk}) failed and it is marked failed: {error}"
            ) from error
        finally:
            bar.close()
        self.stdout.write(f"Study {study.name} is {study.status}: add readers with manage.py add_reader")
        self.stdout.write(str(study.pk))
