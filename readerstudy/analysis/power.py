"""Planning a reader study: the power of each κ comparison, by resampling a pilot (or a finished study).

:func:`load_pilot` reads the two CSVs ``reader_report`` reads and takes each comparison's verdict
as the target; :func:`plan` draws planned studies from the pilot (cases by patient, readers by
group and training) and judges each exactly as the report does, vectorised over simulations.
Files: :mod:`readerstudy.analysis.power_outputs`. Plain NumPy; no Django. Docs: docs/research/power.md
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml.core.roc import DEFAULT_GRID, point_below_band, roc_band
from ml.core.stats import CLASS_KEYS, FRACTURE_INDICES, bootstrap_indices
from readerstudy.analysis.reader_inputs import (
    CONDITIONS,
    GROUPS,
    MODEL,
    Predictions,
    Responses,
    read_predictions,
    read_responses,
)
from readerstudy.analysis.readers import analyse

__all__ = [
    "DEFAULT_CASES",
    "DEFAULT_READERS",
    "DEFAULT_SIMULATIONS",
    "POWER_COLUMNS",
    "TARGETS",
    "Draw",
    "Pilot",
    "load_pilot",
    "plan",
    "plan_result",
    "beyond_pilot_notes",
    "draw_study",
    "study_rows",
    "simulation_rng",
    "success",
]

POWER_COLUMNS: tuple[str, ...] = (
    "task",
    "a",
    "condition_a",
    "b",
    "condition_b",
    "cases",
    "readers_per_training",
    "power",
)
DEFAULT_CASES: tuple[int, ...] = (50, 100, 200)
DEFAULT_READERS: tuple[int, ...] = (2, 3)
DEFAULT_SIMULATIONS = 500
#: The verdicts a plan aims at: a pilot verdict outside these gives its comparison no power row.
TARGETS: tuple[str, ...] = ("superior", "noninferior")
_CHUNK_ELEMENTS = 4_000_000  # simulations per chunk: about this many (iteration, case) cells at once


@dataclass(frozen=True)
class Pilot:
    """The pilot as arrays: cases in the report's order, readers in the report's order (experts,
    then residents, file order within a group); ``answers`` is (condition, reader, case)."""

    truth: NDArray[np.intp]
    probabilities: NDArray[np.float64]
    patient: NDArray[np.intp]  # a code per case (cases of one patient share it)
    answers: NDArray[np.intp]
    readers: tuple[str, ...]
    kinds: tuple[tuple[str, str], ...]  # (group, training), experts first, in order of first reader
    kind_readers: tuple[tuple[int, ...], ...]  # the pilot readers of each kind
    targets: tuple[dict[str, Any], ...]  # the pilot's comparisons: keys, ``verdict``, ``target``
    margin: dict[str, Any]
    n_patients: int


@dataclass(frozen=True)
class Draw:
    """One planned study drawn from the pilot: the pilot case of each of its cases and, per
    simulated reader and case, the pilot reader whose answers it gives."""

    cases: NDArray[np.intp]  # (n,)
    source: NDArray[np.intp]  # (simulated readers, n)
    kinds: tuple[tuple[str, str], ...]  # (group, training) of each simulated reader


def load_pilot(
    responses: Any,
    predictions: Any,
    *,
    iterations: int = 2000,
    seed: int = 0,
    margin: float | None = None,
    level: float = 0.95,
) -> Pilot:
    """Read and check the pilot's two CSVs (path, DataFrame or rows, as ``reader_report`` reads
    them; bad input raises :class:`~readerstudy.analysis.reader_inputs.ReaderDataError`) and run
    the report's analysis once on it: each comparison's verdict is its target when it is one of
    :data:`TARGETS`. ValueError when no two readers share a group and training and no margin is given."""
    resp = responses if isinstance(responses, Responses) else read_responses(responses)
    pred = predictions if isinstance(predictions, Predictions) else read_predictions(predictions)
    result = analyse(resp, pred, iterations=iterations, seed=seed, margin=margin, level=level)
    cases = resp.cases()
    case_pos = {c: i for i, c in enumerate(cases)}
    row_of = {c: j for j, c in enumerate(pred.case.tolist())}
    rows = np.array([row_of[c] for c in cases], dtype=np.intp)
    _, patient = np.unique(pred.patient[rows].astype(str), return_inverse=True)
    info: dict[str, tuple[str, str]] = {}
    for reader, group, training in zip(resp.reader.tolist(), resp.group.tolist(), resp.training.tolist(), strict=True):
        info.setdefault(reader, (group, training))
    readers = sorted(info, key=lambda r: GROUPS.index(info[r][0]))  # the report's order
    reader_pos = {r: i for i, r in enumerate(readers)}
    answers = np.zeros((len(CONDITIONS), len(readers), len(cases)), dtype=np.intp)
    answers[
        [CONDITIONS.index(c) for c in resp.condition.tolist()],
        [reader_pos[r] for r in resp.reader.tolist()],
        [case_pos[c] for c in resp.case.tolist()],
    ] = resp.answer
    kinds = tuple(dict.fromkeys(info[r] for r in readers))
    targets = tuple(
        {
            **{k: c[k] for k in ("task", "a", "condition_a", "b", "condition_b", "ci_low", "margin")},
            "verdict": c["verdict"],
            "target": c["verdict"] if c["verdict"] in TARGETS else None,
        }
        for c in result["comparisons"]
    )
    return Pilot(
        truth=pred.truth[rows],
        probabilities=pred.probabilities[rows],
        patient=patient.ravel().astype(np.intp),
        answers=answers,
        readers=tuple(readers),
        kinds=kinds,
        kind_readers=tuple(tuple(i for i, r in enumerate(readers) if info[r] == kind) for kind in kinds),
        targets=targets,
        margin={k: result["margin"][k] for k in ("value", "source", "empirical")},
        n_patients=int(result["n_patients"]),
    )


# --------------------------------------------------------------------------- drawing planned studies


def simulation_rng(seed: int, cases: int, readers_per_training: int, simulation: int) -> np.random.Generator:
    """The generator of one simulated study: it draws the cases, the readers, then the bootstrap."""
    return np.random.default_rng([seed, cases, readers_per_training, simulation])


def draw_study(pilot: Pilot, *, cases: int, readers_per_training: int, rng: np.random.Generator) -> Draw:
    """A planned study of ``cases`` cases and ``readers_per_training`` readers of each (group,
    training) of the pilot, drawn with ``rng``.

    Cases: a patient drawn at random (with replacement), then one of that patient's images, so
    every planned case is a different patient (one image per patient, as the report's bootstrap
    keeps). Readers: while the pilot has enough readers of a kind, distinct pilot readers drawn
    without replacement; beyond them, each extra reader answers each case as a pilot reader of its
    kind drawn at random for that case (the same one under all three conditions)."""
    if cases < 2 or readers_per_training < 2:
        raise ValueError("a planned study needs at least 2 cases and 2 readers per training (the margin's pairs)")
    counts = np.bincount(pilot.patient)
    order = np.argsort(pilot.patient, kind="stable")
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    patients = rng.integers(0, counts.size, cases)
    offsets = np.minimum((rng.random(cases) * counts[patients]).astype(np.intp), counts[patients] - 1)
    chosen = order[starts[patients] + offsets]
    sources: list[NDArray[np.intp]] = []
    kinds: list[tuple[str, str]] = []
    for kind, members in zip(pilot.kinds, pilot.kind_readers, strict=True):
        pool = np.asarray(members, dtype=np.intp)
        perm = pool[rng.permutation(pool.size)]
        for j in range(min(readers_per_training, pool.size)):
            sources.append(np.full(cases, perm[j], dtype=np.intp))
        extra = readers_per_training - pool.size
        if extra > 0:
            sources.extend(pool[rng.integers(0, pool.size, (extra, cases))])
        kinds.extend([kind] * readers_per_training)
    return Draw(cases=chosen, source=np.array(sources, dtype=np.intp), kinds=tuple(kinds))


def study_rows(pilot: Pilot, draw: Draw) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The drawn study as the two CSVs' rows (response rows, prediction rows): what a study of that
    design would hand to ``reader_report``. Simulated readers are ``S01``, ``S02``, ...; case ``i``
    is ``c00000``... of patient ``p00000``..., one patient per case."""
    n = draw.cases.size
    truth = [CLASS_KEYS[t] for t in pilot.truth[draw.cases]]
    predictions = [
        {
            "case": f"c{i:05d}",
            "patient": f"p{i:05d}",
            "truth": truth[i],
            **{
                f"p_{key}": repr(float(p))
                for key, p in zip(CLASS_KEYS, pilot.probabilities[draw.cases[i]], strict=True)
            },
        }
        for i in range(n)
    ]
    responses = []
    for j, (group, training) in enumerate(draw.kinds):
        for c, condition in enumerate(CONDITIONS):
            answers = pilot.answers[c, draw.source[j], draw.cases]
            responses += [
                {
                    "reader": f"S{j + 1:02d}",
                    "group": group,
                    "training": training,
                    "condition": condition,
                    "case": f"c{i:05d}",
                    "patient": f"p{i:05d}",
                    "truth": truth[i],
                    "answer": CLASS_KEYS[answers[i]],
                }
                for i in range(n)
            ]
    return responses, predictions


