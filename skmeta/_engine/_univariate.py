r"""Univariate random-effects model with known sampling variances.

The model is

.. math::

    y_i = x_i^\top \beta + u_i + e_i,\qquad u_i \sim N(0, \tau^2),\qquad
    e_i \sim N(0, v_i),

so that :math:`y \sim N(X\beta, \operatorname{diag}(v + \tau^2))`.  Every quantity
here is computed from vectors of length ``k`` and ``p x p`` matrices: the
``k x k`` projection matrix

.. math:: P = W - W X (X^\top W X)^{-1} X^\top W,\qquad W = \operatorname{diag}(w)

is never formed.  Its traces are obtained from ``p x p`` products, e.g. with the
leverages :math:`h_i = w_i x_i^\top (X^\top W X)^{-1} x_i`

.. math::

    \operatorname{tr}(P D_1 P D_2) = \sum_i e_{1i} e_{2i} - 2 \sum_i h_i e_{1i} e_{2i}
    + \operatorname{tr}(A^{-1} B_1 A^{-1} B_2)

with :math:`e_j = w \circ d_j`, :math:`A = X^\top W X` and
:math:`B_j = X^\top \operatorname{diag}(w \circ e_j) X`. Studies whose weights
dominate the others (a sampling variance of 0 or 1e-12 beside ordinary ones) are
eliminated exactly from these sums and from the weighted fit
(:func:`stable_weighted_fit`), which would otherwise cancel digits.

This module holds those pieces, the (restricted) likelihood and its certified
maximisation (:func:`maximize_likelihood`), the closed forms of the moment
estimators of :math:`\tau^2`, Cochran's Q with :math:`I^2`, :math:`H^2` and the
Q-profile interval. The estimators follow the definitions documented by metafor
(Viechtbauer 2010; Veroniki et al. 2016), implemented from the published formulas:
DerSimonian & Laird (1986), Hedges (1983), Hunter & Schmidt (2004), Brannick et al.
(2019), Sidik & Jonkman (2005), Paule & Mandel (1982), Viechtbauer (2021),
Morris (1983), DerSimonian & Kacker (2007), maximum likelihood and restricted
maximum likelihood (Raudenbush 2009). Their registry, one record per method, is
:mod:`skmeta._engine._tau2`; the whole random-effects fit is
:func:`skmeta._engine._random_effects.fit_random_effects`.
"""

import functools
import math
from typing import NamedTuple

import numpy as np
from scipy import optimize, special, stats

from skmeta._engine._gls import (
    SMALL_P,
    WeightedFit,
    cholesky_inverse,
    dependent_columns,
    profiled_loglik,
    small_cholesky_inverse,
    weighted_fit,
)


def _weighted_gram(X, weights):
    r"""Return :math:`X^\top \operatorname{diag}(weights) X`."""
    return X.T @ (X * weights[:, None])


#: A study whose weight exceeds this multiple of the median weight dominates the
#: weighted sums. The plain trace formulas (e.g. :math:`\sum_i w_i d_i -
#: \operatorname{tr}(A^{-1}X^\top W^2 D X)`) then cancel terms of the size of
#: its weight down to the size of the others' and lose about ``eps * ratio`` of
#: relative precision (1e-10 at this ratio); above it the dominant studies'
#: contributions come from the exact block form of :func:`_dominant_blocks`.
DOMINANT_WEIGHT_RATIO = 1e6

#: Dominant studies are eliminated exactly only when the fixed effects resolve
#: them: the correlation matrix of :math:`X_B A_R^{-1} X_B^\top` must have its
#: smallest eigenvalue above this (else the block form is no more accurate).
_RESOLVED_EIG = 1e-8


class _DominantBlocks(NamedTuple):
    """The weighted fit and :math:`P` with the dominant studies ``B`` eliminated.

    With ``R`` the other studies, :math:`A_R = X_R^\\top W_R X_R`,
    :math:`U = A_R^{-1} X_B^\\top` and :math:`M = W_B^{-1} + X_B U`:
    :math:`(X^\\top W X)^{-1} = A_R^{-1} - U M^{-1} U^\\top` (Woodbury),
    :math:`P_{BB} = M^{-1}`, :math:`P_{BR} = -M^{-1} U^\\top X_R^\\top W_R`,
    :math:`\\hat\\beta = \\hat\\beta_R + U M^{-1}(y_B - X_B\\hat\\beta_R)` (the
    recursive least-squares update) and :math:`|X^\\top W X| = |A_R|\\,|M|\\,
    |W_B|`. No term holds the dominant weights, only their inverses.
    """

    rest: np.ndarray  # indices of R
    dominant: np.ndarray  # indices of B
    cov: np.ndarray  # (X'WX)^{-1}
    rows: np.ndarray  # P[B, :], shape (|B|, k)
    rest_fit: WeightedFit  # the fit of the studies R alone
    update: np.ndarray  # U, shape (p, |B|)
    gram: np.ndarray  # G = X_B U
    x_dom: np.ndarray  # X_B
    m_inv: np.ndarray  # M^{-1}
    logdet_m: float  # log|M|


def _dominant_studies(w):
    """Indices of the studies whose weights dominate, or None.

    A weight dominates when it exceeds :data:`DOMINANT_WEIGHT_RATIO` times the
    median of the ordinary weights (those within that ratio of the smallest):
    the median of all weights would itself be dominant when half the studies
    are (e.g. zero sampling variances in two studies out of three).
    """
    smallest = w.min()
    if w.max() <= DOMINANT_WEIGHT_RATIO * smallest:
        return None
    reference = np.median(w[w <= DOMINANT_WEIGHT_RATIO * smallest])
    return np.flatnonzero(w > DOMINANT_WEIGHT_RATIO * reference)


class _NullSpaceForm(NamedTuple):
    r""":math:`P = N (N^\top W^{-1} N)^{-1} N^\top` with :math:`X^\top N = 0`.

    ``basis`` :math:`N` (orthonormal, k x (k - p)) spans the residual space and
    ``inner_inv`` is :math:`(N^\top W^{-1} N)^{-1}`: no term holds a dominant
    weight, only the total variances :math:`1/w_i` (Harville 1977's form of the
    REML projection). Used when dominant studies neither leave the others to
    identify the fixed effects nor are those others absent, e.g. zero sampling
    variances in studies that pin some directions of :math:`\beta` while the
    rest pin the others.
    """

    basis: np.ndarray  # N, shape (k, k - p)
    inner_inv: np.ndarray  # (N' W^-1 N)^-1


#: The null-space form costs O(k^2) memory; beyond this many studies the plain
#: trace formulas are used (they lose ``eps * ratio`` of relative precision).
NULL_SPACE_MAX_STUDIES = 1000


