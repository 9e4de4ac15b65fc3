"""A training run's state: its heartbeat, its checkpoints and best weights under
``DATA_DIR/training/<run>/``, and the updates and log lines written into its row (only ever by
``QuerySet.update`` of the fields training owns). Used by ``ml.training`` and ``ml.callbacks``.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from ml.models import TrainingRun

logger = logging.getLogger("ml.training")  # the name training runs have always logged under

Progress = Callable[[str, dict[str, Any]], None]


# --------------------------------------------------------------------------- heartbeat


def heartbeat_seconds() -> float:
    return float(settings.TRAINING_HEARTBEAT_SECONDS)


def beat(run_id: int, holder: str) -> None:
    TrainingRun.objects.filter(pk=run_id).update(holder=holder, heartbeat_at=timezone.now())


def other_holder(run: TrainingRun, holder: str) -> str | None:
    """Another trainer holding ``run`` with a fresh heartbeat, if any."""
    if not run.holder or run.holder == holder or run.heartbeat_at is None:
        return None
    silent = (timezone.now() - run.heartbeat_at).total_seconds()
    return run.holder if silent < 3 * heartbeat_seconds() else None


# --------------------------------------------------------------------------- checkpoints


@dataclass
class Checkpoint:
    epoch: int  # epochs completed
    path: Path
    state: dict[str, Any]


def run_dir(run_id: int) -> Path:
    return Path(settings.DATA_DIR) / "training" / str(run_id)


def latest_checkpoint(run_id: int) -> Checkpoint | None:
    folder = run_dir(run_id)
    if not folder.is_dir():
        return None
    done = sorted(p for p in folder.glob("epoch-[0-9][0-9][0-9][0-9]") if (p / "state.json").is_file())
    if not done:
        return None
    path = done[-1]
    state = json.loads((path / "state.json").read_text())
    return Checkpoint(epoch=int(state["epoch"]), path=path, state=state)


def _fsync_tree(folder: Path) -> None:
    for path in [*folder.iterdir(), folder]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(
    run_id: int, model: Any, state: dict[str, Any], save_model: Callable[[Any, Path], None] | None = None
) -> Path:
    """Write the epoch's checkpoint; ``save_model(model, folder)`` writes the model into the
    folder (default: ``model.save(folder / "model.keras")``, weights and optimizer state)."""
    folder = run_dir(run_id)
    final = folder / f"epoch-{state['epoch']:04d}"
    temp = folder / f".epoch-{state['epoch']:04d}.tmp"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    if save_model is None:
        model.save(temp / "model.keras")
    else:
        save_model(model, temp)
    (temp / "state.json").write_text(json.dumps(state, indent=1))
    _fsync_tree(temp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temp, final)
    for old in folder.glob("epoch-[0-9][0-9][0-9][0-9]"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def save_best(run_id: int, model: Any, epoch: int) -> str:
    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"best-{epoch:04d}.weights.h5"
    temp = folder / f".{name}.tmp.weights.h5"
    model.save_weights(temp)
    os.replace(temp, folder / name)
    return name


def prune_best(run_id: int, keep: str) -> None:
    for old in run_dir(run_id).glob("best-*.weights.h5"):
        if old.name != keep:
            old.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the run row


def update_run(run_id: int, **fields: Any) -> None:
    TrainingRun.objects.filter(pk=run_id).update(**fields)


def append_log(run_id: int, line: str) -> None:
    from django.db.models import Value
    from django.db.models.functions import Concat

    logger.info("training run %s: %s", run_id, line)
    TrainingRun.objects.filter(pk=run_id).update(log=Concat("log", Value(line + "\n")))
