r"""Selection models for publication bias: step-function and beta selection.

The unselected model is the random-effects meta-regression
:math:`y_i \sim N(\mu_i, v_i + \tau^2)`, :math:`\mu_i = x_i^\top\beta`.  A study
whose one- or two-sided p-value (of :math:`H_0: \theta_i = 0`, from :math:`y_i`
and :math:`v_i` only) is :math:`p_i` is observed with relative probability
:math:`w(p_i; \delta)`, so the observed effects have the weighted densities

.. math::

    f(y_i) = \frac{w(p_i;\delta)\, \phi_N(y_i;\mu_i, \sigma_i^2)}{A_i},\qquad
    A_i = \int w(p(u; v_i); \delta)\, \phi_N(u; \mu_i, \sigma_i^2)\, du,\qquad
    \sigma_i^2 = v_i + \tau^2

(Iyengar & Greenhouse 1988; Hedges 1992; Vevea & Hedges 1995).  Two families of
:math:`w` are implemented:

* **step functions** (Vevea & Hedges 1995): cut points
  :math:`0 < s_1 < \dots < s_m = 1`, :math:`w(p) = \delta_j` for
  :math:`s_{j-1} < p \le s_j`, :math:`\delta_1 = 1`.  With one cut this is the
  three-parameter selection model (McShane, Böckenholt & Hansen 2016).
  :math:`A_i` is a weighted sum of normal probabilities (closed form).
* **beta selection** (Citkowicz & Vevea 2017): :math:`w(p) =
  \tilde p^{\delta_1 - 1}(1 - \tilde p)^{\delta_2 - 1}` with the p-value
  censored to :math:`\tilde p \in [p_{\min}, 1 - p_{\min}]`.  The integral is
  split at the censoring points: where :math:`w` is constant it is a normal
  probability, and in between it is computed by composite Gauss–Legendre
  quadrature on the standardised scale :math:`z = u / \sqrt{v_i}`, on which
  :math:`w` does not depend on the study and the normal factor has standard
  deviation :math:`\sigma_i/\sqrt{v_i} \ge 1`.

Every normalising constant is written as :math:`A_i = \sum_t G_t(\delta)
F_{it}(\mu_i, \sigma_i^2)` over *terms* :math:`t` (step intervals, censored
tails, quadrature nodes) and evaluated in log space (per-study log-sum-exp), so
that extreme weights (:math:`\tilde p^{99}`) or far-out studies neither
underflow nor overflow.  The log-likelihood comes with its analytic gradient
and Hessian in the natural parameters :math:`(\beta, \tau^2, \delta)`.

"less" is "greater" mirrored (:math:`u \mapsto -u`); "two-sided" uses
:math:`p = 2(1 - \Phi(|z|))`, whose intervals are pairs of segments.
"""

from typing import NamedTuple

import numpy as np
from scipy import special
from scipy.linalg.lapack import dpotrf as _potrf
from scipy.linalg.lapack import dpotrs as _potrs

from skmeta._engine._gls import LOG_2PI, gaussian_logpdf

#: metafor's ``pval.min`` for the beta model: p-values are censored to
#: [1e-5, 1 - 1e-5] (Citkowicz & Vevea 2017), both for the observed studies and
#: inside the normalising integral.
BETA_PVALUE_FLOOR = 1e-5
#: Composite Gauss-Legendre rule on the standardised scale z for the beta model:
#: panels per unit of z and nodes per panel.  Features of the integrand are at
#: least ~0.1 wide in z (the normal factor has sd >= 1; p^(delta-1) with
#: delta <= 100 behaves like exp(-49.5 z^2)); 2 panels per unit with 16 nodes
#: each give log A_i to ~1e-10 over delta in [1e-5, 100]^2 (1 panel per unit:
#: 1.5e-6), checked against adaptive quadrature in the tests.
_PANELS_PER_UNIT = 2.0
_NODES_PER_PANEL = 16
_LOG_SQRT_2PI = 0.5 * LOG_2PI
#: Two-sided beta model: below this |z| the nodes are laid out in log |z| (see
#: :func:`selection_problem`).
_GRADED_UNTIL = 1.0


