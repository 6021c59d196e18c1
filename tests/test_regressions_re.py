"""Regression tests for RandomEffectsMeta and its engine (issue: no silently wrong
answer).

Each test failed before its fix. The likelihood is checked against an
independent evaluation of the profiled (restricted) log-likelihood: one weighted
least-squares fit per value of tau^2 (:func:`profile`), never the optimiser's
own code path.
"""

import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from skmeta import RandomEffectsMeta
from skmeta._engine._gls import logdet_crossprod, profiled_loglik, weighted_fit


def profile(X, y, v, tau2, reml):
    """(RE)ML criterion at ``tau2`` from one weighted fit (metafor's constant)."""
    design = np.column_stack([np.ones(len(y)), X])
    fit = weighted_fit(design, y, 1.0 / (v + tau2))
    return profiled_loglik(
        len(y),
        design.shape[1],
        float(np.sum(np.log(v + tau2))),
        fit.rss,
        reml=reml,
        logdet_xtvx=fit.logdet,
        logdet_xtx=logdet_crossprod(design),
    )


def reproducer():
    r = np.random.default_rng(142)
    X = r.normal(size=(15, 1))
    v = r.uniform(0.01, 0.2, 15)
    y = 0.2 + 0.3 * X[:, 0] + r.normal(0, np.sqrt(v + 0.1))
    v[0] = 1e-12
    return X, y, v


def test_reml_with_one_tiny_sampling_variance_finds_the_maximum():
    """Issue reproducer: REML stopped at tau2 = 0 (logLik -47.03, converged_=True)
    while the maximum is tau2 = 0.0931, logLik -5.87."""
    X, y, v = reproducer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning, no ConvergenceWarning
        model = RandomEffectsMeta().fit(X, y, sample_var=v)
    assert model.converged_
    assert model.tau2_ == pytest.approx(0.0931, abs=5e-5)
    assert model.loglik_ == pytest.approx(-5.87, abs=5e-3)
    # the maximum: the criterion is stationary there (central differences)
    h = 1e-5 * model.tau2_
    up = profile(X, y, v, model.tau2_ + h, reml=True)
    down = profile(X, y, v, model.tau2_ - h, reml=True)
    assert model.loglik_ == pytest.approx(profile(X, y, v, model.tau2_, True), abs=1e-9)
    assert model.loglik_ >= max(up, down) - 1e-12 * abs(model.loglik_)


# --------------------------------------------------------------------------- #
# The bar: a global maximum whatever one sampling variance is
# --------------------------------------------------------------------------- #
EXTREMES = ("zero", "1e-12", "1e-9", "huge")


def extreme_data(seed, k, p, extreme):
    """Random meta-regression data with one extreme sampling variance."""
    r = np.random.default_rng(seed)
    X = r.normal(size=(k, p))
    v = r.uniform(0.01, 0.2, k)
    tau2 = r.choice([0.0, 0.02, 0.1, 0.5])
    y = 0.2 + X @ np.full(p, 0.3) + r.normal(0, np.sqrt(v + tau2))
    v[r.integers(k)] = {
        "zero": 0.0,
        "1e-12": 1e-12,
        "1e-9": 1e-9,
        "huge": 1e6 * np.median(v),
    }[extreme]
    return X, y, v


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(5, 25),
    p=st.integers(0, 2),
    extreme=st.sampled_from(EXTREMES),
    method=st.sampled_from(["reml", "ml"]),
)
def test_likelihood_fit_is_the_maximum_over_a_fine_grid(seed, k, p, extreme, method):
    """loglik_ >= the criterion at every tau2 of a fine grid (0, then 400 values
    log-spaced over 19 decades of the data's variance scale).

    The grid is evaluated by one weighted fit per point (with an intercept the
    fit centres the design at its weighted means, which keeps rss and
    log|X'WX| accurate to ~1e-14 relative for weights up to 1e20: test_stable_
    weighted_fit_is_exact); 1e-9 relative covers that and the optimiser's
    stopping rule (criterion error O(tol) = 1e-10 relative)."""
    assume(k > p + 1)
    X, y, v = extreme_data(seed, k, p, extreme)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the zero-variance limit
        model = RandomEffectsMeta(method=method).fit(X, y, sample_var=v)
    assert model.converged_
    scale = max(np.var(y), np.mean(v))
    grid = np.concatenate([[0.0], np.logspace(-16, 3, 400) * scale])
    grid = grid[v.min() + grid > 0]
    best = max(profile(X, y, v, t, reml=method == "reml") for t in grid)
    assert model.loglik_ >= best - 1e-9 * (1.0 + abs(best))


