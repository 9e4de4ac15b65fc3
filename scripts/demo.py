"""The demo: the whole product on SQLite, synthetic radiographs and a real Celery worker.

Run by `make demo`. Makes phantoms, imports them, labels most of them twice
from their ground truth (with disagreements planted for the adjudicator), then
freezes a dataset version, queues the training of the ``cpu-small`` classifier
and then of the ``cpu-small`` hip detector (each activated when done; with both
active the unlabelled radiographs get proposals and a place on the triage
worklist), starts scripts/demo_study.py (the reader study, made once the
classifier is active), and starts Celery workers and the web server.
Idempotent: a second run reuses the data folder and imports nothing new.
Environment: DATA_DIR (default ./var), DEMO_STUDIES (default 160, any number
from 1: with 3 or fewer there are too few patients agreed on for a dataset
version, and the demo says so in one line and serves labelling and adjudication
without a model or a reader study), PORT (default 8000); with
REDIS_URL set the worker uses Redis, otherwise a broker folder inside DATA_DIR.

The first run writes ``.env`` in the repository root (git-ignored, mode 0600):
DEBUG on, a generated SECRET_KEY and the DATA_DIR used here. config/settings.py
reads it, so ``manage.py`` works in any new shell against the demo's data; a
variable exported in the environment wins over it. An existing .env is kept.

    python scripts/demo.py --setup-only   # everything up to the dataset version; no worker, no server
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

from dotenv import dotenv_values, load_dotenv

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ENV_FILE = ROOT / ".env"
sys.path.insert(0, str(ROOT))

from devtools.processes import stop  # noqa: E402 - the repository root is on the path from here


class DemoStop(Exception):
    """A set-up step failed; its own message is above, this is the demo's one line."""


def manage(*args: str) -> None:
    run_step([PYTHON, "manage.py", *args])


def run_step(command: list[str]) -> None:
    result = subprocess.run(command, cwd=ROOT, check=False)
    if result.returncode != 0:
        step = " ".join([Path(command[1]).name, *command[2:3]])
        raise DemoStop(f"`{step}` failed (exit status {result.returncode}); its message is above")


def write_env_file(path: Path, data_dir: Path) -> bool:
    """Write the demo's .env (DEBUG on, a new SECRET_KEY, DATA_DIR) unless there is one; True if written."""
    text = (
        "# Written by `make demo` (scripts/demo.py) for this checkout only; git-ignored. config/settings.py\n"
        "# reads it, so manage.py works in any shell; a variable set in the environment wins. Not for production.\n"
        "DEBUG=true\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"DATA_DIR={data_dir}\n"
    )
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    return True


def studies_wanted(raw: str) -> int:
    try:
        studies = int(raw)
    except ValueError:
        studies = 0
    if studies < 1:
        raise DemoStop(f"DEMO_STUDIES={raw!r}: give a whole number of studies, 1 or more")
    return studies


def freeze_dataset() -> str | None:
    """Freeze the demo's dataset version; None when done, else the one-line reason it was refused."""
    result = subprocess.run(
        [PYTHON, "manage.py", "make_dataset", "--seed", "0", "--name", "demo"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    if result.returncode == 0:
        sys.stderr.write(result.stderr)
        return None
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    reason = lines[-1] if lines else f"exit status {result.returncode}"
    return reason.removeprefix("CommandError: ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--setup-only", action="store_true",
        help="stop after the dataset version: no worker, no training, no reader study, no server",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        return run_demo(setup_only=args.setup_only)
    except DemoStop as stop:
        print(f"demo: {stop}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run_demo(*, setup_only: bool = False) -> int:
    studies = str(studies_wanted(os.environ.get("DEMO_STUDIES", "160")))
    data_dir = Path(os.environ.get("DATA_DIR") or ROOT / "var").resolve()
    if write_env_file(ENV_FILE, data_dir):
        print(f"Wrote {ENV_FILE.name} (DEBUG on, a new SECRET_KEY, DATA_DIR={data_dir}): manage.py reads it.")
    # What the .env says, unless the environment says otherwise; the commands below inherit it.
    load_dotenv(ENV_FILE, override=False)
    os.environ.setdefault("DEBUG", "true")
    data_dir = Path(os.environ.setdefault("DATA_DIR", str(ROOT / "var")))
    env_data_dir = dotenv_values(ENV_FILE).get("DATA_DIR")
    if env_data_dir and Path(env_data_dir).resolve() != data_dir.resolve():
        print(f"Note: this run uses DATA_DIR={data_dir}; manage.py in a new shell uses .env's {env_data_dir}.")
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
    run_step([PYTHON, "scripts/demo_labels.py", str(phantoms)])
    if setup_only:
        refused = freeze_dataset()
        if refused:
            print(f"No dataset version: {refused}.", file=sys.stderr)
        return 0

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
        refused = freeze_dataset()
        if refused:
            # Too few patients agreed on (a small DEMO_STUDIES): labelling and adjudication still work.
            print(
                f"No dataset version, so no model and no reader study: {refused} (DEMO_STUDIES={studies}).",
                file=sys.stderr, flush=True,
            )  # fmt: skip
        else:
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
        if not refused:
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
        stop(*background, *workers, timeout=20)  # SIGTERM to all: the workers finish their task
    return 0


if __name__ == "__main__":
    sys.exit(main())
