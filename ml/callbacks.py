"""The Keras callback of a training run (see ``ml.training``): progress, heartbeat,
cancel checks, validation (the kind's recipe's ``validate``: for a classifier after precise
BatchNorm), the per-epoch checkpoint and the paper's early stopping on the recipe's
``monitor`` (``val_accuracy`` / ``val_mean_iou``).

Imported only where Keras is loaded (the trainer), never by the web process."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
from django.utils import timezone

from ml.models import TrainingRun
from ml.training import (
    Progress,
    append_log,
    beat,
    heartbeat_seconds,
    prune_best,
    save_best,
    save_checkpoint,
    update_run,
)


class RunCallback(keras.callbacks.Callback):
    """Keeps the run's row and checkpoint up to date as Keras trains."""

    def __init__(
        self,
        run_id: int,
        *,
        holder: str,
        state: dict[str, Any],
        config: Any,
        progress: Progress,
        validate: Callable[[Any], dict[str, float]],
        monitor: str = "val_accuracy",
        train_keys: tuple[str, ...] = ("loss", "accuracy"),
        save_model: Callable[[Any, Path], None] | None = None,
    ):
        super().__init__()
        self.validate = validate
        self.monitor = monitor
        self.train_keys = train_keys
        self.save_model = save_model
        self.run_id = run_id
        self.holder = holder
        self.state = state
        self.config = config
        self.progress = progress
        self.cancelled = False
        self._last_look = 0.0
        self._epoch_started = time.monotonic()

    def _look(self, step: int | None) -> None:
        now = time.monotonic()
        if now - self._last_look < heartbeat_seconds():
            return
        self._last_look = now
        beat(self.run_id, self.holder)
        fields = {} if step is None else {"steps": step}
        if fields:
            update_run(self.run_id, **fields)
        if TrainingRun.objects.filter(pk=self.run_id, cancel_requested=True).exists():
            self.cancelled = True
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.monotonic()
        update_run(self.run_id, steps=0, epoch_started_at=timezone.now())

    def on_train_batch_end(self, batch, logs=None):
        self.progress("batch", {"step": batch + 1})
        self._look(batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        if self.cancelled:
            return
        logs = dict(logs or {})
        # Validation happens here, not in fit(): the recipe's validate (for a classifier,
        # first re-estimating the BatchNorm statistics on clean training crops).
        results = self.validate(self.model)
        lr = self.model.optimizer.learning_rate
        row: dict[str, Any] = {"epoch": epoch + 1}
        for key in self.train_keys:
            row[key] = float(logs.get(key, float("nan")))
        for key, value in results.items():
            row[key] = float(value)
        row["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
        row["seconds"] = round(time.monotonic() - self._epoch_started, 2)
        state = self.state
        state["epoch"] = epoch + 1
        state["history"] = [*state["history"], row]
        best_key = f"best_{self.monitor}"
        best = state.get(best_key)
        value = row[self.monitor]
        if best is None or (math.isfinite(value) and value > best):
            state.update(
                {best_key: value},
                best_epoch=epoch + 1,
                best_weights=save_best(self.run_id, self.model, epoch + 1),
                wait=0,
            )
        else:
            state["wait"] += 1
        if state["wait"] >= self.config.patience:
            self.model.stop_training = True
        save_checkpoint(self.run_id, self.model, state, self.save_model)
        prune_best(self.run_id, state["best_weights"])
        update_run(self.run_id, epoch=state["epoch"], history=state["history"], steps=0)
        figures = " ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "learning_rate", "seconds"))
        append_log(self.run_id, f"epoch {epoch + 1}/{self.config.epochs}: {figures} ({row['seconds']:.0f} s)")
        self.progress("epoch", row)
        self._look(None)
