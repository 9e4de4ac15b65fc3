"""Small helpers shared by the tests that run real processes (workers, PACS, listeners,
private servers): polling with a clear failure, DICOM variants; and the role users."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import pydicom
import pytest

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

# The users of the conftest's ``users`` fixture: role -> (username, groups, is_staff).
ROLE_USERS = {
    "researcher": ("alice", ["researcher"], False),
    "adjudicator": ("adam", ["adjudicator"], False),
    "labeler": ("lena", ["labeler"], False),
    "reader": ("rita", ["reader"], False),
    "norole": ("nora", [], False),
    "staff": ("sam", [], True),
}


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


def wait_for_worker(condition: Callable[[], Any], *, what: str, worker: Any, timeout: float = 30.0) -> Any:
    """``wait_for`` that fails with the output of ``worker`` (a tests.celery_worker.CeleryWorker)."""
    return wait_for(condition, what=what, timeout=timeout, output=worker.output)


def as_ct(data: bytes) -> bytes:
    """The same image as a CT Image Storage instance (a SOP class the site does not take)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    ds.Modality = "CT"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
