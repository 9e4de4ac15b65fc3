"""Agreement between labellers. Pure Python: no Django.

Two labellings agree when they exclude the radiograph for the same reason,
or when they have the same hips (matched by side), with the same classes,
and every matched pair of boxes overlaps at IoU >= the threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ml.core.vocab import Box, iou


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
        hips.append(Hip(side, hip.hip_class, mean))
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