class SelectionProblem(NamedTuple):
    """The data and the fixed structure of one selection model.

    Built by :func:`selection_problem`; every array is fixed during a fit.
    """

    X: np.ndarray  # (k, p) design
    y: np.ndarray  # (k,)
    v: np.ndarray  # (k,) sampling variances (>= 0)
    kind: str  # "step" or "beta"
    sign: float  # +1 ("greater", "two-sided") or -1 ("less"): u -> sign * u
    steps: np.ndarray  # (m,) step cut points with 1 appended (step); empty (beta)
    pvalues: np.ndarray  # (k,) p-values (censored for beta)
    group: np.ndarray  # (k,) interval of each p-value (step); empty (beta)
    obs_logp: np.ndarray  # (k, 2) log p, log(1 - p) of the observed p (beta)
    seg_ends: np.ndarray  # (k, 2S) lower, then upper ends of the segments (u scale)
    ends_finite: np.ndarray  # (k, 2S) which ends are finite
    seg_term: np.ndarray  # (S,) term of each segment
    seg_pairs: tuple | None  # (first, second) segment of each term; None: one each
    n_const: int  # number of constant-weight terms (intervals / censored tails)
    node_u: np.ndarray  # (k, N) quadrature nodes on the u scale (beta)
    node_logweight: np.ndarray  # (N,) log Gauss-Legendre weights
    term_logp: np.ndarray  # (T, 2) log p, log(1 - p) of every term (beta)
    log_sqrt_v: np.ndarray  # (k,) log sqrt(v_i) (node densities in z)
    n_delta: int  # number of selection parameters


class LogLik(NamedTuple):
    """Log-likelihood with its gradient and Hessian (``None`` when not asked).

    The derivatives are with respect to ``(beta, tau2, delta_1, ..., delta_m)``.
    """

    value: float
    grad: np.ndarray | None
    hess: np.ndarray | None


