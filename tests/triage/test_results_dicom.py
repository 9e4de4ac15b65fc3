"""The SR and the overlay of a reading: valid DICOM (dciodvfy), rendered by DCMTK's dsrdump, read
back by pydicom/highdicom with the stored values, referencing the original image's UIDs."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from django.core.management import call_command

from ml.core.vocab import CLASS_NAMES, CLASSES
from ml.models import HipPrediction
from triage.results.overlay import OVERLAY_SERIES_DESCRIPTION, build_overlay
from triage.results.reading import DISCLAIMER, latest_reading
from triage.results.sr import SCHEME, build_sr

pytestmark = pytest.mark.django_db

DCIODVFY = "/usr/bin/dciodvfy"


def dciodvfy_errors(path: Path) -> list[str]:
    if not Path(DCIODVFY).exists():
        pytest.skip("dciodvfy is not installed (apt-get install dicom3tools)")
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, check=False)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def test_export_results_writes_valid_sr_and_overlay(read_radiograph, sent_bytes, tmp_path):
    call_command("export_results", radiograph=read_radiograph.pk, out=str(tmp_path))
    sr_path, overlay_path = tmp_path / "sr.dcm", tmp_path / "overlay.dcm"
    assert dciodvfy_errors(sr_path) == []
    assert dciodvfy_errors(overlay_path) == []
    sent = pydicom.dcmread(io.BytesIO(sent_bytes))
    sr = pydicom.dcmread(sr_path)
    overlay = pydicom.dcmread(overlay_path)
    # The original study, as the PACS sent it; the SR's evidence names the original image.
    assert sr.StudyInstanceUID == overlay.StudyInstanceUID == sent.StudyInstanceUID
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == sent.StudyInstanceUID
    series = evidence.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == sent.SeriesInstanceUID
    assert series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == sent.SOPInstanceUID
    assert overlay.SourceImageSequence[0].ReferencedSOPInstanceUID == sent.SOPInstanceUID
    # Nothing identifying the patient: the platform keeps no identifier to put there.
    for ds in (sr, overlay):
        assert ds.PatientID == "" and str(ds.PatientName) == "" and ds.get("AccessionNumber", "") == ""
        assert b"MRN-H17" not in ds.to_json().encode() and b"TESTPERSON" not in ds.to_json().encode()
    assert "AI OUTPUT" in overlay.SeriesDescription == OVERLAY_SERIES_DESCRIPTION
    assert overlay.BurnedInAnnotation == "YES"
    assert (overlay.Rows, overlay.Columns) == (read_radiograph.rows, read_radiograph.columns)


def test_sr_read_back_by_highdicom_with_the_stored_values(read_radiograph):
    reading = latest_reading(radiograph=read_radiograph)
    sr = hd.sr.srread(io.BytesIO(_bytes(build_sr(reading))))
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == 2
    stored = {hip.side: hip for hip in HipPrediction.objects.filter(radiograph=read_radiograph)}
    for group in groups:
        side = group.finding_sites[0].laterality.meaning.lower()
        hip = stored[side]
        values = {m.name.value: m.value for m in group.get_measurements()}
        for i, p in enumerate(hip.probabilities):
            assert values[f"P{i + 1}"] == pytest.approx(p)
        assert values["PFX"] == pytest.approx(hip.fracture_probability)
        evaluations = {e.name.value: e.value for e in group.get_qualitative_evaluations()}
        top = [evaluations["TOP1"], evaluations["TOP2"]]
        assert [CLASSES[int(code.value[1:]) - 1] for code in top] == hip.top2
        assert [code.meaning for code in top] == [CLASS_NAMES[key] for key in hip.top2]
        assert top[0].scheme_designator == SCHEME
        assert evaluations["CTMRI"].meaning == ("Yes" if side == "left" else "No")
        region = group.roi
        x, y, w, h = hip.box
        assert region.value.tolist()[0] == [x, y] and region.value.tolist()[2] == [x + w, y + h]
    algorithm = groups[0].get_algorithm_id() if hasattr(groups[0], "get_algorithm_id") else None
    text = sr.to_json()
    assert DISCLAIMER in text and "bundle_sha256=" + "ab" * 32 in text and "test_time=zoom-average" in text
    assert algorithm is None or "model version" in str(algorithm)


def test_dsrdump_renders_each_hip(read_radiograph, tmp_path):
    if not shutil.which("dsrdump"):
        pytest.skip("DCMTK's dsrdump is not installed")
    path = tmp_path / "sr.dcm"
    build_sr(latest_reading(radiograph=read_radiograph)).save_as(path, enforce_file_format=True)
    out = subprocess.run(["dsrdump", "-Ee", "+Pl", "+Pc", str(path)], capture_output=True, text=True, check=True).stdout
    assert "Imaging Measurement Report" in out and DISCLAIMER in out
    groups = out.split('(125007,DCM,"Measurement Group")')[1:]
    assert len(groups) == 2
    for group, side, top1, flag in zip(
        groups, ("Right", "Left"), ("Displaced femoral neck fracture", "Normal"), ("No", "Yes"), strict=True
    ):
        assert '"Laterality")=(' in group and f'"{side}")' in group
        assert '"Most probable class")=(C' in group and f'"{top1}")' in group
        assert '"CT or MRI suggested' in group and f'SCT,"{flag}")' in group
        assert "SCOORD" in group and "POLYLINE" in group
    assert out.count("Hip read by the model") == 2
    assert "Displaced femoral neck fracture" in out and "Normal" in out


def test_results_uids_are_deterministic_per_reading(read_radiograph):
    first = latest_reading(radiograph=read_radiograph)
    again = latest_reading(radiograph=read_radiograph)
    assert build_sr(first).SOPInstanceUID == build_sr(again).SOPInstanceUID
    assert first.uid("overlay") == again.uid("overlay") != first.uid("sr")
    assert build_overlay(first).SOPInstanceUID == first.uid("overlay")


def _bytes(ds) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
