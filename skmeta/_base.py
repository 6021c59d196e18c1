"""Base class shared by the skmeta estimators.

It holds what every estimator does the same way: validation of ``X``, ``y`` and
``sample_var``, the design matrix with its intercept column, the common fitted
attributes, ``predict``, the log-likelihood ``score`` and metadata-routing
defaults.  Subclasses implement ``fit`` (their metadata differ) on top of the
pure functions in :mod:`skmeta._engine`.
"""

import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from skmeta._engine._inference import information_criteria
from skmeta._engine._univariate import LOG_2PI
from skmeta.utils._validation import check_sample_var

_UNROUTED_SCORE_WARNING = (
    "score() received no sample_var although fit() did, so the held-out "
    "log-likelihood ignores the sampling variances. Enable metadata routing "
    "(sklearn.set_config(enable_metadata_routing=True)); sample_var is requested "
    "for score by default."
)


def _empty_if_no_columns(X, y):
    """Return an ``(n, 0)`` float array for ``X=None`` or a zero-column table."""
    if X is None:
        y_arr = np.asarray(y)
        return np.empty((y_arr.shape[0] if y_arr.ndim else 1, 0))
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
        and bool(np.isfinite(a).all())
    )


def _is_rank_deficient(design):
    """Whether the columns of ``design`` are (numerically) linearly dependent.

    Uses the eigenvalues of the column-normalised Gram matrix (``p x p``): the
    squared singular values of the normalised design.
    """
    gram = design.T @ design
    norms = np.sqrt(np.diag(gram))
    if np.any(norms == 0):
        return True
    eig = np.linalg.eigvalsh(gram / np.outer(norms, norms))
    return bool(eig[0] <= eig[-1] * design.shape[1] * 1e3 * np.finfo(float).eps)


