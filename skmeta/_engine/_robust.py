r"""Random-effects inference robust to the randomness of the tau^2 estimate.

Hanada & Sugimoto, "Random-effect meta-analysis with robust between-study variance"
(arXiv, 2024). Model, for studies :math:`k = 1..K`:

.. math::

    y_k \sim N(\theta, v_k + \tau^2), \qquad w_k(\tau^2) = 1 / (v_k + \tau^2),
    \qquad \hat\theta(\tau^2) = \sum_k w_k y_k / \sum_k w_k .

The paper's intercept-only model is the case ``X = ones((K, 1))``. Every function
takes a general design ``X`` of shape (K, p) (meta-regression
:math:`y \sim N(X\beta, V + \tau^2 I)`, an extension beyond the paper): sums over
studies become the weighted projection :math:`P_a = A - AX(X^TAX)^{-1}X^TA`,
:math:`K - 1` becomes :math:`K - p`, and each coefficient gets its own mixture
interval. Theorems 2 and 3 hold unchanged for this quadratic form (the proofs only use
that :math:`Q_a = y^T P_a y` with :math:`P_a X = 0`).

Between-study variance estimators and their exact sampling distributions:

* General moment estimator (GMM) with fixed weights :math:`a_k > 0` (DL:
  :math:`a = 1/v`; HE: :math:`a = 1`):
  :math:`\hat\tau^2 = \max\{0, (Q_a - c_a)/d_a\}` with
  :math:`Q_a = \sum a_k (y_k - \hat\theta_a)^2`,
  :math:`c_a = \sum a_k v_k - \sum a_k^2 v_k / A_1`, :math:`d_a = A_1 - A_2/A_1`.
  Theorem 2: :math:`Q_a \sim \sum_r \lambda_r(\tau^2) \chi^2_1`, the
  :math:`\lambda_r` being the eigenvalues of
  :math:`D^{1/2}(A - a a^T/A_1)D^{1/2}`, :math:`D = \mathrm{diag}(v + \tau^2)`
  (same spectrum as the paper's :math:`VW`). The truncated estimator has an atom
  :math:`F_{Q_a}(c_a)` at zero.  The eigenvalues are never computed: the matrix is
  a diagonal minus a projection, whose distribution :mod:`skmeta._engine._wchisq`
  evaluates in O(K p^2) per point.
* Sidik-Jonkman (feasible form as metafor): :math:`\hat\tau^2_{SJ} =
  \hat\tau_0^2 Q(\hat\tau_0^2)/(K-1)`, :math:`\hat\tau^2_0 = \sum(y - \bar y)^2/K`,
  :math:`Q(\tau^2) = \sum_k w_k(\tau^2)(y_k - \hat\theta(\tau^2))^2`. Theorem 3:
  at the oracle weights :math:`\hat\tau^2_{SJ} \sim \tau^2\chi^2_{K-1}/(K-1)`.

M-estimate (:math:`\rho(u) = |u|`): :math:`\tau^2_M` is the value at which the
observed estimate is the median of its own sampling distribution,
:math:`F_{\hat\tau^2}(\hat\tau^2_{obs} \mid \tau^2_M) = 1/2` (GMM; when
:math:`\hat\tau^2_{obs} = 0` the solution set is :math:`[0, \tau^2_0]` and its
infimum 0 is returned, as the authors do; when no root exists, 0), and for SJ
:math:`Q(\tau^2_M) = \mathrm{median}(\chi^2_{K-1})` (0 when
:math:`Q(0) \le` the median).

Inference averages over :math:`X \sim F_{\hat\tau^2}(\cdot \mid \tau^2_M)`:

* z: :math:`G(q) = E[\Phi(q \sqrt{W_1(X)})]`, CI :math:`\hat\theta(\hat\tau^2) \pm
  G^{-1}(1 - \alpha/2)`, two-sided p :math:`2\{1 - G(|\hat\theta - \theta_0|)\}`.
* Knapp-Hartung (HKSJ): :math:`C(t) = E[F_{t_{K-1}}((t - \hat\theta(X))/s(X))]`,
  :math:`s^2(x) = Q(x)/((K-1)W_1(x))`,
  CI :math:`(C^{-1}(\alpha/2), C^{-1}(1-\alpha/2))`,
  two-sided p :math:`2\min\{C(\theta_0), 1 - C(\theta_0)\}` (CI inversion).

The expectation is a fixed quadrature rule (atom at 0 plus composite Gauss-Legendre on
the density of the statistic), built once per fit; roots by Newton's method with
exact derivatives, inside brackets, with Brent's method as the fallback.
Everything is deterministic. The moment estimates themselves are the random-effects
engine's (:mod:`skmeta._engine._univariate`).
"""

from typing import NamedTuple

import numpy as np
from scipy import optimize, special

from skmeta._engine import _univariate as uni
from skmeta._engine._gls import weighted_fit
from skmeta._engine._wchisq import (
    Projection,
    projection,
    qf_cdf,
    qf_cdf_slope,
    qf_pdf,
    qf_ppf,
    qf_prepare,
    qf_support,
    quadratic_form,
)

__all__ = [
    "PAPER_TAU2_GRID",
    "GMMDistribution",
    "GMMStructure",
    "RobustFit",
    "gmm_distribution",
    "gmm_form",
    "gmm_mixture",
    "gmm_structure",
    "gmm_tau2_m",
    "gmm_weights",
    "mixture_hksj_cdf",
    "mixture_hksj_ppf",
    "mixture_z_cdf",
    "mixture_z_ppf",
    "paper_grid_tau2_m",
    "q_stat",
    "robust_conf_int",
    "robust_fit",
    "robust_p_value",
    "sj_mixture",
    "sj_tau2_m",
    "tau2_sampling_interval",
]

