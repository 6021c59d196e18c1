"""Regression tests for MultilevelMeta (issue 10: no silently wrong answer).

Each test failed before its fix (see the commit messages). The data of the
school-calendar examples are metafor's ``dat.konstantopoulos2011`` (through
``tests/reference/multilevel.json``).
"""

import json
import threading
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GroupKFold, KFold, cross_validate
from threadpoolctl import threadpool_info

from skmeta import MultilevelMeta
from skmeta._engine import _ml_fit as mlf
from skmeta._engine import _multilevel as ml
from skmeta._engine._gls import logdet_crossprod, profiled_loglik, weighted_fit

REF = json.loads((Path(__file__).parent / "reference" / "multilevel.json").read_text())


def _school_calendar():
    return pd.DataFrame(REF["data"]["konstantopoulos2011"])


def _heterogeneous(seed, k=15, slope=True):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(k, 1))
    v = rng.uniform(0.01, 0.2, k)
    y = 0.2 + (0.3 * X[:, 0] if slope else 0.0) + rng.normal(0, np.sqrt(v + 0.3))
    return X, y, v


# ------------------------------------------------ optimizer certification
@pytest.mark.parametrize("huge", [1e18, 1e20])
@pytest.mark.parametrize("method", ["reml", "ml"])
def test_one_huge_sampling_variance_does_not_hide_the_heterogeneity(huge, method):
    """A study with v >= 1e18 carries no information: the fit equals the fit
    without it (it used to stop at sigma^2 = 0, far below the maximum)."""
    X, y, v = _heterogeneous(0)
    v2 = v.copy()
    v2[3] = huge
    a = MultilevelMeta(method=method).fit(X, y, sample_var=v2)
    keep = np.arange(y.size) != 3
    b = MultilevelMeta(method=method).fit(X[keep], y[keep], sample_var=v[keep])
    assert a.converged_
    assert b.sigma2_[0] > 0.05
    np.testing.assert_allclose(a.sigma2_, b.sigma2_, rtol=1e-6)
    np.testing.assert_allclose(a._beta, b._beta, rtol=1e-6)


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_one_huge_sampling_variance_in_a_three_level_model(method):
    df = _school_calendar()
    y, v = df["yi"].to_numpy(), df["vi"].to_numpy().copy()
    G = df[["district", "school"]].to_numpy()
    v[10] = 1e18
    a = MultilevelMeta(method=method).fit(None, y, sample_var=v, groups=G)
    keep = np.arange(y.size) != 10
    b = MultilevelMeta(method=method).fit(
        None, y[keep], sample_var=v[keep], groups=G[keep]
    )
    np.testing.assert_allclose(a.sigma2_, b.sigma2_, rtol=1e-6)
    assert a.intercept_ == pytest.approx(b.intercept_, rel=1e-6)


def _profile_grid(X, y, v, reml):
    """(RE)ML log-likelihood of the one-level model on a fine tau^2 grid, from
    the shared weighted least-squares core (an independent code path)."""
    design = np.column_stack([np.ones(y.size), X])
    k, p = design.shape
    spread = float(np.var(y)) + float(np.median(v))
    grid = np.concatenate([[0.0], np.geomspace(1e-10, 10.0, 2000) * spread])
    if np.any(v == 0):
        grid = grid[1:]  # V is singular at tau^2 = 0
    out = []
    for t2 in grid:
        fit = weighted_fit(design, y, 1.0 / (v + t2))
        out.append(
            profiled_loglik(
                k,
                p,
                float(np.log(v + t2).sum()),
                fit.rss,
                reml=reml,
                logdet_xtvx=fit.logdet,
                logdet_xtx=logdet_crossprod(design),
            )
        )
    return np.array(out)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(5, 25),
    special=st.sampled_from(["zero", "1e-12", "1e-9", "1e6 median"]),
    reml=st.booleans(),
)
def test_property_loglik_at_least_the_tau2_grid_maximum(seed, k, special, reml):
    """With one sampling variance in {0, 1e-12, 1e-9, 1e6 x median}, the fitted
    (restricted) log-likelihood is at least the maximum over a fine tau^2 grid
    (up to rounding: 1e-8 relative). ML with a zero variance has no maximum
    (the likelihood grows without bound as tau^2 -> 0): an error."""
    X, y, v = _heterogeneous(seed, k)
    i = seed % k
    med = float(np.median(v))
    v[i] = {"zero": 0.0, "1e-12": 1e-12, "1e-9": 1e-9, "1e6 median": 1e6 * med}[special]
    est = MultilevelMeta(method="reml" if reml else "ml")
    if special == "zero" and not reml:
        with pytest.raises(ValueError, match="without bound"):
            est.fit(X, y, sample_var=v)
        return
    est.fit(X, y, sample_var=v)
    assert est.converged_
    best = _profile_grid(X, y, v, reml).max()
    assert est.loglik_ >= best - 1e-8 * (1.0 + abs(best))


