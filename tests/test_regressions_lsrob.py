"""Regression tests of issue 10 for LocationScaleMeta and RobustMeta.

Each test failed before its fix (a crash, an unclear error or a silently wrong
number); see the commit that added it.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, stats

from skmeta import LocationScaleMeta, RobustMeta, profile_likelihood
from skmeta._engine import _robust as rob
from skmeta._engine._wchisq import qf_cdf, qf_moments

FAST = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _quiet_fit(est, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(*args, **kw)


def _two_groups(seed=0, k=20):
    rng = np.random.default_rng(seed)
    z = np.r_[np.zeros(k // 2), np.ones(k - k // 2)]
    v = rng.uniform(0.01, 0.1, k)
    y = rng.normal(0, np.sqrt(v + 0.05 + 0.2 * z))
    return y, v, z


# ----------------------------------------------- reference profile likelihood
def _profiled_loglik(X, y, v, tau2, reml):
    """(RE)ML with beta profiled out at each row of ``tau2`` (n, k).

    An implementation independent of the engine's, for one location model with
    an intercept and at most one moderator (``X`` of shape (k, 1) or (k, 2)),
    with weighted centring so that extreme weights lose no precision:
    ``|X'WX| = sum(w) * S_xx``.
    """
    s = v + tau2
    valid = np.all(s > 0, axis=1) & np.all(np.isfinite(s), axis=1)
    s = np.where(valid[:, None], s, 1.0)
    w = 1.0 / s
    sw = w.sum(axis=1)
    yc = y - (w @ y / sw)[:, None]
    logdet_a = np.log(sw)
    if X.shape[1] == 2:
        x = X[:, 1]
        xc = x - (w @ x / sw)[:, None]
        sxx = np.sum(w * xc * xc, axis=1)
        b1 = np.sum(w * xc * yc, axis=1) / sxx
        yc = yc - b1[:, None] * xc
        logdet_a = logdet_a + np.log(sxx)
    rss = np.sum(w * yc * yc, axis=1)
    k, p = X.shape
    sumlog = np.sum(np.log(s), axis=1)
    if reml:
        logdet_xtx = np.linalg.slogdet(X.T @ X)[1]
        ll = -0.5 * ((k - p) * np.log(2 * np.pi) + sumlog + logdet_a + rss)
        ll += 0.5 * logdet_xtx
    else:
        ll = -0.5 * (k * np.log(2 * np.pi) + sumlog + rss)
    return np.where(valid, ll, -np.inf)


@st.composite
def extreme_variance_data(draw):
    """k = 5..25 studies, an optional location moderator, a scale moderator z in
    (0, 1) and sampling variances in [1e-3, 1], one of which is replaced by 0,
    1e-12, 1e-9 or 1e6 times their median."""
    k = draw(st.integers(5, 25))
    p = draw(st.integers(1, 2))
    special = draw(st.sampled_from([0.0, 1e-12, 1e-9, 1e6]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(size=k)
    z = rng.uniform(0, 1, k)
    v = np.exp(rng.uniform(np.log(1e-3), 0.0, k))
    tau2 = draw(st.sampled_from([0.0, 0.01, 0.1, 1.0])) * np.exp(rng.uniform(-2, 2) * z)
    y = rng.uniform(-1, 1) + (p == 2) * 0.5 * x + rng.normal(0, np.sqrt(v + tau2))
    v[0] = special * np.median(v) if special > 1 else special
    X = np.column_stack([np.ones(k), x])[:, :p]
    return X, y, v, z


#: The fit's log-likelihood may fall short of a grid point by this relative
#: amount: a supremum on the boundary tau_i^2 -> 0 is approached by the log link
#: only asymptotically, and the fit stops where the criterion is flat to its
#: convergence tolerance (Newton decrement < 1e-10 along a direction in which
#: the criterion still rises like tau^2).
GRID_RTOL = 1e-6


def _fit_or_unbounded(est, X, y, v, Z=None):
    """Fit, or check the ValueError of an unbounded ML likelihood (None)."""
    unbounded = est.method == "ml" and np.any(v == 0)
    if unbounded:  # one zero-variance study is always fitted exactly
        with pytest.raises(ValueError, match="likelihood is unbounded"):
            est.fit(X[:, 1:], y, sample_var=v, Z=Z)
        return None
    return _quiet_fit(est, X[:, 1:], y, sample_var=v, Z=Z)


@pytest.mark.parametrize("method", ["reml", "ml"])
@pytest.mark.parametrize("link", ["log", "identity"])
@FAST
@given(data=extreme_variance_data())
def test_intercept_only_scale_reaches_the_profile_maximum(method, link, data):
    """The bar of issue 10: with one sampling variance 0, 1e-12, 1e-9 or 1e6 x
    their median, the fit is at least the maximum of the RE profile over a fine
    tau^2 grid (2,000 points from 1e-14 to 1e3 times the data's variance)."""
    X, y, v, _z = data
    est = _fit_or_unbounded(LocationScaleMeta(method=method, link=link), X, y, v)
    if est is None:
        return
    scale = max(float(np.var(y)), float(np.median(v)))
    grid = scale * np.geomspace(1e-14, 1e3, 2000)
    if link == "identity":
        grid = np.r_[0.0, grid]
    ll = _profiled_loglik(X, y, v, grid[:, None] + 0 * v, method == "reml")
    best = float(np.max(ll))
    assert est.loglik_ >= best - GRID_RTOL * (1 + abs(best))


@pytest.mark.parametrize("method", ["reml", "ml"])
@pytest.mark.parametrize("link", ["log", "identity"])
@FAST
@given(data=extreme_variance_data())
def test_scale_moderator_reaches_the_grid_maximum(method, link, data):
    """As above with a scale moderator: at least the maximum over a coarse grid
    of (alpha_0, alpha_1), which includes the far modes where heterogeneity is
    concentrated at one end of z."""
    X, y, v, z = data
    est = _fit_or_unbounded(
        LocationScaleMeta(method=method, link=link), X, y, v, Z=z[:, None]
    )
    if est is None:
        return
    scale = max(float(np.var(y)), float(np.median(v)))
    Zd = np.column_stack([np.ones_like(z), z])
    if link == "log":
        a0 = np.log(scale) + np.linspace(-45, 5, 101)
        a1 = np.linspace(-40, 40, 81)
        alpha = np.array([(a, b) for a in a0 for b in a1])
        tau2 = np.exp(alpha @ Zd.T)
    else:
        level = scale * np.r_[0.0, np.geomspace(1e-12, 10, 80)]
        alpha = np.array(
            [(a, t * a) for a in level for t in np.linspace(-1, 5, 61)]
            + [(0.0, b) for b in level]
        )
        tau2 = alpha @ Zd.T
        tau2 = np.where(np.all(tau2 >= 0, axis=1)[:, None], tau2, -np.inf)
    best = float(np.max(_profiled_loglik(X, y, v, tau2, method == "reml")))
    assert est.loglik_ >= best - GRID_RTOL * (1 + abs(best))


def test_ml_with_an_exactly_fitted_zero_variance_is_unbounded():
    """One study with sample_var 0 is fitted exactly as tau^2 -> 0: the ML
    likelihood has no maximum (it silently stopped at a local one before)."""
    rng = np.random.default_rng(22)
    v = rng.uniform(0.01, 0.3, 12)
    y = rng.normal(0, np.sqrt(v + 0.05))
    v[0] = 0.0
    with pytest.raises(ValueError, match=r"unbounded.*method='reml'"):
        LocationScaleMeta(method="ml").fit(None, y, sample_var=v)
    # REML is bounded here, and reaches the supremum of its profile
    est = _quiet_fit(LocationScaleMeta(), None, y, sample_var=v)
    assert np.isfinite(est.loglik_)


# ---------------------------------------------------------- identity link
def test_identity_link_score_truncates_negative_tau2_at_zero():
    y, v, z = _two_groups()
    rng = np.random.default_rng(1)
    zc = 3 * z + rng.normal(size=z.size)
    est = LocationScaleMeta(link="identity").fit(None, y, sample_var=v, Z=zc[:, None])
    new = np.array([[-5.0], [0.0]])  # z'alpha < 0 at the first row
    assert est.scale_intercept_ - 5 * est.scale_coef_[0] < 0
    with pytest.warns(UserWarning, match="truncated at 0"):
        tau2 = est.predict_tau2(new)
    assert tau2[0] == 0.0
    with pytest.warns(UserWarning, match="truncated at 0"):
        got = est.score(None, y[:2], sample_var=v[:2], Z=new)
    resid = y[:2] - est.intercept_
    var = v[:2] + tau2
    expected = np.sum(-0.5 * (np.log(2 * np.pi * var) + resid**2 / var))
    assert got == pytest.approx(expected, rel=1e-12)
    with pytest.warns(UserWarning, match="truncated at 0"):
        pi = est.predict_interval(None, Z=new)
    assert np.all(np.isfinite(pi.to_numpy()))
    # the training studies' own tau^2 are >= 0 and do not warn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(est.predict_tau2(zc[:, None]) >= 0)


def test_identity_link_fixed_coefficient_with_negative_tau2_is_a_clear_error():
    """Fixing the intercept at -0.1 makes tau_i^2 < 0 in the group z = 0 whatever
    the slope: no admissible fit (a TypeError before)."""
    y, v, z = _two_groups()
    est = LocationScaleMeta(
        link="identity", scale_bounds=([-0.1, -np.inf], [-0.1, np.inf])
    )
    with pytest.raises(ValueError, match=r"scale_bounds.*admit no fit"):
        est.fit(None, y, sample_var=v, Z=z[:, None])


def test_identity_link_fixed_slope_is_a_correct_constrained_fit():
    """Fixing the slope at -0.1 is admissible: the intercept moves up so that
    tau^2 >= 0 in both groups; the fit is the best such intercept."""
    y, v, z = _two_groups()
    est = LocationScaleMeta(
        link="identity", scale_bounds=([-np.inf, -0.1], [np.inf, -0.1])
    ).fit(None, y, sample_var=v, Z=z[:, None])
    assert est.scale_coef_[0] == -0.1
    assert np.all(est.tau2_ >= 0)
    a0 = np.linspace(0.1, 1.0, 9001)  # tau^2 >= 0 needs alpha_0 >= 0.1
    tau2 = a0[:, None] - 0.1 * z
    ll = _profiled_loglik(np.ones((y.size, 1)), y, v, tau2, reml=True)
    assert est.loglik_ >= ll.max() - 1e-9
    assert est.scale_intercept_ == pytest.approx(a0[np.argmax(ll)], abs=2e-4)


def test_profile_likelihood_over_identity_coefficient_crossing_zero():
    """The profile of the identity-link intercept enters tau_i^2 < 0 below 0:
    those points have criterion -inf (the likelihood is zero outside the
    parameter space), the others are finite; it crashed with a TypeError before."""
    y, v, z = _two_groups()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof = profile_likelihood(
            LocationScaleMeta(link="identity"),
            None,
            y,
            sample_var=v,
            Z=z[:, None],
            parameter=0,
            grid=[-0.05, -0.01, 0.02, 0.05],
        )
    assert np.all(prof.loglik[:2] == -np.inf)
    assert np.all(np.isfinite(prof.loglik[2:]))


@pytest.mark.parametrize(
    ("bounds", "match"),
    [
        ((np.nan, np.nan), "scale_bounds must not contain NaN"),
        ((-1.0, np.nan), "scale_bounds must not contain NaN"),
        (([0, 1, 2], [3, 4, 5]), "scale_bounds: the lower bound has shape \\(3,\\)"),
        ((0.0, [1.0, 2.0, 3.0]), "scale_bounds: the upper bound has shape"),
        (("a", "b"), "scale_bounds: the lower bound must be a number"),
        ((1.0, 2.0, 3.0), "scale_bounds must be a \\(lower, upper\\) pair"),
        ((np.inf, np.inf), "admits no value"),
    ],
)
def test_bad_scale_bounds_name_the_argument(bounds, match):
    y, v, z = _two_groups()
    with pytest.raises(ValueError, match=match):
        LocationScaleMeta(scale_bounds=bounds).fit(None, y, sample_var=v, Z=z[:, None])


# ------------------------------------------------------- extreme variances
@pytest.mark.parametrize("tiny", [1e-20, 1e-30, 0.0])
@pytest.mark.parametrize("link", ["log", "identity"])
def test_tiny_variance_with_moderators(tiny, link):
    """One v <= 1e-20 with location and scale moderators (a LinAlgError before):
    the fit is at least the grid maximum over the scale coefficients."""
    rng = np.random.default_rng(1)
    k = 15
    X = rng.normal(size=(k, 1))
    z = rng.uniform(0, 2, k)
    v = rng.uniform(0.01, 0.2, k)
    y = 0.2 + 0.3 * X[:, 0] + rng.normal(0, np.sqrt(v + 0.1 * np.exp(z)))
    v[0] = tiny
    est = _quiet_fit(LocationScaleMeta(link=link), X, y, sample_var=v, Z=z[:, None])
    Zd = np.column_stack([np.ones(k), z])
    if link == "log":
        alpha = np.array(
            [(a, b) for a in np.linspace(-30, 3, 111) for b in np.linspace(-10, 10, 81)]
        )
        tau2 = np.exp(alpha @ Zd.T)
    else:
        alpha = np.array(
            [(a, b) for a in np.linspace(0, 1, 101) for b in np.linspace(-0.5, 1, 151)]
        )
        tau2 = alpha @ Zd.T
        tau2 = np.where(np.all(tau2 >= 0, axis=1)[:, None], tau2, -np.inf)
    Xd = np.column_stack([np.ones(k), X])
    best = float(np.max(_profiled_loglik(Xd, y, v, tau2, reml=True)))
    assert est.loglik_ >= best - GRID_RTOL * (1 + abs(best))


def test_one_huge_variance_is_a_weightless_study():
    """v_0 = 1e300 beside v ~ 0.1 (the fit went to tau^2 ~ 1e204 before, not
    converged): the study has no weight, the fit equals the fit without it up to
    its log-density constant."""
    rng = np.random.default_rng(1)
    k = 15
    z = rng.uniform(0, 2, k)
    v = rng.uniform(0.01, 0.2, k)
    y = 0.2 + rng.normal(0, np.sqrt(v + 0.1 * np.exp(z)))
    for huge in (1e300, 1.7e308):
        vv = np.r_[huge, v[1:]]
        a = _quiet_fit(
            LocationScaleMeta(method="ml"), None, y, sample_var=vv, Z=z[:, None]
        )
        b = _quiet_fit(
            LocationScaleMeta(method="ml"), None, y[1:], sample_var=v[1:], Z=z[1:, None]
        )
        assert a.converged_
        np.testing.assert_allclose(a.tau2_[1:], b.tau2_, rtol=1e-6)
        assert a.intercept_ == pytest.approx(b.intercept_, rel=1e-8)
        const = -0.5 * (np.log(2 * np.pi) + np.log(huge + a.tau2_[0]))
        assert a.loglik_ == pytest.approx(b.loglik_ + const, rel=1e-9)


@pytest.mark.parametrize("value", [1e300, 1.7e308])
def test_y_beyond_float64_range_is_a_clear_error(value):
    """A y whose squared spread overflows float64 (a NoneType TypeError before)."""
    y, v, z = _two_groups()
    y = y.copy()
    y[0] = value
    with pytest.raises(ValueError, match="y varies too much"):
        LocationScaleMeta().fit(None, y, sample_var=v, Z=z[:, None])


def test_all_variances_near_the_float64_limit():
    y, _v, _z = _two_groups()
    v = np.full(y.size, 1.7e308)
    est = _quiet_fit(LocationScaleMeta(), None, y, sample_var=v)
    # no evidence of heterogeneity against such sampling variances
    assert np.all(est.tau2_ < 1e-6 * v)
    assert est.intercept_ == pytest.approx(np.mean(y), rel=1e-9)
    assert np.isfinite(est.loglik_)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.longdouble])
