"""Demo labels: the phantoms' ground truth imported as two labellers, with planted disagreements.

    python scripts/demo_labels.py PHANTOMS_DIR [--disagreements 8] [--seed 0]

or, once Django is set up, ``seed_demo_labels(phantoms_dir)``. The demo
accounts (``manage.py create_demo_users``) and the radiographs
(``manage.py import_dicom PHANTOMS_DIR``) must exist already.

``labeler1`` submits the phantoms' truth as it is; ``labeler2`` the same with
a handful of disagreements planted (a changed class, a box shifted to IoU
< 0.5, a dropped hip), so the adjudication queue has work. A disagreement is
planted only where agreement remains: on an image whose patient keeps another
labelled image that both labellers agree on, so every labelled patient reaches
the ground truth (a small demo plants fewer, or none). The last ~10% of
the images are left unlabelled, so the labellers have work too. Everything is
deterministic, and a second run changes nothing (the imports report the
radiographs as already submitted).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the project's packages
    sys.path.insert(0, str(ROOT))

from ml.core.vocab import CLASSES, iou  # noqa: E402 - after the path above

LABELERS = ("labeler1", "labeler2")


def _shifted(bbox: list[float], width: int, height: int) -> list[float] | None:
    """The box moved by 60% of its size (IoU 0.25), staying inside the image; None if it cannot."""
    x, y, w, h = bbox
    for dx, dy in ((0.6 * w, 0.0), (-0.6 * w, 0.0), (0.0, 0.6 * h), (0.0, -0.6 * h)):
        moved = [x + dx, y + dy, w, h]
        if moved[0] >= 0 and moved[1] >= 0 and moved[0] + w <= width and moved[1] + h <= height:
            return moved
    return None


def plant_disagreements(document: dict[str, Any], *, disagreements: int, seed: int) -> tuple[dict, list[str]]:
    """A copy of a COCO document with up to ``disagreements`` images changed: one
    dropped hip, then changed classes and shifted boxes in turn. An image is changed
    only if its patient keeps another image that reaches the ground truth unchanged
    (not excluded, with a hip), so the agreed ground truth has every patient of the
    document. Pure and deterministic."""
    planted = copy.deepcopy(document)
    rng = random.Random(seed)
    by_image: dict[Any, list[dict]] = {}
    for annotation in planted["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    # Per patient, the images whose agreement puts hips in the ground truth. An image with no
    # patient (not a phantom's) counts as one shared patient: at least one image stays agreed.
    agreed: dict[Any, int] = {}
    for image in planted["images"]:
        if not image.get("exclude") and by_image.get(image["id"]):
            agreed[image.get("patient")] = agreed.get(image.get("patient"), 0) + 1
    # Images with both hips can lose one and still be submitted.
    eligible = [
        image for image in planted["images"] if not image.get("exclude") and len(by_image.get(image["id"], [])) == 2
    ]
    chosen = []
    for image in rng.sample(eligible, len(eligible)):
        if len(chosen) >= disagreements:
            break
        if agreed[image.get("patient")] > 1:  # another image of this patient stays agreed
            agreed[image.get("patient")] -= 1
            chosen.append(image)
    chosen.sort(key=lambda image: image["id"])
    categories = {c["id"]: c["name"] for c in planted["categories"]}
    dropped: list[dict] = []
    notes = []
    for number, image in enumerate(chosen):
        hips = sorted(by_image[image["id"]], key=lambda a: a["attributes"]["side"])
        hip = rng.choice(hips)
        side = hip["attributes"]["side"]
        kind = "drop" if number == 0 else ("class", "shift")[number % 2]
        moved = _shifted(hip["bbox"], image["width"], image["height"]) if kind == "shift" else None
        if kind == "shift" and moved is None:
            kind = "class"
        if kind == "drop":
            dropped.append(hip)
            notes.append(f"{image['file_name']}: {side} hip dropped")
        elif kind == "class":
            old = categories[hip["category_id"]]
            new = rng.choice([name for name in CLASSES if name != old])
            hip["category_id"] = next(cid for cid, name in categories.items() if name == new)
            notes.append(f"{image['file_name']}: {side} hip {old} -> {new}")
        else:
            overlap = iou(hip["bbox"], moved)
            hip["bbox"], hip["area"] = moved, moved[2] * moved[3]
            notes.append(f"{image['file_name']}: {side} hip box shifted (IoU {overlap:.2f})")
    planted["annotations"] = [a for a in planted["annotations"] if all(a is not d for d in dropped)]
    return planted, notes


def _leave_unlabelled(document: dict[str, Any], fraction: float) -> dict[str, Any]:
    """The document without its last ``fraction`` of images (at least one, if it has two or more)."""
    images = document["images"]
    left = max(1, math.ceil(len(images) * fraction)) if len(images) > 1 and fraction > 0 else 0
    kept = images[: len(images) - left]
    ids = {image["id"] for image in kept}
    return {**document, "images": kept, "annotations": [a for a in document["annotations"] if a["image_id"] in ids]}


def seed_demo_labels(
    phantoms_dir: Path,
    *,
    disagreements: int = 8,
    seed: int = 0,
    unlabelled_fraction: float = 0.1,
    labelers: tuple[str, str] = LABELERS,
) -> dict[str, Any]:
    """Import the phantoms' truth as the two labellers (see the module docstring).
    Returns the import report of each labeller and the planted changes."""
    from annotate.labelling.exchange import annotations_import

    truth = json.loads((Path(phantoms_dir) / "annotations.coco.json").read_text())
    labelled = _leave_unlabelled(truth, unlabelled_fraction)
    planted, notes = plant_disagreements(labelled, disagreements=disagreements, seed=seed)
    result: dict[str, Any] = {"planted": notes}
    for username, document in zip(labelers, (labelled, planted), strict=True):
        data = json.dumps(document).encode()
        result[username] = annotations_import(fmt="coco", data=data, username=username)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phantoms_dir", type=Path, help="the folder make_phantoms wrote (annotations.coco.json)")
    parser.add_argument("--disagreements", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    # The same environment as scripts/demo.py. DATA_DIR is left to the settings (the environment,
    # then the .env that make demo wrote, then ./var), so that a run by hand finds the demo's data.
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    try:
        result = seed_demo_labels(args.phantoms_dir, disagreements=args.disagreements, seed=args.seed)
    except ValueError as exc:
        print(f"demo labels: {exc} (run manage.py create_demo_users and import_dicom first)", file=sys.stderr)
        return 1
    for username in LABELERS:
        print(f"{username}: {result[username].line()}")
    if result[LABELERS[1]].submitted:  # a second run imports nothing and plants nothing new
        for note in result["planted"]:
            print(f"  planted for {LABELERS[1]}: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