def success(verdict: str, target: str) -> bool:
    """Whether a simulated verdict reaches the pilot's: ``superior`` needs ``superior``;
    ``noninferior`` is reached by ``noninferior`` or ``superior`` (a superior result is noninferior too)."""
    if target == "superior":
        return verdict == "superior"
    return verdict in TARGETS


# --------------------------------------------------------------------------- the vectorised simulation


def _kappa(
    weights: NDArray[np.float32], truth: NDArray[np.intp], answers: NDArray[np.intp], k: int, m: int
) -> NDArray[np.float64]:
    """κ of every observer on every bootstrap sample of every simulation: (sims, iterations, observers).

    ``weights`` (sims, iterations, n) counts how often each case is in each sample; ``truth``
    (sims, n) and ``answers`` (sims, observers, n). The same tables as
    :func:`ml.core.stats.bootstrap_kappa`, from one batched product with the per-case indicators."""
    sims, obs, n = answers.shape
    eye = np.eye(k, dtype=np.float32)  # counts up to 2**24 are exact in float32: the products are the integer tables
    features = np.concatenate(
        [
            eye[truth],  # (sims, n, k): the truth's marginal
            (answers == truth[:, None, :]).transpose(0, 2, 1).astype(np.float32),  # (sims, n, obs): agreement
            eye[answers].transpose(0, 2, 1, 3).reshape(sims, n, obs * k),  # the answers' marginals
        ],
        axis=2,
    )
    g = np.matmul(weights, features).astype(np.float64)
    t = g[..., :k]
    po = g[..., k : k + obs] / m
    pe = np.einsum("sbk,sbok->sbo", t, g[..., k + obs :].reshape(*g.shape[:2], obs, k)) / float(m) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        out: NDArray[np.float64] = np.where(np.isclose(pe, 1.0), np.nan, (po - pe) / (1.0 - pe))
    return out


