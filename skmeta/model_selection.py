r"""Multimodel inference: all-subsets model selection and model averaging.

:func:`multimodel` fits a meta-analysis model by maximum likelihood on every
subset of a set of candidate moderators, ranks the fits by an information
criterion and averages the coefficients with Akaike weights (Burnham & Anderson
2002), as the R packages glmulti and MuMIn are used with metafor (Cinar et al.
2021).  It is the information-theoretic counterpart of cross-validated moderator
selection (``SequentialFeatureSelector``, ``GridSearchCV`` over column subsets):
see the example gallery.

References
----------
Burnham, K. P., & Anderson, D. R. (2002). *Model selection and multimodel
inference: A practical information-theoretic approach* (2nd ed.). Springer.

Burnham, K. P., & Anderson, D. R. (2004). Multimodel inference: Understanding AIC
and BIC in model selection. *Sociological Methods & Research*, 33, 261-304.

Cinar, O., Umbanhowar, J., Hoeksema, J. D., & Viechtbauer, W. (2021). Using
information-theoretic approaches for model selection in meta-analysis. *Research
Synthesis Methods*, 12, 537-556.
"""

from __future__ import annotations

import itertools
import math
import warnings
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError

from skmeta._engine import _multimodel
from skmeta._engine._inference import coefficient_table
from skmeta._summary import _format_frame, coefficient_frame
from skmeta.utils._threads import single_blas_thread
from skmeta.utils._validation import check_confidence_level, check_sample_var

__all__ = ["MultimodelResult", "multimodel"]

_CRITERIA = {"aicc": "AICc", "aic": "AIC", "bic": "BIC"}
#: tau^2 "methods" whose log-likelihood is the ML one (kept as given).
_ML_METHODS = ("ml", "fe")
#: Candidate models per joblib task and worker: enough tasks to balance the load,
#: few enough that the per-task overhead stays small next to ~1 ms fits.
_TASKS_PER_WORKER = 4
#: Number of studies from which the fits use threaded BLAS (below it, the matrix
#: products are too small to gain from threads).
_THREADED_BLAS_MIN_ROWS = 10_000
#: Rows of the model table printed by ``str()``.
_PRINTED_MODELS = 10