def pvalues(y, v, alternative):
    """One- or two-sided p-values of :math:`H_0: \\theta_i = 0` from ``y / sqrt(v)``.

    ``alternative`` is "greater" (:math:`1 - \\Phi(z)`), "less" (:math:`\\Phi(z)`)
    or "two-sided" (:math:`2(1 - \\Phi(|z|))`).  A zero sampling variance gives
    :math:`z = \\pm\\infty` (and 0 for :math:`y = 0`): the limit as
    :math:`v \\to 0`.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(y == 0.0, 0.0, y / np.sqrt(v))
    if alternative == "two-sided":
        return 2.0 * special.ndtr(-np.abs(z))
    return special.ndtr(-z if alternative == "greater" else z)


def interval_index(p, steps):
    """Interval of each p-value: the first ``j`` with ``p <= steps[j]``."""
    return np.searchsorted(steps, p, side="left")


def _z_upper(s):
    """Standard normal quantile with upper-tail probability ``s``: -ndtri(s)."""
    return -special.ndtri(s)


def _gauss_legendre_panels(lo, hi):
    """Composite Gauss-Legendre nodes and weights on ``[lo, hi]``."""
    n_panels = max(1, int(np.ceil((hi - lo) * _PANELS_PER_UNIT)))
    x, w = special.roots_legendre(_NODES_PER_PANEL)
    edges = np.linspace(lo, hi, n_panels + 1)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    nodes = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    weights = (half[:, None] * w[None, :]).ravel()
    return nodes, weights


def _log_p_of_z(z, two_sided):
    """log p and log(1 - p) at standardised values z (one-sided: p = Phi(-z))."""
    if two_sided:
        a = np.abs(z)
        return np.log(2.0) + special.log_ndtr(-a), np.log(special.erf(a / np.sqrt(2)))
    return special.log_ndtr(-z), special.log_ndtr(z)


def selection_problem(X, y, v, *, kind, alternative, steps=()):
    """Precompute the fixed structure of a selection model.

    Parameters
    ----------
    X : ndarray of shape (k, p)
    y, v : ndarray of shape (k,)
        Effect sizes and sampling variances (``v >= 0``).
    kind : {"step", "beta"}
    alternative : {"greater", "less", "two-sided"}
    steps : sequence of float
        Cut points in (0, 1] of the step function (sorted, unique, 1 appended
        here).

    Returns
    -------
    SelectionProblem
    """
    two_sided = alternative == "two-sided"
    sign = -1.0 if alternative == "less" else 1.0
    p = pvalues(y, v, alternative)
    k = y.shape[0]
    sqrt_v = np.sqrt(v)
    empty = np.zeros(0)
    if kind == "step":
        cuts = np.unique(np.asarray(steps, dtype=float))
        if cuts.size == 0 or cuts[-1] != 1.0:
            cuts = np.append(cuts, 1.0)
        upper_p = cuts
        lower_p = np.concatenate([[0.0], cuts[:-1]])
        group = interval_index(p, cuts)
        obs_logp = np.zeros((k, 0))
        n_delta = cuts.size
        # interval j: s_{j-1} < p <= s_j, i.e. z in [z(s_j), z(s_{j-1}))
        if two_sided:
            hi_z, lo_z = _z_upper(lower_p / 2.0), _z_upper(upper_p / 2.0)
            seg_lo_z = np.concatenate([lo_z, -hi_z])
            seg_hi_z = np.concatenate([hi_z, -lo_z])
            seg_term = np.concatenate([np.arange(n_delta)] * 2)
        else:
            seg_lo_z, seg_hi_z = _z_upper(upper_p), _z_upper(lower_p)
            seg_term = np.arange(n_delta)
        nodes = node_w = empty
        term_logp = np.zeros((n_delta, 0))
        n_const = n_delta
    elif kind == "beta":
        floor = BETA_PVALUE_FLOOR
        p = np.clip(p, floor, 1.0 - floor)
        cuts = empty
        group = np.zeros(0, dtype=np.intp)
        obs_logp = np.column_stack([np.log(p), np.log1p(-p)])
        n_delta = 2
        # term 0: p <= floor (w = w(floor)); term 1: p >= 1 - floor
        if two_sided:
            z_lo = _z_upper(floor / 2.0)
            z_hi = _z_upper((1.0 - floor) / 2.0)
            seg_lo_z = np.array([z_lo, -np.inf, -z_hi])
            seg_hi_z = np.array([np.inf, -z_lo, z_hi])
            seg_term = np.array([0, 0, 1])
            # Near z = 0, 1 - p ~ |z| so w ~ |z|^(delta_2 - 1): not smooth in z but
            # a sum of exponentials in log z, where the rule is laid out instead.
            x, wx = _gauss_legendre_panels(np.log(z_hi), np.log(_GRADED_UNTIL))
            linear, w_linear = _gauss_legendre_panels(_GRADED_UNTIL, z_lo)
            a = np.concatenate([np.exp(x), linear])
            wa = np.concatenate([wx * np.exp(x), w_linear])
            nodes = np.concatenate([a, -a])
            node_w = np.concatenate([wa, wa])
        else:
            z_lo = _z_upper(floor)
            seg_lo_z = np.array([z_lo, -np.inf])
            seg_hi_z = np.array([np.inf, -z_lo])
            seg_term = np.array([0, 1])
            nodes, node_w = _gauss_legendre_panels(-z_lo, z_lo)
        const_logp = np.array(
            [[np.log(floor), np.log1p(-floor)], [np.log1p(-floor), np.log(floor)]]
        )
        node_logp = np.column_stack(_log_p_of_z(nodes, two_sided))
        term_logp = np.concatenate([const_logp, node_logp])
        n_const = 2
    else:
        raise ValueError(f"unknown selection kind {kind!r}")
    ends_z = np.concatenate([seg_lo_z, seg_hi_z])
    ends_finite = np.broadcast_to(np.isfinite(ends_z), (k, ends_z.size))
    # infinite ends stay infinite for v = 0 (0 * inf would be nan)
    seg_ends = np.where(
        ends_finite, sqrt_v[:, None] * np.where(ends_finite, ends_z, 0.0), ends_z
    )
    seg_pairs = None
    if seg_term.size > n_const:  # two segments per term (two-sided)
        first = np.full(n_const, seg_term.size)  # index of a padding column
        second = np.full(n_const, seg_term.size)
        for j, t in enumerate(seg_term):
            if first[t] == seg_term.size:
                first[t] = j
            else:
                second[t] = j
        seg_pairs = (first, second)
    with np.errstate(divide="ignore"):
        log_sqrt_v = np.log(sqrt_v)
    return SelectionProblem(
        X=X,
        y=y,
        v=v,
        kind=kind,
        sign=sign,
        steps=cuts,
        pvalues=p,
        group=group,
        obs_logp=obs_logp,
        seg_ends=seg_ends,
        ends_finite=ends_finite,
        seg_term=seg_term,
        seg_pairs=seg_pairs,
        n_const=n_const,
        node_u=sqrt_v[:, None] * nodes[None, :],
        node_logweight=np.log(node_w) if node_w.size else empty,
        term_logp=term_logp,
        log_sqrt_v=log_sqrt_v,
        n_delta=n_delta,
    )


def interval_counts(problem):
    """Number of observed p-values in each step interval (step models)."""
    return np.bincount(problem.group, minlength=problem.n_delta)


# --------------------------------------------------------------------------------------
# normal probabilities of segments, in log space, with their derivatives
# --------------------------------------------------------------------------------------


def _log_segment_mass(ca, cb):
    """log(Phi(cb) - Phi(ca)) for ca <= cb, accurate in both tails."""
    upper = ca > 0.0  # both in the upper tail: use the complement
    lo = np.where(upper, -cb, ca)
    hi = np.where(upper, -ca, cb)
    log_hi = special.log_ndtr(hi)
    out = log_hi + np.log1p(-np.exp(special.log_ndtr(lo) - log_hi))
    return np.where(lo >= hi, -np.inf, out)


class _Terms(NamedTuple):
    """log F_it and the ratios (dF/F) for every study i and term t."""

    log_f: np.ndarray  # (k, T)
    ratios: list  # [mu, s] (+ [mu mu, mu s, s s]), each (k, T)


def _const_terms(problem, mu_t, s, sigma, order):
    r"""Terms whose selection weight is constant: normal masses of segments.

    A term is one segment (one-sided) or the union of two (two-sided).  With
    :math:`c = (b - \mu)/\sigma` at a segment end :math:`b`, :math:`s =
    \sigma^2` and :math:`e = \phi(c)/F` (:math:`F` the term's mass), the
    derivatives of :math:`\Phi(c)` over :math:`F` are :math:`\partial_\mu =
    -e/\sigma`, :math:`\partial_s = -ce/(2s)`, :math:`\partial_{\mu\mu} =
    -ce/s`, :math:`\partial_{\mu s} = (1 - c^2)e/(2s\sigma)` and
    :math:`\partial_{ss} = c(3 - c^2)e/(4s^2)`; infinite ends contribute 0.
    """
    n_seg = problem.seg_term.shape[0]
    c = (problem.seg_ends - mu_t[:, None]) * (1.0 / sigma)[:, None]
    log_seg = _log_segment_mass(c[:, :n_seg], c[:, n_seg:])
    if problem.seg_pairs is None:  # one segment per term
        log_f = log_seg
        log_in_term = log_seg
    else:
        first, second = problem.seg_pairs
        padded = np.column_stack([log_seg, np.full(log_seg.shape[0], -np.inf)])
        log_f = np.logaddexp(padded[:, first], padded[:, second])
        log_in_term = log_f[:, problem.seg_term]
    finite = problem.ends_finite
    cf = np.where(finite, c, 0.0)
    log_mass = np.concatenate([log_in_term, log_in_term], axis=1)
    # e = phi(c) / F; 0 at infinite ends and for terms of zero mass
    e = np.exp(
        np.where(
            finite & (log_mass > -np.inf),
            -0.5 * cf * cf - _LOG_SQRT_2PI - log_mass,
            -np.inf,
        )
    )
    # d Phi(c) over F at the ends, in the order [mu, s, mumu, mus, ss], without
    # the sigma and s factors
    per_end = [-e, -cf * e]
    factors = [1.0 / sigma, 0.5 / s]
    if order > 1:
        c2 = cf * cf
        per_end += [-cf * e, (1.0 - c2) * e, cf * (3.0 - c2) * e]
        factors += [1.0 / s, 0.5 / (s * sigma), 0.25 / (s * s)]
    ratios = []
    for values, factor in zip(per_end, factors, strict=True):
        seg = values[:, n_seg:] - values[:, :n_seg]  # upper end minus lower end
        if problem.seg_pairs is not None:
            padded = np.column_stack([seg, np.zeros(seg.shape[0])])
            seg = padded[:, first] + padded[:, second]
        ratios.append(seg * factor[:, None])
    return _Terms(log_f, ratios)


def _node_terms(problem, mu_t, s, sigma, order):
    r"""Quadrature-node terms :math:`\omega_n \phi(c_{in}) \sqrt{v_i}/\sigma_i`.

    Ratios: :math:`c/\sigma`, :math:`(c^2 - 1)/(2s)`, :math:`(c^2-1)/s`,
    :math:`c(c^2-3)/(2s\sigma)`, :math:`(c^4 - 6c^2 + 3)/(4s^2)`.
    """
    c = (problem.node_u - mu_t[:, None]) / sigma[:, None]
    c2 = c * c
    log_f = (
        problem.node_logweight[None, :]
        - 0.5 * c2
        - _LOG_SQRT_2PI
        + (problem.log_sqrt_v - 0.5 * np.log(s))[:, None]
    )
    inv_sigma = (1.0 / sigma)[:, None]
    inv_s = (1.0 / s)[:, None]
    ratios = [c * inv_sigma, 0.5 * (c2 - 1.0) * inv_s]
    if order > 1:
        ratios += [
            (c2 - 1.0) * inv_s,
            0.5 * c * (c2 - 3.0) * inv_s * inv_sigma,
            0.25 * (c2 * c2 - 6.0 * c2 + 3.0) * inv_s * inv_s,
        ]
    return _Terms(log_f, ratios)


# --------------------------------------------------------------------------------------
# the log-likelihood
# --------------------------------------------------------------------------------------


def _log_term_weights(problem, delta):
    """log G_t: log delta_t (step) or log w(p_t; delta) (beta)."""
    if problem.kind == "step":
        return np.log(delta)
    return problem.term_logp @ (delta - 1.0)


def _log_observed_weights(problem, delta):
    """log w(p_i; delta) of the observed p-values."""
    if problem.kind == "step":
        return np.log(delta)[problem.group]
    return problem.obs_logp @ (delta - 1.0)


def _study_terms(problem, mu, s, order):
    """log F_it and the derivative ratios of all terms (constant, then nodes)."""
    sigma = np.sqrt(s)
    mu_t = problem.sign * mu
    const = _const_terms(problem, mu_t, s, sigma, order)
    if not problem.node_u.shape[1]:
        return const
    nodes = _node_terms(problem, mu_t, s, sigma, order)
    return _Terms(
        np.concatenate([const.log_f, nodes.log_f], axis=1),
        [
            np.concatenate([a, b], axis=1)
            for a, b in zip(const.ratios, nodes.ratios, strict=True)
        ],
    )


def _log_normalizers(log_gf):
    """log A_i = log sum_t G_t F_it by a per-study log-sum-exp.

    Returns ``log A`` (k,), the scaled terms (k, T) and their sums (k, 1).
    """
    peak = np.max(log_gf, axis=1, keepdims=True)
    weight = np.exp(log_gf - peak)  # nan only where every term is 0 (-inf - -inf)
    total = weight.sum(axis=1, keepdims=True)
    return (peak + np.log(total))[:, 0], weight, total


@np.errstate(divide="ignore", invalid="ignore")  # log 0 = -inf is meaningful
def selection_logdensities(problem, beta, tau2, delta):
    r"""Per-study log-densities :math:`\log w(p_i) + \log\phi_N(y_i) - \log A_i`.

    Returns
    -------
    ndarray of shape (k,)
    """
    mu = problem.X @ beta
    s = problem.v + tau2
    resid = problem.y - mu
    log_f = _study_terms(problem, mu, s, order=0).log_f
    log_a = _log_normalizers(log_f + _log_term_weights(problem, delta))[0]
    log_dens = gaussian_logpdf(resid, s)
    return _log_observed_weights(problem, delta) + log_dens - log_a


@np.errstate(divide="ignore", invalid="ignore")  # log 0 = -inf is meaningful
def selection_loglik(problem, beta, tau2, delta, order=0):
    """Log-likelihood of the selection model, with derivatives up to ``order``.

    Parameters
    ----------
    problem : SelectionProblem
    beta : ndarray of shape (p,)
    tau2 : float
    delta : ndarray of shape (m,)
        All selection parameters (for step functions ``delta[0]`` is 1).
    order : {0, 1, 2}
        0: value only; 1: and the gradient; 2: and the Hessian, with respect to
        ``(beta, tau2, delta)``.

    Returns
    -------
    LogLik
        ``value`` is ``-inf`` where the likelihood is zero (e.g. a step weight
        of 0 where a p-value was observed); no derivatives are returned then.
    """
    if order == 0:
        return LogLik(
            float(np.sum(selection_logdensities(problem, beta, tau2, delta))),
            None,
            None,
        )
    X, y, v = problem.X, problem.y, problem.v
    k = y.shape[0]
    mu = X @ beta
    s = v + tau2
    resid = y - mu
    terms = _study_terms(problem, mu, s, order)
    log_f, ratios = terms.log_f, terms.ratios
    log_a, weight, total = _log_normalizers(log_f + _log_term_weights(problem, delta))
    log_dens = gaussian_logpdf(resid, s)
    value = float(np.sum(_log_observed_weights(problem, delta) + log_dens - log_a))
    if not np.isfinite(value):
        return LogLik(value, None, None)
    pi = weight / total  # share of term t in A_i
    r_mu = np.einsum("it,it->i", pi, ratios[0])
    r_s = np.einsum("it,it->i", pi, ratios[1])
    # (dA/d delta_a) / A and its mixed derivatives
    if problem.kind == "step":
        # dG_t / d delta_a = 1{t = a}: the ratio is F_ia / A_i
        r_d = np.exp(log_f - log_a[:, None])
        r_mu_d = r_d * ratios[0]
        r_s_d = r_d * ratios[1]
        inv_delta = 1.0 / delta  # finite: an observed interval has delta > 0
        obs_d = np.zeros((k, problem.n_delta))
        obs_d[np.arange(k), problem.group] = inv_delta[problem.group]
    else:
        L = problem.term_logp  # dlog G_t / d delta = (log p_t, log(1 - p_t))
        r_d = pi @ L
        r_mu_d = (pi * ratios[0]) @ L
        r_s_d = (pi * ratios[1]) @ L
        obs_d = problem.obs_logp
    sign = problem.sign
    # per-study derivatives of l_i in (mu_i, s_i, delta)
    l_mu = resid / s - sign * r_mu
    l_s = 0.5 * (resid * resid / s - 1.0) / s - r_s
    l_d = obs_d - r_d
    grad = np.concatenate([X.T @ l_mu, [l_s.sum()], l_d.sum(axis=0)])
    if order == 1:
        return LogLik(value, grad, None)
    r_mumu = np.einsum("it,it->i", pi, ratios[2])
    r_mus = np.einsum("it,it->i", pi, ratios[3])
    r_ss = np.einsum("it,it->i", pi, ratios[4])
    l_mumu = -1.0 / s - (r_mumu - r_mu * r_mu)
    l_mus = -resid / (s * s) - sign * (r_mus - r_mu * r_s)
    l_ss = (0.5 - resid * resid / s) / (s * s) - (r_ss - r_s * r_s)
    l_mud = -sign * (r_mu_d - r_mu[:, None] * r_d)
    l_sd = -(r_s_d - r_s[:, None] * r_d)
    if problem.kind == "step":
        # second derivatives of G vanish: -(0 - r_a r_b) summed over studies
        obs_dd = np.zeros(problem.n_delta)
        np.add.at(obs_dd, problem.group, -(inv_delta**2)[problem.group])
        l_dd = np.diag(obs_dd) + r_d.T @ r_d
    else:
        l_dd = -(np.einsum("it,ta,tb->ab", pi, L, L) - r_d.T @ r_d)
    n_beta = beta.shape[0]
    n = n_beta + 1 + problem.n_delta
    b, t, d = slice(0, n_beta), n_beta, slice(n_beta + 1, n)
    hess = np.empty((n, n))
    hess[b, b] = X.T @ (X * l_mumu[:, None])
    hess[b, t] = X.T @ l_mus
    hess[b, d] = X.T @ l_mud
    hess[t, t] = l_ss.sum()
    hess[t, d] = l_sd.sum(axis=0)
    hess[d, d] = l_dd
    hess[t, b] = hess[b, t]
    hess[d, b] = hess[b, d].T
    hess[d, t] = hess[t, d]
    return LogLik(value, grad, hess)


# --------------------------------------------------------------------------------------
# maximisation
# --------------------------------------------------------------------------------------


class SelectionFit(NamedTuple):
    """Maximum of the selection-model likelihood."""

    beta: np.ndarray  # (p,)
    tau2: float
    delta: np.ndarray  # (m,) all selection parameters (fixed ones included)
    loglik: float
    hess: np.ndarray  # Hessian over (beta, tau2, delta) at the maximum
    n_iter: int
    converged: bool


def _ascent_direction(grad, hess):
    """Newton direction -H^{-1} g for a concave model, else a modified one.

    Where -H is not positive definite, its eigenvalues (after symmetric
    diagonal scaling) are replaced by their absolute values, floored at a small
    fraction of the largest, so that the direction still increases the
    criterion.
    """
    info = -hess
    chol, failed = _potrf(info, lower=1)
    if not failed:
        return _potrs(chol, grad, lower=1)[0]
    scale = np.sqrt(np.abs(np.diag(info)))
    scale[~(scale > 0)] = 1.0
    vals, vecs = np.linalg.eigh(info / np.outer(scale, scale))
    vals = np.maximum(np.abs(vals), 1e-8 * max(1.0, float(np.abs(vals).max())))
    scaled = grad / scale
    return (vecs @ ((vecs.T @ scaled) / vals)) / scale


def maximize_selection(
    problem,
    *,
    beta,
    tau2,
    delta,
    free_delta,
    delta_lower,
    delta_upper,
    tau2_lower=0.0,
    estimate_tau2=True,
    max_iter=100,
    tol=1e-12,
):
    """Maximise the likelihood over ``beta``, ``tau2`` and the free ``delta``.

    Projected Newton iterations (Bertsekas 1982) with the analytic Hessian:
    parameters on a bound whose gradient points outwards are held there, the
    others take a Newton step (a modified one where the likelihood is not
    concave), and a backtracking line search along the projected path makes
    every accepted step increase the likelihood.  Converged when the Newton
    decrement :math:`g^\top(-H)^{-1}g` of the free parameters (twice the
    predicted remaining increase of the log-likelihood) is below ``tol``.

    Parameters
    ----------
    problem : SelectionProblem
    beta, tau2, delta :
        Start (``delta`` holds the fixed values at the fixed positions).
    free_delta : ndarray of bool of shape (m,)
        Which selection parameters are estimated.
    delta_lower, delta_upper : ndarray of shape (m,)
        Bounds of the free selection parameters.
    tau2_lower : float
        Lower bound of tau^2 (0, or a floor when some sampling variances are 0).
    estimate_tau2 : bool
        False holds tau^2 at ``tau2``.
    max_iter : int
    tol : float

    Returns
    -------
    SelectionFit
    """
    n_beta = beta.shape[0]
    index = np.concatenate(
        [
            np.arange(n_beta),
            [n_beta] if estimate_tau2 else [],
            n_beta + 1 + np.flatnonzero(free_delta),
        ]
    ).astype(np.intp)
    full = np.concatenate([beta, [tau2], delta]).astype(float)
    lower = np.full(full.shape, -np.inf)
    upper = np.full(full.shape, np.inf)
    lower[n_beta] = tau2_lower
    lower[n_beta + 1 :] = delta_lower
    upper[n_beta + 1 :] = delta_upper
    lo, hi = lower[index], upper[index]
    full[index] = np.clip(full[index], lo, hi)

    def evaluate(x, order):
        return selection_loglik(
            problem, x[:n_beta], x[n_beta], x[n_beta + 1 :], order=order
        )

    current = evaluate(full, 2)
    if not np.isfinite(current.value):
        raise ValueError(
            "The selection model's likelihood is zero at the start: some observed "
            "p-value falls in an interval whose selection weight is fixed at 0."
        )
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007
        x = full[index]
        g = current.grad[index]
        H = current.hess[index][:, index]
        span = np.maximum(1.0, np.abs(x))
        at_lower = (x <= lo + 1e-12 * span) & (g <= 0)
        at_upper = (x >= hi - 1e-12 * span) & (g >= 0)
        free = ~(at_lower | at_upper)
        step = np.zeros_like(x)
        if free.all():
            step = _ascent_direction(g, H)
        elif free.any():
            step[free] = _ascent_direction(g[free], H[free][:, free])
        decrement = float(g[free] @ step[free])
        if decrement <= tol:
            converged = True
            break
        alpha = 1.0
        accepted = None
        for _ in range(60):
            trial = full.copy()
            trial[index] = np.clip(x + alpha * step, lo, hi)
            candidate = evaluate(trial, 2)
            gain = candidate.value - current.value
            if np.isfinite(candidate.value) and gain >= 1e-4 * float(
                g @ (trial[index] - x)
            ):
                accepted = (trial, candidate)
                break
            alpha *= 0.5
        if accepted is None:
            # No increase is possible at floating-point resolution: the
            # decrement is rounding noise of the criterion (a flat maximum).
            converged = decrement <= 1e-8 * max(1.0, abs(current.value))
            break
        full, current = accepted
    return SelectionFit(
        beta=full[:n_beta].copy(),
        tau2=float(full[n_beta]),
        delta=full[n_beta + 1 :].copy(),
        loglik=current.value,
        hess=current.hess,
        n_iter=n_iter,
        converged=converged,
    )
