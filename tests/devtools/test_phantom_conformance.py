"""The synthetic radiographs are valid CR and DX DICOM: every scanner, view, side and transfer syntax
passes dciodvfy (dicom3tools) with no error, and conforming changed neither the pixels as the
platform decodes them nor the ground truth (digests recorded from the files before the change).
The tests' small CR (devtools.dicom.make_dicom) passes too.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from annotate.archive.dicom import decode_dicom
from devtools import phantoms as ph
from devtools.dicom import make_dicom

DCIODVFY = shutil.which("dciodvfy")
needs_dciodvfy = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy not installed (apt install dicom3tools)")
KINDS = (("ap", ""), ("frog_leg", ""), ("cross_table_lateral", "right"), ("cross_table_lateral", "left"))
# `make_phantoms --studies 12 --seed 1` (the set the conformance issue measured): digests of the
# decoded pixels with their display window, and of the ground truth, as the files gave them before
# they were made conformant. A change here means the pixels or the truth changed.
STUDIES, SEED = 12, 1
PIXELS_DIGEST = "b1922edcd5f5a5a149a12ba7934cd4b6249bf58cad07bd0365780ef231b5e681"
TRUTH_DIGEST = "eed2d0c82099e447ce8359867e0c025fa166aa9c4e9ad54fb6b653150191a120"


def dciodvfy_errors(path: Path) -> list[str]:
    """The "Error" lines dciodvfy reports for one file (it writes its findings to stderr)."""
    assert DCIODVFY is not None
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=120, check=False)
    return [f"{path.name}: {line}" for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def digests(out: Path) -> tuple[str, str]:
    """(pixels, truth) digests of a generated set: decoded pixels and display window per image, in
    COCO order; class, box, side and subtype per hip."""
    coco = json.loads((out / "annotations.coco.json").read_text())
    pixels = hashlib.sha256()
    for image in coco["images"]:
        img = decode_dicom((out / image["file_name"]).read_bytes())
        window = (round(img.window_center, 3), round(img.window_width, 3))
        pixels.update(f"{image['file_name']} {img.pixels.shape} {img.pixels.dtype} {window}\n".encode())
        pixels.update(hashlib.sha256(img.pixels.tobytes()).digest())
    truth = [(a["image_id"], a["category_id"], a["bbox"], a["attributes"]) for a in coco["annotations"]]
    return pixels.hexdigest(), hashlib.sha256(json.dumps(truth, sort_keys=True).encode()).hexdigest()


@needs_dciodvfy
def test_every_scanner_view_and_side_passes_dciodvfy(tmp_path: Path) -> None:
    plan = ph.plan_studies(3, 1)[0]
    written: list[pydicom.Dataset] = []
    errors: list[str] = []
    for scanner in ph.SCANNERS:
        for view, side in KINDS:
            image = ph.ImagePlan(1, view, side)
            rng = np.random.default_rng([3, 2, len(written)])
            rendered = ph.render_radiograph(
                rng, scanner, plan.hips, view, anatomy=plan.patient.anatomy, shape=(200, 240), xt_side=side or None
            )
            ds = ph._study_dataset(3, replace(plan, scanner=scanner), image, rendered)
            path = tmp_path / f"{scanner.key}-{view}-{side or 'both'}.dcm"
            ds.save_as(path, enforce_file_format=True)
            errors += dciodvfy_errors(path)
            written.append(pydicom.dcmread(path, stop_before_pixels=True))
    assert errors == []
    # What was checked covers every kind the phantoms write.
    assert {d.Modality for d in written} == {"CR", "DX"}
    assert {d.PhotometricInterpretation for d in written} == {"MONOCHROME1", "MONOCHROME2"}
    assert {d.file_meta.TransferSyntaxUID for d in written} == {ExplicitVRLittleEndian, RLELossless}
    assert {d.ImageLaterality for d in written} == {"B", "R", "L"}
    for d in written:
        assert d.AnatomicRegionSequence[0].CodingSchemeDesignator == "SCT"
        if d.Modality == "DX":
            assert d.RescaleIntercept == 0 and d.RescaleSlope == 1
            shape = {"MONOCHROME1": "INVERSE", "MONOCHROME2": "IDENTITY"}[d.PhotometricInterpretation]
            assert d.PresentationLUTShape == shape
            assert d.ViewCodeSequence[0].CodingSchemeDesignator == "SCT"


@needs_dciodvfy
def test_the_issue_set_passes_dciodvfy_with_pixels_and_truth_unchanged(tmp_path: Path) -> None:
    summary = ph.generate_phantoms(tmp_path, studies=STUDIES, seed=SEED)
    files = sorted(tmp_path.rglob("*.dcm"))
    assert len(files) == summary.radiographs == 19
    assert [e for path in files for e in dciodvfy_errors(path)] == []
    assert digests(tmp_path) == (PIXELS_DIGEST, TRUTH_DIGEST)


@needs_dciodvfy
@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_the_tests_small_cr_passes_dciodvfy(tmp_path: Path, photometric: str) -> None:
    path = tmp_path / "small.dcm"
    path.write_bytes(make_dicom(photometric=photometric))
    assert dciodvfy_errors(path) == []
