r"""Small-study effects: regression and rank tests, trim and fill, fail-safe N.

Pure functions of the effect sizes :math:`y_i` and their sampling variances
:math:`v_i` (all :math:`v_i > 0`).

* Regression tests (Egger et al. 1997; Sterne & Egger 2005): the model's design is
  augmented by a predictor :math:`z_i` (the standard error
  :math:`\sqrt{v_i}`, the variance, the sample size or a transform of it); the
  test of its coefficient is the test of funnel-plot asymmetry.  With
  ``model="lm"`` the fit is weighted least squares with weights :math:`1/v_i` and
  a multiplicative dispersion :math:`s^2 = \sum_i w_i e_i^2 / (k - p)`.
* Rank correlation (Begg & Mazumdar 1994): Kendall's :math:`\tau_b` between the
  standardised deviations :math:`y_i^* = (y_i - \bar y_w) / \sqrt{v_i - \bar v}`
  (:math:`\bar y_w` the inverse-variance mean, :math:`\bar v = 1/\sum_i 1/v_i`)
  and :math:`v_i`.
* Trim and fill (Duval & Tweedie 2000a, 2000b): estimators :math:`L_0` and
  :math:`R_0` of the number of suppressed studies, iterated to a fixed point.
* Fail-safe N: Rosenthal (1979), Orwin (1983), Rosenberg (2005).
"""

import math
from typing import NamedTuple

import numpy as np
from scipy import special, stats

from skmeta._engine._gls import weighted_fit
from skmeta._engine._tau2 import estimate_tau2

#: Predictors of the regression test and what they are a function of.
PREDICTORS = {
    "sei": "standard error",
    "vi": "sampling variance",
    "ni": "sample size",
    "ninv": "inverse of the sample size",
    "sqrtni": "square root of the sample size",
    "sqrtninv": "inverse of the square root of the sample size",
}
#: Predictors that need the studies' sample sizes.
SAMPLE_SIZE_PREDICTORS = frozenset({"ni", "ninv", "sqrtni", "sqrtninv"})
#: Predictors that vanish for an infinitely precise study: the intercept of the
#: augmented intercept-only model is then the limit (PET/PEESE-type) estimate.
LIMIT_PREDICTORS = frozenset({"sei", "vi", "ninv", "sqrtninv"})

#: Distance to an integer below which a fail-safe N is rounded rather than raised
#: to the next integer (rounding error of the closed forms; metafor's rule).
_INTEGER_TOLERANCE = math.sqrt(np.finfo(float).eps)


def regression_predictor(predictor, v, n=None):
    """The predictor column :math:`z_i` of the regression test.

    Parameters
    ----------
    predictor : {"sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv"}
    v : ndarray of shape (k,)
        Sampling variances.
    n : ndarray of shape (k,), default=None
        Sample sizes (required for the sample-size predictors).

    Returns
    -------
    ndarray of shape (k,)
    """
    if predictor == "sei":
        return np.sqrt(v)
    if predictor == "vi":
        return v.copy()
    return {
        "ni": n,
        "ninv": 1.0 / n,
        "sqrtni": np.sqrt(n),
        "sqrtninv": 1.0 / np.sqrt(n),
    }[predictor]


class DispersionFit(NamedTuple):
    """Weighted least squares with an estimated multiplicative dispersion."""

    beta: np.ndarray  # (p,)
    cov: np.ndarray  # (p, p), s^2 (X' W X)^{-1}
    dispersion: float  # s^2
    dof: int  # k - p


def dispersion_regression(design, y, v):
    r"""Weighted regression with weights :math:`1/v_i` and dispersion :math:`s^2`.

    :math:`\hat\beta = (X^\top W X)^{-1} X^\top W y`,
    :math:`s^2 = \sum_i w_i (y_i - x_i^\top\hat\beta)^2 / (k - p)` and
    :math:`\widehat{\operatorname{Var}}(\hat\beta) = s^2 (X^\top W X)^{-1}`: the
    model :math:`y_i \sim N(x_i^\top\beta, \phi v_i)` (Egger's regression test in
    its weighted-regression form; Sterne & Egger 2005).
    """
    k, p = design.shape
    fit = weighted_fit(design, y, 1.0 / v)
    dof = k - p
    s2 = fit.rss / dof
    return DispersionFit(fit.beta, fit.cov * s2, float(s2), dof)


class RankTest(NamedTuple):
    """Kendall's tau-b and its two-sided p-value."""

    tau: float
    p_value: float
    exact: bool


def standardized_deviates(y, v):
    r"""Begg & Mazumdar's :math:`y_i^* = (y_i - \bar y_w)/\sqrt{v_i - \bar v}`."""
    w = 1.0 / v
    total = w.sum()
    mean = float(w @ y) / total
    return (y - mean) / np.sqrt(v - 1.0 / total)


