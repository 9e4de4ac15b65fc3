"""Score radiographs with a model version (default: the active classifier), in batches."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ml import scoring
from ml.models import HipPrediction


class Command(BaseCommand):
    help = "Store per-hip predictions and heatmaps for every radiograph with hip boxes that the model has not read."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", type=int, metavar="VERSION", help="model version (default: the active one)")
        parser.add_argument("--all", action="store_true", help="read again the radiographs it has already read")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            version = scoring.chosen_model(options["model"])
        except LookupError as error:
            raise CommandError(str(error)) from None
        ids = scoring.radiographs_to_score(version, again=options["all"])
        with tqdm(total=len(ids), unit="radiograph", disable=options["no_progress"], file=self.stderr._out) as bar:
            n = scoring.score_radiographs(model_version_id=version.pk, radiograph_ids=ids, progress=bar.update)
        hips = HipPrediction.objects.filter(model_version=version).count()
        self.stdout.write(f"model version {version.pk} scored {n} radiographs ({hips} hips stored in all)")
