"""Cluster-robust (sandwich) covariance for weighted least-squares meta-regression.

Pure numpy/scipy functions, no state. The coefficients of a meta-regression are the
weighted least-squares estimate

.. math::

    \\hat\\beta = (X^\\top W X)^{-1} X^\\top W y,

with working weights :math:`W` (for the random-effects model the diagonal
:math:`w_i = 1/(v_i + \\hat\\tau^2)`; for a multilevel model block-diagonal by
cluster). Every function here works in the *whitened* metric: with a square root
:math:`L_j` of each cluster block (:math:`L_j^\\top L_j = W_j`) the caller passes
:math:`\\tilde X_j = L_j X_j` and :math:`\\tilde e_j = L_j (y_j - X_j\\hat\\beta)`,
so that the working model is an ordinary least-squares fit with unit error
variance. For diagonal weights :func:`whiten_diagonal` does this.

A :math:`k \\times k` matrix is never formed. CR0/CR1 accumulate per-cluster
scores with ``np.bincount``: :math:`O(k p^2)`. CR2 needs, per cluster, the
symmetric inverse square root :math:`G_j^{-1/2}` applied to the p columns of
:math:`Q_j` (and nothing else: the covariance, the Satterthwaite degrees of
freedom and the HTZ test use only :math:`F_j = K_j^{-1}G_j^{-1/2}Q_j`). For a
diagonal working covariance (the random-effects model) :math:`G_j` is diagonal
minus rank p, and clusters of 64 rows or more get :math:`G_j^{-1/2}Q_j` from a
quadrature of :math:`\\frac{2}{\\pi}\\int_0^\\infty (G_j + t^2 I)^{-1}dt` with Woodbury
solves: :math:`O(n_j p^2)` time and memory per node, a few hundred nodes, exact to
~1e-13. Smaller clusters, singular blocks (a moderator only one cluster has;
clubSandwich's pseudo-inverse) and full working covariance blocks use one
symmetric eigendecomposition per cluster, :math:`O(n_j^3)` time, stacked by
cluster size in batches of at most 32 MB, so memory is :math:`O(\\max_j n_j^2)`.

References
----------
.. [1] Bell, R. M. & McCaffrey, D. F. (2002). Bias reduction in standard errors for
   linear regression with multi-stage samples. *Survey Methodology* 28(2), 169-181.
.. [2] Tipton, E. & Pustejovsky, J. E. (2015). Small-sample adjustments for tests of
   moderators and model fit using robust variance estimation in meta-regression.
   *Journal of Educational and Behavioral Statistics* 40(6), 604-634.
.. [3] Pustejovsky, J. E. & Tipton, E. (2018). Small-sample methods for
   cluster-robust variance estimation and hypothesis testing in fixed effects
   models. *Journal of Business & Economic Statistics* 36(4), 672-683.
.. [4] Viechtbauer, W. metafor, documentation of ``robust()`` (version 3.8-1): CR1
   with the factor J/(J - p) and t/F reference distributions with J - p degrees of
   freedom; ``clubSandwich = TRUE`` gives CR2, Satterthwaite and HTZ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from skmeta._engine._gls import cholesky_inverse, dependent_columns

__all__ = [
    "ClusterRobustResult",
    "ClusterWaldResult",
    "cluster_codes",
    "cluster_robust_covariance",
    "cluster_robust_diagonal",
    "cluster_wald_test",
    "contrast_dof",
    "htz_wald_test",
    "whiten_diagonal",
]

#: Kinds of cluster-robust covariance; metafor's ``robust(adjust=FALSE)`` is CR0,
#: ``robust(adjust=TRUE)`` is CR1, ``robust(clubSandwich=TRUE)`` is CR2.
KINDS = ("cr0", "cr1", "cr2")

#: Eigenvalues of a CR2 block G_j at or below this fraction of the block's scale
#: (the largest eigenvalue G_j would have with H_jj = 0, i.e. of K_j^{-2}) count
#: as zero (pseudo-inverse square root), as clubSandwich does (absolute 1e-12) for
#: singular blocks, e.g. a cluster-specific dummy in X. Numerically zero
#: eigenvalues are of the order of 1e-16 relative, real ones far larger.
_EIG_RTOL = 1e-12


class ClusterRobustResult(NamedTuple):
    """Cluster-robust covariance of the coefficients and what tests need later.

    Attributes
    ----------
    cov : ndarray of shape (p, p)
        Cluster-robust covariance matrix of the coefficients.
    dof : ndarray of shape (p,)
        Degrees of freedom of each coefficient's t reference distribution:
        J - p for CR0 and CR1 (metafor), Satterthwaite for CR2 (clubSandwich).
    kind : {"cr0", "cr1", "cr2"}
        The estimator.
    n_clusters : int
        Number of clusters J.
    bread : ndarray of shape (p, p)
        :math:`M = (\\tilde X^\\top \\tilde X)^{-1}`, the model-based covariance
        under the working model.
    r_factor : ndarray of shape (p, p) or None
        CR2 only: R of the thin QR decomposition :math:`\\tilde X = QR`. The CR2
        pieces are kept in the orthonormal coordinates :math:`\\gamma = R\\beta`
        (where :math:`M = I`), which keeps ill-conditioned designs (e.g. a raw
        ``year`` column next to the intercept) accurate.
    gram : ndarray of shape (J, p, p) or None
        CR2 only: :math:`F_j^\\top F_j` with :math:`F_j = \\tilde A_j^\\top Q_j`.
    cross : ndarray of shape (J, p, p) or None
        CR2 only: :math:`Q_j^\\top F_j`.
    """

    cov: NDArray[np.float64]
    dof: NDArray[np.float64]
    kind: str
    n_clusters: int
    bread: NDArray[np.float64]
    r_factor: NDArray[np.float64] | None = None
    gram: NDArray[np.float64] | None = None
    cross: NDArray[np.float64] | None = None


class ClusterWaldResult(NamedTuple):
    """Cluster-robust Wald test of q linear constraints :math:`C\\beta = 0`.

    Attributes
    ----------
    statistic : float
        F statistic (metafor's ``QM`` after ``robust()``).
    df_num : float
        Numerator degrees of freedom q.
    df_denom : float
        Denominator degrees of freedom (J - p for CR0/CR1; HTZ for CR2).
    p_value : float
        Upper-tail probability of ``statistic`` under F(df_num, df_denom); NaN when
        the HTZ denominator degrees of freedom are not positive.
    test : {"F", "HTZ"}
        The approximation used.
    wald : float
        The unscaled Wald statistic :math:`Q = (C\\hat\\beta)^\\top (C V
        C^\\top)^{-1} C\\hat\\beta`.
    """

    statistic: float
    df_num: float
    df_denom: float
    p_value: float
    test: str
    wald: float


def cluster_codes(groups: ArrayLike) -> tuple[NDArray[np.intp], int]:
    """Encode cluster labels as integer codes 0..J-1.

    Parameters
    ----------
    groups : array-like of shape (k,)
        Cluster labels of any hashable type (strings, integers, ...). Labels are
        sorted when they are orderable (``np.unique``), otherwise coded in order of
        first appearance; the covariance does not depend on the coding.

    Returns
    -------
    codes : ndarray of shape (k,)
        Integer code of each row's cluster.
    n_clusters : int
        Number of distinct labels J.

    Raises
    ------
    ValueError
        If ``groups`` is not one-dimensional, is empty, or contains missing labels
        (None or NaN).
    """
    arr = np.asarray(groups)
    if arr.ndim != 1:
        raise ValueError(
            f"groups must be one-dimensional, got an array of shape {arr.shape}."
        )
    if arr.size == 0:
        raise ValueError("groups is empty.")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError("groups contains missing labels (NaN).")
    if arr.dtype.kind == "O":
        for g in arr:
            if g is None or (isinstance(g, float) and np.isnan(g)):
                raise ValueError("groups contains missing labels (None or NaN).")
    try:
        uniques, codes = np.unique(arr, return_inverse=True)
        return codes.reshape(-1).astype(np.intp), int(uniques.size)
    except TypeError:
        # mixed, unorderable labels: code them in order of first appearance
        table: dict = {}
        codes = np.fromiter(
            (table.setdefault(g, len(table)) for g in arr.tolist()),
            dtype=np.intp,
            count=arr.size,
        )
        return codes, len(table)


def whiten_diagonal(
    X: ArrayLike, resid: ArrayLike, weights: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Whiten a design and its residuals by diagonal working weights.

    Parameters
    ----------
    X : array-like of shape (k, p)
        Design matrix.
    resid : array-like of shape (k,)
        Residuals :math:`e = y - X\\hat\\beta`.
    weights : array-like of shape (k,)
        Positive working weights, e.g. :math:`w_i = 1/(v_i + \\hat\\tau^2)`.

    Returns
    -------
    X_tilde : ndarray of shape (k, p)
        :math:`W^{1/2} X`.
    e_tilde : ndarray of shape (k,)
        :math:`W^{1/2} e`.
    metric : ndarray of shape (k,)
        :math:`1/w_i`, the diagonal of :math:`K^{-1}` that makes CR2 equal to
        clubSandwich's with the working model as target (see
        :func:`cluster_robust_covariance`).
    """
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("weights must be a 1-D array of finite positive numbers.")
    sw = np.sqrt(w)
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    return X * sw[:, None], np.asarray(resid, dtype=float) * sw, 1.0 / w


def _check_inputs(X_tilde, e_tilde, codes, n_clusters):
    X = np.asarray(X_tilde, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"X_tilde must be 2-D, got shape {X.shape}.")
    k, p = X.shape
    e = np.asarray(e_tilde, dtype=float).reshape(-1)
    if e.shape[0] != k:
        raise ValueError(f"e_tilde has length {e.shape[0]}, X_tilde has {k} rows.")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(e))):
        raise ValueError("X_tilde and e_tilde must be finite.")
    codes = np.asarray(codes)
    if codes.shape != (k,) or codes.dtype.kind not in "iu":
        raise ValueError(
            f"codes must be an integer array of shape ({k},); use cluster_codes()."
        )
    J = int(n_clusters)
    if k and (codes.min() < 0 or codes.max() >= J):
        raise ValueError(f"codes must lie in 0..n_clusters-1 = 0..{J - 1}.")
    sizes = np.bincount(codes, minlength=J)
    if np.any(sizes == 0):
        raise ValueError("n_clusters exceeds the number of clusters present in codes.")
    if J <= p:
        raise ValueError(
            f"Cluster-robust inference needs more clusters than coefficients: "
            f"groups has n_clusters={J} <= p={p} coefficients (J - p must be > 0)."
        )
    return X, e, codes.astype(np.intp, copy=False), J, sizes