# --------------------------------------------------------------------------- #
# Moment estimators at extreme sampling variances: exact rational references
# --------------------------------------------------------------------------- #
def _inverse(A):
    """Inverse of a small matrix of Fractions (Gauss-Jordan, exact)."""
    n = len(A)
    M = [[*row, *(Fraction(int(i == j)) for j in range(n))] for i, row in enumerate(A)]
    for c in range(n):
        pivot = next(r for r in range(c, n) if M[r][c] != 0)
        M[c], M[pivot] = M[pivot], M[c]
        M[c] = [x / M[c][c] for x in M[c]]
        for r in range(n):
            if r != c and M[r][c] != 0:
                M[r] = [a - M[r][c] * b for a, b in zip(M[r], M[c], strict=True)]
    return [row[n:] for row in M]


def exact_projection(X, w):
    """P = W - W X (X'WX)^{-1} X'W in exact rational arithmetic."""
    k, p = X.shape
    Xf = [[Fraction(float(x)) for x in row] for row in X]
    wf = [Fraction(float(x)) for x in w]
    A = [
        [sum(wf[i] * Xf[i][a] * Xf[i][b] for i in range(k)) for b in range(p)]
        for a in range(p)
    ]
    C = _inverse(A) if p else []
    WX = [[wf[i] * Xf[i][a] for a in range(p)] for i in range(k)]
    CXW = [
        [sum(C[a][b] * WX[i][b] for b in range(p)) for i in range(k)] for a in range(p)
    ]
    return [
        [
            (wf[i] if i == j else 0) - sum(WX[i][a] * CXW[a][j] for a in range(p))
            for j in range(k)
        ]
        for i in range(k)
    ]


def quad(P, y):
    yf = [Fraction(float(x)) for x in y]
    n = len(yf)
    return sum(yf[i] * P[i][j] * yf[j] for i in range(n) for j in range(n))


def trace(P, d=None):
    n = len(P)
    return sum(P[i][i] * (1 if d is None else Fraction(float(d[i]))) for i in range(n))


def exact_tau2(method, X, y, v):
    """The moment estimators' formulas (metafor's definitions), exactly."""
    k, p = X.shape
    if method in ("he", "genq"):
        P = exact_projection(X, np.ones(k))
        return max(0, (quad(P, y) - trace(P, v)) / (k - p))
    if method == "sj":
        t0 = Fraction(float(np.var(y)))
        P = exact_projection(X, 1.0 / (v + float(t0)))
        return t0 * quad(P, y) / (k - p)
    P = exact_projection(X, 1.0 / v)
    q = quad(P, y)
    if method == "dl":
        return max(0, (q - (k - p)) / trace(P))
    factor = Fraction(k, k - p) if method == "hsk" else 1
    return max(0, (factor * q - k) / sum(1 / Fraction(float(x)) for x in v))


MOMENT = ("dl", "he", "hs", "hsk", "sj", "genq")


@pytest.mark.parametrize("extreme", ["1e-12", "1e-9", "huge", "zero"])
@pytest.mark.parametrize("method", MOMENT)
def test_moment_estimators_exact_at_extreme_variances(method, extreme):
    """Each closed-form estimator against its formula in rational arithmetic.

    With one weight 1e12 times the others, the textbook float evaluation of
    tr(P) = sum(w) - tr((X'WX)^{-1} X'W^2X) cancels 12 digits; the engine
    eliminates dominant studies exactly, so 1e-10 relative holds."""
    X, y, v = extreme_data(7, 10, 1, extreme)
    design = np.column_stack([np.ones(10), X])
    params = {"genq_weights": "unit"} if method == "genq" else {}
    model = RandomEffectsMeta(method=method, **params)
    if extreme == "zero" and method in ("dl", "hs", "hsk"):
        with pytest.raises(ValueError, match="sample_var must be > 0"):
            model.fit(X, y, sample_var=v)
        return
    model.fit(X, y, sample_var=v)
    expected = float(exact_tau2(method, design, y, v))
    assert model.tau2_ == pytest.approx(expected, rel=1e-10, abs=1e-300)
    assert np.isfinite(model.tau2_se_) and np.isfinite(model.loglik_)


