"""The model's evaluation report: the paper's numbers, tables and figures from one set of predictions.

:func:`evaluation_report` assembles bootstrap means with 95% CIs, the confusion matrix, ROC curves
with bands, ideal thresholds and calibration (``ml.core.calibration``) into one JSON-safe dict;
:func:`write_report` writes it as files, with the subgroups and failures a caller added.
Design: docs/architecture/design-statistics.md
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from common import csvfile
from common.atomicfile import write_atomic
from ml.core.calibration import calibration_figure, calibration_report
from ml.core.roc import best_threshold, roc_auc, roc_band, roc_curve
from ml.core.stats import (
    CLASS_KEYS,
    FRACTURE_INDICES,
    bootstrap_indices,
    bootstrap_metrics,
    class_indices,
    confusion_matrix,
    fracture_probability,
    multiclass_prediction,
    normalized_confusion_matrix,
)
from ml.core.subgroups import subgroup_rows

__all__ = [
    "CLASS_LABELS",
    "FIGURE_FORMATS",
    "REPORT_KEYS",
    "evaluation_report",
    "metric_rows",
    "save_figure",
    "write_report",
]

#: Short display names as in the paper's figures (FN = femoral neck, IT = intertrochanteric).
CLASS_LABELS: dict[str, str] = {
    "normal": "Normal",
    "fn_displaced": "Displaced FN FX",
    "fn_nondisplaced": "Nondisplaced FN FX",
    "intertrochanteric": "IT FX",
    "orif": "ORIF",
    "arthroplasty": "Arthroplasty",
}

#: The figures of ``metrics.csv`` in order: (report key, section of bootstrap_metrics, metric name).
_SUMMARY_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("binary_accuracy", "binary", "accuracy"),
    ("binary_sensitivity", "binary", "sensitivity"),
    ("binary_specificity", "binary", "specificity"),
    ("binary_auc", "binary", "auc"),
    ("binary_kappa", "binary", "kappa"),
    ("multiclass_accuracy", "multiclass", "accuracy"),
    ("multiclass_kappa", "multiclass", "kappa"),
)
_PER_CLASS_METRICS: tuple[str, ...] = ("sensitivity", "specificity", "auc")
_FIGURE_FIELDS: tuple[str, ...] = ("mean", "ci_low", "ci_high", "estimate")

#: Exactly the top-level keys of the report dict (and of ``metrics.json``).
REPORT_KEYS: tuple[str, ...] = (
    *(key for key, _, _ in _SUMMARY_FIGURES),
    "per_class",
    "confusion_matrix",
    "roc",
    "thresholds",
    "calibration",
    "n_cases",
    "n_patients",
    "iterations",
    "seed",
    "level",
)

FIGURE_FORMATS: tuple[str, ...] = ("png", "svg")
_DPI = 150


# --------------------------------------------------------------------------- JSON safety


def _num(value: Any) -> float | None:
    """A finite float, or None for NaN / ±inf / None (JSON has no NaN)."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _nums(values: ArrayLike) -> list[Any]:
    """Nested list of floats with non-finite values as None."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        return _num(arr)  # type: ignore[return-value]
    return [_nums(v) if arr.ndim > 1 else _num(v) for v in arr]


def _figure(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """One bootstrap figure of stats.bootstrap_metrics as {"mean", "ci_low", "ci_high", "estimate"}."""
    return {field: _num(summary[field]) for field in _FIGURE_FIELDS}


# --------------------------------------------------------------------------- the report


def _curve(y: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """ROC curve and AUC; empty curve and None AUC when ``y`` lacks positives or negatives."""
    if y.all() or not y.any():
        return {"fpr": [], "tpr": [], "thresholds": [], "auc": None}
    fpr, tpr, thresholds = roc_curve(y, scores)
    return {"fpr": _nums(fpr), "tpr": _nums(tpr), "thresholds": _nums(thresholds), "auc": _num(roc_auc(y, scores))}


def _threshold(y: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    """Figure 8's ideal point (closest to the top-left corner); all None when undefined."""
    if y.all() or not y.any():
        return {"threshold": None, "sensitivity": None, "specificity": None}
    best = best_threshold(y, scores)
    return {
        "threshold": _num(best.threshold),
        "sensitivity": _num(best.sensitivity),
        "specificity": _num(best.specificity),
    }


