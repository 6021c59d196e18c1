"""Base class shared by the skmeta estimators.

It holds what every estimator does the same way, once:

- validation of ``X``, ``y``, ``sample_var`` and the other per-study metadata,
  including the ``missing="drop"`` policy and the warning for a forgotten
  ``sample_var``;
- the design matrix with its intercept column, the term names, the fixed effects
  and the fit statistics (``loglik_``, AIC, BIC, AICc) as attributes;
- ``predict``, the confidence and prediction intervals of ``predict_interval``,
  the Gaussian log-likelihood ``score`` and the assembly of ``summary()``;
- the self-description that plots, inference tools and the command line use
  (:meth:`_BaseMeta._model_label`, :meth:`_BaseMeta._study_weights`,
  :meth:`_BaseMeta._profile_targets`), so that they never dispatch on class
  names.

Subclasses implement ``fit`` (their metadata differ) on top of the pure functions
in :mod:`skmeta._engine` and override the hooks whose default does not fit.
"""

import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from skmeta._engine._gls import dependent_columns, gaussian_logpdf
from skmeta._engine._inference import (
    coefficient_table,
    critical_value,
    information_criteria,
)
from skmeta._summary import MetaSummary, coefficient_frame
from skmeta.exceptions import SampleVarWarning
from skmeta.utils._validation import (
    as_float_array,
    check_confidence_level,
    check_sample_var,
    check_sample_weight,
    missing_rows,
    take_rows,
)

#: Values of the ``missing`` hyperparameter.
MISSING_POLICIES = ("raise", "drop")

_FORGOTTEN_SAMPLE_VAR = (
    "fit() received no sample_var, so it fits zero sampling variances (an "
    "ordinary linear model). Pass the studies' sampling variances as "
    "sample_var=...; under cross-validation enable metadata routing "
    "(sklearn.set_config(enable_metadata_routing=True)) and pass "
    "params={'sample_var': v}. Pass sample_var=0 to fit zero variances on purpose."
)

_UNROUTED_SCORE_WARNING = (
    "score() received no sample_var although fit() did, so the held-out "
    "log-likelihood ignores the sampling variances. Enable metadata routing "
    "(sklearn.set_config(enable_metadata_routing=True)); sample_var is requested "
    "for score by default."
)


class ProfileTarget(NamedTuple):
    """A parameter that ``profile_likelihood`` can fix and refit.

    Attributes
    ----------
    estimate, se : float
        The fitted value and its standard error (NaN if unknown).
    params : callable
        ``params(value)`` returns the ``set_params`` keywords that fix the
        parameter at ``value``.
    """

    estimate: float
    se: float
    params: object


def _empty_if_no_columns(X, n_rows):
    """Return an ``(n, 0)`` float array for ``X=None`` or a zero-column table."""
    if X is None:
        return np.empty((n_rows, 0))
    if getattr(X, "shape", (0, 1))[1:] == (0,):
        # e.g. a zero-column DataFrame from a ColumnTransformer that selected nothing
        return np.empty((X.shape[0], 0))
    return X


def _is_clean_float_array(a, ndim):
    """Whether ``a`` is a finite float64 ndarray of ``ndim`` dimensions."""
    return (
        type(a) is np.ndarray
        and a.dtype == np.float64
        and a.ndim == ndim
        # a finite sum proves that there is no NaN or infinity (one pass, no
        # temporary); a sum that overflows falls back to the elementwise check
        and (bool(np.isfinite(a.sum())) or bool(np.isfinite(a).all()))
    )


#: Parameter values whose validation verdict :meth:`_BaseMeta._validate_params`
#: remembers (immutable, compared by value; NaN never compares equal, so it is
#: validated every time).
_PLAIN_PARAM_TYPES = frozenset({str, bool, int, float, type(None)})
#: Combinations of such values (keyed by class) that passed validation; bounded
#: so that a loop over many hyperparameter values cannot grow it without end.
_VALID_PARAMS: set = set()
_VALID_PARAMS_MAX = 1024


