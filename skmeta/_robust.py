"""Random-effects meta-analysis robust to the uncertainty of tau^2.

Hanada & Sugimoto's M-estimator method; the numerics are in
:mod:`skmeta._engine._robust`.
"""

from functools import lru_cache

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import special
from sklearn.utils.validation import check_is_fitted

from skmeta._base import MISSING_POLICIES, _BaseMeta
from skmeta._compat import StrOptions, _fit_context
from skmeta._engine import _robust as rob
from skmeta._engine._gls import gaussian_logpdf
from skmeta._summary import COLUMNS
from skmeta.utils._validation import check_confidence_level

_LABELS = {
    "dl": "DerSimonian-Laird",
    "he": "Hedges",
    "sj": "Sidik-Jonkman",
    "gmm": "general moment (user weights)",
}
_ALTERNATIVES = ("two-sided", "greater", "less")
_INTERVAL_COLUMNS = pd.Index(["estimate", "ci_lower", "ci_upper"])
_TAU2_INDEX = pd.Index(["tau2"], name="parameter")


@lru_cache(maxsize=32)
def _term_index(names):
    """Index of term names, built once per set of names (pandas infers the
    string dtype of a list slowly); callers copy it."""
    return pd.Index(list(names), name="term")


#: With zero sampling variances, an OLS residual sum of squares below this
#: fraction of y'y is an exact fit (rounding), where tau^2 = 0 and the model is
#: degenerate.
_EXACT_FIT_RTOL = 1e-24