def _verdicts(low: NDArray[np.float64], margin: NDArray[np.float64]) -> NDArray[np.str_]:
    """The report's rule (:func:`readerstudy.analysis.verdicts.verdict`) on arrays."""
    out = np.where(low > -margin, "noninferior", "not_noninferior")
    out = np.where(low > 0, "superior", out)
    return np.where(np.isfinite(low) & np.isfinite(margin), out, "undefined")


@dataclass(frozen=True)
class _Design:
    """Observer layout of one planned design, as :func:`~readerstudy.analysis.readers.analyse` lays it out."""

    members: dict[tuple[str, str], list[int]]
    pairs: NDArray[np.intp]  # (n_pairs, 2) observers of one group, training and condition

    @classmethod
    def of(cls, kinds: Sequence[tuple[str, str]]) -> _Design:
        members: dict[tuple[str, str], list[int]] = {}
        pairs = []
        n = len(kinds)
        for c, condition in enumerate(CONDITIONS):
            for j, (group, _) in enumerate(kinds):
                members.setdefault((group, condition), []).append(1 + c * n + j)
            for i in range(n):
                for j in range(i + 1, n):
                    if kinds[i] == kinds[j]:
                        pairs.append((1 + c * n + i, 1 + c * n + j))
        return cls(members=members, pairs=np.array(pairs, dtype=np.intp).reshape(-1, 2))


