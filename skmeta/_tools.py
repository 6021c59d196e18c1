"""Inference tools that work with every skmeta estimator.

- :func:`lr_test`: likelihood-ratio test of two fitted nested models, with the
  50:50 mixture p-value for a variance tested on the boundary.
- :func:`permutation_test`: permutation p-values of the coefficients (metafor's
  ``permutest``), refitting the model on permuted data.
- :func:`profile_likelihood`: the profile (restricted) log-likelihood of one
  parameter and its confidence interval (metafor's ``profile``/``confint``).
- :func:`heteroscedasticity_test`: likelihood-ratio tests of study-specific
  heterogeneity against the random-effects model.

The tools know no estimator by name.  They use what every estimator offers:
the fitted attributes (``loglik_``, ``n_params_``, ``cov_params_``, ...),
``clone``/``set_params``, the signature of its ``fit`` (every argument the fit
needs is passed through ``**fit_params``) and its self-description
(``_profile_targets()`` for the parameters that can be profiled,
``_moderator_index`` for omnibus tests).  Refits run through
``joblib.Parallel(n_jobs=...)``, so ``joblib.parallel_config(backend="dask")``
distributes them on a Dask cluster.  Results are frozen dataclasses with named
fields and a readable ``str()``.
"""

import inspect
import itertools
import math
import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import optimize, stats
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from skmeta._engine._inference import boundary_pvalue, wald_test
from skmeta.exceptions import InfiniteScaleWarning
from skmeta.utils._validation import (
    as_float_array,
    check_confidence_level,
    check_sample_var,
    take_rows,
)

__all__ = [
    "HeteroscedasticityTestResult",
    "LRTestResult",
    "PermutationTestResult",
    "ProfileLikelihoodResult",
    "heteroscedasticity_test",
    "lr_test",
    "permutation_test",
    "profile_likelihood",
]


# ------------------------------------------------------------------ LR test
@dataclass(frozen=True)
class LRTestResult:
    """Likelihood-ratio test of nested models.

    The result type of every likelihood-ratio test in skmeta.

    Attributes
    ----------
    statistic : float
        :math:`-2(\\ell_0 - \\ell_1)`.
    df : int
        Difference in the number of parameters.
    p_value : float
        From :math:`\\chi^2_{df}`.
    p_value_boundary : float
        From the 50:50 mixture of :math:`\\chi^2_{df-1}` and :math:`\\chi^2_{df}`
        (Self & Liang 1987), for a variance component tested on the boundary
        of its parameter space (e.g. :math:`\\tau^2 = 0`).
    table : DataFrame or None, default=None
        Rows ``full`` and ``reduced`` with ``n_params, aic, bic, aicc, loglik``
        (metafor's ``anova`` table).
    """

    statistic: float
    df: int
    p_value: float
    p_value_boundary: float
    table: pd.DataFrame | None = field(default=None, repr=False)

    def __str__(self):
        test = (
            f"LRT = {self.statistic:.4f}, df = {self.df}, p = {self.p_value:.4g}; "
            f"boundary (50:50 mixture) p = {self.p_value_boundary:.4g}"
        )
        if self.table is None:
            return f"Likelihood-ratio test: {test}"
        table = self.table.to_string(float_format=lambda t: f"{t:.4f}")
        return f"Likelihood-ratio test\n\n{table}\n\n{test}"


#: A likelihood-ratio statistic below -this x (1 + |loglik|) is not rounding: the
#: full model's optimum lies below the reduced model's (not nested, or a fit
#: stopped short). Optimizers stop at relative changes of about 1e-8.
_NEGATIVE_LR_TOLERANCE = 1e-6


def _lr_statistic(loglik_full, loglik_reduced):
    """:math:`2(\\ell_1 - \\ell_0)`, truncated at 0; warns instead of hiding NaN."""
    stat = 2.0 * (float(loglik_full) - float(loglik_reduced))
    if not np.isfinite(stat):
        warnings.warn(
            f"The likelihood-ratio statistic is not finite (log-likelihoods "
            f"{loglik_full} and {loglik_reduced}); it and its p-values are NaN.",
            UserWarning,
            stacklevel=3,
        )
        return float("nan")
    if stat < -_NEGATIVE_LR_TOLERANCE * (1.0 + abs(float(loglik_full))):
        warnings.warn(
            f"The full model's log-likelihood ({loglik_full:.6g}) is below the "
            f"reduced model's ({loglik_reduced:.6g}): the models are not nested or "
            "a fit did not reach its maximum. The statistic is set to 0.",
            UserWarning,
            stacklevel=3,
        )
    return max(0.0, stat)


def _lr_result(statistic, df, table=None):
    """An :class:`LRTestResult` with its chi-square and boundary p-values."""
    p_value = float(stats.chi2.sf(statistic, df))
    return LRTestResult(
        float(statistic), int(df), p_value, boundary_pvalue(statistic, df), table
    )


def _n_location(est):
    """Number of fixed effects (location coefficients, intercept included)."""
    return est._beta.shape[-1]