# The authors' grid for tau^2_M (metaMest at the submitted version, in data units).
PAPER_TAU2_GRID = np.concatenate([[0.001], np.round(np.arange(1, 301) * 0.1, 10)])

_N_GL = 12
# Breakpoints, as fractions of the range, of the composite Gauss-Legendre rule of the
# continuous part (8 panels x 12 nodes: 96 density evaluations). Near the atom
# (variable t = sqrt(q - c), nodes clustered at the low end where a chi2_1-like
# density peaks); for a distribution concentrated away from the atom, uniform panels
# in q over its support bounds. The error of E[g(X)] against adaptive quadrature is
# ~1e-11 (tests/test_robust.py::test_mixture_rule_accuracy).
_PANELS_NEAR_ATOM = np.array([0, 0.01, 0.04, 0.1, 0.2, 0.35, 0.55, 0.75, 1.0])
_PANELS_UNIFORM = np.linspace(0.0, 1.0, 9)
_GAUSS_LEGENDRE = np.polynomial.legendre.leggauss(_N_GL)
#: Newton steps for tau^2_M before Brent's method takes over: from the observed
#: estimate Newton converges in a handful (quadratically near the root).
_NEWTON_TAU2_M_ITER = 12
#: Safety factor on the estimated error of the last Newton step (see
#: :func:`_newton_converged`).
_NEWTON_SAFETY = 0.01


def q_stat(X, y, v, tau2):
    r"""Generalized Cochran statistic :math:`Q(\tau^2) = y^\top P_{\tau^2} y`."""
    return weighted_fit(X, y, 1.0 / (v + tau2)).rss


# --------------------------------------------------------------------------- GMM


def gmm_weights(v, method):
    """Fixed GMM weights: ``"dl"`` gives :math:`1/v` (equal weights when all v are 0,
    the limit of equal variances), ``"he"`` gives ones."""
    if method == "he" or not np.any(v > 0):
        return np.ones_like(v)
    if method == "dl":
        return 1.0 / v
    raise ValueError(f"Unknown GMM estimator {method!r}.")


class GMMStructure(NamedTuple):
    r"""What the distribution of :math:`Q_a` needs, computed once per fit.

    :math:`Q_a = y^\top P_a y` with :math:`P_a = A^{1/2}(I - P_B)A^{1/2}` and
    :math:`B = A^{1/2}X`: at :math:`\tau^2` it is the quadratic form of
    :math:`\delta = a(v + \tau^2)` and ``basis`` :math:`B`
    (:func:`gmm_form`).  ``c_a`` :math:`= \operatorname{tr}(P_aV)` and ``d_a``
    :math:`= \operatorname{tr}(P_a)`, so that :math:`E[Q_a] = c_a + d_a\tau^2`.
    """

    a: np.ndarray
    basis: np.ndarray
    projection: Projection
    c_a: float
    d_a: float


def gmm_structure(X, v, a):
    """The :class:`GMMStructure` of the moment estimator with weights ``a``.

    The columns of ``X`` after an intercept are shifted to the values of the
    study with the largest weight (a unit-triangular change of basis, exact in
    floating point): a study with a dominant weight (a tiny sampling variance)
    then costs no precision in :math:`B^\top B`.
    """
    a = a / a.max()  # Q_a, c_a and d_a scale with a; tau^2-hat does not
    if X.shape[1] > 1 and np.all(X[:, 0] == 1.0):
        X = X.copy()
        X[:, 1:] -= X[int(np.argmax(a)), 1:]
    basis = np.sqrt(a)[:, None] * X
    proj = projection(basis)
    comp = proj.complement  # diag(P_a) / a, without cancellation
    return GMMStructure(a, basis, proj, float(a @ (v * comp)), float(a @ comp))


def gmm_form(structure, v, tau2):
    r"""The quadratic form of :math:`Q_a` at :math:`\tau^2` (Theorem 2)."""
    return quadratic_form(
        structure.a * (v + tau2), structure.basis, structure.projection
    )


