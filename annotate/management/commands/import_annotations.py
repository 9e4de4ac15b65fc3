"""python manage.py import_annotations --format coco|via FILE --as USERNAME [--labeler NAME]

Loads the file as USERNAME's submitted labelling of each radiograph it names
(see ``annotate.labelling.exchange`` for how images are matched). A malformed file is
refused whole, with the key or line at fault, and nothing is imported;
importing the same file again changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from annotate.labelling import exchange


class Command(BaseCommand):
    help = "Import hip labels from COCO JSON or a VIA 2 project as one labeller's submitted work."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", type=Path, help="the COCO or VIA JSON file")
        parser.add_argument("--format", dest="fmt", choices=exchange.IMPORT_FORMATS, required=True)
        parser.add_argument("--as", dest="username", required=True, help="the labeller the labels are loaded as")
        parser.add_argument(
            "--labeler", default=None, help="take only this labeller's hips from a file of several labellers' labels"
        )

    def handle(self, *args: Any, path: Path, fmt: str, username: str, labeler: str | None, **options: Any) -> None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}")
        try:
            report = exchange.annotations_import(fmt=fmt, data=data, username=username, labeler=labeler)
        except ValueError as exc:  # FormatError included: nothing was imported
            raise CommandError(f"{path}: {exc}; nothing imported")
        for name in report.unmatched:
            self.stdout.write(f"unmatched {name}: matches no radiograph here")
        for name in report.no_free_slot:
            self.stdout.write(f"skipped {name}: every slot is taken by other labellers")
        self.stdout.write(report.line())
