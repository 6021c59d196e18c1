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
from sklearn.exceptions import ConvergenceWarning

from skmeta._engine._gls import dependent_columns
from skmeta._engine._inference import critical_value, two_sided_pvalue
from skmeta._engine._multioutput import fit_random_effects
from skmeta._engine._tau2 import tau2_method
from skmeta.utils._validation import as_float_array, check_confidence_level

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
        _warn_flags(computed._flags, len(self.terms), stacklevel=3)
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


class _Spec(NamedTuple):
    """What a block of outputs needs to be fitted (picklable, for the workers)."""

    method: str
    tau2: float | None
    inference: str
    max_iter: int
    tol: float
    genq_weights: Any
    missing: str
    moderators: tuple
    confidence_level: float


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
    The fit is vectorized over the outputs: the weighted moments of all outputs
    are matrix products and the iterative estimators (REML, ML, PM) update all
    outputs at once, each with its own convergence test; memory is O(k m).

    On a Dask cluster the fit runs on each chunk of outputs
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
    drop = estimator.missing == "drop"
    lazy = _is_dask(y) or _is_dask(sample_var)
    if lazy:
        import dask.array as da

        y = da.asarray(y)
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got an array of shape {y.shape}.")
        if y.ndim == 1:
            y = y[:, None]
    else:
        y = _as_float(y, "y")
        if y.ndim == 1:
            y = y[:, None]
    k = y.shape[0]
    v = _check_sample_var(sample_var, y, lazy)
    X, names = _check_X(X, k, drop)
    keep = ~np.isnan(X).any(axis=1)
    if not keep.all():
        X, y = X[keep], y[keep]
        v = v[keep]
    design = np.column_stack([np.ones(X.shape[0]), X]) if estimator.fit_intercept else X
    terms = (["intercept"] if estimator.fit_intercept else []) + names
    _check_design(design, terms)
    spec = _Spec(
        method=estimator.method,
        tau2=None if estimator.tau2 is None else float(estimator.tau2),
        inference=estimator.inference,
        max_iter=int(estimator.max_iter),
        tol=float(estimator.tol),
        genq_weights=_check_genq_weights(estimator, keep),
        missing=estimator.missing,
        moderators=tuple(range(int(estimator.fit_intercept), design.shape[1])),
        confidence_level=level,
    )
    if lazy:
        return _fit_dask(design, y, v, spec, tuple(terms), fdr)
    arrays = _fit_block(design, y, v, spec)
    q_value = None
    if fdr is not None:
        q_value = (
            np.column_stack(
                [
                    _q_values(arrays["p_value"][:, j], fdr)
                    for j in range(design.shape[1])
                ]
            )
            if design.shape[1]
            else np.zeros((y.shape[1], 0))
        )
    _warn_flags(arrays["_flags"], design.shape[1], stacklevel=2)
    return OutputFits(
        terms=tuple(terms),
        q_value=q_value,
        method=spec.method,
        inference=spec.inference,
        confidence_level=level,
        fdr=fdr,
        **arrays,
    )


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------


def _is_dask(a):
    return type(a).__module__.split(".")[0] == "dask"


def _as_float(values, name):
    """1-D or 2-D float64 array (no copy of a float64 ndarray: the values are
    checked where the outputs are fitted, see :func:`_check_block`)."""
    if type(values) is np.ndarray and values.dtype == np.float64:
        if values.ndim not in (1, 2):
            raise ValueError(
                f"{name} must be 1-D or 2-D, got an array of shape {values.shape}."
            )
        if values.shape[0] == 0:
            raise ValueError(f"{name} is empty: at least one study is needed.")
        return values
    return as_float_array(values, name, ndim=(1, 2), allow_nan=True)


def _check_sample_var(sample_var, y, lazy):
    if sample_var is None:
        raise ValueError(
            "sample_var is required: the sampling variances of the studies, of the "
            "shape of y or one per study."
        )
    if _is_dask(sample_var):
        v = sample_var
    else:
        v = _as_float(sample_var, "sample_var")
        if v.ndim == 2 and v.shape[1] == 1 and y.shape[1] != 1:
            v = v[:, 0]
    if v.ndim == 1:
        if v.shape[0] != y.shape[0]:
            raise ValueError(
                f"sample_var has {v.shape[0]} entries but y has {y.shape[0]} rows "
                "(studies)."
            )
        if np.any(v < 0):
            raise ValueError("sample_var must be >= 0.")
        return np.asarray(v)
    if tuple(v.shape) != tuple(y.shape):
        raise ValueError(
            f"sample_var has shape {tuple(v.shape)} but y has shape {tuple(y.shape)}."
        )
    if lazy and not _is_dask(v):
        import dask.array as da

        v = da.from_array(v, chunks=y.chunks)
    return v


