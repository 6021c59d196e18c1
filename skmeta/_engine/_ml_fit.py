r"""Fitting the multilevel model: the (restricted) likelihood maximized and certified.

The fit (:func:`fit_multilevel`) works on a standardized problem
(:func:`standardize`: y centred by a weighted least-squares fit and scaled by a
robust scale, moderators centred and scaled, slope covariates scaled, and
centred at unstructured levels), runs a projected BFGS on box-constrained
parameters (:mod:`skmeta._engine._ml_structures`) from several starts, and
certifies every new best optimum with projected Newton steps on a
finite-difference Hessian of the analytic gradient: the Karush-Kuhn-Tucker
conditions hold and the predicted gain of a Newton step on the free parameters
is below the tolerance. The certified optimum's quadratic model then ends the
basin searches that reach it. The likelihood and its gradient come from
:mod:`skmeta._engine._multilevel`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import optimize, special

from skmeta._engine._gls import weighted_fit
from skmeta._engine._ml_structures import (
    make_cov_spec,
    parameter_bounds,
    sigma_and_jac,
    theta_from_sigma,
)
from skmeta._engine._multilevel import (
    Blups,
    InterceptDesign,
    NestedDesign,
    evaluate,
    prepare_design,
    prepare_intercepts,
)

__all__ = [
    "MultilevelFit",
    "ScaledProblem",
    "fit_multilevel",
    "profile_ci",
    "standardize",
]

#: Sampling variances spread over more than this factor (max/median or
#: median/min, or a zero) make the likelihood steep near the boundary: the fit
#: then also scans the profile along a log-spaced grid of heterogeneity.
_EXTREME_WEIGHT_RATIO = 1e6

#: Log-spaced grid of total heterogeneity (relative to the data's) scanned for a
#: start when the sampling variances are extreme.
_BRACKET_GRID = np.geomspace(1e-8, 1e2, 41)

#: Quasi-Newton options: the first start runs to a working tolerance, the others
#: only locate their basin; the best optimum is then certified by Newton steps.
_FIRST_RUN = {"ftol": 1e-9, "gtol": 1e-6}
_BASIN_RUN = {"ftol": 1e-8, "gtol": 1e-5}

#: A basin search that comes within this distance of a certified optimum
#: (relative to 0.1 + |x*| in the standardized parameters), where that optimum's
#: quadratic model predicts the objective to 25%, has found that optimum.
_BASIN_SPAN = 0.5

#: Relative step of the forward-difference Hessian (of the analytic gradient):
#: balances truncation (~h) and rounding (~eps/h) error at ~1e-8 relative.
_FD_STEP = 1e-7

#: Newton steps of the certification.
_MAX_NEWTON_STEPS = 100

#: A Hessian eigenvalue below -this * max(|eigenvalues|, 1) is negative
#: curvature, not finite-difference noise (~1e-8 relative, see _FD_STEP).
_NEGATIVE_CURVATURE_RTOL = 1e-6

#: Steps (relative to max(1, |theta|)) tried along a direction of negative
#: curvature.
_ESCAPE_STEPS = np.geomspace(1e-8, 1.0, 17)

#: When the Newton steps stall, a predicted log-likelihood gain up to this still
#: counts as converged: likelihood-ratio statistics and information criteria
#: are reported to 4 decimals, and a gain of 1e-6 changes none of them.
_CONVERGED_GAIN = 1e-6

#: Distinct local optima differ by more than this (absolute, in log-likelihood
#: units) or this fraction of the log-likelihood.
_OPTIMA_ATOL = 1e-4
_OPTIMA_RTOL = 1e-8


# --------------------------------------------------------------------------
# objective on the parameters
# --------------------------------------------------------------------------
def _split(theta, specs):
    out, i = [], 0
    for s in specs:
        out.append(theta[i : i + s.n_params])
        i += s.n_params
    return out


def _sigmas(theta, specs):
    """(Sigma_l, d Sigma_l / d theta_l) per level, or None if some Sigma_l is not
    positive semi-definite."""
    sig, jacs = [], []
    for spec, th in zip(specs, _split(theta, specs), strict=True):
        S, J = sigma_and_jac(spec, th)
        if spec.kind == "sdcorr" and spec.q > 1:
            if np.linalg.eigvalsh(S)[0] < -1e-12 * max(np.trace(S), 1e-300):
                return None
        sig.append(S)
        jacs.append(J)
    return sig, jacs


def _objective(theta, design, specs, reml):
    """Negative (restricted) log-likelihood and its gradient in theta."""
    sj = _sigmas(theta, specs)
    if sj is None:
        return np.inf, np.zeros_like(theta)
    res = evaluate(design, sj[0], reml)
    if not np.isfinite(res.loglik):
        return np.inf, np.zeros_like(theta)
    if all(spec.kind == "variance" for spec in specs):
        # d Sigma / d theta = 1: the gradient in the variances themselves
        return -res.loglik, -np.array([G[0, 0] for G in res.grads])
    g = np.concatenate(
        [
            np.tensordot(G, J, axes=([0, 1], [0, 1]))
            for G, J in zip(res.grads, sj[1], strict=True)
        ]
    )
    return -res.loglik, -g


# --------------------------------------------------------------------------
# the standardized problem
# --------------------------------------------------------------------------
class ScaledProblem(NamedTuple):
    """The fit's standardized problem and the map back to the data's scale.

    y is centred by a weighted least-squares fit (``coef_offset``) and divided by
    ``scale``; the moderators are centred and scaled (``coef_map``); the
    random-effects design rows of level l are mapped to z_s = T_l z
    (``z_maps``: slope covariates scaled, and centred where the structure is
    unstructured, which makes it an exact reparametrization). Then beta =
    coef_offset + scale * coef_map @ beta_s, Sigma_l = scale^2 T_l^T Sigma_s T_l,
    a BLUP u = scale T_l^T u_s, and the (restricted) log-likelihood is ll_s -
    ``loglik_shift``.
    """

    design: InterceptDesign | NestedDesign
    specs: tuple
    reml: bool
    scale: float
    loglik_shift: float
    coef_map: np.ndarray
    coef_offset: np.ndarray
    z_maps: tuple
    lower: np.ndarray
    upper: np.ndarray
    extreme_weights: bool


def _robust_scale(y, v):
    """A scale of y and its sampling errors that one extreme variance cannot set."""
    positive = v[v > 0]
    typical_v = float(np.median(positive)) if positive.size else 0.0
    c2 = float(np.var(y)) + typical_v
    return float(np.sqrt(c2)) if np.isfinite(c2) and c2 > 0 else 1.0


def _extreme_weights(v):
    positive = v[v > 0]
    if positive.size < v.size:
        return True
    med = float(np.median(v))
    return (
        v.max() > _EXTREME_WEIGHT_RATIO * med or med > _EXTREME_WEIGHT_RATIO * v.min()
    )


def _moderator_map(X):
    """S such that X S has centred (if there is an intercept) unit-scale columns."""
    p = X.shape[1]
    S = np.eye(p)
    if p == 0:
        return S
    ones = np.flatnonzero(np.all(X == 1.0, axis=0))
    for j in range(p):
        if ones.size and j == ones[0]:
            continue
        col = X[:, j]
        if ones.size:
            mean = float(col.mean())
            sd = float(np.std(col))
            S[ones[0], j] = -mean / sd if sd > 0 else 0.0
        else:
            sd = float(np.sqrt(np.mean(col**2)))
        if sd > 0:
            S[j, j] = 1.0 / sd
    return S


def _slope_maps(Zlev, specs):
    """Per level, T_l (q, q) with z_s = T_l z, or None (random intercept)."""
    out = []
    for Z, spec in zip(Zlev, specs, strict=True):
        if Z is None:
            out.append(None)
            continue
        d = Z.std(axis=0)
        d[0] = 1.0
        d[d <= 0] = 1.0
        if spec.ties_sds:
            # SDs constrained equal across columns: keep Z's own units
            d = np.ones_like(d)
        T = np.diag(1.0 / d)
        if spec.kind == "unstructured":
            # z_s = [1, (z - m) / d]: any PSD Sigma maps to a PSD Sigma_s
            T[1:, 0] = -Z[:, 1:].mean(axis=0) / d[1:]
        out.append(T)
    return tuple(out)


def standardize(y, v, X, codes, Zlev, structures, *, sampling=None, reml=True):
    """Build the :class:`ScaledProblem` of a fit."""
    k, p = X.shape
    specs = [
        make_cov_spec(st, 1 if Z is None else Z.shape[1])
        for st, Z in zip(structures, Zlev, strict=True)
    ]
    offset = np.zeros(p)
    if p:
        # zero variances get a weight far above the others' (the fit passes
        # through them, as the GLS fit does as the heterogeneity vanishes)
        positive = v[v > 0]
        floor = 1e-12 * (float(np.median(positive)) if positive.size else 1.0)
        offset = weighted_fit(X, y, 1.0 / np.maximum(v, floor)).beta
    y1 = y - X @ offset
    c = _robust_scale(y1, v)
    S = _moderator_map(X)
    Xs = X @ S
    maps = _slope_maps(Zlev, specs)
    Zs = [None if Z is None else Z @ T.T for Z, T in zip(Zlev, maps, strict=True)]
    # fixed SDs on the standardized scale (sdcorr structures are only scaled)
    specs_s = tuple(
        spec.scaled((np.ones(spec.q) if T is None else 1.0 / np.diag(T)) / c)
        for spec, T in zip(specs, maps, strict=True)
    )
    samp_s = None if sampling is None else sampling.scaled(1.0 / c**2)
    design = None
    if all(z is None for z in Zs):
        design = prepare_intercepts(y1 / c, v / c**2, Xs, codes, samp_s)
    if design is None:
        design = prepare_design(y1 / c, v / c**2, Xs, codes, Zs, samp_s)
    bounds = [parameter_bounds(s) for s in specs_s]
    lower = np.concatenate([b[0] for b in bounds]) if bounds else np.zeros(0)
    upper = np.concatenate([b[1] for b in bounds]) if bounds else np.zeros(0)
    return ScaledProblem(
        design,
        specs_s,
        reml,
        c,
        (k - p * reml) * np.log(c),
        S,
        offset,
        maps,
        lower,
        upper,
        _extreme_weights(v),
    )


def _to_data_scale(problem, sigmas_s, res):
    """Sigmas, beta, cov, loglik and BLUPs on the data's scale."""
    c = problem.scale
    sigmas = [
        c**2 * S if T is None else c**2 * (T.T @ S @ T)
        for S, T in zip(sigmas_s, problem.z_maps, strict=True)
    ]
    M = problem.coef_map
    beta = problem.coef_offset + c * (M @ res.beta)
    cov = c**2 * (M @ res.cov @ M.T)
    blups = None
    if res.blups is not None:
        blups = []
        for bl, T in zip(res.blups, problem.z_maps, strict=True):
            if T is None:
                blups.append(Blups(c * bl.estimate, c * bl.se))
                continue
            pev = c**2 * np.einsum("ba,gbc,cd->gad", T, bl.pev, T)
            se = np.sqrt(np.maximum(np.diagonal(pev, axis1=1, axis2=2), 0.0))
            blups.append(Blups(c * bl.estimate @ T, se, pev))
    return sigmas, beta, cov, res.loglik - problem.loglik_shift, blups


