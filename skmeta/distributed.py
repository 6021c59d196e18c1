r"""Many meta-analyses at once: in memory, or on a Dask cluster beyond one machine.

Image-based (voxel-wise) meta-analysis and the meta-analysis of genome-wide
association studies fit the same random-effects model to many outcomes -- voxels,
variants -- that share the studies: for output :math:`j`,

.. math::

    y_{ij} = x_i^\top \beta_j + u_{ij} + e_{ij},\qquad
    u_{ij} \sim N(0, \tau_j^2),\qquad e_{ij} \sim N(0, v_{ij}),

with its own :math:`\beta_j` and :math:`\tau_j^2`, fitted to the studies that
cover it.  :func:`fit_outputs` fits all of them with the hyperparameters of a
:class:`~skmeta.RandomEffectsMeta` (``method``, ``tau2``, ``inference``,
``fit_intercept``, ``max_iter``, ``tol``, ``genq_weights``, ``missing``), on
arrays vectorized over the outputs (no Python loop per output).  Output ``j``
equals ``RandomEffectsMeta(...).fit(X, y[:, j], sample_var=v[:, j])`` on the
studies present in column ``j``.

``y`` and ``sample_var`` held as Dask arrays chunked along the outputs (e.g.
10^7 variants x 30 cohorts, more than one worker's memory) are fitted chunk by
chunk on the workers of a Dask cluster; the results are Dask arrays, and the
inputs are never collected on one process.
"""

import warnings
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import clone

from skmeta._random_effects import _warn_output_flags
from skmeta.utils._validation import (
    as_float_array,
    check_confidence_level,
    check_sample_var,
)

__all__ = ["OutputFits", "fit_outputs"]

#: Adjustments of ``fdr``: Benjamini-Hochberg and Benjamini-Yekutieli (the
#: methods of :func:`scipy.stats.false_discovery_control`).
FDR_METHODS = ("bh", "by")

#: Per-output fields of the results, in the order of the columns of
#: :meth:`OutputFits.to_frame` (the coefficient fields have one column per term).
_COEFFICIENT_FIELDS = (
    "estimate",
    "se",
    "statistic",
    "p_value",
    "ci_lower",
    "ci_upper",
)
_OUTPUT_FIELDS = ("q", "q_pvalue", "i2", "h2", "qm", "qm_pvalue", "loglik")
#: Per-output problems that the in-memory fit reports as warnings.
_FLAGS = ("estimable", "converged", "limit", "kh_degenerate")


