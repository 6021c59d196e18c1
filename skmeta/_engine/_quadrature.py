"""Random-scale model: ln tau_i^2 = alpha_0 + s_i, s_i ~ N(0, omega^2).

A test of heteroscedastic heterogeneity (Viechtbauer & López-López 2022)
compares the random-effects model with a model whose log heterogeneity varies at
random across studies. Given the location coefficients the likelihood factorizes
over studies,

.. math::

    f_i(\\beta, \\alpha_0, \\omega) = \\int N\\!\\left(y_i;\\, x_i^\\top\\beta,\\,
    v_i + e^{\\alpha_0 + s}\\right) \\frac{1}{\\omega}\\,
    \\phi\\!\\left(\\frac{s}{\\omega}\\right) ds,

a one-dimensional integral per study, computed by adaptive Gauss-Hermite
quadrature (Liu & Pierce 1994): the rule is centred at the mode of the
integrand and scaled by its curvature, so that n nodes integrate
``exp(polynomial of degree 2n-1)`` times the Gaussian fit exactly. The
quadrature error is estimated by comparing n and 2n nodes and is returned with
every evaluation. This is not a Laplace approximation (which is n = 1).

For REML the location coefficients are integrated out as well (flat prior,
metafor's constant +1/2 log|X'X| added), by a second adaptive Gauss-Hermite
rule over beta (intercept-only location, p = 1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import optimize, special

from skmeta._engine._gls import LOG_2PI, gaussian_logpdf, weighted_fit

#: Starting values of log omega tried by the optimizer (omega = 0.5 and 0.05):
#: the likelihood in omega can be flat near 0, where one start may stall.
_LOG_OMEGA_STARTS = (np.log(0.5), np.log(0.05))


class RandomScaleFit(NamedTuple):
    """Result of :func:`fit_random_scale`."""

    beta: np.ndarray
    alpha0: float
    omega2: float
    loglik: float
    quad_error: float
    n_nodes: int
    converged: bool


def _gh(n):
    x, w = special.roots_hermite(n)
    return x, w


def _log_integrand(s, r, v, a0, omega):
    """Return log N(r; 0, v + e^(a0+s)) + log N(s; 0, omega^2) elementwise."""
    S = v + np.exp(np.minimum(a0 + s, 700.0))
    return gaussian_logpdf(r, S) - 0.5 * (
        LOG_2PI + 2.0 * np.log(omega) + (s / omega) ** 2
    )


def _curvature(s, r, v, a0, omega):
    t = np.exp(np.minimum(a0 + s, 700.0))
    S = v + t
    g1 = -0.5 * t / S + 0.5 * r * r * t / S**2 - s / omega**2
    g2 = (
        -0.5 * (t / S - t * t / S**2)
        + 0.5 * r * r * (t / S**2 - 2.0 * t * t / S**3)
        - 1.0 / omega**2
    )
    return g1, g2


def _mode_and_scale(r, v, a0, omega):
    """Locate the mode of each integrand (any array shape) and its curvature scale."""
    # coarse grid (robust against multimodality), then safeguarded Newton
    grid = omega * np.linspace(-8.0, 8.0, 41)
    vals = _log_integrand(grid, r[..., None], v[..., None], a0, omega)
    s = grid[np.argmax(vals, axis=-1)]
    for _ in range(50):
        g1, g2 = _curvature(s, r, v, a0, omega)
        ok = g2 < 0
        step = np.where(ok, -g1 / np.where(ok, g2, -1.0), 0.05 * omega * np.sign(g1))
        step = np.clip(step, -omega, omega)
        s = s + step
        if np.max(np.abs(step)) < 1e-10 * (1.0 + omega):
            break
    _, g2 = _curvature(s, r, v, a0, omega)
    scale = np.where(g2 < 0, 1.0 / np.sqrt(np.maximum(-g2, 1e-300)), omega)
    return s, scale


def _agh(r, v, a0, omega, mode, sc, n):
    x, w = _gh(n)
    s = mode[..., None] + np.sqrt(2.0) * sc[..., None] * x
    lg = _log_integrand(s, r[..., None], v[..., None], a0, omega)
    return special.logsumexp(lg + x**2 + np.log(w), axis=-1) + np.log(np.sqrt(2.0) * sc)


def _trapezoid(r, v, a0, omega, mode, sc):
    """Trapezoid rule on the real line, and its step-doubling error estimate.

    The integrand is analytic in the strip |Im s| < pi (the nearest
    singularity of log(v + e^(a0+s))), so the rule converges geometrically,
    like exp(-2 pi^2 / h) (Trefethen & Weideman 2014); the step is at most
    0.25 and omega/4, and the range covers +-10 omega and the mode +-12 scales.
    """
    lo = np.minimum(-10.0 * omega, mode - 12.0 * sc)
    hi = np.maximum(10.0 * omega, mode + 12.0 * sc)
    hmax = min(0.25, omega / 4.0)
    n = int(np.ceil(np.max(hi - lo) / hmax)) + 1
    n += 1 - n % 2  # odd: the 2h rule uses every other node
    t = np.linspace(0.0, 1.0, n)
    h = (hi - lo) / (n - 1)
    s = lo[..., None] + (hi - lo)[..., None] * t
    lg = _log_integrand(s, r[..., None], v[..., None], a0, omega)
    wt = np.ones(n)
    wt[[0, -1]] = 0.5
    f_h = special.logsumexp(lg + np.log(wt), axis=-1) + np.log(h)
    wt2 = np.ones((n + 1) // 2)
    wt2[[0, -1]] = 0.5
    f_2h = special.logsumexp(lg[..., ::2] + np.log(wt2), axis=-1) + np.log(2 * h)
    return f_h, np.abs(f_h - f_2h)


def study_log_marginal(r, v, a0, omega, n_nodes=20, *, with_error=False, tol=1e-9):
    """Return log f_i for residuals ``r = y - x'beta`` (and an error estimate).

    Adaptive Gauss-Hermite with ``n_nodes`` nodes; its error is estimated by
    the difference to the 2n-node rule, and where that exceeds ``tol`` (large
    omega, where the integrand has a plateau and the Gaussian fit is poor) the
    integral is recomputed by the geometrically convergent trapezoid rule.

    Parameters
    ----------
    r : ndarray
        Residuals, any shape broadcastable with ``v``.
    v : ndarray
        Sampling variances.
    a0 : float
        alpha_0.
    omega : float
        Standard deviation of the random scale effects (> 0).
    n_nodes : int
        Nodes of the adaptive Gauss-Hermite rule (1 node = Laplace).
    with_error : bool
        Also return the error estimate: ``|AGH(n) - AGH(2n)|``, or the
        trapezoid rule's step-doubling difference where it was used.
    tol : float or None
        Switch to the trapezoid rule where the AGH error estimate exceeds it
        (``None``: plain AGH with ``n_nodes``, e.g. to study the Laplace case).

    Returns
    -------
    logf : ndarray
    err : ndarray
        Only when ``with_error``.
    """
    r, v = np.broadcast_arrays(np.asarray(r, float), np.asarray(v, float))
    mode, sc = _mode_and_scale(r, v, a0, omega)
    lf = _agh(r, v, a0, omega, mode, sc, n_nodes)
    if tol is None and not with_error:
        return lf
    err = np.abs(lf - _agh(r, v, a0, omega, mode, sc, 2 * n_nodes))
    if tol is not None:
        bad = err > tol
        if np.any(bad):
            lt, et = _trapezoid(r[bad], v[bad], a0, omega, mode[bad], sc[bad])
            lf = lf.copy()
            err = err.copy()
            lf[bad], err[bad] = lt, et
    if with_error:
        return lf, err
    return lf


def random_scale_loglik(
    y, v, X, beta, a0, omega, n_nodes=20, *, with_error=False, tol=1e-9
):
    """Return the ML log-likelihood of the random-scale model (and its error).

    ``tol=None`` gives the plain ``n_nodes`` adaptive rule (``n_nodes=1`` is the
    Laplace approximation), for comparisons only.
    """
    out = study_log_marginal(
        y - X @ beta, v, a0, omega, n_nodes, with_error=with_error, tol=tol
    )
    if with_error:
        return float(out[0].sum()), float(out[1].sum())
    return float(out.sum())


def random_scale_reml(
    y, v, a0, omega, n_nodes=20, n_beta=20, *, with_error=False, tol=1e-9
):
    """Return the restricted log-likelihood (intercept-only location) and its error.

    beta is integrated out with a flat prior by an adaptive Gauss-Hermite rule
    over beta (centred at the mode of the integrated ML likelihood, scaled by
    its curvature); metafor's constant +1/2 log(k) is included (``tol=None``:
    plain ``n_nodes`` rule per study, e.g. 1 = Laplace).  The error
    estimate adds the 20-vs-40-node difference of the beta rule and the
    largest study-rule error at the beta nodes.
    """
    k = y.shape[0]

    def h(b):
        b = np.atleast_1d(b)
        lf = study_log_marginal(
            y[None, :] - b[:, None], v[None, :], a0, omega, n_nodes, tol=tol
        )
        return lf.sum(axis=1)

    # centre and scale of the beta rule: start from the GLS estimate at
    # tau^2 = exp(a0), then a few parabolic (Newton) updates of the mode and
    # curvature of the integrated likelihood in beta, vectorized
    w0 = 1.0 / (v + np.exp(min(a0, 700.0)))
    bh = float(np.sum(w0 * y) / np.sum(w0))
    sd = np.sqrt(1.0 / np.sum(w0))
    for _ in range(4):
        hv = h(bh + sd * np.array([-1.0, 0.0, 1.0]))
        c2 = (hv[2] - 2.0 * hv[1] + hv[0]) / sd**2
        c1 = (hv[2] - hv[0]) / (2.0 * sd)
        if not (np.isfinite(c2) and c2 < 0):
            break
        step = float(np.clip(-c1 / c2, -3.0 * sd, 3.0 * sd))
        bh, sd_new = bh + step, 1.0 / np.sqrt(-c2)
        if abs(step) < 1e-6 * sd and abs(sd_new / sd - 1.0) < 1e-3:
            sd = sd_new
            break
        sd = sd_new

    def rule(n):
        x, w = _gh(n)
        vals = h(bh + np.sqrt(2.0) * sd * x)
        return float(
            special.logsumexp(vals + x**2 + np.log(w)) + np.log(np.sqrt(2) * sd)
        )

    l1 = rule(n_beta) + 0.5 * np.log(k)
    if not with_error:
        return l1
    # error: beta rule doubled, and the study rules doubled at the beta nodes
    l2 = rule(2 * n_beta) + 0.5 * np.log(k)
    x, _w = _gh(n_beta)
    bn = bh + np.sqrt(2.0) * sd * x
    _, err_s = study_log_marginal(
        y[None, :] - bn[:, None], v[None, :], a0, omega, n_nodes, with_error=True
    )
    return l1, abs(l1 - l2) + float(np.max(err_s.sum(axis=1)))


def fit_random_scale(y, v, X, *, method="ml", n_nodes=20, start=None):
    """Fit ln tau_i^2 = alpha_0 + s_i, s_i ~ N(0, omega^2) by ML or REML.

    Parameters
    ----------
    y, v : ndarray of shape (k,)
    X : ndarray of shape (k, p)
        Location design (REML: intercept only, p = 1, a column of ones).
    method : {"ml", "reml"}
    n_nodes : int
        Gauss-Hermite nodes per study integral (the error estimate compares
        n and 2n nodes).
    start : tuple (beta, alpha0) or None
        Starting values (default: the homogeneous fit's, via the moments).

    Returns
    -------
    RandomScaleFit
        ``quad_error`` is the estimated absolute error of ``loglik`` due to
        the quadrature.
    """
    _k, p = X.shape
    if method == "reml" and (p != 1 or not np.allclose(X[:, 0], 1.0)):
        raise ValueError("REML random-scale fit supports the intercept-only location")
    if start is None:
        ols = weighted_fit(X, y, np.ones_like(y))
        # moment start of tau^2, floored at 1% of the mean sampling variance
        # (log tau^2 must be finite) plus 1e-8 for zero sampling variances
        r = ols.resid
        t2 = max(float(np.mean(r * r) - np.mean(v)), 0.01 * float(np.mean(v)) + 1e-8)
        beta0, a00 = ols.beta, np.log(t2)
    else:
        beta0, a00 = np.atleast_1d(start[0]), float(start[1])

    if method == "ml":

        def negll(th):
            return -random_scale_loglik(
                y, v, X, th[:p], th[p], np.exp(th[p + 1]), n_nodes
            )

        x0 = np.concatenate([beta0, [a00, _LOG_OMEGA_STARTS[0]]])
    else:

        def negll(th):
            return -random_scale_reml(y, v, th[0], np.exp(th[1]), n_nodes)

        x0 = np.array([a00, _LOG_OMEGA_STARTS[0]])
    best = None
    for log_omega in _LOG_OMEGA_STARTS:
        x0[-1] = log_omega
        res = optimize.minimize(
            negll,
            x0,
            method="Nelder-Mead",
            options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000},
        )
        if best is None or res.fun < best.fun:
            best = res
    th = best.x
    omega = float(np.exp(th[-1]))
    if method == "ml":
        beta = th[:p]
        ll, err = random_scale_loglik(
            y, v, X, beta, th[p], omega, n_nodes, with_error=True
        )
        a0 = float(th[p])
    else:
        a0 = float(th[0])
        ll, err = random_scale_reml(y, v, a0, omega, n_nodes, with_error=True)
        beta = weighted_fit(X, y, 1.0 / (v + np.exp(a0))).beta
    return RandomScaleFit(
        beta=beta,
        alpha0=a0,
        omega2=omega**2,
        loglik=ll,
        quad_error=err,
        n_nodes=n_nodes,
        converged=bool(best.success),
    )