def _null_space_form(X, w):
    """:class:`_NullSpaceForm` of ``X`` and weights ``w``, or None (too large)."""
    k, p = X.shape
    if k > NULL_SPACE_MAX_STUDIES:
        return None
    basis = np.linalg.qr(X, mode="complete")[0][:, p:]
    try:
        _, inner_inv = cholesky_inverse((basis / w[:, None]).T @ basis)
    except np.linalg.LinAlgError:
        return None
    return _NullSpaceForm(basis, inner_inv)


def _dominant_blocks(X, w, y=None):
    """The exact block form when some weights dominate, else None.

    :class:`_DominantBlocks` when the other studies identify the fixed effects;
    for the traces of ``P`` (``y`` None) the :class:`_NullSpaceForm` when they
    do not.
    """
    k, p = X.shape
    if p == 0:
        return None  # P = W: no cancellation
    dominant = _dominant_studies(w)
    if dominant is None or dominant.size == 0:
        return None
    if k - dominant.size < p:
        return _null_space_form(X, w) if y is None else None
    unresolved = _null_space_form(X, w) if y is None else None
    rest = np.setdiff1d(np.arange(k), dominant, assume_unique=True)
    if dependent_columns(X[rest]):
        return unresolved  # the other studies alone do not identify beta
    y_rest = np.zeros(rest.size) if y is None else y[rest]
    try:
        rest_fit = weighted_fit(X[rest], y_rest, w[rest])
    except np.linalg.LinAlgError:
        return unresolved
    XB = X[dominant]
    U = rest_fit.cov @ XB.T
    G = XB @ U
    scale = np.sqrt(np.diag(G))
    if dominant.size > 1 and np.all(scale > 0):
        if np.linalg.eigvalsh(G / np.outer(scale, scale))[0] <= _RESOLVED_EIG:
            return unresolved
    try:
        chol, m_inv = cholesky_inverse(G + np.diag(1.0 / w[dominant]))
    except np.linalg.LinAlgError:
        return unresolved
    rows = np.empty((dominant.size, k))
    rows[:, dominant] = m_inv
    rows[:, rest] = -(m_inv @ U.T) @ (X[rest] * w[rest][:, None]).T
    cov = rest_fit.cov - U @ m_inv @ U.T
    logdet_m = 2.0 * float(np.log(chol.diagonal()).sum())
    return _DominantBlocks(
        rest, dominant, cov, rows, rest_fit, U, G, XB, m_inv, logdet_m
    )


def stable_weighted_fit(X, y, w, *, scalar_algebra=False):
    """:func:`~skmeta._engine._gls.weighted_fit`, exact when some weights dominate.

    Studies whose weights exceed :data:`DOMINANT_WEIGHT_RATIO` times the median
    (a sampling variance of 0 or 1e-300 next to ordinary ones) are eliminated
    exactly (:class:`_DominantBlocks`): their residuals come from
    :math:`r_B = W_B^{-1} M^{-1}(y_B - X_B\\hat\\beta_R)`, not from a difference
    of nearly equal numbers, so the residual sum of squares and
    :math:`\\log|X^\\top W X|` keep full precision at any weight.
    ``scalar_algebra`` is passed on to ``weighted_fit`` when no weight
    dominates.
    """
    if X.shape[1] == 0 or _dominant_studies(w) is None:
        return weighted_fit(X, y, w, plain=True, scalar_algebra=scalar_algebra)
    blocks = _dominant_blocks(X, w, y)
    if blocks is None:
        return weighted_fit(X, y, w)
    dom, rest, fit_r = blocks.dominant, blocks.rest, blocks.rest_fit
    var_dom = 1.0 / w[dom]
    alpha = blocks.m_inv @ (y[dom] - X[dom] @ fit_r.beta)  # (P y)_B
    beta = fit_r.beta + blocks.update @ alpha
    resid = np.empty(y.shape[0])
    resid[dom] = var_dom * alpha
    resid[rest] = y[rest] - X[rest] @ beta
    rss = float(w[rest] @ resid[rest] ** 2 + var_dom @ alpha**2)
    logdet = fit_r.logdet + blocks.logdet_m - float(np.log(var_dom).sum())
    return WeightedFit(beta, _pinned_cov(blocks, var_dom), resid, w, rss, logdet)


def _pinned_cov(blocks, var_dom):
    r""":math:`(X^\top W X)^{-1}` with full relative precision along the
    directions the dominant studies pin down.

    The Woodbury form :math:`A_R^{-1} - UM^{-1}U^\top` subtracts nearly equal
    numbers along :math:`X_B^\top`. With :math:`G = X_B U` and the projector
    :math:`\Pi = I - UG^{-1}X_B` (:math:`X_B\Pi = 0`) it equals
    :math:`\Pi A_R^{-1}\Pi^\top + U\,G^{-1}S_B M^{-1}\,U^\top`, a sum of two
    positive semi-definite terms, the second of the size of :math:`S_B`. (Along
    the pinned directions the first term is then a rounding error of relative
    size eps^2, zero when they span every direction.)
    """
    U, G, XB = blocks.update, blocks.gram, blocks.x_dom
    if np.any(np.diag(G) <= 0):
        return blocks.cov  # a dominant study with x_i = 0 pins nothing
    try:
        _, g_inv = cholesky_inverse(G)
    except np.linalg.LinAlgError:
        return blocks.cov
    small = U @ (g_inv @ (var_dom[:, None] * blocks.m_inv)) @ U.T
    small = 0.5 * (small + small.T)
    if XB.shape[0] == XB.shape[1]:
        return small  # the dominant studies pin every direction: Pi = 0
    proj = np.eye(U.shape[0]) - U @ (g_inv @ XB)
    return proj @ blocks.rest_fit.cov @ proj.T + small


def _trace_pd_rows(X, w, cov, d):
    r""":math:`\sum_i P_{ii} d_i` over the rows given, :math:`P_{ii} = w_i - w_i^2
    x_i^\top C x_i` (``d`` None: ones)."""
    wd = w if d is None else w * d
    total = float(wd.sum())
    if X.shape[1]:
        total -= float((cov * _weighted_gram(X, w * wd)).sum())
    return total


def _trace_pdpd_rows(X, w, cov, d1, d2):
    r""":math:`\sum_{i,j} P_{ij}^2 d_{1i} d_{2j}` over the rows given, from
    :math:`P = W - W X C X^\top W` (``None``: ones)."""
    e1 = w if d1 is None else w * d1
    e2 = w if d2 is None else w * d2
    e12 = e1 * e2
    total = float(e12.sum())
    if X.shape[1]:
        total -= 2.0 * float((cov * _weighted_gram(X, w * e12)).sum())
        # (w * e1 is w * w = e12 when both diagonals are the identity)
        M1 = cov @ _weighted_gram(X, e12 if d1 is None and d2 is None else w * e1)
        M2 = M1 if d2 is d1 else cov @ _weighted_gram(X, w * e2)
        total += float((M1 * M2.T).sum())
    return total