class _BaseMeta(RegressorMixin, BaseEstimator):
    """Common machinery of the meta-analysis estimators (not public)."""

    __metadata_request__fit = {"sample_var": True}
    __metadata_request__score = {"sample_var": True}

    #: Name of the model in summaries and the command line.
    _model_name = "Meta-analytic model"
    #: Whether ``y`` and ``sample_var`` may have shape (k, m): m outcomes.
    _multi_output = False

    @classmethod
    def _get_param_names(cls):
        # scikit-learn inspects the __init__ signature on every get_params (so on
        # every fit's parameter validation); the names are fixed per class.
        cached = cls.__dict__.get("_param_names")
        if cached is None:
            cached = super()._get_param_names()
            cls._param_names = cached
        return cached

    def _validate_params(self):
        """scikit-learn's parameter validation, remembered for plain values.

        The verdict of ``validate_parameter_constraints`` depends only on the
        class (its constraints) and the parameter values. A combination of
        immutable scalars (str, bool, int, float, None: compared with their
        types, so that ``True`` is not ``1``) that passed once passes again,
        so it is checked once per class and combination (cross-validation fits
        one clone per fold); anything else (arrays, callables) is validated on
        every call, and a failure is never remembered.
        """
        params = [getattr(self, name) for name in self._get_param_names()]
        key = None
        if all(type(value) in _PLAIN_PARAM_TYPES for value in params):
            key = (type(self), *((type(value), value) for value in params))
            if key in _VALID_PARAMS:
                return
        super()._validate_params()
        if key is not None and len(_VALID_PARAMS) < _VALID_PARAMS_MAX:
            _VALID_PARAMS.add(key)

    # ------------------------------------------------------------------ validation
    def _validate_training_data(self, X, y, sample_var, **metadata):
        """Validate the training data; apply the ``missing`` policy.

        Parameters
        ----------
        X : array-like of shape (k, p), DataFrame or None
            ``None`` or zero columns: intercept-only model.
        y : array-like of shape (k,) (or (k, m) for multi-output estimators)
        sample_var : array-like of the shape of ``y``, or None
            ``None`` means zeros (with a :class:`SampleVarWarning`).
        **metadata : array-like or None
            Further per-study inputs (``groups``, ``Z``, ...), validated by the
            estimator; here only their missing rows are found and dropped. A
            ``(k, k)`` input whose name ends in ``"cov"`` is subset on both axes.

        Returns
        -------
        X : ndarray of shape (k', p)
        y : ndarray of shape (k',) (or (k', m)), float64
        v : ndarray of the shape of ``y``
        design : ndarray of shape (k', p') with the intercept column
        metadata : dict
            The metadata with the dropped rows removed.
        """
        drop = getattr(self, "missing", "raise") == "drop"
        y = as_float_array(
            y,
            "y",
            ndim=(1, 2) if self._multi_output else (1,),
            allow_nan=drop,
            warn_column=True,
        )
        k = y.shape[0]
        X = _empty_if_no_columns(X, k)
        if sample_var is None:
            warnings.warn(_FORGOTTEN_SAMPLE_VAR, SampleVarWarning, stacklevel=3)
        v = check_sample_var(sample_var, y.shape, allow_nan=drop)
        if _is_clean_float_array(X, 2) and 0 < X.shape[0] == k:
            # Fast path (hot in cross-validation loops): what validate_data would
            # check and set for finite float64 ndarrays of matching length.
            self.n_features_in_ = X.shape[1]
            self.__dict__.pop("feature_names_in_", None)
        else:
            X = validate_data(
                self,
                X,
                dtype=np.float64,
                ensure_min_features=0,
                ensure_min_samples=1,
                ensure_all_finite="allow-nan" if drop else True,
            )
            if X.shape[0] != k:
                raise ValueError(f"X has {X.shape[0]} rows but y has {k} entries.")
        self.n_missing_ = 0
        if drop:
            out = np.isnan(X).any(axis=1)
            if y.ndim == 1:
                out |= np.isnan(y) | np.isnan(v)
            # 2-D y: NaN in y or sample_var leaves a study out of that output
            # only (the estimator's engine), not out of the shared design
            for name, value in metadata.items():
                if value is not None:
                    out |= missing_rows(value, name, k)
            if out.any():
                keep = ~out
                X, y, v = X[keep], y[keep], v[keep]
                metadata = {
                    name: take_rows(value, keep, name)
                    for name, value in metadata.items()
                }
                self.n_missing_ = int(out.sum())
            if y.shape[0] == 0:
                raise ValueError(
                    "Every study has a missing value (missing='drop' left none)."
                )
        design = self._design(X)
        self._check_design(design)
        self._fitted_with_sample_var = sample_var is not None
        return X, y, v, design, metadata

    def _check_design(self, design):
        """Enough studies and a full-rank design, or a ValueError naming columns."""
        k, p = design.shape
        if k <= p:
            raise ValueError(
                f"Too few studies: the model has {p} fixed-effect parameter(s) and "
                f"needs more than that many studies, got n_samples={k}."
            )
        bad = dependent_columns(design)
        if bad:
            names = [self._design_term_names(p)[j] for j in bad]
            raise ValueError(
                "The design matrix [intercept, X] is rank-deficient: column(s) "
                f"{names} are constant or linear combinations of the columns before "
                "them (in these studies). Remove or recode those moderators."
            )

    def _design_term_names(self, p):
        names = getattr(self, "feature_names_in_", None)
        n_x = p - int(self.fit_intercept)
        names = (
            [str(n) for n in names]
            if names is not None and len(names) == n_x
            else [f"x{j}" for j in range(n_x)]
        )
        return ["intercept", *names] if self.fit_intercept else names

    def _validate_new_X(self, X, n_rows=None):
        """Validate ``X`` for prediction (``None`` allowed for intercept-only).

        With ``missing="drop"`` rows of ``X`` may hold NaN (their predictions are
        NaN); otherwise NaN is an error.
        """
        check_is_fitted(self)
        if X is None:
            if self.n_features_in_:
                raise ValueError(
                    f"X is required: the model has {self.n_features_in_} moderator(s)."
                )
            X = np.empty((1 if n_rows is None else n_rows, 0))
        elif getattr(X, "shape", (0, 1))[1:] == (0,):
            X = np.empty((X.shape[0], 0))
        if (
            _is_clean_float_array(X, 2)
            and X.shape[1] == self.n_features_in_
            and not hasattr(self, "feature_names_in_")
        ):
            return X
        drop = getattr(self, "missing", "raise") == "drop"
        return validate_data(
            self,
            X,
            reset=False,
            dtype=np.float64,
            ensure_min_features=0,
            ensure_all_finite="allow-nan" if drop else True,
        )

    def _design(self, X):
        if self.fit_intercept:
            design = np.empty((X.shape[0], X.shape[1] + 1))
            design[:, 0] = 1.0
            design[:, 1:] = X
            return design
        return X

    @property
    def _term_names(self):
        return self._design_term_names(self._beta.shape[-1])

    @property
    def _moderator_index(self):
        """Positions of the moderators (all but the intercept) in design order."""
        return np.arange(int(self.fit_intercept), self._beta.shape[-1])

    # ------------------------------------------------------------- fitted state
    def _set_fixed_effects(self, beta, cov):
        """Store ``intercept_``, ``coef_`` and ``cov_params_`` from design order.

        A leading output axis (multi-output fits) is kept.
        """
        beta = np.asarray(beta, dtype=float)
        if self.fit_intercept:
            intercept = beta[..., 0]
            self.intercept_ = float(intercept) if beta.ndim == 1 else intercept.copy()
            self.coef_ = beta[..., 1:].copy()
        else:
            self.intercept_ = 0.0 if beta.ndim == 1 else np.zeros(beta.shape[0])
            self.coef_ = beta.copy()
        self.cov_params_ = np.asarray(cov, dtype=float)

    def _set_fit_statistics(self, loglik, n_params, k, p, reml):
        """``loglik_``, AIC, BIC, AICc (arrays, one per output, when ``loglik`` and
        ``k`` are)."""
        loglik = np.asarray(loglik, dtype=float)
        self.loglik_ = float(loglik) if loglik.ndim == 0 else loglik
        self.n_params_ = int(n_params)
        self.aic_, self.bic_, self.aicc_ = information_criteria(
            loglik, n_params, k, p, reml
        )

    @property
    def _beta(self):
        """Fixed effects in design order ``[intercept, *coef]``."""
        if self.fit_intercept:
            return np.concatenate(
                [np.asarray(self.intercept_)[..., None], self.coef_], axis=-1
            )
        return self.coef_

    def _coef_dof(self):
        """Degrees of freedom of the coefficients' tests: ``inf`` means z."""
        return float("inf")

    def _contrast_dof(self, design):
        """Degrees of freedom of the contrasts ``design @ beta`` (rows)."""
        return self._coef_dof()

    # ---------------------------------------------------------------- predictions
    def predict(self, X):
        """Predict the mean effect (fixed part) for new moderators.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Moderators; zero columns for an intercept-only model. With
            ``missing="drop"``, rows holding NaN get a NaN prediction.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            :math:`\\hat\\mu = \\hat\\beta_0 + X \\hat\\beta` (one column per
            output of a multi-output fit).
        """
        X = self._validate_new_X(X)
        return self._mean(X)

    def _mean(self, X):
        """The fixed part at the rows of ``X``: (n,), or (n, m) for m outputs."""
        coef = np.asarray(self.coef_)
        if coef.ndim == 2:
            return X @ coef.T + self.intercept_
        return X @ coef + self.intercept_

    def _output_labels(self):
        """Labels of the outputs of a multi-output fit (index named ``output``)."""
        return pd.RangeIndex(np.shape(self.coef_)[0], name="output")

    def _interval_frame(self, design, confidence_level, new_var):
        """Confidence and prediction intervals of the mean at ``design`` rows.

        ``new_var`` is the variance of a new study's true effect around the mean
        (tau^2, tau^2(z) or the sum of the level variances); the prediction
        interval is :math:`\\hat\\mu \\pm c\\sqrt{SE^2 + \\text{new\\_var}}`, as
        metafor's ``predict``, with ``c`` from N(0, 1) or the t distribution of
        :meth:`_contrast_dof`. A multi-output fit gives one row per (output,
        row of ``design``), indexed by those two levels.
        """
        level = check_confidence_level(confidence_level)
        beta = self._beta
        crit = critical_value(level, self._contrast_dof(design))
        if beta.ndim == 2:  # m outputs: arrays of shape (n, m)
            mean = design @ beta.T
            quad = np.einsum("ij,mjk,ik->im", design, self.cov_params_, design)
        else:
            mean = design @ beta
            quad = np.einsum("ij,jk,ik->i", design, self.cov_params_, design)
        se = np.sqrt(quad)
        pi_se = np.sqrt(se**2 + new_var)
        columns = {
            "mean": mean,
            "se": se,
            "ci_lower": mean - crit * se,
            "ci_upper": mean + crit * se,
            "pi_lower": mean - crit * pi_se,
            "pi_upper": mean + crit * pi_se,
        }
        if beta.ndim == 1:
            return pd.DataFrame(columns)
        index = pd.MultiIndex.from_product(
            [self._output_labels(), pd.RangeIndex(design.shape[0], name="row")]
        )
        return pd.DataFrame({name: a.T.ravel() for name, a in columns.items()}, index)

    def _score_inputs(self, X, y, sample_weight, sample_var):
        """Validated ``(X, y, v, sample_weight)`` for ``score``."""
        check_is_fitted(self)
        y = as_float_array(y, "y", ndim=(1, 2) if self._multi_output else (1,))
        outputs = np.shape(self.coef_)[0] if np.ndim(self.coef_) == 2 else None
        if (y.ndim == 2) != (outputs is not None) or (
            outputs is not None and y.shape[1] != outputs
        ):
            fitted = f"{outputs} outputs" if outputs is not None else "1-D y"
            raise ValueError(
                f"y has shape {y.shape} but the model was fitted to {fitted}."
            )
        X = self._validate_new_X(X, n_rows=y.shape[0])
        if X.shape[0] != y.shape[0]:
            raise ValueError(
                f"y has {y.shape[0]} entries but X has n_samples={X.shape[0]}."
            )
        if sample_var is None and getattr(self, "_fitted_with_sample_var", False):
            warnings.warn(_UNROUTED_SCORE_WARNING, SampleVarWarning, stacklevel=3)
        v = check_sample_var(sample_var, y.shape)
        sample_weight = check_sample_weight(sample_weight, y.shape[0])
        return X, y, v, sample_weight

    def _gaussian_score(self, X, y, sample_weight, sample_var, extra_var):
        """Sum of log N(y_i; mean_i, v_i + extra_var_i), weighted by sample_weight."""
        X, y, v, sample_weight = self._score_inputs(X, y, sample_weight, sample_var)
        resid = y - self._mean(X)
        total = v + extra_var
        with np.errstate(divide="ignore", invalid="ignore"):
            logpdf = gaussian_logpdf(resid, total)
        if np.any(total <= 0):
            # Degenerate rows (no variance): the density is a point mass, +inf
            # where the residual is zero to rounding and 0 (-inf) elsewhere.
            exact = np.abs(resid) <= 1e4 * np.finfo(float).eps * np.abs(y).max()
            logpdf = np.where(total > 0, logpdf, np.where(exact, np.inf, -np.inf))
            if np.any(logpdf == -np.inf):
                return -np.inf
        if sample_weight is None:
            return float(np.sum(logpdf))
        return float(np.sum(sample_weight @ logpdf))

    # -------------------------------------------------------------------- summary
    def summary(self, confidence_level=0.95):
        """Summarise the fit like metafor's printout.

        Parameters
        ----------
        confidence_level : float, default=0.95
            Level of the confidence intervals.

        Returns
        -------
        MetaSummary
            ``str()`` gives the printout; ``to_frame()`` the coefficient table
            (columns ``estimate, se, statistic, p_value, ci_lower, ci_upper``).
        """
        check_is_fitted(self)
        level = check_confidence_level(confidence_level)
        notes = list(self._summary_notes(level))
        if getattr(self, "n_missing_", 0):
            notes.append(
                f"{self.n_missing_} stud{'y' if self.n_missing_ == 1 else 'ies'} "
                "with missing values left out (missing='drop')."
            )
        return MetaSummary(
            title=self._summary_title(),
            info=list(self._summary_info(level)),
            table=self._summary_table(level),
            sections=list(self._summary_sections(level)),
            notes=notes,
        )

    def _summary_title(self):
        return f"{self._model_name} (k = {self.dof_ + self._beta.shape[-1]})"

    def _summary_info(self, confidence_level):
        """Model-level lines of the printout (label, value)."""
        return self._fit_statistics_info()

    def _fit_statistics_info(self):
        reml = getattr(self, "method", None) == "reml"
        return [
            ("log-likelihood" + (" (REML)" if reml else ""), self.loglik_),
            ("AIC", self.aic_),
            ("BIC", self.bic_),
            ("AICc", self.aicc_),
        ]

    def _summary_table(self, confidence_level):
        table = coefficient_table(
            self._beta, self.cov_params_, self._coef_dof(), confidence_level
        )
        return coefficient_frame(self._term_names, table)

    def _summary_sections(self, confidence_level):
        return []

    def _summary_notes(self, confidence_level):
        if np.all(np.isinf(self._coef_dof())):
            return ["Tests and intervals use the standard normal distribution."]
        return []

    # ----------------------------------------------------------- self-description
    def _model_label(self):
        """Short label of the fitted model for plots (e.g. ``"RE Model"``)."""
        return "Model"

    def _study_weights(self, sample_var, **metadata):
        """Percentage weights of the training studies in the fixed effects.

        Default: :math:`w_i = 1/(v_i + \\hat\\tau_i^2)`, normalised to sum to 100.
        """
        check_is_fitted(self)
        v = check_sample_var(sample_var, (np.asarray(sample_var).shape[0],))
        with np.errstate(divide="ignore"):
            w = 1.0 / (v + np.asarray(self.tau2_, dtype=float))
        if not np.all(np.isfinite(w)):
            raise ValueError("Infinite weights: some studies have zero total variance.")
        return 100.0 * w / w.sum()

    def _profile_targets(self):
        """Parameters that ``profile_likelihood`` can profile: name -> target."""
        return {}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # score is a log-likelihood, not R^2: the generic "score > 0.5" check does
        # not apply.
        tags.regressor_tags.poor_score = True
        tags.input_tags.allow_nan = getattr(self, "missing", "raise") == "drop"
        return tags
