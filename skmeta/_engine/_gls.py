r"""Generalized least squares and Gaussian likelihoods: the core every model shares.

Every skmeta model is Gaussian with known sampling variances,
:math:`y \sim N(X\beta, V(\theta))`.  Given the variance parameters
:math:`\theta`, the fixed effects are the GLS estimate
:math:`\hat\beta = (X^\top V^{-1} X)^{-1} X^\top V^{-1} y`, and the log-likelihood
with :math:`\beta` profiled out is

.. math::

    \ell_{ML} = -\tfrac12\left[n\log 2\pi + \log|V| + r^\top V^{-1} r\right],

    \ell_{REML} = -\tfrac12\left[(n-p)\log 2\pi + \log|V| + \log|X^\top V^{-1} X|
    + r^\top V^{-1} r\right] + \tfrac12\log|X^\top X|,

with :math:`r = y - X\hat\beta`.  The constant :math:`+\tfrac12\log|X^\top X|`
is the one metafor reports (``REMLf = TRUE``; Viechtbauer 2010) and Stata prints,
so that restricted log-likelihoods, AIC and BIC compare with both.

This module holds the one implementation of each of these pieces: the weighted
(diagonal :math:`V`) least-squares fit, :func:`profiled_loglik` (the formula
above, from its sufficient quantities), the per-study Gaussian log-density and
the rank check of a design.
"""

import math
from typing import NamedTuple

import numpy as np
from scipy.linalg.lapack import dpotrf as _potrf
from scipy.linalg.lapack import dpotri as _potri

LOG_2PI = float(np.log(2.0 * np.pi))

#: A design column whose share not explained by the preceding columns
#: (1 - R^2 of its regression on them, on the column-normalised design) is at or
#: below this counts as linearly dependent. Exact collinearity leaves rounding
#: noise of order 1e-16; the loosest real designs (a calendar year beside the
#: intercept: 1 - R^2 ~ 1e-6) are far above it.
RANK_RTOL = 1e-12
#: :func:`dependent_columns` trusts the Cholesky pivots of the normalised Gram
#: matrix (absolute error ~ p * eps) only above this value, far from RANK_RTOL.
_CHOLESKY_CLEAR = 1e-6


class WeightedFit(NamedTuple):
    """Weighted least-squares fit with diagonal weights."""

    beta: np.ndarray  # (p,)
    cov: np.ndarray  # (p, p), (X' W X)^{-1}
    resid: np.ndarray  # (k,), y - X beta
    weights: np.ndarray  # (k,)
    rss: float  # sum w r^2 = y' P y
    logdet: float  # log |X' W X|
    #: True when no weight dominates the others (checked by the random-effects
    #: engine's stable fit): the plain trace formulas of P are exact.
    plain: bool = False


def cholesky_inverse(A):
    """``(chol, A^{-1})`` of a symmetric positive-definite matrix (raw LAPACK).

    Cholesky is invariant to diagonal scaling (van der Sluis), so no equilibration
    is needed.  Raises ``LinAlgError`` when ``A`` is not positive definite.
    """
    p = A.shape[0]
    chol, info = _potrf(A, lower=1)
    if info:
        raise np.linalg.LinAlgError("singular weighted design")
    inv = _potri(chol, lower=1)[0]  # lower triangle; the upper one is zero
    inv += inv.T
    inv.flat[:: p + 1] *= 0.5
    return chol, inv


#: Up to this many columns the p x p algebra of the random-effects likelihood
#: terms (and of ``weighted_fit(..., scalar_algebra=True)``) runs on Python
#: floats: a NumPy or LAPACK call costs about a microsecond whatever its size,
#: more than the arithmetic of a 1 x 1 or 2 x 2 system.
SMALL_P = 2