def trace_pdpd(X, fit, d1, d2):
    r"""Return :math:`\operatorname{tr}(P D_1 P D_2)` for diagonal ``D_1``, ``D_2``.

    ``P`` is the projection of ``fit`` (``weighted_fit(X, y, w)``); ``d1`` and ``d2``
    are the diagonals (``None`` means the identity).  With :math:`e_j = w \circ d_j`,
    :math:`\operatorname{tr}(PD_1PD_2) = \sum_i e_{1i} e_{2i} - 2\operatorname{tr}(
    A^{-1} X^\top \operatorname{diag}(w e_1 e_2) X) + \operatorname{tr}(A^{-1}B_1
    A^{-1}B_2)`, :math:`B_j = X^\top \operatorname{diag}(w e_j) X`; studies with
    dominant weights enter through the exact block form (:func:`_dominant_blocks`).
    """
    w = fit.weights
    blocks = None if fit.plain else _dominant_blocks(X, w)
    if blocks is None:
        return _trace_pdpd_rows(X, w, fit.cov, d1, d2)
    ones = np.ones(w.shape[0])
    d1 = ones if d1 is None else d1
    d2 = ones if d2 is None else d2
    if isinstance(blocks, _NullSpaceForm):  # tr(M^-1 N'D1N M^-1 N'D2N)
        N = blocks.basis
        M1 = blocks.inner_inv @ (N.T @ (d1[:, None] * N))
        M2 = M1 if d2 is d1 else blocks.inner_inv @ (N.T @ (d2[:, None] * N))
        return float((M1 * M2.T).sum())
    rest, dom = blocks.rest, blocks.dominant
    total = _trace_pdpd_rows(X[rest], w[rest], blocks.cov, d1[rest], d2[rest])
    sq = blocks.rows**2
    # pairs (i in B, any j) and (i in R, j in B); P is symmetric
    total += float(d1[dom] @ sq @ d2 + d2[dom] @ sq @ d1)
    total -= float(d2[dom] @ sq[:, dom] @ d1[dom])
    return total


def trace_pd(X, fit, d=None):
    r"""Return :math:`\operatorname{tr}(P D)` for diagonal ``D`` (identity if None).

    :math:`\sum_i w_i d_i - \operatorname{tr}(A^{-1} X^\top \operatorname{diag}(w^2
    d) X)`; studies with dominant weights enter through the exact block form
    (:func:`_dominant_blocks`).
    """
    w = fit.weights
    blocks = None if fit.plain else _dominant_blocks(X, w)
    if blocks is None:
        return _trace_pd_rows(X, w, fit.cov, d)
    if isinstance(blocks, _NullSpaceForm):  # tr(M^-1 N'DN)
        N = blocks.basis
        ND = N if d is None else d[:, None] * N
        return float((blocks.inner_inv * (N.T @ ND)).sum())
    rest, dom = blocks.rest, blocks.dominant
    p_bb = np.diag(blocks.rows[:, dom])
    total = _trace_pd_rows(X[rest], w[rest], blocks.cov, None if d is None else d[rest])
    return total + float(p_bb.sum() if d is None else p_bb @ d[dom])


def generalized_q(X, y, v, tau2):
    r"""Return :math:`Q(\tau^2) = y^\top P_{\tau^2} y`, weights :math:`1/(v+\tau^2)`."""
    return stable_weighted_fit(X, y, 1.0 / (v + tau2)).rss


# --------------------------------------------------------------------------------------
# log-likelihoods
# --------------------------------------------------------------------------------------


def loglik_ml(v, tau2, fit):
    """Gaussian log-likelihood at ``tau2`` with beta at its GLS estimate."""
    logdet_v = float(np.sum(np.log(v + tau2)))
    return profiled_loglik(v.shape[0], fit.beta.shape[0], logdet_v, fit.rss, reml=False)


def loglik_reml(v, tau2, fit, logdet_xtx):
    r"""Restricted log-likelihood with metafor's :math:`+\tfrac12\log|X^\top X|`."""
    logdet_v = float(np.sum(np.log(v + tau2)))
    return profiled_loglik(
        v.shape[0],
        fit.beta.shape[0],
        logdet_v,
        fit.rss,
        reml=True,
        logdet_xtvx=fit.logdet,
        logdet_xtx=logdet_xtx,
    )


# --------------------------------------------------------------------------------------
# likelihood optimisation
# --------------------------------------------------------------------------------------


class Tau2Fit(NamedTuple):
    """Result of a tau^2 estimation."""

    tau2: float
    n_iter: int
    converged: bool


def centered_stack(X, y, copies=1):
    r"""Stack ``[X, y]`` feature-major, centred when ``X`` holds an intercept column.

    Centring the other columns and ``y`` at their means is a unit-triangular
    reparametrisation of the column space of ``X``: :math:`P`, the residuals and
    :math:`\log|X^\top W X|` are unchanged, and the moment sums of
    :func:`_likelihood_terms` lose no precision to large offsets.

    Returns
    -------
    ndarray of shape (copies * (p + 1), k), C-contiguous
        The stack in the first ``p + 1`` rows; further rows are work space.
    """
    q = X.shape[1] + 1
    Z = np.empty((copies * q, X.shape[0]))
    Z[: q - 1] = X.T
    Z[q - 1] = y
    if X.shape[1] and (X[:, 0] == 1.0).all():
        # (the mean as ndarray.mean computes it: the sum divided by k)
        Z[1:q] -= np.add.reduce(Z[1:q], axis=1, keepdims=True) / X.shape[0]
    return Z


def _score_terms(reml, ypy2, upu, trp, trpp, sum_w, sum_w2):
    """``(score, observed - expected information, expected information)`` in
    tau^2 from the traces: REML uses tr(P) and tr(P^2), ML tr(W) and tr(W^2)."""
    if reml:
        score, expected = 0.5 * (ypy2 - trp), 0.5 * trpp
    else:
        score, expected = 0.5 * (ypy2 - sum_w), 0.5 * sum_w2
    return float(score), float(upu - expected), float(expected)


