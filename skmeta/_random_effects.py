"""Random-effects meta-analysis and meta-regression."""

import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from skmeta._base import MISSING_POLICIES, ProfileTarget, _BaseMeta
from skmeta._compat import Interval, StrOptions, _fit_context
from skmeta._engine import _sandwich
from skmeta._engine import _univariate as uni
from skmeta._engine._gls import dependent_columns
from skmeta._engine._inference import coefficient_table, wald_test
from skmeta._engine._multioutput import LIMITS, q_profile_intervals
from skmeta._engine._multioutput import fit_random_effects as fit_many
from skmeta._engine._random_effects import blups as random_effects_blups
from skmeta._engine._random_effects import fit_random_effects
from skmeta._engine._tau2 import TAU2_METHODS, tau2_method
from skmeta._summary import COLUMNS
from skmeta.utils._validation import (
    check_confidence_level,
    check_groups,
    check_user_weights,
)

_INFERENCE = ("z", "t", "knapp-hartung", "knapp-hartung-adhoc")


class RandomEffectsMeta(_BaseMeta):
    r"""Random-effects meta-analysis and meta-regression.

    .. math::

        y_i = \beta_0 + x_i^\top \beta + u_i + e_i,\qquad
        u_i \sim N(0, \tau^2),\qquad e_i \sim N(0, v_i),

    with known sampling variances :math:`v_i`.  Given :math:`\hat\tau^2`, the
    fixed effects are the weighted least-squares estimates with weights
    :math:`w_i = 1/(v_i + \hat\tau^2)`: :math:`\hat\beta = (X^\top W X)^{-1}X^\top W
    y`, with covariance :math:`(X^\top W X)^{-1}` (scaled by
    :math:`s^2 = \sum w_i \hat e_i^2/(k-p)` under Knapp–Hartung).  This is metafor's
    ``rma(yi, vi, mods=X, method=..., test=...)``; all computations are O(k) in
    memory.

    Parameters
    ----------
    method : str, default="reml"
        Estimator of :math:`\tau^2`, one of "reml", "ml", "dl", "pm", "pmm",
        "he", "hs", "hsk", "sj", "eb", "genq", "fe" (metafor's ``method``):
        restricted maximum likelihood, maximum likelihood, DerSimonian–Laird,
        Paule–Mandel, median-unbiased Paule–Mandel, Hedges, Hunter–Schmidt,
        Hunter–Schmidt with the k-correction, Sidik–Jonkman, empirical Bayes
        (equal to Paule–Mandel at convergence), generalized Q with
        ``genq_weights``, and ``"fe"``: the fixed/common/equal-effects model
        (:math:`\tau^2 = 0`).
    tau2 : float, default=None
        Fix :math:`\tau^2` at this value instead of estimating it (sensitivity
        analysis; metafor's ``tau2=``).
    inference : {"z", "t", "knapp-hartung", "knapp-hartung-adhoc"}, default="z"
        Reference distribution of the tests: normal; :math:`t_{k-p}` (and
        :math:`F` for the omnibus test); Knapp–Hartung's scaled covariance with
        :math:`t_{k-p}`; and the ad hoc variant with :math:`\max(1, s^2)`
        (metafor's ``test="z"``, ``"t"``, ``"knha"``, ``"adhoc"``).
    fit_intercept : bool, default=True
        Whether to include an intercept.
    max_iter : int, default=100
        Maximum number of Newton/Fisher-scoring iterations (ML, REML).
    tol : float, default=1e-10
        Relative convergence tolerance on :math:`\tau^2`.
    genq_weights : {"inverse_var", "unit"}, callable or array-like, default=None
        Fixed weights :math:`a_i` of the generalized Q estimator (``method="genq"``,
        required there): ``"inverse_var"`` (:math:`1/v_i`, gives DL), ``"unit"``
        (gives HE), a callable ``f(sample_var) -> weights``, or one weight per study
        (then the estimator cannot be cross-validated on subsets).
    cluster_robust : {"cr1", "cr0", "cr2"} or None, default="cr1"
        Cluster-robust covariance used when ``groups`` is passed to ``fit``:
        ``"cr1"`` (metafor's ``robust(adjust=TRUE)``, df = clusters − p),
        ``"cr0"`` (``adjust=FALSE``), ``"cr2"`` (bias-reduced, with Satterthwaite
        degrees of freedom; ``robust(clubSandwich=TRUE)``), or None: the
        model-based covariance even when ``groups`` is given. CR2 costs one
        symmetric eigendecomposition per cluster of fewer than 64 studies
        (:math:`O(n_j^3)`) and, for larger clusters, a quadrature with
        :math:`O(n_j p^2)` time and memory per node; no matrix larger than
        :math:`n_j \times n_j` is formed.
    missing : {"raise", "drop"}, default="raise"
        What to do with studies whose ``y``, ``sample_var``, ``X`` (or other
        per-study input of ``fit``) hold NaN: raise a ``ValueError``, or leave
        them out of the fit (their number is ``n_missing_`` and is reported in
        the summary; ``predict`` then returns NaN for rows of ``X`` with NaN).
    Attributes
    ----------
    intercept_ : float
    coef_ : ndarray of shape (n_features,)
    cov_params_ : ndarray of shape (n_params, n_params)
        Covariance of ``[intercept_, *coef_]`` (of ``coef_`` without intercept).
    tau2_ : float
        Estimated (or fixed) :math:`\tau^2`.
    tau2_se_ : float
        Standard error of :math:`\hat\tau^2` (metafor's ``se.tau2``); ``nan`` when
        :math:`\tau^2` is fixed.
    q_, q_pvalue_ : float
        Cochran's test of (residual) heterogeneity :math:`Q_E` (``nan`` when some
        sampling variances are zero).
    qm_, qm_pvalue_ : float
        Omnibus test of the moderators: :math:`\chi^2` (``inference="z"``) or
        :math:`F` (otherwise); ``nan`` without moderators.
    i2_, h2_ : float
        :math:`I^2` (percent) and :math:`H^2` (``nan`` when some sampling variances
        are zero).
    r2_ : float or None
        Pseudo-:math:`R^2` (percent): the proportional reduction of :math:`\tau^2`
        relative to the intercept-only model; ``None`` without moderators.
        Computed on first access (one extra fit) and cached.
    dof_ : int
        Residual degrees of freedom :math:`k - p`.
    robust_dof_ : ndarray of shape (n_params,) or None
        Per-coefficient degrees of freedom under cluster-robust inference.
    n_groups_ : int or None
        Number of clusters under cluster-robust inference.
    random_effects_ : DataFrame of shape (n_samples, 2)
        BLUPs of the training studies' :math:`u_i` (column ``estimate``) and
        their standard errors (``se``), one row per study of the fit in order
        (metafor's ``ranef``).
    random_effects_se_ : ndarray of shape (n_samples,)
        The standard errors of the BLUPs (the ``se`` column).
    loglik_ : float
        Maximised criterion: the restricted log-likelihood (with metafor's
        :math:`+\tfrac12\log|X^\top X|`) for REML, else the log-likelihood at
        :math:`\hat\tau^2`.
    aic_, bic_, aicc_ : float
        Information criteria (metafor's conventions: under REML, BIC and AICc use
        :math:`k-p` observations).
    n_params_ : int
        Number of estimated parameters (fixed effects + :math:`\tau^2`).
    n_iter_ : int
    converged_ : bool
    n_missing_ : int
        Number of studies left out for missing values (``missing="drop"``).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` is a DataFrame with string column names.

    Notes
    -----
    ``sample_var=None`` means zero sampling variances: the model is then an
    ordinary linear regression whose residual variance is :math:`\tau^2`.
    Estimators that need weights :math:`1/v_i` (DL, HS, HSk, FE) then raise.
    Studies with :math:`v_i = 0` and :math:`\hat\tau^2 = 0` have zero total
    variance and are fitted exactly (with a warning); when the criterion grows
    without bound as :math:`\tau^2 \to 0` (ML, or REML with more such studies
    than the rank of their moderators) ``tau2_`` is 0 and ``loglik_`` is
    ``inf``.

    The REML and ML estimates are global maxima: Newton's method on
    :math:`\tau^2` is checked by a search of the profile likelihood over a
    logarithmic grid spanning the scales of the sampling variances when those
    span more than four orders of magnitude, when the path ends at
    :math:`\tau^2 = 0`, or when :math:`\tau^2 = 0` beats the path's maximum
    (metafor's ``ll0check``). Studies whose weight dominates the others (a
    sampling variance of 1e-12 beside ordinary ones) are eliminated exactly in
    the weighted least squares, and the data are rescaled internally by a power
    of two, so that the results keep full precision at any spread of the
    weights and in any units.

    Under metadata routing ``sample_var`` is requested by default for ``fit`` and
    ``score``; ``groups`` (cluster-robust inference) must be requested explicitly
    with ``set_fit_request(groups=True)``, because ``GroupKFold`` also consumes
    ``groups``.

    References
    ----------
    Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package.
    Journal of Statistical Software, 36(3).

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta import RandomEffectsMeta
    >>> y = np.array([-0.581, 0.530, 0.771, 1.031, 0.553, 0.295, 0.078, 0.573])
    >>> v = np.array([0.023, 0.052, 0.060, 0.115, 0.095, 0.203, 0.200, 0.211])
    >>> model = RandomEffectsMeta().fit(None, y, sample_var=v)
    >>> round(model.intercept_, 3), round(model.tau2_, 3)
    (0.345, 0.258)
    """

    _multi_output = True

    _parameter_constraints: dict = {
        "method": [StrOptions(TAU2_METHODS.keys())],  # live: new records count
        "tau2": [Interval(Real, 0, None, closed="left"), None],
        "inference": [StrOptions(set(_INFERENCE))],
        "fit_intercept": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "genq_weights": [
            StrOptions({"inverse_var", "unit"}),
            callable,
            "array-like",
            None,
        ],
        "cluster_robust": [StrOptions({"cr0", "cr1", "cr2"}), None],
        "missing": [StrOptions(set(MISSING_POLICIES))],
    }

    def __init__(
        self,
        *,
        method="reml",
        tau2=None,
        inference="z",
        fit_intercept=True,
        max_iter=100,
        tol=1e-10,
        genq_weights=None,
        cluster_robust="cr1",
        missing="raise",
    ):
        self.method = method
        self.tau2 = tau2
        self.inference = inference
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.genq_weights = genq_weights
        self.cluster_robust = cluster_robust
        self.missing = missing

    # ------------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(
        self,
        X: ArrayLike | None,
        y: ArrayLike,
        *,
        sample_var: ArrayLike | None = None,
        groups: ArrayLike | None = None,
        sample_weight: ArrayLike | None = None,
    ) -> "RandomEffectsMeta":
        r"""Fit the random-effects model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
            Moderators. ``None`` or zero columns: intercept-only meta-analysis.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Observed effect sizes; one column per output for many meta-analyses
            over the same studies (see Notes).
        sample_var : array-like of the shape of y, or (n_samples,), default=None
            Known sampling variances (finite, >= 0). ``None`` means zeros. With
            2-D ``y`` a 1-D ``sample_var`` applies to every output.
        groups : array-like of shape (n_samples,), default=None
            Cluster labels: when given, the covariance of the coefficients is the
            cluster-robust sandwich of ``cluster_robust`` (1-D ``y`` only).
        sample_weight : array-like of shape (n_samples,), default=None
            User weights of the fixed effects, metafor's ``rma(weights=)``
            (finite, >= 0; only their ratios matter). :math:`\tau^2`,
            :math:`Q_E`, :math:`I^2`, :math:`H^2` and :math:`R^2` are estimated as
            without them; the coefficients are their weighted least-squares
            estimate :math:`(X^\top A X)^{-1}X^\top A y` with the sandwich
            covariance :math:`(X^\top A X)^{-1}X^\top A V A X(X^\top A X)^{-1}`,
            :math:`V = \operatorname{diag}(v + \hat\tau^2)` (times the usual
            Knapp–Hartung factor under ``inference="knapp-hartung"``), and
            ``loglik_`` is evaluated at them. These are not frequency weights.
            Not available with ``cluster_robust="cr2"`` or 2-D ``y``.

        Returns
        -------
        self : RandomEffectsMeta
            The fitted estimator.
        """
        names = list(y.columns) if isinstance(y, pd.DataFrame) else None
        X, y, v, design, meta = self._validate_training_data(
            X, y, sample_var, groups=groups, sample_weight=sample_weight
        )
        if y.ndim == 2:
            for name in ("groups", "sample_weight"):
                if meta[name] is not None:
                    raise ValueError(
                        f"{name} is not available with 2-D y (many outputs): fit "
                        "the outputs one at a time for cluster-robust inference or "
                        "user weights."
                    )
            return self._fit_outputs(design, y, v, names)
        self._outputs = None
        weights = check_user_weights(meta["sample_weight"], design)
        return self._fit_design(design, y, v, meta["groups"], weights)

    def _fit_design(self, design, y, v, groups, sample_weight=None):
        """Fit on a validated design matrix (with its intercept column)."""
        k = design.shape[0]
        weights = self._resolve_genq_weights(v, k)
        clusters = None
        if groups is not None and self.cluster_robust is not None:
            clusters = self._clusters(groups, design)
        result = fit_random_effects(
            design,
            y,
            v,
            method=self.method,
            tau2=self.tau2,
            genq_weights=weights,
            inference=self.inference,
            max_iter=self.max_iter,
            tol=self.tol,
            clusters=clusters,
            cluster_robust=self.cluster_robust,
            sample_weight=sample_weight,
            with_blups=False,  # computed on access of random_effects_
        )
        self._warn_about(result)
        self._store(result, design, y, v)
        self._genq_weights = weights
        self._sample_weight = sample_weight
        return self

    def _warn_about(self, result):
        """The warnings a fit can give (degenerate limit, convergence, exact fit)."""
        if result.limit == "diverges":
            warnings.warn(
                "The likelihood increases without bound as tau2 -> 0: the studies "
                "with zero sample_var are fitted exactly. tau2_ is reported as 0 "
                "and loglik_ as inf.",
                UserWarning,
                stacklevel=4,
            )
        elif result.limit == "exact":
            warnings.warn(
                "tau2 is estimated at 0 and some sample_var are 0: those studies "
                "have zero total variance and are fitted exactly.",
                UserWarning,
                stacklevel=4,
            )
        if not result.converged:
            warnings.warn(
                f"tau^2 estimation ({self.method}) did not converge in "
                f"{self.max_iter} iterations; increase max_iter.",
                ConvergenceWarning,
                stacklevel=4,
            )
        if np.isnan(result.tau2_se) and self.tau2 is None and not self._fixed_effect:
            warnings.warn(
                "The standard error of tau^2 could not be computed (the sampling "
                "variances span too many orders of magnitude for the traces of "
                "its formula): tau2_se_ is NaN.",
                UserWarning,
                stacklevel=4,
            )
        if result.exact_fit:
            warnings.warn(
                "The weighted residuals are zero to rounding (y is fitted exactly): "
                "the Knapp-Hartung variance factor is 0 and the tests are undefined.",
                UserWarning,
                stacklevel=4,
            )

    def _store(self, result, design, y, v):
        """Set the fitted attributes from a :class:`RandomEffectsFit`."""
        k, p = design.shape
        self.tau2_ = float(result.tau2)
        self.tau2_se_ = float(result.tau2_se)
        self.n_iter_, self.converged_ = result.n_iter, result.converged
        self.dof_ = k - p
        self._robust = result.robust
        self.robust_dof_ = None if result.robust is None else result.robust.dof
        self.n_groups_ = None if result.robust is None else result.robust.n_clusters
        self._set_fixed_effects(result.beta, result.cov)
        self.q_, self.q_pvalue_ = result.q, result.q_pvalue
        self.i2_, self.h2_ = result.i2, result.h2
        self._typical_var = result.typical_var
        self._set_moderator_test(result.beta)
        estimated = self.tau2 is None and not self._fixed_effect
        self._set_fit_statistics(
            result.loglik, p + int(estimated), k, p, self.method == "reml"
        )
        # r2_ needs a second fit (the intercept-only model): computed on first use.
        self.__dict__.pop("_r2", None)
        # The BLUPs (random_effects_) are computed on first access from the fit.
        self._fit_result = result
        self._blups = None
        # Sufficient data for tau2_confint at any confidence level (O(k) memory).
        self._profile_data = (design, y, v)

    # ------------------------------------------------------------ many outputs
    def _fit_outputs(self, design, y, v, names):
        """Fit the m outputs (columns) of ``y`` at once (vectorized engine)."""
        p = design.shape[1]
        m = y.shape[1]
        self._check_output_variances(v)
        weights = self._output_genq_weights(v)
        fits = fit_many(
            design,
            y,
            v,
            method=self.method,
            tau2=self.tau2,
            inference=self.inference,
            max_iter=self.max_iter,
            tol=self.tol,
            weights=weights,
            moderators=range(int(self.fit_intercept), p),
        )
        _warn_output_flags(fits, p, stacklevel=4)
        self._outputs = pd.Index(
            names if names is not None else pd.RangeIndex(m), name="output"
        )
        self._fits = fits
        self.n_studies_ = fits.n_studies
        self.tau2_, self.tau2_se_ = fits.tau2, fits.tau2_se
        self.n_iter_, self.converged_ = fits.n_iter, fits.converged
        self.dof_ = fits.dof
        self._robust, self.robust_dof_, self.n_groups_ = None, None, None
        self._set_fixed_effects(fits.beta, fits.cov)
        self.q_, self.q_pvalue_ = fits.q, fits.q_pvalue
        self.i2_, self.h2_ = fits.i2, fits.h2
        self._typical_var = fits.typical_var
        self.qm_, self.qm_pvalue_ = fits.qm, fits.qm_pvalue
        self._qm_df = (fits.qm_df, fits.coef_dof)
        estimated = self.tau2 is None and not self._fixed_effect
        self._set_fit_statistics(
            fits.loglik, p + int(estimated), fits.n_studies, p, self.method == "reml"
        )
        self.__dict__.pop("_r2", None)
        self._blups = None  # computed on access of random_effects_
        self._profile_data = (design, y, v)
        self._genq_weights = weights
        self._sample_weight = None
        return self

    def _check_output_variances(self, v):
        """Zero sampling variances where the model cannot take them."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column of NaN
            smallest = np.nanmin(v) if v.size else 0.0
        if not smallest <= 0:
            return
        if self.tau2 is None and tau2_method(self.method).needs_positive_var:
            raise ValueError(
                f"method={self.method!r} weights studies by 1/sample_var, so "
                "sample_var must be > 0; use method='reml', 'ml', 'he' or 'sj' for "
                "zero variances."
            )
        if self.tau2 == 0.0:
            raise ValueError(
                "Zero total variance: sample_var has zeros and tau2 is fixed at 0, "
                "so the model is degenerate. Pass positive sample_var or tau2 > 0."
            )

    def _output_genq_weights(self, v):
        """The GENQ weights of every output (k, m), or None."""
        if self.method != "genq" or self.tau2 is not None:
            return None
        a = self.genq_weights
        if a is None:
            raise ValueError(
                "method='genq' requires genq_weights: 'inverse_var', 'unit', a "
                "callable of sample_var, or one weight per study."
            )
        if isinstance(a, str):
            if a == "unit":
                return np.ones(v.shape)
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
        else:
            a = np.asarray(a, dtype=float).ravel()
            if a.shape != (v.shape[0],):
                raise ValueError(
                    f"genq_weights has {a.shape[0]} entries but n_samples={v.shape[0]}."
                )
            a = np.broadcast_to(a[:, None], v.shape)
        present = a[~np.isnan(v)]
        if not np.all(np.isfinite(present)) or np.any(present <= 0):
            raise ValueError("genq_weights must be finite and > 0.")
        return a

    @property
    def _multi(self):
        return getattr(self, "_outputs", None) is not None

    def _output_labels(self):
        return self._outputs

    def _not_for_many_outputs(self, what):
        if self._multi:
            raise ValueError(
                f"{what} is not available for a fit of {len(self._outputs)} outputs "
                "(2-D y): fit one output at a time."
            )

    def _coefficient_table(self, confidence_level):
        """The coefficient table (arrays of shape (m, p) for m outputs)."""
        dof = self._coef_dof()
        if self._multi:  # z for every output, or the df of each output
            dof = np.inf if self.inference == "z" else dof[:, None]
        return coefficient_table(self._beta, self.cov_params_, dof, confidence_level)

    def _blups_of_outputs(self):
        """BLUPs and their standard errors of every (output, study), (m, k)."""
        design, y, v = self._profile_data
        tau2 = self._fits.fit_tau2
        with np.errstate(invalid="ignore", divide="ignore"):
            lam = (tau2 / (v + tau2)).T
            resid = y.T - self._beta @ design.T
            quad = np.einsum("ij,mjk,ik->mi", design, self.cov_params_, design)
            se = np.sqrt(lam * v.T + lam**2 * quad)
        present = ~np.isnan(resid)
        return np.where(present, lam * resid, np.nan), np.where(present, se, np.nan)

    def _set_moderator_test(self, beta):
        """The omnibus test of the moderators: ``qm_``, ``qm_pvalue_``."""
        index = self._moderator_index
        if self._robust is not None and index.size:
            test = _sandwich.cluster_wald_test(self._robust, beta, index)
            omnibus = (test.statistic, test.p_value, test.df_num, test.df_denom)
        else:
            test = wald_test(beta, self.cov_params_, index, self._test_dof())
            omnibus = (test.statistic, test.p_value, test.df1, test.df2)
        self.qm_, self.qm_pvalue_ = omnibus[:2]
        self._qm_df = omnibus[2:]

    def _resolve_genq_weights(self, v, k):
        if self.method != "genq" or self.tau2 is not None:
            return None
        a = self.genq_weights
        if a is None:
            raise ValueError(
                "method='genq' requires genq_weights: 'inverse_var', 'unit', a "
                "callable of sample_var, or one weight per study."
            )
        if isinstance(a, str):
            if a == "inverse_var" and np.any(v <= 0):
                raise ValueError("genq_weights='inverse_var' needs sample_var > 0.")
            a = 1.0 / v if a == "inverse_var" else np.ones(k)
        elif callable(a):
            a = a(v)
        a = np.asarray(a, dtype=float).ravel()
        if a.shape != (k,):
            raise ValueError(
                f"genq_weights has {a.shape[0]} entries but n_samples={k}."
            )
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError("genq_weights must be finite and > 0.")
        return a

    def _test_dof(self):
        if self._multi:  # per output (NaN where not estimable)
            return self._qm_df[1]
        if self.robust_dof_ is not None:
            return float(self.n_groups_ - self._beta.shape[0])
        return float("inf") if self.inference == "z" else float(self.dof_)

    def _coef_dof(self):
        if self.robust_dof_ is not None:
            return self.robust_dof_
        return self._test_dof()

    def _contrast_dof(self, design):
        if self._robust is not None and self._robust.kind == "cr2":
            # Satterthwaite degrees of freedom of each row's contrast (as
            # clubSandwich's linear_contrast, used by metafor's predict)
            return _sandwich.contrast_dof(self._robust, design)
        return self._test_dof()

    def _clusters(self, groups, design):
        """Cluster codes and their number, checked against the design."""
        codes = check_groups(groups, design.shape[0])
        n_groups = int(codes.max()) + 1
        if n_groups <= design.shape[1]:
            raise ValueError(
                f"groups has {n_groups} cluster(s); cluster-robust inference needs "
                f"more clusters than the {design.shape[1]} fixed-effect parameters."
            )
        return codes, n_groups

    @property
    def random_effects_(self) -> pd.DataFrame:
        """BLUPs of the training studies' random effects (metafor's ``ranef``).

        Columns ``estimate`` and ``se``, one row per study of the fit in order;
        for 2-D ``y`` one row per (output, study), indexed by those two levels
        (NaN where the study does not cover the output). Built on access from
        the fitted arrays.
        """
        check_is_fitted(self)
        if not self._multi:
            estimate, se = self._single_blups()
            return pd.DataFrame({"estimate": estimate, "se": se})
        estimate, se = self._blups_of_outputs()
        index = pd.MultiIndex.from_product(
            [self._outputs, pd.RangeIndex(estimate.shape[1], name="study")]
        )
        return pd.DataFrame({"estimate": estimate.ravel(), "se": se.ravel()}, index)

    @property
    def random_effects_se_(self) -> np.ndarray:
        """Standard errors of the BLUPs: shape (n_samples,), or (n_outputs,
        n_samples) for 2-D ``y``."""
        check_is_fitted(self)
        if not self._multi:
            return self._single_blups()[1]
        return self._blups_of_outputs()[1]

    def _single_blups(self):
        """BLUPs and their standard errors of a single fit, computed on first
        access from the fit and cached."""
        if self._blups is None:
            design, y, v = self._profile_data
            self._blups = random_effects_blups(design, y, v, self._fit_result)
        return self._blups

    @property
    def r2_(self) -> float | None:
        """Pseudo-R^2 (percent) relative to the intercept-only model, or None.

        Computed on first access (it refits the intercept-only model with the
        same method) and cached.
        """
        check_is_fitted(self, "_profile_data")
        if "_r2" not in self.__dict__:
            design, y, v = self._profile_data
            self._r2 = (
                self._pseudo_r2(design, y, v)
                if design.shape[1] > int(self.fit_intercept)
                else None
            )
        return self._r2

    def _null_genq_weights(self, v):
        """The GENQ weights of the intercept-only model, also when tau^2 is
        fixed (metafor fits that model with the same method), or None."""
        if self.method != "genq" or self.genq_weights is None:
            return None
        if self.tau2 is None:
            return self._genq_weights
        fitted = clone(self).set_params(tau2=None)
        if self._multi:
            return fitted._output_genq_weights(v)
        return fitted._resolve_genq_weights(v, v.shape[0])

    def _pseudo_r2(self, design, y, v):
        """Pseudo-R^2 against the intercept-only model fitted with the same
        method (metafor's R^2, also when tau^2 is fixed); None where that model
        cannot be fitted (GENQ without genq_weights)."""
        if not self.fit_intercept:
            return None
        if self._fixed_effect:
            return self._adjusted_r2(design, y, v)
        weights = self._null_genq_weights(v)
        if self.method == "genq" and weights is None:
            return None
        options = {"method": self.method, "max_iter": self.max_iter, "tol": self.tol}
        if self._multi:
            null_tau2 = fit_many(design[:, :1], y, v, weights=weights, **options).tau2
            with np.errstate(invalid="ignore", divide="ignore"):
                r2 = np.maximum(0.0, 100.0 * (null_tau2 - self.tau2_) / null_tau2)
            return np.where(
                null_tau2 > 0, r2, np.where(np.isnan(null_tau2), np.nan, 0.0)
            )
        null = fit_random_effects(design[:, :1], y, v, genq_weights=weights, **options)
        if null.tau2 <= 0:
            return 0.0
        return float(max(0.0, 100.0 * (null.tau2 - self.tau2_) / null.tau2))

    def _adjusted_r2(self, design, y, v):
        """Adjusted R^2 (percent) of the weighted least-squares fit (metafor's R^2
        for common-effect models): :math:`1 - (RSS/(k-p)) / (TSS/(k-1))` with the
        weights of the fit (1/v, or ``sample_weight``); with 1/v it is the
        proportional reduction of :math:`H^2 = Q_E/(k-p)`."""
        k, p = design.shape
        if self._multi:  # Q_E of the model and of the intercept-only model
            null = fit_many(design[:, :1], y, v, method="fe").q
            n = self.n_studies_
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = (self.q_ / (n - p)) / (null / (n - 1))
                r2 = np.where(null > 0, np.maximum(0.0, 100.0 * (1.0 - ratio)), 0.0)
            return np.where(np.isnan(null), np.nan, r2)
        a = 1.0 / v if self._sample_weight is None else self._sample_weight
        rss = uni.stable_weighted_fit(design, y, a).rss / (k - p)
        tss = uni.stable_weighted_fit(design[:, :1], y, a).rss / (k - 1)
        return float(max(0.0, 100.0 * (1.0 - rss / tss))) if tss > 0 else 0.0

    # -------------------------------------------------------------- predictions
    def predict_interval(
        self, X: ArrayLike | None = None, *, confidence_level: float = 0.95
    ) -> pd.DataFrame:
        """Predict the mean effect with confidence and prediction intervals.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), default=None
            New moderators; ``None`` for an intercept-only model (one row).
        confidence_level : float, default=0.95

        Returns
        -------
        DataFrame
            Columns ``mean, se, ci_lower, ci_upper, pi_lower, pi_upper``; the
            prediction interval is :math:`\\hat\\mu \\pm c\\sqrt{SE^2 + \\hat\\tau^2}`
            (metafor's ``predict``), with ``c`` from N(0, 1) or :math:`t_{k-p}`.
            For 2-D ``y``: one row per (output, row of ``X``), indexed by those
            two levels (``output``, ``row``).
        """
        design = self._design(self._validate_new_X(X))
        return self._interval_frame(design, confidence_level, self.tau2_)

    def score(
        self,
        X: ArrayLike | None,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        sample_var: ArrayLike | None = None,
    ) -> float:
        """Return the log-likelihood of ``y`` under the fitted model.

        :math:`\\sum_i \\log N(y_i;\\ \\hat\\beta_0 + x_i^\\top\\hat\\beta,\\
        v_i + \\hat\\tau^2)`: a total, not a mean.  With ``method="ml"`` and the
        training data it equals ``loglik_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the per-study log-densities.
        sample_var : array-like of shape (n_samples,), default=None
            Sampling variances of these studies (``None`` means zeros, with a
            warning if ``fit`` received ``sample_var``).

        Returns
        -------
        float
        """
        check_is_fitted(self)
        return self._gaussian_score(X, y, sample_weight, sample_var, self.tau2_)

    # ---------------------------------------------------------------- inference
    def tau2_confint(self, confidence_level: float = 0.95) -> pd.DataFrame:
        """Q-profile confidence intervals for tau^2, tau, I^2 and H^2.

        The bounds solve :math:`y^\\top P_{\\tau^2} y = \\chi^2_{k-p}` quantiles
        (Viechtbauer 2007); I^2 and H^2 bounds are the transformed tau^2 bounds.

        Parameters
        ----------
        confidence_level : float, default=0.95

        Returns
        -------
        DataFrame
            Index ``tau2, tau, i2, h2``; columns ``estimate, ci_lower, ci_upper``.
            For 2-D ``y``: indexed by (``output``, ``parameter``).
        """
        check_is_fitted(self)
        level = check_confidence_level(confidence_level)
        design, y, v = self._profile_data
        if self._multi:
            lo, hi = q_profile_intervals(design, y, v, level)
        else:
            lo, hi = uni.q_profile_interval(design, y, v, level)
        vt = self._typical_var
        rows = {
            "tau2": (self.tau2_, lo, hi),
            "tau": (np.sqrt(self.tau2_), np.sqrt(lo), np.sqrt(hi)),
            "i2": tuple(100.0 * t / (vt + t) for t in (self.tau2_, lo, hi)),
            "h2": tuple(t / vt + 1.0 for t in (self.tau2_, lo, hi)),
        }
        columns = ["estimate", "ci_lower", "ci_upper"]
        if not self._multi:
            return pd.DataFrame.from_dict(rows, orient="index", columns=columns)
        # (output, parameter): the four rows of each output together
        values = np.stack([np.stack(row, axis=-1) for row in rows.values()], axis=1)
        index = pd.MultiIndex.from_product(
            [self._outputs, pd.Index(list(rows), name="parameter")]
        )
        return pd.DataFrame(values.reshape(-1, 3), index=index, columns=columns)

    def influence(self) -> pd.DataFrame:
        r"""Leave-one-out influence diagnostics (metafor's ``influence()``).

        For each study the model is refitted without it (same method and
        inference).  With :math:`b_{(-i)}`, :math:`\hat\tau^2_{(-i)}` and
        :math:`V_{(-i)}` from that fit and :math:`V` from the full fit:

        - ``rstudent``: :math:`(y_i - x_i^\top b_{(-i)}) / \sqrt{v_i +
          \hat\tau^2_{(-i)} + x_i^\top V_{(-i)} x_i}`;
        - ``dffits``: :math:`x_i^\top(b - b_{(-i)}) / \sqrt{h_i (v_i +
          \hat\tau^2_{(-i)})}`;
        - ``cook_d``: :math:`(b - b_{(-i)})^\top V^{-1} (b - b_{(-i)})`;
        - ``cov_r``: :math:`\det V_{(-i)} / \det V`;
        - ``tau2_del``, ``qe_del``: :math:`\hat\tau^2` and :math:`Q_E` without
          study :math:`i`;
        - ``hat``: :math:`h_i = w_i x_i^\top (X^\top W X)^{-1} x_i`;
        - ``weight``: :math:`100\, w_i / \sum_j w_j`;
        - ``dfbetas_<term>``: :math:`(b - b_{(-i)})` over the model-based standard
          errors :math:`\sqrt{\operatorname{diag}(X^\top W_{(-i)} X)^{-1}}` of all
          studies with weights at :math:`\hat\tau^2_{(-i)}` (as metafor).

        With ``sample_weight`` (user weights :math:`a_i`), as metafor: ``hat`` and
        ``weight`` come from :math:`a`, and ``dffits`` and ``dfbetas`` are scaled
        by the sandwich covariance of all studies at :math:`\hat\tau^2_{(-i)}`
        (``dffits`` by :math:`\sqrt{x_i^\top S_{(-i)} x_i}`).

        A study whose leave-one-out model cannot be fitted (the remaining
        design is rank-deficient, e.g. a dummy moderator only that study has, or
        has no residual degrees of freedom left) gets NaN in every column but
        ``hat`` and ``weight``, with a warning, as metafor reports NA. (For two
        studies without moderators metafor fits the remaining single study with
        tau^2 = 0; here that fit is not made either.)

        Returns
        -------
        DataFrame
            One row per training study.
        """
        check_is_fitted(self)
        self._not_for_many_outputs("influence()")
        design, y, v = self._profile_data
        k, p = design.shape
        w = (
            1.0 / (v + self.tau2_)
            if self._sample_weight is None
            else self._sample_weight
        )
        unscaled = uni.stable_weighted_fit(design, y, w).cov
        hat = w * np.einsum("ij,jk,ik->i", design, unscaled, design)
        names = ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "qe_del")
        rows = np.full((k, len(names) + p), np.nan)
        refit = clone(self)
        skipped = []
        for i in range(k):
            keep = np.arange(k) != i
            if k - 1 <= p or dependent_columns(design[keep]):
                skipped.append(i)
                continue
            weights = None if self._sample_weight is None else self._sample_weight[keep]
            sub = refit._fit_design(design[keep], y[keep], v[keep], None, weights)
            rows[i] = self._deletion_row(design, y, v, i, hat[i], sub)
        if skipped:
            warnings.warn(
                f"influence(): the model without one study cannot be fitted for "
                f"{len(skipped)} stud{'y' if len(skipped) == 1 else 'ies'} (rows "
                f"{skipped}; rank-deficient design or no residual degrees of "
                "freedom): their diagnostics are NaN.",
                UserWarning,
                stacklevel=2,
            )
        frame = pd.DataFrame(rows[:, : len(names)], columns=list(names))
        frame["hat"] = hat
        frame["weight"] = 100.0 * w / w.sum()
        for j, name in enumerate(self._term_names):
            frame[f"dfbetas_{name}"] = rows[:, len(names) + j]
        return frame

    def _deletion_row(self, design, y, v, i, hat, sub):
        """The diagnostics of study ``i`` from the fit ``sub`` without it.

        ``dfbetas`` (and, with user weights, ``dffits``) are scaled by the
        covariance of the coefficients of all studies at
        :math:`\\hat\\tau^2_{(-i)}` (as metafor).
        """
        beta = self._beta
        delta = beta - sub._beta
        xi = design[i]
        rstudent = (y[i] - xi @ sub._beta) / np.sqrt(
            v[i] + sub.tau2_ + float(xi @ sub.cov_params_ @ xi)
        )
        scale = self._deletion_scale(design, y, v, sub.tau2_)
        if self._sample_weight is None:
            dffits = (xi @ delta) / np.sqrt(hat * (v[i] + sub.tau2_))
        else:
            dffits = (xi @ delta) / np.sqrt(xi @ scale @ xi)
        cook_d = delta @ np.linalg.solve(self.cov_params_, delta)
        cov_r = np.exp(
            np.linalg.slogdet(sub.cov_params_)[1]
            - np.linalg.slogdet(self.cov_params_)[1]
        )
        dfbetas = delta / np.sqrt(np.diag(scale))
        return [rstudent, dffits, cook_d, cov_r, sub.tau2_, sub.q_, *dfbetas]

    def _deletion_scale(self, design, y, v, tau2):
        """Covariance of the coefficients of all studies at ``tau2``: the
        model-based :math:`(X^\\top W X)^{-1}`, or the sandwich with user
        weights."""
        if self._sample_weight is None:
            return uni.stable_weighted_fit(design, y, 1.0 / (v + tau2)).cov
        a = self._sample_weight
        bread = uni.stable_weighted_fit(design, y, a).cov
        half = design * (a * np.sqrt(v + tau2))[:, None]
        return bread @ (half.T @ half) @ bread

    # ------------------------------------------------------------------ summary
    @property
    def _fixed_effect(self):
        return self.method == "fe" and self.tau2 is None

    def _summary_title(self):
        kind = "Fixed-effect" if self._fixed_effect else "Random-effects"
        if self._multi:
            what = (
                "tau^2 fixed at " + f"{self.tau2:g}"
                if self.tau2 is not None
                else ("tau^2 estimator: " + tau2_method(self.method).label)
            )
            return (
                f"{kind} models of {len(self._outputs)} outputs (k = "
                f"{self._profile_data[0].shape[0]} studies; {what})"
            )
        k = self.dof_ + self._beta.shape[0]
        if self.tau2 is not None:
            return f"{kind} model (k = {k}; tau^2 fixed at {self.tau2:g})"
        label = tau2_method(self.method).label
        return f"{kind} model (k = {k}; tau^2 estimator: {label})"

    def _summary_table(self, confidence_level):
        if not self._multi:
            return super()._summary_table(confidence_level)
        table = self._coefficient_table(confidence_level)
        index = pd.MultiIndex.from_product(
            [self._outputs, pd.Index(self._term_names, name="term")]
        )
        return pd.DataFrame(
            {name: np.asarray(getattr(table, name)).ravel() for name in COLUMNS},
            index=index,
        )

    def _summary_info(self, confidence_level):
        if self._multi:
            return self._outputs_info()
        info = [
            ("tau^2", self.tau2_),
            ("SE(tau^2)", self.tau2_se_),
            ("tau", float(np.sqrt(self.tau2_))),
            ("I^2 (%)", self.i2_),
            ("H^2", self.h2_),
        ]
        if self.r2_ is not None:
            info.append(("R^2 (%)", self.r2_))
        info += [(f"Q (df = {self.dof_})", self.q_), ("p-value (Q)", self.q_pvalue_)]
        df1, df2 = self._qm_df
        if df1:
            label = "QM" if np.isinf(df2) else "F"
            df = f"df = {df1}" if np.isinf(df2) else f"df = {df1}, {df2:g}"
            info += [
                (f"{label} ({df})", self.qm_),
                (f"p-value ({label})", self.qm_pvalue_),
            ]
        return info + self._fit_statistics_info()

    def _outputs_info(self):
        """Model-level lines of a multi-output summary: counts and medians."""
        estimable = ~np.isnan(self.tau2_)
        n = self.n_studies_
        info = [
            ("outputs", len(self._outputs)),
            ("studies per output", f"{n.min()} to {n.max()}"),
            ("not estimable", int((~estimable).sum())),
            ("not converged", int((estimable & ~self.converged_).sum())),
        ]
        if estimable.any():
            for label, values in (
                ("tau^2", self.tau2_),
                ("I^2 (%)", self.i2_),
                ("log-likelihood", self.loglik_),
            ):
                finite = values[estimable & ~np.isnan(values)]
                if finite.size:
                    info.append((f"{label}, median", float(np.median(finite))))
            significant = int((self.q_pvalue_[estimable] < 0.05).sum())
            info.append(("outputs with p-value (Q) < 0.05", significant))
        return info

    def _summary_notes(self, confidence_level):
        if self._multi:
            return [
                {
                    "z": "Tests and intervals use the standard normal distribution.",
                    "t": "Tests and intervals use t with n_studies_ - p df.",
                    "knapp-hartung": "Knapp-Hartung adjustment; t with n_studies_ - "
                    "p df.",
                    "knapp-hartung-adhoc": "Ad hoc Knapp-Hartung adjustment "
                    "(s^2 >= 1); t with n_studies_ - p df.",
                }[self.inference],
                "One meta-analysis per output; to_frame() is indexed by (output, "
                "term).",
            ]
        notes = []
        if getattr(self, "_sample_weight", None) is not None:
            notes.append(
                "Coefficients weighted by sample_weight (sandwich covariance)."
            )
        if self.robust_dof_ is not None:
            return [
                *notes,
                f"Cluster-robust covariance ({self.cluster_robust.upper()}, "
                f"{self.n_groups_} clusters); t tests with the listed df.",
            ]
        return [
            *notes,
            {
                "z": "Tests and intervals use the standard normal distribution.",
                "t": f"Tests and intervals use t with {self.dof_} df.",
                "knapp-hartung": f"Knapp-Hartung adjustment; t with {self.dof_} df.",
                "knapp-hartung-adhoc": "Ad hoc Knapp-Hartung adjustment "
                f"(s^2 >= 1); t with {self.dof_} df.",
            }[self.inference],
        ]

    # --------------------------------------------------------- self-description
    def _model_label(self):
        return "FE Model" if self._fixed_effect else "RE Model"

    def _study_weights(self, sample_var, **metadata):
        """Percentage weights: the user's ``sample_weight`` when fitted with it."""
        self._not_for_many_outputs("Study weights (plots)")
        weights = getattr(self, "_sample_weight", None)
        if weights is None or len(weights) != np.shape(sample_var)[0]:
            return super()._study_weights(sample_var, **metadata)
        return 100.0 * weights / weights.sum()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # 2-D y: one meta-analysis per column
        return tags

    def _profile_targets(self):
        self._not_for_many_outputs("Profiling")
        return {
            "tau2": ProfileTarget(
                float(self.tau2_), float(self.tau2_se_), lambda value: {"tau2": value}
            )
        }


def _warn_output_flags(fits, n_params, stacklevel):
    """One warning per kind of problem of a multi-output fit, counting the
    outputs it concerns (``fits``: a ``RandomEffectsFits``, or its flags as a
    mapping of arrays)."""
    estimable = np.asarray(fits.estimable, dtype=bool)
    converged = np.asarray(fits.converged, dtype=bool)
    limit = np.asarray(fits.limit)
    exact = np.asarray(fits.kh_degenerate, dtype=bool)
    m = estimable.shape[0]
    stacklevel += 1
    bad = int((~estimable).sum())
    if bad:
        warnings.warn(
            f"{bad} of {m} outputs have no more studies than the {n_params} "
            "fixed-effect parameter(s) of the model, or a design that is "
            "rank-deficient on their studies: their estimates are NaN.",
            UserWarning,
            stacklevel=stacklevel,
        )
    failed = int((estimable & ~converged).sum())
    if failed:
        warnings.warn(
            f"tau^2 estimation did not converge for {failed} of {m} outputs "
            "(converged_ is False there); increase max_iter.",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
    diverging = int((limit == LIMITS.index("diverges")).sum())
    if diverging:
        warnings.warn(
            f"In {diverging} output(s) the likelihood increases without bound as "
            "tau2 -> 0: the studies with zero sample_var are fitted exactly. "
            "tau2 is reported as 0 and the log-likelihood as inf there.",
            UserWarning,
            stacklevel=stacklevel,
        )
    at_zero = int((limit == LIMITS.index("exact")).sum())
    if at_zero:
        warnings.warn(
            f"In {at_zero} output(s) tau2 is estimated at 0 and some sample_var "
            "are 0: those studies have zero total variance and are fitted exactly.",
            UserWarning,
            stacklevel=stacklevel,
        )
    if exact.any():
        warnings.warn(
            f"In {int(exact.sum())} output(s) the weighted residuals are zero to "
            "rounding (y is fitted exactly): the Knapp-Hartung variance factor is 0 "
            "and the tests are undefined.",
            UserWarning,
            stacklevel=stacklevel,
        )
