"""readerstudy.analysis.readers against scikit-learn, statsmodels, published κ values and hand-worked studies."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa

from ml.core.stats import CLASS_KEYS, FRACTURE_INDICES, bootstrap_indices
from readerstudy.analysis.readers import (
    CONDITIONS,
    DIFFERENCE_COLUMNS,
    GROUP_MEAN,
    GROUPS,
    MODEL,
    MODEL_CONDITION,
    MULTICLASS_NOTE,
    analyse,
    binary_verdict,
    bootstrap_kappa,
    borderline,
    synthetic_study,
    verdict,
    write_csvs,
)
from tests.ml_core.helpers import Rows, band_study


def _table_pairs(table: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Expand a k×k table (rows = rater A) into paired label indices."""
    t = np.asarray(table)
    k = t.shape[0]
    a = np.repeat(np.repeat(np.arange(k), k), t.ravel())
    b = np.repeat(np.tile(np.arange(k), k), t.ravel())
    return a, b


def _kappa(truth: np.ndarray, answers: np.ndarray, k: int) -> float:
    return float(bootstrap_kappa(truth, answers[None, :], np.arange(truth.size)[None, :], n_labels=k)[0, 0])


def _answers(responses: Rows, predictions: Rows) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Hand-built (binary, six-class) answer arrays per (observer, condition), in case order, with the truth."""
    cases = list(dict.fromkeys(r["case"] for r in responses))
    pred = {p["case"]: p for p in predictions}
    out: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    probs = np.array([[float(pred[c][f"p_{k}"]) for k in CLASS_KEYS] for c in cases])
    mc = probs.argmax(axis=1)
    out[(MODEL, MODEL_CONDITION)] = (probs[:, list(FRACTURE_INDICES)].sum(axis=1) >= 0.5, mc)
    for r in {(r["reader"], r["condition"]) for r in responses}:
        by_case = {x["case"]: CLASS_KEYS.index(x["answer"]) for x in responses if (x["reader"], x["condition"]) == r}
        mc = np.array([by_case[c] for c in cases])
        out[r] = (np.isin(mc, FRACTURE_INDICES), mc)
    truth = np.array([CLASS_KEYS.index(pred[c]["truth"]) for c in cases])
    out[("truth", "")] = (np.isin(truth, FRACTURE_INDICES), truth)
    return out


def _sk(truth: np.ndarray, answer: np.ndarray, k: int) -> float:
    return float(cohen_kappa_score(truth.astype(int), answer.astype(int), labels=list(range(k))))


# ----------------------------------------------------------------- κ against references


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [2, 6])
def test_kappa_matches_sklearn_and_statsmodels(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    labels = np.arange(k) if k == 2 else np.array([0, 1, 2, 3, 5])  # six-class: orif (4) absent
    truth = rng.choice(labels, 120)
    answer = np.where(rng.random(120) < 0.6, truth, rng.choice(labels, 120))
    ours = _kappa(truth, answer, k)
    assert ours == pytest.approx(_sk(truth, answer, k), abs=1e-12)
    table = np.zeros((k, k))
    np.add.at(table, (truth, answer), 1)
    assert ours == pytest.approx(cohens_kappa(table).kappa, abs=1e-12)


@pytest.mark.parametrize(
    ("table", "expected", "digits"),
    [
        ([[20, 5], [10, 15]], 0.40, 12),
        ([[31, 12], [4, 58]], 0.6756757, 7),
        ([[0, 4, 1], [0, 8, 0], [0, 1, 5]], 0.4842, 4),
    ],
)
def test_kappa_published_values(table: list[list[int]], expected: float, digits: int) -> None:
    a, b = _table_pairs(table)
    assert round(_kappa(a, b, len(table)), digits) == pytest.approx(expected, abs=10.0**-digits)


def test_bootstrap_kappa_equals_slow_loop() -> None:
    rng = np.random.default_rng(3)
    n, observers = 25, 4
    patients = np.r_[np.arange(20), rng.integers(0, 20, 5)]
    for k in (2, 6):
        truth = rng.integers(0, k, n)
        answers = np.where(rng.random((observers, n)) < 0.7, truth, rng.integers(0, k, (observers, n)))
        idx = bootstrap_indices(patients, iterations=40, seed=1)
        fast = bootstrap_kappa(truth, answers, idx, n_labels=k)
        assert fast.shape == (40, observers)
        slow = np.array([[_sk(truth[row], answers[o, row], k) for o in range(observers)] for row in idx])
        np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_bootstrap_kappa_undefined_when_chance_agreement_is_one() -> None:
    out = bootstrap_kappa([0, 0, 0], [[0, 0, 0]], [[0, 1, 2]], n_labels=2)
    assert np.isnan(out[0, 0])


# ----------------------------------------------------------------- the analysis, by hand


@pytest.fixture(scope="module")
def small() -> tuple[Rows, Rows]:
    return synthetic_study(n_cases=30, n_patients=24, seed=5)


@pytest.fixture(scope="module")
def small_result(small: tuple[Rows, Rows]) -> dict[str, Any]:
    return analyse(*small, iterations=60, seed=7)


def _boot_by_hand(responses: Rows, predictions: Rows, iterations: int, seed: int) -> dict[str, Any]:
    """Point and per-iteration κ of every observer with sklearn, and the group means."""
    answers = _answers(responses, predictions)
    cases = list(dict.fromkeys(r["case"] for r in responses))
    patient = {r["case"]: r["patient"] for r in responses}
    idx = bootstrap_indices([patient[c] for c in cases], iterations=iterations, seed=seed)
    members: dict[tuple[str, str], list[str]] = {}
    for r in responses:
        key = (r["group"], r["condition"])
        if r["reader"] not in members.setdefault(key, []):
            members[key].append(r["reader"])
    out: dict[str, Any] = {}
    for t, (task, k) in enumerate((("binary", 2), ("multiclass", 6))):
        truth = answers[("truth", "")][t]
        point, boot = {}, {}
        for obs, pair in answers.items():
            if obs[0] == "truth":
                continue
            point[obs] = _sk(truth, pair[t], k)
            boot[obs] = np.array([_sk(truth[row], pair[t][row], k) for row in idx])
        for (group, condition), names in members.items():
            point[(group, condition)] = np.mean([point[(n, condition)] for n in names])
            boot[(group, condition)] = np.mean([boot[(n, condition)] for n in names], axis=0)
        out[task] = (point, boot)
    return out


def test_observers_and_comparisons_match_hand_computation(small: tuple[Rows, Rows], small_result: dict) -> None:
    hand = _boot_by_hand(*small, iterations=60, seed=7)
    for row in small_result["observers"]:
        point, boot = hand[row["task"]]
        key = (row["observer"], row["condition"])
        assert row["kappa"] == pytest.approx(point[key], abs=1e-12)
        low, high = np.percentile(boot[key], [2.5, 97.5])
        assert (row["kappa_ci_low"], row["kappa_ci_high"]) == pytest.approx((low, high), abs=1e-12)
    assert len(small_result["comparisons"]) == 28
    for c in small_result["comparisons"]:
        point, boot = hand[c["task"]]
        a, b = (c["a"], c["condition_a"]), (c["b"], c["condition_b"])
        assert c["estimate"] == pytest.approx(point[a] - point[b], abs=1e-12)
        diff = boot[a] - boot[b]
        assert c["boot_mean"] == pytest.approx(diff.mean(), abs=1e-12)
        assert (c["ci_low"], c["ci_high"]) == pytest.approx(tuple(np.percentile(diff, [2.5, 97.5])), abs=1e-12)


def test_comparison_list(small_result: dict) -> None:
    got = [(c["a"], c["condition_a"], c["b"], c["condition_b"]) for c in small_result["comparisons"][:14]]
    m = (MODEL, MODEL_CONDITION)
    expected = []
    for cond in CONDITIONS:
        expected += [(*m, "expert", cond), (*m, "resident", cond), ("expert", cond, "resident", cond)]
    for g in GROUPS:
        expected += [(g, "full_quality", g, "model_quality"), (g, "model_aided", g, "full_quality")]
    expected.append(("resident", "model_aided", "expert", "full_quality"))
    assert got == expected
    assert [c["task"] for c in small_result["comparisons"]] == ["binary"] * 14 + ["multiclass"] * 14


def test_group_kappa_is_mean_of_members(small_result: dict) -> None:
    rows = small_result["observers"]
    groups = [r for r in rows if r["training"] == GROUP_MEAN]
    assert len(groups) == 2 * len(GROUPS) * len(CONDITIONS)
    for g in groups:
        members = [
            r
            for r in rows
            if r["group"] == g["group"] and r["condition"] == g["condition"] and r["task"] == g["task"]
            if r["training"] != GROUP_MEAN
        ]
        assert len(members) == 5
        for field in ("kappa", "accuracy", "sensitivity", "specificity"):
            assert g[field] == pytest.approx(np.mean([m[field] for m in members]), abs=1e-12)


def _tiny_study() -> tuple[Rows, Rows]:
    readers = [
        ("a1", "expert", "orthopedics"),
        ("a2", "expert", "orthopedics"),
        ("a3", "expert", "emergency"),  # alone in its training: no pair
        ("b1", "resident", "radiology"),
        ("b2", "resident", "radiology"),
        ("b3", "resident", "orthopedics"),  # the experts' training, another group: no pair
    ]
    return synthetic_study(n_cases=12, n_patients=10, seed=11, readers=readers)


# The paper pairs readers of the same group and the same training.
PAIRS = (("a1", "a2"), ("b1", "b2"))
TRAINING_ONLY_PAIRS = (("a1", "a2"), ("a1", "b3"), ("a2", "b3"), ("b1", "b2"))


def _mean_abs_difference(responses: Rows, predictions: Rows, pairs: tuple[tuple[str, str], ...]) -> float:
    answers = _answers(responses, predictions)
    diffs = []
    for t, k in ((0, 2), (1, 6)):
        truth = answers[("truth", "")][t]
        for cond in CONDITIONS:
            for a, b in pairs:
                diffs.append(abs(_sk(truth, answers[(a, cond)][t], k) - _sk(truth, answers[(b, cond)][t], k)))
    return float(np.mean(diffs))


def test_margin_by_hand() -> None:
    responses, predictions = _tiny_study()
    result = analyse(responses, predictions, iterations=20, seed=0)
    margin = result["margin"]
    assert margin["source"] == "pairs"
    assert margin["value"] == pytest.approx(_mean_abs_difference(responses, predictions, PAIRS), abs=1e-12)
    # Pairing on the training alone (b3 with a1 and a2) would give another margin: not the paper's.
    training_only = _mean_abs_difference(responses, predictions, TRAINING_ONLY_PAIRS)
    assert abs(training_only - margin["value"]) > 0.01
    assert margin["empirical"] == margin["value"]
    assert len(margin["pairs"]) == 2 * 3 * 2  # pairs, conditions, tasks
    assert {(p["a"], p["b"]) for p in margin["pairs"]} == set(PAIRS)
    assert all(c["margin"] == margin["value"] for c in result["comparisons"])


# Four cases (truth normal, normal, displaced FN, intertrochanteric) and four answer patterns whose
# κ is worked out by hand (binary; six-class):
#   P perfect                      1;   1
#   S the two fractures swapped    1;   (1/2 − 6/16) / (1 − 6/16) = 1/5
#   F one normal called displaced  1/2; (3/4 − 5/16) / (1 − 5/16) = 7/11
#   Z all normal                   0;   0
_HAND_TRUTH = ("normal", "normal", "fn_displaced", "intertrochanteric")
_HAND_ANSWERS = {
    "P": _HAND_TRUTH,
    "S": ("normal", "normal", "intertrochanteric", "fn_displaced"),
    "F": ("normal", "fn_displaced", "fn_displaced", "intertrochanteric"),
    "Z": ("normal",) * 4,
}
# Trainings named by specialty alone, the same names in both groups.
_HAND_READERS = {
    "eo1": ("expert", "orthopedics", "P"),
    "eo2": ("expert", "orthopedics", "S"),
    "er1": ("expert", "radiology", "P"),
    "er2": ("expert", "radiology", "F"),
    "ro1": ("resident", "orthopedics", "F"),
    "ro2": ("resident", "orthopedics", "Z"),
    "rr1": ("resident", "radiology", "S"),
    "rr2": ("resident", "radiology", "Z"),
}


def _hand_study() -> tuple[Rows, Rows]:
    """The readers above answer by their pattern on model-quality and full-quality images; with the
    model's help every one of them is right (so that condition adds four differences of 0)."""
    responses = [
        {
            "reader": reader,
            "group": group,
            "training": training,
            "condition": condition,
            "case": f"c{i}",
            "patient": f"p{i}",
            "truth": truth,
            "answer": truth if condition == "model_aided" else _HAND_ANSWERS[pattern][i],
        }
        for reader, (group, training, pattern) in _HAND_READERS.items()
        for condition in CONDITIONS
        for i, truth in enumerate(_HAND_TRUTH)
    ]
    predictions = [
        {
            "case": f"c{i}",
            "patient": f"p{i}",
            "truth": truth,
            **{f"p_{k}": "1.0" if k == truth else "0.0" for k in CLASS_KEYS},
        }
        for i, truth in enumerate(_HAND_TRUTH)
    ]
    return responses, predictions


