"""Power of a planned reader study (readerstudy.analysis.power): the vectorised simulation against a
plain loop of the report's own analysis on each drawn study, and power rising with cases and readers."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from readerstudy.analysis import power
from readerstudy.analysis.readers import analyse, read_predictions, read_responses
from readerstudy.analysis.synthetic import synthetic_study

KEYS = ("task", "a", "condition_a", "b", "condition_b")


def _readers(per_training: int) -> list[tuple[str, str, str]]:
    trainings = {
        "expert": ("orthopedics_attending", "radiology_attending"),
        "resident": ("orthopedics_resident", "radiology_resident"),
    }
    return [
        (f"{group[0].upper()}{training[:3]}{i}", group, training)
        for group, names in trainings.items()
        for training in names
        for i in range(per_training)
    ]


@pytest.fixture(scope="module")
def small_pilot() -> power.Pilot:
    """The synthetic study's default panel (3 orthopaedic and 2 radiology readers per group)."""
    responses, predictions = synthetic_study(n_cases=30, n_patients=26, seed=1)
    return power.load_pilot(responses, predictions, iterations=200, seed=0)


def test_targets_are_the_pilots_verdicts(small_pilot: power.Pilot) -> None:
    responses, predictions = synthetic_study(n_cases=30, n_patients=26, seed=1)
    report = analyse(responses, predictions, iterations=200, seed=0)
    assert [tuple(t[k] for k in KEYS) for t in small_pilot.targets] == [
        tuple(c[k] for k in KEYS) for c in report["comparisons"]
    ]
    for target, comparison in zip(small_pilot.targets, report["comparisons"], strict=True):
        assert target["verdict"] == comparison["verdict"]
        assert target["target"] == (comparison["verdict"] if comparison["verdict"] in power.TARGETS else None)
    assert small_pilot.margin["value"] == report["margin"]["value"]
    assert [len(m) for m in small_pilot.kind_readers] == [3, 2, 3, 2]


def test_a_drawn_study_is_one_patient_per_case_and_distinct_readers(small_pilot: power.Pilot) -> None:
    draw = power.draw_study(small_pilot, cases=50, readers_per_training=2, rng=np.random.default_rng(0))
    assert draw.cases.shape == (50,) and draw.source.shape == (8, 50)
    for j in range(0, 8, 2):  # two distinct pilot readers of one kind, the same on every case
        assert len(set(draw.source[j])) == 1 and len(set(draw.source[j + 1])) == 1
        assert draw.source[j, 0] != draw.source[j + 1, 0]
    extra = power.draw_study(small_pilot, cases=50, readers_per_training=3, rng=np.random.default_rng(0))
    radiology = extra.source[3:6]  # 2 pilot radiology attendings and one reader made of them case by case
    assert set(np.unique(radiology[2])) <= set(small_pilot.kind_readers[1])
    responses, predictions = power.study_rows(small_pilot, draw)
    assert len(read_responses(responses).case) == 8 * 3 * 50
    assert len(set(read_predictions(predictions).patient.tolist())) == 50
    with pytest.raises(ValueError, match="at least 2 cases and 2 readers"):
        power.draw_study(small_pilot, cases=50, readers_per_training=1, rng=np.random.default_rng(0))


@pytest.mark.parametrize("readers", [2, 3])
def test_power_matches_a_plain_loop_of_the_report(small_pilot: power.Pilot, readers: int) -> None:
    """Each drawn study through ``analyse`` (the report's code, one study at a time) with the same
    seed scheme; 3 readers per training brings readers made case by case from the pilot's."""
    simulations, iterations, cases, seed = 30, 100, 24, 5
    rows = power.plan(
        small_pilot,
        cases=[cases],
        readers_per_training=[readers],
        simulations=simulations,
        iterations=iterations,
        seed=seed,
    )
    verdicts: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for s in range(simulations):
        rng = power.simulation_rng(seed, cases, readers, s)
        draw = power.draw_study(small_pilot, cases=cases, readers_per_training=readers, rng=rng)
        responses, predictions = power.study_rows(small_pilot, draw)
        report = analyse(responses, predictions, iterations=iterations, seed=rng)
        for c in report["comparisons"]:
            verdicts[tuple(c[k] for k in KEYS)].append(c["verdict"])
    target_of = {tuple(t[k] for k in KEYS): t["target"] for t in small_pilot.targets}
    assert len(rows) == sum(t is not None for t in target_of.values()) > 0
    for row in rows:
        key = tuple(row[k] for k in KEYS)
        wanted = {"superior"} if target_of[key] == "superior" else {"superior", "noninferior"}
        brute = np.mean([v in wanted for v in verdicts[key]])
        assert abs(row["power"] - brute) <= 0.05, (key, row["power"], brute)
        assert (row["cases"], row["readers_per_training"]) == (cases, readers)


def test_power_rises_with_cases_and_with_readers() -> None:
    responses, predictions = synthetic_study(n_cases=60, n_patients=50, seed=2, readers=_readers(4))
    pilot = power.load_pilot(responses, predictions, iterations=200, seed=0)
    rows = power.plan(pilot, cases=[20, 80], readers_per_training=[2, 4], simulations=60, iterations=200, seed=0)
    mean: dict[tuple[int, int], list[float]] = defaultdict(list)
    for row in rows:
        assert 0.0 <= row["power"] <= 1.0
        mean[(row["cases"], row["readers_per_training"])].append(row["power"])
    m = {design: float(np.mean(values)) for design, values in mean.items()}
    for r in (2, 4):
        assert m[(80, r)] > m[(20, r)] + 0.1, m
    for n in (20, 80):
        assert m[(n, 4)] > m[(n, 2)] + 0.03, m


def test_a_given_margin_and_bad_settings(small_pilot: power.Pilot) -> None:
    loose = power.plan(small_pilot, cases=[20], readers_per_training=[2], simulations=20, iterations=50, margin=1.0)
    tight = power.plan(small_pilot, cases=[20], readers_per_training=[2], simulations=20, iterations=50, margin=0.0)
    assert sum(r["power"] for r in loose) >= sum(r["power"] for r in tight)
    with pytest.raises(ValueError, match="simulations and iterations"):
        power.plan(small_pilot, cases=[20], readers_per_training=[2], simulations=0)
    done: list[int] = []
    power.plan(
        small_pilot, cases=[20, 30], readers_per_training=[2], simulations=7, iterations=20, progress=done.append
    )
    assert sum(done) == 14
