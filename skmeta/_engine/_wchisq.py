r"""Distribution of a Gaussian quadratic form: a weighted sum of chi-square(1).

For :math:`z \sim N(0, I_K)` and a positive semi-definite :math:`M` with
eigenvalues :math:`\lambda_1, \dots, \lambda_K \ge 0`,

.. math::

    Q = z^\top M z = \sum_{r} \lambda_r \chi^2_{1,r},
    \qquad E[e^{-sQ}] = \det(I + 2sM)^{-1/2} = \prod_r (1 + 2\lambda_r s)^{-1/2}.

**The matrix.**  :math:`M` is given as :class:`QuadraticForm` ``(delta, basis)``:
:math:`M = \Delta^{1/2}(I - P_B)\Delta^{1/2}` with :math:`\Delta =
\operatorname{diag}(\delta)` and :math:`P_B` the orthogonal projection on the
columns of ``basis`` (:math:`K \times p`, :math:`p` small; zero columns: the
:math:`\delta` are the eigenvalues).  This is the structure of the moment
statistics of meta-analysis, :math:`Q_a = y^\top P_a y` with
:math:`P_a = A - AX(X^\top AX)^{-1}X^\top A` and :math:`y \sim N(X\beta,
\operatorname{diag}(v + \tau^2))`: :math:`\delta = a(v + \tau^2)`, basis
:math:`A^{1/2}X`.  By the matrix determinant lemma,

.. math::

    \det(I + 2sM) = \prod_i (1 + 2s\delta_i)\,
    \frac{\det(B^\top \operatorname{diag}(1/(1 + 2s\delta)) B)}{\det(B^\top B)},

a sum of :math:`K` logarithms and a :math:`p \times p` determinant: O(K p^2)
per point, no eigendecomposition and no subtraction of large numbers (the
eigenvalues are never formed; a study with a huge weight costs no precision).
The :math:`p \times p` determinant is the product of the pivots of Gaussian
elimination, ratios of determinants of successive rank-one downdates of
:math:`M` whose eigenvalues interlace, so that each pivot's argument lies in
:math:`(-\pi, \pi)` and principal logarithms add up to the continuous one.

**Two inversions.**  At most :data:`TALBOT_MAX_TERMS` chi-squares (the paper's
small meta-analyses): Talbot's rule (second item), 24 evaluations per point.
Otherwise the first item, unless its series is too long (then the second).

* The Gil-Pelaez formula with Davies' (1973) trapezoidal discretisation,

  .. math::

      F(q) = \tfrac12 - \frac1\pi \sum_{k \ge 0}
      \frac{\operatorname{Im}[\varphi(t_k) e^{-it_k q}]}{k + 1/2},\qquad
      f(q) = \frac h\pi \sum_{k \ge 0} \operatorname{Re}[\varphi(t_k) e^{-it_k q}],
      \qquad t_k = (k + \tfrac12) h,

  with :math:`\varphi(t) = E[e^{itQ}]`.  Its discretisation error is exactly an
  alias sum of tail probabilities at :math:`q \pm 2\pi n/h`, below the tail bound
  when :math:`2\pi/h` exceeds the width of the support bounds below; the series
  is truncated where a bound on its remainder (from the concavity of
  :math:`\log|\varphi|` in :math:`\log t`) is below 1e-14.  The nodes do not
  depend on ``q``.  For :math:`K = 10^4` studies it takes a few dozen nodes; it is
  used whenever it needs at most :data:`DAVIES_MAX_NODES`.
* Otherwise (a slowly decaying :math:`\varphi`: few effective chi-squares, a
  heavy right tail) the CDF :math:`F = \mathcal L^{-1}[M(s)/s]` and the density
  :math:`f = \mathcal L^{-1}[M(s)]` by numerical inversion of the Bromwich
  integral on Talbot's contour, in the fixed form of Abate and Valkó (2004) with
  ``N = 24`` nodes: absolute error below 1e-13 in double precision there.  (The
  fixed rule loses accuracy as :math:`Q` concentrates relative to its location:
  8e-12 for 30 comparable weights, 4e-9 for 50, useless beyond ~100 — which is
  where the series above is cheap.)

Outside the support bounds of Laurent & Massart (2000, Lemma 1),
:math:`P(Q \le \mu - 2\sqrt{x\,\operatorname{tr}M^2}) \le e^{-x}` and
:math:`P(Q \ge \mu + 2\sqrt{x\,\operatorname{tr}M^2} + 2x\lambda_{max}) \le
e^{-x}` with :math:`e^{-x} =` :data:`TAIL` (:math:`\lambda_{max}` bounded above
by a secular equation), the CDF is 0 or 1.  Exact special cases are used
directly: no positive weight (a point mass at 0) and equal weights (a scaled
:math:`\chi^2_R`).  All functions are pure (numpy/scipy only), vectorised over
``q``, and tested against exact special cases in ``tests/test_engine_wchisq.py``.

References
----------
Abate, J., & Valkó, P. P. (2004). Multi-precision Laplace transform inversion.
International Journal for Numerical Methods in Engineering, 60(5), 979-993.
Davies, R. B. (1973). Numerical inversion of a characteristic function.
Biometrika, 60(2), 415-417.
Imhof, J. P. (1961). Computing the distribution of quadratic forms in normal
variables. Biometrika, 48(3/4), 419-426.
Laurent, B., & Massart, P. (2000). Adaptive estimation of a quadratic functional
by model selection. The Annals of Statistics, 28(5), 1302-1338.
"""

