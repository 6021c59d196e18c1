"""Sampling covariance of dependent effect sizes: :func:`impute_covariance`."""

import warnings
from numbers import Real

import numpy as np
import pandas as pd
from scipy import sparse as sp

from skmeta._engine import _dependence as dep
from skmeta.utils._validation import as_float_array, check_sample_var

__all__ = ["impute_covariance"]


def _labels(values, name, k):
    """Integer codes of per-effect-size labels (any hashable; no missing)."""
    if isinstance(values, pd.DataFrame | pd.Series):
        values = values.to_numpy()
    arr = np.asarray(values, dtype=object)
    if arr.ndim == 2:
        arr = arr[:, 0]  # the outermost level of multilevel groups
    if arr.ndim != 1 or arr.shape[0] != k:
        raise ValueError(
            f"{name} must have one label per effect size ({k}); got shape "
            f"{np.shape(values)}."
        )
    if np.any(pd.isna(arr)):
        raise ValueError(f"{name} contains missing labels (None or NaN).")
    return pd.factorize(pd.Series(arr, dtype=object), sort=False)[0]


def _correlation(value, name, *, required):
    if value is None:
        if required:
            raise ValueError(f"{name} is required.")
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or np.isnan(value):
        raise ValueError(f"{name} must be a number in [-1, 1]; got {value!r}.")
    if not -1.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [-1, 1]; got {value}.")
    return float(value)


def impute_covariance(
    sample_var,
    groups,
    rho=None,
    *,
    obs=None,
    time=None,
    phi=None,
    subgroups=None,
    sparse=True,
    check_pd=True,
):
    r"""Impute the sampling covariance matrix of dependent effect sizes.

    Effect sizes from the same cluster (study) have correlated sampling errors;
    different clusters are independent. Within a cluster (and subgroup), rows
    :math:`i \ne j` get

    .. math::

        V_{ij} = r_{ij}\sqrt{v_i v_j},\qquad
        r_{ij} = \rho_{ij}\,\varphi^{|t_i - t_j|},

    with :math:`\rho_{ij} = 1` for two estimates of the same measure (equal
    ``obs``) and :math:`\rho` otherwise, and an AR(1) factor in the time lag when
    ``time`` is given. This is metafor's ``vcalc(vi, cluster, obs, rho, time1,
    phi)`` and, for a constant correlation, clubSandwich's
    ``impute_covariance_matrix(vi, cluster, r)``; the result can be passed to
    :meth:`MultilevelMeta.fit` as ``sample_cov`` (or to other tools).

    Parameters
    ----------
    sample_var : array-like of shape (n_samples,)
        Sampling variances (>= 0).
    groups : array-like of shape (n_samples,) or (n_samples, n_levels)
        Cluster labels; for 2-D (multilevel ``groups``) the first (outermost)
        column.
    rho : float in [-1, 1] or None, default=None
        Correlation between the sampling errors of different measures of the
        same cluster measured at the same time. ``None``: all rows of a cluster
        are the same measure (then ``time`` and ``phi`` are required).
    obs : array-like of shape (n_samples,), default=None
        Labels of the measures: rows of a cluster with equal ``obs`` are the
        same measure (correlation 1 at equal times). ``None``: every row is a
        different measure (metafor's ``obs`` = row id, the usual choice for the
        correlated-and-hierarchical-effects model).
    time : array-like of shape (n_samples,), default=None
        Time points of the estimates (numbers).
    phi : float in [-1, 1], default=None
        Autocorrelation between estimates one time unit apart; required with
        ``time``.
    subgroups : array-like of shape (n_samples,), default=None
        Independent subgroups within clusters (metafor's ``subgroup``).
    sparse : bool, default=True
        Return a ``scipy.sparse.csr_array`` (block diagonal, O(sum of squared
        cluster sizes) memory); ``False``: a dense ndarray.
    check_pd : bool, default=True
        Warn (``UserWarning``) when a cluster's block is not positive definite
        (e.g. two rows with the same measure and time, or a negative ``rho``
        in a large cluster), as metafor's ``checkpd``.

    Returns
    -------
    scipy.sparse.csr_array or ndarray of shape (n_samples, n_samples)
        The sampling covariance matrix, rows in the order of ``sample_var``.

    Raises
    ------
    ValueError
        For a ``rho`` or ``phi`` outside [-1, 1], ``time`` without ``phi``,
        nothing to impute (neither ``rho`` nor ``time``), ``obs`` without
        ``rho``, or inputs of the wrong length.

    References
    ----------
    Pustejovsky, J. E. & Tipton, E. (2022). Meta-analysis with robust variance
    estimation: expanding the range of working models. Prevention Science, 23,
    425-438.
    Viechtbauer, W. metafor documentation of ``vcalc`` (version 3.8-1).

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta import impute_covariance
    >>> V = impute_covariance([0.04, 0.09, 0.01], [1, 1, 2], rho=0.5)
    >>> V.toarray().round(3)
    array([[0.04, 0.03, 0.  ],
           [0.03, 0.09, 0.  ],
           [0.  , 0.  , 0.01]])
    """
    v = np.asarray(sample_var)
    if v.ndim != 1:
        raise ValueError(
            f"sample_var must be 1-D (one variance per effect size); got shape "
            f"{v.shape}."
        )
    v = check_sample_var(sample_var, (v.shape[0],))
    k = v.shape[0]
    rho = _correlation(rho, "rho", required=False)
    clusters = _labels(groups, "groups", k)
    if subgroups is not None:
        sub = _labels(subgroups, "subgroups", k)
        clusters = pd.factorize(pd.Series(list(zip(clusters, sub, strict=True))))[0]
    obs_codes = None
    if obs is not None:
        if rho is None:
            raise ValueError("obs needs rho, the correlation of different measures.")
        obs_codes = _labels(obs, "obs", k)
    times = None
    if time is not None:
        times = as_float_array(time, "time")
        if times.shape != (k,):
            raise ValueError(f"time must have {k} entries; got {times.shape[0]}.")
        phi = _correlation(phi, "phi", required=True)
    elif phi is not None:
        raise ValueError("phi needs time, the time points of the estimates.")
    if rho is None and times is None:
        raise ValueError(
            "Nothing to impute: give rho (the correlation of different measures) "
            "and/or time and phi (an autocorrelation over time)."
        )
    cov = dep.correlation_covariance(
        v, clusters.astype(np.int64), rho, obs=obs_codes, time=times, phi=phi
    )
    if check_pd:
        bad = dep.nonpositive_clusters(dep.cluster_blocks(cov, clusters))
        if bad.size:
            example = np.flatnonzero(clusters == bad[0]).tolist()
            warnings.warn(
                f"The sampling covariance is not positive definite within "
                f"{bad.size} cluster(s) (e.g. rows {example}): rows with the same "
                "measure and time are perfectly correlated, or rho is too negative "
                "for the cluster size.",
                UserWarning,
                stacklevel=2,
            )
    rows = np.concatenate([np.arange(k), cov.rows])
    cols = np.concatenate([np.arange(k), cov.cols])
    values = np.concatenate([cov.diag, cov.values])
    matrix = sp.csr_array((values, (rows, cols)), shape=(k, k))
    return matrix if sparse else matrix.toarray()