def _bread(X):
    """:math:`(X^\\top X)^{-1}` of a full-rank whitened design (else ValueError)."""
    if dependent_columns(X):
        raise ValueError("X_tilde is rank-deficient (collinear columns).")
    return cholesky_inverse(X.T @ X)[1]


def _inv_sqrt_psd(S, scale=None):
    """Symmetric (pseudo-)inverse square root of a stack of PSD matrices.

    Eigenvalues <= ``_EIG_RTOL * scale`` are treated as zero; ``scale`` defaults
    to each matrix's largest absolute eigenvalue.
    """
    vals, vecs = np.linalg.eigh(S)
    if scale is None:
        scale = np.max(np.abs(vals), axis=-1)
    keep = vals > _EIG_RTOL * np.asarray(scale)[..., None]
    f = np.where(keep, 1.0 / np.sqrt(np.where(keep, vals, 1.0)), 0.0)
    return (vecs * f[..., None, :]) @ np.swapaxes(vecs, -1, -2)


def _inv_sqrt_times(S, B, scale):
    """:math:`S^{-1/2} B` for a stack of PSD ``S`` (pseudo-inverse as
    :func:`_inv_sqrt_psd`), without forming :math:`S^{-1/2}`."""
    vals, vecs = np.linalg.eigh(S)
    keep = vals > _EIG_RTOL * np.asarray(scale)[..., None]
    f = np.where(keep, 1.0 / np.sqrt(np.where(keep, vals, 1.0)), 0.0)
    return vecs @ (f[..., :, None] * (np.swapaxes(vecs, -1, -2) @ B))


