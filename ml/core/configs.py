"""Network and training configurations for the hip classifier (Krogue et al. 2020).

``NetConfig`` holds the paper's choices (DenseNet-169 + SE, 224 x 224, Adam 1e-5, batch 25, decay
0.9, weighted cross-entropy, patience 10) and the named choices that may depart from it
(``ml.core.deviations`` lists them); ``CONFIGS`` are the named configurations.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Self

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

    def replace(self, **changes: Any) -> Self:
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
