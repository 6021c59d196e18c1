r"""Block-diagonal sampling covariance of dependent effect sizes.

Several effect sizes from the same sample (several outcomes, time points or
comparisons of one study) have correlated sampling errors. Their covariance
matrix :math:`V` is block diagonal by cluster (study): rows of different clusters
are independent. Within a cluster, the common working model (metafor's
``vcalc``, clubSandwich's ``impute_covariance_matrix``; Pustejovsky & Tipton
2022) sets

.. math::

    V_{ij} = r_{ij} \sqrt{v_i v_j},\qquad
    r_{ij} = \rho_{ij}\, \varphi^{|t_i - t_j|},

with :math:`\rho_{ij} = 1` for two estimates of the same measure (equal ``obs``)
and :math:`\rho` otherwise, and an AR(1) factor in the time lag when time points
are given.

:class:`BlockCovariance` stores :math:`V` as its diagonal plus the list of its
within-cluster off-diagonal entries: O(sum of squared cluster sizes) memory, never
a dense k x k matrix. :func:`cluster_blocks` turns it into dense per-cluster
blocks, stacked by cluster size, for the batched linear algebra of the models.

References
----------
Pustejovsky, J. E. & Tipton, E. (2022). Meta-analysis with robust variance
estimation: expanding the range of working models. *Prevention Science* 23,
425-438.
Viechtbauer, W. metafor documentation of ``vcalc`` (version 3.8-1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "BlockCovariance",
    "ClusterBlocks",
    "Contrasts",
    "cluster_blocks",
    "contrast_correlation",
    "correlation_covariance",
    "matrix_covariance",
    "nonpositive_clusters",
]

#: Relative tolerance of the symmetry check of a user's covariance matrix:
#: |V - V^T| <= this * max|V|. Matrices computed in double precision (e.g. by
#: metafor or numpy) are symmetric to ~1e-16 relative; typed-in values are exact.
SYMMETRY_RTOL = 1e-10

#: A cluster block counts as positive definite when its smallest eigenvalue
#: exceeds this fraction of its largest one (rounding noise of an exactly
#: singular block is ~1e-16 relative).
PD_RTOL = 1e-12


class BlockCovariance(NamedTuple):
    """A sampling covariance matrix that is block diagonal by cluster.

    Attributes
    ----------
    diag : ndarray of shape (k,)
        The sampling variances (diagonal).
    rows, cols, values : ndarray of shape (m,)
        The nonzero off-diagonal entries ``V[rows, cols] = values`` (both
        triangles listed, ``rows != cols``), all within clusters.
    """

    diag: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray

    @property
    def is_diagonal(self):
        """Whether there are no off-diagonal entries."""
        return self.values.size == 0

    def scaled(self, factor):
        """``factor * V``."""
        return BlockCovariance(
            self.diag * factor, self.rows, self.cols, self.values * factor
        )


class ClusterBlocks(NamedTuple):
    """Dense per-cluster blocks of a :class:`BlockCovariance`, by cluster size.

    Attributes
    ----------
    clusters : list of ndarray
        Per distinct size n, the cluster codes (m,).
    rows : list of ndarray
        Per size, the original row indices (m, n) of each cluster (rows in
        increasing order within a cluster).
    blocks : list of ndarray
        Per size, the (m, n, n) blocks.
    """

    clusters: list
    rows: list
    blocks: list


def _sorted_clusters(clusters):
    order = np.argsort(clusters, kind="stable")
    sorted_codes = clusters[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, clusters.shape[0]])
    return order, starts, sizes


def _within_cluster_pairs(clusters):
    """All ordered pairs (i, j), i != j, of rows in the same cluster."""
    order, starts, sizes = _sorted_clusters(clusters)
    per_row = np.repeat(sizes, sizes)  # cluster size of each sorted row
    first = np.repeat(starts, sizes)  # first sorted position of its cluster
    rep = np.repeat(np.arange(clusters.shape[0]), per_row)
    offset = np.arange(rep.size) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    partner = np.repeat(first, per_row) + offset
    keep = rep != partner
    return order[rep[keep]], order[partner[keep]]


class Contrasts(NamedTuple):
    """Effect sizes that contrast two conditions (groups at time points).

    Row i estimates :math:`\\mu(g_{1i}, t_{1i}) - \\mu(g_{2i}, t_{2i})` from
    condition means with inverse-variance weights :math:`w_{1i}, w_{2i}` (group
    sizes). All arrays have shape (k,); the condition codes are integers shared by
    ``condition1`` and ``condition2`` (equal codes in a cluster: the same group).
    """

    condition1: np.ndarray
    condition2: np.ndarray
    time1: np.ndarray
    time2: np.ndarray
    weight1: np.ndarray
    weight2: np.ndarray


def _condition_covariance(g_a, t_a, w_a, g_b, t_b, w_b, phi):
    """Covariance of two condition means (unit-free, per row pair).

    The same group at two time points correlates with :math:`\\varphi^{|t_a -
    t_b|}`; different groups are independent; the variances are :math:`1/w`.
    """
    with np.errstate(over="ignore", under="ignore"):
        lag = np.power(phi, np.abs(t_a - t_b))
    return np.where(g_a == g_b, lag, 0.0) / np.sqrt(w_a * w_b)


def contrast_correlation(i, j, contrasts, phi):
    r"""Correlation of contrast effect sizes that share conditions.

    With :math:`C(a, b)` the covariance of two condition means
    (:func:`_condition_covariance`), rows i and j have

    .. math::

        r_{ij} = \frac{C(1_i, 1_j) - C(1_i, 2_j) - C(2_i, 1_j) + C(2_i, 2_j)}
        {s_i s_j},\qquad s_i^2 = 1/w_{1i} + 1/w_{2i} - 2C(1_i, 2_i):

    a treatment and a control arm each contrasted with one shared control give
    :math:`r = 1/2` with equal group sizes (Gleser & Olkin, 2009), and a
    within-subject contrast of time points uses the autocorrelation.

    Raises
    ------
    ValueError
        If a row contrasts a condition with itself (the same group at the same
        time, or at two times with :math:`\varphi = 1`), whose contrast has no
        variance.
    """
    c = contrasts
    self_cov = _condition_covariance(
        c.condition1, c.time1, c.weight1, c.condition2, c.time2, c.weight2, phi
    )
    scale_sq = 1.0 / c.weight1 + 1.0 / c.weight2 - 2.0 * self_cov
    degenerate = np.flatnonzero(scale_sq <= 0)
    if degenerate.size:
        raise ValueError(
            f"Row {degenerate[0]} contrasts a condition with itself (the same "
            "group at the same time, or at two times with phi = 1): its contrast "
            "has no sampling variance."
        )
    scale = np.sqrt(scale_sq)

    sides = {
        1: (c.condition1, c.time1, c.weight1),
        2: (c.condition2, c.time2, c.weight2),
    }

    def cov(side_i, side_j):
        (g_i, t_i, w_i), (g_j, t_j, w_j) = sides[side_i], sides[side_j]
        return _condition_covariance(
            g_i[i], t_i[i], w_i[i], g_j[j], t_j[j], w_j[j], phi
        )

    numerator = cov(1, 1) - cov(1, 2) - cov(2, 1) + cov(2, 2)
    return numerator / (scale[i] * scale[j])


def correlation_covariance(
    v,
    clusters,
    rho=None,
    *,
    obs=None,
    time=None,
    phi=None,
    construct=None,
    rho_between=None,
    contrasts=None,
):
    """Sampling covariance from construct correlations, time and shared conditions.

    For rows i != j of the same cluster,
    :math:`V_{ij} = r_{ij}\\sqrt{v_i v_j}` with :math:`r_{ij} = \\rho_{ij}
    \\, c_{ij}`. The construct factor :math:`\\rho_{ij}` is 1 for the same
    measure (``obs[i] == obs[j]``) of the same construct or when ``rho`` is None,
    ``rho`` for different measures of the same construct and ``rho_between`` for
    different constructs. The design factor :math:`c_{ij}` is
    :math:`\\varphi^{|t_i - t_j|}` (1 without ``time``) or, for contrasts, the
    correlation of :func:`contrast_correlation`.

    Parameters
    ----------
    v : ndarray of shape (k,)
        Sampling variances (>= 0).
    clusters : ndarray of int of shape (k,)
        Cluster code of every row (rows of different clusters are independent).
    rho : float or None
        Correlation of different measures (of the same construct).
    obs : ndarray of int of shape (k,) or None
        Measure code of every row; None: every row is a different measure.
    time, phi : ndarray of shape (k,) and float, or None
        Time points and the autocorrelation per unit of time.
    construct : ndarray of int of shape (k,) or None
        Construct code of every row; None: one construct.
    rho_between : float or None
        Correlation of measures of different constructs (with ``construct``).
    contrasts : Contrasts or None
        Conditions compared by each row (their times replace ``time``).

    Returns
    -------
    BlockCovariance
    """
    i, j = _within_cluster_pairs(clusters)
    r = np.ones(i.size)
    if rho is not None:
        different = np.ones(i.size, dtype=bool) if obs is None else obs[i] != obs[j]
        r = np.where(different, rho, 1.0)
    if construct is not None:
        r = np.where(construct[i] == construct[j], r, rho_between)
    if contrasts is not None:
        r = r * contrast_correlation(i, j, contrasts, 1.0 if phi is None else phi)
    elif time is not None:
        with np.errstate(over="ignore", under="ignore"):
            r = r * np.power(float(phi), np.abs(time[i] - time[j]))
    values = r * np.sqrt(v[i] * v[j])
    keep = values != 0
    return BlockCovariance(v.astype(float), i[keep], j[keep], values[keep])


def matrix_covariance(matrix, clusters, *, name="sample_cov"):
    """Validate a user's covariance matrix and keep its within-cluster entries.

    Parameters
    ----------
    matrix : ndarray or scipy sparse matrix of shape (k, k)
        Dense or sparse; symmetric, finite, zero between clusters.
    clusters : ndarray of int of shape (k,)
        Cluster code of every row.
    name : str
        The argument's name, for error messages.

    Returns
    -------
    BlockCovariance

    Raises
    ------
    ValueError
        Wrong shape, non-finite values, asymmetry, or a nonzero entry between two
        clusters (positive definiteness is checked by
        :func:`nonpositive_clusters`).
    """
    k = clusters.shape[0]
    shape = getattr(matrix, "shape", None)
    if shape is None or len(shape) != 2 or tuple(shape) != (k, k):
        raise ValueError(
            f"{name} must be a ({k}, {k}) matrix (one row and column per effect "
            f"size); got shape {shape}."
        )
    if hasattr(matrix, "tocoo"):  # scipy sparse
        coo = matrix.tocoo()
        coo.sum_duplicates()
        rows = np.asarray(coo.row, dtype=np.int64)
        cols = np.asarray(coo.col, dtype=np.int64)
        values = np.asarray(coo.data, dtype=float)
        diag = np.asarray(matrix.diagonal(), dtype=float).reshape(-1)
    else:
        dense = np.asarray(matrix)
        if dense.dtype.kind not in "iuf":
            raise ValueError(f"{name} must hold real numbers; got dtype {dense.dtype}.")
        dense = dense.astype(float)
        rows, cols = np.nonzero(dense)
        values = dense[rows, cols]
        diag = np.diagonal(dense).copy()
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(diag))):
        raise ValueError(f"{name} contains NaN or infinity.")
    off = rows != cols
    rows, cols, values = rows[off], cols[off], values[off]
    across = clusters[rows] != clusters[cols]
    if np.any(across):
        a, b = int(rows[across][0]), int(cols[across][0])
        raise ValueError(
            f"{name} must be block diagonal by the outermost level of groups: "
            f"{int(across.sum())} nonzero entries couple different clusters, e.g. "
            f"rows {a} and {b}. Effect sizes of different clusters must be "
            "independent (add a level that contains both, or set those entries "
            "to 0)."
        )
    values = _symmetrized(
        rows, cols, values, k, np.max(np.abs(diag), initial=0.0), name
    )
    if np.any(diag < 0):
        raise ValueError(f"{name} has negative variances on its diagonal.")
    return BlockCovariance(diag, rows, cols, values)


def _symmetrized(rows, cols, values, k, scale, name):
    """The off-diagonal values averaged with their mirror images; a ValueError
    when the mirror is missing or differs by more than SYMMETRY_RTOL * scale."""
    if values.size == 0:
        return values
    key = rows * k + cols
    order = np.argsort(key)
    mirror_key = cols * k + rows
    pos = np.minimum(np.searchsorted(key[order], mirror_key), key.size - 1)
    mirror = order[pos]
    if not np.all(key[mirror] == mirror_key) or np.max(
        np.abs(values - values[mirror])
    ) > SYMMETRY_RTOL * max(float(scale), 1e-300):
        raise ValueError(
            f"{name} must be symmetric: V[i, j] and V[j, i] differ by more than "
            f"{SYMMETRY_RTOL:g} relative to its largest variance."
        )
    return 0.5 * (values + values[mirror])


def cluster_blocks(cov, clusters):
    """Dense blocks of every cluster, stacked by cluster size.

    Parameters
    ----------
    cov : BlockCovariance
    clusters : ndarray of int of shape (k,)

    Returns
    -------
    ClusterBlocks
    """
    order, starts, sizes = _sorted_clusters(clusters)
    sorted_codes = clusters[order]
    # position of every row within its cluster, and its cluster's size group
    pos = np.empty(clusters.shape[0], dtype=np.int64)
    pos[order] = np.arange(clusters.shape[0]) - np.repeat(starts, sizes)
    out = ClusterBlocks([], [], [])
    slot = np.empty(int(clusters.max()) + 1 if clusters.size else 0, dtype=np.int64)
    size_of = np.zeros_like(slot)
    for n in np.unique(sizes):
        sel = np.flatnonzero(sizes == n)
        rows = order[starts[sel][:, None] + np.arange(n)]
        codes = sorted_codes[starts[sel]]
        slot[codes] = np.arange(sel.size)
        size_of[codes] = n
        blocks = np.zeros((sel.size, n, n))
        blocks[:, np.arange(n), np.arange(n)] = cov.diag[rows]
        out.clusters.append(codes)
        out.rows.append(rows)
        out.blocks.append(blocks)
    if cov.values.size:
        c = clusters[cov.rows]
        index = {int(n): g for g, n in enumerate(np.unique(sizes))}
        for n, g in index.items():
            sel = size_of[c] == n
            out.blocks[g][slot[c[sel]], pos[cov.rows[sel]], pos[cov.cols[sel]]] = (
                cov.values[sel]
            )
    return out


def nonpositive_clusters(blocks):
    """Codes of the clusters whose block is not positive definite.

    Parameters
    ----------
    blocks : ClusterBlocks

    Returns
    -------
    ndarray of int
    """
    bad = []
    for codes, B in zip(blocks.clusters, blocks.blocks, strict=True):
        w = np.linalg.eigvalsh(B)
        top = np.max(np.abs(w), axis=1)
        bad.append(codes[(w[:, 0] <= PD_RTOL * top) | (top == 0)])
    return np.sort(np.concatenate(bad)) if bad else np.zeros(0, dtype=int)
