"""Dependent effect sizes: rho, sample_cov and impute_covariance.

Identities (rho = 0 is the independent model; a cluster of one effect size is
unaffected by rho; sample_cov built from rho equals rho), the two likelihood
paths against each other and against the k x k textbook formula, bad input,
and cross-validation of rho with held-out clusters. Agreement with metafor and
clubSandwich is in test_reference_dependent.py.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from scipy import sparse
from sklearn.model_selection import GridSearchCV, GroupKFold

from skmeta import MultilevelMeta, impute_covariance
from skmeta._engine import _dependence as dep
from skmeta._engine import _multilevel as ml
from skmeta.datasets import load_assink2016


def _clustered(seed=0, n_clusters=12, max_size=6, slopes=False):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_size + 1, n_clusters)
    k = int(sizes.sum())
    study = np.repeat(np.arange(n_clusters), sizes)
    x = rng.normal(size=k)
    v = rng.uniform(0.01, 0.1, k)
    y = (
        0.2
        + 0.1 * x
        + rng.normal(0, 0.3, n_clusters)[study]
        + (rng.normal(0, 0.1, n_clusters)[study] * x if slopes else 0.0)
        + rng.normal(0, 0.15, k)
        + rng.normal(0, np.sqrt(v))
    )
    return y, v, x, np.column_stack([study, np.arange(k)])


def _dense_loglik(y, v, X, G, sigma2, rho, reml):
    """The textbook (RE)ML formula with the k x k covariance."""
    k, p = X.shape
    same = G[:, 0][:, None] == G[:, 0][None, :]
    R = np.where(same, rho * np.sqrt(np.outer(v, v)), 0.0)
    np.fill_diagonal(R, v)
    V = R + sigma2[0] * same
    for lev in range(1, G.shape[1]):
        V = V + sigma2[lev] * (G[:, lev][:, None] == G[:, lev][None, :]) * same
    Vi = np.linalg.inv(V)
    H = X.T @ Vi @ X
    beta = np.linalg.solve(H, X.T @ Vi @ y)
    r = y - X @ beta
    ll = -0.5 * (k * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + r @ Vi @ r)
    if reml:
        ll += 0.5 * (
            p * np.log(2 * np.pi)
            - np.linalg.slogdet(H)[1]
            + np.linalg.slogdet(X.T @ X)[1]
        )
    return ll


# ------------------------------------------------------------ identities
def test_rho_zero_is_the_independent_model_exactly():
    y, v, x, G = _clustered(1)
    a = MultilevelMeta().fit(x[:, None], y, sample_var=v, groups=G)
    b = MultilevelMeta(rho=0.0).fit(x[:, None], y, sample_var=v, groups=G)
    assert a.loglik_ == b.loglik_
    np.testing.assert_array_equal(a.sigma2_, b.sigma2_)
    np.testing.assert_array_equal(a.cov_params_, b.cov_params_)
    pd.testing.assert_series_equal(a.i2_, b.i2_)


def test_clusters_of_one_effect_size_are_unaffected_by_rho():
    y, v, x, G = _clustered(2)
    singles = np.column_stack([np.arange(y.size), np.arange(y.size)])[:, :1]
    a = MultilevelMeta().fit(x[:, None], y, sample_var=v, groups=singles)
    b = MultilevelMeta(rho=0.8).fit(x[:, None], y, sample_var=v, groups=singles)
    assert a.loglik_ == b.loglik_
    np.testing.assert_array_equal(a.cov_params_, b.cov_params_)
    V = impute_covariance(v, G[:, 0], 0.8).toarray()
    sizes = np.bincount(G[:, 0])
    single = np.flatnonzero(sizes[G[:, 0]] == 1)
    assert single.size
    for i in single:
        assert V[i, i] == v[i] and np.count_nonzero(V[i]) == 1


@pytest.mark.parametrize("as_sparse", [True, False])
@pytest.mark.parametrize("kind", [None, "cr2"])
def test_sample_cov_from_rho_equals_rho(as_sparse, kind):
    y, v, x, G = _clustered(3)
    V = impute_covariance(v, G, 0.6, sparse=as_sparse)
    a = MultilevelMeta(rho=0.6, cluster_robust=kind).fit(
        x[:, None], y, sample_var=v, groups=G
    )
    b = MultilevelMeta(cluster_robust=kind).fit(x[:, None], y, sample_cov=V, groups=G)
    assert a.loglik_ == pytest.approx(b.loglik_, rel=1e-12)
    np.testing.assert_allclose(a.sigma2_, b.sigma2_, rtol=1e-10)
    np.testing.assert_allclose(a.cov_params_, b.cov_params_, rtol=1e-9)
    assert a.q_ == pytest.approx(b.q_, rel=1e-12)
    pd.testing.assert_series_equal(a.i2_, b.i2_, rtol=1e-9)
    assert b.score(x[:, None], y, sample_cov=V, groups=G) == pytest.approx(
        a.score(x[:, None], y, sample_var=v, groups=G), rel=1e-12
    )


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_loglik_paths_equal_the_textbook_formula(reml, levels):
    """One level and two levels with single-effect inner groups use the rotated
    O(k) recursion, three levels the batched dense path: all equal the k x k
    formula, with the gradient of each path equal to the dense one."""
    y, v, x, G = _clustered(4)
    if levels == 3:
        G = np.column_stack([G[:, 0], np.arange(y.size) % 2, G[:, 1]])
    G = G[:, :levels]
    X = np.column_stack([np.ones(y.size), x])
    codes = ml.encode_nested_groups(G)
    cov = dep.correlation_covariance(v, codes[:, 0], 0.7)
    s2 = np.array([0.05, 0.02, 0.01])[:levels]
    rec = ml.prepare_intercepts(y, v, X, codes, cov)
    dense = ml.prepare_design(y, v, X, codes, [None] * levels, cov)
    assert (rec is None) == (levels == 3)
    b = ml.profile_loglik(dense, [np.array([[s]]) for s in s2], reml)
    assert b.loglik == pytest.approx(
        _dense_loglik(y, v, X, G, s2, 0.7, reml), rel=1e-12
    )
    if rec is not None:
        a = ml.intercept_loglik(rec, s2, reml, blups=True)
        assert a.loglik == pytest.approx(b.loglik, rel=1e-12)
        np.testing.assert_allclose(
            [g[0, 0] for g in a.grads], [g[0, 0] for g in b.grads], rtol=1e-9
        )
        bl = ml.random_effects_blups(
            dense, [np.array([[s]]) for s in s2], b.beta, b.cov
        )
        for u, w in zip(a.blups, bl, strict=True):
            np.testing.assert_allclose(u.estimate, w.estimate, atol=1e-12)
            np.testing.assert_allclose(u.se, w.se, atol=1e-12)


def test_correlated_random_slopes_use_the_dense_path():
    y, v, x, G = _clustered(5, slopes=True)
    m = MultilevelMeta(
        rho=0.5,
        random_slopes={0: [0]},
        covariance=["unstructured", "independent"],
        method="ml",
    ).fit(x[:, None], y, sample_var=v, groups=G, Z=x[:, None])
    assert m.converged_
    assert m.score(x[:, None], y, sample_var=v, groups=G, Z=x[:, None]) == (
        pytest.approx(m.loglik_, rel=1e-9)
    )


def test_score_with_rho_equals_loglik_under_ml():
    y, v, x, G = _clustered(6)
    m = MultilevelMeta(rho=0.4, method="ml").fit(x[:, None], y, sample_var=v, groups=G)
    assert m.score(x[:, None], y, sample_var=v, groups=G) == pytest.approx(
        m.loglik_, rel=1e-9
    )


def test_missing_rows_are_dropped_from_sample_cov():
    y, v, x, G = _clustered(7)
    V = impute_covariance(v, G, 0.5).toarray()
    y_nan = y.copy()
    y_nan[[3, 10]] = np.nan
    keep = ~np.isnan(y_nan)
    a = MultilevelMeta(missing="drop").fit(x[:, None], y_nan, sample_cov=V, groups=G)
    b = MultilevelMeta().fit(
        x[keep, None], y[keep], sample_cov=V[np.ix_(keep, keep)], groups=G[keep]
    )
    assert a.n_missing_ == 2
    assert a.loglik_ == pytest.approx(b.loglik_, rel=1e-12)


def test_study_weights_with_sample_cov():
    y, v, _, G = _clustered(8)
    V = impute_covariance(v, G, 0.5)
    a = MultilevelMeta(rho=0.5).fit(None, y, sample_var=v, groups=G)
    b = MultilevelMeta().fit(None, y, sample_cov=V, groups=G)
    np.testing.assert_allclose(
        a._study_weights(v, groups=G), b._study_weights(None, groups=G, sample_cov=V)
    )
    with pytest.raises(ValueError, match="sample_cov"):
        b.score(None, y, sample_var=v, groups=G)


# ------------------------------------------------------------- bad input
@pytest.mark.parametrize("rho", [-1.0, 1.0, 1.5, -2, np.nan, "0.5"])
def test_rho_outside_the_open_interval_is_an_error(rho):
    y, v, _, G = _clustered(9)
    with pytest.raises(ValueError, match="rho"):
        MultilevelMeta(rho=rho).fit(None, y, sample_var=v, groups=G)


def test_negative_rho_too_large_for_the_cluster_size():
    y, v, _, G = _clustered(10, max_size=6)
    with pytest.raises(ValueError, match=r"rho > -1/\(n - 1\)"):
        MultilevelMeta(rho=-0.4).fit(None, y, sample_var=v, groups=G)


def _bad_cov(case, v, G):
    V = impute_covariance(v, G, 0.5).toarray()
    k = v.size
    largest = np.argmax(np.bincount(G[:, 0]))
    first = np.flatnonzero(G[:, 0] == largest)
    assert first.size > 1
    if case == "not PD":
        V[first[0], first[1]] = V[first[1], first[0]] = 2 * np.sqrt(
            v[first[0]] * v[first[1]]
        )
    elif case == "not symmetric":
        V[first[0], first[1]] *= 1.01
    elif case == "wrong shape":
        V = V[:-1, :-1]
    elif case == "spans clusters":
        j = np.flatnonzero(G[:, 0] != G[0, 0])[0]
        V[0, j] = V[j, 0] = 0.1 * np.sqrt(v[0] * v[j])
    elif case == "NaN":
        V[0, 0] = np.nan
    elif case == "not square":
        V = V[:, :-1]
    assert V.shape[0] in (k, k - 1)
    return V


@pytest.mark.parametrize(
    "case, match",
    [
        ("not PD", "positive definite"),
        ("not symmetric", "symmetric"),
        ("wrong shape", "shape"),
        ("spans clusters", "block diagonal"),
        ("NaN", "NaN"),
        ("not square", "square"),
    ],
)
@pytest.mark.parametrize("as_sparse", [False, True])
def test_bad_sample_cov_is_a_clear_error(case, match, as_sparse):
    y, v, _, G = _clustered(11)
    V = _bad_cov(case, v, G)
    if as_sparse and case != "not square":
        V = sparse.csr_array(V)
    with pytest.raises(ValueError, match=match):
        MultilevelMeta().fit(None, y, sample_cov=V, groups=G)


def test_sample_cov_and_rho_together_and_mismatched_variances():
    y, v, _, G = _clustered(12)
    V = impute_covariance(v, G, 0.5)
    with pytest.raises(ValueError, match="either rho or sample_cov"):
        MultilevelMeta(rho=0.5).fit(None, y, sample_cov=V, groups=G)
    with pytest.raises(ValueError, match="diagonal of sample_cov"):
        MultilevelMeta().fit(None, y, sample_var=2 * v, sample_cov=V, groups=G)
    # the same variances are fine
    MultilevelMeta().fit(None, y, sample_var=v, sample_cov=V, groups=G)


# ------------------------------------------------------ impute_covariance
def test_impute_covariance_formula():
    v = np.array([0.04, 0.09, 0.01, 0.16, 0.25])
    g = np.array(["a", "a", "b", "a", "c"])
    V = impute_covariance(v, g, 0.3, sparse=False)
    expected = np.diag(v)
    for i, j in [(0, 1), (0, 3), (1, 3)]:
        expected[i, j] = expected[j, i] = 0.3 * np.sqrt(v[i] * v[j])
    np.testing.assert_array_equal(V, expected)
    S = impute_covariance(v, g, 0.3)
    assert sparse.issparse(S) and S.nnz == 5 + 6
    # equal obs: the same measure (correlation 1); time: AR(1) factor
    obs = np.array([1, 1, 1, 2, 1])
    t = np.array([0.0, 2.0, 0.0, 3.0, 0.0])
    V = impute_covariance(v, g, 0.3, obs=obs, time=t, phi=0.5, sparse=False)
    assert V[0, 1] == pytest.approx(0.5**2 * np.sqrt(v[0] * v[1]))
    assert V[0, 3] == pytest.approx(0.3 * 0.5**3 * np.sqrt(v[0] * v[3]))
    # constructs: rho = (within, between)
    V = impute_covariance(v, g, (0.3, 0.1), construct=[1, 1, 1, 2, 1], sparse=False)
    assert V[0, 1] == pytest.approx(0.3 * np.sqrt(v[0] * v[1]))
    assert V[0, 3] == pytest.approx(0.1 * np.sqrt(v[0] * v[3]))
    # contrasts: arms 1 and 2 against a shared control (group sizes n1, n2, nc)
    # give r = (1/nc) / sqrt((1/n1 + 1/nc)(1/n2 + 1/nc)); a third contrast of
    # two other groups is independent of both
    n = np.array([10.0, 20.0, 30.0])
    V = impute_covariance(
        v[:3],
        [1, 1, 1],
        condition1=["t1", "t2", "x"],
        condition2=["c", "c", "y"],
        weight1=n,
        weight2=[40.0, 40.0, 50.0],
        sparse=False,
    )
    r = (1 / 40) / np.sqrt((1 / 10 + 1 / 40) * (1 / 20 + 1 / 40))
    assert V[0, 1] == pytest.approx(r * np.sqrt(v[0] * v[1]), rel=1e-14)
    assert V[0, 2] == V[1, 2] == 0
    # a within-subject contrast (time 2 - time 1 and time 3 - time 1 in one group)
    V = impute_covariance(
        v[:2],
        [1, 1],
        condition1=["a", "a"],
        condition2=["a", "a"],
        time=[2.0, 3.0],
        time2=[1.0, 1.0],
        phi=0.5,
        sparse=False,
    )
    cov = 0.5 - 0.25 - 0.5 + 1  # C(2,3) - C(2,1) - C(1,3) + C(1,1)
    r = cov / np.sqrt((2 - 2 * 0.5) * (2 - 2 * 0.25))
    assert V[0, 1] == pytest.approx(r * np.sqrt(v[0] * v[1]), rel=1e-14)
    # subgroups are independent
    V = impute_covariance(v, g, 0.3, subgroups=[1, 2, 1, 1, 1], sparse=False)
    assert V[0, 1] == 0 and V[0, 3] != 0


def test_impute_covariance_bad_input_and_warning():
    v = np.array([0.04, 0.09, 0.01])
    g = [1, 1, 2]
    for kwargs, match in [
        ({"rho": 1.5}, "rho"),
        ({"rho": np.nan}, "rho"),
        ({}, "Nothing to impute"),
        ({"rho": 0.3, "time": [1, 2, 3]}, "phi"),
        ({"rho": 0.3, "phi": 0.5}, "phi needs time"),
        ({"obs": [1, 2, 3]}, "obs needs rho"),
        ({"rho": 0.3, "obs": [1, 2]}, "obs"),
        ({"rho": 0.3, "construct": [1, 1, 2]}, "pair"),
        ({"rho": (0.3, 1.2), "construct": [1, 1, 2]}, r"rho\[1\]"),
        ({"construct": [1, 1, 2]}, "pair"),
        ({"condition1": [1, 2, 1]}, "both condition1 and condition2"),
        ({"rho": 0.3, "weight1": [1, 2, 3]}, "weight1 needs condition1"),
        ({"rho": 0.3, "time2": [1, 2, 3]}, "time2 needs condition1"),
        (
            {"condition1": [1, 2, 1], "condition2": [3, 3, 3], "time2": [1, 2, 3]},
            "time2 needs time",
        ),
        (
            {"condition1": [1, 2, 1], "condition2": [3, 3, 3], "weight1": [1, 0, 1]},
            "weight1 must be positive",
        ),
        ({"condition1": [1, 2, 1], "condition2": [3, 3]}, "condition2 must have"),
        ({"condition1": ["a", "b", "c"], "condition2": ["a", "c", "d"]}, "Row 0"),
    ]:
        with pytest.raises(ValueError, match=match):
            impute_covariance(v, g, **kwargs)
    with pytest.raises(ValueError, match="groups"):
        impute_covariance(v, [1, None, 2], 0.3)
    with pytest.raises(ValueError, match="sample_var"):
        impute_covariance([0.1, -0.1, 0.2], g, 0.3)
    with pytest.warns(UserWarning, match="not positive definite"):
        impute_covariance(v, g, time=[1.0, 1.0, 2.0], phi=0.5)


# ------------------------------------------------------ cross-validation
@pytest.fixture
def routing():
    sklearn.set_config(enable_metadata_routing=True)
    yield
    sklearn.set_config(enable_metadata_routing=False)


def test_rho_grid_with_held_out_clusters(routing):
    """rho is a hyperparameter: GridSearchCV over rho with GroupKFold on the
    outermost level scores every held-out fold with its own sample_var (and the
    fold's rho) as new clusters."""
    df = load_assink2016()
    y, v = df["yi"].to_numpy(), df["vi"].to_numpy()
    G = df[["study", "id"]].to_numpy()
    X = df[["year"]].to_numpy(float)
    est = MultilevelMeta(method="ml").set_fit_request(groups="levels")
    est.set_score_request(groups="levels")
    cv = GroupKFold(n_splits=4)
    grid = GridSearchCV(est, {"rho": [0.0, 0.3, 0.6, 0.9]}, cv=cv)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid.fit(X, y, sample_var=v, levels=G, groups=G[:, 0])
    splits = list(cv.split(X, y, groups=G[:, 0]))
    for i, rho in enumerate([0.0, 0.3, 0.6, 0.9]):
        for s, (tr, te) in enumerate(splits):
            m = MultilevelMeta(method="ml", rho=rho).fit(
                X[tr], y[tr], sample_var=v[tr], groups=G[tr]
            )
            want = m.score(X[te], y[te], sample_var=v[te], groups=G[te])
            got = grid.cv_results_[f"split{s}_test_score"][i]
            assert got == pytest.approx(want, rel=1e-10)
    scores = grid.cv_results_["mean_test_score"]
    assert np.unique(scores).size == 4  # rho changes the held-out likelihood
