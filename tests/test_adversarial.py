"""Adversarial inputs for every public entry point (SPEC §10).

Each case gets a correct answer, a clear ``ValueError`` naming the problem, or
a documented warning: never a crash (another exception type), a hang or a
silent NaN.  A known gap would be a strict xfail whose reason names the
module and the fix (there are none at present).
"""

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from _checks import assert_summary_printout
from sklearn.exceptions import ConvergenceWarning

from skmeta import (
    LocationScaleMeta,
    MultilevelMeta,
    RandomEffectsMeta,
    RobustMeta,
    effect_sizes,
    lr_test,
    permutation_test,
    profile_likelihood,
)
from skmeta.__main__ import main as cli_main

RNG = np.random.default_rng(20240611)
K = 10
V = RNG.uniform(0.01, 0.2, K)
XCOL = RNG.normal(size=K)
Y = 0.3 + 0.2 * XCOL + RNG.normal(0, np.sqrt(V + 0.1))
XDF = pd.DataFrame({"x": XCOL})

ESTIMATORS = {
    "re": RandomEffectsMeta,
    "ls": LocationScaleMeta,
    "ml": MultilevelMeta,
    "rob": RobustMeta,
}
ALL = list(ESTIMATORS)


def _make(name):
    return ESTIMATORS[name]()


def _fit_quiet(est, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y, **kw)


def _check_usable(est, X, y, v):
    """A fitted model's outputs are finite (or the fit warned)."""
    Xn = np.empty((len(y), 0)) if X is None else X
    assert np.all(np.isfinite(est.predict(Xn)))
    assert np.isfinite(est.loglik_)
    frame = est.summary().to_frame()
    # RobustMeta's robust inference has no Wald form: its se is NaN by design
    columns = ["estimate", "ci_lower", "ci_upper"]
    columns += [] if isinstance(est, RobustMeta) else ["se"]
    assert np.all(np.isfinite(frame[columns].to_numpy(dtype=float)))
    assert_summary_printout(est)


# ------------------------------------------------------------ NaN / inf
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(
    "where, value, match",
    [
        ("y", np.nan, "y contains NaN"),
        ("y", np.inf, "y contains infinity"),
        ("y", -np.inf, "y contains infinity"),
        ("X", np.nan, "X contains NaN"),
        ("X", np.inf, "X contains infinity"),
        ("v", np.nan, "sample_var contains NaN"),
        ("v", np.inf, "sample_var contains NaN or infinity"),
        ("v", -0.1, "sample_var must be >= 0"),
    ],
)
def test_nan_inf_and_negative_variance_in_fit(name, where, value, match):
    X, y, v = XCOL.copy()[:, None], Y.copy(), V.copy()
    {"y": y, "X": X[:, 0], "v": v}[where][3] = value
    with pytest.raises(ValueError, match=match):
        _make(name).fit(X, y, sample_var=v)


