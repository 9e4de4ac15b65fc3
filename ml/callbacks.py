"""The Keras callback of a training run (see ``ml.training``): progress, heartbeat,
cancel checks, validation after precise BatchNorm, the per-epoch checkpoint and the
paper's early stopping.

Imported only where Keras is loaded (the trainer), never by the web process."""

from __future__ import annotations

import time
from typing import Any

import keras
from django.utils import timezone

from ml.core.configs import NetConfig
from ml.core.nets import recalibrate_batch_norm
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
        config: NetConfig,
        progress: Progress,
        validation: Any,
        calibration: Any = None,
    ):
        super().__init__()
        self.validation = validation
        self.calibration = calibration
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
        # Validation happens here, not in fit(): first the BatchNorm statistics are
        # re-estimated on clean training crops (see nets.recalibrate_batch_norm).
        if self.calibration is not None:
            recalibrate_batch_norm(self.model, self.calibration)
        results = self.model.evaluate(self.validation, verbose=0, return_dict=True)
        logs.update(val_loss=results["loss"], val_accuracy=results["accuracy"])
        lr = self.model.optimizer.learning_rate
        row = {
            "epoch": epoch + 1,
            "loss": float(logs.get("loss", float("nan"))),
            "accuracy": float(logs.get("accuracy", float("nan"))),
            "val_loss": float(logs.get("val_loss", float("nan"))),
            "val_accuracy": float(logs.get("val_accuracy", float("nan"))),
            "learning_rate": float(keras.ops.convert_to_numpy(lr)),
            "seconds": round(time.monotonic() - self._epoch_started, 2),
        }
        state = self.state
        state["epoch"] = epoch + 1
        state["history"] = [*state["history"], row]
        best = state["best_val_accuracy"]
        if best is None or row["val_accuracy"] > best:
            state.update(
                best_val_accuracy=row["val_accuracy"],
                best_epoch=epoch + 1,
                best_weights=save_best(self.run_id, self.model, epoch + 1),
                wait=0,
            )
        else:
            state["wait"] += 1
        if state["wait"] >= self.config.patience:
            self.model.stop_training = True
        save_checkpoint(self.run_id, self.model, state)
        prune_best(self.run_id, state["best_weights"])
        update_run(self.run_id, epoch=state["epoch"], history=state["history"], steps=0)
        append_log(
            self.run_id,
            f"epoch {epoch + 1}/{self.config.epochs}: loss {row['loss']:.4f} accuracy {row['accuracy']:.4f} "
            f"val_loss {row['val_loss']:.4f} val_accuracy {row['val_accuracy']:.4f} ({row['seconds']:.0f} s)",
        )
        self.progress("epoch", row)
        self._look(None)
