"""The demo: the whole product on SQLite, synthetic radiographs and a real Celery worker.

Run by `make demo`. Makes phantoms, imports them, labels most of them twice
from their ground truth (with disagreements planted for the adjudicator), then
freezes a dataset version, queues the training of the ``cpu-small`` classifier
and then of the ``cpu-small`` hip detector (each activated when done; with both
active the unlabelled radiographs get proposals and a place on the triage
worklist), starts scripts/demo_study.py (the reader study, made once the
classifier is active), and starts Celery workers and the web server.
Idempotent: a second run reuses the data folder and imports nothing new.
Environment: DATA_DIR (default ./var), DEMO_STUDIES (default 160), PORT
(default 8000); with REDIS_URL set the worker uses Redis, otherwise a broker
folder inside DATA_DIR.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)


def main() -> int:
    os.environ.setdefault("DEBUG", "true")
    data_dir = Path(os.environ.setdefault("DATA_DIR", str(ROOT / "var")))
    studies = os.environ.get("DEMO_STUDIES", "160")
    port = os.environ.get("PORT", "8000")

    manage("migrate", "--no-input", "-v", "0")
    manage("create_demo_users", "--quiet")
    phantoms = data_dir / "phantoms"
    if not (phantoms / "annotations.coco.json").exists():
        print(f"Making {studies} synthetic studies in {phantoms} ...", flush=True)
        manage("make_phantoms", "--studies", studies, "--seed", "2020", "--out", str(phantoms))
    print("Importing the synthetic radiographs ...", flush=True)
    manage("import_dicom", str(phantoms))
    # The platform keeps its own copy of each original: the phantoms' DICOMs
    # can go (a third of the demo's disk), their COCO ground truth stays.
    for path in phantoms.rglob("*.dcm"):
        path.unlink()
    # The phantoms' ground truth plays labeler1 and labeler2, with a handful
    # of disagreements planted for the adjudicator; the last tenth of the
    # images stays unlabelled for whoever logs in as a labeller.
    print("Double-labelling the phantoms ...", flush=True)
    subprocess.run([PYTHON, "scripts/demo_labels.py", str(phantoms)], cwd=ROOT, check=True)

    # Two workers: imports (default queue) are not held up behind a training run (ml queue).
    workers = [
        subprocess.Popen(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "config",
                "--quiet",
                "worker",
                "-Q",
                queue,
                "--concurrency",
                "1",
                "--loglevel",
                "WARNING",
                "--max-tasks-per-child",
                "50",
                "-n",
                f"{queue}@%h",
            ],
            cwd=ROOT,
        )  # fmt: skip
        for queue in ("default", "ml")
    ]
    background: list[subprocess.Popen] = []
    try:
        # The cpu-small classifier trains on the worker while the site runs (progress on
        # the Models page) and becomes the active model when done; a second demo run
        # finds it trained already and leaves it.
        print("Freezing a dataset version and queueing the cpu-small classifier's training ...", flush=True)
        manage("make_dataset", "--seed", "0", "--name", "demo")
        subprocess.run(
            [PYTHON, "manage.py", "train", "--config", "cpu-small", "--activate", "--queue"], cwd=ROOT, check=False
        )
        # Then the cpu-small hip detector (same queue, after the classifier). Once both are
        # active, every radiograph without ground truth is read end to end: its hips boxed
        # (proposals on the labelling page) and classified (the triage worklist).
        subprocess.run(
            [PYTHON, "manage.py", "train", "--kind", "detector", "--config", "cpu-small", "--activate", "--queue"],
            cwd=ROOT,
            check=False,
        )
        manage("create_demo_users")
        # The reader study waits in the background for the classifier, then makes demo-study
        # with simulated readers and reader1 left for a person (scripts/demo_study.py).
        background.append(subprocess.Popen([PYTHON, "scripts/demo_study.py"], cwd=ROOT))
        # The hospital's route in: a DICOM C-STORE listener, so that a modality, a PACS or
        # DCMTK's storescu can push radiographs (scored on arrival once both models are active).
        dicom_port = os.environ.get("DEMO_DICOM_PORT", "11112")
        background.append(
            subprocess.Popen(
                [PYTHON, "manage.py", "dicom_listener", "--port", dicom_port, "--ae-title", "HIPSTUDY"], cwd=ROOT
            )
        )
        print(f"DICOM listener: AE title HIPSTUDY on 127.0.0.1:{dicom_port} (storescu -xr -aec HIPSTUDY ...)")
        print(f"\nThe site is at http://127.0.0.1:{port}/ (Ctrl+C stops it and the worker).\n", flush=True)
        subprocess.run([PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT)
    except KeyboardInterrupt:
        pass
    finally:
        for process in background:
            process.terminate()
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        for process in background:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
