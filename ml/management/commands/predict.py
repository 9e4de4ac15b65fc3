"""Read one DICOM file with the active classifier (or --model) and print per-hip predictions as JSON."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.dicom import DicomRejected, decode_dicom
from annotate.models import Radiograph
from ml import scoring
from ml.hips import BadBoxes, parse_boxes


class Command(BaseCommand):
    help = (
        'Predict the six hip classes of a radiograph. Boxes: --boxes \'[{"side": "right", "box": [x, y, w, h]}]\' '
        "(or a .json file); without them, the ground-truth boxes of the same radiograph already on the site."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="a DICOM file")
        parser.add_argument("--boxes", help="JSON list of hips, or a path to a .json file holding it")
        parser.add_argument("--model", type=int, metavar="VERSION", help="model version (default: the active one)")
        parser.add_argument("--heatmaps", metavar="DIR", help="write each hip's heatmap PNG here")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        data = path.read_bytes()
        try:
            image = decode_dicom(data)
        except DicomRejected as error:
            raise CommandError(f"{path}: {error}") from None
        hips = self._hips(options["boxes"], data, image)
        try:
            version = scoring.chosen_model(options["model"])
        except LookupError as error:
            raise CommandError(str(error)) from None
        predictions = scoring.predictor(version).predict_hips(
            image.pixels, (image.window_center, image.window_width), hips
        )
        out = []
        folder = Path(options["heatmaps"]) if options["heatmaps"] else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        from ml.core.serving import heatmap_png

        for pred in predictions:
            item = scoring.prediction_summary(pred)
            if folder is not None:
                target = folder / f"{path.stem}-{pred.side}-heatmap.png"
                target.write_bytes(heatmap_png(pred))
                item["heatmap_url"] = target.resolve().as_uri()
            out.append(item)
        self.stdout.write(json.dumps({"model_version": version.pk, "hips": out}, indent=2))

    def _hips(self, boxes: str | None, data: bytes, image: Any) -> list[Any]:
        rows, columns = image.pixels.shape
        if boxes:
            text = Path(boxes).read_text() if boxes.endswith(".json") and Path(boxes).is_file() else boxes
            try:
                return parse_boxes(text, rows=rows, columns=columns)
            except BadBoxes as error:
                raise CommandError(str(error)) from None
        radiograph = Radiograph.objects.filter(sha256=hashlib.sha256(data).hexdigest()).first()
        hips = scoring.hip_boxes(radiograph.pk) if radiograph is not None else []
        if not hips:
            raise CommandError("give --boxes: this radiograph has no ground-truth hip boxes on the site")
        return hips