# --------------------------------------------------------------------------
# starting values
# --------------------------------------------------------------------------
def _total_heterogeneity(problem):
    """Moment-type total heterogeneity on the standardized scale."""
    design = problem.design
    if isinstance(design, InterceptDesign):
        r = design.A[:, -1]
        v = design.v
    else:
        real = np.concatenate([b.rows.ravel() >= 0 for b in design.buckets])
        r = np.concatenate([b.y.ravel() for b in design.buckets])[real]
        v = np.concatenate([b.v.ravel() for b in design.buckets])[real]
    # y is centred by the weighted fit: r are its residuals
    spread = float(np.mean(r**2))
    typical = float(np.median(v))
    return max(spread - typical, 0.05 * spread, 1e-8)


def _theta_for_shares(problem, shares, total, corr):
    """Parameters of a start: each level's intercept and slope variances are its
    share of the total, with correlation ``corr``, on the scaled but uncentred
    covariates (then mapped to the centred ones of unstructured levels)."""
    th = []
    for lev, spec in enumerate(problem.specs):
        q = spec.q
        S = np.full((q, q), corr if q > 1 else 0.0) * shares[lev] * total
        S[np.diag_indices(q)] = shares[lev] * total
        T = problem.z_maps[lev]
        if T is not None:
            # z_s = A z_u, z_u the scaled covariates: Sigma_s = A^-T Sigma_u A^-1
            A_inv = np.linalg.inv(T / np.diag(T)[None, :])
            S = A_inv.T @ S @ A_inv
        th.append(theta_from_sigma(spec, S))
    return np.concatenate(th) if th else np.zeros(0)


