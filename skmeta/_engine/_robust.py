r"""Random-effects inference robust to the randomness of the tau^2 estimate.

Hanada & Sugimoto, "Random-effect meta-analysis with robust between-study variance"
(see ``notes/robust-method.md``). Model, for studies :math:`k = 1..K`:

.. math::

    y_k \sim N(\theta, v_k + \tau^2), \qquad w_k(\tau^2) = 1 / (v_k + \tau^2),
    \qquad \hat\theta(\tau^2) = \sum_k w_k y_k / \sum_k w_k .

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
  :math:`F_{Q_a}(c_a)` at zero.
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
* HKSJ: :math:`C(t) = E[F_{t_{K-1}}((t - \hat\theta(X))/s(X))]`,
  :math:`s^2(x) = Q(x)/((K-1)W_1(x))`,
  CI :math:`(C^{-1}(\alpha/2), C^{-1}(1-\alpha/2))`,
  two-sided p :math:`2\min\{C(\theta_0), 1 - C(\theta_0)\}` (CI inversion).

The expectation is a fixed quadrature rule (atom at 0 plus composite Gauss-Legendre on
the density of :math:`Q_a`, or generalized Gauss-Laguerre for SJ), built once per fit;
roots by Brent's method. Everything is deterministic. Intercept-only model.
"""

from typing import NamedTuple

import numpy as np
from scipy import optimize, special, stats

from skmeta._engine._wchisq import wchisq_cdf, wchisq_pdf, wchisq_ppf

__all__ = [
    "PAPER_TAU2_GRID",
    "RobustFit",
    "gmm_eigenvalues",
    "gmm_mixture",
    "gmm_tau2",
    "gmm_tau2_m",
    "gmm_weights",
    "hksj_scale",
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
    "sj_tau2",
    "sj_tau2_m",
    "tau2_sampling_interval",
    "wls",
]

# The authors' grid for tau^2_M (metaMest at the submitted version, in data units).
PAPER_TAU2_GRID = np.concatenate([[0.001], np.round(np.arange(1, 301) * 0.1, 10)])

_N_GL = 16
# Breakpoints in u = sqrt(q - c) / sqrt(q_hi - c) of the composite Gauss-Legendre rule.
_PANELS = np.array([0, 0.005, 0.02, 0.05, 0.1, 0.17, 0.25, 0.35, 0.47, 0.6, 0.75, 1])
_N_LAGUERRE = 48
_TAIL = 1e-15


def wls(y, v, tau2):
    r"""Weighted mean and its standard error at a given tau^2.

    :math:`\hat\theta = \sum w_k y_k/\sum w_k`, :math:`se = (\sum w_k)^{-1/2}`,
    :math:`w_k = 1/(v_k + \tau^2)`. ``tau2`` may be an array (broadcast over the last
    axis of the result).

    Returns
    -------
    theta, se : ndarray
    """
    tau2 = np.asarray(tau2, dtype=float)
    w = 1.0 / (v + tau2[..., None])
    w1 = w.sum(axis=-1)
    return (w * y).sum(axis=-1) / w1, 1.0 / np.sqrt(w1)


def q_stat(y, v, tau2):
    r"""Generalized Cochran statistic :math:`Q(\tau^2) = \sum w_k (y_k - \hat\theta)^2`.

    Vectorised over an array ``tau2``.
    """
    tau2 = np.asarray(tau2, dtype=float)
    w = 1.0 / (v + tau2[..., None])
    theta = (w * y).sum(axis=-1) / w.sum(axis=-1)
    return (w * (y - theta[..., None]) ** 2).sum(axis=-1)


def hksj_scale(y, v, tau2):
    r"""Knapp-Hartung standard error :math:`s(\tau^2) = \sqrt{Q(\tau^2)/((K-1)W_1)}`.

    Vectorised over an array ``tau2``; returns ``(theta, s)``.
    """
    tau2 = np.asarray(tau2, dtype=float)
    w = 1.0 / (v + tau2[..., None])
    w1 = w.sum(axis=-1)
    theta = (w * y).sum(axis=-1) / w1
    q = (w * (y - theta[..., None]) ** 2).sum(axis=-1)
    return theta, np.sqrt(q / ((y.size - 1) * w1))


