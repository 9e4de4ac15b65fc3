"""Arrival: radiographs pushed by C-STORE, stored per second against DCMTK's own storescp.

    python bench/arrival.py [--count 200] [--score] [--training-studies 30]

Makes ``--count`` phantom radiographs (devtools.phantoms; some RLE-compressed,
4-12 MB each), then times DCMTK's ``storescu`` sending them all on one
association (``-xr``: RLE and the uncompressed syntaxes proposed, each file
sent as it is) to
(a) DCMTK's ``storescp`` writing into a temporary folder (``+xa``, its largest
    PDU: 128 KiB), and
(b) our listener, ``manage.py dicom_listener`` in a subprocess on a throw-away
    SQLite database and data folder (store-and-forward: each file fsynced into
    the spool before the sender is told it is stored, ingested meanwhile).
Prints stored/s of both and the ratio (aim: at least 0.5), then the time until
every radiograph is ingested.

With ``--score``: before sending, tiny detector and classifier models are
trained on ``--training-studies`` other phantom studies (their ground truth
imported as two labellers), activated, and a Celery worker serves the ``ml``
queue, so that each radiograph is read on arrival; the bench then waits for
every reading and prints arrival-to-score median and p95
(``triage.operations.arrival_stats``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.processes import free_port, stop, wait_for_line  # noqa: E402 - the repository root is on the path from here

PYTHON = sys.executable
AE_TITLE = "HIPSTUDY"


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)


def make_phantoms(out: Path, count: int, seed: int, desc: str) -> list[Path]:
    """``count`` radiographs (a study has one to three): batches of studies until there are enough."""
    from devtools.phantoms import generate_phantoms

    files: list[Path] = []
    with tqdm(total=0, unit="study", desc=desc) as bar:
        while len(files) < count:
            batch, studies = out / f"batch{seed}", max(1, round((count - len(files)) / 1.4))
            bar.total += studies
            generate_phantoms(batch, studies=studies, seed=seed, progress=bar.update)
            files += sorted(batch.rglob("*.dcm"))[: count - len(files)]
            seed += 1
    return files


def send(port: int, files: list[Path], listing: Path) -> float:
    """storescu, one association, every file; seconds from its start to its end."""
    start = time.perf_counter()
    result = subprocess.run(
        ["storescu", "-xr", "-aet", "BENCH", "-aec", AE_TITLE, "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    listing.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"storescu failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return elapsed


def train_models(work: Path, studies: int) -> None:
    """Tiny detector and classifier, trained on their own phantoms and activated."""
    phantoms = work / "training"
    with tqdm(total=studies, unit="study", desc="training phantoms") as bar:
        from devtools.phantoms import generate_phantoms

        generate_phantoms(phantoms, studies=studies, seed=2020, progress=bar.update)
    manage("create_demo_users", "--quiet")
    manage("import_dicom", str(phantoms))
    subprocess.run([PYTHON, "scripts/demo_labels.py", str(phantoms), "--disagreements", "0"], cwd=ROOT, check=True)
    manage("make_dataset", "--seed", "0", "--name", "bench-arrival")
    for kind in ("classifier", "detector"):
        # Not check=True: the command exits 1 after an activated run when the tiny test split gives
        # no confidence interval to print; whether the model is active is checked below.
        subprocess.run([PYTHON, "manage.py", "train", "--kind", kind, "--config", "tiny", "--activate"], cwd=ROOT)
    from ml.models import ModelVersion

    active = set(ModelVersion.objects.filter(is_active=True).values_list("kind", flat=True))
    if active != {"classifier", "detector"}:
        raise SystemExit(f"training did not leave a detector and a classifier active (active: {sorted(active)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="radiographs to send")
    parser.add_argument("--score", action="store_true", help="train tiny models first and time arrival to score")
    parser.add_argument("--training-studies", type=int, default=30, help="phantom studies the tiny models learn")
    parser.add_argument("--idle", type=float, default=120.0, help="seconds without a new score before giving up")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    for tool in ("storescu", "storescp"):
        if shutil.which(tool) is None:
            raise SystemExit(f"DCMTK's {tool} is needed (Debian package dcmtk)")

    work = Path(tempfile.mkdtemp(prefix="bench-arrival-"))
    os.environ.update(DEBUG="true", DATA_DIR=str(work / "data"), LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    verbose = {**os.environ, "LOG_LEVEL": "INFO"}  # the listener's and the worker's ready lines
    for name in ("DATABASE_URL", "REDIS_URL", "DICOM_SPOOL_DIR", "DICOM_ALLOWED_CALLING_AE"):
        os.environ.pop(name, None)  # SQLite and the filesystem broker, both in the data folder
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.utils import timezone

    from annotate.models import Radiograph

    processes: list[subprocess.Popen] = []
    try:
        manage("migrate", "-v", "0")
        if args.score:
            train_models(work, args.training_studies)
            log = open(work / "worker.log", "ab")  # noqa: SIM115 - closed with the process
            processes.append(
                subprocess.Popen(
                    [
                        PYTHON,
                        "-m",
                        "celery",
                        "-A",
                        "config",
                        "worker",
                        "-Q",
                        "ml,default",
                        "--concurrency",
                        "1",
                        "--loglevel",
                        "INFO",
                        "-n",
                        "bench@%h",
                    ],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=verbose,
                    start_new_session=True,
                )  # fmt: skip
            )
            wait_for_line(work / "worker.log", r"bench@\S+ ready", processes[-1])
            from annotate.labels import GroundTruthHip
            from triage.operations import arrival_stats

            # Activation reads what arrived before (the training phantoms without ground truth):
            # wait until each of them has its reading, so that only our radiographs are timed.
            truth = GroundTruthHip.objects.filter(removed_at__isnull=True).values("radiograph_id")
            unread = Radiograph.objects.exclude(pk__in=truth).filter(reading__isnull=True)
            with tqdm(total=unread.count(), desc="read before sending", unit="radiograph") as bar:
                while (left := unread.count()) > 0:
                    bar.update(bar.total - left - bar.n)
                    if processes[0].poll() is not None:
                        raise SystemExit(f"the worker exited:\n{(work / 'worker.log').read_text()}")
                    time.sleep(1.0)
                bar.update(bar.total - bar.n)
        files = make_phantoms(work / "phantoms", args.count, seed=8, desc="phantoms")
        size = sum(path.stat().st_size for path in files)
        for path in files:  # both receivers get the files from the page cache
            path.read_bytes()
        print(f"{len(files)} radiographs, {size / 1024**2:.0f} MB", flush=True)

        # (a) DCMTK storescp: +xa accepts every syntax it knows; its largest PDU (ours is larger still).
        port = free_port()
        received = work / "storescp"
        received.mkdir()
        storescp = subprocess.Popen(
            ["storescp", "+xa", "--max-pdu", "131072", "-aet", AE_TITLE, "-od", str(received), str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        processes.append(storescp)
        time.sleep(1.0)  # storescp prints nothing when ready; its socket answers within this
        dcmtk = send(port, files, work / "storescu-storescp.txt")
        stored = len(list(received.iterdir()))
        stop(storescp, timeout=30)
        shutil.rmtree(received)
        if stored != len(files):
            raise SystemExit(f"storescp wrote {stored} of {len(files)} files")

        # (b) our listener, in its own process as in production.
        log_path = work / "listener.log"
        listener = subprocess.Popen(
            [PYTHON, "manage.py", "dicom_listener", "--port", "0", "--ae-title", AE_TITLE],
            cwd=ROOT, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, env=verbose,  # noqa: SIM115
        )  # fmt: skip
        processes.append(listener)
        port = int(wait_for_line(log_path, rf"listening on 127\.0\.0\.1:(\d+) as {AE_TITLE}", listener).group(1))
        before = Radiograph.objects.count()
        since = timezone.now()
        start = time.perf_counter()
        ours = send(port, files, work / "storescu-listener.txt")
        with tqdm(total=len(files), unit="radiograph", desc="ingested", initial=0) as bar:
            while (done := Radiograph.objects.count() - before) < len(files):
                bar.update(done - bar.n)
                if listener.poll() is not None:
                    raise SystemExit(f"the listener exited:\n{log_path.read_text()}")
                time.sleep(0.2)
            bar.update(done - bar.n)
        ingested = time.perf_counter() - start

        n = len(files)
        print(
            f"storescu -> storescp:       {n / dcmtk:7.1f} stored/s ({dcmtk:.1f} s, {size / 1024**2 / dcmtk:.0f} MB/s)"
        )
        print(f"storescu -> dicom_listener: {n / ours:7.1f} stored/s ({ours:.1f} s, {size / 1024**2 / ours:.0f} MB/s)")
        print(f"ratio listener / storescp:  {dcmtk / ours:7.2f} (aim >= 0.5)")
        print(f"all {n} ingested {ingested:.1f} s after the first was sent ({n / ingested:.1f} radiographs/s)")

        if args.score:
            last, quiet_since = 0, time.monotonic()
            with tqdm(total=n, unit="radiograph", desc="scored") as bar:
                # Until all are read, or nothing new has been read for a while (a reading that fails
                # is logged by the worker and not retried).
                while (stats := arrival_stats(since))["scored"] < n:
                    if stats["scored"] != last:
                        last, quiet_since = stats["scored"], time.monotonic()
                    elif time.monotonic() - quiet_since > args.idle:
                        break
                    bar.update(stats["scored"] - bar.n)
                    if processes[0].poll() is not None:
                        raise SystemExit(f"the worker exited:\n{(work / 'worker.log').read_text()}")
                    time.sleep(1.0)
                bar.update(stats["scored"] - bar.n)
            failed = len(re.findall(r"read_radiographs\[[^\]]+\] raised", (work / "worker.log").read_text()))
            print(
                f"arrival to score: median {stats['median_seconds']:.1f} s, p95 {stats['p95_seconds']:.1f} s"
                f" ({stats['scored']} of {n} scored, {failed} readings failed; tiny detector + classifier,"
                " one ml worker, concurrency 1; triage.operations.arrival_stats)"
            )
        else:
            print("arrival to score: not measured (no active models; run with --score)")
        stop(listener, timeout=60)  # SIGTERM: the listener finishes what it received
    finally:
        stop(*processes, timeout=30)  # the worker leads its own group: its pool goes with it
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
