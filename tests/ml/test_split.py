"""The stratified patient-level split (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.core.split import stratified_group_split

CLASSES = ["normal", "fn_displaced", "fn_nondisplaced", "intertrochanteric", "orif", "arthroplasty"]
FREQUENCIES = [0.40, 0.20, 0.07, 0.20, 0.07, 0.06]
FRACTIONS = (0.60, 0.25, 0.15)


def population(n_patients: int = 900, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Patients with one or two radiographs of two hips each, paper-like class frequencies."""
    rng = np.random.default_rng(seed)
    groups, labels = [], []
    for patient in range(n_patients):
        for _ in range(rng.integers(1, 3)):
            for _ in range(2):
                groups.append(f"P{patient}")
                labels.append(rng.choice(CLASSES, p=FREQUENCIES))
    return np.array(groups), np.array(labels)


@pytest.fixture(scope="module")
def split():
    groups, labels = population()
    return groups, labels, stratified_group_split(groups, labels, FRACTIONS, seed=7)


def test_no_patient_in_two_splits(split):
    groups, _, parts = split
    for patient in np.unique(groups):
        assert len(set(parts[groups == patient])) == 1


def test_fractions_close_to_60_25_15(split):
    _, _, parts = split
    observed = np.bincount(parts, minlength=3) / len(parts)
    assert observed == pytest.approx(FRACTIONS, abs=0.02)


def test_class_proportions_match_across_splits(split):
    _, labels, parts = split
    for cls in CLASSES:
        in_class = parts[labels == cls]
        observed = np.bincount(in_class, minlength=3) / len(in_class)
        assert observed == pytest.approx(FRACTIONS, abs=0.03), cls
    # and each split's class mix is close to the whole population's
    overall = np.array([np.mean(labels == c) for c in CLASSES])
    for part in range(3):
        mix = np.array([np.mean(labels[parts == part] == c) for c in CLASSES])
        assert mix == pytest.approx(overall, abs=0.02)


def test_same_seed_same_split_other_seed_other_split(split):
    groups, labels, parts = split
    assert np.array_equal(stratified_group_split(groups, labels, FRACTIONS, seed=7), parts)
    assert not np.array_equal(stratified_group_split(groups, labels, FRACTIONS, seed=8), parts)


def test_order_of_input_does_not_matter_for_a_patient_split():
    groups, labels = population(60, seed=3)
    parts = stratified_group_split(groups, labels, seed=1)
    perm = np.random.default_rng(0).permutation(len(groups))
    shuffled = stratified_group_split(groups[perm], labels[perm], seed=1)
    assert np.array_equal(shuffled, parts[perm])


@pytest.mark.parametrize("n", [0, 1, 2])
def test_fewer_patients_than_splits_is_a_clear_error(n):
    with pytest.raises(ValueError, match="patients|no samples"):
        stratified_group_split([f"P{i}" for i in range(n)], ["normal"] * n)


@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_tiny_inputs_give_every_split_a_patient(n):
    groups = [f"P{i}" for i in range(n) for _ in range(2)]
    labels = ["normal", "fn_displaced"] * n
    parts = stratified_group_split(groups, labels, seed=0)
    assert set(parts) == {0, 1, 2}
    assert parts[0::2].tolist() == parts[1::2].tolist()  # both hips of a patient together


def test_single_class_and_bad_arguments():
    groups, _ = population(30)
    parts = stratified_group_split(groups, ["normal"] * len(groups), seed=0)
    assert set(parts) == {0, 1, 2}
    with pytest.raises(ValueError):
        stratified_group_split(["a", "b"], ["x"], seed=0)
    with pytest.raises(ValueError):
        stratified_group_split(["a", "b", "c"], ["x"] * 3, fractions=(1.0,), seed=0)