@dataclass(frozen=True, repr=False)
class OutputFits:
    """Per-output results of :func:`fit_outputs` (leading axis: output).

    The arrays are NumPy arrays, or Dask arrays (lazy) when the inputs were Dask
    arrays; :meth:`compute` turns the latter into the former.

    Attributes
    ----------
    terms : tuple of str
        The coefficients: ``"intercept"``, then the columns of ``X``.
    n_studies : ndarray of shape (m,)
        Studies that cover each output.
    tau2, tau2_se : ndarray of shape (m,)
        :math:`\\hat\\tau^2_j` and its standard error (NaN for a fixed or
        fixed-effect :math:`\\tau^2`).
    estimate, se, statistic, p_value, ci_lower, ci_upper : ndarray of shape (m, p)
        The coefficient table of every output (columns: ``terms``): z or t
        statistics as chosen by ``inference``, two-sided p-values, confidence
        intervals at ``confidence_level``.
    q_value : ndarray of shape (m, p) or None
        False discovery rate adjusted p-values of each term across the outputs
        (``fdr``), else None.
    q, q_pvalue : ndarray of shape (m,)
        Cochran's test of (residual) heterogeneity.
    i2, h2 : ndarray of shape (m,)
        :math:`I^2` (percent) and :math:`H^2`.
    qm, qm_pvalue : ndarray of shape (m,)
        Omnibus test of the moderators (NaN without moderators).
    loglik : ndarray of shape (m,)
        Restricted log-likelihood (``method="reml"``) or log-likelihood.
    converged : ndarray of shape (m,)
        Whether the estimation of :math:`\\tau^2` converged.
    method, inference : str
    confidence_level : float
    fdr : str or None
    """

    terms: tuple
    n_studies: Any
    tau2: Any
    tau2_se: Any
    estimate: Any
    se: Any
    statistic: Any
    p_value: Any
    ci_lower: Any
    ci_upper: Any
    q: Any
    q_pvalue: Any
    i2: Any
    h2: Any
    qm: Any
    qm_pvalue: Any
    loglik: Any
    converged: Any
    q_value: Any
    method: str
    inference: str
    confidence_level: float
    fdr: str | None
    _flags: Any = field(default=None, repr=False)

    def __repr__(self):
        kind = "Dask" if self.is_lazy else "NumPy"
        return (
            f"OutputFits(n_outputs={self.n_outputs}, terms={self.terms}, "
            f"method={self.method!r}, inference={self.inference!r}, {kind} arrays)"
        )

    @property
    def n_outputs(self):
        """Number of outputs m."""
        return int(self.tau2.shape[0])

    @property
    def is_lazy(self):
        """Whether the arrays are Dask arrays (not computed yet)."""
        return not isinstance(self.tau2, np.ndarray)

    def _arrays(self):
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("terms", "method", "inference", "confidence_level", "fdr")
            and getattr(self, f.name) is not None
        }

    def compute(self, **kwargs):
        """Compute the Dask arrays (one pass over the inputs) and check the fits.

        Warns as the in-memory fit does: outputs that cannot be estimated,
        that did not converge, or degenerate ones.  Returns ``self`` when the
        arrays are NumPy arrays already.

        Parameters
        ----------
        **kwargs
            Passed to :func:`dask.compute` (e.g. ``scheduler=``).

        Returns
        -------
        OutputFits
        """
        if not self.is_lazy:
            return self
        import dask

        arrays = self._arrays()
        values = dask.compute(*arrays.values(), **kwargs)
        computed = type(self)(
            **{**self._fields_dict(), **dict(zip(arrays, values, strict=True))}
        )
        flags = np.asarray(computed._flags, dtype=float).T
        _warn_output_flags(_Flags(*flags), len(self.terms), stacklevel=2)
        return computed

    def persist(self, **kwargs):
        """Persist the Dask arrays in the cluster's memory (see ``dask.persist``).

        Returns
        -------
        OutputFits
            With persisted Dask arrays (``self`` for NumPy arrays).
        """
        if not self.is_lazy:
            return self
        import dask

        arrays = self._arrays()
        values = dask.persist(*arrays.values(), **kwargs)
        return type(self)(
            **{**self._fields_dict(), **dict(zip(arrays, values, strict=True))}
        )

    def _fields_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_frame(self):
        """One row per output, indexed by the output's position (``"output"``).

        Columns: ``n_studies, tau2, tau2_se``; for each term ``estimate_<term>,
        se_<term>, statistic_<term>, p_value_<term>, ci_lower_<term>,
        ci_upper_<term>`` (and ``q_value_<term>`` with ``fdr``); then ``q,
        q_pvalue, i2, h2`` (``qm, qm_pvalue`` with moderators), ``loglik`` and
        ``converged``.  Dask arrays are computed (the results, one row per
        output, are collected; the inputs are not).

        Returns
        -------
        DataFrame
        """
        res = self.compute()
        columns = {
            "n_studies": res.n_studies,
            "tau2": res.tau2,
            "tau2_se": res.tau2_se,
        }
        names = [
            *_COEFFICIENT_FIELDS,
            *(("q_value",) if res.q_value is not None else ()),
        ]
        for j, term in enumerate(res.terms):
            for name in names:
                columns[f"{name}_{term}"] = getattr(res, name)[:, j]
        moderators = len(res.terms) - int(res.terms[:1] == ("intercept",))
        for name in _OUTPUT_FIELDS:
            if name.startswith("qm") and not moderators:
                continue
            columns[name] = getattr(res, name)
        columns["converged"] = res.converged
        frame = pd.DataFrame(columns)
        frame.index.name = "output"
        return frame

    def __str__(self):
        head = (
            f"Random-effects meta-analyses of {self.n_outputs} outputs "
            f"(tau^2 estimator: {self.method}; inference: {self.inference})"
        )
        if self.is_lazy:
            chunks = self.tau2.numblocks[0]
            return (
                f"{head}\nlazy Dask arrays in {chunks} chunk(s): call .compute() "
                "or .to_frame(), or store the arrays"
            )
        lines = [head]
        n = self.n_studies
        lines.append(
            f"studies per output: {n.min()} to {n.max()} (median {np.median(n):g})"
        )
        estimable = ~np.isnan(self.tau2)
        lines.append(
            f"not estimable: {int((~estimable).sum())}; "
            f"not converged: {int((estimable & ~self.converged).sum())}"
        )
        if estimable.any():
            t = np.percentile(self.tau2[estimable], [25, 50, 75])
            lines.append(f"tau^2: median {t[1]:.4g} (quartiles {t[0]:.4g}, {t[2]:.4g})")
        alpha = round(1.0 - self.confidence_level, 10)
        for j, term in enumerate(self.terms):
            text = f"{term}: p < {alpha:g} in {int((self.p_value[:, j] < alpha).sum())}"
            if self.q_value is not None:
                hits = int((self.q_value[:, j] < alpha).sum())
                text += f"; q-value ({self.fdr.upper()}) < {alpha:g} in {hits}"
            lines.append(text + " outputs")
        return "\n".join(lines)


