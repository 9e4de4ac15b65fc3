"""The failure gallery: the test hips the classifier got wrong (six-class argmax ≠ truth), grouped
by (truth, prediction), each with its top two classes; and the gallery's figure (crop, heatmap).
Definitions: docs/research/model-audit.md
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from ml.core.stats import CLASS_KEYS, class_indices

__all__ = ["PER_GROUP", "failure_groups", "gallery_figure"]

#: Panels per (truth, prediction) group in the figure (the most confident mistakes first);
#: failures.csv and the model page list every failure.
PER_GROUP = 6


def failure_groups(y_true: ArrayLike, probabilities: ArrayLike) -> list[dict[str, Any]]:
    """The wrong hips as ``[{"truth", "predicted", "hips": [{"index", "top2": [[class, p], [class, p]]}]}]``,
    groups in class order of (truth, prediction), hips by falling probability of the wrong call."""
    truth = class_indices(y_true)
    probs = np.asarray(probabilities, dtype=float)
    if probs.shape != (truth.size, len(CLASS_KEYS)):
        raise ValueError(f"probabilities must be (n, {len(CLASS_KEYS)}) in CLASS_KEYS order")
    pred = np.argmax(probs, axis=1) if truth.size else truth
    groups: dict[tuple[int, int], list[int]] = {}
    for i in np.flatnonzero(pred != truth).tolist():
        groups.setdefault((int(truth[i]), int(pred[i])), []).append(i)
    out = []
    for (t, p), members in sorted(groups.items()):
        members.sort(key=lambda i: (-probs[i, p], i))
        hips = []
        for i in members:
            order = np.argsort(-probs[i], kind="stable")[:2]
            hips.append({"index": i, "top2": [[CLASS_KEYS[int(c)], float(probs[i, c])] for c in order]})
        out.append({"truth": CLASS_KEYS[t], "predicted": CLASS_KEYS[p], "hips": hips})
    return out


def gallery_figure(
    groups: Sequence[Mapping[str, Any]], *, labels: Mapping[str, str], per_group: int = PER_GROUP
) -> Figure:
    """One row per (truth, prediction) group, up to ``per_group`` panels: the hip's crop (2-D
    values in [0, 1], ``"crop"``) under its heatmap (RGBA array, ``"heatmap"``, or None), titled
    with its ``"title"`` and top two classes. ``groups`` as :func:`failure_groups` with those
    keys added to each hip."""
    if not groups:
        fig = Figure(figsize=(6, 1.5))
        fig.text(0.5, 0.5, "No test hip was wrong.", ha="center", va="center")
        return fig
    ncols = max(min(per_group, max(len(g["hips"]) for g in groups)), 1)
    fig = Figure(figsize=(2.3 * ncols, 2.9 * len(groups)), layout="constrained")
    axes = fig.subplots(len(groups), ncols, squeeze=False)
    for row, group in zip(axes, groups, strict=True):
        shown = list(group["hips"])[:per_group]
        for col, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(shown):
                ax.set_visible(False)
                continue
            hip = shown[col]
            if hip.get("crop") is None:  # no stored reading to show
                ax.text(0.5, 0.5, "no crop", ha="center", va="center", fontsize=7, transform=ax.transAxes)
            else:
                ax.imshow(hip["crop"], cmap="gray", vmin=0.0, vmax=1.0, extent=(0, 1, 1, 0))
            if hip.get("heatmap") is not None:
                ax.imshow(hip["heatmap"], extent=(0, 1, 1, 0))
            top = "\n".join(f"{labels.get(k, k)} {p:.2f}" for k, p in hip["top2"])
            ax.set_title(f"{hip.get('title', '')}\n{top}", fontsize=6)
        truth, called = labels.get(group["truth"], group["truth"]), labels.get(group["predicted"], group["predicted"])
        heading = f"truth: {truth}\ncalled: {called}"
        if len(group["hips"]) > len(shown):
            heading += f"\n({len(group['hips'])} hips, {len(shown)} shown)"
        row[0].set_ylabel(heading, fontsize=7)
    fig.suptitle("Failure gallery: test hips the model got wrong, by truth and six-class call", fontsize=9)
    return fig