def kendall_test(x, y):
    r"""Kendall's :math:`\tau_b` with R's ``cor.test(exact=TRUE)`` p-value.

    Without ties in ``x`` and in ``y`` the p-value is exact: twice the smaller tail
    of the permutation distribution of the number of concordant pairs (capped at
    1).  With any tie, it is the normal approximation
    :math:`p = 2\Phi(-|S|/\sqrt{\operatorname{Var}S})` with the tie-corrected
    variance of :math:`S` (Kendall 1970, eq. 4.3), without continuity correction.
    """
    k = x.shape[0]
    exact = np.unique(x).size == k and np.unique(y).size == k
    result = stats.kendalltau(x, y, method="exact" if exact else "asymptotic")
    return RankTest(float(result.statistic), float(result.pvalue), bool(exact))


def _mean_estimate(y, v, method):
    """Intercept-only random-effects estimate with ``method``."""
    if y.shape[0] == 1:
        # whatever tau^2 is, the weighted mean of one study is its value
        return float(y[0])
    ones = np.ones((y.shape[0], 1))
    tau2 = estimate_tau2(ones, y, v, method).tau2
    return float(weighted_fit(ones, y, 1.0 / (v + tau2)).beta[0])


def funnel_slope(y, v, method):
    r"""Slope of :math:`y` on :math:`\sqrt{v}` in a meta-regression with ``method``.

    Trim and fill imputes studies on the left when it is :math:`\ge 0` (the
    small studies lean right), on the right otherwise.
    """
    design = np.column_stack([np.ones(y.shape[0]), np.sqrt(v)])
    tau2 = estimate_tau2(design, y, v, method).tau2
    return float(weighted_fit(design, y, 1.0 / (v + tau2)).beta[1])


class TrimFill(NamedTuple):
    """Result of the trim-and-fill iterations (on the original scale)."""

    k0: int
    k0_se: float
    k0_raw: float  # the estimator's value before rounding, last pass
    center: float  # the trimmed estimate the filled studies mirror
    filled_y: np.ndarray
    filled_v: np.ndarray
    n_iter: int


def _rank_sum_variance(k, k0):
    """Variance of the positive rank sum with ``k0`` suppressed studies."""
    return (
        k * (k + 1) * (2 * k + 1)
        + 10 * k0**3
        + 27 * k0**2
        + 17 * k0
        - 18 * k * k0**2
        - 18 * k * k0
        + 6 * k**2 * k0
    ) / 24.0


def _k0_estimate(signed_ranks, k, estimator):
    r"""One pass of the L0, R0 or Q0 estimator: ``(k0, se)``, before rounding.

    The standard errors of L0 and Q0 are the delta-method ones from the
    variance of the positive rank sum :math:`S_r`: :math:`dL_0/dS_r = 4/(2k-1)`
    and :math:`dQ_0/dS_r = 2/\sqrt{2k^2 - 4S_r + 1/4}`.
    """
    if estimator in ("L0", "Q0"):
        s_rank = float(signed_ranks[signed_ranks > 0].sum())
        if estimator == "L0":
            k0 = (4.0 * s_rank - k * (k + 1)) / (2 * k - 1)
            slope = 4.0 / (2 * k - 1)
        else:
            discriminant = 2.0 * k**2 - 4.0 * s_rank + 0.25
            if discriminant <= 0.0:
                raise ValueError(
                    "The Q0 estimator is undefined for these data: the positive "
                    f"ranks sum to {s_rank:g}, beyond the largest value "
                    f"(2k^2 + 1/4)/4 = {(2.0 * k**2 + 0.25) / 4.0:g} for which "
                    "k - 1/2 - sqrt(2k^2 - 4 S_r + 1/4) is real; use "
                    "estimator='L0' or 'R0'."
                )
            root = math.sqrt(discriminant)
            k0 = k - 0.5 - root
            slope = 2.0 / root
        se = slope * math.sqrt(max(_rank_sum_variance(k, k0), 0.0))
        return k0, se
    negative = -signed_ranks[signed_ranks < 0]
    # gamma* = length of the rightmost run of positive ranks = k - largest
    # negative rank; R0 = gamma* - 1
    k0 = float(k - (negative.max() if negative.size else 0.0) - 1)
    return k0, math.sqrt(2.0 * max(0.0, k0) + 2.0)


