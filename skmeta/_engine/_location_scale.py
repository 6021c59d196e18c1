r"""Meta-analytic location-scale model: profiled ML/REML with analytic derivatives.

Model (Viechtbauer & López-López 2022):

.. math::

    y_i = x_i^\top \beta + u_i + e_i, \quad u_i \sim N(0, \tau_i^2),
    \quad e_i \sim N(0, v_i),

with :math:`\log \tau_i^2 = z_i^\top \alpha` (``link="log"``) or
:math:`\tau_i^2 = z_i^\top \alpha` (``link="identity"``, constrained to
:math:`\tau_i^2 \ge 0` for the studies in the fit).

For fixed :math:`\alpha` the location coefficients are the GLS estimate with
weights :math:`w_i = 1/(v_i + \tau_i^2)`, so :math:`\beta` is profiled out and
only :math:`\alpha` is optimised (Newton-Raphson on the profiled (restricted)
log-likelihood with analytic gradient and observed Hessian, Fisher scoring as
the fall-back when the surface is not concave, step halving throughout).

Derivatives, with :math:`P = W - WX(X^\top WX)^{-1}X^\top W` and
:math:`u = Py = W(y - X\hat\beta)` (Harville 1977):

* ML:   :math:`\partial\ell/\partial\tau_i^2 = -\tfrac12 (w_i - u_i^2)`,
  :math:`\partial^2\ell/\partial\tau_i^2\partial\tau_j^2 =
  \tfrac12 w_i^2\delta_{ij} - u_i P_{ij} u_j`.
* REML: :math:`\partial\ell/\partial\tau_i^2 = -\tfrac12 (P_{ii} - u_i^2)`,
  :math:`\partial^2\ell/\partial\tau_i^2\partial\tau_j^2 =
  \tfrac12 P_{ij}^2 - u_i P_{ij} u_j`.

The chain rule through the link gives the derivatives in :math:`\alpha`.
Every product with :math:`P` is formed through the p x p matrix
:math:`X^\top W X`: the cost is O(k p^2 q + k q^2) and memory O(k (p^2 + q));
no k x k matrix is ever built.

Numerics of :func:`fit_location_scale`, in named steps:

1. *Units.*  The model is equivariant under :math:`y \to y/c`,
   :math:`v \to v/c^2` (log link: :math:`\alpha_0 \to \alpha_0 - \log c^2`, an
   offset of the linear predictor; identity link: :math:`\alpha \to
   \alpha/c^2`).  The fit runs on the data divided by a power of two near their
   variance, so that the optimizer's absolute thresholds (starting floor,
   constraint slack, gradient test) mean the same for every unit, and
   transforms back exactly.
2. *Existence.*  When studies with zero sampling variance can be fitted
   exactly, :math:`\tau_i^2 \to 0` sends the likelihood to :math:`+\infty`
   (always under ML; under REML only when they are more than the location
   model can fit generically): no estimate exists, which is an error.
3. *Starts.*  The homogeneous :math:`\tau^2` by DerSimonian-Laird and by Hedges
   (metafor's start); next to :math:`\tau^2 = 0` when the homogeneous model
   there beats the optimum found (metafor's ``ll0check``); and, for each scale
   moderator, starts that put the heterogeneity at either of its ends
   (:func:`_probe_thetas`), which reach the modes where the heterogeneity is
   concentrated in a subgroup.  A run that enters the basin of an optimum
   already found stops early (:func:`_joins`).  A run that joins changes
   nothing, so under the log link the probing runs (and Hedges' when nothing
   lies between them) only decide whether they join
   (:func:`_first_real_probe`): side by side on small problems
   (:func:`_probe_side_by_side`), on column-major designs on large ones; the
   first run that does not join, and every later one, is run for real.
4. *Certification.*  With extreme sampling variances (a ratio of more than
   :data:`EXTREME_VARIANCE_RATIO` to their median, or zeros) the profile can
   have a narrow peak that Newton's method steps over.  The criterion is then
   evaluated on a logarithmic grid of homogeneous :math:`\tau^2` reaching below
   the smallest sampling variance, and Newton's method restarted from the best
   grid point when it beats the optimum found, and from the peak of the
   tiny-variance studies.  The best optimum is returned.
5. *Polish.*  At convergence up to :data:`_POLISH_STEPS` further Newton steps
   (within the active constraints) are taken while they bring the gradient
   closer to zero, so that the optimum is exact to rounding (quadratic
   convergence) and independent of the order of the studies.

All functions are pure (numpy/scipy only); the only state is a fit's storage
for temporaries (``work``, :func:`_scratch`), which no result refers to.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from scipy import linalg, optimize
from scipy.linalg.lapack import dgesv as _gesv

from skmeta._engine import _univariate as uni
from skmeta._engine._gls import logdet_crossprod, profiled_loglik, weighted_fit

#: log tau^2 is clipped to this range before exponentiation, so that a Newton
#: step can never overflow; the clip is far outside any meaningful value.
_ETA_CLIP = 700.0
#: Sampling variances more than this factor away from their median (or zero)
#: trigger the certification of the optimum on a grid of homogeneous tau^2.
EXTREME_VARIANCE_RATIO = 1e6
#: Largest squared spread of y (data units) whose tau^2 float64 can hold with
#: room for the arithmetic of the fit (the largest double is 1.8e308).
_MAX_VARIANCE = 1e300
#: Newton steps of the log link are capped at this change of log tau^2 (a
#: factor e^5 ~ 150 in tau^2 per iteration).
_MAX_LOG_STEP = 5.0
#: Step halvings before a line search gives up (2^-60 ~ 1e-18 of the step).
_LINE_SEARCH_HALVINGS = 60
#: A step may lose this relative amount of the criterion: its rounding error.
_ROUNDING_RTOL = 1e-13
#: Newton converged: decrement below ``tol`` and every free gradient entry
#: below this (plus 1e3 tol); on the unit scale of the data a larger gradient
#: with a tiny decrement means a huge curvature that Newton has not resolved.
_GRAD_ATOL = 1e-3
#: Ridge (relative to the trace) keeping the Fisher-scoring system definite.
_FISHER_RIDGE = 1e-10
#: Identity link: this many successive steps cut short by tau_i^2 >= 0 with a
#: gain below _STALL_GAIN mean the optimum is on that boundary.
_STALL_COUNT = 3
_STALL_GAIN = 1e-8
#: Identity link: tau_i^2 down to -_NEGATIVE_TAU2_SLACK (unit scale) count as 0,
#: the rounding error of z_i' alpha near the boundary.
_NEGATIVE_TAU2_SLACK = 1e-12
#: Identity link: tau_i^2 below this (unit scale) are on the boundary 0 when
#: the optimum is polished (the constrained solver leaves them at ~1e-13).
_ACTIVE_TAU2 = 1e-9
#: The constrained (SLSQP) solution replaces the Newton path when it is not
#: worse than this (criterion units).
_CONSTRAINED_ATOL = 1e-10
#: Newton steps taken after convergence while they reduce the decrement.
_POLISH_STEPS = 3
#: Two homogeneous starts within this distance (log tau^2) or relative
#: difference (identity link) lie in the same basin: the second is skipped.
_SAME_BASIN_LOG = 0.5
_SAME_BASIN_RTOL = 0.5
#: metafor's ll0check: the homogeneous model at tau^2 = 0 beats the optimum by
#: more than this relative amount.
_LL0_RTOL = 1e-9
#: Start next to tau^2 = 0: this fraction of the data's variance.
_NEAR_ZERO = 1e-8
#: A grid point beats the optimum when it is higher by more than this relative
#: amount (the rounding error of the criterion is ~1e-13 relative).
_CERTIFY_RTOL = 1e-9
#: Grid of the certification: points per decade of tau^2, lowest point below
#: the smallest positive sampling variance, largest point (unit scale).
_GRID_PER_DECADE = 8
_GRID_BELOW_SMALLEST = 1e-2
_GRID_FLOOR = 1e-14
_GRID_TOP = 1e3
#: Exact fit of the zero-variance studies: residual below this relative amount.
_EXACT_FIT_RTOL = 1e-10
#: A scale coefficient diverges when some tau_i^2 is below this fraction of
#: v_i (or of 1e-12 on the unit scale when v_i = 0) and the information has an
#: eigenvalue below this fraction of its largest along it.
_DIVERGING_RTOL = 1e-7
_DIVERGING_LOADING = 0.1
#: A run stops when it is within this many standard errors of an optimum found
#: before, where the criterion agrees with that optimum's quadratic model to
#: this relative amount (it would converge there).
_JOIN_RADIUS = 2.0
_JOIN_RTOL = 0.1
#: Slopes (per standard deviation of a scale moderator, log link) of the
#: probing starts of :func:`_probe_thetas`: log tau^2 varies by 2 * slope over
#: +-1 SD.
_PROBE_SLOPES = (2.0, 6.0)


class NoAdmissibleStart(ValueError):
    """No scale coefficients within the bounds give every study v_i + tau_i^2 > 0."""


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
    #: lower Cholesky factor of ``cov_beta``, for the derivatives
    chol_cov: np.ndarray | None = None


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


def _scratch(work, name, shape):
    """A temporary array of ``shape``: reused from the dict ``work`` (fresh if None).

    At large k a fresh array costs page faults comparable to the arithmetic on
    it; a fit reuses its temporaries across evaluations.  Only values that no
    result keeps go here.
    """
    if work is None:
        return np.empty(shape)
    buf = work.get(name)
    if buf is None or buf.shape != shape:
        buf = work[name] = np.empty(shape)
    return buf


def _invalid_eval(p, tau2):
    """The evaluation at an inadmissible point: criterion -inf, nothing else."""
    nan = np.full(tau2.shape[0], np.nan)
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
    offset: float = 0.0,
    design: DesignProducts | None = None,
    work: dict | None = None,
    column_major: bool = False,
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
    offset : float
        Added to the linear predictor of the log link (``log tau_i^2 =
        z_i' alpha + offset``): the change of units of :func:`fit_location_scale`.
    design : DesignProducts or None
        ``design_products(X, Z)``, reused across evaluations on one design
        (computed here when None and derivatives are asked for).
    work : dict or None
        Storage for temporaries reused across evaluations (see
        :func:`_scratch`); None allocates them.
    column_major : bool
        ``X`` is column-major: the leverages are summed along the rows of
        :math:`(XF)^\top` (contiguous), not along the rows of :math:`XF`
        (the same value, rounded differently).

    Returns
    -------
    LSEval
        ``loglik`` is ``-inf`` where the model is undefined (v + tau^2 <= 0);
        the other fields are then NaN or None.
    """
    k, p = X.shape
    # in place where a k-vector is not needed again: at large k every fresh
    # array costs page faults comparable to the arithmetic
    eta = Z @ alpha
    if offset:
        eta += offset
    if link == "log":  # link_tau2, in place
        # np.clip(eta, -_ETA_CLIP, _ETA_CLIP), without its dispatch overhead
        np.maximum(eta, -_ETA_CLIP, out=eta)
        tau2 = np.exp(np.minimum(eta, _ETA_CLIP, out=eta), out=eta)
    else:
        tau2 = link_tau2(eta, link)
    s = np.add(v, tau2, out=_scratch(work, "s", v.shape))
    # min and max propagate NaN, which fails both comparisons
    if not (s.min() > 0 and s.max() < np.inf):
        return _invalid_eval(p, tau2)
    w = 1.0 / s
    reml = method == "reml"
    try:
        # the log link's fits take the p x p algebra of one or two location
        # columns on Python floats (the identity link's constrained search keeps
        # the array arithmetic its results were certified with)
        fit = weighted_fit(X, y, w, scalar_algebra=link == "log")
        # cov = F F' (F lower triangular): the leverages and the REML terms
        # below are sums of squares of the rows of X F
        F = _cholesky(fit.cov) if p else np.zeros((0, 0))
    except np.linalg.LinAlgError:
        return _invalid_eval(p, tau2)
    ll = profiled_loglik(
        k,
        p,
        float(np.log(s, out=s).sum()),
        fit.rss,
        reml=reml,
        logdet_xtvx=fit.logdet,
        logdet_xtx=logdet_xtx,
    )
    if not math.isfinite(ll):
        return _invalid_eval(p, tau2)
    # x_i' A^-1 x_i = |F' x_i|^2
    if column_major and p > 1:
        XtT = np.matmul(F.T, X.T, out=_scratch(work, "XtT_eval", (p, k)))
        hat = XtT[0] * XtT[0]
        for row in XtT[1:]:
            hat += row * row
    else:
        Xt = np.matmul(X, F, out=_scratch(work, "Xt", (k, p)))
        hat = np.einsum("ij,ij->i", Xt, Xt)
    hat *= w
    ev = LSEval(ll, fit.beta, fit.cov, tau2, w, fit.resid, hat, None, None, None, F)
    if derivs == 0:
        return ev
    return add_derivatives(
        ev, X, Z, derivs, method=method, link=link, design=design, work=work
    )


