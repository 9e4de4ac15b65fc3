"""The reader study's verdicts (Krogue et al. 2020): the noninferiority margin, the CI rule, the
binary ROC-band rule for "superior", borderline verdicts and which point estimate a table shows.

Used by :func:`readerstudy.analysis.readers.analyse` (and re-exported there); the reasoning is in the README's
"Reader-study report". Pure NumPy; no Django.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ml.core.roc import point_below_band

__all__ = [
    "BORDERLINE_TOLERANCE",
    "DEFAULT_ESTIMATE",
    "ESTIMATES",
    "ESTIMATE_LABELS",
    "VERDICTS",
    "binary_verdict",
    "borderline",
    "check_estimate",
    "group_roc_points",
    "noninferiority_margin",
    "shown_estimate",
    "verdict",
]

#: Every verdict a comparison can get (``undefined``: no bootstrap sample gave a κ).
VERDICTS: tuple[str, ...] = ("superior", "noninferior", "not_noninferior", "undefined")
#: The point estimate a table or figure shows: ``bootstrap-mean`` is the paper's ("we then reported
#: the mean and 95% confidence interval of the bootstrapped statistic"), ``all-cases`` the
#: statistic on every case once.
ESTIMATES: tuple[str, ...] = ("bootstrap-mean", "all-cases")
DEFAULT_ESTIMATE = "bootstrap-mean"
ESTIMATE_LABELS: dict[str, str] = {
    "bootstrap-mean": "mean of the bootstrap samples",
    "all-cases": "on all cases",
}
#: A verdict whose CI lower bound lies within this of 0 or of −margin may flip with another seed.
BORDERLINE_TOLERANCE = 0.01


class _Observer(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def training(self) -> str: ...
    @property
    def condition(self) -> str: ...


def check_estimate(estimate: str) -> str:
    """``estimate`` if it is one of :data:`ESTIMATES`, else ValueError."""
    if estimate not in ESTIMATES:
        raise ValueError(f"unknown estimate {estimate!r}; expected one of {list(ESTIMATES)}")
    return estimate


def shown_estimate(
    row: Mapping[str, Any], estimate: str, *, mean_key: str = "boot_mean", all_key: str = "estimate"
) -> Any:
    """The point estimate of ``row`` that ``estimate`` names (a comparison row by default; for an
    observer row pass ``mean_key="kappa_boot_mean", all_key="kappa"``)."""
    return row.get(mean_key) if check_estimate(estimate) == "bootstrap-mean" else row.get(all_key)


def _num(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def verdict(ci_low: float | None, margin: float) -> str:
    """``superior`` if ci_low > 0, else ``noninferior`` if ci_low > −margin, else ``not_noninferior``.

    ``undefined`` when the CI is undefined (no bootstrap sample gave a κ).
    """
    if ci_low is None or not math.isfinite(ci_low):
        return "undefined"
    if ci_low > 0:
        return "superior"
    if ci_low > -margin:
        return "noninferior"
    return "not_noninferior"


def binary_verdict(ci_low: float | None, margin: float, below_band: bool | None) -> str:
    """The paper's rule for the model against a group in the binary task: ``superior`` needs the
    CI above 0 **and** the group's (1 − specificity, sensitivity) point below the lower edge of the
    model's ROC band (``below_band``); a CI above 0 with the point on or above the edge, or with no
    band to compare with (``below_band`` None), is ``noninferior``. Otherwise :func:`verdict`."""
    plain = verdict(ci_low, margin)
    if plain == "superior" and below_band is not True:
        return "noninferior"
    return plain


def borderline(ci_low: float | None, margin: float | None, tolerance: float = BORDERLINE_TOLERANCE) -> list[str]:
    """The thresholds (``"0"``, ``"-margin"``) that ``ci_low`` lies within ``tolerance`` of: the
    verdict it decides may flip with another bootstrap seed. Empty when it is clear of both."""
    if ci_low is None or not math.isfinite(ci_low):
        return []
    near = []
    if abs(ci_low) < tolerance:
        near.append("0")
    if margin is not None and abs(ci_low + margin) < tolerance:
        near.append("-margin")
    return near


def noninferiority_margin(
    observers: Sequence[_Observer], point: Mapping[str, NDArray[np.float64]], margin: float | None
) -> dict[str, Any]:
    """Mean |κ_i − κ_j| over pairs of readers of the same group **and** the same training, under
    the same condition, for each task in ``point`` (task → κ per observer on all cases).

    A training name found in both groups (``orthopedics`` for an attending and a resident) never
    pairs across them: the paper pairs the two orthopaedic attendings, the two orthopaedic
    residents, and so on. The model (the only observer of its group) pairs with no one. Returns
    ``{"value", "source" ("pairs" or "argument"), "empirical", "pairs"}``; ``margin`` given
    overrides the value. ValueError when there is no pair and no ``margin``, or a negative one.
    """
    pairs: list[dict[str, Any]] = []
    for task, kappas in point.items():
        for i in range(len(observers)):
            for j in range(i + 1, len(observers)):
                a, b = observers[i], observers[j]
                if (a.group, a.training, a.condition) != (b.group, b.training, b.condition):
                    continue
                ka, kb = float(kappas[i]), float(kappas[j])
                pairs.append(
                    {
                        "task": task,
                        "condition": a.condition,
                        "group": a.group,
                        "training": a.training,
                        "a": a.name,
                        "b": b.name,
                        "kappa_a": _num(ka),
                        "kappa_b": _num(kb),
                        "difference": _num(abs(ka - kb)),
                    }
                )
    diffs = [p["difference"] for p in pairs if p["difference"] is not None]
    empirical = float(np.mean(diffs)) if diffs else None
    if margin is None:
        if empirical is None:
            raise ValueError(
                "no two readers share a group and a training, so there is no empirical margin; pass margin="
            )
        return {"value": empirical, "source": "pairs", "empirical": empirical, "pairs": pairs}
    if not margin >= 0:
        raise ValueError("margin must be >= 0")
    return {"value": float(margin), "source": "argument", "empirical": empirical, "pairs": pairs}


def group_roc_points(
    members: Mapping[tuple[str, str], Sequence[int]],
    binary: Mapping[str, NDArray[np.float64]],
    band: Any,
    groups: Sequence[str],
    conditions: Sequence[str],
) -> dict[tuple[str, str], dict[str, Any]]:
    """Each (group, condition)'s binary point against the model's ROC band: mean sensitivity and
    specificity of its members, 1 − specificity, the band's lower TPR there and ``below_band``
    (None when there is no band or no point). ``band``: a :class:`ml.core.roc.RocBand` or None."""
    out = {}
    for condition in conditions:
        for group in groups:
            ids = list(members.get((group, condition), []))
            if not ids:
                continue
            sens = float(binary["sensitivity"][ids].mean())
            spec = float(binary["specificity"][ids].mean())
            fpr = 1.0 - spec
            below = lower = None
            if band is not None and math.isfinite(sens) and math.isfinite(spec):
                lower = float(np.interp(fpr, band.fpr, band.tpr_low))
                below = bool(point_below_band(fpr, sens, band))
            out[(group, condition)] = {
                "group": group,
                "condition": condition,
                "sensitivity": _num(sens),
                "specificity": _num(spec),
                "fpr": _num(fpr),
                "band_tpr_low": _num(lower),
                "below_band": below,
            }
    return out