def _starts(problem, n_starts, rng):
    """Starting values: the total heterogeneity split over the levels.

    ``n_starts`` interior splits (equal, then concentrated on each level in turn,
    then random), then the boundary starts (one level at zero, and all of
    them), with slope correlations cycling through 0, 0.5, -0.5, 0.9, -0.9.
    Returns ``(starts, n_interior, corner)``: ``corner`` has every variance at
    0 (the homogeneous model), which is checked rather than searched from.
    """
    total = _total_heterogeneity(problem)
    L = len(problem.specs)
    shares = [np.full(L, 1.0 / L)]
    for lev in range(L):
        e = np.full(L, 0.1 / max(L - 1, 1))
        e[lev] = 0.9 if L > 1 else 1.0
        shares.append(e)
    while len(shares) < n_starts:
        shares.append(rng.dirichlet(np.ones(L)))
    shares = shares[: max(n_starts, 1)]
    n_interior = len(shares)
    # The likelihood can have an interior local maximum while the global one is
    # on the boundary (metafor's ll0check for the univariate model).
    if L > 1:
        for lev in range(L):
            e = np.full(L, 1.0 / (L - 1))
            e[lev] = 0.0
            shares.append(e)
    corr_options = (0.0, 0.5, -0.5, 0.9, -0.9)
    starts = [
        _theta_for_shares(problem, sh, total, corr_options[i % len(corr_options)])
        for i, sh in enumerate(shares)
    ]
    if problem.extreme_weights:
        starts.insert(1, _bracketing_start(problem, total))
        n_interior += 1
    return starts, n_interior, _theta_for_shares(problem, np.zeros(L), total, 0.0)