# --------------------------------------------------------------------------- GMM


def gmm_weights(v, estimator):
    """Fixed GMM weights: ``"dl"`` gives :math:`1/v` (equal weights when all v are 0,
    the limit of equal variances), ``"he"`` gives ones."""
    if estimator == "he" or not np.any(v > 0):
        return np.ones_like(v)
    if estimator == "dl":
        return 1.0 / v
    raise ValueError(f"Unknown GMM estimator {estimator!r}.")


def gmm_tau2(y, v, a):
    r"""General moment estimator with fixed weights ``a``.

    Returns
    -------
    tau2 : float
        Truncated estimate :math:`\max\{0, (Q_a - c_a)/d_a\}`.
    q_a, c_a, d_a : float
        The statistic and the constants of :math:`\hat\tau^2_u = (Q_a - c_a)/d_a`.
    """
    a1 = a.sum()
    theta_a = (a * y).sum() / a1
    q_a = float((a * (y - theta_a) ** 2).sum())
    c_a = float((a * v).sum() - (a * a * v).sum() / a1)
    d_a = float(a1 - (a * a).sum() / a1)
    return max(0.0, (q_a - c_a) / d_a), q_a, c_a, d_a


def gmm_eigenvalues(v, a, tau2):
    r"""Weights :math:`\lambda_r(\tau^2)` of :math:`Q_a \sim \sum \lambda_r\chi^2_1`.

    Eigenvalues of the symmetric matrix
    :math:`\mathrm{diag}(a_k d_k) - u u^T / A_1`, :math:`d_k = v_k + \tau^2`,
    :math:`u_k = a_k\sqrt{d_k}` (diagonal plus rank one; K x K for K studies).
    """
    d = v + tau2
    u = a * np.sqrt(d)
    m = -np.outer(u, u) / a.sum()
    m[np.diag_indices_from(m)] += a * d
    lam = np.linalg.eigvalsh(m)
    return np.clip(lam, 0.0, None)


def gmm_tau2_m(tau2_obs, v, a, c_a, d_a, *, rtol=1e-12):
    r"""Median-unbiased M-estimate :math:`\tau^2_M` for the GMM estimator.

    Solves :math:`F_{Q_a}(c_a + d_a\hat\tau^2_{obs} \mid \tau^2) = 1/2` by Brent's
    method (the left side is non-increasing in :math:`\tau^2`). Returns 0 when
    :math:`\hat\tau^2_{obs} = 0` (infimum of the solution set, the authors'
    convention) or when the left side is already below 1/2 at 0 (no root).

    Returns
    -------
    tau2_m : float
    n_iter : int
        Number of CDF evaluations.
    """
    if tau2_obs <= 0:
        return 0.0, 0
    q_obs = c_a + d_a * tau2_obs

    def h(t):
        return float(wchisq_cdf(q_obs, gmm_eigenvalues(v, a, t))) - 0.5

    n = 1
    if h(0.0) <= 0:
        return 0.0, n
    hi = max(tau2_obs, 1e-300)
    while h(hi) > 0:
        n += 1
        hi *= 4.0
        if not np.isfinite(hi):  # pragma: no cover - defensive
            raise FloatingPointError("Could not bracket tau2_M.")
    root, info = optimize.brentq(h, 0.0, hi, xtol=1e-300, rtol=rtol, full_output=True)
    return float(root), n + info.function_calls


