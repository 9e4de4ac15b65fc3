"""A reader-study plan's files: ``power.csv`` (:data:`~readerstudy.analysis.power.POWER_COLUMNS`),
``power.json`` (the rows, the pilot's targets and the settings) and the figure ``power.png`` /
``power.svg`` (power against cases, one line per readers count, a panel per comparison).
Written by :func:`write_plan`, each file atomically. Pure: no Django. Docs: docs/research/power.md
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from common import csvfile
from common.atomicfile import atomic_write, write_atomic
from readerstudy.analysis.power import POWER_COLUMNS

__all__ = ["PLAN_FILES", "comparison_label", "power_figure", "write_plan"]

PLAN_FILES: tuple[str, ...] = ("power.csv", "power.json", "power.png", "power.svg")
_DPI = 150
_COLUMNS = 4


def comparison_label(row: Mapping[str, Any]) -> str:
    """``model − expert (full_quality)``: a − b, each with its condition (the model's is left out)."""

    def side(name: str, condition: str) -> str:
        return name if name == "model" else f"{name} ({condition})"

    return f"{side(row['a'], row['condition_a'])} − {side(row['b'], row['condition_b'])}"


def power_figure(rows: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]]) -> Figure:
    """One panel per targeted comparison (binary first, then multiclass): power against planned
    cases, one line per readers-per-training count, the target verdict in the panel's title and
    a dotted line at 0.8."""
    keys = list(dict.fromkeys((r["task"], r["a"], r["condition_a"], r["b"], r["condition_b"]) for r in rows))
    target_of = {(t["task"], t["a"], t["condition_a"], t["b"], t["condition_b"]): t.get("target") for t in targets}
    n = max(1, len(keys))
    cols = min(_COLUMNS, n)
    lines = math.ceil(n / cols)
    fig = Figure(figsize=(3.2 * cols, 2.5 * lines + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    counts = sorted({int(r["readers_per_training"]) for r in rows})
    for i, key in enumerate(keys):
        ax = fig.add_subplot(lines, cols, i + 1)
        mine = [r for r in rows if (r["task"], r["a"], r["condition_a"], r["b"], r["condition_b"]) == key]
        for count in counts:
            pts = sorted((int(r["cases"]), float(r["power"])) for r in mine if int(r["readers_per_training"]) == count)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{count} per training")
        ax.axhline(0.8, linestyle=":", color="grey", linewidth=0.8)
        ax.set_ylim(-0.02, 1.02)
        label = comparison_label({"a": key[1], "condition_a": key[2], "b": key[3], "condition_b": key[4]})
        ax.set_title(f"{key[0]}: {label}\ntarget {target_of.get(key) or '–'}", fontsize=7.5)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("cases", fontsize=7)
        ax.set_ylabel("power", fontsize=7)
        if i == 0:
            ax.legend(fontsize=6.5, title="readers", title_fontsize=6.5)
    if not keys:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no comparison with a superior or noninferior verdict in the pilot", ha="center")
        ax.set_axis_off()
    return fig


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO(newline="")
    writer = csvfile.writer(buf)
    writer.writerow(POWER_COLUMNS)
    for row in rows:
        writer.writerow([row[c] for c in POWER_COLUMNS])
    return buf.getvalue()


def write_plan(result: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write :data:`PLAN_FILES` into ``out_dir`` from ``result`` (``rows``: the power rows,
    ``targets``: the pilot's comparisons, and any settings, all kept in ``power.json``).
    Returns the paths by file name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"power.csv": out / "power.csv", "power.json": out / "power.json"}
    with atomic_write(paths["power.csv"], text=True, encoding="utf-8", newline="") as fh:
        fh.write(_csv_text(result["rows"]))
    write_atomic(paths["power.json"], (json.dumps(dict(result), indent=2, allow_nan=False) + "\n").encode())
    fig = power_figure(result["rows"], result.get("targets", []))
    for kind in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=kind, dpi=_DPI, metadata={"Date": None} if kind == "svg" else None)
        paths[f"power.{kind}"] = write_atomic(out / f"power.{kind}", buf.getvalue())
    return paths
