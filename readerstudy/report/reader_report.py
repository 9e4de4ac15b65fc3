"""The reader study's report: the paper's Tables 3–5 and Figures 3, 4 and 7 as files, HTML and PDF.

:func:`build_report` runs :func:`readerstudy.analysis.readers.analyse`, adds the Obuchowski–Rockette
cross-check and the figures' data, and writes the CSVs, ``report.json``, figures, HTML and PDF.
Design: docs/architecture/design-statistics.md
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from ml.core.deviations import study_deviations
from ml.core.report import confusion_figure, roc_axes
from ml.core.roc import roc_auc, roc_band, roc_curve
from ml.core.stats import BINARY_LABELS, CLASS_KEYS, FRACTURE_INDICES, bootstrap_indices, cohen_kappa
from ml.core.stats import normalized_confusion_matrix as _normalized_cm
from readerstudy.analysis import readers
from readerstudy.analysis.aided import aided_rows
from readerstudy.analysis.mrmc import model_vs_readers
from readerstudy.analysis.verdicts import DEFAULT_ESTIMATE, check_estimate, shown_estimate
from readerstudy.report import reporting
from readerstudy.report.reader_tables import (
    BORDERLINE_MARK,
    CONDITION_LABELS,
    PDF_ROWS_PER_PAGE,
    estimate_caption,
    estimate_of,
    fmt,
    html_page,
    pdf_sections,
    table_pages,
)

__all__ = [
    "FIGURES",
    "PDF_ROWS_PER_PAGE",
    "REPORT_FILES",
    "build_report",
    "forest_rows",
    "inputs_sha256",
    "pdf_sections",
    "study_facts",
    "write_report",
]

#: Figure stems, each written as PNG and SVG and shown in the HTML and the PDF.
FIGURES: tuple[str, ...] = (
    "confusion_matrices",
    "roc_model",
    "roc_readers_model_quality",
    "roc_readers_full_quality",
    "kappa_differences",
)
#: Every file :func:`write_report` writes, by name.
REPORT_FILES: tuple[str, ...] = (
    "observers.csv",
    "kappa_differences.csv",
    "report.json",
    *(f"{stem}.{fmt}" for stem in FIGURES for fmt in ("png", "svg")),
    "report.html",
    "report.pdf",
)
_DPI = 150
_OR_GROUPS: tuple[str, ...] = ("all", *readers.GROUPS)


# --------------------------------------------------------------------------- inputs hash


def inputs_sha256(responses_path: str | os.PathLike[str], predictions_path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the responses file's bytes immediately followed by the predictions file's bytes.

    Exactly ``hashlib.sha256(open(responses, 'rb').read() + open(predictions, 'rb').read())``: it
    identifies the pair of inputs a report was made from (recorded in ``report.json`` and the HTML).
    """
    digest = hashlib.sha256()
    for path in (responses_path, predictions_path):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- analysis


def _num(value: Any) -> float | None:
    """A JSON-safe float: NaN and ±inf become None."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _kappa_fom(labels: Sequence[Any]) -> Callable[[Any, Any], float]:
    return lambda t, a: cohen_kappa(t, a, labels=labels).kappa


def _answers(resp: readers.Responses, cases: Sequence[str]) -> dict[tuple[str, str], np.ndarray]:
    """Each (reader, condition)'s six-class answers in ``cases`` order."""
    pos = {c: i for i, c in enumerate(cases)}
    out: dict[tuple[str, str], np.ndarray] = {}
    for reader, condition, case, answer in zip(
        resp.reader.tolist(), resp.condition.tolist(), resp.case.tolist(), resp.answer.tolist(), strict=True
    ):
        out.setdefault((reader, condition), np.zeros(len(cases), dtype=np.intp))[pos[case]] = answer
    return out


