"""python manage.py import_dicom: output, exit status and idempotency."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pydicom
import pytest
from django.core.management import call_command

from annotate.models import Radiograph

pytestmark = pytest.mark.django_db

PYDICOM_TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
SUMMARY = re.compile(r"^imported: (\d+), already present: (\d+), rejected: (\d+)$")


def run(*paths: Path) -> tuple[list[str], tuple[int, int, int]]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_dicom", *map(str, paths), "--no-progress", stdout=out, stderr=err)
    lines = out.getvalue().splitlines()
    assert "Traceback" not in out.getvalue() + err.getvalue()
    summary = [line for line in lines if SUMMARY.match(line)]
    assert len(summary) == 1 and lines[-1] == summary[0]
    return lines[:-1], tuple(int(n) for n in SUMMARY.match(summary[0]).groups())


def test_prints_each_rejection_and_one_summary(tmp_path, dicom_bytes):
    tmp_path = tmp_path / "in"
    tmp_path.mkdir()
    (tmp_path / "good.dcm").write_bytes(dicom_bytes(seed=1))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "good2.dcm").write_bytes(dicom_bytes(seed=2))
    (tmp_path / "notes.txt").write_text("a note")
    lines, counts = run(tmp_path)
    assert counts == (2, 0, 1)
    assert lines == [f"rejected {tmp_path / 'notes.txt'}: not a DICOM file"]
    # A second run imports nothing and says so.
    lines, counts = run(tmp_path)
    assert counts == (0, 2, 1)


def test_missing_path_is_reported_not_raised(tmp_path):
    lines, counts = run(tmp_path / "nowhere")
    assert counts == (0, 0, 1)
    assert lines == [f"rejected {tmp_path / 'nowhere'}: no such file or folder"]


def test_pydicom_test_files(caplog):
    """Every single-frame grayscale image shipped with pydicom is imported,
    everything else is rejected with a reason, and nothing raises."""
    lines, (imported, present, rejected) = run(PYDICOM_TEST_FILES)
    reasons = {Path(line.split(": ", 1)[0].removeprefix("rejected ")).relative_to(PYDICOM_TEST_FILES).as_posix():
               line.split(": ", 1)[1] for line in lines}  # fmt: skip
    for name in ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "MR_small_jp2klossless.dcm",
                 "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm",
                 "MR_small_implicit.dcm", "image_dfl.dcm", "JPGExtended.dcm", "JPEGLSNearLossless_16.dcm",
                 "MR_small_expb.dcm", "dicomdirtests/77654033/CR1/6154"]:  # fmt: skip
        assert name not in reasons, f"{name} was rejected: {reasons.get(name)}"
    expected = {
        "SC_rgb_rle.dcm": "colour",
        "examples_palette.dcm": "palette",
        "SC_rgb_rle_2frame.dcm": "colour",
        "test-SR.dcm": "structured report",
        "rtplan.dcm": "RT Plan",
        "rtdose_1frame.dcm": "RT Dose",
        "waveform_ecg.dcm": "waveform",
        "MR_truncated.dcm": "truncated",
        "README.txt": "not a DICOM file",
    }
    for name, reason in expected.items():
        assert reason in reasons[name], (name, reasons[name])
    assert Radiograph.objects.count() == imported
    assert imported >= 10 and rejected > 50
    # MR_small in other transfer syntaxes is the same instance: already present.
    assert present >= 1
