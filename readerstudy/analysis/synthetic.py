"""A made-up reader study shaped like Krogue et al. 2020's, for tests and benchmarks:
:func:`synthetic_study` returns response and prediction rows that :func:`readerstudy.analysis.readers.analyse`
reads (re-exported there). Plain NumPy; no Django.
Design: docs/architecture/design-statistics.md
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ml.core.stats import CLASS_KEYS
from readerstudy.analysis.reader_inputs import CONDITIONS, PROBABILITY_COLUMNS

# --------------------------------------------------------------------------- synthetic study


def synthetic_study(
    *,
    n_cases: int = 100,
    n_patients: int = 90,
    seed: int = 0,
    readers: Iterable[tuple[str, str, str]] | None = None,
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """A made-up study shaped like the paper's: (response rows, prediction rows) as dicts of text.

    ``n_cases`` cases from ``n_patients`` patients (the first ``n_patients`` cases one per
    patient, the rest a second image of a random patient); ``readers`` are
    (reader, group, training), by default 5 experts (3 orthopedics, 2 radiology) and 5 residents
    (the same). Experts beat residents and both improve from model-quality to full-quality to
    model-aided images; the model is right about 90% of the time. For tests and benchmarks.
    """
    if not 0 < n_patients <= n_cases:
        raise ValueError("need 0 < n_patients <= n_cases")
    rng = np.random.default_rng(seed)
    if readers is None:
        readers = [
            *((f"e{i}", "expert", "orthopedics_attending" if i < 3 else "radiology_attending") for i in range(5)),
            *((f"r{i}", "resident", "orthopedics_resident" if i < 3 else "radiology_resident") for i in range(5)),
        ]
    patient = np.r_[np.arange(n_patients), rng.integers(0, n_patients, n_cases - n_patients)]
    truth = rng.choice(len(CLASS_KEYS), n_cases, p=[0.4, 0.15, 0.1, 0.15, 0.1, 0.1])
    logits = rng.normal(0.0, 1.0, (n_cases, len(CLASS_KEYS)))
    logits[np.arange(n_cases), truth] += 2.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predictions = [
        {
            "case": f"c{i:03d}",
            "patient": f"p{patient[i]:03d}",
            "truth": CLASS_KEYS[truth[i]],
            **{col: repr(float(probs[i, j])) for j, col in enumerate(PROBABILITY_COLUMNS)},
        }
        for i in range(n_cases)
    ]
    skill = {"expert": (0.80, 0.87, 0.90), "resident": (0.62, 0.70, 0.82)}
    responses = []
    for reader, group, training in readers:
        own = rng.normal(0.0, 0.03)
        for condition, base in zip(CONDITIONS, skill[group], strict=True):
            right = rng.random(n_cases) < min(base + own, 0.99)
            wrong = (truth + rng.integers(1, len(CLASS_KEYS), n_cases)) % len(CLASS_KEYS)
            answer = np.where(right, truth, wrong)
            responses += [
                {
                    "reader": reader,
                    "group": group,
                    "training": training,
                    "condition": condition,
                    "case": f"c{i:03d}",
                    "patient": f"p{patient[i]:03d}",
                    "truth": CLASS_KEYS[truth[i]],
                    "answer": CLASS_KEYS[answer[i]],
                }
                for i in range(n_cases)
            ]
    return responses, predictions