def test_y_of_any_float_dtype_is_cast_to_float64(dtype):
    y, v, z = _two_groups()
    y = y.astype(dtype)
    a = LocationScaleMeta().fit(None, y, sample_var=v, Z=z[:, None])
    b = LocationScaleMeta().fit(None, y.astype(np.float64), sample_var=v, Z=z[:, None])
    assert a.loglik_ == b.loglik_
    np.testing.assert_array_equal(a.scale_coef_, b.scale_coef_)


# ------------------------------------------------------- RobustMeta, many studies
def _many_studies(k, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.01, 0.2, k)
    return 0.2 + rng.normal(0, np.sqrt(v + 0.05)), v


def test_robust_tau2_m_is_the_exact_median_with_many_studies():
    """K = 600 studies in two groups of sampling variances: Q_DL is exactly
    d1 chi2_(n-1) + d2 chi2_(n-1) + l chi2_1 (l the root of the secular equation
    between d1 and d2), so the median condition F(Q_obs | tau2_M) = 1/2 can be
    checked by quadrature. Before, the fixed Talbot inversion failed beyond ~50
    studies and tau2_M was 0.86 for a tau^2-hat of 0.039 at K = 600."""
    n = 300
    rng = np.random.default_rng(3)
    v = np.r_[np.full(n, 0.05), np.full(n, 0.2)]
    y = 0.1 + rng.normal(0, np.sqrt(v + 0.08))
    model = RobustMeta().fit(None, y, sample_var=v)
    assert model.tau2_ > 0
    fit = model._fit
    a = fit.structure.a  # 1/v scaled to a largest weight of 1
    delta = a * (v + model.tau2_m_)
    d1, d2 = delta[0], delta[-1]
    w2 = a / a.sum()
    root = optimize.brentq(
        lambda x: w2[0] * n / (d1 - x) + w2[-1] * n / (d2 - x),
        min(d1, d2) * (1 + 1e-14),
        max(d1, d2) * (1 - 1e-14),
        xtol=1e-300,
        rtol=1e-15,
    )
    q_obs = fit.structure.c_a + fit.structure.d_a * model.tau2_

    def two_gamma(x):
        if x <= 0:
            return 0.0
        bulk = d2 * (n - 1) + np.sqrt(2 * (n - 1)) * d2 * np.array([-8, -3, 0, 3, 8])
        return integrate.quad(
            lambda t: (
                stats.chi2.pdf(t / d2, n - 1) / d2 * stats.chi2.cdf((x - t) / d1, n - 1)
            ),
            0,
            x,
            limit=500,
            epsabs=1e-14,
            points=bulk[(bulk > 0) & (bulk < x)],
        )[0]

    cdf = integrate.quad(
        lambda c: stats.chi2.pdf(c, 1) * two_gamma(q_obs - root * c),
        0,
        q_obs / root,
        limit=200,
        epsabs=1e-12,
    )[0]
    assert cdf == pytest.approx(0.5, abs=1e-8)


