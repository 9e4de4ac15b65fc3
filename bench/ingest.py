"""Storage and ingest (issue 14, item 9): three figures, each a ratio against its baseline.

    python bench/ingest.py [--studies 12] [--repeat 1] [DIR]

1. stored: bytes under the data folder per radiograph (de-identified DICOM + preview, the previews
   rendered after the timed ingest as a first view or the warming task would) against the received
   DICOMs (goal <= 1.15).
2. ingest: radiographs ingested per second against bare `dcmread().pixel_array` (goal >= 0.5).
3. crops: cutting a radiograph's four crops (two hips, zooms 1.0 and 1.5, as scoring does) through
   `annotate.archive.pixels` (decoded from the DICOM: first read, cache cleared, and cached) against the
   old path kept here: the .npy the ingest used to write, memory-mapped (goal <= 1.2).

Makes phantom studies (or reads DICOMs from DIR), then times, on the same
files, (a) the baseline `pydicom.dcmread(path).pixel_array` and (b) the full
ingest as `manage.py import_dicom` runs it (`annotate.services.ingest_sources`:
de-identify, hash, decode, modality LUT, default window, content-addressed files made durable per
batch, database rows; previews are rendered on first view, not by the ingest)
into a throw-away SQLite database and data folder (removed at the end). Prints both rates and
the ratio ingest / baseline (the goal is at least 0.5). Each round starts with no rows and no files.

Figures (--studies 12 --repeat 3, 2 shared cores, local disk): docs/operations/data-protection.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", help="DICOM folder (default: make phantoms)")
    parser.add_argument("--studies", type=int, default=12, help="phantom studies to make")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many rounds")
    parser.add_argument("--data-dir", help="where the ingest writes (default: a temporary folder); "
                        "e.g. /dev/shm to take the disk out of the measure")  # fmt: skip
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.data_dir))
    os.environ.update(DEBUG="true", DATA_DIR=str(work / "data"), LOG_LEVEL="WARNING")
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import pydicom
    from django.conf import settings
    from django.core.management import call_command

    from annotate import services
    from annotate.labels import Assignment
    from annotate.models import Patient, Radiograph, Study

    call_command("migrate", verbosity=0)
    if args.folder:
        folder = Path(args.folder)
    else:
        folder = work / "phantoms"
        call_command("make_phantoms", studies=args.studies, seed=1, out=str(folder), verbosity=0)
    files = sorted(p for p in folder.rglob("*.dcm"))
    for path in files:  # warm the page cache so both sides read from memory
        path.read_bytes()
    size_mb = sum(p.stat().st_size for p in files) / 1024**2
    print(f"{len(files)} files, {size_mb:.0f} MB", flush=True)

    best_base = best_ingest = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        for path in files:
            pydicom.dcmread(path).pixel_array  # noqa: B018 - the baseline is the decode itself
        best_base = min(best_base, time.perf_counter() - start)

        # Start each round empty: no rows, no stored files.
        Assignment.objects.all().delete()  # protects its radiograph
        Radiograph.objects.all().delete()
        Study.objects.all().delete()
        Patient.objects.all().delete()
        shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)
        start = time.perf_counter()
        # The same path as `manage.py import_dicom`: files read in order,
        # decoded and stored by a pool of threads, rows written in order.
        for outcome in services.ingest_sources(paths=files, source="cli"):
            if outcome.status != "imported":
                raise SystemExit(f"{outcome.name}: {outcome.status} {outcome.reason}")
        best_ingest = min(best_ingest, time.perf_counter() - start)

    # The floor that the disk sets: the ingest must make each original durable; time writing
    # those bytes alone the same way (annotate.archive.staging: written, then made durable per
    # batch of 2 x workers), into the same folder.
    from annotate.archive.staging import make_durable, stage
    from common.storage import Buffers

    batch_size = 2 * (settings.INGEST_WORKERS or os.cpu_count() or 1)
    start = time.perf_counter()
    for first in range(0, len(files), batch_size):
        batch = [stage(f"floor/{index}.dcm", Buffers(files[index].read_bytes()))
                 for index in range(first, min(first + batch_size, len(files)))]  # fmt: skip
        make_durable(s for s in batch if s)
    write_rate = len(files) / (time.perf_counter() - start)
    shutil.rmtree(Path(settings.MEDIA_ROOT) / "floor")
    # The previews, as their first views (or the task the import queued) render them.
    from annotate.archive.previews import previews_warm

    previews_warm(radiograph_ids=Radiograph.objects.values_list("pk", flat=True))

    base_rate = len(files) / best_base
    ingest_rate = len(files) / best_ingest
    print(f"baseline dcmread().pixel_array: {base_rate:.2f} radiographs/s")
    print(f"ingest:                         {ingest_rate:.2f} radiographs/s")
    print(f"writing the same bytes alone:   {write_rate:.2f} radiographs/s (the disk's floor)")
    print(f"ratio ingest/baseline: {ingest_rate / base_rate:.2f} (goal >= 0.5)")
    print(f"ratio ingest/disk floor: {ingest_rate / write_rate:.2f}")

    media = Path(settings.MEDIA_ROOT)
    stored = sum(p.stat().st_size for p in media.rglob("*") if p.is_file())
    received = sum(p.stat().st_size for p in files)
    print(f"stored: {stored / len(files) / 1024**2:.2f} MB per radiograph vs {received / len(files) / 1024**2:.2f} MB "
          f"received = {stored / received:.3f} (goal <= 1.15; was 2.0 with the .npy)")  # fmt: skip
    crops(media, args.repeat)
    shutil.rmtree(work, ignore_errors=True)  # the phantoms and the data folder: ~0.5 GB


def crops(media: Path, repeat: int) -> None:
    """Four crops per radiograph: the old path (.npy memory-mapped) against annotate.archive.pixels."""
    import numpy as np

    from annotate.archive.pixels import caches, decode_stored, radiograph_pixels
    from annotate.models import Radiograph
    from ml.core.crops import hip_crops

    old_dir = media / "old-npy"
    old_dir.mkdir(exist_ok=True)
    radiographs = list(Radiograph.objects.order_by("pk"))
    for r in radiographs:  # what the ingest wrote before: the decoded array as .npy
        np.save(old_dir / f"{r.sha256}.npy", decode_stored(r.original.name))
        (media / r.original.name).read_bytes()  # both sides read from the page cache

    def four(pixels: np.ndarray, r: Radiograph) -> None:
        h, w = pixels.shape
        for side, x in (("right", 0.15 * w), ("left", 0.6 * w)):
            hip_crops(pixels, (x, 0.4 * h, 0.25 * w, 0.25 * h), side, window=(r.window_center, r.window_width))

    def old() -> None:
        for r in radiographs:
            four(np.load(old_dir / f"{r.sha256}.npy", mmap_mode="r"), r)

    def new(cold: bool) -> None:
        for r in radiographs:
            if cold:
                caches()[0].clear()
            four(radiograph_pixels(r), r)

    def best(run: object) -> float:
        times = []
        for _ in range(max(repeat, 3)):
            start = time.perf_counter()
            run()  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return min(times) * 1e3 / len(radiographs)

    today, first, cached = best(old), best(lambda: new(True)), best(lambda: new(False))
    print(f"crops: {first:.1f} ms vs {today:.1f} ms today = {first / today:.2f} "
          f"(first read of a radiograph: decoded from its DICOM; goal <= 1.2)")  # fmt: skip
    print(f"crops: {cached:.1f} ms vs {today:.1f} ms today = {cached / today:.2f} (cached, as when both "
          "hips, a second pass or an epoch that fits PIXEL_CACHE_BYTES read it again)")  # fmt: skip


if __name__ == "__main__":
    main()