#: Clusters whose CR2 blocks are eigendecomposed together hold at most this many
#: numbers in their stacked n_j x n_j matrices (32 MB): memory O(max n_j^2).
_STACK_ELEMENTS = 2**22

#: Clusters of at least this many rows with a diagonal working covariance use
#: the quadrature of :func:`_quadrature_inv_sqrt` (O(n_j p^2) per node) instead
#: of an eigendecomposition (O(n_j^3)); below it the latter is cheaper.
_QUADRATURE_MIN_SIZE = 64

#: The quadrature needs :math:`1 - \|Q_j\|_2^2` (the smallest eigenvalue of
#: :math:`I - H_{jj}`) above this: its p x p Woodbury systems then have a
#: condition number below 1e4 and the result keeps ~1e-12 relative accuracy.
#: Smaller gaps, e.g. a dummy column that only this cluster has (a singular
#: block, where clubSandwich's pseudo-inverse applies), use the
#: eigendecomposition.
_QUADRATURE_MIN_GAP = 1e-4

#: Trapezoid rule for :math:`\lambda^{-1/2} = \frac{1}{\pi}\int
#: \lambda^{-1/2}\operatorname{sech}(s - \tfrac12\log\lambda)\,ds`: the step
#: and the tail beyond the spectrum's ends, in units of :math:`s = \log t`.
#: sech is analytic in the strip :math:`|\Im s| < \pi/2`, so the step error is
#: about :math:`\exp(-2\pi d/h)` with :math:`d \approx 1.47`: 1e-20 at
#: :math:`h = 0.2`; a tail of 37 leaves :math:`2e^{-37}/\pi < 1e-16`.
_QUAD_STEP = 0.2
_QUAD_TAIL = 37.0
#: Quadrature nodes evaluated together hold at most this many numbers (8 MB).
_QUAD_BLOCK = 2**20