def _likelihood_terms(Z, v, tau2, reml, logdet_xtx, intercept):
    r"""Criterion, score and informations at ``tau2`` from weighted moments.

    ``Z`` is ``centered_stack(X, y, copies=3)``: rows ``p+1`` onwards are work
    space.  With :math:`z_i = (x_i, y_i)`, :math:`S_j = \sum_i w_i^j z_i z_i^\top`
    (one Gram product) and :math:`c = (-\hat\beta, 1)`:
    :math:`y^\top P y = c^\top S_1 c`, :math:`y^\top P^2 y = c^\top S_2 c`,
    :math:`y^\top P^3 y = c^\top S_3 c - g^\top A^{-1} g` with
    :math:`g = (S_2)_{x\cdot} c`, :math:`\operatorname{tr}P = \sum w -
    \operatorname{tr}(A^{-1}S_{2,xx})` and :math:`\operatorname{tr}P^2 = \sum w^2
    - 2\operatorname{tr}(A^{-1}S_{3,xx}) + \operatorname{tr}((A^{-1}S_{2,xx})^2)`.

    Returns
    -------
    criterion, score, observed, expected : float
        The (restricted) log-likelihood, its derivative in :math:`\tau^2`, minus
        its second derivative, and the Fisher information.
    """
    q = Z.shape[0] // 3
    k = Z.shape[1]
    p = q - 1
    total = v + tau2
    w = 1.0 / total
    # Z holds [x, y] in its first q rows; fill z*w and z*w^2 below it and take the
    # three moment matrices from one Gram product (one pass over the data).
    np.multiply(Z[:q], w, out=Z[q : 2 * q])
    np.multiply(Z[q : 2 * q], w, out=Z[2 * q :])
    G = Z @ Z.T
    sum_log_var = -np.log(w, out=total).sum()  # (total is no longer needed)
    if 0 < p <= SMALL_P:  # one or two fixed effects
        return _small_likelihood_terms(
            G.tolist(), p, k, w, sum_log_var, reml, logdet_xtx, intercept
        )
    # blocks (z w, z), (z w, z w), (z w^2, z w) of G: S_1, S_2, S_3
    S = G.reshape(3, q, 3, q)[(1, 1, 2), :, (0, 1, 1), :]
    if p:
        # Cholesky is invariant to diagonal scaling (van der Sluis) and the columns
        # are centred, so the raw LAPACK factorisation of A = X'WX is accurate.
        chol, cov = cholesky_inverse(S[0, :p, :p])
        c = np.empty(q)
        c[:p] = -(cov @ S[0, :p, p])
        c[p] = 1.0
        Sc = S @ c
        rss, ypy2, upu = Sc @ c
        g = Sc[1, :p]
        upu -= g @ cov @ g
        M2 = cov @ S[1, :p, :p]
        logdet = 2.0 * np.log(chol.diagonal()).sum()
        if intercept:
            sum_w, sum_w2 = S[0, 0, 0], S[1, 0, 0]
        else:
            sum_w, sum_w2 = w.sum(), w @ w
        trp = sum_w - M2.trace()
        trpp = sum_w2 - 2.0 * (cov * S[2, :p, :p]).sum() + (M2 * M2.T).sum()
    else:
        logdet = 0.0
        rss, ypy2, upu = S[0, 0, 0], S[1, 0, 0], S[2, 0, 0]
        sum_w, sum_w2 = w.sum(), w @ w
        trp, trpp = sum_w, sum_w2
    criterion = profiled_loglik(
        k, p, sum_log_var, rss, reml=reml, logdet_xtvx=logdet, logdet_xtx=logdet_xtx
    )
    return (float(criterion), *_score_terms(reml, ypy2, upu, trp, trpp, sum_w, sum_w2))


def _small_likelihood_terms(G, p, k, w, sum_log_var, reml, logdet_xtx, intercept):
    """:func:`_likelihood_terms` after the Gram product, on Python floats.

    For one or two fixed effects (a meta-analysis, or a meta-regression on one
    moderator), where each NumPy or LAPACK call on a p x p matrix would cost
    more than the arithmetic: ``G`` is the Gram matrix of the stack as nested
    lists, and the algebra of :func:`_likelihood_terms` is written out (with
    :func:`~skmeta._engine._gls.small_cholesky_inverse` for :math:`A^{-1}`).
    """
    q = p + 1
    S1 = G[q][:q], G[q + 1][:q]  # rows of S_1 (the last only for p = 2)
    S2 = G[q][q : 2 * q], G[q + 1][q : 2 * q]
    S3 = G[2 * q][q : 2 * q], G[2 * q + 1][q : 2 * q]
    diagonal, cov = small_cholesky_inverse(S1[:p])  # (reads the leading p x p block)
    if p == 1:
        (a00, xty0), (s00, s01), (t00, _) = S1[0], S2[0], S3[0]
        cov00 = cov[0][0]
        c0 = -(cov00 * xty0)
        # c'S c for S_1, S_2, S_3 with c = (c0, 1)
        rss = (a00 * c0 + xty0) * c0 + (G[q + 1][0] * c0 + G[q + 1][1])
        g0 = s00 * c0 + s01
        ypy2 = g0 * c0 + (G[q + 1][q] * c0 + G[q + 1][q + 1])
        upu = (t00 * c0 + S3[0][1]) * c0 + (G[2 * q + 1][q] * c0 + G[2 * q + 1][q + 1])
        upu -= g0 * cov00 * g0
        m00 = cov00 * s00
        tr_m2, tr_m2m2, tr_cov_s3 = m00, m00 * m00, cov00 * t00
    else:
        (a00, a01, xty0), (a10, a11, xty1) = S1
        (cov00, _), (cov10, cov11) = cov
        c0 = -(cov00 * xty0 + cov10 * xty1)
        c1 = -(cov10 * xty0 + cov11 * xty1)
        row = G[q + 2]
        rss = (
            (a00 * c0 + a01 * c1 + xty0) * c0
            + (a10 * c0 + a11 * c1 + xty1) * c1
            + (row[0] * c0 + row[1] * c1 + row[2])
        )
        (s00, s01, s02), (s10, s11, s12) = S2
        g0 = s00 * c0 + s01 * c1 + s02
        g1 = s10 * c0 + s11 * c1 + s12
        ypy2 = g0 * c0 + g1 * c1 + (row[q] * c0 + row[q + 1] * c1 + row[q + 2])
        (t00, t01, t02), (t10, t11, t12) = S3
        row = G[2 * q + 2]
        upu = (
            (t00 * c0 + t01 * c1 + t02) * c0
            + (t10 * c0 + t11 * c1 + t12) * c1
            + (row[q] * c0 + row[q + 1] * c1 + row[q + 2])
        )
        upu -= g0 * (cov00 * g0 + cov10 * g1) + g1 * (cov10 * g0 + cov11 * g1)
        # M_2 = A^{-1} S_{2,xx}: its trace and the trace of its square
        m00, m01 = cov00 * s00 + cov10 * s10, cov00 * s01 + cov10 * s11
        m10, m11 = cov10 * s00 + cov11 * s10, cov10 * s01 + cov11 * s11
        tr_m2 = m00 + m11
        tr_m2m2 = m00 * m00 + m01 * m10 + m10 * m01 + m11 * m11
        tr_cov_s3 = cov00 * t00 + cov10 * t01 + cov10 * t10 + cov11 * t11
    logdet = 2.0 * sum(math.log(d) for d in diagonal)
    if intercept:
        sum_w, sum_w2 = S1[0][0], S2[0][0]
    else:
        sum_w, sum_w2 = float(w.sum()), float(w @ w)
    trp = sum_w - tr_m2
    trpp = sum_w2 - 2.0 * tr_cov_s3 + tr_m2m2
    criterion = profiled_loglik(
        k, p, float(sum_log_var), rss, reml=reml, logdet_xtvx=logdet,
        logdet_xtx=logdet_xtx,
    )  # fmt: skip
    return (float(criterion), *_score_terms(reml, ypy2, upu, trp, trpp, sum_w, sum_w2))


