"""The reader study's report: the paper's Tables 3–5 and Figures 3, 4 and 7 as files, HTML and PDF.

What: :func:`build_report` runs :func:`ml.core.readers.analyse` (κ of every observer, the paired
bootstrap differences, the noninferiority margin, the ROC-band check) and adds

- an Obuchowski–Rockette cross-check (:func:`ml.core.mrmc.model_vs_readers`) of the model against
  the readers with Cohen's κ as figure of merit, per task and condition, for all readers of that
  condition and for each group alone: difference = κ_model − mean κ_readers with its
  random-readers-random-cases CI and p-value. The paper's bootstrap treats the readers as fixed;
  OR also lets the readers vary, so agreement of the two is a check that the verdicts do not hang
  on this particular panel.
- the data of the figures (the model's normalised confusion matrix, its binary ROC curve with the
  95% band on the same bootstrap samples as the κ CIs, and every reader's and group's
  (1 − specificity, sensitivity) point).

:func:`write_report` writes, from the dict alone (so a ``report.json`` loaded back renders the
same): ``observers.csv``, ``kappa_differences.csv``, ``report.json`` (via
:func:`ml.core.readers.write_csvs`), the figures ``confusion_matrices``, ``roc_model``,
``roc_readers_model_quality``, ``roc_readers_full_quality`` and ``kappa_differences`` as PNG and
SVG, ``report.html`` (one self-contained file: inline CSS, figures as base64 PNG, no script, no
external reference; every text from the input files escaped) and ``report.pdf`` (the same tables
drawn with ``ax.table`` on A4 pages, then the figures, via matplotlib's ``PdfPages``).

Why base64 PNG rather than inline SVG in the HTML: matplotlib's SVG carries a DOCTYPE and
namespace URLs; PNG keeps the page free of any ``http`` text, so "no external reference" can be
checked by a plain substring test.

Atomicity: everything is written into a temporary sibling folder of ``out_dir`` first. If
``out_dir`` does not exist or is empty, that folder is renamed onto it in one step; otherwise
(an existing folder with other files) each of our files is moved in with ``os.replace``, one by
one, and files that are not ours are left alone. A crash while rendering therefore leaves
``out_dir`` untouched.

Plain NumPy and matplotlib (object API, Agg canvas, no pyplot state); no Django.
"""

from __future__ import annotations

import base64
import hashlib
import html
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

from ml.core import readers
from ml.core.mrmc import model_vs_readers
from ml.core.report import confusion_figure, roc_axes
from ml.core.roc import roc_auc, roc_band, roc_curve
from ml.core.stats import BINARY_LABELS, CLASS_KEYS, FRACTURE_INDICES, bootstrap_indices, cohen_kappa
from ml.core.stats import normalized_confusion_matrix as _normalized_cm

__all__ = [
    "FIGURES",
    "REPORT_FILES",
    "build_report",
    "inputs_sha256",
    "pdf_sections",
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
#: Rows of one table on one A4 page of the PDF; longer tables continue on the next page.
PDF_ROWS_PER_PAGE = 32
_DPI = 150
_A4 = (8.27, 11.69)
_OR_GROUPS: tuple[str, ...] = ("all", *readers.GROUPS)
_CONDITION_LABELS = {
    "model_quality": "model-quality images",
    "full_quality": "full-quality images",
    "model_aided": "model-aided",
    readers.MODEL_CONDITION: "all",
}


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

    ``model``: the model's answers per task as :func:`ml.core.readers.analyse` scores them (binary:
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
) -> dict[str, Any]:
    """:func:`ml.core.readers.analyse` plus the OR cross-check (``or_check``) and figure data (``figures``).

    ``responses``/``predictions``: paths, DataFrames, row dicts or the validated objects. Bad input
    raises :class:`ml.core.readers.ReaderDataError` before anything is computed. JSON-safe.
    ``figures`` holds ``confusion_matrix`` (labels, counts-normalised rows of the model's six-class
    answers), ``roc_model`` (the model's binary ROC curve, AUC and the 95% band on the same
    bootstrap samples as the κ CIs) and ``reader_points`` (binary sensitivity/specificity of every
    reader and group mean per condition, from ``observers``).
    """
    resp = responses if isinstance(responses, readers.Responses) else readers.read_responses(responses)
    pred = predictions if isinstance(predictions, readers.Predictions) else readers.read_predictions(predictions)
    report = readers.analyse(resp, pred, iterations=iterations, seed=seed, margin=margin, level=level)

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
    return report