@pytest.mark.parametrize("extreme", ["1e-12", "huge", "1e-100"])
def test_heterogeneity_and_dl_standard_error_exact_at_extreme_variances(extreme):
    """Q_E, I^2 and DL's standard error, sqrt((2(k-p) + 4 t tr P + 2 t^2 tr P^2))
    / tr P, against rational arithmetic (one sampling variance extreme)."""
    X, y, v = extreme_data(3, 9, 1, extreme if extreme != "1e-100" else "1e-12")
    if extreme == "1e-100":
        v[np.argmin(v)] = 1e-100
    design = np.column_stack([np.ones(9), X])
    model = RandomEffectsMeta(method="dl").fit(X, y, sample_var=v)
    P = exact_projection(design, 1.0 / v)
    k, p = design.shape
    q, trp = quad(P, y), trace(P)
    t = Fraction(model.tau2_)
    trpp = sum(P[i][j] ** 2 for i in range(k) for j in range(k))
    se2 = (2 * (k - p) + 4 * t * trp + 2 * t * t * trpp) / trp**2
    assert model.q_ == pytest.approx(float(q), rel=1e-12)
    assert model.tau2_ == pytest.approx(float(max(0, (q - (k - p)) / trp)), rel=1e-10)
    assert model.tau2_se_**2 == pytest.approx(float(se2), rel=1e-10)
    vt = (k - p) / trp
    assert model.i2_ == pytest.approx(float(100 * t / (vt + t)), rel=1e-10)


@pytest.mark.parametrize("extreme", ["1e-12", "1e-9", "huge", "zero"])
@pytest.mark.parametrize("method", ["pm", "pmm"])
def test_paule_mandel_solves_its_equation_at_extreme_variances(method, extreme):
    """Q(tau2) = y'P y at the estimate equals its target (k - p, or its chi^2
    median), in rational arithmetic: Q decreases through the target between
    tau2 (1 - 1e-9) and tau2 (1 + 1e-9)."""
    X, y, v = extreme_data(11, 12, 1, extreme)
    design = np.column_stack([np.ones(12), X])
    model = RandomEffectsMeta(method=method).fit(X, y, sample_var=v)
    target = 10 if method == "pm" else stats.chi2.median(10)
    assert model.tau2_ > 0

    def q_at(t):
        return float(quad(exact_projection(design, 1.0 / (v + t)), y))

    assert q_at(model.tau2_ * (1 - 1e-9)) > target > q_at(model.tau2_ * (1 + 1e-9))


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_likelihood_standard_errors_exact_at_extreme_variances(method):
    """se(tau2): REML sqrt(2 / tr(P^2)), ML sqrt(2 / sum w^2), with one sampling
    variance 1e-12 (rational arithmetic)."""
    X, y, v = extreme_data(5, 10, 1, "1e-12")
    design = np.column_stack([np.ones(10), X])
    model = RandomEffectsMeta(method=method).fit(X, y, sample_var=v)
    w = 1.0 / (v + model.tau2_)
    if method == "reml":
        P = exact_projection(design, w)
        info = sum(P[i][j] ** 2 for i in range(10) for j in range(10))
    else:
        info = sum(Fraction(float(x)) ** 2 for x in w)
    assert model.tau2_se_**2 == pytest.approx(float(2 / info), rel=1e-10)


# --------------------------------------------------------------------------- #
# Extreme magnitudes: correct results, not ZeroDivisionError / LinAlgError
# --------------------------------------------------------------------------- #
ALL = ("reml", "ml", "dl", "pm", "pmm", "he", "hs", "hsk", "sj", "eb", "genq", "fe")


