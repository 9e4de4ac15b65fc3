"""How well the classifier learns the phantoms: the issue's accuracy check, in one command.

    python scripts/phantom_accuracy.py [--studies 400] [--seed 7] [--config cpu-small] [--regime R] [--data-dir DIR]

In a data folder of its own (default a new temporary one; SQLite unless
DATABASE_URL is set): makes ``--studies`` phantom studies with ``make_phantoms
--seed``, imports them, loads their COCO ground truth as two agreeing labellers
(so every radiograph gets agreed ground truth, cross-table laterals excluded),
freezes a dataset version (``make_dataset --seed``), then trains ``--config``
with ``manage.py train`` (the Celery task's code path; ``--regime`` trains under
``paper-fixed`` or ``online-random`` instead of the config's own, as many images
seen: ``train --regime``) and evaluates it on the
test split with the paper's bootstrap. Prints the wall time of each step and
the test-split figures with their 95% CIs; exits 1 if the training took 15
minutes or more, or binary accuracy < 0.90 or multiclass accuracy < 0.80.
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
    parser.add_argument("--regime", choices=("paper-fixed", "online-random"), help="default: the config's")
    parser.add_argument("--data-dir", type=Path, help="keep everything here (default: a temporary folder)")
    args = parser.parse_args()

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="hip-accuracy-"))
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
    step(
        "make_phantoms",
        "make_phantoms",
        "--studies",
        str(args.studies),
        "--seed",
        str(args.seed),
        "--out",
        str(phantoms),
    )
    step("import", "import_dicom", str(phantoms))
    coco = str(phantoms / "annotations.coco.json")
    for labeler in ("labeler1", "labeler2"):
        step(f"labels {labeler}", "import_annotations", coco, "--format", "coco", "--as", labeler)
    dataset = step("make_dataset", "make_dataset", "--seed", str(args.seed), capture=True)
    print(dataset, flush=True)
    dataset_id = dataset.strip().splitlines()[-1]
    regime = ["--regime", args.regime] if args.regime else []
    out = step(
        "train", "train", "--config", args.config, *regime, "--dataset", dataset_id, "--seed", str(args.seed),
        capture=True,
    )  # fmt: skip
    print(out, flush=True)
    version = out.strip().splitlines()[-1]
    metrics_dir = data_dir / f"evaluation-{version}"
    step("evaluate", "evaluate", "--model", version, "--out", str(metrics_dir), capture=True)
    metrics = json.loads((metrics_dir / "metrics.json").read_text())

    print("\n== results")
    for name, seconds in timings.items():
        print(f"{name:>20}: {seconds:7.1f} s")
    for key in ("binary_accuracy", "binary_sensitivity", "binary_specificity", "binary_auc", "multiclass_accuracy"):
        f = metrics[key]
        print(f"{key:>20}: {f['mean']:.3f} (95% CI {f['ci_low']:.3f}-{f['ci_high']:.3f})")
    print(f"{'test hips':>20}: {metrics['n_cases']} of {metrics['n_patients']} patients")
    for key in ("regime", "test_time", "lr_schedule", "pretraining"):
        print(f"{key:>20}: {metrics.get(key)}")
    print(f"data folder: {data_dir}")
    ok = (
        timings["train"] < 15 * 60
        and metrics["binary_accuracy"]["mean"] >= 0.90
        and metrics["multiclass_accuracy"]["mean"] >= 0.80
    )
    print("goal (train < 15 min, binary >= 0.90, multiclass >= 0.80):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
