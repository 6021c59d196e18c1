"""Sampling covariance of dependent effect sizes: :func:`impute_covariance`."""

import warnings
from numbers import Real

import numpy as np
import pandas as pd
from scipy import sparse as sp

from skmeta._engine import _dependence as dep
from skmeta.utils._validation import as_float_array, check_sample_var

__all__ = ["impute_covariance"]


def _label_array(values, name, k, *, outermost=True):
    """Per-effect-size labels as a 1-D object array (any hashable; no missing).

    A 2-D array (multilevel ``groups``) gives its first, outermost column when
    ``outermost``; otherwise it is an error.
    """
    if isinstance(values, pd.DataFrame | pd.Series):
        values = values.to_numpy()
    arr = np.asarray(values, dtype=object)
    if outermost and arr.ndim == 2:
        arr = arr[:, 0]  # the outermost level of multilevel groups
    if arr.ndim != 1 or arr.shape[0] != k:
        raise ValueError(
            f"{name} must have one label per effect size ({k}); got shape "
            f"{np.shape(values)}."
        )
    if np.any(pd.isna(arr)):
        raise ValueError(f"{name} contains missing labels (None or NaN).")
    return arr


def _codes(labels):
    """Integer codes of labels, in order of first appearance."""
    return pd.factorize(pd.Series(labels, dtype=object), sort=False)[0]


def _labels(values, name, k):
    """Integer codes of per-effect-size labels (any hashable; no missing)."""
    return _codes(_label_array(values, name, k))


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


def _numbers(values, name, k):
    numbers = as_float_array(values, name)
    if numbers.shape != (k,):
        raise ValueError(f"{name} must have {k} entries; got {numbers.shape[0]}.")
    return numbers


def _construct_correlations(rho, construct, k):
    """``(rho, rho_between, construct codes)`` from ``rho`` and ``construct``."""
    if construct is None:
        return _correlation(rho, "rho", required=False), None, None
    if rho is None or isinstance(rho, str | Real) or np.ndim(rho) != 1 or len(rho) != 2:
        raise ValueError(
            "With construct, rho must be the pair (within, between): the "
            "correlations of different measures of one construct and of "
            f"different constructs; got {rho!r}."
        )
    within = _correlation(rho[0], "rho[0] (within constructs)", required=True)
    between = _correlation(rho[1], "rho[1] (between constructs)", required=True)
    return within, between, _labels(construct, "construct", k)


def _contrasts(k, condition1, condition2, time1, time2, weight1, weight2):
    """The :class:`Contrasts` of the arguments, or None without conditions."""
    if (condition1 is None) != (condition2 is None):
        raise ValueError(
            "Give both condition1 and condition2 (the two groups each contrast "
            "compares), or neither."
        )
    if condition1 is None:
        for name, value in [
            ("time2", time2),
            ("weight1", weight1),
            ("weight2", weight2),
        ]:
            if value is not None:
                raise ValueError(f"{name} needs condition1 and condition2.")
        return None
    if time2 is not None and time1 is None:
        raise ValueError("time2 needs time (the time points of condition1) and phi.")
    both = _codes(
        np.concatenate(
            [
                _label_array(condition1, "condition1", k, outermost=False),
                _label_array(condition2, "condition2", k, outermost=False),
            ]
        )
    )
    time1 = np.zeros(k) if time1 is None else time1
    weight1 = np.ones(k) if weight1 is None else _weights(weight1, "weight1", k)
    weight2 = weight1 if weight2 is None else _weights(weight2, "weight2", k)
    return dep.Contrasts(
        condition1=both[:k],
        condition2=both[k:],
        time1=time1,
        time2=time1 if time2 is None else _numbers(time2, "time2", k),
        weight1=weight1,
        weight2=weight2,
    )


def _weights(values, name, k):
    weights = _numbers(values, name, k)
    if np.any(weights <= 0):
        raise ValueError(f"{name} must be positive (group sizes or weights).")
    return weights


