"""Synthetic AP pelvis radiographs (DICOM) with hip-box ground truth (COCO).

A stand-in for the paper's hospital archive: patients with one to three studies on a few simulated
CR/DX scanners, each hip one of the six classes; ``generate_phantoms(out_dir, studies=N, seed=S)``
is byte-identical for the same seed and N.
Design: docs/architecture/design-dicom.md
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, RLELossless
from scipy import ndimage, special

from devtools.phantom_anatomy import CLASSES, Anatomy, HipSpec, render_attenuation, sample_anatomy, sample_hip_spec
from devtools.phantom_conformance import conform
from ml.core.vocab import FRACTURE_CLASSES

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
VIEWS = ("ap", "frog_leg", "cross_table_lateral")

# Per-hip class frequencies of the paper (approximately). The index hip (the
# reason for the study) and the other hip draw from different distributions,
# mostly normal or hardware for the other one, averaging to these.
HIP_FREQUENCIES = dict(zip(CLASSES, (0.40, 0.20, 0.07, 0.20, 0.07, 0.06), strict=True))
_OTHER_HIP = dict(zip(CLASSES, (0.70, 0.06, 0.03, 0.07, 0.06, 0.08), strict=True))
_INDEX_HIP = {k: 2 * HIP_FREQUENCIES[k] - _OTHER_HIP[k] for k in CLASSES}
_HARDWARE = ("orif", "arthroplasty")


@dataclass(frozen=True)
class Scanner:
    """A simulated acquisition device and the way it writes its files."""

    key: str
    manufacturer: str
    model: str
    modality: str  # CR or DX
    bits: int
    photometric: str
    spacing: float  # mm
    noise: float  # white noise per pixel, fraction of the used range
    mottle: float  # coarser, correlated noise
    contrast: float  # slope of the tone curve
    gamma: float
    equalise: float  # strength of the large-scale equalisation
    edge: float  # unsharp-mask gain
    used: tuple[float, float]  # fraction of the stored range used
    rescale: tuple[float, float] | None  # RescaleSlope, RescaleIntercept
    rle: bool
    spacing_tags: tuple[str, ...]
    institution: str
    weight: float


# fmt: off
SCANNERS = (  # key, maker, model, modality, bits, photometric, spacing, noise, mottle, contrast, gamma, equalise,
    # edge, used range, rescale, RLE, spacing attributes, institution, share of studies
    Scanner("fuji_cr", "FUJIFILM Corporation", "FCR CAPSULA XLII", "CR", 12, "MONOCHROME1", 0.150, 0.030, 0.010,
            2.4, 1.0, 0.65, 0.6, (0.03, 0.97), None, False, ("PixelSpacing",), "ST. ELSEWHERE GENERAL HOSPITAL", 0.25),
    Scanner("agfa_cr", "Agfa", "CR 85-X", "CR", 16, "MONOCHROME2", 0.160, 0.026, 0.012, 2.0, 1.15, 0.55, 0.4,
            (0.05, 0.92), (0.5, 0.0), False, ("ImagerPixelSpacing",), "LAKESIDE COMMUNITY HOSPITAL", 0.15),
    Scanner("siemens_dx", "SIEMENS", "Ysio Max", "DX", 12, "MONOCHROME2", 0.148, 0.016, 0.006, 2.0, 0.9, 0.7, 0.8,
            (0.0, 1.0), (1.0, 0.0), False, ("ImagerPixelSpacing", "PixelSpacing"), "ST. ELSEWHERE GENERAL HOSPITAL",
            0.25),
    Scanner("ge_dx", "GE Healthcare", "Discovery XR656", "DX", 14, "MONOCHROME1", 0.200, 0.014, 0.006, 1.7, 1.05,
            0.75, 0.7, (0.1, 0.85), (1.0, 0.0), False, ("ImagerPixelSpacing", "PixelSpacing"),
            "NORTHGATE ORTHOPAEDIC CENTRE", 0.15),
    Scanner("carestream_dx", "Carestream Health", "DRX-Evolution", "DX", 12, "MONOCHROME1", 0.139, 0.020, 0.008, 2.8,
            1.0, 0.6, 1.0, (0.02, 0.95), (1.0, 0.0), True, ("ImagerPixelSpacing", "PixelSpacing"),
            "LAKESIDE COMMUNITY HOSPITAL", 0.20),
)
# fmt: on


def sample_hip_classes(rng: np.random.Generator) -> tuple[str, str]:
    """(right, left) hip classes: an index hip and an other hip, side at random."""
    index = str(rng.choice(CLASSES, p=[_INDEX_HIP[k] for k in CLASSES]))
    other = str(rng.choice(CLASSES, p=[_OTHER_HIP[k] for k in CLASSES]))
    return (index, other) if rng.uniform() < 0.5 else (other, index)


# --- image formation ---------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """One radiograph in memory: stored pixel values and ground truth."""

    pixels: np.ndarray  # uint16 stored values (MONOCHROME1 already inverted)
    boxes: dict[str, tuple[float, float, float, float]]  # side -> (x, y, w, h), pixels
    spacing: float
    window: tuple[float, float]  # centre, width in stored units
    view: str
    scanner: Scanner
    side: str = ""  # the hip a cross-table lateral shows


# Inverse normal CDF on 256 levels: Gaussian-looking noise from uint8 draws,
# several times faster than standard_normal at 6 million pixels.
_NOISE_LUT = special.ndtri((np.arange(256) + 0.5) / 256).astype(np.float32)


def _lowpass(a: np.ndarray, sigma_px: float) -> np.ndarray:
    """Wide Gaussian blur done at 1/8 resolution (the equalisation needs ~35 mm)."""
    k = 8
    h, w = a.shape
    hp, wp = -(-h // k) * k, -(-w // k) * k
    small = np.pad(a, ((0, hp - h), (0, wp - w)), mode="edge").reshape(hp // k, k, wp // k, k).mean((1, 3))
    small = ndimage.gaussian_filter(small, sigma_px / k, mode="nearest")
    big = np.asarray(Image.fromarray(small.astype(np.float32), mode="F").resize((wp, hp), Image.Resampling.BILINEAR))
    return big[:h, :w]


def render_radiograph(rng: np.random.Generator, scanner: Scanner, hips: dict[str, HipSpec] | Iterable[HipSpec],
                      view: str = "ap", *, anatomy: Anatomy | None = None, shape: tuple[int, int] | None = None,
                      xt_side: str | None = None) -> Rendered:  # fmt: skip
    """Render one radiograph. ``hips`` maps "right"/"left" to a HipSpec (needed
    for every view; the cross-table lateral draws one of them). The rng draws
    never depend on the hip classes: the same rng state with other classes gives
    the same patient, pose and noise, so a class changes only its own hip."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}")
    hips = hips if isinstance(hips, dict) else {h.side: h for h in hips}
    anat = anatomy if anatomy is not None else sample_anatomy(rng)
    sp = scanner.spacing
    if view == "cross_table_lateral":  # smaller cassette
        field_mm, lim = (rng.uniform(230, 300), rng.uniform(210, 260)), (1500, 2400)
    else:
        field_mm, lim = (rng.uniform(340, 430), rng.uniform(280, 355)), (1900, 3000)
    cols, rows = (int(np.clip(f / sp, *lim)) for f in field_mm)
    if shape is not None:
        rows, cols = shape
    f = max(2, round(0.45 / sp))
    lr, lc = -(-rows // f), -(-cols // f)
    px = sp * f
    expo = {"gain": rng.uniform(0.92, 1.08), "bias": rng.uniform(-0.04, 0.04), "dose": rng.lognormal(0.0, 0.3)}
    noise_rng = np.random.default_rng(rng.integers(2**63))
    cv, boxes_mm, side = render_attenuation(rng, anat, hips, view, lr, lc, px, xt_side)

    # Log-domain processing as a modality does it: flatten the soft-tissue
    # ramp, sharpen edges, then a sigmoid tone curve. All at the coarse grid.
    base = cv.soft + cv.bone
    a = base + np.minimum(cv.metal, 1.2)
    p = a - scanner.equalise * _lowpass(base, 35.0 / px)
    e = p + scanner.edge * (p - ndimage.gaussian_filter(p, 1.6 / px))
    body = (cv.soft > 0.6) & (cv.metal < 0.05) & cv.ref
    samples = e[::3, ::3][body[::3, ::3]]
    if samples.size < 100:
        samples = e.ravel()
    # Soft tissue (the bulk of the body) to ~0.3, dense cortex to ~0.85: metal saturates.
    lo, hi = (float(x) for x in np.percentile(samples, [30.0, 99.7]))
    v = np.clip(0.3 + 0.55 * (e - lo) / max(hi - lo, 1e-3), 0.0, 1.3)
    v **= scanner.gamma
    k = scanner.contrast
    v = 0.5 + (0.5 / math.tanh(k * 0.5)) * np.tanh(k * (v - 0.5))
    v = np.clip(v * expo["gain"] + expo["bias"], 0.0, 1.0)
    sigma = 1.0 / math.sqrt(float(expo["dose"]))
    v += (scanner.mottle * sigma) * _NOISE_LUT[noise_rng.integers(0, 256, size=v.shape, dtype=np.uint8)]

    # Stored values at the coarse grid (interpolation commutes with this linear
    # map), then one bicubic upsampling and white noise at full resolution.
    maxval = (1 << scanner.bits) - 1
    d0, d1 = scanner.used[0] * maxval, scanner.used[1] * maxval
    vb = v[body] if body.any() else v.ravel()
    w_lo, w_hi = (d0 + float(q) * (d1 - d0) for q in np.percentile(vb[::5], [0.5, 99.9]))
    centre, width = (w_lo + w_hi) / 2, max(w_hi - w_lo, 1.0) * 1.1
    sv = d0 + (d1 - d0) * v
    amp = (scanner.noise * sigma * (d1 - d0)) * (0.6 + 0.8 * np.clip(v, 0.0, 1.0))
    if scanner.photometric == "MONOCHROME1":
        sv = maxval - sv
        centre = maxval - centre
    sv = sv.astype(np.float32)
    full = np.asarray(Image.fromarray(sv, mode="F").resize((lc * f, lr * f), Image.Resampling.BICUBIC))[:rows, :cols]
    amp_full = np.repeat(np.repeat(amp.astype(np.float32), f, 0), f, 1)[:rows, :cols]
    noise = _NOISE_LUT[noise_rng.integers(0, 256, size=(rows, cols), dtype=np.uint8)]
    noise *= amp_full
    noise += full
    np.clip(noise, 0, maxval, out=noise)
    noise += 0.5
    pixels = noise.astype(np.uint16)
    boxes = {}
    for s, (x0, y0, x1, y1) in boxes_mm.items():  # to full-resolution pixels, 0.1 px steps, inside the image
        x, y = math.floor(10 * x0 / sp) / 10, math.floor(10 * y0 / sp) / 10
        boxes[s] = (
            x,
            y,
            math.floor(10 * (min(x1 / sp, cols) - x)) / 10,
            math.floor(10 * (min(y1 / sp, rows) - y)) / 10,
        )
    return Rendered(pixels, boxes, sp, (round(float(centre), 1), round(float(width), 1)), view, scanner, side)


# --- DICOM ---------------------------------------------------------------------


def derived_uid(*parts: object) -> str:
    """Deterministic "2.25" UID (a UUID from a hash of ``parts``). pydicom's
    generate_uid(prefix=None) ignores its entropy sources and is random."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


def make_dataset(pixels: np.ndarray, *, transfer_syntax: str = ExplicitVRLittleEndian, **overrides) -> Dataset:
    """A complete single-frame CR/DX dataset (with file meta) around ``pixels``.

    Keyword arguments are DICOM keywords (``Modality="CR"``,
    ``PhotometricInterpretation="MONOCHROME1"``, ``BitsStored=14``...); ``None``
    removes an attribute. SOPClassUID follows Modality unless given. UIDs not
    given derive from the pixels and overrides, so equal inputs give equal
    files. ``transfer_syntax=RLELossless`` compresses the pixel data."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError("pixels must be a 2-D array")
    pixels = np.ascontiguousarray(pixels, dtype="<u2")
    for key in overrides:
        if tag_for_keyword(key) is None:
            raise ValueError(f"{key!r} is not a DICOM keyword")
    digest = hashlib.sha256(pixels.tobytes() + repr(sorted(overrides.items())).encode()).hexdigest()
    rows, cols = pixels.shape
    ds = Dataset()
    defaults = {
        "SpecificCharacterSet": "ISO_IR 100",
        "ImageType": ["ORIGINAL", "PRIMARY"],
        "Modality": "DX",
        "PatientName": "DOE^JANE",
        "PatientID": "MRN0000000",
        "PatientBirthDate": "19400101",
        "PatientSex": "F",
        "StudyDate": "20200101",
        "StudyTime": "120000",
        "AccessionNumber": "A00000000",
        "ReferringPhysicianName": "",
        "StudyID": "1",
        "SeriesNumber": 1,
        "InstanceNumber": 1,
        "BodyPartExamined": "PELVIS",
        "ViewPosition": "AP",
        "PatientOrientation": ["L", "F"],
        "SamplesPerPixel": 1,
        "PhotometricInterpretation": "MONOCHROME2",
        "Rows": rows,
        "Columns": cols,
        "BitsAllocated": 16,
        "BitsStored": 16 if int(pixels.max(initial=0)) > 4095 else 12,
        "PixelRepresentation": 0,
        "PixelSpacing": [0.15, 0.15],
        "BurnedInAnnotation": "NO",
        "LossyImageCompression": "00",
    }
    for key, value in (defaults | overrides).items():
        if value is None:
            if key in ds:
                del ds[key]
        else:
            setattr(ds, key, value)
    if "HighBit" not in overrides:
        ds.HighBit = int(ds.get("BitsStored", 16)) - 1
    if "SOPClassUID" not in overrides:
        ds.SOPClassUID = CR_STORAGE if ds.get("Modality") == "CR" else DX_PRESENTATION
    if ds.get("SOPClassUID") == DX_PRESENTATION and "PresentationIntentType" not in overrides:
        ds.PresentationIntentType = "FOR PRESENTATION"
    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if kw not in overrides:
            setattr(ds, kw, derived_uid(digest, kw))
    meta = FileMetaDataset()
    # An attribute removed on purpose (None) still leaves a valid file meta.
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", DX_PRESENTATION)
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", derived_uid(digest))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(derived_uid("devtools.phantoms"))
    meta.ImplementationVersionName = "HIPPHANTOM_1"
    ds.file_meta = meta
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OW"
    if transfer_syntax == RLELossless:
        ds.compress(RLELossless, encoding_plugin=_rle_plugin(), generate_instance_uid=False)
    elif transfer_syntax != ExplicitVRLittleEndian:
        raise ValueError(f"unsupported transfer syntax {transfer_syntax}")
    return ds


def _rle_plugin() -> str:
    # pylibjpeg-rle encodes ~10x faster than pydicom's pure-Python encoder.
    from pydicom.pixels.encoders import RLELosslessEncoder

    return "pylibjpeg" if "pylibjpeg" in RLELosslessEncoder.available_plugins else ""


# --- patients, studies, files ---------------------------------------------------------

_LAST = (
    "WHITAKER KOWALSKI NAKAMURA OKONKWO BRENNAN LINDQVIST FERREIRA HALVORSEN MCALLISTER DUBOIS ABERNATHY CASTELLANO "
    "VAN-DER-BERG OYELARAN PETROVA GALLAGHER SORENSEN MORIARTY HUTCHINSON DESAI FITZGERALD KRAMER LOMBARDI ASHWORTH "
    "PEMBERTON ZIELINSKI O'SULLIVAN HAWTHORNE BLACKWOOD CARRINGTON DELACROIX ELLSWORTH FAIRWEATHER GRIMSHAW HOLLOWAY "
    "IVANOVA JANSSEN KILBRIDE LANGSTON MERRIWEATHER"
).split()
_FIRST = {
    "F": "MARGARET EDITH DOROTHY JANE MILDRED AGNES HELEN RUTH GLADYS IRENE BEATRICE CONSTANCE ELEANOR FLORENCE "
    "GERTRUDE HAZEL IMOGEN JOAN LORNA MAUREEN NORA OLIVE PHYLLIS ROSALIND SYLVIA THEODORA URSULA VERA WINIFRED YVONNE",
    "M": "ARTHUR HAROLD WALTER ERNEST FRANK ALBERT GEORGE HOWARD LEONARD STANLEY BERNARD CLIFFORD DESMOND EUGENE "
    "FREDERICK GILBERT HERBERT IRVING JULIAN KENNETH LIONEL MAURICE NORMAN OSWALD PERCIVAL REGINALD SIDNEY TERENCE "
    "VERNON WILFRED",
}
_DOCTORS = "HOUSE^GREGORY QUINN^MICHAELA KILDARE^JAMES ROSS^DOUGLAS GREENE^MARK BAILEY^MIRANDA".split()


@dataclass(frozen=True)
class Patient:
    number: int
    patient_id: str
    name: str
    birth_date: dt.date
    sex: str
    anatomy: Anatomy
    first_study: dt.date


@dataclass(frozen=True)
class ImagePlan:
    number: int  # 1-based within the study
    view: str
    xt_side: str = ""


@dataclass(frozen=True)
class StudyPlan:
    """Everything about a study except its pixels."""

    index: int
    patient: Patient
    accession: str
    when: dt.datetime
    study_uid: str
    scanner: Scanner
    hips: dict[str, HipSpec]
    images: tuple[ImagePlan, ...]

    @property
    def folder(self) -> str:
        return f"p{self.patient.number:05d}/s{self.index:05d}"


def _uid(seed: int, *parts: object) -> str:
    return derived_uid("hip-phantom", seed, *parts)


def _patient(seed: int, number: int) -> tuple[Patient, np.random.Generator]:
    rng = np.random.default_rng([seed, 1, number])
    anat = sample_anatomy(rng)
    # Bijective maps (multiplier coprime with the modulus) keep names and IDs distinct.
    off = np.random.default_rng([seed, 9]).integers(0, 10**6, 3)
    combo = (number * 7919 + int(off[0])) % (len(_LAST) * 30 * 26)
    last, rest = divmod(combo, 30 * 26)
    first, initial = divmod(rest, 26)
    name = f"{_LAST[last].replace('-', ' ')}^{_FIRST[anat.sex].split()[first]}^{chr(65 + initial)}"
    pid = f"MRN{(number * 104729 + int(off[1])) % 9_000_000 + 1_000_000:07d}"
    first_date = dt.date(2008, 1, 1) + dt.timedelta(days=int(rng.integers(0, 11 * 365)))
    birth = first_date - dt.timedelta(days=int(anat.age * 365.25 + rng.integers(0, 365)))
    return Patient(number, pid, name, birth, anat.sex, anat, first_date), rng


def plan_studies(seed: int, studies: int) -> list[StudyPlan]:
    """Patients (1-3 studies each) and their studies, without rendering."""
    layout = np.random.default_rng([seed, 0])
    acc_off = int(np.random.default_rng([seed, 9]).integers(0, 10**6, 4)[3])
    plans: list[StudyPlan] = []
    number = 0
    while len(plans) < studies:
        number += 1
        n_studies = int(layout.choice([1, 2, 3], p=[0.6, 0.28, 0.12]))
        patient, prng = _patient(seed, number)
        day = dt.datetime.combine(patient.first_study, dt.time())
        prev: dict[str, HipSpec] = {}
        for j in range(min(n_studies, studies - len(plans))):
            k = len(plans) + 1
            srng = np.random.default_rng([seed, 3, k])
            if j:
                day += dt.timedelta(days=int(prng.integers(1, 500)))
            when = day.replace(hour=0, minute=0) + dt.timedelta(seconds=int(srng.integers(6 * 3600, 86400)))
            scanner = SCANNERS[int(srng.choice(len(SCANNERS), p=[s.weight for s in SCANNERS]))]
            hips = {}
            for side, cls in zip(("right", "left"), sample_hip_classes(srng), strict=True):
                spec = sample_hip_spec(srng, side, cls)
                # Hardware stays in later studies of the same patient.
                hips[side] = prev[side] if prev.get(side) and prev[side].cls in _HARDWARE else spec
            prev = hips
            acute_sides = [s for s, h in hips.items() if h.cls in FRACTURE_CLASSES]
            acute = bool(acute_sides)
            xt_side = acute_sides[0] if acute else ("right" if srng.uniform() < 0.5 else "left")
            images = [ImagePlan(1, "ap")]
            if srng.uniform() < (0.2 if acute else 0.4):
                images.append(ImagePlan(len(images) + 1, "frog_leg"))
            if srng.uniform() < (0.045 if acute else 0.015):
                images.append(ImagePlan(len(images) + 1, "cross_table_lateral", xt_side))
            accession = f"A{(k * 7727 + acc_off) % 90_000_000 + 10_000_000:08d}"
            plans.append(StudyPlan(k, patient, accession, when, _uid(seed, "study", k), scanner, hips, tuple(images)))
    return plans


# Frog-leg films often carry no ViewPosition: only their description tells them from an AP.
_VIEW_TEXT = {
    "ap": ("AP", "AP PELVIS", "PELVIS"),
    "frog_leg": ("", "FROG LEG LAT PELVIS", "PELVIS"),
    "cross_table_lateral": ("", "CROSS-TABLE LAT HIP", "HIP"),
}


def _study_dataset(seed: int, plan: StudyPlan, image: ImagePlan, rendered: Rendered) -> Dataset:
    sc, pat = plan.scanner, plan.patient
    rng = np.random.default_rng([seed, 4, plan.index, image.number])
    view_pos, desc, body = _VIEW_TEXT[image.view]
    laterality = ""
    if image.view == "cross_table_lateral":
        laterality = "R" if rendered.side == "right" else "L"
        view_pos, desc = ("RL" if rendered.side == "right" else "LL"), f"{desc} {laterality}"
    date, study_time = plan.when.strftime("%Y%m%d"), plan.when.strftime("%H%M%S")
    acq = (plan.when + dt.timedelta(minutes=2 * image.number)).strftime("%H%M%S")
    age = (plan.when.date() - pat.birth_date).days // 365
    spacing = [sc.spacing, sc.spacing]
    # fmt: off
    attrs = {
        "Modality": sc.modality, "PatientName": pat.name, "PatientID": pat.patient_id,
        "PatientBirthDate": pat.birth_date.strftime("%Y%m%d"), "PatientSex": pat.sex, "PatientAge": f"{age:03d}Y",
        "AccessionNumber": plan.accession, "StudyDate": date, "StudyTime": study_time, "SeriesDate": date,
        "SeriesTime": acq, "AcquisitionDate": date, "AcquisitionTime": acq, "ContentDate": date, "ContentTime": acq,
        "StudyInstanceUID": plan.study_uid, "SeriesInstanceUID": _uid(seed, "series", plan.index, image.number),
        "SOPInstanceUID": _uid(seed, "sop", plan.index, image.number), "StudyID": str(plan.index),
        "StudyDescription": "XR PELVIS AND HIPS", "SeriesDescription": desc, "ProtocolName": desc,
        "SeriesNumber": image.number, "InstanceNumber": 1, "ViewPosition": view_pos or None,
        "BodyPartExamined": body, "Laterality": laterality or None, "ImageLaterality": laterality or None,
        "PatientOrientation": ["L", "F"] if image.view != "cross_table_lateral" else None,
        "Manufacturer": sc.manufacturer, "ManufacturerModelName": sc.model, "InstitutionName": sc.institution,
        "StationName": f"{sc.key.upper().replace('_', '')}{plan.index % 3 + 1}", "SoftwareVersions": "VA20B",
        "DeviceSerialNumber": f"{int(hashlib.sha256(sc.key.encode()).hexdigest()[:8], 16) % 10**7:07d}",
        "ReferringPhysicianName": _DOCTORS[int(rng.integers(len(_DOCTORS)))],
        "KVP": round(float(rng.uniform(70, 85)), 0), "ExposureInmAs": round(float(rng.uniform(10, 40)), 1),
        "DistanceSourceToDetector": 1150.0, "PhotometricInterpretation": sc.photometric, "BitsStored": sc.bits,
        "PixelSpacing": None, "WindowCenter": rendered.window[0], "WindowWidth": rendered.window[1],
        "WindowCenterWidthExplanation": "NORMAL", "PixelIntensityRelationship": "LOG",
        "PixelIntensityRelationshipSign": 1 if sc.photometric == "MONOCHROME1" else -1,
    }
    # fmt: on
    for tag in sc.spacing_tags:
        attrs[tag] = spacing
    if sc.rescale:
        slope, icpt = sc.rescale
        attrs |= {
            "RescaleSlope": slope,
            "RescaleIntercept": icpt,
            "RescaleType": "US",
            "WindowCenter": round(rendered.window[0] * slope + icpt, 1),
            "WindowWidth": round(rendered.window[1] * slope, 1),
        }
    attrs = conform(attrs, view=image.view)
    return make_dataset(rendered.pixels, transfer_syntax=RLELossless if sc.rle else ExplicitVRLittleEndian, **attrs)


@dataclass(frozen=True)
class PhantomSummary:
    out_dir: Path
    coco_path: Path
    patients: int
    studies: int
    radiographs: int
    excluded: int
    hips: dict[str, int]
    seconds: float = 0.0

    def line(self) -> str:
        per = ", ".join(f"{k}={self.hips.get(k, 0)}" for k in CLASSES)
        return (
            f"{self.studies} studies ({self.patients} patients), {self.radiographs} radiographs "
            f"({self.excluded} excluded); hips: {per}"
        )


def generate_phantoms(
    out_dir: Path, *, studies: int, seed: int, progress: Callable[[int], None] | None = None
) -> PhantomSummary:
    """Write ``studies`` studies of DICOM under out_dir plus ``annotations.coco.json``."""
    if studies < 0:
        raise ValueError("studies must be >= 0")
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    coco: dict = {
        "info": {
            "description": "Synthetic AP pelvis radiographs (hip fracture phantoms)",
            "version": "1",
            "seed": seed,
            "studies": studies,
        },
        "licenses": [],
        "categories": [{"id": i + 1, "name": k, "supercategory": "hip"} for i, k in enumerate(CLASSES)],
        "images": [],
        "annotations": [],
    }
    hips: Counter = Counter()
    plans = plan_studies(seed, studies)
    for plan in plans:
        for image in plan.images:
            rng = np.random.default_rng([seed, 2, plan.index, image.number])
            rendered = render_radiograph(
                rng, plan.scanner, plan.hips, image.view, anatomy=plan.patient.anatomy, xt_side=image.xt_side or None
            )
            ds = _study_dataset(seed, plan, image, rendered)
            rel = f"{plan.folder}/{image.number}.dcm"
            (out_dir / plan.folder).mkdir(parents=True, exist_ok=True)
            ds.save_as(out_dir / rel, enforce_file_format=True)
            image_id = len(coco["images"]) + 1
            entry = {
                "id": image_id,
                "file_name": rel,
                "width": int(ds.Columns),
                "height": int(ds.Rows),
                "sop_instance_uid": str(ds.SOPInstanceUID),
                "study_instance_uid": plan.study_uid,
                "patient": plan.patient.patient_id,
                "accession": plan.accession,
                "view": image.view,
                "scanner": plan.scanner.key,
            }
            if image.view == "cross_table_lateral":
                entry["exclude"] = "cross_table_lateral"
            coco["images"].append(entry)
            for side, (x, y, w, h) in rendered.boxes.items():
                spec = plan.hips[side]
                hips[spec.cls] += 1
                coco["annotations"].append(
                    {
                        "id": len(coco["annotations"]) + 1,
                        "image_id": image_id,
                        "category_id": CLASSES.index(spec.cls) + 1,
                        "bbox": [x, y, w, h],
                        "area": round(w * h, 1),
                        "iscrowd": 0,
                        "attributes": {
                            "side": side,
                            "patient": plan.patient.patient_id,
                            "accession": plan.accession,
                            "subtype": spec.subtype,
                        },
                    }
                )
        if progress is not None:
            progress(1)
    coco_path = out_dir / "annotations.coco.json"
    coco_path.write_text(json.dumps(coco, indent=1) + "\n")
    return PhantomSummary(
        out_dir,
        coco_path,
        len({p.patient.number for p in plans}),
        len(plans),
        len(coco["images"]),
        sum("exclude" in i for i in coco["images"]),
        dict(hips),
        time.perf_counter() - start,
    )