class DesignProducts(NamedTuple):
    """Products of the design columns that every Hessian evaluation needs.

    Stored one row per column or product (contiguous over the k studies), so
    that each weighted sum over the studies is a product with contiguous rows:
    ``ZT`` and ``XT`` are ``Z`` and ``X`` transposed, ``XZ`` the products
    ``x_a z_b`` (all pairs, a-major).
    """

    ZT: np.ndarray
    XT: np.ndarray
    XZ: np.ndarray


@functools.lru_cache(maxsize=16)
def _upper_pairs(n):
    """The pairs ``a <= b`` below ``n`` and their count in a symmetric sum."""
    pairs = [(a, b) for a in range(n) for b in range(a, n)]
    twice = np.array([1.0 if a == b else 2.0 for a, b in pairs])
    twice.flags.writeable = False
    return pairs, twice


def design_products(X: np.ndarray, Z: np.ndarray) -> DesignProducts:
    """The :class:`DesignProducts` of the designs ``X`` (k, p) and ``Z`` (k, q)."""
    ZT = np.ascontiguousarray(Z.T)
    XT = np.ascontiguousarray(X.T)
    q, p = ZT.shape[0], XT.shape[0]
    XZ = (XT[:, None, :] * ZT[None, :, :]).reshape(p * q, Z.shape[0])
    return DesignProducts(ZT, XT, XZ)


def add_derivatives(
    ev: LSEval,
    X: np.ndarray,
    Z: np.ndarray,
    derivs: int,
    *,
    method: str,
    link: str,
    design: DesignProducts | None = None,
    work: dict | None = None,
) -> LSEval:
    """Complete a value-only :func:`evaluate` with the derivatives.

    ``evaluate(..., derivs=d)`` equals ``add_derivatives(evaluate(...), X, Z,
    d, ...)``: a line search can judge a step by its value and pay for the
    derivatives only where it accepts it.  ``design`` is
    ``design_products(X, Z)`` when the caller keeps it; ``work`` stores the
    temporaries (:func:`_scratch`).
    """
    if derivs == 0 or not math.isfinite(ev.loglik):
        return ev
    if design is None:
        design = design_products(X, Z)
    reml = method == "reml"
    w, hat, tau2 = ev.weights, ev.hat, ev.tau2
    k = w.shape[0]
    u = np.multiply(w, ev.resid, out=_scratch(work, "u", (k,)))
    # gd = g_tau d with g_tau = -1/2 (P_ii - u_i^2) (REML; ML: w_i for P_ii),
    # d = dtau2/deta (tau2 or 1), formed in one k-vector
    gd = _scratch(work, "gd", (k,))
    if reml:
        np.multiply(w, hat, out=gd)
        np.subtract(w, gd, out=gd)
    else:
        np.copyto(gd, w)
    gd -= np.multiply(u, u, out=_scratch(work, "uu", (k,)))
    gd *= -0.5
    if link == "log":
        gd *= tau2
    # Z' gd (not design.ZT @ gd): the same bits as before, which the identity
    # link's constrained solver (SLSQP) is sensitive to
    grad = Z.T @ gd
    if derivs == 1:
        return ev._replace(grad=grad)
    F = ev.chol_cov
    if F is None:
        F = _cholesky(ev.cov_beta) if ev.cov_beta.size else ev.cov_beta
    hess, info = _second_derivatives(
        design, F, tau2, w, hat, u, gd, reml=reml, link=link, work=work
    )
    return ev._replace(grad=grad, hess=hess, info=info)


def _second_derivatives(design, F, tau2, w, hat, u, gd, *, reml, link, work=None):
    r"""``(hess, info)``: the observed Hessian and expected information in alpha.

    With :math:`D = \operatorname{diag}(d)`, :math:`d_i = \partial\tau_i^2 /
    \partial\eta_i`, the expected information is :math:`\tfrac12 Z^\top D
    (P\circ P) D Z` (REML; ML: :math:`P \to W`) and the observed Hessian is
    that minus :math:`Z^\top D (uu^\top \circ P) D Z`, plus
    :math:`Z^\top \operatorname{diag}(g_\tau\tau^2) Z` under the log link.
    Every diagonal part is a weighted Gram matrix of ``Z`` (columns
    contiguous), one for the information and one for the Hessian.  The
    low-rank parts go through the p x p matrix :math:`A^{-1} = FF^\top`:
    :math:`uu^\top \circ (WXA^{-1}X^\top W)` gives :math:`-B^\top B` with
    :math:`B = F^\top X^\top \operatorname{diag}(w d u) Z` (p x q), and
    :math:`P\circ P` (REML) the sum over the :math:`p(p+1)/2` pairs
    :math:`a \le b` of :math:`C_{ab}^\top C_{ab}` with :math:`C_{ab} = \sum_i
    \tilde x_{ia}\tilde x_{ib} w_i^2 d_i z_i^\top` (:math:`\tilde X = XF`),
    counted twice off the diagonal.  ``F`` is the lower Cholesky factor of
    :math:`A^{-1}`; ``work`` stores the temporaries (:func:`_scratch`).
    """
    (q, k), p = design.ZT.shape, design.XT.shape[0]
    d = tau2 if link == "log" else None
    w2 = np.multiply(w, w, out=_scratch(work, "w2", (k,)))
    dwu = np.multiply(w, u, out=_scratch(work, "dwu", (k,)))  # w_i d_i u_i
    if d is not None:
        dwu *= d
    # diagonal weights: info (1/2 D (P o P)_diag D) and the Hessian's
    info_weight = _scratch(work, "info_weight", (k,))
    if reml:
        np.multiply(2.0, w2, out=info_weight)
        info_weight *= hat
        np.subtract(w2, info_weight, out=info_weight)  # w^2 - 2 w^3 htil
        info_weight *= 0.5
    else:
        np.multiply(0.5, w2, out=info_weight)
    hess_weight = _scratch(work, "hess_weight", (k,))
    if d is not None:
        info_weight *= np.multiply(d, d, out=hess_weight)
        np.multiply(u, d, out=hess_weight)
    else:
        np.copyto(hess_weight, u)
    hess_weight *= dwu
    np.subtract(info_weight, hess_weight, out=hess_weight)
    if link == "log":
        hess_weight += gd  # g_tau tau2: the link's second derivative
    Z = design.ZT.T  # column-major: the columns times the weights are contiguous
    weighted = np.multiply(
        Z, info_weight[:, None], out=_scratch(work, "weighted", (q, k)).T
    )
    info = weighted.T @ Z
    hess = np.multiply(Z, hess_weight[:, None], out=weighted).T @ Z
    if p:
        b = F.T @ (design.XZ @ dwu).reshape(p, q)
        hess += b.T @ b
        if reml:
            # rows of (X F)'
            XtT = np.matmul(F.T, design.XT, out=_scratch(work, "XtT", (p, k)))
            if d is not None:
                w2 *= d  # w^2 d
            pairs, twice = _upper_pairs(p)
            products = _scratch(work, "products", (len(pairs), k))
            for j, (a, c) in enumerate(pairs):
                np.multiply(XtT[a], XtT[c], out=products[j])
            products *= w2
            cmat = products @ design.ZT.T  # rows C_ab
            pp = 0.5 * (cmat.T @ (cmat * twice[:, None]))
            info += pp
            hess += pp
    return 0.5 * (hess + hess.T), info


