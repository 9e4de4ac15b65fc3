"""Read one DICOM file with the active classifier (or --model) and print per-hip predictions as JSON,
with the test-time protocol the model version's predictions follow (``test_time``, ``test_time_zooms``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.archive.dicom import DicomRejected, decode_dicom
from annotate.archive.ingest import decode_limits
from annotate.models import Radiograph
from ml import detection, scoring
from ml.core.serving import heatmap_png
from ml.hips import BadBoxes, parse_boxes
from ml.models import Kind


class Command(BaseCommand):
    help = (
        'Predict the six hip classes of a radiograph. Boxes: --boxes \'[{"side": "right", "box": [x, y, w, h]}]\' '
        "(or a .json file); without them, the active detector (or --detector) finds both hips; without a "
        "detector, the ground-truth boxes of the same radiograph already on the site."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="a DICOM file")
        parser.add_argument("--boxes", help="JSON list of hips, or a path to a .json file holding it")
        parser.add_argument("--model", type=int, metavar="VERSION", help="model version (default: the active one)")
        parser.add_argument("--heatmaps", metavar="DIR", help="write each hip's heatmap PNG here")
        parser.add_argument("--detector", type=int, metavar="VERSION", help="detector (default: the active one)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        data = path.read_bytes()
        try:
            image = decode_dicom(data, limits=decode_limits())
        except DicomRejected as error:
            raise CommandError(f"{path}: {error}") from None
        try:
            version = scoring.chosen_model(options["model"])
        except LookupError as error:
            raise CommandError(str(error)) from None
        hips, box_source, detector = self._hips(options["boxes"], options["detector"], data, image)
        predictions = scoring.predictor(version).predict_hips(
            image.pixels, (image.window_center, image.window_width), hips
        )
        out = []
        folder = Path(options["heatmaps"]) if options["heatmaps"] else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

        for pred in predictions:
            item = scoring.prediction_summary(pred)
            if folder is not None:
                target = folder / f"{path.stem}-{pred.side}-heatmap.png"
                target.write_bytes(heatmap_png(pred))
                item["heatmap_url"] = target.resolve().as_uri()
            out.append(item)
        for item in out:
            item["box_source"] = box_source
        result = {"model_version": version.pk, **scoring.test_time(version), "detector_version": detector, "hips": out}
        self.stdout.write(json.dumps(result, indent=2))

    def _hips(self, boxes: str | None, detector: int | None, data: bytes, image: Any) -> tuple[list[Any], str, Any]:
        """The hips to read, where their boxes came from, and the detector version used (or None)."""
        rows, columns = image.pixels.shape
        if boxes:
            text = Path(boxes).read_text() if boxes.endswith(".json") and Path(boxes).is_file() else boxes
            try:
                return parse_boxes(text, rows=rows, columns=columns), "manual", None
            except BadBoxes as error:
                raise CommandError(str(error)) from None
        if detector is not None or scoring.active_model(Kind.DETECTOR) is not None:
            try:
                version = scoring.chosen_model(detector, Kind.DETECTOR)
            except LookupError as error:
                raise CommandError(str(error)) from None
            found = detection.detect(version, image.pixels, (image.window_center, image.window_width))
            if not found:
                raise CommandError(f"detector {version.pk} found no hip on this radiograph")
            return detection.hips_of(found), "detector", version.pk
        radiograph = Radiograph.objects.filter(sha256=hashlib.sha256(data).hexdigest()).first()
        hips = scoring.hip_boxes(radiograph.pk) if radiograph is not None else []
        if not hips:
            raise CommandError(
                "give --boxes: no detector is active and this radiograph has no ground-truth hip boxes on the site"
            )
        return hips, "ground_truth", None
