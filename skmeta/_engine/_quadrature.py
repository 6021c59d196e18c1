"""Random-scale model: ln tau_i^2 = alpha_0 + s_i, s_i ~ N(0, omega^2).

The heteroscedasticity test of Viechtbauer (seed 000) compares the
random-effects model with a model whose log heterogeneity varies at random
across studies. Given the location coefficients the likelihood factorizes
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

_LOG2PI = np.log(2.0 * np.pi)


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
    S = v + np.exp(a0 + s)
    return -0.5 * (_LOG2PI + np.log(S) + r * r / S) - 0.5 * (
        _LOG2PI + 2.0 * np.log(omega) + (s / omega) ** 2
    )


def _mode_and_scale(r, v, a0, omega):
    """Locate the mode of each study's integrand and its curvature scale."""
    k = r.shape[0]
    # coarse grid (robust against multimodality), then Newton refinement
    grid = omega * np.linspace(-8.0, 8.0, 161)
    vals = _log_integrand(grid[None, :], r[:, None], v[:, None], a0, omega)
    s = grid[np.argmax(vals, axis=1)]
    for _ in range(30):
        t = np.exp(a0 + s)
        S = v + t
        g1 = -0.5 * t / S + 0.5 * r * r * t / S**2 - s / omega**2
        g2 = (
            -0.5 * (t / S - t * t / S**2)
            + 0.5 * r * r * (t / S**2 - 2.0 * t * t / S**3)
            - 1.0 / omega**2
        )
        ok = g2 < 0
        step = np.where(ok, -g1 / np.where(ok, g2, -1.0), 0.0)
        step = np.clip(step, -omega, omega)
        s = s + step
        if np.max(np.abs(step)) < 1e-10 * (1.0 + omega):
            break
    t = np.exp(a0 + s)
    S = v + t
    g2 = (
        -0.5 * (t / S - t * t / S**2)
        + 0.5 * r * r * (t / S**2 - 2.0 * t * t / S**3)
        - 1.0 / omega**2
    )
    scale = np.where(g2 < 0, 1.0 / np.sqrt(np.maximum(-g2, 1e-300)), omega)
    return s, np.broadcast_to(scale, (k,))


def study_log_marginal(r, v, a0, omega, n_nodes=20):
    """Return log f_i for residuals ``r = y - x'beta``, and an error estimate.

    Parameters
    ----------
    r, v : ndarray of shape (k,)
        Residuals and sampling variances.
    a0 : float
        alpha_0.
    omega : float
        Standard deviation of the random scale effects (> 0).
    n_nodes : int
        Nodes of the adaptive Gauss-Hermite rule.

    Returns
    -------
    logf : ndarray of shape (k,)
    err : ndarray of shape (k,)
        ``|log f(n nodes) - log f(2n nodes)|``, an estimate of the error of the
        n-node value (the 2n-node rule is far more accurate).
    """
    mode, sc = _mode_and_scale(r, v, a0, omega)

    def rule(n):
        x, w = _gh(n)
        s = mode[:, None] + np.sqrt(2.0) * sc[:, None] * x[None, :]
        lg = _log_integrand(s, r[:, None], v[:, None], a0, omega)
        return special.logsumexp(lg + x[None, :] ** 2 + np.log(w)[None, :], axis=1) + (
            np.log(np.sqrt(2.0) * sc)
        )

    lf = rule(n_nodes)
    lf2 = rule(2 * n_nodes)
    return lf2, np.abs(lf - lf2)


def random_scale_loglik(y, v, X, beta, a0, omega, n_nodes=20):
    """Return the ML log-likelihood of the random-scale model and its error bound."""
    lf, err = study_log_marginal(y - X @ beta, v, a0, omega, n_nodes)
    return float(lf.sum()), float(err.sum())


def random_scale_reml(y, v, a0, omega, n_nodes=20, n_beta=20):
    """Return the restricted log-likelihood (intercept-only location) and its error.

    beta is integrated out with a flat prior by adaptive Gauss-Hermite
    quadrature over beta; metafor's constant +1/2 log(k) is included.
    """
    k = y.shape[0]

    def h(b):
        lf, _ = study_log_marginal(y - b, v, a0, omega, n_nodes)
        return float(lf.sum())

    # mode and curvature of h in beta
    w0 = 1.0 / (v + np.exp(a0))
    b0 = float(np.sum(w0 * y) / np.sum(w0))
    res = optimize.minimize_scalar(lambda b: -h(b), bracket=(b0 - 0.1, b0 + 0.1))
    bh = float(res.x)
    eps = 1e-3 * np.sqrt(1.0 / np.sum(w0))
    curv = -(h(bh + eps) - 2.0 * h(bh) + h(bh - eps)) / eps**2
    sd = 1.0 / np.sqrt(curv) if curv > 0 else np.sqrt(1.0 / np.sum(w0))

    def rule(n):
        x, w = _gh(n)
        vals = np.array([h(bh + np.sqrt(2.0) * sd * xi) for xi in x])
        return float(
            special.logsumexp(vals + x**2 + np.log(w)) + np.log(np.sqrt(2) * sd)
        )

    l1 = rule(n_beta)
    l2 = rule(2 * n_beta)
    return l2 + 0.5 * np.log(k), abs(l1 - l2)


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
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        r = y - X @ coef
        t2 = max(float(np.mean(r * r) - np.mean(v)), 0.01 * float(np.mean(v)) + 1e-8)
        beta0, a00 = coef, np.log(t2)
    else:
        beta0, a00 = np.atleast_1d(start[0]), float(start[1])

    if method == "ml":

        def negll(th):
            ll, _ = random_scale_loglik(
                y, v, X, th[:p], th[p], np.exp(th[p + 1]), n_nodes
            )
            return -ll

        x0 = np.concatenate([beta0, [a00, np.log(0.5)]])
    else:

        def negll(th):
            ll, _ = random_scale_reml(y, v, th[0], np.exp(th[1]), n_nodes)
            return -ll

        x0 = np.array([a00, np.log(0.5)])
    best = None
    for lo in (np.log(0.5), np.log(0.05), np.log(2.0)):
        x0[-1] = lo
        res = optimize.minimize(
            negll,
            x0,
            method="Nelder-Mead",
            options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 4000},
        )
        if best is None or res.fun < best.fun:
            best = res
    th = best.x
    omega = float(np.exp(th[-1]))
    if method == "ml":
        beta = th[:p]
        ll, err = random_scale_loglik(y, v, X, beta, th[p], omega, n_nodes)
        a0 = float(th[p])
    else:
        a0 = float(th[0])
        ll, err = random_scale_reml(y, v, a0, omega, n_nodes)
        w = 1.0 / (v + np.exp(a0))
        beta = np.array([np.sum(w * y) / np.sum(w)])
    return RandomScaleFit(
        beta=beta,
        alpha0=a0,
        omega2=omega**2,
        loglik=ll,
        quad_error=err,
        n_nodes=n_nodes,
        converged=bool(best.success),
    )
