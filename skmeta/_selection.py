"""Selection models for publication bias (step-function and beta selection)."""

import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from scipy import special
from sklearn.exceptions import ConvergenceWarning

from skmeta._base import MISSING_POLICIES, _BaseMeta
from skmeta._compat import Interval, StrOptions, _fit_context
from skmeta._engine import _selection as sel
from skmeta._engine._gls import weighted_fit
from skmeta._engine._inference import (
    critical_value,
    two_sided_pvalue,
    wald_test,
)
from skmeta._engine._tau2 import estimate_tau2
from skmeta._engine._univariate import loglik_ml, variance_floor
from skmeta._summary import COLUMNS

#: Default bounds of the selection parameters (metafor's ``delta.min`` and
#: ``delta.max``): weights of a step function in [0, 100], beta exponents in
#: [1e-5, 100].
_DEFAULT_BOUNDS = {"step": (0.0, 100.0), "beta": (1e-5, 100.0)}
#: metafor's closeness rule for its bound warning: within eps^(1/4) of the lower
#: and 100 eps^(1/4) of the upper bound.
_BOUND_MARGIN = np.finfo(float).eps ** 0.25
_ALTERNATIVES = ("greater", "less", "two-sided")


class SelectionModelMeta(_BaseMeta):
    r"""Random-effects meta-regression under a p-value selection model.

    The studies' true effects follow the random-effects meta-regression
    :math:`y_i \sim N(\mu_i, v_i + \tau^2)`, :math:`\mu_i = \beta_0 +
    x_i^\top\beta`, but a study is published (observed) with a relative
    probability :math:`w(p_i; \delta)` that depends on its p-value :math:`p_i`
    for :math:`H_0: \theta_i = 0`, computed from :math:`y_i/\sqrt{v_i}` alone.
    The observed effects then have the weighted densities (Iyengar & Greenhouse
    1988; Hedges 1992)

    .. math::

        f(y_i) = \frac{w(p_i; \delta)\,\phi(y_i; \mu_i, v_i + \tau^2)}{A_i},
        \qquad A_i = \int w(p(u; v_i); \delta)\,\phi(u; \mu_i, v_i + \tau^2)\,du,

    and :math:`(\beta, \tau^2, \delta)` are estimated by maximum likelihood
    (metafor's ``selmodel``):

    - ``selection="step"``: a step function (Vevea & Hedges 1995) with cut
      points :math:`0 < s_1 < \dots < s_{m-1} < s_m = 1` (``steps``):
      :math:`w(p) = \delta_j` for :math:`s_{j-1} < p \le s_j`, with
      :math:`\delta_1 = 1` (the most significant interval is the reference).
      One cut at .025 with one-sided p-values is the three-parameter selection
      model, 3PSM (McShane, Böckenholt & Hansen 2016).  :math:`A_i` is a sum of
      normal probabilities.
    - ``selection="beta"``: :math:`w(p) = \tilde p^{\delta_1 - 1}(1 - \tilde
      p)^{\delta_2 - 1}` (Citkowicz & Vevea 2017), with :math:`\tilde p` the
      p-value censored to :math:`[10^{-5}, 1 - 10^{-5}]` (as metafor).
      :math:`A_i` is computed by composite Gauss–Legendre quadrature, accurate
      to about :math:`10^{-10}` relative.

    No selection is :math:`\delta = 1`, where the model is the ML
    random-effects model; ``lr_statistic_`` tests it.

    Parameters
    ----------
    selection : {"step", "beta"}, default="step"
        Selection function.
    steps : float or sequence of float, default=(0.025,)
        Cut points in (0, 1] of the step function (sorted, duplicates removed,
        1 appended; metafor's ``steps``).  Ignored by ``selection="beta"``.
    alternative : {"greater", "less", "two-sided"}, default="greater"
        Sidedness of the p-values: :math:`1 - \Phi(z_i)`, :math:`\Phi(z_i)` or
        :math:`2(1 - \Phi(|z_i|))` with :math:`z_i = y_i/\sqrt{v_i}`.  With
        ``"greater"``, selection favours significantly *positive* effects:
        code effects so that the expected direction is positive.
    delta : float or array-like of shape (n_delta,), default=None
        Fixed values of the selection parameters, ``nan`` where a parameter is
        estimated (metafor's ``delta=``); ``None`` estimates all.  For a step
        function ``n_delta`` is the number of intervals and the first entry
        must be 1 or ``nan`` (the reference).  Fixing all of them gives the
        sensitivity analysis of Vevea & Woods (2005).
    delta_bounds : tuple (lower, upper), default=None
        Bounds of the estimated selection parameters (scalars or arrays of
        shape (n_delta,)); default (0, 100) for a step function and
        (1e-5, 100) for the beta model (metafor's ``delta.min``,
        ``delta.max``).  An estimate within :math:`\epsilon^{1/4}` of a bound
        triggers a warning.
    fit_intercept : bool, default=True
        Whether to include an intercept.
    max_iter : int, default=100
        Maximum number of Newton iterations per maximisation.
    tol : float, default=1e-12
        Convergence when the Newton decrement (twice the predicted remaining
        gain of the log-likelihood) is below ``tol``.

    Attributes
    ----------
    intercept_ : float
    coef_ : ndarray of shape (n_features,)
    cov_params_ : ndarray of shape (n_params, n_params)
        Covariance of ``[intercept_, *coef_]``: the corresponding block of the
        inverse of the observed information (minus the Hessian of the
        log-likelihood over :math:`\beta`, :math:`\tau^2` and the estimated
        :math:`\delta`, on that natural scale, as metafor).
    tau2_, tau2_se_ : float
        Estimated :math:`\tau^2` and its standard error; ``nan`` when
        :math:`\hat\tau^2 = 0` (on its bound the other standard errors are
        those of the model with :math:`\tau^2 = 0`, as in metafor 4).
    delta_ : ndarray of shape (n_delta,)
        Selection parameters (fixed ones included).
    delta_se_ : ndarray of shape (n_delta,)
        Their standard errors (``nan`` for fixed ones).
    lr_statistic_, lr_pvalue_ : float
        Likelihood-ratio test of no selection: :math:`\max(0, 2(\hat\ell -
        \hat\ell_{RE}))` against the ML random-effects model, referred to
        :math:`\chi^2` with ``lr_dof_`` degrees of freedom (``nan`` when no
        selection parameter is estimated).
    lr_dof_ : int
        Number of estimated selection parameters.
    lr_tau2_statistic_, lr_tau2_pvalue_ : float
        Likelihood-ratio test of :math:`\tau^2 = 0` (the selection model refitted
        with :math:`\tau^2 = 0`; :math:`\chi^2_1`); ``nan`` when some sampling
        variances are 0.
    qm_, qm_pvalue_ : float
        Omnibus Wald test of the moderators (:math:`\chi^2`); ``nan`` without
        moderators.
    interval_counts_ : Series or None
        Number of observed p-values per interval of the step function
        (metafor's ``ptable``); ``None`` for the beta model.
    dof_ : int
        :math:`k - p`.
    loglik_ : float
        Maximised log-likelihood of the selection model.
    aic_, bic_, aicc_ : float
        Information criteria with ``n_params_`` parameters (ML conventions).
    n_params_ : int
        :math:`p + 1 +` the number of estimated selection parameters.
    n_iter_ : int
        Newton iterations of the reported maximisation.
    converged_ : bool
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` is a DataFrame with string column names.

    Notes
    -----
    The likelihood is maximised by projected Newton iterations with its
    analytic gradient and Hessian, from the ML random-effects fit with
    :math:`\delta = 1` (metafor's start).  The fit with :math:`\tau^2 = 0`
    (for ``lr_tau2_statistic_``) checks the result: should it reach a higher
    likelihood, the search restarts from it, so that the reported maximum is
    never below the boundary one.  Standard errors come from the analytic
    Hessian, so they do not depend on a finite-difference step.

    As metafor 3.8-1, an interval of the step function that holds no observed
    p-value makes its weight inestimable: ``fit`` raises a ``ValueError``
    unless that weight is fixed with ``delta``.

    ``sample_var=None`` means zero sampling variances: each p-value is then 0
    or 1 (the sign of :math:`y_i`), the limit of the model as
    :math:`v_i \to 0`, and :math:`\tau^2` is bounded below by a tiny fraction
    of the data's variance.

    References
    ----------
    Citkowicz, M., & Vevea, J. L. (2017). A parsimonious weight function for
    modeling publication bias. Psychological Methods, 22(1), 28-41.

    Hedges, L. V. (1992). Modeling publication selection effects in
    meta-analysis. Statistical Science, 7(2), 246-255.

    Iyengar, S., & Greenhouse, J. B. (1988). Selection models and the file
    drawer problem. Statistical Science, 3(1), 109-117.

    McShane, B. B., Böckenholt, U., & Hansen, K. T. (2016). Adjusting for
    publication bias in meta-analysis: An evaluation of selection methods and
    some cautionary notes. Perspectives on Psychological Science, 11(5),
    730-749.

    Vevea, J. L., & Hedges, L. V. (1995). A general linear model for estimating
    effect size in the presence of publication bias. Psychometrika, 60(3),
    419-435.

    Vevea, J. L., & Woods, C. M. (2005). Publication bias in research
    synthesis: Sensitivity analysis using a priori weight functions.
    Psychological Methods, 10(4), 428-443.

    Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor
    package. Journal of Statistical Software, 36(3). (``selmodel``)

    Examples
    --------
    >>> from skmeta import SelectionModelMeta
    >>> from skmeta.datasets import load_cohen1981
    >>> from skmeta.effect_sizes import fisher_z
    >>> data = load_cohen1981()
    >>> es = fisher_z(data["ri"], data["ni"])
    >>> model = SelectionModelMeta(steps=0.025).fit(
    ...     None, es.yi, sample_var=es.vi
    ... )
    >>> round(model.intercept_, 4), round(float(model.delta_[1]), 4)
    (0.3379, 0.5085)
    """

    _parameter_constraints: dict = {
        "selection": [StrOptions({"step", "beta"})],
        "steps": [Real, "array-like"],
        "alternative": [StrOptions(set(_ALTERNATIVES))],
        "delta": [Real, "array-like", None],
        "delta_bounds": [tuple, list, None],
        "fit_intercept": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "missing": [StrOptions(set(MISSING_POLICIES))],
    }

    def __init__(
        self,
        *,
        selection="step",
        steps=(0.025,),
        alternative="greater",
        delta=None,
        delta_bounds=None,
        fit_intercept=True,
        max_iter=100,
        tol=1e-12,
        missing="raise",
    ):
        self.selection = selection
        self.steps = steps
        self.alternative = alternative
        self.delta = delta
        self.delta_bounds = delta_bounds
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.missing = missing

    # ----------------------------------------------------------------- settings
    def _steps(self):
        """Validated cut points (before 1 is appended); empty for beta."""
        if self.selection != "step":
            return np.zeros(0)
        steps = np.atleast_1d(np.asarray(self.steps, dtype=float)).ravel()
        if steps.size == 0 or not np.all(np.isfinite(steps)):
            raise ValueError(
                "steps must be one or more finite numbers in (0, 1], got "
                f"{self.steps!r}."
            )
        if np.any((steps <= 0) | (steps > 1)):
            raise ValueError(f"steps must lie in (0, 1], got {self.steps!r}.")
        return steps

    def _resolve_delta(self, n_delta):
        """Fixed values (nan = estimated) and bounds of the selection parameters."""
        step = self.selection == "step"
        if self.delta is None:
            delta = np.full(n_delta, np.nan)
        else:
            delta = np.atleast_1d(np.asarray(self.delta, dtype=float)).ravel()
            if delta.size == 1:
                delta = np.full(n_delta, delta[0])
            if delta.size != n_delta:
                raise ValueError(
                    f"delta must have {n_delta} entries (one per selection "
                    f"parameter), got {delta.size}."
                )
            fixed = delta[~np.isnan(delta)]
            if not np.all(np.isfinite(fixed)):
                raise ValueError("delta must hold finite values or nan.")
            if step and np.any(fixed < 0):
                raise ValueError("Fixed step weights (delta) must be >= 0.")
            if not step and np.any(fixed <= 0):
                raise ValueError("Fixed beta exponents (delta) must be > 0.")
        if step:
            if not (np.isnan(delta[0]) or delta[0] == 1.0):
                raise ValueError(
                    "delta[0] is the weight of the reference interval (the "
                    f"smallest p-values) and is 1; got {delta[0]!r}."
                )
            delta[0] = 1.0
        bounds = self.delta_bounds
        if bounds is None:
            bounds = _DEFAULT_BOUNDS[self.selection]
        if len(bounds) != 2:
            raise ValueError("delta_bounds must be a (lower, upper) pair.")
        lower, upper = (
            np.broadcast_to(np.asarray(b, dtype=float), (n_delta,)).copy()
            for b in bounds
        )
        admissible = 0.0 if step else np.finfo(float).tiny
        if np.any(np.isnan(lower) | np.isnan(upper)) or np.any(lower >= upper):
            raise ValueError("delta_bounds: lower must be below upper.")
        if np.any(lower < admissible):
            raise ValueError(
                "delta_bounds: the lower bound must be >= 0 for step weights and "
                "> 0 for beta exponents."
            )
        return delta, lower, upper

    def _interval_labels(self, cuts):
        left = np.concatenate([[0.0], cuts[:-1]])
        return [f"{a:g} < p <= {b:g}" for a, b in zip(left, cuts, strict=True)]

    # ------------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, *, sample_var=None):
        """Fit the selection model by maximum likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
            Moderators. ``None`` or zero columns: intercept-only model.
        y : array-like of shape (n_samples,)
            Observed effect sizes.
        sample_var : array-like of shape (n_samples,), default=None
            Known sampling variances (finite, >= 0). ``None`` means zeros.

        Returns
        -------
        self : SelectionModelMeta
            The fitted estimator.
        """
        steps = self._steps()
        X, y, v, design, _ = self._validate_training_data(X, y, sample_var)
        k, p = design.shape
        problem = sel.selection_problem(
            design,
            y,
            v,
            kind=self.selection,
            alternative=self.alternative,
            steps=steps,
        )
        n_delta = problem.n_delta
        delta, lower, upper = self._resolve_delta(n_delta)
        free = np.isnan(delta)
        n_free = int(free.sum())
        if k < p + 1 + n_free:
            raise ValueError(
                f"Too few studies: the selection model has {p + 1 + n_free} "
                f"parameters ({p} fixed effect(s), tau^2 and {n_free} selection "
                f"parameter(s)), got n_samples={k}."
            )
        self.interval_counts_ = None
        if self.selection == "step":
            counts = sel.interval_counts(problem)
            labels = self._interval_labels(problem.steps)
            self.interval_counts_ = pd.Series(counts, index=labels, name="k")
            empty = [
                lab
                for lab, c, f in zip(labels, counts, free, strict=True)
                if f and c == 0
            ]
            if empty:
                suggestion = ", ".join(
                    "nan" if f and c else f"{d:g}" if not f else "1"
                    for d, c, f in zip(delta, counts, free, strict=True)
                )
                raise ValueError(
                    "No observed p-value lies in the interval(s) "
                    + ", ".join(repr(lab) for lab in empty)
                    + " of the step function, so their selection weights cannot "
                    "be estimated (metafor's selmodel stops here too). Change "
                    f"steps, or fix those weights, e.g. delta=[{suggestion}]."
                )
        start = np.where(free, np.clip(1.0, lower, upper), delta)
        tau2_lower = variance_floor(v, y)
        # the model without selection (delta = 1): ML random-effects fit
        re_tau2 = estimate_tau2(design, y, v, "ml", max_iter=self.max_iter).tau2
        re_fit = weighted_fit(design, y, 1.0 / (v + re_tau2))
        re_loglik = loglik_ml(v, re_tau2, re_fit)

        def maximize(beta, tau2, delta_start, estimate_tau2=True):
            return sel.maximize_selection(
                problem,
                beta=beta,
                tau2=tau2,
                delta=delta_start,
                free_delta=free,
                delta_lower=lower,
                delta_upper=upper,
                tau2_lower=tau2_lower,
                estimate_tau2=estimate_tau2,
                max_iter=self.max_iter,
                tol=self.tol,
            )

        result = maximize(re_fit.beta, re_tau2, start)
        self.lr_tau2_statistic_ = self.lr_tau2_pvalue_ = float("nan")
        if tau2_lower == 0.0:
            # The fit with tau^2 = 0 gives the LR test of heterogeneity and
            # certifies the maximum: were it higher, the first search stopped at
            # a lower local maximum, and the search restarts from it.
            at_zero = maximize(result.beta, 0.0, result.delta, estimate_tau2=False)
            if at_zero.loglik > result.loglik:
                restart = maximize(at_zero.beta, 0.0, at_zero.delta)
                if restart.loglik > result.loglik:
                    result = restart
            self.lr_tau2_statistic_ = max(0.0, 2.0 * (result.loglik - at_zero.loglik))
            self.lr_tau2_pvalue_ = float(special.chdtrc(1, self.lr_tau2_statistic_))
        self.n_iter_, self.converged_ = result.n_iter, result.converged
        if not self.converged_:
            warnings.warn(
                f"The selection model did not converge in {self.max_iter} "
                "iterations; increase max_iter.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.tau2_ = result.tau2
        self.delta_ = result.delta
        near_bound = free & (
            (result.delta <= lower + _BOUND_MARGIN)
            | (result.delta >= upper - 100.0 * _BOUND_MARGIN)
        )
        if near_bound.any():
            warnings.warn(
                "One or more delta estimates (indices "
                f"{np.flatnonzero(near_bound).tolist()}) are (almost) equal to "
                "their lower or upper bound: treat the results with caution, or "
                "widen delta_bounds.",
                UserWarning,
                stacklevel=3,
            )
        # tau^2 on its bound (0): the standard errors are those of the model
        # with tau^2 = 0, as metafor >= 4.0 does; metafor 3.8-1 differentiates
        # across the bound numerically, with the same result for beta and delta
        # but an arbitrary one for tau^2
        tau2_inside = result.tau2 > tau2_lower
        estimated = np.concatenate([np.ones(p, bool), [tau2_inside], free])
        cov = self._inverse_information(result.hess, estimated)
        self._set_fixed_effects(result.beta, cov[:p, :p])
        self.tau2_se_ = float(np.sqrt(cov[p, p]))
        self.delta_se_ = np.sqrt(np.diag(cov)[p + 1 :])
        self.dof_ = k - p
        self.lr_dof_ = n_free
        self.lr_statistic_ = max(0.0, 2.0 * (result.loglik - re_loglik))
        self.lr_pvalue_ = (
            float(special.chdtrc(n_free, self.lr_statistic_))
            if n_free
            else float("nan")
        )
        if not n_free:
            self.lr_statistic_ = float("nan")
        index = np.arange(1 if self.fit_intercept else 0, p)
        test = wald_test(self._beta, self.cov_params_, index, float("inf"))
        self.qm_, self.qm_pvalue_ = test.statistic, test.p_value
        self._qm_df = test.df1
        self._set_fit_statistics(result.loglik, p + 1 + n_free, k, p, reml=False)
        self._steps_fitted = problem.steps
        return self

    @staticmethod
    def _inverse_information(hess, estimated):
        """Inverse of minus the Hessian over the ``estimated`` parameters.

        Returns a matrix over all of (beta, tau2, delta), ``nan`` outside the
        estimated block, and ``nan`` altogether (with a warning) when the block
        is not positive definite: a likelihood that is flat in some direction.
        """
        index = np.flatnonzero(estimated)
        cov = np.full(hess.shape, np.nan)
        info = -hess[np.ix_(index, index)]
        try:
            chol = np.linalg.cholesky(info)
        except np.linalg.LinAlgError:
            chol = None
        if chol is None or not np.all(np.isfinite(chol)):
            warnings.warn(
                "The observed information (minus the Hessian of the "
                "log-likelihood) is not positive definite at the maximum: the "
                "likelihood is flat in some direction, so the standard errors are "
                "nan.",
                UserWarning,
                stacklevel=4,
            )
            return cov
        inv_chol = np.linalg.inv(chol)
        cov[np.ix_(index, index)] = inv_chol.T @ inv_chol
        return cov

    # -------------------------------------------------------------- predictions
    def predict_interval(self, X=None, *, confidence_level=0.95):
        """Predict the mean effect with confidence and prediction intervals.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), default=None
            New moderators; ``None`` for an intercept-only model (one row).
        confidence_level : float, default=0.95

        Returns
        -------
        DataFrame
            Columns ``mean, se, ci_lower, ci_upper, pi_lower, pi_upper``: the
            selection-adjusted mean :math:`x^\\top\\hat\\beta` with the normal
            interval :math:`\\pm z\\,SE` and the prediction interval
            :math:`\\pm z\\sqrt{SE^2 + \\hat\\tau^2}` for a new study's true
            effect before selection (metafor's ``predict``).
        """
        design = self._design(self._validate_new_X(X))
        return self._interval_frame(design, confidence_level, self.tau2_)

    def score(self, X, y, sample_weight=None, *, sample_var=None):
        """Return the selection-adjusted log-likelihood of ``y`` under the fit.

        :math:`\\sum_i [\\log w(p_i; \\hat\\delta) + \\log\\phi(y_i; \\hat\\mu_i,
        v_i + \\hat\\tau^2) - \\log A_i]`: a total, not a mean.  On the training
        data it equals ``loglik_``.

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
        X, y, v, sample_weight = self._score_inputs(X, y, sample_weight, sample_var)
        if np.any(v + self.tau2_ <= 0):
            raise ValueError(
                "sample_var has zeros and the fitted tau2_ is 0: the model gives "
                "those studies no variance, so their density is undefined."
            )
        problem = sel.selection_problem(
            self._design(X),
            y,
            v,
            kind=self.selection,
            alternative=self.alternative,
            steps=self._steps_fitted,
        )
        logdens = sel.selection_logdensities(
            problem, self._beta, self.tau2_, self.delta_
        )
        if sample_weight is None:
            return float(np.sum(logdens))
        return float(sample_weight @ logdens)

    # ------------------------------------------------------------------- summary
    def _delta_frame(self, confidence_level):
        """Selection parameters: estimate, SE, z-test of delta = 1, CI."""
        crit = critical_value(confidence_level, float("inf"))
        est, se = self.delta_, self.delta_se_
        with np.errstate(invalid="ignore", divide="ignore"):
            statistic = (est - 1.0) / se
        lower = np.maximum(est - crit * se, 0.0)
        frame = pd.DataFrame(
            {
                "estimate": est,
                "se": se,
                "statistic": statistic,
                "p_value": two_sided_pvalue(statistic, float("inf")),
                "ci_lower": lower,
                "ci_upper": est + crit * se,
            }
        )
        if self.interval_counts_ is not None:
            frame.index = self.interval_counts_.index
            frame.insert(0, "k", self.interval_counts_.to_numpy())
            # the reference interval's weight is 1 by definition, not estimated
            frame.iloc[0, 2:] = np.nan
        else:
            frame.index = ["delta_1", "delta_2"]
        return frame

    def _summary_title(self):
        k = self.dof_ + self._beta.shape[0]
        if self.selection == "step":
            cuts = ", ".join(f"{s:g}" for s in self._steps_fitted[:-1])
            kind = f"step function (steps: {cuts})"
        else:
            kind = "beta selection function"
        return (
            f"Random-effects selection model (k = {k}; {kind}; "
            f"{self.alternative} p-values; ML)"
        )

    def _summary_info(self, confidence_level):
        info = [
            ("tau^2", self.tau2_),
            ("SE(tau^2)", self.tau2_se_),
            ("tau", float(np.sqrt(self.tau2_))),
            ("LRT tau^2 = 0 (df = 1)", self.lr_tau2_statistic_),
            ("p-value (LRT tau^2)", self.lr_tau2_pvalue_),
            (f"LRT no selection (df = {self.lr_dof_})", self.lr_statistic_),
            ("p-value (LRT selection)", self.lr_pvalue_),
        ]
        if self._qm_df:
            info += [
                (f"QM (df = {self._qm_df})", self.qm_),
                ("p-value (QM)", self.qm_pvalue_),
            ]
        return info + self._fit_statistics_info()

    def _summary_sections(self, confidence_level):
        crit = critical_value(confidence_level, float("inf"))
        tau2 = pd.DataFrame(
            [
                [
                    self.tau2_,
                    self.tau2_se_,
                    np.nan,
                    np.nan,
                    np.maximum(0.0, self.tau2_ - crit * self.tau2_se_),
                    self.tau2_ + crit * self.tau2_se_,
                ]
            ],
            columns=COLUMNS,
            index=["tau2"],
        )
        return [
            ("Heterogeneity", tau2),
            ("Selection model", self._delta_frame(confidence_level)),
        ]

    def _summary_notes(self, confidence_level):
        notes = [
            "Tests and intervals use the standard normal distribution; standard "
            "errors from the observed information of beta, tau^2 and delta."
        ]
        if np.isnan(self.tau2_se_):
            notes.append(
                "tau^2 is estimated on its bound 0: the standard errors are those "
                "of the model with tau^2 = 0."
            )
        if not self.converged_:
            notes.append("The maximisation did not converge.")
        return notes

    def _model_label(self):
        return "Selection Model"