def _fit(method, X, y, v, **params):
    if method == "genq":
        params["genq_weights"] = "unit"
    return RandomEffectsMeta(method=method, **params).fit(X, y, sample_var=v)


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("factor", [2.0**-500, 2.0**450])
def test_rescaled_data_give_rescaled_results(method, factor):
    """y * c and v * c^2 (c a power of two, so exact) give tau2 * c^2, beta * c,
    the same Q, I^2 and tests: the fit standardises the data by a power of two.
    Used to be ZeroDivisionError for all v = 1e300 (c = 2**450 gives v ~ 1e270
    and squared weights ~ 1e-540)."""
    X, y, v = extreme_data(1, 12, 1, "1e-9")
    v[np.argmin(v)] = 0.05
    base = _fit(method, X, y, v)
    scaled = _fit(method, X, y * factor, v * factor**2)
    assert scaled.tau2_ == pytest.approx(base.tau2_ * factor**2, rel=1e-12)
    np.testing.assert_allclose(scaled._beta, base._beta * factor, rtol=1e-12)
    np.testing.assert_allclose(
        scaled.cov_params_, base.cov_params_ * factor**2, rtol=1e-12
    )
    for name in ("q_", "i2_", "h2_", "qm_", "qm_pvalue_"):
        assert getattr(scaled, name) == pytest.approx(getattr(base, name), rel=1e-12)
    if method != "fe":
        assert scaled.tau2_se_ == pytest.approx(base.tau2_se_ * factor**2, rel=1e-12)
    n = 10 if method == "reml" else 12
    assert scaled.loglik_ == pytest.approx(base.loglik_ - n * np.log(factor), rel=1e-12)


@pytest.mark.parametrize("method", ALL)
def test_all_variances_1e300_and_y_times_1e100_are_finite(method):
    """The issue's inputs: every v = 1e300 (was ZeroDivisionError for REML, ML,
    DL) and y * 1e100 (heterogeneity 1e200 times the sampling variances).
    With v = 1e300 the studies carry no information beyond y's spread:
    tau2 = 0 for every moment estimator; with y * 1e100, tau2 / 1e200 must equal
    the estimate with v / 1e200 and the original y (the same data in other
    units, up to rounding of v)."""
    X, y, v = extreme_data(2, 12, 1, "1e-9")
    v[np.argmin(v)] = 0.05
    huge = _fit(method, X, y, np.full(12, 1e300))
    assert huge.tau2_ == 0.0 and np.isfinite(huge.loglik_)
    assert np.all(np.isfinite(huge.cov_params_))
    big = _fit(method, X, y * 1e100, v)
    small = _fit(method, X, y, v * 1e-200)
    assert big.tau2_ / 1e200 == pytest.approx(small.tau2_, rel=1e-9)
    if method != "fe":
        assert np.isfinite(big.tau2_se_) and big.tau2_se_ > 0


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("tiny", [1e-20, 1e-100, 1e-300])
@pytest.mark.parametrize("method", ["reml", "ml", "dl", "he", "pm", "sj"])
def test_one_tiny_variance_with_moderators(method, tiny, fit_intercept):
    """One v in {1e-20, 1e-100, 1e-300} with moderators used to raise
    LinAlgError ("singular weighted design"; REML, ML, and every method without
    intercept at 1e-200) or OverflowError (DL at 1e-100). The study is then fitted
    exactly; every method except ML (whose likelihood peaks at tau2 = 0 with
    height -log(v)/2) gives the limit v -> 0, the same estimate for the three."""
    r = np.random.default_rng(5)
    X = r.normal(size=(12, 2))
    v = r.uniform(0.01, 0.2, 12)
    y = 0.2 + X @ [0.3, 0.1] + r.normal(0, np.sqrt(v + 0.1))
    v[3] = tiny
    model = RandomEffectsMeta(method=method, fit_intercept=fit_intercept)
    model.fit(X, y, sample_var=v)
    assert np.all(np.isfinite(model.cov_params_)) and np.isfinite(model.loglik_)
    v[3] = 1e-20
    reference = RandomEffectsMeta(method=method, fit_intercept=fit_intercept)
    reference.fit(X, y, sample_var=v)
    if method == "ml":
        assert model.tau2_ == 0.0
        design = X if not fit_intercept else np.column_stack([np.ones(12), X])
        # the likelihood at tau2 = 0, with y'P y in rational arithmetic
        v[3] = tiny
        rss = float(quad(exact_projection(design, 1.0 / v), y))
        expected = -0.5 * (12 * np.log(2 * np.pi) + np.log(v).sum() + rss)
        assert model.loglik_ == pytest.approx(expected, rel=1e-12)
    else:
        assert model.tau2_ == pytest.approx(reference.tau2_, rel=1e-9)
        np.testing.assert_allclose(model._beta, reference._beta, rtol=1e-9)