def _check_X(X, k, drop):
    if X is None or getattr(X, "shape", (0, 1))[1:] == (0,):
        return np.empty((k, 0)), []
    names = None
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
    X = as_float_array(X, "X", ndim=(2,), allow_nan=drop)
    if X.shape[0] != k:
        raise ValueError(f"X has {X.shape[0]} rows but y has {k} rows (studies).")
    return X, names or [f"x{j}" for j in range(X.shape[1])]


def _check_design(design, terms):
    k, p = design.shape
    if k <= p:
        raise ValueError(
            f"Too few studies: the model has {p} fixed-effect parameter(s) and needs "
            f"more than that many studies, got {k}."
        )
    bad = dependent_columns(design)
    if bad:
        raise ValueError(
            "The design matrix [intercept, X] is rank-deficient: column(s) "
            f"{[terms[j] for j in bad]} are constant or linear combinations of the "
            "columns before them. Remove or recode those moderators."
        )


def _check_genq_weights(estimator, keep):
    if estimator.method != "genq" or estimator.tau2 is not None:
        return None
    a = estimator.genq_weights
    if a is None:
        raise ValueError(
            "method='genq' requires genq_weights: 'inverse_var', 'unit', a callable "
            "of sample_var, or one weight per study."
        )
    if isinstance(a, str) or callable(a):
        return a
    a = np.asarray(a, dtype=float).ravel()
    if a.shape != keep.shape:
        raise ValueError(
            f"genq_weights has {a.shape[0]} entries but {keep.size} studies."
        )
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError("genq_weights must be finite and > 0.")
    return a[keep]