def gmm_mixture(v, a, c_a, d_a, tau2_m):
    r"""Quadrature rule for :math:`E[g(X)]`, :math:`X = \max\{0,(Q_a - c_a)/d_a\}`.

    :math:`E[g(X)] \approx p_0 g(0) + \sum_j \omega_j g(x_j)`, with the atom
    :math:`p_0 = F_{Q_a}(c_a)` and the continuous part
    :math:`\int_0^\infty g(x) d_a f_{Q_a}(c_a + d_a x) dx` on
    :math:`q = c_a + t^2`, :math:`t \in [0, \sqrt{q_{hi} - c_a}]` by composite
    Gauss-Legendre (11 panels x 16 nodes), :math:`q_{hi}` the
    :math:`1 - 10^{-15}` quantile bound :math:`\lambda_{max}\chi^2_R`. The
    substitution makes the :math:`q^{-1/2}` density of R = 1 regular at ``c_a = 0``.

    Returns
    -------
    x : ndarray of shape (n,)
        Nodes, ``x[0] = 0`` the atom.
    weights : ndarray of shape (n,)
        Probabilities (summing to 1 up to the quadrature error, < 1e-10 tested).
    """
    lam = gmm_eigenvalues(v, a, tau2_m)
    lam = lam[lam > 1e-12 * max(lam.max(initial=0.0), 1e-300)]
    if lam.size == 0:
        return np.zeros(1), np.ones(1)
    p0 = float(wchisq_cdf(c_a, lam))
    q_hi = lam.max() * stats.chi2.isf(_TAIL, lam.size)
    if q_hi <= c_a or p0 >= 1.0:
        return np.zeros(1), np.ones(1)
    t_hi = np.sqrt(q_hi - c_a)
    gx, gw = np.polynomial.legendre.leggauss(_N_GL)
    lo, hi = _PANELS[:-1, None] * t_hi, _PANELS[1:, None] * t_hi
    t = (0.5 * (hi - lo) * gx + 0.5 * (hi + lo)).ravel()
    wt = (0.5 * (hi - lo) * gw).ravel()
    q = c_a + t * t
    dens = wchisq_pdf(q, lam)
    x = np.concatenate([[0.0], (q - c_a) / d_a])
    w = np.concatenate([[p0], 2.0 * t * wt * dens])
    return x, w


# ---------------------------------------------------------------------------- SJ


def sj_tau2(y, v):
    r"""Feasible Sidik-Jonkman estimate, as ``metafor::rma(method="SJ")``.

    :math:`\hat\tau^2_0 = \sum(y_k - \bar y)^2/K`,
    :math:`\hat\tau^2_{SJ} = \hat\tau^2_0 Q(\hat\tau^2_0)/(K - 1)`.
    """
    k = y.size
    tau2_0 = float(((y - y.mean()) ** 2).sum() / k)
    if tau2_0 <= 0:
        return 0.0
    return tau2_0 * float(q_stat(y, v, tau2_0)) / (k - 1)


def sj_tau2_m(y, v, *, rtol=1e-12):
    r"""M-estimate for SJ: the positive root of :math:`Q(\tau^2) = m_{K-1}`.

    :math:`m_{K-1}` is the median of :math:`\chi^2_{K-1}`. :math:`Q` is strictly
    decreasing; when :math:`Q(0) \le m_{K-1}` (or all v are 0 and y constant) the
    result is 0. With all v = 0 the root is :math:`\sum(y - \bar y)^2/m_{K-1}`.

    Returns
    -------
    tau2_m : float
    n_iter : int
    """
    k = y.size
    m = stats.chi2.median(k - 1)
    ss = float(((y - y.mean()) ** 2).sum())
    if ss <= 0:
        return 0.0, 0
    if not np.any(v > 0):
        return ss / m, 0
    if float(q_stat(y, v, 0.0)) <= m:
        return 0.0, 1
    hi = ss / m  # Q(t) <= ss / t, so Q(hi) <= m
    root, info = optimize.brentq(
        lambda t: float(q_stat(y, v, t)) - m,
        0.0,
        hi,
        xtol=1e-300,
        rtol=rtol,
        full_output=True,
    )
    return float(root), info.function_calls


