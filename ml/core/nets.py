"""The hip classifier network (Krogue et al. 2020, "Model"), in Keras 3.

DenseNet backbone -> squeeze-and-excitation -> global average pooling -> softmax, with stable layer
names for class activation maps; only ``keras.layers``/``keras.ops``, so any backend builds it.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from .configs import NetConfig  # noqa: E402

FEATURES_LAYER = "final_features"
POOL_LAYER = "avg_pool"
DENSE_LAYER = "predictions"
SE_LAYERS = ("se_squeeze", "se_reduce", "se_expand", FEATURES_LAYER)
_BN_EPS = 1.001e-5  # as keras.applications.densenet

# A Keras symbolic or eager tensor. Keras ships no type information, so to mypy it is Any.
Tensor = Any


# --------------------------------------------------------------------------- backbone


def _conv_block(x: Tensor, growth_rate: int, name: str) -> Tensor:
    """One DenseNet layer (BN-ReLU-Conv1x1-BN-ReLU-Conv3x3, concatenated), as keras.applications.densenet."""
    x1 = layers.BatchNormalization(axis=-1, epsilon=_BN_EPS, name=name + "_0_bn")(x)
    x1 = layers.Activation("relu", name=name + "_0_relu")(x1)
    x1 = layers.Conv2D(4 * growth_rate, 1, use_bias=False, name=name + "_1_conv")(x1)
    x1 = layers.BatchNormalization(axis=-1, epsilon=_BN_EPS, name=name + "_1_bn")(x1)
    x1 = layers.Activation("relu", name=name + "_1_relu")(x1)
    x1 = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=name + "_2_conv")(x1)
    return layers.Concatenate(axis=-1, name=name + "_concat")([x, x1])


def _dense_block(x: Tensor, blocks: int, growth_rate: int, name: str) -> Tensor:
    for i in range(blocks):
        x = _conv_block(x, growth_rate, name=f"{name}_block{i + 1}")
    return x


def _transition_block(x: Tensor, reduction: float, name: str) -> Tensor:
    x = layers.BatchNormalization(axis=-1, epsilon=_BN_EPS, name=name + "_bn")(x)
    x = layers.Activation("relu", name=name + "_relu")(x)
    x = layers.Conv2D(int(x.shape[-1] * reduction), 1, use_bias=False, name=name + "_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=name + "_pool")(x)


def densenet_backbone(inputs: Tensor, blocks: Sequence[int], growth_rate: int = 32) -> Tensor:
    """DenseNet feature extractor with any block counts (``include_top=False``, no pooling).

    Same layers, names and hyper-parameters as ``keras.applications.densenet.DenseNet``
    (only private, ``keras.src.applications.densenet.DenseNet``, in Keras 3), which the
    public API exposes only for (6, 12, 24, 16), (6, 12, 32, 32) and (6, 12, 48, 32).
    Returns the final (N, h, w, C) feature tensor (after the last BN + ReLU).
    """
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)))(inputs)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = layers.BatchNormalization(axis=-1, epsilon=_BN_EPS, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)))(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for i, n in enumerate(blocks):
        x = _dense_block(x, n, growth_rate, name=f"conv{i + 2}")
        if i < len(blocks) - 1:
            x = _transition_block(x, 0.5, name=f"pool{i + 2}")
    x = layers.BatchNormalization(axis=-1, epsilon=_BN_EPS, name="bn")(x)
    return layers.Activation("relu", name="relu")(x)


def _check_weights_path(path: str | None) -> str | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"weights file not found: {str(p)!r} (weights are never downloaded; "
            "give a local file, e.g. densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5, or None)"
        )
    return str(p)


# --------------------------------------------------------------------------- head


def squeeze_excitation(x: Tensor, ratio: int = 16) -> Tensor:
    """SE block (Hu et al. 2018): GAP -> Dense(C // r, relu) -> Dense(C, sigmoid) -> x * s."""
    channels = int(x.shape[-1])
    s = layers.GlobalAveragePooling2D(keepdims=True, name="se_squeeze")(x)
    s = layers.Dense(max(1, channels // ratio), activation="relu", name="se_reduce")(s)
    s = layers.Dense(channels, activation="sigmoid", name="se_expand")(s)
    return layers.Multiply(name=FEATURES_LAYER)([x, s])


def build_model(config: NetConfig) -> keras.Model:
    """The classifier for ``config``: (N, S, S, 3) -> (N, num_classes) softmax probabilities."""
    if keras.config.image_data_format() != "channels_last":
        raise ValueError("build_model expects keras image_data_format 'channels_last'")
    weights_path = _check_weights_path(config.weights_path)
    inputs = keras.Input(shape=config.input_shape, name="image")
    if config.backbone == "densenet169":
        backbone = keras.applications.DenseNet169(
            include_top=False, weights=weights_path, input_tensor=inputs, pooling=None
        )
        features = backbone.output
    else:
        features = densenet_backbone(inputs, config.blocks, config.growth_rate)
        if weights_path is not None:
            keras.Model(inputs, features).load_weights(weights_path)
    x = squeeze_excitation(features, config.se_ratio)
    x = layers.GlobalAveragePooling2D(name=POOL_LAYER)(x)
    outputs = layers.Dense(config.num_classes, activation="softmax", name=DENSE_LAYER)(x)
    return keras.Model(inputs, outputs, name=f"hipnet_{config.name.replace('-', '_')}")


# --------------------------------------------------------------------------- training


@keras.saving.register_keras_serializable(package="hipnet")
class WeightedSparseCategoricalCrossentropy(keras.losses.Loss):  # type: ignore[misc]  # Keras is untyped
    """Cross-entropy on integer labels, each sample's loss multiplied by ``class_weights[label]``."""

    def __init__(
        self, class_weights: Sequence[float], name: str = "weighted_sparse_categorical_crossentropy", **kw: Any
    ) -> None:
        super().__init__(name=name, **kw)
        self.class_weights = [float(w) for w in class_weights]

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        ops = keras.ops
        y_true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        ce = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        w = ops.take(ops.convert_to_tensor(self.class_weights, dtype=ce.dtype), y_true)
        return ce * w

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "class_weights": self.class_weights}


def balanced_class_weights(labels: Sequence[int] | np.ndarray, num_classes: int, *, power: float = 1.0) -> list[float]:
    """(n_samples / (num_classes * count)) ** power per class; absent classes get 1.

    power 1 is sklearn's "balanced": every class weighs as much as any other in the loss.
    power 0.5 ("sqrt") halves the imbalance correction on a log scale."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=num_classes)[:num_classes]
    total = counts.sum()
    return [float((total / (num_classes * c)) ** power) if c else 1.0 for c in counts]


def class_weights_for(config: NetConfig, labels: Sequence[int] | np.ndarray) -> list[float]:
    """The weighted cross-entropy's class weights from the training labels, by ``config.class_weighting``."""
    power = {"balanced": 1.0, "sqrt": 0.5}[config.class_weighting]
    return balanced_class_weights(labels, config.num_classes, power=power)


def learning_rate_schedule(
    config: NetConfig, steps_per_epoch: int | None
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """Adam's learning rate by ``config.lr_schedule``, two readings of the paper's "learning rate
    decay of 0.9" (``lr_decay`` = 0.9):

    - ``per_epoch``: ``lr * lr_decay ** epoch`` (staircase, stepped every ``steps_per_epoch``
      optimizer steps); with ``steps_per_epoch=None`` (or ``lr_decay == 1``) the rate is constant.
    - ``keras2_inverse_time``: what Keras 2.2's ``Adam(lr, decay=lr_decay)`` computed,
      ``lr / (1 + lr_decay * iterations)`` at optimizer step ``iterations`` (0 for the first update),
      whatever the epoch length.
    """
    if config.lr_schedule == "keras2_inverse_time":
        return keras.optimizers.schedules.InverseTimeDecay(
            config.learning_rate, decay_steps=1, decay_rate=config.lr_decay, staircase=False
        )
    if steps_per_epoch is None or config.lr_decay == 1.0:
        return config.learning_rate
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    return keras.optimizers.schedules.ExponentialDecay(
        config.learning_rate, decay_steps=int(steps_per_epoch), decay_rate=config.lr_decay, staircase=True
    )


def compile_model(
    model: keras.Model,
    config: NetConfig,
    class_weights: Sequence[float] | None = None,
    *,
    steps_per_epoch: int | None = None,
    jit_compile: bool | str = "auto",
    run_eagerly: bool = False,
) -> keras.Model:
    """Adam (+ the decay of ``learning_rate_schedule``) and (weighted) sparse cross-entropy; metric "accuracy".

    Labels are integer class indices. See the module docstring for class weights.
    ``run_eagerly=True`` skips graph tracing: on CPU the first traced DenseNet-169 training
    step takes ~90 s to trace, an eager step ~9 s (useful for smoke tests only).
    """
    if class_weights is not None:
        if len(class_weights) != config.num_classes:
            raise ValueError(f"need {config.num_classes} class weights, got {len(class_weights)}")
        loss = WeightedSparseCategoricalCrossentropy(class_weights)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate_schedule(config, steps_per_epoch))
    model.compile(
        optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=jit_compile, run_eagerly=run_eagerly
    )
    return model


def evaluate_protocol(model: keras.Model, datasets: Sequence[Any], labels: Sequence[int]) -> dict[str, float]:
    """Validation figures under a test-time protocol: ``datasets`` are unshuffled datasets of the
    same records in the same order, one per zoom of the protocol (``pipeline.eval_zoom_datasets``),
    ``labels`` the records' class indices. The probabilities are the mean of the model's softmax
    over the datasets (one dataset: that crop alone). Returns ``val_accuracy`` (argmax against
    ``labels``) and ``val_loss`` (the compiled loss, e.g. the weighted cross-entropy, of the mean
    probabilities; with one dataset what ``model.evaluate`` reports)."""
    if not datasets:
        raise ValueError("no dataset to validate on")
    y = np.asarray(labels, dtype=np.int32)
    probs = np.mean([np.asarray(model.predict(ds, verbose=0), dtype=np.float64) for ds in datasets], axis=0)
    if probs.shape[0] != len(y):
        raise ValueError(f"{probs.shape[0]} predictions for {len(y)} labels")
    loss_fn = model.loss if callable(model.loss) else keras.losses.SparseCategoricalCrossentropy()
    loss = float(keras.ops.convert_to_numpy(loss_fn(y, probs.astype(np.float32))))
    return {"val_loss": loss, "val_accuracy": float(np.mean(np.argmax(probs, axis=1) == y))}


def training_callbacks(config: NetConfig) -> list[keras.callbacks.Callback]:
    """Early stopping on validation accuracy (patience ``config.patience``), keeping the best weights."""
    return [
        keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=config.patience, restore_best_weights=True
        )
    ]


def recalibrate_batch_norm(model: keras.Model, batches: Iterable[Any]) -> int:
    """Precise BatchNorm (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm"): set every
    BatchNormalization layer's moving mean and variance to the average of the batch statistics
    over ``batches`` (an iterable of input arrays, or of (inputs, labels) pairs), computed with
    the current weights. Returns the number of batches used (0 leaves the model unchanged).

    Why: the moving averages that training keeps mix statistics of weights from many steps
    ago and of augmented inputs. With few steps per epoch (a small data set) they stay far
    from what the network computes on clean inputs, and the model's inference-mode output
    collapses to one class although its training-mode output is right; validating (and
    early stopping) on such a model measures noise. Only the moving statistics change."""
    norms = [layer for layer in model._flatten_layers() if isinstance(layer, layers.BatchNormalization)]
    if not norms:
        return 0
    momenta = [layer.momentum for layer in norms]
    sums = [(np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)) for layer in norms]
    count = 0
    try:
        for layer in norms:
            layer.momentum = 0.0  # a training-mode call then stores exactly this batch's statistics
        for batch in batches:
            x = batch[0] if isinstance(batch, tuple | list) else batch
            model(x, training=True)
            for (mean, var), layer in zip(sums, norms, strict=True):
                mean += keras.ops.convert_to_numpy(layer.moving_mean)
                var += keras.ops.convert_to_numpy(layer.moving_variance)
            count += 1
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum
    if count:
        for (mean, var), layer in zip(sums, norms, strict=True):
            layer.moving_mean.assign(mean / count)
            layer.moving_variance.assign(var / count)
    return count


