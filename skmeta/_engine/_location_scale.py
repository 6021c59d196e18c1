"""Meta-analytic location-scale model: profiled ML/REML with analytic derivatives.

Model (Viechtbauer & López-López 2022):

.. math::

    y_i = x_i^\\top \\beta + u_i + e_i, \\quad u_i \\sim N(0, \\tau_i^2),
    \\quad e_i \\sim N(0, v_i),

with :math:`\\log \\tau_i^2 = z_i^\\top \\alpha` (``link="log"``) or
:math:`\\tau_i^2 = z_i^\\top \\alpha` (``link="identity"``).

For fixed :math:`\\alpha` the location coefficients are the GLS estimate with
weights :math:`w_i = 1/(v_i + \\tau_i^2)`, so :math:`\\beta` is profiled out and
only :math:`\\alpha` is optimised (Newton-Raphson on the profiled (restricted)
log-likelihood with analytic gradient and observed Hessian, Fisher scoring as
the fall-back when the surface is not concave, step halving throughout).

Derivatives, with :math:`P = W - WX(X^\\top WX)^{-1}X^\\top W` and
:math:`u = Py = W(y - X\\hat\\beta)` (Harville 1977):

* ML:   :math:`\\partial\\ell/\\partial\\tau_i^2 = -\\tfrac12 (w_i - u_i^2)`,
  :math:`\\partial^2\\ell/\\partial\\tau_i^2\\partial\\tau_j^2 =
  \\tfrac12 w_i^2\\delta_{ij} - u_i P_{ij} u_j`.
* REML: :math:`\\partial\\ell/\\partial\\tau_i^2 = -\\tfrac12 (P_{ii} - u_i^2)`,
  :math:`\\partial^2\\ell/\\partial\\tau_i^2\\partial\\tau_j^2 =
  \\tfrac12 P_{ij}^2 - u_i P_{ij} u_j`.

The chain rule through the link gives the derivatives in :math:`\\alpha`.
Every product with :math:`P` is formed through the p x p matrix
:math:`X^\\top W X`: the cost is O(k p^2 q + k q^2) and memory O(k (p^2 + q));
no k x k matrix is ever built.

All functions are pure (numpy/scipy only, no state).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from skmeta._engine import _univariate as uni

_LOG2PI = np.log(2.0 * np.pi)

#: log tau^2 is clipped to this range before exponentiation, so that a Newton
#: step can never overflow; the clip is far outside any meaningful value.
_ETA_CLIP = 700.0


class ScaleTransform(NamedTuple):
    """Internal standardization of the scale design.

    ``Z_std = (Z - center) / scale`` column-wise (centre only when there is an
    intercept column), so that ``Z @ alpha == Z_std @ alpha_std`` with
    ``alpha = T @ alpha_std``.
    """

    T: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    standardized: np.ndarray


class LSEval(NamedTuple):
    """Profiled criterion and its pieces at one value of alpha."""

    loglik: float
    beta: np.ndarray
    cov_beta: np.ndarray
    tau2: np.ndarray
    weights: np.ndarray
    resid: np.ndarray
    hat: np.ndarray
    grad: np.ndarray | None
    hess: np.ndarray | None
    info: np.ndarray | None


class LSFit(NamedTuple):
    """Result of :func:`fit_location_scale` (alpha on the original Z scale)."""

    alpha: np.ndarray
    cov_alpha: np.ndarray
    beta: np.ndarray
    cov_beta: np.ndarray
    tau2: np.ndarray
    loglik: float
    hat: np.ndarray
    resid: np.ndarray
    n_iter: int
    converged: bool
    grad: np.ndarray
    hessian: np.ndarray
    message: str
    diverging: np.ndarray


def is_dummy(col: np.ndarray) -> bool:
    """Return True when a column only holds the values 0 and 1."""
    return bool(np.all((col == 0) | (col == 1)))


def standardize_scale_design(
    Z: np.ndarray, intercept_col: int | None
) -> ScaleTransform:
    """Standardize the non-dummy columns of ``Z`` (metafor's ``scaleZ``).

    Parameters
    ----------
    Z : ndarray of shape (k, q)
        Scale design, including the intercept column if any.
    intercept_col : int or None
        Index of the column of ones, or None. Without an intercept columns are
        only scaled, never centred (centring would change the model).

    Returns
    -------
    ScaleTransform
    """
    _k, q = Z.shape
    center = np.zeros(q)
    scale = np.ones(q)
    for j in range(q):
        if j == intercept_col or is_dummy(Z[:, j]):
            continue
        sd = Z[:, j].std()
        if intercept_col is not None:
            center[j] = Z[:, j].mean()
        else:
            sd = np.sqrt(np.mean(Z[:, j] ** 2))
        if sd > 0:
            scale[j] = sd
    Zs = (Z - center) / scale
    T = np.diag(1.0 / scale)
    if intercept_col is not None:
        T[intercept_col, :] -= center / scale
        T[intercept_col, intercept_col] = 1.0
    return ScaleTransform(T=T, center=center, scale=scale, standardized=Zs)


def link_tau2(eta: np.ndarray, link: str) -> np.ndarray:
    """Map the scale linear predictor ``Z @ alpha`` to tau^2."""
    if link == "log":
        return np.exp(np.clip(eta, -_ETA_CLIP, _ETA_CLIP))
    return np.asarray(eta, dtype=float)


def _invalid_eval(p, tau2, nan):
    """The evaluation at an inadmissible point: criterion -inf, nothing else."""
    return LSEval(
        -np.inf,
        np.full(p, np.nan),
        np.full((p, p), np.nan),
        tau2,
        nan,
        nan,
        nan,
        None,
        None,
        None,
    )


def evaluate(
    y: np.ndarray,
    v: np.ndarray,
    X: np.ndarray,
    Z: np.ndarray,
    alpha: np.ndarray,
    *,
    method: str = "reml",
    link: str = "log",
    derivs: int = 0,
    logdet_xtx: float = 0.0,
) -> LSEval:
    """Evaluate the profiled (restricted) log-likelihood at ``alpha``.

    Parameters
    ----------
    y, v : ndarray of shape (k,)
        Effect sizes and sampling variances.
    X : ndarray of shape (k, p)
        Location design (may have p = 0).
    Z : ndarray of shape (k, q)
        Scale design.
    alpha : ndarray of shape (q,)
        Scale coefficients.
    method : {"reml", "ml"}
    link : {"log", "identity"}
    derivs : {0, 1, 2}
        0: value only; 1: gradient; 2: gradient, observed Hessian and the
        expected information.
    logdet_xtx : float
        ``log|X'X|``: metafor's REML constant, added as ``+0.5*logdet_xtx``.

    Returns
    -------
    LSEval
        ``loglik`` is ``-inf`` where the model is undefined (v + tau^2 <= 0).
    """
    k, p = X.shape
    eta = Z @ alpha
    tau2 = link_tau2(eta, link)
    s = v + tau2
    nan = np.full(k, np.nan)
    if not np.all(s > 0) or not np.all(np.isfinite(s)):
        return _invalid_eval(p, tau2, nan)
    w = 1.0 / s
    reml = method == "reml"
    if p:
        Xw = X * w[:, None]
        A = X.T @ Xw
        # p x p algebra with numpy (scipy's triangular solves carry a large
        # per-call overhead that dominates small-k fits)
        try:
            L = np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            return _invalid_eval(p, tau2, nan)
        Linv = np.linalg.inv(L)
        cov_beta = Linv.T @ Linv
        beta = cov_beta @ (Xw.T @ y)
        Xt = X @ Linv.T  # rows L^-1 x_i
        htil = np.einsum("ij,ij->i", Xt, Xt)  # x_i' A^-1 x_i
        logdet_a = 2.0 * np.sum(np.log(np.diag(L)))
    else:
        beta = np.zeros(0)
        htil = np.zeros(k)
        logdet_a = 0.0
        cov_beta = np.zeros((0, 0))
    r = y - X @ beta
    u = w * r
    rss = float(r @ u)
    sumlog = float(np.sum(np.log(s)))
    if reml:
        ll = -0.5 * ((k - p) * _LOG2PI + sumlog + logdet_a + rss) + 0.5 * logdet_xtx
    else:
        ll = -0.5 * (k * _LOG2PI + sumlog + rss)
    hat = w * htil
    if derivs == 0:
        return LSEval(ll, beta, cov_beta, tau2, w, r, hat, None, None, None)

    pdiag = w - w * w * htil if reml else w  # P_ii (REML) or w_i (ML)
    g_tau = -0.5 * (pdiag - u * u)
    d = tau2 if link == "log" else np.ones(k)
    grad = Z.T @ (g_tau * d)
    if derivs == 1:
        return LSEval(ll, beta, cov_beta, tau2, w, r, hat, grad, None, None)

    # (u u') o P term: M' P M with M = Z * (d u)
    M = Z * (d * u)[:, None]
    mpm = M.T @ (M * w[:, None])
    if p:
        xwm = Linv @ (Xw.T @ M)
        mpm -= xwm.T @ xwm
    if reml:
        # P o P = diag(w^2 - 2 w^3 htil) + [w_i^2 w_j^2 (x_i' A^-1 x_j)^2]
        zd = Z * d[:, None]
        pp = (zd * (w * w - 2.0 * w**3 * htil)[:, None]).T @ zd
        if p:
            K = (Xt[:, :, None] * Xt[:, None, :]).reshape(k, p * p)
            C = K.T @ (zd * (w * w)[:, None])
            pp += C.T @ C
        info = 0.5 * pp
    else:
        zd = Z * d[:, None]
        info = 0.5 * (zd * (w * w)[:, None]).T @ zd
    # observed Hessian: D H_tau D + second-derivative-of-link term
    hess = info - mpm  # info = 1/2 D(PoP)D (REML) or 1/2 D W^2 D (ML)
    if link == "log":
        hess = hess + (Z * (g_tau * tau2)[:, None]).T @ Z
    hess = 0.5 * (hess + hess.T)
    return LSEval(ll, beta, cov_beta, tau2, w, r, hat, grad, hess, info)


def _start_values(y, v, X, Zw, link, tau2_method="dl"):
    """Return a robust starting alpha (in the coordinates of ``Zw``).

    The homogeneous tau^2 of the location model by ``tau2_method`` ("dl":
    DerSimonian-Laird, Hedges' when some sampling variances are zero; "he":
    Hedges; a number: that tau^2), floored away from zero unless given, is
    spread over the scale design by least squares.
    """
    k, p = X.shape
    if p:
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        r = y - X @ coef
    else:
        r = y
    if not isinstance(tau2_method, str):
        tau2 = float(tau2_method)  # an explicit homogeneous start
    elif tau2_method == "dl" and np.all(v > 0):
        tau2 = uni.tau2_genq(X, y, v, 1.0 / v)
    else:
        tau2 = uni.tau2_hedges(X, y, v)
    floor = max(0.01 * float(np.mean(v)), 1e-4 * float(np.mean(r * r)), 1e-10)
    if isinstance(tau2_method, str):
        tau2 = max(tau2, floor)
    target = np.full(k, np.log(tau2) if link == "log" else tau2)
    a0, *_ = np.linalg.lstsq(Zw, target, rcond=None)
    if link == "identity" and np.any(Zw @ a0 < 0):
        a0, *_ = np.linalg.lstsq(np.abs(Zw), target, rcond=None)
    return a0


def fit_location_scale(
    y: np.ndarray,
    v: np.ndarray,
    X: np.ndarray,
    Z: np.ndarray,
    *,
    method: str = "reml",
    link: str = "log",
    intercept_col: int | None = 0,
    max_iter: int = 200,
    tol: float = 1e-10,
    penalty: float = 0.0,
    bounds: tuple | None = None,
    alpha_init: np.ndarray | None = None,
    standardize: bool = True,
) -> LSFit:
    """Fit the location-scale model by profiled ML or REML.

    Parameters
    ----------
    y, v : ndarray of shape (k,)
        Effect sizes and sampling variances (v >= 0).
    X : ndarray of shape (k, p)
        Location design, including its intercept column.
    Z : ndarray of shape (k, q)
        Scale design, including its intercept column.
    method : {"reml", "ml"}
    link : {"log", "identity"}
    intercept_col : int or None
        Column of ``Z`` that is the intercept (never penalized or standardized).
    max_iter : int
        Maximum number of Newton iterations.
    tol : float
        Convergence when the Newton decrement ``g' H^-1 g / 2`` (the predicted
        gain in log-likelihood) is below ``tol``.
    penalty : float
        Ridge penalty ``-penalty/2 * sum(alpha_j^2)`` on the non-intercept
        scale coefficients (original scale of Z); 0 disables it.
    bounds : tuple (lower, upper) or None
        Box constraints on the original alpha (scalars or arrays of shape (q,)).
    alpha_init : ndarray of shape (q,) or None
        Starting values on the original scale.
    standardize : bool
        Optimize in standardized coordinates (ignored when ``bounds`` is set).

    Returns
    -------
    LSFit
        ``loglik`` is the unpenalized criterion (metafor's logLik, with the
        REML constant ``+0.5 log|X'X|``); ``cov_alpha`` is the inverse of the
        negative observed Hessian of the (penalized) profiled criterion.
    """
    if link == "identity":
        # The identity link is equivariant under y -> c y, v -> c^2 v (alpha ->
        # c^2 alpha), but the optimizer's thresholds (constraint slack, gradient
        # and stall tests) are absolute: fit the problem on the unit scale of
        # the data and transform back, so that results do not depend on units.
        c2 = _unit_variance(y, v, X)
        if c2 != 1.0:
            return _rescaled_identity_fit(
                y,
                v,
                X,
                Z,
                c2,
                method=method,
                intercept_col=intercept_col,
                max_iter=max_iter,
                tol=tol,
                penalty=penalty,
                bounds=bounds,
                alpha_init=alpha_init,
                standardize=standardize,
            )
    _k, p = X.shape
    q = Z.shape[1]
    logdet_xtx = 0.0
    if method == "reml" and p:
        logdet_xtx = float(np.linalg.slogdet(X.T @ X)[1])
    if bounds is not None or not standardize:
        tr = ScaleTransform(np.eye(q), np.zeros(q), np.ones(q), Z)
    else:
        tr = standardize_scale_design(Z, intercept_col)
    Zw, T = tr.standardized, tr.T
    pen_mask = np.ones(q)
    if intercept_col is not None:
        pen_mask[intercept_col] = 0.0
    pen = penalty * (T.T @ (pen_mask[:, None] * T))  # penalty matrix in theta
    if bounds is not None:
        lo = np.broadcast_to(np.asarray(bounds[0], float), (q,)).copy()
        hi = np.broadcast_to(np.asarray(bounds[1], float), (q,)).copy()
    else:
        lo = np.full(q, -np.inf)
        hi = np.full(q, np.inf)

    def crit(theta, derivs):
        ev = evaluate(
            y,
            v,
            X,
            Zw,
            theta,
            method=method,
            link=link,
            derivs=derivs,
            logdet_xtx=logdet_xtx,
        )
        if not np.isfinite(ev.loglik):
            return ev, -np.inf
        if link == "identity" and np.any(Zw @ theta < -1e-12 * np.max(np.abs(v) + 1)):
            return ev, -np.inf  # metafor's constraint tau_i^2 >= 0
        val = ev.loglik - 0.5 * float(theta @ pen @ theta) if penalty else ev.loglik
        return ev, val

    if alpha_init is not None:
        theta = np.linalg.solve(T, np.asarray(alpha_init, float))
    else:
        theta = _start_values(y, v, X, Zw, link)
    start = theta
    theta = np.clip(theta, lo, hi)
    ev, val = crit(theta, 2)
    if not np.isfinite(val):
        theta = np.clip(_start_values(y, v, X, Zw, link), lo, hi)
        ev, val = crit(theta, 2)
    if not np.isfinite(val) and link == "identity":
        theta = _feasible_identity(Zw, lo, hi, theta)
        ev, val = crit(theta, 2)
    converged = False
    message = "maximum number of iterations reached"
    n_iter = 0
    stalls = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007
        g = ev.grad - pen @ theta
        negh = -ev.hess + pen
        free = ~(((theta <= lo) & (g < 0)) | ((theta >= hi) & (g > 0)) | (lo == hi))
        if not free.any():  # every coefficient held at a bound
            converged = True
            message = "converged (all coefficients at their bounds)"
            break
        step = np.zeros(q)
        newton_ok = False
        if free.any():
            gf = g[free]
            try:
                hf = negh[np.ix_(free, free)]
                np.linalg.cholesky(hf)  # raises unless positive definite
                step[free] = np.linalg.solve(hf, gf)
                newton_ok = True
            except np.linalg.LinAlgError:
                # not concave here: Fisher scoring (expected information)
                info = ev.info + pen
                finf = info[np.ix_(free, free)]
                ridge = 1e-10 * max(np.trace(finf), 1e-300)
                step[free] = np.linalg.solve(finf + ridge * np.eye(free.sum()), gf)
        decrement = float(g @ step)
        if newton_ok and decrement < tol and np.all(np.abs(g[free]) < 1e-3 + 1e3 * tol):
            converged = True
            message = "converged"
            # the final Newton step is nearly free and makes the optimum exact
            # to rounding (quadratic convergence)
            cand = np.clip(theta + step, lo, hi)
            ev_c, val_c = crit(cand, 2)
            if val_c >= val:
                theta, ev, val = cand, ev_c, val_c
            break
        big = np.max(np.abs(step))
        if big > 5.0 and link == "log":
            step *= 5.0 / big
        t = 1.0
        for _ in range(60):
            cand = np.clip(theta + t * step, lo, hi)
            ev_c, val_c = crit(cand, 2)
            if val_c >= val - 1e-13 * max(1.0, abs(val)):
                break
            t *= 0.5
        else:
            message = "line search failed"
            converged = bool(decrement < 1e3 * tol)
            break
        gain = val_c - val
        theta, ev, val = cand, ev_c, val_c
        if not newton_ok and 0 <= gain < 1e-3 * tol and t < 1:
            message = "no further progress"
            break
        # identity link: steps cut short by tau_i^2 >= 0 with negligible gain mean
        # the optimum is on that boundary; the constrained solver takes over
        stalls = stalls + 1 if (link == "identity" and t < 1 and gain < 1e-8) else 0
        if stalls >= 3:
            message = "stalled at the boundary tau_i^2 = 0"
            break
    if not converged and link == "identity" and bounds is None:
        # the optimum may lie on the boundary tau_i^2 = 0 of some studies, where
        # Newton steps are cut short: solve the constrained problem directly
        theta_c = _slsqp_identity(crit, theta, Zw)
        ev_c, val_c = crit(theta_c, 2)
        if val_c >= val - 1e-10:
            theta, ev, val = theta_c, ev_c, val_c
            converged = True
            message = "converged (constrained: tau_i^2 >= 0 active)"
    # final quantities
    g = ev.grad - pen @ theta
    negh = -ev.hess + pen
    alpha = T @ theta
    try:
        cov_theta = np.linalg.inv(negh)
        if not np.all(np.isfinite(cov_theta)) or np.any(np.diag(cov_theta) < 0):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        cov_theta = np.full((q, q), np.nan)
    cov_alpha = T @ cov_theta @ T.T
    hess_alpha = -np.linalg.solve(T.T, np.linalg.solve(T.T, negh).T).T if q else negh
    grad_alpha = np.linalg.solve(T.T, g) if q else g
    diverging = _diverging(ev.tau2, v, negh, T, link)
    result = LSFit(
        alpha=alpha,
        cov_alpha=cov_alpha,
        beta=ev.beta,
        cov_beta=ev.cov_beta,
        tau2=ev.tau2,
        loglik=ev.loglik,
        hat=ev.hat,
        resid=ev.resid,
        n_iter=n_iter,
        converged=converged,
        grad=grad_alpha,
        hessian=hess_alpha,
        message=message,
        diverging=diverging,
    )
    if alpha_init is None and not penalty and bounds is None:
        # The likelihood can have several maxima: also start from Hedges' tau^2
        # (metafor's start) when it differs from the DL start, keep the better.
        alt = _start_values(y, v, X, Zw, link, "he")
        # Starts within a factor of ~1.6 in tau^2 lie in the same basin.
        close = (
            np.allclose(alt, start, rtol=0.0, atol=0.5)
            if link == "log"
            else np.allclose(alt, start, rtol=0.5, atol=0.0)
        )
        if not close:
            other = fit_location_scale(
                y,
                v,
                X,
                Z,
                method=method,
                link=link,
                intercept_col=intercept_col,
                max_iter=max_iter,
                tol=tol,
                alpha_init=T @ alt,
                standardize=standardize,
            )
            if other.loglik > result.loglik:
                result = other
        if np.all(v > 0):
            # metafor's ll0check: if the homogeneous model at tau^2 = 0 beats the
            # optimum, the supremum is on that boundary; start next to it.
            fe = uni.weighted_fit(X, y, 1.0 / v)
            at_zero = (
                uni.loglik_reml(v, 0.0, fe, logdet_xtx)
                if method == "reml"
                else uni.loglik_ml(v, 0.0, fe)
            )
            if at_zero > result.loglik + 1e-9 * (1.0 + abs(at_zero)):
                near = 1e-8 * uni.variance_scale(v, y)
                other = fit_location_scale(
                    y,
                    v,
                    X,
                    Z,
                    method=method,
                    link=link,
                    intercept_col=intercept_col,
                    max_iter=max_iter,
                    tol=tol,
                    alpha_init=T @ _start_values(y, v, X, Zw, link, near),
                    standardize=standardize,
                )
                if other.loglik > result.loglik:
                    result = other
    return result


def _unit_variance(y, v, X):
    """A variance in the units of the data: mean(v), else the residual variance.

    Rounded to a power of two so that rescaling by it is exact in floating point.
    """
    ref = float(np.mean(v))
    if not ref > 0:
        if X.shape[1]:
            coef, *_ = np.linalg.lstsq(X, y, rcond=None)
            r = y - X @ coef
        else:
            r = y
        ref = float(np.mean(r * r))
    if not (np.isfinite(ref) and ref > 0):
        return 1.0
    return float(2.0 ** np.round(np.log2(ref)))


def _rescaled_identity_fit(
    y, v, X, Z, c2, *, method, penalty, bounds, alpha_init, **kw
):
    """Identity-link fit of (y / c, v / c^2) transformed back to the data's units."""
    c = np.sqrt(c2)
    if bounds is not None:
        bounds = (np.asarray(bounds[0], float) / c2, np.asarray(bounds[1], float) / c2)
    if alpha_init is not None:
        alpha_init = np.asarray(alpha_init, float) / c2
    fit = fit_location_scale(
        y / c,
        v / c2,
        X,
        Z,
        method=method,
        link="identity",
        penalty=penalty * c2 * c2,  # lambda/2 sum alpha^2 = lambda c^4/2 sum alpha_s^2
        bounds=bounds,
        alpha_init=alpha_init,
        **kw,
    )
    k, p = X.shape
    n = k - p if method == "reml" else k  # density of y/c = c * density of y
    return fit._replace(
        alpha=fit.alpha * c2,
        cov_alpha=fit.cov_alpha * (c2 * c2),
        beta=fit.beta * c,
        cov_beta=fit.cov_beta * c2,
        tau2=fit.tau2 * c2,
        loglik=fit.loglik - n * np.log(c),
        resid=fit.resid * c,
        grad=fit.grad / c2,
        hessian=fit.hessian / (c2 * c2),
    )


def _feasible_identity(Zw, lo, hi, theta):
    """Return theta within [lo, hi] with Z theta > 0 when one exists (an LP)."""
    from scipy import optimize

    q = Zw.shape[1]
    target = max(float(np.max(np.abs(Zw @ theta))), 1e-8)
    c = np.zeros(q + 1)
    c[-1] = -1.0  # maximize the smallest tau_i^2
    A = np.hstack([-Zw, np.ones((Zw.shape[0], 1))])
    bounds = [
        (None if not np.isfinite(a) else a, None if not np.isfinite(b) else b)
        for a, b in zip(lo, hi, strict=True)
    ] + [(None, target)]
    res = optimize.linprog(
        c, A_ub=A, b_ub=np.zeros(Zw.shape[0]), bounds=bounds, method="highs"
    )
    if res.status == 0 and res.x[-1] >= 0:
        return res.x[:q]
    return theta


def _slsqp_identity(crit, theta0, Zw):
    """Maximize the criterion subject to Z theta >= 0 (identity link) by SLSQP."""
    from scipy import optimize

    def fun(th):
        ev, val = crit(th, 1)
        if not np.isfinite(val):
            return 1e300, np.zeros_like(th)
        return -val, -ev.grad

    def value(th):
        return fun(th)[0]

    def jac(th):
        return fun(th)[1]

    res = optimize.minimize(
        value,
        theta0,
        jac=jac,
        method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda th: Zw @ th, "jac": lambda th: Zw}],
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    return res.x


