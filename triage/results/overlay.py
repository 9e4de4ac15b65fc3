"""The reading as an image a viewer shows: a secondary capture (highdicom ``SCImage``) of the
radiograph in its default window, with each hip's stored heatmap PNG (``ml.scoring``'s rendering)
and box burned in, and "AI OUTPUT" written in the image and in the Series Description."""

from __future__ import annotations

import io
import logging
from typing import Any

import highdicom as hd
import numpy as np
from django.core.files.storage import default_storage
from PIL import Image, ImageDraw, ImageFont
from pydicom import Dataset

from annotate.archive.dicom_pixels import render_preview
from ml.core.vocab import CLASS_NAMES
from ml.scoring import load_pixels
from triage.results.reading import DISCLAIMER, Reading
from triage.results.sr import MANUFACTURER

logger = logging.getLogger(__name__)
OVERLAY_SERIES_NUMBER = 9902
OVERLAY_SERIES_DESCRIPTION = "AI OUTPUT hip heatmap (research, not for diagnostic use)"
BOX_COLOUR = (0, 255, 0)
FLAG_COLOUR = (255, 200, 0)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _heatmap(hip: Any) -> Image.Image | None:
    """The hip's stored heatmap PNG; None (the box is still drawn) when it is missing or unreadable."""
    if not hip.heatmap:
        return None
    try:
        with default_storage.open(str(hip.heatmap.name), "rb") as handle:
            return Image.open(io.BytesIO(handle.read())).convert("RGBA")
    except (OSError, ValueError) as exc:
        logger.warning("heatmap of prediction %s left out of the overlay: %s", hip.pk, exc)
        return None


def overlay_pixels(reading: Reading) -> np.ndarray:
    """The burned-in RGB image (rows x columns x 3, uint8) at the radiograph's own size."""
    radiograph = reading.radiograph
    pixels = load_pixels(radiograph)  # display sense: MONOCHROME1 is already inverted
    grey = render_preview(pixels, radiograph.window_center, radiograph.window_width, max(pixels.shape))
    image = Image.fromarray(grey, mode="L").convert("RGBA")
    size = max(12, min(image.size) // 40)
    font = _font(size)
    for hip in reading.hips:
        heat = _heatmap(hip)
        if heat is not None:
            x0, y0, x1, y1 = (round(float(v)) for v in hip.heatmap_rect)
            if x1 > x0 and y1 > y0:
                layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
                layer.paste(heat.resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR), (x0, y0))
                image = Image.alpha_composite(image, layer)
    draw = ImageDraw.Draw(image)
    width = max(2, min(image.size) // 300)
    for hip in reading.hips:
        x, y, w, h = (float(v) for v in hip.box)
        flagged = reading.flags.get(hip.side, False)
        colour = FLAG_COLOUR if flagged else BOX_COLOUR
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=width)
        name = CLASS_NAMES.get(hip.predicted_class, hip.predicted_class)
        label = f"{hip.side} hip: {name}, P(fracture) {hip.fracture_probability:.2f}"
        if flagged:
            label += " - CT/MRI suggested"
        above = y - size - 4
        draw.text(
            (x, above if above >= 2 * size else y + h + 4),
            label,
            fill=colour,
            font=font,
            stroke_width=2,
            stroke_fill=(0, 0, 0),
        )
    banner = f"AI OUTPUT - {DISCLAIMER} - model version {reading.version.pk}"
    draw.text(
        (size // 2, image.size[1] - size - size // 2),
        banner,
        fill=(255, 64, 64),
        font=font,
        stroke_width=2,
        stroke_fill=(0, 0, 0),
    )
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def build_overlay(reading: Reading) -> hd.sc.SCImage:
    """The overlay of ``reading`` as a secondary capture in the original study."""
    radiograph = reading.radiograph
    spacing = (
        (radiograph.pixel_spacing_row, radiograph.pixel_spacing_col)
        if radiograph.pixel_spacing_row and radiograph.pixel_spacing_col
        else None
    )
    sc = hd.sc.SCImage(
        pixel_array=overlay_pixels(reading),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        study_instance_uid=reading.original.study_instance_uid,
        series_instance_uid=reading.uid("overlay-series"),
        series_number=OVERLAY_SERIES_NUMBER,
        sop_instance_uid=reading.uid("overlay"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        patient_id="",
        patient_name="",
        patient_birth_date="",
        patient_sex="",
        accession_number="",
        study_id="",
        study_date="",
        study_time="",
        referring_physician_name="",
        pixel_spacing=spacing,
        patient_orientation=("L", "F"),
        series_description=OVERLAY_SERIES_DESCRIPTION,
    )
    sc.BodyPartExamined = "PELVIS"
    sc.BurnedInAnnotation = "YES"
    sc.ImageComments = f"AI OUTPUT: {DISCLAIMER}"
    sc.SoftwareVersions = f"model version {reading.version.pk}"
    sc.DerivationDescription = "Radiograph with the model's heatmaps and hip boxes burned in"
    source = Dataset()
    source.ReferencedSOPClassUID = reading.original.sop_class_uid
    source.ReferencedSOPInstanceUID = reading.original.sop_instance_uid
    sc.SourceImageSequence = [source]
    return sc
