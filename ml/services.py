"""Dataset versions: freeze the ground truth with a patient-level split, and
describe it as the paper's Table 1."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from annotate.labelling import provenance
from annotate.labelling import services as labelling
from annotate.labels import Adjudication
from common import csvfile
from ml.core.split import DEFAULT_FRACTIONS, stratified_group_split
from ml.core.vocab import CLASSES, FRACTURE_CLASSES
from ml.models import DatasetHip, DatasetVersion, Split

SPLITS = tuple(Split.values)  # train, validation, test


def _truth_rows() -> list[dict[str, Any]]:
    hips = (
        labelling.ground_truth_hips()
        .filter(
            adjudication__excluded="",
            adjudication__status__in=[Adjudication.Status.AGREED, Adjudication.Status.RESOLVED],
        )
        .order_by("radiograph_id", "side")
    )
    return [
        {"radiograph_id": h.radiograph_id, "sha256": h.radiograph.sha256, "patient_id": h.radiograph.study.patient_id,
         "side": h.side, "hip_class": h.hip_class, "x": h.x, "y": h.y, "width": h.width, "height": h.height}
        for h in hips
    ]  # fmt: skip


def content_hash(*, rows: Sequence[dict[str, Any]]) -> str:
    """SHA-256 over the sorted frozen rows: radiograph SHA-256, side, class, box, split."""
    lines = sorted(
        json.dumps([r["sha256"], r["side"], r["hip_class"], repr(float(r["x"])), repr(float(r["y"])),
                    repr(float(r["width"])), repr(float(r["height"])), r["split"]])
        for r in rows
    )  # fmt: skip
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def dataset_freeze(
    *, seed: int, name: str = "", user: User | None = None, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> tuple[DatasetVersion, bool]:
    """Freeze the current ground truth (radiographs excluded at adjudication are
    left out) into a dataset version split by patient and stratified by class.

    Returns ``(version, created)``: when the same content was frozen before
    (same ground truth and split, e.g. the same seed) the existing version is
    returned with ``created`` False. Raises ``ValueError`` when there is
    nothing to freeze or too few patients to split."""
    rows = _truth_rows()
    if not rows:
        raise ValueError("there is no ground truth to freeze yet")
    parts = stratified_group_split(
        [r["patient_id"] for r in rows], [r["hip_class"] for r in rows], fractions=fractions, seed=seed
    )
    for row, part in zip(rows, parts, strict=True):
        row["split"] = SPLITS[int(part)]
    digest = content_hash(rows=rows)
    existing = DatasetVersion.objects.filter(content_hash=digest).first()
    if existing is not None:
        return existing, False
    counts = _counts(rows)
    try:
        with transaction.atomic():
            version = DatasetVersion.objects.create(
                name=name,
                seed=seed,
                fractions=[float(f) for f in np.asarray(fractions) / np.sum(fractions)],
                content_hash=digest,
                counts=counts,
                created_by=user if getattr(user, "is_authenticated", False) else None,
            )
            DatasetHip.objects.bulk_create(
                DatasetHip(dataset=version, radiograph_id=r["radiograph_id"], patient_id=r["patient_id"],
                           side=r["side"], hip_class=r["hip_class"], x=r["x"], y=r["y"], width=r["width"],
                           height=r["height"], split=r["split"])
                for r in rows
            )  # fmt: skip
    except IntegrityError:  # frozen at the same moment by someone else
        return DatasetVersion.objects.get(content_hash=digest), False
    return version, True


def _counts(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    counts = {split: dict.fromkeys(CLASSES, 0) for split in SPLITS}
    for row in rows:
        counts[row["split"]][row["hip_class"]] += 1
    return counts


def _chi2(table: list[list[int]]) -> dict[str, Any] | None:
    """Pearson χ² test of independence (no continuity correction), leaving out
    all-zero rows and columns; None where fewer than two remain."""
    from scipy.stats import chi2_contingency

    array = np.asarray(table, dtype=float)
    array = array[array.sum(axis=1) > 0][:, array.sum(axis=0) > 0]
    if array.shape[0] < 2 or array.shape[1] < 2:
        return None
    result = chi2_contingency(array, correction=False)
    return {"statistic": float(result.statistic), "dof": int(result.dof), "p": float(result.pvalue)}


def _provenance(version: DatasetVersion, hips: Sequence[DatasetHip], by_split: dict[str, Any]) -> dict[str, Any]:
    """Per split and in all, how many frozen hips' labels came from a model's
    proposal (annotate's provenance of the ground-truth hip each copies, as it
    was when the version was frozen); ``unknown``: hips with no such truth row."""
    origins = provenance.truth_provenance_at(keys=[(h.radiograph_id, h.side) for h in hips], at=version.created_at)

    def summary(items: Sequence[DatasetHip]) -> dict[str, Any]:
        return provenance.provenance_summary(
            origins[(h.radiograph_id, h.side)] for h in items if (h.radiograph_id, h.side) in origins
        )

    return {
        "per_split": [summary(by_split[s]) for s in SPLITS],
        "total": summary(hips),
        "unknown": sum((h.radiograph_id, h.side) not in origins for h in hips),
    }


def table1(*, version: DatasetVersion) -> dict[str, Any]:
    """The paper's Table 1 for a dataset version: hips per class and split,
    fracture vs no fracture, χ² tests across splits, patients, radiographs,
    age and sex per split, and the share of hips whose label came from a
    model's proposal (the anchoring risk; not in the paper, whose labellers
    labelled by hand)."""
    hips = list(version.hips.select_related("radiograph__study", "patient").order_by("radiograph_id", "side"))
    by_split = {split: [h for h in hips if h.split == split] for split in SPLITS}
    class_rows: list[dict[str, Any]] = []
    for cls in CLASSES:
        counts = [sum(h.hip_class == cls for h in by_split[s]) for s in SPLITS]
        class_rows.append({"hip_class": cls, "counts": counts, "total": sum(counts)})
    fracture = [sum(h.hip_class in FRACTURE_CLASSES for h in by_split[s]) for s in SPLITS]
    hips_per_split = [len(by_split[s]) for s in SPLITS]
    no_fracture = [n - f for n, f in zip(hips_per_split, fracture, strict=True)]
    binary_rows: list[dict[str, Any]] = [
        {"label": "fracture", "counts": fracture, "total": sum(fracture)},
        {"label": "no_fracture", "counts": no_fracture, "total": sum(no_fracture)},
    ]
    splits = []
    for split in SPLITS:
        items = by_split[split]
        patients = {h.patient_id: h.patient for h in items}
        studies = {h.radiograph.study_id: h.radiograph.study for h in items}
        ages = [s.patient_age_years for s in studies.values() if s.patient_age_years is not None]
        sexes = [p.sex for p in patients.values() if p.sex]
        splits.append(
            {
                "split": split,
                "hips": len(items),
                "patients": len(patients),
                "radiographs": len({h.radiograph_id for h in items}),
                "age_mean": float(np.mean(ages)) if ages else None,
                "age_sd": float(np.std(ages, ddof=1)) if len(ages) > 1 else None,
                "age_known": len(ages),
                "female_percent": 100.0 * sum(s == "F" for s in sexes) / len(sexes) if sexes else None,
                "sex_known": len(sexes),
            }
        )
    return {
        "splits": list(SPLITS),
        "classes": class_rows,
        "binary": binary_rows,
        "hips": hips_per_split,
        "per_split": splits,
        "chi2_multiclass": _chi2([r["counts"] for r in class_rows]),
        "chi2_binary": _chi2([r["counts"] for r in binary_rows]),
        "provenance": _provenance(version, hips, by_split),
    }


def table1_text(*, version: DatasetVersion, table: dict[str, Any] | None = None) -> str:
    """Table 1 as fixed-width text for the terminal."""
    table = table or table1(version=version)
    header = f"{'':<20}" + "".join(f"{s:>12}" for s in table["splits"]) + f"{'total':>12}"
    lines = [f"Dataset version {version.pk} (seed {version.seed}, hash {version.content_hash[:12]})", header]

    def row(label: str, counts: list[int], total: int) -> str:
        cells = "".join(
            f"{f'{n} ({100 * n / h:.1f}%)' if h else str(n):>12}" for n, h in zip(counts, table["hips"], strict=True)
        )
        return f"{label:<20}{cells}{total:>12}"

    for item in table["classes"]:
        lines.append(row(item["hip_class"], item["counts"], item["total"]))
    for item in table["binary"]:
        lines.append(row(item["label"], item["counts"], item["total"]))
    lines.append(f"{'hips':<20}" + "".join(f"{n:>12}" for n in table["hips"]) + f"{sum(table['hips']):>12}")
    for key in ("patients", "radiographs"):
        values = [s[key] for s in table["per_split"]]
        lines.append(f"{key:<20}" + "".join(f"{n:>12}" for n in values) + f"{sum(values):>12}")
    ages = []
    for s in table["per_split"]:
        if s["age_mean"] is None:
            ages.append("n/a")
        else:
            ages.append(f"{s['age_mean']:.1f}±{s['age_sd']:.1f}" if s["age_sd"] is not None else f"{s['age_mean']:.1f}")
    lines.append(f"{'age (mean±SD)':<20}" + "".join(f"{a:>12}" for a in ages))
    female = ["n/a" if s["female_percent"] is None else f"{s['female_percent']:.1f}%" for s in table["per_split"]]
    lines.append(f"{'female':<20}" + "".join(f"{f:>12}" for f in female))
    origin = table["provenance"]
    for key, label in (("from_proposal", "from a proposal"), ("class_kept", "model class kept")):
        cells = [f"{s[key]} ({s[key + '_percent']:.1f}%)" if s["hips"] else "n/a" for s in origin["per_split"]]
        lines.append(f"{label:<20}" + "".join(f"{c:>12}" for c in cells) + f"{origin['total'][key]:>12}")
    for key, label in (("chi2_multiclass", "six classes"), ("chi2_binary", "fracture vs not")):
        test = table[key]
        if test is None:
            lines.append(f"χ² {label}: not computable (fewer than two non-empty rows or splits)")
        else:
            lines.append(f"χ² {label}: {test['statistic']:.3f}, dof {test['dof']}, P = {test['p']:.3f}")
    return "\n".join(lines)


def hips_csv(*, version: DatasetVersion) -> str:
    """The frozen hips of a version as CSV, one row per hip."""
    out = io.StringIO()
    writer = csvfile.writer(out)
    writer.writerow(["radiograph_id", "radiograph_sha256", "patient", "side", "hip_class", "fracture",
                     "x", "y", "width", "height", "split"])  # fmt: skip
    for h in version.hips.select_related("radiograph", "patient").order_by("radiograph_id", "side"):
        writer.writerow([h.radiograph_id, h.radiograph.sha256, h.patient.code, h.side, h.hip_class,
                         int(h.hip_class in FRACTURE_CLASSES), h.x, h.y, h.width, h.height, h.split])  # fmt: skip
    return out.getvalue()