def unbounded_likelihood(y: np.ndarray, v: np.ndarray, X: np.ndarray, method: str):
    r"""Whether :math:`\tau_i^2 \to 0` sends the (restricted) likelihood to +inf.

    The :math:`m` studies with :math:`v_i = 0` then have variance
    :math:`\tau_i^2 \to 0`; if the location model fits them exactly their
    log-densities grow like :math:`-\tfrac12\log\tau^2` each, while REML's
    :math:`-\tfrac12\log|X^\top WX|` takes back :math:`\operatorname{rank}(X_0)`
    of them.  The limit is :math:`+\infty` when that exact fit exists and
    :math:`m` (ML) or :math:`m - \operatorname{rank}(X_0)` (REML) is positive.
    """
    zero = v == 0
    m = int(zero.sum())
    if m == 0:
        return False
    X0, y0 = X[zero], y[zero]
    if X.shape[1]:
        coef, _, rank, _ = np.linalg.lstsq(X0, y0, rcond=None)
        resid = y0 - X0 @ coef
    else:
        resid, rank = y0, 0
    size = max(float(np.max(np.abs(y))), np.finfo(float).tiny)
    exact = float(np.max(np.abs(resid))) <= _EXACT_FIT_RTOL * size
    excess = m if method == "ml" else m - int(rank)
    return bool(exact and excess > 0)


def variance_unit(y: np.ndarray, v: np.ndarray, X: np.ndarray) -> float:
    """A power of two near the data's variance, the unit of the fit.

    The larger of the median sampling variance and the residual variance of
    the least-squares fit of ``y`` on ``X`` (computed without overflow), raised
    if needed so that every ``v_i`` divided by it stays finite.

    Raises
    ------
    ValueError
        If the squared spread of ``y`` is beyond what float64 can hold.
    """
    log_ref = -np.inf
    top = float(np.max(v))
    if top > 0:  # the median of v / top: no overflow near the largest double
        scaled = v / top
        median = np.median(scaled)
        if median <= 0:
            median = np.median(scaled[scaled > 0])
        log_ref = np.log(float(median)) + np.log(top)
    size = float(np.max(np.abs(y)))
    if size > 0:
        scaled = y / size
        resid = weighted_fit(X, scaled, np.ones_like(y)).resid if X.shape[1] else scaled
        mean_square = float(np.mean(resid * resid))
        if mean_square > 0:
            log_spread = np.log(mean_square) + 2.0 * np.log(size)
            if log_spread > np.log(_MAX_VARIANCE):
                raise ValueError(
                    "y varies too much for float64: its squared spread is about "
                    f"1e{log_spread / np.log(10):.0f}, so tau^2 would overflow. "
                    "Rescale y (and sample_var by the square of the factor)."
                )
            log_ref = max(log_ref, log_spread)
    if not np.isfinite(log_ref):
        return 1.0
    # v / unit must stay finite (the largest double is ~e^709.8)
    if top > 0:
        log_ref = max(log_ref, np.log(top) - 700.0)
    # as np.clip(np.round(...)), without its overhead: round() also rounds half
    # to even
    exponent = min(max(round(log_ref / np.log(2.0)), -1000), 1000)
    return math.ldexp(1.0, exponent)


# ------------------------------------------------------------------ the problem
class _Problem(NamedTuple):
    """The fit on the unit scale and in the optimizer's coordinates theta.

    ``alpha = T @ theta`` (log link: alpha on the data's scale, the change of
    units is ``offset``; identity link: alpha divided by the unit).
    """

    y: np.ndarray
    v: np.ndarray
    X: np.ndarray
    Z: np.ndarray  # standardized scale design
    T: np.ndarray
    method: str
    link: str
    offset: float
    logdet_xtx: float
    penalty: np.ndarray  # (q, q) penalty matrix in theta
    lower: np.ndarray  # bounds on theta (= alpha, unstandardized, when bounded)
    upper: np.ndarray
    intercept_col: int | None
    design: DesignProducts  # of X and the standardized Z
    unbounded: bool  # every bound infinite
    median_v: float  # median of v
    work: dict  # temporaries reused across evaluations (_scratch)
    column_major: bool = False  # X column-major (evaluate's column_major)


def _unit_problem(y, v, X, Z, unit, *, method, link, intercept_col, penalty, bounds):
    """The problem on the unit scale ``y / sqrt(unit)``, ``v / unit``."""
    q = Z.shape[1]
    v_unit = v / unit
    # identity link: alpha (and its bounds) scale with the unit; log link: an offset
    alpha_unit = unit if link == "identity" else 1.0
    if bounds is not None:
        tr = ScaleTransform(np.eye(q), np.zeros(q), np.ones(q), Z)
        lower = np.broadcast_to(np.asarray(bounds[0], float), (q,)) / alpha_unit
        upper = np.broadcast_to(np.asarray(bounds[1], float), (q,)) / alpha_unit
    else:
        tr = standardize_scale_design(Z, intercept_col)
        lower, upper = np.full(q, -np.inf), np.full(q, np.inf)
    penalized = np.ones(q)
    if intercept_col is not None:
        penalized[intercept_col] = 0.0
    # lambda/2 sum alpha_j^2 = lambda unit^2/2 sum alpha_unit_j^2 (identity link)
    pen = penalty * alpha_unit**2 * (tr.T.T @ (penalized[:, None] * tr.T))
    return _Problem(
        y=y / np.sqrt(unit),
        v=v_unit,
        X=X,
        Z=tr.standardized,
        T=tr.T,
        method=method,
        link=link,
        offset=-np.log(unit) if link == "log" else 0.0,
        logdet_xtx=logdet_crossprod(X) if method == "reml" else 0.0,
        penalty=pen,
        lower=lower.copy(),
        upper=upper.copy(),
        intercept_col=intercept_col,
        design=design_products(X, tr.standardized),
        unbounded=bool(np.all(lower == -np.inf) and np.all(upper == np.inf)),
        median_v=float(np.median(v_unit)),
        work={},
    )


def _criterion(prob, theta, derivs):
    """``(LSEval, penalized criterion)``; the criterion is -inf where undefined."""
    if prob.link == "identity" and np.any(prob.Z @ theta < -_NEGATIVE_TAU2_SLACK):
        # metafor's constraint tau_i^2 >= 0
        return _invalid_eval(prob.X.shape[1], prob.Z @ theta), -np.inf
    ev = evaluate(
        prob.y,
        prob.v,
        prob.X,
        prob.Z,
        theta,
        method=prob.method,
        link=prob.link,
        derivs=derivs,
        logdet_xtx=prob.logdet_xtx,
        offset=prob.offset,
        design=prob.design,
        work=prob.work,
        column_major=prob.column_major,
    )
    if not math.isfinite(ev.loglik):
        return ev, -np.inf
    return ev, ev.loglik - 0.5 * float(theta @ prob.penalty @ theta)


