"""Agreement between labellers. Pure Python: no Django.

Two labellings agree when they exclude the radiograph for the same reason,
or when they have the same hips (matched by side), with the same classes,
and every matched pair of boxes overlaps at IoU >= the threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Box = tuple[float, float, float, float]  # x, y, width, height in image pixels


@dataclass(frozen=True)
class Hip:
    side: str
    hip_class: str
    box: Box


@dataclass(frozen=True)
class Labelling:
    excluded: str = ""
    hips: tuple[Hip, ...] = field(default_factory=tuple)

    def by_side(self) -> dict[str, Hip]:
        return {hip.side: hip for hip in self.hips}


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two [x, y, w, h] boxes (0 when either is empty)."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    inter_w = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    inter_h = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = a[2] * a[3] + b[2] * b[3] - inter
    # min(): rounding can put identical boxes a hair above 1.
    return min(1.0, inter / union) if union > 0 else 0.0


def disagreements(a: Labelling, b: Labelling, *, iou_threshold: float) -> list[str]:
    """Every reason the two labellings disagree; an empty list means they agree."""
    if a.excluded or b.excluded:
        if a.excluded == b.excluded:
            return []
        if a.excluded and b.excluded:
            return [f"excluded for different reasons ({a.excluded} / {b.excluded})"]
        return ["excluded by one labeller only"]
    reasons = []
    sides_a, sides_b = a.by_side(), b.by_side()
    for side in sorted(set(sides_a) ^ set(sides_b)):
        reasons.append(f"{side} hip labelled by one labeller only")
    for side in sorted(set(sides_a) & set(sides_b)):
        hip_a, hip_b = sides_a[side], sides_b[side]
        if hip_a.hip_class != hip_b.hip_class:
            reasons.append(f"{side} hip: {hip_a.hip_class} / {hip_b.hip_class}")
        overlap = iou(hip_a.box, hip_b.box)
        if overlap < iou_threshold:
            reasons.append(f"{side} hip boxes overlap at IoU {overlap:.2f} < {iou_threshold:.2f}")
    return reasons


def all_disagreements(labellings: Sequence[Labelling], *, iou_threshold: float) -> list[str]:
    """Disagreements over every pair (more than two labellers per image)."""
    reasons: list[str] = []
    for i in range(len(labellings)):
        for j in range(i + 1, len(labellings)):
            for reason in disagreements(labellings[i], labellings[j], iou_threshold=iou_threshold):
                if reason not in reasons:
                    reasons.append(reason)
    return reasons


def consensus(labellings: Sequence[Labelling]) -> Labelling:
    """The ground truth of agreeing labellings: the same classes and each
    box the mean of the labellers' boxes."""
    first = labellings[0]
    hips = []
    for side, hip in sorted(first.by_side().items()):
        boxes = [labelling.by_side()[side].box for labelling in labellings]
        mean = tuple(sum(values) / len(values) for values in zip(*boxes, strict=True))
        hips.append(Hip(side, hip.hip_class, mean))  # type: ignore[arg-type]
    return Labelling(first.excluded, tuple(hips))


def matched_pairs(pairs: Iterable[tuple[Labelling, Labelling]]) -> list[tuple[Hip, Hip]]:
    """Hips that both labellers of a pair labelled (same side), for κ and IoU."""
    matched = []
    for a, b in pairs:
        sides_b = b.by_side()
        for side, hip in a.by_side().items():
            if side in sides_b:
                matched.append((hip, sides_b[side]))
    return matched