def _judge(
    pilot: Pilot,
    draws: Sequence[Draw],
    indices: Sequence[NDArray[np.intp]],
    design: _Design,
    *,
    margin: float | None,
    level: float,
) -> dict[int, NDArray[np.bool_]]:
    """For a chunk of simulated studies: per target (its index in ``pilot.targets``), whether each
    reached it."""
    cases = np.stack([d.cases for d in draws])  # (s, n)
    sims, n = cases.shape
    src = np.stack([d.source for d in draws])  # (s, readers, n)
    truth = pilot.truth[cases]
    probs = pilot.probabilities[cases]
    p_fracture = probs[..., list(FRACTURE_INDICES)].sum(axis=2)
    readers_mc = pilot.answers[:, src, cases[:, None, :]]  # (conditions, s, readers, n)
    readers_mc = readers_mc.transpose(1, 0, 2, 3).reshape(sims, -1, n)
    answers_mc = np.concatenate([np.argmax(probs, axis=2)[:, None, :], readers_mc], axis=1)
    answers_bin = np.isin(answers_mc, FRACTURE_INDICES).astype(np.intp)
    answers_bin[:, 0] = (p_fracture >= 0.5).astype(np.intp)
    truth_bin = np.isin(truth, FRACTURE_INDICES).astype(np.intp)
    idx = np.stack(indices)  # (s, iterations, n)
    iters = idx.shape[1]
    keys = (np.arange(sims * iters).reshape(sims, iters, 1) * n + idx).ravel()
    weights = np.bincount(keys, minlength=sims * iters * n).reshape(sims, iters, n).astype(np.float32)
    ones = np.ones((sims, 1, n), dtype=np.float32)
    tasks = {"binary": (truth_bin, answers_bin, 2), "multiclass": (truth, answers_mc, len(CLASS_KEYS))}
    point = {task: _kappa(ones, t, a, k, n)[:, 0] for task, (t, a, k) in tasks.items()}
    boot = {task: _kappa(weights, t, a, k, n) for task, (t, a, k) in tasks.items()}
    if margin is None:
        diffs = np.concatenate(
            [np.abs(point[t][:, design.pairs[:, 0]] - point[t][:, design.pairs[:, 1]]) for t in tasks], axis=1
        )
        ok = np.isfinite(diffs)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(ok, diffs, 0.0).sum(axis=1) / ok.sum(axis=1)
    else:
        value = np.full(sims, float(margin))
    tail = (1.0 - level) / 2.0 * 100.0
    verdicts: dict[int, NDArray[np.str_]] = {}
    needs: dict[int, set[tuple[str, str]]] = {}  # simulation -> groups whose ROC-band check decides a verdict
    for number, target in enumerate(pilot.targets):
        if target["target"] is None:
            continue
        series = []
        for name, condition in ((target["a"], target["condition_a"]), (target["b"], target["condition_b"])):
            ids = [0] if name == MODEL else design.members[(name, condition)]
            series.append(boot[target["task"]][:, :, ids].mean(axis=2))
        verdicts[number] = _verdicts(_percentile(series[0] - series[1], tail), value)
        if _band_rule(target):
            for s in np.flatnonzero(verdicts[number] == "superior").tolist():
                needs.setdefault(s, set()).add((target["b"], target["condition_b"]))
    below = {
        (s, *group): flag
        for s, groups in needs.items()
        for group, flag in _below_band(
            truth_bin[s], p_fracture[s], idx[s], {g: answers_bin[s, design.members[g]] for g in groups}, level
        ).items()
    }
    out: dict[int, NDArray[np.bool_]] = {}
    for number, found in verdicts.items():
        target = pilot.targets[number]
        if _band_rule(target):
            group = (target["b"], target["condition_b"])
            for s in np.flatnonzero(found == "superior").tolist():
                if not below[(s, *group)]:
                    found[s] = "noninferior"
        out[number] = np.array([success(str(v), target["target"]) for v in found], dtype=bool)
    return out


