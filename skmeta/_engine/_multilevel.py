r"""Engine of the multilevel (nested, random-slope) meta-regression model.

Model (Konstantopoulos 2011; Sera et al. 2019; Stata's ``meta meregress``;
metafor's ``rma.mv``)::

    y = X beta + sum_l Z_l u_l + e,   e ~ N(0, R),
    u_{l,g} ~ N(0, Sigma_l)  independently for every group g of level l,

with levels l = 0 (outermost) .. L-1 nested in one another and, at level l, the
design row ``z_{l,i} = [1, Z[i, slopes_l]]`` (random intercept and slopes). The
sampling covariance R is diag(v) for independent sampling errors, or block
diagonal by outermost group ("cluster") for dependent effect sizes
(:mod:`skmeta._engine._dependence`). Observations of different clusters are
independent, so the marginal covariance is block diagonal::

    V_c = R_c + sum_l E_{l,c} o (Z_{l,c} Sigma_l Z_{l,c}^T),

where ``E_{l,c}[i, j] = 1`` when rows i and j share their level-l group and ``o``
is the elementwise product. Two evaluation paths, never a dense k x k matrix:

* random intercepts only: an O(k) nested Woodbury recursion
  (:func:`intercept_loglik`). With correlated sampling errors it runs in the
  eigenbasis of each cluster's R_c (computed once per fit), which is exact when
  R_c commutes with the innermost level's covariance: one level, or two levels
  whose inner groups are single observations (the correlated-and-hierarchical
  effects model of Pustejovsky & Tipton 2022);
* otherwise clusters of similar size are stacked into (n, s, s) batches and
  factorized with a batched Cholesky decomposition (:func:`profile_loglik`):
  O(sum_c m_c^3) per evaluation.

The (restricted) log-likelihood with beta profiled out is
:func:`skmeta._engine._gls.profiled_loglik` (metafor's REML constant
+1/2 log|X^T X|, which Stata prints too). Its gradient with respect to Sigma_l
is::

    d ll / d Sigma_l = -1/2 sum_c Z_{l,c}^T (E_{l,c} o M_c) Z_{l,c},
    M = V^-1 - V^-1 r r^T V^-1 [- V^-1 X (X^T V^-1 X)^-1 X^T V^-1 under REML].

The fit itself (standardization, starts, optimization and certification) is
in :mod:`skmeta._engine._ml_fit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import special

from skmeta._engine import _sandwich
from skmeta._engine._dependence import cluster_blocks
from skmeta._engine._gls import (
    LOG_2PI,
    cholesky_inverse,
    logdet_crossprod,
    profiled_loglik,
    weighted_fit,
)

__all__ = [
    "Blups",
    "FixedEffectStatistics",
    "InterceptDesign",
    "LogLik",
    "NestedDesign",
    "encode_nested_groups",
    "evaluate",
    "fixed_effect_statistics",
    "intercept_loglik",
    "inverse_variance_diagonal",
    "level_designs",
    "marginal_loglik",
    "prepare_design",
    "prepare_intercepts",
    "profile_loglik",
    "random_effects_blups",
    "robust_covariance",
]

#: Clusters are padded up to the largest size of their bin; bins grow
#: geometrically by this factor, so padding wastes < 1.6^2 of the memory.
_PAD_RATIO = 1.6


# --------------------------------------------------------------------------
# data layout
# --------------------------------------------------------------------------
def encode_nested_groups(groups):
    """Integer codes (k, L) of nested groups; a label is nested in its parent.

    Parameters
    ----------
    groups : ndarray of shape (k, L)
        Integer labels per level (outermost first), e.g. factorized user labels.

    Returns
    -------
    ndarray of int64, shape (k, L)
        ``codes[:, l]`` numbers the distinct paths (label_0, ..., label_l) in
        lexicographic order, so that school 1 of district 11 and school 1 of
        district 12 are different groups, and the groups of every level are
        contiguous within their parents once sorted.
    """
    groups = np.asarray(groups)
    k, L = groups.shape
    codes = np.empty((k, L), dtype=np.int64)
    parent = np.zeros(k, dtype=np.int64)
    for lev in range(L):
        _, lab = np.unique(groups[:, lev], return_inverse=True)
        lab = lab.reshape(-1).astype(np.int64)
        key = parent * (int(lab.max()) + 1) + lab
        _, codes[:, lev] = np.unique(key, return_inverse=True)
        parent = codes[:, lev]
    return codes


def _n_groups(codes):
    return tuple(int(codes[:, lev].max()) + 1 for lev in range(codes.shape[1]))


@dataclass(frozen=True)
class _Bucket:
    rows: np.ndarray  # (n, s) indices into the original arrays (-1 = padding)
    y: np.ndarray  # (n, s)
    v: np.ndarray  # (n, s) sampling variances (1 on padded rows)
    R: np.ndarray | None  # (n, s, s) off-diagonal sampling covariances, or None
    X: np.ndarray  # (n, s, p)
    Z: tuple  # per level: (n, s, q_l) or None for intercept-only
    E: tuple  # per level: (n, s, s) float same-group indicator; None at level 0


@dataclass(frozen=True)
class NestedDesign:
    """Data rearranged into batches of similarly sized outermost clusters."""

    buckets: tuple
    n_obs: int
    n_coef: int
    q: tuple  # random effects per level
    codes: np.ndarray  # (k, L)
    n_groups: tuple
    logdet_xtx: float


def _cluster_layout(codes):
    order = np.lexsort(codes.T[::-1])
    cl = codes[order, 0]
    starts = np.flatnonzero(np.r_[True, cl[1:] != cl[:-1]])
    sizes = np.diff(np.r_[starts, codes.shape[0]])
    return order, starts, sizes


def _size_bins(sizes):
    """Bins of cluster sizes: (members, padded size), largest first."""
    bins = []
    usizes = np.unique(sizes)
    while usizes.size:
        top = usizes[-1]
        take = usizes > top / _PAD_RATIO
        bins.append((usizes[take], int(top)))
        usizes = usizes[~take]
    return bins


def _bucket_offdiagonal(sampling, rows, real):
    """The off-diagonal sampling covariances of a bucket, (n, s, s), or None."""
    if sampling is None or sampling.is_diagonal:
        return None
    n, s = rows.shape
    slot = np.full(sampling.diag.shape[0], -1, dtype=np.int64)
    pos = np.zeros(sampling.diag.shape[0], dtype=np.int64)
    slot[rows[real]] = np.nonzero(real)[0]
    pos[rows[real]] = np.nonzero(real)[1]
    sel = slot[sampling.rows] >= 0
    if not np.any(sel):
        return None
    R = np.zeros((n, s, s))
    i, j = sampling.rows[sel], sampling.cols[sel]
    R[slot[i], pos[i], pos[j]] = sampling.values[sel]
    return R


def prepare_design(y, v, X, codes, Zlev, sampling=None):
    """Arrange the data cluster by cluster for the batched dense path.

    Clusters are padded up to the largest size of their bin: padded rows have
    v = 1, y = 0, X = 0, Z = 0 and no group, so they add 0 to every
    log-determinant and quadratic form.

    Parameters
    ----------
    y, v : ndarray (k,)
    X : ndarray (k, p)
    codes : ndarray (k, L) from :func:`encode_nested_groups`
    Zlev : list of L arrays (k, q_l) or None
        None = random intercept only; otherwise the first column is the
        intercept column of ones.
    sampling : BlockCovariance or None
        Correlated sampling errors within clusters (its diagonal is ``v``).

    Returns
    -------
    NestedDesign
    """
    k, L = codes.shape
    order, starts, sizes = _cluster_layout(codes)
    buckets = []
    for members, s in _size_bins(sizes):
        sel = np.isin(sizes, members)
        st, sz = starts[sel], sizes[sel]
        ar = np.arange(s)
        real = ar[None, :] < sz[:, None]
        rows = order[
            np.where(real, st[:, None] + np.minimum(ar[None, :], sz[:, None] - 1), 0)
        ]
        mask = real.astype(float)
        Zb, Eb = [], []
        for lev in range(L):
            Zb.append(None if Zlev[lev] is None else Zlev[lev][rows] * mask[..., None])
            if lev == 0:
                Eb.append(None if real.all() else mask[:, :, None] * mask[:, None, :])
            else:
                c = codes[rows, lev]
                same = (c[:, :, None] == c[:, None, :]) & real[:, :, None]
                Eb.append((same & real[:, None, :]).astype(float))
        buckets.append(
            _Bucket(
                np.where(real, rows, -1),
                y[rows] * mask,
                np.where(real, v[rows], 1.0),
                _bucket_offdiagonal(sampling, rows, real),
                X[rows] * mask[:, :, None],
                tuple(Zb),
                tuple(Eb),
            )
        )
    q = tuple(1 if z is None else z.shape[1] for z in Zlev)
    return NestedDesign(
        tuple(buckets),
        k,
        X.shape[1],
        q,
        codes,
        _n_groups(codes),
        logdet_crossprod(X),
    )


def _marginal_cov(b, sigmas):
    s = b.y.shape[1]
    V = np.zeros((*b.y.shape, s))
    idx = np.arange(s)
    V[:, idx, idx] = b.v
    if b.R is not None:
        V += b.R
    for lev, S in enumerate(sigmas):
        if b.Z[lev] is None:
            term = S[0, 0]
        else:
            Zl = b.Z[lev]
            term = (Zl @ S) @ Zl.transpose(0, 2, 1)
        V += term if b.E[lev] is None else b.E[lev] * term
    return V


def _batched_factor(V):
    """(log|V|, C, C^-1) per batch via Cholesky; None where V is not PD."""
    try:
        C = np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        return None
    d = np.diagonal(C, axis1=1, axis2=2)
    if np.any(d <= 0) or not np.all(np.isfinite(d)):
        return None
    return 2.0 * float(np.log(d).sum()), C, np.linalg.inv(C)


def _gls_solve(xtvx, xtvy, p):
    """GLS coefficients from X'V^-1X and X'V^-1y.

    Returns ``(beta, log|X'V^-1X|, (X'V^-1X)^-1)``, or None when X'V^-1X is not
    positive definite.
    """
    if not p:
        return np.zeros(0), 0.0, np.zeros((0, 0))
    try:
        chol, inv = cholesky_inverse(xtvx)
    except np.linalg.LinAlgError:
        return None
    return inv @ xtvy, 2.0 * float(np.log(np.diag(chol)).sum()), inv


class LogLik(NamedTuple):
    """(Restricted) log-likelihood at given variance components.

    ``loglik = -inf`` (and None elsewhere) where V is not positive definite.
    ``grads[l]`` is d ll / d Sigma_l (q_l x q_l; the derivative with respect to
    each element of the symmetric matrix, for the intercept recursion a (1, 1)
    matrix); ``cov`` is (X' V^-1 X)^-1; ``blups`` (when requested) a list of
    :class:`Blups` per level.
    """

    loglik: float
    grads: list | None = None
    beta: np.ndarray | None = None
    cov: np.ndarray | None = None
    blups: list | None = None


_INADMISSIBLE = LogLik(-np.inf)


class Blups(NamedTuple):
    """BLUPs of one level's random effects and their prediction-error SDs.

    Arrays of shape (n_groups, q), rows in the order of the group codes;
    ``pev`` (n_groups, q, q) the prediction-error covariances (dense path).
    """

    estimate: np.ndarray
    se: np.ndarray
    pev: np.ndarray | None = None


def profile_loglik(design, sigmas, reml, *, gradient=True):
    """Profiled (restricted) log-likelihood and its gradient in the Sigma_l.

    Parameters
    ----------
    design : NestedDesign
    sigmas : list of (q_l, q_l) arrays
    reml : bool
    gradient : bool, default=True

    Returns
    -------
    LogLik
    """
    p, n = design.n_coef, design.n_obs
    logdet = 0.0
    xtvx = np.zeros((p, p))
    xtvy = np.zeros(p)
    ytvy = 0.0
    pieces = []
    for b in design.buckets:
        factor = _batched_factor(_marginal_cov(b, sigmas))
        if factor is None:
            return _INADMISSIBLE
        ld, _, Ci = factor
        logdet += ld
        wy = (Ci @ b.y[:, :, None])[:, :, 0]
        wX = Ci @ b.X
        xtvx += np.einsum("nsa,nsb->ab", wX, wX)
        xtvy += np.einsum("nsa,ns->a", wX, wy)
        ytvy += float(np.sum(wy * wy))
        pieces.append((Ci, wy, wX))
    solved = _gls_solve(xtvx, xtvy, p)
    if solved is None:
        return _INADMISSIBLE
    beta, logdet_h, hinv = solved
    rss = ytvy - float(beta @ xtvy)
    ll = profiled_loglik(
        n, p, logdet, rss, reml=reml, logdet_xtvx=logdet_h, logdet_xtx=design.logdet_xtx
    )
    if not gradient:
        return LogLik(ll, None, beta, hinv)
    grads = [np.zeros((q, q)) for q in design.q]
    for b, (Ci, wy, wX) in zip(design.buckets, pieces, strict=True):
        CiT = Ci.transpose(0, 2, 1)
        Vi = CiT @ Ci
        a = (CiT @ (wy - wX @ beta)[:, :, None])[:, :, 0]  # V^-1 r
        M = Vi - a[:, :, None] * a[:, None, :]
        if reml and p:
            ViX = CiT @ wX
            M -= (ViX @ hinv) @ ViX.transpose(0, 2, 1)
        for lev in range(len(design.q)):
            Me = M if b.E[lev] is None else b.E[lev] * M
            if b.Z[lev] is None:
                grads[lev][0, 0] += -0.5 * Me.sum()
            else:
                Zl = b.Z[lev]
                q = Zl.shape[2]
                grads[lev] += -0.5 * (Zl.reshape(-1, q).T @ (Me @ Zl).reshape(-1, q))
    return LogLik(ll, grads, beta, hinv)


# --------------------------------------------------------------------------
# random intercepts only: O(k) nested Woodbury recursion
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class InterceptDesign:
    """Nested random-intercept model arranged for the O(k) recursion.

    ``A = [z, X, y]`` sorted by the innermost group, where z is the design of the
    random intercepts (ones; with correlated sampling errors, the rows of every
    cluster are rotated into the eigenbasis U_c of its sampling covariance, so
    that z = U_c^T 1). ``v`` are the leaf variances (v, or the eigenvalues of
    the sampling covariance). ``parent[l]`` maps each level-l group to its
    level-(l-1) group.
    """

    A: np.ndarray  # (k, m) sorted by the innermost group
    AT: np.ndarray  # (m, k) the same, transposed (contiguous rows)
    leaf_P: np.ndarray  # packed a a^T per observation (singleton leaves) or
    # innermost-group sums of a a^T / v (fixed)
    v: np.ndarray  # (k,)
    leaf_starts: np.ndarray  # reduceat offsets of innermost groups in A
    parent_starts: tuple  # per level l >= 1: reduceat offsets of level-l groups
    parent: tuple  # per level l >= 1: (n_groups_l,) index of the parent group
    singleton_leaf: bool
    n_obs: int
    n_coef: int
    n_groups: tuple
    logdet_xtx: float
    order: np.ndarray  # (k,) original row of every sorted row
    rotation: tuple  # per cluster size > 1: (sorted positions (m, n), U (m, n, n))
    packed: tuple  # (iu, ju): the upper triangle of an (m, m) matrix, packed


def _rotate(A, v, codes, order, sampling):
    """Rotate every cluster into the eigenbasis of its sampling covariance.

    Returns ``(A, v, rotation)`` (sorted order), or None when some eigenvalue is
    not positive.
    """
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    blocks = cluster_blocks(sampling, codes[:, 0])
    rotation = []
    A = A.copy()
    v = v.copy()
    for rows, B in zip(blocks.rows, blocks.blocks, strict=True):
        if rows.shape[1] == 1:
            continue
        pos = inverse[rows]
        lam, U = np.linalg.eigh(B)
        if np.any(lam <= 0):
            return None
        A[pos] = np.swapaxes(U, 1, 2) @ A[pos]
        v[pos] = lam
        rotation.append((pos, U))
    return A, v, tuple(rotation)


def prepare_intercepts(y, v, X, codes, sampling=None):
    """Arrange a random-intercept nested model for :func:`intercept_loglik`.

    Returns None when the recursion does not apply: some v = 0 while the
    innermost groups are not single observations, or correlated sampling errors
    that do not commute with the innermost level (more than two levels, or two
    levels with inner groups of several observations). The dense path is used
    then.
    """
    k, L = codes.shape
    n_groups = _n_groups(codes)
    singleton = n_groups[-1] == k
    correlated = sampling is not None and not sampling.is_diagonal
    if correlated and not (L == 1 or (L == 2 and singleton)):
        return None
    if not singleton and np.any(v <= 0):
        return None
    order = np.lexsort(codes.T[::-1])
    A = np.column_stack([np.ones(k), X, y])[order]
    vs = v[order]
    rotation = ()
    if correlated:
        rotated = _rotate(A, vs, codes, order, sampling)
        if rotated is None:
            return None
        A, vs, rotation = rotated
    # with one level the innermost groups are the clusters: their leaf sums run
    # over the clusters' (rotated) rows
    leaf = codes[order, -1]
    leaf_starts = np.flatnonzero(np.r_[True, leaf[1:] != leaf[:-1]])
    parent, pstarts = [], []
    for lev in range(1, L):
        # codes are numbered in lexicographic order of the label paths, so the
        # groups of level lev are contiguous within their parents
        par = np.zeros(n_groups[lev], dtype=np.int64)
        par[codes[:, lev]] = codes[:, lev - 1]
        parent.append(par)
        pstarts.append(np.flatnonzero(np.r_[True, par[1:] != par[:-1]]))
    iu, ju = np.triu_indices(A.shape[1])
    AT = np.ascontiguousarray(A.T)
    if singleton:
        leaf_P = AT[iu] * AT[ju]  # (m(m+1)/2, k) products a_i a_i^T, packed
    else:
        leaf_P = _group_sums(AT[iu] * (AT[ju] / vs), leaf_starts)
    return InterceptDesign(
        A,
        AT,
        leaf_P,
        vs,
        leaf_starts,
        tuple(pstarts),
        tuple(parent),
        singleton,
        k,
        X.shape[1],
        n_groups,
        logdet_crossprod(X),
        order,
        rotation,
        (iu, ju),
    )


def _group_sums(R, starts):
    """Sums of the columns of R (r, k) over contiguous segments -> (n_seg, r)."""
    return np.ascontiguousarray(np.add.reduceat(R, starts, axis=1).T)


def _unpack(P, m, iu, ju):
    S = np.empty((P.shape[0], m, m))
    S[:, iu, ju] = P
    S[:, ju, iu] = P
    return S


def _woodbury1(S, s2):
    """S - s2 r r^T / (1 + s2 s_0) for stacked S; returns (S_new, log(1+s2 s_0))."""
    s0 = S[:, 0, 0]
    den = 1.0 + s2 * s0
    if np.any(den <= 0):
        return None, None
    r0 = S[:, 0, :]
    update = (s2 / den)[:, None, None] * (r0[:, :, None] * r0[:, None, :])
    return S - update, np.log(den)


def _bottom_up(design, sigma2):
    """Bottom-up pass: (log|V|, X'V^-1X-type totals T, first rows per level, d)."""
    L = sigma2.size
    m = design.A.shape[1]
    iu, ju = design.packed
    d = design.v + sigma2[-1] if design.singleton_leaf else design.v
    if np.any(d <= 0):
        return None
    logdet = float(np.log(d).sum())
    rows0 = [None] * L  # first row of S_g (after the level's update) per level
    if design.singleton_leaf:
        top = L - 2
        prods = design.leaf_P * (1.0 / d)  # packed a_i a_i^T / d_i
        if L > 1:
            P = _group_sums(prods, design.parent_starts[-1])
        else:
            P = prods.sum(axis=1)[None, :]
    else:
        top = L - 1
        P = design.leaf_P
    S = None
    for lev in range(top, -1, -1):
        S = (
            _unpack(P, m, iu, ju)
            if S is None
            else np.add.reduceat(S, design.parent_starts[lev], axis=0)
        )
        S, ld = _woodbury1(S, sigma2[lev])
        if S is None:
            return None
        logdet += float(ld.sum())
        rows0[lev] = S[:, 0, :]
    T = S.sum(axis=0) if S is not None else _unpack(P, m, iu, ju)[0]
    return logdet, T, rows0, d


def intercept_loglik(design, sigma2, reml, *, gradient=True, blups=False):
    """(Restricted) log-likelihood of a nested random-intercept model in O(k).

    Bottom-up, for every group g of level l (Woodbury identity with the
    intercept design z)::

        S_g = sum_children S_child - sigma2_l s s^T / (1 + sigma2_l s_0),
        log|V_g| = sum_children log|V_child| + log(1 + sigma2_l s_0),

    with S = A^T V^-1 A, A = [z, X, y], s = first row of the children's sum, s_0
    its first element, and S_i = a_i a_i^T / v_i for observations (or
    a_i a_i^T / (v_i + sigma2_{L-1}) when the innermost groups are single
    observations). Top-down, the posterior mean operator m_g and variance P_g of
    the sum of the random intercepts of g and its ancestors::

        m_g = m_par + sigma2_l (s_g[1:] - s_g0 m_par),
        P_g = (1 - sigma2_l s_g0)^2 P_par + sigma2_l - sigma2_l^2 s_g0,

    give 1_g^T V^-1 1_g = s_g0 - s_g0^2 P_par and 1_g^T V^-1 [X, y] =
    s_g[1:] - s_g0 m_par, from which the gradient follows as in
    :func:`profile_loglik`; at single-observation leaves (unit vectors e_i, whose
    intercept design is z_i) these read e_i^T V^-1 e_i = 1/d_i - (z_i/d_i)^2
    P_par and e_i^T V^-1 [X, y] = a_i[1:]/d_i - (z_i/d_i) m_par.

    The same quantities give the BLUPs u_g = sigma2_l 1_g^T V^-1 r and their
    prediction-error SDs sqrt(sigma2_l - sigma2_l^2 1_g^T P 1_g) (metafor's
    ``ranef``), rotated back to the rows' own coordinates at rotated leaves.

    Returns
    -------
    LogLik
        ``grads`` as a list of (1, 1) arrays.
    """
    sigma2 = np.asarray(sigma2, dtype=float)
    gradient = gradient or blups
    p, n = design.n_coef, design.n_obs
    up = _bottom_up(design, sigma2)
    if up is None:
        return _INADMISSIBLE
    logdet, T, rows0, d = up
    xtvx = T[1 : p + 1, 1 : p + 1]
    xtvy = T[1 : p + 1, -1]
    solved = _gls_solve(xtvx, xtvy, p)
    if solved is None:
        return _INADMISSIBLE
    beta, logdet_h, hinv = solved
    rss = float(T[-1, -1] - beta @ xtvy)
    ll = profiled_loglik(
        n, p, logdet, rss, reml=reml, logdet_xtvx=logdet_h, logdet_xtx=design.logdet_xtx
    )
    if not gradient:
        return LogLik(ll, None, beta, hinv)
    grad, out_blups = _top_down(design, sigma2, beta, hinv, rows0, d, reml, blups)
    return LogLik(ll, [np.array([[g]]) for g in grad], beta, hinv, out_blups)


def _group_terms(design, lev, rows0, d, m_par, par, Pp, beta):
    """For every group g of level ``lev``: (alpha_g, b_g, s0_g, bvec_g, w_g) with
    alpha_g = 1_g'V^-1 1_g, b_g = 1_g'V^-1 X (bx) and 1_g'V^-1 r (br); at
    single-observation leaves w_g = z_i/d_i (see :func:`intercept_loglik`)."""
    p = design.n_coef
    L = len(rows0)
    if design.singleton_leaf and lev == L - 1:
        # the observations themselves, in the contiguous (m, k) layout
        s0 = 1.0 / d
        wz = design.AT[0] / d  # z_i / d_i (= s0 without rotation)
        bT = design.AT[1:] / d
        if lev > 0:
            bT -= m_par.T[:, par] * wz
        br = bT[-1] - np.einsum("a,ak->k", beta, bT[:p])
        return s0 - wz**2 * Pp, bT[:p].T, br, s0, None, wz
    r0 = rows0[lev]
    mp = m_par[par] if lev > 0 else 0.0
    s0 = r0[:, 0]
    bvec = r0[:, 1:] - s0[:, None] * mp  # 1_g' V^-1 [X, y]
    bx = bvec[:, :p]
    br = bvec[:, -1] - np.einsum("ka,a->k", bx, beta)
    return s0 - s0**2 * Pp, bx, br, s0, bvec, None


def _rowwise_quadratic(B, H):
    """b_i' H b_i for every row of B (n, p), without BLAS: on the O(k) arrays a
    threaded BLAS call costs more in thread wake-ups than the arithmetic."""
    return np.einsum("ka,ab,kb->k", B, H, B)


def _top_down(design, sigma2, beta, hinv, rows0, d, reml, blups):
    """Top-down pass: the gradient in the level variances and the BLUPs."""
    L = sigma2.size
    p = design.n_coef
    grad = np.zeros(L)
    out_blups = []
    m_par = P_par = par = None  # posterior mean operator / variance of the parent
    for lev in range(L):
        Pp = 0.0 if lev == 0 else P_par[design.parent[lev - 1]]
        par = None if lev == 0 else design.parent[lev - 1]
        alpha, bx, br, s0, bvec, wz = _group_terms(
            design, lev, rows0, d, m_par, par, Pp, beta
        )
        need_quad = p and (reml or blups)
        quad = _rowwise_quadratic(bx, hinv) if need_quad else 0.0
        term = alpha - br**2
        if reml and p:
            term = term - quad
        grad[lev] = -0.5 * term.sum()
        s2 = sigma2[lev]
        if blups:
            if wz is not None and design.rotation:
                u, pdiag = _unrotate_leaf(design, br, bx, hinv, d, wz, Pp, alpha)
            else:
                u, pdiag = br, alpha - quad
            # rows in the order of the group codes (single-observation leaves
            # are sorted by their codes)
            se = np.sqrt(np.maximum(s2 - s2**2 * pdiag, 0.0))
            out_blups.append(Blups((s2 * u)[:, None], se[:, None]))
        if lev < L - 1:
            mp = 0.0 if lev == 0 else m_par[par]
            m_par = mp + s2 * bvec
            P_par = (1.0 - s2 * s0) ** 2 * Pp + s2 - s2**2 * s0
    return grad, (out_blups or None)


def _unrotate_leaf(design, br, bx, hinv, d, wz, Pp, alpha):
    """e_i'V^-1 r and the diagonal of P in the rows' own coordinates.

    In the eigenbasis of a cluster, V^-1 = diag(1/d) - P_c w w^T - ... with
    w = z/d; P = V^-1 - V^-1 X H^-1 X^T V^-1. Rotating back with U_c:
    (U x)_i and diag(U P_rot U^T)_i.
    """
    u = br.copy()
    pdiag = alpha - (_rowwise_quadratic(bx, hinv) if bx.shape[1] else 0.0)
    Pp = np.broadcast_to(Pp, d.shape)
    for pos, U in design.rotation:
        u[pos] = np.einsum("mij,mj->mi", U, br[pos])
        inv_d = 1.0 / d[pos]
        Uw = np.einsum("mij,mj->mi", U, wz[pos])
        diag = np.einsum("mij,mj->mi", U**2, inv_d) - Pp[pos] * Uw**2
        if bx.shape[1]:
            UB = U @ bx[pos]  # (m, n, p)
            diag -= np.einsum("mip,pq,miq->mi", UB, hinv, UB)
        pdiag[pos] = diag
    return u, pdiag


def evaluate(design, sigmas, reml, *, gradient=True, blups=False):
    """:func:`intercept_loglik` or :func:`profile_loglik`, whichever applies."""
    if isinstance(design, InterceptDesign):
        s2 = np.array([S[0, 0] for S in sigmas])
        return intercept_loglik(design, s2, reml, gradient=gradient, blups=blups)
    res = profile_loglik(design, sigmas, reml, gradient=gradient)
    if blups and np.isfinite(res.loglik):
        res = res._replace(
            blups=random_effects_blups(design, sigmas, res.beta, res.cov)
        )
    return res


# --------------------------------------------------------------------------
# postestimation
# --------------------------------------------------------------------------
def random_effects_blups(design, sigmas, beta, cov):
    """BLUPs of the random effects of every level, with their standard errors.

    u_hat_g = Sigma_l Z_g^T V^-1 (y - X beta); the standard error is that of the
    prediction error, sqrt(diag(Sigma_l - Sigma_l Z_g^T P Z_g Sigma_l)) with
    P = V^-1 - V^-1 X (X^T V^-1 X)^-1 X^T V^-1 (metafor's ``ranef`` convention).

    Returns
    -------
    list of Blups
        Per level, rows in the order of the group codes.
    """
    L = len(design.q)
    acc_u = [np.zeros((design.n_groups[lev], design.q[lev])) for lev in range(L)]
    acc_p = [
        np.zeros((design.n_groups[lev], design.q[lev], design.q[lev]))
        for lev in range(L)
    ]
    for b in design.buckets:
        _, _, Ci = _batched_factor(_marginal_cov(b, sigmas))
        Vi = Ci.transpose(0, 2, 1) @ Ci
        ViX = Vi @ b.X
        a = np.einsum("nij,nj->ni", Vi, b.y - b.X @ beta)
        P = Vi - np.einsum("nip,pq,njq->nij", ViX, cov, ViX, optimize=True)
        real = b.rows >= 0
        for lev in range(L):
            codes = np.where(real, design.codes[np.maximum(b.rows, 0), lev], 0)
            Z = np.ones((*b.y.shape, 1)) if b.Z[lev] is None else b.Z[lev]
            Z = Z * real[:, :, None]
            np.add.at(
                acc_u[lev], codes.ravel(), (Z * a[:, :, None]).reshape(-1, Z.shape[2])
            )
            # Z_g^T P Z_g: rows i, j of group g
            Pe = P if b.E[lev] is None else b.E[lev] * P
            W = np.einsum("nij,njb->nib", Pe, Z)
            outer = Z[:, :, :, None] * W[:, :, None, :]
            np.add.at(
                acc_p[lev], codes.ravel(), outer.reshape(-1, Z.shape[2], Z.shape[2])
            )
    out = []
    for lev in range(L):
        S = sigmas[lev]
        pev = S[None] - np.einsum("ab,gbc,cd->gad", S, acc_p[lev], S)
        se = np.sqrt(np.maximum(np.diagonal(pev, axis1=1, axis2=2), 0.0))
        out.append(Blups(acc_u[lev] @ S, se, pev))
    return out


def marginal_loglik(y, v, X, codes, Zlev, sigmas, beta, sampling=None):
    """Log-density of y under N(X beta, V) with the nested covariance V.

    Cluster by cluster (batched Cholesky); used by ``score`` (groups not seen
    in training are new groups: their random effects are integrated out).
    """
    design = prepare_design(y, v, X, codes, Zlev, sampling)
    total = 0.0
    for b in design.buckets:
        factor = _batched_factor(_marginal_cov(b, sigmas))
        if factor is None:
            return -np.inf
        ld, _, Ci = factor
        z = (Ci @ (b.y - b.X @ beta)[:, :, None])[:, :, 0]
        total += -0.5 * (ld + float(np.sum(z * z)))
    return float(total - 0.5 * y.shape[0] * LOG_2PI)


def inverse_variance_diagonal(y, v, X, codes, Zlev, sigmas, sampling=None):
    """Diagonal of V^-1 (metafor's ``weights(type="diagonal")`` of rma.mv),
    in the original row order; cluster by cluster."""
    design = prepare_design(y, v, X, codes, Zlev, sampling)
    out = np.empty(y.shape[0])
    for b in design.buckets:
        factor = _batched_factor(_marginal_cov(b, sigmas))
        if factor is None:
            raise ValueError("The marginal covariance is singular: no weights.")
        Ci = factor[2]
        diag = np.einsum("nji,nji->ni", Ci, Ci)  # (C^-T C^-1)_ii
        real = b.rows >= 0
        out[b.rows[real]] = diag[real]
    return out


class FixedEffectStatistics(NamedTuple):
    """Heterogeneity statistics of the fixed-effect (sampling-error-only) fit.

    ``q`` is Cochran's residual heterogeneity statistic r' V^-1 r (metafor's
    ``QE``; Stata's multilevel Q_M) with ``df = k - p`` and p-value;
    ``typical_var`` is (k - p) / tr(P) with P = W - W X (X'WX)^-1 X'W, W = V^-1
    (Higgins and Thompson 2002; the multilevel I^2 of Nakagawa and Santos 2012).
    NaN when some sampling variance is 0.
    """

    q: float
    df: int
    p_value: float
    typical_var: float


def _whitened(y, X, sampling, clusters):
    """C^-1 [X, y] per cluster and tr(V^-1) pieces for a block covariance."""
    blocks = cluster_blocks(sampling, clusters)
    k, p = X.shape
    wX = np.empty((k, p))
    wy = np.empty(k)
    Wsq = np.zeros((p, p))
    tr_w = 0.0
    for rows, B in zip(blocks.rows, blocks.blocks, strict=True):
        C = np.linalg.cholesky(B)
        Ci = np.linalg.inv(C)
        flat = rows.reshape(-1)
        wX[flat] = (Ci @ X[rows]).reshape(-1, p)
        wy[flat] = (Ci @ y[rows][:, :, None]).reshape(-1)
        Wb = Ci.transpose(0, 2, 1) @ Ci  # V^-1 blocks
        WX = Wb @ X[rows]
        Wsq += np.einsum("nsa,nsb->ab", WX, WX)
        tr_w += float(np.einsum("nii->", Wb))
    return wX, wy, Wsq, tr_w


def fixed_effect_statistics(y, v, X, sampling=None, clusters=None):
    """Cochran's Q, its p-value and the typical sampling variance (see
    :class:`FixedEffectStatistics`)."""
    k, p = X.shape
    df = k - p
    if np.any(v <= 0):
        return FixedEffectStatistics(np.nan, df, np.nan, np.nan)
    if sampling is None or sampling.is_diagonal:
        w = 1.0 / v
        fit = weighted_fit(X, y, w)
        WX = X * w[:, None]
        tr = float(w.sum()) - (float(np.trace(fit.cov @ (WX.T @ WX))) if p else 0.0)
        q = fit.rss
    else:
        wX, wy, Wsq, tr_w = _whitened(y, X, sampling, clusters)
        fit = weighted_fit(wX, wy, np.ones(k))
        tr = tr_w - (float(np.trace(fit.cov @ Wsq)) if p else 0.0)
        q = fit.rss
    p_value = float(special.chdtrc(df, q)) if df > 0 else np.nan
    return FixedEffectStatistics(float(q), df, p_value, df / tr if tr > 0 else np.nan)


def robust_covariance(y, v, X, codes, Zlev, sigmas, beta, kind, sampling=None):
    """Cluster-robust covariance of beta with the fitted model as working model.

    Clusters are the outermost groups. Each cluster is whitened by the inverse
    Cholesky factor of its fitted marginal covariance Theta_c (C_c C_c^T =
    Theta_c); for CR2 the adjustment uses the metric C_c^T C_c, which makes it
    clubSandwich's ``vcovCR(type = "CR2")`` with the fitted Theta as target
    (A_c = F_c^T (F_c B_c F_c^T)^(-1/2) F_c, F_c = C_c^T the upper Cholesky
    factor; Pustejovsky & Tipton 2018), as metafor's
    ``robust(..., clubSandwich = TRUE)`` uses for ``rma.mv``.

    Returns
    -------
    skmeta._engine._sandwich.ClusterRobustResult
    """
    design = prepare_design(y, v, X, codes, Zlev, sampling)
    p = X.shape[1]
    Xt, et, cl, blocks = [], [], [], []
    for b in design.buckets:
        _, C, Ci = _batched_factor(_marginal_cov(b, sigmas))
        real = b.rows >= 0
        wX = Ci @ b.X
        we = (Ci @ (b.y - b.X @ beta)[:, :, None])[:, :, 0]
        sizes = real.sum(axis=1)
        Xt.append(wX[real].reshape(-1, p))
        et.append(we[real])
        cl.append(codes[b.rows[real], 0])
        if kind == "cr2":
            K = C.transpose(0, 2, 1) @ C
            codes_b = codes[b.rows[:, 0], 0]
            for j, n in enumerate(sizes):
                blocks.append((int(codes_b[j]), K[j, :n, :n]))
    n_clusters = design.n_groups[0]
    metric = None
    if kind == "cr2":
        metric = [None] * n_clusters
        for code, K in blocks:
            metric[code] = K
    return _sandwich.cluster_robust_covariance(
        np.concatenate(Xt),
        np.concatenate(et),
        np.concatenate(cl),
        n_clusters,
        kind,
        metric=metric,
    )


def level_designs(Z, slopes, k):
    """Per level, the random-effects design [1, Z[:, slopes_l]] or None."""
    out = []
    for cols in slopes:
        out.append(np.column_stack([np.ones(k), Z[:, cols]]) if cols else None)
    return out
