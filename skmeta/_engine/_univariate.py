r"""Univariate random-effects model with known sampling variances.

The model is

.. math::

    y_i = x_i^\top \beta + u_i + e_i,\qquad u_i \sim N(0, \tau^2),\qquad
    e_i \sim N(0, v_i),

so that :math:`y \sim N(X\beta, \operatorname{diag}(v + \tau^2))`.  Every quantity
here is computed from vectors of length ``k`` and ``p x p`` matrices: the
``k x k`` projection matrix

.. math:: P = W - W X (X^\top W X)^{-1} X^\top W,\qquad W = \operatorname{diag}(w)

is never formed.  Its traces are obtained from ``p x p`` products, e.g. with the
leverages :math:`h_i = w_i x_i^\top (X^\top W X)^{-1} x_i`

.. math::

    \operatorname{tr}(P D_1 P D_2) = \sum_i e_{1i} e_{2i} - 2 \sum_i h_i e_{1i} e_{2i}
    + \operatorname{tr}(A^{-1} B_1 A^{-1} B_2)

with :math:`e_j = w \circ d_j`, :math:`A = X^\top W X` and
:math:`B_j = X^\top \operatorname{diag}(w \circ e_j) X`.

The :math:`\tau^2` estimators follow the definitions documented by metafor
(Viechtbauer 2010; Veroniki et al. 2016), implemented from the published formulas:
DerSimonian & Laird (1986), Hedges (1983), Hunter & Schmidt (2004), Brannick et al.
(2019), Sidik & Jonkman (2005), Paule & Mandel (1982), Viechtbauer (2021),
Morris (1983), DerSimonian & Kacker (2007), maximum likelihood and restricted
maximum likelihood (Raudenbush 2009).
"""

from typing import NamedTuple

import numpy as np
from scipy import optimize, special, stats

from skmeta._engine._gls import (
    cholesky_inverse,
    logdet_crossprod,
    profiled_loglik,
    weighted_fit,
)

#: Methods whose estimate is a maximum of a (restricted) likelihood.
LIKELIHOOD_METHODS = frozenset({"reml", "ml"})
#: Methods that need finite fixed-effect weights 1/v_i (so v_i > 0).
NEEDS_POSITIVE_VAR = frozenset({"dl", "hs", "hsk", "fe"})
ALL_METHODS = (
    "reml",
    "ml",
    "dl",
    "pm",
    "pmm",
    "he",
    "hs",
    "hsk",
    "sj",
    "eb",
    "genq",
    "fe",
)


def _weighted_gram(X, weights):
    r"""Return :math:`X^\top \operatorname{diag}(weights) X`."""
    return X.T @ (X * weights[:, None])


def trace_pdpd(X, fit, d1, d2):
    r"""Return :math:`\operatorname{tr}(P D_1 P D_2)` for diagonal ``D_1``, ``D_2``.

    ``P`` is the projection of ``fit`` (``weighted_fit(X, y, w)``); ``d1`` and ``d2``
    are the diagonals (``None`` means the identity).  With :math:`e_j = w \circ d_j`,
    :math:`\sum_i h_i e_{1i} e_{2i} = \operatorname{tr}(A^{-1} X^\top
    \operatorname{diag}(w e_1 e_2) X)`.
    """
    w = fit.weights
    e1 = w if d1 is None else w * d1
    e2 = w if d2 is None else w * d2
    e12 = e1 * e2
    total = float(e12.sum())
    if X.shape[1]:
        total -= 2.0 * float((fit.cov * _weighted_gram(X, w * e12)).sum())
        M1 = fit.cov @ _weighted_gram(X, w * e1)
        M2 = M1 if d2 is d1 else fit.cov @ _weighted_gram(X, w * e2)
        total += float((M1 * M2.T).sum())
    return total


def trace_pd(X, fit, d=None):
    r"""Return :math:`\operatorname{tr}(P D)` for diagonal ``D`` (identity if None).

    :math:`\sum_i w_i d_i - \operatorname{tr}(A^{-1} X^\top \operatorname{diag}(w^2
    d) X)`.
    """
    wd = fit.weights if d is None else fit.weights * d
    total = float(wd.sum())
    if X.shape[1]:
        total -= float((fit.cov * _weighted_gram(X, fit.weights * wd)).sum())
    return total