@pytest.mark.parametrize("k", [2500, 10_000])
def test_robust_with_thousands_of_studies(k):
    """K = 2,500 took 67 s and K = 2,000 up to 41 s (an eigendecomposition per
    root-finding step, a wrong tau2_M); now O(K) per step. For many studies the
    sampling distribution of tau^2-hat is nearly normal: its median tau2_M lies
    within a small fraction of its standard deviation of the estimate."""
    y, v = _many_studies(k)
    for inference in ("z", "knapp-hartung"):
        model = RobustMeta(inference=inference).fit(None, y, sample_var=v)
        st = model._fit.structure
        form = rob.gmm_form(st, v, model.tau2_m_)
        sd = np.sqrt(2 * qf_moments(form).trace2) / st.d_a
        assert abs(model.tau2_m_ - model.tau2_) < 0.1 * sd
        ci = model.conf_int().loc["intercept", ["ci_lower", "ci_upper"]].to_numpy()
        assert ci[0] < model.intercept_ < ci[1]
        conventional = model.conf_int(robust=False)
        conventional = conventional.loc[
            "intercept", ["ci_lower", "ci_upper"]
        ].to_numpy()
        # nearly no uncertainty about tau^2 left: robust ~ conventional
        np.testing.assert_allclose(ci, conventional, rtol=0.02)
        interval = model.tau2_sampling_interval().loc["tau2"]
        assert interval["ci_lower"] < model.tau2_ < interval["ci_upper"]