def _band_rule(target: dict[str, Any]) -> bool:
    """Whether the paper's ROC-band rule decides "superior" for this comparison (binary, model − group)."""
    return bool(target["task"] == "binary" and target["a"] == MODEL and target["b"] in GROUPS)


def _percentile(values: NDArray[np.float64], q: float) -> NDArray[np.float64]:
    """Each row's ``q``-th percentile over its finite values (NaN where none), as the report's CI."""
    bad = ~np.isfinite(values)
    if not bad.any():
        out: NDArray[np.float64] = np.percentile(values, q, axis=1)
        return out
    out = np.full(values.shape[0], np.nan)
    for s in range(values.shape[0]):
        good = values[s][~bad[s]]
        if good.size:
            out[s] = np.percentile(good, q)
    return out


def _below_band(
    truth: NDArray[np.intp],
    score: NDArray[np.float64],
    idx: NDArray[np.intp],
    groups: dict[tuple[str, str], NDArray[np.intp]],
    level: float,
) -> dict[tuple[str, str], bool]:
    """The paper's ROC-band check in one simulated study, for each group (its members' binary
    answers): the group's mean (1 − specificity, sensitivity) on all cases lies below the model's
    lower band, as the report's :func:`~readerstudy.analysis.verdicts.group_roc_points` finds; False
    without a band or a point. The band is drawn on the simulation's bootstrap samples at only
    the grid points either side of each group's FPR: each grid point's percentile stands alone,
    so the interpolated edge is the report's."""
    pos = truth == 1
    points: dict[tuple[str, str], tuple[float, float]] = {}
    if pos.any() and not pos.all():
        for group, answers in groups.items():
            hit = answers == 1
            sens = float(((hit & pos).sum(axis=1) / pos.sum()).mean())
            spec = float(((~hit & ~pos).sum(axis=1) / (~pos).sum()).mean())
            if math.isfinite(sens) and math.isfinite(spec):
                points[group] = (1.0 - spec, sens)
    out = dict.fromkeys(groups, False)
    if not points:
        return out
    full = DEFAULT_GRID
    near = set()
    for fpr, _ in points.values():
        i = int(np.searchsorted(full, fpr, side="right")) - 1
        near.update({max(i, 0), min(i + 1, full.size - 1)})
    try:
        band = roc_band(
            truth.astype(bool),
            score,
            np.arange(truth.size),
            seed=None,
            indices=idx,
            level=level,
            grid=full[sorted(near)],
        )
    except ValueError:
        return out
    for group, (fpr, sens) in points.items():
        out[group] = point_below_band(fpr, sens, band)
    return out