# --------------------------------------------------------------------------- figures


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ci(row: Mapping[str, Any], low: str = "ci_low", high: str = "ci_high") -> str:
    return f"{_fmt(row[low])} to {_fmt(row[high])}"


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
        ax.plot(roc["fpr"], roc["tpr"], color="C0", linewidth=2, label=f"Model (AUC = {_fmt(roc['auc'])})")
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
    roc_axes(ax, f"Model ROC and readers, {_CONDITION_LABELS[condition]}")
    ax.legend(loc="lower right", fontsize=7)
    return fig


def _forest_figure(report: Mapping[str, Any]) -> Figure:
    rows = report["comparisons"]
    fig = Figure(figsize=(8, max(3.0, 0.28 * len(rows) + 1.5)), layout="constrained")
    ax = fig.add_subplot()
    ys = np.arange(len(rows))[::-1]
    for y, row in zip(ys, rows, strict=True):
        if row["estimate"] is None:
            continue
        color = "C0" if row["task"] == "binary" else "C1"
        if row["ci_low"] is not None and row["ci_high"] is not None:
            ax.plot([row["ci_low"], row["ci_high"]], [y, y], color=color, linewidth=1.5)
        ax.plot([row["estimate"]], [y], marker="o", color=color, linestyle="none")
    ax.axvline(0.0, color="k", linewidth=1)
    margin = report["margin"]["value"]
    if margin is not None:
        ax.axvline(-margin, color="C3", linestyle="--", linewidth=1, label=f"−margin = {-margin:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    labels = [
        f"{r['task'][:3]}: {r['a']} ({_CONDITION_LABELS.get(r['condition_a'], r['condition_a'])}) − "
        f"{r['b']} ({_CONDITION_LABELS.get(r['condition_b'], r['condition_b'])})"
        for r in rows
    ]
    ax.set_yticks(ys, labels, fontsize=7)
    ax.set_xlabel("κ difference (95% bootstrap CI); blue binary, orange six-class")
    ax.set_title("Differences in κ")
    return fig


_DRAW: dict[str, Callable[[Mapping[str, Any]], Figure]] = {
    "confusion_matrices": _confusion_figure,
    "roc_model": _roc_model_figure,
    "roc_readers_model_quality": lambda r: _roc_readers_figure(r, "model_quality"),
    "roc_readers_full_quality": lambda r: _roc_readers_figure(r, "full_quality"),
    "kappa_differences": _forest_figure,
}


# --------------------------------------------------------------------------- tables


def _is_model_vs_group(row: Mapping[str, Any]) -> bool:
    return row["a"] == readers.MODEL and row["b"] in readers.GROUPS


