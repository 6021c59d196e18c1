r"""Mantel–Haenszel and Peto pooling of 2x2 tables under an equal-effects model.

Table :math:`i` has :math:`a_i, b_i` events and non-events in group 1 and
:math:`c_i, d_i` in group 2, with :math:`n_{1i} = a_i + b_i`,
:math:`n_{2i} = c_i + d_i`, :math:`N_i = n_{1i} + n_{2i}`, :math:`m_{1i} = a_i + c_i`
and :math:`m_{0i} = b_i + d_i`.  All functions take float arrays of shape ``(k,)``
(counts need not be integers) and return ``nan`` where a quantity is undefined;
the caller decides how to report that.

- Mantel–Haenszel odds ratio (Mantel & Haenszel 1959) with the variance of
  Robins, Breslow & Greenland (1986); risk ratio (Greenland & Robins 1985); risk
  difference (Greenland & Robins 1985) with the variance of Sato, Greenland &
  Robins (1989).
- Peto's one-step odds ratio (Yusuf, Peto, Lewis, Collins & Sleight 1985).
- Cochran–Mantel–Haenszel test (Cochran 1954; Mantel & Haenszel 1959), the
  Breslow–Day test (Breslow & Day 1980) and Tarone's (1985) correction of it,
  Cochran's Q around a pooled estimate.
"""

from typing import NamedTuple

import numpy as np
from scipy import special

#: Continuity correction of the Cochran–Mantel–Haenszel statistic.
CMH_CONTINUITY = 0.5


class PooledEstimate(NamedTuple):
    """A pooled estimate on the analysis scale and its weights.

    ``estimate`` is a log odds ratio, log risk ratio or risk difference;
    ``weights`` are the (unnormalised) weights the pooled estimate gives the tables.
    """

    estimate: float
    variance: float
    weights: np.ndarray


class ChiSquareTest(NamedTuple):
    """A chi-square statistic, its degrees of freedom and upper-tail p-value."""

    statistic: float
    df: int
    p_value: float


class BreslowDay(NamedTuple):
    """Breslow–Day test and Tarone's corrected version, on ``n_tables`` tables."""

    breslow_day: ChiSquareTest
    tarone: ChiSquareTest
    n_tables: int


class Heterogeneity(NamedTuple):
    """Cochran's Q around a given pooled estimate, with I^2 (%) and H^2."""

    q: float
    df: int
    q_pvalue: float
    i2: float
    h2: float


def _margins(a, b, c, d):
    n1, n2 = a + b, c + d
    return n1, n2, n1 + n2, a + c, b + d


def _ratio(numerator, denominator):
    """``numerator / denominator``; ``nan`` unless both are positive."""
    if numerator > 0 and denominator > 0:
        return numerator / denominator
    return float("nan")


def mantel_haenszel_odds_ratio(a, b, c, d):
    r"""Mantel–Haenszel log odds ratio with the Robins–Breslow–Greenland variance.

    With :math:`R_i = a_i d_i / N_i`, :math:`S_i = b_i c_i / N_i`,
    :math:`P_i = (a_i + d_i)/N_i`, :math:`Q_i = (b_i + c_i)/N_i`, :math:`R = \sum R_i`
    and :math:`S = \sum S_i`:

    .. math::

        \log\widehat{OR}_{MH} = \log(R/S),\qquad
        \widehat{\operatorname{Var}} = \frac{\sum P_i R_i}{2R^2}
        + \frac{\sum (P_i S_i + Q_i R_i)}{2RS} + \frac{\sum Q_i S_i}{2S^2}.

    The weights are :math:`S_i` (the OR is :math:`\sum S_i OR_i / \sum S_i`).
    ``nan`` unless :math:`R > 0` and :math:`S > 0`.
    """
    n = a + b + c + d
    r_i, s_i = a * d / n, b * c / n
    p_i, q_i = (a + d) / n, (b + c) / n
    r, s = r_i.sum(), s_i.sum()
    ratio = _ratio(r, s)
    if np.isnan(ratio):
        return PooledEstimate(ratio, ratio, s_i)
    variance = (
        (p_i * r_i).sum() / (2 * r**2)
        + (p_i * s_i + q_i * r_i).sum() / (2 * r * s)
        + (q_i * s_i).sum() / (2 * s**2)
    )
    return PooledEstimate(float(np.log(ratio)), float(variance), s_i)


def mantel_haenszel_risk_ratio(a, b, c, d):
    r"""Mantel–Haenszel log risk ratio with the Greenland–Robins variance.

    With :math:`R = \sum a_i n_{2i}/N_i` and :math:`S = \sum c_i n_{1i}/N_i`:

    .. math::

        \log\widehat{RR}_{MH} = \log(R/S),\qquad
        \widehat{\operatorname{Var}} = \frac{\sum_i \left(n_{1i} n_{2i} m_{1i}/N_i^2
        - a_i c_i / N_i\right)}{R S}.

    The weights are :math:`c_i n_{1i}/N_i`.  ``nan`` unless :math:`R, S > 0`.
    """
    n1, n2, n, m1, _ = _margins(a, b, c, d)
    r_i, s_i = a * n2 / n, c * n1 / n
    r, s = r_i.sum(), s_i.sum()
    ratio = _ratio(r, s)
    if np.isnan(ratio):
        return PooledEstimate(ratio, ratio, s_i)
    variance = (n1 * n2 * m1 / n**2 - a * c / n).sum() / (r * s)
    return PooledEstimate(float(np.log(ratio)), float(variance), s_i)


