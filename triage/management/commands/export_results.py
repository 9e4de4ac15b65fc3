"""Write a radiograph's latest results (its DICOM SR and heatmap overlay) as DIR/sr.dcm and
DIR/overlay.dcm, referencing the image as the PACS sent it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.models import Radiograph
from triage.results.files import export
from triage.results.reading import NoResults


class Command(BaseCommand):
    help = "Write a radiograph's latest results as sr.dcm (DICOM SR, TID 1500) and overlay.dcm (secondary capture)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--radiograph", type=int, required=True, metavar="ID")
        parser.add_argument("--out", required=True, metavar="DIR")

    def handle(self, *args: Any, **options: Any) -> None:
        radiograph = Radiograph.objects.filter(pk=options["radiograph"]).first()
        if radiograph is None:
            raise CommandError(f"no radiograph {options['radiograph']}")
        try:
            written = export(radiograph=radiograph, out=Path(options["out"]))
        except (NoResults, ValueError) as error:
            raise CommandError(str(error)) from None
        for path in written.values():
            self.stdout.write(str(path))
