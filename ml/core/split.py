"""Stratified group split into parts of given fractions (numpy only, no Django).

Whole groups (patients) go to one part each, and each part's class counts approach
``fraction * class total``: scikit-learn's ``StratifiedGroupKFold`` heuristic for unequal parts.
Design: docs/architecture/design-statistics.md
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_FRACTIONS = (0.60, 0.25, 0.15)


def stratified_group_split(
    groups: Sequence[object] | np.ndarray,
    labels: Sequence[object] | np.ndarray,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> np.ndarray:
    """Return, for each sample, the index of its part (0, 1, ... in the order
    of ``fractions``). Samples of one group always share a part.

    Deterministic for a given seed. Raises ``ValueError`` when there are fewer
    groups than parts with a positive fraction (a part would be empty)."""
    groups = np.asarray(groups)
    labels = np.asarray(labels)
    if groups.shape != labels.shape or groups.ndim != 1:
        raise ValueError("groups and labels must be 1-D and of the same length")
    fractions_arr = np.asarray(fractions, dtype=float)
    if fractions_arr.ndim != 1 or len(fractions_arr) < 2 or np.any(fractions_arr < 0) or fractions_arr.sum() <= 0:
        raise ValueError("fractions must be two or more non-negative numbers with a positive sum")
    fractions_arr = fractions_arr / fractions_arr.sum()
    n_parts = len(fractions_arr)
    needed = int(np.count_nonzero(fractions_arr > 0))
    if len(groups) == 0:
        raise ValueError("nothing to split: there are no samples")

    group_ids, group_inv = np.unique(groups, return_inverse=True)
    class_ids, class_inv = np.unique(labels, return_inverse=True)
    n_groups, n_classes = len(group_ids), len(class_ids)
    if n_groups < needed:
        raise ValueError(
            f"cannot split {n_groups} patient(s) into {needed} parts without leaving one empty; "
            f"at least {needed} patients are needed"
        )

    counts = np.zeros((n_groups, n_classes))
    np.add.at(counts, (group_inv, class_inv), 1)
    class_totals = counts.sum(axis=0)
    target = fractions_arr[:, None] * class_totals[None, :]  # parts x classes
    size_target = fractions_arr * len(labels)
    class_weight = 1.0 / class_totals**2
    size_weight = 1.0 / len(labels) ** 2

    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    spread = np.std(counts[order], axis=1)
    order = order[np.argsort(-spread, kind="stable")]

    per_part = np.zeros((n_parts, n_classes))
    size = np.zeros(n_parts)
    members: list[list[int]] = [[] for _ in range(n_parts)]
    allowed = fractions_arr > 0
    for group in order:
        g = counts[group]
        # Change of the squared distance to the targets if the group went to each part.
        delta = ((2 * (per_part - target) * g + g**2) * class_weight).sum(axis=1)
        n = g.sum()
        delta += (2 * (size - size_target) * n + n**2) * size_weight
        delta[~allowed] = np.inf
        best = np.flatnonzero(delta <= delta.min() + 1e-12)
        if len(best) > 1:  # ties: the part furthest below its size, then the first
            best = best[np.argsort(size[best] - size_target[best], kind="stable")]
        part = int(best[0])
        per_part[part] += g
        size[part] += n
        members[part].append(int(group))

    # A part with a positive fraction left empty (tiny inputs): give it the
    # smallest group of the part holding the most groups.
    for part in np.flatnonzero(allowed).tolist():
        if members[part]:
            continue
        donor = max(range(n_parts), key=lambda p: (len(members[p]), -p))
        smallest = min(members[donor], key=lambda grp: (counts[grp].sum(), grp))
        members[donor].remove(smallest)
        members[part].append(smallest)

    group_part = np.empty(n_groups, dtype=int)
    for part, items in enumerate(members):
        group_part[items] = part
    return group_part[group_inv]
