r"""Wald-type inference for fixed effects: z, t and Knapp–Hartung.

For coefficients :math:`\hat\beta` with covariance :math:`\hat V`, the statistic of
term :math:`j` is :math:`\hat\beta_j / \sqrt{\hat V_{jj}}`, referred to the standard
normal (``dof = inf``) or to :math:`t_{\mathrm{dof}}`.  The omnibus test of a set of
coefficients :math:`S` is :math:`Q_M = \hat\beta_S^\top \hat V_{SS}^{-1}\hat\beta_S`,
referred to :math:`\chi^2_m`, or :math:`F = Q_M/m` referred to
:math:`F_{m,\mathrm{dof}}`.
"""

import math
from typing import NamedTuple

import numpy as np
from scipy import special, stats


class CoefficientTable(NamedTuple):
    """Per-coefficient inference."""

    estimate: np.ndarray
    se: np.ndarray
    statistic: np.ndarray
    p_value: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray


def critical_value(confidence_level, dof):
    """Two-sided critical value of N(0, 1) (``dof`` infinite) or of t_dof.

    Raises
    ------
    ValueError
        If ``confidence_level`` is not strictly between 0 and 1.
    """
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(
            "confidence_level must be strictly between 0 and 1, "
            f"got {confidence_level}."
        )
    q = 0.5 + confidence_level / 2.0
    if np.ndim(dof) == 0:
        return float(special.ndtri(q) if np.isinf(dof) else stats.t.ppf(q, dof))
    dof = np.asarray(dof, dtype=float)
    finite = np.isfinite(dof)
    crit = np.full(dof.shape, special.ndtri(q))
    if finite.any():
        # few distinct degrees of freedom (e.g. one per output): one quantile each
        values, inverse = np.unique(dof[finite], return_inverse=True)
        crit[finite] = stats.t.ppf(q, values)[inverse]
    return crit


def two_sided_pvalue(statistic, dof):
    """Two-sided p-value of a z (``dof`` infinite) or t statistic."""
    z = -np.abs(statistic)
    if np.ndim(dof) == 0 and np.isinf(dof):
        return 2.0 * special.ndtr(z)
    if np.ndim(z) == 0 and np.ndim(dof) == 0:
        return 2.0 * special.stdtr(dof, z)
    dof = np.broadcast_to(np.asarray(dof, dtype=float), np.shape(z))
    finite = np.isfinite(dof)
    out = 2.0 * special.ndtr(z)
    if finite.any():  # t where the degrees of freedom are finite
        out[finite] = 2.0 * special.stdtr(dof[finite], z[finite])
    return out


def coefficient_table(beta, cov, dof, confidence_level):
    """Estimates, standard errors, statistics, p-values and confidence intervals.

    Parameters
    ----------
    beta : ndarray of shape (p,) or (m, p)
        Coefficients; a leading axis holds several models (e.g. outputs).
    cov : ndarray of shape (p, p) or (m, p, p)
    dof : float or ndarray broadcastable to the shape of ``beta``
        ``inf`` for normal (z) inference (e.g. shape (m, 1): one per model).
    confidence_level : float

    Returns
    -------
    CoefficientTable
        Fields of the shape of ``beta``; NaN where ``beta`` is NaN.
    """
    se = np.sqrt(np.clip(np.diagonal(cov, axis1=-2, axis2=-1), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = beta / se
    crit = critical_value(confidence_level, dof)
    return CoefficientTable(
        beta,
        se,
        statistic,
        two_sided_pvalue(statistic, dof),
        beta - crit * se,
        beta + crit * se,
    )


class WaldTest(NamedTuple):
    """Omnibus Wald test: chi-square (``df2`` inf) or F."""

    statistic: float
    df1: int
    df2: float
    p_value: float


def wald_test(beta, cov, index, dof):
    """Test that ``beta[index]`` are all zero.

    With ``dof`` infinite: :math:`Q_M \\sim \\chi^2_m`; otherwise
    :math:`F = Q_M/m \\sim F_{m, \\mathrm{dof}}` (metafor's ``QM`` under ``test="t"``
    or ``"knha"``).
    """
    index = np.asarray(index, dtype=int)
    m = index.size
    if m == 0:
        return WaldTest(float("nan"), 0, float(dof), float("nan"))
    b = beta[index]
    if m == 1:  # b (b / c): what solve computes for a 1 x 1 matrix, without LAPACK
        variance = float(cov[index[0], index[0]])
        if variance == 0.0:  # a zero covariance (exact fit): undefined
            nan = float("nan")
            return WaldTest(nan, m, float(dof), nan)
        qm = float(b[0] * (b[0] / variance))
    else:
        sub = cov[np.ix_(index, index)]
        try:
            qm = float(b @ np.linalg.solve(sub, b))
        except np.linalg.LinAlgError:  # a zero covariance (exact fit): undefined
            nan = float("nan")
            return WaldTest(nan, m, float(dof), nan)
    if np.isfinite(dof):
        f = qm / m
        return WaldTest(f, m, float(dof), float(special.fdtrc(m, dof, f)))
    return WaldTest(qm, m, float("inf"), float(special.chdtrc(m, qm)))


def information_criteria(loglik, n_params, k, p, reml):
    """AIC, BIC and AICc with metafor's conventions.

    Under REML the effective number of observations is ``k - p`` for BIC and AICc.
    ``loglik`` and ``k`` may be arrays (one model per entry, e.g. many outputs).
    Returns ``(aic, bic, aicc)``: floats, or arrays for array arguments.
    """
    if np.ndim(loglik) == 0 and np.ndim(k) == 0:  # one model: Python floats
        loglik = float(loglik)
        n = int(k - p if reml else k)
        aic = -2.0 * loglik + 2.0 * n_params
        bic = -2.0 * loglik + n_params * math.log(n) if n > 0 else math.nan
        n_eff = max(n, n_params + 2)
        aicc = -2.0 * loglik + 2.0 * n_params * n_eff / (n_eff - n_params - 1)
        return aic, bic, aicc
    n = np.asarray(k - p if reml else k)
    aic = -2.0 * loglik + 2.0 * n_params
    with np.errstate(divide="ignore", invalid="ignore"):
        bic = np.where(n > 0, -2.0 * loglik + n_params * np.log(n), np.nan)
    n_eff = np.maximum(n, n_params + 2)
    aicc = -2.0 * loglik + 2.0 * n_params * n_eff / (n_eff - n_params - 1)
    if np.ndim(aic) == 0 and n.ndim == 0:
        return float(aic), float(bic), float(aicc)
    return aic + 0.0 * n, bic, aicc


def boundary_pvalue(statistic, df):
    r"""p-value of a likelihood-ratio test of variance parameters on the boundary.

    Under :math:`H_0` a variance at zero makes the LR statistic a 50:50 mixture of
    :math:`\chi^2_{d-1}` and :math:`\chi^2_d` (Self & Liang 1987; Stram & Lee 1994;
    :math:`\chi^2_0` is a point mass at 0):
    :math:`p = \tfrac12 P(\chi^2_d > s) + \tfrac12 P(\chi^2_{d-1} > s)`.

    Parameters
    ----------
    statistic : float
        The LR statistic :math:`s \ge 0`.
    df : int
        Number of parameters tested, :math:`d \ge 1`.

    Returns
    -------
    float
    """
    upper = float(special.chdtrc(df, statistic))
    lower = (
        float(special.chdtrc(df - 1, statistic)) if df > 1 else float(statistic <= 0)
    )
    return 0.5 * upper + 0.5 * lower
