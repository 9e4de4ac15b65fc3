"""python manage.py import_dicom PATH [PATH ...]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from tqdm import tqdm

from annotate import services
from annotate.models import ImportItem, Radiograph


class Command(BaseCommand):
    help = "Import DICOM radiographs from files, folders (recursively) and .zip archives."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("paths", nargs="+", help="DICOM files, folders or .zip archives")
        parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        paths = options["paths"]
        total = sum(1 for _ in services.find_sources(paths=paths))
        counts = {status: 0 for status in ImportItem.Status.values}
        bar = tqdm(total=total, unit="file", disable=options["no_progress"], file=self.stderr._out)
        for outcome in services.ingest_sources(paths=paths, source=Radiograph.Source.CLI):
            counts[outcome.status] += 1
            if outcome.status == ImportItem.Status.REJECTED:
                # tqdm.write keeps the bar intact below the message.
                tqdm.write(f"rejected {outcome.name}: {outcome.reason}", file=self.stdout._out)
            bar.update(1)
        bar.close()
        self.stdout.write(
            f"imported: {counts['imported']}, already present: {counts['present']}, rejected: {counts['rejected']}"
        )