def _bracketing_start(problem, total):
    """Best point of the profile along a log-spaced grid of total heterogeneity.

    With extreme sampling variances the likelihood is steep near the boundary
    and can have a distant interior maximum that a local start misses: the
    scan brackets it (each level alone, and all levels equally).
    """
    L = len(problem.specs)
    rays = [np.full(L, 1.0 / L)] + [np.eye(L)[lev] for lev in range(L) if L > 1]
    best, best_theta = np.inf, None
    for ray in rays:
        for t in _BRACKET_GRID:
            th = _theta_for_shares(problem, ray, t * total, 0.0)
            f, _ = _objective(th, problem.design, problem.specs, problem.reml)
            if f < best:
                best, best_theta = f, th
    if best_theta is None:
        return _theta_for_shares(problem, np.full(L, 1.0 / L), total, 0.0)
    return best_theta


# --------------------------------------------------------------------------
# optimization and certification
# --------------------------------------------------------------------------
class _Optimum(NamedTuple):
    """A certified optimum: parameters, f, gradient and (finite-difference)
    Hessian, whose local quadratic model identifies its basin."""

    x: np.ndarray
    f: float
    g: np.ndarray
    H: np.ndarray


def _in_basin(x, f, optimum):
    """Whether (x, f) lies where the quadratic model of ``optimum`` holds: x
    within :data:`_BASIN_SPAN` of it (relative to 0.1 + |x*|, the parameters
    being standardized) and f - f* within 25% of the model's
    g'(x - x*) + (x - x*)'H(x - x*)/2 (the gradient term covers active bounds).
    """
    delta = x - optimum.x
    span = _BASIN_SPAN * (0.1 + float(np.max(np.abs(optimum.x))))
    if np.max(np.abs(delta)) > span:
        return False
    q = float(optimum.g @ delta + 0.5 * delta @ optimum.H @ delta)
    excess = f - optimum.f
    return excess >= 0.0 and abs(excess - q) <= 0.25 * max(q, 0.0)


class _Run(NamedTuple):
    """Result of :func:`_projected_bfgs`."""

    x: np.ndarray
    fun: float
    nit: int
    success: bool
    hinv: np.ndarray | None = None


def _steepest_scale(x, pg):
    """A steepest-descent inverse Hessian whose first step moves no parameter by
    more than half its magnitude (plus 0.05: the parameters are standardized)."""
    size = 0.5 * float(np.max(np.abs(x), initial=0.0)) + 0.05
    return np.eye(x.size) * (size / max(float(np.max(np.abs(pg))), 1e-300))