@pytest.mark.parametrize("name", ["ls", "ml"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_inf_in_Z(name, value):
    Z = XCOL.copy()[:, None]
    Z[2, 0] = value
    with pytest.raises(ValueError, match="Z contains NaN or infinity"):
        _make(name).fit(XDF, Y, sample_var=V, Z=Z)


def test_nan_in_groups():
    groups = np.repeat(np.arange(5), 2).astype(object)
    groups[3] = None
    with pytest.raises(ValueError, match="groups contains 1 missing"):
        MultilevelMeta().fit(None, Y, sample_var=V, groups=groups)
    with pytest.raises(ValueError, match="groups contains 1 missing"):
        RandomEffectsMeta().fit(None, Y, sample_var=V, groups=groups)


@pytest.mark.parametrize("name", ALL)
def test_nan_in_new_X_for_predict(name):
    est = _fit_quiet(_make(name), XDF, Y, sample_var=V)
    bad = pd.DataFrame({"x": [np.nan, 1.0]})
    with pytest.raises(ValueError, match="NaN"):
        est.predict(bad)
    if hasattr(est, "predict_interval"):
        with pytest.raises(ValueError, match="NaN"):
            est.predict_interval(bad)


@pytest.mark.parametrize("name", ALL)
def test_nan_y_in_score_is_an_error(name):
    est = _fit_quiet(_make(name), XDF, Y, sample_var=V)
    y = Y.copy()
    y[0] = np.nan
    with pytest.raises(ValueError, match="y"):
        est.score(XDF, y, sample_var=V)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(
    "v, match",
    [
        (np.r_[np.inf, V[1:]], "sample_var contains NaN or infinity"),
        (np.r_[-1.0, V[1:]], "sample_var must be >= 0"),
        (V[:-1], "sample_var has 9 entries"),
    ],
)
def test_bad_sample_var_in_score(name, v, match):
    est = _fit_quiet(_make(name), XDF, Y, sample_var=V)
    with pytest.raises(ValueError, match=match):
        est.score(XDF, Y, sample_var=v)


# -------------------------------------------------- sampling variances
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("v_value", [1e-10, 1e-6, 1.0, 1e3, 1e6])
def test_extreme_equal_sampling_variances(name, v_value):
    v = np.full(K, v_value)
    est = _fit_quiet(_make(name), XDF, Y, sample_var=v)
    _check_usable(est, XDF, Y, v)
    if name == "re":
        # with huge v the data carry no evidence of heterogeneity
        if v_value >= 1e3:
            assert est.tau2_ == 0.0


@pytest.mark.parametrize("name", ALL)
def test_sampling_variances_spanning_16_orders(name):
    v = np.r_[np.full(5, 1e-10), np.full(5, 1e6)]
    est = _fit_quiet(_make(name), XDF, Y, sample_var=v)
    _check_usable(est, XDF, Y, v)


@pytest.mark.parametrize("name", ["re", "ls", "ml", "rob"])
def test_zero_sampling_variances_are_an_ordinary_model(name):
    est = _fit_quiet(_make(name), XDF, Y, sample_var=np.zeros(K))
    ols = np.linalg.lstsq(np.column_stack([np.ones(K), XCOL]), Y, rcond=None)[0]
    np.testing.assert_allclose(np.r_[est.intercept_, est.coef_], ols, rtol=1e-6)
    _check_usable(est, XDF, Y, np.zeros(K))


@pytest.mark.parametrize("method", ["dl", "hs", "hsk", "fe"])
def test_zero_variance_with_inverse_variance_weights_is_an_error(method):
    v = np.r_[0.0, V[1:]]
    with pytest.raises(ValueError, match="sample_var must be > 0"):
        RandomEffectsMeta(method=method).fit(XDF, Y, sample_var=v)


def test_robust_rejects_a_mix_of_zero_and_positive_variances():
    with pytest.raises(ValueError, match="sample_var must be all > 0"):
        RobustMeta().fit(None, Y, sample_var=np.r_[0.0, V[1:]])


@pytest.mark.parametrize("name", ["re", "ls", "ml", "rob"])
def test_exact_fit_with_zero_variances_warns_or_errors(name):
    """An exact fit with zero variances is degenerate: a clear error, or the limit
    with a warning that says so (the unbounded likelihood, or non-convergence)."""
    y = 0.3 + 0.2 * XCOL
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est = _make(name).fit(XDF, y, sample_var=np.zeros(K))
        except ValueError as exc:
            assert "zero" in str(exc).lower()
            return
    degenerate = [
        w
        for w in caught
        if issubclass(w.category, ConvergenceWarning)
        or "without bound" in str(w.message)
    ]
    assert degenerate, [str(w.message) for w in caught]
    np.testing.assert_allclose(est.coef_, [0.2], rtol=1e-6)


@pytest.mark.parametrize("x", [XCOL, np.arange(K, dtype=float)])
def test_score_after_degenerate_exact_fit_is_not_nan(x):
    # tau2_ = 0 and zero sample_var: a mix of exactly-zero residuals (+inf
    # log-density) and rounding-level ones (-inf) must not sum to NaN
    y = 0.3 + 0.2 * x
    X = x[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = RandomEffectsMeta().fit(X, y, sample_var=np.zeros(K))
        assert not np.isnan(est.score(X, y, sample_var=np.zeros(K)))


def test_ml_with_one_zero_variance_keeps_score_equal_to_loglik():
    """The ML likelihood is unbounded as tau2 -> 0 when a study has zero sampling
    variance: fit warns, reports tau2_ = 0 and loglik_ = +inf, and score on the
    training data agrees."""
    v = np.r_[0.0, V[1:]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = RandomEffectsMeta(method="ml").fit(XDF, Y, sample_var=v)
        assert est.score(XDF, Y, sample_var=v) == pytest.approx(est.loglik_)


# ----------------------------------------------------- number of studies
@pytest.mark.parametrize("name", ALL)
def test_one_study_is_an_error(name):
    with pytest.raises(ValueError, match="Too few studies"):
        _make(name).fit(None, Y[:1], sample_var=V[:1])


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("k", [2, 3])
def test_two_and_three_studies_fit(name, k):
    est = _fit_quiet(_make(name), None, Y[:k], sample_var=V[:k])
    _check_usable(est, None, Y[:k], V[:k])
    if hasattr(est, "predict_interval"):
        assert np.all(np.isfinite(est.predict_interval().to_numpy()))
    else:
        assert np.all(np.isfinite(est.conf_int()))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("p", [2, 3, 5])
def test_as_many_coefficients_as_studies_is_an_error(name, p):
    X = RNG.normal(size=(3, p))
    with pytest.raises(ValueError, match="Too few studies"):
        _make(name).fit(X, Y[:3], sample_var=V[:3])


@pytest.mark.parametrize("name", ALL)
def test_empty_arrays_are_an_error(name):
    with pytest.raises(ValueError, match="0 sample"):
        _make(name).fit(None, np.array([]), sample_var=np.array([]))
    with pytest.raises(ValueError, match="0 sample"):
        _make(name).fit(np.empty((0, 1)), np.array([]), sample_var=np.array([]))


@pytest.mark.parametrize("name", ALL)
def test_empty_new_data_in_predict_is_an_error(name):
    est = _fit_quiet(_make(name), XDF, Y, sample_var=V)
    with pytest.raises(ValueError, match="0 sample"):
        est.predict(XDF.iloc[:0])


# ------------------------------------------------------ design problems
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(
    "X",
    [
        np.column_stack([XCOL, 2 * XCOL]),
        np.column_stack([XCOL, XCOL + 1e-14]),
        np.ones((K, 1)),
        np.zeros((K, 1)),
        np.column_stack([XCOL, np.full(K, 3.0)]),
    ],
    ids=["collinear", "near-collinear", "constant", "zeros", "constant-2nd"],
)
def test_collinear_or_constant_moderators_are_an_error(name, X):
    with pytest.raises(ValueError, match="rank-deficient"):
        _make(name).fit(X, Y, sample_var=V)


@pytest.mark.parametrize(
    "Z, match",
    [
        (np.ones((K, 1)), "constant column"),
        (np.column_stack([XCOL, 3 * XCOL]), "rank-deficient"),
        (np.ones((K, 12)), "Too few studies for the scale model|constant column"),
    ],
)
def test_location_scale_bad_scale_design(Z, match):
    with pytest.raises(ValueError, match=match):
        LocationScaleMeta().fit(XDF, Y, sample_var=V, Z=Z)


@pytest.mark.parametrize("name", ALL)
def test_duplicated_rows_are_a_valid_fit(name):
    X = pd.concat([XDF, XDF], ignore_index=True)
    y, v = np.r_[Y, Y], np.r_[V, V]
    est = _fit_quiet(_make(name), X, y, sample_var=v)
    _check_usable(est, X, y, v)


def test_duplicated_rows_identity_link_boundary_reports_finite_se():
    """Duplicated rows give a heterogeneity estimate of 0 on the identity link;
    the scale coefficient sits on its constraint and its SE is undefined."""
    X = pd.concat([XDF, XDF], ignore_index=True)
    y, v = np.r_[Y, Y], np.r_[V, V]
    est = LocationScaleMeta(link="identity").fit(X, y, sample_var=v)
    assert np.all(est.tau2_ >= 0)
    loc = est.summary().to_frame().loc["location"]
    assert np.all(np.isfinite(loc.to_numpy(dtype=float)))


@pytest.mark.parametrize("name", ALL)
def test_constant_y(name):
    y = np.full(K, 0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est = _make(name).fit(XDF, y, sample_var=V)
        except ValueError as exc:
            pytest.fail(f"constant y with positive variances is valid data: {exc}")
    assert est.intercept_ == pytest.approx(0.5, abs=1e-8)
    assert est.coef_ == pytest.approx([0.0], abs=1e-8)
    if name == "re":
        assert est.tau2_ == 0.0
    del caught


def test_knapp_hartung_with_constant_y_is_not_significant():
    # s^2 = 0: the adjusted covariance is 0 and the tests are undefined, which
    # must be said (a warning) and never read as significance
    with pytest.warns(UserWarning, match="fitted exactly"):
        est = RandomEffectsMeta(inference="knapp-hartung").fit(
            XDF, np.full(K, 0.5), sample_var=V
        )
    assert not est.qm_pvalue_ < 0.05


# ------------------------------------------------------------ groups
def test_multilevel_single_group_level_is_an_error():
    groups = np.column_stack([np.zeros(K), np.arange(K)])
    with pytest.raises(ValueError, match="single group"):
        MultilevelMeta().fit(None, Y, sample_var=V, groups=groups)


def test_multilevel_with_one_study_per_group_at_both_levels_fits():
    groups = np.column_stack([np.arange(K), np.arange(K)])
    est = _fit_quiet(MultilevelMeta(), None, Y, sample_var=V, groups=groups)
    # the two levels are not separately identified: only their sum is
    re = RandomEffectsMeta().fit(None, Y, sample_var=V)
    assert est.sigma2_.sum() == pytest.approx(re.tau2_, rel=1e-4, abs=1e-6)
    assert est.loglik_ == pytest.approx(re.loglik_, rel=1e-6)


def test_cluster_robust_with_too_few_clusters_is_an_error():
    with pytest.raises(ValueError, match="cluster"):
        RandomEffectsMeta().fit(XDF, Y, sample_var=V, groups=np.zeros(K))


@pytest.mark.parametrize(
    "labels",
    [
        np.repeat(["a", "b", "c", "d", "e"], 2),
        np.repeat([1.5, 2.5, 3.5, 4.5, 5.5], 2),
        pd.Categorical(np.repeat(list("vwxyz"), 2)),
        np.repeat([("t", 1), ("t", 2), ("u", 1), ("u", 2), ("w", 0)], 2).reshape(-1, 2)[
            :, 0
        ],
        np.repeat([True, False], 5),
    ],
    ids=["str", "float", "category", "object", "bool"],
)
def test_non_numeric_group_labels(labels):
    est = _fit_quiet(MultilevelMeta(), None, Y, sample_var=V, groups=labels)
    codes = pd.factorize(np.asarray(labels))[0]
    ref = _fit_quiet(MultilevelMeta(), None, Y, sample_var=V, groups=codes)
    assert est.loglik_ == pytest.approx(ref.loglik_, rel=1e-9)
    X0 = np.empty((K, 0))
    assert est.score(X0, Y, sample_var=V, groups=labels) == pytest.approx(
        ref.score(X0, Y, sample_var=V, groups=codes), rel=1e-9
    )


# ------------------------------------------------------------ dtypes
_DTYPE_CASES = {
    "Int64": pd.array(np.arange(K) % 3, dtype="Int64"),
    "category-int": pd.Categorical(np.arange(K) % 3),
    "object-int": (np.arange(K) % 3).astype(object),
    "bool": np.arange(K) % 3 == 0,
    "boolean": pd.array(np.arange(K) % 3 == 0, dtype="boolean"),
    "float32": (np.arange(K) % 3).astype(np.float32),
    "uint8": (np.arange(K) % 3).astype(np.uint8),
}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", list(_DTYPE_CASES))
def test_dataframe_dtypes_equal_float(name, dtype):
    col = _DTYPE_CASES[dtype]
    X = pd.DataFrame({"m": col})
    ref_X = pd.DataFrame({"m": np.asarray(pd.Series(col).astype(float))})
    est = _fit_quiet(_make(name), X, Y, sample_var=V)
    ref = _fit_quiet(_make(name), ref_X, Y, sample_var=V)
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-12)
    assert list(est.feature_names_in_) == ["m"]
    np.testing.assert_allclose(est.predict(X), ref.predict(ref_X), rtol=1e-12)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(
    "col",
    [
        pd.array([None, *(np.arange(K - 1) % 3)], dtype="Int64"),
        pd.array([None, *([True, False] * 4), True], dtype="boolean"),
        pd.array([None, *np.arange(K - 1, dtype=float)], dtype="Float64"),
    ],
    ids=["Int64-NA", "boolean-NA", "Float64-NA"],
)
def test_nullable_dtypes_with_missing_values_are_an_error(name, col):
    with pytest.raises(ValueError, match="NaN"):
        _make(name).fit(pd.DataFrame({"m": col}), Y, sample_var=V)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(
    "col",
    [
        np.array(list("abcab" * 2), dtype=object),
        pd.Categorical(list("abcab" * 2)),
    ],
    ids=["object-str", "category-str"],
)
def test_text_moderators_are_an_error(name, col):
    with pytest.raises(ValueError, match="could not convert string to float"):
        _make(name).fit(pd.DataFrame({"m": col}), Y, sample_var=V)


@pytest.mark.parametrize("name", ALL)
def test_text_effect_sizes_are_a_value_error(name):
    with pytest.raises(ValueError):
        _make(name).fit(None, np.array(list("abcdefghij")), sample_var=V)


@pytest.mark.parametrize("name", ALL)
def test_series_with_nullable_y_and_v(name):
    y = pd.Series(pd.array(Y, dtype="Float64"))
    v = pd.Series(pd.array(V, dtype="Float64"))
    est = _fit_quiet(_make(name), XDF, y, sample_var=v)
    ref = _fit_quiet(_make(name), XDF, Y, sample_var=V)
    assert est.intercept_ == pytest.approx(ref.intercept_, rel=1e-12)


# ------------------------------------------------------- confidence levels
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.1, np.nan])
def test_bad_confidence_level_is_an_error(name, level):
    est = _fit_quiet(_make(name), XDF, Y, sample_var=V)
    with pytest.raises(ValueError, match="confidence_level"):
        est.summary(level)
    if hasattr(est, "predict_interval"):
        with pytest.raises(ValueError, match="confidence_level"):
            est.predict_interval(XDF, confidence_level=level)


def test_robust_has_predict_interval():
    est = RobustMeta().fit(None, Y, sample_var=V)
    frame = est.predict_interval()
    assert list(frame.columns) == [
        "mean",
        "se",
        "ci_lower",
        "ci_upper",
        "pi_lower",
        "pi_upper",
    ]


# ------------------------------------------------------ optimizer bounds
@pytest.mark.parametrize(
    "est, kw",
    [
        (RandomEffectsMeta(method="reml", max_iter=1), {}),
        (RandomEffectsMeta(method="pm", max_iter=1), {}),
        (LocationScaleMeta(max_iter=1), {"Z": XCOL[:, None]}),
        (MultilevelMeta(max_iter=1), {"groups": np.repeat(np.arange(5), 2)}),
    ],
    ids=["re-reml", "re-pm", "ls", "ml"],
)
def test_iteration_limits_are_respected_and_warned(est, kw):
    y = Y + np.linspace(-1, 1, K)  # heterogeneous, so the start is not optimal
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(XDF, y, sample_var=V, **kw)
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    assert warned == (not est.converged_)
    assert est.n_iter_ <= max(1, est.max_iter) * (getattr(est, "n_starts", 1) or 8)
    assert np.isfinite(est.loglik_)


def test_location_scale_subgroup_with_zero_heterogeneity_warns():
    from skmeta import InfiniteScaleWarning

    z = np.r_[np.zeros(5), np.ones(5)]
    y = np.r_[np.full(5, 0.3), Y[5:] * 3]
    with pytest.warns(InfiniteScaleWarning, match="drift"):
        est = LocationScaleMeta().fit(None, y, sample_var=V, Z=z[:, None])
    assert est.tau2_[:5].max() < 1e-6
    assert np.isfinite(est.loglik_)
    bounded = LocationScaleMeta(scale_bounds=(-10, 10)).fit(
        None, y, sample_var=V, Z=z[:, None]
    )
    assert np.all(np.abs(bounded._alpha) <= 10 + 1e-12)


# ------------------------------------------------------------- tools
def _ml(X, y=Y, v=V):
    return RandomEffectsMeta(method="ml").fit(X, y, sample_var=v)


def test_lr_test_bad_inputs():
    full, reduced = _ml(XDF), _ml(None)
    with pytest.raises(ValueError, match="not fitted"):
        lr_test(RandomEffectsMeta(), reduced)
    with pytest.raises(ValueError, match="more parameters"):
        lr_test(reduced, full)
    with pytest.raises(ValueError, match="more parameters"):
        lr_test(full, full)
    with pytest.raises(ValueError, match="different numbers of studies"):
        lr_test(full, _ml(None, Y[:-1], V[:-1]))
    with pytest.raises(ValueError, match="method='ml' or 'reml'"):
        lr_test(
            RandomEffectsMeta(method="dl").fit(XDF, Y, sample_var=V),
            RandomEffectsMeta(method="dl").fit(None, Y, sample_var=V),
        )
    with pytest.raises(ValueError, match="different methods"):
        lr_test(full, RandomEffectsMeta().fit(None, Y, sample_var=V))
    with pytest.raises((TypeError, ValueError)):
        lr_test("full", "reduced")
    res = lr_test(full, reduced)
    assert np.isfinite(res.statistic) and 0 <= res.p_value <= 1


def test_lr_test_boundary_statistic_is_never_negative():
    # tau^2 = 0 in both fits: the statistic is 0, not a tiny negative number
    y = np.full(K, 0.5) + 1e-9 * XCOL
    res = lr_test(_ml(XDF, y), _ml(None, y))
    assert res.statistic >= 0.0
    assert res.p_value_boundary <= res.p_value


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"part": "nope"}, "part must be"),
        ({"part": "scale"}, "needs Z"),
        ({"Z": XCOL[:, None]}, "does not take Z"),
        ({"n_permutations": 0}, "positive integer"),
        ({"n_permutations": -3, "exact": False}, "positive integer"),
        ({"sample_var": V[:-1]}, "sample_var has 9 entries"),
        ({"y": np.r_[np.nan, Y[1:]]}, "y contains NaN"),
        ({"X": np.ones((K, 1))}, "rank-deficient"),
        ({"X": None, "y": Y[:1], "sample_var": V[:1]}, "Too few studies"),
    ],
)
def test_permutation_test_bad_inputs(kwargs, match):
    args = {"X": XDF, "y": Y, "sample_var": V, **kwargs}
    X, y = args.pop("X"), args.pop("y")
    with pytest.raises(ValueError, match=match):
        permutation_test(RandomEffectsMeta(), X, y, **args)


