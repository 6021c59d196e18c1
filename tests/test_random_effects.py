"""Behaviour of RandomEffectsMeta: scores, routing, pipelines, bad input."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmeta import RandomEffectsMeta

# Viechtbauer (2005), example 1.
Y = np.array([-0.581, 0.530, 0.771, 1.031, 0.553, 0.295, 0.078, 0.573, -0.176, -0.232])
V = np.array([0.023, 0.052, 0.060, 0.115, 0.095, 0.203, 0.200, 0.211, 0.051, 0.040])


def simulated(k=60, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"dose": rng.normal(size=k), "year": rng.normal(size=k)})
    X["noise"] = rng.normal(size=k)
    v = rng.uniform(0.01, 0.2, size=k)
    y = 0.2 + 0.5 * X["dose"] + rng.normal(scale=np.sqrt(v + 0.05))
    study = np.repeat(np.arange(k // 3), 3)
    return X, y.to_numpy(), v, study


def gaussian_loglik(y, mean, var):
    return float(np.sum(-0.5 * np.log(2 * np.pi * var) - 0.5 * (y - mean) ** 2 / var))


def test_score_on_training_data_equals_loglik_under_ml():
    X, y, v, _ = simulated()
    model = RandomEffectsMeta(method="ml").fit(X, y, sample_var=v)
    assert model.score(X, y, sample_var=v) == pytest.approx(model.loglik_, rel=1e-8)


def test_heldout_score_is_gaussian_log_density():
    X, y, v, _ = simulated()
    model = RandomEffectsMeta().fit(X[:40], y[:40], sample_var=v[:40])
    mean = model.intercept_ + X[40:].to_numpy() @ model.coef_
    expected = gaussian_loglik(y[40:], mean, v[40:] + model.tau2_)
    assert model.score(X[40:], y[40:], sample_var=v[40:]) == pytest.approx(expected)
    weights = np.linspace(0.5, 2, 20)
    by_hand = np.sum(
        weights * (-0.5 * np.log(2 * np.pi * (v[40:] + model.tau2_)))
        - weights * 0.5 * (y[40:] - mean) ** 2 / (v[40:] + model.tau2_)
    )
    assert model.score(
        X[40:], y[40:], sample_weight=weights, sample_var=v[40:]
    ) == pytest.approx(by_hand)


def test_score_warns_when_sample_var_was_not_routed():
    X, y, v, _ = simulated()
    model = RandomEffectsMeta().fit(X, y, sample_var=v)
    with pytest.warns(UserWarning, match="no sample_var"):
        model.score(X, y)


def test_feature_names_and_summary_frame():
    X, y, v, _ = simulated()
    model = RandomEffectsMeta().fit(X, y, sample_var=v)
    frame = model.summary().to_frame()
    assert list(frame.columns) == [
        "estimate",
        "se",
        "statistic",
        "p_value",
        "ci_lower",
        "ci_upper",
    ]
    assert list(frame.index) == ["intercept", "dose", "year", "noise"]
    assert frame.loc["dose", "estimate"] == pytest.approx(model.coef_[0])
    text = str(model.summary())
    assert "tau^2" in text and "dose" in text
    assert "<table" in model.summary()._repr_html_()
    unnamed = RandomEffectsMeta(fit_intercept=False).fit(X.to_numpy(), y, sample_var=v)
    assert list(unnamed.summary().to_frame().index) == ["x0", "x1", "x2"]


def test_predict_interval_columns_and_prediction_interval():
    model = RandomEffectsMeta().fit(None, Y, sample_var=V)
    frame = model.predict_interval()
    assert list(frame.columns) == [
        "mean",
        "se",
        "ci_lower",
        "ci_upper",
        "pi_lower",
        "pi_upper",
    ]
    row = frame.iloc[0]
    assert row["mean"] == pytest.approx(model.intercept_)
    half = 1.959963984540054 * np.sqrt(row["se"] ** 2 + model.tau2_)
    assert row["pi_upper"] - row["mean"] == pytest.approx(half)
    assert model.predict(np.empty((3, 0))) == pytest.approx([model.intercept_] * 3)


def test_pickle_and_clone_round_trip():
    X, y, v, _ = simulated()
    model = RandomEffectsMeta(method="dl", inference="knapp-hartung")
    fitted = clone(model).fit(X, y, sample_var=v)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
    assert restored.tau2_ == fitted.tau2_
    assert clone(model).get_params() == model.get_params()


def _pipeline(columns=("dose", "year")):
    return Pipeline(
        [
            ("select", ColumnTransformer([("keep", StandardScaler(), list(columns))])),
            ("meta", RandomEffectsMeta().set_fit_request(groups=False)),
        ]
    )


class SpyMeta(RandomEffectsMeta):
    """Records the length of the metadata each call received."""

    seen = []

    def fit(self, X, y, *, sample_var=None, groups=None):
        SpyMeta.seen.append(("fit", len(y), len(sample_var)))
        return super().fit(X, y, sample_var=sample_var, groups=groups)

    def score(self, X, y, sample_weight=None, *, sample_var=None):
        SpyMeta.seen.append(("score", len(y), len(sample_var)))
        return super().score(X, y, sample_weight, sample_var=sample_var)


@sklearn.config_context(enable_metadata_routing=True)
def test_cross_validate_routes_sample_var_to_fit_and_heldout_score():
    X, y, v, study = simulated()
    SpyMeta.seen = []
    pipe = Pipeline(
        [
            ("select", ColumnTransformer([("keep", StandardScaler(), ["dose"])])),
            ("meta", SpyMeta().set_fit_request(groups=False)),
        ]
    )
    result = cross_validate(
        pipe, X, y, params={"sample_var": v, "groups": study}, cv=GroupKFold(4)
    )
    fits = [s for s in SpyMeta.seen if s[0] == "fit"]
    scores = [s for s in SpyMeta.seen if s[0] == "score"]
    assert len(fits) == 4 and len(scores) == 4
    assert all(n == nv == 45 for _, n, nv in fits)
    assert all(n == nv == 15 for _, n, nv in scores)
    # Each held-out score is the Gaussian log-density with the fold's own variances.
    for fold, (train, test) in enumerate(GroupKFold(4).split(X, y, study)):
        model = RandomEffectsMeta().fit(
            StandardScaler()
            .fit(X.iloc[train][["dose"]])
            .transform(X.iloc[train][["dose"]]),
            y[train],
            sample_var=v[train],
        )
        scaler = StandardScaler().fit(X.iloc[train][["dose"]])
        expected = model.score(
            scaler.transform(X.iloc[test][["dose"]]), y[test], sample_var=v[test]
        )
        assert result["test_score"][fold] == pytest.approx(expected)


@sklearn.config_context(enable_metadata_routing=True)
def test_grid_search_selects_moderators_with_group_kfold():
    X, y, v, study = simulated(k=90, seed=3)
    pipe = _pipeline()
    grid = GridSearchCV(
        pipe,
        {
            "select__keep": [StandardScaler()],
            "select__transformers": [
                [("keep", StandardScaler(), cols)]
                for cols in (["dose"], ["year"], ["noise"], ["dose", "year"])
            ],
        },
        cv=GroupKFold(5),
    )
    grid.fit(X, y, sample_var=v, groups=study)
    chosen = grid.best_params_["select__transformers"][0][2]
    assert "dose" in chosen
    assert grid.best_estimator_[-1].n_features_in_ == len(chosen)


@sklearn.config_context(enable_metadata_routing=True)
def test_groups_must_be_requested_when_routing():
    X, y, v, study = simulated()
    with pytest.raises(UnsetMetadataPassedError):
        cross_validate(
            RandomEffectsMeta(),
            X,
            y,
            params={"sample_var": v, "groups": study},
            cv=GroupKFold(3),
        )


@sklearn.config_context(enable_metadata_routing=True)
def test_groups_routed_to_fit_gives_cluster_robust_covariance():
    X, y, v, study = simulated()
    model = RandomEffectsMeta().set_fit_request(groups=True)
    cross_validate(
        model, X, y, params={"sample_var": v, "groups": study}, cv=GroupKFold(3)
    )
    fitted = clone(model).fit(X, y, sample_var=v, groups=study)
    assert fitted.n_groups_ == 20
    assert fitted.robust_dof_ is not None


def test_routing_off_legacy_step_prefix_warns_on_score():
    X, y, v, _ = simulated()
    pipe = Pipeline(
        [
            ("select", ColumnTransformer([("keep", StandardScaler(), ["dose"])])),
            ("meta", RandomEffectsMeta()),
        ]
    )
    with pytest.warns(UserWarning, match="no sample_var"):
        cross_validate(pipe, X, y, params={"meta__sample_var": v}, cv=KFold(3))


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("sample_var", "match"),
    [
        (np.r_[V[:-1], np.nan], "NaN or infinity"),
        (np.r_[V[:-1], np.inf], "NaN or infinity"),
        (np.r_[V[:-1], -0.1], "must be >= 0"),
        (V[:-1], "sample_var has 9 entries"),
        (np.c_[V, V], "must be 1-D"),
    ],
)
def test_bad_sample_var_is_rejected(sample_var, match):
    with pytest.raises(ValueError, match=match):
        RandomEffectsMeta().fit(None, Y, sample_var=sample_var)


def test_nan_in_y_or_x_is_rejected():
    with pytest.raises(ValueError, match="NaN"):
        RandomEffectsMeta().fit(None, np.r_[Y[:-1], np.nan], sample_var=V)
    X = np.arange(10.0)[:, None]
    X[3] = np.inf
    with pytest.raises(ValueError, match=r"infinity|inf"):
        RandomEffectsMeta().fit(X, Y, sample_var=V)


def test_too_few_studies_and_rank_deficiency():
    X = np.arange(10.0)[:, None]
    with pytest.raises(ValueError, match="n_samples=2"):
        RandomEffectsMeta().fit(np.c_[X, X**2][:2], Y[:2], sample_var=V[:2])
    with pytest.raises(ValueError, match="rank-deficient"):
        RandomEffectsMeta().fit(np.c_[X, 2 * X], Y, sample_var=V)
    with pytest.raises(ValueError, match="rank-deficient"):
        RandomEffectsMeta().fit(np.ones((10, 1)), Y, sample_var=V)
    with pytest.raises(ValueError, match="n_samples=1"):
        RandomEffectsMeta().fit(None, Y[:1], sample_var=V[:1])


def test_two_studies_intercept_only_is_a_valid_fit():
    model = RandomEffectsMeta(method="dl").fit(None, Y[:2], sample_var=V[:2])
    assert model.dof_ == 1
    assert np.isfinite(model.intercept_) and model.tau2_ >= 0


def test_constant_y_gives_zero_heterogeneity():
    y = np.full(10, 0.3)
    for method in ("reml", "ml", "dl", "pm", "sj", "he"):
        model = RandomEffectsMeta(method=method).fit(None, y, sample_var=V)
        assert model.tau2_ == 0.0
        assert model.intercept_ == pytest.approx(0.3)


def test_zero_variances_with_inverse_variance_methods_raise():
    with pytest.raises(ValueError, match="sample_var must be > 0"):
        RandomEffectsMeta(method="dl").fit(None, Y)
    with pytest.raises(ValueError, match="degenerate"):
        RandomEffectsMeta(tau2=0.0).fit(None, Y)
    with pytest.warns(UserWarning, match="fitted exactly"):
        exact = RandomEffectsMeta(method="reml").fit(None, np.full(10, 0.3))
    assert exact.tau2_ == 0.0
    assert exact.intercept_ == pytest.approx(0.3)


def test_genq_requires_weights_of_the_right_length():
    with pytest.raises(ValueError, match="requires genq_weights"):
        RandomEffectsMeta(method="genq").fit(None, Y, sample_var=V)
    with pytest.raises(ValueError, match="genq_weights has 3 entries"):
        RandomEffectsMeta(method="genq", genq_weights=[1, 2, 3]).fit(
            None, Y, sample_var=V
        )
    dl = RandomEffectsMeta(method="dl").fit(None, Y, sample_var=V)
    genq = RandomEffectsMeta(method="genq", genq_weights="inverse_var").fit(
        None, Y, sample_var=V
    )
    assert genq.tau2_ == pytest.approx(dl.tau2_, rel=1e-12)


def test_zero_variances_are_ordinary_regression():
    X, y, _, _ = simulated()
    model = RandomEffectsMeta(method="reml").fit(X, y)
    design = np.c_[np.ones(len(y)), X]
    beta, rss, *_ = np.linalg.lstsq(design, y, rcond=None)
    np.testing.assert_allclose(model._beta, beta, rtol=1e-8)
    assert model.tau2_ == pytest.approx(rss[0] / (len(y) - 4), rel=1e-8)


def test_non_convergence_warns():
    X, y, v, _ = simulated()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = RandomEffectsMeta(max_iter=1, tol=1e-15).fit(X, y, sample_var=v)
    assert not model.converged_
    assert any(w.category.__name__ == "ConvergenceWarning" for w in caught)


def test_ml_bimodal_profile_finds_the_interior_maximum():
    """The ML profile of these data has a local maximum on the boundary
    (tau2 = 0, logLik -0.2696) and the global one inside (tau2 = 0.0228,
    logLik 0.1990; found by hypothesis against MultilevelMeta's multi-start).
    A Newton step from the DL start straight to the bound used to end at 0."""
    X = np.array(
        [[0.05390108, 1.07298982], [-0.32850624, 2.37256979],
         [-2.53476968, -0.29804022], [-0.81060248, -0.23422826],
         [0.07358842, -1.60699332], [1.13186112, -1.23508543],
         [0.57364279, 0.97925082]]
    )  # fmt: skip
    y = np.array([-0.61001653, -0.84165688, 3.84611163, 2.37335743, 2.32328617,
                  0.74828866, -1.10839066])  # fmt: skip
    v = np.array([0.00464895, 0.0359534, 0.00173365, 0.05399072, 0.00181285,
                  0.02322033, 0.10070705])  # fmt: skip
    model = RandomEffectsMeta(method="ml").fit(X, y, sample_var=v)
    assert model.tau2_ == pytest.approx(0.0227956, rel=1e-5)
    assert model.loglik_ == pytest.approx(0.199015, abs=1e-6)
    boundary = RandomEffectsMeta(method="ml", tau2=0.0).fit(X, y, sample_var=v)
    assert model.loglik_ > boundary.loglik_ + 0.4


# --------------------------------------------------------------------------- #
# The tau^2 method registry and the shared vocabulary
# --------------------------------------------------------------------------- #
def test_tau2_method_registry_records():
    from skmeta._engine._tau2 import ALL_METHODS, TAU2_METHODS

    assert ALL_METHODS == tuple(TAU2_METHODS)
    for name, record in TAU2_METHODS.items():
        assert record.name == name and record.label and callable(record.estimate)
        assert record.likelihood == (name in ("reml", "ml"))
        assert record.needs_positive_var == (name in ("dl", "hs", "hsk", "fe"))
        assert (record.standard_error is None) == (name == "fe")
    assert set(RandomEffectsMeta._parameter_constraints["method"][0].options) == set(
        ALL_METHODS
    )


def test_a_new_tau2_method_is_one_registry_record(monkeypatch, tmp_path, capsys):
    """The contributor's steps for a tau^2 method (docs/architecture.rst),
    followed: one record in TAU2_METHODS, and the estimator accepts the name,
    prints its label, the command line offers it and the multi-output fit runs
    it (output by output; it has no vectorized form)."""
    from skmeta import _registry
    from skmeta.__main__ import main
    from skmeta._engine import _tau2

    dl = _tau2.TAU2_METHODS["dl"]
    record = _tau2.Tau2Method(
        "dl-copy", "DL copy", dl.estimate, dl.standard_error, needs_positive_var=True
    )
    monkeypatch.setitem(_tau2.TAU2_METHODS, "dl-copy", record)
    new = RandomEffectsMeta(method="dl-copy").fit(None, Y, sample_var=V)
    ref = RandomEffectsMeta(method="dl").fit(None, Y, sample_var=V)
    assert new.tau2_ == ref.tau2_ and new.tau2_se_ == ref.tau2_se_
    assert new.intercept_ == ref.intercept_ and np.array_equal(
        new.cov_params_, ref.cov_params_
    )
    assert "DL copy" in new.summary().title
    Ys = np.column_stack([Y, Y[::-1], 2 * Y])
    Vs = np.column_stack([V, V[::-1], 4 * V])
    both = [
        RandomEffectsMeta(method=m).fit(None, Ys, sample_var=Vs)
        for m in ("dl-copy", "dl")
    ]
    np.testing.assert_allclose(both[0].tau2_, both[1].tau2_, rtol=1e-12)
    np.testing.assert_allclose(both[0].intercept_, both[1].intercept_, rtol=1e-12)
    csv = tmp_path / "studies.csv"
    pd.DataFrame({"yi": Y, "vi": V}).to_csv(csv, index=False)
    args = [str(csv), "--yi", "yi", "--vi", "vi", "--no-plot"]
    assert main([*args, "--method", "dl-copy"]) == 0
    assert "DL copy" in capsys.readouterr().out
    assert _registry.estimator_class("random-effects") is RandomEffectsMeta
    monkeypatch.delitem(_tau2.TAU2_METHODS, "dl-copy")
    with pytest.raises(ValueError, match="method"):
        RandomEffectsMeta(method="dl-copy").fit(None, Y, sample_var=V)


def test_unknown_tau2_method_is_an_error_not_nan():
    from skmeta._engine._tau2 import estimate_tau2, tau2_standard_error

    X = np.ones((10, 1))
    with pytest.raises(ValueError, match="Unknown tau\\^2 method 'nope'"):
        estimate_tau2(X, Y, V, "nope")
    with pytest.raises(ValueError, match="Unknown tau\\^2 method 'nope'"):
        tau2_standard_error(X, Y, V, "nope", 0.1)


@pytest.mark.parametrize(
    ("method", "label"),
    [("reml", "REML"), ("dl", "DerSimonian-Laird"), ("pmm", "median-unbiased")],
)
def test_summary_labels_come_from_the_registry(method, label):
    model = RandomEffectsMeta(method=method).fit(None, Y, sample_var=V)
    assert label in model.summary().title


@pytest.mark.parametrize(
    "level", ["0.95", None, 0, 1, 1.5, float("nan"), True, np.array([0.9])]
)
def test_tau2_confint_validates_confidence_level(level):
    model = RandomEffectsMeta().fit(None, Y, sample_var=V)
    with pytest.raises(ValueError, match="confidence_level"):
        model.tau2_confint(confidence_level=level)


def test_tau2_confint_accepts_numpy_scalars():
    model = RandomEffectsMeta().fit(None, Y, sample_var=V)
    expected = model.tau2_confint(confidence_level=0.9)
    for level in (np.float32(0.9), np.array(0.9)):
        pd.testing.assert_frame_equal(model.tau2_confint(level), expected)


def test_vocabulary_random_effects_groups_and_robust_dof():
    X, y, v, study = simulated()
    plain = RandomEffectsMeta().fit(X, y, sample_var=v)
    assert list(plain.random_effects_.columns) == ["estimate", "se"]
    assert plain.random_effects_.shape == (len(y), 2)
    np.testing.assert_array_equal(
        plain.random_effects_["se"].to_numpy(), plain.random_effects_se_
    )
    assert plain.n_groups_ is None and plain.robust_dof_ is None
    robust = RandomEffectsMeta().fit(X, y, sample_var=v, groups=study)
    assert robust.n_groups_ == 20 and isinstance(robust.n_groups_, int)
    assert robust.robust_dof_.shape == (4,)
    np.testing.assert_allclose(robust.robust_dof_, 20 - 4)


def test_cluster_robust_none_is_model_based_with_groups():
    X, y, v, study = simulated()
    plain = RandomEffectsMeta().fit(X, y, sample_var=v)
    model = RandomEffectsMeta(cluster_robust=None).fit(X, y, sample_var=v, groups=study)
    np.testing.assert_array_equal(model.cov_params_, plain.cov_params_)
    assert model.n_groups_ is None and model.robust_dof_ is None
    assert model.qm_ == plain.qm_


# --------------------------------------------------------------------------- #
# User weights (metafor's rma(weights=))
# --------------------------------------------------------------------------- #
A = np.array([1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0])


@pytest.mark.parametrize("inference", ["z", "knapp-hartung"])
def test_user_weights_by_hand_intercept_only(inference):
    """mu = sum a y / sum a, Var = sum a^2 (v + tau2) / (sum a)^2 (times the
    Knapp-Hartung factor of the usual 1/(v + tau2) fit); tau2 and Q as without
    weights; loglik at mu."""
    plain = RandomEffectsMeta(inference=inference).fit(None, Y, sample_var=V)
    model = RandomEffectsMeta(inference=inference)
    model.fit(None, Y, sample_var=V, sample_weight=A)
    t = plain.tau2_
    mu = A @ Y / A.sum()
    var = A**2 @ (V + t) / A.sum() ** 2
    if inference == "knapp-hartung":
        w = 1.0 / (V + t)
        var *= w @ (Y - plain.intercept_) ** 2 / (len(Y) - 1)
    assert model.tau2_ == plain.tau2_ and model.q_ == plain.q_
    assert model.intercept_ == pytest.approx(mu, rel=1e-13)
    assert model.cov_params_[0, 0] == pytest.approx(var, rel=1e-12)
    resid = Y - mu
    reml = -0.5 * (
        (len(Y) - 1) * np.log(2 * np.pi)
        + np.log(V + t).sum()
        + np.log(np.sum(1.0 / (V + t)))
        + np.sum(resid**2 / (V + t))
    ) + 0.5 * np.log(len(Y))
    assert model.loglik_ == pytest.approx(reml, rel=1e-12)
    # only the ratios of the weights matter
    scaled = RandomEffectsMeta(inference=inference)
    scaled.fit(None, Y, sample_var=V, sample_weight=A * 1e-3)
    assert scaled.intercept_ == pytest.approx(model.intercept_, rel=1e-14)


def test_user_weights_are_routed_in_cross_validation():
    X, y, v, _ = simulated()
    a = np.random.default_rng(3).uniform(0.5, 2.0, len(y))
    with sklearn.config_context(enable_metadata_routing=True):
        model = RandomEffectsMeta().set_fit_request(sample_weight=True)
        model = model.set_score_request(sample_weight=False)
        scores = cross_validate(
            model, X, y, cv=KFold(3), params={"sample_var": v, "sample_weight": a}
        )["test_score"]
    train, test = next(iter(KFold(3).split(X)))
    direct = RandomEffectsMeta().fit(
        X.iloc[train], y[train], sample_var=v[train], sample_weight=a[train]
    )
    assert scores[0] == pytest.approx(
        direct.score(X.iloc[test], y[test], sample_var=v[test]), rel=1e-12
    )


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (-A, "sample_weight must be >= 0"),
        (np.where(np.arange(10) == 2, np.nan, A), "sample_weight contains NaN"),
        (np.zeros(10), "at least one non-zero weight"),
        (A[:5], "sample_weight has 5 entries"),
    ],
)
def test_bad_user_weights_are_rejected(weights, match):
    with pytest.raises(ValueError, match=match):
        RandomEffectsMeta().fit(None, Y, sample_var=V, sample_weight=weights)


def test_user_weights_with_cr2_are_refused_and_summarised():
    X, y, v, study = simulated()
    a = np.ones(len(y))
    with pytest.raises(ValueError, match="'cr2' is not available with sample_weight"):
        RandomEffectsMeta(cluster_robust="cr2").fit(
            X, y, sample_var=v, groups=study, sample_weight=a
        )
    model = RandomEffectsMeta().fit(X, y, sample_var=v, sample_weight=a + 1.0)
    assert any("sample_weight" in note for note in model.summary().notes)
    assert model._study_weights(v) == pytest.approx(np.full(len(y), 100 / len(y)))
