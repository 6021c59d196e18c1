"""Shared inference tools: likelihood-ratio, permutation and profile-likelihood.

The tools are generic over the skmeta estimators: they only use the public
fitted attributes (``loglik_``, ``n_params_``, ``coef_``/``intercept_``,
``cov_params_``, and for location-scale models ``scale_coef_``/
``scale_intercept_``/``scale_cov_params_``), the hyperparameter ``method``,
and ``get_params``/``set_params``/``clone``.  Refits run through
``joblib.Parallel(n_jobs=...)``, so ``joblib.parallel_config(backend="dask")``
distributes them on a Dask cluster.
"""

import itertools
import math
import warnings
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import optimize, stats
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from skmeta.utils._validation import as_float_array, check_sample_var

__all__ = [
    "HeteroscedasticityTestResult",
    "LRTestResult",
    "PermutationTestResult",
    "ProfileLikelihoodResult",
    "heteroscedasticity_test",
    "lr_test",
    "permutation_test",
    "plot_profile",
    "profile_likelihood",
]


# ------------------------------------------------------------------ LR test
@dataclass(frozen=True)
class LRTestResult:
    """Likelihood-ratio test of nested models.

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
    table : DataFrame
        Rows ``full`` and ``reduced`` with ``n_params, aic, bic, aicc, loglik``
        (metafor's ``anova`` table).
    """

    statistic: float
    df: int
    p_value: float
    p_value_boundary: float
    table: pd.DataFrame = field(repr=False)


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


def _n_location(est):
    return len(np.atleast_1d(est.coef_)) + int(bool(getattr(est, "fit_intercept", 1)))


def lr_test(full, reduced):
    """Likelihood-ratio test of a reduced model against a full model.

    Parameters
    ----------
    full : fitted skmeta estimator
        The larger model.
    reduced : fitted skmeta estimator
        The nested model (fewer parameters), fitted to the same studies with
        the same ``method``.

    Returns
    -------
    LRTestResult
        Statistic, df, p-value and the boundary (50:50 mixture) p-value.

    Warns
    -----
    UserWarning
        When both fits are REML and their fixed effects differ: restricted
        likelihoods of models with different fixed effects are not comparable
        (refit with ``method="ml"``), as metafor's ``anova`` warns.
    """
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
    df = int(full.n_params_ - reduced.n_params_)
    if df <= 0:
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
    if m_full == "reml":
        same = _n_location(full) == _n_location(reduced)
        names_f = getattr(full, "feature_names_in_", None)
        names_r = getattr(reduced, "feature_names_in_", None)
        if same and names_f is not None and names_r is not None:
            same = list(names_f) == list(names_r)
        if not same:
            warnings.warn(
                "REML likelihoods of models with different fixed effects are not "
                "comparable; refit both with method='ml'.",
                UserWarning,
                stacklevel=2,
            )
    stat = _lr_statistic(full.loglik_, reduced.loglik_)
    p = float(stats.chi2.sf(stat, df))
    p_lower = float(stats.chi2.sf(stat, df - 1)) if df > 1 else float(stat <= 0)
    p_boundary = 0.5 * p + 0.5 * p_lower
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
    return LRTestResult(float(stat), df, p, float(p_boundary), table)


# -------------------------------------------------------- coefficient access
def _location_stats(est):
    beta = (
        np.concatenate([[est.intercept_], est.coef_])
        if est.fit_intercept
        else (np.asarray(est.coef_))
    )
    return beta, np.asarray(est.cov_params_)


def _scale_stats(est):
    if not hasattr(est, "scale_coef_"):
        raise ValueError(f"{type(est).__name__} has no scale model (part='scale').")
    alpha = (
        np.concatenate([[est.scale_intercept_], est.scale_coef_])
        if est.scale_fit_intercept
        else np.asarray(est.scale_coef_)
    )
    return alpha, np.asarray(est.scale_cov_params_)


def _z_and_omnibus(est, part):
    coef, cov = _location_stats(est) if part == "location" else _scale_stats(est)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = coef / se
    has_int = est.fit_intercept if part == "location" else est.scale_fit_intercept
    idx = np.arange(1 if has_int else 0, coef.shape[0])
    if idx.size:
        sub = cov[np.ix_(idx, idx)]
        try:
            omni = float(coef[idx] @ np.linalg.solve(sub, coef[idx]))
        except np.linalg.LinAlgError:
            omni = np.nan
    else:
        omni = np.nan
    return z, omni