# ------------------------------------------------------- level arguments
@pytest.fixture(scope="module")
def three_level():
    df = _school_calendar()
    return MultilevelMeta().fit(
        None, df["yi"], sample_var=df["vi"], groups=df[["district", "school"]]
    )


@pytest.mark.parametrize("level", [-1, 2, 5, "nope", True, 1.0, None])
def test_lr_test_level_rejects_unknown_levels(three_level, level):
    """lr_test_level(-1) compared the model with itself (statistic 0, p = 1)."""
    with pytest.raises(ValueError, match="level"):
        three_level.lr_test_level(level)


@pytest.mark.parametrize("level", [-1, 2, 5, "nope", True])
def test_sigma2_confint_rejects_unknown_levels(three_level, level):
    with pytest.raises(ValueError, match="level"):
        three_level.sigma2_confint(level)


@pytest.mark.parametrize("bad", ["0.95", None, 0, 1, 1.5, np.nan, -0.5])
def test_sigma2_confint_validates_confidence_level(three_level, bad):
    with pytest.raises(ValueError, match="confidence_level"):
        three_level.sigma2_confint(0, confidence_level=bad)


def test_sigma2_confint_accepts_numpy_scalars(three_level):
    a = three_level.sigma2_confint("school", confidence_level=np.float32(0.9))
    b = three_level.sigma2_confint(1, confidence_level=np.array(0.9))
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["estimate", "ci_lower", "ci_upper"]


def test_lr_test_level_refits_with_the_same_starts(monkeypatch):
    """The reduced model of lr_test_level got 3 starts while the full random-slope
    model had 8: the same search for both."""
    df = _school_calendar()
    df["year_c"] = df["year"] - 1990
    seen = []
    original = mlf.fit_multilevel

    def spy(*args, **kwargs):
        seen.append(kwargs["n_starts"])
        return original(*args, **kwargs)

    monkeypatch.setattr(mlf, "fit_multilevel", spy)
    m = MultilevelMeta(random_slopes={"district": ["year_c"]}).fit(
        df[["year_c"]],
        df["yi"],
        sample_var=df["vi"],
        groups=df[["district", "school"]],
        Z=df[["year_c"]],
    )
    res = m.lr_test_level("school")
    assert seen == [8, 8]
    assert res.df == 1 and res.statistic >= 0
    assert res.p_value_boundary == pytest.approx(0.5 * res.p_value)


# ------------------------------------------------------------- threads
def _blas_threads():
    return sorted(
        (lib["filepath"], lib["num_threads"])
        for lib in threadpool_info()
        if lib["user_api"] == "blas"
    )


def test_concurrent_fits_leave_the_blas_threads_alone():
    """Fitting in threads left OpenBLAS at 1 thread for the whole process
    (threadpoolctl's limit is process-global and was restored out of order)."""
    df = _school_calendar()
    args = (None, df["yi"].to_numpy(), df["vi"].to_numpy())
    G = df[["district", "school"]].to_numpy()
    before = _blas_threads()
    barrier = threading.Barrier(6)
    results, errors = [], []

    def work():
        try:
            barrier.wait()
            for _ in range(4):
                m = MultilevelMeta().fit(args[0], args[1], sample_var=args[2], groups=G)
                results.append(m.loglik_)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _blas_threads() == before
    assert len(results) == 24 and np.ptp(results) == 0.0


# ------------------------------------------- uncentred moderators in CV folds
def _cv_folds():
    df = _school_calendar()
    X = df[["year"]].to_numpy(float)
    G = df[["district", "school"]].to_numpy()
    folds = []
    for cv in (GroupKFold(3), GroupKFold(4), GroupKFold(10)):
        folds += [tr for tr, _ in cv.split(X, groups=G[:, 0])]
    for n in (2, 4, 5):
        folds += [tr for tr, _ in KFold(n, shuffle=True, random_state=n).split(X)]
    return df, X, G, folds


