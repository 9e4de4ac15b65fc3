"""The detector network: keras-hub's RetinaNet on a ResNet with a feature pyramid, built, compiled,
saved and loaded (whole models and training checkpoints). No hand-written anchors or losses.
No Django import. Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ..vocab import SIDES
from .boxes import BOX_FORMAT
from .config import DetectorConfig

PRIOR_PROBABILITY = 0.01  # RetinaNet's initial foreground probability


# --------------------------------------------------------------------------- the network


def _check_weights_path(path: str | None) -> str | None:
    if path is None:
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path!r} (weights are never downloaded; give a local file)")
    return path


def build_detector(config: DetectorConfig, *, steps_per_epoch: int | None = None, run_eagerly: bool = False) -> Any:
    """The RetinaNet of ``config``, compiled (Adam, lr decayed by ``lr_decay`` every
    ``steps_per_epoch`` steps when given; keras-hub's focal + Huber losses).

    Initialisation as RetinaNet's paper (Lin et al. 2017, section 4.1): the classification
    output's bias is -log((1 - pi) / pi), pi = 0.01, the box output's 0. keras-hub 0.32 puts
    that prior on the box head instead (every initial box then shifted and shrunk by e^-4.6,
    and a focal loss in the tens of thousands on the first steps), so both are set here after
    building. ``run_eagerly`` skips graph tracing (a smoke test's single step).
    """
    import keras_hub

    weights = _check_weights_path(config.weights_path)
    shape = config.input_shape
    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=list(config.filters),
        stackwise_num_blocks=list(config.blocks),
        stackwise_num_strides=[1, 2, 2, 2],
        block_type=config.block_type,
        image_shape=shape,
    )
    if weights is not None:
        encoder.load_weights(weights)
    backbone = keras_hub.models.RetinaNetBackbone(
        image_encoder=encoder,
        min_level=config.min_level,
        max_level=config.max_level,
        use_p5=False,
        image_shape=shape,
    )
    decoder = keras_hub.layers.NonMaxSuppression(
        bounding_box_format=BOX_FORMAT,
        from_logits=True,
        iou_threshold=config.nms_iou,
        confidence_threshold=config.min_score,
        max_detections=config.max_detections,
    )
    model = keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone,
        num_classes=len(SIDES),
        bounding_box_format=BOX_FORMAT,
        pre_logits_num_conv_layers=config.head_layers,
        prediction_decoder=decoder,
    )
    prior = PRIOR_PROBABILITY
    cls_bias = model.classification_head.prediction_layer.bias
    cls_bias.assign(np.full(cls_bias.shape, -math.log((1 - prior) / prior), dtype="float32"))
    box_bias = model.box_head.prediction_layer.bias
    box_bias.assign(np.zeros(box_bias.shape, dtype="float32"))
    return compile_detector(model, config, steps_per_epoch=steps_per_epoch, run_eagerly=run_eagerly)


def compile_detector(
    model: Any, config: DetectorConfig, *, steps_per_epoch: int | None = None, run_eagerly: bool = False
) -> Any:
    """Adam (global gradient-norm clip 10) at ``config.learning_rate``, times ``lr_decay``
    every ``steps_per_epoch`` steps; the losses are keras-hub's RetinaNet defaults."""
    import keras

    if steps_per_epoch is None or config.lr_decay == 1.0:
        lr: Any = config.learning_rate
    else:
        lr = keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, decay_steps=int(steps_per_epoch), decay_rate=config.lr_decay, staircase=True
        )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr, global_clipnorm=10.0),
        box_loss=keras.losses.Huber(delta=config.box_delta, reduction="sum"),
        loss_weights={"bbox_regression": config.box_weight, "cls_logits": 1.0},
        run_eagerly=run_eagerly,
    )
    return model


def load_detector_model(path: str | os.PathLike[str], *, compile: bool = True) -> Any:
    """A saved detector (``model.save``) loaded back; keras-hub registers its classes on import."""
    import warnings

    import keras
    import keras_hub  # noqa: F401

    with warnings.catch_warnings():  # the saved optimizer's variables are restored by load_checkpoint
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        return keras.saving.load_model(path, compile=compile)


def save_checkpoint(model: Any, folder: str | os.PathLike[str]) -> None:
    """Write a training checkpoint into ``folder``: ``model.keras`` (the network) and
    ``optimizer.npz`` (every optimizer variable, in order). keras-hub's RetinaNet overrides
    ``compile``, so ``load_model(compile=True)`` cannot restore its optimizer; this can."""
    model.save(os.path.join(folder, "model.keras"))
    values = {f"v{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(model.optimizer.variables)}
    with open(os.path.join(folder, "optimizer.npz"), "wb") as handle:
        # numpy's stub lets a ** mapping reach allow_pickle: bool; these keys are v00000, v00001, ...
        np.savez(handle, **values)  # type: ignore[arg-type]


def load_checkpoint(
    folder: str | os.PathLike[str], config: DetectorConfig, *, steps_per_epoch: int | None = None
) -> Any:
    """The model of ``save_checkpoint``, compiled as ``build_detector`` does, optimizer state restored."""
    model = load_detector_model(os.path.join(folder, "model.keras"), compile=False)
    compile_detector(model, config, steps_per_epoch=steps_per_epoch)
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    with np.load(os.path.join(folder, "optimizer.npz")) as data:
        values = [data[key] for key in sorted(data.files)]
    if len(values) != len(optimizer.variables):
        raise ValueError(
            f"checkpoint has {len(values)} optimizer variables, the compiled model {len(optimizer.variables)}"
        )
    for variable, value in zip(optimizer.variables, values, strict=True):
        variable.assign(value)
    return model