@dataclass(frozen=True)
class MultimodelResult:
    """Result of :func:`multimodel`.

    Attributes
    ----------
    table : DataFrame
        One row per candidate model, best first: ``terms`` (tuple of moderator
        names), ``n_params`` (number of estimated parameters K, counting
        variance components), ``loglik`` (maximised log-likelihood),
        ``criterion`` (the information criterion's value), ``delta`` (difference
        to the best model) and ``weight`` (Akaike weight).
    importance : Series
        Sum of the weights of the models containing each moderator, largest
        first.
    full_average : Series
        Model-averaged coefficients (intercept first) over all models, a term
        counting as 0 where it is absent.
    full_average_table : DataFrame
        The full average with inference: columns ``estimate, se, statistic,
        p_value, ci_lower, ci_upper``, with the revised unconditional standard
        error (Burnham & Anderson 2004) and z tests.
    conditional_average : Series
        Model-averaged coefficients over the models that contain each term
        (weights renormalised).
    conditional_average_table : DataFrame
        The conditional average with inference, as ``full_average_table``.
    full_average_cov : DataFrame
        Unconditional covariance of the full average.
    coefficients, std_errors : DataFrame
        Estimates and standard errors of every model (rows as ``table``), NaN
        where a term is absent.
    criterion : {"aicc", "aic", "bic"}
    terms : list of str
        The candidate moderators.
    n_samples : int
        Number of studies used by every model.
    n_dropped : int
        Studies left out for missing values (``missing="drop"``).
    fit_intercept : bool
    confidence_level : float
    """

    table: pd.DataFrame
    importance: pd.Series
    full_average: pd.Series
    full_average_table: pd.DataFrame
    conditional_average: pd.Series
    conditional_average_table: pd.DataFrame
    full_average_cov: pd.DataFrame
    coefficients: pd.DataFrame
    std_errors: pd.DataFrame
    criterion: str
    terms: list
    n_samples: int
    n_dropped: int
    fit_intercept: bool
    confidence_level: float

    def predict(self, X):
        """Model-averaged mean effect for new moderators.

        The weighted average of the candidate models' predictions, which equals
        the prediction of the full-average coefficients.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_terms)
            A DataFrame needs the candidate moderators as columns (others are
            ignored); an array has them in the order of ``terms``.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        if isinstance(X, pd.DataFrame):
            missing = [t for t in self.terms if t not in X.columns.astype(str)]
            if missing:
                raise ValueError(f"X lacks the moderator column(s) {missing}.")
            X = X.set_axis(X.columns.astype(str), axis=1)[self.terms]
        values = np.asarray(X, dtype=float)
        if values.ndim != 2 or values.shape[1] != len(self.terms):
            raise ValueError(
                f"X must have {len(self.terms)} columns ({', '.join(self.terms)}); "
                f"got shape {values.shape}."
            )
        beta = self.full_average
        intercept = float(beta["intercept"]) if self.fit_intercept else 0.0
        return values @ beta[self.terms].to_numpy() + intercept

    def plot_importance(self, ax=None):
        """Horizontal bar chart of the moderators' importance.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on (a new figure when None).

        Returns
        -------
        matplotlib Axes
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 0.45 * len(self.terms) + 1.2))
        values = self.importance.sort_values()
        ax.barh(values.index, values.to_numpy(), color="0.35")
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"importance (sum of {_CRITERIA[self.criterion]} weights)")
        ax.set_title(f"{len(self.table)} candidate models, k = {self.n_samples}")
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
        return ax

    def __str__(self):
        name = _CRITERIA[self.criterion]
        top = self.table.head(_PRINTED_MODELS).copy()
        top["terms"] = [" + ".join(t) if t else "(intercept only)" for t in top.terms]
        top = top.rename(columns={"criterion": name})
        lines = [
            f"Multimodel inference: {len(self.table)} candidate models, "
            f"maximum likelihood fits on k = {self.n_samples} studies"
            + (
                f" ({self.n_dropped} dropped for missing values)"
                if self.n_dropped
                else ""
            )
            + f", ranked by {name}",
            "",
            f"Best models (of {len(self.table)}):",
            _format_frame(top.set_index("terms")),
            "",
            "Importance (sum of weights of the models containing the term):",
            _format_frame(self.importance.to_frame("importance")),
            "",
            "Full model average (revised unconditional SE, z tests):",
            _format_frame(self.full_average_table),
            "",
            "Conditional model average:",
            _format_frame(self.conditional_average_table),
        ]
        return "\n".join(lines)

    def __repr__(self):
        return str(self)


def _as_matrix(X, k):
    """Candidate moderators as a float matrix and their names."""
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        try:
            values = X.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                "X must hold numeric moderators (encode factors as dummy "
                f"columns, e.g. with pandas.get_dummies): {exc}"
            ) from None
    else:
        try:
            values = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"X must be numeric: {exc}") from None
        if values.ndim == 1:
            values = values[:, None]
        names = [f"x{j}" for j in range(values.shape[1])] if values.ndim == 2 else []
    if values.ndim != 2:
        raise ValueError(f"X must be 2-D, got an array of shape {values.shape}.")
    if values.shape[0] != k:
        raise ValueError(f"X has {values.shape[0]} rows but y has {k} entries.")
    if values.shape[1] == 0:
        raise ValueError("X has no columns: there are no candidate moderators.")
    if len(set(names)) != len(names):
        raise ValueError("X has duplicate column names.")
    if "intercept" in names:
        raise ValueError("X must not have a column named 'intercept'.")
    return values, names


def _take_rows(value, rows, name, k):
    """Subset a routed fit parameter to the complete rows."""
    if isinstance(value, pd.DataFrame | pd.Series):
        return value.iloc[rows] if len(value) == k else value
    if name == "sample_cov" and getattr(value, "shape", None) == (k, k):
        return value[rows][:, rows]
    if np.ndim(value) >= 1 and len(value) == k:
        return np.asarray(value)[rows]
    return value


def _ml_estimator(estimator):
    """Clone ``estimator`` with ``method="ml"``, warning when that changes it."""
    params = estimator.get_params(deep=False)
    if "method" not in params:
        raise ValueError(
            f"{type(estimator).__name__} has no 'method' hyperparameter: "
            "multimodel needs an estimator fitted by maximum likelihood."
        )
    method = params["method"]
    if method in _ML_METHODS:
        return clone(estimator)
    ml = clone(estimator).set_params(method="ml")
    try:
        ml._validate_params()
    except InvalidParameterError:
        raise ValueError(
            f"{type(estimator).__name__} cannot be fitted by maximum likelihood "
            "(method='ml'), which information criteria of models with different "
            "moderators need."
        ) from None
    warnings.warn(
        f"multimodel fits every candidate with method='ml' instead of "
        f"method={method!r}: restricted (REML) and moment-based fits have no "
        "likelihoods comparable across models with different moderators. Pass "
        "an estimator with method='ml' to silence this warning.",
        UserWarning,
        stacklevel=3,
    )
    return ml