def _projected_bfgs(fg, x, lower, upper, max_iter, ftol, gtol, known=(), hinv0=None):
    """Minimize f subject to box constraints by projected BFGS.

    Parameters at a bound whose gradient points outward are held fixed; the
    others take quasi-Newton steps with a projected backtracking (Armijo) line
    search; the inverse-Hessian approximation is restarted when the active set
    changes. For the handful of variance parameters of a multilevel model this
    is all numpy on tiny matrices (scipy's L-BFGS-B calls threaded BLAS at
    every iteration, whose wake-up latency dominates on a busy machine).
    Stops when the projected gradient is below ``gtol`` (relative to
    1 + |x|) or f changes by at most ``ftol * max(1, |f|)``, or (a basin
    search) when x enters the basin of an optimum in ``known``
    (:class:`_Optimum`, see :func:`_in_basin`), which it then returns.
    ``hinv0`` is a first inverse Hessian approximation (e.g. from a run on the
    same problem).
    """
    x = np.clip(np.asarray(x, dtype=float), lower, upper)
    f, g = fg(x)
    if not np.isfinite(f):
        return _Run(x, f, 0, False)
    n = x.size
    Hinv = None if hinv0 is None else hinv0.copy()
    fresh = hinv0 is None
    active_prev = None
    for it in range(1, max_iter + 1):
        active = ((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0))
        pg = np.where(active, 0.0, g)
        if np.max(np.abs(pg) * (1.0 + np.abs(x)), initial=0.0) <= gtol:
            return _Run(x, f, it, True, Hinv)
        changed = active_prev is not None and np.any(active != active_prev)
        if Hinv is None or changed:
            Hinv = _steepest_scale(x, pg)
            fresh = True
        active_prev = active
        d = np.where(active, 0.0, -(Hinv @ pg))
        if it == 1 and hinv0 is not None:
            # a borrowed approximation: cap the first step as a steepest one
            cap = _steepest_scale(x, pg)[0, 0] * float(np.max(np.abs(pg)))
            if np.max(np.abs(d)) > cap:
                Hinv = Hinv * (cap / np.max(np.abs(d)))
                d = np.where(active, 0.0, -(Hinv @ pg))
        if float(g @ d) >= 0:
            Hinv = _steepest_scale(x, pg)
            fresh = True
            d = -(Hinv @ pg)
        alpha = 1.0
        for _ in range(40):
            xn = np.clip(x + alpha * d, lower, upper)
            fn, gn = fg(xn)
            slope = float(g @ (xn - x))
            if np.isfinite(fn) and fn <= f + 1e-4 * slope:
                break
            # backtrack to the minimum of the quadratic through f, its slope
            # and fn along the step, within [0.1, 0.5] of the step
            shrink = 0.5
            if np.isfinite(fn) and slope < 0:
                shrink = -slope / (2.0 * (fn - f - slope))
            alpha *= min(max(shrink, 0.1), 0.5)
        else:
            return _Run(x, f, it, False, Hinv)
        s_, y_ = xn - x, gn - g
        sy = float(s_ @ y_)
        if sy > 1e-12 * float(np.linalg.norm(s_) * np.linalg.norm(y_)):
            if fresh:  # Shanno-Phua scaling of the first approximation
                Hinv = np.eye(n) * (sy / float(y_ @ y_))
                fresh = False
            rho = 1.0 / sy
            V = np.eye(n) - rho * np.outer(s_, y_)
            Hinv = V @ Hinv @ V.T + rho * np.outer(s_, s_)
        # a small decrease counts only after a full quasi-Newton step (not a
        # step the line search had to shorten)
        done = alpha == 1.0 and f - fn <= ftol * max(1.0, abs(f), abs(fn))
        x, f, g = xn, fn, gn
        if done:
            return _Run(x, f, it, True, Hinv)
        for optimum in known:
            if _in_basin(x, f, optimum):
                return _Run(optimum.x, optimum.f, it, True, Hinv)
    return _Run(x, f, max_iter, False, Hinv)


def _minimize(problem, theta0, max_iter, options, known=(), hinv0=None):
    def fg(t):
        return _objective(t, problem.design, problem.specs, problem.reml)

    return _projected_bfgs(
        fg,
        theta0,
        problem.lower,
        problem.upper,
        max_iter,
        **options,
        known=known,
        hinv0=hinv0,
    )


def _fd_hessian(fg, theta, g, lower):
    """Hessian of f by forward differences of its analytic gradient.

    Forward differences cost one gradient per parameter and never leave the
    feasible box (parameters are only bounded below). A variance or SD just
    above its bound 0 gets a step relative to its own size: with a zero sampling
    variance the likelihood varies on the scale of the variance itself there.
    Returns None when a gradient evaluation is not finite.
    """
    n = theta.size
    H = np.empty((n, n))
    for i in range(n):
        room = theta[i] - lower[i]
        size = min(room, 1.0) if 0.0 < room < 1.0 else max(abs(theta[i]), 1.0)
        h = _FD_STEP * size
        up = theta.copy()
        up[i] += h
        f_up, g_up = fg(up)
        if not np.isfinite(f_up):
            return None
        H[:, i] = (g_up - g) / h
    return 0.5 * (H + H.T)


def _newton_gain(H, g):
    """Predicted decrease of f from a Newton step, ``g' H^-1 g / 2`` (H is made
    positive definite by taking absolute eigenvalues with a floor)."""
    if g.size == 0:
        return 0.0, np.zeros(0)
    w, U = np.linalg.eigh(H)
    floor = 1e-10 * max(float(np.max(np.abs(w))), 1e-300)
    w = np.maximum(np.abs(w), floor)
    ug = U.T @ g
    return float(np.sum(ug**2 / w) / 2.0), -(U @ (ug / w))