class _Flags(NamedTuple):
    """Per-output problems of a fit (what :func:`_warn_output_flags` reads)."""

    estimable: Any
    converged: Any
    limit: Any
    kh_degenerate: Any


def fit_outputs(
    estimator, X, y, *, sample_var, confidence_level=0.95, fdr=None
) -> OutputFits:
    r"""Fit a random-effects meta-analysis to every output (column) of ``y``.

    Parameters
    ----------
    estimator : RandomEffectsMeta
        Its hyperparameters define the model: ``method``, ``tau2``,
        ``inference``, ``fit_intercept``, ``max_iter``, ``tol``,
        ``genq_weights`` and ``missing`` (it is not fitted or modified).
    X : array-like of shape (k, p), DataFrame or None
        Moderators shared by all outputs; ``None``: intercept-only
        meta-analyses.
    y : array-like or Dask array of shape (k, m) (or (k,))
        Effect sizes: one column per output (voxel, variant, ...).
    sample_var : array-like or Dask array of shape (k, m), or of shape (k,)
        Sampling variances (finite, >= 0), per study and output, or per study
        for all outputs.  With ``missing="drop"``, NaN in ``y`` or
        ``sample_var`` leaves that study out of that output only.
    confidence_level : float, default=0.95
        Level of the coefficients' confidence intervals.
    fdr : {"bh", "by"}, default=None
        Add ``q_value``: the p-values of each term adjusted across the outputs
        for the false discovery rate, by Benjamini-Hochberg (``"bh"``) or
        Benjamini-Yekutieli (``"by"``, valid under any dependence), as
        :func:`scipy.stats.false_discovery_control`; outputs that cannot be
        estimated are left out of the family.

    Returns
    -------
    OutputFits
        NumPy arrays, or Dask arrays chunked as the outputs of ``y`` when ``y``
        is a Dask array (call :meth:`OutputFits.compute`, store them, or reduce
        them on the cluster).

    Raises
    ------
    ValueError
        For invalid inputs (NaN with ``missing="raise"``, negative variances,
        zero variances with a method that weights by ``1/v``, a design with no
        more rows than columns or rank-deficient).  With Dask arrays the checks
        of ``y`` and ``sample_var`` run on the workers, when the results are
        computed.

    Warns
    -----
    UserWarning
        Outputs with no more studies than parameters (or a design that is
        rank-deficient on their studies) get NaN; one warning counts them (for
        Dask arrays, from :meth:`OutputFits.compute`).
    sklearn.exceptions.ConvergenceWarning
        Outputs whose :math:`\tau^2` did not converge (``converged`` False).

    Notes
    -----
    In memory this is ``RandomEffectsMeta(...).fit(X, y, sample_var=v)`` with 2-D
    ``y`` (one meta-analysis per column, vectorized over the outputs; memory
    O(k m)) and its coefficient table, as arrays with one row per output.

    On a Dask cluster the same fit runs on each chunk of outputs
    (:func:`dask.array.map_blocks`); ``y`` is rechunked to hold all studies in
    each chunk.  With ``fdr`` the p-values of a term (8 bytes per output) are
    gathered on one worker to be ranked.

    References
    ----------
    Benjamini, Y., & Hochberg, Y. (1995). Controlling the false discovery rate.
    Journal of the Royal Statistical Society B, 57(1), 289-300.

    Benjamini, Y., & Yekutieli, D. (2001). The control of the false discovery
    rate in multiple testing under dependency. The Annals of Statistics, 29(4),
    1165-1188.

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta import RandomEffectsMeta
    >>> from skmeta.distributed import fit_outputs
    >>> rng = np.random.default_rng(0)
    >>> v = rng.uniform(0.01, 0.1, size=(12, 500))
    >>> y = 0.3 + rng.normal(size=(12, 500)) * np.sqrt(v + 0.05)
    >>> res = fit_outputs(RandomEffectsMeta(), None, y, sample_var=v, fdr="bh")
    >>> res.estimate.shape, res.tau2.shape
    ((500, 1), (500,))
    """
    from skmeta._random_effects import RandomEffectsMeta

    if not isinstance(estimator, RandomEffectsMeta):
        raise ValueError(
            "estimator must be a RandomEffectsMeta (its hyperparameters define the "
            f"model), got {type(estimator).__name__}."
        )
    estimator._validate_params()
    level = check_confidence_level(confidence_level)
    if fdr is not None and fdr not in FDR_METHODS:
        raise ValueError(f"fdr must be one of {FDR_METHODS} or None, got {fdr!r}.")
    if sample_var is None:
        raise ValueError(
            "sample_var is required: the sampling variances of the studies, of the "
            "shape of y or one per study."
        )
    if _is_dask(y) or _is_dask(sample_var):
        return _fit_dask(estimator, X, y, sample_var, level, fdr)
    if not isinstance(y, pd.DataFrame):
        y = np.asarray(y)
        if y.ndim == 1:
            y = y[:, None]
    v = sample_var
    if np.ndim(v) == 2 and np.shape(v)[1] == 1 and np.shape(y)[1] != 1:
        v = np.asarray(v)[:, 0]  # one variance per study, for every output
    est = clone(estimator).fit(X, y, sample_var=v)
    arrays = _output_arrays(est, level)
    q_value = None
    if fdr is not None:
        p_value = arrays["p_value"]
        q_value = (
            np.column_stack(
                [_q_values(p_value[:, j], fdr) for j in range(p_value.shape[1])]
            )
            if p_value.shape[1]
            else np.zeros(p_value.shape)
        )
    return OutputFits(
        terms=tuple(est._term_names),
        q_value=q_value,
        method=est.method,
        inference=est.inference,
        confidence_level=level,
        fdr=fdr,
        **arrays,
    )