def _fit_batch(estimator, X, y, fit_params, subsets):
    """Fit ``estimator`` on each subset of the columns of ``X``.

    Returns, per subset: log-likelihood, AIC, BIC, AICc, number of parameters,
    fixed effects (design order), their covariance and whether it converged.
    """
    est = clone(estimator)
    out = []
    # Below _THREADED_BLAS_MIN_ROWS the fits' matrix products are tiny and
    # threaded BLAS only adds synchronisation costs (badly so on a busy machine).
    limit = single_blas_thread if X.shape[0] < _THREADED_BLAS_MIN_ROWS else nullcontext
    with limit(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for cols in subsets:
            est.fit(X[:, list(cols)], y, **fit_params)
            beta = np.asarray(est.coef_, dtype=float).ravel()
            if est.fit_intercept:
                beta = np.concatenate([[est.intercept_], beta])
            out.append(
                (
                    est.loglik_,
                    est.aic_,
                    est.bic_,
                    est.aicc_,
                    est.n_params_,
                    beta,
                    np.asarray(est.cov_params_, dtype=float),
                    bool(getattr(est, "converged_", True)),
                )
            )
    return out


def multimodel(
    estimator,
    X,
    y,
    *,
    sample_var,
    criterion: str = "aicc",
    max_terms: int | None = None,
    n_jobs: int | None = None,
    missing: str = "raise",
    confidence_level: float = 0.95,
    **fit_params,
) -> MultimodelResult:
    r"""Multimodel inference over all subsets of candidate moderators.

    Every subset of the columns of ``X`` (up to ``max_terms`` of them, the
    intercept-only model included) is fitted with a clone of ``estimator`` set
    to maximum likelihood (``method="ml"``), on the same studies.  The models
    are ranked by ``criterion`` with metafor's conventions -- with
    :math:`K` estimated parameters (fixed effects and variance components) and
    :math:`k` studies,

    .. math::

        \mathrm{AIC} = -2\ell + 2K,\qquad
        \mathrm{BIC} = -2\ell + K\log k,\qquad
        \mathrm{AICc} = -2\ell + \frac{2K n^*}{n^* - K - 1},\ n^* = \max(k, K+2)

    -- and weighted by Akaike weights :math:`w_r \propto e^{-\Delta_r/2}`.  The
    importance of a moderator is the sum of the weights of the models that
    contain it.  Coefficients are averaged over all models (*full* average, a
    coefficient counting as 0 where its term is absent) and over the models
    containing the term (*conditional* average), each with the revised
    unconditional standard error of Burnham & Anderson (2004, eq. 4)

    .. math::

        SE_u = \Bigl\{\sum_r w_r \bigl[SE_r^2 + (\hat\beta_r -
        \bar\beta)^2\bigr]\Bigr\}^{1/2},

    z statistics and normal confidence intervals, as MuMIn's ``model.avg``
    with metafor fits.

    Restricted likelihoods (REML) of models with different fixed effects are
    not comparable, so every candidate is fitted with ``method="ml"``: an
    estimator with another ``method`` is switched to ML with a ``UserWarning``
    (``method="fe"`` of :class:`skmeta.RandomEffectsMeta` is kept: its
    likelihood is the ML one with :math:`\tau^2 = 0`); an estimator that cannot
    be fitted by ML is an error.

    Parameters
    ----------
    estimator : skmeta estimator
        :class:`~skmeta.RandomEffectsMeta`, :class:`~skmeta.LocationScaleMeta`
        (candidates are location moderators; pass the scale design as ``Z``),
        :class:`~skmeta.MultilevelMeta` (pass ``groups``), or any estimator with
        a ``method`` hyperparameter accepting ``"ml"`` and the fitted attributes
        ``loglik_``, ``aic_``, ``bic_``, ``aicc_``, ``n_params_``,
        ``intercept_``, ``coef_`` and ``cov_params_``.
    X : DataFrame or array-like of shape (n_studies, n_candidates)
        Candidate moderators: each column is a term (DataFrame column names, or
        ``x0, x1, ...``).  Encode a factor as dummy columns (each dummy is then
        a term of its own).
    y : array-like of shape (n_studies,)
        Effect sizes.
    sample_var : array-like of shape (n_studies,)
        Sampling variances.
    criterion : {"aicc", "aic", "bic"}, default="aicc"
    max_terms : int, default=None
        Largest number of moderators in a model (all of them when None).
    n_jobs : int, default=None
        Parallel fits through ``joblib.Parallel`` (candidate models are fitted
        in batches); ``joblib.parallel_config(backend="dask")`` runs them on a
        Dask cluster.
    missing : {"raise", "drop"}, default="raise"
        Studies with a missing value (NaN) in ``y``, ``sample_var`` or any
        column of ``X``: an error, or left out of every model (the complete
        cases, so that all models are fitted to the same studies; the count is
        in ``n_dropped``).
    confidence_level : float, default=0.95
        Level of the model-averaged confidence intervals.
    **fit_params
        Further arguments of ``estimator.fit`` (``groups``, ``Z``), passed
        unchanged to every fit (restricted to the complete cases).

    Returns
    -------
    MultimodelResult

    References
    ----------
    Burnham, K. P., & Anderson, D. R. (2002). *Model selection and multimodel
    inference* (2nd ed.). Springer.

    Burnham, K. P., & Anderson, D. R. (2004). Multimodel inference:
    Understanding AIC and BIC in model selection. *Sociological Methods &
    Research*, 33, 261-304.

    Cinar, O., Umbanhowar, J., Hoeksema, J. D., & Viechtbauer, W. (2021). Using
    information-theoretic approaches for model selection in meta-analysis.
    *Research Synthesis Methods*, 12, 537-556.

    Examples
    --------
    >>> from skmeta import RandomEffectsMeta
    >>> from skmeta.datasets import load_writing_to_learn
    >>> from skmeta.model_selection import multimodel
    >>> data = load_writing_to_learn()
    >>> result = multimodel(
    ...     RandomEffectsMeta(method="ml"),
    ...     data[["length", "imag", "meta"]],
    ...     data["yi"],
    ...     sample_var=data["vi"],
    ...     missing="drop",
    ... )
    >>> result.importance.round(3).to_dict()
    {'meta': 0.688, 'length': 0.54, 'imag': 0.268}
    """
    if criterion not in _CRITERIA:
        raise ValueError(
            f"criterion must be one of {', '.join(map(repr, _CRITERIA))}; "
            f"got {criterion!r}."
        )
    if missing not in ("raise", "drop"):
        raise ValueError(f"missing must be 'raise' or 'drop'; got {missing!r}.")
    confidence_level = check_confidence_level(confidence_level)
    if sample_var is None:
        raise ValueError("multimodel needs the sampling variances: pass sample_var.")
    try:
        y = np.asarray(y, dtype=np.float64).ravel()
        v = np.asarray(sample_var, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y and sample_var must be numeric: {exc}") from None
    k = y.shape[0]
    if v.shape[0] != k:
        raise ValueError(f"sample_var has {v.shape[0]} entries but y has {k}.")
    values, names = _as_matrix(X, k)
    p = len(names)
    if max_terms is None:
        max_terms = p
    if not (isinstance(max_terms, int | np.integer) and 1 <= max_terms):
        raise ValueError(f"max_terms must be a positive integer; got {max_terms!r}.")
    max_terms = min(int(max_terms), p)

    complete = np.isfinite(y) & ~np.isnan(v) & ~np.isnan(values).any(axis=1)
    n_dropped = int(k - complete.sum())
    if n_dropped and missing == "raise":
        raise ValueError(
            f"{n_dropped} stud{'y has' if n_dropped == 1 else 'ies have'} missing "
            "values in y, sample_var or X. All candidate models must be fitted to "
            "the same studies: pass missing='drop' to use the complete cases."
        )
    rows = np.flatnonzero(complete)
    y, v, values = y[rows], v[rows], values[rows]
    v = check_sample_var(v, rows.size)
    fit_params = {
        name: _take_rows(value, rows, name, k) for name, value in fit_params.items()
    }
    model = _ml_estimator(estimator)

    subsets = [
        cols
        for size in range(max_terms + 1)
        for cols in itertools.combinations(range(p), size)
    ]
    n_tasks = min(len(subsets), _TASKS_PER_WORKER * effective_n_jobs(n_jobs))
    batches = np.array_split(np.arange(len(subsets)), max(n_tasks, 1))
    results = Parallel(n_jobs=n_jobs)(
        delayed(_fit_batch)(
            model, values, y, dict(fit_params, sample_var=v), [subsets[i] for i in b]
        )
        for b in batches
        if b.size
    )
    fits = [fit for batch in results for fit in batch]

    fit_intercept = bool(model.get_params(deep=False).get("fit_intercept", True))
    coef_names = (["intercept"] if fit_intercept else []) + names
    offset = int(fit_intercept)
    n_models, n_coef = len(subsets), len(coef_names)
    included = np.zeros((n_models, n_coef), dtype=bool)
    estimates = np.zeros((n_models, n_coef))
    covariances = np.zeros((n_models, n_coef, n_coef))
    for r, (cols, fit) in enumerate(zip(subsets, fits, strict=True)):
        index = ([0] if fit_intercept else []) + [offset + c for c in cols]
        included[r, index] = True
        estimates[r, index] = fit[5]
        covariances[r][np.ix_(index, index)] = fit[6]
    std_errors = np.sqrt(np.clip(np.diagonal(covariances, axis1=1, axis2=2), 0, None))
    loglik, aic, bic, aicc, n_params = (
        np.array([fit[j] for fit in fits], dtype=float) for j in range(5)
    )
    values_of = {"aic": aic, "bic": bic, "aicc": aicc}[criterion]
    if not np.all(np.isfinite(values_of)):
        bad = [subsets[r] for r in np.flatnonzero(~np.isfinite(values_of))]
        raise ValueError(
            f"The {_CRITERIA[criterion]} of {len(bad)} candidate model(s) is not "
            f"finite (e.g. moderators {[names[c] for c in bad[0]]}): the likelihood "
            "is unbounded or the fit degenerate."
        )
    not_converged = [subsets[r] for r, fit in enumerate(fits) if not fit[7]]
    if not_converged:
        warnings.warn(
            f"{len(not_converged)} candidate model(s) did not converge, e.g. the "
            f"model with moderators {[names[c] for c in not_converged[0]]}; their "
            "weights rest on unconverged likelihoods. Increase max_iter.",
            ConvergenceWarning,
            stacklevel=2,
        )
    delta, weights = _multimodel.akaike_weights(values_of)
    order = np.argsort(values_of, kind="stable")

    terms = [tuple(names[c] for c in subsets[r]) for r in order]
    table = pd.DataFrame(
        {
            "terms": terms,
            "n_params": n_params[order].astype(int),
            "loglik": loglik[order],
            "criterion": values_of[order],
            "delta": delta[order],
            "weight": weights[order],
        }
    )
    importance = pd.Series(
        _multimodel.term_importance(included[:, offset:], weights),
        index=pd.Index(names, name="term"),
        name="importance",
    ).sort_values(ascending=False, kind="stable")

    def frame(average):
        cov = np.diag(average.se**2)
        return coefficient_frame(
            coef_names,
            coefficient_table(average.estimate, cov, math.inf, confidence_level),
        )

    full = _multimodel.model_average(
        estimates, std_errors, included, weights, conditional=False
    )
    conditional = _multimodel.model_average(
        estimates, std_errors, included, weights, conditional=True
    )
    cov = _multimodel.averaged_covariance(estimates, covariances, weights)
    per_model = pd.DataFrame(
        np.where(included, estimates, np.nan)[order], columns=coef_names
    )
    per_model_se = pd.DataFrame(
        np.where(included, std_errors, np.nan)[order], columns=coef_names
    )
    return MultimodelResult(
        table=table,
        importance=importance,
        full_average=frame(full)["estimate"].rename("full_average"),
        full_average_table=frame(full),
        conditional_average=frame(conditional)["estimate"].rename(
            "conditional_average"
        ),
        conditional_average_table=frame(conditional),
        full_average_cov=pd.DataFrame(cov, index=coef_names, columns=coef_names),
        coefficients=per_model,
        std_errors=per_model_se,
        criterion=criterion,
        terms=names,
        n_samples=int(rows.size),
        n_dropped=n_dropped,
        fit_intercept=fit_intercept,
        confidence_level=confidence_level,
    )
