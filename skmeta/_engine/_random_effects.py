r"""The random-effects meta-regression fit, from the data to every statistic.

The model is :math:`y_i = x_i^\top\beta + u_i + e_i`, :math:`u_i \sim N(0, \tau^2)`,
:math:`e_i \sim N(0, v_i)` with known :math:`v_i` (metafor's ``rma.uni``;
Viechtbauer 2010). :func:`fit_random_effects` estimates :math:`\tau^2`
(:mod:`skmeta._engine._tau2`), the fixed effects by weighted least squares with
weights :math:`1/(v_i + \hat\tau^2)`, their covariance (model-based, Knapp–Hartung
or cluster-robust), Cochran's :math:`Q_E`, :math:`I^2`, :math:`H^2`, the
log-likelihood and the BLUPs of the :math:`u_i`.

The data are first divided by a power of two, :func:`standardise` (exact in
floating point), so that the variances the fit handles are of order one: the
weights, their squares and cubes then neither overflow nor underflow whatever
the units of ``y`` (effects of 1e100, variances of 1e300). Every result is
returned in the units of the data.
"""

import math
from typing import NamedTuple

import numpy as np

from skmeta._engine import _sandwich
from skmeta._engine import _univariate as uni
from skmeta._engine._gls import logdet_crossprod
from skmeta._engine._tau2 import estimate_tau2, tau2_method, tau2_standard_error

__all__ = ["RandomEffectsFit", "blups", "fit_random_effects", "standardise"]

#: Inference settings that scale the covariance by Knapp and Hartung's factor.
KNAPP_HARTUNG = ("knapp-hartung", "knapp-hartung-adhoc")

#: Data whose scale is within 2**+-64 (about 1e+-19) are left as they are: their
#: weights, squared and cubed in the likelihood's moment sums, stay far inside
#: the floating-point range (1e+-308); rescaling them would change nothing but
#: cost time.
SAFE_EXPONENT = 64

#: Weighted residuals below this many units in the last place of max|y| (per
#: study and squared) are rounding noise: the model then fits y exactly.
EXACT_RSS = 1e4


def standardise(y, v):
    """Divide ``y`` by a power of two ``unit``, and ``v`` by ``unit**2``.

    ``unit`` is the power of two nearest the geometric mean of the largest
    sampling standard deviation and the range of ``y`` (or the one of them that
    is positive; 1 if both are 0): the variances of the fit, the sampling
    variances and the squared deviations of ``y``, then lie around 1, as far
    below as above it. Division by a power of two is exact. ``unit`` is 1 when
    the data are within :data:`SAFE_EXPONENT` of 1 already.

    Returns
    -------
    unit : float
    y, v : ndarray
    """
    sizes = [math.sqrt(float(v.max())), float(y.max() - y.min())]
    logs = [math.log2(x) for x in sizes if 0.0 < x < math.inf]
    exponent = round(sum(logs) / len(logs)) if logs else 0
    if abs(exponent) <= SAFE_EXPONENT:
        return 1.0, y, v
    unit = math.ldexp(1.0, exponent)
    return unit, y / unit, v / (unit * unit)


class RandomEffectsFit(NamedTuple):
    """Everything a random-effects fit estimates, in the units of the data.

    Attributes
    ----------
    tau2 : float
        The estimate (0 when the fit is the degenerate limit ``limit``).
    tau2_se : float
        Its standard error (NaN when tau^2 is fixed or the model is ``"fe"``).
    n_iter : int
    converged : bool
    limit : {None, "diverges", "exact"}
        Set when studies with zero sampling variance end with zero total
        variance (tau^2 at its lower bound): ``"diverges"`` when the maximised
        criterion increases without bound as tau^2 -> 0
        (:func:`~skmeta._engine._univariate.likelihood_diverges`), ``"exact"``
        otherwise. Those studies are fitted exactly.
    beta : ndarray of shape (p,)
    cov : ndarray of shape (p, p)
        Covariance of ``beta``: model-based, scaled by Knapp and Hartung's factor,
        or cluster-robust (``robust``).
    kh_factor : float or None
        Knapp and Hartung's :math:`s^2` (after the ad hoc truncation at 1), or
        None.
    exact_fit : bool
        The weighted residuals are zero to rounding (the Knapp–Hartung factor
        is then set to 0).
    resid : ndarray of shape (k,)
        Residuals :math:`y - X\\hat\\beta`.
    q, q_pvalue, i2, h2, typical_var : float
        Cochran's :math:`Q_E` and its p-value, :math:`I^2` (percent), :math:`H^2`
        and the typical sampling variance (:func:`~skmeta._engine._univariate.
        heterogeneity`).
    loglik : float
        The restricted log-likelihood (with metafor's constant) for REML, the
        log-likelihood otherwise (``inf`` for a diverging limit).
    blups, blup_se : ndarray of shape (k,) or None
        BLUPs of the :math:`u_i` and their standard errors (metafor's ``ranef``);
        None when the fit was asked not to compute them (:func:`blups` does,
        from this result).
    robust : ClusterRobustResult or None
        The cluster-robust covariance when clusters are given.
    fit_tau2 : float
        The tau^2 of the weights :math:`1/(v_i + \tau^2)` of the fit: ``tau2``,
        or the lower bound of tau^2 at a degenerate ``limit``.
    """

    tau2: float
    tau2_se: float
    n_iter: int
    converged: bool
    limit: str | None
    beta: np.ndarray
    cov: np.ndarray
    kh_factor: float | None
    exact_fit: bool
    resid: np.ndarray
    q: float
    q_pvalue: float
    i2: float
    h2: float
    typical_var: float
    loglik: float
    blups: np.ndarray | None
    blup_se: np.ndarray | None
    robust: object
    fit_tau2: float = math.nan