def _sections(report: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows of text) of every table, in report order; the HTML and the PDF share them."""
    groups = {(r["group"], r["condition"]): r for r in report.get("roc_check", [])}
    summary = [
        ["cases", str(report["n_cases"])],
        ["patients", str(report["n_patients"])],
    ]
    counts: dict[tuple[str, str], int] = {}
    for r in report["observers"]:
        if r["task"] == "binary" and r["condition"] == readers.CONDITIONS[0] and r["training"] != readers.GROUP_MEAN:
            if r["observer"] != readers.MODEL:
                counts[(r["group"], r["training"])] = counts.get((r["group"], r["training"]), 0) + 1
    for (group, training), n in counts.items():
        summary.append([f"readers: {group}, {training}", str(n)])
    summary += [
        ["bootstrap iterations", str(report["iterations"])],
        ["seed", _fmt(report["seed"])],
        ["CI level", _fmt(report["level"], 2)],
        ["inputs SHA-256", _fmt(report.get("inputs_sha256"))],
    ]
    obs_header = ["task", "observer", "condition", "accuracy", "sensitivity", "specificity", "κ", "κ 95% CI"]

    def obs_row(r: Mapping[str, Any]) -> list[str]:
        return [
            r["task"],
            r["observer"],
            _CONDITION_LABELS.get(r["condition"], r["condition"]),
            _fmt(r["accuracy"]),
            _fmt(r["sensitivity"]),
            _fmt(r["specificity"]),
            _fmt(r["kappa"]),
            _ci(r, "kappa_ci_low", "kappa_ci_high"),
        ]

    table3 = [
        obs_row(r) for r in report["observers"] if r["observer"] == readers.MODEL or r["training"] == readers.GROUP_MEAN
    ]
    diff_header = ["task", "a", "condition a", "b", "condition b", "κ difference", "95% CI", "verdict"]

    def diff_row(r: Mapping[str, Any]) -> list[str]:
        return [
            r["task"],
            r["a"],
            _CONDITION_LABELS.get(r["condition_a"], r["condition_a"]),
            r["b"],
            _CONDITION_LABELS.get(r["condition_b"], r["condition_b"]),
            _fmt(r["estimate"]),
            _ci(r),
            r["verdict"],
        ]

    table4 = []
    for r in report["comparisons"]:
        if not _is_model_vs_group(r):
            continue
        check = groups.get((r["b"], r["condition_b"])) if r["task"] == "binary" else None
        extra = (
            [_fmt(check["band_tpr_low"]), _fmt(check["below_band"]), _fmt(check["model_superior"])]
            if check
            else ["", "", ""]
        )
        table4.append(diff_row(r) + extra)
    table5 = [diff_row(r) for r in report["comparisons"] if not _is_model_vs_group(r)]
    margin = report["margin"]
    margin_rows = [
        ["margin used", _fmt(margin["value"]), f"source: {margin['source']}", f"empirical: {_fmt(margin['empirical'])}"]
    ]
    pairs = [
        [
            p["task"],
            _CONDITION_LABELS.get(p["condition"], p["condition"]),
            p["group"],
            p["training"],
            p["a"],
            p["b"],
            _fmt(p["kappa_a"]),
            _fmt(p["kappa_b"]),
            _fmt(p["difference"]),
        ]
        for p in margin["pairs"]
    ]
    or_rows = [
        [
            r["task"],
            _CONDITION_LABELS.get(r["condition"], r["condition"]),
            r["readers"],
            str(r["n_readers"]),
            _fmt(r["model_kappa"]),
            _fmt(r["readers_kappa"]),
            _fmt(r["difference"]),
            _ci(r),
            _fmt(r["p_value"], 4),
        ]
        for r in report["or_check"]
    ]
    all_observers = [obs_row(r) for r in report["observers"]]
    return [
        ("Inputs", ["item", "value"], summary),
        ("Table 3: observers (model and group means), binary and six-class", obs_header, table3),
        (
            "Table 4: model vs human groups (κ difference = model − group)",
            [*diff_header, "band lower TPR", "group below band", "model superior"],
            table4,
        ),
        ("Table 5: between human groups and conditions (κ difference = a − b)", diff_header, table5),
        ("Noninferiority margin", ["", "value", "", ""], margin_rows),
        (
            "Margin pairs: readers of one training",
            ["task", "condition", "group", "training", "a", "b", "κ a", "κ b", "|difference|"],
            pairs,
        ),
        (
            "Obuchowski–Rockette cross-check: model − mean readers, κ (random readers, random cases)",
            ["task", "condition", "readers", "n", "κ model", "κ readers", "difference", "95% CI", "p"],
            or_rows,
        ),
        ("Every observer", obs_header, all_observers),
    ]


# --------------------------------------------------------------------------- HTML


_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: left; }
th { background: #eee; }
figure { margin: 1em 0; }
img { max-width: 100%; }
.note { font-size: 0.85em; color: #555; }
"""


