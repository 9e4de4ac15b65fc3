"""De-identify the stored copies of radiographs ingested before the ingest de-identified them
(annotate.archive.ingest.radiograph_deidentify_stored). Safe to run again: de-identified ones are left."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from annotate.archive.ingest import radiograph_deidentify_stored
from annotate.models import Radiograph


class Command(BaseCommand):
    help = "De-identify radiographs stored before de-identification at ingest (PS3.15 profile, keyed UIDs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        ids = list(Radiograph.objects.order_by("pk").values_list("pk", flat=True))
        counts = {"done": 0, "already": 0, "skipped": 0}
        bar = tqdm(total=len(ids), unit="radiograph", disable=options["no_progress"], file=self.stderr._out)
        for pk in ids:
            outcome = radiograph_deidentify_stored(radiograph_id=pk)
            if outcome.startswith("skipped"):
                tqdm.write(f"radiograph {pk} {outcome}", file=self.stdout._out)
            counts[outcome.split(":")[0]] += 1
            bar.update()
        bar.close()
        self.stdout.write(
            f"de-identified: {counts['done']}, already de-identified: {counts['already']}, skipped: {counts['skipped']}"
        )
