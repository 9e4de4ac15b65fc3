"""The study report's reporting documents: the flow diagram and the links to the checklists.

A report built from the platform's records carries ``reporting`` (the flow's counts and the
documents written beside it); :func:`write_flow` draws ``flow.svg``/``flow.png`` for the HTML
and the PDF and :func:`with_documents` adds the "Reporting documents" section to report.html.
A report from two CSVs alone has none of it. Pure: no Django import.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ml.core.flow import FlowCounts, flow_figure, flow_files

__all__ = ["DOCUMENTS", "REPORTING_FILES", "present", "with_documents", "write_flow"]

#: The checklists beside report.html: file stem -> title.
DOCUMENTS: dict[str, str] = {
    "claim": "CLAIM 2024 checklist (the model and the study)",
    "stard_ai": "STARD-AI checklist (the reader study)",
    "tripod_ai": "TRIPOD+AI checklist (the model)",
}
#: Every file of the reporting documents, by name.
REPORTING_FILES: tuple[str, ...] = (
    *(f"{stem}.{kind}" for stem in DOCUMENTS for kind in ("html", "md")),
    "flow.svg",
    "flow.png",
)
FLOW_CAPTION = "Participant flow (STARD): radiographs received to the answers of each phase"


def present(folder: Path) -> list[str]:
    """The reporting files that are in ``folder``."""
    return [name for name in REPORTING_FILES if (folder / name).is_file()]


def flow_counts(report: Mapping[str, Any]) -> FlowCounts | None:
    flow = (report.get("reporting") or {}).get("flow")
    return FlowCounts.from_dict(flow) if flow else None


def write_flow(report: Mapping[str, Any], folder: Path) -> Figure | None:
    """``flow.svg`` and ``flow.png`` into ``folder`` when the report carries its flow; the figure
    (for the PDF), else None."""
    counts = flow_counts(report)
    if counts is None:
        return None
    for name, data in flow_files(counts).items():
        (folder / name).write_bytes(data)
    return flow_figure(counts)


def documents_section(report: Mapping[str, Any], folder: Path) -> str:
    """The "Reporting documents" section: links to the checklists and flow.svg, and the diagram."""
    if not (report.get("reporting") or {}).get("flow"):
        return ""
    e = html.escape
    links = [f'<li><a href="{stem}.html">{e(title)}</a> (<a href="{stem}.md">Markdown</a>)</li>'
             for stem, title in DOCUMENTS.items()]  # fmt: skip
    links.append('<li><a href="flow.svg">Participant flow diagram</a> (<a href="flow.png">PNG</a>)</li>')
    svg = base64.b64encode((folder / "flow.svg").read_bytes()).decode("ascii")
    return "\n".join(
        [
            '<section id="reporting-documents"><h2>Reporting documents</h2>',
            '<p class="note">Filled in from the platform\'s records; items it cannot fill are left to the authors.</p>',
            "<ul>",
            *links,
            "</ul>",
            f'<figure id="flow"><img alt="participant flow diagram" src="data:image/svg+xml;base64,{svg}">'
            f"<figcaption>{e(FLOW_CAPTION)}</figcaption></figure>",
            "</section>",
        ]
    )


def with_documents(page: str, report: Mapping[str, Any], folder: Path) -> str:
    """``page`` (report.html) with the reporting section before ``</body>`` (unchanged without it)."""
    section = documents_section(report, folder)
    if not section:
        return page
    head, tail = page.rsplit("</body>", 1)
    return f"{head}{section}\n</body>{tail}"
