"""The reader study's output files: ``observers.csv``, ``kappa_differences.csv`` and ``report.json``
from :func:`readerstudy.analysis.readers.analyse`'s result, by :func:`write_csvs` (re-exported by
:mod:`readerstudy.analysis.readers`). Plain standard library; no Django.
Design: docs/architecture/design-statistics.md
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common import csvfile

OBSERVER_COLUMNS: tuple[str, ...] = (
    "observer",
    "group",
    "training",
    "condition",
    "task",
    "kappa",
    "kappa_ci_low",
    "kappa_ci_high",
    "accuracy",
    "sensitivity",
    "specificity",
)
DIFFERENCE_COLUMNS: tuple[str, ...] = (
    "task",
    "a",
    "condition_a",
    "b",
    "condition_b",
    "estimate",
    "boot_mean",
    "ci_low",
    "ci_high",
    "margin",
    "verdict",
)

# --------------------------------------------------------------------------- output


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def write_csvs(result: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``observers.csv``, ``kappa_differences.csv`` (exactly :data:`OBSERVER_COLUMNS` /
    :data:`DIFFERENCE_COLUMNS`, one header line, empty cell for undefined) and ``report.json``
    (the whole result, including ``multiclass_note``). Returns the paths by file name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for filename, key, columns in (
        ("observers.csv", "observers", OBSERVER_COLUMNS),
        ("kappa_differences.csv", "comparisons", DIFFERENCE_COLUMNS),
    ):
        path = out / filename
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csvfile.writer(fh)  # names from an outside file may begin with '=': quoted
            writer.writerow(columns)
            for row in result[key]:
                writer.writerow([_csv_value(row[c]) for c in columns])
        paths[filename] = path
    path = out / "report.json"
    path.write_text(json.dumps(dict(result), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    paths["report.json"] = path
    return paths
