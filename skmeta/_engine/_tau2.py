r"""Estimators of the between-study variance :math:`\tau^2`: one record per method.

:data:`TAU2_METHODS` maps each method name (metafor's ``method``, lower case) to a
:class:`Tau2Method`: its estimator, the standard error of its estimate, a label
for printouts and two flags. :func:`estimate_tau2` and
:func:`tau2_standard_error` dispatch through it, so that a new method is one new
record, and an unknown name is an error rather than a silent NaN.

The estimators follow the definitions documented by metafor (Viechtbauer 2010;
Veroniki et al. 2016), implemented from the published formulas: DerSimonian &
Laird (1986), Hedges (1983), Hunter & Schmidt (2004), Brannick et al. (2019),
Sidik & Jonkman (2005), Paule & Mandel (1982), Viechtbauer (2021), Morris (1983),
DerSimonian & Kacker (2007), maximum likelihood and restricted maximum likelihood
(Raudenbush 2009). The standard errors are those metafor reports (``se.tau2``;
Viechtbauer 2005, 2007).
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy import stats

from skmeta._engine._gls import logdet_crossprod, weighted_fit
from skmeta._engine._univariate import (
    Tau2Fit,
    maximize_likelihood,
    stable_weighted_fit,
    tau2_genq,
    tau2_hedges,
    tau2_paule_mandel,
    tau2_sidik_jonkman,
    trace_pd,
    trace_pdpd,
    variance_floor,
)

__all__ = [
    "ALL_METHODS",
    "TAU2_METHODS",
    "Tau2Method",
    "Tau2Problem",
    "estimate_tau2",
    "tau2_method",
    "tau2_standard_error",
]


class Tau2Problem(NamedTuple):
    """The data and settings a tau^2 estimator sees.

    Attributes
    ----------
    X : ndarray of shape (k, p)
        Design matrix (with its intercept column).
    y, v : ndarray of shape (k,)
        Effect sizes and sampling variances.
    weights : ndarray of shape (k,) or None
        The fixed weights of the generalized Q estimator.
    max_iter : int
    tol : float
        Iteration limit and relative tolerance of the iterative estimators.
    fe_fit : WeightedFit or None
        ``weighted_fit(X, y, 1 / v)`` when the caller has it already.
    logdet_xtx : float or None
        :math:`\\log|X^\\top X|` when the caller has it already.
    fe_trace : float or None
        :math:`\\operatorname{tr}(P_{FE})` of ``fe_fit`` when the caller has it
        already.
    """

    X: np.ndarray
    y: np.ndarray
    v: np.ndarray
    weights: np.ndarray | None = None
    max_iter: int = 100
    tol: float = 1e-10
    fe_fit: object = None
    logdet_xtx: float | None = None
    fe_trace: float | None = None

    @property
    def lower(self):
        """The lower bound of tau^2 (:func:`variance_floor`)."""
        return variance_floor(self.v, self.y)

    def fixed_effect_fit(self):
        """The fit with weights ``1 / v`` (``fe_fit`` if given)."""
        if self.fe_fit is not None:
            return self.fe_fit
        return stable_weighted_fit(self.X, self.y, 1.0 / self.v)

    def fixed_effect_trace(self, fit):
        """:math:`\\operatorname{tr}(P_{FE})` of ``fit`` (``fixed_effect_fit()``):
        ``fe_trace`` if given with ``fe_fit``."""
        if self.fe_trace is not None and fit is self.fe_fit:
            return self.fe_trace
        return trace_pd(self.X, fit)


class Tau2Method(NamedTuple):
    """One tau^2 estimator.

    Attributes
    ----------
    name : str
        The value of the ``method`` hyperparameter.
    label : str
        Its name in printouts (e.g. ``"DerSimonian-Laird"``).
    estimate : callable
        ``estimate(problem) -> Tau2Fit`` (before truncation at the lower bound).
    standard_error : callable or None
        ``standard_error(problem, tau2, fit) -> float`` with ``fit`` the weighted
        fit at ``tau2``; None when nothing is estimated (``"fe"``).
    needs_positive_var : bool
        The estimator weights studies by :math:`1/v_i`, so every :math:`v_i > 0`.
    likelihood : bool
        The estimate maximises a (restricted) likelihood.
    """

    name: str
    label: str
    estimate: Callable
    standard_error: Callable | None
    needs_positive_var: bool = False
    likelihood: bool = False


# ------------------------------------------------------------------------- estimators
def _closed_form(tau2):
    return Tau2Fit(float(tau2), 1, True)


def _estimate_likelihood(problem, *, reml):
    X, y, v = problem.X, problem.y, problem.v
    lower = problem.lower
    # DL is usually closer to the (RE)ML optimum than metafor's HE start; when
    # both are 0, start on the bound (converged at once if the score is <= 0).
    start = _estimate_dl(problem).tau2 if lower == 0.0 else 0.0
    if start <= lower:
        start = max(tau2_hedges(X, y, v), lower)
    logdet_xtx = 0.0
    if reml:
        logdet_xtx = (
            logdet_crossprod(X) if problem.logdet_xtx is None else problem.logdet_xtx
        )
    return maximize_likelihood(
        X,
        y,
        v,
        reml=reml,
        start=start,
        lower=lower,
        max_iter=problem.max_iter,
        tol=problem.tol,
        logdet_xtx=logdet_xtx,
        fe_fit=problem.fe_fit,
    )


def _estimate_dl(problem):
    fit = problem.fixed_effect_fit()
    w = fit.weights  # 1 / v
    trace = problem.fixed_effect_trace(fit)
    return _closed_form(tau2_genq(problem.X, problem.y, problem.v, w, fit, trace))


def hunter_schmidt_estimate(q, k, p, sum_inverse_var, *, corrected):
    r""":math:`\max\{0, (c\,Q_E - k)/\sum_i 1/v_i\}`, :math:`c = k/(k-p)` if
    ``corrected`` (Brannick et al. 2019) else 1 (Hunter & Schmidt 2004);
    array-safe."""
    factor = k / (k - p) if corrected else 1.0
    return np.maximum(0.0, (factor * q - k) / sum_inverse_var)


def _estimate_hunter_schmidt(problem, *, corrected):
    k, p = problem.X.shape
    q = problem.fixed_effect_fit().rss
    tau2 = hunter_schmidt_estimate(
        q, k, p, float(np.sum(1.0 / problem.v)), corrected=corrected
    )
    return _closed_form(tau2)


def _estimate_paule_mandel(problem, *, median):
    k, p = problem.X.shape
    target = stats.chi2.median(k - p) if median else k - p
    return _closed_form(
        tau2_paule_mandel(problem.X, problem.y, problem.v, target, problem.lower)
    )


# ------------------------------------------------------------------- standard errors
# The formulas (array-safe: one model per entry) and their single-fit callers,
# which compute the traces of the projection P of their weighted fit.
def quadratic_se(c0, c1, c2, tau2, denominator):
    r""":math:`\sqrt{c_0 + c_1\tau^2 + c_2\tau^4} / d`, without forming the
    (possibly overflowing) powers: each term is divided by :math:`d^2` first.

    The variance of a moment estimator :math:`(y^\top P_A y - c)/d`:
    :math:`c_0 = 2\operatorname{tr}(P_AVP_AV)`, :math:`c_1 =
    4\operatorname{tr}(P_AVP_A)`, :math:`c_2 = 2\operatorname{tr}(P_A^2)`
    (Viechtbauer 2007)."""
    t = np.maximum(tau2, 0.0) / denominator
    return np.sqrt(c0 / denominator / denominator + (c1 / denominator) * t + c2 * t * t)


def information_se(information):
    r""":math:`\sqrt{2/I}` for :math:`I` = :math:`\operatorname{tr}(P^2)` (REML) or
    :math:`\sum_i w_i^2` (ML): the inverse of the expected information of
    :math:`\tau^2`; NaN where :math:`I` is not positive (not computable)."""
    if isinstance(information, float):  # one model: no array machinery
        return math.sqrt(2.0 / information) if information > 0 else math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(information > 0, np.sqrt(2.0 / information), np.nan)


def paule_mandel_se(k, p, sum_w):
    r""":math:`\sqrt{2k^2/(k-p)} / \sum_i w_i` (metafor's PM and EB); array-safe."""
    return np.sqrt(2.0 * k * k / (k - p)) / sum_w


def inverse_variance_se(k, p, trp, trpp, sum_inverse_var, tau2, denominator):
    r"""DL, HS and HSk: the moments of :math:`Q_E` (weights :math:`1/v`, so that
    :math:`\operatorname{tr}(PVPV) = \operatorname{tr}(PV) = k-p`), divided by
    the estimator's denominator: :math:`\operatorname{tr}P` (``"trace"``),
    :math:`\sum 1/v` (``"sum"``) or that times :math:`k/(k-p)`
    (``"corrected"``); array-safe."""
    if denominator == "trace":
        return quadratic_se(2 * (k - p), 4 * trp, 2 * trpp, tau2, trp)
    se = quadratic_se(2 * (k - p), 4 * trp, 2 * trpp, tau2, sum_inverse_var)
    return se * k / (k - p) if denominator == "corrected" else se


def _moment_se(problem, tau2, fit_a, denominator):
    """:func:`quadratic_se` for the projection of ``fit_a``."""
    X, v = problem.X, problem.v
    pvpv = trace_pdpd(X, fit_a, v, v)
    pvp = trace_pdpd(X, fit_a, v, None)
    pp = trace_pdpd(X, fit_a, None, None)
    return float(quadratic_se(2 * pvpv, 4 * pvp, 2 * pp, tau2, denominator))


def _se_reml(problem, tau2, fit):
    return float(information_se(trace_pdpd(problem.X, fit, None, None)))


def _se_ml(problem, tau2, fit):
    r""":func:`information_se` of :math:`\sum_i w_i^2`, scaled by the largest
    weight against overflow."""
    w = fit.weights
    largest = float(w.max())
    return float(np.sqrt(2.0) / largest / np.linalg.norm(w / largest))


def _se_paule_mandel(problem, tau2, fit):
    k, p = problem.X.shape
    return float(paule_mandel_se(k, p, np.sum(fit.weights)))


def _se_hedges(problem, tau2, fit):
    X, v = problem.X, problem.v
    k, p = X.shape
    fit0 = weighted_fit(X, problem.y, np.ones(k))
    pvpv = trace_pdpd(X, fit0, v, v)
    pv = trace_pd(X, fit0, v)
    return float(quadratic_se(2 * pvpv, 4 * pv, 2 * (k - p), tau2, k - p))


def _se_inverse_variance(problem, tau2, fit, *, denominator):
    X = problem.X
    k, p = X.shape
    fit_fe = problem.fixed_effect_fit()
    trp = problem.fixed_effect_trace(fit_fe)
    pp = trace_pdpd(X, fit_fe, None, None)
    sum_inverse_var = float(np.sum(1.0 / problem.v))
    return float(inverse_variance_se(k, p, trp, pp, sum_inverse_var, tau2, denominator))


def _se_genq(problem, tau2, fit):
    fit_a = stable_weighted_fit(problem.X, problem.y, problem.weights)
    return _moment_se(problem, tau2, fit_a, trace_pd(problem.X, fit_a))


def _se_sidik_jonkman(problem, tau2, fit):
    # P is the one of the estimator itself, i.e. at the initial value tau2_0.
    X, y, v = problem.X, problem.y, problem.v
    k, p = X.shape
    tau2_init = tau2_sidik_jonkman(X, y, v)[1]
    fit_init = stable_weighted_fit(X, y, 1.0 / (v + tau2_init))
    return float(tau2_init / (k - p)) * _moment_se(problem, tau2, fit_init, 1.0)


def _method(name, label, estimate, standard_error, **flags):
    return name, Tau2Method(name, label, estimate, standard_error, **flags)


#: The tau^2 methods, by name, in the order of metafor's documentation.
TAU2_METHODS: dict[str, Tau2Method] = dict(
    [
        _method(
            "reml",
            "REML",
            lambda pr: _estimate_likelihood(pr, reml=True),
            _se_reml,
            likelihood=True,
        ),
        _method(
            "ml",
            "ML",
            lambda pr: _estimate_likelihood(pr, reml=False),
            _se_ml,
            likelihood=True,
        ),
        _method(
            "dl",
            "DerSimonian-Laird",
            _estimate_dl,
            lambda pr, t, f: _se_inverse_variance(pr, t, f, denominator="trace"),
            needs_positive_var=True,
        ),
        _method(
            "pm",
            "Paule-Mandel",
            lambda pr: _estimate_paule_mandel(pr, median=False),
            _se_paule_mandel,
        ),
        _method(
            "pmm",
            "median-unbiased Paule-Mandel",
            lambda pr: _estimate_paule_mandel(pr, median=True),
            _se_paule_mandel,
        ),
        _method(
            "he",
            "Hedges",
            lambda pr: _closed_form(tau2_hedges(pr.X, pr.y, pr.v)),
            _se_hedges,
        ),
        _method(
            "hs",
            "Hunter-Schmidt",
            lambda pr: _estimate_hunter_schmidt(pr, corrected=False),
            lambda pr, t, f: _se_inverse_variance(pr, t, f, denominator="sum"),
            needs_positive_var=True,
        ),
        _method(
            "hsk",
            "Hunter-Schmidt (k-corrected)",
            lambda pr: _estimate_hunter_schmidt(pr, corrected=True),
            lambda pr, t, f: _se_inverse_variance(pr, t, f, denominator="corrected"),
            needs_positive_var=True,
        ),
        _method(
            "sj",
            "Sidik-Jonkman",
            lambda pr: _closed_form(tau2_sidik_jonkman(pr.X, pr.y, pr.v)[0]),
            _se_sidik_jonkman,
        ),
        _method(
            "eb",
            "empirical Bayes",
            lambda pr: _estimate_paule_mandel(pr, median=False),
            _se_paule_mandel,
        ),
        _method(
            "genq",
            "generalized Q",
            lambda pr: _closed_form(tau2_genq(pr.X, pr.y, pr.v, pr.weights)),
            _se_genq,
        ),
        _method(
            "fe",
            "fixed (common) effect",
            lambda pr: _closed_form(0.0),
            None,
            needs_positive_var=True,
        ),
    ]
)

#: The method names (the values of ``RandomEffectsMeta(method=...)``).
ALL_METHODS = tuple(TAU2_METHODS)


def tau2_method(method):
    """The :class:`Tau2Method` record of ``method``.

    Raises
    ------
    ValueError
        If ``method`` is not one of :data:`ALL_METHODS`.
    """
    try:
        return TAU2_METHODS[method]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown tau^2 method {method!r}; choose one of {', '.join(TAU2_METHODS)}."
        ) from None