def _diverging(tau2, v, negh, T, link):
    """Flag scale coefficients that drift to +-infinity (tau^2 -> 0 in a subgroup).

    Returns a boolean mask over alpha: the coefficients loading on the
    near-null direction of the information, when some studies have a tau^2
    that is negligible against their sampling variance.
    """
    q = negh.shape[0]
    mask = np.zeros(q, dtype=bool)
    if link != "log" or q == 0:
        return mask
    scale_ref = np.maximum(v, 1e-12 * max(float(np.max(v)), 1e-300))
    if not np.any(tau2 < 1e-7 * scale_ref):
        return mask
    try:
        evals, evecs = np.linalg.eigh(negh)
    except (np.linalg.LinAlgError, ValueError):
        return mask
    top = max(float(evals[-1]), 1e-300)
    small = evals < 1e-7 * top
    if not small.any():
        return mask
    for j in np.flatnonzero(small):
        vec = T @ evecs[:, j]
        vec = vec / np.max(np.abs(vec))
        mask |= np.abs(vec) > 0.1
    return mask


def loglik_given_tau2(y, v, X, tau2, method="reml"):
    """Return the profiled (restricted) log-likelihood for given study tau^2.

    Same criterion as :func:`evaluate` (metafor's REML constant included), for
    tau^2 that are fixed, e.g. the fitted ones (no optimisation).
    """
    k, p = X.shape
    s = v + tau2
    w = 1.0 / s
    if p:
        A = X.T @ (X * w[:, None])
        beta = np.linalg.solve(A, X.T @ (w * y))
        logdet_a = float(np.linalg.slogdet(A)[1])
    else:
        beta = np.zeros(0)
        logdet_a = 0.0
    r = y - X @ beta
    rss = float(np.sum(w * r * r))
    if method == "reml":
        logdet_xtx = float(np.linalg.slogdet(X.T @ X)[1]) if p else 0.0
        return -0.5 * ((k - p) * _LOG2PI + np.sum(np.log(s)) + logdet_a + rss) + (
            0.5 * logdet_xtx
        )
    return -0.5 * (k * _LOG2PI + np.sum(np.log(s)) + rss)


def gaussian_loglik(y, mean, var):
    """Return the sum of log N(y_i; mean_i, var_i)."""
    return float(-0.5 * np.sum(_LOG2PI + np.log(var) + (y - mean) ** 2 / var))