def sj_mixture(k, tau2_m):
    r"""Quadrature rule for :math:`X = \tau^2_M\chi^2_{K-1}/(K-1)`.

    Generalized Gauss-Laguerre rule (48 nodes, :math:`\alpha = (K-1)/2 - 1`) on
    :math:`X = 2\tau^2_M U/(K-1)`, :math:`U \sim \mathrm{Gamma}((K-1)/2)`; a point
    mass at 0 when :math:`\tau^2_M = 0`.
    """
    if tau2_m <= 0:
        return np.zeros(1), np.ones(1)
    alpha = 0.5 * (k - 1) - 1.0
    u, w = special.roots_genlaguerre(_N_LAGUERRE, alpha)
    w = w / special.gamma(alpha + 1.0)
    return 2.0 * tau2_m * u / (k - 1), w


# ------------------------------------------------------------------- mixtures


def mixture_z_cdf(q, x, w, v):
    r""":math:`G(q) = \sum_j w_j \Phi(q\sqrt{W_1(x_j)})`, vectorised over ``q``."""
    _, se = wls(np.zeros_like(v), v, x)
    q = np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = q[..., None] / se
    return (special.ndtr(z) * w).sum(axis=-1)


def mixture_z_ppf(p, x, w, v):
    """Root of :math:`G(q) = p` for ``p`` in (1/2, 1) (Brent)."""
    _, se = wls(np.zeros_like(v), v, x)
    zp = special.ndtri(p)
    lo, hi = zp * se.min(), zp * se.max()
    if hi - lo <= 1e-14 * hi:
        return float(hi)
    return optimize.brentq(
        lambda q: float(mixture_z_cdf(q, x, w, v)) - p,
        lo,
        hi,
        xtol=1e-300,
        rtol=1e-13,
    )


def mixture_hksj_cdf(t, x, w, y, v):
    r""":math:`C(t) = \sum_j w_j F_{t_{K-1}}((t - \hat\theta(x_j))/s(x_j))`."""
    theta, s = hksj_scale(y, v, x)
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (t[..., None] - theta) / s
    z = np.where(np.isnan(z), 0.0, z)
    return (special.stdtr(y.size - 1, z) * w).sum(axis=-1)


def mixture_hksj_ppf(p, x, w, y, v):
    """Root of :math:`C(t) = p` (Brent), bracketed by the per-node quantiles."""
    theta, s = hksj_scale(y, v, x)
    tp = special.stdtrit(y.size - 1, p)
    ends = theta + tp * s
    lo, hi = ends.min(), ends.max()
    if hi - lo <= 1e-14 * max(abs(hi), abs(lo), 1e-300):
        return float(hi)
    return optimize.brentq(
        lambda t: float(mixture_hksj_cdf(t, x, w, y, v)) - p,
        lo,
        hi,
        xtol=1e-15 * max(abs(lo), abs(hi)),
        rtol=1e-13,
    )