def estimate_tau2(
    X, y, v, method, *, weights=None, max_iter=100, tol=1e-10, fe_fit=None,
    logdet_xtx=None, fe_trace=None,
):  # fmt: skip
    """Estimate tau^2 by ``method`` (one of :data:`ALL_METHODS`).

    ``fe_fit`` (``weighted_fit(X, y, 1 / v)``), its ``fe_trace``
    (``trace_pd(X, fe_fit)``) and ``logdet_xtx`` (``logdet_crossprod(X)``) may
    be passed when the caller has them already; ``weights`` are the fixed
    weights of ``"genq"`` (required there).

    Returns
    -------
    Tau2Fit
        The estimate, at least the lower bound :func:`variance_floor` (``n_iter``
        1 and ``converged`` True for closed forms).

    Raises
    ------
    ValueError
        For an unknown method, a method that needs positive sampling variances
        given a zero one, or ``"genq"`` without weights.
    """
    record = tau2_method(method)
    if record.needs_positive_var and np.any(v <= 0):
        raise ValueError(
            f"method={method!r} weights studies by 1/sample_var, so sample_var must "
            "be > 0."
        )
    if method == "genq" and weights is None:
        raise ValueError("method='genq' needs its fixed weights.")
    problem = Tau2Problem(X, y, v, weights, max_iter, tol, fe_fit, logdet_xtx, fe_trace)
    fit = record.estimate(problem)
    return fit._replace(tau2=max(fit.tau2, problem.lower))


def tau2_standard_error(
    X, y, v, method, tau2, *, weights=None, fit=None, fe_fit=None, fe_trace=None
):
    """Standard error of the tau^2 estimate, by metafor's formula for ``method``.

    ``fit`` is ``weighted_fit`` at ``tau2`` (weights ``1 / (v + tau2)``),
    ``fe_fit`` the one with weights ``1 / v`` and ``fe_trace`` its
    :math:`\\operatorname{tr}(P_{FE})`, when the caller has them already.
    Returns NaN for ``"fe"``, which estimates nothing.

    Raises
    ------
    ValueError
        For an unknown method.
    """
    record = tau2_method(method)
    if record.standard_error is None:
        return float("nan")
    if fit is None:
        fit = stable_weighted_fit(X, y, 1.0 / (v + tau2))
    problem = Tau2Problem(X, y, v, weights, fe_fit=fe_fit, fe_trace=fe_trace)
    return record.standard_error(problem, tau2, fit)