class _Tau2Step(NamedTuple):
    tau2: float  # the value the fit uses (the lower bound for a limit)
    reported: float  # the value reported (0 for a limit)
    n_iter: int
    converged: bool
    limit: str | None


def _estimate(
    X, y, v, *, method, tau2, genq_weights, max_iter, tol, fe_fit, logdet_xtx,
    fe_trace,
):  # fmt: skip
    """tau^2 (estimated or fixed) and its degenerate-limit status."""
    if tau2 is not None:
        if np.any(v + tau2 <= 0):
            raise ValueError(
                "Zero total variance: sample_var has zeros and tau2 is fixed at 0, "
                "so the model is degenerate. Pass positive sample_var or tau2 > 0."
            )
        return _Tau2Step(float(tau2), float(tau2), 1, True, None)
    est = estimate_tau2(
        X, y, v, method, weights=genq_weights, max_iter=max_iter, tol=tol,
        fe_fit=fe_fit, logdet_xtx=logdet_xtx, fe_trace=fe_trace,
    )  # fmt: skip
    lower = uni.variance_floor(v, y)
    if lower == 0.0 or est.tau2 > lower:
        return _Tau2Step(est.tau2, est.tau2, est.n_iter, est.converged, None)
    # Zero sampling variances and tau2 at its lower bound: the limit tau2 -> 0,
    # where those studies are fitted exactly.
    diverges = uni.likelihood_diverges(X, y, v, reml=method == "reml")
    limit = "diverges" if diverges else "exact"
    return _Tau2Step(est.tau2, 0.0, est.n_iter, est.converged, limit)


class _FixedEffects(NamedTuple):
    beta: np.ndarray
    cov: np.ndarray  # model-based (sandwich for user weights), KH-scaled
    resid: np.ndarray  # y - X beta
    weights: np.ndarray  # the estimation weights (1/(v + tau2) or the user's)
    rss: float  # sum (y - X beta)^2 / (v + tau2)
    re_fit: object  # the fit with weights 1/(v + tau2)
    kh_factor: float | None
    exact_fit: bool


def _knapp_hartung(re_fit, y, inference):
    """Knapp and Hartung's s^2 from the fit with weights 1/(v + tau2), or None.

    Returns ``(s2, exact_fit)``; s^2 is 0 when the weighted residuals are zero to
    rounding (the model fits y exactly) and at least 1 for the ad hoc variant.
    """
    if inference not in KNAPP_HARTUNG:
        return None, False
    k, p = y.shape[0], re_fit.beta.shape[0]
    noise = EXACT_RSS * k * (np.finfo(float).eps * np.abs(y).max()) ** 2
    exact_fit = bool(re_fit.rss <= noise * re_fit.weights.max())
    s2 = 0.0 if exact_fit else re_fit.rss / (k - p)
    if inference == "knapp-hartung-adhoc":
        s2 = max(1.0, s2)
    return s2, exact_fit