def _html(report: Mapping[str, Any], pngs: Mapping[str, bytes]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Reader study report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>Reader study report (Krogue et al. 2020, Tables 3–5)</h1>",
        f'<p class="note">{e(report["multiclass_note"])}.</p>',
    ]
    for title, header, rows in _sections(report):
        parts.append(f"<h2>{e(title)}</h2><table><thead><tr>")
        parts += [f"<th>{e(h)}</th>" for h in header]
        parts.append("</tr></thead><tbody>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("<h2>Figures</h2>")
    for stem in FIGURES:
        data = base64.b64encode(pngs[stem]).decode("ascii")
        parts.append(
            f'<figure><img alt="{e(stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{e(stem)}</figcaption></figure>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------- PDF


def pdf_sections(report: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(table title, number of PDF pages) per table; the PDF has their sum plus one page per figure."""
    return [(title, max(1, math.ceil(len(rows) / PDF_ROWS_PER_PAGE))) for title, _, rows in _sections(report)]


def _table_pages(report: Mapping[str, Any]) -> list[Figure]:
    """One A4 Figure per page of tables: each table of :func:`_sections`, split every PDF_ROWS_PER_PAGE rows."""
    pages = []
    for title, header, rows in _sections(report):
        chunks = [rows[i : i + PDF_ROWS_PER_PAGE] for i in range(0, len(rows), PDF_ROWS_PER_PAGE)] or [[]]
        for n, chunk in enumerate(chunks):
            fig = Figure(figsize=_A4)
            FigureCanvasAgg(fig)
            ax = fig.add_axes((0.04, 0.04, 0.92, 0.88))
            ax.axis("off")
            suffix = f" (page {n + 1} of {len(chunks)})" if len(chunks) > 1 else ""
            fig.suptitle(title + suffix, fontsize=10, wrap=True)
            body = chunk or [["(none)"] + [""] * (len(header) - 1)]
            table = ax.table(cellText=body, colLabels=header, loc="upper center", cellLoc="left")
            table.auto_set_font_size(False)
            table.set_fontsize(6 if len(header) > 6 else 8)
            table.auto_set_column_width(list(range(len(header))))
            pages.append(fig)
    return pages


def _pdf(report: Mapping[str, Any], figures: Mapping[str, Figure]) -> bytes:
    """The tables' pages, then one page per figure (in :data:`FIGURES` order)."""
    buf = io.BytesIO()
    # No creation date in the metadata, so the same report gives the same bytes.
    with PdfPages(buf, metadata={"Title": "Reader study report", "CreationDate": None}) as pdf:
        for page in _table_pages(report):
            pdf.savefig(page)
        for stem in FIGURES:
            pdf.savefig(figures[stem], bbox_inches="tight")
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
        for fmt in ("png", "svg"):
            buf = io.BytesIO()
            metadata = {"Date": None} if fmt == "svg" else None
            fig.savefig(buf, format=fmt, dpi=_DPI, bbox_inches="tight", metadata=metadata)
            (folder / f"{stem}.{fmt}").write_bytes(buf.getvalue())
            if fmt == "png":
                pngs[stem] = buf.getvalue()
        figures[stem] = fig
    if progress is not None:
        progress("pdf")
    (folder / "report.html").write_text(_html(report, pngs), encoding="utf-8")
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
        for name in REPORT_FILES:
            os.chmod(tmp / name, 0o644)
        if out.is_dir() and any(out.iterdir()):
            for name in REPORT_FILES:
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