class RobustMeta(_BaseMeta):
    r"""Random-effects meta-analysis with a robust (M-estimated) between-study variance.

    Hanada & Sugimoto's method for the model

    .. math::

        y_k \sim N(\theta, v_k + \tau^2), \qquad k = 1, \dots, K,

    with known sampling variances :math:`v_k`. The usual plug-in analysis estimates
    :math:`\tau^2` by :math:`\hat\tau^2` and treats it as known, which makes the
    interval for :math:`\theta` too narrow when :math:`K` is small. Here the observed
    :math:`\hat\tau^2` is taken as the *median* of its own exact sampling
    distribution (M-estimation with :math:`\rho(u) = |u|`):

    .. math::

        F_{\hat\tau^2}(\hat\tau^2_{obs} \mid \tau^2_M) = 1/2 ,

    and inference on :math:`\theta` averages over that distribution at
    :math:`\tau^2_M`, :math:`X \sim F_{\hat\tau^2}(\cdot \mid \tau^2_M)`:

    * ``inference="z"``: :math:`G(q) = E[\Phi(q\sqrt{W_1(X)})]`,
      :math:`W_1(x) = \sum_k 1/(v_k + x)`; CI
      :math:`\hat\theta \pm G^{-1}(1 - \alpha/2)`, two-sided p-value
      :math:`2\{1 - G(|\hat\theta - \theta_0|)\}`.
    * ``inference="knapp-hartung"`` (the Hartung-Knapp-Sidik-Jonkman mixture,
      "HKSJ-M"): :math:`C(t) = E[F_{t_{K-1}}((t - \hat\theta(X))/s(X))]`
      with the Knapp-Hartung scale
      :math:`s^2(x) = \sum_k w_k(x)(y_k - \hat\theta(x))^2 / ((K-1)W_1(x))`; CI
      :math:`(C^{-1}(\alpha/2), C^{-1}(1 - \alpha/2))`, p-values by inverting it.

    The point estimate is the ordinary plug-in
    :math:`\hat\theta = \sum w_k(\hat\tau^2) y_k / \sum w_k(\hat\tau^2)`.
    Exact distributions: the moment estimators (DL, HE, fixed user weights) are a
    truncated weighted sum of :math:`\chi^2_1` variables with an atom at zero
    (Theorem 2); Sidik-Jonkman is :math:`\tau^2\chi^2_{K-1}/(K-1)` (Theorem 3), and
    its M-estimate solves :math:`Q(\tau^2_M) = \mathrm{median}(\chi^2_{K-1})`.
    Everything is deterministic: the weighted :math:`\chi^2` CDF is inverted
    numerically (absolute error < 1e-10), expectations use fixed quadrature rules
    and roots Newton's method with exact derivatives (safeguarded by Brent's
    method); there is no Monte Carlo.

    Parameters
    ----------
    method : {"dl", "he", "sj", "gmm"}, default="dl"
        Estimator of :math:`\tau^2`: DerSimonian-Laird (moment estimator with
        weights :math:`1/v_k`), Hedges (unit weights), Sidik-Jonkman (metafor's
        feasible form), or the general moment estimator with the fixed ``weights``
        (the same estimators as ``RandomEffectsMeta``'s ``method``).
    inference : {"z", "knapp-hartung"}, default="z"
        Normal mixture (the paper's "mDL"/"mSJ") or the Hartung-Knapp-Sidik-Jonkman
        mixture ("HKSJ-M"): the conventional Knapp-Hartung inference averaged
        over the sampling distribution of :math:`\hat\tau^2`.
    weights : callable or array-like of shape (n_samples,), default=None
        Fixed weights :math:`a_k > 0` of ``method="gmm"`` (and only then):
        either a callable ``f(sample_var) -> weights`` (usable in cross-validation)
        or one weight per study. The distribution theory needs weights that do not
        depend on ``y``.
    paper_compat : bool, default=False
        Reproduce the authors' code (metaMest, submitted version): :math:`\tau^2_M`
        for SJ and for the HKSJ variants is the point of their grid
        ``0.001, 0.1, 0.2, ..., 30`` (in the units of ``y``, squared) minimising
        :math:`|R(\tau^2) - \hat\tau^2(\tau^2)|`, with exact medians
        :math:`R` instead of their Monte Carlo ones; the z-variant of the moment
        estimators keeps the exact root, as their code does. Scale-dependent;
        use it only to compare with the paper.
    fit_intercept : bool, default=True
        Whether the design has an intercept (the overall effect :math:`\theta` of
        the paper's model).

    Attributes
    ----------
    intercept_ : float
        Plug-in estimate :math:`\hat\theta(\hat\tau^2)`.
    coef_ : ndarray of shape (n_features,)
        Moderator coefficients (empty for the paper's intercept-only model).
    cov_params_ : ndarray of shape (n_params, n_params)
        Conventional covariance of ``[intercept_, *coef_]``:
        :math:`(X^TWX)^{-1}` at :math:`\hat\tau^2` (:math:`1/W_1(\hat\tau^2)`
        without moderators), times the Knapp-Hartung factor
        :math:`Q(\hat\tau^2)/(K-p)` when ``inference="knapp-hartung"``. The robust
        intervals are not of Wald form; see :meth:`conf_int`.
    tau2_ : float
        Plug-in :math:`\hat\tau^2`.
    tau2_m_ : float
        M-estimate :math:`\tau^2_M` used for the robust inference.
    tau2_zero_prob_ : float
        Atom :math:`P(\hat\tau^2 = 0 \mid \tau^2_M)` of the moment estimators
        (0 for SJ unless :math:`\tau^2_M = 0`).
    q_, q_pvalue_ : float
        Test of (residual) heterogeneity: Cochran's :math:`Q` with weights
        :math:`1/v_k` and its :math:`\chi^2_{K-p}` p-value (``nan`` with zero
        variances).
    dof_ : int
        :math:`K - p` (:math:`K - 1` without moderators).
    loglik_, aic_, bic_, aicc_ : float
        Gaussian log-likelihood at :math:`(\hat\beta, \hat\tau^2)` and criteria
        (:math:`p + 1` parameters).
    n_params_ : int
    n_iter_ : int
        Function evaluations of the :math:`\tau^2_M` root search.
    converged_ : bool
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` is a DataFrame with string column names.

    Notes
    -----
    When :math:`\hat\tau^2 = 0` (common for small :math:`K`) the moment estimators'
    median condition holds on a whole interval :math:`[0, \tau^2_0]`; its infimum
    :math:`\tau^2_M = 0` is used, as the authors do (so :math:`\tau^2_M` jumps at
    :math:`\hat\tau^2 = 0^+`). When no root exists, :math:`\tau^2_M = 0`.

    The Knapp-Hartung mixture recomputes :math:`\hat\theta(x)` at every
    :math:`x`, so its interval is not centred on ``intercept_`` (the plug-in
    estimate at :math:`\hat\tau^2`) and, when :math:`\tau^2_M` and
    :math:`\hat\tau^2` are far apart, need not even contain it.

    ``sample_var`` must be all positive, or all zero: ``sample_var=None`` (zeros)
    is the model without sampling error, :math:`y_k \sim N(\theta, \tau^2)`, in
    which DL's weights :math:`1/v_k` are taken in their equal-variance limit
    (equal weights, so DL equals HE). A mix of zero and positive variances is
    rejected: the plug-in weights :math:`1/(v_k + \hat\tau^2)` would be infinite.

    Moderators (an extension beyond the paper, which treats the intercept-only
    model): with a design :math:`X` of :math:`p` columns, the moment statistic is
    :math:`Q_a = y^TP_ay`, :math:`P_a = A - AX(X^TAX)^{-1}X^TA`, whose exact
    distribution is again :math:`\sum\lambda_r\chi^2_1` (:math:`\lambda_r` the
    eigenvalues of :math:`D^{1/2}P_aD^{1/2}`, rank :math:`K-p`), the SJ equation
    becomes :math:`Q(\tau^2_M) = \mathrm{median}(\chi^2_{K-p})`, and each
    coefficient's interval mixes :math:`N(0, [(X^TW(x)X)^{-1}]_{jj})` (or the
    Knapp-Hartung :math:`t_{K-p}`) over :math:`x`. Without moderators all of this
    reduces to the paper's formulas. The exact distribution is checked by
    simulation in the tests.

    Cost: the distribution of :math:`Q_a` is never reduced to eigenvalues.
    :math:`D^{1/2}P_aD^{1/2}` is a diagonal matrix minus a projection on
    :math:`p` columns, so its characteristic function takes O(K p^2) operations
    per point (matrix determinant lemma), and is inverted by the Gil-Pelaez
    formula (Davies 1973) or on Talbot's contour; a few dozen points suffice for
    many studies. A fit with all outputs takes about a second for
    :math:`K = 10^4` studies.

    References
    ----------
    Hanada, K. and Sugimoto, T. Random-effect meta-analysis with robust
    between-study variance. arXiv (2024).

    Davies, R. B. (1973). Numerical inversion of a characteristic function.
    Biometrika, 60(2), 415-417.

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta import RobustMeta
    >>> y = np.array([-0.13, -0.24, -0.20])
    >>> v = (np.array([0.41, 0.35, 0.54]) / 3.92) ** 2
    >>> model = RobustMeta().fit(None, y, sample_var=v)
    >>> model.conf_int().round(4)
              estimate  ci_lower  ci_upper
    term
    intercept  -0.1949   -0.3373   -0.0525
    """

    _parameter_constraints: dict = {
        "method": [StrOptions({"dl", "he", "sj", "gmm"})],
        "inference": [StrOptions({"z", "knapp-hartung"})],
        "weights": [callable, "array-like", None],
        "paper_compat": ["boolean"],
        "fit_intercept": ["boolean"],
        "missing": [StrOptions(set(MISSING_POLICIES))],
    }

    def __init__(
        self,
        *,
        method="dl",
        inference="z",
        weights=None,
        paper_compat=False,
        fit_intercept=True,
        missing="raise",
    ):
        self.method = method
        self.inference = inference
        self.weights = weights
        self.paper_compat = paper_compat
        self.fit_intercept = fit_intercept
        self.missing = missing

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(
        self, X: ArrayLike | None, y: ArrayLike, *, sample_var: ArrayLike | None = None
    ) -> "RobustMeta":
        """Fit the plug-in and the robust (M-estimator) random-effects analysis.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
            Moderators. ``None`` or zero columns: the paper's intercept-only model.
        y : array-like of shape (n_samples,)
            Observed effect sizes; more studies than coefficients (K >= 2 for the
            intercept-only model).
        sample_var : array-like of shape (n_samples,), default=None
            Known sampling variances: all > 0, or all 0 (``None`` means zeros).

        Returns
        -------
        self : RobustMeta
            The fitted estimator.
        """
        X, y, v, design, _ = self._validate_training_data(X, y, sample_var)
        self._check_variances(design, y, v)
        fit = rob.robust_fit(
            design,
            y,
            v,
            method=self.method,
            weights=self._resolve_weights(v, design.shape[0]),
            paper_compat=self.paper_compat,
            inference=self.inference,
        )
        self._store(fit, design, y, v)
        return self

    @staticmethod
    def _check_variances(design, y, v):
        """All positive or all zero sampling variances, and no exact fit."""
        k, p = design.shape
        if p == 0:
            raise ValueError(
                "The model has no coefficients: with fit_intercept=False, X needs at "
                "least one column."
            )
        if v.min() > 0:  # all positive: the usual case, nothing else to check
            return
        if np.any(v > 0) and np.any(v == 0):
            raise ValueError(
                "sample_var must be all > 0 (or all 0, i.e. None): "
                f"{int(np.sum(v == 0))} of {k} are zero, which makes the weights "
                "1/(sample_var + tau^2) infinite."
            )
        if not np.any(v > 0):
            rss = rob.q_stat(design, y, np.zeros(k), 1.0)  # OLS residual SS
            if rss <= _EXACT_FIT_RTOL * max(float(y @ y), np.finfo(float).tiny):
                raise ValueError(
                    "Zero total variance: sample_var is zero and the model fits y "
                    "exactly, so tau^2 = 0 and the model is degenerate."
                )

    def _store(self, fit, design, y, v):
        """Set the fitted attributes from the engine's result."""
        k, p = design.shape
        knha = self.inference == "knapp-hartung"
        self._fit = fit
        # Intervals are root searches over the mixture; summary() repeats those of
        # conf_int() and tau2_sampling_interval(): computed once per fit and level.
        self._interval_cache = {}
        self.tau2_ = fit.tau2
        self.tau2_m_ = fit.tau2_m_hksj if knha else fit.tau2_m
        rule = fit.rule_hksj if knha else fit.rule
        self.tau2_zero_prob_ = float(rule.w[rule.x == 0].sum())
        if np.any(v > 0):
            self.q_ = fit.q0
            self.q_pvalue_ = float(special.chdtrc(k - p, self.q_))
        else:
            self.q_ = self.q_pvalue_ = float("nan")
        cov = fit.cov * (fit.q_e / (k - p) if knha else 1.0)
        self._set_fixed_effects(fit.beta, cov)
        self.dof_ = k - p
        self.n_iter_ = int(fit.n_iter)
        self.converged_ = True
        resid = y - design @ fit.beta
        loglik = float(np.sum(gaussian_logpdf(resid, v + fit.tau2)))
        self._set_fit_statistics(loglik, p + 1, k, p, False)

    def _resolve_weights(self, v, k):
        a = self.weights
        if self.method != "gmm":
            if a is not None:
                raise ValueError(
                    "weights are only used by method='gmm'; got "
                    f"method={self.method!r}."
                )
            return None
        if a is None:
            raise ValueError(
                "method='gmm' requires weights (a callable of sample_var or one "
                "weight per study)."
            )
        if callable(a):
            a = a(v)
        a = np.asarray(a, dtype=float).ravel()
        if a.shape != (k,):
            raise ValueError(f"weights has {a.size} entries but n_samples={k}.")
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError("weights must be finite and > 0.")
        return a

    # ------------------------------------------------------------------ inference
    def conf_int(
        self, confidence_level: float = 0.95, *, robust: bool = True
    ) -> pd.DataFrame:
        """Confidence intervals for the coefficients.

        Parameters
        ----------
        confidence_level : float, default=0.95
        robust : bool, default=True
            ``False`` gives the conventional plug-in interval (z with
            :math:`(X^TWX)^{-1}` at :math:`\\hat\\tau^2`, or Knapp-Hartung with
            :math:`t_{K-p}` as metafor's ``rma(..., test="knha")``).

        Returns
        -------
        DataFrame
            Columns ``estimate, ci_lower, ci_upper``, indexed by term name
            (``"intercept"``, then the moderators).  The robust Knapp-Hartung
            interval need not be centred on the estimate.
        """
        check_is_fitted(self, "_fit")
        level = check_confidence_level(confidence_level)
        bounds = self._conf_int_bounds(level, bool(robust))
        return pd.DataFrame(
            np.column_stack([self._fit.beta, bounds]),
            index=self._term_index(),
            columns=_INTERVAL_COLUMNS.copy(),
        )

    def _conf_int_bounds(self, level, robust):
        """Bounds of :meth:`conf_int`, shape (n_params, 2), once per fit and level
        (a read-only array shared by the callers)."""
        key = ("coef", self.inference, level, robust)
        bounds = self._interval_cache.get(key)
        if bounds is None:
            bounds = rob.robust_conf_int(
                self._fit, level, inference=self.inference, robust=robust
            )
            bounds.flags.writeable = False
            self._interval_cache[key] = bounds
        return bounds

    def _term_index(self):
        """The frames' index of term names (a copy: a caller may rename its
        frame's index)."""
        return _term_index(tuple(self._term_names)).copy()

    def _tau2_interval(self, level):
        """``(lower, upper)`` of :meth:`tau2_sampling_interval`, once per fit and
        level."""
        key = ("tau2", self.tau2_m_, level)
        bounds = self._interval_cache.get(key)
        if bounds is None:
            lo, hi = rob.tau2_sampling_interval(self._fit, level, self.tau2_m_)
            bounds = self._interval_cache[key] = (float(lo), float(hi))
        return bounds

    def p_value(
        self,
        theta0: float | ArrayLike = 0.0,
        alternative: str = "two-sided",
        *,
        robust: bool = True,
    ) -> np.ndarray:
        """p-values of :math:`H_0: \\beta_j = \\theta_0` for every coefficient.

        Parameters
        ----------
        theta0 : float or array-like of shape (n_params,), default=0.0
            Null value(s), in the order ``[intercept, *coef]``.
        alternative : {"two-sided", "greater", "less"}, default="two-sided"
            ``"greater"``: :math:`H_1: \\theta > \\theta_0`. For the z mixture the
            one-sided p-value in the observed direction is the paper's
            :math:`1 - G(|\\hat\\theta - \\theta_0|)`; for the Knapp-Hartung
            mixture the p-values invert the interval (:math:`C(\\theta_0)`,
            :math:`1 - C(\\theta_0)`, and twice the smaller).
        robust : bool, default=True
            ``False`` gives the conventional z or Knapp-Hartung p-values.

        Returns
        -------
        ndarray of shape (n_params,)
        """
        check_is_fitted(self, "_fit")
        if alternative not in _ALTERNATIVES:
            raise ValueError(
                f"alternative must be one of {_ALTERNATIVES}; got {alternative!r}."
            )
        n = self._fit.beta.shape[0]
        theta0 = np.asarray(theta0, dtype=float)
        if theta0.ndim > 1 or theta0.size not in (1, n):
            raise ValueError(f"theta0 must be a scalar or have {n} entries.")
        if not np.all(np.isfinite(theta0)):
            raise ValueError("theta0 must be finite.")
        return rob.robust_p_value(
            self._fit, theta0, alternative, inference=self.inference, robust=robust
        )

    def predict_interval(
        self, X: ArrayLike | None = None, *, confidence_level: float = 0.95
    ) -> pd.DataFrame:
        """Predict the mean effect with robust confidence and prediction intervals.

        The intervals mix over the sampling distribution of the tau^2 estimate at
        ``tau2_m_`` as the coefficients' intervals do; the prediction interval is
        for a new study's true effect, as metafor's ``predict``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), default=None
            New moderators; ``None`` for the intercept-only model (one row).
        confidence_level : float, default=0.95

        Returns
        -------
        DataFrame
            Columns ``mean, se, ci_lower, ci_upper, pi_lower, pi_upper`` (``se``
            is the conventional plug-in standard error).
        """
        check_is_fitted(self, "_fit")
        level = check_confidence_level(confidence_level)
        design = self._design(self._validate_new_X(X))
        mean, se, ci, pi = rob.robust_prediction(
            self._fit, design, level, inference=self.inference
        )
        return pd.DataFrame(
            {
                "mean": mean,
                "se": se,
                "ci_lower": ci[:, 0],
                "ci_upper": ci[:, 1],
                "pi_lower": pi[:, 0],
                "pi_upper": pi[:, 1],
            }
        )

    def tau2_sampling_interval(self, confidence_level: float = 0.95) -> pd.DataFrame:
        """Central quantile interval of the sampling distribution of
        :math:`\\hat\\tau^2` at :math:`\\tau^2_M` (Hanada & Sugimoto, section 3.3).

        Parameters
        ----------
        confidence_level : float, default=0.95

        Returns
        -------
        DataFrame
            One row ``"tau2"``: ``estimate`` (the plug-in :math:`\\hat\\tau^2`,
            the median of that distribution when positive), ``ci_lower`` and
            ``ci_upper`` (its central quantiles).
        """
        check_is_fitted(self, "_fit")
        level = check_confidence_level(confidence_level)
        lo, hi = self._tau2_interval(level)
        return pd.DataFrame(
            np.array([[self.tau2_, lo, hi]]),
            index=_TAU2_INDEX.copy(),
            columns=_INTERVAL_COLUMNS.copy(),
        )

    def score(
        self,
        X: ArrayLike | None,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        sample_var: ArrayLike | None = None,
    ) -> float:
        """Return the Gaussian log-likelihood of ``y`` with :math:`\\hat\\tau^2`.

        :math:`\\sum_i \\log N(y_i;\\ \\hat\\theta,\\ v_i + \\hat\\tau^2)` (a total).

        Parameters
        ----------
        X : None or array-like of shape (n_samples, 0)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
        sample_var : array-like of shape (n_samples,), default=None

        Returns
        -------
        float
        """
        check_is_fitted(self, "_fit")
        if X is None:
            X = np.empty((np.asarray(y).shape[0], 0))
        return self._gaussian_score(X, y, sample_weight, sample_var, self.tau2_)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Return :math:`\\hat\\theta` for every row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, 0)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return super().predict(X)

    def _table(self, confidence_level, robust):
        """Coefficient table of the robust or of the conventional inference.

        The robust p-values and intervals are not of Wald form (they invert a
        mixture of reference distributions, and the Knapp-Hartung interval is not
        even centred on the estimate): no standard error or test statistic
        reproduces both, so those columns are NaN in the robust table.
        """
        fit = self._fit
        ci = self._conf_int_bounds(confidence_level, robust)
        if robust:
            se = stat = np.full(fit.beta.shape, np.nan)
        else:
            se = np.sqrt(np.diag(self.cov_params_))
            with np.errstate(divide="ignore", invalid="ignore"):
                stat = fit.beta / se
        p_value = rob.robust_p_value(fit, 0.0, inference=self.inference, robust=robust)
        return pd.DataFrame(
            np.column_stack([fit.beta, se, stat, p_value, ci]),
            index=self._term_index(),
            columns=pd.Index(COLUMNS),
        )

    # ------------------------------------------------------------------ summary
    def _summary_title(self):
        k = self.dof_ + self._fit.beta.shape[0]
        inference = "Knapp-Hartung" if self.inference == "knapp-hartung" else "z"
        return (
            f"Robust random-effects model (k = {k}; tau^2 estimator: "
            f"{_LABELS[self.method]}; inference: {inference})"
        )

    def _summary_info(self, confidence_level):
        t_lo, t_hi = self._tau2_interval(confidence_level)
        return [
            ("tau^2 (plug-in)", self.tau2_),
            ("tau^2_M (M-estimate)", self.tau2_m_),
            ("P(tau^2-hat = 0 | tau^2_M)", self.tau2_zero_prob_),
            (
                f"tau^2-hat {100 * confidence_level:g}% sampling interval",
                f"[{t_lo:.4g}, {t_hi:.4g}]",
            ),
            (f"Q (df = {self.dof_})", self.q_),
            ("p-value (Q)", self.q_pvalue_),
            ("log-likelihood", self.loglik_),
        ]

    def _summary_table(self, confidence_level):
        return self._table(confidence_level, True)

    def _summary_sections(self, confidence_level):
        return [
            ("Conventional (plug-in) inference", self._table(confidence_level, False))
        ]

    def _summary_notes(self, confidence_level):
        dist = (
            f"t with {self.dof_} df"
            if self.inference == "knapp-hartung"
            else "the standard normal"
        )
        notes = [
            "Robust (M) inference averages the conventional reference distribution "
            f"({dist}) over the exact sampling distribution of tau^2-hat at "
            "tau^2_M (Hanada & Sugimoto). Its p-values and intervals are not of "
            "Wald form, so no standard error or statistic reproduces them: se and "
            "statistic are undefined (missing) in the robust table; the "
            "conventional plug-in inference follows in its own table.",
        ]
        if self.n_features_in_:
            notes.append(
                "Moderators: extension of the paper's intercept-only method "
                "(Q over the weighted residual projection, K - p df)."
            )
        if self.paper_compat:
            notes.append(
                "paper_compat: tau^2_M on the authors' grid (0.001, 0.1, ..., 30)."
            )
        return notes

    # --------------------------------------------------------- self-description
    def _model_label(self):
        return "Robust RE Model"
