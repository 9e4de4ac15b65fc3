"""Write synthetic AP pelvis radiographs (DICOM) and their COCO ground truth.

    python manage.py make_phantoms --studies 300 --seed 1 --out var/phantoms

The work is done by ``devtools.phantoms``; this is only the command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from devtools.phantoms import generate_phantoms


class Command(BaseCommand):
    help = "Generate synthetic hip-fracture radiographs as DICOM plus annotations.coco.json."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--studies", type=int, required=True, help="number of studies (not patients)")
        parser.add_argument("--seed", type=int, default=0, help="same seed and N give byte-identical output")
        parser.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")

    def handle(self, *args, studies: int, seed: int, out: Path | str, **options) -> None:
        out = Path(out)
        if studies < 1:
            raise CommandError("--studies must be at least 1")
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out {out} exists and is not a directory")
        # The bar goes to stderr (the raw stream: tqdm redraws with "\r"), stdout carries only the summary.
        stream = getattr(self.stderr, "_out", sys.stderr)
        quiet = options.get("verbosity", 1) < 1
        with tqdm(total=studies, unit="study", desc="phantoms", file=stream, disable=quiet) as bar:
            summary = generate_phantoms(out, studies=studies, seed=seed, progress=bar.update)
        self.stdout.write(f"{summary.line()} -> {summary.coco_path}")