def gmm_tau2_m(tau2_obs, structure, v, *, rtol=1e-12):
    r"""Median-unbiased M-estimate :math:`\tau^2_M` for the GMM estimator.

    Solves :math:`h(\tau^2) = F_{Q_a}(c_a + d_a\hat\tau^2_{obs} \mid \tau^2) - 1/2
    = 0` (:math:`h` is non-increasing in :math:`\tau^2`). Returns 0 when
    :math:`\hat\tau^2_{obs} = 0` (infimum of the solution set, the authors'
    convention) or when :math:`h(0) \le 0` (no root).

    Newton's method from :math:`\hat\tau^2_{obs}` with the exact derivative
    :math:`\partial F/\partial\tau^2` (:func:`qf_cdf_slope`, the same transform
    evaluation as the CDF), inside the bracket of the points evaluated so far
    (:math:`h > 0` on the left, :math:`h < 0` on the right); when a step leaves
    the bracket, the derivative is not negative or not available, or Newton has
    not converged in :data:`_NEWTON_TAU2_M_ITER` steps, Brent's method on the
    bracket (first widened by factors of 4 while :math:`h > 0` at its right end).

    Returns
    -------
    tau2_m : float
    n_iter : int
        Number of CDF evaluations.
    """
    if tau2_obs <= 0:
        return 0.0, 0
    q_obs = structure.c_a + structure.d_a * tau2_obs

    def h(t):
        return float(qf_cdf(q_obs, gmm_form(structure, v, t))) - 0.5

    n = 1
    if h(0.0) <= 0:
        return 0.0, n
    lo, hi = 0.0, np.inf  # h(lo) > 0 >= h(hi)
    t = max(tau2_obs, 1e-300)
    previous = None  # the previous Newton step
    for _ in range(_NEWTON_TAU2_M_ITER):
        value = qf_cdf_slope(q_obs, gmm_form(structure, v, t), structure.a)
        if value is None:
            break
        n += 1
        g, slope = value[0] - 0.5, value[1]
        if g > 0:
            lo = t
        else:
            hi = t
        if g == 0:
            return float(t), n
        if not slope < 0:
            break
        step = g / slope
        new = t - step
        if not lo < new < hi:
            break
        if _newton_converged(step, previous, new, rtol):
            return float(new), n
        t, previous = new, step
    # Brent on the bracket: widen it to the right while h > 0 there
    if not np.isfinite(hi):
        hi = 4.0 * lo if lo > 0 else max(tau2_obs, 1e-300)  # h(lo) > 0 is known
        while True:
            n += 1
            if h(hi) <= 0:
                break
            lo, hi = hi, 4.0 * hi  # h(lo) > 0: the narrower bracket
            if not np.isfinite(hi):  # pragma: no cover - defensive
                raise FloatingPointError("Could not bracket tau2_M.")
    root, info = optimize.brentq(h, lo, hi, xtol=1e-300, rtol=rtol, full_output=True)
    return float(root), n + info.function_calls


def _newton_converged(step, previous, new, rtol):
    """Whether the Newton iterate ``new`` (reached by ``step`` after ``previous``,
    None at the first step) is within ``rtol`` of the root, without evaluating
    there.

    Either the step itself is below ``rtol * new``, or the iterations are in
    their quadratic regime: the error after a step is about ``C step^2`` with
    ``C ~ |step| / previous^2`` (the observed contraction), so
    ``|step|^3 / previous^2`` estimates it; it must be below ``rtol * new`` with a
    safety factor :data:`_NEWTON_SAFETY` (a slower, e.g. linear, convergence
    gives a large estimate and more steps).
    """
    size = abs(step)
    if size <= rtol * new:
        return True
    if previous is None:
        return False
    return size * size * size <= _NEWTON_SAFETY * rtol * new * previous * previous


def _continuous_rule(form, shift, scale, atom=None):
    r"""Rule for :math:`E[g(X)]`, :math:`X = \max\{0, (Q - c)/d\}` (``c, d`` =
    ``shift, scale``).

    :math:`E[g(X)] \approx p_0 g(0) + \sum_j \omega_j g(x_j)`: the atom
    :math:`p_0 = F_Q(c)` and the continuous part
    :math:`\int g((q - c)/d) f_Q(q) dq` over :math:`(c, u]` (``u`` the upper
    support bound) by composite Gauss-Legendre: in :math:`t = \sqrt{q - c}` when
    the lower support bound is below ``c`` (which makes the :math:`q^{-1/2}`
    density of one chi-square regular), otherwise in :math:`q` over the support
    bounds.

    ``atom``: :math:`F_Q(c)` when already computed (``form`` prepared).

    Returns
    -------
    x : ndarray of shape (n,)
        Nodes, ``x[0] = 0`` the atom.
    weights : ndarray of shape (n,)
        Probabilities (summing to 1 up to the quadrature error, < 1e-10 tested).
    """
    form = qf_prepare(form)
    lower, upper = qf_support(form)
    p0 = float(qf_cdf(shift, form)) if atom is None else atom
    if upper <= shift or p0 >= 1.0:
        return np.zeros(1), np.ones(1)
    gx, gw = _GAUSS_LEGENDRE
    if lower <= shift:
        ends = _PANELS_NEAR_ATOM * np.sqrt(upper - shift)
    else:
        ends = lower + _PANELS_UNIFORM * (upper - lower)
    lo, hi = ends[:-1, None], ends[1:, None]
    nodes = (0.5 * (hi - lo) * gx + 0.5 * (hi + lo)).ravel()
    wt = (0.5 * (hi - lo) * gw).ravel()
    if lower <= shift:
        q = shift + nodes * nodes
        wt = 2.0 * nodes * wt
    else:
        q = nodes
    x = np.concatenate([[0.0], (q - shift) / scale])
    w = np.concatenate([[p0], wt * qf_pdf(q, form)])
    return x, w


class GMMDistribution(NamedTuple):
    r"""The distribution of :math:`Q_a` at one :math:`\tau^2`, prepared once
    (:func:`qf_prepare`), and its atom :math:`P(\hat\tau^2 = 0) = F_{Q_a}(c_a)`."""

    form: object
    atom: float


def gmm_distribution(structure, v, tau2):
    """The :class:`GMMDistribution` at ``tau2`` (shared by the mixture rule and the
    sampling interval of the same fit)."""
    form = qf_prepare(gmm_form(structure, v, tau2))
    return GMMDistribution(form, float(qf_cdf(structure.c_a, form)))


def gmm_mixture(structure, v, tau2_m, distribution=None):
    r"""Quadrature rule for :math:`X = \max\{0,(Q_a - c_a)/d_a\}` at
    :math:`\tau^2_M` (see :func:`_continuous_rule`); ``distribution``: its
    :func:`gmm_distribution` when already computed."""
    if distribution is None:
        distribution = gmm_distribution(structure, v, tau2_m)
    if not np.any(distribution.form.form.delta > 0):
        return np.zeros(1), np.ones(1)
    return _continuous_rule(
        distribution.form, structure.c_a, structure.d_a, distribution.atom
    )