def test_margin_of_specialty_named_trainings_pairs_within_groups_only() -> None:
    result = analyse(*_hand_study(), iterations=10, seed=0)
    margin = result["margin"]
    pairs = {(p["task"], p["condition"], p["a"], p["b"]): p["difference"] for p in margin["pairs"]}
    assert {(a, b) for _, _, a, b in pairs} == {("eo1", "eo2"), ("er1", "er2"), ("ro1", "ro2"), ("rr1", "rr2")}
    for p in margin["pairs"]:
        assert (p["group"], p["training"]) == _HAND_READERS[p["a"]][:2] == _HAND_READERS[p["b"]][:2]
    # Same group, same training: binary |Δκ| 0, 1/2, 1/2, 1; six-class 4/5, 4/11, 7/11, 1/5 on the
    # two unaided conditions, and 0 for all eight with the model's help: 2 × (3 + 1) / 24 = 1/3.
    expected = {
        ("binary", "eo1", "eo2"): 0.0,
        ("binary", "er1", "er2"): 0.5,
        ("binary", "ro1", "ro2"): 0.5,
        ("binary", "rr1", "rr2"): 1.0,
        ("multiclass", "eo1", "eo2"): 4 / 5,
        ("multiclass", "er1", "er2"): 4 / 11,
        ("multiclass", "ro1", "ro2"): 7 / 11,
        ("multiclass", "rr1", "rr2"): 1 / 5,
    }
    for (task, condition, a, b), difference in pairs.items():
        want = 0.0 if condition == "model_aided" else expected[(task, a, b)]
        assert difference == pytest.approx(want, abs=1e-12), (task, condition, a, b)
    assert len(pairs) == 4 * 3 * 2
    assert margin["value"] == pytest.approx(1 / 3, abs=1e-12)
    # Pairing on the training alone would pair P, S, F and Z of both groups in each specialty: six
    # pairs each, binary |Δκ| summing to 7/2 and six-class to 3 + 24/55, so (13/2 + 24/55) / 18.
    kappa = {(r["observer"], r["condition"], r["task"]): r["kappa"] for r in result["observers"]}
    across = [
        abs(kappa[(a, c, t)] - kappa[(b, c, t)])
        for t in ("binary", "multiclass")
        for c in CONDITIONS
        for a, b in itertools.combinations(_HAND_READERS, 2)
        if _HAND_READERS[a][1] == _HAND_READERS[b][1]
    ]
    assert len(across) == 2 * 6 * 3 * 2
    assert np.mean(across) == pytest.approx((13 / 2 + 24 / 55) / 18, abs=1e-12)  # 0.385
    assert margin["value"] < np.mean(across) - 0.05