def test_permutation_test_refuses_an_astronomic_exact_enumeration():
    with pytest.raises(ValueError, match="exact=False"):
        permutation_test(
            RandomEffectsMeta(), None, RNG.normal(size=40), sample_var=np.ones(40),
            exact=True,
        )  # fmt: skip


@pytest.mark.parametrize("name", ALL)
def test_permutation_test_small_k_and_every_estimator(name):
    res = permutation_test(
        _make(name), XDF, Y, sample_var=V, n_permutations=8, random_state=0
    )
    assert np.all((res.p_value > 0) & (res.p_value <= 1))
    k2 = permutation_test(_make(name), None, Y[:2], sample_var=V[:2])
    assert k2.exact and k2.n_permutations == 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"confidence_level": 1.5}, "confidence_level"),
        ({"confidence_level": 0}, "confidence_level"),
        ({"n_points": 0}, "n_points"),
        ({"grid": [np.nan, 0.1]}, "finite"),
        ({"grid": [-1.0, 0.1]}, ">= 0"),
        ({"y": np.r_[np.nan, Y[1:]]}, "y contains NaN"),
    ],
)
def test_profile_likelihood_bad_inputs(kwargs, match):
    args = {"y": Y, **kwargs}
    y = args.pop("y")
    with pytest.raises(ValueError, match=match):
        profile_likelihood(RandomEffectsMeta(), XDF, y, sample_var=V, **args)


