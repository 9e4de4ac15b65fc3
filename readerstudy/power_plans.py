"""Power plans of a reader study: ``plan_reader_study`` run on the study's own answers as a task.

Each plan is a folder ``DATA_DIR/reader-power/<study>/<plan>/`` with its inputs, a ``status.json``
(status, progress, settings, error) the page polls, and the files of
:func:`readerstudy.analysis.power_outputs.write_plan`. ``plan_start`` checks and queues,
``plan_build`` does the work. Docs: docs/research/power.md
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from common.atomicfile import write_atomic
from common.queueing import enqueue, require_broker
from readerstudy import services
from readerstudy.analysis import power
from readerstudy.analysis.power_outputs import PLAN_FILES, write_plan
from readerstudy.models import ReaderStudy
from readerstudy.report.reports import INPUT_FILES, MIN_READERS, complete_readers

logger = logging.getLogger(__name__)

PLANS_DIR = "reader-power"
PLAN_ID = re.compile(r"^[0-9a-f]{12}$")
MAX_SIMULATIONS = 5000
MAX_ITERATIONS = 10_000
MAX_DESIGNS = 12  # (cases, readers) pairs in one plan
MAX_CASES = 2000
MAX_READERS = 20
_WRITE_EVERY_S = 1.0  # status.json at most this often while the simulations run


def plans_root(study: ReaderStudy) -> Path:
    return Path(settings.DATA_DIR) / PLANS_DIR / str(study.pk)


def plan_folder(study: ReaderStudy, plan: str) -> Path | None:
    """The plan's folder, or None when ``plan`` is not a plan id of this study."""
    if not PLAN_ID.match(plan):
        return None
    folder = plans_root(study) / plan
    return folder if (folder / "status.json").is_file() else None


def plan_status(study: ReaderStudy, plan: str) -> dict[str, Any] | None:
    """The plan's ``status.json`` (``id``, ``status``, ``progress``, ``settings``, ``error``,
    ``created_at``, ``finished_at``, ``created_by``), or None when there is no such plan."""
    folder = plan_folder(study, plan)
    if folder is None:
        return None
    data: dict[str, Any] = json.loads((folder / "status.json").read_text(encoding="utf-8"))
    return data


def plans_of(study: ReaderStudy) -> list[dict[str, Any]]:
    """Every plan of the study, newest first."""
    root = plans_root(study)
    found = [plan_status(study, p.name) for p in root.iterdir()] if root.is_dir() else []
    return sorted((p for p in found if p is not None), key=lambda p: p["created_at"], reverse=True)


def plan_file_path(study: ReaderStudy, plan: str, name: str) -> Path | None:
    """One of :data:`PLAN_FILES` of a done plan, or None."""
    folder = plan_folder(study, plan)
    if folder is None or name not in PLAN_FILES:
        return None
    path = folder / "plan" / name
    return path if path.is_file() else None


def plan_rows(study: ReaderStudy, plan: str) -> list[dict[str, Any]]:
    """The power rows of a done plan (from ``power.json``), with the target of each; [] otherwise."""
    path = plan_file_path(study, plan, "power.json")
    if path is None:
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    target = {power_key(t): t["target"] for t in data["targets"]}
    return [{**row, "target": target.get(power_key(row))} for row in data["rows"]]


def plan_notes(study: ReaderStudy, plan: str) -> list[str]:
    """The notes of a done plan (:func:`readerstudy.analysis.power.beyond_pilot_notes`); [] otherwise."""
    path = plan_file_path(study, plan, "power.json")
    if path is None:
        return []
    return [str(n) for n in json.loads(path.read_text(encoding="utf-8")).get("notes", [])]


def power_key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row[k]) for k in ("task", "a", "condition_a", "b", "condition_b"))


def _write_status(folder: Path, data: dict[str, Any]) -> None:
    write_atomic(folder / "status.json", (json.dumps(data, indent=2) + "\n").encode())


def check_settings(
    *, cases: Sequence[int], readers_per_training: Sequence[int], simulations: int, iterations: int
) -> None:
    """``StudyError`` for settings out of the page's bounds (the command line has none)."""
    if not cases or not readers_per_training:
        raise services.StudyError("give at least one number of cases and one number of readers per training")
    if len(set(cases)) * len(set(readers_per_training)) > MAX_DESIGNS:
        raise services.StudyError(f"at most {MAX_DESIGNS} designs (cases × readers) in one plan")
    if not all(2 <= n <= MAX_CASES for n in cases):
        raise services.StudyError(f"planned cases must be between 2 and {MAX_CASES}")
    if not all(2 <= r <= MAX_READERS for r in readers_per_training):
        raise services.StudyError(f"readers per training must be between 2 and {MAX_READERS} (the margin needs pairs)")
    if not 1 <= simulations <= MAX_SIMULATIONS:
        raise services.StudyError(f"simulations must be between 1 and {MAX_SIMULATIONS}")
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise services.StudyError(f"bootstrap iterations must be between 1 and {MAX_ITERATIONS}")