def trim_and_fill(y, v, *, side, method, estimator, max_iter):
    r"""Duval & Tweedie's trim-and-fill iterations.

    On the working scale (``y`` negated when the missing studies are on the
    right), with the values sorted: fit the intercept-only model to the
    :math:`k - k_0` smallest values; rank :math:`|y_i - \hat\theta|` over all
    studies (ties by order) and sign the ranks; update :math:`k_0` (rounded half
    to even, at least 0) until it repeats.  :math:`L_0 = (4 S_r - k(k+1))/(2k-1)`
    with :math:`S_r` the sum of the positive ranks, and
    :math:`R_0 = \gamma^* - 1` with :math:`\gamma^*` the length of the rightmost
    run of positive ranks; :math:`Q_0 = k - 1/2 - \sqrt{2k^2 - 4S_r + 1/4}`.
    The filled studies mirror the :math:`k_0` most
    extreme ones about the last trimmed estimate.

    Raises
    ------
    RuntimeError
        If :math:`k_0` has not repeated after ``max_iter`` passes.
    """
    k = y.shape[0]
    sign = -1.0 if side == "right" else 1.0
    order = np.argsort(sign * y, kind="stable")
    ys, vs = sign * y[order], v[order]
    k0 = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - passes, returned
        center = _mean_estimate(ys[: k - k0], vs[: k - k0], method)
        dev = ys - center
        ranks = stats.rankdata(np.abs(dev), method="ordinal")
        k0_raw, se = _k0_estimate(np.sign(dev) * ranks, k, estimator)
        new_k0 = max(0, int(np.round(k0_raw)))
        if new_k0 == k0:
            break
        k0 = new_k0
    else:
        raise RuntimeError(
            f"trim and fill did not converge in max_iter={max_iter} passes "
            f"(k0 still changing, last {k0})."
        )
    filled_y = sign * (2.0 * center - ys[k - k0 :])
    return TrimFill(
        k0, max(0.0, se), k0_raw, sign * center, filled_y, vs[k - k0 :].copy(), n_iter
    )


# ------------------------------------------------------------------ fail-safe N
class FailSafe(NamedTuple):
    """A fail-safe number with what it was computed from."""

    n: float  # rounded (an integer value, or inf)
    raw: float
    p_value: float | None
    mean_effect: float | None
    target: float | None


def _round_fail_safe(raw):
    """Round within :data:`_INTEGER_TOLERANCE` of an integer, else round up."""
    if not math.isfinite(raw):
        return raw
    nearest = round(raw)
    return float(nearest if abs(raw - nearest) < _INTEGER_TOLERANCE else math.ceil(raw))


def fail_safe_rosenthal(y, v, alpha):
    r"""Rosenthal's (1979) fail-safe N (Stouffer's combined test, one-sided).

    :math:`Z = |\sum_i y_i/\sqrt{v_i}|/\sqrt{k}`, :math:`p = 1 - \Phi(Z)` and
    :math:`N = \max\{0, k (Z/z_{1-\alpha})^2 - k\}`: the number of added null
    studies that brings the one-sided p-value to :math:`\alpha`.
    """
    k = y.shape[0]
    z = abs(float(np.sum(y / np.sqrt(v)))) / math.sqrt(k)
    raw = max(0.0, k * (z / special.ndtri(1.0 - alpha)) ** 2 - k)
    return FailSafe(_round_fail_safe(raw), raw, float(special.ndtr(-z)), None, None)


def fail_safe_orwin(y, v, target, weighted):
    r"""Orwin's (1983) fail-safe N.

    With the mean effect :math:`\bar y` (unweighted, or inverse-variance weighted)
    and a target :math:`t` (default :math:`\bar y/2`, its sign set to that of
    :math:`\bar y`): :math:`N = \max\{0, k(\bar y - t)/t\}`, the number of added
    studies of effect 0 that brings the mean down to :math:`t` (infinite for
    :math:`t = 0`).
    """
    k = y.shape[0]
    mean = float(np.average(y, weights=1.0 / v)) if weighted else float(y.mean())
    target = mean / 2.0 if target is None else math.copysign(abs(target), mean)
    raw = math.inf if target == 0 else max(0.0, k * (mean - target) / target)
    return FailSafe(_round_fail_safe(raw), raw, None, mean, target)


def fail_safe_rosenberg(y, v, alpha):
    r"""Rosenberg's (2005) fail-safe N (equal-effects model, two-sided).

    With :math:`w_i = 1/v_i`, :math:`\bar y_w = \sum w_i y_i / \sum w_i`,
    :math:`z = \bar y_w \sqrt{\sum w_i}`, :math:`p = 2\Phi(-|z|)` and
    :math:`N = \max\{0, k[(\sum w_i y_i / z_{1-\alpha/2})^2 - \sum w_i]/\sum w_i\}`:
    the number of added studies of effect 0 and average weight that makes the
    equal-effects estimate non-significant at level :math:`\alpha`.
    """
    k = y.shape[0]
    w = 1.0 / v
    total = float(w.sum())
    weighted_sum = float(w @ y)
    mean = weighted_sum / total
    z = mean * math.sqrt(total)
    crit = special.ndtri(1.0 - alpha / 2.0)
    raw = max(0.0, k * ((weighted_sum / crit) ** 2 - total) / total)
    return FailSafe(
        _round_fail_safe(raw), raw, float(2.0 * special.ndtr(-abs(z))), mean, None
    )
