"""After a restore, check that the database and the data folder belong together: every stored
original (with its size) and model bundle is there, and with ``--hashes`` intact (slow: reads
every byte). Exits with an error listing what is missing or altered.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotate.models import Radiograph
from ml.models import ModelVersion

SHOWN = 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


class Command(BaseCommand):
    help = "Check that every stored file the database names is in the data folder (and intact, with --hashes)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--hashes", action="store_true", help="recompute SHA-256 of originals and bundles")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, hashes: bool, no_progress: bool, **options: Any) -> None:
        media = Path(settings.MEDIA_ROOT)
        problems: list[str] = []
        radiographs = Radiograph.objects.only("id", "sha256", "file_size", "original", "pixels")
        total = radiographs.count()
        bar = tqdm(total=total, unit="radiograph", disable=no_progress, file=self.stderr._out)
        for radiograph in radiographs.iterator(chunk_size=2000):
            for kind in ("original", "pixels"):  # previews: a cache (annotate.archive.previews)
                if kind == "pixels" and not radiograph.pixels.name:
                    continue  # decoded from the original (annotate.archive.pixels); only older ingests have one
                path = media / getattr(radiograph, kind).name
                if not path.is_file():
                    problems.append(f"radiograph {radiograph.pk}: {kind} {path} is missing")
            assert radiograph.original.name is not None  # every radiograph has its original
            original = media / radiograph.original.name
            if original.is_file():
                if original.stat().st_size != radiograph.file_size:
                    problems.append(f"radiograph {radiograph.pk}: original {original} has another size")
                elif hashes and sha256_of(original) != radiograph.sha256:
                    problems.append(f"radiograph {radiograph.pk}: original {original} has another SHA-256")
            bar.update(1)
        bar.close()
        versions = ModelVersion.objects.all()
        for version in versions:
            path = version.bundle_path
            if not path.is_file():
                problems.append(f"model version {version.pk}: bundle {path} is missing")
            elif hashes and sha256_of(path) != version.bundle_sha256:
                problems.append(f"model version {version.pk}: bundle {path} has another SHA-256")
        if problems:
            shown = "\n".join(problems[:SHOWN])
            more = f"\n... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
            raise CommandError(f"{len(problems)} problems between the database and {settings.DATA_DIR}:\n{shown}{more}")
        checked = "sizes and SHA-256" if hashes else "presence and sizes"
        self.stdout.write(
            f"OK: {total} radiographs and {versions.count()} model versions ({checked}) in {settings.DATA_DIR}"
        )
