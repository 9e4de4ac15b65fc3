"""The reader study report's tables (:mod:`readerstudy.report.reader_report`): the text of every table,
shared by the HTML page and the PDF, each with its note (which point estimate it shows, the
paper's binary rule, borderline verdicts with the seed and iterations, the deviations); the
self-contained HTML page; and the PDF's A4 table pages. From the report dict alone; no Django.
"""

from __future__ import annotations

import base64
import html
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from readerstudy.analysis import readers
from readerstudy.analysis.aided import AIDED_COUNTS
from readerstudy.analysis.verdicts import BORDERLINE_TOLERANCE, ESTIMATE_LABELS, shown_estimate

__all__ = [
    "BORDERLINE_MARK",
    "CONDITION_LABELS",
    "PDF_ROWS_PER_PAGE",
    "Section",
    "borderline_note",
    "ci_text",
    "estimate_caption",
    "estimate_of",
    "fmt",
    "html_page",
    "pdf_sections",
    "sections",
    "summary_text",
    "table_pages",
]

#: Rows of one table on one A4 page of the PDF; longer tables continue on the next page.
PDF_ROWS_PER_PAGE = 32
_A4 = (8.27, 11.69)
_TABLE_WIDTH_PT = 0.92 * _A4[0] * 72  # the tables' axes span 92% of the page
_CHAR_WIDTH = 0.55  # mean width of a character of the table font, in units of its size
CONDITION_LABELS = {
    "model_quality": "model-quality images",
    "full_quality": "full-quality images",
    "model_aided": "model-aided",
    readers.MODEL_CONDITION: "all",
}
#: Mark of a borderline verdict in the tables and the forest plot.
BORDERLINE_MARK = "†"
#: One table of the report: (title, header, rows of text, note under the title).
Section = tuple[str, list[str], list[list[str]], str]
_SHORT_ESTIMATE = {"bootstrap-mean": "bootstrap mean", "all-cases": "all cases"}


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def ci_text(row: Mapping[str, Any], low: str = "ci_low", high: str = "ci_high") -> str:
    return f"{fmt(row[low])} to {fmt(row[high])}"


def estimate_of(report: Mapping[str, Any]) -> str:
    """The point estimate the report shows; a report from before the choice showed the all-case one."""
    return str(report.get("estimate", "all-cases"))


def estimate_caption(report: Mapping[str, Any]) -> str:
    if estimate_of(report) == "bootstrap-mean":
        return f"point estimate: mean of the {report['iterations']} bootstrap samples (the paper's)"
    return "point estimate: the statistic on all cases (not the paper's bootstrap mean)"


def _is_model_vs_group(row: Mapping[str, Any]) -> bool:
    return row["a"] == readers.MODEL and row["b"] in readers.GROUPS


def borderline_note(report: Mapping[str, Any]) -> str:
    info = report.get("borderline") or {}
    tolerance = info.get("tolerance", BORDERLINE_TOLERANCE)
    return (
        f"{BORDERLINE_MARK} borderline: the CI's lower bound lies within {tolerance:g} of 0 or of −margin, so the "
        f"verdict may flip with another bootstrap seed (this report: seed {fmt(report['seed'])}, "
        f"{report['iterations']} iterations)."
    )


def _deviation_rows(report: Mapping[str, Any]) -> tuple[list[list[str]], str]:
    rows = [[d["key"], d["kind"], d["area"], d["title"], d.get("detail", "")] for d in report.get("deviations", [])]
    if report.get("model_config"):
        config = report["model_config"]
        known = f"the model's configuration ({config.get('name', 'unnamed')}) is known: its deviations are listed"
    else:
        known = (
            "the model's configuration is unknown (the report was made from files, not from a study of this "
            "site): the classifier's own deviations cannot be listed"
        )
    note = (
        f"Generated from the analysis's settings; {known}. The paper's words, our choice, why and how to get the "
        "paper's behaviour back for each: report.json's deviations and the docs page docs/research/deviations.md."
    )
    return rows, note


# --------------------------------------------------------------------------- summary and aided reading

