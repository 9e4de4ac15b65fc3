"""Network and training configurations for the hip classifier (Krogue et al. 2020).

The paper (Materials and Methods, "Model"): a DenseNet-169 initialised with
ImageNet weights, a squeeze-and-excitation block at the end, a six-way softmax;
224 x 224 x 3 input; Adam, learning rate 0.00001, batch size 25, "learning rate
decay of 0.9", weighted cross-entropy; training stopped after 10 epochs without
improvement in validation accuracy. Each training hip appears at two zooms.

Named choices (each a field; ``ml.core.deviations`` lists those that depart from the paper):

- ``test_time``: ``single`` (default, the paper's: the zoom-1.0 crop alone) or ``zoom-average``
  (softmax averaged over ``zooms``). Validation during training, evaluation and serving all
  read a hip by it.
- ``regime``: ``paper-fixed`` (the paper's fixed expansion: per hip and epoch, each zoom's
  plain crop and one crop per augmentation kind alone, 8 images with two zooms) or
  ``online-random`` (one crop per hip and epoch at a random zoom, each augmentation with
  p = 0.5, so they can stack: an epoch is 1/8 of the paper's). ``with_regime`` changes it
  keeping the number of images seen (epochs and patience scaled).
- ``lr_schedule``: two readings of "decay of 0.9": ``per_epoch`` (default, x 0.9 once per
  epoch) or ``keras2_inverse_time`` (Keras 2.2's ``Adam(decay=0.9)``: lr / (1 + 0.9 x
  iterations)); see ``nets.learning_rate_schedule``.
- ``recalibrate_bn``: re-estimate the BatchNorm statistics on clean training crops before
  each validation (default True, not in the paper).
- ``weights_path``: the backbone's starting weights (``pretrained``). Training ``paper``
  refuses to start without ImageNet weights (``DENSENET169_WEIGHTS``) unless random weights
  are asked for explicitly (``ml.training.training_start(random_init=True)``).

Configurations:

- ``paper``: exactly that, with ``regime`` ``paper-fixed`` and ``test_time`` ``single``. The
  paper gives no maximum epoch count (early stopping ends training); ``epochs`` = 100 is our
  cap. "Decay of 0.9" is read as multiplying the learning rate by 0.9 once per epoch
  (``lr_schedule`` ``per_epoch``).
- ``cpu-small``: a DenseNet with blocks (2, 2, 2, 2) at 128 x 128, trained from
  scratch (no ImageNet weights exist for it), hence Adam 1e-3; ``online-random``, at most 40
  epochs, patience 10 as the paper. Trains on 2 CPU cores in minutes. Same SE block and head.
  ``online-random`` because it trained better on the phantoms (400 studies, seed 7, one run
  each, ``scripts/phantom_accuracy.py --regime``): test accuracy 0.938 (binary and six-class)
  in 853 s, against 0.916 in 1326 s for ``paper-fixed`` with as many images seen (5 epochs,
  patience 2; stopped after 4). The 95% CIs overlap.
- ``tiny``: blocks (1, 1, 1, 1) at 64 x 64, ``online-random``, 2 epochs, for tests.

Class weights (``class_weighting``). The paper says "weighted cross-entropy" and no
more. ``"balanced"`` weighs class c by n / (6 n_c) (every class counts as much as any
other); ``"sqrt"`` (default) by its square root. On the phantoms (400 studies, seed 7,
``cpu-small``) "balanced" made the model indifferent between a normal hip and a
nondisplaced femoral-neck fracture whose line it cannot resolve (a third of the normal
test hips were called fractures) and validation accuracy swung between 0.64 and 0.90 from
epoch to epoch; "sqrt" gave a steady 0.93-0.94.

A config is a frozen dataclass; ``as_dict`` / ``from_dict`` give a JSON-safe
round trip so a saved model can carry its config. No Django imports here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

NUM_CLASSES = 6
DENSENET169_BLOCKS = (6, 12, 32, 32)
BACKBONES = ("densenet169", "densenet")
CLASS_WEIGHTINGS = ("sqrt", "balanced")
#: Test-time protocols: ``single`` = the zoom-1.0 crop alone (the paper's); ``zoom-average`` = the
#: softmax averaged over the crops at every zoom of ``zooms`` (our opt-in choice, not in the paper).
TEST_TIME_PROTOCOLS = ("single", "zoom-average")
#: Training regimes: ``paper-fixed`` = per hip and epoch, each zoom's plain crop plus one crop per
#: augmentation kind (2 zooms x (1 + 3) = 8 images, the paper's fixed expansion); ``online-random``
#: = one crop per hip and epoch at a random zoom, each augmentation applied with p = 0.5.
TRAINING_REGIMES = ("paper-fixed", "online-random")
#: Readings of the paper's "learning rate decay of 0.9": ``per_epoch`` = lr x 0.9 ** epoch;
#: ``keras2_inverse_time`` = Keras 2.2's ``Adam(decay=0.9)``, lr / (1 + 0.9 x iterations).
LR_SCHEDULES = ("per_epoch", "keras2_inverse_time")
#: Values a config stored before a field existed was trained and evaluated with (``from_dict``).
LEGACY_DEFAULTS: dict[str, Any] = {"test_time": "zoom-average", "regime": "online-random", "lr_schedule": "per_epoch"}


class JsonConfig:
    """``as_dict`` / ``from_dict`` / ``replace`` of a frozen configuration dataclass: the JSON
    kept on training runs, model versions and bundles (tuples become lists and back). A stored
    ``kind`` key is ignored: the class says what it configures."""

    label = "config"  # names the configuration in error messages

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists)."""
        data = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        data = {key: value for key, value in data.items() if key != "kind"}
        data = {**cls.legacy_defaults(), **data}
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown {cls.label} keys: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def legacy_defaults(cls) -> dict[str, Any]:
        """Values for fields missing from a stored config (what it was made with before they existed)."""
        return {}

    def replace(self, **changes: Any) -> Any:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class NetConfig(JsonConfig):
    """One network + training configuration.

    backbone: ``"densenet169"`` (``keras.applications.DenseNet169``; blocks must be
    (6, 12, 32, 32)) or ``"densenet"`` (the same DenseNet design with any block counts,
    built by ``nets.densenet_backbone``). ``weights_path``: a local weights file for
    the backbone (for DenseNet-169 the Keras ImageNet "notop" .h5); None = random init.
    Nothing is ever downloaded.
    """

    name: str
    backbone: str = "densenet169"
    blocks: tuple[int, ...] = DENSENET169_BLOCKS
    input_size: int = 224
    growth_rate: int = 32
    se_ratio: int = 16
    num_classes: int = NUM_CLASSES
    learning_rate: float = 1e-5
    batch_size: int = 25
    lr_decay: float = 0.9
    patience: int = 10
    epochs: int = 100
    zooms: tuple[float, ...] = (1.0, 1.5)
    weights_path: str | None = None
    class_weighting: str = "sqrt"
    test_time: str = "single"
    regime: str = "paper-fixed"
    lr_schedule: str = "per_epoch"
    recalibrate_bn: bool = True

    @classmethod
    def legacy_defaults(cls) -> dict[str, Any]:
        # A stored config without these keys was made before they existed: it averaged the zooms
        # at test time and trained on one random crop per hip per epoch; say so, not the new defaults.
        return dict(LEGACY_DEFAULTS)

    def __post_init__(self) -> None:
        # Coerce list -> tuple (from JSON) without breaking frozenness.
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        object.__setattr__(self, "zooms", tuple(float(z) for z in self.zooms))
        if self.weights_path is not None:
            object.__setattr__(self, "weights_path", str(self.weights_path))
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.backbone == "densenet169" and self.blocks != DENSENET169_BLOCKS:
            raise ValueError(f"densenet169 has blocks {DENSENET169_BLOCKS}, got {self.blocks}")
        if len(self.blocks) != 4 or any(b < 1 for b in self.blocks):
            raise ValueError(f"blocks must be four positive counts, got {self.blocks}")
        if self.input_size < 32:
            raise ValueError(f"input_size must be >= 32 (the DenseNet downsamples by 32), got {self.input_size}")
        for attr in ("se_ratio", "num_classes", "batch_size", "patience", "epochs", "growth_rate"):
            if int(getattr(self, attr)) < 1:
                raise ValueError(f"{attr} must be >= 1, got {getattr(self, attr)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {self.class_weighting!r}")
        if not self.zooms or any(z <= 0 for z in self.zooms):
            raise ValueError(f"zooms must be positive, got {self.zooms}")
        for attr, allowed in (
            ("test_time", TEST_TIME_PROTOCOLS),
            ("regime", TRAINING_REGIMES),
            ("lr_schedule", LR_SCHEDULES),
        ):
            if getattr(self, attr) not in allowed:
                raise ValueError(f"{attr} must be one of {allowed}, got {getattr(self, attr)!r}")

    @property
    def pretrained(self) -> bool:
        """True when the backbone starts from a weights file (ImageNet for DenseNet-169)."""
        return self.weights_path is not None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.input_size, self.input_size, 3)