from typing import NamedTuple

import numpy as np
from scipy import special

__all__ = [
    "DAVIES_MAX_NODES",
    "TAIL",
    "TALBOT_MAX_TERMS",
    "Projection",
    "QuadraticForm",
    "clean_weights",
    "leverage_complement",
    "projection",
    "qf_cdf",
    "qf_cdf_slope",
    "qf_moments",
    "qf_pdf",
    "qf_ppf",
    "qf_prepare",
    "qf_support",
    "quadratic_form",
    "wchisq_cdf",
    "wchisq_pdf",
    "wchisq_ppf",
    "wchisq_sf",
]

#: Probability beyond the support bounds: the CDF is 0 or 1 there.
TAIL = 1e-15
#: Talbot's rule is used directly for at most this many chi-squares: its error
#: is below 1e-12 there whatever the weights (1.5e-12 at 22 terms, up to 4e-12 at
#: 25 and 3e-11 at 30 for comparable weights).
TALBOT_MAX_TERMS = 20
#: Most nodes of the Gil-Pelaez series; a distribution that needs more (its
#: characteristic function decays slowly: few effective chi-squares) is inverted
#: on Talbot's contour.
DAVIES_MAX_NODES = 200_000
_N_NODES = 24
#: Relative spread below which eigenvalues are treated as equal (exact chi-square).
_EQUAL_RTOL = 1e-13
#: Weights below this fraction of the largest one are dropped (numerically zero).
_ZERO_RTOL = 1e-12
#: Relative width of the bracket at which the search for the largest eigenvalue
#: stops.
_BISECTION_RTOL = 1e-12
#: Bound on the remainder of the truncated Gil-Pelaez series.
_TRUNCATION = 1e-14
#: 2 pi / h as a multiple of the width of the support bounds (margin of the alias).
_ALIAS_MARGIN = 1.5
#: Points of log(phi) evaluated at once: at least _CHUNK, and as many as keep
#: the K x chunk intermediate arrays within _CHUNK_ELEMENTS (a few MB): a few
#: studies are evaluated in one pass, many in chunks of _CHUNK points.
_CHUNK = 64
_CHUNK_ELEMENTS = 2**15
#: Below this modulus of 2 s delta_i the squared modulus of 1 + 2 s delta_i is
#: formed in real arithmetic without overflow (otherwise: the complex logarithm).
_REAL_LOG_LIMIT = 1e150
#: Weights with |2 s delta| at most this enter log(phi) through power series of
#: _SERIES_TERMS terms (truncation error 2^-60 relative per weight).
_SERIES_RADIUS = 0.5
_SERIES_TERMS = 60
#: Iterations of the quantile search (Newton's, bisection as safeguard): from the
#: Satterthwaite start Newton converges in a handful; bisection alone halves the
#: bracket 60 times down to 1e-18 of its width.
_NEWTON_MAX_ITER = 100
#: A Newton step of the quantile search below this fraction of x is the last.
_NEWTON_LAST_STEP = 1e-8
#: Bound on the absolute error of the CDF by either inversion (see
#: TALBOT_MAX_TERMS and the truncation of the Gil-Pelaez series).
_INVERSION_ERROR = 1e-12


def _talbot_coefficients(n_nodes):
    """Nodes ``z_k`` and complex weights of the fixed Talbot rule (Abate-Valko)."""
    theta = np.arange(1, n_nodes) * np.pi / n_nodes
    cot = 1.0 / np.tan(theta)
    r = 2.0 * n_nodes / 5.0
    z = np.empty(n_nodes, dtype=complex)
    z[0] = r
    z[1:] = r * theta * (cot + 1j)
    sigma = theta + (theta * cot - 1.0) * cot
    gamma = np.empty(n_nodes, dtype=complex)
    gamma[0] = 0.5 * np.exp(r)
    gamma[1:] = np.exp(z[1:]) * (1.0 + 1j * sigma)
    # f(t) = (r/N)/t * sum Re(gamma_k Fhat(z_k/t)) with r/N = 2/5
    return z, gamma * (2.0 / 5.0)


_Z, _GAMMA = _talbot_coefficients(_N_NODES)
#: gamma_k without its factor e^{z_k}, which is added to the logarithm of each term.
_TALBOT_FACTOR = _GAMMA * np.exp(-_Z)
_LOG_Z = np.log(_Z)


class Projection(NamedTuple):
    """What the moments need of the projection on a basis (see :func:`projection`)."""

    complement: np.ndarray  # (K,) 1 - h_i, the diagonal of I - P_B
    log_pivots: np.ndarray  # (p,) logs of the pivots of B'B
    inv_gram: np.ndarray  # (p, p) (B'B)^-1
    dominant: np.ndarray  # rows with h_i > 1/2


class QuadraticForm(NamedTuple):
    r"""The matrix :math:`M = \Delta^{1/2}(I - P_B)\Delta^{1/2}` of :math:`Q`.

    ``delta`` (K,) is :math:`\delta \ge 0`; ``basis`` (K, p) spans the
    projection :math:`P_B` (full column rank; p = 0: ``delta`` are the
    eigenvalues); ``projection`` is :func:`projection` of ``basis`` (computed
    when None; pass it when many forms share a basis).
    """

    delta: np.ndarray
    basis: np.ndarray
    projection: Projection | None = None