# ---------------------------------------------------------------------------- SJ


def sj_tau2_m(X, y, v, *, rtol=1e-12, fit0=None):
    r"""M-estimate for SJ: the positive root of :math:`Q(\tau^2) = m_{K-p}`.

    :math:`m_{K-p}` is the median of :math:`\chi^2_{K-p}`. :math:`Q` is strictly
    decreasing; when :math:`Q(0) \le m_{K-p}` the result is 0. With all v = 0,
    :math:`Q(\tau^2) = RSS/\tau^2` and the root is :math:`RSS/m_{K-p}`.

    Newton's method from 0 on :math:`1/Q(\tau^2) - 1/m_{K-p}` (nearly linear:
    :math:`Q \approx RSS/(\tau^2 + \bar v)`) with the exact derivative
    :math:`Q'(\tau^2) = -\sum_k w_k^2 r_k^2` (:math:`Q` is the minimum over
    :math:`\beta` of :math:`\sum_k w_k(\tau^2)(y_k - x_k^\top\beta)^2`, so only
    the weights move), inside the bracket :math:`[0, RSS/m_{K-p}]` narrowed by
    the points evaluated; Brent's method on the bracket when a step leaves it or
    Newton has not converged in :data:`_NEWTON_TAU2_M_ITER` steps.

    ``fit0``: ``weighted_fit(X, y, 1 / v)`` (the fit at :math:`\tau^2 = 0`) when
    already computed.

    Returns
    -------
    tau2_m : float
    n_iter : int
    """
    k, p = X.shape
    m = float(_chi2_ppf(0.5, k - p))
    if not np.any(v > 0):
        rss = weighted_fit(X, y, np.ones(k)).rss  # OLS residual SS
        return (rss / m if rss > 0 else 0.0), 0
    q, slope = _q_and_slope(weighted_fit(X, y, 1.0 / v) if fit0 is None else fit0)
    if q <= m:  # (also when y is fitted exactly: Q = 0 for all tau^2)
        return 0.0, 1
    n = 1
    rss = weighted_fit(X, y, np.ones(k)).rss  # OLS residual SS, > 0 as Q(0) > 0
    lo, hi = 0.0, rss / m  # Q(t) <= RSS_OLS / t, so Q(hi) <= m < Q(lo)
    t = 0.0
    previous = None  # the previous Newton step
    for _ in range(_NEWTON_TAU2_M_ITER):
        if not slope < 0:
            break
        step = (1.0 / q - 1.0 / m) / (-slope / (q * q))
        new = t - step
        if not lo < new < hi:
            break
        if _newton_converged(step, previous, new, rtol):
            return float(new), n
        t, previous = new, step
        q, slope = _q_and_slope(weighted_fit(X, y, 1.0 / (v + t)))
        n += 1
        if q > m:
            lo = t
        elif q < m:
            hi = t
        else:
            return float(t), n
    root, info = optimize.brentq(
        lambda t: q_stat(X, y, v, t) - m,
        lo,
        hi,
        xtol=1e-300,
        rtol=rtol,
        full_output=True,
    )
    return float(root), n + info.function_calls


def _q_and_slope(fit):
    r""":math:`Q(\tau^2)` and its derivative :math:`-\sum_k w_k^2 r_k^2` from the
    weighted fit at :math:`\tau^2`."""
    scaled = fit.weights * fit.resid
    return fit.rss, -float(scaled @ scaled)


def sj_form(dof, tau2_m):
    r"""The distribution :math:`\tau^2_M\chi^2_d/d` of the oracle SJ estimate
    (Theorem 3), :math:`d = K - p`, as a quadratic form."""
    return quadratic_form(np.full(dof, tau2_m / dof))


def sj_mixture(dof, tau2_m):
    r"""Quadrature rule for :math:`X = \tau^2_M\chi^2_{d}/d`, :math:`d = K - p`;
    a point mass at 0 when :math:`\tau^2_M = 0` (see :func:`_continuous_rule`)."""
    if tau2_m <= 0:
        return np.zeros(1), np.ones(1)
    return _continuous_rule(sj_form(dof, tau2_m), 0.0, 1.0)


# ------------------------------------------------------------------- mixtures


class MixtureRule(NamedTuple):
    """Nodes x_j and probabilities w_j of X, with the per-node fits."""

    x: np.ndarray  # (n,)
    w: np.ndarray  # (n,)
    beta: np.ndarray  # (n, p) GLS estimates at x_j (HKSJ centre)
    cov: np.ndarray  # (n, p, p) (X'W(x_j)X)^{-1}
    q: np.ndarray  # (n,) residual Q at x_j
    se: np.ndarray  # (n, p) sqrt of diag (X'W(x_j)X)^{-1}
    s_hksj: np.ndarray  # (n, p) Knapp-Hartung standard errors at x_j


def _mixture_rule(X, y, v, x, w):
    keep = w > 0  # e.g. the empty atom at 0 when all v are 0 (infinite weights)
    # renormalise the quadrature error (< 1e-10) away: a proper mixture CDF
    x, w = x[keep], w[keep] / w[keep].sum()
    beta, cov, q = _node_fits(X, y, v, x)
    se = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    k, p = X.shape
    s = se * np.sqrt(q / (k - p))[:, None]
    return MixtureRule(x, w, beta, cov, q, se, s)