CONFIGS: dict[str, NetConfig] = {
    "paper": NetConfig(name="paper"),
    "cpu-small": NetConfig(
        name="cpu-small",
        backbone="densenet",
        blocks=(2, 2, 2, 2),
        input_size=128,
        learning_rate=1e-3,
        batch_size=32,
        patience=10,
        epochs=40,
        regime="online-random",
    ),
    "tiny": NetConfig(
        name="tiny",
        backbone="densenet",
        blocks=(1, 1, 1, 1),
        input_size=64,
        learning_rate=1e-3,
        batch_size=8,
        patience=2,
        epochs=2,
        regime="online-random",  # tests: one crop per hip and epoch keeps them fast
    ),
}


def with_regime(config: NetConfig, regime: str) -> NetConfig:
    """``config`` trained under ``regime``, with the same number of training images seen: an
    epoch of ``paper-fixed`` shows each hip ``4 x len(zooms)`` times (8 with two zooms), one of
    ``online-random`` once, so ``epochs`` and ``patience`` are scaled by the ratio (rounded up;
    ``paper``'s 100 epochs / patience 10 become 800 / 80 under ``online-random``, ``cpu-small``'s
    40 / 10 become 5 / 2 under ``paper-fixed``). The per-epoch learning-rate decay is left per
    epoch. The same regime returns ``config`` unchanged."""
    if regime not in TRAINING_REGIMES:
        raise ValueError(f"regime must be one of {TRAINING_REGIMES}, got {regime!r}")
    if regime == config.regime:
        return config

    def per_hip(name: str) -> int:
        return 4 * len(config.zooms) if name == "paper-fixed" else 1

    ratio = per_hip(config.regime) / per_hip(regime)
    return config.replace(
        regime=regime,
        epochs=max(1, math.ceil(config.epochs * ratio)),
        patience=max(1, math.ceil(config.patience * ratio)),
    )


def get_config(name: str, **overrides: Any) -> NetConfig:
    """The named configuration, optionally with fields replaced (e.g. ``weights_path=``)."""
    try:
        config = CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown config {name!r}; known: {sorted(CONFIGS)}") from None
    return config.replace(**overrides) if overrides else config