def _escape(fg, theta, f, direction, lower, upper):
    """Best feasible point along +-direction, if better than f.

    Log-spaced steps relative to max(1, |theta|) and to the smallest nonzero
    parameter on the direction (a variance just above 0 lives on its own scale).
    """
    best = None
    span = max(1.0, float(np.linalg.norm(theta)))
    on = (np.abs(direction) > 0) & (theta != 0)
    small = float(np.min(np.abs(theta[on]))) if on.any() else span
    steps = np.unique(np.concatenate([_ESCAPE_STEPS * span, _ESCAPE_STEPS * small]))
    for sign in (1.0, -1.0):
        for t in steps:
            trial = np.clip(theta + sign * t * direction, lower, upper)
            f_t, g_t = fg(trial)
            if np.isfinite(f_t) and f_t < f and (best is None or f_t < best[1]):
                best = (trial, f_t, g_t)
    return best


def _certify(problem, theta, tol, max_steps, max_iter):
    """Projected Newton steps until the Karush-Kuhn-Tucker conditions hold.

    A parameter at its lower bound whose gradient points outward is active.
    On the others the Hessian must be positive semi-definite (otherwise the
    point is a saddle, e.g. a slope SD at 0 whose variance should grow: the
    fit moves along the direction of negative curvature and continues), and the
    predicted gain of a Newton step is driven below ``tol * (1 + |f|)`` (a
    relative change of the log-likelihood). When the steps stall (rounding, or
    a long flat valley of a poorly identified parameter) the optimum still
    counts as converged if the predicted gain is at most
    :data:`_CONVERGED_GAIN`: a change of the log-likelihood below the precision
    of any likelihood-ratio statistic or information criterion. Returns
    ``(theta, f, converged, steps, optimum)`` with the :class:`_Optimum` (None
    when the Hessian could not be formed).
    """
    lower, upper = problem.lower, problem.upper

    def fg(t):
        return _objective(t, problem.design, problem.specs, problem.reml)

    f, g = fg(theta)
    if not np.isfinite(f):
        return theta, f, False, 0, None
    gain = np.inf
    H = None

    def done(converged, steps):
        optimum = None if H is None else _Optimum(theta, f, g, H)
        return theta, f, converged, steps, optimum

    for step in range(max_steps + 1):
        target = tol * (1.0 + abs(f))
        free = ~((theta <= lower) & (g > 0))
        H = _fd_hessian(fg, theta, g, lower)
        if H is None:
            return done(False, step)
        HF = H[np.ix_(free, free)]
        w, U = np.linalg.eigh(HF) if HF.size else (np.zeros(0), None)
        if w.size and w[0] < -_NEGATIVE_CURVATURE_RTOL * max(np.abs(w).max(), 1.0):
            if step == max_steps:
                return done(False, step)
            full = np.zeros_like(theta)
            full[free] = U[:, 0]
            moved = _escape(fg, theta, f, full, lower, upper)
            if moved is None:
                # no better point along the negative curvature at any scale:
                # it is rounding noise of f (e.g. the cancelling log-determinants
                # of a zero sampling variance as tau^2 -> 0), and this point is
                # a minimum to that precision
                return done(True, step)
            # from the escaped point, BFGS follows the (often curved) valley
            res = _minimize(problem, moved[0], max_iter, _FIRST_RUN)
            theta = res.x if np.isfinite(res.fun) and res.fun < moved[1] else moved[0]
            f, g = fg(theta)
            continue
        gain, direction = _newton_gain(HF, g[free])
        certified = gain <= target
        if step == max_steps and not certified:
            break
        full = np.zeros_like(theta)
        full[free] = direction
        alpha = 1.0
        for _ in range(30):
            trial = np.clip(theta + alpha * full, lower, upper)
            f_t, g_t = fg(trial)
            if np.isfinite(f_t) and f_t < f:
                theta, f, g = trial, f_t, g_t
                break
            alpha *= 0.5
        else:
            if certified:
                return done(True, step)
            break  # no descent along the Newton direction: flat to rounding
        if certified:
            # one more (quadratically convergent) step polishes the estimates
            # well below the tolerance of the log-likelihood
            return done(True, step + 1)
    return done(gain <= max(tol * (1.0 + abs(f)), _CONVERGED_GAIN), max_steps)