#: The title of the summary, the first section: a paragraph (its note) and no table.
SUMMARY_TITLE = "Summary"
AIDED_TITLE = "Aided reading: how readers changed their minds with the model (DECIDE-AI)"
AIDED_NOTE = (
    "Phase-3 cases: those where the reader's phase-2 (full-quality) answer differed from the model's top class "
    "(the argmax of its probabilities). On them, the aided answer either switched to the model's (right or wrong: "
    "the model's answer equals the truth or not), kept the reader's own (right or wrong), or moved to a third "
    "class (other). Six classes; accuracy and median seconds per case on the same cases, before (phase 2) and "
    "after (phase 3). A group's row pools its readers' cases. Definitions: docs/research/aided-reading.md."
)
_PLAIN_VERDICT = {
    "superior": "superior",
    "noninferior": "noninferior",
    "not_noninferior": "not shown noninferior",
    "undefined": "undefined",
}
_TASK_WORDS = {"binary": "Fracture or not", "multiclass": "Six classes"}
_GROUP_WORDS = {"expert": "the experts", "resident": "the residents"}
_CONDITION_WORDS = {
    "model_quality": "on model-quality images",
    "full_quality": "on full-quality images",
    "model_aided": "when they read with the model's help",
}


def _kappa_of(report: Mapping[str, Any], task: str, observer: str, condition: str) -> Any:
    """The shown κ of the model (``observer`` = model) or a group's mean under ``condition``."""
    estimate = estimate_of(report)
    for r in report["observers"]:
        if r["task"] != task:
            continue
        model = observer == readers.MODEL and r["observer"] == readers.MODEL
        group = r["group"] == observer and r["training"] == readers.GROUP_MEAN and r["condition"] == condition
        if model or group:
            return shown_estimate(r, estimate, mean_key="kappa_boot_mean", all_key="kappa")
    return None


def _aided_sentence(report: Mapping[str, Any]) -> str:
    parts = []
    for row in report.get("aided") or []:
        if row["observer"] != row["group"] or row["group"] not in readers.GROUPS:
            continue
        switched = row["switched_to_model_right"] + row["switched_to_model_wrong"]
        parts.append(
            f"{_GROUP_WORDS.get(row['group'], row['group'])} switched to the model's answer on {switched} of the "
            f"{row['cases']} cases where they had first disagreed with it ({row['switched_to_model_right']} times "
            f"when it was right, {row['switched_to_model_wrong']} when it was wrong), and their accuracy on those "
            f"cases went from {fmt(row['accuracy_before'])} to {fmt(row['accuracy_after'])}"
        )
    if not parts:
        return ""
    return " With the model's help, " + "; ".join(parts) + "."


def summary_text(report: Mapping[str, Any]) -> str:
    """The report's opening paragraph in plain words: for each task, what the model did against each
    group under each condition (κ of both, the difference with its CI and the verdict), what the
    verdicts mean, and how the groups changed their minds with the model."""
    estimate = estimate_of(report)
    comparisons = [r for r in report["comparisons"] if _is_model_vs_group(r)]
    sentences = [
        f"On {report['n_cases']} cases from {report['n_patients']} patients, the model's agreement with the "
        f"truth (Cohen's κ, {_SHORT_ESTIMATE.get(estimate, estimate)}) was compared with the readers' under each "
        "condition."
    ]
    for task in readers.TASKS:
        clauses = []
        for group in readers.GROUPS:
            rows = [r for r in comparisons if r["task"] == task and r["b"] == group]
            if not rows:
                continue
            items = []
            for r in rows:
                condition = r["condition_b"]
                model_kappa = fmt(_kappa_of(report, task, readers.MODEL, ""))
                mark = f" {BORDERLINE_MARK}" if r.get("borderline") else ""
                items.append(
                    f"{_PLAIN_VERDICT.get(r['verdict'], r['verdict'])}{mark} "
                    f"{_CONDITION_WORDS.get(condition, condition)} (κ {model_kappa} "
                    f"vs {fmt(_kappa_of(report, task, group, condition))}, difference "
                    f"{fmt(shown_estimate(r, estimate))}, 95% CI {ci_text(r)})"
                )
            clauses.append(f"against {_GROUP_WORDS.get(group, group)} the model was " + ", ".join(items))
        if clauses:
            sentences.append(f"{_TASK_WORDS.get(task, task)}: " + "; ".join(clauses) + ".")
    margin = report["margin"]["value"]
    sentences.append(
        "Superior means the CI of the difference lies above 0 (fracture or not: and the group's sensitivity and "
        "specificity lie below the model's ROC band); noninferior means it lies above −margin"
        + (f" (margin {fmt(margin)})" if margin is not None else "")
        + "."
    )
    if any(r.get("borderline") for r in comparisons):
        sentences.append(f"{BORDERLINE_MARK}: borderline, it may flip with another bootstrap seed.")
    return " ".join(sentences) + _aided_sentence(report)


