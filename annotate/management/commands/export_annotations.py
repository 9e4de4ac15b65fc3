"""python manage.py export_annotations --format coco|via|csv --out FILE [--ground-truth]

Writes every labeller's submitted labels, or with --ground-truth the ground
truth only (see ``annotate.labelling.exchange``). ``--out -`` writes to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from annotate.labelling import exchange
from common.atomicfile import write_atomic


class Command(BaseCommand):
    help = "Export hip labels (every labeller's, or the ground truth) as COCO JSON, a VIA 2 project or CSV."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--format", dest="fmt", choices=exchange.EXPORT_FORMATS, required=True)
        parser.add_argument("--out", required=True, help="file to write ('-' for standard output)")
        parser.add_argument("--ground-truth", action="store_true", help="the ground truth only")

    def handle(self, *args: Any, fmt: str, out: str, ground_truth: bool, **options: Any) -> None:
        export = exchange.annotations_export(fmt=fmt, ground_truth=ground_truth)
        if out == "-":
            sys.stdout.buffer.write(export.data)
            sys.stdout.flush()
            return
        path = Path(out)
        if path.is_dir():
            raise CommandError(f"--out {out} is a folder; give a file name, e.g. {path / export.filename}")
        # Written beside the target and renamed: a failed export leaves no half file.
        try:
            write_atomic(path, export.data)
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc.strerror or exc}")
        what = "ground truth" if ground_truth else "labels"
        self.stdout.write(f"wrote {what} of {export.images} radiographs ({export.hips} hips) to {path}")