def _start_theta(prob, tau2, slopes=None):
    """Starting coordinates with mean tau^2 ``tau2`` (unit scale).

    ``slopes`` are the non-intercept coordinates (default 0: the homogeneous
    model), clipped to the bounds; the intercept is then chosen so that the
    mean of the studies' tau_i^2 is ``tau2`` (identity link: and every
    tau_i^2 >= 0), and clipped to its bounds.  Without a scale intercept: the
    least-squares fit of the homogeneous model (identity link: with
    tau_i^2 >= 0 if possible).
    """
    Z, j = prob.Z, prob.intercept_col
    if j is None:
        level = np.log(tau2) - prob.offset if prob.link == "log" else tau2
        target = np.full(prob.y.shape[0], level)
        theta = weighted_fit(Z, target, np.ones_like(target)).beta
        if prob.link == "identity" and np.any(Z @ theta < 0):
            theta = np.linalg.lstsq(np.abs(Z), target, rcond=None)[0]
        return np.clip(theta, prob.lower, prob.upper)
    theta = np.zeros(Z.shape[1]) if slopes is None else np.array(slopes, float)
    theta[j] = 0.0
    theta = _within_bounds(prob, theta)  # a fresh array either way
    theta[j] = 0.0
    eta = Z @ theta  # the linear predictor without the intercept
    # means as np.mean forms them (the sum over the count), without its overhead
    if prob.link == "log":
        top = float(eta.max())  # log mean exp(eta), without overflow
        scaled = np.exp(eta - top, out=eta)
        log_mean = top + np.log(scaled.sum() / scaled.size)
        theta[j] = np.log(tau2) - prob.offset - log_mean
    else:
        theta[j] = max(tau2 - float(eta.sum() / eta.size), -float(eta.min()))
    if not prob.unbounded:
        theta[j] = np.clip(theta[j], prob.lower[j], prob.upper[j])
    return theta


def _start_tau2s(prob):
    """Homogeneous starting tau^2 (unit scale): ``(dl, he)``.

    DerSimonian-Laird (Hedges' when some sampling variances are zero) and
    Hedges (metafor's start), both floored away from zero, at the larger of 1%
    of the median sampling variance and 1e-4 of the residual variance.
    """
    y, v, X = prob.y, prob.v, prob.X
    k = X.shape[0]
    ols = weighted_fit(X, y, np.ones(k))
    he = uni.tau2_hedges(X, y, v, fit=ols)  # the floor needs the fit too
    dl = uni.tau2_genq(X, y, v, 1.0 / v) if np.all(v > 0) else he
    resid = ols.resid
    floor = max(0.01 * prob.median_v, 1e-4 * float(np.mean(resid * resid)))
    return max(dl, floor, 1e-10), max(he, floor, 1e-10)


# ---------------------------------------------------------------- Newton path
class _Path(NamedTuple):
    """Where one run of the optimizer ended."""

    theta: np.ndarray
    ev: LSEval
    value: float  # penalized criterion
    n_iter: int
    converged: bool
    message: str
    #: ``_ascent_step(prob, theta, ev)`` when the run computed it (else None)
    ascent: tuple | None = None


def _ascent_step(prob, theta, ev):
    """Newton step on the free coordinates, or a fall-back ascent direction.

    Where the criterion is not concave: Fisher scoring (expected information);
    where that system is singular or not finite (e.g. extreme weights): the
    gradient scaled by the largest diagonal information.  Returns ``(gradient,
    free, step, newton)``; a coordinate at a bound whose gradient points
    outwards, or fixed by equal bounds, is not free.  A non-finite gradient
    gives a zero step.
    """
    g = ev.grad - prob.penalty @ theta
    negh = -ev.hess + prob.penalty
    if prob.unbounded and math.isfinite(theta.sum()):
        # no bounds and a finite theta (a finite sum has no inf or NaN term):
        # every coordinate is free
        free = np.ones(theta.shape[0], dtype=bool)
        every = True  # the usual case: no copies of the systems
    else:
        lo, hi = prob.lower, prob.upper
        free = ~(((theta <= lo) & (g < 0)) | ((theta >= hi) & (g > 0)) | (lo == hi))
        every = bool(free.all())
    step = np.zeros(theta.shape[0])
    if not (every or free.any()) or not _all_finite(g):
        return g, free, step, False
    gf = g if every else g[free]
    hf = negh if every else negh[np.ix_(free, free)]
    if _all_finite(hf) and _is_definite(hf):
        try:
            step[free] = _solve(hf, gf)
            return g, free, step, True
        except np.linalg.LinAlgError:
            pass
    info = ev.info + prob.penalty
    if not every:
        info = info[np.ix_(free, free)]
    diagonal = np.abs(np.diag(info))
    if np.all(np.isfinite(info)):
        ridge = _FISHER_RIDGE * max(float(diagonal.sum()), 1e-300)
        try:
            step[free] = _linalg_solve(info + ridge * np.eye(gf.size), gf)
            if np.all(np.isfinite(step)):
                return g, free, step, False
        except np.linalg.LinAlgError:
            pass
    top = float(np.max(diagonal, initial=0.0))
    step[free] = gf / (top if np.isfinite(top) and top > 0 else 1.0)
    return g, free, step, False


def _within_bounds(prob, theta):
    """``np.clip(theta, prob.lower, prob.upper)`` (``theta`` itself when unbounded)."""
    return theta if prob.unbounded else np.clip(theta, prob.lower, prob.upper)


def _all_finite(a):
    """``np.all(np.isfinite(a))``; a finite sum proves it at once (an inf or NaN
    term makes the sum inf or NaN), the elementwise test runs only otherwise."""
    return math.isfinite(a.sum()) or bool(np.isfinite(a).all())


def _small_factor(A):
    """The lower Cholesky factor of a 1 x 1 or 2 x 2 matrix on Python floats.

    ``A`` is a nested list (its lower triangle is read).  Returns
    ``(l00, l10, l11)`` (``(l00,)`` for one row), or None where
    ``np.linalg.cholesky`` raises.  The arithmetic is LAPACK's ``potf2`` as
    OpenBLAS runs it -- ``l10 = a10 * (1 / l00)``, ``l11 = sqrt(a11 - l10^2)``,
    failing at a pivot ``<= 0`` (a NaN pivot passes) -- so the factor is
    numpy's bit for bit, without numpy.linalg's per-call overhead (several
    microseconds, far more than the arithmetic of a 2 x 2 system).
    """
    a00 = A[0][0]
    if a00 <= 0.0:
        return None
    l00 = math.sqrt(a00)
    if len(A) == 1:
        return (l00,)
    scale = 1.0 / l00
    # OpenBLAS scales by zero (l00 = inf) by setting +0.0, whatever a10
    l10 = A[1][0] * scale if scale else 0.0
    pivot = A[1][1] - l10 * l10
    if pivot <= 0.0:
        return None
    return l00, l10, math.sqrt(pivot)


def _cholesky(A):
    """``np.linalg.cholesky(A)``, for one or two rows by :func:`_small_factor`."""
    if A.shape[0] > 2:
        return np.linalg.cholesky(A)
    factor = _small_factor(A.tolist())
    if factor is None:
        raise np.linalg.LinAlgError("Matrix is not positive definite")
    if len(factor) == 1:
        return np.array([factor])
    l00, l10, l11 = factor
    return np.array([[l00, 0.0], [l10, l11]])


def _is_definite(A):
    """Whether ``np.linalg.cholesky(A)`` succeeds (:func:`_small_factor`)."""
    if A.shape[0] > 2:
        try:
            np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            return False
        return True
    return _small_factor(A.tolist()) is not None


def _definite_rows(stack):
    """For each matrix of ``stack``, whether ``np.linalg.cholesky`` succeeds."""
    if stack.shape[-1] > 2:
        try:
            np.linalg.cholesky(stack)
        except np.linalg.LinAlgError:
            return [_is_definite(A) for A in stack]
        return [True] * stack.shape[0]
    return [_small_factor(A) is not None for A in stack.tolist()]


def _solve(A, b):
    """``np.linalg.solve(A, b)`` (the same LAPACK routine) without its overhead."""
    _lu, _piv, x, info = _gesv(A, b)
    if info:
        raise np.linalg.LinAlgError("singular matrix")
    return x


#: Up to this many unknowns numpy's and scipy's LAPACK (two OpenBLAS builds)
#: solve a system with the same rounding; for six or more their kernels differ.
_SAME_GESV_MAX = 4


def _linalg_solve(A, b):
    """``np.linalg.solve(A, b)`` bit for bit: :func:`_solve` for small systems."""
    if A.shape[0] <= _SAME_GESV_MAX:
        return _solve(A, b)
    return np.linalg.solve(A, b)


def _line_search(prob, theta, step, value):
    """Step halving until the criterion does not drop beyond rounding.

    Returns ``(theta, ev, value, t)`` or None when every halving fails.
    """
    if prob.link == "log":
        big = np.abs(step).max()
        if big > _MAX_LOG_STEP:
            step = step * (_MAX_LOG_STEP / big)
    t = 1.0
    for _ in range(_LINE_SEARCH_HALVINGS):
        cand = _within_bounds(prob, theta + t * step)
        ev_c, val_c = _criterion(prob, cand, 0)  # derivatives once accepted
        if val_c >= value - _ROUNDING_RTOL * max(1.0, abs(value)):
            ev_c = add_derivatives(
                ev_c,
                prob.X,
                prob.Z,
                2,
                method=prob.method,
                link=prob.link,
                design=prob.design,
                work=prob.work,
            )
            return cand, ev_c, val_c, t
        t *= 0.5
    return None


