"""Regression tests for the shared input handling of the four estimators.

Each test failed before its fix: effect sizes holding None gave NaN estimates,
a forgotten ``sample_var`` silently fitted zero variances, ``score`` accepted
invalid ``sample_weight`` and did not cast ``y`` to float64, confidence levels
were validated differently (or not at all) by each method, rank-deficiency
errors did not name the columns, and there was no way to leave out studies with
missing values.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.model_selection import KFold, cross_validate

from skmeta import (
    LocationScaleMeta,
    MultilevelMeta,
    RandomEffectsMeta,
    RobustMeta,
)
from skmeta.exceptions import SampleVarWarning

RNG = np.random.default_rng(20261130)
K = 12
X1 = RNG.normal(size=K)
V = RNG.uniform(0.02, 0.2, K)
Y = 0.2 + 0.3 * X1 + RNG.normal(0, np.sqrt(V + 0.05))
XDF = pd.DataFrame({"x": X1})

ESTIMATORS = {
    "re": lambda **kw: RandomEffectsMeta(**kw),
    "re-dl": lambda **kw: RandomEffectsMeta(method="dl", **kw),
    "ls": lambda **kw: LocationScaleMeta(**kw),
    "ml": lambda **kw: MultilevelMeta(**kw),
    "rob": lambda **kw: RobustMeta(**kw),
}


def _quiet_fit(est, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y, **kw)


# ------------------------------------------------------------- y holding None
@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize(
    "make_y",
    [
        lambda y: [None, *y[1:]],
        lambda y: np.array([None, *y[1:]], dtype=object),
        lambda y: pd.Series([None, *y[1:]], dtype=object),
    ],
    ids=["list", "object-array", "object-series"],
)
def test_y_holding_none_is_an_error_naming_y(name, make_y):
    with pytest.raises(ValueError, match=r"^y contains None"):
        ESTIMATORS[name]().fit(XDF, make_y(Y), sample_var=V)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_y_in_low_and_extended_precision_gives_the_float64_fit(name):
    reference = _quiet_fit(ESTIMATORS[name](), XDF, Y, sample_var=V)
    for dtype in (np.float32, np.float16, np.longdouble):
        y = Y.astype(dtype)
        est = _quiet_fit(ESTIMATORS[name](), XDF, y, sample_var=V)
        # the same fit as on the float64 values of y: no drift, no crash
        exact = _quiet_fit(ESTIMATORS[name](), XDF, y.astype(np.float64), sample_var=V)
        assert est.intercept_ == exact.intercept_, dtype
        np.testing.assert_array_equal(est.coef_, exact.coef_)
    assert reference.intercept_ == pytest.approx(est.intercept_, abs=1e-2)


# --------------------------------------------------- forgotten sample_var
@pytest.mark.parametrize("name", ["re", "ls", "ml", "rob"])
def test_fit_without_sample_var_warns(name):
    with pytest.warns(SampleVarWarning, match="sample_var"):
        ESTIMATORS[name]().fit(XDF, Y)


@pytest.mark.parametrize("name", ["re", "ls", "ml"])
def test_explicit_zero_sample_var_does_not_warn(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SampleVarWarning)
        ESTIMATORS[name]().fit(XDF, Y, sample_var=0)
        ESTIMATORS[name]().fit(XDF, Y, sample_var=np.zeros(K))


def test_sample_var_warning_is_a_user_warning_that_can_be_filtered():
    assert issubclass(SampleVarWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", SampleVarWarning)
        RandomEffectsMeta(method="he").fit(XDF, Y)


def test_cross_validation_without_routed_sample_var_warns():
    """Under routing, a user who forgets params= fits zero variances: warned."""
    with sklearn.config_context(enable_metadata_routing=True):
        with pytest.warns(SampleVarWarning):
            cross_validate(RandomEffectsMeta(), XDF, Y, cv=KFold(3))
        with warnings.catch_warnings():
            warnings.simplefilter("error", SampleVarWarning)
            cross_validate(
                RandomEffectsMeta(), XDF, Y, cv=KFold(3), params={"sample_var": V}
            )


def test_score_without_sample_var_after_fit_with_it_warns():
    est = RandomEffectsMeta().fit(XDF, Y, sample_var=V)
    with pytest.warns(SampleVarWarning, match="score"):
        est.score(XDF, Y)


# ------------------------------------------------------------ score inputs
@pytest.mark.parametrize("name", ["re", "ls", "rob"])
@pytest.mark.parametrize(
    "weight, match",
    [
        (np.r_[np.nan, np.ones(K - 1)], "sample_weight contains NaN"),
        (np.r_[np.inf, np.ones(K - 1)], "sample_weight contains infinity"),
        (np.r_[-1.0, np.ones(K - 1)], "sample_weight must be >= 0"),
        (["a"] * K, "sample_weight must hold numbers"),
        (np.ones(K - 1), "sample_weight has 11 entries"),
    ],
)
def test_score_rejects_invalid_sample_weight(name, weight, match):
    est = _quiet_fit(ESTIMATORS[name](), XDF, Y, sample_var=V)
    with pytest.raises(ValueError, match=match):
        est.score(XDF, Y, sample_weight=weight, sample_var=V)


@pytest.mark.parametrize("name", ["re", "ls", "rob"])
def test_score_weights_are_per_study_log_densities(name):
    est = _quiet_fit(ESTIMATORS[name](), XDF, Y, sample_var=V)
    w = np.arange(K, dtype=float)
    per_study = [est.score(XDF.iloc[[i]], Y[[i]], sample_var=V[[i]]) for i in range(K)]
    assert est.score(XDF, Y, sample_weight=w, sample_var=V) == pytest.approx(
        float(w @ per_study), rel=1e-12
    )


@pytest.mark.parametrize("name", ["re-dl", "rob"])
def test_score_of_an_intercept_only_model_without_X(name):
    est = _quiet_fit(ESTIMATORS[name](), None, Y, sample_var=V)
    expected = est.score(np.empty((K, 0)), Y, sample_var=V)
    assert est.score(None, Y, sample_var=V) == expected


# --------------------------------------------------------- confidence level
BAD_LEVELS = ["0.95", None, 0, 1, 1.5, np.nan, True]


@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize("level", BAD_LEVELS, ids=repr)
def test_invalid_confidence_level_is_an_error_naming_it(name, level):
    est = _quiet_fit(ESTIMATORS[name](), XDF, Y, sample_var=V)
    with pytest.raises(ValueError, match="confidence_level"):
        est.summary(confidence_level=level)
    with pytest.raises(ValueError, match="confidence_level"):
        est.predict_interval(XDF, confidence_level=level)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_numpy_confidence_levels_are_accepted(name):
    est = _quiet_fit(ESTIMATORS[name](), XDF, Y, sample_var=V)
    reference = est.summary(confidence_level=0.9).to_frame()
    for level in (np.float32(0.9), np.array(0.9), np.float64(0.9)):
        frame = est.summary(confidence_level=level).to_frame()
        pd.testing.assert_frame_equal(frame, reference)


# ------------------------------------------------------------ design checks
def test_rank_deficiency_error_names_the_offending_columns():
    X = XDF.assign(double=2 * XDF["x"], const=1.0)
    with pytest.raises(ValueError, match=r"\['double', 'const'\]"):
        RandomEffectsMeta().fit(X, Y, sample_var=V)


# --------------------------------------------------------- missing="drop"
def _with_missing():
    X = XDF.copy()
    y, v = Y.copy(), V.copy()
    X.iloc[1, 0] = np.nan
    y[4] = np.nan
    v[7] = np.nan
    keep = np.ones(K, dtype=bool)
    keep[[1, 4, 7]] = False
    return X, y, v, keep


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_missing_drop_equals_the_fit_on_complete_rows(name):
    X, y, v, keep = _with_missing()
    dropped = ESTIMATORS[name](missing="drop").fit(X, y, sample_var=v)
    complete = ESTIMATORS[name]().fit(X[keep], y[keep], sample_var=v[keep])
    assert dropped.n_missing_ == 3
    assert dropped.intercept_ == complete.intercept_
    np.testing.assert_array_equal(dropped.coef_, complete.coef_)
    assert dropped.loglik_ == complete.loglik_
    assert "3 studies with missing values left out" in str(dropped.summary())


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_missing_raise_names_the_argument(name):
    X, y, v, _ = _with_missing()
    with pytest.raises(ValueError, match="y contains NaN"):
        ESTIMATORS[name]().fit(XDF, y, sample_var=V)
    with pytest.raises(ValueError, match="sample_var contains NaN"):
        ESTIMATORS[name]().fit(XDF, Y, sample_var=v)
    with pytest.raises(ValueError, match="NaN"):
        ESTIMATORS[name]().fit(X, Y, sample_var=V)


def test_missing_drop_predicts_nan_for_rows_with_nan():
    X, y, v, _ = _with_missing()
    est = RandomEffectsMeta(missing="drop").fit(X, y, sample_var=v)
    pred = est.predict(X)
    assert np.isnan(pred[1]) and np.all(np.isfinite(np.delete(pred, 1)))


def test_missing_drop_in_groups_and_Z():
    groups = np.repeat(np.arange(6), 2).astype(object)
    groups[3] = None
    Z = X1[:, None].copy()
    Z[5, 0] = np.nan
    keep = np.arange(K) != 3
    ml = MultilevelMeta(missing="drop").fit(XDF, Y, sample_var=V, groups=groups)
    ref = MultilevelMeta().fit(
        XDF[keep], Y[keep], sample_var=V[keep], groups=groups[keep]
    )
    assert ml.n_missing_ == 1 and ml.loglik_ == ref.loglik_
    keep = np.arange(K) != 5
    ls = LocationScaleMeta(missing="drop").fit(XDF, Y, sample_var=V, Z=Z)
    ref = LocationScaleMeta().fit(XDF[keep], Y[keep], sample_var=V[keep], Z=Z[keep])
    assert ls.n_missing_ == 1 and ls.loglik_ == ref.loglik_


def test_missing_drop_with_every_study_missing_is_an_error():
    with pytest.raises(ValueError, match="Every study has a missing value"):
        RandomEffectsMeta(missing="drop").fit(
            None, np.full(3, np.nan), sample_var=V[:3]
        )