def generalized_q(X, y, v, tau2):
    r"""Return :math:`Q(\tau^2) = y^\top P_{\tau^2} y`, weights :math:`1/(v+\tau^2)`."""
    return weighted_fit(X, y, 1.0 / (v + tau2)).rss


# --------------------------------------------------------------------------------------
# log-likelihoods
# --------------------------------------------------------------------------------------


def loglik_ml(v, tau2, fit):
    """Gaussian log-likelihood at ``tau2`` with beta at its GLS estimate."""
    logdet_v = float(np.sum(np.log(v + tau2)))
    return profiled_loglik(v.shape[0], fit.beta.shape[0], logdet_v, fit.rss, reml=False)


def loglik_reml(v, tau2, fit, logdet_xtx):
    r"""Restricted log-likelihood with metafor's :math:`+\tfrac12\log|X^\top X|`."""
    logdet_v = float(np.sum(np.log(v + tau2)))
    return profiled_loglik(
        v.shape[0],
        fit.beta.shape[0],
        logdet_v,
        fit.rss,
        reml=True,
        logdet_xtvx=fit.logdet,
        logdet_xtx=logdet_xtx,
    )


# --------------------------------------------------------------------------------------
# likelihood optimisation
# --------------------------------------------------------------------------------------


class Tau2Fit(NamedTuple):
    """Result of a tau^2 estimation."""

    tau2: float
    n_iter: int
    converged: bool


def centered_stack(X, y, copies=1):
    r"""Stack ``[X, y]`` feature-major, centred when ``X`` holds an intercept column.

    Centring the other columns and ``y`` at their means is a unit-triangular
    reparametrisation of the column space of ``X``: :math:`P`, the residuals and
    :math:`\log|X^\top W X|` are unchanged, and the moment sums of
    :func:`_likelihood_terms` lose no precision to large offsets.

    Returns
    -------
    ndarray of shape (copies * (p + 1), k), C-contiguous
        The stack in the first ``p + 1`` rows; further rows are work space.
    """
    q = X.shape[1] + 1
    Z = np.empty((copies * q, X.shape[0]))
    Z[: q - 1] = X.T
    Z[q - 1] = y
    if X.shape[1] and np.all(X[:, 0] == 1.0):
        Z[1:q] -= Z[1:q].mean(axis=1, keepdims=True)
    return Z