def test_a_training_shared_across_groups_alone_gives_no_margin() -> None:
    readers = [("a1", "expert", "orthopedics"), ("b1", "resident", "orthopedics")]
    responses, predictions = synthetic_study(n_cases=10, n_patients=10, seed=1, readers=readers)
    with pytest.raises(ValueError, match="share a group and a training"):
        analyse(responses, predictions, iterations=10)
    assert analyse(responses, predictions, iterations=10, margin=0.1)["margin"]["pairs"] == []


def test_margin_argument_overrides() -> None:
    result = analyse(*_tiny_study(), iterations=20, seed=0, margin=0.25)
    assert result["margin"]["value"] == 0.25
    assert result["margin"]["source"] == "argument"
    assert result["margin"]["empirical"] is not None
    for c in result["comparisons"]:
        assert c["margin"] == 0.25
        assert c["verdict"] == verdict(c["ci_low"], 0.25)


def test_no_pairs_needs_a_margin() -> None:
    readers = [("a1", "expert", "orthopedics"), ("b1", "resident", "radiology")]
    responses, predictions = synthetic_study(n_cases=10, n_patients=10, seed=1, readers=readers)
    with pytest.raises(ValueError, match="margin"):
        analyse(responses, predictions, iterations=10)
    result = analyse(responses, predictions, iterations=10, margin=0.1)
    assert result["margin"]["empirical"] is None
    assert len(result["comparisons"]) == 28


