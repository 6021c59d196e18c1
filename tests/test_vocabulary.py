"""One vocabulary across the estimators: the same concept has the same name,
type and meaning in every estimator that has it.

The table checked here: the heterogeneity estimator is ``method``; small-sample
inference is ``inference`` with the same values; cluster-robust covariances are
``cluster_robust`` in ``{None, "cr0", "cr1", "cr2"}`` with ``robust_dof_``;
``q_``/``q_pvalue_`` test residual heterogeneity and ``qm_``/``qm_pvalue_`` the
moderators; ``i2_``/``h2_`` are floats for one variance component and Series
(by level, plus ``"total"``) for several; BLUPs are DataFrames with columns
``estimate, se``; every interval method returns a DataFrame with columns
``estimate, ci_lower, ci_upper``; every estimator takes ``missing``.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from skmeta import (
    LocationScaleMeta,
    MultilevelMeta,
    RandomEffectsMeta,
    RobustMeta,
    SelectionModelMeta,
)
from skmeta._registry import ESTIMATORS, estimator_class
from skmeta.datasets import load_school_calendar

INTERVAL_COLUMNS = ["estimate", "ci_lower", "ci_upper"]
BLUP_COLUMNS = ["estimate", "se"]
INFERENCE = {"z", "t", "knapp-hartung", "knapp-hartung-adhoc"}


@pytest.fixture(scope="module")
def data():
    frame = load_school_calendar()
    X = (frame[["year"]] - 1990).rename(columns={"year": "year_c"})
    return X, frame["yi"].to_numpy(), frame["vi"].to_numpy(), frame


def _fit(est, data, **extra):
    X, y, v, frame = data
    kwargs = {
        LocationScaleMeta: {"Z": X},
        MultilevelMeta: {"groups": frame[["district", "school"]]},
    }.get(type(est), {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y, sample_var=v, **kwargs, **extra)


def _options(cls, name):
    """The string values a hyperparameter accepts (from its constraints)."""
    values = set()
    for constraint in cls._parameter_constraints.get(name, []):
        options = getattr(constraint, "options", None)
        if options is not None:
            values |= set(options)
        elif constraint is None:
            values.add(None)
    return values


CLASSES = [estimator_class(name) for name in ESTIMATORS]


def test_every_registered_estimator_is_checked_here():
    assert set(CLASSES) == {
        RandomEffectsMeta,
        LocationScaleMeta,
        MultilevelMeta,
        RobustMeta,
        SelectionModelMeta,
    }


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_missing_policy_is_a_hyperparameter_of_every_estimator(cls):
    assert cls().get_params()["missing"] == "raise"
    assert _options(cls, "missing") == {"raise", "drop"}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_names_of_the_heterogeneity_estimator_and_inference(cls):
    params = cls().get_params()
    # no estimator uses another name for the tau^2 estimator or its inference
    assert not {"tau2_estimator", "test", "alpha"} & set(params)
    if "inference" in params:
        assert _options(cls, "inference") <= INFERENCE
    if "cluster_robust" in params:
        assert _options(cls, "cluster_robust") == {None, "cr0", "cr1", "cr2"}


def test_method_values():
    assert {"reml", "ml", "dl"} <= _options(RandomEffectsMeta, "method")
    assert _options(LocationScaleMeta, "method") == {"reml", "ml"}
    assert _options(MultilevelMeta, "method") == {"reml", "ml"}
    assert {"dl", "he", "sj"} <= _options(RobustMeta, "method")
    assert _options(RobustMeta, "inference") == {"z", "knapp-hartung"}


def test_cluster_robust_defaults():
    assert RandomEffectsMeta().cluster_robust == "cr1"  # applied when groups given
    assert MultilevelMeta().cluster_robust is None  # model-based


@pytest.mark.parametrize("cls", [RandomEffectsMeta, MultilevelMeta, RobustMeta])
def test_residual_heterogeneity_test(cls, data):
    est = _fit(cls(), data)
    assert isinstance(est.q_, float) and isinstance(est.q_pvalue_, float)
    assert 0 <= est.q_pvalue_ <= 1


@pytest.mark.parametrize(
    "cls",
    [RandomEffectsMeta, LocationScaleMeta, MultilevelMeta, SelectionModelMeta],
)
def test_omnibus_moderator_test(cls, data):
    est = _fit(cls(), data)
    assert isinstance(est.qm_, float) and isinstance(est.qm_pvalue_, float)
    assert 0 <= est.qm_pvalue_ <= 1
    intercept_only = _fit(cls(), (None, *data[1:]))
    assert np.isnan(intercept_only.qm_)


def test_heterogeneity_shares_one_component_is_a_float(data):
    est = _fit(RandomEffectsMeta(), data)
    assert isinstance(est.i2_, float) and isinstance(est.h2_, float)


def test_heterogeneity_shares_several_components_are_series(data):
    est = _fit(MultilevelMeta(), data)
    for share in (est.i2_, est.h2_):
        assert isinstance(share, pd.Series)
        assert {"district", "school", "total"} <= set(share.index)


def test_number_of_groups(data):
    est = _fit(RandomEffectsMeta(), data)
    assert est.n_groups_ is None and est.robust_dof_ is None
    est = RandomEffectsMeta().fit(
        data[0], data[1], sample_var=data[2], groups=data[3]["district"]
    )
    assert isinstance(est.n_groups_, int) and est.n_groups_ == 11
    assert est.robust_dof_.shape == (2,)
    ml = _fit(MultilevelMeta(), data)
    assert isinstance(ml.n_groups_, pd.Series)
    assert ml.n_groups_.to_dict() == {"district": 11, "school": 56}
    assert ml.robust_dof_ is None


def test_blups_are_frames_of_estimate_and_se(data):
    est = _fit(RandomEffectsMeta(), data)
    assert isinstance(est.random_effects_, pd.DataFrame)
    assert list(est.random_effects_.columns) == BLUP_COLUMNS
    np.testing.assert_array_equal(
        est.random_effects_["se"].to_numpy(), est.random_effects_se_
    )
    ml = _fit(MultilevelMeta(), data)
    assert set(ml.random_effects_) == {"district", "school"}
    for frame in ml.random_effects_.values():
        assert isinstance(frame, pd.DataFrame)
        assert list(frame.columns) == BLUP_COLUMNS


def _check_interval_frame(frame, index):
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == INTERVAL_COLUMNS
    assert list(frame.index)[: len(index)] == index
    values = frame.to_numpy(dtype=float)
    assert np.all(values[:, 1] <= values[:, 0] + 1e-12)
    assert np.all(values[:, 0] <= values[:, 2] + 1e-12)


def test_every_interval_method_returns_estimate_and_bounds(data):
    re = _fit(RandomEffectsMeta(), data)
    _check_interval_frame(re.tau2_confint(), ["tau2", "tau", "i2", "h2"])
    ml = _fit(MultilevelMeta(), data)
    _check_interval_frame(ml.sigma2_confint("district"), ["sigma2", "sigma"])
    rob = _fit(RobustMeta(), (None, *data[1:]))
    _check_interval_frame(rob.conf_int(), ["intercept"])
    _check_interval_frame(rob.tau2_sampling_interval(), ["tau2"])


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_summary_frame_and_predict_interval_columns(cls, data):
    est = _fit(cls(), data)
    frame = est.summary().to_frame()
    assert list(frame.columns) == [
        "estimate", "se", "statistic", "p_value", "ci_lower", "ci_upper"
    ]  # fmt: skip
    new = data[0].iloc[:2]
    kwargs = {"Z": new} if cls is LocationScaleMeta else {}
    interval = est.predict_interval(new, **kwargs)
    assert list(interval.columns) == [
        "mean", "se", "ci_lower", "ci_upper", "pi_lower", "pi_upper"
    ]  # fmt: skip