def _check_nested_fits(full, reduced):
    """Both fitted by (RE)ML with the same method to the same studies."""
    for name, est in (("full", full), ("reduced", reduced)):
        check_is_fitted(est)
        if not hasattr(est, "loglik_"):
            raise ValueError(f"{name} has no loglik_: not a likelihood-based fit.")
    m_full = getattr(full, "method", None)
    m_red = getattr(reduced, "method", None)
    if m_full != m_red:
        raise ValueError(
            f"full and reduced were fitted with different methods ({m_full!r} and "
            f"{m_red!r}); likelihoods are not comparable."
        )
    if m_full not in ("ml", "reml"):
        raise ValueError(f"lr_test needs method='ml' or 'reml' fits, got {m_full!r}.")
    if full.n_params_ <= reduced.n_params_:
        raise ValueError(
            f"full must have more parameters than reduced (got {full.n_params_} and "
            f"{reduced.n_params_})."
        )
    k_full = full.dof_ + _n_location(full)
    k_red = reduced.dof_ + _n_location(reduced)
    if k_full != k_red:
        raise ValueError(
            f"full and reduced were fitted to different numbers of studies "
            f"({k_full} and {k_red})."
        )


def _same_fixed_effects(full, reduced):
    if _n_location(full) != _n_location(reduced):
        return False
    names_f = getattr(full, "feature_names_in_", None)
    names_r = getattr(reduced, "feature_names_in_", None)
    if names_f is None or names_r is None:
        return True
    return list(names_f) == list(names_r)


def lr_test(full, reduced) -> LRTestResult:
    """Likelihood-ratio test of a reduced model against a full model.

    The statistic :math:`2(\\ell_\\text{full} - \\ell_\\text{reduced})` is referred to
    :math:`\\chi^2_{df}` with df the difference in the number of parameters, and,
    for variance components tested on the boundary of their parameter space
    (e.g. a scale coefficient making :math:`\\tau^2 = 0`), to the 50:50 mixture
    of :math:`\\chi^2_{df-1}` and :math:`\\chi^2_{df}` (Self & Liang, 1987), as
    metafor's ``anova``.

    Parameters
    ----------
    full : fitted skmeta estimator
        The larger model.
    reduced : fitted skmeta estimator
        The nested model (fewer parameters), fitted to the same studies with
        the same ``method`` ("ml" or "reml").

    Returns
    -------
    LRTestResult
        Statistic, df, p-value, the boundary (50:50 mixture) p-value and the
        fit statistics of both models.

    Warns
    -----
    UserWarning
        When both fits are REML and their fixed effects differ: restricted
        likelihoods of models with different fixed effects are not comparable
        (refit with ``method="ml"``), as metafor's ``anova`` warns.  When the
        full model's likelihood is below the reduced one's (the statistic is
        then 0) or is not finite.

    References
    ----------
    Self, S. G., & Liang, K.-Y. (1987). Asymptotic properties of maximum
    likelihood estimators and likelihood ratio tests under nonstandard
    conditions. Journal of the American Statistical Association, 82, 605-610.
    """
    _check_nested_fits(full, reduced)
    if full.method == "reml" and not _same_fixed_effects(full, reduced):
        warnings.warn(
            "REML likelihoods of models with different fixed effects are not "
            "comparable; refit both with method='ml'.",
            UserWarning,
            stacklevel=2,
        )
    table = pd.DataFrame(
        {
            "n_params": [full.n_params_, reduced.n_params_],
            "aic": [full.aic_, reduced.aic_],
            "bic": [full.bic_, reduced.bic_],
            "aicc": [full.aicc_, reduced.aicc_],
            "loglik": [full.loglik_, reduced.loglik_],
        },
        index=["full", "reduced"],
    )
    statistic = _lr_statistic(full.loglik_, reduced.loglik_)
    return _lr_result(statistic, full.n_params_ - reduced.n_params_, table)


# ------------------------------------------------------------ fit arguments
def _fit_arguments(estimator, sample_var, fit_params, tool):
    """Keyword arguments for ``estimator.fit``: ``sample_var`` and ``fit_params``.

    Every name must be a parameter of ``fit`` (nothing is silently ignored), and
    every keyword-only parameter of ``fit`` without a default must be given.
    """
    name = type(estimator).__name__
    try:
        parameters = inspect.signature(estimator.fit).parameters
    except (AttributeError, TypeError, ValueError):
        raise ValueError(
            f"{tool} needs a skmeta estimator with a fit method, got {estimator!r}."
        ) from None
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    kwargs = dict(fit_params)
    if "sample_var" in parameters or takes_any:
        kwargs["sample_var"] = sample_var
    elif sample_var is not None:
        raise ValueError(f"{name}.fit does not take sample_var.")
    unknown = [key for key in fit_params if key not in parameters]
    if unknown and not takes_any:
        raise ValueError(
            f"{', '.join(unknown)} was given but {name}.fit does not take "
            f"{', '.join(unknown)}; it takes {list(parameters)}."
        )
    required = [
        key
        for key, p in parameters.items()
        if p.kind is p.KEYWORD_ONLY and p.default is p.empty and key not in kwargs
    ]
    if required:
        raise ValueError(
            f"{name}.fit requires {', '.join(required)}: pass "
            f"{', '.join(f'{key}=...' for key in required)} to {tool}."
        )
    return kwargs


# --------------------------------------------------------- permutation test
def _wald_statistics(est, part):
    """z statistics of the coefficients and the omnibus Wald statistic."""
    if part == "location":
        coef, cov, index = est._beta, est.cov_params_, est._moderator_index
    else:
        coef = np.concatenate(
            [np.atleast_1d(est.scale_intercept_), est.scale_coef_]
            if est.scale_fit_intercept
            else [est.scale_coef_]
        )
        cov = est.scale_cov_params_
        index = np.arange(int(est.scale_fit_intercept), coef.shape[0])
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = coef / se
    return z, wald_test(coef, cov, index, float("inf")).statistic