class _BaseMeta(RegressorMixin, BaseEstimator):
    """Common machinery of the meta-analysis estimators (not public)."""

    __metadata_request__fit = {"sample_var": True}
    __metadata_request__score = {"sample_var": True}

    @classmethod
    def _get_param_names(cls):
        # scikit-learn inspects the __init__ signature on every get_params (so on
        # every fit's parameter validation); the names are fixed per class.
        cached = cls.__dict__.get("_param_names")
        if cached is None:
            cached = super()._get_param_names()
            cls._param_names = cached
        return cached

    # ------------------------------------------------------------------ validation
    def _validate_training_data(self, X, y, sample_var):
        """Validate ``X``, ``y`` and ``sample_var``; return X, y, v and the design.

        ``X`` may be ``None`` or have zero columns (intercept-only model).
        """
        X = _empty_if_no_columns(X, y)
        if np.asarray(y).dtype.kind in "USa":
            raise ValueError("y must hold numeric effect sizes, got strings.")
        if (
            _is_clean_float_array(X, 2)
            and _is_clean_float_array(y, 1)
            and X.shape[0] > 0
        ):
            # Fast path (hot in cross-validation loops): what validate_data would
            # check and set for finite float64 ndarrays of matching length.
            if X.shape[0] != y.shape[0]:
                raise ValueError(
                    f"X has {X.shape[0]} rows but y has {y.shape[0]} entries."
                )
            self.n_features_in_ = X.shape[1]
            self.__dict__.pop("feature_names_in_", None)
        else:
            X, y = validate_data(
                self,
                X,
                y,
                y_numeric=True,
                dtype=np.float64,
                ensure_min_features=0,
                ensure_min_samples=1,
            )
        v = check_sample_var(sample_var, X.shape[0])
        design = self._design(X)
        k, p = design.shape
        if p == 0 and not self.fit_intercept:
            pass
        if k <= p:
            raise ValueError(
                f"Too few studies: the model has {p} fixed-effect parameter(s) and "
                f"needs more than that many studies, got n_samples={k}."
            )
        if p and _is_rank_deficient(design):
            raise ValueError(
                "The design matrix [intercept, X] is rank-deficient: some moderators "
                "are constant or collinear. Remove redundant columns of X."
            )
        self._fitted_with_sample_var = sample_var is not None
        return X, y, v, design

    def _validate_new_X(self, X, n_rows=None):
        """Validate ``X`` for prediction (``None`` allowed for intercept-only)."""
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
        return validate_data(
            self, X, reset=False, dtype=np.float64, ensure_min_features=0
        )

    def _design(self, X):
        if self.fit_intercept:
            return np.column_stack([np.ones(X.shape[0]), X])
        return X

    @property
    def _term_names(self):
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            names = [f"x{j}" for j in range(self.n_features_in_)]
        names = [str(n) for n in names]
        return ["intercept", *names] if self.fit_intercept else names

    # ------------------------------------------------------------- fitted state
    def _set_fixed_effects(self, beta, cov):
        """Store ``intercept_``, ``coef_`` and ``cov_params_`` from design order."""
        beta = np.asarray(beta, dtype=float)
        if self.fit_intercept:
            self.intercept_ = float(beta[0])
            self.coef_ = beta[1:].copy()
        else:
            self.intercept_ = 0.0
            self.coef_ = beta.copy()
        self.cov_params_ = np.asarray(cov, dtype=float)

    def _set_fit_statistics(self, loglik, n_params, k, p, reml):
        self.loglik_ = float(loglik)
        self.n_params_ = int(n_params)
        self.aic_, self.bic_, self.aicc_ = information_criteria(
            loglik, n_params, k, p, reml
        )

    @property
    def _beta(self):
        """Fixed effects in design order ``[intercept, *coef]``."""
        if self.fit_intercept:
            return np.concatenate([[self.intercept_], self.coef_])
        return self.coef_

    # ---------------------------------------------------------------- predictions
    def predict(self, X):
        """Predict the mean effect (fixed part) for new moderators.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Moderators; zero columns for an intercept-only model.

        Returns
        -------
        ndarray of shape (n_samples,)
            :math:`\\hat\\mu = \\hat\\beta_0 + X \\hat\\beta`.
        """
        X = self._validate_new_X(X)
        return X @ self.coef_ + self.intercept_

    def _gaussian_score(self, X, y, sample_weight, sample_var, extra_var):
        """Sum of log N(y_i; mean_i, v_i + extra_var_i), weighted by sample_weight."""
        X = self._validate_new_X(X)
        y = self._check_score_y(y, X.shape[0])
        if sample_var is None and getattr(self, "_fitted_with_sample_var", False):
            warnings.warn(_UNROUTED_SCORE_WARNING, UserWarning, stacklevel=3)
        v = check_sample_var(sample_var, X.shape[0])
        resid = y - (X @ self.coef_ + self.intercept_)
        total = v + extra_var
        with np.errstate(divide="ignore", invalid="ignore"):
            logpdf = -0.5 * (LOG_2PI + np.log(total) + resid * resid / total)
        if np.any(total <= 0):
            # Degenerate rows (no variance): the density is a point mass, +inf
            # where the residual is zero to rounding and 0 (-inf) elsewhere.
            exact = np.abs(resid) <= 1e4 * np.finfo(float).eps * np.abs(y).max()
            logpdf = np.where(total > 0, logpdf, np.where(exact, np.inf, -np.inf))
            if np.any(logpdf == -np.inf):
                return -np.inf
        if sample_weight is None:
            return float(np.sum(logpdf))
        sample_weight = np.asarray(sample_weight, dtype=float)
        if sample_weight.shape != logpdf.shape:
            raise ValueError("sample_weight must have one entry per study.")
        return float(sample_weight @ logpdf)

    @staticmethod
    def _check_score_y(y, n_samples):
        """Validate the effect sizes passed to ``score``."""
        try:
            y = np.asarray(y, dtype=np.float64).ravel()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"y must hold numeric effect sizes: {exc}") from None
        if y.shape[0] != n_samples:
            raise ValueError(
                f"y has {y.shape[0]} entries but X has n_samples={n_samples}."
            )
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinity.")
        return y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # score is a log-likelihood, not R^2: the generic "score > 0.5" check does
        # not apply.
        tags.regressor_tags.poor_score = True
        tags.input_tags.allow_nan = False
        return tags