def small_cholesky_inverse(A):
    """:func:`cholesky_inverse` of a 1 x 1 or 2 x 2 matrix on Python floats.

    ``A`` is a nested list (its lower triangle is read). The factor
    :math:`A = LL^\top` and :math:`A^{-1} = L^{-\top}L^{-1}` are computed in
    the order of LAPACK's ``potrf`` and ``potri``.

    Returns
    -------
    diagonal : tuple of float
        The diagonal of :math:`L`.
    inverse : list of list of float
        :math:`A^{-1}`.

    Raises
    ------
    numpy.linalg.LinAlgError
        When ``A`` is not positive definite.
    """
    a00 = A[0][0]
    if not a00 > 0.0:
        raise np.linalg.LinAlgError("singular weighted design")
    l00 = math.sqrt(a00)
    i00 = 1.0 / l00
    if len(A) == 1:
        return (l00,), [[i00 * i00]]
    l10 = A[1][0] / l00
    pivot = A[1][1] - l10 * l10
    if not pivot > 0.0:
        raise np.linalg.LinAlgError("singular weighted design")
    l11 = math.sqrt(pivot)
    i11 = 1.0 / l11
    i10 = -(l10 * i00) / l11
    c10 = i11 * i10
    return (l00, l11), [[i00 * i00 + i10 * i10, c10], [c10, i11 * i11]]


def weighted_fit(X, y, w, *, plain=False, scalar_algebra=False):
    """Fit ``y`` on ``X`` by weighted least squares with weights ``w``.

    Parameters
    ----------
    X : ndarray of shape (k, p)
        Design matrix (may have ``p = 0`` columns).
    y : ndarray of shape (k,)
        Outcomes.
    w : ndarray of shape (k,)
        Positive, finite weights.
    plain : bool, default=False
        The ``plain`` flag of the result (set by a caller that has checked that
        no weight dominates).
    scalar_algebra : bool, default=False
        For at most :data:`SMALL_P` columns, do the p x p algebra on Python
        floats (:func:`small_cholesky_inverse`; the same operations, without
        the cost of a NumPy or LAPACK call per step; the last bits may differ).

    Returns
    -------
    WeightedFit
        :math:`\\hat\\beta = (X^\\top W X)^{-1} X^\\top W y` with its unscaled
        covariance, residuals, weighted residual sum of squares and
        :math:`\\log|X^\\top W X|`.
    """
    p = X.shape[1]
    if p == 0:
        rss = float(w @ (y * y))
        return WeightedFit(np.zeros(0), np.zeros((0, 0)), y.copy(), w, rss, 0.0, plain)
    # With an intercept column, centre the other columns at their weighted means
    # (a unit-triangular reparametrisation T: beta = T beta_c, |T| = 1). Offsets
    # such as calendar years then cost no precision in X'WX.
    centred = p > 1 and X[0, 0] == 1.0 and bool((X[:, 0] == 1.0).all())
    if centred:
        means = (w @ X[:, 1:]) / w.sum()
        Xc = X - np.concatenate(([0.0], means))
    else:
        Xc = X
    Xw = Xc * w[:, None]
    if scalar_algebra and p <= SMALL_P:
        return _small_weighted_fit(Xc, Xw, y, w, means if centred else None, plain)
    chol, cov = cholesky_inverse(Xc.T @ Xw)
    beta = cov @ (Xw.T @ y)
    resid = y - Xc @ beta
    if centred:
        T = np.eye(p)
        T[0, 1:] = -means
        beta = T @ beta
        cov = T @ cov @ T.T
    rss = float(w @ (resid * resid))
    logdet = 2.0 * float(np.log(chol.diagonal()).sum())
    return WeightedFit(beta, cov, resid, w, rss, logdet, plain)


def _small_weighted_fit(Xc, Xw, y, w, means, plain):
    """The end of :func:`weighted_fit` for one or two columns: the p x p
    algebra on Python floats (:func:`small_cholesky_inverse`), the same
    operations as the general path. ``means`` is the weighted mean of the
    second column when the design was centred (else None)."""
    diagonal, cov = small_cholesky_inverse((Xc.T @ Xw).tolist())
    xty = (Xw.T @ y).tolist()
    if len(xty) == 1:
        beta = [cov[0][0] * xty[0]]
    else:
        beta = [row[0] * xty[0] + row[1] * xty[1] for row in cov]
    resid = y - Xc @ np.array(beta)
    logdet = 2.0 * sum(math.log(d) for d in diagonal)
    if means is not None:
        # beta = T beta_c and cov = T cov_c T' with T = [[1, -m], [0, 1]]
        m = float(means[0])
        (c00, c01), (c10, c11) = cov
        t00, t01 = c00 - m * c10, c01 - m * c11
        beta[0] -= m * beta[1]
        cov = [[t00 - t01 * m, t01], [c10 - c11 * m, c11]]
    rss = float(w @ (resid * resid))
    return WeightedFit(np.array(beta), np.array(cov), resid, w, rss, logdet, plain)