def _likelihood_terms(Z, v, tau2, reml, logdet_xtx, intercept):
    r"""Criterion, score and informations at ``tau2`` from weighted moments.

    ``Z`` is ``centered_stack(X, y, copies=3)``: rows ``p+1`` onwards are work
    space.  With :math:`z_i = (x_i, y_i)`, :math:`S_j = \sum_i w_i^j z_i z_i^\top`
    (one Gram product) and :math:`c = (-\hat\beta, 1)`:
    :math:`y^\top P y = c^\top S_1 c`, :math:`y^\top P^2 y = c^\top S_2 c`,
    :math:`y^\top P^3 y = c^\top S_3 c - g^\top A^{-1} g` with
    :math:`g = (S_2)_{x\cdot} c`, :math:`\operatorname{tr}P = \sum w -
    \operatorname{tr}(A^{-1}S_{2,xx})` and :math:`\operatorname{tr}P^2 = \sum w^2
    - 2\operatorname{tr}(A^{-1}S_{3,xx}) + \operatorname{tr}((A^{-1}S_{2,xx})^2)`.

    Returns
    -------
    criterion, score, observed, expected : float
        The (restricted) log-likelihood, its derivative in :math:`\tau^2`, minus
        its second derivative, and the Fisher information.
    """
    q = Z.shape[0] // 3
    k = Z.shape[1]
    p = q - 1
    w = 1.0 / (v + tau2)
    # Z holds [x, y] in its first q rows; fill z*w and z*w^2 below it and take the
    # three moment matrices from one Gram product (one pass over the data).
    np.multiply(Z[:q], w, out=Z[q : 2 * q])
    np.multiply(Z[q : 2 * q], w, out=Z[2 * q :])
    G = Z @ Z.T
    # blocks (z w, z), (z w, z w), (z w^2, z w) of G: S_1, S_2, S_3
    S = G.reshape(3, q, 3, q)[(1, 1, 2), :, (0, 1, 1), :]
    sum_log_var = -np.log(w).sum()
    if p:
        # Cholesky is invariant to diagonal scaling (van der Sluis) and the columns
        # are centred, so the raw LAPACK factorisation of A = X'WX is accurate.
        chol, cov = cholesky_inverse(S[0, :p, :p])
        c = np.empty(q)
        c[:p] = -(cov @ S[0, :p, p])
        c[p] = 1.0
        Sc = S @ c
        rss, ypy2, upu = Sc @ c
        g = Sc[1, :p]
        upu -= g @ cov @ g
        M2 = cov @ S[1, :p, :p]
        logdet = 2.0 * np.log(chol.diagonal()).sum()
        if intercept:
            sum_w, sum_w2 = S[0, 0, 0], S[1, 0, 0]
        else:
            sum_w, sum_w2 = w.sum(), w @ w
        trp = sum_w - M2.trace()
        trpp = sum_w2 - 2.0 * (cov * S[2, :p, :p]).sum() + (M2 * M2.T).sum()
    else:
        logdet = 0.0
        rss, ypy2, upu = S[0, 0, 0], S[1, 0, 0], S[2, 0, 0]
        sum_w, sum_w2 = w.sum(), w @ w
        trp, trpp = sum_w, sum_w2
    criterion = profiled_loglik(
        k, p, sum_log_var, rss, reml=reml, logdet_xtvx=logdet, logdet_xtx=logdet_xtx
    )
    if reml:
        score = 0.5 * (ypy2 - trp)
        expected = 0.5 * trpp
    else:
        score = 0.5 * (ypy2 - sum_w)
        expected = 0.5 * sum_w2
    return float(criterion), float(score), float(upu - expected), float(expected)


def maximize_likelihood(
    X, y, v, *, reml, start, lower, max_iter, tol, logdet_xtx, fe_fit=None, scale=None
):
    r"""Maximise the (restricted) log-likelihood over :math:`\tau^2 \ge` ``lower``.

    Newton's method on :math:`\tau^2` where the observed information is positive,
    Fisher scoring elsewhere, with step halving so that every accepted step
    increases the criterion.  Convergence: a Newton step in a concave region
    below ``sqrt(tol) * (tau2 + s)`` (taken; quadratic convergence leaves an
    error of order ``tol``), any step below ``tol * (tau2 + s)``, with ``s`` the
    data's variance scale, or ``tau2`` on the bound with a non-positive score.
    As metafor does (``ll0check``), the bound is compared with the optimum found
    (from ``fe_fit``, the fit with weights ``1 / v``, when given).

    Returns
    -------
    Tau2Fit
    """
    Z = centered_stack(X, y, copies=3)
    if scale is None:
        scale = variance_scale(v, y)
    intercept = bool(X.shape[1]) and bool(np.all(X[:, 0] == 1.0))

    evaluated = {}

    def terms_at(t):
        if t not in evaluated:
            evaluated[t] = _likelihood_terms(Z, v, t, reml, logdet_xtx, intercept)
        return evaluated[t]

    tau2 = max(float(start), lower)
    ll, score, observed, expected = terms_at(tau2)
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007
        info = observed if observed > 1e-12 * expected else expected
        step = score / info
        if tau2 <= lower and step <= 0:
            converged = True
            break
        if abs(step) <= np.sqrt(tol) * (tau2 + scale) and observed > 0:
            # Newton converges quadratically where the criterion is concave: after
            # a step below sqrt(tol) the error is O(tol), so take it unevaluated.
            tau2 = max(tau2 + step, lower)
            converged = True
            break
        # Never cut tau2 by more than 90% in one step: a jump straight to the
        # bound can pass over an interior maximum (the ML profile can be bimodal,
        # with a local maximum at 0). Near the bound, halve from the bound.
        smallest = 0.1 * tau2 if 0.1 * tau2 > tol * scale else lower
        step = max(step, max(smallest, lower) - tau2)
        for _ in range(60):
            new = max(tau2 + step, lower)
            terms = terms_at(new)
            if terms[0] >= ll - 1e-13 * (1.0 + abs(ll)):
                break
            step *= 0.5
        change = abs(new - tau2)
        tau2 = new
        ll, score, observed, expected = terms
        if change <= tol * (tau2 + scale):
            converged = True
            break
    if lower == 0.0 and tau2 > 0.0 and np.all(v > 0):
        if 0.0 in evaluated or fe_fit is None:
            at_zero = terms_at(0.0)[0]
        elif reml:  # the fixed-effect fit is the model at tau2 = 0
            at_zero = loglik_reml(v, 0.0, fe_fit, logdet_xtx)
        else:
            at_zero = loglik_ml(v, 0.0, fe_fit)
        if at_zero > ll:
            tau2 = 0.0
    return Tau2Fit(tau2, n_iter, converged)


