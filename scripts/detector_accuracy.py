"""How well the hip detector learns the phantoms: the issue's detector check, in one command.

    python scripts/detector_accuracy.py [--studies 400] [--seed 7] [--config cpu-small] [--data-dir DIR]

In a data folder of its own (default a new temporary one; SQLite unless DATABASE_URL is
set): makes ``--studies`` phantom studies with ``make_phantoms --seed``, imports them, loads
their COCO ground truth as two agreeing labellers, freezes a dataset version (``make_dataset
--seed``), trains the ``--config`` detector with ``manage.py train --kind detector`` (the
Celery task's code path), then detects the hips of every test-split radiograph with the new
model version and compares each with its manual box. Prints the wall time of each step, the
IoU of the test hips (mean +- SD, minimum), the hips missed (no box of that side: IoU 0) and
the boxes found where nobody labelled a hip; exits 1 unless the goal is met: training under
20 minutes, mean IoU >= 0.85, no hip below IoU 0.5.
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

# Run inside Django (manage.py shell): the test split's detections against the manual boxes.
MEASURE = """
import json, numpy as np
from ml.core import detector
from ml.core.modelfile import load_bundle
from ml.models import ModelVersion, Split
from ml.training import detector_records
version = ModelVersion.objects.get(pk={version})
model, config, _ = load_bundle(version.bundle_path)
records = detector_records(version.dataset, Split.TEST)
found = list(detector.detect_many(model, config, ((r.load(), r.window) for r in records), batch_size=8))
mean, ious = detector.mean_iou(found, [r.hips for r in records])
missed = sum(1 for d, r in zip(found, records) for side, _ in r.hips if side not in {{x.side for x in d}})
extra = sum(1 for d, r in zip(found, records) for x in d if x.side not in {{side for side, _ in r.hips}})
print(json.dumps({{"radiographs": len(records), "hips": len(ious), "iou_mean": mean, "iou_sd": float(np.std(ious)),
                  "iou_min": float(min(ious)), "below_0_5": sum(1 for v in ious if v < 0.5), "hips_missed": missed,
                  "hips_extra": extra}}))
"""


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
    measured = step("detect test split", "shell", "-c", MEASURE.format(version=int(version)), capture=True)
    metrics = json.loads(measured.strip().splitlines()[-1])
    (data_dir / f"detector-{version}.json").write_text(json.dumps({**metrics, "timings": timings}, indent=1))

    print("\n== results")
    for name, seconds in timings.items():
        print(f"{name:>20}: {seconds:7.1f} s")
    print(f"{'test radiographs':>20}: {metrics['radiographs']} ({metrics['hips']} hips)")
    print(f"{'IoU':>20}: mean {metrics['iou_mean']:.3f} +- {metrics['iou_sd']:.3f} (SD), min {metrics['iou_min']:.3f}")
    print(f"{'hips below IoU 0.5':>20}: {metrics['below_0_5']}")
    print(f"{'hips missed':>20}: {metrics['hips_missed']}")
    print(f"{'boxes unlabelled':>20}: {metrics['hips_extra']}")
    print(f"data folder: {data_dir}")
    ok = timings["train"] < 20 * 60 and metrics["iou_mean"] >= 0.85 and metrics["iou_min"] >= 0.5
    print("goal (train < 20 min, mean IoU >= 0.85, no hip below 0.5):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