@pytest.mark.parametrize(
    "params",
    [{}, {"max_iter": 5000, "n_starts": 10}, {"method": "ml"}],
    ids=["default", "many-starts", "ml"],
)
def test_uncentred_year_converges_in_every_fold(params):
    """year (1976-1990) as moderator: folds reported false ConvergenceWarnings,
    and max_iter=5000, n_starts=10 made converged folds report converged_=False.
    The fit is invariant to centring the moderator."""
    df, X, G, folds = _cv_folds()
    y, v = df["yi"].to_numpy(), df["vi"].to_numpy()
    for tr in folds:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            raw = MultilevelMeta(**params).fit(
                X[tr], y[tr], sample_var=v[tr], groups=G[tr]
            )
        centred = MultilevelMeta(**params).fit(
            X[tr] - 1983.0, y[tr], sample_var=v[tr], groups=G[tr]
        )
        assert raw.converged_ and centred.converged_
        assert raw.loglik_ == pytest.approx(centred.loglik_, abs=1e-8)
        np.testing.assert_allclose(raw.sigma2_, centred.sigma2_, rtol=1e-6, atol=1e-12)
        assert raw.coef_[0] == pytest.approx(centred.coef_[0], rel=1e-6)


def test_unstructured_random_slope_of_uncentred_year_converges():
    """An unstructured random slope is invariant to shifting its covariate: the
    raw-year model is the centred-year model in other coordinates."""
    df, X, G, folds = _cv_folds()
    y, v = df["yi"].to_numpy(), df["vi"].to_numpy()
    kw = {"random_slopes": {0: [0]}, "covariance": ["unstructured", "independent"]}
    for tr in folds[:7]:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            raw = MultilevelMeta(**kw).fit(
                X[tr], y[tr], sample_var=v[tr], groups=G[tr], Z=X[tr]
            )
            centred = MultilevelMeta(**kw).fit(
                X[tr] - 1983.0,
                y[tr],
                sample_var=v[tr],
                groups=G[tr],
                Z=X[tr] - 1983.0,
            )
        assert raw.loglik_ == pytest.approx(centred.loglik_, abs=1e-7)
        np.testing.assert_allclose(raw.sigma2_[1], centred.sigma2_[1], rtol=1e-5)


def test_independent_random_slope_of_uncentred_year_converges():
    """An independent random slope of raw year: a long, flat likelihood valley
    (the intercept SD at year 0 is barely identified) where the fit used to stop
    early and report converged_=False in some folds."""
    df, X, G, folds = _cv_folds()
    y, v = df["yi"].to_numpy(), df["vi"].to_numpy()
    for tr in folds:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            m = MultilevelMeta(random_slopes={0: [0]}).fit(
                X[tr], y[tr], sample_var=v[tr], groups=G[tr], Z=X[tr]
            )
        assert m.converged_


# --------------------------------------------------------- routing alias
@pytest.fixture
def routing():
    sklearn.set_config(enable_metadata_routing=True)
    yield
    sklearn.set_config(enable_metadata_routing=False)


def test_routing_alias_separates_levels_from_the_splitter_groups(routing):
    """GroupKFold and MultilevelMeta both take "groups": the 2-D levels reached
    the splitter ("object too deep for desired array"). Under an alias the
    estimator gets the levels and the splitter the clusters."""
    df = _school_calendar()
    y, v = df["yi"].to_numpy(), df["vi"].to_numpy()
    G = df[["district", "school"]].to_numpy()
    X = (df[["year"]] - 1983.0).to_numpy(float)
    est = MultilevelMeta().set_fit_request(groups="levels")
    est.set_score_request(groups="levels")
    cv = GroupKFold(n_splits=4)
    res = cross_validate(
        est,
        X,
        y,
        cv=cv,
        params={"sample_var": v, "levels": G, "groups": G[:, 0]},
        return_estimator=True,
    )
    for (tr, te), score, fitted in zip(
        cv.split(X, y, groups=G[:, 0]), res["test_score"], res["estimator"], strict=True
    ):
        assert fitted.level_names_ == ["level0", "level1"]
        ref = clone(MultilevelMeta()).fit(X[tr], y[tr], sample_var=v[tr], groups=G[tr])
        assert fitted.loglik_ == pytest.approx(ref.loglik_, rel=1e-12)
        direct = ref.score(X[te], y[te], sample_var=v[te], groups=G[te])
        assert score == pytest.approx(direct, rel=1e-12)
        # held-out districts only: no district is in both sets
        assert not set(G[tr, 0]) & set(G[te, 0])