def impute_covariance(
    sample_var,
    groups,
    rho=None,
    *,
    obs=None,
    construct=None,
    time=None,
    phi=None,
    condition1=None,
    condition2=None,
    time2=None,
    weight1=None,
    weight2=None,
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
    ``time`` is given. With ``construct``, :math:`\rho_{ij}` is the within-construct
    correlation for different measures of one construct and the between-construct
    correlation for different constructs. When the effect sizes are contrasts
    between two conditions (``condition1`` minus ``condition2``: treatment arms
    against a shared control, or time points of one group), the time factor is
    replaced by the correlation the shared conditions induce,

    .. math::

        c_{ij} = \frac{C(1_i, 1_j) - C(1_i, 2_j) - C(2_i, 1_j) + C(2_i, 2_j)}
        {s_i s_j},\qquad s_i^2 = C(1_i, 1_i) + C(2_i, 2_i) - 2 C(1_i, 2_i),

    where :math:`C(a, b) = \varphi^{|t_a - t_b|}/\sqrt{w_a w_b}` when
    conditions :math:`a` and :math:`b` are the same group and 0 otherwise
    (:math:`w`: group sizes; two arms against one control with equal sizes give
    :math:`c = 1/2`, Gleser & Olkin, 2009). This is metafor's ``vcalc(vi,
    cluster, subgroup, obs, type, time1, time2, grp1, grp2, w1, w2, rho, phi)``
    and, for a constant correlation, clubSandwich's
    ``impute_covariance_matrix(vi, cluster, r)``; the result can be passed to
    :meth:`MultilevelMeta.fit` as ``sample_cov`` (or to other tools).

    Parameters
    ----------
    sample_var : array-like of shape (n_samples,)
        Sampling variances (>= 0).
    groups : array-like of shape (n_samples,) or (n_samples, n_levels)
        Cluster labels; for 2-D (multilevel ``groups``) the first (outermost)
        column.
    rho : float in [-1, 1], pair of floats or None, default=None
        Correlation between the sampling errors of different measures of the
        same cluster measured at the same time; with ``construct``, the pair
        ``(within, between)`` of correlations of different measures of one
        construct and of different constructs (metafor's ``rho = c(within,
        between)``). ``None``: all rows of a cluster are the same measure.
    obs : array-like of shape (n_samples,), default=None
        Labels of the measures: rows of a cluster with equal ``obs`` are the
        same measure (correlation 1 at equal times). ``None``: every row is a
        different measure (metafor's ``obs`` = row id, the usual choice for the
        correlated-and-hierarchical-effects model).
    construct : array-like of shape (n_samples,), default=None
        Labels of the constructs measured (metafor's ``type``); needs ``rho`` as
        a ``(within, between)`` pair.
    time : array-like of shape (n_samples,), default=None
        Time points of the estimates (numbers); for contrasts, the time of
        ``condition1`` (metafor's ``time1``).
    phi : float in [-1, 1], default=None
        Autocorrelation between estimates one time unit apart; required with
        ``time``.
    condition1, condition2 : array-like of shape (n_samples,), default=None
        For contrast effect sizes (mean differences, log risk ratios, ...): the
        group labels of the two conditions compared by each row (metafor's
        ``grp1``, ``grp2``); equal labels within a cluster are the same group
        (e.g. a shared control). Give both or neither.
    time2 : array-like of shape (n_samples,), default=None
        Time points of ``condition2`` (within-subject contrasts); ``time`` when
        None. Needs ``time`` and the conditions.
    weight1, weight2 : array-like of shape (n_samples,), default=None
        Sizes (or inverse-variance weights) of the two conditions' groups;
        equal sizes when None (``weight2`` defaults to ``weight1``). Need the
        conditions.
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
        nothing to impute (neither ``rho``, ``time`` nor conditions), ``obs``
        or ``construct`` without ``rho``, one condition without the other,
        ``time2`` or weights without the conditions, a row contrasting a group
        with itself at the same time, or inputs of the wrong length.

    References
    ----------
    Gleser, L. J. & Olkin, I. (2009). Stochastically dependent effect sizes. In
    H. Cooper, L. V. Hedges & J. C. Valentine (Eds.), *The handbook of research
    synthesis and meta-analysis* (2nd ed., pp. 357-376). Russell Sage Foundation.
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

    Two treatment arms against one control (equal group sizes):

    >>> V = impute_covariance(
    ...     [0.04, 0.09], [1, 1], condition1=["A", "B"], condition2=["C", "C"]
    ... )
    >>> V.toarray().round(3)
    array([[0.04, 0.03],
           [0.03, 0.09]])
    """
    v = np.asarray(sample_var)
    if v.ndim != 1:
        raise ValueError(
            f"sample_var must be 1-D (one variance per effect size); got shape "
            f"{v.shape}."
        )
    v = check_sample_var(sample_var, (v.shape[0],))
    k = v.shape[0]
    clusters = _labels(groups, "groups", k)
    if subgroups is not None:
        sub = _labels(subgroups, "subgroups", k)
        clusters = pd.factorize(pd.Series(list(zip(clusters, sub, strict=True))))[0]
    rho, rho_between, construct_codes = _construct_correlations(rho, construct, k)
    obs_codes = None
    if obs is not None:
        if rho is None:
            raise ValueError("obs needs rho, the correlation of different measures.")
        obs_codes = _labels(obs, "obs", k)
    times = None
    if time is not None:
        times = _numbers(time, "time", k)
        phi = _correlation(phi, "phi", required=True)
    elif phi is not None:
        raise ValueError("phi needs time, the time points of the estimates.")
    contrasts = _contrasts(k, condition1, condition2, times, time2, weight1, weight2)
    if rho is None and times is None and contrasts is None:
        raise ValueError(
            "Nothing to impute: give rho (the correlation of different measures), "
            "time and phi (an autocorrelation over time) and/or condition1 and "
            "condition2 (contrasts sharing a group)."
        )
    cov = dep.correlation_covariance(
        v,
        clusters.astype(np.int64),
        rho,
        obs=obs_codes,
        time=times,
        phi=phi,
        construct=construct_codes,
        rho_between=rho_between,
        contrasts=contrasts,
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
