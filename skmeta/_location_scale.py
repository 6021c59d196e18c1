"""Meta-analytic location-scale models: moderators of the mean and of tau^2."""

import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from skmeta._base import MISSING_POLICIES, ProfileTarget, _BaseMeta
from skmeta._compat import Interval, StrOptions, _fit_context
from skmeta._engine import _location_scale as ls
from skmeta._engine._gls import dependent_columns
from skmeta._engine._inference import coefficient_table, wald_test
from skmeta._summary import coefficient_frame
from skmeta.exceptions import InfiniteScaleWarning
from skmeta.utils._validation import (
    as_float_array,
    check_design,
    check_user_weights,
)

#: Identity link: predicted tau^2 above -this fraction of the data's variance
#: scale are rounding errors of the constraint tau_i^2 >= 0, clipped silently.
_TAU2_ROUNDING = 1e-9


class LocationScaleMeta(_BaseMeta):
    r"""Meta-analytic location-scale model.

    .. math::

        y_i = \beta_0 + x_i^\top \beta + u_i + e_i,\qquad
        u_i \sim N(0, \tau_i^2),\qquad e_i \sim N(0, v_i),

    with :math:`\log \tau_i^2 = \alpha_0 + z_i^\top \alpha` (``link="log"``) or
    :math:`\tau_i^2 = \alpha_0 + z_i^\top \alpha` (``link="identity"``).  The scale
    coefficients are estimated by ML or REML with :math:`\beta` profiled out
    (Newton–Raphson with the analytic gradient and observed Hessian, Fisher
    scoring where the surface is not concave); :math:`\hat\beta` is the weighted
    least-squares estimate with weights :math:`1/(v_i + \hat\tau_i^2)`.  This is
    metafor's ``rma(yi, vi, mods=X, scale=Z, method=..., link=...)``.

    The likelihood of a location-scale model can have several maxima (e.g. one
    where the heterogeneity is concentrated in a subgroup).  The fit starts
    from the homogeneous DerSimonian-Laird and Hedges estimates, from points
    that put the heterogeneity at either end of each scale moderator, next to
    :math:`\tau^2 = 0` when the homogeneous model there is better (metafor's
    ``ll0check``), and, with extreme sampling variances (zero, or a factor
    :math:`10^6` from their median), from the best point of a grid of
    homogeneous :math:`\tau^2` reaching below the smallest sampling variance
    and from the peak of those studies; it returns the best optimum.

    Parameters
    ----------
    method : {"reml", "ml"}, default="reml"
        Restricted or ordinary maximum likelihood.
    link : {"log", "identity"}, default="log"
        Link of the scale model.  Under ``"identity"`` the estimates are
        constrained to :math:`\tau_i^2 \ge 0` for the training studies (as
        metafor).
    fit_intercept : bool, default=True
        Whether the location model has an intercept.
    scale_fit_intercept : bool, default=True
        Whether the scale model has an intercept :math:`\alpha_0`.
    inference : {"z", "t"}, default="z"
        Reference distribution of the Wald tests: normal, or :math:`t_{k-p}`
        (location) and :math:`t_{k-q}` (scale), metafor's ``test="t"``.  The
        Knapp-Hartung adjustment of the other estimators is not offered: its
        variance factor is built for one common :math:`\tau^2`.
    max_iter : int, default=200
        Maximum number of Newton iterations.
    tol : float, default=1e-10
        Convergence when the predicted gain of the criterion (the Newton
        decrement) is below ``tol``.
    scale_bounds : tuple (lower, upper), default=None
        Box constraints on the scale coefficients ``[scale_intercept_,
        *scale_coef_]`` (scalars or arrays of shape (n_scale_params,)), metafor's
        ``control=list(alpha.min=, alpha.max=)``.  Use it to keep coefficients
        finite when :math:`\tau^2 \to 0` in a subgroup.
    scale_penalty : float, default=0.0
        Ridge penalty :math:`-\tfrac{\lambda}{2}\sum_j \alpha_j^2` on the
        non-intercept scale coefficients (on the original scale of ``Z``), a
        Gaussian prior N(0, 1/λ) that stabilises infinite estimates; ``loglik_``
        stays the unpenalized criterion.

    Attributes
    ----------
    intercept_ : float
    coef_ : ndarray of shape (n_features,)
    cov_params_ : ndarray of shape (n_params, n_params)
        Covariance of ``[intercept_, *coef_]``: :math:`(X^\top \hat W X)^{-1}`
        (the sandwich of ``fit``'s ``sample_weight`` when given).
    scale_intercept_ : float
        :math:`\hat\alpha_0` (0 without a scale intercept).
    scale_coef_ : ndarray of shape (n_scale_features,)
    scale_cov_params_ : ndarray of shape (n_scale_params, n_scale_params)
        Inverse of the negative observed Hessian of the profiled criterion, for
        ``[scale_intercept_, *scale_coef_]``.
    tau2_ : ndarray of shape (n_samples,)
        Fitted :math:`\hat\tau_i^2` of the training studies.
    hat_ : ndarray of shape (n_samples,)
        Leverages :math:`h_i` (diagonal of :math:`X(X^\top WX)^{-1}X^\top W`;
        with ``sample_weight``, of :math:`X(X^\top AX)^{-1}X^\top A`).
    study_tau2_ : ndarray of shape (n_samples,)
        Study-specific estimates :math:`e_i^2/(1-h_i) - v_i`.
    diverging_ : list of str
        Names of scale coefficients detected as drifting to :math:`\pm\infty`.
    qm_, qm_pvalue_ : float
        Omnibus Wald test of the location moderators (``nan`` without any).
    qs_, qs_pvalue_ : float
        Omnibus Wald test of the scale moderators (``nan`` without any).
    dof_ : int
        :math:`k - p`.
    loglik_ : float
        Maximized (restricted) log-likelihood; REML includes metafor's
        :math:`+\tfrac12\log|X^\top X|`.
    aic_, bic_, aicc_ : float
        metafor's conventions (REML: k − p observations in BIC and AICc).
    n_params_ : int
        p + number of scale coefficients.
    n_iter_ : int
    converged_ : bool
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` is a DataFrame with string column names.
    n_scale_features_in_ : int
    scale_feature_names_in_ : ndarray of str
        Defined when ``Z`` is a DataFrame.

    See Also
    --------
    RandomEffectsMeta : the homogeneous model (``Z=None`` gives the same fit).

    Notes
    -----
    ``Z=None`` means an intercept-only scale model, whose
    :math:`\exp(\hat\alpha_0)` equals ``RandomEffectsMeta``'s :math:`\hat\tau^2`
    (log link).  Non-dummy columns of ``Z`` are standardized internally and the
    estimates back-transformed (metafor's ``scaleZ``), because pipeline
    transformers never touch metadata.  ``sample_var=None`` means zero sampling
    variances.  Under metadata routing ``sample_var`` and ``Z`` are requested by
    default for ``fit`` and ``score``.

    When :math:`\tau^2 \to 0` in a subgroup the likelihood is maximized at
    infinity: the fit stops where the criterion is flat, ``tau2_`` and the
    log-likelihood are correct, the diverging coefficients are named in an
    :class:`InfiniteScaleWarning` and in ``diverging_``; ``scale_bounds`` or
    ``scale_penalty`` give finite estimates.

    Studies with ``sample_var`` 0 that the location model fits exactly make the
    ML likelihood unbounded (their variance :math:`\tau_i^2 \to 0`): no ML
    estimate exists and ``fit`` raises a ``ValueError`` (``RandomEffectsMeta``
    reports that limit instead, because without scale moderators it is unique).
    REML is bounded unless there are more such studies than the location model
    has coefficients.

    Under the identity link the fit constrains :math:`\tau_i^2 \ge 0` for the
    training studies only; a new study's :math:`z^\top\hat\alpha` can be
    negative, and :meth:`predict_tau2`, :meth:`predict_interval` and
    :meth:`score` then truncate its :math:`\tau^2` at 0 with a warning.

    References
    ----------
    Viechtbauer, W., & López-López, J. A. (2022). Location-scale models for
    meta-analysis. Research Synthesis Methods, 13(6), 697-715.

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta import LocationScaleMeta
    >>> y = np.array([0.1, 0.3, 0.5, -0.2, 0.9, 0.4, 0.2, 1.1])
    >>> v = np.array([0.02, 0.03, 0.05, 0.04, 0.06, 0.02, 0.03, 0.05])
    >>> z = np.array([[0.0], [0.0], [0.0], [0.0], [1.0], [1.0], [1.0], [1.0]])
    >>> model = LocationScaleMeta().fit(None, y, sample_var=v, Z=z)
    >>> model.tau2_.round(3)[[0, -1]]
    array([0.055, 0.216])
    """

    __metadata_request__fit = {"sample_var": True, "Z": True}
    __metadata_request__score = {"sample_var": True, "Z": True}

    _parameter_constraints: dict = {
        "method": [StrOptions({"reml", "ml"})],
        "link": [StrOptions({"log", "identity"})],
        "fit_intercept": ["boolean"],
        "scale_fit_intercept": ["boolean"],
        "inference": [StrOptions({"z", "t"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "scale_bounds": [tuple, list, None],
        "scale_penalty": [Interval(Real, 0, None, closed="left")],
        "missing": [StrOptions(set(MISSING_POLICIES))],
    }

    def __init__(
        self,
        *,
        method="reml",
        link="log",
        fit_intercept=True,
        scale_fit_intercept=True,
        inference="z",
        max_iter=200,
        tol=1e-10,
        scale_bounds=None,
        scale_penalty=0.0,
        missing="raise",
    ):
        self.method = method
        self.link = link
        self.fit_intercept = fit_intercept
        self.scale_fit_intercept = scale_fit_intercept
        self.inference = inference
        self.max_iter = max_iter
        self.tol = tol
        self.scale_bounds = scale_bounds
        self.scale_penalty = scale_penalty
        self.missing = missing

    # ------------------------------------------------------------------------ fit
    def _scale_design(self, Z, k, *, reset):
        """Validate ``Z`` and return the scale design with its intercept column."""
        if Z is None:
            if not reset and self.n_scale_features_in_:
                raise ValueError(
                    f"Z is required: the scale model has {self.n_scale_features_in_} "
                    "moderator(s)."
                )
            values = np.empty((k, 0))
            names = None
        else:
            values, names = check_design(Z, k, name="Z")
            if not reset and values.shape[1] != self.n_scale_features_in_:
                raise ValueError(
                    f"Z has {values.shape[1]} columns but the model was fitted with "
                    f"n_scale_features_in_={self.n_scale_features_in_}."
                )
        if reset:
            self.n_scale_features_in_ = values.shape[1]
            if names is not None:
                self.scale_feature_names_in_ = names
            elif hasattr(self, "scale_feature_names_in_"):
                del self.scale_feature_names_in_
        if self.scale_fit_intercept:
            return np.column_stack([np.ones(k), values])
        return values

    @property
    def _scale_term_names(self):
        names = getattr(self, "scale_feature_names_in_", None)
        if names is None:
            names = [f"z{j}" for j in range(self.n_scale_features_in_)]
        names = [str(n) for n in names]
        return ["intercept", *names] if self.scale_fit_intercept else names

    def _check_scale_bounds(self, q):
        """``scale_bounds`` as two arrays of shape (q,), or None."""
        bounds = self.scale_bounds
        if bounds is None:
            return None
        if len(bounds) != 2:
            raise ValueError(
                "scale_bounds must be a (lower, upper) pair, got "
                f"{len(bounds)} entries."
            )
        out = []
        for side, bound in zip(("lower", "upper"), bounds, strict=True):
            try:
                arr = np.asarray(bound, dtype=float)
            except (TypeError, ValueError):
                raise ValueError(
                    f"scale_bounds: the {side} bound must be a number or an array of "
                    f"numbers, got {bound!r}."
                ) from None
            if arr.ndim == 0:
                arr = np.full(q, float(arr))
            elif arr.shape != (q,):
                raise ValueError(
                    f"scale_bounds: the {side} bound has shape {arr.shape} but the "
                    f"scale model has {q} coefficient(s) {self._scale_term_names}; "
                    f"pass a number or an array of shape ({q},)."
                )
            if np.any(np.isnan(arr)):
                raise ValueError(
                    "scale_bounds must not contain NaN; use -inf or inf for a "
                    "coefficient without a bound."
                )
            out.append(arr)
        lower, upper = out
        if np.any(lower > upper):
            raise ValueError("scale_bounds: lower must not exceed upper.")
        if np.any(lower == np.inf) or np.any(upper == -np.inf):
            raise ValueError(
                "scale_bounds: a lower bound of +inf or an upper bound of -inf "
                "admits no value."
            )
        return lower, upper

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(
        self,
        X: ArrayLike | None,
        y: ArrayLike,
        *,
        sample_var: ArrayLike | None = None,
        Z: ArrayLike | None = None,
        sample_weight: ArrayLike | None = None,
    ) -> "LocationScaleMeta":
        r"""Fit the location-scale model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
            Location moderators. ``None`` or zero columns: intercept only.
        y : array-like of shape (n_samples,)
            Observed effect sizes.
        sample_var : array-like of shape (n_samples,), default=None
            Known sampling variances (finite, >= 0). ``None`` means zeros.
        Z : array-like of shape (n_samples, n_scale_features), default=None
            Scale moderators. ``None``: intercept-only scale model.
        sample_weight : array-like of shape (n_samples,), default=None
            User weights of the location coefficients, metafor's
            ``rma(..., scale=, weights=)`` (finite, >= 0; only their ratios
            matter). The scale model is estimated as without them; the location
            coefficients are their weighted least-squares estimate
            :math:`(X^\top A X)^{-1}X^\top A y` with the sandwich covariance
            :math:`(X^\top A X)^{-1}X^\top A V A X(X^\top A X)^{-1}`,
            :math:`V = \operatorname{diag}(v_i + \hat\tau_i^2)`; ``hat_`` are the
            leverages of that fit, and ``loglik_`` (with AIC, BIC, AICc) is
            evaluated at those coefficients, so it is below the maximum: do not
            use it in likelihood-ratio tests. These are not frequency weights.

        Returns
        -------
        self : LocationScaleMeta
            The fitted estimator.
        """
        X, y, v, design, meta = self._validate_training_data(
            X, y, sample_var, Z=Z, sample_weight=sample_weight
        )
        weights = check_user_weights(
            meta["sample_weight"], design, "location coefficient(s)"
        )
        Zd = self._scale_design(meta["Z"], design.shape[0], reset=True)
        self._check_scale_design(Zd)
        bounds = self._check_scale_bounds(Zd.shape[1])
        fit = self._fit_engine(design, y, v, Zd, bounds, weights)
        self._store(fit, design, v, Zd)
        self._warn_about(fit, bounds)
        return self

    def _check_scale_design(self, Zd):
        """Enough studies, no constant column beside the intercept, full rank."""
        k, q = Zd.shape
        if q == 0:
            raise ValueError(
                "The scale model has no parameters: pass Z or set "
                "scale_fit_intercept=True."
            )
        if q > k:
            raise ValueError(
                f"Too few studies for the scale model: Z gives {q} scale parameters "
                f"but n_samples={k}."
            )
        if self.scale_fit_intercept and q > 1:
            const = np.ptp(Zd[:, 1:], axis=0) == 0
            if np.any(const):
                raise ValueError(
                    f"Z has constant column(s) {np.flatnonzero(const).tolist()}, "
                    "collinear with the scale intercept."
                )
        bad = dependent_columns(Zd)
        if bad:
            names = [self._scale_term_names[j] for j in bad]
            raise ValueError(
                f"Z is rank-deficient: column(s) {names} of the scale design are "
                "linear combinations of the columns before them."
            )

    def _fit_engine(self, design, y, v, Zd, bounds, sample_weight=None):
        """Run the engine; a clear error where no fit is admissible."""
        try:
            fit = ls.fit_location_scale(
                y,
                v,
                design,
                Zd,
                method=self.method,
                link=self.link,
                intercept_col=0 if self.scale_fit_intercept else None,
                max_iter=self.max_iter,
                tol=self.tol,
                penalty=float(self.scale_penalty),
                bounds=bounds,
                sample_weight=sample_weight,
            )
        except ls.NoAdmissibleStart as exc:
            if bounds is None:
                raise
            raise ValueError(
                f"scale_bounds={self.scale_bounds!r} admit no fit: {exc} Widen the "
                "bounds."
            ) from None
        if not np.isfinite(fit.loglik) or not np.all(np.isfinite(fit.beta)):
            raise ValueError(
                "The location-scale likelihood is undefined at every tried value "
                "(zero total variance); pass positive sample_var."
            )
        return fit

    def _store(self, fit, design, v, Zd):
        """Set the fitted attributes from the engine's result."""
        k, p = design.shape
        q = Zd.shape[1]
        self._set_fixed_effects(fit.beta, fit.cov_beta)
        alpha = fit.alpha
        if self.scale_fit_intercept:
            self.scale_intercept_ = float(alpha[0])
            self.scale_coef_ = alpha[1:].copy()
        else:
            self.scale_intercept_ = 0.0
            self.scale_coef_ = alpha.copy()
        self.scale_cov_params_ = fit.cov_alpha
        self.tau2_ = fit.tau2
        # a typical variance of the data (the lower median: no overflow)
        middle = (k - 1) // 2  # np.percentile(v, 50, method="lower"), cheaper
        typical = float(np.partition(v, middle)[middle])
        self._tau2_scale = max(float(np.max(np.abs(fit.tau2))), typical)
        self.hat_ = fit.hat
        with np.errstate(divide="ignore", invalid="ignore"):
            self.study_tau2_ = fit.resid**2 / (1.0 - fit.hat) - v
        self.n_iter_ = int(fit.n_iter)
        self.converged_ = bool(fit.converged)
        self.dof_ = k - p
        self._scale_dof = k - q
        self.diverging_ = [
            name
            for name, flag in zip(self._scale_term_names, fit.diverging, strict=True)
            if flag
        ]
        self._set_fit_statistics(fit.loglik, p + q, k, p, self.method == "reml")
        test = wald_test(
            self._beta, self.cov_params_, self._moderator_index, self._coef_dof()
        )
        self.qm_, self.qm_pvalue_ = test.statistic, test.p_value
        sc_index = np.arange(1 if self.scale_fit_intercept else 0, q)
        test = wald_test(alpha, self.scale_cov_params_, sc_index, self._sc_dof())
        self.qs_, self.qs_pvalue_ = test.statistic, test.p_value

    def _warn_about(self, fit, bounds):
        if not self.converged_:
            warnings.warn(
                f"The location-scale fit did not converge ({fit.message}) in "
                f"{self.n_iter_} iterations; increase max_iter or bound the scale "
                "coefficients with scale_bounds.",
                ConvergenceWarning,
                stacklevel=3,
            )
        if self.diverging_ and bounds is None and not self.scale_penalty:
            warnings.warn(
                f"Scale coefficients {self.diverging_} drift to +-infinity: tau^2 is "
                "(numerically) zero for some studies, e.g. in a subgroup.  The "
                "fitted tau2_ and log-likelihood are correct, but these estimates "
                "and their standard errors are arbitrary; use scale_bounds or "
                "scale_penalty for finite estimates.",
                InfiniteScaleWarning,
                stacklevel=3,
            )

    def _coef_dof(self):
        return float("inf") if self.inference == "z" else float(self.dof_)

    def _sc_dof(self):
        return float("inf") if self.inference == "z" else float(self._scale_dof)

    @property
    def _alpha(self):
        if self.scale_fit_intercept:
            return np.concatenate([[self.scale_intercept_], self.scale_coef_])
        return self.scale_coef_

    # -------------------------------------------------------------- predictions
    def predict_tau2(self, Z: ArrayLike | None = None) -> np.ndarray:
        """Predict the heterogeneity tau^2 of new studies from their scale moderators.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_scale_features), default=None
            Scale moderators; ``None`` for an intercept-only scale model (one
            row).

        Returns
        -------
        ndarray of shape (n_samples,)
            :math:`\\exp(z^\\top\\hat\\alpha)` (log link) or
            :math:`\\max(0, z^\\top\\hat\\alpha)` (identity link).

        Warns
        -----
        UserWarning
            Identity link: when :math:`z^\\top\\hat\\alpha < 0` for some new
            studies (possible outside the training studies, where the fit
            constrains :math:`\\tau_i^2 \\ge 0`); those :math:`\\tau^2` are
            truncated at 0, the constraint of the fit.
        """
        check_is_fitted(self)
        n = 1 if Z is None else np.asarray(Z).shape[0]
        return self._tau2_at(self._scale_design(Z, n, reset=False))

    def _tau2_at(self, Zd):
        """tau^2 of the rows of a scale design; identity link: truncated at 0."""
        tau2 = ls.link_tau2(Zd @ self._alpha, self.link)
        if self.link == "identity" and np.any(tau2 < 0):
            # negative values within rounding of 0 (the fit's constraint tau_i^2
            # >= 0 holds to rounding) are clipped silently
            rounding = _TAU2_ROUNDING * self._tau2_scale
            n_negative = int(np.sum(tau2 < -rounding))
            if n_negative:
                warnings.warn(
                    f"{n_negative} predicted tau^2 value(s) are negative "
                    "(z'alpha < 0 under the identity link, outside the range of "
                    "the training studies); they are truncated at 0, the "
                    "constraint tau_i^2 >= 0 of the fit.",
                    UserWarning,
                    stacklevel=3,
                )
            tau2 = np.maximum(tau2, 0.0)
        return tau2

    def predict_interval(
        self,
        X: ArrayLike | None = None,
        *,
        Z: ArrayLike | None = None,
        confidence_level: float = 0.95,
    ) -> pd.DataFrame:
        """Predict the mean effect with confidence and prediction intervals.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), default=None
            New location moderators; ``None`` for an intercept-only model.
        Z : array-like of shape (n_samples, n_scale_features), default=None
            Scale moderators of the new studies, which give their tau^2
            (required when the scale model has moderators).
        confidence_level : float, default=0.95
            Level of both intervals.

        Returns
        -------
        DataFrame
            Columns ``mean, se, ci_lower, ci_upper, pi_lower, pi_upper``; the
            prediction interval is :math:`\\hat\\mu \\pm c\\sqrt{SE^2 +
            \\hat\\tau^2(z)}` (metafor's ``predict(newmods=, newscale=)``).
        """
        n = None
        if X is None and Z is not None:
            n = np.asarray(Z).shape[0]
        design = self._design(self._validate_new_X(X, n_rows=n))
        tau2 = self.predict_tau2(Z)
        if tau2.shape[0] == 1 and design.shape[0] > 1:
            tau2 = np.repeat(tau2, design.shape[0])
        if tau2.shape[0] != design.shape[0]:
            raise ValueError(
                f"Z has {tau2.shape[0]} rows but X has n_samples={design.shape[0]}."
            )
        return self._interval_frame(design, confidence_level, tau2)

    def score(
        self,
        X: ArrayLike | None,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        sample_var: ArrayLike | None = None,
        Z: ArrayLike | None = None,
    ) -> float:
        """Return the log-likelihood of ``y`` with study-specific tau_i^2.

        :math:`\\sum_i \\log N(y_i;\\ \\hat\\beta_0 + x_i^\\top\\hat\\beta,\\
        v_i + \\hat\\tau^2(z_i))`: a total, not a mean.  With ``method="ml"`` and
        the training data it equals ``loglik_``.  Under the identity link a
        negative :math:`z_i^\\top\\hat\\alpha` is truncated at 0, with a warning
        (see :meth:`predict_tau2`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the per-study log-densities.
        sample_var : array-like of shape (n_samples,), default=None
            Sampling variances of these studies (``None`` means zeros, with a
            warning if ``fit`` received ``sample_var``).
        Z : array-like of shape (n_samples, n_scale_features), default=None
            Scale moderators of these studies (required when the scale model
            has moderators).

        Returns
        -------
        float
        """
        check_is_fitted(self)
        y = as_float_array(y, "y")
        n = y.shape[0]
        X = self._validate_new_X(X, n_rows=n)
        if X.shape[0] != n:
            raise ValueError(f"y has {n} entries but X has n_samples={X.shape[0]}.")
        tau2 = self._tau2_at(self._scale_design(Z, n, reset=False))
        return self._gaussian_score(X, y, sample_weight, sample_var, tau2)

    # ------------------------------------------------------------------ summary
    def _summary_title(self):
        k = self.dof_ + self._beta.shape[0]
        return (
            f"Location-scale model (k = {k}; tau^2 estimator: {self.method.upper()}; "
            f"link: {self.link})"
        )

    def _summary_info(self, confidence_level):
        info = []
        if np.isfinite(self.qm_):
            info += [("QM (location)", self.qm_), ("p-value (QM)", self.qm_pvalue_)]
        if np.isfinite(self.qs_):
            info += [("QS (scale)", self.qs_), ("p-value (QS)", self.qs_pvalue_)]
        return info + self._fit_statistics_info()

    def _summary_table(self, confidence_level):
        """Location and scale coefficients under a two-level (part, term) index."""
        location = super()._summary_table(confidence_level)
        scale = coefficient_frame(
            self._scale_term_names,
            coefficient_table(
                self._alpha, self.scale_cov_params_, self._sc_dof(), confidence_level
            ),
        )
        return pd.concat({"location": location, "scale": scale}, names=["part", "term"])

    def _summary_notes(self, confidence_level):
        notes = [
            "Tests and intervals use the standard normal distribution."
            if self.inference == "z"
            else f"t tests: {self.dof_} df (location), {self._scale_dof} df (scale)."
        ]
        if self.diverging_:
            notes.append(
                f"Scale coefficients {self.diverging_} diverge (tau^2 -> 0 in a "
                "subgroup): their estimates and SEs are arbitrary."
            )
        return notes

    # --------------------------------------------------------- self-description
    def _model_label(self):
        return "LS Model"

    def _profile_targets(self):
        alpha, cov = self._alpha, self.scale_cov_params_
        q = alpha.shape[0]

        def fixing(j):
            def params(value):
                lower, upper = np.full(q, -np.inf), np.full(q, np.inf)
                lower[j] = upper[j] = value
                return {"scale_bounds": (lower, upper), "scale_penalty": 0.0}

            return params

        return {
            f"scale:{name}": ProfileTarget(
                float(alpha[j]), float(np.sqrt(cov[j, j])), fixing(j)
            )
            for j, name in enumerate(self._scale_term_names)
        }
