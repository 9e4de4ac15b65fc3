"""The participant flow diagram (STARD style): the counts as plain data, and their drawing.

:class:`FlowCounts` holds how many radiographs were received, rejected, excluded, labelled and split,
and how many hips went to a reader study and were answered in each phase; the Django query
functions (``ml.flow``, ``readerstudy.report.records``) fill it. :func:`flow_figure` draws it
with matplotlib, like every other figure of the platform. Pure: no Django import.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

__all__ = ["FlowCounts", "PhaseCount", "SplitCount", "flow_figure", "flow_files", "flow_lines"]

#: How many reasons a side box lists before it sums the rest as "other reasons".
MAX_REASONS = 6


@dataclass(frozen=True)
class SplitCount:
    """One part of the split by patient."""

    patients: int
    radiographs: int
    hips: int


@dataclass(frozen=True)
class PhaseCount:
    """One phase of a reader study: its readers (those who answered at least one case), their
    answers, and the cases every one of those readers answered."""

    condition: str
    label: str
    readers: int
    answers: int
    cases_answered_by_all: int


@dataclass(frozen=True)
class FlowCounts:
    """The flow's counts. ``received`` = ``stored`` + the rejected (duplicates included);
    ``stored`` = ``pending`` + the excluded + ``labelled``; ``labelled`` = ``agreed`` +
    ``adjudicated``. Reasons map their text to a count. ``splits`` (train, validation, test) and
    the study's fields are empty where the flow ends earlier (a dataset page ends at the split)."""

    received: int
    rejected: dict[str, int]
    stored: int
    pending: int
    excluded: dict[str, int]
    labelled: int
    agreed: int
    adjudicated: int
    truth_sources: dict[str, int] = field(default_factory=dict)
    dataset: int | None = None
    not_in_dataset: int = 0
    splits: dict[str, SplitCount] = field(default_factory=dict)
    study: str | None = None
    cases: int | None = None
    phases: tuple[PhaseCount, ...] = ()

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def excluded_total(self) -> int:
        return sum(self.excluded.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the totals."""
        return {**asdict(self), "rejected_total": self.rejected_total, "excluded_total": self.excluded_total}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowCounts:
        """The inverse of :meth:`as_dict` (totals are recomputed, not read)."""
        fields = {k: v for k, v in data.items() if k not in ("rejected_total", "excluded_total")}
        fields["splits"] = {k: SplitCount(**v) for k, v in (data.get("splits") or {}).items()}
        fields["phases"] = tuple(PhaseCount(**p) for p in data.get("phases") or ())
        return cls(**fields)


def _reasons(reasons: Mapping[str, int]) -> list[str]:
    ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    lines = [f"{text if len(text) <= 48 else text[:47] + '…'}: {n}" for text, n in ordered[:MAX_REASONS]]
    rest = sum(n for _, n in ordered[MAX_REASONS:])
    if rest:
        lines.append(f"other reasons: {rest}")
    return lines


def flow_lines(counts: FlowCounts) -> list[tuple[str, list[str], list[str]]]:
    """The diagram as text, top to bottom: (main box title, its lines, the side box's lines)."""
    truth = ", ".join(f"{k}: {n}" for k, n in sorted(counts.truth_sources.items()) if n)
    rows: list[tuple[str, list[str], list[str]]] = [
        (
            f"Radiographs received (n = {counts.received})",
            [],
            [f"Rejected at ingest (n = {counts.rejected_total})", *_reasons(counts.rejected)],
        ),
        (
            f"Stored (n = {counts.stored})",
            [],
            [
                f"Excluded at labelling (n = {counts.excluded_total})",
                *_reasons(counts.excluded),
                f"Not yet ground truth (n = {counts.pending}):",
                "labelling or adjudication under way",
            ],
        ),
        (
            f"Labelled (n = {counts.labelled})",
            [
                f"agreed: {counts.agreed}, adjudicated: {counts.adjudicated}",
                *([f"truth from {truth}"] if truth else []),
            ],
            [f"Not in dataset version {counts.dataset} (n = {counts.not_in_dataset})"]
            if counts.dataset is not None
            else [],
        ),
    ]
    if counts.splits:
        total = SplitCount(*(sum(getattr(s, f) for s in counts.splits.values()) for f in SplitCount.__annotations__))
        rows.append(
            (
                f"Dataset version {counts.dataset}, split by patient",
                [f"{total.patients} patients, {total.radiographs} radiographs, {total.hips} hips"]
                + [
                    f"{name}: {s.patients} patients, {s.radiographs} radiographs, {s.hips} hips"
                    for name, s in counts.splits.items()
                ],
                [],
            )
        )
    if counts.cases is not None:
        rows.append((f"Reader-study cases, hips of the test split (n = {counts.cases})", [f"study {counts.study}"], []))
        for phase in counts.phases:
            rows.append(
                (
                    f"{phase.label}: {phase.readers} readers, {phase.answers} answers",
                    [f"cases answered by all of them: {phase.cases_answered_by_all}"],
                    [],
                )
            )
    return rows


_WIDTH = 10.0  # inches
_LINE = 0.19  # inches per text line
_GAP = 0.32  # inches between rows


def flow_figure(counts: FlowCounts) -> Figure:
    """The diagram: a column of boxes joined by arrows, each exclusion in a box to the right."""
    rows = flow_lines(counts)
    heights = [max(1 + len(lines), len(side)) * _LINE + 0.16 for _, lines, side in rows]
    total = sum(heights) + _GAP * (len(rows) - 1) + 0.2
    fig = Figure(figsize=(_WIDTH, total))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, _WIDTH)
    ax.set_ylim(total, 0)
    ax.axis("off")
    main_x, main_w, side_x, side_w = 0.2, 5.4, 6.2, 3.6
    top = 0.1
    previous_bottom: float | None = None
    for (title, lines, side), height in zip(rows, heights, strict=True):
        _box(ax, main_x, top, main_w, height, [title, *lines])
        if previous_bottom is not None:
            _arrow(ax, (main_x + main_w / 2, previous_bottom), (main_x + main_w / 2, top))
        if side:
            _box(ax, side_x, top, side_w, height, side)
            _arrow(ax, (main_x + main_w, top + height / 2), (side_x, top + height / 2))
        previous_bottom = top + height
        top += height + _GAP
    return fig


def _box(ax: Any, x: float, y: float, w: float, h: float, lines: list[str]) -> None:
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.06", fill=False, linewidth=0.9))
    for i, text in enumerate(lines):
        weight = "bold" if i == 0 else "normal"
        ax.text(x + 0.12, y + 0.1 + (i + 0.5) * _LINE, text, fontsize=8.5, va="center", weight=weight)


def _arrow(ax: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "linewidth": 0.9, "color": "black"})


def flow_files(counts: FlowCounts) -> dict[str, bytes]:
    """``flow.svg`` and ``flow.png`` (150 dpi) of :func:`flow_figure`; no date in the SVG."""
    fig = flow_figure(counts)
    files = {}
    for kind in ("svg", "png"):
        buf = io.BytesIO()
        # The SVG keeps its words as text (searchable, read aloud), not as glyph outlines.
        with rc_context({"svg.fonttype": "none"}):
            fig.savefig(buf, format=kind, dpi=150, metadata={"Date": None} if kind == "svg" else None)
        files[f"flow.{kind}"] = buf.getvalue()
    return files