# --------------------------------------------------------------------------- #
# Zero sampling variances: the limit tau2 -> 0 and its status
# --------------------------------------------------------------------------- #
def test_ml_with_a_zero_variance_is_the_diverging_limit():
    """With v_0 = 0 the ML likelihood grows like -log(tau2)/2 as tau2 -> 0 (study
    0 is fitted exactly); a fit that used to stop at an interior local maximum
    (tau2 0.073, logLik -7.41) must report the limit, with a warning."""
    X, y, v = extreme_data(40, 19, 2, "zero")
    with pytest.warns(UserWarning, match="increases without bound"):
        model = RandomEffectsMeta(method="ml").fit(X, y, sample_var=v)
    assert model.tau2_ == 0.0 and model.loglik_ == np.inf
    zero = v == 0
    np.testing.assert_allclose(
        model.predict(X[zero]), y[zero], rtol=0, atol=1e-9 * np.ptp(y)
    )


def test_reml_with_a_zero_variance_is_bounded():
    """REML's log|X'WX| grows with the rank of the exactly known studies: one
    zero variance beside an intercept leaves the restricted likelihood bounded,
    and its maximum is interior (no limit, no warning)."""
    X, y, v = extreme_data(40, 19, 2, "zero")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = RandomEffectsMeta(method="reml").fit(X, y, sample_var=v)
    assert model.tau2_ > 0.01
    assert model.loglik_ == pytest.approx(profile(X, y, v, model.tau2_, True), abs=1e-9)


def test_certification_does_not_run_on_ordinary_data(monkeypatch):
    """The search of the profile is for extreme weights and the boundary only:
    ordinary data (BCG, REML with a moderator) take the Newton path alone."""
    from skmeta._engine import _univariate
    from skmeta.datasets import load_bcg
    from skmeta.effect_sizes import log_risk_ratio

    def forbidden(*args, **kwargs):
        raise AssertionError("profile search on ordinary data")

    monkeypatch.setattr(_univariate, "_search_profile", forbidden)
    bcg = load_bcg()
    es = log_risk_ratio(bcg["tpos"], bcg["tneg"], bcg["cpos"], bcg["cneg"])
    RandomEffectsMeta().fit(bcg[["ablat"]], es.yi, sample_var=es.vi)


# --------------------------------------------------------------------------- #
# Failures of the single fit found by comparing it with the multi-output fit
# --------------------------------------------------------------------------- #
def _bcg():
    from skmeta.datasets import load_bcg
    from skmeta.effect_sizes import log_risk_ratio

    bcg = load_bcg()
    es = log_risk_ratio(bcg["tpos"], bcg["tneg"], bcg["cpos"], bcg["cneg"])
    X = bcg[["ablat"]].to_numpy(dtype=float)
    return X, np.asarray(es.yi, dtype=float), np.asarray(es.vi, dtype=float)


def test_genq_with_a_fixed_tau2_has_a_pseudo_r2_and_a_summary():
    """With tau^2 fixed, metafor's R^2 compares it with the intercept-only model
    fitted by the same method and weights: rma(yi, vi, mods = ~ ablat, tau2 =
    0.1, method = "GENQ", weights = 1/vi)$R2 = 67.61241 (R 4.2.2, metafor
    3.8.1), i.e. 100 (0.3088 - 0.1) / 0.3088 with the DerSimonian-Laird tau^2
    of the intercept-only model. Before: summary() raised a ValueError (the
    intercept-only GENQ fit got no weights)."""
    X, y, v = _bcg()
    model = RandomEffectsMeta(method="genq", genq_weights="inverse_var", tau2=0.1)
    model.fit(X, y, sample_var=v)
    assert model.r2_ == pytest.approx(67.61241, abs=5e-5)
    null = RandomEffectsMeta(method="dl").fit(None, y, sample_var=v).tau2_
    assert model.r2_ == pytest.approx(100.0 * (null - 0.1) / null, rel=1e-12)
    assert "R^2 (%)" in str(model.summary())
    # without genq_weights the intercept-only GENQ model has no estimator: no R^2
    bare = RandomEffectsMeta(method="genq", tau2=0.1).fit(X, y, sample_var=v)
    assert bare.r2_ is None
    assert "R^2" not in str(bare.summary())