def logdet_crossprod(X):
    """Return :math:`\\log|X^\\top X|` (0 for an empty design, -inf if singular)."""
    if X.shape[1] == 0:
        return 0.0
    sign, logdet = np.linalg.slogdet(X.T @ X)
    return float(logdet) if sign > 0 else -np.inf


def profiled_loglik(n, p, logdet_v, rss, *, reml, logdet_xtvx=0.0, logdet_xtx=0.0):
    r"""(Restricted) Gaussian log-likelihood with :math:`\beta` profiled out.

    The arguments may be arrays (one model per entry, e.g. many outputs), which
    broadcast together.

    Parameters
    ----------
    n, p : int or ndarray
        Number of observations and of fixed effects.
    logdet_v : float or ndarray
        :math:`\log|V|` (:math:`\sum_i \log(v_i + \tau_i^2)` for diagonal
        :math:`V`).
    rss : float or ndarray
        :math:`r^\top V^{-1} r` at the GLS estimate.
    reml : bool
        Restricted likelihood (with metafor's constant) instead of the likelihood.
    logdet_xtvx, logdet_xtx : float or ndarray
        :math:`\log|X^\top V^{-1} X|` and :math:`\log|X^\top X|` (REML only).

    Returns
    -------
    float or ndarray
        :math:`\ell_{ML}` or :math:`\ell_{REML}` of the module docstring.
    """
    if reml:
        return -0.5 * ((n - p) * LOG_2PI + logdet_v + logdet_xtvx + rss) + (
            0.5 * logdet_xtx
        )
    return -0.5 * (n * LOG_2PI + logdet_v + rss)


def gaussian_logpdf(resid, var):
    """Per-row log-density :math:`\\log N(r_i; 0, \\sigma_i^2)` (``var`` > 0)."""
    return -0.5 * (LOG_2PI + np.log(var) + resid * resid / var)


def dependent_columns(X):
    """Indices of the columns of ``X`` that are linear combinations of earlier ones.

    With the columns normalised to unit length and :math:`X = QR` (Householder,
    backward stable), :math:`R_{jj}^2` is the share of column :math:`j` not
    explained by the columns before it (1 - R^2 of that regression); the column
    is dependent when it is at most :data:`RANK_RTOL`.  A zero column is always
    dependent.  O(k p^2), no k x k matrix.

    Parameters
    ----------
    X : ndarray of shape (k, p)

    Returns
    -------
    list of int
    """
    if X.shape[1] == 0:
        return []
    if X.shape[1] == 1:  # one column: dependent only when zero
        return [] if np.einsum("i,i->", X[:, 0], X[:, 0]) > 0 else [0]
    if X.shape[0] >= X.shape[1]:
        # Fast path: the Cholesky pivots of the normalised Gram matrix are the
        # R_jj^2 themselves, with an absolute error of order eps; where every
        # one is far above RANK_RTOL no column is dependent.  Otherwise (a zero
        # or overflowing column, or a failed factorisation) the backward-stable
        # QR decides.
        gram = X.T @ X
        if X.shape[1] == 2:  # the second pivot is 1 - r^2 (r: the cosine)
            (g00, _), (g10, g11) = gram.tolist()
            if 0.0 < g00 < math.inf and 0.0 < g11 < math.inf:
                cosine = g10 / math.sqrt(g00) / math.sqrt(g11)
                if 1.0 - cosine * cosine > _CHOLESKY_CLEAR:
                    return []
        squared_norms = gram.diagonal()
        if squared_norms.min() > 0.0 and squared_norms.max() < np.inf:
            inverse_norms = 1.0 / np.sqrt(squared_norms)
            gram *= inverse_norms[:, None]
            gram *= inverse_norms
            chol, info = _potrf(gram, lower=1)
            if not info and (chol.diagonal() ** 2).min() > _CHOLESKY_CLEAR:
                return []
    norms = np.sqrt(np.einsum("ij,ij->j", X, X))
    safe = np.where(norms > 0, norms, 1.0)
    if X.shape[0] < X.shape[1]:  # more columns than rows: pad with zero rows
        X = np.vstack([X, np.zeros((X.shape[1] - X.shape[0], X.shape[1]))])
    r = np.linalg.qr(X / safe, mode="r")
    unexplained = np.abs(np.diag(r)) ** 2
    return [int(j) for j in np.flatnonzero((norms == 0) | (unexplained <= RANK_RTOL))]