def _aided_rows(report: Mapping[str, Any]) -> list[list[str]]:
    return [
        [
            r["observer"],
            r["group"],
            r["training"],
            str(r["cases"]),
            *(str(r[key]) for key in AIDED_COUNTS),
            fmt(r["accuracy_before"]),
            fmt(r["accuracy_after"]),
            fmt(r["median_seconds_before"], 1),
            fmt(r["median_seconds_after"], 1),
        ]
        for r in report.get("aided") or []
    ]


_AIDED_HEADER = [
    "observer",
    "group",
    "training",
    "phase-3 cases",
    "switched to model, right",
    "switched to model, wrong",
    "kept own, right",
    "kept own, wrong",
    "other",
    "accuracy before",
    "accuracy after",
    "median s before",
    "median s after",
]


def sections(report: Mapping[str, Any]) -> list[Section]:
    """(title, header, rows of text, note) of every table, in report order; the HTML and the PDF share them.
    The first, :data:`SUMMARY_TITLE`, has no header nor rows: its note is the summary paragraph."""
    groups = {(r["group"], r["condition"]): r for r in report.get("roc_check", [])}
    estimate = estimate_of(report)
    shown = _SHORT_ESTIMATE.get(estimate, estimate)
    config = report.get("model_config")
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
        ["seed", fmt(report["seed"])],
        ["CI level", fmt(report["level"], 2)],
        ["point estimate shown", f"{estimate} ({ESTIMATE_LABELS.get(estimate, estimate)})"],
        ["model configuration", config.get("name", "known") if config else "unknown"],
        [
            "model's test-time protocol",
            fmt(report.get("test_time")) if config or report.get("test_time") else "unknown",
        ],
        ["inputs SHA-256", fmt(report.get("inputs_sha256"))],
    ]
    obs_header = [
        "task",
        "observer",
        "condition",
        "accuracy",
        "sensitivity",
        "specificity",
        f"κ ({shown})",
        "κ 95% CI",
    ]

    def obs_row(r: Mapping[str, Any]) -> list[str]:
        return [
            r["task"],
            r["observer"],
            CONDITION_LABELS.get(r["condition"], r["condition"]),
            fmt(r["accuracy"]),
            fmt(r["sensitivity"]),
            fmt(r["specificity"]),
            fmt(shown_estimate(r, estimate, mean_key="kappa_boot_mean", all_key="kappa")),
            ci_text(r, "kappa_ci_low", "kappa_ci_high"),
        ]

    obs_note = (
        f"κ: {estimate_caption(report)}; accuracy, sensitivity and specificity on all cases. "
        f"{report['multiclass_note'].capitalize()}."
    )
    table3 = [
        obs_row(r) for r in report["observers"] if r["observer"] == readers.MODEL or r["training"] == readers.GROUP_MEAN
    ]
    diff_header = [
        "task",
        "a",
        "condition a",
        "b",
        "condition b",
        f"κ difference ({shown})",
        "95% CI",
        "verdict",
        BORDERLINE_MARK,
    ]

    def diff_row(r: Mapping[str, Any]) -> list[str]:
        return [
            r["task"],
            r["a"],
            CONDITION_LABELS.get(r["condition_a"], r["condition_a"]),
            r["b"],
            CONDITION_LABELS.get(r["condition_b"], r["condition_b"]),
            fmt(shown_estimate(r, estimate)),
            ci_text(r),
            r["verdict"],
            BORDERLINE_MARK if r.get("borderline") else "",
        ]

    table4 = []
    for r in report["comparisons"]:
        if not _is_model_vs_group(r):
            continue
        check = groups.get((r["b"], r["condition_b"])) if r["task"] == "binary" else None
        extra = (
            [
                fmt(check["band_tpr_low"]),
                fmt(check["below_band"]),
                fmt(r.get("kappa_verdict", check["kappa_verdict"])),
            ]
            if check
            else ["", "", ""]
        )
        table4.append(diff_row(r) + extra)
    diff_note = f"κ difference: {estimate_caption(report)}; CI: 95% percentile bootstrap. {borderline_note(report)}"
    table4_note = (
        "Binary: the model is superior to a group only when the κ CI lies above 0 and the group's "
        "(1 − specificity, sensitivity) point lies below the lower edge of the model's ROC band (the paper's rule); "
        "with the CI above 0 and the point inside or above the band the verdict is noninferior. " + diff_note
    )
    table5 = [diff_row(r) for r in report["comparisons"] if not _is_model_vs_group(r)]
    margin = report["margin"]
    margin_rows = [
        ["margin used", fmt(margin["value"]), f"source: {margin['source']}", f"empirical: {fmt(margin['empirical'])}"]
    ]
    pairs = [
        [
            p["task"],
            CONDITION_LABELS.get(p["condition"], p["condition"]),
            p["group"],
            p["training"],
            p["a"],
            p["b"],
            fmt(p["kappa_a"]),
            fmt(p["kappa_b"]),
            fmt(p["difference"]),
        ]
        for p in margin["pairs"]
    ]
    or_rows = [
        [
            r["task"],
            CONDITION_LABELS.get(r["condition"], r["condition"]),
            r["readers"],
            str(r["n_readers"]),
            fmt(r["model_kappa"]),
            fmt(r["readers_kappa"]),
            fmt(r["difference"]),
            ci_text(r),
            fmt(r["p_value"], 4),
        ]
        for r in report["or_check"]
    ]
    borderline_rows = [
        [
            r["task"],
            r["a"],
            CONDITION_LABELS.get(r["condition_a"], r["condition_a"]),
            r["b"],
            CONDITION_LABELS.get(r["condition_b"], r["condition_b"]),
            fmt(r["ci_low"], 4),
            ", ".join("−margin" if t == "-margin" else t for t in r["thresholds"]),
            r["verdict"],
        ]
        for r in (report.get("borderline") or {}).get("comparisons", [])
    ]
    deviation_rows, deviation_note = _deviation_rows(report)
    all_observers = [obs_row(r) for r in report["observers"]]
    return [
        (SUMMARY_TITLE, [], [], summary_text(report)),
        ("Inputs", ["item", "value"], summary, ""),
        ("Table 3: observers (model and group means), binary and six-class", obs_header, table3, obs_note),
        (
            "Table 4: model vs human groups (κ difference = model − group)",
            [*diff_header, "band lower TPR", "group below band", "verdict from κ CI alone"],
            table4,
            table4_note,
        ),
        ("Table 5: between human groups and conditions (κ difference = a − b)", diff_header, table5, diff_note),
        (AIDED_TITLE, _AIDED_HEADER, _aided_rows(report), AIDED_NOTE),
        (
            f"Borderline verdicts {BORDERLINE_MARK}",
            ["task", "a", "condition a", "b", "condition b", "CI lower bound", "near", "verdict"],
            borderline_rows,
            borderline_note(report),
        ),
        ("Noninferiority margin", ["", "value", "", ""], margin_rows, ""),
        (
            "Margin pairs: readers of one group and one training",
            ["task", "condition", "group", "training", "a", "b", "κ a", "κ b", "|difference|"],
            pairs,
            "The margin is the mean |κ a − κ b| over these pairs (the same group and training, the same condition), "
            "over the three conditions and both tasks.",
        ),
        (
            "Obuchowski–Rockette cross-check: model − mean readers, κ (random readers, random cases)",
            ["task", "condition", "readers", "n", "κ model", "κ readers", "difference", "95% CI", "p"],
            or_rows,
            "",
        ),
        ("Deviations from the paper", ["key", "kind", "area", "title", "here"], deviation_rows, deviation_note),
        ("Every observer", obs_header, all_observers, obs_note),
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
.summary { max-width: 60em; line-height: 1.4; }
"""


def html_page(report: Mapping[str, Any], figures: Sequence[tuple[str, bytes, str]]) -> str:
    """The self-contained page: the summary paragraph (:func:`summary_text`), every table of
    :func:`sections` with its note, then ``figures`` ((stem, PNG bytes, caption), inlined as base64).
    Every text is escaped."""
    e = html.escape
    tables = sections(report)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Reader study report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>Reader study report (Krogue et al. 2020, Tables 3–5)</h1>",
        *(f'<p class="summary" id="summary">{e(note)}</p>' for title, _, _, note in tables if title == SUMMARY_TITLE),
        f'<p class="note">{e(report["multiclass_note"])}.</p>',
    ]
    for title, header, rows, note in tables:
        if title == SUMMARY_TITLE:
            continue
        parts.append(f"<h2>{e(title)}</h2>")
        if note:
            parts.append(f'<p class="note">{e(note)}</p>')
        parts.append("<table><thead><tr>")
        parts += [f"<th>{e(h)}</th>" for h in header]
        parts.append("</tr></thead><tbody>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("<h2>Figures</h2>")
    for stem, png, caption in figures:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{e(stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{e(caption)}</figcaption></figure>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------- PDF


def pdf_sections(report: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(table title, number of PDF pages) per table; the PDF has their sum plus one page per figure."""
    return [(title, max(1, math.ceil(len(rows) / PDF_ROWS_PER_PAGE))) for title, _, rows, _ in sections(report)]


def _text_page(title: str, text: str) -> Figure:
    """An A4 page with ``title`` and ``text`` wrapped to the page's width."""
    fig = Figure(figsize=_A4)
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=12)
    size = 9
    width = int(0.92 * _TABLE_WIDTH_PT / (size * _CHAR_WIDTH))  # a little narrower: prose, not a table
    fig.text(0.04, 0.93, textwrap.fill(text, width=width), fontsize=size, va="top", linespacing=1.5)
    return fig


