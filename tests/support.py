"""Small helpers shared by the tests that run real processes (workers, PACS, listeners,
private servers): a free loopback port, polling with a clear failure, DICOM variants."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import pydicom
import pytest

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def wait_for(condition: Callable[[], Any], *, what: str, timeout: float = 30.0, output: Callable[[], str] = str) -> Any:
    """Poll ``condition`` until it is true and return its value; fail (with ``output()``, e.g.
    a worker's log) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{output()}", pytrace=False)
        time.sleep(0.05)


def as_ct(data: bytes) -> bytes:
    """The same image as a CT Image Storage instance (a SOP class the site does not take)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    ds.Modality = "CT"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
