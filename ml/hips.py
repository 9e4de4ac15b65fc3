"""Hip boxes given by a caller (the ``predict`` command, the prediction API): parsing and checking.

The accepted form is a JSON list of ``{"side": "right"|"left", "box": [x, y, w, h]}``
in original-image pixels (COCO order), at most one hip per side; a box must meet the image
and be no larger than it (the padded crop is allocated at the box's size)."""

from __future__ import annotations

import json
import math
from typing import Any

from annotate.labels import Side
from ml.core.serving import Hip


class BadBoxes(ValueError):
    """Boxes that cannot be used, with a message for the person who sent them."""


def parse_boxes(value: Any, *, rows: int, columns: int) -> list[Any]:
    """``value``: a JSON string or the decoded list. Returns ``ml.core.serving.Hip``s, right first."""

    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise BadBoxes(f"boxes are not valid JSON: {error.msg}") from None
        except RecursionError:
            raise BadBoxes("boxes are nested too deeply") from None
    if not isinstance(value, list) or not value:
        raise BadBoxes('boxes must be a non-empty list like [{"side": "right", "box": [x, y, w, h]}]')
    if len(value) > 2:
        raise BadBoxes("at most two hips (one per side)")
    hips: dict[str, Any] = {}
    for item in value:
        if not isinstance(item, dict) or set(item) != {"side", "box"}:
            raise BadBoxes('each hip must be {"side": ..., "box": [x, y, w, h]}')
        side = item["side"]
        if side not in Side.values:
            raise BadBoxes(f"side must be one of {list(Side.values)}, got {side!r}")
        if side in hips:
            raise BadBoxes(f"two boxes for the {side} hip")
        box = item["box"]
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in box)
        ):
            raise BadBoxes(f"the {side} box must be four numbers [x, y, w, h]")
        x, y, w, h = (float(v) for v in box)
        if w < 2 or h < 2:
            raise BadBoxes(f"the {side} box is smaller than 2 x 2 pixels")
        if x >= columns or y >= rows or x + w <= 0 or y + h <= 0:
            raise BadBoxes(f"the {side} box lies outside the {columns} x {rows} image")
        if w > columns or h > rows:
            # A hip is smaller than the film; the crop (padded outside the image) is allocated at
            # the box's size, so this bounds it by the image's (zoom 1.5: 2.25 times its pixels).
            raise BadBoxes(f"the {side} box ({w:g} x {h:g}) is larger than the {columns} x {rows} image")
        hips[side] = Hip(side=side, box=(x, y, w, h))
    return [hips[s] for s in ("right", "left") if s in hips]
