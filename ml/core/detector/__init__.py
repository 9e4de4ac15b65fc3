"""The hip detector (Krogue et al. 2020, "Hip Detection"): a keras-hub RetinaNet with a feature pyramid
that boxes both hips of an AP pelvis radiograph and labels them right and left. The package re-exports
its modules: ``config`` (settings), ``boxes`` (letterbox geometry), ``data`` (training records and
crops), ``network`` (build, save, load) and ``detecting``. No Django import.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import os

from ..vocab import SIDES, Box, iou
from .boxes import (
    BOX_FORMAT,
    Detection,
    Letterbox,
    box_from_input,
    box_to_input,
    coco_to_yxyx,
    letterbox_for,
    model_image,
    yxyx_to_coco,
)
from .config import BLOCK_TYPES, DETECTOR_CONFIGS, KIND, DetectorConfig, get_detector_config
from .data import (
    REDUCED_WINDOW,
    DetectorRecord,
    epoch_batches,
    make_detector_dataset,
    random_crop,
    reduced_record,
    steps_per_epoch,
    training_example,
)
from .detecting import detect, detect_many, mean_iou, predict_batch, select_detections
from .network import (
    PRIOR_PROBABILITY,
    build_detector,
    compile_detector,
    load_checkpoint,
    load_detector_model,
    save_checkpoint,
)

__all__ = [
    "BLOCK_TYPES",
    "BOX_FORMAT",
    "DETECTOR_CONFIGS",
    "KIND",
    "PRIOR_PROBABILITY",
    "REDUCED_WINDOW",
    "SIDES",
    "Box",
    "Detection",
    "DetectorConfig",
    "DetectorRecord",
    "Letterbox",
    "box_from_input",
    "box_to_input",
    "build_detector",
    "coco_to_yxyx",
    "compile_detector",
    "detect",
    "detect_many",
    "epoch_batches",
    "get_detector_config",
    "iou",
    "letterbox_for",
    "load_checkpoint",
    "load_detector_model",
    "make_detector_dataset",
    "mean_iou",
    "model_image",
    "predict_batch",
    "random_crop",
    "reduced_record",
    "save_checkpoint",
    "select_detections",
    "steps_per_epoch",
    "training_example",
    "yxyx_to_coco",
]

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
