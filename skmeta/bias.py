r"""Small-study effects and publication bias.

Functions of the effect sizes ``y`` and their sampling variances ``sample_var``
(as metafor's functions of the same purpose, Viechtbauer 2010):

- :func:`regression_test`: Egger's regression test and its variants (Egger et
  al. 1997; Sterne & Egger 2005), with the limit estimate as the standard error
  (PET) or the variance (PEESE) goes to 0 (Stanley & Doucouliagos 2014).
- :func:`rank_correlation_test`: Begg & Mazumdar's (1994) rank correlation test.
- :func:`trim_and_fill`: Duval & Tweedie's (2000a, 2000b) trim-and-fill method.
- :func:`fail_safe_n`: Rosenthal's (1979), Orwin's (1983) and Rosenberg's (2005)
  fail-safe numbers.

Each returns a small frozen result object with named fields and a readable
``str()``.  Funnel-plot asymmetry has causes other than publication bias (true
heterogeneity related to study size, chance, artefacts); these methods detect
small-study effects, they do not prove bias (Sterne et al. 2011).

References
----------
Begg, C. B., & Mazumdar, M. (1994). Operating characteristics of a rank
correlation test for publication bias. *Biometrics*, 50, 1088-1101.

Duval, S., & Tweedie, R. (2000a). Trim and fill: A simple funnel-plot-based
method of testing and adjusting for publication bias in meta-analysis.
*Biometrics*, 56, 455-463.

Duval, S., & Tweedie, R. (2000b). A nonparametric "trim and fill" method of
accounting for publication bias in meta-analysis. *Journal of the American
Statistical Association*, 95, 89-98.

Egger, M., Davey Smith, G., Schneider, M., & Minder, C. (1997). Bias in
meta-analysis detected by a simple, graphical test. *BMJ*, 315, 629-634.

Orwin, R. G. (1983). A fail-safe N for effect size in meta-analysis. *Journal of
Educational Statistics*, 8, 157-159.

Rosenberg, M. S. (2005). The file-drawer problem revisited: A general weighted
method for calculating fail-safe numbers in meta-analysis. *Evolution*, 59,
464-468.

Rosenthal, R. (1979). The file drawer problem and tolerance for null results.
*Psychological Bulletin*, 86, 638-641.

Stanley, T. D., & Doucouliagos, H. (2014). Meta-regression approximations to
reduce publication selection bias. *Research Synthesis Methods*, 5, 60-78.

Sterne, J. A. C., & Egger, M. (2005). Regression methods to detect publication
and other bias in meta-analysis. In H. R. Rothstein, A. J. Sutton, & M.
Borenstein (Eds.), *Publication bias in meta-analysis* (pp. 99-110). Wiley.

Sterne, J. A. C., et al. (2011). Recommendations for examining and interpreting
funnel plot asymmetry in meta-analyses of randomised controlled trials. *BMJ*,
343, d4002.

Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package.
*Journal of Statistical Software*, 36(3), 1-48.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skmeta._engine import _bias
from skmeta._engine._gls import dependent_columns
from skmeta._engine._inference import coefficient_table
from skmeta._engine._tau2 import ALL_METHODS
from skmeta._summary import coefficient_frame
from skmeta.utils._validation import (
    check_confidence_level,
    check_design,
    check_sample_var,
)

__all__ = [
    "FailSafeNResult",
    "RankCorrelationTestResult",
    "RegressionTestResult",
    "TrimAndFillResult",
    "fail_safe_n",
    "rank_correlation_test",
    "regression_test",
    "trim_and_fill",
]

#: tau^2 methods the bias functions accept (GENQ needs user weights per study).
_METHODS = tuple(m for m in ALL_METHODS if m != "genq")
_INFERENCE = ("z", "t", "knapp-hartung", "knapp-hartung-adhoc")
#: Fewest studies for the asymmetry tests: the regression test's augmented model
#: has two coefficients and needs a residual degree of freedom (Egger's ``lm``
#: variant estimates a dispersion from it); the rank test and trim and fill are
#: held to the same minimum.
_MIN_STUDIES = 3


def _fmt(value):
    return "inf" if value == math.inf else f"{value:.4f}"


def _fmt_p(p):
    return f"{p:.4g}" if p >= 1e-4 else f"{p:.2e}"


def _check_choice(value, name, options):
    if value not in options:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}."
        )


def _check_effects(y, sample_var, *, what, min_studies=_MIN_STUDIES, need_var=True):
    """Validate ``y`` and ``sample_var`` (> 0); return float arrays.

    With ``need_var=False``, ``sample_var=None`` is allowed and returned as None.
    """
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y must hold numeric effect sizes: {exc}") from None
    if y.ndim == 2 and 1 in y.shape:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got an array of shape {y.shape}.")
    if not np.all(np.isfinite(y)):
        raise ValueError(
            f"y contains {int(np.sum(~np.isfinite(y)))} NaN or infinite value(s); "
            "remove those studies first."
        )
    k = y.shape[0]
    if k < min_studies:
        raise ValueError(f"{what} needs at least {min_studies} studies; got k={k}.")
    if sample_var is None:
        if need_var:
            raise ValueError(f"{what} needs the sampling variances: pass sample_var.")
        return y, None
    v = check_sample_var(sample_var, k)
    if np.any(v <= 0):
        raise ValueError(
            f"sample_var must be > 0 for {what}; got {int(np.sum(v <= 0))} zero "
            "value(s)."
        )
    return y, v


def _check_sample_sizes(ni, k):
    try:
        n = np.asarray(ni, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ni must hold numeric sample sizes: {exc}") from None
    if n.shape[0] != k:
        raise ValueError(f"ni has {n.shape[0]} entries but y has k={k}.")
    if not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise ValueError("ni must hold finite sample sizes > 0.")
    return n


def _random_effects_meta(**params):
    from skmeta._random_effects import RandomEffectsMeta

    return RandomEffectsMeta(**params)


# ------------------------------------------------------------- regression test
@dataclass(frozen=True)
class RegressionTestResult:
    """Result of :func:`regression_test`.

    Attributes
    ----------
    statistic : float
        Test statistic of the predictor's coefficient (z, or t with ``dof``).
    p_value : float
        Two-sided p-value.
    dof : float
        Degrees of freedom of the t reference distribution (``inf`` for z).
    limit_estimate, limit_ci_lower, limit_ci_upper : float or None
        The intercept of the augmented model, i.e. the estimate for a study
        with predictor 0 (an infinitely precise study; PET for ``"sei"``, PEESE
        for ``"vi"``), with its confidence interval; ``None`` with moderators or
        with the predictors ``"ni"`` and ``"sqrtni"``.
    predictor : str
    model : {"rma", "lm"}
    method : str or None
        The tau^2 estimator (``model="rma"``); ``None`` for ``"lm"``.
    inference : str
        ``"z"``, ``"t"``, ``"knapp-hartung"``, ``"knapp-hartung-adhoc"`` or, for
        ``model="lm"``, ``"t (dispersion)"``.
    coefficients : DataFrame
        Coefficient table of the augmented model (columns ``estimate, se,
        statistic, p_value, ci_lower, ci_upper``; the predictor's term is named
        after it).
    fit : RandomEffectsMeta or None
        The fitted augmented model (``model="rma"``): its features are the
        moderators, then the predictor.
    confidence_level : float
    """

    statistic: float
    p_value: float
    dof: float
    limit_estimate: float | None
    limit_ci_lower: float | None
    limit_ci_upper: float | None
    predictor: str
    model: str
    method: str | None
    inference: str
    coefficients: pd.DataFrame
    fit: object | None
    confidence_level: float

    def line(self, se):
        """The fitted regression line at standard errors ``se`` (for funnel plots).

        :math:`b_0 + b_1\\,se` for ``predictor="sei"`` and :math:`b_0 + b_1\\,se^2`
        for ``"vi"``; draw it as ``(line(se), se)`` on a funnel plot.

        Parameters
        ----------
        se : array-like
            Standard errors.

        Returns
        -------
        ndarray
        """
        if self.predictor not in ("sei", "vi"):
            raise ValueError(
                f"The regression on predictor={self.predictor!r} is not a function "
                "of the standard error; use predictor='sei' or 'vi'."
            )
        if self.coefficients.shape[0] != 2:
            raise ValueError(
                "The regression has moderators: its line depends on them, not on "
                "the standard error alone."
            )
        b0, b1 = self.coefficients["estimate"].to_numpy()
        se = np.asarray(se, dtype=float)
        return b0 + b1 * (se if self.predictor == "sei" else se * se)

    def __str__(self):
        if self.model == "lm":
            kind = "weighted regression with multiplicative dispersion"
        else:
            kind = f"meta-regression (tau^2 estimator: {self.method})"
        label = "z" if math.isinf(self.dof) else f"t (df = {self.dof:g})"
        lines = [
            "Regression test for funnel plot asymmetry",
            f"model: {kind}",
            f"predictor: {_bias.PREDICTORS[self.predictor]}",
            f"test for funnel plot asymmetry: {label} = {self.statistic:.4f}, "
            f"p = {_fmt_p(self.p_value)}",
        ]
        if self.limit_estimate is not None:
            lines.append(
                f"limit estimate (as {self.predictor} -> 0): "
                f"b = {self.limit_estimate:.4f} "
                f"({100 * self.confidence_level:g}% CI {self.limit_ci_lower:.4f}, "
                f"{self.limit_ci_upper:.4f})"
            )
        return "\n".join(lines)


def regression_test(
    y,
    sample_var,
    X=None,
    *,
    predictor: str = "sei",
    model: str = "rma",
    method: str = "reml",
    inference: str = "z",
    ni=None,
    confidence_level: float = 0.95,
) -> RegressionTestResult:
    r"""Regression test for funnel-plot asymmetry (Egger's test and variants).

    The meta-regression of ``y`` on ``X`` is augmented by one predictor
    :math:`z_i` (appended after the moderators):

    .. math::

        y_i = \beta_0 + x_i^\top\beta + \beta_z z_i + u_i + e_i,\qquad
        u_i \sim N(0, \tau^2),\quad e_i \sim N(0, v_i),

    and :math:`H_0: \beta_z = 0` is tested.  ``predictor`` chooses :math:`z_i`:
    the standard error :math:`\sqrt{v_i}` (``"sei"``, Egger's test), the variance
    :math:`v_i` (``"vi"``), the sample size :math:`n_i` (``"ni"``), :math:`1/n_i`
    (``"ninv"``), :math:`\sqrt{n_i}` (``"sqrtni"``) or :math:`1/\sqrt{n_i}`
    (``"sqrtninv"``).

    With ``model="rma"`` the augmented model is a random-effects meta-regression
    fitted with ``method`` and tested with ``inference`` (metafor's
    ``regtest(rma(...))``, which inherits both from the input model).  With
    ``model="lm"`` it is Egger's original weighted regression: weights
    :math:`1/v_i`, :math:`\tau^2 = 0` and a multiplicative dispersion
    :math:`y_i \sim N(\cdot, \phi v_i)` estimated by
    :math:`s^2 = \sum_i w_i e_i^2/(k-p-1)`, tested with :math:`t_{k-p-1}`
    (equivalently, the regression of :math:`y_i/\sqrt{v_i}` on
    :math:`1/\sqrt{v_i}`).

    Without moderators and with a predictor that vanishes for an infinitely
    precise study (``"sei"``, ``"vi"``, ``"ninv"``, ``"sqrtninv"``), the
    intercept :math:`\hat\beta_0` is the *limit estimate*: the expected effect
    of a study with standard error (variance, 1/n) 0 -- PET for ``"sei"`` and
    PEESE for ``"vi"`` (Stanley & Doucouliagos 2014; Rücker et al. 2011).

    Parameters
    ----------
    y : array-like of shape (n_studies,)
        Effect sizes.
    sample_var : array-like of shape (n_studies,)
        Sampling variances (> 0).
    X : array-like or DataFrame of shape (n_studies, n_moderators), default=None
        Moderators of the meta-regression.
    predictor : {"sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv"}, default="sei"
    model : {"rma", "lm"}, default="rma"
    method : str, default="reml"
        tau^2 estimator of ``model="rma"`` (as :class:`skmeta.RandomEffectsMeta`,
        except ``"genq"``); not used by ``"lm"``.
    inference : {"z", "t", "knapp-hartung", "knapp-hartung-adhoc"}, default="z"
        Tests of ``model="rma"``; ``"lm"`` always uses :math:`t_{k-p-1}`.
    ni : array-like of shape (n_studies,), default=None
        Sample sizes, required by the sample-size predictors.
    confidence_level : float, default=0.95
        Level of the limit estimate's interval.

    Returns
    -------
    RegressionTestResult

    Raises
    ------
    ValueError
        Too few studies for the augmented model (at least 3 without
        moderators), a sample-size predictor without ``ni``, or a predictor
        collinear with the intercept and moderators (e.g. all sampling
        variances equal).

    References
    ----------
    Egger, M., Davey Smith, G., Schneider, M., & Minder, C. (1997). Bias in
    meta-analysis detected by a simple, graphical test. *BMJ*, 315, 629-634.

    Rücker, G., Schwarzer, G., Carpenter, J. R., Binder, H., & Schumacher, M.
    (2011). Treatment-effect estimates adjusted for small-study effects via a
    limit meta-analysis. *Biostatistics*, 12, 122-142.

    Examples
    --------
    >>> from skmeta.bias import regression_test
    >>> from skmeta.datasets import load_writing_to_learn
    >>> data = load_writing_to_learn()
    >>> result = regression_test(data["yi"], data["vi"])
    >>> round(result.statistic, 3), round(result.limit_estimate, 3)
    (2.491, -0.036)
    """
    _check_choice(predictor, "predictor", tuple(_bias.PREDICTORS))
    _check_choice(model, "model", ("rma", "lm"))
    _check_choice(method, "method", _METHODS)
    _check_choice(inference, "inference", _INFERENCE)
    confidence_level = check_confidence_level(confidence_level)
    y, v = _check_effects(y, sample_var, what="regression_test")
    k = y.shape[0]
    if X is None:
        moderators, names = np.empty((k, 0)), []
    else:
        moderators, names = check_design(X, k, name="X")
        names = (
            [f"x{j}" for j in range(moderators.shape[1])]
            if names is None
            else [str(n) for n in names]
        )
    if predictor in names:
        raise ValueError(f"X has a column named {predictor!r}, the predictor's name.")
    n_coef = moderators.shape[1] + 2
    if k <= n_coef:
        raise ValueError(
            f"regression_test needs more studies than the {n_coef} coefficients "
            f"of the augmented model (intercept, {moderators.shape[1]} "
            f"moderator(s), predictor); got k={k}."
        )
    if predictor in _bias.SAMPLE_SIZE_PREDICTORS:
        if ni is None:
            raise ValueError(
                f"predictor={predictor!r} needs the sample sizes: pass ni."
            )
        n = _check_sample_sizes(ni, k)
    else:
        n = None
    z = _bias.regression_predictor(predictor, v, n)
    design = np.column_stack([np.ones(k), moderators, z])
    if dependent_columns(design):
        raise ValueError(
            f"The predictor {predictor!r} is collinear with the intercept and the "
            "moderators (e.g. all sampling variances or sample sizes are equal): "
            "the regression test is undefined."
        )
    terms = ["intercept", *names, predictor]
    fit = None
    if model == "lm":
        wls = _bias.dispersion_regression(design, y, v)
        dof = float(wls.dof)
        table = coefficient_frame(
            terms, coefficient_table(wls.beta, wls.cov, dof, confidence_level)
        )
        method_used, inference_used = None, "t (dispersion)"
    else:
        fit = _random_effects_meta(method=method, inference=inference).fit(
            design[:, 1:], y, sample_var=v
        )
        dof = float("inf") if inference == "z" else float(fit.dof_)
        beta = np.concatenate([[fit.intercept_], fit.coef_])
        table = coefficient_frame(
            terms, coefficient_table(beta, fit.cov_params_, dof, confidence_level)
        )
        method_used, inference_used = method, inference
    row = table.iloc[-1]
    limit = X is None and predictor in _bias.LIMIT_PREDICTORS
    intercept = table.iloc[0]
    return RegressionTestResult(
        statistic=float(row["statistic"]),
        p_value=float(row["p_value"]),
        dof=dof,
        limit_estimate=float(intercept["estimate"]) if limit else None,
        limit_ci_lower=float(intercept["ci_lower"]) if limit else None,
        limit_ci_upper=float(intercept["ci_upper"]) if limit else None,
        predictor=predictor,
        model=model,
        method=method_used,
        inference=inference_used,
        coefficients=table,
        fit=fit,
        confidence_level=confidence_level,
    )


# ------------------------------------------------------- rank correlation test
@dataclass(frozen=True)
class RankCorrelationTestResult:
    """Result of :func:`rank_correlation_test`.

    Attributes
    ----------
    statistic : float
        Kendall's :math:`\\tau_b` between the standardised effects and the
        sampling variances.
    p_value : float
        Two-sided p-value: exact without ties, else the tie-corrected normal
        approximation.
    exact : bool
        Whether the p-value is exact.
    k : int
        Number of studies.
    """

    statistic: float
    p_value: float
    exact: bool
    k: int

    def __str__(self):
        how = "exact" if self.exact else "normal approximation (ties)"
        return (
            "Rank correlation test for funnel plot asymmetry (Begg & Mazumdar)\n"
            f"Kendall's tau = {self.statistic:.4f}, p = {_fmt_p(self.p_value)} "
            f"({how}; k = {self.k})"
        )


def rank_correlation_test(y, sample_var) -> RankCorrelationTestResult:
    r"""Begg & Mazumdar's rank correlation test for funnel-plot asymmetry.

    Kendall's :math:`\tau_b` between the standardised deviations from the
    equal-effects mean and the sampling variances:

    .. math::

        y_i^* = \frac{y_i - \bar y_w}{\sqrt{v_i - \bar v}},\qquad
        \bar y_w = \frac{\sum_i w_i y_i}{\sum_i w_i},\quad
        \bar v = \frac{1}{\sum_i w_i},\quad w_i = \frac{1}{v_i}.

    Without ties (in :math:`y^*` and in :math:`v`) the two-sided p-value is
    exact (the permutation distribution of Kendall's statistic); with ties it is
    the normal approximation with the tie-corrected variance, as R's
    ``cor.test(method="kendall", exact=TRUE)`` used by metafor's ``ranktest``.

    Parameters
    ----------
    y : array-like of shape (n_studies,)
    sample_var : array-like of shape (n_studies,)
        Sampling variances (> 0).

    Returns
    -------
    RankCorrelationTestResult

    References
    ----------
    Begg, C. B., & Mazumdar, M. (1994). Operating characteristics of a rank
    correlation test for publication bias. *Biometrics*, 50, 1088-1101.

    Kendall, M. G. (1938). A new measure of rank correlation. *Biometrika*, 30,
    81-93.
    """
    y, v = _check_effects(y, sample_var, what="rank_correlation_test")
    test = _bias.kendall_test(_bias.standardized_deviates(y, v), v)
    return RankCorrelationTestResult(test.tau, test.p_value, test.exact, y.shape[0])


# ---------------------------------------------------------------- trim and fill
@dataclass(frozen=True)
class TrimAndFillResult:
    """Result of :func:`trim_and_fill`.

    Attributes
    ----------
    k0 : int
        Estimated number of missing studies.
    k0_se : float
        Its standard error.
    side : {"left", "right"}
        Side of the funnel plot on which studies were imputed.
    estimator : {"L0", "R0", "Q0"}
    filled : DataFrame
        The imputed studies: columns ``y`` and ``sample_var`` (``k0`` rows).
    model : RandomEffectsMeta
        Fitted on the observed and imputed studies (z tests); on the observed
        studies alone when ``k0 = 0``.
    n_iter : int
        Number of trim-and-fill passes.
    k0_pvalue : float or None
        For ``R0``, the p-value :math:`0.5^{k_0 + 1}` of :math:`H_0: k_0 = 0`.
    """

    k0: int
    k0_se: float
    side: str
    estimator: str
    filled: pd.DataFrame
    model: object
    n_iter: int
    k0_pvalue: float | None

    def __str__(self):
        table = self.model.summary().to_frame().iloc[0]
        lines = [
            "Trim-and-fill analysis (Duval & Tweedie)",
            f"estimator: {self.estimator}; estimated number of missing studies on "
            f"the {self.side} side: {self.k0} (SE = {self.k0_se:.4f})",
        ]
        if self.k0_pvalue is not None:
            lines.append(f"test of k0 = 0: p = {_fmt_p(self.k0_pvalue)}")
        lines.append(
            f"estimate with the filled studies (k = {self.model.dof_ + 1}): "
            f"{table['estimate']:.4f} (SE = {table['se']:.4f}, 95% CI "
            f"{table['ci_lower']:.4f}, {table['ci_upper']:.4f}); "
            f"tau^2 = {self.model.tau2_:.4f}"
        )
        return "\n".join(lines)


def trim_and_fill(
    y,
    sample_var,
    *,
    estimator: str = "L0",
    side: str | None = None,
    method: str = "reml",
    max_iter: int = 100,
) -> TrimAndFillResult:
    r"""Duval & Tweedie's trim-and-fill method.

    Estimates the number :math:`k_0` of studies missing from one side of the
    funnel plot, imputes their mirror images and refits the random-effects
    model on the augmented data.

    1. **Side.** Unless given, from the meta-regression of :math:`y` on
       :math:`\sqrt{v}` (with ``method``): a negative slope puts the missing
       studies on the right, otherwise on the left.
    2. **Iterate** (on :math:`-y` for the right side, values sorted): fit the
       intercept-only model to the :math:`k - k_0` smallest values, giving
       :math:`\hat\theta`; rank :math:`|y_i - \hat\theta|` over all :math:`k`
       studies (ties by order) and sign the ranks; the estimator gives a new
       :math:`k_0`, rounded (half to even) and at least 0; stop when it repeats.

       * :math:`L_0 = \{4 S_r - k(k+1)\}/(2k-1)`, :math:`S_r` the sum of the
         positive signed ranks, with
         :math:`\operatorname{SE} = 4\sqrt{\operatorname{Var}S_r}/(2k-1)`;
       * :math:`R_0 = \gamma^* - 1`, :math:`\gamma^*` the length of the rightmost
         run of positive ranks, with :math:`\operatorname{SE} =
         \sqrt{2\max(0, R_0) + 2}`.
    3. **Fill**: the :math:`k_0` most extreme studies are mirrored about the last
       :math:`\hat\theta` (same sampling variances), and the model is refitted to
       the :math:`k + k_0` studies with ``method`` and z tests.

    This is metafor's ``trimfill`` (its trimmed fits stop at metafor's default
    convergence threshold; here every fit converges, so the filled values can
    differ from metafor's in the sixth significant digit).

    Parameters
    ----------
    y : array-like of shape (n_studies,)
    sample_var : array-like of shape (n_studies,)
        Sampling variances (> 0).
    estimator : {"L0", "R0", "Q0"}, default="L0"
        Estimator of the number of missing studies (Duval & Tweedie, 2000a).
        ``Q0`` is undefined (an error) when the positive signed ranks sum to
        more than :math:`(2k^2 + 1/4)/4`.
    side : {"left", "right"}, default=None
        Side on which to impute studies; chosen from the data when None.
    method : str, default="reml"
        tau^2 estimator (as :class:`skmeta.RandomEffectsMeta`, except
        ``"genq"``); ``"fe"`` gives the equal-effects version.
    max_iter : int, default=100
        Maximum number of trim-and-fill passes.

    Returns
    -------
    TrimAndFillResult

    References
    ----------
    Duval, S., & Tweedie, R. (2000a). Trim and fill: A simple funnel-plot-based
    method of testing and adjusting for publication bias in meta-analysis.
    *Biometrics*, 56, 455-463.

    Duval, S., & Tweedie, R. (2000b). A nonparametric "trim and fill" method of
    accounting for publication bias in meta-analysis. *Journal of the American
    Statistical Association*, 95, 89-98.

    Examples
    --------
    >>> from skmeta.bias import trim_and_fill
    >>> from skmeta.datasets import load_writing_to_learn
    >>> data = load_writing_to_learn()
    >>> result = trim_and_fill(data["yi"], data["vi"])
    >>> result.k0, result.side, round(result.model.intercept_, 4)
    (7, 'left', 0.1586)
    """
    _check_choice(estimator, "estimator", ("L0", "R0", "Q0"))
    _check_choice(side, "side", (None, "left", "right"))
    _check_choice(method, "method", _METHODS)
    if not (isinstance(max_iter, int | np.integer) and max_iter >= 1):
        raise ValueError(f"max_iter must be a positive integer; got {max_iter!r}.")
    y, v = _check_effects(y, sample_var, what="trim_and_fill")
    if side is None:
        if np.ptp(v) == 0:
            raise ValueError(
                "All sampling variances are equal, so the side of the missing "
                "studies cannot be estimated from the funnel's slope: pass "
                "side='left' or 'right'."
            )
        side = "left" if _bias.funnel_slope(y, v, method) >= 0 else "right"
    result = _bias.trim_and_fill(
        y, v, side=side, method=method, estimator=estimator, max_iter=int(max_iter)
    )
    filled = pd.DataFrame({"y": result.filled_y, "sample_var": result.filled_v})
    model = _random_effects_meta(method=method).fit(
        None,
        np.concatenate([y, result.filled_y]),
        sample_var=np.concatenate([v, result.filled_v]),
    )
    return TrimAndFillResult(
        k0=result.k0,
        k0_se=result.k0_se,
        side=side,
        estimator=estimator,
        filled=filled,
        model=model,
        n_iter=result.n_iter,
        k0_pvalue=0.5 ** (result.k0 + 1) if estimator == "R0" else None,
    )


# ------------------------------------------------------------------ fail-safe N
@dataclass(frozen=True)
class FailSafeNResult:
    """Result of :func:`fail_safe_n`.

    Attributes
    ----------
    kind : {"rosenthal", "orwin", "rosenberg"}
    fail_safe_n : int or float
        The fail-safe number (an ``int``; ``math.inf`` for an Orwin target of 0).
    raw : float
        The value before rounding up.
    alpha : float or None
        Significance level (Rosenthal: one-sided; Rosenberg: two-sided).
    p_value : float or None
        p-value of the observed studies' combined test (Rosenthal: Stouffer,
        one-sided; Rosenberg: equal-effects z test, two-sided).
    mean_effect : float or None
        Mean effect (Orwin: unweighted or inverse-variance weighted; Rosenberg:
        inverse-variance weighted).
    target : float or None
        Orwin's target mean effect.
    k : int
        Number of studies.
    """

    kind: str
    fail_safe_n: int | float
    raw: float
    alpha: float | None
    p_value: float | None
    mean_effect: float | None
    target: float | None
    k: int

    def __str__(self):
        name = {
            "rosenthal": "Rosenthal",
            "orwin": "Orwin",
            "rosenberg": "Rosenberg",
        }[self.kind]
        lines = [f"Fail-safe N calculation using the {name} approach"]
        if self.p_value is not None:
            lines.append(f"observed significance level: {_fmt_p(self.p_value)}")
        if self.alpha is not None:
            lines.append(f"target significance level: {self.alpha:g}")
        if self.mean_effect is not None:
            lines.append(f"average effect size: {self.mean_effect:.4f}")
        if self.target is not None:
            lines.append(f"target effect size: {self.target:.4f}")
        lines.append(f"fail-safe N: {self.fail_safe_n} (k = {self.k})")
        return "\n".join(lines)


def fail_safe_n(
    y,
    sample_var,
    *,
    kind: str = "rosenthal",
    alpha: float = 0.05,
    target: float | None = None,
    weighted: bool = False,
) -> FailSafeNResult:
    r"""Fail-safe N: how many null studies would overturn the conclusion.

    * ``"rosenthal"`` (Rosenthal 1979): the number of studies with mean effect
      0 that, added to the :math:`k` observed ones, raise the one-sided p-value
      of Stouffer's combined test :math:`Z = \sum_i (y_i/\sqrt{v_i})/\sqrt{k}`
      to ``alpha``: :math:`N = \max\{0, k(Z/z_{1-\alpha})^2 - k\}`.
    * ``"orwin"`` (Orwin 1983): the number of studies of effect 0 that bring
      the mean effect :math:`\bar y` (unweighted, or inverse-variance weighted
      with ``weighted=True``) down to ``target`` (default :math:`\bar y/2`; its
      sign is set to that of :math:`\bar y`): :math:`N = \max\{0, k(\bar y -
      t)/t\}`.
    * ``"rosenberg"`` (Rosenberg 2005): the number of studies of effect 0 and
      average weight that make the equal-effects estimate non-significant in a
      two-sided test at ``alpha``.

    The number is rounded up to the next integer (metafor's ``fsn``).  Fail-safe
    numbers ignore heterogeneity and the possibility that missing studies have
    effects opposite to the observed ones; they are of limited use (Becker
    2005) and are provided for comparison with published analyses.

    Parameters
    ----------
    y : array-like of shape (n_studies,)
    sample_var : array-like of shape (n_studies,) or None
        Sampling variances (> 0); may be None for the unweighted Orwin method.
    kind : {"rosenthal", "orwin", "rosenberg"}, default="rosenthal"
    alpha : float, default=0.05
        Significance level (Rosenthal, Rosenberg).
    target : float, default=None
        Target mean effect (Orwin only).
    weighted : bool, default=False
        Inverse-variance weighted mean (Orwin only).

    Returns
    -------
    FailSafeNResult

    References
    ----------
    Becker, B. J. (2005). Failsafe N or file-drawer number. In H. R. Rothstein,
    A. J. Sutton, & M. Borenstein (Eds.), *Publication bias in meta-analysis*
    (pp. 111-125). Wiley.

    Orwin, R. G. (1983). A fail-safe N for effect size in meta-analysis.
    *Journal of Educational Statistics*, 8, 157-159.

    Rosenberg, M. S. (2005). The file-drawer problem revisited: A general
    weighted method for calculating fail-safe numbers in meta-analysis.
    *Evolution*, 59, 464-468.

    Rosenthal, R. (1979). The file drawer problem and tolerance for null
    results. *Psychological Bulletin*, 86, 638-641.
    """
    _check_choice(kind, "kind", ("rosenthal", "orwin", "rosenberg"))
    if kind != "orwin" and (target is not None or weighted):
        raise ValueError("target and weighted apply to kind='orwin' only.")
    if kind == "orwin":
        if target is not None and not (
            isinstance(target, int | float | np.number) and math.isfinite(target)
        ):
            raise ValueError(f"target must be a finite number; got {target!r}.")
        y, v = _check_effects(
            y, sample_var, what="fail_safe_n", min_studies=1, need_var=weighted
        )
        result = _bias.fail_safe_orwin(y, v, target, bool(weighted))
        alpha_used = None
    else:
        if isinstance(alpha, bool) or not (
            isinstance(alpha, int | float | np.number) and 0.0 < alpha < 1.0
        ):
            raise ValueError(f"alpha must be strictly between 0 and 1; got {alpha!r}.")
        y, v = _check_effects(y, sample_var, what="fail_safe_n", min_studies=1)
        compute = (
            _bias.fail_safe_rosenthal
            if kind == "rosenthal"
            else _bias.fail_safe_rosenberg
        )
        result = compute(y, v, float(alpha))
        alpha_used = float(alpha)
    n = result.n if math.isinf(result.n) else int(result.n)
    return FailSafeNResult(
        kind=kind,
        fail_safe_n=n,
        raw=result.raw,
        alpha=alpha_used,
        p_value=result.p_value,
        mean_effect=result.mean_effect,
        target=result.target,
        k=y.shape[0],
    )