def table_pages(report: Mapping[str, Any]) -> list[Figure]:
    """One A4 Figure per page of tables: each table of :func:`sections`, split every PDF_ROWS_PER_PAGE rows."""
    pages = []
    for title, header, rows, note in sections(report):
        if not header:  # the summary: its paragraph alone
            pages.append(_text_page(title, note))
            continue
        chunks = [rows[i : i + PDF_ROWS_PER_PAGE] for i in range(0, len(rows), PDF_ROWS_PER_PAGE)] or [[]]
        # Columns as wide as their longest text, the font as large as fits the page's width.
        lengths = [max(len(str(text)) for text in [h, *(r[i] for r in rows)]) + 2 for i, h in enumerate(header)]
        widths = [n / sum(lengths) for n in lengths]
        size = min(6 if len(header) > 6 else 8, _TABLE_WIDTH_PT / (sum(lengths) * _CHAR_WIDTH))
        for n, chunk in enumerate(chunks):
            fig = Figure(figsize=_A4)
            FigureCanvasAgg(fig)
            ax = fig.add_axes((0.04, 0.04, 0.92, 0.85 if note else 0.88))
            ax.axis("off")
            suffix = f" (page {n + 1} of {len(chunks)})" if len(chunks) > 1 else ""
            fig.suptitle(title + suffix, fontsize=10, wrap=True)
            if note:
                fig.text(0.04, 0.935, note, fontsize=6.5, va="top", wrap=True)
            body = chunk or [["(none)"] + [""] * (len(header) - 1)]
            table = ax.table(cellText=body, colLabels=header, colWidths=widths, loc="upper center", cellLoc="left")
            table.auto_set_font_size(False)
            table.set_fontsize(size)
            pages.append(fig)
    return pages