@pytest.mark.parametrize(
    ("ci_low", "margin", "expected"),
    [
        (0.01, 0.103, "superior"),
        (0.0, 0.103, "noninferior"),  # touching 0 is not superior
        (-0.05, 0.103, "noninferior"),
        (-0.103, 0.103, "not_noninferior"),  # touching −margin is not noninferior
        (-0.2, 0.103, "not_noninferior"),
        (-0.01, 0.0, "not_noninferior"),
        (float("nan"), 0.1, "undefined"),
        (None, 0.1, "undefined"),
    ],
)
def test_verdict_thresholds(ci_low: float | None, margin: float, expected: str) -> None:
    assert verdict(ci_low, margin) == expected  # type: ignore[arg-type]


def test_binary_superior_needs_the_group_point_below_the_band(tmp_path: Path) -> None:
    result = analyse(*band_study(), iterations=300, seed=0)
    binary = {(c["b"], c["condition_b"]): c for c in result["comparisons"] if c["task"] == "binary" and c["a"] == MODEL}
    checks = {(r["group"], r["condition"]): r for r in result["roc_check"]}
    for condition in CONDITIONS:
        expert, resident = binary[("expert", condition)], binary[("resident", condition)]
        # Both CIs lie above 0: by the CI alone the model is superior to both groups.
        assert expert["ci_low"] > 0.02 and resident["ci_low"] > 0.02
        assert expert["kappa_verdict"] == resident["kappa_verdict"] == "superior"
        # The experts' point is on the band's lower edge (sensitivity 1): not below it, so noninferior.
        check = checks[("expert", condition)]
        assert (check["sensitivity"], check["band_tpr_low"], check["below_band"]) == (1.0, 1.0, False)
        assert expert["verdict"] == check["verdict"] == "noninferior"
        assert (check["kappa_verdict"], check["model_superior"]) == ("superior", False)
        # The residents' point lies below the band: superior, as the paper's rule asks.
        check = checks[("resident", condition)]
        assert check["below_band"] is True and check["sensitivity"] == pytest.approx(0.8)
        assert resident["verdict"] == check["verdict"] == "superior" and check["model_superior"] is True
    # The six-class comparisons and the groups' comparisons follow the CI rule alone.
    for c in result["comparisons"]:
        if c["task"] == "multiclass" or c["a"] != MODEL:
            assert c["verdict"] == c["kappa_verdict"] == verdict(c["ci_low"], c["margin"])

    paths = write_csvs(result, tmp_path)
    with open(paths["kappa_differences.csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == DIFFERENCE_COLUMNS  # no column added
    in_csv = {(r["task"], r["b"], r["condition_b"]): r["verdict"] for r in rows if r["a"] == MODEL}
    for condition in CONDITIONS:
        assert in_csv[("binary", "expert", condition)] == "noninferior"
        assert in_csv[("binary", "resident", condition)] == "superior"
    report = json.loads(paths["report.json"].read_text())
    assert [c["verdict"] for c in report["comparisons"]] == [r["verdict"] for r in rows]
    assert [(r["group"], r["condition"]) for r in report["roc_check"]] == [(g, c) for c in CONDITIONS for g in GROUPS]


@pytest.mark.parametrize(
    ("ci_low", "margin", "below_band", "expected"),
    [
        (0.05, 0.1, True, "superior"),
        (0.05, 0.1, False, "noninferior"),
        (0.05, 0.1, None, "noninferior"),  # no band to compare with: not superior
        (-0.05, 0.1, True, "noninferior"),  # the band does not make a CI below 0 superior
        (-0.2, 0.1, True, "not_noninferior"),
        (None, 0.1, True, "undefined"),
    ],
)
def test_binary_verdict_rule(ci_low: float | None, margin: float, below_band: bool | None, expected: str) -> None:
    assert binary_verdict(ci_low, margin, below_band) == expected


@pytest.mark.parametrize(
    ("ci_low", "margin", "expected"),
    [
        (0.0099, 0.1, ["0"]),
        (-0.0099, 0.1, ["0"]),
        (0.0101, 0.1, []),
        (-0.0899, 0.1, []),
        (-0.0999, 0.1, ["-margin"]),
        (-0.1099, 0.1, ["-margin"]),
        (-0.004, 0.005, ["0", "-margin"]),  # a small margin: both thresholds are near
        (0.5, None, []),
        (None, 0.1, []),
    ],
)
def test_borderline_thresholds(ci_low: float | None, margin: float | None, expected: list[str]) -> None:
    assert borderline(ci_low, margin) == expected


def test_borderline_comparisons_are_listed_with_seed_and_iterations() -> None:
    responses, predictions = synthetic_study(n_cases=40, n_patients=35, seed=6)
    first = analyse(responses, predictions, iterations=100, seed=3)
    target = first["comparisons"][3]
    # A margin that puts this comparison's CI lower bound 0.004 above −margin: borderline.
    margin = -target["ci_low"] + 0.004
    result = analyse(responses, predictions, iterations=100, seed=3, margin=margin)
    for c in result["comparisons"]:
        assert c["borderline"] == borderline(c["ci_low"], margin)
    assert "-margin" in result["comparisons"][3]["borderline"]
    listed = result["borderline"]
    assert (listed["tolerance"], listed["seed"], listed["iterations"]) == (0.01, 3, 100)
    keys = ("task", "a", "condition_a", "b", "condition_b", "verdict", "ci_low")
    assert listed["comparisons"] == [
        {**{k: c[k] for k in keys}, "thresholds": c["borderline"]} for c in result["comparisons"] if c["borderline"]
    ]
    assert any(r["thresholds"] == ["-margin"] and r["ci_low"] == target["ci_low"] for r in listed["comparisons"])


def test_estimate_is_a_named_choice() -> None:
    responses, predictions = synthetic_study(n_cases=30, n_patients=24, seed=5)
    paper = analyse(responses, predictions, iterations=60, seed=7)
    assert paper["estimate"] == "bootstrap-mean"
    other = analyse(responses, predictions, iterations=60, seed=7, estimate="all-cases")
    assert other["estimate"] == "all-cases"
    # The comparisons carry both figures whichever is shown; only the recorded choice differs.
    assert other["comparisons"] == paper["comparisons"]
    for row in paper["observers"]:
        assert row["kappa_ci_low"] <= row["kappa_boot_mean"] <= row["kappa_ci_high"]
    with pytest.raises(ValueError, match="unknown estimate 'median'"):
        analyse(responses, predictions, iterations=10, estimate="median")


def test_model_binary_answer_uses_fracture_probability() -> None:
    responses, predictions = synthetic_study(n_cases=8, n_patients=8, seed=2, readers=[("a", "expert", "orthopedics")])
    # Make the model perfect, then give case 0 a fracture truth with argmax "normal" but P(fracture) = 0.6.
    for p in predictions:
        p.update({f"p_{k}": "1.0" if k == p["truth"] else "0.0" for k in CLASS_KEYS})
    predictions[0].update(
        {"truth": "fn_displaced", "p_normal": "0.4", "p_fn_displaced": "0.3", "p_intertrochanteric": "0.3"}
    )
    predictions[0].update({k: "0.0" for k in ("p_fn_nondisplaced", "p_orif", "p_arthroplasty")})
    for r in responses:
        if r["case"] == "c000":
            r["truth"] = "fn_displaced"
    result = analyse(responses, predictions, iterations=10, margin=0.1)
    model = {r["task"]: r for r in result["observers"] if r["observer"] == MODEL}
    assert model["binary"]["accuracy"] == 1.0
    assert model["multiclass"]["accuracy"] == pytest.approx(7 / 8)


def test_multiclass_metrics_are_macro_averages(small: tuple[Rows, Rows], small_result: dict) -> None:
    answers = _answers(*small)
    truth = answers[("truth", "")][1]
    row = next(r for r in small_result["observers"] if r["task"] == "multiclass" and r["observer"] == "e0")
    pred = answers[("e0", row["condition"])][1]
    sens = [((pred == c) & (truth == c)).sum() / (truth == c).sum() for c in range(6) if (truth == c).any()]
    spec = [((pred != c) & (truth != c)).sum() / (truth != c).sum() for c in range(6)]
    assert row["sensitivity"] == pytest.approx(np.mean(sens))
    assert row["specificity"] == pytest.approx(np.mean(spec))
    assert "macro" in MULTICLASS_NOTE