#: Certification of the (RE)ML maximum. When the total variances
#: :math:`v_i + \tau^2` span more than this ratio at the lower bound of tau^2, the
#: profile has features on scales far apart (each study's
#: :math:`\log(v_i + \tau^2)` bends where :math:`\tau^2 \approx v_i`): a Newton
#: path in tau^2 sees only the largest of them and can stop at the bound or at a
#: local maximum, and its weighted moment sums lose precision. The maximum is then
#: found by a search of the profile instead (:func:`_search_profile`).
CERTIFY_SPREAD = 1e4

#: The profile search evaluates tau^2 on a geometric grid with this ratio between
#: neighbours, from ``SEARCH_BELOW`` times the smallest total variance (below it
#: every :math:`\log(v_i + \tau^2)` is linear in tau^2 to 1%, so the profile has no
#: further feature there) to ``SEARCH_ABOVE`` times the larger of var(y) and the
#: median sampling variance (above it the profile decreases like
#: :math:`-\tfrac{n}{2}\log\tau^2`).
SEARCH_RATIO = 2.0
SEARCH_BELOW = 1e-2
SEARCH_ABOVE = 1e2
#: Brent's search within two grid steps stops at about sqrt(eps) relative
#: (where the criterion is flat to rounding), well within this many evaluations.
_BRENT_MAXITER = 200
#: Number of local maxima of the grid that are refined and compared.
SEARCH_CANDIDATES = 3
#: Grid points evaluated at once are limited to this many stacked numbers
#: (points x studies x columns), which bounds the search's memory.
_GRID_BLOCK = 2**20

#: Newton's method uses the observed information while it exceeds this fraction
#: of the expected information (the criterion is concave there), Fisher scoring
#: otherwise.
CONCAVE_RTOL = 1e-12
#: A step is accepted when the criterion does not fall by more than this
#: relative amount (rounding), and is halved at most ``MAX_HALVINGS`` times.
ACCEPT_RTOL = 1e-13
MAX_HALVINGS = 60
#: An accepted Fisher-scoring step where the criterion is convex is doubled at
#: most this many times (a factor of 2**20 ~ 1e6 covers any flat stretch
#: between the start and the maximum).
MAX_DOUBLINGS = 20


def newton_scale(v, lower):
    r"""Typical sampling variance: the scale of tau^2's convergence tolerance.

    The harmonic mean :math:`k / \sum_i 1/v_i` of the sampling variances (the
    variance of the fixed-effect mean times k): a study with a huge variance
    does not loosen the tolerance, a tiny one tightens it. With zero sampling
    variances (``lower`` > 0, the floor of tau^2) the total variances of those
    studies are tau^2 itself, so that the criterion changes on the scale of
    tau^2 however small it is: the scale is then ``lower`` and the tolerance
    relative to tau^2.
    """
    if lower > 0.0:
        return lower
    return v.shape[0] / float(np.sum(1.0 / v))


def _narrow(v, tau2):
    """Whether the total variances at ``tau2`` span at most
    :data:`CERTIFY_SPREAD` (largest over smallest)."""
    return float(v.max()) + tau2 <= CERTIFY_SPREAD * (float(v.min()) + tau2)


def _newton(terms_at, tau2, lower, upper, *, max_iter, tol, scale):
    """Maximise the criterion from ``tau2`` over ``[lower, upper]``.

    Newton's method where the observed information is positive, Fisher scoring
    elsewhere, with step halving so that every accepted step increases the
    criterion. Where the criterion is convex, Fisher scoring's steps (the score
    over the expected information) fall short of the maximum beyond: an
    accepted one that the 90% rule did not shorten is doubled while that
    increases the criterion (:data:`MAX_DOUBLINGS` times at most), so that the
    path does not creep over a flat stretch of the profile. Convergence: a
    Newton step in a concave region below ``sqrt(tol) * (tau2 + scale)``
    (taken; quadratic convergence leaves an error of order ``tol``), any step
    below ``tol * (tau2 + scale)``, or ``tau2`` on a bound with the score
    pointing outwards.

    Returns
    -------
    tau2 : float
    criterion : float
        The criterion at the last evaluated point (before a final Newton step).
    n_iter : int
    converged : bool
        False also where the terms are not usable (a non-positive or non-finite
        information: the moment sums lost their digits).
    """
    ll, score, observed, expected = terms_at(tau2)
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007
        concave = observed > CONCAVE_RTOL * expected
        info = observed if concave else expected
        if not (info > 0.0 and math.isfinite(info) and math.isfinite(score)):
            break  # no step from these terms: not converged
        step = score / info
        if (tau2 <= lower and step <= 0) or (tau2 >= upper and step >= 0):
            converged = True
            break
        if abs(step) <= math.sqrt(tol) * (tau2 + scale) and observed > 0:
            # Newton converges quadratically where the criterion is concave: after
            # a step below sqrt(tol) the error is O(tol), so take it unevaluated.
            tau2 = min(max(tau2 + step, lower), upper)
            converged = True
            break
        # Never cut tau2 by more than 90% in one step: a jump straight to the
        # bound can pass over an interior maximum (the ML profile can be bimodal,
        # with a local maximum at 0). Near the bound, halve from the bound.
        smallest = 0.1 * tau2 if 0.1 * tau2 > tol * scale else lower
        bound = max(smallest, lower) - tau2
        accelerate = not concave and step > bound
        step = max(step, bound)
        for _ in range(MAX_HALVINGS):
            new = min(max(tau2 + step, lower), upper)
            terms = terms_at(new)
            if terms[0] >= ll - ACCEPT_RTOL * (1.0 + abs(ll)):
                break
            step *= 0.5
            accelerate = False
        for _ in range(MAX_DOUBLINGS if accelerate else 0):
            step = max(2.0 * step, bound)
            further = min(max(tau2 + step, lower), upper)
            if further == new:
                break
            more = terms_at(further)
            if not more[0] > terms[0]:
                break
            new, terms = further, more
        change = abs(new - tau2)
        tau2 = new
        ll, score, observed, expected = terms
        if change <= tol * (tau2 + scale):
            converged = True
            break
    return tau2, ll, n_iter, converged


def _profile_value(X, y, v, tau2, reml, logdet_xtx):
    """The criterion at ``tau2`` from one weighted fit.

    Accurate whatever the spread of the weights (the fit centres the design at
    its weighted means), unlike the moment sums of :func:`_likelihood_terms`.
    """
    fit = stable_weighted_fit(X, y, 1.0 / (v + tau2))
    return loglik_reml(v, tau2, fit, logdet_xtx) if reml else loglik_ml(v, tau2, fit)