def _check_block(y, v, spec):
    """Checks of a block of ``y`` and ``sample_var`` (run where it is fitted)."""
    finite = np.isfinite(y).all() and np.isfinite(v).all()
    if not finite:
        for name, a in (("y", y), ("sample_var", v)):
            if spec.missing == "raise" and np.isnan(a).any():
                raise ValueError(
                    f"{name} contains NaN (a missing value; use missing='drop' to "
                    "leave out studies with missing values)."
                )
            if np.isinf(a).any():
                raise ValueError(f"{name} contains infinity.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column of NaN
        smallest = np.nanmin(v) if v.size else 0.0
    if smallest < 0:
        raise ValueError("sample_var must be >= 0.")
    if smallest > 0:
        return
    if spec.tau2 is None and tau2_method(spec.method).needs_positive_var:
        raise ValueError(
            f"method={spec.method!r} weights studies by 1/sample_var, so sample_var "
            "must be > 0; use method='reml', 'ml', 'he' or 'sj' for zero variances."
        )
    if spec.tau2 == 0.0:
        raise ValueError(
            "Zero total variance: sample_var has zeros and tau2 is fixed at 0, so "
            "the model is degenerate. Pass positive sample_var or tau2 > 0."
        )


def _genq_weights(spec, v):
    a = spec.genq_weights
    if a is None:
        return None
    if isinstance(a, str):
        if a == "unit":
            return np.ones_like(v)
        if np.any(v <= 0):
            raise ValueError("genq_weights='inverse_var' needs sample_var > 0.")
        with np.errstate(invalid="ignore"):
            return 1.0 / v
    if callable(a):
        a = np.asarray(a(v), dtype=float)
        if a.shape != v.shape:
            raise ValueError(
                f"genq_weights returned shape {a.shape}, expected {v.shape}."
            )
        finite = a[~np.isnan(v)]
        if not np.all(np.isfinite(finite)) or np.any(finite <= 0):
            raise ValueError("genq_weights must be finite and > 0.")
        return a
    return np.broadcast_to(a[:, None], v.shape)


# --------------------------------------------------------------------------------------
# fitting a block of outputs (in this process, or on a worker)
# --------------------------------------------------------------------------------------


def _fit_block(design, y, v, spec):
    """Validate and fit a block of outputs; a dict of per-output arrays."""
    y = np.asarray(y, dtype=float)
    v = np.asarray(v, dtype=float)
    if v.ndim == 1:
        v = np.broadcast_to(v[:, None], y.shape)
    _check_block(y, v, spec)
    fits = fit_random_effects(
        design,
        y,
        v,
        method=spec.method,
        tau2=spec.tau2,
        inference=spec.inference,
        max_iter=spec.max_iter,
        tol=spec.tol,
        weights=_genq_weights(spec, v),
        moderators=spec.moderators,
    )
    table = _coefficient_tables(fits, spec.confidence_level)
    return {
        "n_studies": fits.n_studies,
        "tau2": fits.tau2,
        "tau2_se": fits.tau2_se,
        **table,
        "q": fits.q,
        "q_pvalue": fits.q_pvalue,
        "i2": fits.i2,
        "h2": fits.h2,
        "qm": fits.qm,
        "qm_pvalue": fits.qm_pvalue,
        "loglik": fits.loglik,
        "converged": fits.converged,
        "_flags": np.column_stack([getattr(fits, name) for name in _FLAGS]),
    }


def _coefficient_tables(fits, confidence_level):
    """The coefficient table of every output (``coefficient_table``, per output)."""
    beta = fits.beta
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(np.clip(np.diagonal(fits.cov, axis1=1, axis2=2), 0.0, None))
        statistic = beta / se
    dof = fits.coef_dof
    finite = np.isfinite(dof)
    # few distinct degrees of freedom: one quantile each
    crit = np.full(dof.shape, critical_value(confidence_level, np.inf))
    if finite.any():
        values, inverse = np.unique(dof[finite], return_inverse=True)
        crit[finite] = critical_value(confidence_level, values)[inverse]
    p_value = two_sided_pvalue(statistic, np.where(finite, dof, np.inf)[:, None])
    half = crit[:, None] * se
    return {
        "estimate": beta,
        "se": se,
        "statistic": statistic,
        "p_value": np.where(np.isnan(statistic), np.nan, p_value),
        "ci_lower": beta - half,
        "ci_upper": beta + half,
    }


def _warn_flags(flags, n_params, stacklevel):
    estimable, converged, limit, kh_degenerate = np.asarray(flags, float).T
    estimable, converged, kh_degenerate = (
        a.astype(bool) for a in (estimable, converged, kh_degenerate)
    )
    unbounded = limit == 2
    m = estimable.shape[0]
    bad = int((~estimable).sum())
    if bad:
        warnings.warn(
            f"{bad} of {m} outputs have no more studies than the {n_params} "
            "fixed-effect parameter(s) of the model, or a design that is "
            "rank-deficient on their studies: their estimates are NaN.",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
    failed = int((estimable & ~converged).sum())
    if failed:
        warnings.warn(
            f"tau^2 estimation did not converge for {failed} of {m} outputs "
            "(converged is False there); increase max_iter.",
            ConvergenceWarning,
            stacklevel=stacklevel + 1,
        )
    if unbounded.any():
        warnings.warn(
            f"In {int(unbounded.sum())} output(s) the likelihood increases without "
            "bound as tau2 -> 0: the studies with zero sample_var are fitted "
            "exactly. tau2 is reported as 0 there.",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
    if kh_degenerate.any():
        warnings.warn(
            f"In {int(kh_degenerate.sum())} output(s) the weighted residuals are "
            "zero to rounding (y is fitted exactly): the Knapp-Hartung variance "
            "factor is 0 and the tests are undefined.",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


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


def _packed_block(y, v, *, design, spec, shared_v):
    """Fit one chunk of outputs on a worker: a (rows, chunk) float array."""
    arrays = _fit_block(design, y, shared_v if v is None else v, spec)
    rows, n_rows = _layout(design.shape[1])
    out = np.empty((n_rows, y.shape[1]))
    for name, (start, size) in rows.items():
        value = np.asarray(arrays[name], dtype=float)
        out[start : start + size] = value.T if value.ndim == 2 else value
    return out


def _fit_dask(design, y, v, spec, terms, fdr):
    import dask.array as da

    y = y.rechunk({0: -1})
    shared_v = None
    if v.ndim == 1:
        shared_v, v = np.asarray(v, dtype=float), None
    else:
        v = v.rechunk(y.chunks)
    p = design.shape[1]
    rows, n_rows = _layout(p)
    args = (y,) if v is None else (y, v)
    packed = da.map_blocks(
        _packed_block if v is not None else _packed_shared,
        *args,
        design=design,
        spec=spec,
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
        method=spec.method,
        inference=spec.inference,
        confidence_level=spec.confidence_level,
        fdr=fdr,
        **arrays,
    )


def _packed_shared(y, *, design, spec, shared_v):
    """:func:`_packed_block` for sampling variances shared by all outputs."""
    return _packed_block(y, None, design=design, spec=spec, shared_v=shared_v)


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