# --------------------------------------------------------------------------------------
# moment and other non-iterative estimators
# --------------------------------------------------------------------------------------


def _decreasing_root(func, lower, target, scale):
    """Root of a decreasing function ``func(t) = target`` on ``[lower, inf)``.

    ``scale`` is the data's variance scale (:func:`variance_scale`): the first
    bracket and the absolute tolerance are relative to it.
    """
    if func(lower) <= target:
        return lower
    hi = max(scale, 2.0 * lower)
    while func(hi) > target:
        hi *= 4.0
        if hi > 1e300:
            raise FloatingPointError("no root found for the tau^2 equation")
    return optimize.brentq(
        lambda t: func(t) - target,
        lower,
        hi,
        xtol=1e-15 * scale,
        rtol=4 * np.finfo(float).eps,
    )


def tau2_hedges(X, y, v):
    """Hedges (HE) estimator: unweighted residuals minus the average variance."""
    k, p = X.shape
    fit = weighted_fit(X, y, np.ones(k))
    return max(0.0, (fit.rss - trace_pd(X, fit, v)) / (k - p))


def tau2_genq(X, y, v, a, fit=None):
    r"""Generalised Q estimator with fixed weights ``a`` (DerSimonian & Kacker 2007).

    :math:`\hat\tau^2 = \max\{0, (Q_a - \operatorname{tr}(P_A V)) /
    \operatorname{tr}(P_A)\}`.  DL is ``a = 1/v``; HE is ``a = 1``.  ``fit`` is
    ``weighted_fit(X, y, a)`` when the caller has it already.
    """
    if fit is None:
        fit = weighted_fit(X, y, a)
    return max(0.0, (fit.rss - trace_pd(X, fit, v)) / trace_pd(X, fit))


def tau2_sidik_jonkman(X, y, v, tau2_init=None):
    """Sidik & Jonkman (2005) estimator; initial value var(y)(k-1)/k as metafor."""
    k, p = X.shape
    if tau2_init is None:
        tau2_init = float(np.var(y)) if np.ptp(y) > 0 else 0.0
    if tau2_init <= 0:
        return 0.0, 0.0
    fit = weighted_fit(X, y, 1.0 / (v + tau2_init))
    return tau2_init * fit.rss / (k - p), tau2_init


def tau2_paule_mandel(X, y, v, target, lower):
    """Solve :math:`y^\\top P_{\\tau^2} y =` ``target`` (PM: k - p; PMM: its median)."""
    return _decreasing_root(
        lambda t: generalized_q(X, y, v, t), lower, target, variance_scale(v, y)
    )


def variance_scale(v, y):
    """Typical variance of the data: max(var(y), mean(v)), or 1 if both vanish.

    Tolerances, floors and root brackets for tau^2 are relative to it, so that
    results are equivariant when y is rescaled by c and v by c^2.
    """
    r = y - y.mean()
    scale = max(float(r @ r) / y.shape[0], float(v.mean()))
    return scale if scale > 0 else 1.0


def variance_floor(v, y, scale=None):
    """Smallest admissible tau^2: 0 if all v > 0, else 1e-12 of the data's scale."""
    if v.min() > 0:
        return 0.0
    return 1e-12 * (variance_scale(v, y) if scale is None else scale)