class _Moments(NamedTuple):
    mean: float  # tr M
    trace2: float  # tr M^2
    top: float  # upper bound on the largest eigenvalue
    leverage_complement: np.ndarray  # 1 - h_i, h the leverages of the basis
    log_det_gram: np.ndarray  # log pivots of B'B (p,)


class _Davies(NamedTuple):
    """Trapezoidal Gil-Pelaez rule: nodes t_k, log phi(t_k) e^{i t_k centre}."""

    t: np.ndarray
    log_phi: np.ndarray
    h: float
    centre: float


class _Prepared(NamedTuple):
    form: QuadraticForm
    moments: _Moments
    lower: float  # support bounds (TAIL beyond)
    upper: float
    kind: str  # "point", "chi2", "talbot" or "davies"
    rule: _Davies | None


def clean_weights(lam):
    """Validate chi-square weights and drop the (numerically) zero ones.

    Parameters
    ----------
    lam : array-like of shape (R,)
        Non-negative weights; tiny negative values (``>= -1e-10 * max``, rounding
        error of an eigen-decomposition) are treated as zero.

    Returns
    -------
    ndarray
        The positive weights, sorted in decreasing order.
    """
    lam = np.atleast_1d(np.asarray(lam, dtype=float)).ravel()
    if not np.all(np.isfinite(lam)):
        raise ValueError("lam must be finite.")
    top = lam.max(initial=0.0)
    if np.any(lam < -1e-10 * max(top, 0.0)) or (top <= 0 and np.any(lam < 0)):
        raise ValueError("lam must be non-negative.")
    lam = lam[lam > _ZERO_RTOL * top]
    return np.sort(lam)[::-1]


def quadratic_form(delta, basis=None, projection=None):
    """A :class:`QuadraticForm` (``basis=None``: ``delta`` are the eigenvalues)."""
    delta = np.asarray(delta, dtype=float)
    if basis is None:
        basis = np.empty((delta.shape[0], 0))
    return QuadraticForm(delta, np.asarray(basis, dtype=float), projection)


def _weights_form(lam):
    return quadratic_form(clean_weights(lam))


# ------------------------------------------------------------------ moments
def leverage_complement(basis):
    """``1 - h_i``: the diagonal of :math:`I - P_B` (see :func:`projection`)."""
    return projection(basis).complement


def projection(basis):
    """The :class:`Projection` on the columns of ``basis``.

    ``1 - h_i`` by QR; rows with ``h_i > 1/2`` (a study with a dominant weight)
    are recomputed from the leave-one-out Gram matrix,
    :math:`1 - h_i = 1/(1 + b_i^\\top (\\sum_{j \\ne i} b_j b_j^\\top)^{-1} b_i)`,
    which has no cancellation.
    """
    k, p = basis.shape
    if p == 0:
        return Projection(np.ones(k), np.zeros(0), np.zeros((0, 0)), np.zeros(0, int))
    q_1, r = np.linalg.qr(basis)
    h = np.einsum("ij,ij->i", q_1, q_1)
    comp = 1.0 - h
    dominant = np.flatnonzero(h > 0.5)
    for i in dominant:
        b = basis[i]
        try:
            comp[i] = 1.0 / (
                1.0 + float(b @ np.linalg.solve(_gram_without(basis, i), b))
            )
        except np.linalg.LinAlgError:  # the other rows do not span: h_i = 1
            comp[i] = 0.0
    r_inv = np.linalg.inv(r)
    return Projection(
        np.clip(comp, 0.0, 1.0),
        2.0 * np.log(np.abs(np.diag(r))),
        r_inv @ r_inv.T,
        dominant,
    )


def _gram_without(basis, i):
    """``B'B`` without row ``i``, summed directly (no subtraction)."""
    keep = np.ones(basis.shape[0], dtype=bool)
    keep[i] = False
    rest = basis[keep]
    return rest.T @ rest


def qf_moments(form, *, tight=True):
    """Mean, :math:`\\operatorname{tr}M^2` and a bound on the largest eigenvalue.

    ``tight=False``: the cheap bound :math:`\\min(\\max_i \\delta_i,
    \\sqrt{\\operatorname{tr}M^2})` instead of the secular equation's.
    """
    delta, basis, proj = form
    if proj is None:
        proj = projection(basis)
    comp = proj.complement
    mean = float(delta @ comp)
    diag2 = float(np.sum((delta * comp) ** 2))
    if basis.shape[1]:
        # sum_{i != j} delta_i delta_j H_ij^2 = sum_i delta_i r_i, with r_i the
        # row sums excluding the diagonal; rows of dominant studies directly
        inv = proj.inv_gram
        h = 1.0 - comp
        if basis.shape[1] == 1:  # scalars (the intercept-only model)
            b2 = basis[:, 0] ** 2
            quad = inv[0, 0] * inv[0, 0] * float(b2 @ delta)
            r = b2 * quad - delta * h * h
        else:
            c = basis.T @ (basis * delta[:, None])
            quad = inv @ c @ inv
            r = np.einsum("ij,jk,ik->i", basis, quad, basis) - delta * h * h
        for i in proj.dominant:
            b = basis[i]
            ci = _weighted_gram_without(basis, delta, i)
            r[i] = float(b @ inv @ ci @ inv @ b)
        off = float(delta @ np.maximum(r, 0.0))
    else:
        off = 0.0
    trace2 = diag2 + off
    if tight:
        top = _top_eigenvalue_bound(delta, basis, trace2)
    else:
        top = min(float(delta.max(initial=0.0)), np.sqrt(trace2) * (1.0 + 1e-12))
    return _Moments(mean, trace2, top, comp, proj.log_pivots)