def plan_start(
    *,
    study: ReaderStudy,
    user: User | None,
    cases: Sequence[int] = power.DEFAULT_CASES,
    readers_per_training: Sequence[int] = power.DEFAULT_READERS,
    simulations: int = power.DEFAULT_SIMULATIONS,
    iterations: int = 2000,
    seed: int = 0,
    queue: bool = True,
) -> str:
    """A new plan from the study's complete readers (their answers exported now, as the report's
    are), in status ``queued``; with ``queue`` the ``build_power_plan`` task is sent. Returns its id.

    Refused (``StudyError``) for a study with no model or model-aided phase, with fewer than two
    complete readers, with no two of them of one group and training (the margin's pairs), or with
    settings out of bounds."""
    check_settings(
        cases=cases, readers_per_training=readers_per_training, simulations=simulations, iterations=iterations
    )
    if study.model_version_id is None or not study.aided_phase:
        raise services.StudyError(
            f"study {study.name} has no model or no model-aided phase: a plan compares the model with the readers "
            "under all three conditions"
        )
    complete = complete_readers(study)
    if len(complete) < MIN_READERS:
        raise services.StudyError(
            f"a plan needs a pilot of at least {MIN_READERS} readers who answered every case under all three "
            f"conditions; study {study.name} has {len(complete)}"
        )
    kinds = [(r.group, r.training) for r in complete]
    if len(set(kinds)) == len(kinds):
        raise services.StudyError(
            "no two readers who answered everything share a group and a training, so there is no noninferiority "
            "margin to plan for"
        )
    files = services.study_export(study=study, complete_only=True)
    if "model_predictions.csv" not in files:
        raise services.StudyError(f"study {study.name} has no model predictions")
    if queue:
        require_broker()
    plan = secrets.token_hex(6)
    folder = plans_root(study) / plan
    (folder / "inputs").mkdir(parents=True)
    for name in INPUT_FILES:
        write_atomic(folder / "inputs" / name, files[name])
    _write_status(
        folder,
        {
            "id": plan,
            "study": study.pk,
            "status": "queued",
            "progress": 0.0,
            "settings": {
                "cases": sorted(set(cases)),
                "readers_per_training": sorted(set(readers_per_training)),
                "simulations": simulations,
                "iterations": iterations,
                "seed": seed,
                "margin": None,
            },
            "error": "",
            "created_at": timezone.now().isoformat(),
            "finished_at": None,
            "created_by": user.get_username() if user is not None else None,
        },
    )
    if queue:
        from readerstudy.tasks import build_power_plan  # deferred: the tasks module imports this one

        enqueue(build_power_plan, undo=lambda: shutil.rmtree(folder, ignore_errors=True), study_id=study.pk, plan=plan)
    return plan


def plan_build(*, study_id: int, plan: str, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Run the plan: the pilot's targets from the inputs, the simulations (``status.json``'s
    progress moves as they go; ``progress(share)`` is told too), then the files. Idempotent: a
    done plan is returned as it is; any other starts again. Returns the final status."""
    study = ReaderStudy.objects.get(pk=study_id)
    folder = plan_folder(study, plan)
    if folder is None:
        raise services.StudyError(f"study {study.name} has no plan {plan!r}")
    status = plan_status(study, plan) or {}
    if status.get("status") == "done":
        return status
    status.update(status="running", progress=0.0, error="", finished_at=None)
    _write_status(folder, status)
    shutil.rmtree(folder / "plan", ignore_errors=True)
    chosen = status["settings"]
    total = len(chosen["cases"]) * len(chosen["readers_per_training"]) * chosen["simulations"]
    done = 0
    last = time.monotonic()

    def step(k: int) -> None:
        nonlocal done, last
        done += k
        share = done / total
        if progress is not None:
            progress(share)
        if time.monotonic() - last >= _WRITE_EVERY_S or done == total:
            last = time.monotonic()
            _write_status(folder, {**status, "progress": round(0.95 * share, 4)})

    try:
        pilot = power.load_pilot(
            folder / "inputs" / "responses.csv",
            folder / "inputs" / "model_predictions.csv",
            iterations=chosen["iterations"],
            seed=chosen["seed"],
            margin=chosen["margin"],
        )
        rows = power.plan(pilot, **chosen, progress=step)
        write_plan(power.plan_result(pilot, rows, **chosen), folder / "plan")
    except Exception as exc:
        logger.exception("power plan %s of study %s failed", plan, study.pk)
        status.update(
            status="failed", error=str(exc)[:2000] or type(exc).__name__, finished_at=timezone.now().isoformat()
        )
        _write_status(folder, status)
        return status
    status.update(status="done", progress=1.0, finished_at=timezone.now().isoformat())
    _write_status(folder, status)
    if progress is not None:
        progress(1.0)
    return status
