"""How well the hip detector learns the phantoms: the issue's detector check, in one command.

    python scripts/detector_accuracy.py [--studies 400] [--seed 7] [--config cpu-small] [--data-dir DIR]

In a data folder of its own (default a new temporary one; SQLite unless DATABASE_URL is
set): makes ``--studies`` phantom studies with ``make_phantoms --seed``, imports them, loads
their COCO ground truth as two agreeing labellers, freezes a dataset version (``make_dataset
--seed``), trains the ``--config`` detector with ``manage.py train --kind detector`` (the
Celery task's code path), which ends by evaluating the new model version on the test split
(``ml.detection.evaluate_detector``: each manual hip against the detected box of its side).
Prints the wall time of each step, the IoU of the test hips (mean +- SD, minimum), the hips
missed (no box of that side: IoU 0) and the boxes found where nobody labelled a hip; exits 1
unless the goal is met: training under 20 minutes, mean IoU >= 0.85, no hip below IoU 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--config", default="cpu-small")
    parser.add_argument("--epochs", type=int, help="most epochs (default: the config's)")
    parser.add_argument("--data-dir", type=Path, help="keep everything here (default: a temporary folder)")
    args = parser.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="hip-detector-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATA_DIR": str(data_dir), "DEBUG": "true", "SCORE_ON_ARRIVAL": "false"}
    env.pop("REDIS_URL", None)  # no worker: the train command runs in the foreground

    def manage(*cmd: str, capture: bool = False) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *cmd], cwd=ROOT, env=env, check=True, text=True,
            stdout=subprocess.PIPE if capture else None,
        )  # fmt: skip
        return result.stdout or ""

    timings: dict[str, float] = {}

    def step(name: str, *cmd: str, capture: bool = False) -> str:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        out = manage(*cmd, capture=capture)
        timings[name] = time.monotonic() - started
        return out

    phantoms = data_dir / "phantoms"
    manage("migrate", "--no-input", "-v", "0")
    manage("create_demo_users", "--quiet")
    step("make_phantoms", "make_phantoms", "--studies", str(args.studies), "--seed", str(args.seed), "--out",
         str(phantoms))  # fmt: skip
    step("import", "import_dicom", str(phantoms))
    coco = str(phantoms / "annotations.coco.json")
    for labeler in ("labeler1", "labeler2"):
        step(f"labels {labeler}", "import_annotations", coco, "--format", "coco", "--as", labeler)
    dataset = step("make_dataset", "make_dataset", "--seed", str(args.seed), capture=True)
    print(dataset, flush=True)
    dataset_id = dataset.strip().splitlines()[-1]
    train = ["train", "--kind", "detector", "--config", args.config, "--dataset", dataset_id, "--seed", str(args.seed)]
    if args.epochs:
        train += ["--epochs", str(args.epochs)]
    out = step("train", *train, capture=True)
    print(out, flush=True)
    version = out.strip().splitlines()[-1]
    # Training ends by evaluating the new version on the test split (ml.detection.evaluate_detector):
    # its metrics.json holds the figures, so the test split is not read a second time here.
    metrics = json.loads((data_dir / "evaluations" / str(int(version)) / "metrics.json").read_text())
    (data_dir / f"detector-{version}.json").write_text(json.dumps({**metrics, "timings": timings}, indent=1))

    print("\n== results")
    for name, seconds in timings.items():
        print(f"{name:>20}: {seconds:7.1f} s")
    print(f"{'test hips':>20}: {metrics['hips']}")
    print(f"{'IoU':>20}: mean {metrics['iou_mean']:.3f} +- {metrics['iou_sd']:.3f} (SD), min {metrics['iou_min']:.3f}")
    print(f"{'hips below IoU 0.5':>20}: {metrics['hips_below_0_5']}")
    print(f"{'hips missed':>20}: {metrics['hips_missed']}")
    print(f"{'boxes unlabelled':>20}: {metrics['hips_extra']}")
    print(f"data folder: {data_dir}")
    ok = timings["train"] < 20 * 60 and metrics["iou_mean"] >= 0.85 and metrics["iou_min"] >= 0.5
    print("goal (train < 20 min, mean IoU >= 0.85, no hip below 0.5):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