def evaluation_report(
    y_true: ArrayLike,
    probabilities: ArrayLike,
    patient_ids: ArrayLike,
    *,
    iterations: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Everything the paper reports about the model, as a JSON-safe dict (see :data:`REPORT_KEYS`).

    ``y_true``: class keys or indices into CLASS_KEYS; ``probabilities``: (n, 6) in CLASS_KEYS
    order; ``patient_ids``: one per case (the bootstrap keeps one image per patient).
    Bootstrap figures are ``{"mean", "ci_low", "ci_high", "estimate"}`` (``estimate`` on all
    cases, the rest over the bootstrap); the binary ROC band reuses the same bootstrap samples.
    """
    truth = class_indices(y_true)
    probs = np.asarray(probabilities, dtype=float)
    pids = np.asarray(patient_ids).ravel()
    idx = bootstrap_indices(pids, iterations=iterations, seed=seed)
    boot = bootstrap_metrics(truth, probs, pids, iterations=iterations, seed=seed, level=level, indices=idx)

    report: dict[str, Any] = {key: _figure(boot[section][name]) for key, section, name in _SUMMARY_FIGURES}
    report["per_class"] = {
        key: {name: _figure(boot["per_class"][key][name]) for name in _PER_CLASS_METRICS} for key in CLASS_KEYS
    }

    labels = list(range(len(CLASS_KEYS)))
    pred = multiclass_prediction(probs)
    report["confusion_matrix"] = {
        "labels": list(CLASS_KEYS),
        "counts": confusion_matrix(truth, pred, labels=labels).tolist(),
        "normalized": _nums(normalized_confusion_matrix(truth, pred, labels=labels)),
    }

    truth_bin = np.isin(truth, FRACTURE_INDICES)
    p_frac = fracture_probability(probs)
    binary = _curve(truth_bin, p_frac)
    binary["band"] = None
    if binary["auc"] is not None:
        try:
            band = roc_band(truth_bin, p_frac, pids, seed=seed, level=level, indices=idx)
        except ValueError:  # no bootstrap sample holds both fractures and non-fractures
            pass
        else:
            binary["band"] = {
                "fpr": _nums(band.fpr),
                "tpr_mean": _nums(band.tpr_mean),
                "tpr_low": _nums(band.tpr_low),
                "tpr_high": _nums(band.tpr_high),
                "iterations": band.iterations,
                "level": band.level,
            }
    report["roc"] = {
        "binary": binary,
        "per_class": {key: _curve(truth == c, probs[:, c]) for c, key in enumerate(CLASS_KEYS)},
    }
    report["thresholds"] = {key: _threshold(truth == c, probs[:, c]) for c, key in enumerate(CLASS_KEYS)}
    report["calibration"] = calibration_report(truth, probs, pids, level=level, indices=idx)
    report["n_cases"] = int(boot["n_cases"])
    report["n_patients"] = int(boot["n_patients"])
    report["iterations"] = int(iterations)
    report["seed"] = int(seed)
    report["level"] = float(level)
    return report


def metric_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per bootstrap figure: ``{"metric", "mean", "ci_low", "ci_high", "estimate"}``.

    Summary figures first (``binary_accuracy`` ... ``multiclass_kappa``), then per class
    ``per_class.<key>.<sensitivity|specificity|auc>``. Undefined values are None.
    """
    rows = [{"metric": key, **{f: report[key][f] for f in _FIGURE_FIELDS}} for key, _, _ in _SUMMARY_FIGURES]
    for key in CLASS_KEYS:
        for name in _PER_CLASS_METRICS:
            figure = report["per_class"][key][name]
            rows.append({"metric": f"per_class.{key}.{name}", **{f: figure[f] for f in _FIGURE_FIELDS}})
    return rows


# --------------------------------------------------------------------------- files


def _atomic_write(path: Path, data: bytes) -> Path:
    """``write_atomic``, readable by all: these are shared outputs."""
    return write_atomic(path, data, mode=0o644)


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csvfile.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return buf.getvalue().encode("utf-8")


def _write_tables(report: Mapping[str, Any], out: Path) -> list[Path]:
    written = [
        _atomic_write(
            out / "metrics.csv",
            _csv_bytes(
                ("metric", *_FIGURE_FIELDS),
                ([r["metric"], *(r[f] for f in _FIGURE_FIELDS)] for r in metric_rows(report)),
            ),
        )
    ]

    cm = report["confusion_matrix"]
    cm_rows = [
        (truth, pred, cm["counts"][i][j], cm["normalized"][i][j])
        for i, truth in enumerate(cm["labels"])
        for j, pred in enumerate(cm["labels"])
    ]
    written.append(
        _atomic_write(out / "confusion_matrix.csv", _csv_bytes(("truth", "predicted", "count", "normalized"), cm_rows))
    )

    # Long format: the curve's points ("curve") and the bootstrap band on its FPR grid ("band").
    binary = report["roc"]["binary"]
    roc_rows: list[tuple[Any, ...]] = [
        ("curve", f, t, thr, None, None, None)
        for f, t, thr in zip(binary["fpr"], binary["tpr"], binary["thresholds"], strict=True)
    ]
    band = binary.get("band")
    if band:
        roc_rows += [
            ("band", f, None, None, m, lo, hi)
            for f, m, lo, hi in zip(band["fpr"], band["tpr_mean"], band["tpr_low"], band["tpr_high"], strict=True)
        ]
    written.append(
        _atomic_write(
            out / "roc_binary.csv",
            _csv_bytes(("series", "fpr", "tpr", "threshold", "tpr_mean", "tpr_low", "tpr_high"), roc_rows),
        )
    )

    per_class_rows = [
        (key, f, t, thr)
        for key, curve in report["roc"]["per_class"].items()
        for f, t, thr in zip(curve["fpr"], curve["tpr"], curve["thresholds"], strict=True)
    ]
    written.append(
        _atomic_write(out / "roc_per_class.csv", _csv_bytes(("class", "fpr", "tpr", "threshold"), per_class_rows))
    )

    thr_rows = [
        (key, t["threshold"], t["sensitivity"], t["specificity"], report["roc"]["per_class"][key]["auc"])
        for key, t in report["thresholds"].items()
    ]
    written.append(
        _atomic_write(
            out / "thresholds.csv", _csv_bytes(("class", "threshold", "sensitivity", "specificity", "auc"), thr_rows)
        )
    )
    return written + _write_audit_tables(report, out)


def _calibration_curves(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    calibration = report["calibration"]
    return [("binary", calibration["binary"]), *calibration["per_class"].items()]


def _write_audit_tables(report: Mapping[str, Any], out: Path) -> list[Path]:
    """calibration.csv (ECE and Brier per curve), reliability.csv (the diagrams' bins) and, when
    the report has them, subgroups.csv and failures.csv."""
    written = []
    if "calibration" in report:
        cal_rows = [
            (curve, measure, *(entry[measure][f] for f in _FIGURE_FIELDS))
            for curve, entry in _calibration_curves(report)
            for measure in ("ece", "brier")
        ]
        written.append(
            _atomic_write(out / "calibration.csv", _csv_bytes(("curve", "measure", *_FIGURE_FIELDS), cal_rows))
        )
        bin_rows = [
            (curve, b["low"], b["high"], b["count"], b["mean_predicted"], b["observed"])
            for curve, entry in _calibration_curves(report)
            for b in entry["reliability"]
        ]
        header = ("curve", "bin_low", "bin_high", "count", "mean_predicted", "observed")
        written.append(_atomic_write(out / "reliability.csv", _csv_bytes(header, bin_rows)))
    if "subgroups" in report:
        fields = ("attribute", "value", "hips", "patients", "figure", *_FIGURE_FIELDS, "note")
        rows = [[row.get(f) for f in fields] for row in subgroup_rows(report["subgroups"])]
        written.append(_atomic_write(out / "subgroups.csv", _csv_bytes(fields, rows)))
    if "failures" in report:
        fail_rows = [
            (group["truth"], group["predicted"], hip["radiograph"], hip["side"], *hip["top2"][0], *hip["top2"][1])
            for group in report["failures"]
            for hip in group["hips"]
        ]
        columns = ("truth", "predicted", "radiograph", "side", "first", "p_first", "second", "p_second")
        written.append(_atomic_write(out / "failures.csv", _csv_bytes(columns, fail_rows)))
    return written


def save_figure(fig: Figure, out: Path, stem: str) -> list[Path]:
    FigureCanvasAgg(fig)  # attach an Agg canvas: no pyplot, no global backend state
    paths = []
    for fmt in FIGURE_FORMATS:
        buf = io.BytesIO()
        # No creation date in the metadata, so the same report gives the same files.
        metadata = {"Date": None} if fmt == "svg" else None
        fig.savefig(buf, format=fmt, dpi=_DPI, bbox_inches="tight", metadata=metadata)
        paths.append(_atomic_write(out / f"{stem}.{fmt}", buf.getvalue()))
    fig.clear()
    return paths


def _fmt_auc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def roc_axes(ax: Any, title: str | None = None) -> None:
    """Square unit axes with the chance diagonal, as every ROC figure of the project draws them."""
    ax.plot([0, 1], [0, 1], linestyle=":", color="0.6", linewidth=1)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("1 − Specificity (false-positive rate)")
    ax.set_ylabel("Sensitivity (true-positive rate)")
    if title:
        ax.set_title(title)


def confusion_figure(cm: Mapping[str, Any], title: str = "Normalized confusion matrix") -> Figure:
    """The paper's Figure 3: a row-normalised confusion matrix (``{"labels", "normalized"}``,
    None for an empty row) as an annotated heatmap."""
    labels = [CLASS_LABELS.get(k, k) for k in cm["labels"]]
    values = np.array([[np.nan if v is None else v for v in row] for row in cm["normalized"]], dtype=float)
    fig = Figure(figsize=(7.5, 6.5))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            text = "–" if np.isnan(v) else f"{v:.2f}"
            color = "white" if not np.isnan(v) and v > 0.5 else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=9)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title(title)
    return fig


def _confusion_figure(report: Mapping[str, Any]) -> Figure:
    return confusion_figure(report["confusion_matrix"])


def _binary_roc_figure(report: Mapping[str, Any]) -> Figure:
    binary = report["roc"]["binary"]
    auc_ci = report["binary_auc"]
    fig = Figure(figsize=(6, 6))
    ax = fig.add_subplot()
    band = binary.get("band")
    if band:
        pct = round(100 * float(band.get("level", report["level"])))
        ax.fill_between(band["fpr"], band["tpr_low"], band["tpr_high"], color="C0", alpha=0.2, label=f"{pct}% band")
        ax.plot(band["fpr"], band["tpr_low"], color="C0", linestyle="--", linewidth=0.8)
        ax.plot(band["fpr"], band["tpr_high"], color="C0", linestyle="--", linewidth=0.8)
    if binary["fpr"]:
        label = f"Binary (AUC = {_fmt_auc(binary['auc'])}"
        if auc_ci["ci_low"] is not None and auc_ci["ci_high"] is not None:
            label += f", 95% CI {auc_ci['ci_low']:.3f}–{auc_ci['ci_high']:.3f}"
        ax.plot(binary["fpr"], binary["tpr"], color="C0", linewidth=2, label=label + ")")
    else:
        ax.text(0.5, 0.5, "ROC undefined: one class only", ha="center", va="center")
    roc_axes(ax, "Fracture vs no fracture")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    return fig


def _per_class_roc_figure(report: Mapping[str, Any]) -> Figure:
    fig = Figure(figsize=(6, 6))
    ax = fig.add_subplot()
    for c, (key, curve) in enumerate(report["roc"]["per_class"].items()):
        name = CLASS_LABELS.get(key, key)
        if curve["fpr"]:
            ax.plot(
                curve["fpr"],
                curve["tpr"],
                color=f"C{c}",
                linewidth=1.5,
                label=f"{name} (AUC = {_fmt_auc(curve['auc'])})",
            )
        else:
            ax.plot([], [], color=f"C{c}", label=f"{name} (undefined)")
    roc_axes(ax, "Each class vs the rest")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _thresholds_figure(report: Mapping[str, Any]) -> Figure:
    keys = list(report["thresholds"])
    ncols = 3
    nrows = max(1, math.ceil(len(keys) / ncols))
    fig = Figure(figsize=(4 * ncols, 4.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, key in zip(axes.ravel(), keys, strict=False):
        curve = report["roc"]["per_class"][key]
        best = report["thresholds"][key]
        name = CLASS_LABELS.get(key, key)
        roc_axes(ax, f"{name} (AUC = {_fmt_auc(curve['auc'])})")
        ax.xaxis.label.set_size(8)
        ax.yaxis.label.set_size(8)
        if not curve["fpr"] or best["threshold"] is None:
            ax.text(0.5, 0.5, "undefined: class absent\nor present in every case", ha="center", va="center", fontsize=8)
            continue
        ax.plot(curve["fpr"], curve["tpr"], color="C0", linewidth=1.5)
        x, y = 1.0 - best["specificity"], best["sensitivity"]
        ax.plot([0, x], [1, y], color="0.5", linestyle="--", linewidth=0.8)
        ax.plot(
            [x],
            [y],
            marker="o",
            color="C3",
            linestyle="none",
            label=f"ideal point: t = {best['threshold']:.3f}\nsens {y:.3f}, spec {best['specificity']:.3f}",
        )
        call = report["per_class"][key]
        sens, spec = call["sensitivity"]["estimate"], call["specificity"]["estimate"]
        if sens is not None and spec is not None:  # the model's own (argmax) call, for comparison
            ax.plot(
                [1.0 - spec],
                [sens],
                marker="x",
                color="k",
                linestyle="none",
                label=f"argmax call: sens {sens:.3f}, spec {spec:.3f}",
            )
        ax.legend(loc="lower right", fontsize=7)
    for ax in axes.ravel()[len(keys) :]:
        ax.set_visible(False)
    fig.suptitle("Ideal threshold per class (closest ROC point to the top-left corner)")
    return fig


def write_report(report: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``metrics.json``, the CSV tables and the figures (PNG and SVG) into ``out_dir``.

    Works from the dict alone, so a report loaded back from ``metrics.json`` renders the same.
    Each file is written atomically. Returns the paths written, in writing order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    written = [_atomic_write(out / "metrics.json", text.encode("utf-8"))]
    written += _write_tables(report, out)
    for stem, draw in (
        ("confusion_matrix", _confusion_figure),
        ("roc_binary", _binary_roc_figure),
        ("roc_per_class", _per_class_roc_figure),
        ("thresholds", _thresholds_figure),
    ):
        written += save_figure(draw(report), out, stem)
    if "calibration" in report:
        for stem, per_class in (("calibration_binary", False), ("calibration_per_class", True)):
            fig = calibration_figure(report["calibration"], labels=CLASS_LABELS, per_class=per_class)
            written += save_figure(fig, out, stem)
    return written
