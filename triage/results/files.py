"""A reading's results as DICOM files: the bytes of its SR and overlay (downloads, sending) and
``export`` (``manage.py export_results``), written atomically."""

from __future__ import annotations

import io
from pathlib import Path

from pydicom import Dataset

from annotate.models import Radiograph
from common.atomicfile import write_atomic
from triage.results.overlay import build_overlay
from triage.results.reading import Reading, latest_reading
from triage.results.sr import build_sr

KINDS = ("sr", "overlay")


def build(reading: Reading, kind: str) -> Dataset:
    if kind == "sr":
        return build_sr(reading)
    if kind == "overlay":
        return build_overlay(reading)
    raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")


def dicom_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def export(*, radiograph: Radiograph, out: Path) -> dict[str, Path]:
    """Write ``sr.dcm`` and ``overlay.dcm`` of the radiograph's latest reading into ``out``."""
    reading = latest_reading(radiograph=radiograph)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind in KINDS:
        path = out / f"{kind}.dcm"
        write_atomic(path, dicom_bytes(build(reading, kind)))
        written[kind] = path
    return written