def _node_fits(X, y, v, tau2):
    r"""Weighted least squares with :math:`w = 1/(v + \tau^2_n)` at every node
    :math:`\tau^2_n` at once (``weighted_fit`` one weight vector at a time, ~100
    nodes, costs a Python loop).

    Returns
    -------
    beta : ndarray of shape (n, p)
    cov : ndarray of shape (n, p, p)
        :math:`(X^\top W_n X)^{-1}`.
    q : ndarray of shape (n,)
        :math:`\sum_k w_{nk} (y_k - x_k^\top\hat\beta_n)^2`.
    """
    w = 1.0 / (v + tau2[:, None])  # (n, K)
    if X.shape[1] == 1:  # closed form (intercept-only model), no batched inverse
        x = X[:, 0]
        total = w @ (x * x)
        cov = (1.0 / total)[:, None, None]
        beta = ((w @ (x * y)) / total)[:, None]
    else:
        cov = np.linalg.inv(np.einsum("nk,ki,kj->nij", w, X, X))
        beta = np.einsum("nij,nj->ni", cov, w @ (X * y[:, None]))
    resid = y - beta @ X.T
    return beta, cov, (w * resid * resid).sum(axis=1)


def mixture_z_cdf(q, rule, j=0):
    r""":math:`G_j(q) = \sum_n w_n \Phi(q / se_j(x_n))`, vectorised over ``q``."""
    q = np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = q[..., None] / rule.se[:, j]
    return (special.ndtr(z) * rule.w).sum(axis=-1)


def mixture_z_ppf(p, rule, j=0):
    """Root of :math:`G_j(q) = p` for ``p`` in (1/2, 1), bracketed by the per-node
    quantiles (see :func:`_mixture_root`)."""
    se = rule.se[:, j]
    zp = special.ndtri(p)

    def cdf(q):
        return float(mixture_z_cdf(q, rule, j)) - p

    def cdf_pdf(q):
        z = q / se
        return float(special.ndtr(z) @ rule.w) - p, float(
            (np.exp(-0.5 * z * z) / se) @ rule.w
        ) / np.sqrt(2.0 * np.pi)

    ends = zp * se
    return _mixture_root(cdf, cdf_pdf, ends @ rule.w, ends.min(), ends.max(), se)


#: Newton steps of a mixture quantile before Brent's method takes over (from
#: the mixture mean of the nodes' quantiles Newton converges in a handful).
_NEWTON_MIXTURE_ITER = 20


def _mixture_root(f, f_and_slope, start, lo, hi, spread):
    """Root of an increasing mixture CDF minus ``p`` on its bracket [lo, hi] (the
    smallest and largest of the nodes' quantiles).

    Newton's method from ``start`` with the mixture density; Brent's method on
    the bracket (:func:`_bracketed_root`) when a step leaves the bracket, the
    density is not positive, a node has zero spread or Newton has not converged
    in :data:`_NEWTON_MIXTURE_ITER` steps.  Newton stops at Brent's tolerance
    (a step below ``1e-13 |x| + 1e-15 max(|lo|, |hi|)``).
    """
    scale = max(abs(lo), abs(hi))
    if hi - lo <= 1e-14 * max(scale, 1e-300):
        return float(hi)
    if np.all(spread > 0) and lo < start < hi:
        x = start
        for _ in range(_NEWTON_MIXTURE_ITER):
            g, slope = f_and_slope(x)
            if not slope > 0:
                break
            step = g / slope
            new = x - step
            if not lo <= new <= hi:
                break
            if abs(step) <= 1e-13 * abs(new) + 1e-15 * scale:
                return float(new)
            x = new
    return _bracketed_root(f, lo, hi)


def _bracketed_root(f, lo, hi):
    """Brent's root of an increasing ``f`` on [lo, hi] whose ends bracket it up to
    rounding (all mixture nodes may share one quantile, e.g. equal variances)."""
    if hi - lo <= 1e-14 * max(abs(lo), abs(hi), 1e-300):
        return float(hi)
    f_lo, f_hi = f(lo), f(hi)
    if f_lo >= 0:
        return float(lo)
    if f_hi <= 0:
        return float(hi)
    return optimize.brentq(f, lo, hi, xtol=1e-15 * max(abs(lo), abs(hi)), rtol=1e-13)


def mixture_hksj_cdf(t, rule, dof, j=0):
    r""":math:`C_j(t) = \sum_n w_n F_{t_{dof}}((t - \hat\beta_j(x_n))/s_j(x_n))`."""
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (t[..., None] - rule.beta[:, j]) / rule.s_hksj[:, j]
    z = np.where(np.isnan(z), 0.0, z)
    return (special.stdtr(dof, z) * rule.w).sum(axis=-1)


def mixture_hksj_ppf(p, rule, dof, j=0):
    """Root of :math:`C_j(t) = p`, bracketed by the per-node quantiles (see
    :func:`_mixture_root`)."""
    centre, spread = rule.beta[:, j], rule.s_hksj[:, j]
    # density of t_dof: c (1 + z^2/dof)^(-(dof + 1)/2)
    log_c = (
        special.gammaln(0.5 * (dof + 1))
        - special.gammaln(0.5 * dof)
        - 0.5 * np.log(dof * np.pi)
    )

    def cdf(t):
        return float(mixture_hksj_cdf(t, rule, dof, j)) - p

    def cdf_pdf(t):
        z = (t - centre) / spread
        density = np.exp(log_c - 0.5 * (dof + 1) * np.log1p(z * z / dof)) / spread
        return float(special.stdtr(dof, z) @ rule.w) - p, float(density @ rule.w)

    ends = centre + special.stdtrit(dof, p) * spread
    return _mixture_root(cdf, cdf_pdf, ends @ rule.w, ends.min(), ends.max(), spread)