def _output_arrays(est, confidence_level):
    """The per-output arrays of a fitted multi-output ``RandomEffectsMeta``."""
    table = est._coefficient_table(confidence_level)
    fits = est._fits
    return {
        "n_studies": est.n_studies_,
        "tau2": est.tau2_,
        "tau2_se": est.tau2_se_,
        **{name: getattr(table, name) for name in _COEFFICIENT_FIELDS},
        "q": est.q_,
        "q_pvalue": est.q_pvalue_,
        "i2": est.i2_,
        "h2": est.h2_,
        "qm": est.qm_,
        "qm_pvalue": est.qm_pvalue_,
        "loglik": est.loglik_,
        "converged": est.converged_,
        "_flags": np.column_stack([getattr(fits, name) for name in _FLAGS]),
    }


def _is_dask(a):
    return type(a).__module__.split(".")[0] == "dask"


def _q_values(p_value, method):
    """FDR-adjusted p-values over the outputs with a p-value (NaN elsewhere)."""
    q = np.full(p_value.shape, np.nan)
    finite = ~np.isnan(p_value)
    if finite.any():
        q[finite] = stats.false_discovery_control(p_value[finite], method=method)
    return q


# --------------------------------------------------------------------------------------
# Dask: chunks of outputs on the workers
# --------------------------------------------------------------------------------------


def _layout(p):
    """Rows of the packed per-chunk result: name -> (first row, number of rows)."""
    rows = {}
    start = 0
    for name, size in (
        ("n_studies", 1),
        ("tau2", 1),
        ("tau2_se", 1),
        *((name, p) for name in _COEFFICIENT_FIELDS),
        *((name, 1) for name in _OUTPUT_FIELDS),
        ("converged", 1),
        ("_flags", len(_FLAGS)),
    ):
        rows[name] = (start, size)
        start += size
    return rows, start


