"""readerstudy.analysis.mrmc against the published OR-DBM MRMC 2.51 analysis of the Van Dyke (1993) data.

The published figures are in ``/work/shared/reference-data/README.md``; the data file is copied to
``tests/data/vandyke_roc.csv`` so the tests run without the shared folder.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from ml.core.roc import roc_auc
from ml.core.stats import BINARY_LABELS, cohen_kappa
from readerstudy.analysis.mrmc import ORResult, jackknife_figures, model_vs_readers, or_analysis

DATA = Path(__file__).resolve().parent.parent / "data" / "vandyke_roc.csv"


def _kappa(truth: np.ndarray, answers: np.ndarray) -> float:
    return cohen_kappa(truth, answers, labels=BINARY_LABELS).kappa


@pytest.fixture(scope="module")
def vandyke() -> tuple[np.ndarray, np.ndarray]:
    """(2 modalities, 5 readers, 114 cases) ratings and the (114,) truth."""
    with DATA.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 5 * 114
    scores = np.full((2, 5, 114), np.nan)
    truth = np.full(114, -1)
    for row in rows:
        case = int(row["case"]) - 1
        scores[int(row["treatment"]), int(row["reader"]), case] = float(row["rating"])
        truth[case] = int(row["truth"])
    assert not np.isnan(scores).any() and set(truth.tolist()) == {0, 1}
    assert (truth == 1).sum() == 45
    return scores, truth


@pytest.fixture(scope="module")
def vandyke_or(vandyke: tuple[np.ndarray, np.ndarray]) -> ORResult:
    return or_analysis(*vandyke)


# ----------------------------------------------------------------- published figures

#: (figure, published value, absolute tolerance = half a unit in the last published digit)
PUBLISHED: list[tuple[str, float, float]] = [
    ("difference", -0.04380032, 5e-9),
    ("var_r", 0.00153500, 5e-9),
    ("var_tr", 0.00020040, 5e-9),
    ("cov1", 0.00034661, 5e-9),
    ("cov2", 0.00034407, 5e-9),
    ("cov3", 0.00023903, 5e-9),
    ("var_error", 0.00080229, 5e-9),
    ("f_stat", 4.46, 5e-3),
    ("ddf", 15.26, 5e-3),
    ("p_value", 0.0517, 5e-5),
    ("se", 0.02075, 5e-6),
    ("ci_low", -0.08796, 5e-6),
    ("ci_high", 0.00036, 5e-6),
    ("chi2", 5.47595, 5e-6),
    ("p_value_fixed_readers", 0.0193, 5e-5),
    ("se_fixed_readers", 0.01872, 5e-6),
    ("ci_low_fixed_readers", -0.08049, 5e-6),
    ("ci_high_fixed_readers", -0.00711, 5e-6),
]


@pytest.mark.parametrize(("name", "published", "tol"), PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_vandyke_published_scalar(vandyke_or: ORResult, name: str, published: float, tol: float) -> None:
    assert getattr(vandyke_or, name) == pytest.approx(published, abs=tol)


def test_vandyke_reader_aucs_and_means(vandyke_or: ORResult) -> None:
    expected = [
        [0.91964573, 0.85877617, 0.90386473, 0.97310789, 0.82979066],
        [0.94782609, 0.90531401, 0.92173913, 0.99935588, 0.92995169],
    ]
    np.testing.assert_allclose(vandyke_or.figures, expected, rtol=0, atol=5e-9)
    np.testing.assert_allclose(vandyke_or.modality_means, [0.89703704, 0.94083736], rtol=0, atol=5e-9)
    assert vandyke_or.n_cases == 114 and vandyke_or.ndf == 1 and vandyke_or.level == 0.95


def test_vandyke_single_modality_cis(vandyke_or: ORResult) -> None:
    np.testing.assert_allclose(vandyke_or.modality_ci_low, [0.82522360, 0.89413783], rtol=0, atol=5e-9)
    np.testing.assert_allclose(vandyke_or.modality_ci_high, [0.96885048, 0.98753689], rtol=0, atol=5e-9)


def test_vandyke_internal_consistency(vandyke_or: ORResult) -> None:
    r = vandyke_or
    # Two modalities: the F test is the square of the t test of the difference, the χ² the square of the z test.
    assert r.f_stat == pytest.approx((r.difference / r.se) ** 2)
    assert r.chi2 == pytest.approx((r.difference / r.se_fixed_readers) ** 2)
    assert r.ci_high - r.ci_low == pytest.approx(2 * 2.1286 * r.se, rel=1e-3)  # t(15.26) quantile


# ----------------------------------------------------------------- figures of merit


def test_callable_roc_auc_equals_builtin(vandyke: tuple[np.ndarray, np.ndarray], vandyke_or: ORResult) -> None:
    other = or_analysis(*vandyke, figure_of_merit=roc_auc)
    for name, value in vars(vandyke_or).items():
        np.testing.assert_allclose(getattr(other, name), value, rtol=1e-10, atol=1e-13, err_msg=name)


def _synthetic_binary(seed: int, n: int = 60, readers: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth, a model's binary calls and (2, readers, n) binary reader calls, each right ~80% of the time."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.4
    model = np.where(rng.random(n) < 0.85, truth, ~truth)
    flip = rng.random((2, readers, n)) < np.array([0.25, 0.15])[:, None, None]
    return truth, model, np.where(flip, ~truth, truth)


def test_kappa_figure_of_merit_is_finite() -> None:
    truth, _, answers = _synthetic_binary(1)
    res = or_analysis(answers, truth, figure_of_merit=_kappa)
    expected = [[_kappa(truth, answers[t, r]) for r in range(answers.shape[1])] for t in range(2)]
    np.testing.assert_allclose(res.figures, expected)
    for name, value in vars(res).items():
        assert np.all(np.isfinite(value)), name
    assert 0 < res.p_value < 1 and res.ddf > 0 and res.se > 0
    assert res.ci_low < res.difference < res.ci_high


def test_callable_must_return_a_number() -> None:
    truth, _, answers = _synthetic_binary(2, n=20)
    with pytest.raises(TypeError, match=r"\.kappa"):
        or_analysis(answers, truth, figure_of_merit=lambda t, a: cohen_kappa(t, a, labels=BINARY_LABELS))


# ----------------------------------------------------------------- jackknife


def _slow_jackknife(scores: np.ndarray, truth: np.ndarray, fom) -> np.ndarray:
    t_count, r_count, n = scores.shape
    out = np.empty((t_count, r_count, n))
    for k in range(n):
        keep = np.arange(n) != k
        for t in range(t_count):
            for r in range(r_count):
                out[t, r, k] = fom(truth[keep], scores[t, r, keep])
    return out


def test_auc_jackknife_equals_explicit_loop(vandyke: tuple[np.ndarray, np.ndarray]) -> None:
    scores, truth = vandyke  # 5-point ratings: many ties
    np.testing.assert_allclose(jackknife_figures(scores, truth, "auc"), _slow_jackknife(scores, truth, roc_auc))


def test_auc_jackknife_continuous_scores() -> None:
    rng = np.random.default_rng(3)
    truth = rng.random(40) < 0.5
    scores = rng.normal(size=(3, 2, 40)) + truth
    np.testing.assert_allclose(jackknife_figures(scores, truth, "auc"), _slow_jackknife(scores, truth, roc_auc))


def test_callable_jackknife_equals_explicit_loop() -> None:
    truth, _, answers = _synthetic_binary(4, n=30)
    np.testing.assert_allclose(jackknife_figures(answers, truth, _kappa), _slow_jackknife(answers, truth, _kappa))


def test_jackknife_covariance_scaling(vandyke: tuple[np.ndarray, np.ndarray], vandyke_or: ORResult) -> None:
    scores, truth = vandyke
    jack = jackknife_figures(scores, truth, "auc")
    n = truth.size
    var = (n - 1) / n * ((jack - jack.mean(axis=2, keepdims=True)) ** 2).sum(axis=2)
    assert vandyke_or.var_error == pytest.approx(var.mean())


# ----------------------------------------------------------------- more modalities, model vs readers


def test_three_modalities_runs() -> None:
    rng = np.random.default_rng(5)
    truth = rng.random(50) < 0.5
    scores = rng.normal(size=(3, 4, 50)) + np.array([1.0, 1.2, 1.5])[:, None, None] * truth
    res = or_analysis(scores, truth)
    assert res.ndf == 2 and res.figures.shape == (3, 4) and res.modality_se.shape == (3,)
    assert np.isfinite([res.f_stat, res.ddf, res.p_value, res.chi2]).all()


def _orh_model_vs_readers(model: np.ndarray, readers: np.ndarray, truth: np.ndarray, fom) -> tuple[float, ...]:
    """Independent reading of model_vs_readers_orh: a one-sample OR t test on θ_model − θ_r."""
    r_count, n = readers.shape
    d = np.array([fom(truth, model) - fom(truth, readers[r]) for r in range(r_count)])
    jack = np.empty((r_count, n))
    for k in range(n):
        keep = np.arange(n) != k
        jack[:, k] = [fom(truth[keep], model[keep]) - fom(truth[keep], readers[r, keep]) for r in range(r_count)]
    cov = np.cov(jack, ddof=1) * (n - 1) ** 2 / n
    cov2 = cov[~np.eye(r_count, dtype=bool)].mean()
    msr = d.var(ddof=1)
    se = np.sqrt((msr + max(r_count * cov2, 0)) / r_count)
    dof = (r_count - 1) * ((msr + max(r_count * cov2, 0)) / msr) ** 2
    return float(d.mean()), float(se), float(dof)


@pytest.mark.parametrize("fom", ["auc", "kappa"])
def test_model_vs_readers_matches_orh(fom: str) -> None:
    truth, model_calls, answers = _synthetic_binary(6, n=80, readers=5)
    if fom == "auc":
        rng = np.random.default_rng(7)
        model = rng.normal(size=truth.size) + 1.5 * truth
        readers = np.clip(np.round(rng.normal(size=(5, truth.size)) + 1.2 * truth + 3), 1, 5)
        fn, fom_arg = roc_auc, "auc"
    else:
        model, readers, fn, fom_arg = model_calls, answers[1], _kappa, _kappa
    res = model_vs_readers(model, readers, truth, fom_arg)
    effect, se, dof = _orh_model_vs_readers(model, readers, truth, fn)
    assert res.difference == pytest.approx(effect)
    assert res.difference == pytest.approx(fn(truth, model) - np.mean([fn(truth, r) for r in readers]))
    assert res.se == pytest.approx(se)
    assert res.ddf == pytest.approx(dof)
    assert res.p_value == pytest.approx(2 * sps.t.sf(abs(effect / se), dof))
    np.testing.assert_allclose(res.figures[0], fn(truth, model))


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("scores_shape", "truth_len", "message"),
    [
        ((5, 114), 114, r"\(modalities, readers, cases\)"),
        ((2, 5, 114), 113, "114 cases but truth has 113"),
        ((1, 5, 114), 114, "at least 2 modalities"),
        ((2, 1, 114), 114, "at least 2 readers"),
        ((2, 5, 1), 1, "at least 2 cases"),
    ],
)
def test_bad_shapes(scores_shape: tuple[int, ...], truth_len: int, message: str) -> None:
    truth = np.arange(truth_len) % 2
    with pytest.raises(ValueError, match=message):
        or_analysis(np.zeros(scores_shape), truth)


def test_bad_inputs() -> None:
    truth = np.arange(10) % 2
    scores = np.tile(np.arange(10.0), (2, 2, 1))
    with pytest.raises(ValueError, match="1-D"):
        or_analysis(scores, truth[:, None])
    with pytest.raises(ValueError, match="'auc' or a callable"):
        or_analysis(scores, truth, figure_of_merit="kappa")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="jackknife"):
        or_analysis(scores, truth, covariance="bootstrap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 positive and 2 negative"):
        or_analysis(scores, np.r_[1, np.zeros(9, dtype=int)])
    with pytest.raises(ValueError, match="model_scores must be a 1-D"):
        model_vs_readers(np.zeros((2, 10)), np.zeros((3, 10)), truth)
    with pytest.raises(ValueError, match=r"\(readers, cases\)"):
        model_vs_readers(np.zeros(10), np.zeros(10), truth)
    with pytest.raises(ValueError, match="9 cases but model_scores has 10"):
        model_vs_readers(np.zeros(10), np.zeros((3, 9)), truth)
