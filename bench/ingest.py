"""Ingest speed: radiographs ingested per second, against bare pydicom decoding.

    python bench/ingest.py [--studies 12] [--repeat 1] [DIR]

Makes phantom studies (or reads DICOMs from DIR), then times, on the same
files, (a) the baseline `pydicom.dcmread(path).pixel_array` and (b) the full
ingest as `manage.py import_dicom` runs it (`annotate.services.ingest_sources`:
decode, modality LUT, 16-bit array, preview, content-addressed files written
atomically, database rows)
into a throw-away SQLite database and data folder. Prints both rates and the
ratio ingest / baseline (the goal is at least 0.5).
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
    from annotate.models import Radiograph

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
        Radiograph.objects.all().delete()
        shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)
        start = time.perf_counter()
        # The same path as `manage.py import_dicom`: files read in order,
        # decoded and stored by a pool of threads, rows written in order.
        for outcome in services.ingest_sources(files, source="cli"):
            if outcome.status != "imported":
                raise SystemExit(f"{outcome.name}: {outcome.status} {outcome.reason}")
        best_ingest = min(best_ingest, time.perf_counter() - start)

    # The floor that the disk sets: ingest must write each original and its
    # 16-bit array (plus a small preview); time writing those bytes alone,
    # the same way (temporary file, fsync, rename), into the same folder.
    arrays = [pydicom.dcmread(path).pixel_array.astype("uint16").tobytes() for path in files[:8]]
    floor_dir = Path(settings.MEDIA_ROOT) / "floor"
    floor_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for index, (path, array) in enumerate(zip(files, arrays, strict=False)):
        for kind, blob in (("dcm", path.read_bytes()), ("npy", array)):
            tmp = floor_dir / f".{index}.{kind}.tmp"
            with open(tmp, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, floor_dir / f"{index}.{kind}")
    write_rate = len(arrays) / (time.perf_counter() - start)

    base_rate = len(files) / best_base
    ingest_rate = len(files) / best_ingest
    print(f"baseline dcmread().pixel_array: {base_rate:.2f} radiographs/s")
    print(f"ingest:                         {ingest_rate:.2f} radiographs/s")
    print(f"writing the same bytes alone:   {write_rate:.2f} radiographs/s (the disk's floor)")
    print(f"ratio ingest/baseline: {ingest_rate / base_rate:.2f} (goal >= 0.5)")
    print(f"ratio ingest/disk floor: {ingest_rate / write_rate:.2f}")


if __name__ == "__main__":
    main()