def _weighted_gram_without(basis, delta, i):
    """``B' diag(delta) B`` without row ``i``, summed directly."""
    keep = np.ones(basis.shape[0], dtype=bool)
    keep[i] = False
    return basis[keep].T @ (basis[keep] * delta[keep, None])


def _top_eigenvalue_bound(delta, basis, trace2):
    """An upper bound on the largest eigenvalue of M.

    :math:`\\lambda_{max} \\le \\sqrt{\\operatorname{tr}M^2}`, and
    :math:`M \\preceq \\Delta^{1/2}(I - ww^\\top)\\Delta^{1/2}` for the unit vector
    ``w`` along the first basis column, whose nonzero eigenvalues solve the
    secular equation :math:`\\sum_i w_i^2/(\\delta_i - \\lambda) = 0`: its
    largest root lies between the two largest :math:`\\delta` and is bracketed
    by safeguarded Newton steps (the upper end of the bracket is returned).
    """
    top = float(delta.max(initial=0.0))
    bound = min(top, np.sqrt(max(trace2, 0.0)) * (1.0 + 1e-12))
    if basis.shape[1] == 0 or top <= 0:
        return top if basis.shape[1] == 0 else bound
    w2 = basis[:, 0] ** 2
    w2 = w2 / w2.sum()
    at_top = delta == top
    if at_top.sum() > 1 or np.any(w2[at_top] == 0):
        return bound  # delta_max itself is an eigenvalue
    below = delta[~at_top & (w2 > 0)]
    if below.size == 0:
        return min(bound, float(delta[~at_top].max(initial=0.0)))
    lo, hi = float(below.max()), top
    floor = float(delta[~at_top & (w2 == 0)].max(initial=0.0))
    x = 0.5 * (lo + hi)
    while hi - lo > _BISECTION_RTOL * hi:
        ratio = w2 / (delta - x)
        g = float(ratio.sum())  # increasing in x on (lo, hi)
        if g < 0:
            lo = x
        else:
            hi = x
        # safeguarded Newton step, bisection when it leaves the bracket
        step = g / float(ratio @ (1.0 / (delta - x)))
        x = x - step if lo < x - step < hi else 0.5 * (lo + hi)
        if not lo < x < hi:
            break
    # Newton may converge from below: close the bracket just above the root
    above = lo * (1.0 + _BISECTION_RTOL)
    if lo < above < hi and float(np.sum(w2 / (delta - above))) >= 0:
        hi = above
    return min(bound, max(hi, floor))


