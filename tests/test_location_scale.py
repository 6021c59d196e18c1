"""Behaviour of LocationScaleMeta and its engine: derivatives, routing, bad input."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from scipy import integrate
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmeta import LocationScaleMeta
from skmeta._engine import _location_scale as ls
from skmeta._engine import _quadrature as quad


def simulated(k=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=k)
    z = rng.uniform(0, 3, size=k)
    g = (rng.uniform(size=k) < 0.5).astype(float)
    v = rng.uniform(0.01, 0.2, size=k)
    tau2 = np.exp(-2.5 + 0.6 * z + 0.5 * g)
    y = 0.2 + 0.5 * x + rng.normal(scale=np.sqrt(v + tau2))
    X = pd.DataFrame({"x": x})
    Z = pd.DataFrame({"z": z, "g": g})
    return X, y, v, Z


# --------------------------------------------------------------- sklearn checks
INSTANCES = [
    LocationScaleMeta(),
    LocationScaleMeta(method="ml"),
    LocationScaleMeta(link="identity", fit_intercept=False),
]
EXPECTED_FAILED = {
    # SPEC 2.2: X with zero columns means an intercept-only model (a plain
    # meta-analysis), so it is valid input rather than an error.
    "check_estimators_empty_data_messages": "zero columns = intercept-only model",
    # y is an exact linear function of X and sample_var=None (zeros): tau_i^2 -> 0
    # sends the likelihood to +inf (no estimate exists), and fit raises a clear
    # ValueError.
    "check_regressors_no_decision_function": "exact fit without sampling error",
    # The same for these checks' data (y an exact linear function of [1, X]; not
    # of X alone, so they pass without a location intercept):
    "check_sample_weights_shape": "exact fit without sampling error",
    "check_sample_weights_not_overwritten": "exact fit without sampling error",
    # sample_weight are metafor's user weights of the location coefficients (the
    # scale model is fitted without them), not frequency weights: repeating a
    # study is not the same as doubling its weight.
    "check_sample_weight_equivalence_on_dense_data": "user weights, not frequencies",
    # The check's design has constant columns: the rank-deficiency error (naming
    # them) comes before the one about the weights.
    "check_all_zero_sample_weights_error": "rank-deficient design in the check",
}


def _expected_failed(est):
    if est.fit_intercept:
        return EXPECTED_FAILED
    exact_with_intercept = (
        "check_sample_weights_shape",
        "check_sample_weights_not_overwritten",
    )
    return {k: v for k, v in EXPECTED_FAILED.items() if k not in exact_with_intercept}


# scikit-learn's checks fit without sample_var on purpose; the warning that
# says so is tested elsewhere and would only bury real warnings here
@pytest.mark.filterwarnings("ignore::skmeta.exceptions.SampleVarWarning")
@parametrize_with_checks(INSTANCES, expected_failed_checks=_expected_failed)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ------------------------------------------------------------ engine derivatives
@pytest.mark.parametrize("method", ["reml", "ml"])
@pytest.mark.parametrize("link", ["log", "identity"])
def test_engine_gradient_and_hessian_match_finite_differences(method, link):
    X, y, v, Z = simulated(k=40)
    Xd = np.column_stack([np.ones(40), X.to_numpy()])
    Zd = np.column_stack([np.ones(40), Z.to_numpy()])
    alpha = np.array([-2.0, 0.3, 0.2]) if link == "log" else np.array([0.1, 0.05, 0.02])
    ld = float(np.linalg.slogdet(Xd.T @ Xd)[1])

    def ll(a):
        return ls.evaluate(
            y, v, Xd, Zd, a, method=method, link=link, logdet_xtx=ld
        ).loglik

    ev = ls.evaluate(
        y, v, Xd, Zd, alpha, method=method, link=link, derivs=2, logdet_xtx=ld
    )
    h = 1e-5
    eye = np.eye(3)
    grad = np.array([(ll(alpha + h * e) - ll(alpha - h * e)) / (2 * h) for e in eye])
    np.testing.assert_allclose(ev.grad, grad, rtol=1e-6, atol=1e-7)
    hess = np.array(
        [
            [
                (
                    ll(alpha + h * (ei + ej))
                    - ll(alpha + h * (ei - ej))
                    - ll(alpha - h * (ei - ej))
                    + ll(alpha - h * (ei + ej))
                )
                / (4 * h * h)
                for ej in eye
            ]
            for ei in eye
        ]
    )
    np.testing.assert_allclose(ev.hess, hess, rtol=1e-4, atol=1e-4)


def test_engine_loglik_matches_dense_formula():
    X, y, v, Z = simulated(k=15)
    Xd = np.column_stack([np.ones(15), X.to_numpy()])
    Zd = np.column_stack([np.ones(15), Z.to_numpy()])
    alpha = np.array([-2.0, 0.3, 0.2])
    tau2 = np.exp(Zd @ alpha)
    S = np.diag(v + tau2)
    Si = np.linalg.inv(S)
    A = Xd.T @ Si @ Xd
    P = Si - Si @ Xd @ np.linalg.solve(A, Xd.T @ Si)
    reml = (
        -0.5
        * (
            13 * np.log(2 * np.pi)
            + np.linalg.slogdet(S)[1]
            + np.linalg.slogdet(A)[1]
            + y @ P @ y
        )
        + 0.5 * np.linalg.slogdet(Xd.T @ Xd)[1]
    )
    ev = ls.evaluate(
        y, v, Xd, Zd, alpha, method="reml", logdet_xtx=np.linalg.slogdet(Xd.T @ Xd)[1]
    )
    assert ev.loglik == pytest.approx(reml, rel=1e-12)
    H = Xd @ np.linalg.solve(A, Xd.T @ Si)
    np.testing.assert_allclose(ev.hat, np.diag(H), rtol=1e-10)


# --------------------------------------------------------------- fitted model
def test_attributes_hat_and_study_tau2():
    X, y, v, Z = simulated()
    est = LocationScaleMeta().fit(X, y, sample_var=v, Z=Z)
    assert est.n_scale_features_in_ == 2
    assert list(est.scale_feature_names_in_) == ["z", "g"]
    assert est.n_params_ == 2 + 3
    assert est.scale_cov_params_.shape == (3, 3)
    tau2 = np.exp(est.scale_intercept_ + Z.to_numpy() @ est.scale_coef_)
    np.testing.assert_allclose(est.tau2_, tau2, rtol=1e-12)
    np.testing.assert_allclose(est.predict_tau2(Z), tau2, rtol=1e-12)
    resid = y - est.predict(X)
    np.testing.assert_allclose(est.study_tau2_, resid**2 / (1 - est.hat_) - v)
    assert est.hat_.sum() == pytest.approx(2.0)  # trace of the hat matrix = p
    frame = est.summary().to_frame()
    assert list(frame.columns) == [
        "estimate",
        "se",
        "statistic",
        "p_value",
        "ci_lower",
        "ci_upper",
    ]
    assert frame.index.tolist() == [
        ("location", "intercept"),
        ("location", "x"),
        ("scale", "intercept"),
        ("scale", "z"),
        ("scale", "g"),
    ]
    assert "Location-scale model" in str(est.summary())
    assert "<table" in est.summary()._repr_html_()


def test_score_equals_loglik_under_ml_and_uses_study_tau2():
    X, y, v, Z = simulated()
    est = LocationScaleMeta(method="ml").fit(X, y, sample_var=v, Z=Z)
    assert est.score(X, y, sample_var=v, Z=Z) == pytest.approx(est.loglik_, rel=1e-8)
    t2 = est.predict_tau2(Z[:10])
    mean = est.predict(X[:10])
    by_hand = np.sum(
        -0.5 * np.log(2 * np.pi * (v[:10] + t2))
        - 0.5 * (y[:10] - mean) ** 2 / (v[:10] + t2)
    )
    assert est.score(X[:10], y[:10], sample_var=v[:10], Z=Z[:10]) == pytest.approx(
        by_hand
    )
    with pytest.warns(UserWarning, match="no sample_var"):
        est.score(X, y, Z=Z)
    with pytest.raises(ValueError, match="Z is required"):
        est.score(X, y, sample_var=v)


def test_standardization_is_invisible():
    X, y, v, Z = simulated()
    a = LocationScaleMeta().fit(X, y, sample_var=v, Z=Z)
    Z2 = Z.assign(z=1000.0 * Z["z"] + 5.0)
    b = LocationScaleMeta().fit(X, y, sample_var=v, Z=Z2)
    assert b.loglik_ == pytest.approx(a.loglik_, abs=1e-9)
    assert b.scale_coef_[0] * 1000 == pytest.approx(a.scale_coef_[0], rel=1e-6)
    np.testing.assert_allclose(b.tau2_, a.tau2_, rtol=1e-6)
    se_a = np.sqrt(a.scale_cov_params_[1, 1])
    assert np.sqrt(b.scale_cov_params_[1, 1]) * 1000 == pytest.approx(se_a, rel=1e-6)


def test_row_order_invariance_and_clone_pickle():
    X, y, v, Z = simulated()
    a = LocationScaleMeta().fit(X, y, sample_var=v, Z=Z)
    perm = np.random.default_rng(1).permutation(len(y))
    b = clone(a).fit(X.iloc[perm], y[perm], sample_var=v[perm], Z=Z.iloc[perm])
    assert b.loglik_ == pytest.approx(a.loglik_, abs=1e-9)
    # The optimum is polished with Newton steps to rounding: the coefficients
    # are pinned down by the rounding error of the gradient (~k * eps) over the
    # curvature, ~1e-12 standard errors here.  1e-8 SE leaves a factor 1e4 for
    # other BLAS builds and orders of summation (a tolerance in the data's
    # units, rtol=1e-7, failed on another machine before the polish).
    se = np.sqrt(np.diag(a.scale_cov_params_))[1:]
    assert np.all(np.abs(b.scale_coef_ - a.scale_coef_) <= 1e-8 * se)
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c.predict_tau2(Z), a.predict_tau2(Z))


def test_predict_interval_uses_new_tau2():
    X, y, v, Z = simulated()
    est = LocationScaleMeta().fit(X, y, sample_var=v, Z=Z)
    out = est.predict_interval(X[:3], Z=Z[:3])
    width = (out["pi_upper"] - out["pi_lower"]) / 2 / 1.959963984540054
    np.testing.assert_allclose(width**2, out["se"] ** 2 + est.predict_tau2(Z[:3]))
    with pytest.raises(ValueError, match="Z is required"):
        est.predict_interval(X[:3])


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("Z", "match"),
    [
        (np.full((20, 1), np.nan), "NaN"),
        (np.ones((19, 1)), "19 rows"),
        (np.column_stack([np.arange(20.0), np.ones(20)]), "constant column"),
        (np.column_stack([np.arange(20.0), 2 * np.arange(20.0)]), "rank-deficient"),
        (np.eye(20)[:, :20], "Too few studies for the scale model"),
    ],
)
def test_bad_Z_is_a_clear_error(Z, match):
    rng = np.random.default_rng(0)
    y = rng.normal(size=20)
    v = np.full(20, 0.1)
    with pytest.raises(ValueError, match=match):
        LocationScaleMeta().fit(None, y, sample_var=v, Z=Z)


def test_bad_bounds_and_no_scale_parameters():
    y = np.arange(10.0)
    with pytest.raises(ValueError, match="no parameters"):
        LocationScaleMeta(scale_fit_intercept=False).fit(
            None, y, sample_var=np.ones(10)
        )
    with pytest.raises(ValueError, match="lower must not exceed"):
        LocationScaleMeta(scale_bounds=(1.0, -1.0)).fit(None, y, sample_var=np.ones(10))


def test_non_convergence_warns():
    X, y, v, Z = simulated()
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        est = LocationScaleMeta(max_iter=1).fit(X, y, sample_var=v, Z=Z)
    assert est.converged_ is False
    assert np.all(np.isfinite(est.tau2_))


def test_fixed_study_scale_effects_has_k_parameters():
    _X, y, v, _Z = simulated(k=12)
    est = LocationScaleMeta(scale_fit_intercept=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(None, y, sample_var=v, Z=np.eye(12))
    assert est.n_params_ == 13
    assert np.isfinite(est.loglik_)


# -------------------------------------------------------------------- routing
class SpyLS(LocationScaleMeta):
    seen = []

    def fit(self, X, y, *, sample_var=None, Z=None):
        SpyLS.seen.append(("fit", len(y), len(sample_var), len(Z)))
        return super().fit(X, y, sample_var=sample_var, Z=Z)

    def score(self, X, y, sample_weight=None, *, sample_var=None, Z=None):
        SpyLS.seen.append(("score", len(y), len(sample_var), len(Z)))
        return super().score(X, y, sample_weight, sample_var=sample_var, Z=Z)


@sklearn.config_context(enable_metadata_routing=True)
def test_routing_slices_Z_and_sample_var_per_fold():
    X, y, v, Z = simulated()
    SpyLS.seen = []
    pipe = make_pipeline(StandardScaler(), SpyLS())
    res = cross_validate(
        pipe, X, y, params={"sample_var": v, "Z": Z}, cv=KFold(4), scoring=None
    )
    assert len(res["test_score"]) == 4
    fits = [s for s in SpyLS.seen if s[0] == "fit"]
    scores = [s for s in SpyLS.seen if s[0] == "score"]
    assert all(n == nv == nz == 45 for _, n, nv, nz in fits)
    assert all(n == nv == nz == 15 for _, n, nv, nz in scores)
    assert np.all(np.isfinite(res["test_score"]))


@sklearn.config_context(enable_metadata_routing=True)
def test_routing_grid_search_refit():
    X, y, v, Z = simulated()
    grid = GridSearchCV(
        make_pipeline(StandardScaler(), LocationScaleMeta()),
        {"locationscalemeta__method": ["reml", "ml"]},
        cv=KFold(3),
    ).fit(X, y, sample_var=v, Z=Z)
    assert grid.best_estimator_[-1].n_scale_features_in_ == 2


# --------------------------------------------- random-scale quadrature accuracy
@pytest.mark.parametrize(
    ("a0", "omega"), [(-3.0, 0.3), (-1.0, 1.0), (-5.4, 2.5), (-8.7, 4.0), (-12.0, 6.0)]
)
def test_random_scale_quadrature_matches_brute_force(a0, omega):
    rng = np.random.default_rng(3)
    r = rng.normal(scale=0.4, size=12)
    v = rng.uniform(0.01, 0.2, size=12)

    def brute(ri, vi):
        f = lambda s: np.exp(quad._log_integrand(s, ri, vi, a0, omega))
        val, _ = integrate.quad(f, -np.inf, np.inf, epsabs=0, epsrel=1e-12, limit=500)
        return np.log(val)

    exact = np.array([brute(ri, vi) for ri, vi in zip(r, v, strict=True)])
    got, err = quad.study_log_marginal(r, v, a0, omega, with_error=True)
    # stated accuracy: the error estimate bounds the true error, both tiny
    assert np.all(np.abs(got - exact) <= np.maximum(err, 1e-12) + 1e-12)
    assert np.max(np.abs(got - exact)) < 1e-8


def test_laplace_approximation_is_not_accurate_for_wide_omega():
    """Why the accurate integral matters (see test_tools for the seed's table)."""
    rng = np.random.default_rng(3)
    r = rng.normal(scale=0.4, size=12)
    v = rng.uniform(0.01, 0.2, size=12)
    accurate = quad.study_log_marginal(r, v, -5.4, 2.5)
    laplace = quad.study_log_marginal(r, v, -5.4, 2.5, n_nodes=1, tol=None)
    assert np.max(np.abs(laplace - accurate)) > 0.05


def test_random_scale_with_tiny_omega_reduces_to_random_effects():
    _X, y, v, _ = simulated(k=30)
    re = LocationScaleMeta(method="ml").fit(None, y, sample_var=v)
    ll = quad.random_scale_loglik(
        y, v, np.ones((30, 1)), np.array([re.intercept_]), re.scale_intercept_, 1e-4
    )
    assert ll == pytest.approx(re.loglik_, abs=1e-6)
    reml = LocationScaleMeta().fit(None, y, sample_var=v)
    llr = quad.random_scale_reml(y, v, reml.scale_intercept_, 1e-4)
    assert llr == pytest.approx(reml.loglik_, abs=1e-6)


@pytest.mark.parametrize("link", ["log", "identity"])
def test_invariance_to_shifting_and_scaling_y_with_extreme_variances(link):
    rng = np.random.default_rng(0)
    k = 30
    z = rng.uniform(0, 2, k)
    v = 10 ** rng.uniform(-10, 6, k)  # sampling variances over 16 decades
    y = rng.normal(scale=np.sqrt(v + np.exp(-1 + z)))
    a = LocationScaleMeta(link=link).fit(None, y, sample_var=v, Z=z[:, None])
    c = 1000.0
    b = LocationScaleMeta(link=link).fit(
        None, c * y + 5, sample_var=c * c * v, Z=z[:, None]
    )
    assert a.converged_ and b.converged_
    np.testing.assert_allclose(b.tau2_, c * c * a.tau2_, rtol=1e-6)
    assert b.intercept_ == pytest.approx(c * a.intercept_ + 5, rel=1e-6)


def test_tiny_k():
    y = np.array([0.2, -0.3])
    est = LocationScaleMeta().fit(None, y, sample_var=[0.1, 0.1])
    assert est.converged_ and est.tau2_[0] > 0
    with pytest.raises(ValueError, match="n_samples=1"):
        LocationScaleMeta().fit(None, y[:1], sample_var=[0.1])