@pytest.mark.parametrize("est", [MultilevelMeta(), RobustMeta()])
def test_profile_likelihood_unsupported_estimators(est):
    with pytest.raises(ValueError, match="supports"):
        profile_likelihood(est, XDF, Y, sample_var=V)


def test_profile_likelihood_bad_parameter():
    with pytest.raises(ValueError, match="out of range"):
        profile_likelihood(
            LocationScaleMeta(), XDF, Y, sample_var=V, Z=XDF, parameter=7
        )
    with pytest.raises(ValueError, match="not in"):
        profile_likelihood(
            LocationScaleMeta(), XDF, Y, sample_var=V, Z=XDF, parameter="nope"
        )


def test_profile_likelihood_flat_profile_gives_an_infinite_bound():
    """A scale coefficient whose profile stays above the cut-off (flat as
    tau^2 -> 0 on one side) has an unbounded interval on that side; this
    used to crash with brentq's 'function value is NaN'."""
    rng = np.random.default_rng(1)
    v = rng.uniform(0.01, 0.2, 8)
    x = rng.normal(size=8)
    y = 0.3 + 0.2 * x + rng.normal(0, np.sqrt(v + 0.1))
    res = profile_likelihood(
        LocationScaleMeta(), x[:, None], y, sample_var=v, Z=x[:, None],
        parameter=1, n_points=3,
    )  # fmt: skip
    assert res.ci_lower == -np.inf
    # the global maximum is the limit alpha_1 -> +inf (tau^2 concentrated on the
    # study with the largest x; an InfiniteScaleWarning): flat above as well
    assert res.ci_upper == np.inf
    assert np.all(np.isfinite(res.loglik))