# ---------------------------------------------------------- Laplace transform
def _log_laplace(form, moments, s):
    """:math:`\\log E[e^{-sQ}]` at complex ``s`` (array), principal branches.

    The studies with :math:`|2s\\delta_i| \\le` :data:`_SERIES_RADIUS` for every
    ``s`` of the call enter through power series in ``s`` (their power sums are
    formed once per call), the others term by term: with many small weights and
    a few large ones the cost per point is O(number of large ones), not O(K).
    """
    delta, basis = form.delta, form.basis
    s = np.asarray(s, dtype=complex)
    flat_s = s.reshape(-1)
    radius = 2.0 * float(np.max(np.abs(flat_s), initial=0.0))
    small = radius * delta <= _SERIES_RADIUS
    if small.any():
        scale = float(delta[small].max())
        series = _power_sums(delta[small] / scale, basis[small])
        big_delta, big_basis = delta[~small], basis[~small]
    else:  # the usual case for a few studies: no series
        scale, series, big_delta, big_basis = 0.0, None, delta, basis
    m = basis.shape[1]
    out = np.empty(flat_s.shape, dtype=complex)
    chunk = max(_CHUNK, _CHUNK_ELEMENTS // max(big_delta.size, 1))
    real_log = radius * float(big_delta.max(initial=0.0)) <= _REAL_LOG_LIMIT
    for start in range(0, flat_s.size, chunk):
        part = flat_s[start : start + chunk]
        value, inv_re, inv_im = _log_factors(part, big_delta, real_log)
        gram = None
        if m == 1 and series is None:  # one column: the Gram "matrix" is a sum
            b2 = big_basis[:, 0] ** 2
            gram_re, gram_im = inv_re @ b2, inv_im @ b2
            if max(np.abs(gram_re).max(), np.abs(gram_im).max()) <= _REAL_LOG_LIMIT:
                # its principal logarithm in real arithmetic (as _log_factors)
                mod2 = gram_re * gram_re + gram_im * gram_im
                value += 0.5 * np.log(mod2) - moments.log_det_gram.sum()
                value += 1j * np.arctan2(gram_im, gram_re)
            else:
                gram = (gram_re + 1j * gram_im)[:, None, None]
        elif m == 1:
            b2 = big_basis[:, 0] ** 2
            gram = (inv_re @ b2 + 1j * (inv_im @ b2))[:, None, None]
        elif m:
            gram = np.einsum("nk,ki,kj->nij", inv_re, big_basis, big_basis) + 1j * (
                np.einsum("nk,ki,kj->nij", inv_im, big_basis, big_basis)
            )
        if series is not None:
            z = 2.0 * scale * part  # |z delta_i / scale| <= the series radius
            log_sum, gram_sum = _series_values(series, z)
            value += log_sum
            if gram is not None:
                gram = gram + gram_sum
        if gram is not None:
            value += _log_pivots(gram).sum(axis=1) - moments.log_det_gram.sum()
        out[start : start + chunk] = -0.5 * value
    return out.reshape(s.shape)


def _log_factors(s, delta, real_log):
    r""":math:`\sum_i \log(1 + 2s\delta_i)` (principal branches) and the real and
    imaginary parts of the reciprocals :math:`1/(1 + 2s\delta_i)`, for 1-D
    complex ``s``.

    ``real_log``: every :math:`|2s\delta_i|` is below :data:`_REAL_LOG_LIMIT`,
    so that :math:`\log|f| = \tfrac12\log(\operatorname{Re}^2 f +
    \operatorname{Im}^2 f)` and :math:`\arg f = \operatorname{atan2}` are formed
    in real arithmetic (the same principal logarithm, a few times faster than the
    complex one).
    """
    if not real_log:
        factor = 1.0 + 2.0 * s[:, None] * delta[None, :]
        inverse = 1.0 / factor
        return np.log(factor).sum(axis=1), inverse.real, inverse.imag
    re = np.multiply.outer(2.0 * s.real, delta)
    re += 1.0
    im = np.multiply.outer(2.0 * s.imag, delta)
    mod2 = re * re
    mod2 += im * im
    value = 0.5 * np.log(mod2).sum(axis=1) + 1j * np.arctan2(im, re).sum(axis=1)
    np.divide(1.0, mod2, out=mod2)
    re *= mod2
    im *= mod2
    return value, re, np.negative(im, out=im)


class _Series(NamedTuple):
    """Power sums of weights d_i <= 1: P_k = sum d^k, C_k = sum d^k b b'."""

    log_coef: np.ndarray  # (m + 1,): coefficients of sum log(1 + z d) in z^k
    gram_coef: np.ndarray  # (m + 1, p, p): coefficients of sum b b'/(1 + z d)


def _power_sums(d, basis):
    """Coefficients of :math:`\\sum_i \\log(1 + zd_i)` and of
    :math:`\\sum_i b_ib_i^\\top/(1 + zd_i)` as power series in ``z``."""
    m = _SERIES_TERMS
    p = basis.shape[1]
    log_coef = np.zeros(m + 1)
    gram_coef = np.zeros((m + 1, p, p))
    power = np.ones_like(d)
    sign = 1.0
    for k in range(m + 1):
        if p:
            gram_coef[k] = sign * (basis * power[:, None]).T @ basis
        if k:
            log_coef[k] = -sign * power.sum() / k  # (-1)^(k+1) P_k / k
        power = power * d
        sign = -sign
    return _Series(log_coef, gram_coef)


def _series_values(series, z):
    """Evaluate the power series at ``z`` (1-D complex) by Horner's rule."""
    log_sum = np.zeros(z.shape, dtype=complex)
    for c in series.log_coef[::-1]:
        log_sum = log_sum * z + c
    gram_coef = series.gram_coef
    gram = np.zeros((z.shape[0], *gram_coef.shape[1:]), dtype=complex)
    if gram_coef.shape[1]:
        for c in gram_coef[::-1]:
            gram = gram * z[:, None, None] + c
    return log_sum, gram


def _log_pivots(a):
    """Logs of the pivots of Gaussian elimination (no pivoting) of ``a`` (n, p, p)."""
    if a.shape[-1] == 1:
        return np.log(a[:, :, 0])
    a = a.copy()
    p = a.shape[-1]
    out = np.empty(a.shape[:-1], dtype=complex)
    for j in range(p):
        piv = a[:, j, j]
        out[:, j] = np.log(piv)
        if j + 1 < p:
            factor = a[:, j + 1 :, j] / piv[:, None]
            a[:, j + 1 :, j + 1 :] -= factor[:, :, None] * a[:, j, None, j + 1 :]
    return out


# --------------------------------------------------------------- preparation
def _prepare(form, *, tight=False):
    """Moments, support bounds and the inversion method of ``form``.

    The support's upper bound uses the secular bound on the largest eigenvalue
    when ``tight`` or when the Gil-Pelaez series is used (its step depends on
    the width); Talbot's rule only clamps the CDF there, for which the cheap
    bound suffices.
    """
    if isinstance(form, _Prepared):
        return form
    delta, basis = form.delta, form.basis
    rank = int(np.sum(delta > 0)) - basis.shape[1]
    talbot = rank <= TALBOT_MAX_TERMS
    moments = qf_moments(form, tight=tight or not talbot)
    mean, trace2, top = moments.mean, moments.trace2, moments.top
    if not mean > 0:
        return _Prepared(form, moments, 0.0, 0.0, "point", None)
    x = -np.log(TAIL)
    spread = 2.0 * np.sqrt(x * trace2)
    lower = max(0.0, mean - spread)
    upper = mean + spread + 2.0 * x * top
    if (delta.max() - delta.min()) <= _EQUAL_RTOL * delta.max():
        # M = delta (I - P_B): K - p eigenvalues delta (e.g. DL's weights at tau^2 = 0)
        return _Prepared(form, moments, lower, upper, "chi2", None)
    if talbot:
        return _Prepared(form, moments, lower, upper, "talbot", None)
    rule = _davies_rule(form, moments, lower, upper)
    kind = "talbot" if rule is None else "davies"
    return _Prepared(form, moments, lower, upper, kind, rule)


def qf_prepare(form):
    """Moments, tight support bounds and the inversion rule of ``form``, computed
    once: pass the result to the other ``qf_*`` functions to evaluate the same
    distribution many times."""
    return _prepare(form, tight=True)


def qf_support(form):
    """``(lower, upper)``: :math:`P(Q < lower), P(Q > upper) \\le` :data:`TAIL`."""
    prep = form if isinstance(form, _Prepared) else _prepare(form, tight=True)
    return prep.lower, prep.upper


def _log_abs_phi(form, moments, t):
    return _log_laplace(form, moments, -1j * np.asarray(t, dtype=float)).real


def _davies_rule(form, moments, lower, upper):
    """Nodes and values of the trapezoidal Gil-Pelaez rule, or None.

    ``h`` keeps the aliases :math:`q \\pm 2\\pi/h` of every ``q`` in the
    support bounds outside them; the truncation point ``T`` doubles until the
    remainder bounds of the CDF series, :math:`|\\varphi(T)|/(\\pi\\kappa)`, and
    of the density's mass over the support,
    :math:`(u - l)|\\varphi(T)| T/(\\pi(\\kappa - 1))`, are below
    :data:`_TRUNCATION`; :math:`\\kappa` is the decay exponent of
    :math:`|\\varphi|` over :math:`[T/2, T]`, a lower bound on it beyond
    :math:`T` because :math:`\\log|\\varphi|` is concave in :math:`\\log t`.
    None when that needs more than :data:`DAVIES_MAX_NODES` nodes (a slowly
    decaying :math:`\\varphi`: few effective chi-squares, Talbot's regime).
    """
    width = upper - lower
    h = 2.0 * np.pi / (_ALIAS_MARGIN * width)
    t_end = 1.0 / np.sqrt(moments.trace2)
    while True:
        if not t_end / h <= DAVIES_MAX_NODES:  # also when not finite
            return None
        g_half, g_end = _log_abs_phi(form, moments, [0.5 * t_end, t_end])
        if not np.isfinite(g_end):
            return None
        kappa = (g_half - g_end) / np.log(2.0)
        if kappa > 1.0:
            cdf_tail = np.exp(g_end) / (np.pi * kappa)
            pdf_tail = width * np.exp(g_end) * t_end / (np.pi * (kappa - 1.0))
            if max(cdf_tail, pdf_tail) <= _TRUNCATION:
                break
        t_end *= 2.0
    n = int(np.ceil(t_end / h + 0.5))
    t = (np.arange(n) + 0.5) * h
    centre = moments.mean
    log_phi = _log_laplace(form, moments, -1j * t) - 1j * t * centre
    return _Davies(t, log_phi, h, centre)


# -------------------------------------------------------------- distribution
def _talbot(prep, q, cdf=True, pdf=False):
    """Talbot inversion at ``q > 0`` (1-D); each term formed in logarithms.

    Returns the list of the requested values (CDF, density): both come from one
    evaluation of the transform.
    """
    s = _Z[None, :] / q[:, None]
    log_terms = _Z[None, :] + _log_laplace(prep.form, prep.moments, s)
    out = []
    if cdf:
        terms = np.exp(log_terms - _LOG_Z[None, :]) * _TALBOT_FACTOR[None, :]
        out.append(terms.real.sum(axis=-1))
    if pdf:
        terms = np.exp(log_terms) * _TALBOT_FACTOR[None, :]
        out.append(terms.real.sum(axis=-1) / q)
    return out


def _davies(prep, q, cdf=True, pdf=False):
    """Trapezoidal Gil-Pelaez sums at ``q`` (1-D): the list of the requested
    values (CDF, density)."""
    rule = prep.rule
    terms = np.exp(rule.log_phi[None, :] - 1j * np.outer(q - rule.centre, rule.t))
    out = []
    if cdf:
        k = np.arange(rule.t.shape[0]) + 0.5
        out.append(0.5 - (terms.imag / k).sum(axis=1) / np.pi)
    if pdf:
        out.append(rule.h / np.pi * terms.real.sum(axis=1))
    return out


def _invert(prep, q, cdf=True, pdf=False):
    """CDF and/or density at ``q`` inside the support bounds (1-D), by the
    inversion rule of ``prep`` (Talbot or Gil-Pelaez)."""
    method = _talbot if prep.kind == "talbot" else _davies
    return method(prep, q, cdf, pdf)


def qf_cdf(q, form):
    r"""CDF :math:`P(Q \le q)` of the quadratic form (absolute error < 1e-13).

    Parameters
    ----------
    q : array-like
    form : QuadraticForm

    Returns
    -------
    ndarray of the shape of ``q``, in [0, 1].
    """
    prep = _prepare(form)
    q = np.asarray(q, dtype=float)
    out = np.zeros(q.shape)
    if prep.kind == "point":
        out[q >= 0] = 1.0
        return out
    out[q > prep.upper] = 1.0
    inside = (q > max(prep.lower, 0.0)) & (q <= prep.upper)
    if not np.any(inside):
        return out
    if prep.kind == "chi2":
        positive = q > 0
        lam, dof = _chi2_scale_dof(prep)
        out[positive] = special.gammainc(0.5 * dof, 0.5 * q[positive] / lam)
        return out
    (value,) = _invert(prep, q[inside])
    out[inside] = np.clip(value, 0.0, 1.0)
    return out


def qf_cdf_slope(q, form, direction):
    r"""CDF :math:`F(q)` and its derivative when ``delta`` moves along ``direction``.

    For :math:`\delta(t) = \delta + t\,d` (``basis`` fixed), the derivative
    :math:`\partial F(q)/\partial t` at :math:`t = 0` is the inverse transform of
    :math:`E[e^{-sQ}]\,\partial_t \log E[e^{-sQ}] / s`, with

    .. math::

        \partial_t \log E[e^{-sQ}] = -\sum_i \frac{s d_i}{1 + 2s\delta_i}
        + \operatorname{tr}\Big(G^{-1} \sum_i \frac{s d_i b_i b_i^\top}
        {(1 + 2s\delta_i)^2}\Big), \qquad
        G = \sum_i \frac{b_i b_i^\top}{1 + 2s\delta_i},

    on the same Talbot nodes as the CDF (one evaluation of the transform gives
    both; the CDF is :func:`qf_cdf`'s value bit for bit).

    Parameters
    ----------
    q : float
    form : QuadraticForm or the result of :func:`qf_prepare`
    direction : ndarray of shape (K,)

    Returns
    -------
    (cdf, slope) : tuple of float, or None
        None when the distribution is not inverted on Talbot's contour (an exact
        scaled chi-square or the Gil-Pelaez series); the slope is 0 where the CDF
        is clamped to 0 or 1 (outside the support bounds, or rounding beyond).
    """
    prep = _prepare(form)
    if prep.kind == "point":
        return (1.0 if q >= 0 else 0.0), 0.0
    if prep.kind != "talbot":
        return None
    if q > prep.upper:
        return 1.0, 0.0
    if not q > max(prep.lower, 0.0):
        return 0.0, 0.0
    s = _Z / q
    log_terms = _Z + _log_laplace(prep.form, prep.moments, s)
    terms = np.exp(log_terms - _LOG_Z) * _TALBOT_FACTOR
    cdf = float(terms.real.sum())
    if not 0.0 < cdf < 1.0:
        return min(max(cdf, 0.0), 1.0), 0.0
    delta, basis = prep.form.delta, prep.form.basis
    sd = s[:, None] * direction  # (n, K)
    inverse = 1.0 / (1.0 + 2.0 * s[:, None] * delta)
    dlog = -(sd * inverse).sum(axis=1)
    if basis.shape[1] == 1:
        b2 = basis[:, 0] ** 2
        dlog += ((sd * inverse * inverse) @ b2) / (inverse @ b2)
    elif basis.shape[1]:
        gram = np.einsum("nk,ki,kj->nij", inverse, basis, basis)
        dgram = np.einsum("nk,ki,kj->nij", sd * inverse * inverse, basis, basis)
        dlog += np.trace(np.linalg.solve(gram, dgram), axis1=1, axis2=2)
    return cdf, float((terms * dlog).real.sum())


def qf_pdf(q, form):
    """Density of the quadratic form (0 outside its support bounds).

    Parameters
    ----------
    q : array-like
    form : QuadraticForm
        With at least one positive eigenvalue.

    Returns
    -------
    ndarray of the shape of ``q``
    """
    prep = _prepare(form)
    if prep.kind == "point":
        raise ValueError("The density needs at least one positive weight.")
    q = np.asarray(q, dtype=float)
    out = np.zeros(q.shape)
    if prep.kind == "chi2":
        positive = q > 0
        lam, dof = _chi2_scale_dof(prep)
        out[positive] = _chi2_pdf(q[positive] / lam, dof) / lam
        return out
    inside = (q > max(prep.lower, 0.0)) & (q <= prep.upper)
    if not np.any(inside):
        return out
    (value,) = _invert(prep, q[inside], cdf=False, pdf=True)
    out[inside] = np.maximum(value, 0.0)
    return out


def qf_ppf(p, form, *, xtol=1e-13):
    r"""Quantile function of the quadratic form.

    Safeguarded Newton iterations on the CDF within the support bounds, all
    probabilities at once, to a relative tolerance ``xtol``: the CDF and the
    density come from one evaluation of the transform, a step that leaves the
    bracket is replaced by bisection, and the iterations start from the
    two-moment (Satterthwaite) scaled chi-square quantile.

    Parameters
    ----------
    p : array-like
        Probabilities in [0, 1).
    form : QuadraticForm

    Returns
    -------
    ndarray of the shape of ``p``
    """
    p = np.asarray(p, dtype=float)
    if np.any((p < 0) | (p >= 1)) or not np.all(np.isfinite(p)):
        raise ValueError("p must be in [0, 1).")
    prep = _prepare(form)
    out = np.zeros(p.shape)
    if prep.kind == "point":
        return out
    if prep.kind == "chi2":
        lam, dof = _chi2_scale_dof(prep)
        return _chi2_ppf(p, dof) * lam
    flat = out.reshape(-1)
    # F = 0 at lo = max(lower, 0) (qf_cdf's convention), so only F(hi) decides
    # whether a quantile sits at the upper bound.  F(hi) >= 1 - TAIL, and the
    # inversion's absolute error is below _INVERSION_ERROR: probabilities below
    # 1 - TAIL - _INVERSION_ERROR are all below the computed F(hi), which then
    # need not be evaluated.
    lo, hi = max(prep.lower, 0.0), prep.upper
    targets = p.reshape(-1)
    if targets.max() < 1.0 - TAIL - _INVERSION_ERROR:
        at_hi = np.zeros(targets.shape, dtype=bool)
    else:
        (f_hi,) = _invert(prep, np.array([hi]))
        at_hi = np.clip(f_hi[0], 0.0, 1.0) <= targets
    flat[at_hi] = hi
    todo = np.flatnonzero((targets > 0) & ~at_hi)
    if todo.size:
        rtol = max(xtol, 4 * np.finfo(float).eps)
        flat[todo] = _newton_quantiles(prep, targets[todo], lo, hi, rtol)
    return out


def _newton_quantiles(prep, p, lo, hi, rtol):
    """Roots of :math:`F(x) = p` in ``(lo, hi)`` (``F(lo) < p < F(hi)``), see
    :func:`qf_ppf`."""
    moments = prep.moments
    scale = moments.trace2 / moments.mean
    lower = np.full(p.shape, lo)
    upper = np.full(p.shape, hi)
    x = scale * _chi2_ppf(p, moments.mean / scale)
    x = np.where((x > lo) & (x < hi), x, 0.5 * (lo + hi))
    active = np.arange(p.size)
    for _ in range(_NEWTON_MAX_ITER):
        xa = x[active]
        cdf, pdf = _invert(prep, xa, pdf=True)
        g = np.clip(cdf, 0.0, 1.0) - p[active]
        below = g < 0
        lower[active] = np.where(below, xa, lower[active])
        upper[active] = np.where(below, upper[active], xa)
        la, ua = lower[active], upper[active]
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = np.where(pdf > 0, g / pdf, np.inf)
        step = xa - delta
        # a Newton step below the tolerance is the last one (it may not even
        # move x in floating point, and is then not strictly inside the bracket);
        # so is a step inside the bracket below _NEWTON_LAST_STEP * x: Newton
        # converges quadratically, the error after it is about
        # (x F''/(2F')) (delta/x)^2 x, below 1e-14 x even for a distribution
        # concentrated to 1% of its location (x F''/F' ~ 200), i.e. within the
        # requested xtol; further steps only chase the rounding of the CDF
        small = np.abs(delta) <= rtol * xa
        last = np.abs(delta) <= _NEWTON_LAST_STEP * xa
        inside = (step > la) & (step < ua)
        new = np.where(small | inside, step, 0.5 * (la + ua))
        x[active] = new
        done = (
            small
            | (last & inside)
            | (np.abs(new - xa) <= rtol * new)
            | (ua - la <= rtol * ua)
        )
        active = active[~done]
        if not active.size:
            return x
    raise RuntimeError("The quantile iterations did not converge.")  # pragma: no cover


def _chi2_scale_dof(prep):
    r"""``(lambda, R)`` of a form of equal weights: :math:`Q = \lambda\chi^2_R`."""
    delta, basis = prep.form.delta, prep.form.basis
    return delta[0], delta.size - basis.shape[1]


def _chi2_pdf(x, dof):
    """Chi-square density at ``x > 0`` (the formula of ``scipy.stats.chi2.pdf``,
    without its argument handling)."""
    half = 0.5 * dof
    return np.exp(
        special.xlogy(half - 1.0, x)
        - 0.5 * x
        - special.gammaln(half)
        - np.log(2) * half
    )


def _chi2_ppf(p, dof):
    """Chi-square quantile (as ``scipy.stats.chi2.ppf`` for p in [0, 1))."""
    return 2.0 * special.gammaincinv(0.5 * dof, p)


# --------------------------------------------- weights (eigenvalues) as input
def wchisq_cdf(q, lam):
    r"""CDF of :math:`Q = \sum_r \lambda_r \chi^2_{1,r}` (zero weights dropped)."""
    return qf_cdf(q, _weights_form(lam))


def wchisq_sf(q, lam):
    """Survival function :math:`P(Q > q) = 1 - F(q)` (absolute accuracy as the CDF)."""
    return 1.0 - wchisq_cdf(q, lam)


def wchisq_pdf(q, lam):
    r"""Density of :math:`Q = \sum_r \lambda_r \chi^2_{1,r}` (a positive weight)."""
    return qf_pdf(q, _weights_form(lam))


def wchisq_ppf(p, lam, *, xtol=1e-13):
    r"""Quantile function of :math:`Q = \sum_r \lambda_r \chi^2_{1,r}`."""
    return qf_ppf(p, _weights_form(lam), xtol=xtol)