def _or_cross_check(
    resp: readers.Responses,
    model: Mapping[str, np.ndarray],
    truth: np.ndarray,
    cases: Sequence[str],
    level: float,
) -> list[dict[str, Any]]:
    """Obuchowski–Rockette model − mean readers, κ as figure of merit, per task, condition and panel.

    ``model``: the model's answers per task as :func:`readerstudy.analysis.readers.analyse` scores them (binary:
    P(fracture) ≥ 0.5, not the argmax, so the OR κ of the model equals the observers table's).
    """
    answers = _answers(resp, cases)
    group_of = dict(zip(resp.reader.tolist(), resp.group.tolist(), strict=True))
    fracture = list(FRACTURE_INDICES)
    rows = []
    for task in readers.TASKS:
        binary = task == "binary"
        fom = _kappa_fom(BINARY_LABELS if binary else tuple(range(len(CLASS_KEYS))))

        def convert(a: np.ndarray, binary: bool = binary) -> np.ndarray:
            return np.isin(a, fracture) if binary else a

        t, m = convert(truth), np.asarray(model[task])
        for condition in readers.CONDITIONS:
            for panel in _OR_GROUPS:
                names = [r for (r, c) in answers if c == condition and (panel == "all" or group_of[r] == panel)]
                if len(names) < 2:  # OR's reader variance needs two readers; a panel of one has no row
                    continue
                matrix = np.stack([convert(answers[(r, condition)]) for r in names])
                result = model_vs_readers(m, matrix, t, fom, level=level)
                rows.append(
                    {
                        "task": task,
                        "condition": condition,
                        "readers": panel,
                        "n_readers": len(names),
                        "model_kappa": _num(result.modality_means[0]),
                        "readers_kappa": _num(result.modality_means[1]),
                        "difference": _num(result.difference),
                        "se": _num(result.se),
                        "ddf": _num(result.ddf),
                        "ci_low": _num(result.ci_low),
                        "ci_high": _num(result.ci_high),
                        "p_value": _num(result.p_value),
                    }
                )
    return rows