def test_profile_likelihood_tau2_at_zero_has_zero_lower_bound():
    res = profile_likelihood(
        RandomEffectsMeta(), None, np.full(K, 0.3), sample_var=V, n_points=4
    )
    assert res.estimate == 0.0 and res.ci_lower == 0.0
    assert np.isfinite(res.ci_upper) and res.ci_upper > 0


# ------------------------------------------------------------ effect sizes
_ES_BASE = {
    "RR": {"ai": [5, 3], "bi": [10, 12], "ci": [4, 6], "di": [11, 9]},
    "OR": {"ai": [5, 3], "bi": [10, 12], "ci": [4, 6], "di": [11, 9]},
    "RD": {"ai": [5, 3], "bi": [10, 12], "ci": [4, 6], "di": [11, 9]},
    "AS": {"ai": [5, 3], "bi": [10, 12], "ci": [4, 6], "di": [11, 9]},
    "MD": {
        "m1i": [1.0, 2.0], "sd1i": [1.0, 1.5], "n1i": [10, 12],
        "m2i": [0.5, 1.0], "sd2i": [1.2, 1.1], "n2i": [11, 9],
    },
    "SMD": {
        "m1i": [1.0, 2.0], "sd1i": [1.0, 1.5], "n1i": [10, 12],
        "m2i": [0.5, 1.0], "sd2i": [1.2, 1.1], "n2i": [11, 9],
    },
    "COR": {"ri": [0.3, -0.2], "ni": [30, 40]},
    "ZCOR": {"ri": [0.3, -0.2], "ni": [30, 40]},
    "PR": {"xi": [3, 7], "ni": [20, 25]},
    "PLN": {"xi": [3, 7], "ni": [20, 25]},
    "PLO": {"xi": [3, 7], "ni": [20, 25]},
    "PAS": {"xi": [3, 7], "ni": [20, 25]},
    "PFT": {"xi": [3, 7], "ni": [20, 25]},
    "IRR": {"x1i": [3, 7], "t1i": [100.0, 120.0], "x2i": [5, 4], "t2i": [90.0, 110.0]},
}  # fmt: skip


