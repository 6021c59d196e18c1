"""scikit-learn's generic estimator checks for RandomEffectsMeta."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmeta import RandomEffectsMeta

# Several hyperparameter settings: likelihood, moment and fixed-tau2 paths, and the
# t-based inference modes. DL/HS/FE need sample_var > 0 and the generic checks pass
# none (zeros), so they are covered by the reference tests instead.
INSTANCES = [
    RandomEffectsMeta(),
    RandomEffectsMeta(method="ml", inference="knapp-hartung"),
    RandomEffectsMeta(method="he", inference="t"),
    RandomEffectsMeta(method="sj", fit_intercept=False),
    RandomEffectsMeta(method="pm", inference="knapp-hartung-adhoc"),
    RandomEffectsMeta(tau2=0.5),
]


# Justified deviations from scikit-learn's generic expectations.
EXPECTED_FAILED = {
    # SPEC 2.2: X with zero columns means an intercept-only model (a plain
    # meta-analysis), so it is valid input rather than an error.
    "check_estimators_empty_data_messages": "zero columns = intercept-only model",
    # sample_weight are metafor's user weights of the fixed effects (rma(weights=)),
    # not frequency weights: weight 2 is not a duplicated study (tau^2, Q and the
    # sandwich covariance do not change as they would with a repeated row).
    "check_sample_weight_equivalence_on_dense_data": "user weights, not frequencies",
    # The check's data (make_classification, with redundant features) give a
    # rank-deficient design, which is reported first; all-zero weights are a
    # ValueError naming sample_weight (test_random_effects.py).
    "check_all_zero_sample_weights_error": "rank-deficient design reported first",
    # 2-D y fits one meta-analysis per column (multi_output tag); the check's data
    # have 11 samples for 10 features + intercept: too few studies for the model.
    "check_regressor_multioutput": "11 studies for 11 fixed-effect parameters",
}


def _expected_failed(estimator):
    if estimator.fit_intercept:
        return EXPECTED_FAILED
    return {
        k: v for k, v in EXPECTED_FAILED.items() if k != "check_regressor_multioutput"
    }


# scikit-learn's checks fit without sample_var on purpose; the warning that
# says so is tested elsewhere and would only bury real warnings here
@pytest.mark.filterwarnings("ignore::skmeta.exceptions.SampleVarWarning")
@parametrize_with_checks(INSTANCES, expected_failed_checks=_expected_failed)
def test_sklearn_compatible(estimator, check):
    check(estimator)