#: Zero sampling variances in studies that leave the others unable to identify
#: the coefficients alone: one of two studies; three that pin all three
#: coefficients beside one other; one whose moderator value the two others do
#: not vary (neither group identifies beta).
PINNING_ZEROS = {
    "two studies": (
        None,
        [-0.047881952187394966, 0.1373170460301162],
        [0.046760724093664524, 0.0],
    ),
    "zeros pin beta": (
        [
            [0.04900788718656193, 0.9964386925784735],
            [1.7195196481043489, -0.3140203829894607],
            [-0.19115207655569447, -0.16936732242149208],
            [-0.3824110029323724, 1.3689174955646732],
        ],
        [
            0.5565044935718705,
            0.8724604764945905,
            0.17293766549900058,
            0.4731135514450589,
        ],
        [0.0, 0.06632239438364665, 0.0, 0.0],
    ),
    "neither identifies beta": (
        [[1.0], [1.0], [0.0]],
        [0.5, 0.9, 0.3],
        [0.003552098778152204, 1.5184312354770797, 0.0],
    ),
}


@pytest.mark.parametrize("case", sorted(PINNING_ZEROS))
def test_reml_standard_error_when_zero_variances_pin_the_coefficients(case):
    """se(tau2) = sqrt(2 / tr(P^2)) at the fitted tau^2 (the floor, tau^2 = 0
    reported), tr(P^2) in rational arithmetic. The plain trace formula cancels
    the weights 1/floor ~ 1e12 down to 0: before, a ZeroDivisionError."""
    from skmeta._engine._univariate import variance_floor

    X, y, v = (
        None if a is None else np.array(a, dtype=float) for a in PINNING_ZEROS[case]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fitted exactly: warned
        model = RandomEffectsMeta().fit(X, y, sample_var=v)
    tau2 = model.tau2_ if model.tau2_ > 0 else variance_floor(v, y)
    k = y.shape[0]
    design = np.ones((k, 1)) if X is None else np.column_stack([np.ones(k), X])
    P = exact_projection(design, 1.0 / (v + tau2))
    trpp = sum(P[i][j] ** 2 for i in range(k) for j in range(k))
    assert model.tau2_se_ == pytest.approx(float(np.sqrt(2.0 / float(trpp))), rel=1e-9)


def _grid_maximum(X, y, v, method, lower=0.0):
    """The criterion's maximum over tau2 = lower and 2000 values log-spaced from
    1e-12 to 1e3 of the data's variance scale (at least ``lower``)."""
    scale = max(np.var(y), np.mean(v))
    grid = np.concatenate([[lower], np.logspace(-12, 3, 2000) * scale])
    grid = grid[grid >= lower]
    return max(profile(X, y, v, t, reml=method == "reml") for t in grid)


#: Outputs of simulated benign data (k = 10, intercept only) where Fisher
#: scoring crept towards tau^2 = 0 over a flat, convex stretch of the profile.
CREEPING = {
    "reml": (
        [0.29917783230140665, 0.5022406793668954, 0.5567306825340741,
         -0.9829584646168943, 0.2512512175197369, -0.4441454263564825,
         1.2285183093982541, -0.2694606573194466, 1.067893550455454,
         1.2283127193676209],
        [0.014348825201912229, 0.49826013421721665, 0.3414325626472867,
         0.4184469378996174, 0.0767251899897415, 0.4501144740397541,
         0.39604595093168427, 0.3647425644536627, 0.3547653621605598,
         0.19242936065059935],
    ),
    "ml": (
        [1.6485645243160776, -0.9151723661016364, -0.43940497485333757,
         0.4106003622517692, 0.6580148758416822, 0.062053285599083685,
         1.7436788344912881, 0.2860755576842478, 0.32667274331689533,
         0.25789946773973554],
        [0.3095559552948486, 0.3649624859282267, 0.3980921689592879,
         0.35213187276615254, 0.21819094106457176, 0.45896082521825166,
         0.3930893307567436, 0.2335198051561688, 0.034466198166538,
         0.18164964211574766],
    ),
}  # fmt: skip


@pytest.mark.parametrize("method", sorted(CREEPING))
def test_fisher_scoring_does_not_creep_over_a_flat_stretch(method):
    """Before: 100 Fisher-scoring steps of ~1e-4 (the score over the expected
    information, tiny where the profile is flat and convex) from the DL start
    towards the maximum at tau^2 = 0: converged_ False at max_iter. The steps
    are doubled while the criterion increases, so the path reaches the bound."""
    y, v = (np.array(a) for a in CREEPING[method])
    X = np.empty((y.shape[0], 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning
        model = RandomEffectsMeta(method=method).fit(None, y, sample_var=v)
    assert model.converged_ and model.n_iter_ < 30
    best = _grid_maximum(X, y, v, method)
    assert model.loglik_ >= best - 1e-10 * (1.0 + abs(best))
    assert model.tau2_ == 0.0


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_zero_variances_converge_relative_to_tau2(method):
    """Two of three studies with sample_var 0 and tau^2 ~ 1e-5: the tolerance of
    Newton's method was relative to the data's variance scale (0.1), so a step
    of 5% of tau^2 counted as converged (REML logLik 4.37587 for a maximum
    4.37663, ML 11.15561 for 11.15693). With zero variances it is relative to
    tau^2 itself."""
    from skmeta._engine._univariate import variance_floor

    X = np.array([[0.0], [-2.0], [0.0]])
    y = np.array([0.21895590924120528, -0.5642174602415583, 0.22325654225819513])
    v = np.array([0.0, 0.005196236154582744, 0.0])
    model = RandomEffectsMeta(method=method).fit(X, y, sample_var=v)
    assert model.converged_
    best = _grid_maximum(X, y, v, method, lower=variance_floor(v, y))
    assert model.loglik_ >= best - 1e-10 * (1.0 + abs(best))
    # the criterion is stationary there (central differences)
    h = 1e-4 * model.tau2_
    around = [profile(X, y, v, model.tau2_ + d, method == "reml") for d in (-h, h)]
    assert model.loglik_ >= max(around) - 1e-12 * abs(model.loglik_)


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_sampling_variances_spanning_the_float_range_are_searched(method):
    """Sampling variances from 1e-307 to 1e6: the profile search's grid counted
    its points from stop / start = inf (before: OverflowError)."""
    y = np.array([0.3, -0.2, 0.5, 0.1, 0.4])
    v = np.array([1e-307, 1e4, 1e6, 1e4, 1e4])
    model = RandomEffectsMeta(method=method).fit(None, y, sample_var=v)
    assert model.converged_ and np.isfinite(model.loglik_)
    X = np.empty((5, 0))
    best = _grid_maximum(X, y, v, method)
    assert model.loglik_ >= best - 1e-9 * (1.0 + abs(best))


def test_newton_stops_on_terms_without_information():
    """Terms with a zero (or non-finite) information give no step: the path
    stops, not converged, instead of dividing by zero (a guard: the moment
    sums of the likelihood are exact enough on the Newton path's data that no
    fit reaching it was found)."""
    from skmeta._engine._univariate import _newton

    for terms in [(0.0, 1.0, 0.0, 0.0), (0.0, np.nan, 1.0, 1.0), (0.0, 1.0, -1.0, 0.0)]:
        tau2, _, n_iter, converged = _newton(
            lambda t, terms=terms: terms, 0.5, 0.0, np.inf, max_iter=100, tol=1e-10,
            scale=1.0,
        )  # fmt: skip
        assert (tau2, n_iter, converged) == (0.5, 1, False)