class MultilevelFit(NamedTuple):
    """Result of :func:`fit_multilevel`.

    Attributes
    ----------
    sigmas : list of ndarray
        Fitted (q_l, q_l) covariance matrices, data scale.
    beta, cov : ndarray
        Fixed effects and (X' V^-1 X)^-1.
    loglik : float
        Maximized (restricted) log-likelihood.
    converged : bool
        Whether the certification (Karush-Kuhn-Tucker conditions) succeeded.
    n_iter : int
        Optimizer iterations (all starts) plus Newton steps.
    optima : list of float
        Distinct local maxima reached from the starts, best first.
    specs : list of CovSpec
        The covariance structures (data scale).
    blups : list of Blups
        Per level.
    problem : ScaledProblem
        The standardized problem (for profiles and refits).
    theta : ndarray
        The optimum's parameters on the standardized scale.
    """

    sigmas: list
    beta: np.ndarray
    cov: np.ndarray
    loglik: float
    converged: bool
    n_iter: int
    optima: list
    specs: list
    blups: list
    problem: ScaledProblem
    theta: np.ndarray


def _is_kkt_point(problem, theta):
    """Whether f is finite at ``theta`` and no parameter can decrease it to first
    order (parameters at their lower bound with an outward gradient, the others
    with a zero gradient to rounding)."""
    f, g = _objective(theta, problem.design, problem.specs, problem.reml)
    if not np.isfinite(f):
        return False
    at_bound = theta <= problem.lower
    scale = 1e-8 * (1.0 + abs(f))
    return bool(np.all(np.where(at_bound, g >= 0, np.abs(g) <= scale)))


def _distinct_optima(problem, runs, best, max_iter):
    """Distinct local optima, best first (log-likelihood scale).

    Basin searches stop early, so close values are the same optimum; a run that
    ends clearly below the best is polished to the working tolerance before its
    value is reported. A boundary start counts only when it gives the maximum.
    """
    shift = problem.loglik_shift
    same = max(_OPTIMA_ATOL, _OPTIMA_RTOL * abs(best))
    optima = [float(-best - shift)]
    for f, x, at_bound in sorted(runs, key=lambda r: r[0]):
        if at_bound or -f - shift >= optima[-1] - same:
            continue
        polished = _minimize(problem, x, max_iter, _FIRST_RUN)
        val = -min(f, polished.fun) - shift
        if val < optima[-1] - same:
            optima.append(round(val, 6))
    return optima


def _search(problem, starts, n_interior, corner, tol, max_iter):
    """Multi-start search; every new best optimum is certified (:func:`_certify`)
    and its quadratic model then ends the basin searches that reach it.

    Returns ``(theta, f, converged, n_iter, runs)`` with ``runs`` the list of
    ``(f, x, from_boundary_start)`` of the searches.
    """
    reml = problem.reml
    if problem.lower.size == 0:
        f, _ = _objective(starts[0], problem.design, problem.specs, reml)
        return starts[0], float(f), True, 1, [(float(f), starts[0], False)]
    runs, known = [], []
    best = None  # (f, theta, converged)
    n_iter = 0
    first_hinv = None
    for i, th0 in enumerate(starts):
        res = _minimize(
            problem,
            th0,
            max_iter,
            _FIRST_RUN if i == 0 else _BASIN_RUN,
            known,
            hinv0=first_hinv if i < n_interior else None,
        )
        n_iter += int(res.nit)
        if i == 0:
            # the curvature learnt by the first run starts the basin searches
            first_hinv = res.hinv
        if not np.isfinite(res.fun):
            continue
        x, f = res.x, float(res.fun)
        if best is None or f < best[0] - 1e-9 * (1.0 + abs(best[0])):
            x, f, conv, steps, optimum = _certify(
                problem, x, tol, min(max_iter, _MAX_NEWTON_STEPS), max_iter
            )
            n_iter += steps
            best = (f, x, conv)
            if optimum is not None:
                known.append(optimum)
        runs.append((f, x, i >= n_interior))
    if _is_kkt_point(problem, corner):
        # every variance at 0 is a local maximum (metafor's ll0check)
        f0, _ = _objective(corner, problem.design, problem.specs, reml)
        runs.append((float(f0), corner, True))
        if best is None or f0 < best[0]:
            best = (float(f0), corner, True)
    if best is None:
        raise ValueError("could not find a starting point with a finite likelihood")
    return best[1], best[0], best[2], n_iter, runs


