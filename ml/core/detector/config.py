"""The detector's configuration: :class:`DetectorConfig` (network and training settings, validated),
the named configurations ``paper``, ``cpu-small`` and ``tiny`` (:data:`DETECTOR_CONFIGS`) and
:func:`get_detector_config`. No Django import.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..configs import JsonConfig
from ..vocab import SIDES

KIND = "detector"
BLOCK_TYPES = ("bottleneck_block", "basic_block")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class DetectorConfig(JsonConfig):
    """One detector network + training configuration.

    backbone: ``"resnet50"`` (ResNet-50 v1: bottleneck blocks (3, 4, 6, 3), filters
    (64, 128, 256, 512)) or ``"resnet"`` (any ``block_type`` / ``filters`` / ``blocks``).
    ``image_size``: the square a radiograph is letterboxed into. ``min_level`` /
    ``max_level``: the FPN levels (P3-P7 as the paper's RetinaNet). ``head_layers``: conv
    layers of each prediction head before its output (4 in RetinaNet). ``crop_min``: the
    smallest random crop, as a fraction of each side (1 = no crop augmentation).
    ``min_score``: detections scoring less are dropped. ``box_delta`` / ``box_weight``: the
    box loss is keras' Huber with that delta, weighted so against the focal loss: keras-hub's
    encoder has box variance 1 (offsets of about 0.1), where Huber with delta 1 barely pulls
    boxes tight (validation IoU stalled near 0.65 on the phantoms); delta 0.1 x 50 is about the
    classic RetinaNet's variance (0.1, 0.1, 0.2, 0.2) with smooth L1. ``weights_path``: a local weights
    file for the ResNet encoder (``encoder.load_weights``); None = random initialisation.
    """

    name: str
    backbone: str = "resnet50"
    block_type: str = "bottleneck_block"
    filters: tuple[int, ...] = (64, 128, 256, 512)
    blocks: tuple[int, ...] = (3, 4, 6, 3)
    image_size: int = 512
    min_level: int = 3
    max_level: int = 7
    head_layers: int = 4
    batch_size: int = 8
    learning_rate: float = 1e-4
    epochs: int = 100
    patience: int = 10
    lr_decay: float = 0.9
    nms_iou: float = 0.3
    min_score: float = 0.05
    max_detections: int = 10
    crop_min: float = 0.7
    box_delta: float = 0.1
    box_weight: float = 50.0
    weights_path: str | None = None

    label = "detector config"  # (not a field) names it in error messages

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple(int(v) for v in self.filters))
        object.__setattr__(self, "blocks", tuple(int(v) for v in self.blocks))
        if self.weights_path is not None:
            object.__setattr__(self, "weights_path", str(self.weights_path))
        if self.backbone not in ("resnet50", "resnet"):
            raise ValueError(f"backbone must be 'resnet50' or 'resnet', got {self.backbone!r}")
        if self.backbone == "resnet50" and (
            self.block_type != "bottleneck_block" or self.filters != (64, 128, 256, 512) or self.blocks != (3, 4, 6, 3)
        ):
            raise ValueError("resnet50 has bottleneck blocks (3, 4, 6, 3) with filters (64, 128, 256, 512)")
        if self.block_type not in BLOCK_TYPES:
            raise ValueError(f"block_type must be one of {BLOCK_TYPES}, got {self.block_type!r}")
        if len(self.filters) != 4 or len(self.blocks) != 4 or min(self.filters + self.blocks) < 1:
            raise ValueError(f"filters and blocks must be four positive numbers, got {self.filters}, {self.blocks}")
        if self.filters[0] != 64:
            raise ValueError(f"keras-hub's ResNet needs 64 filters in its first stage, got {self.filters}")
        if not 3 <= self.min_level <= 5 or not 5 <= self.max_level <= 7:
            raise ValueError(f"levels must satisfy 3 <= min_level <= 5 <= max_level <= 7, got {self.min_level}, "
                             f"{self.max_level}")  # fmt: skip
        if self.image_size < 64 or self.image_size % 2**self.max_level:
            raise ValueError(f"image_size must be >= 64 and a multiple of {2**self.max_level}, got {self.image_size}")
        for attr in ("batch_size", "epochs", "patience", "head_layers", "max_detections"):
            if int(getattr(self, attr)) < 1:
                raise ValueError(f"{attr} must be >= 1, got {getattr(self, attr)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if not 0 < self.nms_iou < 1:
            raise ValueError(f"nms_iou must be in (0, 1), got {self.nms_iou}")
        if not 0 <= self.min_score < 1:
            raise ValueError(f"min_score must be in [0, 1), got {self.min_score}")
        if not (self.box_delta > 0 and self.box_weight > 0):
            raise ValueError(f"box_delta and box_weight must be > 0, got {self.box_delta}, {self.box_weight}")
        if not 0 < self.crop_min <= 1:
            raise ValueError(f"crop_min must be in (0, 1], got {self.crop_min}")

    @property
    def kind(self) -> str:
        return KIND

    @property
    def num_classes(self) -> int:
        return len(SIDES)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 3)


DETECTOR_CONFIGS: dict[str, DetectorConfig] = {
    # RetinaNet, ResNet-50 FPN P3-P7, 512 x 512 input (the paper downsamples its radiographs).
    "paper": DetectorConfig(name="paper"),
    # A small ResNet (basic blocks) at 256 x 256 with FPN levels P4-P5 only: a hip is a third
    # of the film's width (70-90 px here), which P4's anchors (64-101 px) and P5's fit, and
    # leaving out P3 makes training three times faster. From scratch, on 2 CPU cores.
    "cpu-small": DetectorConfig(
        name="cpu-small",
        backbone="resnet",
        block_type="basic_block",
        filters=(64, 64, 128, 128),
        blocks=(1, 1, 1, 1),
        image_size=256,
        min_level=4,
        max_level=5,
        head_layers=2,
        batch_size=8,
        learning_rate=1e-3,
        epochs=20,  # the validation IoU levels off by epoch ~18 on 400 phantom studies
        patience=6,
        lr_decay=0.93,
    ),
    # For tests: 128 x 128, one block per stage, one head layer.
    "tiny": DetectorConfig(
        name="tiny",
        backbone="resnet",
        block_type="basic_block",
        filters=(64, 32, 32, 32),
        blocks=(1, 1, 1, 1),
        image_size=128,
        max_level=5,
        head_layers=1,
        batch_size=4,
        learning_rate=1e-3,
        epochs=2,
        patience=2,
        lr_decay=0.95,
        min_score=0.05,
    ),
}


def get_detector_config(name: str, **overrides: Any) -> DetectorConfig:
    """The named detector configuration, optionally with fields replaced."""
    try:
        config = DETECTOR_CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown detector config {name!r}; known: {sorted(DETECTOR_CONFIGS)}") from None
    return config.replace(**overrides) if overrides else config