def build_report(
    responses: Any,
    predictions: Any,
    *,
    iterations: int = 2000,
    seed: int = 0,
    margin: float | None = None,
    level: float = 0.95,
    estimate: str = DEFAULT_ESTIMATE,
    model_config: Mapping[str, Any] | None = None,
    test_time: str | None = None,
    labelling: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`readerstudy.analysis.readers.analyse` plus the OR cross-check (``or_check``), how readers
    changed their minds with the model (``aided``: :func:`readerstudy.analysis.aided.aided_rows`), figure data
    (``figures``) and the deviations from the paper that apply (``deviations``).

    ``responses``/``predictions``: paths, DataFrames, row dicts or the validated objects. Bad input
    raises :class:`readerstudy.analysis.readers.ReaderDataError` before anything is computed. JSON-safe.
    ``estimate`` names the point estimate the tables and the forest plot show
    (:data:`readerstudy.analysis.verdicts.ESTIMATES`). ``model_config`` (the frozen model version's classifier
    config, None when unknown, as for CSV files from elsewhere) and ``test_time`` (how the model's
    readings were frozen; default: the config's) feed :func:`study_facts`, whose deviations
    (:func:`ml.core.deviations.study_deviations`) are kept under ``deviations``. ``labelling``: how
    the cases' ground truth was labelled (``proposals_show_class``, ``proposal_share``, ...: the
    labelling entries' facts), None when unknown (CSV files from elsewhere).
    ``figures`` holds ``confusion_matrix`` (labels, counts-normalised rows of the model's six-class
    answers), ``roc_model`` (the model's binary ROC curve, AUC and the 95% band on the same
    bootstrap samples as the κ CIs) and ``reader_points`` (binary sensitivity/specificity of every
    reader and group mean per condition, from ``observers``).
    """
    resp = responses if isinstance(responses, readers.Responses) else readers.read_responses(responses)
    pred = predictions if isinstance(predictions, readers.Predictions) else readers.read_predictions(predictions)
    check_estimate(estimate)
    report = readers.analyse(
        resp, pred, iterations=iterations, seed=seed, margin=margin, level=level, estimate=estimate
    )

    cases = resp.cases()
    where = {c: i for i, c in enumerate(pred.case.tolist())}
    rows = np.array([where[c] for c in cases], dtype=np.intp)  # analyse has checked every case is there
    truth = pred.truth[rows]
    probs = pred.probabilities[rows]
    patients = pred.patient[rows]
    model_mc = np.argmax(probs, axis=1)
    p_fracture = probs[:, list(FRACTURE_INDICES)].sum(axis=1)
    y = np.isin(truth, list(FRACTURE_INDICES))

    model = {"binary": p_fracture >= 0.5, "multiclass": model_mc}
    report["or_check"] = _or_cross_check(resp, model, truth, cases, level)
    report["aided"] = aided_rows(responses=resp, predictions=pred)

    labels = list(range(len(CLASS_KEYS)))
    cm = _normalized_cm(truth, model_mc, labels=labels)
    roc: dict[str, Any] = {"fpr": [], "tpr": [], "auc": None, "band": None}
    if y.any() and not y.all():
        fpr, tpr, _ = roc_curve(y, p_fracture)
        roc.update(fpr=[float(v) for v in fpr], tpr=[float(v) for v in tpr], auc=_num(roc_auc(y, p_fracture)))
        try:
            idx = bootstrap_indices(patients, iterations=iterations, seed=seed)
            band = roc_band(y, p_fracture, patients, seed=None, indices=idx, level=level)
            roc["band"] = {
                "fpr": [float(v) for v in band.fpr],
                "tpr_low": [float(v) for v in band.tpr_low],
                "tpr_high": [float(v) for v in band.tpr_high],
                "level": level,
            }
        except ValueError:  # no bootstrap sample with both classes
            pass
    points = [
        {k: r[k] for k in ("observer", "group", "training", "condition", "sensitivity", "specificity")}
        for r in report["observers"]
        if r["task"] == "binary" and r["observer"] != readers.MODEL
    ]
    report["figures"] = {
        "confusion_matrix": {
            "labels": list(CLASS_KEYS),
            "normalized": [[_num(v) for v in row] for row in cm],
        },
        "roc_model": roc,
        "reader_points": points,
    }
    report["inputs_sha256"] = None
    report["model_config"] = dict(model_config) if model_config else None
    if test_time is None and model_config:
        test_time = model_config.get("test_time")
    report["test_time"] = test_time
    report["labelling"] = dict(labelling) if labelling else None
    facts = study_facts(report)
    report["deviations"] = study_deviations(facts)
    return report


def study_facts(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the deviations of a study's analysis look at (see ``ml/core/deviations.py``), from the
    analysis itself: the margin's source and values, the estimate shown, iterations, seed, the
    most readers of one group and training, the model's test-time protocol and its config."""
    per_training: dict[tuple[str, str], int] = {}
    for row in report["observers"]:
        if row["task"] == readers.TASKS[0] and row["condition"] == readers.CONDITIONS[0]:
            if row["group"] in readers.GROUPS and row["training"] != readers.GROUP_MEAN:
                key = (row["group"], row["training"])
                per_training[key] = per_training.get(key, 0) + 1
    margin = report["margin"]
    return {
        "margin_source": margin["source"],
        "margin": margin["value"],
        "margin_empirical": margin["empirical"],
        "estimate": report.get("estimate", DEFAULT_ESTIMATE),
        "iterations": report["iterations"],
        "seed": report["seed"],
        "readers_per_training": max(per_training.values(), default=0),
        "test_time": report.get("test_time"),
        "model_config": report.get("model_config"),
        **(report.get("labelling") or {}),
    }


# --------------------------------------------------------------------------- figures


def _confusion_figure(report: Mapping[str, Any]) -> Figure:
    return confusion_figure(
        report["figures"]["confusion_matrix"],
        f"Model on the reader-study cases (n = {report['n_cases']}), normalized confusion matrix",
    )


def _draw_model_roc(ax: Any, report: Mapping[str, Any]) -> None:
    roc = report["figures"]["roc_model"]
    band = roc.get("band")
    if band:
        pct = round(100 * float(band["level"]))
        ax.fill_between(band["fpr"], band["tpr_low"], band["tpr_high"], color="C0", alpha=0.2, label=f"{pct}% band")
    if roc["fpr"]:
        ax.plot(roc["fpr"], roc["tpr"], color="C0", linewidth=2, label=f"Model (AUC = {fmt(roc['auc'])})")
    else:
        ax.text(0.5, 0.5, "ROC undefined: one class only", ha="center", va="center")


def _roc_model_figure(report: Mapping[str, Any]) -> Figure:
    fig = Figure(figsize=(6, 6))
    ax = fig.add_subplot()
    _draw_model_roc(ax, report)
    roc_axes(ax, "Model: fracture vs no fracture")
    ax.legend(loc="lower right", fontsize=8)
    return fig


_POINT_STYLE = {"expert": ("C3", "o"), "resident": ("C2", "s")}


def _roc_readers_figure(report: Mapping[str, Any], condition: str) -> Figure:
    fig = Figure(figsize=(6.5, 6.5))
    ax = fig.add_subplot()
    _draw_model_roc(ax, report)
    conditions = [condition] + (["model_aided"] if condition == "full_quality" else [])
    for cond in conditions:
        aided = cond == "model_aided"
        for group in readers.GROUPS:
            color, marker = _POINT_STYLE.get(group, ("k", "^"))
            pts = [
                p
                for p in report["figures"]["reader_points"]
                if p["condition"] == cond
                and p["group"] == group
                and p["sensitivity"] is not None
                and p["specificity"] is not None
            ]
            readers_pts = [p for p in pts if p["training"] != readers.GROUP_MEAN]
            means = [p for p in pts if p["training"] == readers.GROUP_MEAN]
            suffix = " (model-aided)" if aided else ""
            ax.scatter(
                [1 - p["specificity"] for p in readers_pts],
                [p["sensitivity"] for p in readers_pts],
                color=color,
                marker=marker,
                facecolors="none" if aided else color,
                s=30,
                label=f"{group}s{suffix}",
            )
            ax.scatter(
                [1 - p["specificity"] for p in means],
                [p["sensitivity"] for p in means],
                color=color,
                marker="*",
                s=180,
                edgecolors="k",
                label=f"{group} mean{suffix}",
            )
    roc_axes(ax, f"Model ROC and readers, {CONDITION_LABELS[condition]}")
    ax.legend(loc="lower right", fontsize=7)
    return fig


def _label(row: Mapping[str, Any]) -> str:
    return (
        f"{row['task'][:3]}: {row['a']} ({CONDITION_LABELS.get(row['condition_a'], row['condition_a'])}) − "
        f"{row['b']} ({CONDITION_LABELS.get(row['condition_b'], row['condition_b'])})"
    )


def forest_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the forest plot draws, one row per comparison in report order: its ``label``, ``task``,
    ``point`` (the report's chosen estimate), ``ci_low``/``ci_high``, ``verdict`` (the CSV's) and
    ``borderline`` (the CI lower bound within the tolerance of 0 or −margin)."""
    estimate = estimate_of(report)
    return [
        {
            "label": _label(r),
            "task": r["task"],
            "point": shown_estimate(r, estimate),
            "ci_low": r["ci_low"],
            "ci_high": r["ci_high"],
            "verdict": r["verdict"],
            "borderline": bool(r.get("borderline")),
        }
        for r in report["comparisons"]
    ]


def _forest_figure(report: Mapping[str, Any]) -> Figure:
    rows = forest_rows(report)
    fig = Figure(figsize=(9, max(3.0, 0.28 * len(rows) + 1.8)), layout="constrained")
    ax = fig.add_subplot()
    ys = np.arange(len(rows))[::-1]
    for y, row in zip(ys, rows, strict=True):
        color = "C0" if row["task"] == "binary" else "C1"
        if row["ci_low"] is not None and row["ci_high"] is not None:
            ax.plot([row["ci_low"], row["ci_high"]], [y, y], color=color, linewidth=1.5)
        if row["point"] is not None:
            ax.plot([row["point"]], [y], marker="o", color=color, linestyle="none")
        mark = f" {BORDERLINE_MARK}" if row["borderline"] else ""
        ax.annotate(
            f"{row['verdict']}{mark}",
            xy=(1.01, y),
            xycoords=("axes fraction", "data"),
            va="center",
            fontsize=7,
            gid="verdict",
        )
    ax.axvline(0.0, color="k", linewidth=1)
    margin = report["margin"]["value"]
    if margin is not None:
        ax.axvline(-margin, color="C3", linestyle="--", linewidth=1, label=f"−margin = {-margin:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(ys, [r["label"] for r in rows], fontsize=7)
    ax.set_xlabel(
        f"κ difference, {estimate_caption(report)}; bar: 95% bootstrap CI; blue binary, orange six-class"
        + (
            f"\n{BORDERLINE_MARK} borderline: the CI's lower bound lies within "
            f"{(report.get('borderline') or {}).get('tolerance', 0.01):g} of 0 or −margin"
            if any(r["borderline"] for r in rows)
            else ""
        ),
        fontsize=8,
    )
    ax.set_title("Differences in κ, with verdicts")
    return fig


_DRAW: dict[str, Callable[[Mapping[str, Any]], Figure]] = {
    "confusion_matrices": _confusion_figure,
    "roc_model": _roc_model_figure,
    "roc_readers_model_quality": lambda r: _roc_readers_figure(r, "model_quality"),
    "roc_readers_full_quality": lambda r: _roc_readers_figure(r, "full_quality"),
    "kappa_differences": _forest_figure,
}


_CAPTIONS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "confusion_matrices": lambda r: "Figure 3: the model's normalized confusion matrix on the reader-study cases",
    "roc_model": lambda r: "Figure 4: the model's binary ROC curve with its 95% band (vertical averaging)",
    "roc_readers_model_quality": lambda r: "Figure 7: readers and groups on the model's ROC, model-quality images",
    "roc_readers_full_quality": lambda r: "Figure 7: readers and groups on the model's ROC, full-quality and aided",
    "kappa_differences": lambda r: (
        f"Differences in κ with 95% CIs and verdicts; {estimate_caption(r)}; "
        f"{BORDERLINE_MARK} borderline (seed {fmt(r['seed'])}, {r['iterations']} iterations)"
    ),
}


# --------------------------------------------------------------------------- PDF


def _pdf(report: Mapping[str, Any], figures: Mapping[str, Figure]) -> bytes:
    """The tables' pages, then one page per figure (in :data:`FIGURES` order)."""
    buf = io.BytesIO()
    # No creation date in the metadata, so the same report gives the same bytes.
    with PdfPages(buf, metadata={"Title": "Reader study report", "CreationDate": None}) as pdf:
        for page in table_pages(report):
            pdf.savefig(page)
        for stem in FIGURES:
            pdf.savefig(figures[stem], bbox_inches="tight")
        if "flow" in figures:  # a report built from the platform's records
            pdf.savefig(figures["flow"], bbox_inches="tight")
    return buf.getvalue()


# --------------------------------------------------------------------------- writing


def _render(report: Mapping[str, Any], folder: Path, progress: Callable[[str], None] | None = None) -> None:
    """Every file of :data:`REPORT_FILES` into ``folder`` (a fresh temporary one); ``progress(stage)``
    is told when the figures (``"figures"``) and the HTML and PDF (``"pdf"``) begin."""
    readers.write_csvs(report, folder)
    figures: dict[str, Figure] = {}
    pngs: dict[str, bytes] = {}
    if progress is not None:
        progress("figures")
    for stem in FIGURES:
        fig = _DRAW[stem](report)
        FigureCanvasAgg(fig)
        for kind in ("png", "svg"):
            buf = io.BytesIO()
            metadata = {"Date": None} if kind == "svg" else None
            fig.savefig(buf, format=kind, dpi=_DPI, bbox_inches="tight", metadata=metadata)
            (folder / f"{stem}.{kind}").write_bytes(buf.getvalue())
            if kind == "png":
                pngs[stem] = buf.getvalue()
        figures[stem] = fig
    flow = reporting.write_flow(report, folder)
    if flow is not None:
        figures["flow"] = flow
    if progress is not None:
        progress("pdf")
    captions = [(stem, pngs[stem], _CAPTIONS[stem](report)) for stem in FIGURES]
    page = reporting.with_documents(html_page(report, captions), report, folder)
    (folder / "report.html").write_text(page, encoding="utf-8")
    (folder / "report.pdf").write_bytes(_pdf(report, figures))


def write_report(
    report: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    inputs_sha256: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write :data:`REPORT_FILES` into ``out_dir``; returns their paths in that order.

    ``inputs_sha256`` (see :func:`inputs_sha256`) is recorded in ``report.json`` and the summary
    table. ``progress(stage)``, when given, is called as the figures and then the HTML/PDF begin
    (it changes nothing written). All files are rendered into a temporary sibling folder first; then, if ``out_dir`` is
    missing or empty, the folder is renamed onto it (one atomic step), else each file is moved in
    with ``os.replace`` and other files in ``out_dir`` are kept. On any error the temporary
    folder is removed and ``out_dir`` is left as it was.
    """
    out = Path(out_dir)
    data = dict(report)
    if inputs_sha256 is not None:
        data["inputs_sha256"] = inputs_sha256
    data.setdefault("inputs_sha256", None)
    json.dumps(data, allow_nan=False)  # fail before touching the disk if the dict is not JSON-safe
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        _render(data, tmp, progress)
        names = (*REPORT_FILES, *reporting.present(tmp))
        for name in names:
            os.chmod(tmp / name, 0o644)
        if out.is_dir() and any(out.iterdir()):
            for name in names:
                os.replace(tmp / name, out / name)
            tmp.rmdir()
        else:
            if out.is_dir():
                out.rmdir()
            os.chmod(tmp, 0o755)
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out / name for name in REPORT_FILES]
