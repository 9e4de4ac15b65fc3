"""Simulated readers: plausible answers for demos and tests (``manage.py simulate_readers``).

:func:`simulated_answer` is a pure function of the truth, the model's reading, the reader's group and
the condition, drawn from a numpy ``Generator``, with roughly the paper's accuracies; no Django.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from ml.core.vocab import CLASSES

GROUPS = ("expert", "resident")
MODEL_QUALITY, FULL_QUALITY, MODEL_AIDED = "model_quality", "full_quality", "model_aided"
CONDITIONS = (MODEL_QUALITY, FULL_QUALITY, MODEL_AIDED)

# P(correct) of an unaided reading, by group and condition.
ACCURACY: Mapping[str, Mapping[str, float]] = {
    "expert": {MODEL_QUALITY: 0.78, FULL_QUALITY: 0.86},
    "resident": {MODEL_QUALITY: 0.62, FULL_QUALITY: 0.72},
}

# Phase 3, for a case where the reader disagreed with the model:
# (P(take the model's class | model right), P(take it | model wrong), P(find the truth on a second look)).
AIDED: Mapping[str, tuple[float, float, float]] = {
    "expert": (0.72, 0.10, 0.15),
    "resident": (0.70, 0.30, 0.10),
}

# A wrong answer, by truth: the classes it is mistaken for, with weights.
CONFUSIONS: Mapping[str, Mapping[str, float]] = {
    "normal": {"fn_nondisplaced": 0.60, "intertrochanteric": 0.20, "fn_displaced": 0.10, "orif": 0.05,
               "arthroplasty": 0.05},
    "fn_nondisplaced": {"normal": 0.60, "fn_displaced": 0.30, "intertrochanteric": 0.10},
    "fn_displaced": {"fn_nondisplaced": 0.45, "intertrochanteric": 0.35, "normal": 0.10, "arthroplasty": 0.10},
    "intertrochanteric": {"fn_displaced": 0.50, "fn_nondisplaced": 0.20, "normal": 0.20, "orif": 0.10},
    "orif": {"arthroplasty": 0.60, "intertrochanteric": 0.30, "normal": 0.10},
    "arthroplasty": {"orif": 0.70, "fn_displaced": 0.20, "normal": 0.10},
}  # fmt: skip

# Seconds from display to submission of one case, by group (uniform in this range).
SECONDS: Mapping[str, tuple[float, float]] = {"expert": (4.0, 18.0), "resident": (6.0, 25.0)}


def mistaken_for(truth: str, rng: np.random.Generator) -> str:
    """A wrong answer for a hip of class ``truth``, drawn from its plausible confusions."""
    options = CONFUSIONS[truth]
    names = list(options)
    weights = np.array([options[name] for name in names], dtype=float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def simulated_answer(
    *,
    truth: str,
    group: str,
    condition: str,
    rng: np.random.Generator,
    model_top: str | None = None,
    own: str | None = None,
    skill: float = 0.0,
) -> str:
    """One simulated reader's answer to one case.

    ``model_top``: the model's top class (needed for ``model_aided``); ``own``: the reader's
    ``full_quality`` answer to the case (needed for ``model_aided``); ``skill``: the reader's own
    offset to the group's accuracy (a few points either way, so readers of a group differ).
    Where ``own`` equals ``model_top`` the aided answer is ``own`` (the study carries it over).
    """
    if truth not in CLASSES:
        raise ValueError(f"unknown class {truth!r}")
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}")
    if condition in (MODEL_QUALITY, FULL_QUALITY):
        p_correct = min(max(ACCURACY[group][condition] + skill, 0.0), 0.99)
        return truth if rng.random() < p_correct else mistaken_for(truth, rng)
    if condition != MODEL_AIDED:
        raise ValueError(f"unknown condition {condition!r}")
    if model_top is None or own is None:
        raise ValueError("a model-aided answer needs the model's top class and the reader's full-quality answer")
    if own == model_top:
        return own
    take_right, take_wrong, second_look = AIDED[group]
    if rng.random() < (take_right if model_top == truth else take_wrong):
        return model_top
    if own != truth and rng.random() < second_look:
        return truth
    return own


def reader_skill(seed: int, code: str, *, spread: float = 0.03) -> float:
    """A reader's own offset to their group's accuracy: seeded by the study seed and reader code."""
    return float(np.clip(np.random.default_rng([seed, _key(code)]).normal(0.0, spread), -2 * spread, 2 * spread))


def case_rng(seed: int, code: str, case_number: int, condition: str) -> np.random.Generator:
    """The generator of one reader's answer to one case under one condition: the same seed gives the
    same answer whatever order the cases come in."""
    return np.random.default_rng([seed, _key(code), case_number, CONDITIONS.index(condition)])


def timing_rng(seed: int, code: str) -> np.random.Generator:
    """The generator of one reader's times (seconds per case, gaps between phases)."""
    return np.random.default_rng([seed, _key(code), len(CONDITIONS) + 1])


def answer_seconds(group: str, rng: np.random.Generator) -> float:
    """A plausible time from display to submission, in seconds."""
    low, high = SECONDS[group]
    return float(rng.uniform(low, high))


def accuracy(truths: Sequence[str], answers: Sequence[str]) -> float:
    """The fraction of ``answers`` equal to ``truths``."""
    if len(truths) != len(answers) or not truths:
        raise ValueError("need equally many truths and answers, at least one")
    return sum(t == a for t, a in zip(truths, answers, strict=True)) / len(truths)


def _key(code: str) -> int:
    return zlib.crc32(code.encode())