@pytest.mark.parametrize("measure", list(_ES_BASE))
def test_effect_sizes_bad_inputs(measure):
    base = _ES_BASE[measure]
    first = next(iter(base))
    ok = effect_sizes.escalc(measure, **base)
    assert np.all(np.isfinite(ok.yi)) and np.all(np.isfinite(ok.vi))
    assert np.all(ok.vi > 0)
    # infinity, text, 2-D and unequal lengths are clear errors
    for bad, match in [
        ([np.inf, 1.0], "finite"),
        (["a", "b"], "numeric"),
        ([[1.0, 2.0]], "1-D"),
        ([1.0, 2.0, 3.0], "same length"),
    ]:
        with pytest.raises(ValueError, match=match):
            effect_sizes.escalc(measure, **{**base, first: bad})
    # NaN marks a missing value: that study's yi and vi are NaN, the others kept
    res = effect_sizes.escalc(measure, **{**base, first: [np.nan, base[first][1]]})
    assert np.isnan(res.yi[0]) and np.isnan(res.vi[0])
    assert res.yi[1] == pytest.approx(ok.yi[1]) and res.vi[1] == pytest.approx(ok.vi[1])
    # nullable / pandas inputs equal plain floats
    nullable = pd.array([None, *np.asarray(base[first][1:], float)], dtype="Float64")
    res = effect_sizes.escalc(measure, **{**base, first: nullable})
    assert np.isnan(res.yi[0]) and res.yi[1] == pytest.approx(ok.yi[1])
    # empty input gives empty output
    empty = effect_sizes.escalc(measure, **{k: [] for k in base})
    assert empty.yi.shape == (0,) and empty.vi.shape == (0,)