# --------------------------------------------------------------------------- saving


def config_path_for(model_path: str | os.PathLike[str]) -> Path:
    """Where ``save_model`` puts the config next to ``model.keras``: ``model.keras.config.json``."""
    p = Path(model_path)
    return p.with_name(p.name + ".config.json")


def save_model(model: keras.Model, config: NetConfig, path: str | os.PathLike[str]) -> Path:
    """Save ``model`` to ``path`` (must end in .keras) and its config as JSON beside it."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"model path must end in .keras, got {str(path)!r}")
    model.save(path)
    config_path_for(path).write_text(json.dumps(config.as_dict(), indent=2, sort_keys=True))
    return path


def load_model(path: str | os.PathLike[str], *, compile: bool = True) -> tuple[keras.Model, NetConfig]:
    """Load a model saved by ``save_model`` and its config."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {str(path)!r}")
    config = NetConfig.from_dict(json.loads(config_path_for(path).read_text()))
    return keras.saving.load_model(path, compile=compile), config


# --------------------------------------------------------------------------- class activation maps


def cam_model(model: keras.Model) -> keras.Model:
    """A model giving (final feature maps (N, h, w, C), probabilities (N, K)) for the same inputs."""
    return keras.Model(model.inputs, [model.get_layer(FEATURES_LAYER).output, model.output])