def _profile_on_grid(Z, v, taus, reml, logdet_xtx):
    """The criterion at each of ``taus`` from weighted moments, vectorised.

    ``Z`` is :func:`centered_stack`; accurate where :func:`_likelihood_terms` is
    (total variances within :data:`CERTIFY_SPREAD` of each other).
    """
    q = Z.shape[0] // 3
    p, k = q - 1, Z.shape[1]
    zy = Z[:q]
    values = np.empty(taus.shape[0])
    block = max(1, _GRID_BLOCK // (k * q))
    for first in range(0, taus.shape[0], block):
        t = taus[first : first + block]
        w = 1.0 / (v + t[:, None])  # (g, k)
        S = (zy * w[:, None, :]) @ zy.T  # (g, q, q)
        if p:
            A = S[:, :p, :p]
            chol = np.linalg.cholesky(A)
            coef = np.linalg.solve(A, S[:, :p, p:])[..., 0]
            rss = S[:, p, p] - np.einsum("gi,gi->g", S[:, :p, p], coef)
            logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        else:
            rss, logdet = S[:, 0, 0], np.zeros(t.shape[0])
        sum_log_var = -np.log(w).sum(axis=1)
        values[first : first + t.shape[0]] = [
            profiled_loglik(k, p, s, r, reml=reml, logdet_xtvx=d, logdet_xtx=logdet_xtx)
            for s, r, d in zip(sum_log_var, rss, logdet, strict=True)
        ]
    return values


def _search_grid(v, y, lower):
    """Grid of tau^2 for the profile search (:data:`SEARCH_RATIO` apart).

    Starts with ``lower`` when the geometric part starts above it.
    """
    smallest = float(v.min()) + lower
    start = max(lower, SEARCH_BELOW * smallest)
    stop = SEARCH_ABOVE * max(float(np.var(y)), float(np.median(v)), smallest)
    # (the ratio of the logarithms: stop / start can exceed the float range)
    n = max(2, int(np.ceil((np.log(stop) - np.log(start)) / np.log(SEARCH_RATIO))) + 1)
    grid = np.geomspace(start, stop, n)
    return np.concatenate(([lower], grid)) if start > lower else grid


def _local_maxima(values, limit):
    """Indices of up to ``limit`` local maxima of a sequence, best first."""
    values = np.where(np.isnan(values), -np.inf, values)
    padded = np.concatenate(([-np.inf], values, [-np.inf]))
    peaks = np.flatnonzero((padded[1:-1] >= padded[:-2]) & (padded[1:-1] >= padded[2:]))
    return peaks[np.argsort(-values[peaks], kind="stable")][:limit]


def _refine(grid, i, v, value_at, terms_at, *, max_iter, tol, scale):
    """Refine the local maximum of the profile near ``grid[i]``.

    The maximum lies between the neighbours of ``grid[i]``. Where the total
    variances are within :data:`CERTIFY_SPREAD` of each other Newton's method
    (:func:`_newton`) converges from ``grid[i]``; elsewhere (tau^2 of the order
    of a tiny sampling variance) Brent's bounded search on :math:`\\log\\tau^2`
    (on tau^2 next to a zero bound) uses only the accurate criterion.

    Returns
    -------
    tau2 : float
    n_iter : int
    converged : bool
    """
    a = grid[max(i - 1, 0)]
    b = grid[i + 1] if i + 1 < grid.shape[0] else np.inf
    if _narrow(v, grid[i]) or b == np.inf:
        tau2, _, n_iter, converged = _newton(
            terms_at, grid[i], a, b, max_iter=max_iter, tol=tol, scale=scale
        )
        return tau2, n_iter, converged
    if a > 0.0:
        to_tau2, lo, hi = np.exp, np.log(a), np.log(b)
    else:
        to_tau2, lo, hi = float, a, b
    res = optimize.minimize_scalar(
        lambda x: -value_at(float(to_tau2(x))),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": tol * (hi - lo), "maxiter": _BRENT_MAXITER},
    )
    tau2 = float(to_tau2(res.x))
    if value_at(grid[i]) > value_at(tau2):  # Brent never evaluates the bounds
        tau2 = float(grid[i])
    return tau2, int(res.nfev), bool(res.success)


def _search_profile(
    X, y, v, Z, *, reml, lower, logdet_xtx, terms_at, incumbent, max_iter, tol, scale
):
    """Global maximum of the profile: grid search, refinement, comparison.

    The criterion is evaluated on :func:`_search_grid`; up to
    :data:`SEARCH_CANDIDATES` of its local maxima are refined (:func:`_refine`)
    and compared, with the accurate criterion, with ``incumbent`` (a local
    maximum found already, or None).

    Returns
    -------
    tau2 : float
    n_iter : int
        Iterations of the refinement that gave the maximum (0 if the incumbent).
    converged : bool
    """
    values = {}

    def value_at(t):
        if t not in values:
            values[t] = _profile_value(X, y, v, t, reml, logdet_xtx)
        return values[t]

    grid = _search_grid(v, y, lower)
    if _narrow(v, lower):
        on_grid = _profile_on_grid(Z, v, grid, reml, logdet_xtx)
    else:
        on_grid = np.array([value_at(t) for t in grid])
    best = (incumbent, 0, True) if incumbent is not None else None
    for i in _local_maxima(on_grid, SEARCH_CANDIDATES):
        if incumbent is not None and grid[max(i - 1, 0)] <= incumbent <= (
            grid[i + 1] if i + 1 < grid.shape[0] else np.inf
        ):
            continue  # the incumbent is this local maximum
        candidate = _refine(
            grid, i, v, value_at, terms_at, max_iter=max_iter, tol=tol, scale=scale
        )
        if best is None or value_at(candidate[0]) > value_at(best[0]):
            best = candidate
    return best


def maximize_likelihood(
    X, y, v, *, reml, start, lower, max_iter, tol, logdet_xtx, fe_fit=None
):
    r"""Maximise the (restricted) log-likelihood over :math:`\tau^2 \ge` ``lower``.

    Newton's method from ``start`` (:func:`_newton`), with a tolerance relative
    to :func:`newton_scale`. A global maximum is part of the result: the
    profile is searched (:func:`_search_profile`) when the sampling variances
    span more than :data:`CERTIFY_SPREAD` (the Newton path is then not
    trustworthy and is skipped), when the path ends on the bound, and, as
    metafor's ``ll0check``, when the criterion at ``tau2 = 0`` (from ``fe_fit``,
    the fit with weights ``1 / v``, when given) beats the path's maximum.

    Returns
    -------
    Tau2Fit
    """
    Z = centered_stack(X, y, copies=3)
    if lower == 0.0 and fe_fit is not None:  # its weights are 1 / v already
        scale = v.shape[0] / float(np.sum(fe_fit.weights))
    else:
        scale = newton_scale(v, lower)
    intercept = bool(X.shape[1]) and bool((X[:, 0] == 1.0).all())
    evaluated = {}

    def terms_at(t):
        if t not in evaluated:
            evaluated[t] = _likelihood_terms(Z, v, t, reml, logdet_xtx, intercept)
        return evaluated[t]

    if lower > 0.0 and likelihood_diverges(X, y, v, reml=reml):
        return Tau2Fit(lower, 0, True)  # the degenerate limit tau2 -> 0
    search = functools.partial(
        _search_profile, X, y, v, Z, reml=reml, lower=lower, logdet_xtx=logdet_xtx,
        terms_at=terms_at, max_iter=max_iter, tol=tol, scale=scale,
    )  # fmt: skip
    if not _narrow(v, lower):
        return Tau2Fit(*search(incumbent=None))
    tau2, ll, n_iter, converged = _newton(
        terms_at, max(float(start), lower), lower, np.inf,
        max_iter=max_iter, tol=tol, scale=scale,
    )  # fmt: skip
    if not converged:
        return Tau2Fit(tau2, n_iter, False)
    if tau2 > lower and lower == 0.0:
        if fe_fit is None:
            at_zero = terms_at(0.0)[0]
        elif reml:  # the fixed-effect fit is the model at tau2 = 0
            at_zero = loglik_reml(v, 0.0, fe_fit, logdet_xtx)
        else:
            at_zero = loglik_ml(v, 0.0, fe_fit)
        if at_zero <= ll:
            return Tau2Fit(tau2, n_iter, True)
    elif tau2 > lower:
        return Tau2Fit(tau2, n_iter, True)
    tau2, extra, converged = search(incumbent=tau2)
    return Tau2Fit(tau2, n_iter + extra, converged)


# --------------------------------------------------------------------------------------
# moment and other non-iterative estimators
# --------------------------------------------------------------------------------------


#: Roots of the tau^2 equations are found to this absolute tolerance relative to
#: the data's variance scale (with brentq's relative tolerance of 4 eps); a
#: bracket that must grow past this many scales means there is no root (the
#: equations' left-hand sides decrease like 1/tau^2).
_ROOT_XTOL = 1e-15
_ROOT_BRACKET_LIMIT = 1e12


def _decreasing_root(func, lower, target, scale):
    """Root of a decreasing function ``func(t) = target`` on ``[lower, inf)``.

    ``scale`` is the data's variance scale (:func:`variance_scale`): the first
    bracket and the absolute tolerance are relative to it.
    """
    if func(lower) <= target:
        return lower
    hi = max(scale, 2.0 * lower)
    while func(hi) > target:
        hi *= 4.0
        if hi > _ROOT_BRACKET_LIMIT * scale:
            raise FloatingPointError("no root found for the tau^2 equation")
    return optimize.brentq(
        lambda t: func(t) - target,
        lower,
        hi,
        xtol=_ROOT_XTOL * scale,
        rtol=4 * np.finfo(float).eps,
    )


def generalized_q_estimate(q_a, trace_pav, trace_pa):
    r""":math:`\max\{0, (Q_a - \operatorname{tr}(P_A V)) / \operatorname{tr}(P_A)\}`.

    The moment estimator of :math:`\tau^2` from the generalised :math:`Q_a =
    y^\top P_A y` with fixed weights :math:`a` (DerSimonian & Kacker 2007):
    DL (``a = 1/v``, :math:`\operatorname{tr}(P_A V) = k - p`), HE (``a = 1``,
    :math:`\operatorname{tr}(P_A) = k - p`) and GENQ. Array-safe (one model per
    entry).
    """
    return np.maximum(0.0, (q_a - trace_pav) / trace_pa)


def sidik_jonkman_estimate(tau2_init, q, df):
    r"""Sidik & Jonkman (2005): :math:`\tau_0^2\, y^\top P_0 y / (k - p)` with
    :math:`P_0` at the initial value :math:`\tau_0^2` (0 where that is 0);
    array-safe."""
    with np.errstate(invalid="ignore"):
        return np.where(tau2_init > 0, tau2_init * q / df, 0.0)


def tau2_hedges(X, y, v, fit=None):
    """Hedges (HE) estimator: unweighted residuals minus the average variance.

    ``fit`` is the least-squares fit ``weighted_fit(X, y, 1)`` when the caller
    has it already.
    """
    k, p = X.shape
    if fit is None:
        fit = weighted_fit(X, y, np.ones(k))
    return float(generalized_q_estimate(fit.rss, trace_pd(X, fit, v), k - p))


def tau2_genq(X, y, v, a, fit=None, trace=None):
    r"""Generalised Q estimator with fixed weights ``a`` (DerSimonian & Kacker 2007).

    :func:`generalized_q_estimate` from the fit with weights ``a``.  DL is
    ``a = 1/v``; HE is ``a = 1``.  ``fit`` is ``weighted_fit(X, y, a)`` and
    ``trace`` its :math:`\operatorname{tr}(P_A)` (``trace_pd(X, fit)``) when the
    caller has them already.
    """
    if fit is None:
        fit = stable_weighted_fit(X, y, a)
    if trace is None:
        trace = trace_pd(X, fit)
    return float(generalized_q_estimate(fit.rss, trace_pd(X, fit, v), trace))


def tau2_sidik_jonkman(X, y, v, tau2_init=None):
    """Sidik & Jonkman (2005) estimator; initial value var(y)(k-1)/k as metafor."""
    k, p = X.shape
    if tau2_init is None:
        tau2_init = float(np.var(y)) if np.ptp(y) > 0 else 0.0
    if tau2_init <= 0:
        return 0.0, 0.0
    fit = stable_weighted_fit(X, y, 1.0 / (v + tau2_init))
    return float(sidik_jonkman_estimate(tau2_init, fit.rss, k - p)), tau2_init


def tau2_paule_mandel(X, y, v, target, lower):
    """Solve :math:`y^\\top P_{\\tau^2} y =` ``target`` (PM: k - p; PMM: its median)."""
    return _decreasing_root(
        lambda t: generalized_q(X, y, v, t), lower, target, variance_scale(v, y)
    )


def variance_scale(v, y):
    """Typical variance of the data: max(var(y), mean(v)), or 1 if both vanish.

    Tolerances, floors and root brackets for tau^2 are relative to it, so that
    results are equivariant when y is rescaled by c and v by c^2.
    """
    r = y - y.mean()
    scale = max(float(r @ r) / y.shape[0], float(v.mean()))
    return scale if scale > 0 else 1.0


#: Residuals below this many units in the last place of max|y| count as an exact
#: fit (Householder least squares leaves a few ulps).
_EXACT_FIT = 1e3

#: Lower bound of tau^2, relative to :func:`variance_scale`, when some sampling
#: variances are zero: the weights 1/(v_i + tau^2) of those studies stay finite
#: (at most 1e12 times the typical weight, which double precision resolves).
FLOOR = 1e-12


def variance_floor(v, y, scale=None):
    """Smallest admissible tau^2: 0 if all v > 0, else :data:`FLOOR` of the scale."""
    if v.min() > 0:
        return 0.0
    return FLOOR * (variance_scale(v, y) if scale is None else scale)


def likelihood_diverges(X, y, v, *, reml):
    r"""Whether the criterion increases without bound as :math:`\tau^2 \to 0`.

    With :math:`Z_0` the studies with :math:`v_i = 0`, the likelihood near
    :math:`\tau^2 = 0` behaves like :math:`-\tfrac{e}{2}\log\tau^2 -
    \mathrm{RSS}_0/(2\tau^2)`, where :math:`\mathrm{RSS}_0` is the residual sum of
    squares of :math:`y_{Z_0}` on :math:`X_{Z_0}` and the excess :math:`e` is
    :math:`|Z_0|` (ML) or :math:`|Z_0| - \operatorname{rank}X_{Z_0}` (REML, whose
    :math:`\log|X^\top W X|` grows with the rank). It diverges when :math:`e > 0`
    and those studies are fitted exactly (:math:`\mathrm{RSS}_0 = 0` to rounding):
    the maximum likelihood estimate is then the degenerate limit
    :math:`\tau^2 = 0`.
    """
    zero = v == 0.0
    if not zero.any():
        return False
    XZ, yZ = X[zero], y[zero]
    rank = np.linalg.matrix_rank(XZ) if X.shape[1] else 0
    if int(zero.sum()) - (rank if reml else 0) <= 0:
        return False
    resid = yZ - XZ @ np.linalg.lstsq(XZ, yZ)[0] if rank else yZ
    # residuals of exactly fitted rows are rounding errors of order eps * |y|
    noise = _EXACT_FIT * np.finfo(float).eps * float(np.abs(y).max())
    return bool(np.all(np.abs(resid) <= noise))


# --------------------------------------------------------------------------------------
# heterogeneity statistics
# --------------------------------------------------------------------------------------


class Heterogeneity(NamedTuple):
    """Cochran's Q test of (residual) heterogeneity and I^2, H^2."""

    q: float
    q_pvalue: float
    i2: float
    h2: float
    typical_var: float


def heterogeneity(X, y, v, tau2, *, fixed_effect, fe_fit=None, fe_trace=None):
    r"""Return :math:`Q_E`, its p-value, :math:`I^2` and :math:`H^2`.

    :math:`Q_E = y^\top P_{FE} y \sim \chi^2_{k-p}` with the shares of
    :func:`heterogeneity_shares`. Undefined (``nan``) when some sampling
    variances are zero.  ``fe_fit`` is ``weighted_fit(X, y, 1 / v)`` and
    ``fe_trace`` its :math:`\operatorname{tr}(P_{FE})` when the caller has them
    already.
    """
    k, p = X.shape
    if not v.min() > 0:  # (also NaN)
        nan = float("nan")
        return Heterogeneity(nan, nan, nan, nan, nan)
    fit = stable_weighted_fit(X, y, 1.0 / v) if fe_fit is None else fe_fit
    q = fit.rss
    df = k - p
    q_pvalue = float(special.chdtrc(df, q)) if df > 0 else 1.0
    trp = trace_pd(X, fit) if fe_trace is None else fe_trace
    i2, h2, vt = heterogeneity_shares(q, df, trp, tau2, fixed_effect)
    return Heterogeneity(q, q_pvalue, float(i2), float(h2), float(vt))


def heterogeneity_shares(q, df, trp, tau2, fixed_effect):
    r""":math:`I^2` (percent), :math:`H^2` and the typical sampling variance.

    The typical sampling variance is :math:`\tilde v = (k-p) /
    \operatorname{tr}(P_{FE})`; :math:`I^2 = 100\,\tau^2 / (\tilde v +
    \tau^2)` and :math:`H^2 = \tau^2/\tilde v + 1` (Higgins & Thompson 2002,
    generalised as in metafor).  For a fixed-effect fit :math:`I^2 = 100\max(0,
    (Q_E - (k-p))/Q_E)` and :math:`H^2 = Q_E/(k-p)`.  The arguments may be
    arrays (one model per entry).

    Parameters
    ----------
    q : float or ndarray
        :math:`Q_E`.
    df : int or ndarray
        :math:`k - p`.
    trp : float or ndarray
        :math:`\operatorname{tr}(P_{FE})`.
    tau2 : float or ndarray
    fixed_effect : bool

    Returns
    -------
    i2, h2, typical_var : float or ndarray
    """
    if all(isinstance(a, float | int) for a in (q, df, trp, tau2)) and trp != 0:
        # (tr P = 0 would divide by zero: the array path gives inf there)
        return _heterogeneity_shares_scalar(q, df, trp, tau2, fixed_effect)
    q, df, trp, tau2 = (np.asarray(a, dtype=float) for a in (q, df, trp, tau2))
    with np.errstate(divide="ignore", invalid="ignore"):
        typical = np.where(df > 0, df / trp, 0.0)
        if fixed_effect:
            i2 = np.where(q > 0, np.maximum(0.0, 100.0 * (q - df) / q), 0.0)
            h2 = np.where(df > 0, q / df, np.nan)
        else:
            i2 = np.where(typical + tau2 > 0, 100.0 * tau2 / (typical + tau2), 0.0)
            h2 = np.where(typical > 0, tau2 / typical + 1.0, np.inf)
    return i2, h2, typical


def _heterogeneity_shares_scalar(q, df, trp, tau2, fixed_effect):
    """:func:`heterogeneity_shares` of one model, on Python floats (the same
    expressions and cases; NaN propagates as through ``np.maximum``)."""
    q, df, trp, tau2 = float(q), float(df), float(trp), float(tau2)
    typical = df / trp if df > 0 else 0.0
    if fixed_effect:
        share = 100.0 * (q - df) / q if q > 0 else 0.0
        i2 = 0.0 if share < 0.0 else share
        h2 = q / df if df > 0 else math.nan
    else:
        i2 = 100.0 * tau2 / (typical + tau2) if typical + tau2 > 0 else 0.0
        h2 = tau2 / typical + 1.0 if typical > 0 else math.inf
    return i2, h2, typical


def q_profile_interval(X, y, v, confidence_level):
    r"""Q-profile confidence interval for :math:`\tau^2` (Viechtbauer 2007).

    The bounds solve :math:`y^\top P_{\tau^2} y = \chi^2_{k-p;\,1-\alpha/2}` and
    :math:`\chi^2_{k-p;\,\alpha/2}`; a bound is 0 when :math:`Q(0)` is already below
    its quantile.
    """
    k, p = X.shape
    df = k - p
    alpha = 1.0 - confidence_level
    lower = variance_floor(v, y)
    q_func = lambda t: generalized_q(X, y, v, t)
    scale = variance_scale(v, y)
    lo = _decreasing_root(q_func, lower, stats.chi2.ppf(1 - alpha / 2, df), scale)
    hi = _decreasing_root(q_func, lower, stats.chi2.ppf(alpha / 2, df), scale)
    return lo, hi