def paper_grid_tau2_m(y, v, estimator, a=None, c_a=None, d_a=None, tau2_obs=None):
    r"""The authors' grid convention for :math:`\tau^2_M` (``paper_compat``).

    The grid point of ``PAPER_TAU2_GRID`` (0.001, 0.1, ..., 30, data units)
    minimising :math:`|R(\tau^2) - \hat\tau^2(\tau^2)|`, :math:`R` the median of the
    estimator's distribution at :math:`\tau^2` (exact here; the authors use 10^4
    Monte Carlo draws snapped to the grid). For SJ,
    :math:`\hat\tau^2(\tau^2) = \tau^2 Q(\tau^2)/(K-1)` and
    :math:`R = \tau^2 m_{K-1}/(K-1)`; for GMM :math:`\hat\tau^2` is the observed
    estimate and :math:`R(\tau^2) = \max\{0, (F^{-1}_{Q_a}(1/2 \mid \tau^2) -
    c_a)/d_a\}`. Ties go to the smallest grid point.
    """
    grid = PAPER_TAU2_GRID
    k = y.size
    if estimator == "sj":
        m = stats.chi2.median(k - 1)
        crit = np.abs(grid * (m - q_stat(y, v, grid)) / (k - 1))
        return float(grid[np.argmin(crit)])

    def r(t):
        q50 = float(wchisq_ppf(0.5, gmm_eigenvalues(v, a, t)))
        return max(0.0, (q50 - c_a) / d_a)

    # R is non-decreasing: the minimiser of |R - tau2_obs| neighbours the crossing.
    lo, hi = 0, grid.size - 1
    if r(grid[lo]) >= tau2_obs:
        return float(grid[lo])
    if r(grid[hi]) <= tau2_obs:
        return float(grid[hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if r(grid[mid]) < tau2_obs:
            lo = mid
        else:
            hi = mid
    d_lo, d_hi = abs(r(grid[lo]) - tau2_obs), abs(r(grid[hi]) - tau2_obs)
    return float(grid[lo] if d_lo <= d_hi else grid[hi])


# ---------------------------------------------------------------------- driver


class RobustFit(NamedTuple):
    """Everything inference needs, computed once per fit."""

    y: np.ndarray
    v: np.ndarray
    estimator: str
    a: np.ndarray | None
    theta: float  # plug-in estimate at tau2
    se: float  # plug-in standard error (z)
    se_hksj: float  # Knapp-Hartung standard error at tau2
    tau2: float  # plug-in tau^2
    tau2_m: float  # M-estimate feeding the z mixture
    tau2_m_hksj: float  # M-estimate feeding the HKSJ mixture
    q_a: float  # GMM statistic (nan for SJ)
    c_a: float
    d_a: float
    x: np.ndarray  # mixture nodes for z
    w: np.ndarray
    x_hksj: np.ndarray  # mixture nodes for HKSJ
    w_hksj: np.ndarray
    n_iter: int


def robust_fit(y, v, *, estimator="dl", weights=None, paper_compat=False):
    r"""Fit the plug-in estimate, :math:`\tau^2_M` and the mixture rules.

    Parameters
    ----------
    y, v : ndarray of shape (K,)
        Effect sizes and sampling variances (all > 0, or all 0). K >= 2.
    estimator : {"dl", "he", "sj", "gmm"}
        ``"gmm"`` uses ``weights``.
    weights : ndarray of shape (K,), optional
        Fixed positive GMM weights (``estimator="gmm"``).
    paper_compat : bool
        Use the authors' grid for :math:`\tau^2_M` (SJ, and the HKSJ variants),
        see :func:`paper_grid_tau2_m`; the z-variant of the GMM keeps the exact root
        as the authors' code does.

    Returns
    -------
    RobustFit
    """
    y = np.asarray(y, dtype=float)
    v = np.asarray(v, dtype=float)
    k = y.size
    if k < 2:
        raise ValueError(f"At least 2 studies are needed; got {k}.")
    n_iter = 0
    if estimator == "sj":
        a = None
        tau2 = sj_tau2(y, v)
        q_a = c_a = d_a = np.nan
        tau2_m, n_iter = sj_tau2_m(y, v)
        tau2_m_h = tau2_m
        if paper_compat:
            tau2_m = tau2_m_h = paper_grid_tau2_m(y, v, "sj")
    else:
        a = (
            np.asarray(weights, dtype=float)
            if estimator == "gmm"
            else gmm_weights(v, estimator)
        )
        tau2, q_a, c_a, d_a = gmm_tau2(y, v, a)
        tau2_m, n_iter = gmm_tau2_m(tau2, v, a, c_a, d_a)
        tau2_m_h = tau2_m
        if paper_compat:
            tau2_m_h = paper_grid_tau2_m(y, v, "gmm", a, c_a, d_a, tau2)
    theta, se = wls(y, v, tau2)
    _, s = hksj_scale(y, v, tau2)

    def rule(t):
        if estimator == "sj":
            return sj_mixture(k, t)
        return gmm_mixture(v, a, c_a, d_a, t)

    x, w = rule(tau2_m)
    x_h, w_h = (x, w) if tau2_m_h == tau2_m else rule(tau2_m_h)
    return RobustFit(
        y,
        v,
        estimator,
        a,
        float(theta),
        float(se),
        float(s),
        float(tau2),
        float(tau2_m),
        float(tau2_m_h),
        q_a,
        c_a,
        d_a,
        x,
        w,
        x_h,
        w_h,
        n_iter,
    )


def robust_conf_int(fit, confidence_level=0.95, *, inference="z", robust=True):
    r"""Confidence interval for :math:`\theta`.

    ``robust=False`` gives the conventional interval (plug-in z, or Knapp-Hartung with
    :math:`t_{K-1}` as ``metafor::rma(test="knha")``).

    Returns
    -------
    (lower, upper) : tuple of float
    """
    p = 0.5 + 0.5 * confidence_level
    k = fit.y.size
    if not robust:
        if inference == "z":
            h = special.ndtri(p) * fit.se
        else:
            h = special.stdtrit(k - 1, p) * fit.se_hksj
        return fit.theta - h, fit.theta + h
    if inference == "z":
        h = mixture_z_ppf(p, fit.x, fit.w, fit.v)
        return fit.theta - h, fit.theta + h
    lo = mixture_hksj_ppf(1 - p, fit.x_hksj, fit.w_hksj, fit.y, fit.v)
    hi = mixture_hksj_ppf(p, fit.x_hksj, fit.w_hksj, fit.y, fit.v)
    return lo, hi


def _sided(c, alternative):
    r"""p-value from :math:`c = P(\text{statistic} \le \text{observed})`."""
    if alternative == "two-sided":
        return float(np.clip(2.0 * min(c, 1.0 - c), 0.0, 1.0))
    if alternative == "greater":
        return float(1.0 - c)
    if alternative == "less":
        return float(c)
    raise ValueError(
        f"alternative must be 'two-sided', 'greater' or 'less'; got {alternative!r}."
    )


def robust_p_value(
    fit, theta0=0.0, alternative="two-sided", *, inference="z", robust=True
):
    r"""p-value for :math:`H_0: \theta = \theta_0`.

    z (plug-in or mixture): with :math:`d = \hat\theta - \theta_0`, ``"greater"``
    gives :math:`1 - G(d)`, ``"less"`` :math:`G(d)`, two-sided
    :math:`2\{1 - G(|d|)\}` (:math:`G = \Phi(\cdot/se)` when not robust). HKSJ
    mixture: CI inversion, ``"greater"`` :math:`C(\theta_0)`, ``"less"``
    :math:`1 - C(\theta_0)`, two-sided :math:`2\min\{C, 1 - C\}`.
    """
    d = fit.theta - theta0
    k = fit.y.size
    if inference == "z":
        if robust:
            c = float(mixture_z_cdf(d, fit.x, fit.w, fit.v))
        else:
            c = float(special.ndtr(d / fit.se))
        return _sided(c, alternative)
    if robust:
        c_theta0 = float(mixture_hksj_cdf(theta0, fit.x_hksj, fit.w_hksj, fit.y, fit.v))
        return _sided(1.0 - c_theta0, alternative)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = d / fit.se_hksj
    return _sided(float(special.stdtr(k - 1, t)), alternative)


def tau2_sampling_interval(fit, confidence_level=0.95):
    r"""Quantile interval of the sampling distribution of :math:`\hat\tau^2` at
    :math:`\tau^2_M` (paper section 3.3): central ``confidence_level`` quantiles.
    """
    ps = np.array([0.5 - 0.5 * confidence_level, 0.5 + 0.5 * confidence_level])
    k = fit.y.size
    if fit.estimator == "sj":
        return tuple(fit.tau2_m * stats.chi2.ppf(ps, k - 1) / (k - 1))
    lam = gmm_eigenvalues(fit.v, fit.a, fit.tau2_m)
    q = wchisq_ppf(ps, lam)
    return tuple(np.maximum(0.0, (q - fit.c_a) / fit.d_a))
