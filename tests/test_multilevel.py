"""MultilevelMeta: engine identities, scikit-learn contract, bad input."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from scipy import optimize
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GroupKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmeta._engine import _ml_fit as mlf
from skmeta._engine import _ml_structures as mls
from skmeta._engine import _multilevel as ml
from skmeta._multilevel import MultilevelMeta
from skmeta._random_effects import RandomEffectsMeta


def _nested(seed=0, n_outer=12, L=3, slopes=False, singleton=True):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 8, n_outer)
    k = int(sizes.sum())
    outer = np.repeat(np.arange(n_outer), sizes)
    mid = np.concatenate([rng.integers(0, 3, s) for s in sizes])
    inner = np.arange(k) if singleton else rng.integers(0, 2, k)
    x = rng.normal(size=k)
    v = rng.uniform(0.01, 0.1, k)
    y = (
        0.2
        + 0.1 * x
        + rng.normal(0, 0.3, n_outer)[outer]
        + (rng.normal(0, 0.1, n_outer)[outer] * x if slopes else 0.0)
        + rng.normal(0, 0.2, k)
        + rng.normal(0, np.sqrt(v))
    )
    G = np.column_stack([outer, mid, inner])[:, :L]
    return y, v, x, G


# ------------------------------------------------------------------ engine
@pytest.mark.parametrize(
    "L, singleton", [(1, True), (2, True), (2, False), (3, True), (3, False)]
)
@pytest.mark.parametrize("reml", [True, False])
def test_intercept_recursion_equals_dense_path(L, singleton, reml):
    """The O(k) nested Woodbury recursion equals per-cluster dense Cholesky."""
    y, v, x, G = _nested(1, L=L, singleton=singleton)
    X = np.column_stack([np.ones_like(y), x])
    codes = ml.encode_nested_groups(G)
    s2 = np.array([0.07, 0.03, 0.02])[:L]
    rec = ml.prepare_intercepts(y, v, X, codes)
    dense = ml.prepare_design(y, v, X, codes, [None] * L)
    a = ml.intercept_loglik(rec, s2, reml, blups=True)
    b = ml.profile_loglik(dense, [np.array([[s]]) for s in s2], reml)
    assert a.loglik == pytest.approx(b.loglik, rel=1e-12)
    np.testing.assert_allclose(
        [g[0, 0] for g in a.grads], [g[0, 0] for g in b.grads], rtol=1e-9, atol=1e-9
    )
    bl = ml.random_effects_blups(dense, [np.array([[s]]) for s in s2], b.beta, b.cov)
    for b1, b2 in zip(a.blups, bl, strict=True):
        u1, se1, u2, se2 = b1.estimate, b1.se, b2.estimate, b2.se
        np.testing.assert_allclose(u1, u2, atol=1e-12)
        np.testing.assert_allclose(se1, se2, atol=1e-12)


def test_dense_likelihood_equals_full_matrix_computation():
    """Per-cluster batches vs. the textbook dense k x k formula (small k only)."""
    y, v, x, G = _nested(2, n_outer=6, L=2, slopes=True)
    k = y.size
    X = np.column_stack([np.ones(k), x])
    Z0 = np.column_stack([np.ones(k), x])
    codes = ml.encode_nested_groups(G)
    S0 = np.array([[0.05, 0.01], [0.01, 0.02]])
    S1 = np.array([[0.03]])
    V = np.diag(v)
    same0 = codes[:, 0][:, None] == codes[:, 0][None, :]
    same1 = codes[:, 1][:, None] == codes[:, 1][None, :]
    V = V + same0 * (Z0 @ S0 @ Z0.T) + same1 * S1[0, 0]
    Vi = np.linalg.inv(V)
    H = X.T @ Vi @ X
    beta = np.linalg.solve(H, X.T @ Vi @ y)
    r = y - X @ beta
    ll_ml = -0.5 * (k * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + r @ Vi @ r)
    ll_reml = (
        -0.5
        * (
            (k - 2) * np.log(2 * np.pi)
            + np.linalg.slogdet(V)[1]
            + np.linalg.slogdet(H)[1]
            + r @ Vi @ r
        )
        + 0.5 * np.linalg.slogdet(X.T @ X)[1]
    )
    des = ml.prepare_design(y, v, X, codes, [Z0, None])
    assert ml.profile_loglik(des, [S0, S1], False).loglik == pytest.approx(
        ll_ml, rel=1e-12
    )
    assert ml.profile_loglik(des, [S0, S1], True).loglik == pytest.approx(
        ll_reml, rel=1e-12
    )
    assert ml.marginal_loglik(y, v, X, codes, [Z0, None], [S0, S1], beta) == (
        pytest.approx(ll_ml, rel=1e-12)
    )


@pytest.mark.parametrize(
    "structure, q",
    [
        ("unstructured", 2),
        ("unstructured", 3),
        ("independent", 3),
        ("exchangeable", 3),
        ("identity", 2),
        (
            np.array(
                [[np.nan, "r", 0.3], ["r", "a", "r"], [0.3, "r", "a"]], dtype=object
            ),
            3,
        ),
    ],
    ids=["un2", "un3", "ind3", "exch3", "id2", "custom3"],
)
@pytest.mark.parametrize("reml", [True, False])
def test_analytic_gradient_matches_finite_differences(structure, q, reml):
    y, v, x, G = _nested(3, n_outer=8, L=2, slopes=True)
    k = y.size
    x2 = np.random.default_rng(3).normal(size=k)
    Zq = np.column_stack([np.ones(k), x, x2])[:, :q]
    X = np.column_stack([np.ones(k), x])
    codes = ml.encode_nested_groups(G)
    des = ml.prepare_design(y, v, X, codes, [Zq, None])
    specs = [mls.make_cov_spec(structure, q), mls.make_cov_spec("independent", 1)]
    n = sum(s.n_params for s in specs)
    theta = np.random.default_rng(4).uniform(0.1, 0.4, n)
    f, g = mlf._objective(theta, des, specs, reml)
    assert np.isfinite(f)
    num = optimize.approx_fprime(
        theta, lambda t: mlf._objective(t, des, specs, reml)[0], 1e-7
    )
    np.testing.assert_allclose(g, num, rtol=1e-4, atol=1e-5)


def test_custom_spec_parsing():
    spec = mls.make_cov_spec(
        np.array(
            [
                [1.2, 0.5, "b", "b"],
                [0.5, "a", np.nan, "c"],
                ["b", np.nan, "a", "c"],
                ["b", "c", "c", np.nan],
            ],
            dtype=object,
        ),
        4,
    )
    # Stata's example: SD1 fixed, SD2 = SD3 (.a), SD4 free; corr12 fixed .5;
    # corr13 = corr14 (.b); corr24 = corr34 (.c); corr23 free
    assert spec.sd_index[0] == -1 and spec.sd_fixed[0] == 1.2
    assert spec.sd_index[1] == spec.sd_index[2] >= 0
    assert spec.corr_index[0, 1] == -1 and spec.corr_fixed[0, 1] == 0.5
    assert spec.corr_index[0, 2] == spec.corr_index[0, 3] >= 0
    assert spec.corr_index[1, 3] == spec.corr_index[2, 3] >= 0
    assert spec.n_params == 2 + 3  # SDs a, free; correlations b, c, free
    S, _ = mls.sigma_and_jac(spec, np.full(spec.n_params, 0.2))
    assert S[0, 0] == pytest.approx(1.44)
    assert S[1, 1] == S[2, 2]


# -------------------------------------------------- model equivalences
@pytest.mark.parametrize("method", ["reml", "ml"])
@pytest.mark.parametrize("with_x", [False, True])
def test_two_level_one_effect_per_group_equals_random_effects(method, with_x):
    y, v, x, G = _nested(5, L=1)
    G = np.arange(y.size)
    X = x.reshape(-1, 1) if with_x else None
    a = MultilevelMeta(method=method).fit(X, y, sample_var=v, groups=G)
    b = RandomEffectsMeta(method=method, tol=1e-14, max_iter=1000).fit(
        X, y, sample_var=v
    )
    assert a.sigma2_[0] == pytest.approx(b.tau2_, rel=1e-6, abs=1e-10)
    assert a.intercept_ == pytest.approx(b.intercept_, rel=1e-7)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-6)
    np.testing.assert_allclose(a.cov_params_, b.cov_params_, rtol=1e-5)
    assert a.loglik_ == pytest.approx(b.loglik_, abs=1e-8)
    assert a.aic_ == pytest.approx(b.aic_, abs=1e-7)
    assert a.bic_ == pytest.approx(b.bic_, abs=1e-7)
    assert a.q_ == pytest.approx(b.q_, rel=1e-10)
    np.testing.assert_allclose(
        a.random_effects_[a.level_names_[0]]["estimate"],
        b.random_effects_["estimate"],
        atol=1e-6,
    )
    assert a.i2_[a.level_names_[0]] == pytest.approx(b.i2_, rel=1e-5)


def test_score_equals_loglik_under_ml_and_new_groups_are_new():
    y, v, x, G = _nested(6, L=3)
    m = MultilevelMeta(method="ml").fit(x[:, None], y, sample_var=v, groups=G)
    assert m.score(x[:, None], y, sample_var=v, groups=G) == pytest.approx(
        m.loglik_, rel=1e-8
    )
    # relabelling groups does not change the held-out log-likelihood
    G2 = G.copy()
    G2[:, 0] = G2[:, 0] + 1000
    assert m.score(x[:, None], y, sample_var=v, groups=G2) == pytest.approx(
        m.loglik_, rel=1e-12
    )
    with pytest.raises(ValueError, match="sample_weight"):
        m.score(x[:, None], y, np.arange(y.size), sample_var=v, groups=G)


def test_random_slopes_score_equals_loglik():
    y, v, x, G = _nested(7, L=2, slopes=True)
    m = MultilevelMeta(
        method="ml", random_slopes={0: [0]}, covariance=["unstructured", "independent"]
    )
    m.fit(x[:, None], y, sample_var=v, groups=G, Z=x[:, None])
    assert m.score(x[:, None], y, sample_var=v, groups=G, Z=x[:, None]) == (
        pytest.approx(m.loglik_, rel=1e-8)
    )
    pi = m.predict_interval(np.array([[0.0], [1.0]]), Z=np.array([[0.0], [1.0]]))
    S = m._sigmas[0]
    width = (pi["pi_upper"] - pi["mean"]) / 1.959963984540054
    expect0 = np.sqrt(pi["se"][0] ** 2 + S[0, 0] + m.sigma2_[1])
    expect1 = np.sqrt(pi["se"][1] ** 2 + S.sum() + m.sigma2_[1])
    assert width[0] == pytest.approx(expect0, rel=1e-10)
    assert width[1] == pytest.approx(expect1, rel=1e-10)


def test_row_order_and_label_invariance():
    y, v, x, G = _nested(8, L=3)
    a = MultilevelMeta().fit(x[:, None], y, sample_var=v, groups=G)
    perm = np.random.default_rng(0).permutation(y.size)
    Gs = G.astype(object)[perm]
    Gs[:, 0] = np.array([f"d{g}" for g in Gs[:, 0]], dtype=object)
    b = MultilevelMeta().fit(x[perm, None], y[perm], sample_var=v[perm], groups=Gs)
    assert a.loglik_ == pytest.approx(b.loglik_, abs=1e-9)
    np.testing.assert_allclose(a.sigma2_, b.sigma2_, rtol=1e-5, atol=1e-9)


def test_labels_are_nested_in_their_parent():
    """School 1 of district A and school 1 of district B are different schools."""
    y, v, _, G = _nested(9, L=2)
    m = MultilevelMeta().fit(None, y, sample_var=v, groups=G)
    assert m.n_groups_.iloc[1] == len({(a, b) for a, b in G})
    assert m.n_groups_.iloc[1] > len(set(G[:, 1]))


# ---------------------------------------------------------------- sklearn
def _ml_estimators():
    return [MultilevelMeta(), MultilevelMeta(method="ml")]


EXPECTED_FAILED = {
    # zero columns in X is the intercept-only model (SPEC 2.2), not an error
    "check_estimators_empty_data_messages": "zero columns = intercept-only model",
}


# scikit-learn's checks fit without sample_var on purpose; the warning that
# says so is tested elsewhere and would only bury real warnings here
@pytest.mark.filterwarnings("ignore::skmeta.exceptions.SampleVarWarning")
@parametrize_with_checks(
    _ml_estimators(), expected_failed_checks=lambda e: EXPECTED_FAILED
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_clone_and_pickle():
    y, v, x, G = _nested(10, L=2)
    m = MultilevelMeta(random_slopes={0: [0]}).fit(
        x[:, None], y, sample_var=v, groups=G, Z=x[:, None]
    )
    c = clone(m)
    assert c.get_params() == m.get_params()
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.loglik_ == m.loglik_
    np.testing.assert_array_equal(m2.predict(x[:5, None]), m.predict(x[:5, None]))


@pytest.fixture
def routing():
    sklearn.set_config(enable_metadata_routing=True)
    yield
    sklearn.set_config(enable_metadata_routing=False)


def test_pipeline_groupkfold_routing(routing):
    """Pipeline + ColumnTransformer with sample_var, 2-D groups and Z routed; the
    outer level is split by GroupKFold and held-out districts are scored as new
    groups with their own sample_var."""
    y, v, x, G = _nested(11, n_outer=15, L=2, slopes=True)
    k = y.size
    df = pd.DataFrame({"x": x, "noise": np.random.default_rng(1).normal(size=k)})
    pipe = Pipeline(
        [
            ("ct", ColumnTransformer([("sc", StandardScaler(), ["x"])])),
            ("ml", MultilevelMeta(random_slopes={0: ["x"]})),
        ]
    )
    Z = pd.DataFrame({"x": x})
    splits = list(GroupKFold(n_splits=5).split(df, y, groups=G[:, 0]))
    res = cross_validate(
        pipe, df, y, cv=splits, params={"sample_var": v, "groups": G, "Z": Z}
    )
    assert np.all(np.isfinite(res["test_score"]))
    # fold 0 by hand: the held-out score is the log-density of new districts
    tr, te = splits[0]
    m = clone(pipe).fit(
        df.iloc[tr], y[tr], sample_var=v[tr], groups=G[tr], Z=Z.iloc[tr]
    )
    direct = m.score(df.iloc[te], y[te], sample_var=v[te], groups=G[te], Z=Z.iloc[te])
    assert res["test_score"][0] == pytest.approx(direct, rel=1e-10)
    # and equals the engine's Gaussian density at the fitted parameters
    est = m.named_steps["ml"]
    Xte = m.named_steps["ct"].transform(df.iloc[te])
    codes = ml.encode_nested_groups(G[te])
    Zl = [np.column_stack([np.ones(len(te)), x[te]]), None]
    ref = ml.marginal_loglik(
        y[te],
        v[te],
        np.column_stack([np.ones(len(te)), Xte]),
        codes,
        Zl,
        est._sigmas,
        est._beta,
    )
    assert direct == pytest.approx(ref, rel=1e-12)


def test_metadata_requests_default_true():
    req = MultilevelMeta().get_metadata_routing()
    for method in ("fit", "score"):
        r = getattr(req, method).requests
        assert r["sample_var"] is True and r["groups"] is True and r["Z"] is True


# ------------------------------------------------------------- bad input
def test_bad_input_errors():
    y, v, x, G = _nested(12, L=2)
    with pytest.raises(ValueError, match="single group"):
        MultilevelMeta().fit(
            None, y, sample_var=v, groups=np.column_stack([np.zeros(y.size), G[:, 1]])
        )
    Gn = G.astype(float)
    Gn[3, 1] = np.nan
    with pytest.raises(ValueError, match="groups"):
        MultilevelMeta().fit(None, y, sample_var=v, groups=Gn)
    Gs = np.column_stack([G[:, 0], np.arange(y.size)])
    with pytest.raises(ValueError, match="single observation"):
        MultilevelMeta(random_slopes={1: [0]}).fit(
            None, y, sample_var=v, groups=Gs, Z=x[:, None]
        )
    with pytest.raises(ValueError, match=r"covariance.*shape \(2, 2\)"):
        MultilevelMeta(
            random_slopes={0: [0]}, covariance=[np.eye(3), "independent"]
        ).fit(None, y, sample_var=v, groups=G, Z=x[:, None])
    with pytest.raises(ValueError, match="Z was not passed"):
        MultilevelMeta(random_slopes={0: [0]}).fit(None, y, sample_var=v, groups=G)
    with pytest.raises(ValueError, match="groups has"):
        MultilevelMeta().fit(None, y, sample_var=v, groups=G[:-1])
    with pytest.raises(ValueError, match="covariance must be"):
        MultilevelMeta(covariance="banded").fit(None, y, sample_var=v, groups=G)
    with pytest.raises(ValueError, match="symmetric"):
        MultilevelMeta(
            random_slopes={0: [0]},
            covariance=[
                np.array([[np.nan, 0.5], [0.2, np.nan]], dtype=object),
                "independent",
            ],
        ).fit(None, y, sample_var=v, groups=G, Z=x[:, None])


def test_nonconvergence_warns():
    y, v, x, G = _nested(13, L=3, slopes=True)
    with pytest.warns(ConvergenceWarning):
        m = MultilevelMeta(
            max_iter=1, n_starts=1, random_slopes={0: [0]}, covariance="unstructured"
        ).fit(x[:, None], y, sample_var=v, groups=G, Z=x[:, None])
    assert m.converged_ is False
    assert np.all(np.isfinite(m.coef_))


def test_summary_and_views():
    y, v, x, G = _nested(14, L=2, slopes=True)
    m = MultilevelMeta(random_slopes={0: [0]}, covariance=["unstructured", "identity"])
    m.fit(
        pd.DataFrame({"dose": x}),
        y,
        sample_var=v,
        groups=pd.DataFrame({"district": G[:, 0], "school": G[:, 1]}),
        Z=pd.DataFrame({"dose": x}),
    )
    s = m.summary()
    assert list(s.to_frame().index) == ["intercept", "dose"]
    assert list(s.to_frame().columns) == [
        "estimate",
        "se",
        "statistic",
        "p_value",
        "ci_lower",
        "ci_upper",
    ]
    text = str(s)
    assert "district: corr(dose, intercept)" in text and "Q (df" in text
    assert "<table" in s._repr_html_()
    sd = m.re_parameters("sd")["estimate"]
    var = m.re_parameters("var")["estimate"]
    assert sd[("district", "sd(dose)")] ** 2 == pytest.approx(
        var[("district", "var(dose)")]
    )
    S = m.re_covariances_["district"]
    assert S.loc["dose", "intercept"] == pytest.approx(
        var[("district", "cov(dose, intercept)")]
    )
    assert set(m.random_effects_) == {"district", "school"}
    district = m.random_effects_["district"]
    assert list(district.columns) == [
        ("estimate", "intercept"),
        ("estimate", "dose"),
        ("se", "intercept"),
        ("se", "dose"),
    ]
    assert list(district["estimate"].columns) == ["intercept", "dose"]
    assert list(m.random_effects_["school"].columns) == ["estimate", "se"]


def test_zero_sampling_variance_is_a_linear_mixed_model():
    """sample_var=None: an ordinary LMM (innermost level = residual error),
    cross-checked against statsmodels' MixedLM."""
    smf = pytest.importorskip("statsmodels.formula.api")
    rng = np.random.default_rng(3)
    k = 150
    g = rng.integers(0, 15, k)
    x = rng.normal(size=k)
    y = 1 + 0.5 * x + rng.normal(0, 0.7, 15)[g] + rng.normal(0, 0.5, k)
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    groups = np.column_stack([g, np.arange(k)])
    X = np.column_stack([np.ones(k), x])
    for reml in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = smf.mixedlm("y ~ x", df, groups=df["g"]).fit(reml=reml)
        m = MultilevelMeta(method="reml" if reml else "ml").fit(
            df[["x"]], y, groups=groups
        )
        np.testing.assert_allclose(
            [m.intercept_, *m.coef_], ref.params.values[:2], rtol=1e-5
        )
        # the flat likelihood makes statsmodels' stopping rule the limit
        # (~1e-4 relative); our (restricted) log-likelihood is never lower
        np.testing.assert_allclose(
            m.sigma2_, [ref.cov_re.values[0, 0], ref.scale], rtol=5e-4
        )
        # statsmodels' REML criterion omits metafor's +1/2 log|X'X|
        const = 0.5 * np.linalg.slogdet(X.T @ X)[1] if reml else 0.0
        assert m.loglik_ - const == pytest.approx(ref.llf, abs=1e-5)
        assert m.loglik_ - const >= ref.llf - 1e-9
    # random slopes (ML): statsmodels stops early here; our optimum is at
    # least as good
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = smf.mixedlm("y ~ x", df, groups=df["g"], re_formula="~x").fit(reml=False)
    m = MultilevelMeta(
        method="ml", random_slopes={0: [0]}, covariance=["unstructured", "independent"]
    )
    m.fit(df[["x"]], y, groups=groups, Z=df[["x"]])
    assert m.loglik_ >= ref.llf - 1e-8
    np.testing.assert_allclose(m._sigmas[0], ref.cov_re.values, rtol=5e-3)


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_scale_equivariance(scale):
    """y -> c y, v -> c^2 v: beta scales by c, variances by c^2 (extreme c)."""
    y, v, x, G = _nested(15, L=3, slopes=True)
    kw = {
        "random_slopes": {0: [0]},
        "covariance": ["unstructured", "independent", "independent"],
    }
    a = MultilevelMeta(**kw).fit(x[:, None], y, sample_var=v, groups=G, Z=x[:, None])
    b = MultilevelMeta(**kw).fit(
        x[:, None], scale * y, sample_var=scale**2 * v, groups=G, Z=x[:, None]
    )
    np.testing.assert_allclose(b.coef_, scale * a.coef_, rtol=1e-5)
    assert b.intercept_ == pytest.approx(scale * a.intercept_, rel=1e-5)
    np.testing.assert_allclose(
        b._sigmas[0], scale**2 * a._sigmas[0], rtol=1e-4, atol=1e-8 * scale**2
    )
    np.testing.assert_allclose(
        b.sigma2_, scale**2 * a.sigma2_, rtol=1e-4, atol=1e-8 * scale**2
    )


