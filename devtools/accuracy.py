"""How well a model learns the phantoms: the issue's accuracy checks, in one command.

    python -m devtools.accuracy --kind classifier [--studies 400] [--seed 7] [--config cpu-small] [--regime R]
    python -m devtools.accuracy --kind detector [--studies 400] [--seed 7] [--config cpu-small] [--epochs N]

and either with ``--data-dir DIR``.

(``scripts/phantom_accuracy.py`` and ``scripts/detector_accuracy.py`` run the two kinds.)

In a data folder of its own (default a new temporary one; SQLite unless DATABASE_URL is set):
makes ``--studies`` phantom studies with ``make_phantoms --seed``, imports them, loads their
COCO ground truth as two agreeing labellers (so every radiograph gets agreed ground truth,
cross-table laterals excluded), freezes a dataset version (``make_dataset --seed``), then trains
``--config`` with ``manage.py train`` (the Celery task's code path). Prints the wall time of
each step and the test-split figures; exits 1 unless the goal of the kind is met.

- classifier: ``--regime`` trains under ``paper-fixed`` or ``online-random`` instead of the
  config's own, as many images seen (``train --regime``); the new version is evaluated on the
  test split with the paper's bootstrap (``manage.py evaluate``). Prints the figures with their
  95% CIs. Goal: training under 15 minutes, binary accuracy >= 0.90, multiclass accuracy >= 0.80.
- detector: ``train --kind detector`` (``--epochs`` at most), which ends by evaluating the new
  version on the test split (``ml.detection.evaluate_detector``: each manual hip against the
  detected box of its side). Prints the IoU of the test hips (mean +- SD, minimum), the hips
  missed (no box of that side: IoU 0) and the boxes found where nobody labelled a hip. Goal:
  training under 20 minutes, mean IoU >= 0.85, no hip below IoU 0.5.

No Django here: every step is a ``manage.py`` command in a child process.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=("classifier", "detector"), required=True)
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--config", default="cpu-small")
    parser.add_argument(
        "--regime", choices=("paper-fixed", "online-random"), help="classifier only; default: the config's"
    )
    parser.add_argument("--epochs", type=int, help="detector only: most epochs (default: the config's)")
    parser.add_argument("--data-dir", type=Path, help="keep everything here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.kind == "classifier" and args.epochs is not None:
        parser.error("--epochs is for --kind detector")
    if args.kind == "detector" and args.regime is not None:
        parser.error("--regime is for --kind classifier")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prefix = "hip-accuracy-" if args.kind == "classifier" else "hip-detector-"
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix=prefix))
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
    train = ["train", "--config", args.config, "--dataset", dataset_id, "--seed", str(args.seed)]
    if args.kind == "detector":
        train[1:1] = ["--kind", "detector"]
        if args.epochs:
            train += ["--epochs", str(args.epochs)]
    elif args.regime:
        train += ["--regime", args.regime]
    out = step("train", *train, capture=True)
    print(out, flush=True)
    version = out.strip().splitlines()[-1]

    if args.kind == "classifier":
        metrics_dir = data_dir / f"evaluation-{version}"
        step("evaluate", "evaluate", "--model", version, "--out", str(metrics_dir), capture=True)
        metrics = json.loads((metrics_dir / "metrics.json").read_text())
    else:
        # Training ends by evaluating the new version on the test split (ml.detection.evaluate_detector):
        # its metrics.json holds the figures, so the test split is not read a second time here.
        metrics = json.loads((data_dir / "evaluations" / str(int(version)) / "metrics.json").read_text())
        (data_dir / f"detector-{version}.json").write_text(json.dumps({**metrics, "timings": timings}, indent=1))

    print("\n== results")
    for name, seconds in timings.items():
        print(f"{name:>20}: {seconds:7.1f} s")
    ok, goal = (classifier_results if args.kind == "classifier" else detector_results)(metrics, timings)
    print(f"data folder: {data_dir}")
    print(goal, "met" if ok else "NOT met")
    return 0 if ok else 1


def classifier_results(metrics: dict[str, Any], timings: dict[str, float]) -> tuple[bool, str]:
    """Print the classifier's test-split figures; whether its goal is met, and the goal."""
    for key in ("binary_accuracy", "binary_sensitivity", "binary_specificity", "binary_auc", "multiclass_accuracy"):
        f = metrics[key]
        if f["mean"] is None:  # e.g. an AUC on a test split of one class (a small --studies)
            print(f"{key:>20}: undefined on this test split")
        else:
            print(f"{key:>20}: {f['mean']:.3f} (95% CI {f['ci_low']:.3f}-{f['ci_high']:.3f})")
    print(f"{'test hips':>20}: {metrics['n_cases']} of {metrics['n_patients']} patients")
    for key in ("regime", "test_time", "lr_schedule", "pretraining"):
        print(f"{key:>20}: {metrics.get(key)}")
    ok = (
        timings["train"] < 15 * 60
        and metrics["binary_accuracy"]["mean"] >= 0.90
        and metrics["multiclass_accuracy"]["mean"] >= 0.80
    )
    return ok, "goal (train < 15 min, binary >= 0.90, multiclass >= 0.80):"


def detector_results(metrics: dict[str, Any], timings: dict[str, float]) -> tuple[bool, str]:
    """Print the detector's test-split figures; whether its goal is met, and the goal."""
    print(f"{'test hips':>20}: {metrics['hips']}")
    print(f"{'IoU':>20}: mean {metrics['iou_mean']:.3f} +- {metrics['iou_sd']:.3f} (SD), min {metrics['iou_min']:.3f}")
    print(f"{'hips below IoU 0.5':>20}: {metrics['hips_below_0_5']}")
    print(f"{'hips missed':>20}: {metrics['hips_missed']}")
    print(f"{'boxes unlabelled':>20}: {metrics['hips_extra']}")
    ok = timings["train"] < 20 * 60 and metrics["iou_mean"] >= 0.85 and metrics["iou_min"] >= 0.5
    return ok, "goal (train < 20 min, mean IoU >= 0.85, no hip below 0.5):"


if __name__ == "__main__":
    sys.exit(main())
