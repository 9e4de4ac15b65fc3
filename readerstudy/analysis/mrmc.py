"""Obuchowski–Rockette (OR) analysis of a multi-reader multi-case (MRMC) study, in NumPy/SciPy.

Readers random, case covariance by the jackknife, Hillis's (2007) degrees of freedom, any figure of
merit (AUC, κ against truth); matches OR-DBM MRMC 2.51 and RJafroc on the Van Dyke data.
Design: docs/architecture/design-statistics.md
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from ml.core.roc import _average_ranks, _binary_inputs, roc_auc

__all__ = [
    "FigureOfMerit",
    "ORResult",
    "jackknife_figures",
    "model_vs_readers",
    "or_analysis",
]

#: ``"auc"`` (trapezoidal / Mann–Whitney, needs binary truth) or ``f(truth_subset, answers_subset) -> float``.
FigureOfMerit = Literal["auc"] | Callable[[NDArray[Any], NDArray[Any]], float]


@dataclass(frozen=True)
class ORResult:
    """Obuchowski–Rockette analysis of a (modalities × readers × cases) study.

    ``difference`` and its SEs/CIs compare modality 0 with modality 1 (first − second); with more
    than two modalities the same SE holds for any pair, and the F / χ² tests are the global ones.
    """

    figures: NDArray[np.float64]  # (T, R) figure of merit per modality and reader
    modality_means: NDArray[np.float64]  # (T,)
    difference: float  # modality 0 − modality 1
    n_cases: int
    # OR variance components (jackknife covariances scaled by (N − 1)/N)
    var_r: float
    var_tr: float
    cov1: float
    cov2: float
    cov3: float
    var_error: float
    ms_t: float
    ms_r: float
    ms_tr: float
    # random readers, random cases (Hillis 2007 ddf)
    f_stat: float
    ndf: int
    ddf: float
    p_value: float
    se: float
    ci_low: float
    ci_high: float
    # fixed readers, random cases
    chi2: float
    p_value_fixed_readers: float
    se_fixed_readers: float
    ci_low_fixed_readers: float
    ci_high_fixed_readers: float
    # each modality alone, random readers and cases
    modality_se: NDArray[np.float64]  # (T,)
    modality_df: NDArray[np.float64]  # (T,)
    modality_ci_low: NDArray[np.float64]  # (T,)
    modality_ci_high: NDArray[np.float64]  # (T,)
    level: float = 0.95


# --------------------------------------------------------------------------- inputs


def _inputs(scores: ArrayLike, truth: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    s = np.asarray(scores)
    t = np.asarray(truth)
    if s.ndim != 3:
        raise ValueError(f"scores must be a (modalities, readers, cases) array, got shape {s.shape}")
    if t.ndim != 1:
        raise ValueError(f"truth must be a 1-D array of length cases, got shape {t.shape}")
    if s.shape[2] != t.shape[0]:
        raise ValueError(f"scores has {s.shape[2]} cases but truth has {t.shape[0]}")
    if s.shape[2] < 2:
        raise ValueError("the jackknife needs at least 2 cases")
    return s, t


def _call_fom(fom: Callable[[NDArray[Any], NDArray[Any]], float], truth: NDArray[Any], answers: NDArray[Any]) -> float:
    value = fom(truth, answers)
    try:
        return float(value)
    except TypeError:
        raise TypeError(
            f"figure_of_merit must return a number, got {type(value).__name__} "
            "(for Cohen's κ use lambda t, a: cohen_kappa(t, a, labels=...).kappa)"
        ) from None


# --------------------------------------------------------------------------- figures of merit


def _auc_jackknife(truth: NDArray[Any], scores: NDArray[Any]) -> NDArray[np.float64]:
    """Leave-one-case-out AUCs of one reading, all N at once, via placement values.

    With W = Σ_pos Σ_neg ψ (ψ = 1 above, ½ tied), leaving out positive j gives
    (W − w_j) / ((n1 − 1) n0) and leaving out negative k gives (W − w_k) / (n1 (n0 − 1)), where
    w_j (w_k) are the wins of that case against the other class.
    """
    y, s = _binary_inputs(truth, scores)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 < 2 or n0 < 2:
        raise ValueError("the AUC jackknife needs at least 2 positive and 2 negative cases")
    ranks = _average_ranks(s)
    # Wins of a case against the other class = its rank among all minus its rank within its class.
    pos_ranks = _average_ranks(s[y])
    neg_ranks = _average_ranks(s[~y])
    wins = np.empty(y.size)
    wins[y] = ranks[y] - pos_ranks  # negatives below a positive (ties ½)
    wins[~y] = n1 - (ranks[~y] - neg_ranks)  # positives above a negative (ties ½)
    total = wins[y].sum()
    left_out: NDArray[np.float64] = np.where(y, (total - wins) / ((n1 - 1) * n0), (total - wins) / (n1 * (n0 - 1)))
    return left_out


def _figures(scores: NDArray[Any], truth: NDArray[Any], fom: FigureOfMerit) -> NDArray[np.float64]:
    t_count, r_count, _ = scores.shape
    out = np.empty((t_count, r_count))
    for t in range(t_count):
        for r in range(r_count):
            out[t, r] = roc_auc(truth, scores[t, r]) if fom == "auc" else _call_fom(fom, truth, scores[t, r])
    return out


def jackknife_figures(scores: ArrayLike, truth: ArrayLike, figure_of_merit: FigureOfMerit) -> NDArray[np.float64]:
    """(modalities, readers, cases) figures of merit, entry k computed with case k left out."""
    s, t = _inputs(scores, truth)
    t_count, r_count, n = s.shape
    out = np.empty((t_count, r_count, n))
    if figure_of_merit == "auc":
        for i in range(t_count):
            for r in range(r_count):
                out[i, r] = _auc_jackknife(t, s[i, r])
        return out
    if not callable(figure_of_merit):
        raise ValueError("figure_of_merit must be 'auc' or a callable f(truth, answers) -> float")
    keep = ~np.eye(n, dtype=bool)
    for k in range(n):
        tk = t[keep[k]]
        for i in range(t_count):
            for r in range(r_count):
                out[i, r, k] = _call_fom(figure_of_merit, tk, s[i, r, keep[k]])
    return out


# --------------------------------------------------------------------------- OR analysis


def _mean_where(cov: NDArray[np.float64], mask: NDArray[np.bool_]) -> float:
    return float(cov[mask].mean()) if mask.any() else float("nan")


def or_analysis(
    scores: ArrayLike,
    truth: ArrayLike,
    *,
    figure_of_merit: FigureOfMerit = "auc",
    covariance: Literal["jackknife"] = "jackknife",
    level: float = 0.95,
) -> ORResult:
    """Obuchowski–Rockette analysis with Hillis's ddf (see the module docstring for the formulas).

    ``scores``: (modalities T ≥ 2, readers R ≥ 2, cases N) ratings (for ``"auc"``) or answers;
    ``truth``: (N,) truth (binary for ``"auc"``). A callable ``figure_of_merit(truth, answers)``
    gets the 1-D truth and one reader's answers in one modality (a subset of cases for the
    jackknife) and returns a float, e.g. ``lambda t, a: cohen_kappa(t, a, labels=BINARY_LABELS).kappa``.
    """
    if covariance != "jackknife":
        raise ValueError("only covariance='jackknife' is implemented")
    if not 0.0 < level < 1.0:
        raise ValueError("level must be in (0, 1)")
    if figure_of_merit != "auc" and not callable(figure_of_merit):
        raise ValueError("figure_of_merit must be 'auc' or a callable f(truth, answers) -> float")
    s, t = _inputs(scores, truth)
    t_count, r_count, n = s.shape
    if t_count < 2:
        raise ValueError(f"or_analysis needs at least 2 modalities, got {t_count}")
    if r_count < 2:
        raise ValueError(f"or_analysis needs at least 2 readers, got {r_count}")

    theta = _figures(s, t, figure_of_merit)
    jack = jackknife_figures(s, t, figure_of_merit).reshape(t_count * r_count, n)
    dev = jack - jack.mean(axis=1, keepdims=True)
    cov = (n - 1) / n * (dev @ dev.T)  # rows/cols ordered (t, r), t major

    mod = np.repeat(np.arange(t_count), r_count)
    rdr = np.tile(np.arange(r_count), t_count)
    same_t = mod[:, None] == mod[None, :]
    same_r = rdr[:, None] == rdr[None, :]
    var_error = float(np.diag(cov).mean())
    cov1 = _mean_where(cov, ~same_t & same_r)
    cov2 = _mean_where(cov, same_t & ~same_r)
    cov3 = _mean_where(cov, ~same_t & ~same_r)

    mean_t = theta.mean(axis=1)
    mean_r = theta.mean(axis=0)
    grand = float(theta.mean())
    ms_t = r_count * float(((mean_t - grand) ** 2).sum()) / (t_count - 1)
    ms_r = t_count * float(((mean_r - grand) ** 2).sum()) / (r_count - 1)
    resid = theta - mean_t[:, None] - mean_r[None, :] + grand
    ms_tr = float((resid**2).sum()) / ((t_count - 1) * (r_count - 1))
    var_tr = ms_tr - var_error + cov1 + cov2 - cov3
    var_r = (ms_r - var_error - (t_count - 1) * cov1 + cov2 + (t_count - 1) * cov3 - var_tr) / t_count

    difference = float(mean_t[0] - mean_t[1])
    alpha = 1.0 - level
    nan = float("nan")

    # Random readers and cases (Hillis 2007).
    ndf = t_count - 1
    den = ms_tr + r_count * max(cov2 - cov3, 0.0)
    if ms_tr > 0:
        ddf = den**2 / (ms_tr**2 / ((t_count - 1) * (r_count - 1)))
    else:
        ddf = float("inf")  # no reader-by-modality scatter: the case term alone, a normal reference
    f_stat = ms_t / den if den > 0 else nan
    p_value = float(sps.f.sf(f_stat, ndf, ddf)) if np.isfinite(f_stat) else nan
    se = float(np.sqrt(2.0 / r_count * den))
    t_crit = float(sps.t.isf(alpha / 2.0, ddf))
    ci_low, ci_high = difference - t_crit * se, difference + t_crit * se

    # Fixed readers, random cases.
    den_fr = var_error - cov1 + (r_count - 1) * max(cov2 - cov3, 0.0)
    chi2 = (t_count - 1) * ms_t / den_fr if den_fr > 0 else nan
    p_fr = float(sps.chi2.sf(chi2, ndf)) if np.isfinite(chi2) else nan
    se_fr = float(np.sqrt(2.0 / r_count * max(den_fr, 0.0)))
    z = float(sps.norm.isf(alpha / 2.0))

    # Each modality alone, random readers and cases.
    m_se = np.empty(t_count)
    m_df = np.empty(t_count)
    for i in range(t_count):
        ms_r_i = float(((theta[i] - mean_t[i]) ** 2).sum()) / (r_count - 1)
        cov2_i = max(_mean_where(cov, same_t & ~same_r & (mod[:, None] == i)), 0.0)
        m_se[i] = np.sqrt(ms_r_i / r_count + cov2_i)
        m_df[i] = (ms_r_i + r_count * cov2_i) ** 2 / (ms_r_i**2 / (r_count - 1)) if ms_r_i > 0 else np.inf
    m_t = sps.t.isf(alpha / 2.0, m_df)

    return ORResult(
        figures=theta,
        modality_means=mean_t,
        difference=difference,
        n_cases=n,
        var_r=float(var_r),
        var_tr=float(var_tr),
        cov1=cov1,
        cov2=cov2,
        cov3=cov3,
        var_error=var_error,
        ms_t=ms_t,
        ms_r=ms_r,
        ms_tr=ms_tr,
        f_stat=float(f_stat),
        ndf=ndf,
        ddf=float(ddf),
        p_value=p_value,
        se=se,
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        chi2=float(chi2),
        p_value_fixed_readers=p_fr,
        se_fixed_readers=se_fr,
        ci_low_fixed_readers=difference - z * se_fr,
        ci_high_fixed_readers=difference + z * se_fr,
        modality_se=m_se,
        modality_df=m_df,
        modality_ci_low=mean_t - m_t * m_se,
        modality_ci_high=mean_t + m_t * m_se,
        level=level,
    )


def model_vs_readers(
    model_scores: ArrayLike,
    reader_scores: ArrayLike,
    truth: ArrayLike,
    figure_of_merit: FigureOfMerit = "auc",
    *,
    level: float = 0.95,
) -> ORResult:
    """The model against a panel of readers who read the same cases (as ``model_vs_readers_orh``).

    ``model_scores``: (N,); ``reader_scores``: (R, N); ``truth``: (N,). The model becomes
    modality 0 with its answers repeated for every reader, the readers modality 1, so
    ``difference`` is θ_model − mean_r θ_r and ``se``, ``ddf``, ``p_value``, ``ci_low``/``ci_high``
    are the random-readers-random-cases test of that difference (two-sided; F = t²), equal to
    Google Health's ``model_vs_readers_orh`` with ``margin=0``. ``figures[0]`` is the model (R
    copies) and ``figures[1]`` the readers; ``modality_ci_*[1]`` is the readers' mean with its CI.
    The fixed-readers fields and ``modality_ci_*[0]`` describe a model with no reader variation and
    are of little use here. With κ as figure of merit:
    ``model_vs_readers(m, readers, truth, lambda t, a: cohen_kappa(t, a, labels=BINARY_LABELS).kappa)``.
    """
    m = np.asarray(model_scores)
    rs = np.asarray(reader_scores)
    if m.ndim != 1:
        raise ValueError(f"model_scores must be a 1-D array of length cases, got shape {m.shape}")
    if rs.ndim != 2:
        raise ValueError(f"reader_scores must be a (readers, cases) array, got shape {rs.shape}")
    if rs.shape[1] != m.shape[0]:
        raise ValueError(f"reader_scores has {rs.shape[1]} cases but model_scores has {m.shape[0]}")
    stacked = np.stack([np.broadcast_to(m, rs.shape), rs])
    return or_analysis(stacked, truth, figure_of_merit=figure_of_merit, level=level)