def paper_grid_tau2_m(X, y, v, method, structure=None, tau2_obs=None, tau2_m=None):
    r"""The authors' grid convention for :math:`\tau^2_M` (``paper_compat``).

    The grid point of ``PAPER_TAU2_GRID`` (0.001, 0.1, ..., 30, data units)
    minimising :math:`|R(\tau^2) - \hat\tau^2(\tau^2)|`, :math:`R` the median of the
    estimator's distribution at :math:`\tau^2` (exact here; the authors use 10^4
    Monte Carlo draws snapped to the grid). For SJ,
    :math:`\hat\tau^2(\tau^2) = \tau^2 Q(\tau^2)/(K-p)` and
    :math:`R = \tau^2 m_{K-p}/(K-p)`; for GMM (``structure``) :math:`\hat\tau^2` is
    the observed estimate and :math:`R(\tau^2) = \max\{0, (F^{-1}_{Q_a}(1/2 \mid
    \tau^2) - c_a)/d_a\}`. Ties go to the smallest grid point.

    ``tau2_m``: the exact GMM root (:func:`gmm_tau2_m`), when known, from which
    the grid crossing is looked up directly and confirmed (see below).
    """
    grid = PAPER_TAU2_GRID
    k, p = X.shape
    if method == "sj":
        m = float(_chi2_ppf(0.5, k - p))
        q = np.array([q_stat(X, y, v, t) for t in grid])
        crit = np.abs(grid * (m - q) / (k - p))
        return float(grid[np.argmin(crit)])
    c_a, d_a = structure.c_a, structure.d_a

    def r(t):
        form = qf_prepare(gmm_form(structure, v, t))
        if qf_cdf(c_a, form) >= 0.5:  # the median is in the atom at 0
            return 0.0
        q50 = float(qf_ppf(0.5, form))
        return max(0.0, (q50 - c_a) / d_a)

    q_obs = c_a + d_a * tau2_obs

    def below(t):
        # R(t) < tau2_obs  <=>  F(c + d tau2_obs | t) > 1/2 (for tau2_obs > 0)
        if tau2_obs <= 0:
            return False
        return float(qf_cdf(q_obs, gmm_form(structure, v, t))) > 0.5

    # R is non-decreasing: the minimiser of |R - tau2_obs| neighbours the crossing,
    # located by bisection on the CDF; only the two neighbours need R itself.
    # ``below`` is monotone in t (F(q | t) is non-increasing in t), so a pair of
    # neighbours with below = True, False is the one crossing the bisection
    # finds; the exact root tau2_m (where F = 1/2) lies between them, so that
    # pair is tried first and, when both evaluations confirm it, the bisection
    # (and its end checks) are skipped.
    crossing = None
    if tau2_m is not None and tau2_obs > 0 and grid[0] < tau2_m <= grid[-1]:
        hi = int(np.searchsorted(grid, tau2_m))  # grid[hi - 1] < tau2_m <= grid[hi]
        if below(grid[hi - 1]) and not below(grid[hi]):
            crossing = hi - 1, hi
    if crossing is None:
        lo, hi = 0, grid.size - 1
        if not below(grid[lo]):
            return float(grid[lo])
        if below(grid[hi]):
            return float(grid[hi])
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if below(grid[mid]):
                lo = mid
            else:
                hi = mid
        crossing = lo, hi
    lo, hi = crossing
    d_lo, d_hi = abs(r(grid[lo]) - tau2_obs), abs(r(grid[hi]) - tau2_obs)
    return float(grid[lo] if d_lo <= d_hi else grid[hi])


# ---------------------------------------------------------------------- driver


class RobustFit(NamedTuple):
    """Everything inference needs, computed once per fit."""

    X: np.ndarray
    y: np.ndarray
    v: np.ndarray
    method: str
    structure: GMMStructure | None  # of the GMM statistic (None for SJ)
    beta: np.ndarray  # (p,) plug-in estimates at tau2
    se: np.ndarray  # (p,) plug-in standard errors (z)
    se_hksj: np.ndarray  # (p,) Knapp-Hartung standard errors at tau2
    cov: np.ndarray  # (p, p) plug-in covariance (X'WX)^{-1}
    q_e: float  # residual Q at tau2
    q0: float  # Q(0), weights 1/v (nan when all v are 0)
    tau2: float  # plug-in tau^2
    tau2_m: float  # M-estimate feeding the z mixture
    tau2_m_hksj: float  # M-estimate feeding the HKSJ mixture
    rule: MixtureRule | None  # mixture for z (None: not requested)
    rule_hksj: MixtureRule | None  # mixture for HKSJ (None: not requested)
    n_iter: int
    # GMM: the distributions of Q_a at tau2_m and tau2_m_hksj (None for SJ)
    distribution: GMMDistribution | None = None
    distribution_hksj: GMMDistribution | None = None

    @property
    def dof(self):
        return self.X.shape[0] - self.X.shape[1]


def _moment_tau2(X, y, v, method, a):
    """The plug-in moment estimate, by the random-effects engine's estimators."""
    if method == "sj":
        return uni.tau2_sidik_jonkman(X, y, v)[0]
    if method == "he":
        return uni.tau2_hedges(X, y, v)
    return uni.tau2_genq(X, y, v, a)


