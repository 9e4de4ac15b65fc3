"""Plain helpers shared by the ml_core tests and the site's tests (fixtures are in the conftest.py
files): films with two bright hips for the detector, and a reader study whose binary verdicts
depend on the model's ROC band."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ml.core import detector as D
from ml.core.stats import CLASS_KEYS
from readerstudy.analysis.readers import CONDITIONS

Rows = list[dict[str, str]]

BOX = {"right": (20.0, 30.0, 90.0, 90.0), "left": (130.0, 30.0, 90.0, 90.0)}
WINDOW = (1000.0, 2000.0)


def film(i: int) -> np.ndarray:
    """160 x 240 noise with two bright hips at BOX (brightness varying with i)."""
    rng = np.random.default_rng(i)
    pixels = rng.integers(0, 400, size=(160, 240)).astype(np.uint16)
    for side, (x, y, w, h) in BOX.items():
        pixels[int(y) : int(y + h), int(x) : int(x + w)] += np.uint16(500 + 300 * ((i + len(side)) % 5))
    return pixels


def records(n: int, start: int = 0) -> list[D.DetectorRecord]:
    return [D.DetectorRecord(pixels=film(start + i), window=WINDOW, hips=tuple(BOX.items())) for i in range(n)]


def band_study() -> tuple[Rows, Rows]:
    """100 cases, 50 normal and 50 displaced FN fractures, each its own patient. The model ranks every
    fracture above every normal hip (P(fracture) 0.6, or 0.45 for the last five; normal hips 0.1), so
    its ROC curve and the lower edge of its band are at sensitivity 1 for any false-positive rate,
    but at 0.5 it misses five fractures (binary κ 0.9). The experts find every fracture and call 15
    or 16 normal hips fractures (κ ≈ 0.7; point (0.31, 1): on the band's edge, not below it). The
    residents miss ten fractures and over-call five normal hips (κ 0.7; point (0.1, 0.8): below it)."""
    truth = ["normal" if i < 50 else "fn_displaced" for i in range(100)]
    predictions = []
    for i, t in enumerate(truth):
        p_fracture = 0.1 if t == "normal" else (0.45 if i >= 95 else 0.6)
        probs = {f"p_{k}": "0.0" for k in CLASS_KEYS}
        probs["p_normal"], probs["p_fn_displaced"] = repr(1 - p_fracture), repr(p_fracture)
        predictions.append({"case": f"c{i:03d}", "patient": f"p{i:03d}", "truth": t, **probs})
    readers: dict[str, tuple[str, str, range, range]] = {
        "e1": ("expert", "orthopedics", range(0, 15), range(0)),
        "e2": ("expert", "orthopedics", range(3, 19), range(0)),
        "r1": ("resident", "orthopedics", range(0, 5), range(50, 60)),
        "r2": ("resident", "orthopedics", range(2, 7), range(55, 65)),
    }

    def answer(i: int, t: str, over: range, missed: range) -> str:
        if t == "normal":
            return "fn_displaced" if i in over else "normal"
        return "normal" if i in missed else "fn_displaced"

    responses = [
        {
            "reader": reader,
            "group": group,
            "training": training,
            "condition": condition,
            "case": f"c{i:03d}",
            "patient": f"p{i:03d}",
            "truth": t,
            "answer": answer(i, t, over, missed),
        }
        for reader, (group, training, over, missed) in readers.items()
        for condition in CONDITIONS
        for i, t in enumerate(truth)
    ]
    return responses, predictions


def write_csv(path: Path, rows: Rows, columns: tuple[str, ...] | list[str]) -> Path:
    """Rows as a CSV file with exactly ``columns`` (extra keys ignored)."""
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