def dense_kernel(model: keras.Model) -> tuple[np.ndarray, np.ndarray]:
    """The softmax layer's kernel (C, K) and bias (K,) as numpy arrays."""
    kernel, bias = model.get_layer(DENSE_LAYER).get_weights()
    return np.asarray(kernel), np.asarray(bias)


def class_activation_maps(features: np.ndarray, dense_kernel: np.ndarray, class_index: int) -> np.ndarray:
    """CAM of ``class_index``: ``sum_c features[..., c] * dense_kernel[c, class_index]``.

    ``features`` is (h, w, C) or (N, h, w, C); returns (h, w) or (N, h, w), float32, at
    feature-map resolution (upsample to the crop size for display). Its spatial mean plus
    the Dense bias is the pre-softmax logit of the class.
    """
    features = np.asarray(features, dtype=np.float32)
    kernel = np.asarray(dense_kernel, dtype=np.float32)
    if features.ndim not in (3, 4) or kernel.ndim != 2 or features.shape[-1] != kernel.shape[0]:
        raise ValueError(f"features (..., C) and kernel (C, K) do not match: {features.shape}, {kernel.shape}")
    if not 0 <= class_index < kernel.shape[1]:
        raise IndexError(f"class_index {class_index} out of range for {kernel.shape[1]} classes")
    return features @ kernel[:, class_index]