def _fixed_effects(X, y, v, tau2, inference, sample_weight):
    r"""The fixed effects at ``tau2`` and their covariance.

    Without ``sample_weight``: weighted least squares with :math:`w_i = 1/(v_i +
    \tau^2)` and covariance :math:`(X^\top W X)^{-1}`. With user weights
    :math:`a_i` (metafor's ``rma(weights=)``): :math:`\hat\beta = (X^\top A
    X)^{-1}X^\top A y` and the sandwich :math:`(X^\top A X)^{-1} X^\top A V A X
    (X^\top A X)^{-1}`, :math:`V = \operatorname{diag}(v + \tau^2)`. Knapp and
    Hartung's factor always comes from the :math:`1/(v_i + \tau^2)` fit (as
    metafor).
    """
    re_fit = uni.stable_weighted_fit(X, y, 1.0 / (v + tau2), scalar_algebra=True)
    s2, exact_fit = _knapp_hartung(re_fit, y, inference)
    if sample_weight is None:
        beta, cov, resid, weights = (
            re_fit.beta,
            re_fit.cov,
            re_fit.resid,
            re_fit.weights,
        )
        rss = re_fit.rss
    else:
        fit = uni.stable_weighted_fit(X, y, sample_weight)
        half = X * (sample_weight * np.sqrt(v + tau2))[:, None]  # A V^{1/2} X
        cov = fit.cov @ (half.T @ half) @ fit.cov
        beta, resid, weights = fit.beta, fit.resid, sample_weight
        rss = float(np.sum(resid * resid / (v + tau2)))
    if s2 is not None:
        cov = cov * s2
    return _FixedEffects(beta, cov, resid, weights, rss, re_fit, s2, exact_fit)


def _loglik(v, step, fixed, method, logdet_xtx):
    """The criterion at the fitted beta (metafor's ``logLik``; inf at a diverging
    limit)."""
    if step.limit == "diverges":
        return math.inf
    fit = fixed.re_fit._replace(rss=fixed.rss)
    if method == "reml":
        return float(uni.loglik_reml(v, step.tau2, fit, logdet_xtx))
    return float(uni.loglik_ml(v, step.tau2, fit))


def _blups(X, v, tau2, resid, cov):
    r"""BLUPs :math:`\lambda_i e_i`, :math:`\lambda_i = \tau^2/(v_i+\tau^2)`,
    and their standard errors :math:`\sqrt{\lambda_i v_i + \lambda_i^2 x_i^\top C
    x_i}`.

    The variance of the prediction error :math:`u_i - \lambda_i(y_i -
    x_i^\top\hat\beta)` has this form for any linear unbiased
    :math:`\hat\beta` with covariance :math:`C` (the covariance of
    :math:`(1-\lambda_i)u_i - \lambda_i e_i` with :math:`\hat\beta` vanishes),
    so it holds for user weights too.
    """
    lam = tau2 / (v + tau2)
    quad = np.einsum("ij,ij->i", X @ cov, X)
    return lam * resid, np.sqrt(lam * v + lam**2 * quad)


def _cluster_robust(X, fixed, clusters, kind):
    codes, n_clusters = clusters
    return _sandwich.cluster_robust_diagonal(
        X, fixed.resid, fixed.weights, codes, n_clusters, kind=kind
    )


def _in_data_units(fit, unit, k, p, method):
    """Undo :func:`standardise`: variances times unit^2, effects times unit."""
    if unit == 1.0:
        return fit
    u2 = unit * unit
    robust = fit.robust
    if robust is not None:
        robust = robust._replace(
            cov=robust.cov * u2,
            bread=robust.bread * u2,
            r_factor=None if robust.r_factor is None else robust.r_factor / unit,
        )
    n_eff = k - p if method == "reml" else k
    return fit._replace(
        tau2=fit.tau2 * u2,
        tau2_se=fit.tau2_se * u2,
        beta=fit.beta * unit,
        cov=fit.cov * u2,
        resid=fit.resid * unit,
        typical_var=fit.typical_var * u2,
        loglik=fit.loglik - n_eff * np.log(unit),
        blups=None if fit.blups is None else fit.blups * unit,
        blup_se=None if fit.blup_se is None else fit.blup_se * unit,
        robust=robust,
        fit_tau2=fit.fit_tau2 * u2,
    )


def blups(X, y, v, fit):
    """BLUPs of the :math:`u_i` and their standard errors from a fit.

    The values :func:`fit_random_effects` returns with ``with_blups=True``,
    computed afterwards from ``fit`` (made with ``with_blups=False`` on the same
    ``X``, ``y`` and ``v``) in the same standardised units, so that they are
    the same numbers.

    Returns
    -------
    blups, blup_se : ndarray of shape (k,)
    """
    unit, _, v = standardise(y, v)
    u2 = unit * unit
    estimate, se = _blups(X, v, fit.fit_tau2 / u2, fit.resid / unit, fit.cov / u2)
    if unit == 1.0:
        return estimate, se
    return estimate * unit, se * unit