def _packed_block(y, v, *, estimator, design, level, shared_v):
    """Fit one chunk of outputs on a worker: a (rows, chunk) float array.

    The chunk's values are checked as ``fit`` checks them; the fit is the
    estimator's, on the design checked by the client. Its warnings are counted
    again from the flags by :meth:`OutputFits.compute`, so they are silenced
    here.
    """
    est = clone(estimator)
    drop = est.missing == "drop"
    y = as_float_array(y, "y", ndim=(2,), allow_nan=drop)
    v = check_sample_var(shared_v if v is None else v, y.shape, allow_nan=drop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est._fit_outputs(design, y, v, None)
    arrays = _output_arrays(est, level)
    rows, n_rows = _layout(design.shape[1])
    out = np.empty((n_rows, y.shape[1]))
    for name, (start, size) in rows.items():
        value = np.asarray(arrays[name], dtype=float)
        out[start : start + size] = value.T if value.ndim == 2 else value
    return out


def _packed_shared(y, *, estimator, design, level, shared_v):
    """:func:`_packed_block` for sampling variances shared by all outputs."""
    return _packed_block(
        y, None, estimator=estimator, design=design, level=level, shared_v=shared_v
    )


def _fit_dask(estimator, X, y, v, level, fdr):
    """The fit of each chunk of outputs on the workers (lazy Dask arrays)."""
    import dask.array as da

    y = da.asarray(y)
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D, got an array of shape {y.shape}.")
    if y.ndim == 1:
        y = y[:, None]
    k = y.shape[0]
    X, terms = _check_X(estimator, X, k)
    keep = ~np.isnan(X).any(axis=1)  # studies left out of every output
    shared_v = None
    if _is_dask(v) and v.ndim == 2:
        if tuple(v.shape) != tuple(y.shape):
            raise ValueError(
                f"sample_var has shape {tuple(v.shape)} but y has shape "
                f"{tuple(y.shape)}."
            )
    else:
        v = check_sample_var(np.asarray(v), tuple(y.shape), allow_nan=True)
        if v.ndim == 2 and v.strides[1] == 0:
            shared_v, v = np.asarray(v[:, 0]), None  # one per study
        else:
            v = da.from_array(v, chunks=y.chunks)
    if not keep.all():
        X, y = X[keep], y[keep]
        v = None if v is None else v[keep]
        shared_v = None if shared_v is None else shared_v[keep]
    y = y.rechunk({0: -1})
    if v is not None:
        v = v.rechunk(y.chunks)
    p = len(terms)
    rows, n_rows = _layout(p)
    args = (y,) if v is None else (y, v)
    packed = da.map_blocks(
        _packed_block if v is not None else _packed_shared,
        *args,
        estimator=clone(estimator),
        design=clone(estimator)._design(X),
        level=level,
        shared_v=shared_v,
        chunks=((n_rows,), y.chunks[1]),
        dtype=float,
        meta=np.empty((0, 0)),
    )

    def take(name):
        start, size = rows[name]
        part = packed[start : start + size]
        several = name in _COEFFICIENT_FIELDS or name == "_flags"
        return part.T if several else part[0]

    arrays = {name: take(name) for name in rows}
    arrays["n_studies"] = arrays["n_studies"].astype(int)
    arrays["converged"] = arrays["converged"].astype(bool)
    q_value = None
    if fdr is not None:
        q_value = da.stack(
            [_dask_q_values(arrays["p_value"][:, j], fdr) for j in range(p)], axis=1
        )
    return OutputFits(
        terms=terms,
        q_value=q_value,
        method=estimator.method,
        inference=estimator.inference,
        confidence_level=level,
        fdr=fdr,
        **arrays,
    )


def _check_X(estimator, X, k):
    """``X`` as floats (NaN allowed with ``missing="drop"``) and the term names,
    checked on the client (the design is shared by every chunk)."""
    names = None
    if X is None or getattr(X, "shape", (0, 1))[1:] == (0,):
        X = np.empty((k, 0))
    else:
        if isinstance(X, pd.DataFrame):
            names = [str(c) for c in X.columns]
        X = as_float_array(X, "X", ndim=(2,), allow_nan=estimator.missing == "drop")
        if X.shape[0] != k:
            raise ValueError(f"X has {X.shape[0]} rows but y has {k} rows (studies).")
    probe = clone(estimator)
    if names is not None:
        probe.feature_names_in_ = np.asarray(names, dtype=object)
    design = probe._design(X[~np.isnan(X).any(axis=1)])
    probe._check_design(design)  # too few studies, rank-deficient: now
    return X, tuple(probe._design_term_names(design.shape[1]))


def _fdr_table(*chunks, method):
    """Sorted p-values of all outputs and their adjusted values (one worker)."""
    p = np.concatenate(chunks)
    p = np.sort(p[~np.isnan(p)])
    return p, (stats.false_discovery_control(p, method=method) if p.size else p)


def _lookup_q_values(p, table):
    """Adjusted p-values of a chunk from the sorted table (ties: the same value)."""
    ordered, adjusted = table
    q = np.full(p.shape, np.nan)
    finite = ~np.isnan(p)
    if finite.any():
        q[finite] = adjusted[np.searchsorted(ordered, p[finite], side="right") - 1]
    return q


def _dask_q_values(p, method):
    import dask
    import dask.array as da

    blocks = list(p.to_delayed().ravel())
    table = dask.delayed(_fdr_table)(*blocks, method=method)
    parts = [
        da.from_delayed(
            dask.delayed(_lookup_q_values)(block, table), shape=(size,), dtype=float
        )
        for block, size in zip(blocks, p.chunks[0], strict=True)
    ]
    return da.concatenate(parts)