def estimate_tau2(
    X,
    y,
    v,
    method,
    *,
    weights=None,
    max_iter=100,
    tol=1e-10,
    fe_fit=None,
    logdet_xtx=None,
):
    """Estimate tau^2 by ``method`` (see :data:`ALL_METHODS`).

    ``fe_fit`` (``weighted_fit(X, y, 1 / v)``) and ``logdet_xtx``
    (``logdet_crossprod(X)``) may be passed when the caller has them already.

    Returns
    -------
    Tau2Fit
        The estimate (``n_iter`` 1 (one pass) and ``converged`` True for closed forms).
    """
    k, p = X.shape
    scale = variance_scale(v, y)
    lower = variance_floor(v, y, scale)
    if method == "fe":
        return Tau2Fit(0.0, 1, True)
    if method in LIKELIHOOD_METHODS:
        # DL is usually closer to the (RE)ML optimum than metafor's HE start; when
        # both are 0, start on the bound (converged at once if the score is <= 0).
        start = tau2_genq(X, y, v, 1.0 / v, fit=fe_fit) if lower == 0.0 else 0.0
        if start <= lower:
            start = max(tau2_hedges(X, y, v), lower)
        return maximize_likelihood(
            X,
            y,
            v,
            reml=method == "reml",
            start=start,
            lower=lower,
            max_iter=max_iter,
            tol=tol,
            logdet_xtx=(
                (logdet_crossprod(X) if logdet_xtx is None else logdet_xtx)
                if method == "reml"
                else 0.0
            ),
            fe_fit=fe_fit,
            scale=scale,
        )
    if method == "he":
        tau2 = tau2_hedges(X, y, v)
    elif method == "dl":
        tau2 = tau2_genq(X, y, v, 1.0 / v, fit=fe_fit)
    elif method == "genq":
        tau2 = tau2_genq(X, y, v, weights)
    elif method in ("hs", "hsk"):
        q = weighted_fit(X, y, 1.0 / v).rss
        factor = k / (k - p) if method == "hsk" else 1.0
        tau2 = max(0.0, (factor * q - k) / float(np.sum(1.0 / v)))
    elif method == "sj":
        tau2 = tau2_sidik_jonkman(X, y, v)[0]
    elif method in ("pm", "eb"):
        tau2 = tau2_paule_mandel(X, y, v, k - p, lower)
    elif method == "pmm":
        tau2 = tau2_paule_mandel(X, y, v, stats.chi2.median(k - p), lower)
    else:
        raise ValueError(f"unknown method {method!r}")
    return Tau2Fit(max(tau2, lower), 1, True)


def tau2_standard_error(X, y, v, method, tau2, *, weights=None, fit=None):
    """Standard error of the tau^2 estimate, by metafor's formula for ``method``.

    See Viechtbauer (2005, 2007) and the table in the skmeta user guide.  Returns
    ``nan`` for ``"fe"`` and a fixed tau^2.  ``fit`` is ``weighted_fit`` at ``tau2``
    with weights ``1 / (v + tau2)`` when the caller has it already.
    """
    k, p = X.shape
    if fit is None:
        fit = weighted_fit(X, y, 1.0 / (v + tau2))
    if method == "reml":
        return float(np.sqrt(2.0 / trace_pdpd(X, fit, None, None)))
    if method == "ml":
        w = fit.weights
        return float(np.sqrt(2.0 / (w @ w)))
    if method in ("pm", "pmm", "eb"):
        return float(np.sqrt(2.0 * k**2 / (k - p) / np.sum(fit.weights) ** 2))
    t = max(tau2, 0.0)

    def moment_se(fit_a, scale):
        pvpv = trace_pdpd(X, fit_a, v, v)
        pvp = trace_pdpd(X, fit_a, v, None)
        pp = trace_pdpd(X, fit_a, None, None)
        return float(np.sqrt((2 * pvpv + 4 * t * pvp + 2 * t * t * pp) / scale))

    if method == "he":
        fit0 = weighted_fit(X, y, np.ones(k))
        pvpv = trace_pdpd(X, fit0, v, v)
        pv = trace_pd(X, fit0, v)
        return float(
            np.sqrt((2 * pvpv + 4 * t * pv + 2 * t * t * (k - p)) / (k - p) ** 2)
        )
    if method in ("dl", "hs", "hsk"):
        fit_fe = weighted_fit(X, y, 1.0 / v)
        trp = trace_pd(X, fit_fe)
        core = 2 * (k - p) + 4 * t * trp + 2 * t * t * trace_pdpd(X, fit_fe, None, None)
        if method == "dl":
            return float(np.sqrt(core / trp**2))
        se = float(np.sqrt(core / np.sum(1.0 / v) ** 2))
        return se * k / (k - p) if method == "hsk" else se
    if method == "genq":
        fit_a = weighted_fit(X, y, weights)
        return moment_se(fit_a, trace_pd(X, fit_a) ** 2)
    if method == "sj":
        # P is the one of the estimator itself, i.e. at the initial value tau2_0.
        tau2_init = tau2_sidik_jonkman(X, y, v)[1]
        fit_init = weighted_fit(X, y, 1.0 / (v + tau2_init))
        return float(tau2_init / (k - p)) * moment_se(fit_init, 1.0)
    return float("nan")