def robust_fit(
    X, y, v, *, method="dl", weights=None, paper_compat=False, inference=None
):
    """Fit the plug-in estimates, :math:`\\tau^2_M` and the mixture rules.

    Parameters
    ----------
    X : ndarray of shape (K, p)
        Design (``ones((K, 1))`` for the paper's model), full column rank, K > p.
    y, v : ndarray of shape (K,)
        Effect sizes and sampling variances (all > 0, or all 0).
    method : {"dl", "he", "sj", "gmm"}
        ``"gmm"`` uses ``weights``.
    weights : ndarray of shape (K,), optional
        Fixed positive GMM weights (``method="gmm"``).
    paper_compat : bool
        Use the authors' grid for :math:`\\tau^2_M` (SJ, and the Knapp-Hartung
        variants),
        see :func:`paper_grid_tau2_m`; the z-variant of the GMM keeps the exact root
        as the authors' code does.
    inference : {"z", "knapp-hartung"}, optional
        Build only this inference's mixture rule when the two differ
        (``paper_compat``; the other one is then None); both by default.

    Returns
    -------
    RobustFit
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    v = np.asarray(v, dtype=float)
    k, p = X.shape
    if k <= p:
        raise ValueError(f"More studies than coefficients are needed; got K={k}.")
    fit0 = weighted_fit(X, y, 1.0 / v) if np.any(v > 0) else None
    structure = None
    a = None
    if method != "sj":
        a = (
            np.asarray(weights, dtype=float)
            if method == "gmm"
            else gmm_weights(v, method)
        )
        structure = gmm_structure(X, v, a)
    tau2 = _moment_tau2(X, y, v, method, a)
    if method == "sj":
        tau2_m, n_iter = sj_tau2_m(X, y, v, fit0=fit0)
        tau2_m_h = tau2_m
        if paper_compat:
            tau2_m = tau2_m_h = paper_grid_tau2_m(X, y, v, "sj")
    else:
        tau2_m, n_iter = gmm_tau2_m(tau2, structure, v)
        tau2_m_h = tau2_m
        if paper_compat:
            tau2_m_h = paper_grid_tau2_m(X, y, v, "gmm", structure, tau2, tau2_m)
    plug = weighted_fit(X, y, 1.0 / (v + tau2))
    se = np.sqrt(np.diag(plug.cov))
    se_h = se * np.sqrt(plug.rss / (k - p))

    def rule(t):
        if method == "sj":
            return _mixture_rule(X, y, v, *sj_mixture(k - p, t)), None
        dist = gmm_distribution(structure, v, t)
        x, w = gmm_mixture(structure, v, t, dist)
        return _mixture_rule(X, y, v, x, w), dist

    if tau2_m_h == tau2_m:
        r, dist = rule(tau2_m)
        r_h, dist_h = r, dist
    else:
        r, dist = (None, None) if inference == "knapp-hartung" else rule(tau2_m)
        r_h, dist_h = (None, None) if inference == "z" else rule(tau2_m_h)
    return RobustFit(
        X,
        y,
        v,
        method,
        structure,
        plug.beta,
        se,
        se_h,
        plug.cov,
        float(plug.rss),
        float("nan") if fit0 is None else fit0.rss,
        float(tau2),
        float(tau2_m),
        float(tau2_m_h),
        r,
        r_h,
        n_iter,
        dist,
        dist_h,
    )


def _rule(fit, inference):
    """The fit's mixture rule for ``inference`` (an error when it was not built)."""
    rule = fit.rule_hksj if inference == "knapp-hartung" else fit.rule
    if rule is None:
        raise ValueError(
            f"The fit has no mixture rule for inference={inference!r}: it was "
            "fitted for the other inference; refit with this one."
        )
    return rule


def robust_conf_int(fit, confidence_level=0.95, *, inference="z", robust=True):
    """Confidence intervals for all coefficients.

    ``inference`` is ``"z"`` or ``"knapp-hartung"``; ``robust=False`` gives the
    conventional intervals (plug-in z, or Knapp-Hartung with :math:`t_{K-p}` as
    ``metafor::rma(test="knha")``).

    Returns
    -------
    ndarray of shape (p, 2)
        Lower and upper bounds.
    """
    prob = 0.5 + 0.5 * confidence_level
    n_coef = fit.beta.shape[0]
    out = np.empty((n_coef, 2))
    for j in range(n_coef):
        if not robust:
            if inference == "z":
                h = special.ndtri(prob) * fit.se[j]
            else:
                h = special.stdtrit(fit.dof, prob) * fit.se_hksj[j]
            out[j] = fit.beta[j] - h, fit.beta[j] + h
        elif inference == "z":
            h = mixture_z_ppf(prob, _rule(fit, inference), j)
            out[j] = fit.beta[j] - h, fit.beta[j] + h
        else:
            out[j] = (
                mixture_hksj_ppf(1 - prob, _rule(fit, inference), fit.dof, j),
                mixture_hksj_ppf(prob, _rule(fit, inference), fit.dof, j),
            )
    return out