def fit_multilevel(
    y,
    v,
    X,
    codes,
    Zlev,
    structures,
    *,
    sampling=None,
    reml=True,
    max_iter=500,
    tol=1e-10,
    n_starts=3,
    random_state=0,
):
    """Fit the multilevel model by (RE)ML at the global optimum over several starts.

    The problem is standardized (:func:`standardize`) so that the optimizer
    works on O(1) parameters; the estimates are transformed back exactly.
    Projected BFGS with the analytic gradient and box constraints (variances
    and SDs >= 0) runs from the starts of :func:`_starts`; the first start to
    the working tolerance, the others only to locate their basin (they stop
    once they reach an optimum already found). The best optimum is
    certified by projected Newton steps (:func:`_certify`). All distinct local
    optima reached are returned (``optima``, best first), so that callers can
    see when the likelihood is multimodal.

    Parameters
    ----------
    y, v : ndarray of shape (k,)
        Effect sizes and sampling variances.
    X : ndarray of shape (k, p)
        Fixed-effects design (with its intercept column, if any).
    codes : ndarray of shape (k, L)
        Nested group codes from :func:`encode_nested_groups`.
    Zlev : list of L arrays (k, q_l) or None
        Random-effects design per level (first column = ones); None = random
        intercept only.
    structures : list of L structure specs (see :func:`make_cov_spec`).
    sampling : BlockCovariance or None
        Correlated sampling errors within the outermost groups.
    reml : bool
    max_iter : int
        Iterations per quasi-Newton run (and bound on the Newton steps).
    tol : float
        Relative tolerance of the certification (predicted log-likelihood gain).
    n_starts : int
        Interior starts (boundary starts are added).
    random_state : int
        Seed of the random splits used beyond the deterministic starts.

    Returns
    -------
    MultilevelFit
    """
    problem = standardize(
        y, v, X, codes, Zlev, structures, sampling=sampling, reml=reml
    )
    starts, n_interior, corner = _starts(
        problem, n_starts, np.random.default_rng(random_state)
    )
    theta, best_f, converged, n_iter, runs = _search(
        problem, starts, n_interior, corner, tol, max_iter
    )
    sigmas_s, _ = _sigmas(theta, problem.specs)
    res = evaluate(problem.design, sigmas_s, reml, blups=True)
    sigmas, beta, cov, loglik, blups = _to_data_scale(problem, sigmas_s, res)
    specs = [
        make_cov_spec(st, 1 if Z is None else Z.shape[1])
        for st, Z in zip(structures, Zlev, strict=True)
    ]
    return MultilevelFit(
        sigmas,
        beta,
        cov,
        float(loglik),
        bool(converged),
        max(n_iter, 1),
        _distinct_optima(problem, runs, best_f, max_iter),
        specs,
        blups,
        problem,
        theta,
    )


# --------------------------------------------------------------------------
# profile likelihood
# --------------------------------------------------------------------------
def profile_ci(fit, level, confidence_level):
    """Profile-likelihood CI for the random-intercept variance of one level.

    The level's intercept SD is fixed on a grid and the other parameters
    re-maximized (on the fit's standardized problem); the bounds solve
    2 (ll_max - ll_p(sigma2_l)) = chi2_1(confidence_level) (Brent's method).
    Only for levels whose structure gives the intercept SD a parameter of its own
    (``"independent"`` or a custom free SD, q_l = 1 for ``"identity"`` /
    ``"unstructured"``).

    Returns
    -------
    (lower, upper) : float
        Bounds for sigma2_l on the data scale.
    """
    problem = fit.problem
    found = problem.specs[level].intercept_parameter()
    if found is None:
        raise ValueError(
            "a profile-likelihood interval needs a level whose intercept variance "
            "is a free parameter of its own (not fixed or shared with slopes)"
        )
    i, is_variance = found
    idx = int(np.cumsum([0] + [s.n_params for s in problem.specs])[level] + i)
    crit = special.chdtri(1, 1.0 - confidence_level) / 2.0
    theta_hat = fit.theta
    f_hat = _objective(theta_hat, problem.design, problem.specs, problem.reml)[0]
    free = np.ones(theta_hat.size, dtype=bool)
    free[idx] = False

    def profile(value):
        def obj(t):
            th = theta_hat.copy()
            th[free] = t
            th[idx] = value
            f, g = _objective(th, problem.design, problem.specs, problem.reml)
            return f, g[free]

        if not free.any():
            return obj(np.zeros(0))[0]
        res = _projected_bfgs(
            obj,
            theta_hat[free],
            problem.lower[free],
            problem.upper[free],
            500,
            ftol=1e-14,
            gtol=1e-10,
        )
        return res.fun

    def excess(value):
        return profile(value) - f_hat - crit

    hat = float(theta_hat[idx])
    if excess(0.0) <= 0:
        lo = 0.0
    else:
        lo = optimize.brentq(excess, 0.0, hat, xtol=1e-14) if hat > 0 else 0.0
    hi_b = max(hat, 1e-3) * 2.0
    for _ in range(60):
        if excess(hi_b) >= 0:
            break
        hi_b *= 2.0
    hi = optimize.brentq(excess, hat, hi_b, xtol=1e-14)
    c2 = problem.scale**2
    if is_variance:
        return float(c2 * lo), float(c2 * hi)
    return float(c2 * lo**2), float(c2 * hi**2)