def _fit_stats(est, X, y, fit_kw, part):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est.fit(X, y, **fit_kw)
            return _z_and_omnibus(est, part)
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            return None


def _fit_parameters(estimator):
    import inspect

    return inspect.signature(estimator.fit).parameters


# --------------------------------------------------------- permutation test
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

    def to_frame(self):
        """Return the coefficient table (statistic, p_value)."""
        return pd.DataFrame(
            {"statistic": self.statistic, "p_value": self.p_value},
            index=pd.Index(self.names, name="term"),
        )


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


def _rows_codes(M):
    _, codes = np.unique(M, axis=0, return_inverse=True)
    return codes.ravel()


def permutation_test(
    estimator,
    X,
    y,
    *,
    sample_var=None,
    Z=None,
    part="location",
    n_permutations=1000,
    exact="auto",
    n_jobs=None,
    random_state=None,
):
    """Permutation test of location or scale coefficients.

    Location (``part="location"``): the rows of ``X`` are permuted (the
    moderators are detached from the effect sizes) and the model is refitted;
    for an intercept-only location model the signs of ``y`` are flipped
    instead (Follmann & Proschan 1999).  Scale (``part="scale"``): the rows of
    ``Z`` are permuted.  Each coefficient's p-value is the share of
    permutations (the observed one included) whose ``|z|`` is at least the
    observed one (metafor's ``permutest``).

    Parameters
    ----------
    estimator : skmeta estimator
        Unfitted or fitted; it is cloned and refitted.
    X : array-like of shape (n_samples, n_features) or None
    y : array-like of shape (n_samples,)
    sample_var : array-like of shape (n_samples,), default=None
    Z : array-like of shape (n_samples, n_scale_features), default=None
        Scale design (location-scale models).
    part : {"location", "scale"}, default="location"
    n_permutations : int, default=1000
        Number of permutations including the observed data.
    exact : {"auto", True, False}, default="auto"
        Enumerate all distinct permutations: ``"auto"`` when there are at most
        ``n_permutations`` of them.
    n_jobs : int, default=None
        Parallel refits through joblib.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    PermutationTestResult
    """
    if part not in ("location", "scale"):
        raise ValueError(f"part must be 'location' or 'scale', got {part!r}.")
    if part == "scale" and Z is None:
        raise ValueError("part='scale' needs Z.")
    if Z is not None and "Z" not in _fit_parameters(estimator):
        raise ValueError(
            f"Z was given but {type(estimator).__name__}.fit does not take Z."
        )
    if not (isinstance(n_permutations, int | np.integer) and n_permutations >= 1):
        raise ValueError(
            f"n_permutations must be a positive integer; got {n_permutations!r}."
        )
    y = np.asarray(y, dtype=float).ravel()
    k = y.shape[0]
    Xa = None if X is None else (X if isinstance(X, pd.DataFrame) else np.asarray(X))
    Za = None if Z is None else (Z if isinstance(Z, pd.DataFrame) else np.asarray(Z))
    fit_kw = {"sample_var": sample_var}
    if Z is not None:
        fit_kw["Z"] = Za
    base = clone(estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base.fit(Xa, y, **fit_kw)  # bad input raises its own clear ValueError
    obs = _fit_stats(base, Xa, y, fit_kw, part)
    if obs is None:
        raise ValueError("The model could not be fitted to the observed data.")
    names = (
        base._term_names if part == "location" else base._scale_term_names
    )  # skmeta estimators
    z_obs, omni_obs = obs

    if part == "location":
        n_cols = 0 if Xa is None else (Xa.shape[1] if Xa.ndim == 2 else 1)
        sign_flip = n_cols == 0
        target = Xa
    else:
        if Za is None:
            raise ValueError("part='scale' needs Z.")
        sign_flip = False
        target = Za
    rng = check_random_state(random_state)
    if sign_flip:
        n_total = 2**k if k < 63 else math.inf
    else:
        codes = _rows_codes(np.asarray(target, dtype=float).reshape(k, -1))
        n_total = _n_multiset_permutations(codes)
    do_exact = (exact is True) or (exact == "auto" and n_total <= n_permutations)
    if do_exact and n_total > 10**6:
        raise ValueError(f"An exact test needs {n_total} refits; use exact=False.")

    # list of permutations (as index arrays or sign vectors), the observed first
    if sign_flip:
        if do_exact:
            perms = [np.array(s) for s in itertools.product((1.0, -1.0), repeat=k)]
        else:
            perms = [np.ones(k)] + [
                rng.choice((1.0, -1.0), size=k) for _ in range(n_permutations - 1)
            ]
    elif do_exact:
        # distinct row orders: map each multiset ordering of codes to row indices
        rows_by_code = {c: np.flatnonzero(codes == c) for c in np.unique(codes)}
        perms = []
        for order in _multiset_permutations(codes):
            idx = np.empty(k, dtype=int)
            for c, rows in rows_by_code.items():
                idx[order == c] = rows
            perms.append(idx)
    else:
        perms = [np.arange(k)] + [rng.permutation(k) for _ in range(n_permutations - 1)]

    def take(M, idx):
        if isinstance(M, pd.DataFrame):
            return M.iloc[idx].reset_index(drop=True)
        return M[idx]

    def one_batch(batch):
        out = []
        est = clone(estimator)
        for perm in batch:
            if sign_flip:
                res = _fit_stats(est, Xa, y * perm, fit_kw, part)
            elif part == "location":
                res = _fit_stats(est, take(Xa, perm), y, fit_kw, part)
            else:
                kw = dict(fit_kw, Z=take(Za, perm))
                res = _fit_stats(est, Xa, y, kw, part)
            out.append(res)
        return out

    n_batches = max(1, min(len(perms), 4 * (1 if n_jobs in (None, 1) else 8)))
    batches = [list(b) for b in np.array_split(np.arange(len(perms)), n_batches)]
    results = Parallel(n_jobs=n_jobs)(
        delayed(one_batch)([perms[i] for i in b]) for b in batches if len(b)
    )
    flat = [r for batch in results for r in batch]
    ok = [r for r in flat if r is not None]
    n_failed = len(flat) - len(ok)
    zs = np.array([r[0] for r in ok])
    omnis = np.array([r[1] for r in ok])
    # comparison tolerance as metafor's comptol (sqrt of machine epsilon)
    tol = np.sqrt(np.finfo(float).eps)
    # the observed data are the first permutation (or among the enumerated ones)
    p = np.mean(np.abs(zs) >= np.abs(z_obs) - tol, axis=0)
    p_omni = np.nan
    if np.isfinite(omni_obs):
        p_omni = float(np.mean(omnis >= omni_obs - tol))
    return PermutationTestResult(
        names=list(names),
        statistic=z_obs,
        p_value=p,
        omnibus_statistic=omni_obs,
        omnibus_p_value=p_omni,
        n_permutations=len(ok),
        exact=bool(do_exact),
        null_statistics=zs,
        n_failed=n_failed,
    )


# ------------------------------------------------------- profile likelihood
@dataclass(frozen=True)
class ProfileLikelihoodResult:
    """Profile (restricted) log-likelihood of one variance parameter.

    Attributes
    ----------
    parameter : str
        ``"scale:<term>"`` (location-scale models) or ``"tau2"``.
    estimate : float
        Maximum-likelihood estimate.
    loglik_max : float
        Maximized criterion (``loglik_`` of the full fit).
    grid : ndarray
        Values at which the profile was evaluated.
    loglik : ndarray
        Profile criterion at ``grid`` (other parameters re-maximized).
    ci_lower, ci_upper : float
        Profile-likelihood confidence interval: where the profile drops by
        :math:`\\chi^2_{1, \\text{level}}/2`; ``-inf``/``inf`` when the profile
        stays above that cut-off (flat, e.g. a diverging scale coefficient),
        ``nan`` with a warning when the bound could not be found.
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
        """Plot the profile; see :func:`plot_profile`."""
        return plot_profile(self, ax=ax)


def plot_profile(result, ax=None):
    """Plot a profile likelihood with its maximum and confidence bounds.

    Needs matplotlib (the ``plot`` extra).

    Parameters
    ----------
    result : ProfileLikelihoodResult
    ax : matplotlib Axes, default=None
        Axes to draw into (a new figure when None).

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    ax.plot(result.grid, result.loglik, "o-", color="0.2", ms=3)
    ax.axvline(result.estimate, ls="--", color="0.5")
    ax.axhline(result.loglik_max, ls="--", color="0.5")
    cut = result.loglik_max - 0.5 * stats.chi2.ppf(result.confidence_level, 1)
    ax.axhline(cut, ls=":", color="tab:red")
    for b in (result.ci_lower, result.ci_upper):
        if np.isfinite(b):
            ax.axvline(b, ls=":", color="tab:red")
    ax.set_xlabel(f"{result.parameter} value")
    ax.set_ylabel("(restricted) log-likelihood")
    ax.set_title(f"Profile plot for {result.parameter}")
    return ax


def _profile_setter(est, parameter):
    """Return (label, estimate, se, setter(value) -> params) for a parameter."""
    if hasattr(est, "scale_coef_"):
        names = est._scale_term_names
        if isinstance(parameter, str):
            if parameter not in names:
                raise ValueError(f"parameter {parameter!r} not in {names}.")
            j = names.index(parameter)
        else:
            j = int(parameter)
            if not 0 <= j < len(names):
                raise ValueError(f"parameter index {j} out of range for {names}.")
        alpha, cov = _scale_stats(est)
        q = alpha.shape[0]

        def setter(value):
            lo = np.full(q, -np.inf)
            hi = np.full(q, np.inf)
            lo[j] = hi[j] = value
            return {"scale_bounds": (lo, hi), "scale_penalty": 0.0}

        return f"scale:{names[j]}", float(alpha[j]), float(np.sqrt(cov[j, j])), setter
    if hasattr(est, "tau2_") and "tau2" in est.get_params():
        se = float(getattr(est, "tau2_se_", np.nan))
        return "tau2", float(est.tau2_), se, lambda value: {"tau2": float(value)}
    raise ValueError(
        f"profile_likelihood supports LocationScaleMeta (scale coefficients) and "
        f"RandomEffectsMeta (tau2), not {type(est).__name__}."
    )


def _profile_point(estimator, params, X, y, fit_kw):
    est = clone(estimator).set_params(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(est.fit(X, y, **fit_kw).loglik_)
        except ValueError:
            return np.nan


def profile_likelihood(
    estimator,
    X,
    y,
    *,
    sample_var=None,
    Z=None,
    parameter=0,
    grid=None,
    n_points=20,
    confidence_level=0.95,
    n_jobs=None,
):
    """Profile the (restricted) log-likelihood over one variance parameter.

    The parameter is fixed at each grid value and the others are re-estimated
    (through ``set_params``: ``scale_bounds`` with equal bounds for a scale
    coefficient, ``tau2`` for ``RandomEffectsMeta``).  The profile-likelihood
    confidence interval solves :math:`\\ell_p(a) = \\hat\\ell -
    \\chi^2_{1,\\text{level}}/2` by root finding (metafor's ``confint``).

    Parameters
    ----------
    estimator : skmeta estimator
        ``LocationScaleMeta`` (``method`` "ml" or "reml") or
        ``RandomEffectsMeta``.
    X : array-like of shape (n_samples, n_features) or None
    y : array-like of shape (n_samples,)
    sample_var : array-like of shape (n_samples,), default=None
    Z : array-like of shape (n_samples, n_scale_features), default=None
    parameter : int or str, default=0
        Scale coefficient (index into ``[scale_intercept_, *scale_coef_]`` or
        term name); ignored for ``RandomEffectsMeta`` (tau^2).
    grid : array-like, default=None
        Values to evaluate; default: ``n_points`` values over estimate +- 4 SE.
    n_points : int, default=20
    confidence_level : float, default=0.95
    n_jobs : int, default=None
        Parallel refits of the grid through joblib.

    Returns
    -------
    ProfileLikelihoodResult
        With a ``plot()`` method.
    """
    if not 0 < confidence_level < 1:
        raise ValueError(
            f"confidence_level must be in (0, 1); got {confidence_level!r}."
        )
    if grid is None and not (isinstance(n_points, int | np.integer) and n_points >= 1):
        raise ValueError(f"n_points must be a positive integer; got {n_points!r}.")
    fit_kw = {"sample_var": sample_var}
    if Z is not None:
        fit_kw["Z"] = Z
    base = clone(estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base.fit(X, y, **fit_kw)
    label, est_value, se, setter = _profile_setter(base, parameter)
    ll_max = float(base.loglik_)
    if not np.isfinite(se) or se <= 0:
        se = max(abs(est_value), 1.0)
    if grid is None:
        lo = est_value - 4 * se
        if label == "tau2":
            lo = max(lo, 0.0)
        grid = np.linspace(lo, est_value + 4 * se, n_points)
    grid = np.atleast_1d(np.asarray(grid, dtype=float))
    if grid.ndim != 1 or not np.all(np.isfinite(grid)):
        raise ValueError("grid must be a 1-D array of finite values.")
    if label == "tau2" and np.any(grid < 0):
        raise ValueError("grid: tau2 values must be >= 0.")
    lls = Parallel(n_jobs=n_jobs)(
        delayed(_profile_point)(estimator, setter(g), X, y, fit_kw) for g in grid
    )
    target = ll_max - 0.5 * stats.chi2.ppf(confidence_level, 1)

    def f(a):
        return _profile_point(estimator, setter(a), X, y, fit_kw) - target

    def bound(direction):
        step = se
        inner = est_value
        previous = None
        for _ in range(30):
            outer = inner + direction * step
            if label == "tau2" and outer < 0:
                outer = 0.0
            val = f(outer)
            if not np.isfinite(val):
                break  # the model cannot be fitted there
            if val < 0:
                a, b = sorted((inner, outer))
                try:
                    return float(optimize.brentq(f, a, b, xtol=1e-10, rtol=1e-10))
                except ValueError:  # a failed fit (NaN) inside the bracket
                    break
            if label == "tau2" and outer == 0.0:
                return 0.0
            if previous is not None and abs(val - previous) <= 1e-9 * (1 + abs(val)):
                # the profile is flat above the cut-off (e.g. a scale coefficient
                # diverging where tau^2 -> 0 in a subgroup): the interval is
                # unbounded on this side
                return direction * np.inf
            previous = val
            inner = outer
            step *= 2.0
        side = "lower" if direction < 0 else "upper"
        warnings.warn(
            f"profile_likelihood: the {side} confidence bound of {label} was not "
            "found (the model could not be fitted far from the estimate); it is "
            "reported as NaN.",
            UserWarning,
            stacklevel=3,
        )
        return np.nan

    return ProfileLikelihoodResult(
        parameter=label,
        estimate=est_value,
        loglik_max=ll_max,
        grid=grid,
        loglik=np.asarray(lls, dtype=float),
        ci_lower=bound(-1.0),
        ci_upper=bound(1.0),
        confidence_level=confidence_level,
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


def heteroscedasticity_test(
    X, y, *, sample_var, kind="random", method="reml", n_nodes=20
):
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
    """
    from skmeta._engine._quadrature import fit_random_scale
    from skmeta._location_scale import InfiniteScaleWarning, LocationScaleMeta

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
    k = y.shape[0]
    reduced = LocationScaleMeta(method=method).fit(X, y, sample_var=v)
    if kind == "fixed":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InfiniteScaleWarning)
            full = LocationScaleMeta(method=method, scale_fit_intercept=False).fit(
                X, y, sample_var=v, Z=np.eye(k)
            )
        ll_full, n_full, omega2, err = full.loglik_, full.n_params_, np.nan, 0.0
    else:
        design = reduced._design(
            np.empty((k, 0)) if X is None else np.asarray(X, dtype=float).reshape(k, -1)
        )
        rs = fit_random_scale(
            y,
            v,
            design,
            method=method,
            n_nodes=int(n_nodes),
            start=(reduced._beta, reduced.scale_intercept_),
        )
        ll_full, n_full, omega2, err = (
            rs.loglik,
            design.shape[1] + 2,
            rs.omega2,
            rs.quad_error,
        )
    df = int(n_full - reduced.n_params_)
    stat = _lr_statistic(ll_full, reduced.loglik_)
    p = float(stats.chi2.sf(stat, df))
    p_lower = float(stats.chi2.sf(stat, df - 1)) if df > 1 else float(stat <= 0)
    return HeteroscedasticityTestResult(
        kind=kind,
        statistic=stat,
        df=df,
        p_value=p,
        p_value_boundary=0.5 * (p + p_lower),
        loglik_full=float(ll_full),
        loglik_reduced=float(reduced.loglik_),
        n_params_full=int(n_full),
        n_params_reduced=int(reduced.n_params_),
        omega2=float(omega2),
        quad_error=float(err),
    )
