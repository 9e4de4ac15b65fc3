"""Pre-labelling: the detector's boxes become proposals on the labelling page.

``proposals_store`` writes annotate's ``HipProposal`` rows through annotate's own service, so
annotate never imports ml; labellers see them as dashed boxes that become hips with source "model".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from django.core.exceptions import ValidationError

from annotate.labelling import services as labelling
from annotate.labels import HipProposal


def model_label(model_version: Any) -> str:
    """A short, readable name of the model version for the proposals' ``model``
    column: a ``ModelVersion`` as "detector 3 (cpu-small)", a string as it is."""
    if isinstance(model_version, str):
        return model_version
    kind = getattr(model_version, "kind", "") or "model"
    config = getattr(model_version, "config_name", "")
    label = f"{kind} {model_version.pk}"
    return f"{label} ({config})" if config else label


def top_classes(classifications: Mapping[str, Any] | Iterable[Any] | None) -> dict[str, str]:
    """Each side's top class from the classifier's output: a mapping side ->
    class key, or side -> a prediction; or predictions (``ml.core.serving``'s
    or ``ml.models.HipPrediction`` rows) with ``.side`` and ``.predicted_class``."""
    if classifications is None:
        return {}
    items: list[tuple[Any, Any]]
    if isinstance(classifications, Mapping):
        items = list(classifications.items())
    else:
        items = [(pred.side, pred) for pred in cast(Iterable[Any], classifications)]
    out = {}
    for side, value in items:
        if value is None:
            continue
        out[str(side)] = value if isinstance(value, str) else str(value.predicted_class)
    return out


def proposals_store(
    *,
    radiograph_id: int,
    detections: Iterable[Any],
    model_version: Any,
    classifications: Mapping[str, Any] | Iterable[Any] | None = None,
) -> list[HipProposal]:
    """Make the detector's ``detections`` on a radiograph its proposals.

    ``detections``: objects with ``.side`` ("right" / "left"), ``.box``
    (x, y, w, h in original-image pixels) and ``.score`` (0 to 1), at most one
    per side. ``model_version``: the detector's ``ModelVersion`` (or a label).
    ``classifications``: optional, see ``top_classes``; a side without one gets
    no class. The radiograph's older proposals are replaced (see
    ``annotate.labelling.services.proposals_replace``). Raises Django's
    ``ValidationError`` with a message for bad input."""
    classes = top_classes(classifications)
    proposals = []
    for detection in detections:
        try:
            x, y, width, height = (float(v) for v in detection.box)
        except (TypeError, ValueError):
            raise ValidationError(
                f"the {detection.side} detection's box must be four numbers (x, y, w, h), got {detection.box!r}"
            ) from None
        proposals.append(
            labelling.ProposalInput(
                side=str(detection.side),
                x=x,
                y=y,
                width=width,
                height=height,
                score=float(detection.score),
                hip_class=classes.get(str(detection.side), ""),
            )  # fmt: skip
        )
    return labelling.proposals_replace(
        radiograph_id=radiograph_id, proposals=proposals, model_label=model_label(model_version)
    )