def test_zero_sampling_variance_needs_an_observation_level():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(6), 5)
    y = rng.normal(size=30)
    with pytest.raises(ValueError, match="observation-level column"):
        MultilevelMeta().fit(None, y, groups=g)
    m = MultilevelMeta().fit(None, y, groups=np.column_stack([g, np.arange(30)]))
    assert np.all(np.isfinite(m.sigma2_)) and m.sigma2_[1] > 0


# ------------------------------------------------------------ properties
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n_outer=st.integers(2, 6),
    L=st.integers(1, 3),
    log_scale=st.floats(-6, 6),
    reml=st.booleans(),
)
def test_property_recursion_equals_dense_and_order_invariant(
    seed, n_outer, L, log_scale, reml
):
    """Random nested designs at extreme scales: the O(k) recursion equals the
    per-cluster dense computation (value and gradient), and permuting the rows
    changes nothing."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, n_outer)
    k = int(sizes.sum())
    outer = np.repeat(np.arange(n_outer), sizes)
    G = np.column_stack([outer, rng.integers(0, 2, k), np.arange(k)])[:, 3 - L :]
    if L == 3:
        G[:, 0] = outer
    scale = 10.0**log_scale
    v = scale * rng.uniform(0.1, 2.0, k)
    y = np.sqrt(scale) * rng.normal(size=k)
    X = np.column_stack([np.ones(k), rng.normal(size=k)])
    codes = ml.encode_nested_groups(G)
    s2 = scale * rng.uniform(0.0, 2.0, L)
    rec = ml.prepare_intercepts(y, v, X, codes)
    dense = ml.prepare_design(y, v, X, codes, [None] * L)
    a = ml.intercept_loglik(rec, s2, reml)
    b = ml.profile_loglik(dense, [np.array([[s]]) for s in s2], reml)
    assert a.loglik == pytest.approx(b.loglik, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(
        [g[0, 0] for g in a.grads],
        [g[0, 0] for g in b.grads],
        rtol=1e-7,
        atol=1e-9 / scale,
    )
    perm = rng.permutation(k)
    codes_p = ml.encode_nested_groups(G[perm])
    c = ml.intercept_loglik(
        ml.prepare_intercepts(y[perm], v[perm], X[perm], codes_p), s2, reml
    )
    assert c.loglik == pytest.approx(a.loglik, rel=1e-10, abs=1e-9)


# ------------------------------------------------------------ vocabulary
def test_shared_vocabulary_names_and_types():
    y, v, x, G = _nested(16, L=2, slopes=True)
    m = MultilevelMeta(random_slopes={0: [0]}).fit(
        x[:, None], y, sample_var=v, groups=G, Z=x[:, None]
    )
    for name in ("q_", "q_pvalue_", "qm_", "qm_pvalue_", "loglik_"):
        assert isinstance(getattr(m, name), float), name
    assert list(m.i2_.index) == ["level0", "level1", "total", "cochran"]
    assert list(m.h2_.index) == list(m.i2_.index)
    assert m.h2_["total"] == pytest.approx(1.0 / (1.0 - m.i2_["total"] / 100.0))
    assert isinstance(m.n_groups_, pd.Series)
    assert list(m.n_groups_.index) == ["level0", "level1"]
    assert m.robust_dof_ is None
    inner = m.random_effects_["level1"]
    assert list(inner.columns) == ["estimate", "se"]
    outer = m.random_effects_["level0"]
    assert list(outer.columns.get_level_values(0).unique()) == ["estimate", "se"]
    ci = m.sigma2_confint("level1")
    assert list(ci.columns) == ["estimate", "ci_lower", "ci_upper"]
    res = m.lr_test_level(1)
    for field in ("statistic", "df", "p_value", "p_value_boundary"):
        assert hasattr(res, field)
    no_mods = MultilevelMeta().fit(None, y, sample_var=v, groups=G)
    assert np.isnan(no_mods.qm_) and np.isnan(no_mods.qm_pvalue_)


@pytest.mark.parametrize("kind", ["cr0", "cr1", "cr2"])
def test_cluster_robust_one_level_equals_random_effects(kind):
    """With one effect size per group the multilevel model is the random-effects
    model, and its cluster-robust covariance (the multilevel whitening path)
    equals RandomEffectsMeta's (diagonal weights) with the same clusters."""
    rng = np.random.default_rng(1)
    k = 30
    X = rng.normal(size=(k, 2))
    v = rng.uniform(0.01, 0.2, k)
    y = 0.2 + X @ [0.3, -0.1] + rng.normal(0, np.sqrt(v + 0.1))
    a = MultilevelMeta(cluster_robust=kind).fit(X, y, sample_var=v)
    b = RandomEffectsMeta(cluster_robust=kind, tol=1e-14, max_iter=1000).fit(
        X, y, sample_var=v, groups=np.arange(k)
    )
    # agreement limited by the two tau^2 optimizers (~1e-9 relative)
    np.testing.assert_allclose(a.cov_params_, b.cov_params_, rtol=1e-6)
    np.testing.assert_allclose(a.robust_dof_, b.robust_dof_, rtol=1e-6)
    assert a.qm_ == pytest.approx(b.qm_, rel=1e-6)
    assert a.qm_pvalue_ == pytest.approx(b.qm_pvalue_, rel=1e-5)
    pa, pb = a.predict_interval(X[:4]), b.predict_interval(X[:4])
    np.testing.assert_allclose(pa.to_numpy(), pb.to_numpy(), rtol=1e-6, atol=1e-9)
    text = str(a.summary())
    assert kind.upper() in text and f"{k} clusters" in text


def test_cluster_robust_needs_more_clusters_than_coefficients():
    y, v, x, G = _nested(17, n_outer=3, L=2)
    X = np.column_stack([x, x**2, np.sin(x)])
    with pytest.raises(ValueError, match="more clusters"):
        MultilevelMeta(cluster_robust="cr2").fit(X, y, sample_var=v, groups=G)
