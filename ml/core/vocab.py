"""The study's vocabulary, written once: the six hip classes, which of them are fractures, their
names in words, the two sides, and boxes with their intersection over union.

Pure Python, no Django and no NumPy: the labelling app (Django's choices are made from these), the
models, the statistics, the reader study, the phantoms and the benchmarks all import it.
"""

from __future__ import annotations

from collections.abc import Sequence

# The classes of a hip, in the order of every model output, table and figure.
CLASSES: tuple[str, ...] = ("normal", "fn_displaced", "fn_nondisplaced", "intertrochanteric", "orif", "arthroplasty")
# The acute fractures; P(fracture) is the sum of their probabilities.
FRACTURE_CLASSES: tuple[str, ...] = ("fn_displaced", "fn_nondisplaced", "intertrochanteric")
# Each class in words, as the pages, exports and forms show it.
CLASS_NAMES: dict[str, str] = {
    "normal": "Normal",
    "fn_displaced": "Displaced femoral neck fracture",
    "fn_nondisplaced": "Nondisplaced femoral neck fracture",
    "intertrochanteric": "Intertrochanteric fracture",
    "orif": "Previous internal fixation (ORIF)",
    "arthroplasty": "Previous arthroplasty",
}
# The patient's sides, right first: on a standard AP film the patient's right hip is on the
# image's left-hand half. Also the detector's classes, in this order.
SIDES: tuple[str, str] = ("right", "left")

Box = tuple[float, float, float, float]  # x, y, width, height in image pixels (COCO)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes; 0 when they do not overlap or either
    is empty."""
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    inter = max(0.0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - inter
    # min(): rounding can put identical boxes a hair above 1.
    return min(1.0, inter / union) if union > 0 else 0.0