def robust_prediction(fit, X_new, confidence_level=0.95, *, inference="z"):
    r"""Robust confidence and prediction intervals for new rows ``X_new``.

    The mean :math:`\hat\mu = x^\top\hat\beta` is the plug-in estimate.  Its
    interval mixes over the sampling distribution of :math:`\hat\tau^2` at
    :math:`\tau^2_M` (nodes :math:`x_n`, probabilities :math:`w_n`), as the
    coefficients' intervals do:

    - z: half-width :math:`G^{-1}(1-\alpha/2)` with
      :math:`G(q) = \sum_n w_n \Phi(q / s_n)`, :math:`s_n^2 = x^\top V(x_n) x`;
      the prediction interval for a new study's true effect uses
      :math:`s_n^2 + x_n` (metafor's ``pi`` with :math:`\tau^2 = x_n`);
    - Knapp-Hartung: :math:`C(t) = \sum_n w_n F_{t_{K-p}}((t - x^\top\hat\beta(x_n)) /
      s_n)` with Knapp-Hartung :math:`s_n`, and :math:`\sqrt{s_n^2 + x_n}` for the
      prediction interval.

    Returns
    -------
    mean, se, ci, pi : ndarray
        ``mean`` and the conventional ``se`` of shape (m,); ``ci`` and ``pi`` of
        shape (m, 2).
    """
    knha = inference == "knapp-hartung"
    rule = _rule(fit, inference)
    prob = 0.5 + 0.5 * confidence_level
    mean = X_new @ fit.beta
    se = np.sqrt(np.einsum("mi,ij,mj->m", X_new, fit.cov, X_new))
    ci = np.empty((X_new.shape[0], 2))
    pi = np.empty_like(ci)
    dof = fit.dof
    for row, x in enumerate(X_new):
        var_n = np.einsum("i,nij,j->n", x, rule.cov, x)
        if knha:
            var_n = var_n * rule.q / dof
            centre = rule.beta @ x
            for out, spread in ((ci, np.sqrt(var_n)), (pi, np.sqrt(var_n + rule.x))):

                def cdf(t, spread=spread, centre=centre):
                    z = (t - centre) / spread
                    return float((special.stdtr(dof, z) * rule.w).sum())

                ends_lo = centre + special.stdtrit(dof, 1 - prob) * spread
                ends_hi = centre + special.stdtrit(dof, prob) * spread
                out[row] = (
                    _bracketed_root(
                        lambda t, f=cdf: f(t) - (1 - prob), ends_lo.min(), ends_lo.max()
                    ),
                    _bracketed_root(
                        lambda t, f=cdf: f(t) - prob, ends_hi.min(), ends_hi.max()
                    ),
                )
        else:
            for out, spread in ((ci, np.sqrt(var_n)), (pi, np.sqrt(var_n + rule.x))):
                zp = special.ndtri(prob)
                half = _bracketed_root(
                    lambda q, s_=spread: (
                        float((special.ndtr(q / s_) * rule.w).sum()) - prob
                    ),
                    zp * spread.min(),
                    zp * spread.max(),
                )
                out[row] = mean[row] - half, mean[row] + half
    return mean, se, ci, pi


def _sided(c, alternative):
    """p-value from :math:`c = P(\\text{statistic} \\le \\text{observed})`."""
    if alternative == "two-sided":
        return np.minimum(np.maximum(2.0 * np.minimum(c, 1.0 - c), 0.0), 1.0)
    if alternative == "greater":
        return 1.0 - c
    if alternative == "less":
        return c
    raise ValueError(
        f"alternative must be 'two-sided', 'greater' or 'less'; got {alternative!r}."
    )


def robust_p_value(
    fit, theta0=0.0, alternative="two-sided", *, inference="z", robust=True
):
    r"""p-values of :math:`H_0: \beta_j = \theta_{0j}` for all coefficients.

    z (plug-in or mixture): with :math:`d = \hat\beta_j - \theta_0`, ``"greater"``
    gives :math:`1 - G(d)`, ``"less"`` :math:`G(d)`, two-sided
    :math:`2\{1 - G(|d|)\}` (:math:`G = \Phi(\cdot/se)` when not robust).
    Knapp-Hartung mixture: CI inversion, ``"greater"`` :math:`C(\theta_0)`, ``"less"``
    :math:`1 - C(\theta_0)`, two-sided :math:`2\min\{C, 1 - C\}`.

    Returns
    -------
    ndarray of shape (p,)
    """
    n_coef = fit.beta.shape[0]
    theta0 = np.zeros(n_coef) + np.asarray(theta0, dtype=float)  # (p,), a copy
    d = fit.beta - theta0
    if not robust:
        if inference == "z":
            return _sided(special.ndtr(d / fit.se), alternative)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = d / fit.se_hksj
        return _sided(
            special.stdtr(fit.dof, np.where(np.isnan(t), 0.0, t)), alternative
        )
    rule = _rule(fit, inference)
    c = np.empty(n_coef)
    for j in range(n_coef):
        if inference == "z":
            c[j] = mixture_z_cdf(d[j], rule, j)
        else:
            c[j] = 1.0 - mixture_hksj_cdf(theta0[j], rule, fit.dof, j)
    return _sided(c, alternative)


def tau2_sampling_interval(fit, confidence_level=0.95, tau2_m=None):
    """Quantile interval of the sampling distribution of :math:`\\hat\\tau^2` at
    :math:`\\tau^2_M` (paper section 3.3): central ``confidence_level`` quantiles.
    """
    ps = np.array([0.5 - 0.5 * confidence_level, 0.5 + 0.5 * confidence_level])
    t = fit.tau2_m if tau2_m is None else tau2_m
    if fit.method == "sj":
        return tuple(t * _chi2_ppf(ps, fit.dof) / fit.dof)
    structure = fit.structure
    if t == fit.tau2_m and fit.distribution is not None:
        dist = fit.distribution
    elif t == fit.tau2_m_hksj and fit.distribution_hksj is not None:
        dist = fit.distribution_hksj
    else:
        dist = gmm_distribution(structure, fit.v, t)
    # a quantile at or below the atom P(Q <= c_a) is an estimate of 0: no search
    positive = ps > dist.atom
    q = np.full(ps.shape, structure.c_a)
    q[positive] = qf_ppf(ps[positive], dist.form)
    return tuple(np.maximum(0.0, (q - structure.c_a) / structure.d_a))


def _chi2_ppf(p, dof):
    """Chi-square quantile (``scipy.stats.chi2.ppf`` without its argument
    handling)."""
    return 2.0 * special.gammaincinv(0.5 * dof, p)