def _permuted_statistics(estimator, X, y, fit_kwargs, part):
    """Refit and return the Wald statistics, or None when the refit fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _wald_statistics(estimator.fit(X, y, **fit_kwargs), part)
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            return None


@dataclass(frozen=True)
class PermutationTestResult:
    """Permutation test of model coefficients.

    Attributes
    ----------
    names : list of str
        Coefficient names (``"intercept"`` first when fitted).
    statistic : ndarray
        Observed Wald z statistics.
    p_value : ndarray
        Permutation p-values: the share of permutations (the observed data
        included) with ``|z| >=`` the observed ``|z|``.
    omnibus_statistic, omnibus_p_value : float
        Omnibus Wald statistic (QM or QS) of the non-intercept coefficients
        and its permutation p-value (``nan`` without such coefficients).
    n_permutations : int
        Number of permutations used (including the observed one).
    exact : bool
        Whether all distinct permutations were enumerated.
    null_statistics : ndarray of shape (n_permutations, n_coef)
        z statistics under the permutations (first row: observed data).
    n_failed : int
        Permuted refits that raised and were left out.
    """

    names: list
    statistic: np.ndarray
    p_value: np.ndarray
    omnibus_statistic: float
    omnibus_p_value: float
    n_permutations: int
    exact: bool
    null_statistics: np.ndarray = field(repr=False)
    n_failed: int = 0

    def to_frame(self) -> pd.DataFrame:
        """Return the coefficient table (statistic, p_value)."""
        return pd.DataFrame(
            {"statistic": self.statistic, "p_value": self.p_value},
            index=pd.Index(self.names, name="term"),
        )

    def __str__(self):
        kind = "exact" if self.exact else "random"
        lines = [
            f"Permutation test ({self.n_permutations} {kind} permutations"
            + (f", {self.n_failed} failed refits left out" if self.n_failed else "")
            + ")",
            "",
            self.to_frame().to_string(float_format=lambda t: f"{t:.4f}"),
        ]
        if np.isfinite(self.omnibus_statistic):
            lines += [
                "",
                f"Omnibus test of the moderators: QM = {self.omnibus_statistic:.4f}, "
                f"p = {self.omnibus_p_value:.4f}",
            ]
        return "\n".join(lines)


#: Largest number of refits an exact test may enumerate.
_MAX_EXACT_REFITS = 10**6


def _n_multiset_permutations(codes):
    _, counts = np.unique(codes, return_counts=True)
    n = math.factorial(len(codes))
    for c in counts:
        n //= math.factorial(int(c))
    return n


def _multiset_permutations(codes):
    """Yield the distinct orderings of ``codes`` (a multiset), lexicographically."""
    a = sorted(int(c) for c in codes)
    n = len(a)
    while True:
        yield np.array(a)
        i = n - 2
        while i >= 0 and a[i] >= a[i + 1]:
            i -= 1
        if i < 0:
            return
        j = n - 1
        while a[j] <= a[i]:
            j -= 1
        a[i], a[j] = a[j], a[i]
        a[i + 1 :] = reversed(a[i + 1 :])


def _sign_flips(k, n_permutations, exact, rng):
    """Sign vectors, the observed (all +1) first."""
    if exact:
        return [np.array(s) for s in itertools.product((1.0, -1.0), repeat=k)]
    return [np.ones(k)] + [
        rng.choice((1.0, -1.0), size=k) for _ in range(n_permutations - 1)
    ]


def _row_orders(codes, n_permutations, exact, rng):
    """Row index arrays, the observed order first.

    Exact: one order per distinct arrangement of the rows' values (rows with
    identical values are interchangeable), in lexicographic order of ``codes``.
    """
    k = codes.shape[0]
    if not exact:
        return [np.arange(k)] + [rng.permutation(k) for _ in range(n_permutations - 1)]
    rows_by_code = {c: np.flatnonzero(codes == c) for c in np.unique(codes)}
    orders = []
    for arrangement in _multiset_permutations(codes):
        rows = np.empty(k, dtype=int)
        for c, same in rows_by_code.items():
            rows[arrangement == c] = same
        orders.append(rows)
    return orders


def _permutations(permuted, y, n_permutations, exact, random_state):
    """The permutations to refit (observed first) and whether they are exact.

    ``permuted`` is the table whose rows are permuted, or None for sign flips of
    ``y`` (intercept-only location model, Follmann & Proschan 1999).
    """
    k = y.shape[0]
    rng = check_random_state(random_state)
    if permuted is None:
        n_total = 2**k if k < 63 else math.inf
    else:
        table = np.asarray(permuted, dtype=float).reshape(k, -1)
        codes = np.unique(table, axis=0, return_inverse=True)[1].ravel()
        n_total = _n_multiset_permutations(codes)
    do_exact = exact is True or (exact == "auto" and n_total <= n_permutations)
    if do_exact and n_total > _MAX_EXACT_REFITS:
        raise ValueError(f"An exact test needs {n_total} refits; use exact=False.")
    if permuted is None:
        return _sign_flips(k, n_permutations, do_exact, rng), do_exact
    return _row_orders(codes, n_permutations, do_exact, rng), do_exact


def _refit_batch(estimator, X, y, fit_kwargs, part, batch):
    """Wald statistics of the refits of one batch of permutations."""
    est = clone(estimator)
    out = []
    for perm in batch:
        if part == "sign":
            out.append(_permuted_statistics(est, X, y * perm, fit_kwargs, "location"))
        elif part == "location":
            out.append(
                _permuted_statistics(est, take_rows(X, perm, "X"), y, fit_kwargs, part)
            )
        else:
            kwargs = dict(fit_kwargs, Z=take_rows(fit_kwargs["Z"], perm, "Z"))
            out.append(_permuted_statistics(est, X, y, kwargs, part))
    return out


#: Batches per worker: enough to balance the load, few enough to keep the
#: scheduling overhead (one clone and one task per batch) small.
_BATCHES_PER_WORKER = 4


def _refit_all(estimator, X, y, fit_kwargs, part, perms, n_jobs):
    workers = 1 if n_jobs in (None, 1) else 8
    n_batches = max(1, min(len(perms), _BATCHES_PER_WORKER * workers))
    batches = [b for b in np.array_split(np.arange(len(perms)), n_batches) if len(b)]
    results = Parallel(n_jobs=n_jobs)(
        delayed(_refit_batch)(
            estimator, X, y, fit_kwargs, part, [perms[i] for i in batch]
        )
        for batch in batches
    )
    return [r for batch in results for r in batch]


def _successful_refits(results):
    """``(z statistics, omnibus statistics, n_failed)``; failures are warned."""
    ok = [r for r in results if r is not None]
    n_failed = len(results) - len(ok)
    if n_failed:
        warnings.warn(
            f"permutation_test: {n_failed} of {len(results)} permuted refits failed "
            "and were left out of the p-values.",
            UserWarning,
            stacklevel=3,
        )
    return np.array([r[0] for r in ok]), np.array([r[1] for r in ok]), n_failed


#: Statistics within this of the observed one count as "at least as extreme"
#: (metafor's ``comptol``: the square root of machine epsilon), so that the
#: observed data's refit is not lost to rounding.
_COMPARISON_TOLERANCE = np.sqrt(np.finfo(float).eps)


def _check_permutation_options(part, n_permutations, exact):
    if part not in ("location", "scale"):
        raise ValueError(f"part must be 'location' or 'scale', got {part!r}.")
    if not (
        isinstance(n_permutations, Integral)
        and not isinstance(n_permutations, bool)
        and n_permutations >= 1
    ):
        raise ValueError(
            f"n_permutations must be a positive integer; got {n_permutations!r}."
        )
    if exact not in ("auto", True, False):
        raise ValueError(f"exact must be 'auto', True or False; got {exact!r}.")


def permutation_test(
    estimator,
    X,
    y,
    *,
    sample_var=None,
    part: str = "location",
    n_permutations: int = 1000,
    exact="auto",
    n_jobs: int | None = None,
    random_state=None,
    **fit_params,
) -> PermutationTestResult:
    """Permutation test of location or scale coefficients.

    Location (``part="location"``): the rows of ``X`` are permuted (the
    moderators are detached from the effect sizes) and the model is refitted;
    for an intercept-only location model the signs of ``y`` are flipped
    instead (Follmann & Proschan 1999).  Scale (``part="scale"``): the rows of
    the scale design ``Z`` are permuted.  Everything else that ``fit`` receives
    (``sample_var``, ``groups``, and ``Z`` in a location test) stays with its
    study's effect size.  Each coefficient's p-value is the share of
    permutations (the observed one included) whose ``|z|`` is at least the
    observed one (metafor's ``permutest``; Viechtbauer et al., 2015).

    Parameters
    ----------
    estimator : skmeta estimator
        Unfitted or fitted; it is cloned and refitted.
    X : array-like of shape (n_samples, n_features) or None
    y : array-like of shape (n_samples,)
    sample_var : array-like of shape (n_samples,), default=None
    part : {"location", "scale"}, default="location"
    n_permutations : int, default=1000
        Number of permutations including the observed data.
    exact : {"auto", True, False}, default="auto"
        Enumerate all distinct permutations: ``"auto"`` when there are at most
        ``n_permutations`` of them.
    n_jobs : int, default=None
        Parallel refits through joblib.
    random_state : int, RandomState instance or None, default=None
    **fit_params : array-like
        Further arguments of ``estimator.fit``, e.g. ``groups`` of a
        :class:`~skmeta.MultilevelMeta` or the scale design ``Z`` of a
        :class:`~skmeta.LocationScaleMeta` (needed for ``part="scale"``).  A name
        that ``fit`` does not take, or a missing required one, is an error.

    Returns
    -------
    PermutationTestResult

    Warns
    -----
    UserWarning
        When some permuted refits failed (they are left out; ``n_failed``).

    References
    ----------
    Follmann, D. A., & Proschan, M. A. (1999). Valid inference in random effects
    meta-analysis. Biometrics, 55, 732-737.

    Viechtbauer, W., López-López, J. A., Sánchez-Meca, J., & Marín-Martínez, F.
    (2015). A comparison of procedures to test for moderators in mixed-effects
    meta-regression models. Psychological Methods, 20, 360-374.
    """
    _check_permutation_options(part, n_permutations, exact)
    fit_kwargs = _fit_arguments(estimator, sample_var, fit_params, "permutation_test")
    if part == "scale" and fit_kwargs.get("Z") is None:
        raise ValueError("part='scale' needs Z, the scale design, to permute.")
    y = as_float_array(y, "y", allow_nan=True)
    if isinstance(X, pd.Series):
        X = X.to_frame()
    elif X is not None and not isinstance(X, pd.DataFrame):
        X = np.asarray(X)
    observed = clone(estimator).fit(X, y, **fit_kwargs)  # bad input: its ValueError
    if getattr(observed, "n_missing_", 0):
        raise ValueError(
            f"{observed.n_missing_} studies have missing values; a permutation "
            "would move them between fits. Remove them before permutation_test."
        )
    z_obs, omnibus_obs = _wald_statistics(observed, part)
    if part == "scale":
        names, permuted, mode = observed._scale_term_names, fit_kwargs["Z"], part
    elif observed.n_features_in_ == 0:
        names, permuted, mode = observed._term_names, None, "sign"
    else:
        names, permuted, mode = observed._term_names, X, part
    perms, do_exact = _permutations(permuted, y, n_permutations, exact, random_state)
    results = _refit_all(estimator, X, y, fit_kwargs, mode, perms, n_jobs)
    zs, omnibus, n_failed = _successful_refits(results)
    p = np.mean(np.abs(zs) >= np.abs(z_obs) - _COMPARISON_TOLERANCE, axis=0)
    p_omnibus = (
        float(np.mean(omnibus >= omnibus_obs - _COMPARISON_TOLERANCE))
        if np.isfinite(omnibus_obs)
        else float("nan")
    )
    return PermutationTestResult(
        names=list(names),
        statistic=z_obs,
        p_value=p,
        omnibus_statistic=float(omnibus_obs),
        omnibus_p_value=p_omnibus,
        n_permutations=zs.shape[0],
        exact=bool(do_exact),
        null_statistics=zs,
        n_failed=n_failed,
    )


# ------------------------------------------------------- profile likelihood
@dataclass(frozen=True)
class ProfileLikelihoodResult:
    """Profile (restricted) log-likelihood of one parameter.

    Attributes
    ----------
    parameter : str
        The parameter's name, e.g. ``"tau2"`` or ``"scale:<term>"``.
    estimate : float
        Maximum-likelihood estimate.
    loglik_max : float
        Maximized criterion (``loglik_`` of the full fit).
    grid : ndarray
        Values at which the profile was evaluated.
    loglik : ndarray
        Profile criterion at ``grid`` (other parameters re-maximized); ``-inf``
        where the model is not defined (outside the parameter space, e.g.
        negative :math:`\\tau_i^2` under an identity link).
    ci_lower, ci_upper : float
        Profile-likelihood confidence interval: where the profile drops by
        :math:`\\chi^2_{1, \\text{level}}/2`.  The edge of the parameter space
        when the profile stays above the cut-off up to it (e.g. 0 for
        :math:`\\tau^2`); ``-inf``/``inf`` when the profile stays above the
        cut-off indefinitely (flat, e.g. a diverging scale coefficient); ``nan``
        with a warning when the bound could not be found.
    confidence_level : float
    """

    parameter: str
    estimate: float
    loglik_max: float
    grid: np.ndarray
    loglik: np.ndarray
    ci_lower: float
    ci_upper: float
    confidence_level: float

    def plot(self, ax=None):
        """Plot the profile with :func:`skmeta.plotting.profile_plot`."""
        from skmeta.plotting import profile_plot

        return profile_plot(self, ax=ax)

    def __str__(self):
        pct = f"{100 * self.confidence_level:g}%"
        return (
            f"Profile likelihood of {self.parameter}: estimate {self.estimate:.4f}, "
            f"{pct} CI [{self.ci_lower:.4f}, {self.ci_upper:.4f}] "
            f"({self.grid.shape[0]} grid points, maximum {self.loglik_max:.4f})"
        )


def _select_target(estimator, parameter):
    """``(name, ProfileTarget)`` of a fitted estimator's profile targets."""
    targets = estimator._profile_targets()
    if not targets:
        raise ValueError(
            "profile_likelihood supports the parameters an estimator offers for "
            f"profiling; {type(estimator).__name__} offers none."
        )
    names = list(targets)
    if isinstance(parameter, str):
        if parameter not in targets:
            # a term name without its part prefix ("ni100" for "scale:ni100")
            matches = [n for n in names if n.split(":", 1)[-1] == parameter]
            if len(matches) != 1:
                raise ValueError(f"parameter {parameter!r} not in {names}.")
            parameter = matches[0]
        return parameter, targets[parameter]
    if isinstance(parameter, Integral) and not isinstance(parameter, bool):
        if not 0 <= parameter < len(names):
            raise ValueError(f"parameter index {parameter} out of range for {names}.")
        return names[parameter], targets[names[parameter]]
    raise ValueError(f"parameter must be a name or an index, got {parameter!r}.")


def _parameter_range(estimator, target):
    """``(lower, upper)`` of a target from its hyperparameter's constraints.

    A target that is a hyperparameter (``tau2``: ``set_params(tau2=value)``)
    inherits the hyperparameter's interval (``[0, inf)``); other limits of the
    parameter space show as fits that fail (see :func:`_profile_loglik`).
    """
    lower, upper = -np.inf, np.inf
    constraints = getattr(estimator, "_parameter_constraints", {})
    a, b = target.estimate, target.estimate + 1.0
    at_a, at_b = target.params(a), target.params(b)
    for key, value in at_a.items():
        if not (_is_number(value) and value == a and _is_number(at_b.get(key))):
            continue
        if at_b[key] != b:
            continue  # a setting that does not carry the value (a penalty, ...)
        for constraint in constraints.get(key, []):
            if isinstance(constraint, Interval):
                if constraint.left is not None:
                    lower = max(lower, float(constraint.left))
                if constraint.right is not None:
                    upper = min(upper, float(constraint.right))
    return lower, upper


def _is_number(value):
    return isinstance(value, Real) and not isinstance(value, bool)


def _profile_loglik(estimator, params, X, y, fit_kwargs):
    """``(criterion, converged)`` of a refit with ``params`` fixed.

    A fit that raises ``ValueError`` (a value outside the parameter space, e.g.
    tau^2 < 0, or negative tau_i^2 under an identity link) has criterion ``-inf``:
    the likelihood is zero there.
    """
    est = clone(estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est.set_params(**params).fit(X, y, **fit_kwargs)
        except ValueError:
            return -np.inf, True
    return float(est.loglik_), bool(getattr(est, "converged_", True))


def _profile_grid(grid, n_points, estimate, step, lower, upper, name):
    if grid is None:
        if not (
            isinstance(n_points, Integral)
            and not isinstance(n_points, bool)
            and n_points >= 1
        ):
            raise ValueError(f"n_points must be a positive integer; got {n_points!r}.")
        lo = max(estimate - _GRID_HALF_WIDTH * step, lower)
        hi = min(estimate + _GRID_HALF_WIDTH * step, upper)
        return np.linspace(lo, hi, n_points)
    grid = np.atleast_1d(np.asarray(grid, dtype=float))
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError("grid must be a non-empty 1-D array of finite values.")
    if np.any(grid < lower):
        raise ValueError(f"grid: {name} values must be >= {lower:g}.")
    if np.any(grid > upper):
        raise ValueError(f"grid: {name} values must be <= {upper:g}.")
    return grid


#: The default grid spans the estimate +- this many standard errors.
_GRID_HALF_WIDTH = 4.0
#: Doublings of the step away from the estimate before a bound is given up.
_MAX_DOUBLINGS = 30
#: A profile changing by less than this (relative) over a doubled step is flat:
#: the bound on that side is infinite.
_FLAT_PROFILE = 1e-9
#: Precision of a confidence bound (brentq) and of the edge of the parameter
#: space (bisection), relative to the step (the standard error).
_BOUND_XTOL = 1e-10
_EDGE_XTOL = 1e-8


def _admissible_edge(excess, inside, outside, step):
    """Bisect between an admissible value and one outside the parameter space."""
    while abs(outside - inside) > _EDGE_XTOL * step:
        middle = 0.5 * (inside + outside)
        if excess(middle) == -np.inf:
            outside = middle
        else:
            inside = middle
    return inside


def _confidence_bound(excess, estimate, step, limit, direction):
    """Where ``excess`` (profile minus cut-off, > 0 at the estimate) crosses 0.

    Steps away from the estimate, doubling, until the profile falls below the
    cut-off (then brentq), reaches the edge of the parameter space while still
    above it (the bound is the edge), or turns flat (the bound is infinite).
    Returns NaN when none happens (a warning is the caller's).
    """
    inner, previous = estimate, None
    for _ in range(_MAX_DOUBLINGS):
        outer = inner + direction * step
        at_edge = (outer - limit) * direction >= 0
        if at_edge:
            outer = limit
        value = excess(outer)
        if value == -np.inf:
            outer = _admissible_edge(excess, inner, outer, step)
            value, at_edge = excess(outer), True
        if np.isnan(value):
            return float("nan")
        if value < 0:
            a, b = sorted((inner, outer))
            return float(
                optimize.brentq(excess, a, b, xtol=_BOUND_XTOL * step, rtol=1e-12)
            )
        if at_edge:
            return float(outer)
        if previous is not None and abs(value - previous) <= _FLAT_PROFILE * (
            1.0 + abs(value)
        ):
            return direction * np.inf
        previous, inner, step = value, outer, 2.0 * step
    return float("nan")


def _profile_interval(excess, name, estimate, step, lower, upper):
    """Both confidence bounds; one that cannot be found is NaN, with a warning."""
    bounds = []
    for direction, limit, side in ((-1.0, lower, "lower"), (1.0, upper, "upper")):
        bound = _confidence_bound(excess, estimate, step, limit, direction)
        if np.isnan(bound):
            warnings.warn(
                f"profile_likelihood: the {side} confidence bound of {name} was not "
                "found (the model could not be fitted far from the estimate); it is "
                "reported as NaN.",
                UserWarning,
                stacklevel=3,
            )
        bounds.append(bound)
    return tuple(bounds)


def profile_likelihood(
    estimator,
    X,
    y,
    *,
    sample_var=None,
    parameter: int | str = 0,
    grid=None,
    n_points: int = 20,
    confidence_level: float = 0.95,
    n_jobs: int | None = None,
    **fit_params,
) -> ProfileLikelihoodResult:
    """Profile the (restricted) log-likelihood over one parameter.

    The parameter is fixed at each grid value and the others are re-estimated
    (through ``set_params``: ``tau2`` of :class:`~skmeta.RandomEffectsMeta`,
    equal ``scale_bounds`` for a scale coefficient of
    :class:`~skmeta.LocationScaleMeta`; the estimator lists what it can
    profile).  The profile-likelihood confidence interval solves
    :math:`\\ell_p(a) = \\hat\\ell - \\chi^2_{1,\\text{level}}/2` by root finding
    (metafor's ``confint``).  Values where the model is not defined (outside
    the parameter space) have criterion ``-inf``; a bound that reaches the edge
    of the parameter space with the profile still above the cut-off is that
    edge (e.g. 0 for :math:`\\tau^2`).

    Parameters
    ----------
    estimator : skmeta estimator
        Unfitted or fitted; it is cloned and refitted (``method`` "ml" or
        "reml").
    X : array-like of shape (n_samples, n_features) or None
    y : array-like of shape (n_samples,)
    sample_var : array-like of shape (n_samples,), default=None
    parameter : int or str, default=0
        The parameter: its name (``"tau2"``, ``"scale:ni100"``, or the term name
        ``"ni100"`` alone) or its position among the estimator's profiled
        parameters (for a location-scale model, the position in
        ``[scale_intercept_, *scale_coef_]``).
    grid : array-like, default=None
        Values to evaluate; default: ``n_points`` values over the estimate
        +- 4 standard errors, within the parameter's range.
    n_points : int, default=20
    confidence_level : float, default=0.95
    n_jobs : int, default=None
        Parallel refits of the grid through joblib.
    **fit_params : array-like
        Further arguments of ``estimator.fit`` (``Z``, ``groups``), passed to
        every refit.  A name that ``fit`` does not take, or a missing required
        one, is an error.

    Returns
    -------
    ProfileLikelihoodResult
        With a ``plot()`` method.

    Warns
    -----
    UserWarning
        When a confidence bound could not be found (it is NaN), when grid values
        lie outside the parameter space, or when refits did not converge.
    """
    level = check_confidence_level(confidence_level)
    fit_kwargs = _fit_arguments(estimator, sample_var, fit_params, "profile_likelihood")
    fitted = clone(estimator).fit(X, y, **fit_kwargs)  # bad input: its ValueError
    name, target = _select_target(fitted, parameter)
    lower, upper = _parameter_range(fitted, target)
    estimate, ll_max = float(target.estimate), float(fitted.loglik_)
    # step of the bound search; without a usable SE, one unit of the parameter
    # (or of its size)
    step = target.se if np.isfinite(target.se) and target.se > 0 else None
    step = step or max(abs(estimate), 1.0)
    grid = _profile_grid(grid, n_points, estimate, step, lower, upper, name)
    points = Parallel(n_jobs=n_jobs)(
        delayed(_profile_loglik)(estimator, target.params(g), X, y, fit_kwargs)
        for g in grid
    )
    loglik = np.array([ll for ll, _ in points], dtype=float)
    _warn_about_grid(name, grid, loglik, [ok for _, ok in points])
    cut = ll_max - 0.5 * stats.chi2.ppf(level, 1)

    def excess(value):
        ll, _ = _profile_loglik(estimator, target.params(value), X, y, fit_kwargs)
        return ll - cut

    ci_lower, ci_upper = _profile_interval(excess, name, estimate, step, lower, upper)
    return ProfileLikelihoodResult(
        parameter=name,
        estimate=estimate,
        loglik_max=ll_max,
        grid=grid,
        loglik=loglik,
        ci_lower=ci_lower,
        ci_upper=ci_upper,
        confidence_level=level,
    )


def _warn_about_grid(name, grid, loglik, converged):
    outside = grid[loglik == -np.inf]
    if outside.size:
        warnings.warn(
            f"profile_likelihood: {outside.size} grid value(s) of {name} lie outside "
            f"the parameter space (e.g. {outside[0]:.4g}); their criterion is -inf.",
            UserWarning,
            stacklevel=3,
        )
    failed = np.isnan(loglik)
    if failed.any():
        warnings.warn(
            f"profile_likelihood: the criterion is NaN at {int(failed.sum())} grid "
            f"value(s) of {name}.",
            UserWarning,
            stacklevel=3,
        )
    if not all(converged):
        warnings.warn(
            f"profile_likelihood: {converged.count(False)} refit(s) on the grid of "
            f"{name} did not converge.",
            ConvergenceWarning,
            stacklevel=3,
        )


# -------------------------------------------- heteroscedastic heterogeneity
@dataclass(frozen=True)
class HeteroscedasticityTestResult:
    """Test of H0: tau_1^2 = ... = tau_k^2 (random-effects vs a scale model).

    Attributes
    ----------
    kind : {"fixed", "random"}
    statistic, df, p_value, p_value_boundary : float
        LRT statistic, degrees of freedom, chi-square p-value and (random
        study effects: omega^2 = 0 is on the boundary) the 50:50 mixture one.
    loglik_full, loglik_reduced : float
        Criteria of the scale model and of the random-effects model (REML
        with metafor's +1/2 log|X'X| constant).
    n_params_full, n_params_reduced : int
    omega2 : float
        Variance of the random scale effects (``kind="random"``).
    quad_error : float
        Estimated absolute error of ``loglik_full`` from the quadrature.
    """

    kind: str
    statistic: float
    df: int
    p_value: float
    p_value_boundary: float
    loglik_full: float
    loglik_reduced: float
    n_params_full: int
    n_params_reduced: int
    omega2: float = np.nan
    quad_error: float = 0.0

    def __str__(self):
        model = (
            "random study effects on ln tau^2"
            if self.kind == "random"
            else "one tau^2 per study"
        )
        lines = [
            f"Test of heteroscedastic heterogeneity ({model} vs one tau^2)",
            f"log-likelihood: {self.loglik_full:.4f} ({self.n_params_full} "
            f"parameters) vs {self.loglik_reduced:.4f} ({self.n_params_reduced})",
            f"LRT = {self.statistic:.4f}, df = {self.df}, p = {self.p_value:.4g}; "
            f"boundary (50:50 mixture) p = {self.p_value_boundary:.4g}",
        ]
        if self.kind == "random":
            lines.append(
                f"omega^2 = {self.omega2:.4g} (quadrature error {self.quad_error:.1e})"
            )
        return "\n".join(lines)


def _heteroscedasticity_inputs(y, sample_var, kind, n_nodes):
    """Validated ``(y, v)``; the options checked before any fit."""
    if kind not in ("random", "fixed"):
        raise ValueError(f"kind must be 'random' or 'fixed', got {kind!r}.")
    if sample_var is None:
        raise ValueError(
            "heteroscedasticity_test needs sample_var, the studies' sampling "
            "variances: without them tau^2 is not identified."
        )
    if not (
        isinstance(n_nodes, Integral) and not isinstance(n_nodes, bool) and n_nodes >= 1
    ):
        raise ValueError(f"n_nodes must be a positive integer, got {n_nodes!r}.")
    y = as_float_array(y, "y")
    v = check_sample_var(sample_var, y.shape)
    if np.any(v <= 0):
        # with v_i = 0 and its own tau_i^2 -> 0, a study's density is unbounded
        raise ValueError(
            "heteroscedasticity_test needs positive sample_var: study "
            f"{int(np.argmax(v <= 0))} has sampling variance 0, and the likelihood "
            "of the study-specific scale model is unbounded."
        )
    return y, v


def _one_scale_per_study(X, y, v, method):
    """``(criterion, n_params, omega2, quadrature error)`` of ln tau_i^2 = alpha_i.

    Studies whose tau_i^2 goes to 0 make their alpha_i diverge; the criterion
    stays finite (v_i > 0), so the divergence warning does not apply here.
    """
    from skmeta._location_scale import LocationScaleMeta

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InfiniteScaleWarning)
        full = LocationScaleMeta(method=method, scale_fit_intercept=False).fit(
            X, y, sample_var=v, Z=np.eye(y.shape[0])
        )
    return full.loglik_, full.n_params_, np.nan, 0.0


def _random_scale_effects(X, y, v, method, n_nodes, reduced):
    """``(criterion, n_params, omega2, quadrature error)`` of ln tau_i^2 =
    alpha_0 + s_i, s_i ~ N(0, omega^2), started from the homogeneous fit."""
    from skmeta._engine._quadrature import fit_random_scale

    k = y.shape[0]
    design = reduced._design(
        np.empty((k, 0)) if X is None else np.asarray(X, dtype=float).reshape(k, -1)
    )
    fit = fit_random_scale(
        y,
        v,
        design,
        method=method,
        n_nodes=int(n_nodes),
        start=(reduced._beta, reduced.scale_intercept_),
    )
    return fit.loglik, design.shape[1] + 2, fit.omega2, fit.quad_error


def heteroscedasticity_test(
    X, y, *, sample_var, kind: str = "random", method: str = "reml", n_nodes: int = 20
) -> HeteroscedasticityTestResult:
    """Test whether tau^2 differs between studies (Viechtbauer & López-López, 2022).

    ``kind="fixed"``: LRT of the random-effects model against the scale model
    :math:`\\ln\\tau_i^2 = \\alpha_i` (one scale coefficient per study),
    df = k - 1.  ``kind="random"``: LRT against
    :math:`\\ln\\tau_i^2 = \\alpha_0 + s_i`, :math:`s_i \\sim N(0, \\omega^2)`,
    whose marginal likelihood is computed by adaptive Gauss-Hermite
    quadrature (error estimate in ``quad_error``), df = 1.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or None
        Location moderators (REML with ``kind="random"``: intercept only).
    y : array-like of shape (n_samples,)
    sample_var : array-like of shape (n_samples,)
        The studies' sampling variances (required, positive).
    kind : {"random", "fixed"}, default="random"
    method : {"reml", "ml"}, default="reml"
    n_nodes : int, default=20
        Gauss-Hermite nodes per study (``kind="random"``).

    Returns
    -------
    HeteroscedasticityTestResult

    Warns
    -----
    UserWarning
        When the criterion of the full model is not finite (the statistic and
        p-values are then NaN).

    References
    ----------
    Viechtbauer, W., & López-López, J. A. (2022). Location-scale models for
    meta-analysis. Research Synthesis Methods, 13, 697-715.
    """
    from skmeta._location_scale import LocationScaleMeta

    y, v = _heteroscedasticity_inputs(y, sample_var, kind, n_nodes)
    reduced = LocationScaleMeta(method=method).fit(X, y, sample_var=v)
    if kind == "fixed":
        ll_full, n_full, omega2, err = _one_scale_per_study(X, y, v, method)
    else:
        ll_full, n_full, omega2, err = _random_scale_effects(
            X, y, v, method, n_nodes, reduced
        )
    test = _lr_result(
        _lr_statistic(ll_full, reduced.loglik_), n_full - reduced.n_params_
    )
    return HeteroscedasticityTestResult(
        kind=kind,
        statistic=test.statistic,
        df=test.df,
        p_value=test.p_value,
        p_value_boundary=test.p_value_boundary,
        loglik_full=float(ll_full),
        loglik_reduced=float(reduced.loglik_),
        n_params_full=int(n_full),
        n_params_reduced=int(reduced.n_params_),
        omega2=float(omega2),
        quad_error=float(err),
    )