# --------------------------------------------------------------------------------------
# heterogeneity statistics
# --------------------------------------------------------------------------------------


class Heterogeneity(NamedTuple):
    """Cochran's Q test of (residual) heterogeneity and I^2, H^2."""

    q: float
    q_pvalue: float
    i2: float
    h2: float
    typical_var: float


def heterogeneity(X, y, v, tau2, *, fixed_effect, fe_fit=None):
    r"""Return :math:`Q_E`, its p-value, :math:`I^2` and :math:`H^2`.

    :math:`Q_E = y^\top P_{FE} y \sim \chi^2_{k-p}`; the typical sampling variance is
    :math:`\tilde v = (k-p)/\operatorname{tr}(P_{FE})`; :math:`I^2 = 100\,\tau^2 /
    (\tilde v + \tau^2)` and :math:`H^2 = \tau^2/\tilde v + 1` (Higgins & Thompson
    2002, generalised as in metafor).  For a fixed-effect fit
    :math:`I^2 = 100\max(0, (Q_E - (k-p))/Q_E)` and :math:`H^2 = Q_E/(k-p)`.
    Undefined (``nan``) when some sampling variances are zero.  ``fe_fit`` is
    ``weighted_fit(X, y, 1 / v)`` when the caller has it already.
    """
    k, p = X.shape
    if not np.all(v > 0):
        nan = float("nan")
        return Heterogeneity(nan, nan, nan, nan, nan)
    fit = weighted_fit(X, y, 1.0 / v) if fe_fit is None else fe_fit
    q = fit.rss
    df = k - p
    q_pvalue = float(special.chdtrc(df, q)) if df > 0 else 1.0
    vt = df / trace_pd(X, fit) if df > 0 else 0.0
    if fixed_effect:
        i2 = max(0.0, 100.0 * (q - df) / q) if q > 0 else 0.0
        h2 = q / df if df > 0 else float("nan")
    else:
        i2 = 100.0 * tau2 / (vt + tau2) if (vt + tau2) > 0 else 0.0
        h2 = tau2 / vt + 1.0 if vt > 0 else float("inf")
    return Heterogeneity(q, q_pvalue, i2, h2, vt)


def q_profile_interval(X, y, v, confidence_level):
    r"""Q-profile confidence interval for :math:`\tau^2` (Viechtbauer 2007).

    The bounds solve :math:`y^\top P_{\tau^2} y = \chi^2_{k-p;\,1-\alpha/2}` and
    :math:`\chi^2_{k-p;\,\alpha/2}`; a bound is 0 when :math:`Q(0)` is already below
    its quantile.
    """
    k, p = X.shape
    df = k - p
    alpha = 1.0 - confidence_level
    lower = variance_floor(v, y)
    q_func = lambda t: generalized_q(X, y, v, t)
    scale = variance_scale(v, y)
    lo = _decreasing_root(q_func, lower, stats.chi2.ppf(1 - alpha / 2, df), scale)
    hi = _decreasing_root(q_func, lower, stats.chi2.ppf(alpha / 2, df), scale)
    return lo, hi