@pytest.mark.parametrize(
    "func, kwargs, match",
    [
        (effect_sizes.log_risk_ratio, {"ai": [-1], "bi": [2], "ci": [1], "di": [2]},
         "non-negative"),
        (effect_sizes.log_risk_ratio, {"ai": [0], "bi": [0], "ci": [1], "di": [2]},
         "group 1 size"),
        (effect_sizes.log_odds_ratio, {"ai": [1], "bi": [2], "ci": [1], "di": [2],
                                       "correction": np.nan}, "correction"),
        (effect_sizes.log_odds_ratio, {"ai": [1], "bi": [2], "ci": [1], "di": [2],
                                       "add_to": "x"}, "add_to"),
        (effect_sizes.mean_difference, {"m1i": [1], "sd1i": [-1], "n1i": [5],
                                        "m2i": [0], "sd2i": [1], "n2i": [5]},
         "non-negative"),
        (effect_sizes.mean_difference, {"m1i": [1], "sd1i": [1], "n1i": [0],
                                        "m2i": [0], "sd2i": [1], "n2i": [5]},
         "positive"),
        (effect_sizes.standardized_mean_difference,
         {"m1i": [1], "sd1i": [1], "n1i": [1], "m2i": [0], "sd2i": [1], "n2i": [2]},
         "at least 4"),
        (effect_sizes.correlation, {"ri": [1.5], "ni": [10]}, r"\[-1, 1\]"),
        (effect_sizes.fisher_z, {"ri": [0.5], "ni": [3]}, "at least 4"),
        (effect_sizes.proportion, {"xi": [5], "ni": [3]}, "exceed"),
        (effect_sizes.proportion, {"xi": [0], "ni": [0]}, "positive"),
        (effect_sizes.log_incidence_rate_ratio,
         {"x1i": [1], "t1i": [0], "x2i": [1], "t2i": [10]}, "positive"),
    ],
)  # fmt: skip
def test_effect_sizes_invalid_values(func, kwargs, match):
    with pytest.raises(ValueError, match=match):
        func(**kwargs)


def test_effect_sizes_undefined_results_are_nan_not_inf():
    """Where the effect size is undefined metafor gives NA: we give NaN (documented)."""
    calls = [
        lambda: effect_sizes.fisher_z([1.0, -1.0], [10, 10]),
        lambda: effect_sizes.log_odds_ratio([0], [10], [1], [10], add_to="none"),
        lambda: effect_sizes.logit_proportion([10], [10], add_to="none"),
        lambda: effect_sizes.standardized_mean_difference(
            m1i=[1], sd1i=[0], n1i=[10], m2i=[0], sd2i=[0], n2i=[10]
        ),
    ]
    for call in calls:
        with pytest.warns(RuntimeWarning, match="undefined"):
            res = call()
        assert np.all(np.isnan(res.yi)) and np.all(np.isnan(res.vi))