def _polish_step(prob, theta, ev, ascent=None):
    """Newton step within the active constraints: ``(step, decrement, ok)``.

    The coordinates at their bounds stay fixed and, under the identity link,
    so do the tau_i^2 that are 0 (within :data:`_ACTIVE_TAU2`): the step solves
    the Newton system in the null space of those rows of ``Z``.  ``ok`` is
    False where the criterion is not concave there.  ``ascent`` is
    ``_ascent_step(prob, theta, ev)`` when known.
    """
    g, free, step, newton = ascent or _ascent_step(prob, theta, ev)
    if prob.link == "identity":
        active = prob.Z @ theta <= _ACTIVE_TAU2
        if active.any() and free.any():
            N = linalg.null_space(prob.Z[np.ix_(active, free)])
            step = np.zeros_like(theta)
            if N.shape[1] == 0:
                return step, 0.0, True
            gf = g[free]
            hr = N.T @ (-ev.hess + prob.penalty)[np.ix_(free, free)] @ N
            try:
                np.linalg.cholesky(hr)
            except np.linalg.LinAlgError:
                return step, 0.0, False
            step[free] = N @ np.linalg.solve(hr, N.T @ gf)
            newton = True
    return step, float(g @ step), newton


def _polish(prob, path):
    """Take further Newton steps from a converged path while they help.

    Near the optimum the criterion changes by less than its rounding error, so
    a step is judged by the decrement (the predicted gain) at its end point: it
    is taken when the criterion rises, or stays within rounding while the
    decrement falls.  This makes the optimum exact to rounding (quadratic
    convergence), whatever the order of the studies; under the identity link
    also on the boundary tau_i^2 = 0 (:func:`_polish_step`).
    """
    if not path.converged:
        return path
    theta, ev, value = path.theta, path.ev, path.value
    step, decrement, ok = _polish_step(prob, theta, ev, path.ascent)
    for _ in range(_POLISH_STEPS):
        if not ok or decrement <= 0.0:
            break
        cand = _within_bounds(prob, theta + step)
        ev_c, val_c = _criterion(prob, cand, 2)
        if not np.isfinite(val_c):
            break
        step_c, dec_c, ok = _polish_step(prob, cand, ev_c)
        rounding = _ROUNDING_RTOL * max(1.0, abs(value))
        if not (val_c > value or (val_c >= value - rounding and dec_c < decrement)):
            break
        theta, ev, value, step, decrement = cand, ev_c, val_c, step_c, dec_c
    return path._replace(theta=theta, ev=ev, value=value, ascent=None)


def _joins(prob, theta, value, known):
    """Whether the path at ``theta`` has entered the basin of a known optimum.

    It has when ``theta`` lies within :data:`_JOIN_RADIUS` standard errors of
    that optimum (in the metric of its information) and the criterion there
    agrees with the optimum's quadratic model to :data:`_JOIN_RTOL`: the
    quadratic model holds on the way, and Newton's method converges to it.
    """
    for other in known:
        d = theta - other.theta
        negh = -other.ev.hess + prob.penalty
        drop = 0.5 * float(d @ negh @ d)
        if drop > 0.5 * _JOIN_RADIUS**2:
            continue
        if abs((other.value - value) - drop) <= _JOIN_RTOL * max(drop, 1e-12):
            return True
    return False


def _newton(prob, theta, ev, value, *, max_iter, tol, known=()):
    """Newton-Raphson (Fisher scoring where not concave) with step halving.

    Returns None when the path joins one of the ``known`` optima (it would
    converge to it).
    """
    converged = False
    message = "maximum number of iterations reached"
    n_iter = 0
    stalls = 0
    ascent = None  # the ascent step at theta, while the loop has not moved
    for n_iter in range(1, max_iter + 1):  # noqa: B007
        ascent = _ascent_step(prob, theta, ev)
        g, free, step, newton = ascent
        if not free.any():
            converged = True
            message = "converged (all coefficients at their bounds)"
            break
        decrement = float(g @ step)
        if (
            newton
            and decrement < tol
            and np.all(np.abs(g[free]) < _GRAD_ATOL + 1e3 * tol)
        ):
            converged = True
            message = "converged"
            break
        if not step.any():
            message = "no ascent direction"
            break
        if newton and known and _joins(prob, theta, value, known):
            return None
        found = _line_search(prob, theta, step, value)
        if found is None:
            message = "line search failed"
            converged = bool(decrement < 1e3 * tol)
            break
        cand, ev_c, val_c, t = found
        gain = val_c - value
        theta, ev, value, ascent = cand, ev_c, val_c, None
        if not newton and 0 <= gain < 1e-3 * tol and t < 1:
            message = "no further progress"
            break
        # identity link: steps cut short by tau_i^2 >= 0 with negligible gain mean
        # the optimum is on that boundary; the constrained solver takes over
        cut_short = prob.link == "identity" and t < 1 and gain < _STALL_GAIN
        stalls = stalls + 1 if cut_short else 0
        if stalls >= _STALL_COUNT:
            message = "stalled at the boundary tau_i^2 = 0"
            break
    return _Path(theta, ev, value, n_iter, converged, message, ascent)


def _feasible_identity(prob, theta):
    """Return theta within the bounds with Z theta > 0 when one exists (an LP)."""
    Z = prob.Z
    q = Z.shape[1]
    target = max(float(np.max(np.abs(Z @ theta))), 1e-8)
    c = np.zeros(q + 1)
    c[-1] = -1.0  # maximize the smallest tau_i^2
    A = np.hstack([-Z, np.ones((Z.shape[0], 1))])
    bounds = [
        (a if np.isfinite(a) else None, b if np.isfinite(b) else None)
        for a, b in zip(prob.lower, prob.upper, strict=True)
    ] + [(None, target)]
    res = optimize.linprog(
        c, A_ub=A, b_ub=np.zeros(Z.shape[0]), bounds=bounds, method="highs"
    )
    if res.status == 0 and res.x[-1] >= 0:
        return res.x[:q]
    return theta