def test_robust_sidik_jonkman_with_many_studies():
    """SJ beyond K = 343: the Gauss-Laguerre weights of chi2_(K-1) overflowed
    (gamma(K/2)) and fit crashed."""
    y, v = _many_studies(400)
    model = RobustMeta(method="sj").fit(None, y, sample_var=v)
    median = stats.chi2.median(399)
    assert rob.q_stat(np.ones((400, 1)), y, v, model.tau2_m_) == pytest.approx(
        median, rel=1e-10
    )
    ci = model.conf_int().loc["intercept", ["ci_lower", "ci_upper"]].to_numpy()
    assert np.all(np.isfinite(ci)) and ci[0] < model.intercept_ < ci[1]


def test_robust_one_tiny_variance_among_many():
    """One study with v = 1e-9 among 2,000 (a weight 1e8 times the others'):
    its eigenvalue dominates; the distribution needs no eigendecomposition and
    loses no precision, and the fit takes seconds."""
    y, v = _many_studies(2000, seed=1)
    v[0] = 1e-9
    model = RobustMeta().fit(None, y, sample_var=v)
    st = model._fit.structure
    q_obs = st.c_a + st.d_a * model.tau2_
    assert float(qf_cdf(q_obs, rob.gmm_form(st, v, model.tau2_m_))) == pytest.approx(
        0.5, abs=1e-10
    )
    assert np.all(np.isfinite(model.conf_int().to_numpy()))