# ------------------------------------------------------------ summaries
def _boundary_fit():
    """Three levels whose middle level has no variance of its own."""
    rng = np.random.default_rng(5)
    n_outer, per = 12, 6
    outer = np.repeat(np.arange(n_outer), per)
    mid = np.tile(np.repeat([0, 1], per // 2), n_outer)
    k = outer.size
    v = rng.uniform(0.02, 0.06, k)
    y = rng.normal(0, 0.4, n_outer)[outer] + rng.normal(0, np.sqrt(v + 0.05))
    G = np.column_stack([outer, mid, np.arange(k)])
    return MultilevelMeta().fit(None, y, sample_var=v, groups=G)


def test_variance_at_its_bound_is_exactly_zero_in_the_summary():
    """I^2 was printed as 1.5183e-11 beside 90.1865 (optimizer noise)."""
    m = _boundary_fit()
    assert m.sigma2_[1] == 0.0
    assert m.i2_.iloc[1] == 0.0 and m.h2_.iloc[1] == 1.0
    text = str(m.summary())
    het = text.split("Heterogeneity:")[1].split("Note")[0]
    assert "e-" not in het
    assert "0.0000" in het


def test_random_effects_table_shows_fixed_only_when_something_is_fixed():
    """The random-effects table had a 'fixed False' column on every row."""
    m = _boundary_fit()
    assert list(m.re_parameters().columns) == ["estimate"]
    assert "False" not in str(m.summary())
    df = _school_calendar()
    df["year_c"] = df["year"] - 1990
    A = np.array([[np.nan, 0.5], [0.5, np.nan]], dtype=object)
    fixed = MultilevelMeta(
        random_slopes={"district": ["year_c"]}, covariance=[A, "independent"]
    ).fit(
        df[["year_c"]],
        df["yi"],
        sample_var=df["vi"],
        groups=df[["district", "school"]],
        Z=df[["year_c"]],
    )
    table = fixed.re_parameters()
    assert list(table.columns) == ["estimate", "fixed"]
    assert table["fixed"].sum() == 1
    assert table.loc[("district", "corr(year_c, intercept)"), "estimate"] == 0.5


# ------------------------------------------------------------- weights
def _dense_weights(m, v, G, Z=None, rho=None):
    """diag(V^-1) from the k x k marginal covariance, normalised to 100."""
    codes = ml.encode_nested_groups(G)
    k = v.size
    V = np.diag(v)
    if rho is not None:
        same = codes[:, 0][:, None] == codes[:, 0][None, :]
        V = V + same * (1 - np.eye(k)) * rho * np.sqrt(np.outer(v, v))
    for lev, S in enumerate(m._sigmas):
        z = np.ones((k, 1)) if S.shape[0] == 1 else np.column_stack([np.ones(k), Z])
        V = V + (codes[:, lev][:, None] == codes[:, lev][None, :]) * (z @ S @ z.T)
    w = np.diag(np.linalg.inv(V))
    return 100 * w / w.sum()


def test_study_weights_equal_the_dense_computation():
    df = _school_calendar()
    y, v = df["yi"].to_numpy(), df["vi"].to_numpy()
    G = df[["district", "school"]].to_numpy()
    m = MultilevelMeta().fit(None, y, sample_var=v, groups=G)
    np.testing.assert_allclose(
        m._study_weights(v, groups=G), _dense_weights(m, v, G), rtol=1e-12
    )
    z = (df["year"] - 1990).to_numpy(float)
    s = MultilevelMeta(random_slopes={0: [0]}).fit(
        None, y, sample_var=v, groups=G, Z=z[:, None]
    )
    np.testing.assert_allclose(
        s._study_weights(v, groups=G, Z=z[:, None]),
        _dense_weights(s, v, G, z[:, None]),
        rtol=1e-12,
    )
    r = MultilevelMeta(rho=0.6).fit(None, y, sample_var=v, groups=G)
    np.testing.assert_allclose(
        r._study_weights(v, groups=G), _dense_weights(r, v, G, rho=0.6), rtol=1e-12
    )
    assert r._study_weights(v, groups=G).sum() == pytest.approx(100.0)