def mantel_haenszel_risk_difference(a, b, c, d):
    r"""Mantel–Haenszel risk difference with the Sato–Greenland–Robins variance.

    With weights :math:`w_i = n_{1i} n_{2i} / N_i` and :math:`W = \sum w_i`:

    .. math::

        \widehat{RD}_{MH} = \frac{\sum_i (a_i n_{2i} - c_i n_{1i})/N_i}{W},

        \widehat{\operatorname{Var}} = \frac{\widehat{RD}_{MH} \sum_i \left(
        \frac{c_i n_{1i}^2 - a_i n_{2i}^2}{N_i^2}
        + \frac{n_{1i} n_{2i} (n_{2i} - n_{1i})}{2 N_i^2}\right)
        + \sum_i \frac{a_i (n_{2i} - c_i) + c_i (n_{1i} - a_i)}{2 N_i}}{W^2}.
    """
    n1, n2, n, _, _ = _margins(a, b, c, d)
    w = n1 * n2 / n
    total = w.sum()
    rd = ((a * n2 - c * n1) / n).sum() / total
    p_term = ((c * n1**2 - a * n2**2) / n**2 + n1 * n2 * (n2 - n1) / (2 * n**2)).sum()
    q_term = ((a * (n2 - c) + c * (n1 - a)) / (2 * n)).sum()
    return PooledEstimate(float(rd), float((rd * p_term + q_term) / total**2), w)


def peto_terms(a, b, c, d):
    r"""Observed minus expected events in group 1 and its hypergeometric variance.

    .. math::

        O_i - E_i = a_i - \frac{n_{1i} m_{1i}}{N_i},\qquad
        V_i = \frac{n_{1i} n_{2i} m_{1i} m_{0i}}{N_i^2 (N_i - 1)}.

    Peto's log odds ratio of table :math:`i` is :math:`(O_i - E_i)/V_i`, with
    variance :math:`1/V_i`.  Returns ``(o_minus_e, v)``.
    """
    n1, n2, n, m1, m0 = _margins(a, b, c, d)
    return a - n1 * m1 / n, n1 * n2 * m1 * m0 / (n**2 * (n - 1))


def peto_odds_ratio(a, b, c, d):
    r"""Peto's one-step pooled log odds ratio.

    .. math::

        \log\widehat{OR}_{Peto} = \frac{\sum (O_i - E_i)}{\sum V_i},\qquad
        \widehat{\operatorname{Var}} = \frac{1}{\sum V_i},

    with weights :math:`V_i` (see :func:`peto_terms`); ``nan`` if :math:`\sum V_i = 0`.
    """
    o_minus_e, v = peto_terms(a, b, c, d)
    total = v.sum()
    if not total > 0:
        nan = float("nan")
        return PooledEstimate(nan, nan, v)
    return PooledEstimate(float(o_minus_e.sum() / total), float(1.0 / total), v)


def peto_q(a, b, c, d):
    r"""Peto's heterogeneity statistic.

    .. math::

        Q = \sum_{V_i > 0} \frac{(O_i - E_i)^2}{V_i}
        - \frac{\left(\sum (O_i - E_i)\right)^2}{\sum V_i}.
    """
    o_minus_e, v = peto_terms(a, b, c, d)
    used = v > 0
    return float(
        (o_minus_e[used] ** 2 / v[used]).sum() - o_minus_e.sum() ** 2 / v.sum()
    )


def cochran_mantel_haenszel(a, b, c, d, *, correct=True):
    r"""Cochran–Mantel–Haenszel test of a common odds ratio of 1 (1 df).

    .. math::

        \chi^2_{CMH} = \frac{\left(|\Delta| - \delta\right)^2}
        {\sum_i n_{1i} n_{2i} m_{1i} m_{0i} / (N_i^2 (N_i - 1))},\qquad
        \Delta = \sum_i \left(a_i - \frac{n_{1i} m_{1i}}{N_i}\right),

    with the continuity correction :math:`\delta = 1/2` when ``correct`` and
    :math:`|\Delta| \ge 1/2`, and :math:`\delta = 0` otherwise (the convention of
    R's ``mantelhaen.test``: a correction never increases the statistic).
    ``nan`` if the denominator is 0.
    """
    o_minus_e, v = peto_terms(a, b, c, d)
    delta = abs(o_minus_e.sum())
    shift = CMH_CONTINUITY if correct and delta >= CMH_CONTINUITY else 0.0
    total = v.sum()
    statistic = (delta - shift) ** 2 / total if total > 0 else float("nan")
    return ChiSquareTest(float(statistic), 1, _chi2_sf(statistic, 1))