def _quadrature_inv_sqrt(Q, d):
    r""":math:`G^{-1/2} Q` for :math:`G = D(I - QQ^\top)D`, by quadrature.

    With :math:`D = \operatorname{diag}(d)` and :math:`V = DQ`, :math:`G = D^2 -
    VV^\top` is diagonal minus rank p, and

    .. math::

        G^{-1/2} = \frac{2}{\pi}\int_0^\infty (G + t^2 I)^{-1}\,dt
        = \frac{2}{\pi}\int_{-\infty}^{\infty} e^s (G + e^{2s} I)^{-1}\,ds,

    evaluated by the trapezoid rule in :math:`s` (geometric convergence for
    this analytic integrand; Trefethen & Weideman 2014, SIAM Review 56:385; see
    also Hale, Higham & Trefethen 2008, SIAM J. Numer. Anal. 46:2505). Each
    node is a Woodbury solve, :math:`(\Lambda - VV^\top)^{-1}Q = \Lambda^{-1}Q
    + \Lambda^{-1}V(I - V^\top\Lambda^{-1}V)^{-1}V^\top\Lambda^{-1}Q` with
    :math:`\Lambda = D^2 + t^2 I`: O(n p^2) per node, no n x n matrix. The nodes
    span the spectrum bounds :math:`[d_{min}^2 (1 - \|Q\|^2), d_{max}^2]` plus
    the tails of :data:`_QUAD_TAIL`.

    Returns
    -------
    ndarray of shape (n, p), or None
        None when :math:`1 - \|Q\|_2^2 \le` :data:`_QUADRATURE_MIN_GAP` (use the
        eigendecomposition).
    """
    n, p = Q.shape
    gap = 1.0 - float(np.linalg.eigvalsh(Q.T @ Q)[-1])
    if gap <= _QUADRATURE_MIN_GAP:
        return None
    d2 = d * d
    lo, hi = float(d2.min()) * gap, float(d2.max())
    s = np.arange(
        0.5 * np.log(lo) - _QUAD_TAIL, 0.5 * np.log(hi) + _QUAD_TAIL, _QUAD_STEP
    )
    coef = (2.0 * _QUAD_STEP / np.pi) * np.exp(s)
    t2 = np.exp(2.0 * s)
    eye = np.eye(p)
    diagonal = np.zeros(n)  # sum_k c_k / (d^2 + t_k^2)
    low_rank = np.zeros((n, p * p))  # sum_k c_k R_k / (d^2 + t_k^2)
    block = max(1, _QUAD_BLOCK // (n * p))
    for first in range(0, s.shape[0], block):
        c = coef[first : first + block]
        L = 1.0 / (d2 + t2[first : first + block, None])  # (m, n)
        LdQ = (L * d)[:, :, None] * Q  # Lambda^{-1} V, (m, n, p)
        S1 = np.swapaxes(LdQ, 1, 2) @ Q  # V' Lambda^{-1} Q
        S2 = np.swapaxes(LdQ, 1, 2) @ (d[:, None] * Q)  # V' Lambda^{-1} V
        R = np.linalg.solve(eye - S2, S1)  # (m, p, p)
        cL = c[:, None] * L
        diagonal += cL.sum(axis=0)
        low_rank += cL.T @ R.reshape(-1, p * p)
    low_rank = low_rank.reshape(n, p, p)
    return diagonal[:, None] * Q + d[:, None] * np.einsum("na,nab->nb", Q, low_rank)


def _adjusted_design(Qg, d=None, kinv=None):
    """:math:`F_j = A_j^\top Q_j` for a stack of clusters of one size.

    ``d`` (m, n): the diagonal of :math:`K_j^{-1}` (None: the identity);
    ``kinv`` (m, n, n): full blocks :math:`K_j^{-1}`. With
    :math:`G_j = K_j^{-1}(I - Q_jQ_j^\top)K_j^{-1}`, :math:`A_j = G_j^{-1/2}
    K_j^{-1}` and :math:`F_j = K_j^{-1} G_j^{-1/2} Q_j`.
    """
    m, n, _ = Qg.shape
    IH = np.eye(n) - Qg @ np.swapaxes(Qg, 1, 2)  # I - H_jj, (m, n, n)
    if kinv is not None:
        scale = np.sum(kinv**2, axis=(1, 2))  # >= largest eigenvalue of K^-2
        return kinv @ _inv_sqrt_times(kinv @ IH @ kinv, Qg, scale)
    if d is None:
        return _inv_sqrt_times(IH, Qg, np.ones(m))
    G = IH * d[:, :, None] * d[:, None, :]
    return d[:, :, None] * _inv_sqrt_times(G, Qg, np.max(d, axis=1) ** 2)


def _check_metric(metric, k, J):
    """The metric as None, a (k,) diagonal, or a list of J blocks."""
    if metric is None:
        return None, None
    if not (isinstance(metric, np.ndarray) and metric.ndim == 1):
        if len(metric) != J:
            raise ValueError(f"metric must hold one block per cluster ({J}).")
        return None, metric
    metric = np.asarray(metric, dtype=float)
    if metric.shape != (k,) or not np.all(np.isfinite(metric)) or np.any(metric <= 0):
        raise ValueError("metric must be a 1-D array of k finite positive values.")
    return metric, None


def _cr2_pieces(Q, e, codes, J, sizes, metric):
    """Per-cluster F_j = A_j^T Q_j and its products.

    ``Q`` has orthonormal columns (thin QR of the whitened design), so M = I.
    Clusters of one row have a closed form; clusters with a diagonal metric and
    at least :data:`_QUADRATURE_MIN_SIZE` rows use :func:`_quadrature_inv_sqrt`
    (O(n_j p^2) time and memory); the others are eigendecomposed in stacks of
    equal size holding at most :data:`_STACK_ELEMENTS` numbers.
    """
    k, p = Q.shape
    diagonal, blocks = _check_metric(metric, k, J)
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    scores = np.empty((J, p))  # F_j^T e_j
    gram = np.empty((J, p, p))
    cross = np.empty((J, p, p))

    def store(cl, Qg, eg, F):
        scores[cl] = np.einsum("mnp,mn->mp", F, eg)
        gram[cl] = np.swapaxes(F, 1, 2) @ F
        cross[cl] = np.swapaxes(Qg, 1, 2) @ F

    for n in np.unique(sizes):
        clusters = np.flatnonzero(sizes == n)
        if n == 1:
            # one study per cluster: A_j = (1 - h_j)^{-1/2} whatever the metric
            Qg = Q[order[starts[clusters]]][:, None, :]
            ih = 1.0 - np.sum(Qg[:, 0, :] ** 2, axis=1)
            keep = ih > _EIG_RTOL
            A = np.where(keep, 1.0 / np.sqrt(np.where(keep, ih, 1.0)), 0.0)
            store(
                clusters, Qg, e[order[starts[clusters]]][:, None], A[:, None, None] * Qg
            )
            continue
        quadrature = blocks is None and n >= _QUADRATURE_MIN_SIZE
        chunk = 1 if quadrature else max(1, _STACK_ELEMENTS // (n * n))
        for first in range(0, clusters.size, chunk):
            cl = clusters[first : first + chunk]
            idx = order[starts[cl][:, None] + np.arange(n)]  # (m, n)
            Qg = Q[idx]
            d = None if diagonal is None else diagonal[idx]
            F = None
            if quadrature:
                dj = np.ones(n) if d is None else d[0]
                Y = _quadrature_inv_sqrt(Qg[0], dj)
                F = None if Y is None else (dj[:, None] * Y)[None]
            if F is None:
                kinv = None
                if blocks is not None:
                    kinv = np.stack([np.asarray(blocks[j], dtype=float) for j in cl])
                    if kinv.shape != (cl.size, n, n):
                        raise ValueError("each metric block must be (n_j, n_j).")
                F = _adjusted_design(Qg, d, kinv)
            store(cl, Qg, e[idx], F)
    return scores, gram, cross


def _contrast_moments(gram, cross, C):
    """Per-cluster A_j = C F_j^T F_j C^T, B_j = Q_j^T F_j C^T and P_j = B_j^T B_j.

    ``C`` holds contrasts of the orthonormal coordinates (M = I).
    """
    Aj = np.einsum("sa,jab,tb->jst", C, gram, C)
    Bj = cross @ C.T  # (J, p, q)
    Pj = np.einsum("jas,jat->jst", Bj, Bj)
    return Aj, Bj, Pj


def _to_orthonormal(result, C):
    """Map contrasts of beta to contrasts of gamma = R beta: C R^{-1}.

    A p x p solve with numpy's LAPACK (scipy's triangular solve pays a
    thread-pool start per call, milliseconds on a busy machine, for p ~ 5).
    """
    return np.linalg.solve(result.r_factor.T, C.T).T


def contrast_dof(result: ClusterRobustResult, contrasts: ArrayLike) -> NDArray:
    """Satterthwaite degrees of freedom of CR2 contrasts.

    For a contrast :math:`c`, :math:`c^\\top V^{CR2} c = \\sum_j (g_j^\\top
    \\varepsilon)^2` with :math:`\\varepsilon \\sim N(0, I)` under the working model and
    :math:`g_i^\\top g_j = \\delta_{ij} a_j^\\top a_j - b_i^\\top M b_j`, where
    :math:`a_j = F_j c` and :math:`b_j = \\tilde X_j^\\top a_j`. Matching two moments
    gives

    .. math::

        \\nu = \\frac{(\\sum_j g_j^\\top g_j)^2}{\\sum_{i,j} (g_i^\\top g_j)^2},
        \\qquad
        \\sum_{i,j} (g_i^\\top g_j)^2 = \\sum_j (a_j^\\top a_j)^2
        - 2 \\sum_j a_j^\\top a_j\\, b_j^\\top M b_j + \\operatorname{tr}((MS)^2),

    with :math:`S = \\sum_j b_j b_j^\\top` (p x p), so no k x k object is formed
    (Bell & McCaffrey 2002; Pustejovsky & Tipton 2018, section 3). The sums are
    evaluated in the orthonormal coordinates of ``result.r_factor`` (M = I).

    Parameters
    ----------
    result : ClusterRobustResult
        A CR2 result of :func:`cluster_robust_covariance`.
    contrasts : array-like of shape (r, p) or (p,)
        Contrast vectors as rows.

    Returns
    -------
    dof : ndarray of shape (r,)
        Satterthwaite degrees of freedom.
    """
    if result.kind != "cr2":
        raise ValueError("Satterthwaite degrees of freedom need kind='cr2'.")
    C = np.atleast_2d(np.asarray(contrasts, dtype=float))
    if C.shape[1] != result.cov.shape[0]:
        raise ValueError(f"contrasts must have p={result.cov.shape[0]} columns.")
    C = _to_orthonormal(result, C)
    Aj, Bj, Pj = _contrast_moments(result.gram, result.cross, C)
    a = np.einsum("jss->js", Aj)  # a_j^T a_j per contrast
    pjj = np.einsum("jss->js", Pj)
    trace = np.sum(a - pjj, axis=0)
    S = np.einsum("jas,jbs->sab", Bj, Bj)  # (r, p, p)
    tr_msms = np.einsum("sab,sba->s", S, S)
    sumsq = np.sum(a**2, axis=0) - 2.0 * np.sum(a * pjj, axis=0) + tr_msms
    return trace**2 / sumsq


def cluster_robust_covariance(
    X_tilde: ArrayLike,
    e_tilde: ArrayLike,
    codes: ArrayLike,
    n_clusters: int,
    kind: str = "cr1",
    *,
    metric: ArrayLike | Sequence[ArrayLike] | None = None,
) -> ClusterRobustResult:
    """Compute the cluster-robust (sandwich) covariance of WLS coefficients.

    With :math:`M = (\\tilde X^\\top \\tilde X)^{-1}` and per-cluster adjustment
    matrices :math:`\\tilde A_j`,

    .. math::

        V = c\\, M \\Big(\\sum_{j=1}^J \\tilde X_j^\\top \\tilde A_j \\tilde e_j
        \\tilde e_j^\\top \\tilde A_j^\\top \\tilde X_j\\Big) M,

    - CR0: :math:`\\tilde A_j = I`, :math:`c = 1` (metafor ``robust(adjust=FALSE)``);
    - CR1: :math:`\\tilde A_j = I`, :math:`c = J/(J-p)` (metafor
      ``robust(adjust=TRUE)``); both with :math:`J - p` degrees of freedom;
    - CR2 (bias-reduced linearization, Bell & McCaffrey 2002; Pustejovsky & Tipton
      2018): :math:`c = 1` and :math:`\\tilde A_j = G_j^{-1/2} K_j^{-1}` with
      :math:`G_j = K_j^{-1} (I - \\tilde H_{jj}) K_j^{-1}`,
      :math:`\\tilde H_{jj} = \\tilde X_j M \\tilde X_j^\\top` and the symmetric
      (pseudo-)inverse square root; Satterthwaite degrees of freedom per
      coefficient (:func:`contrast_dof`). Under the working model
      :math:`E[V] = M` exactly.

    ``metric`` sets :math:`K_j^{-1}`. This mirrors clubSandwich, whose CR2 with the
    working model as target is :math:`A_j = R_j^\\top G_j^{-1/2} R_j` with the
    Cholesky factor :math:`R_j^\\top R_j = W_j^{-1}`: whitening with
    :math:`L_j = R_j^{-\\top}` gives :math:`K_j^{-1} = R_j R_j^\\top`, and for
    diagonal weights :math:`K^{-1} = \\operatorname{diag}(1/w_i)`, which
    :func:`whiten_diagonal` returns. With ``metric=None`` (:math:`K = I`),
    :math:`\\tilde A_j = (I - \\tilde H_{jj})^{-1/2}`, the whitened-symmetric BRL
    that does not depend on the choice of whitening; the two agree when the
    weights are constant within each cluster (e.g. clusters of one study), and
    otherwise differ slightly (both are unbiased under the working model).

    Parameters
    ----------
    X_tilde : array-like of shape (k, p)
        Whitened design :math:`\\tilde X_j = L_j X_j` (:math:`W^{1/2}X` for
        diagonal weights).
    e_tilde : array-like of shape (k,)
        Whitened residuals :math:`\\tilde e_j = L_j (y_j - X_j \\hat\\beta)`.
    codes : array-like of int of shape (k,)
        Cluster code 0..J-1 of each row (:func:`cluster_codes`). Rows need not be
        sorted.
    n_clusters : int
        Number of clusters J; must exceed p.
    kind : {"cr0", "cr1", "cr2"}, default="cr1"
        The estimator.
    metric : array-like of shape (k,) or sequence of J arrays, default=None
        CR2 only: the diagonal of :math:`K^{-1}` (positive, one value per row), or
        one :math:`n_j \\times n_j` block :math:`K_j^{-1}` per cluster code, rows in
        their order in the data. ``None`` means the identity.

    Returns
    -------
    ClusterRobustResult
        ``cov`` (p, p), ``dof`` (p,), ``kind``, ``n_clusters``, ``bread`` and, for
        CR2, the per-cluster pieces that :func:`htz_wald_test` and
        :func:`contrast_dof` use.

    Raises
    ------
    ValueError
        For an unknown ``kind``, inconsistent shapes, a rank-deficient design, or
        ``n_clusters <= p``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    X, e, codes, J, sizes = _check_inputs(X_tilde, e_tilde, codes, n_clusters)
    p = X.shape[1]
    M = _bread(X)
    if kind in ("cr0", "cr1"):
        # per-cluster scores u_j = X_j^T e_j by bincount: O(k p), no sorting
        xe = X * e[:, None]
        u = np.column_stack(
            [np.bincount(codes, weights=xe[:, a], minlength=J) for a in range(p)]
        )
        Mu = u @ M
        cov = Mu.T @ Mu
        if kind == "cr1":
            cov *= J / (J - p)
        cov = 0.5 * (cov + cov.T)
        dof = np.full(p, float(J - p))
        return ClusterRobustResult(cov, dof, kind, J, M)
    # CR2 works in orthonormal coordinates gamma = R beta (X_tilde = Q R)
    Q, R = np.linalg.qr(X)
    scores, gram, cross = _cr2_pieces(Q, e, codes, J, sizes, metric)
    Rinv_s = np.linalg.solve(R, scores.T)  # R^{-1} u_j, (p, J)
    cov = Rinv_s @ Rinv_s.T
    cov = 0.5 * (cov + cov.T)
    res = ClusterRobustResult(cov, np.empty(p), kind, J, M, R, gram, cross)
    dof = contrast_dof(res, np.eye(p))
    return res._replace(dof=dof)


def cluster_robust_diagonal(
    X: ArrayLike,
    resid: ArrayLike,
    weights: ArrayLike,
    codes: ArrayLike,
    n_clusters: int,
    kind: str = "cr1",
) -> ClusterRobustResult:
    """Compute the cluster-robust covariance for diagonal working weights.

    Whitens with :func:`whiten_diagonal` and calls
    :func:`cluster_robust_covariance` with ``metric = 1/w``, so that CR2 equals
    clubSandwich's ``vcovCR(type = "CR2")`` with the working model as target, as
    metafor's ``robust(res, cluster, clubSandwich = TRUE)`` uses for ``rma``
    models (working weights :math:`w_i = 1/(v_i + \\hat\\tau^2)`).

    Parameters
    ----------
    X : array-like of shape (k, p)
        Design matrix (with the intercept column if there is one).
    resid : array-like of shape (k,)
        Residuals :math:`y - X\\hat\\beta` of the weighted least-squares fit.
    weights : array-like of shape (k,)
        Positive working weights of that fit.
    codes : array-like of int of shape (k,)
        Cluster code 0..J-1 of each row (:func:`cluster_codes`).
    n_clusters : int
        Number of clusters J; must exceed p.
    kind : {"cr0", "cr1", "cr2"}, default="cr1"
        The estimator.

    Returns
    -------
    ClusterRobustResult
        As :func:`cluster_robust_covariance`.
    """
    Xt, et, metric = whiten_diagonal(X, resid, weights)
    return cluster_robust_covariance(
        Xt, et, codes, n_clusters, kind, metric=metric if kind == "cr2" else None
    )


def _constraint_matrix(constraints, p):
    C = np.asarray(constraints)
    if C.ndim == 0:
        C = C.reshape(1)
    if C.ndim == 1 and C.dtype.kind in "iub":
        if C.dtype.kind == "b":
            C = np.flatnonzero(C)
        if C.size == 0 or C.min() < -p or C.max() >= p:
            raise ValueError(f"constraints must index coefficients 0..{p - 1}.")
        return np.eye(p)[C]
    C = np.atleast_2d(C.astype(float))
    if C.shape[1] != p:
        raise ValueError(f"constraints must have p={p} columns, got {C.shape[1]}.")
    return C


def _wald_q(beta, cov, C):
    cb = C @ beta
    ccc = C @ cov @ C.T
    try:
        chol = np.linalg.cholesky(ccc)
    except np.linalg.LinAlgError:
        raise ValueError(
            "constraints give a singular covariance C V C^T (redundant rows?)."
        ) from None
    z = np.linalg.solve(chol, cb)
    return float(z @ z)


def htz_wald_test(
    result: ClusterRobustResult, beta: ArrayLike, constraints: ArrayLike
) -> ClusterWaldResult:
    """Test :math:`C\\beta = 0` with the HTZ approximation (CR2).

    The Wald statistic :math:`Q = (C\\hat\\beta)^\\top (C V^{CR2} C^\\top)^{-1}
    C\\hat\\beta` is treated as Hotelling's :math:`T^2` with :math:`\\eta` degrees of
    freedom (Tipton & Pustejovsky 2015, "HTZ"; Pustejovsky & Tipton 2018): with
    :math:`\\Omega = E[C V^{CR2} C^\\top]` under the working model and
    :math:`D = \\Omega^{-1/2} C V^{CR2} C^\\top \\Omega^{-1/2}`,

    .. math::

        \\eta = \\frac{q(q+1)}{\\sum_{s,t} \\operatorname{Var}(d_{st})},\\qquad
        F = \\frac{\\eta - q + 1}{\\eta q} Q \\sim F(q, \\eta - q + 1).

    :math:`\\operatorname{Var}(d_{st}) = \\sum_{i,j} (g_{si}^\\top g_{sj})
    (g_{ti}^\\top g_{tj}) + (g_{si}^\\top g_{tj})(g_{ti}^\\top g_{sj})` is computed
    from the per-cluster p x p pieces, in :math:`O(J q^4 + J p^2 q)`. This is
    clubSandwich's ``Wald_test(..., test = "HTZ")``, which metafor's
    ``robust(..., clubSandwich = TRUE)`` reports as ``QM``, ``QMdf``, ``QMp``. For
    q = 1 it is the squared t statistic with Satterthwaite degrees of freedom.

    Parameters
    ----------
    result : ClusterRobustResult
        A CR2 result of :func:`cluster_robust_covariance`.
    beta : array-like of shape (p,)
        Coefficient estimates.
    constraints : array-like of shape (q, p), or of int of shape (q,)
        Constraint matrix C, or the indices of the coefficients tested to be zero.

    Returns
    -------
    ClusterWaldResult
        F statistic, numerator and denominator degrees of freedom, p-value,
        ``test="HTZ"`` and the unscaled Wald statistic.
    """
    if result.kind != "cr2":
        raise ValueError("The HTZ test needs kind='cr2'; use cluster_wald_test.")
    beta = np.asarray(beta, dtype=float).reshape(-1)
    p = result.cov.shape[0]
    if beta.shape != (p,):
        raise ValueError(f"beta must have length p={p}.")
    C = _constraint_matrix(constraints, p)
    q = C.shape[0]
    Q = _wald_q(beta, result.cov, C)
    C = _to_orthonormal(result, C)
    Aj, _, Pj = _contrast_moments(result.gram, result.cross, C)
    omega = np.sum(Aj - Pj, axis=0)
    omega = 0.5 * (omega + omega.T)
    Cn = _inv_sqrt_psd(omega) @ C
    Aj, Bj, Pj = _contrast_moments(result.gram, result.cross, Cn)
    # T[s,t,u,v] = sum_ij (g_si^T g_tj)(g_ui^T g_vj)
    S = np.einsum("jax,jby->xyab", Bj, Bj)  # (q, q, p, p)
    T = (
        np.einsum("jst,juv->stuv", Aj, Aj)
        - np.einsum("jst,juv->stuv", Aj, Pj)
        - np.einsum("jst,juv->stuv", Pj, Aj)
        + np.einsum("usab,tvba->stuv", S, S)
    )
    var_d = np.einsum("tsst->st", T) + np.einsum("ttss->st", T)
    eta = q * (q + 1) / np.sum(var_d)
    df2 = eta - q + 1
    delta = max((eta - q + 1) / eta, 0.0)
    F = delta * Q / q
    pval = float(stats.f.sf(F, q, df2)) if df2 > 0 else float("nan")
    return ClusterWaldResult(float(F), float(q), float(df2), pval, "HTZ", Q)


def cluster_wald_test(
    result: ClusterRobustResult, beta: ArrayLike, constraints: ArrayLike
) -> ClusterWaldResult:
    """Test :math:`C\\beta = 0` with a cluster-robust covariance.

    CR0/CR1 (metafor ``robust()``): :math:`F = Q/q` against :math:`F(q, J - p)`,
    where :math:`Q = (C\\hat\\beta)^\\top (C V C^\\top)^{-1} C\\hat\\beta`. CR2: the
    HTZ test of :func:`htz_wald_test` (metafor ``robust(clubSandwich=TRUE)``).

    Parameters
    ----------
    result : ClusterRobustResult
        Result of :func:`cluster_robust_covariance`.
    beta : array-like of shape (p,)
        Coefficient estimates.
    constraints : array-like of shape (q, p), or of int of shape (q,)
        Constraint matrix C, or the indices of the coefficients tested to be zero
        (metafor's ``btt``, 0-based).

    Returns
    -------
    ClusterWaldResult
        F statistic, degrees of freedom, p-value, test name and unscaled Wald
        statistic.
    """
    if result.kind == "cr2":
        return htz_wald_test(result, beta, constraints)
    beta = np.asarray(beta, dtype=float).reshape(-1)
    p = result.cov.shape[0]
    if beta.shape != (p,):
        raise ValueError(f"beta must have length p={p}.")
    C = _constraint_matrix(constraints, p)
    q = C.shape[0]
    Q = _wald_q(beta, result.cov, C)
    df2 = float(result.n_clusters - p)
    F = Q / q
    return ClusterWaldResult(
        float(F), float(q), df2, float(stats.f.sf(F, q, df2)), "F", Q
    )
