"""Tests for devtools.phantoms: synthetic AP pelvis radiographs and their COCO ground truth.

No database. Rendering costs ~0.3-0.5 s a radiograph, so the generated set is
small and shared by the tests that only read it.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.management import call_command
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from devtools import phantoms as ph
from devtools.phantom_anatomy import sample_anatomy, sample_hip_spec

SEED = 11
N_STUDIES = 4
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
REQUIRED = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyDate", "StudyTime",
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "Modality", "SeriesDescription",
    "BodyPartExamined", "Manufacturer", "ManufacturerModelName", "InstitutionName", "ReferringPhysicianName",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation",
    "WindowCenter", "WindowWidth", "Rows", "Columns",
)  # fmt: skip


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ph.PhantomSummary, dict]:
    out = tmp_path_factory.mktemp("phantoms")
    ticks: list[int] = []
    summary = ph.generate_phantoms(out, studies=N_STUDIES, seed=SEED, progress=ticks.append)
    assert ticks == [1] * N_STUDIES  # one progress tick per study
    return out, summary, json.loads((out / "annotations.coco.json").read_text())


def _hips(side_cls: dict[str, str], seed: int = 0) -> dict[str, ph.HipSpec]:
    return {s: sample_hip_spec(np.random.default_rng([seed, i]), s, c) for i, (s, c) in enumerate(side_cls.items())}


# --- determinism -------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_studies_do_not_depend_on_n(tmp_path: Path, generated) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    ph.generate_phantoms(a, studies=2, seed=SEED)
    ph.generate_phantoms(b, studies=2, seed=SEED)
    files_a = _files(a)
    assert files_a == _files(b)
    assert sum(name.endswith(".dcm") for name in files_a) >= 2
    # A study's files are the same whatever N: the first two studies of the bigger set match.
    big = _files(generated[0])
    for name, data in files_a.items():
        if name.endswith(".dcm"):
            assert big[name] == data, name


def test_different_seed_gives_different_files(tmp_path: Path, generated) -> None:
    ph.generate_phantoms(tmp_path, studies=1, seed=SEED + 1)
    first = json.loads((tmp_path / "annotations.coco.json").read_text())["images"][0]["file_name"]
    other, ours = pydicom.dcmread(tmp_path / first), pydicom.dcmread(generated[0] / first)
    assert other.SOPInstanceUID != ours.SOPInstanceUID and other.StudyInstanceUID != ours.StudyInstanceUID
    assert other.PatientID != ours.PatientID and other.PatientName != ours.PatientName
    assert other.PixelData != ours.PixelData


# --- DICOM content -----------------------------------------------------------------------


def test_files_are_valid_cr_dx_dicom_with_required_attributes(generated) -> None:
    out, summary, coco = generated
    plans = {p.study_uid: p for p in ph.plan_studies(SEED, N_STUDIES)}
    assert summary.radiographs == len(coco["images"]) == len(list(out.rglob("*.dcm")))
    for image in coco["images"]:
        path = out / image["file_name"]
        assert path.read_bytes()[128:132] == b"DICM"
        ds = pydicom.dcmread(path)
        for kw in REQUIRED:
            assert kw in ds, f"{image['file_name']} lacks {kw}"
        scanner = plans[ds.StudyInstanceUID].scanner  # the file says what the planned scanner writes
        assert ds.Modality == scanner.modality
        assert ds.SOPClassUID == (CR_STORAGE if ds.Modality == "CR" else DX_PRESENTATION)
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == image["sop_instance_uid"]
        assert ds.file_meta.TransferSyntaxUID == (RLELossless if scanner.rle else ExplicitVRLittleEndian)
        assert ds.PhotometricInterpretation == scanner.photometric
        assert ds.BitsAllocated == 16 and 12 <= ds.BitsStored <= 16 and ds.HighBit == ds.BitsStored - 1
        assert ds.PixelRepresentation == 0 and ds.SamplesPerPixel == 1
        assert ("RescaleSlope" in ds) == (scanner.rescale is not None)
        spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
        assert 0.13 <= float(spacing[0]) <= 0.21
        arr = ds.pixel_array
        assert arr.shape == (ds.Rows, ds.Columns) == (image["height"], image["width"])
        assert arr.dtype == np.uint16 and int(arr.max()) < 2**ds.BitsStored
        assert arr.std() > 0.05 * 2**ds.BitsStored  # an image, not a constant
        if image["view"] != "cross_table_lateral":
            assert 1900 <= ds.Rows <= 3000 and 1900 <= ds.Columns <= 3000
        # Synthetic but realistic identifiers, distinctive enough to grep for after pseudonymisation.
        assert re.fullmatch(r"MRN\d{7}", ds.PatientID) and ds.PatientID == image["patient"]
        assert re.fullmatch(r"[A-Z' -]+\^[A-Z]+\^[A-Z]", str(ds.PatientName))
        assert re.fullmatch(r"A\d{8}", ds.AccessionNumber) and ds.AccessionNumber == image["accession"]
        assert re.fullmatch(r"(19|20)\d{6}", ds.PatientBirthDate) and ds.PatientBirthDate < ds.StudyDate
        assert ds.PatientSex in ("F", "M")


def test_scanners_vary_modality_photometric_bits_and_syntax() -> None:
    scanners = [plan.scanner for plan in ph.plan_studies(SEED, 60)]
    assert {s.modality for s in scanners} == {"CR", "DX"}
    assert {s.photometric for s in scanners} == {"MONOCHROME1", "MONOCHROME2"}
    assert {s.rle for s in scanners} == {True, False}
    assert any(s.rescale for s in scanners) and not all(s.rescale for s in scanners)
    assert min(s.bits for s in scanners) == 12 and max(s.bits for s in scanners) == 16


def test_patients_have_distinct_identifiers_and_one_to_three_studies() -> None:
    plans = ph.plan_studies(SEED, 200)
    patients = {p.patient.number: p.patient for p in plans}
    assert len({p.patient_id for p in patients.values()}) == len(patients)
    assert len({p.name for p in patients.values()}) == len(patients)
    assert len({p.accession for p in plans}) == len(plans) == 200
    per_patient = Counter(p.patient.number for p in plans)
    assert set(per_patient.values()) <= {1, 2, 3} and max(per_patient.values()) > 1
    images = [i for p in plans for i in p.images]
    assert all(p.images[0].view == "ap" and 1 <= len(p.images) <= 3 for p in plans)
    assert any(i.view == "frog_leg" for i in images)
    assert 0.005 < sum(i.view == "cross_table_lateral" for i in images) / len(images) < 0.08


# --- ground truth ------------------------------------------------------------------------


def test_coco_boxes_one_per_hip_with_sides_matching_the_image(generated) -> None:
    out, summary, coco = generated
    assert [(c["id"], c["name"]) for c in coco["categories"]] == list(enumerate(ph.CLASSES, start=1))
    images = {i["id"]: i for i in coco["images"]}
    by_image: dict[int, list[dict]] = {i: [] for i in images}
    for ann in coco["annotations"]:
        by_image[ann["image_id"]].append(ann)
        image = images[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= image["width"] + 1e-6 and y + h <= image["height"] + 1e-6
        assert ann["area"] == pytest.approx(w * h, rel=1e-3) and ann["iscrowd"] == 0
        assert 1 <= ann["category_id"] <= 6
        assert 0.6 < w / h < 1.6 and 60 / 0.2 < w < 150 / 0.139  # a labeller's roughly square hip box
        attrs = ann["attributes"]
        assert (attrs["patient"], attrs["accession"]) == (image["patient"], image["accession"])
        # Patient's left hip lies on the image's right half of an AP film.
        centre = x + w / 2
        assert (centre > image["width"] / 2) == (attrs["side"] == "left")
    for image_id, anns in by_image.items():
        if images[image_id]["view"] == "cross_table_lateral":
            assert anns == [] and images[image_id]["exclude"] == "cross_table_lateral"
        else:
            assert sorted(a["attributes"]["side"] for a in anns) == ["left", "right"]
            assert "exclude" not in images[image_id]
    counted = Counter(ph.CLASSES[a["category_id"] - 1] for a in coco["annotations"])
    assert {k: v for k, v in summary.hips.items() if v} == dict(counted)


def test_cross_table_lateral_has_no_hips_and_is_marked_excluded(tmp_path: Path) -> None:
    # Find a seed whose first study has a cross-table lateral, from the plan alone.
    seed = next(s for s in range(500) if any(i.view == "cross_table_lateral" for i in ph.plan_studies(s, 1)[0].images))
    summary = ph.generate_phantoms(tmp_path, studies=1, seed=seed)
    coco = json.loads(summary.coco_path.read_text())
    xt = [i for i in coco["images"] if i["view"] == "cross_table_lateral"]
    assert len(xt) == 1 and xt[0]["exclude"] == "cross_table_lateral" and summary.excluded == 1
    assert not [a for a in coco["annotations"] if a["image_id"] == xt[0]["id"]]
    ds = pydicom.dcmread(tmp_path / xt[0]["file_name"])
    assert "CROSS-TABLE" in ds.SeriesDescription and ds.ViewPosition in ("RL", "LL")


def test_hip_classes_follow_the_paper_frequencies() -> None:
    rng = np.random.default_rng(0)
    labels = [c for _ in range(2000) for c in ph.sample_hip_classes(rng)]
    freq = Counter(labels)
    for cls, target in ph.HIP_FREQUENCIES.items():
        assert freq[cls] / len(labels) == pytest.approx(target, abs=0.025), cls
    # Over a generated set (200 studies, 400 hips) the mix stays close, hardware kept over follow-ups.
    hips = Counter(h.cls for p in ph.plan_studies(SEED, 200) for h in p.hips.values())
    for cls, target in ph.HIP_FREQUENCIES.items():
        assert hips[cls] / 400 == pytest.approx(target, abs=0.06), cls


# --- rendering ---------------------------------------------------------------------------


def _render(cls: str, view: str = "ap", scanner: int = 2) -> ph.Rendered:
    anatomy = sample_anatomy(np.random.default_rng(5))
    hips = _hips({"right": cls, "left": "normal"}, seed=5)
    return ph.render_radiograph(np.random.default_rng(9), ph.SCANNERS[scanner], hips, view, anatomy=anatomy)


def test_a_fracture_changes_pixels_inside_its_box_only() -> None:
    normal, broken = _render("normal"), _render("fn_displaced")
    assert normal.pixels.shape == broken.pixels.shape
    diff = np.abs(normal.pixels.astype(np.int32) - broken.pixels.astype(np.int32))

    def mean_in(box: tuple[float, float, float, float]) -> float:
        x, y, w, h = (int(v) for v in box)
        return float(diff[y : y + h, x : x + w].mean())

    inside, other_hip = mean_in(broken.boxes["right"]), mean_in(broken.boxes["left"])
    assert inside > 20 and inside > 10 * other_hip


def _saturated(r: ph.Rendered, side: str) -> float:
    x, y, w, h = (int(v) for v in r.boxes[side])
    return float((r.pixels[y : y + h, x : x + w] >= 0.97 * 4095).mean())


def test_hardware_is_brighter_than_bone() -> None:
    for cls in ("orif", "arthroplasty"):
        r = _render(cls, scanner=2)  # MONOCHROME2, 12 bits: attenuation is bright, metal saturates
        assert _saturated(r, "right") > 0.05 and _saturated(r, "right") > 5 * _saturated(r, "left"), cls


def test_render_radiograph_is_fast_enough_and_in_range() -> None:
    import time

    start = time.perf_counter()
    r = _render("intertrochanteric", scanner=0)
    elapsed = time.perf_counter() - start
    assert r.pixels.dtype == np.uint16 and int(r.pixels.max()) <= 4095
    assert elapsed < 10.0  # ~0.3-0.5 s on one core; only catches gross slowdowns on loaded machines
    frog = _render("normal", view="frog_leg")
    assert set(frog.boxes) == {"left", "right"}
    xt = _render("normal", view="cross_table_lateral")
    assert xt.boxes == {} and xt.side in ("left", "right")


# --- make_dataset ------------------------------------------------------------------------


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, RLELossless])
def test_make_dataset_round_trips(syntax: str) -> None:
    pixels = (np.arange(64 * 80, dtype=np.uint16).reshape(64, 80) * 3) % 16384
    ds = ph.make_dataset(pixels, transfer_syntax=syntax, Modality="CR", PhotometricInterpretation="MONOCHROME1",
                         BitsStored=14, PatientID="MRN7654321", ViewPosition=None)  # fmt: skip
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    back = pydicom.dcmread(io.BytesIO(buf.getvalue()))
    assert back.SOPClassUID == CR_STORAGE and back.HighBit == 13 and back.PatientID == "MRN7654321"
    assert "ViewPosition" not in back and back.file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(back.pixel_array, pixels)
    # Equal inputs, equal UIDs; other inputs, other UIDs.
    same = [ph.make_dataset(pixels, Modality="CR").SOPInstanceUID for _ in range(2)]
    assert same[0] == same[1]
    assert ph.make_dataset(pixels).SOPInstanceUID != ph.make_dataset(pixels + 1).SOPInstanceUID
    assert ph.make_dataset(pixels).SOPClassUID == DX_PRESENTATION
    with pytest.raises(ValueError):
        ph.make_dataset(pixels, NotAKeyword=1)


# --- wiring ------------------------------------------------------------------------------


def test_module_does_not_import_django() -> None:
    code = "import sys, devtools.phantoms; sys.exit('django' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2]).returncode == 0


def test_management_command_writes_files_and_prints_a_summary(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("make_phantoms", studies=1, seed=3, out=str(tmp_path / "ph"), stdout=out, stderr=err)
    line = out.getvalue().strip()
    assert line.startswith("1 studies") and "radiographs" in line and "normal=" in line
    assert (tmp_path / "ph" / "annotations.coco.json").exists()
    assert list((tmp_path / "ph").rglob("*.dcm"))
