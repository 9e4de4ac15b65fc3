"""Write a PNG grid of augmented hip crops for a person to look at.

One row per hip, its columns what one epoch of ``--regime`` (``paper-fixed`` or ``online-random``)
shows of it; hips from the newest dataset version (or ``--dataset``), else synthetic phantoms.
The path is printed on the last line.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser
from PIL import Image, ImageDraw

from annotate.archive.pixels import radiograph_pixels
from devtools.phantom_anatomy import sample_hip_spec
from devtools.phantoms import SCANNERS, render_radiograph, sample_hip_classes
from ml.core.augment import AugmentConfig, augment_hip, paper_augmentations
from ml.core.configs import TRAINING_REGIMES
from ml.models import DatasetHip, DatasetVersion

TILE = 160  # pixels per crop in the grid
GAP = 4
CAPTION = 16  # height of the caption line above each row
HEADER = 16


def _pick_round_robin(items: list[Any], key: Any, count: int, rng: np.random.Generator) -> list[Any]:
    """Up to ``count`` items, cycling over the classes so several show up."""
    groups: dict[str, list[Any]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    for group in groups.values():
        rng.shuffle(group)
    order = sorted(groups)
    picked: list[Any] = []
    while len(picked) < count and any(groups.values()):
        for name in order:
            if groups[name] and len(picked) < count:
                picked.append(groups[name].pop())
    return picked


def dataset_hips(dataset_id: int | None, count: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Hips of a dataset version as dicts with pixels, box, side, window, caption."""

    if dataset_id is not None:
        version = DatasetVersion.objects.filter(pk=dataset_id).first()
        if version is None:
            raise CommandError(f"no dataset version {dataset_id}")
    else:
        version = DatasetVersion.objects.first()  # newest: ordering -created_at
        if version is None:
            return []
    hips = list(DatasetHip.objects.filter(dataset=version, split="train").select_related("radiograph"))
    if not hips:
        hips = list(DatasetHip.objects.filter(dataset=version).select_related("radiograph"))
    out = []
    for hip in _pick_round_robin(hips, lambda h: h.hip_class, count, rng):
        radiograph = hip.radiograph
        pixels = radiograph_pixels(radiograph)
        out.append(
            {
                "pixels": pixels,
                "box": (hip.x, hip.y, hip.width, hip.height),
                "side": hip.side,
                "window": (radiograph.window_center, radiograph.window_width),
                "invert": False,  # stored pixels are higher = brighter
                "caption": f"{hip.hip_class}, {hip.side} hip, radiograph {radiograph.pk} ({hip.split}, "
                f"dataset {version.pk})",
            }
        )
    return out


def phantom_hips(count: int, seed: int) -> list[dict[str, Any]]:
    """Hips of synthetic AP pelvis phantoms (both hips of each image)."""

    out: list[dict[str, Any]] = []
    image = 0
    while len(out) < count:
        rng = np.random.default_rng([seed, image])
        scanner = SCANNERS[image % len(SCANNERS)]
        classes = dict(zip(("right", "left"), sample_hip_classes(rng), strict=True))
        specs = {side: sample_hip_spec(rng, side, cls) for side, cls in classes.items()}
        rendered = render_radiograph(rng, scanner, specs, "ap")
        for side in ("right", "left"):
            if len(out) < count and side in rendered.boxes:
                out.append(
                    {
                        "pixels": rendered.pixels,
                        "box": rendered.boxes[side],
                        "side": side,
                        "window": rendered.window,
                        "invert": scanner.photometric == "MONOCHROME1",
                        "caption": f"{classes[side]}, {side} hip, phantom {image + 1} ({scanner.key})",
                    }
                )
        image += 1
    return out


def render_grid(rows: list[tuple[str, list[tuple[str, np.ndarray]]]]) -> Image.Image:
    """Rows of (caption, [(label, crop in [0, 1])]) as one grayscale image,
    a header with the column labels on top."""
    ncols = max(len(tiles) for _, tiles in rows)
    width = GAP + ncols * (TILE + GAP)
    height = HEADER + len(rows) * (CAPTION + TILE + GAP) + GAP
    grid = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(grid)
    for c, (label, _) in enumerate(rows[0][1]):
        draw.text((GAP + c * (TILE + GAP) + 2, 2), label, fill=0)
    for r, (caption, tiles) in enumerate(rows):
        top = HEADER + r * (CAPTION + TILE + GAP)
        draw.text((GAP + 2, top + 2), caption, fill=0)
        for c, (_, crop) in enumerate(tiles):
            tile = Image.fromarray(np.round(np.clip(crop, 0, 1) * 255).astype(np.uint8), mode="L")
            if tile.size != (TILE, TILE):
                tile = tile.resize((TILE, TILE), Image.Resampling.BILINEAR)
            grid.paste(tile, (GAP + c * (TILE + GAP), top + CAPTION))
    return grid


class Command(BaseCommand):
    help = (
        "Write a PNG grid of augmented hip crops: per hip what a training regime makes of it "
        "(paper-fixed: the paper's 8 images; online-random: 8 random draws, one per epoch)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", default="", help="PNG path (default: a new file in the temp folder)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--count", type=int, default=4, help="number of hips (rows)")
        parser.add_argument("--dataset", type=int, default=None, help="dataset version id (default: newest)")
        parser.add_argument("--phantoms", action="store_true", help="use synthetic phantoms even if a dataset exists")
        parser.add_argument("--regime", choices=TRAINING_REGIMES, default="paper-fixed")

    def handle(self, *args: Any, **options: Any) -> None:
        count, seed = options["count"], options["seed"]
        if count < 1:
            raise CommandError("--count must be at least 1")
        rng = np.random.default_rng(seed)
        hips = [] if options["phantoms"] else dataset_hips(options["dataset"], count, rng)
        if not hips:
            self.stdout.write("No dataset hips: using synthetic phantoms.")
            hips = phantom_hips(count, seed)
        config = AugmentConfig()
        rows = []
        for hip in hips:
            args = (hip["pixels"], hip["box"], hip["side"])
            if options["regime"] == "paper-fixed":
                tiles = paper_augmentations(*args, window=hip["window"], rng=rng, config=config, invert=hip["invert"])
            else:
                tiles = [
                    (f"draw {k + 1}", augment_hip(*args, window=hip["window"], rng=rng, config=config,
                                                  invert=hip["invert"]))
                    for k in range(len(config.zooms) * 4)
                ]  # fmt: skip
            rows.append((hip["caption"], tiles))
        out = options["out"]
        if not out:
            handle, out = tempfile.mkstemp(prefix="augmentations-", suffix=".png")
            os.close(handle)
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        render_grid(rows).save(path, format="PNG")
        self.stdout.write(
            f"{len(rows)} hips x {len(rows[0][1])} crops, regime {options['regime']}, "
            f"augmentation config {config.as_dict()}"
        )
        self.stdout.write(str(path))