def test_effect_sizes_extreme_counts_stay_finite():
    res = effect_sizes.log_risk_ratio([1e15], [1e15], [1e15], [1e15])
    assert res.yi[0] == 0.0 and 0 < res.vi[0] < 1e-14
    res = effect_sizes.fisher_z([0.5], [1e18])
    assert np.isfinite(res.vi[0]) and res.vi[0] > 0


def test_escalc_bad_measure_and_arguments():
    with pytest.raises(ValueError, match="measure must be one of"):
        effect_sizes.escalc("XX", ai=[1])
    with pytest.raises(ValueError, match="measure must be one of"):
        effect_sizes.escalc(None)
    with pytest.raises(ValueError, match="invalid arguments"):
        effect_sizes.escalc("RR", foo=[1])


# ------------------------------------------------------------------- CLI
def _csv(tmp_path, frame, name="data.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def _frame():
    return pd.DataFrame(
        {
            "yi": Y[:8],
            "vi": V[:8],
            "x": XCOL[:8],
            "g": list("aabbccdd"),
            "s": ["p", "q"] * 4,
            "c": 1.0,
        }
    )


def _run(argv, capsys):
    code = cli_main([*argv, "--no-plot"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--mods", "x"],
        ["--mods", "s"],
        ["--scale", "x"],
        ["--groups", "g"],
        ["--model", "robust"],
        ["--sei", "vi"],
        ["--model", "location-scale", "--scale", "s"],
    ],
)
def test_cli_valid_csv(tmp_path, capsys, args):
    code, out, err = _run([_csv(tmp_path, _frame()), *args], capsys)
    assert code == 0, err
    if "robust" in args:
        # the robust table's se and statistic are NaN by design (not Wald form):
        # only its "intercept" row may show them
        out = "\n".join(
            line for line in out.splitlines() if not line.startswith("intercept")
        )
    assert "nan" not in out.lower()


@pytest.mark.parametrize(
    "edit, args, match",
    [
        (lambda f: f.assign(yi=[np.nan, *Y[1:8]]), [], "missing or non-numeric"),
        (lambda f: f.assign(yi=["abc", *Y[1:8]]), [], "missing or non-numeric"),
        (lambda f: f.assign(vi=["inf", *V[1:8]]), [], "NaN or infinity"),
        (lambda f: f.assign(vi=[-1, *V[1:8]]), [], "negative"),
        (lambda f: f.iloc[:1], [], "Too few studies"),
        (lambda f: f, ["--mods", "c"], "rank-deficient"),
        (lambda f: f, ["--scale", "c"], "constant column"),
        (lambda f: f.assign(x=[np.inf, *XCOL[1:8]]), ["--mods", "x"], "infinity"),
        (lambda f: f.assign(g=[np.nan, *"abbccdd"]), ["--groups", "g"], "missing"),
        (lambda f: f, ["--mods", "nope"], "not in the CSV"),
        (lambda f: f, ["--model", "robust", "--method", "reml"], "not available"),
        (lambda f: f, ["--inference", "hksj"], "inference"),
        (lambda f: f, ["--model", "multilevel"], "needs --groups"),
        (lambda f: f, ["--groups", "g", "--model", "location-scale"], "--groups"),
    ],
)
def test_cli_bad_csv_is_a_clear_error(tmp_path, capsys, edit, args, match):
    code, _, err = _run([_csv(tmp_path, edit(_frame())), *args], capsys)
    assert code == 2
    assert "error:" in err and match in err
    assert "Traceback" not in err


def test_cli_empty_and_unreadable_files(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, _, err = _run([str(empty)], capsys)
    assert code == 2 and "cannot read" in err
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\xff\xfe\x00garbage\x00\x01")
    code, _, err = _run([str(garbage)], capsys)
    assert code == 2 and "cannot read" in err
    code, _, err = _run([str(tmp_path / "missing.csv")], capsys)
    assert code == 2 and "not found" in err
    header_only = _csv(tmp_path, _frame().iloc[:0], "header.csv")
    code, _, err = _run([header_only], capsys)
    assert code == 2 and "error:" in err


def test_cli_bad_level_exits_with_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main([_csv(tmp_path, _frame()), "--level", "2", "--no-plot"])
    assert exc.value.code == 2
    assert "--level must be in (0, 1)" in capsys.readouterr().err


def test_cli_module_entry_point_runs(tmp_path):
    import subprocess

    path = _csv(tmp_path, _frame())
    done = subprocess.run(
        [sys.executable, "-m", "skmeta", path, "--mods", "x", "--no-plot"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "intercept" in done.stdout