def plan(
    pilot: Pilot,
    *,
    cases: Sequence[int] = DEFAULT_CASES,
    readers_per_training: Sequence[int] = DEFAULT_READERS,
    simulations: int = DEFAULT_SIMULATIONS,
    iterations: int = 2000,
    seed: int = 0,
    margin: float | None = None,
    level: float = 0.95,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Power of each targeted comparison for each planned design: rows of :data:`POWER_COLUMNS`.

    Each of ``simulations`` planned studies per (cases, readers) is drawn by :func:`draw_study`
    with :func:`simulation_rng`, then bootstrapped with ``iterations`` samples of the report's
    scheme (:func:`ml.core.stats.bootstrap_indices`) and judged as the report judges: κ per
    observer, group means, the percentile CI, the margin from the simulated pairs (or ``margin``),
    the CI rule and, for the binary model-vs-group rows, the ROC-band rule. ``power`` = share of the
    simulations whose verdict reaches the pilot's (:func:`success`). ``progress(k)`` is told each
    time ``k`` more simulations are done."""
    if simulations < 1 or iterations < 1:
        raise ValueError("simulations and iterations must be >= 1")
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    rows = []
    for n in sorted(set(cases)):
        for r in sorted(set(readers_per_training)):
            hits = {i: 0 for i, t in enumerate(pilot.targets) if t["target"] is not None}
            chunk = max(1, _CHUNK_ELEMENTS // (iterations * n))
            design: _Design | None = None
            for start in range(0, simulations, chunk):
                draws, indices = [], []
                for s in range(start, min(start + chunk, simulations)):
                    rng = simulation_rng(seed, n, r, s)
                    draws.append(draw_study(pilot, cases=n, readers_per_training=r, rng=rng))
                    indices.append(bootstrap_indices(np.arange(n), iterations=iterations, seed=rng))
                design = design or _Design.of(draws[0].kinds)
                for i, ok in _judge(pilot, draws, indices, design, margin=margin, level=level).items():
                    hits[i] += int(ok.sum())
                if progress is not None:
                    progress(len(draws))
            for i, count in hits.items():
                t = pilot.targets[i]
                rows.append(
                    {
                        **{k: t[k] for k in ("task", "a", "condition_a", "b", "condition_b")},
                        "cases": n,
                        "readers_per_training": r,
                        "power": count / simulations,
                    }
                )
    order = {i: k for k, i in enumerate(_key(t) for t in pilot.targets)}
    rows.sort(key=lambda row: (order[_key(row)], row["readers_per_training"], row["cases"]))
    return rows


def _key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row[k]) for k in ("task", "a", "condition_a", "b", "condition_b"))


def plan_result(pilot: Pilot, rows: Sequence[dict[str, Any]], **settings: Any) -> dict[str, Any]:
    """What ``power.json`` keeps: the power ``rows``, the pilot's ``targets`` (every comparison
    with its verdict and target), the ``skipped`` ones (no target), the pilot's size and margin,
    and the ``settings`` the plan ran with."""
    return {
        "rows": list(rows),
        "targets": [dict(t) for t in pilot.targets],
        "skipped": [dict(t) for t in pilot.targets if t["target"] is None],
        "pilot": {
            "cases": int(pilot.truth.size),
            "patients": pilot.n_patients,
            "readers": {f"{g}/{t}": len(m) for (g, t), m in zip(pilot.kinds, pilot.kind_readers, strict=True)},
            "margin": pilot.margin,
        },
        "settings": dict(settings),
        "notes": beyond_pilot_notes(pilot, settings.get("readers_per_training", ())),
    }


def beyond_pilot_notes(pilot: Pilot, readers_per_training: Sequence[int]) -> list[str]:
    """A note for each planned readers count above what the pilot has of some group and training:
    those extra readers are made case by case from the pilot's (:func:`draw_study`), so they
    differ less from one another than real readers do and the margin from their pairs leans small."""
    notes = []
    for r in sorted(set(readers_per_training)):
        short = [f"{g}/{t} ({len(m)})" for (g, t), m in zip(pilot.kinds, pilot.kind_readers, strict=True) if len(m) < r]
        if short:
            notes.append(
                f"{r} readers per training is more than the pilot has of {', '.join(short)}: the extra readers are "
                "made case by case from the pilot's, so the margin from their pairs leans small and the "
                "noninferiority power is conservative"
            )
    return notes