def breslow_day(a, b, c, d, log_odds_ratio):
    r"""Breslow–Day test of homogeneous odds ratios and Tarone's correction.

    Given the pooled odds ratio :math:`\psi`, the expected count
    :math:`\hat E_i` of cell :math:`a_i` under the table's margins solves
    :math:`\hat E (n_{2i} - m_{1i} + \hat E) = \psi (n_{1i} - \hat E)(m_{1i} - \hat E)`
    in :math:`[\max(0, m_{1i} - n_{2i}), \min(n_{1i}, m_{1i})]`:

    .. math::

        \hat E_i = \frac{2 \psi n_{1i} m_{1i}}{A_i + \sqrt{A_i^2
        - 4 \psi (\psi - 1) n_{1i} m_{1i}}},\qquad
        A_i = \psi (n_{1i} + m_{1i}) + n_{2i} - m_{1i}

    (the root of the quadratic written without cancellation; it is
    :math:`n_{1i} m_{1i}/N_i` at :math:`\psi = 1`), with variance
    :math:`\hat V_i = (1/\hat E_i + 1/(n_{1i} - \hat E_i) + 1/(m_{1i} - \hat E_i)
    + 1/(n_{2i} - m_{1i} + \hat E_i))^{-1}`.  Over the :math:`K` tables with
    :math:`\hat E_i > 0`, :math:`m_{1i} > 0` and :math:`m_{0i} > 0`:

    .. math::

        X^2_{BD} = \sum \frac{(a_i - \hat E_i)^2}{\hat V_i},\qquad
        X^2_{T} = X^2_{BD} - \frac{\left(\sum (a_i - \hat E_i)\right)^2}{\sum \hat V_i},

    both on :math:`K - 1` df (p-values ``nan`` if :math:`K < 2`; everything
    ``nan`` if :math:`\psi` is undefined).
    """
    n1, n2, _, m1, m0 = _margins(a, b, c, d)
    psi = np.exp(log_odds_ratio)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = psi * (n1 + m1) + n2 - m1
        expected = (
            2 * psi * n1 * m1 / (s + np.sqrt(s**2 - 4 * psi * (psi - 1) * n1 * m1))
        )
        used = (expected > 0) & (m1 > 0) & (m0 > 0)
        e = expected[used]
        var = 1 / (
            1 / e
            + 1 / (n1[used] - e)
            + 1 / (m1[used] - e)
            + 1 / (n2[used] - m1[used] + e)
        )
    resid = a[used] - e
    n_tables = int(used.sum())
    df = n_tables - 1
    if n_tables == 0:
        nan = float("nan")
        test = ChiSquareTest(nan, df, nan)
        return BreslowDay(test, test, n_tables)
    bd = float((resid**2 / var).sum())
    # >= 0 by the Cauchy-Schwarz inequality; rounding can leave it a hair below
    tarone = max(bd - float(resid.sum() ** 2 / var.sum()), 0.0)
    return BreslowDay(
        ChiSquareTest(bd, df, _chi2_sf(bd, df)),
        ChiSquareTest(tarone, df, _chi2_sf(tarone, df)),
        n_tables,
    )


def heterogeneity_around(yi, vi, estimate):
    r"""Cochran's Q of the effect sizes around a given pooled estimate.

    .. math::

        Q = \sum_i \frac{(y_i - \hat\theta)^2}{v_i}

    on :math:`k - 1` degrees of freedom; see :func:`heterogeneity_from_q`.
    """
    q = float(((yi - estimate) ** 2 / vi).sum())
    return heterogeneity_from_q(q, yi.size - 1)


def heterogeneity_from_q(q, df):
    r"""Return the p-value of :math:`Q` on ``df`` degrees of freedom, I^2 and H^2.

    .. math::

        I^2 = 100 \max\left(0, \frac{Q - \text{df}}{Q}\right),\qquad
        H^2 = \frac{Q}{\text{df}}.

    With ``df = 0`` (one effect size) nothing can be heterogeneous: :math:`Q = 0`,
    p-value 1, :math:`I^2 = 0` and :math:`H^2 = 1`.  Everything is ``nan`` if
    ``q`` is not finite or ``df < 0``.
    """
    if not np.isfinite(q) or df < 0:
        nan = float("nan")
        return Heterogeneity(nan, df, nan, nan, nan)
    if df == 0:
        return Heterogeneity(0.0, 0, 1.0, 0.0, 1.0)
    i2 = max(0.0, 100.0 * (q - df) / q) if q > 0 else 0.0
    return Heterogeneity(q, df, _chi2_sf(q, df), i2, q / df)


def _chi2_sf(statistic, df):
    """Upper tail of chi^2_df; ``nan`` without degrees of freedom or a statistic."""
    if df < 1 or not np.isfinite(statistic):
        return float("nan")
    return float(special.chdtrc(df, statistic))