def fit_random_effects(
    X, y, v, *, method="reml", tau2=None, genq_weights=None, inference="z",
    max_iter=100, tol=1e-10, clusters=None, cluster_robust="cr1",
    sample_weight=None, with_blups=True,
):  # fmt: skip
    """Fit the random-effects meta-regression of ``y`` on ``X``.

    Parameters
    ----------
    X : ndarray of shape (k, p)
        Design matrix (with its intercept column), full rank, ``k > p``.
    y, v : ndarray of shape (k,)
        Effect sizes and their sampling variances (>= 0).
    method : str
        A tau^2 method of :data:`~skmeta._engine._tau2.TAU2_METHODS`.
    tau2 : float or None
        A fixed tau^2 instead of an estimate.
    genq_weights : ndarray of shape (k,) or None
        The fixed weights of ``method="genq"``.
    inference : {"z", "t", "knapp-hartung", "knapp-hartung-adhoc"}
    max_iter : int
    tol : float
        Settings of the iterative tau^2 estimators.
    clusters : (codes, n_clusters) or None
        Cluster codes 0..J-1 for a cluster-robust covariance.
    cluster_robust : {"cr0", "cr1", "cr2"}
    sample_weight : ndarray of shape (k,) or None
        User weights of the fixed effects (metafor's ``rma(weights=)``): tau^2,
        Q and I^2 are as without them; beta is their weighted least squares
        estimate with the sandwich covariance of :func:`_fixed_effects`, and the
        log-likelihood is evaluated at that beta. CR2 is not available with them.
    with_blups : bool, default=True
        Compute the BLUPs (else ``blups`` and ``blup_se`` are None: :func:`blups`
        computes them when needed, which saves their O(k) temporaries).

    Returns
    -------
    RandomEffectsFit
    """
    k, p = X.shape
    if sample_weight is not None and clusters is not None and cluster_robust == "cr2":
        raise ValueError(
            "cluster_robust='cr2' is not available with sample_weight (its bias "
            "correction assumes inverse-variance weights); use 'cr1' or 'cr0'."
        )
    unit, y, v = standardise(y, v)
    if tau2 is not None:
        tau2 = tau2 / (unit * unit)
    record = tau2_method(method)
    if record.needs_positive_var and tau2 is None and np.any(v <= 0):
        raise ValueError(
            f"method={method!r} weights studies by 1/sample_var, so sample_var must "
            "be > 0; use method='reml', 'ml', 'he' or 'sj' for zero variances."
        )
    # the fixed-effect fit and its tr(P) serve the DL start, Q and I^2; log|X'X|
    # the REML
    fe_fit, fe_trace = None, None
    if v.min() > 0:
        fe_fit = uni.stable_weighted_fit(X, y, 1.0 / v, scalar_algebra=True)
        fe_trace = uni.trace_pd(X, fe_fit)
    logdet_xtx = logdet_crossprod(X)
    step = _estimate(
        X, y, v, method=method, tau2=tau2, genq_weights=genq_weights,
        max_iter=max_iter, tol=tol, fe_fit=fe_fit, logdet_xtx=logdet_xtx,
        fe_trace=fe_trace,
    )  # fmt: skip
    fixed = _fixed_effects(X, y, v, step.tau2, inference, sample_weight)
    estimated = tau2 is None and record.standard_error is not None
    tau2_se = (
        tau2_standard_error(
            X,
            y,
            v,
            method,
            step.tau2,
            weights=genq_weights,
            fit=fixed.re_fit,
            fe_fit=fe_fit,
            fe_trace=fe_trace,
        )
        if estimated
        else float("nan")
    )
    het = uni.heterogeneity(
        X, y, v, step.reported, fixed_effect=step.reported == 0 and not estimated,
        fe_fit=fe_fit, fe_trace=fe_trace,
    )  # fmt: skip
    cov, robust = fixed.cov, None
    if clusters is not None:
        robust = _cluster_robust(X, fixed, clusters, cluster_robust)
        cov = robust.cov
    blups, blup_se = (
        _blups(X, v, step.tau2, fixed.resid, cov) if with_blups else (None, None)
    )
    result = RandomEffectsFit(
        tau2=step.reported,
        tau2_se=tau2_se,
        n_iter=step.n_iter,
        converged=step.converged,
        limit=step.limit,
        beta=fixed.beta,
        cov=cov,
        kh_factor=fixed.kh_factor,
        exact_fit=fixed.exact_fit,
        resid=fixed.resid,
        q=het.q,
        q_pvalue=het.q_pvalue,
        i2=het.i2,
        h2=het.h2,
        typical_var=het.typical_var,
        loglik=_loglik(v, step, fixed, method, logdet_xtx),
        blups=blups,
        blup_se=blup_se,
        robust=robust,
        fit_tau2=step.tau2,
    )
    return _in_data_units(result, unit, k, p, method)