def _constrained_identity(prob, theta0):
    """Maximize the criterion subject to Z theta >= 0 and the bounds (SLSQP)."""

    def fun(th):
        ev, val = _criterion(prob, th, 1)
        if not np.isfinite(val):
            return 1e300, np.zeros_like(th)
        return -val, -(ev.grad - prob.penalty @ th)

    bounds = [
        (a if np.isfinite(a) else None, b if np.isfinite(b) else None)
        for a, b in zip(prob.lower, prob.upper, strict=True)
    ]
    res = optimize.minimize(
        lambda th: fun(th)[0],
        theta0,
        jac=lambda th: fun(th)[1],
        method="SLSQP",
        bounds=bounds,
        constraints=[
            {"type": "ineq", "fun": lambda th: prob.Z @ th, "jac": lambda th: prob.Z}
        ],
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    return np.clip(res.x, prob.lower, prob.upper)


def _run(prob, theta, *, max_iter, tol, known=()):
    """One optimizer run from ``theta``.

    None when no admissible start exists or the path joins a ``known`` optimum.
    """
    theta = np.clip(theta, prob.lower, prob.upper)
    ev, value = _criterion(prob, theta, 2)
    if not np.isfinite(value) and prob.link == "identity":
        theta = _feasible_identity(prob, theta)
        ev, value = _criterion(prob, theta, 2)
    if not np.isfinite(value):
        return None
    path = _newton(prob, theta, ev, value, max_iter=max_iter, tol=tol, known=known)
    if path is None:
        return None
    if not path.converged and prob.link == "identity":
        # the optimum may lie on the boundary tau_i^2 = 0 of some studies, where
        # Newton steps are cut short: solve the constrained problem directly
        theta_c = _constrained_identity(prob, path.theta)
        ev_c, val_c = _criterion(prob, theta_c, 2)
        if val_c >= path.value - _CONSTRAINED_ATOL:
            path = path._replace(
                theta=theta_c,
                ev=ev_c,
                value=val_c,
                converged=True,
                message="converged (constrained: tau_i^2 >= 0 active)",
                ascent=None,
            )
    return path


def _better(a, b):
    """The run with the higher criterion (``a`` on ties; None loses)."""
    if b is None:
        return a
    if a is None or b.value > a.value:
        return b
    return a


def _same_basin(prob, tau2_a, tau2_b):
    if prob.link == "log":
        return abs(np.log(tau2_a) - np.log(tau2_b)) <= _SAME_BASIN_LOG
    return abs(tau2_a - tau2_b) <= _SAME_BASIN_RTOL * max(tau2_a, tau2_b)


def _homogeneous_at_zero(prob):
    """Criterion of the homogeneous model at tau^2 = 0 (all v > 0)."""
    fe = weighted_fit(prob.X, prob.y, 1.0 / prob.v)
    return profiled_loglik(
        prob.y.shape[0],
        prob.X.shape[1],
        float(np.sum(np.log(prob.v))),
        fe.rss,
        reml=prob.method == "reml",
        logdet_xtvx=fe.logdet,
        logdet_xtx=prob.logdet_xtx,
    )


def _extreme_variances(v, median):
    if median <= 0 or v.min() <= 0:
        return True
    return bool(
        v.min() < median / EXTREME_VARIANCE_RATIO
        or v.max() > median * EXTREME_VARIANCE_RATIO
    )


def _certification_grid(prob):
    """Homogeneous tau^2 values (unit scale) reaching below the smallest v_i."""
    positive = prob.v[prob.v > 0]
    low = _GRID_FLOOR
    if positive.size:
        low = max(min(low, _GRID_BELOW_SMALLEST * float(positive.min())), 1e-300)
    decades = np.log10(_GRID_TOP / low)
    grid = np.geomspace(low, _GRID_TOP, int(np.ceil(decades * _GRID_PER_DECADE)) + 1)
    if prob.link == "identity" and np.all(prob.v > 0):
        grid = np.concatenate([[0.0], grid])
    return grid


def _peak_theta(prob, tau2):
    """Start on the peak of the studies with tiny sampling variances.

    Their tau_i^2 is set well below their v_i (1% of it; the grid floor when
    v_i = 0), the others' at the homogeneous ``tau2``: the least-squares fit of
    these values on the scale design, with the tiny-variance studies weighted
    so that they are met (exactly when there are fewer of them than scale
    coefficients).
    """
    tiny = prob.v < prob.median_v / EXTREME_VARIANCE_RATIO
    target = np.where(tiny, np.maximum(0.01 * prob.v, _GRID_FLOOR), tau2)
    weight = np.where(tiny, 1e6, 1.0)
    if prob.link == "log":
        target = np.log(target) - prob.offset
    else:
        target = np.where(tiny, 0.0, target)
    return weighted_fit(prob.Z, target, weight).beta


def _certify(prob, best, tau2, run):
    """Restart where a study with a tiny or zero sampling variance has its peak.

    With such a study the criterion has a narrow peak where its tau_i^2 is
    below its v_i, which Newton's method from the homogeneous starts can step
    over.  Two probes: the criterion on a grid of homogeneous tau^2 reaching
    below the smallest sampling variance (``run`` from its best point when that
    beats the optimum), and a run from :func:`_peak_theta` (``tau2`` for the
    other studies).
    """
    values = []
    thetas = []
    for t in _certification_grid(prob):
        theta = _start_theta(prob, t)
        thetas.append(theta)
        values.append(_criterion(prob, theta, 0)[1])
    j = int(np.argmax(values))
    if values[j] > best.value + _CERTIFY_RTOL * (1.0 + abs(best.value)):
        best = _better(best, run(thetas[j]))
    if np.any(prob.v < prob.median_v / EXTREME_VARIANCE_RATIO):
        best = _better(
            best, run(np.clip(_peak_theta(prob, tau2), prob.lower, prob.upper))
        )
    return best


def _probe_thetas(prob, tau2):
    """Starts that put the heterogeneity at one end of each scale moderator.

    For each non-intercept column ``z_j`` of the (standardized) scale design,
    heterogeneity growing with ``z_j`` and shrinking with it, at the mean level
    ``tau2`` (:func:`_start_theta`): log link, slope :math:`\\pm` each of
    :data:`_PROBE_SLOPES`; identity link, :math:`\\tau_i^2` linear in
    :math:`z_{ij}` and zero at one end.  These reach the modes of the
    likelihood where the heterogeneity is concentrated in a subgroup (often far
    away, or at infinity).
    """
    Z = prob.Z
    thetas = []
    for j in range(Z.shape[1]):
        z = Z[:, j]
        if j == prob.intercept_col or np.ptp(z) == 0:
            continue
        if prob.link == "log":
            slopes = (*_PROBE_SLOPES, *(-s for s in _PROBE_SLOPES))
        else:
            slopes = (tau2 / (z.mean() - z.min()), tau2 / (z.mean() - z.max()))
        for slope in slopes:
            theta = np.zeros(Z.shape[1])
            theta[j] = slope
            thetas.append(_start_theta(prob, tau2, theta))
    return thetas


def _optimize(prob, *, max_iter, tol):
    """The best optimum from the starts, the certification and the probes."""
    found = []  # optima so far: later runs that join one of them stop early

    def run(theta):
        path = _run(prob, theta, max_iter=max_iter, tol=tol, known=found)
        if path is not None and path.converged:
            found.append(path)
        return path

    tau2_dl, tau2_he = _start_tau2s(prob)
    best = run(_start_theta(prob, tau2_dl))
    he = None if _same_basin(prob, tau2_dl, tau2_he) else _start_theta(prob, tau2_he)
    # metafor's ll0check: if the homogeneous model at tau^2 = 0 beats the
    # optimum, the supremum is on that boundary; start next to it.
    at_zero = _homogeneous_at_zero(prob) if np.all(prob.v > 0) else -np.inf

    def beaten_at_zero(best):
        return at_zero > best.value + _LL0_RTOL * (1.0 + abs(at_zero))

    probing = prob.intercept_col is not None
    extreme = probing and _extreme_variances(prob.v, prob.median_v)
    # Hedges' start goes with the probing starts (log link) when, should its
    # run join a known optimum (return None), nothing between them would run:
    # the ll0check does not fire and no certification is needed.  If its run
    # does not join, it is run for real in its place and the sequence resumes.
    deferred = (
        prob.link == "log"
        and he is not None
        and best is not None
        and probing
        and not extreme
        and not beaten_at_zero(best)
    )
    if he is not None and not deferred:
        best = _better(best, run(he))
    if best is None:
        raise NoAdmissibleStart(
            "No scale coefficients within the bounds give every study a positive "
            "total variance v_i + tau_i^2"
            + (" with tau_i^2 >= 0" if prob.link == "identity" else "")
            + "."
        )
    if beaten_at_zero(best):
        near = _NEAR_ZERO * uni.variance_scale(prob.v, prob.y)
        best = _better(best, run(_start_theta(prob, near)))
    if probing:
        if extreme:
            best = _certify(prob, best, tau2_dl, run)
        probes = _probe_thetas(prob, tau2_dl)
        starts = [he, *probes] if deferred else probes
        # a run that returns None changes neither best nor found: the runs from
        # the first one that does not are real
        first = _first_real_probe(prob, starts, max_iter=max_iter, tol=tol, known=found)
        if deferred and first == 0:  # Hedges' run is real, in its place
            best = _better(best, run(he))
            if beaten_at_zero(best):
                near = _NEAR_ZERO * uni.variance_scale(prob.v, prob.y)
                best = _better(best, run(_start_theta(prob, near)))
            starts = probes
            first = _first_real_probe(
                prob, starts, max_iter=max_iter, tol=tol, known=found
            )
        for theta in starts[first:]:
            best = _better(best, run(theta))
    return _polish(prob, best)


# ------------------------------------------------------ probing starts, batched
def _first_real_probe(prob, probes, *, max_iter, tol, known):
    """Index of the first probing start whose run may not return None.

    The runs from the starts before it join a ``known`` optimum (or have no
    admissible start), so they change nothing and need not be run for real.
    Small problems find it side by side (:func:`_probe_side_by_side`).  Large
    ones under the log link run :func:`_run` one by one on column-major copies
    of the designs, where every pass over the studies is contiguous: the same
    formulas, rounded differently, deciding only whether a run joins.  The
    identity link runs every start for real.
    """
    if _batchable(prob, len(probes)):
        try:
            needs_run = _probe_side_by_side(
                prob, probes, max_iter=max_iter, tol=tol, known=known
            )
        except np.linalg.LinAlgError:  # every run is real
            return 0
        return int(np.argmax(needs_run)) if needs_run.any() else len(probes)
    if prob.link != "log":
        return 0
    fast = prob._replace(
        X=np.asfortranarray(prob.X), Z=prob.design.ZT.T, column_major=True
    )
    for i, theta in enumerate(probes):
        if _run(fast, theta, max_iter=max_iter, tol=tol, known=known) is not None:
            return i
    return len(probes)


#: The probing starts run side by side (arrays of shape (n_starts, k)) when
#: these arrays stay this small (256 KiB each, so they stay in cache): there a
#: run costs numpy's per-call overhead more than arithmetic.  Larger problems
#: run them one after the other, where each array of k values stays in cache.
_BATCH_MAX_ELEMENTS = 2**15


class _BatchEval(NamedTuple):
    """The criterion at n points (rows) and what its derivatives need."""

    value: np.ndarray  # (n,) penalized criterion, -inf where undefined
    tau2: np.ndarray  # (n, k)
    weights: np.ndarray  # (n, k)
    design: np.ndarray  # (n, k, p) location design centred at weighted means
    cov: np.ndarray  # (n, p, p) inverse of its weighted crossproduct
    resid: np.ndarray  # (n, k)
    hat: np.ndarray  # (n, k)


def _batchable(prob, n_starts):
    """Whether :func:`_probe_side_by_side` applies (log link, no bounds, small)."""
    return bool(
        prob.link == "log"
        and prob.X.shape[1] > 0
        and n_starts > 1
        and n_starts * prob.y.shape[0] <= _BATCH_MAX_ELEMENTS
        and prob.unbounded
    )


#: The smallest normal double: LAPACK's ``gesv`` divides by smaller pivots
#: instead of multiplying by their reciprocal.
_TINY = float(np.finfo(float).tiny)


def _cholesky_rows(A, valid):
    r"""``np.linalg.cholesky`` of each matrix of the stack ``A`` (n, p, p) and
    ``np.linalg.inv`` of the factors.

    Where a factorization fails, the identity, and ``valid`` (n,) is set to
    False there.  One or two rows: :func:`_small_factor` (numpy's factor), and
    the inverse :math:`L^{-1} = [[1/l_{00}, 0], [-(l_{10}/l_{00})/l_{11},
    1/l_{11}]]` in the arithmetic of LAPACK's ``gesv`` (numpy's inverse bit for
    bit) where it needs no row exchange (:math:`|l_{10}| \le l_{00}`) and
    every pivot is a normal number (its reciprocal is then finite and used);
    numpy.linalg otherwise.
    """
    n, p = A.shape[0], A.shape[-1]
    if p > 2:
        try:
            chol = np.linalg.cholesky(A)
        except np.linalg.LinAlgError:  # some rows singular: factor one by one
            chol = np.broadcast_to(np.eye(p), A.shape).copy()
            for i in range(n):
                try:
                    chol[i] = np.linalg.cholesky(A[i])
                except np.linalg.LinAlgError:
                    valid[i] = False
        return chol, np.linalg.inv(chol)
    identity = (1.0, 0.0, 1.0) if p == 2 else (1.0,)
    factors = []
    for i, matrix in enumerate(A.tolist()):
        factor = _small_factor(matrix)
        if factor is None:
            valid[i] = False
            factor = identity
        factors.append(factor)
    if p == 1:
        chol = np.array(factors).reshape(n, 1, 1)
        if all(_TINY <= l00 < math.inf for (l00,) in factors):
            return chol, np.array([1.0 / l00 for (l00,) in factors]).reshape(n, 1, 1)
        return chol, np.linalg.inv(chol)
    chol = np.array([(l00, 0.0, l10, l11) for l00, l10, l11 in factors])
    chol = chol.reshape(n, 2, 2)
    if not all(
        _TINY <= l00 < math.inf and _TINY <= l11 < math.inf and abs(l10) <= l00
        for l00, l10, l11 in factors
    ):
        return chol, np.linalg.inv(chol)
    inverse = []
    for l00, l10, l11 in factors:
        r00, r11 = 1.0 / l00, 1.0 / l11
        inverse.append((r00, 0.0, (0.0 - l10 * r00) * r11, r11))
    return chol, np.array(inverse).reshape(n, 2, 2)


def _evaluate_rows(prob, theta):
    """:func:`_criterion` (value only) at each row of ``theta`` (log link).

    The weighted least-squares fits centre the location design at the
    weighted means when its first column is the intercept, as
    :func:`weighted_fit` does.
    """
    y, v, X = prob.y, prob.v, prob.X
    (k, p), n = X.shape, theta.shape[0]
    eta = theta @ prob.design.ZT
    if prob.offset:
        eta += prob.offset
    tau2 = np.exp(np.clip(eta, -_ETA_CLIP, _ETA_CLIP, out=eta), out=eta)
    s = v + tau2
    # min and max propagate NaN, which fails both comparisons
    if s.min() > 0 and s.max() < np.inf:  # the usual case: every row is valid
        valid = np.ones(n, dtype=bool)
    else:
        valid = (s.min(axis=1) > 0) & (s.max(axis=1) < np.inf)
        s[~valid] = 1.0  # placeholders: these rows get -inf below
    w = 1.0 / s
    shift = np.zeros((n, p))
    if p > 1 and bool(np.all(X[:, 0] == 1.0)):
        shift[:, 1:] = (w @ X[:, 1:]) / w.sum(axis=1)[:, None]
    Xc = X[None, :, :] - shift[:, None, :]
    Xw = Xc * w[:, :, None]
    A = np.matmul(Xc.transpose(0, 2, 1), Xw)
    chol, inv_chol = _cholesky_rows(A, valid)
    cov = np.matmul(inv_chol.transpose(0, 2, 1), inv_chol)
    beta = np.matmul(cov, np.matmul(y, Xw)[:, :, None])
    resid = y - np.matmul(Xc, beta)[:, :, 0]
    rss = np.einsum("nk,nk,nk->n", w, resid, resid)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    loglik = profiled_loglik(
        k,
        p,
        np.log(s).sum(axis=1),
        rss,
        reml=prob.method == "reml",
        logdet_xtvx=logdet,
        logdet_xtx=prob.logdet_xtx,
    )
    value = loglik
    if prob.penalty.any():
        value -= 0.5 * np.einsum("na,ab,nb->n", theta, prob.penalty, theta)
    value[~(valid & np.isfinite(value))] = -np.inf
    hat = np.matmul(Xc, cov)
    hat *= Xc
    hat = hat.sum(axis=2)
    hat *= w
    return _BatchEval(value, tau2, w, Xc, cov, resid, hat)


def _derivatives_rows(prob, ev):
    """``(grad, hess, info)`` of the rows of ``ev`` (:func:`add_derivatives`)."""
    reml = prob.method == "reml"
    Z, ZT = prob.Z, prob.design.ZT
    w, hat, d, Xc, cov = ev.weights, ev.hat, ev.tau2, ev.design, ev.cov
    u = w * ev.resid
    w2 = w * w
    gd = (w - w * hat if reml else w) - u * u
    gd *= -0.5 * d
    grad = gd @ Z
    dwu = w * u * d
    info_weight = 0.5 * (w2 - 2.0 * w2 * hat if reml else w2) * d * d
    hess_weight = info_weight - u * d * dwu + gd
    info = np.matmul(ZT[None, :, :] * info_weight[:, None, :], Z)
    hess = np.matmul(ZT[None, :, :] * hess_weight[:, None, :], Z)
    M = np.matmul((Xc * dwu[:, :, None]).transpose(0, 2, 1), Z)
    hess += np.matmul(M.transpose(0, 2, 1), np.matmul(cov, M))
    if reml:
        # G[(a, b)] = sum_i xc_ia xc_ib w_i^2 d_i z_i; (P o P) part: G' (cov x cov) G
        n, k, p = Xc.shape
        outer = Xc[:, :, :, None] * Xc[:, :, None, :]
        outer *= (w2 * d)[:, :, None, None]
        G = np.matmul(outer.reshape(n, k, p * p).transpose(0, 2, 1), Z)
        kron = (cov[:, :, None, :, None] * cov[:, None, :, None, :]).reshape(
            n, p * p, p * p
        )
        pp = 0.5 * np.matmul(G.transpose(0, 2, 1), np.matmul(kron, G))
        info += pp
        hess += pp
    return grad, 0.5 * (hess + hess.transpose(0, 2, 1)), info


class _Rows(NamedTuple):
    """The derivatives of one row, as :func:`_ascent_step` reads them."""

    grad: np.ndarray
    hess: np.ndarray
    info: np.ndarray


def _rows(ev, keep):
    """The rows ``keep`` of a :class:`_BatchEval`."""
    return _BatchEval(*(field[keep] for field in ev))


def _probe_side_by_side(prob, thetas, *, max_iter, tol, known):
    """Run :func:`_run` from each start at once; which ones need a real run.

    The runs take their Newton steps in lockstep, with the criterion of every
    run evaluated in one pass over arrays of shape (n_starts, k) (the same
    formulas as :func:`evaluate` and :func:`add_derivatives`, rounded
    differently), and :func:`_newton`'s rules decided for each run.  Returns a
    boolean array: False where :func:`_run` returns None (no admissible start,
    or the run joins a ``known`` optimum), True where the run ends otherwise
    (it converges, stops or fails): those, and every later start (whose runs
    would see that optimum), must be run by :func:`_run` itself.
    """
    needs_run = np.zeros(len(thetas), dtype=bool)
    theta = np.array(thetas, dtype=float)
    ev = _evaluate_rows(prob, theta)
    active = np.flatnonzero(np.isfinite(ev.value))  # the others: no admissible start
    if active.size < theta.shape[0]:
        theta, ev = theta[active], _rows(ev, active)
    if not active.size:
        return needs_run
    value = ev.value
    grad, hess, info = _derivatives_rows(prob, ev)
    pen = prob.penalty
    penalized = bool(pen.any())
    known = [(o.theta, pen - o.ev.hess, o.value) for o in known]
    grad_limit = _GRAD_ATOL + 1e3 * tol
    for _ in range(max_iter):
        # the state holds the active runs only: ``active`` are their indices
        g = grad - theta @ pen if penalized else grad
        negh = pen - hess if penalized else -hess
        step = np.zeros_like(theta)
        newton = np.zeros(active.size, dtype=bool)
        finite = _all_finite(negh) and _all_finite(g)
        definite = _definite_rows(negh)
        if finite and all(definite):
            try:
                step = np.linalg.solve(negh, g[:, :, None])[:, :, 0]
                newton[:] = True
            except np.linalg.LinAlgError:
                pass
        if not newton.all():  # one by one, as _ascent_step decides
            g = g.copy()
            # every row is finite where the whole array is
            finite_theta = _all_finite(theta)
            for i in range(active.size):
                if (
                    definite[i]
                    and (finite or (_all_finite(negh[i]) and _all_finite(g[i])))
                    and (finite_theta or _all_finite(theta[i]))
                ):
                    try:  # _ascent_step's Newton step (every coordinate free)
                        step[i], newton[i] = _solve(negh[i], g[i]), True
                        continue
                    except np.linalg.LinAlgError:
                        pass
                g[i], _free, step[i], newton[i] = _ascent_step(
                    prob, theta[i], _Rows(grad[i], hess[i], info[i])
                )
        decrement = np.einsum("na,na->n", g, step)
        ends = ~step.any(axis=1) | (
            newton & (decrement < tol) & (np.abs(g) < grad_limit).all(axis=1)
        )
        joins = np.zeros(active.size, dtype=bool)
        for other_theta, other_negh, other_value in known:
            diff = theta - other_theta
            drop = 0.5 * np.einsum("na,ab,nb->n", diff, other_negh, diff)
            joins |= (drop <= 0.5 * _JOIN_RADIUS**2) & (
                np.abs((other_value - value) - drop)
                <= _JOIN_RTOL * np.maximum(drop, 1e-12)
            )
        needs_run[active[ends]] = True
        go = ~(ends | (joins & newton))
        if not go.all():
            active, theta, value, step, newton = (
                a[go] for a in (active, theta, value, step, newton)
            )
            if not active.size:
                return needs_run
        # line search (:func:`_line_search`), each run with its own step length
        big = np.abs(step).max(axis=1)
        capped = big > _MAX_LOG_STEP
        if capped.any():
            step[capped] *= (_MAX_LOG_STEP / big[capped])[:, None]
        floor = value - _ROUNDING_RTOL * np.maximum(1.0, np.abs(value))
        t = np.ones(active.size)
        cand = theta + step
        trial = _evaluate_rows(prob, cand)
        accepted = trial.value >= floor
        if not accepted.all():
            pending = np.flatnonzero(~accepted)
            for _ in range(_LINE_SEARCH_HALVINGS - 1):
                t[pending] *= 0.5
                part_cand = theta[pending] + t[pending, None] * step[pending]
                part = _evaluate_rows(prob, part_cand)
                ok = part.value >= floor[pending]
                hit = pending[ok]
                if hit.size:
                    accepted[hit] = True
                    cand[hit] = part_cand[ok]
                    for field, new in zip(trial, part, strict=True):
                        field[hit] = new[ok]
                pending = pending[~ok]
                if not pending.size:
                    break
            needs_run[active[~accepted]] = True  # line search failed
        gain = trial.value - value
        stalled = accepted & ~newton & (gain >= 0) & (gain < 1e-3 * tol) & (t < 1)
        needs_run[active[stalled]] = True
        go = accepted & ~stalled
        if not go.all():
            active, cand, trial = active[go], cand[go], _rows(trial, go)
            if not active.size:
                return needs_run
        theta, value = cand, trial.value
        grad, hess, info = _derivatives_rows(prob, trial)
    needs_run[active] = True  # maximum number of iterations
    return needs_run


# ----------------------------------------------------------------- the result
def _diverging(tau2, v, negh, T, link):
    """Flag scale coefficients that drift to +-infinity (tau^2 -> 0 in a subgroup).

    Returns a boolean mask over alpha: the coefficients loading on the
    near-null direction of the information, when some studies have a tau^2
    that is negligible against their sampling variance (unit scale).
    """
    q = negh.shape[0]
    mask = np.zeros(q, dtype=bool)
    if link != "log" or q == 0:
        return mask
    if not np.any(tau2 < _DIVERGING_RTOL * np.maximum(v, 1e-12)):
        return mask
    try:
        evals, evecs = np.linalg.eigh(negh)
    except (np.linalg.LinAlgError, ValueError):
        return mask
    top = max(float(evals[-1]), 1e-300)
    small = evals < _DIVERGING_RTOL * top
    for j in np.flatnonzero(small):
        vec = T @ evecs[:, j]
        vec = vec / np.max(np.abs(vec))
        mask |= np.abs(vec) > _DIVERGING_LOADING
    return mask


def _result(prob, path):
    """The fit on the unit scale, alpha in the original Z coordinates."""
    ev, theta, T = path.ev, path.theta, prob.T
    q = theta.shape[0]
    g = ev.grad - prob.penalty @ theta
    negh = -ev.hess + prob.penalty
    try:
        cov_theta = _linalg_solve(negh, np.eye(q))  # np.linalg.inv's LAPACK call
        if not _all_finite(cov_theta) or (cov_theta.diagonal() < 0).any():
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        cov_theta = np.full((q, q), np.nan)
    return LSFit(
        alpha=T @ theta,
        cov_alpha=T @ cov_theta @ T.T,
        beta=ev.beta,
        cov_beta=ev.cov_beta,
        tau2=ev.tau2,
        loglik=ev.loglik,
        hat=ev.hat,
        resid=ev.resid,
        n_iter=path.n_iter,
        converged=path.converged,
        grad=_linalg_solve(T.T, g) if q else g,
        hessian=(-_linalg_solve(T.T, _linalg_solve(T.T, negh).T).T if q else negh),
        message=path.message,
        diverging=_diverging(ev.tau2, prob.v, negh, T, prob.link),
    )


def _in_data_units(fit, unit, *, link, n_obs):
    """Transform a fit of ``(y / c, v / c^2)`` (``unit = c^2``) back."""
    c = np.sqrt(unit)
    a = unit if link == "identity" else 1.0  # alpha's unit
    return fit._replace(
        alpha=fit.alpha * a,
        cov_alpha=fit.cov_alpha * (a * a),
        beta=fit.beta * c,
        cov_beta=fit.cov_beta * unit,
        tau2=fit.tau2 * unit,
        loglik=fit.loglik - n_obs * np.log(c),  # density of y/c = c * density of y
        resid=fit.resid * c,
        grad=fit.grad / a,
        hessian=fit.hessian / (a * a),
    )


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
    sample_weight: np.ndarray | None = None,
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
        Convergence when the Newton decrement ``g' H^-1 g`` (twice the
        predicted gain in log-likelihood) is below ``tol``.
    penalty : float
        Ridge penalty ``-penalty/2 * sum(alpha_j^2)`` on the non-intercept
        scale coefficients (original scale of Z); 0 disables it.
    bounds : tuple (lower, upper) or None
        Box constraints on the original alpha (arrays of shape (q,), no NaN).
    sample_weight : ndarray of shape (k,) or None
        User weights of the location coefficients (see
        :func:`user_weighted_location`); the scale model is fitted as without
        them.

    Returns
    -------
    LSFit
        ``loglik`` is the unpenalized criterion (metafor's logLik, with the
        REML constant ``+0.5 log|X'X|``); ``cov_alpha`` is the inverse of the
        negative observed Hessian of the (penalized) profiled criterion.

    Raises
    ------
    ValueError
        If the likelihood is unbounded (:func:`unbounded_likelihood`), if ``y``
        varies beyond float64's range, or (:class:`NoAdmissibleStart`) if no
        coefficients within the bounds give every study a positive variance.
    """
    if intercept_col is not None and unbounded_likelihood(y, v, X, method):
        raise ValueError(
            "The likelihood is unbounded: the studies with zero sampling variance "
            "are fitted exactly by the location model, so tau_i^2 -> 0 gives them "
            "zero total variance and an infinite density; no estimate exists."
            + (
                " Use method='reml' or positive sample_var."
                if method == "ml"
                else " Pass positive sample_var."
            )
        )
    unit = variance_unit(y, v, X)
    prob = _unit_problem(
        y,
        v,
        X,
        Z,
        unit,
        method=method,
        link=link,
        intercept_col=intercept_col,
        penalty=penalty,
        bounds=bounds,
    )
    path = _optimize(prob, max_iter=max_iter, tol=tol)
    k, p = X.shape
    fit = _in_data_units(
        _result(prob, path),
        unit,
        link=link,
        n_obs=k - p if method == "reml" else k,
    )
    if sample_weight is not None:
        fit = user_weighted_location(
            fit, y, v, X, sample_weight, method=method, logdet_xtx=prob.logdet_xtx
        )
    return fit


def user_weighted_location(fit, y, v, X, a, *, method, logdet_xtx):
    r"""The location coefficients of ``fit`` with user weights ``a``.

    As metafor's ``rma(..., scale=, weights=)``: the scale model (and so
    :math:`\tau_i^2`) stays the (RE)ML fit; :math:`\hat\beta = (X^\top
    AX)^{-1}X^\top Ay` with the sandwich covariance :math:`(X^\top AX)^{-1}X^\top
    A V A X(X^\top AX)^{-1}`, :math:`V = \operatorname{diag}(v_i +
    \hat\tau_i^2)`; the leverages are those of :math:`X(X^\top AX)^{-1}X^\top A`
    and the criterion is evaluated at this :math:`\hat\beta` (below the maximum).

    Returns
    -------
    LSFit
        ``fit`` with ``beta``, ``cov_beta``, ``resid``, ``hat`` and ``loglik``
        replaced.
    """
    total = v + fit.tau2
    weighted = weighted_fit(X, y, a)
    half = X * (a * np.sqrt(total))[:, None]  # A V^{1/2} X
    cov = weighted.cov @ (half.T @ half) @ weighted.cov
    hat = a * np.einsum("ij,jk,ik->i", X, weighted.cov, X)
    resid = weighted.resid
    k, p = X.shape
    loglik = profiled_loglik(
        k,
        p,
        float(np.sum(np.log(total))),
        float(np.sum(resid * resid / total)),
        reml=method == "reml",
        logdet_xtvx=weighted_fit(X, y, 1.0 / total).logdet,
        logdet_xtx=logdet_xtx,
    )
    return fit._replace(
        beta=weighted.beta, cov_beta=cov, resid=resid, hat=hat, loglik=loglik
    )
