"""SPEC section 2 (common contract) checked across the four estimators."""

import warnings

import numpy as np
import pytest
import sklearn
from _checks import assert_summary_printout

import skmeta
from skmeta import (
    LocationScaleMeta,
    MultilevelMeta,
    RandomEffectsMeta,
    RobustMeta,
    SelectionModelMeta,
)
from skmeta.datasets import load_school_calendar

COMMON = [
    "n_features_in_",
    "feature_names_in_",
    "intercept_",
    "coef_",
    "cov_params_",
    "dof_",
    "loglik_",
    "aic_",
    "bic_",
    "aicc_",
    "n_params_",
    "n_iter_",
    "converged_",
]
COLUMNS = ["estimate", "se", "statistic", "p_value", "ci_lower", "ci_upper"]
SPECIFIC = {
    RandomEffectsMeta: [
        "tau2_", "tau2_se_", "q_", "q_pvalue_", "qm_", "qm_pvalue_", "i2_", "h2_",
        "r2_", "random_effects_", "random_effects_se_",
    ],
    LocationScaleMeta: [
        "scale_intercept_", "scale_coef_", "scale_cov_params_", "tau2_", "hat_",
        "study_tau2_",
    ],
    MultilevelMeta: [
        "sigma2_", "re_covariances_", "n_groups_", "q_", "q_pvalue_", "i2_",
        "random_effects_",
    ],
    RobustMeta: ["tau2_", "tau2_m_"],
    SelectionModelMeta: [
        "tau2_", "tau2_se_", "delta_", "delta_se_", "lr_statistic_", "lr_pvalue_",
        "qm_", "qm_pvalue_",
    ],
}  # fmt: skip
# SPEC 2.7: default metadata requests (True: requested; None: the user decides).
FIT_REQUESTS = {
    RandomEffectsMeta: {"sample_var": True, "groups": None, "sample_weight": None},
    LocationScaleMeta: {"sample_var": True, "Z": True, "sample_weight": None},
    # sample_cov (k x k) is fit-only: not requested, the user decides
    MultilevelMeta: {"sample_var": True, "groups": True, "Z": True, "sample_cov": None},
    RobustMeta: {"sample_var": True},
    SelectionModelMeta: {"sample_var": True},
}


@pytest.fixture(scope="module")
def data():
    frame = load_school_calendar()
    X = frame[["year"]] - 1990
    return X, frame["yi"].to_numpy(), frame["vi"].to_numpy(), frame


def _fit(cls, data):
    X, y, v, frame = data
    kwargs = {
        LocationScaleMeta: {"Z": X},
        MultilevelMeta: {"groups": frame[["district", "school"]]},
    }.get(cls, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls().fit(X, y, sample_var=v, **kwargs)


@pytest.mark.parametrize("cls", list(SPECIFIC))
def test_fitted_attributes_and_summary(cls, data):
    est = _fit(cls, data)
    for name in COMMON + SPECIFIC[cls]:
        assert hasattr(est, name), name
    assert list(est.feature_names_in_) == ["year"]
    assert est.coef_.shape == (1,)
    assert est.cov_params_.shape == (2, 2)
    frame = est.summary().to_frame()
    assert list(frame.columns) == COLUMNS
    index = frame.index.tolist()
    if cls is LocationScaleMeta:
        assert index[:2] == [("location", "intercept"), ("location", "year")]
        assert {part for part, _ in index} == {"location", "scale"}
    else:
        assert index == ["intercept", "year"]
    assert_summary_printout(est)
    new = data[0].iloc[:3]
    interval = (
        est.predict_interval(new, Z=new)
        if cls is LocationScaleMeta
        else est.predict_interval(new)
    )
    assert list(interval.columns) == [
        "mean", "se", "ci_lower", "ci_upper", "pi_lower", "pi_upper"
    ]  # fmt: skip
    np.testing.assert_allclose(interval["mean"], est.predict(data[0].iloc[:3]))


@pytest.mark.parametrize("cls", list(FIT_REQUESTS))
def test_default_metadata_requests(cls, data):
    with sklearn.config_context(enable_metadata_routing=True):
        routing = _fit(cls, data).get_metadata_routing()
        assert dict(routing.fit.requests) == FIT_REQUESTS[cls]
        score = dict(routing.score.requests)
        assert score.pop("sample_weight") is None
        expected = {
            k: v
            for k, v in FIT_REQUESTS[cls].items()
            if not (k in ("groups", "sample_weight") and v is None)
        }
        assert score == expected


@pytest.mark.parametrize("cls", list(SPECIFIC))
def test_confidence_level_is_the_name(cls, data):
    est = _fit(cls, data)
    narrow = est.summary(confidence_level=0.5).to_frame()
    wide = est.summary(confidence_level=0.99).to_frame()
    assert np.all(
        wide["ci_upper"] - wide["ci_lower"] > narrow["ci_upper"] - narrow["ci_lower"]
    )


def test_public_names():
    names = [
        "RandomEffectsMeta",
        "LocationScaleMeta",
        "MultilevelMeta",
        "RobustMeta",
        "SelectionModelMeta",
        "lr_test",
        "permutation_test",
        "profile_likelihood",
    ]
    for name in names:
        assert hasattr(skmeta, name)
