"""MultilevelMeta against metafor's rma.mv and Stata's ``meta meregress`` seed.

metafor numbers: tests/reference/multilevel.json, written by
tests/reference/make_multilevel.R (metafor 3.8.1 with nlminb rel.tol 1e-12, so
its optima are precise to ~1e-7 and the tolerances here are tight). Stata
numbers: the printed output of the seed's examples 1-7
(../shared/seeds/001_a043e7919b94a373.txt), compared to the digits printed.

Likelihood convention: Stata's printed REML log restricted-likelihood
(-7.9587239 for the three-level school-calendar model) equals metafor's REML
logLik *with* the +1/2 log|X'X| constant (REMLf = TRUE), although the seed's
Methods and formulas write the restricted likelihood without it; skmeta's
loglik_ uses this convention, so both tools' numbers are reproduced.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from skmeta._engine import _ml_fit as mlf
from skmeta._engine import _ml_structures as mls
from skmeta._engine import _multilevel as ml
from skmeta._multilevel import MultilevelMeta

REF = json.loads((Path(__file__).parent / "reference" / "multilevel.json").read_text())


def _data(name):
    df = pd.DataFrame(REF["data"][name])
    if name == "konstantopoulos2011":
        df["year_c"] = df["year"] - 1990
    return df


def _as_list(x):
    if x is None:
        return []
    return [x] if isinstance(x, str) else list(x)


def _fit_spec(spec):
    df = _data(spec["data"])
    groups = df[_as_list(spec["groups"])]
    Xcols = _as_list(spec["X"])
    X = df[Xcols] if Xcols else None
    slopes = _as_list(spec.get("slopes"))
    kwargs = {"method": spec["method"].lower()}
    Z = None
    if slopes:
        Z = df[slopes]
        kwargs["random_slopes"] = {0: slopes}
        struct = "unstructured" if spec["struct"] == "GEN" else "independent"
        if "rho" in spec:
            r = spec["rho"]
            struct = np.array([[np.nan, r], [r, np.nan]], dtype=object)
        kwargs["covariance"] = [struct] + ["independent"] * (groups.shape[1] - 1)
    model = MultilevelMeta(**kwargs).fit(
        X, df["yi"], sample_var=df["vi"], groups=groups, Z=Z
    )
    return model


@pytest.fixture(scope="module")
def fitted():
    return {name: _fit_spec(f["spec"]) for name, f in REF["fits"].items()}


@pytest.mark.parametrize("name", sorted(REF["fits"]))
def test_against_metafor(fitted, name):
    ref = REF["fits"][name]
    m = fitted[name]
    assert m.converged_
    # the (restricted) log-likelihood at the optimum: both optimizers converge
    # tightly, and ours is never worse than metafor's
    assert m.loglik_ == pytest.approx(ref["logLik"], abs=1e-6)
    assert m.loglik_ >= ref["logLik"] - 1e-8
    beta = np.r_[m.intercept_, m.coef_]
    np.testing.assert_allclose(beta, np.atleast_1d(ref["beta"]), rtol=1e-4, atol=1e-6)
    se = np.sqrt(np.diag(m.cov_params_))
    np.testing.assert_allclose(se, np.atleast_1d(ref["se"]), rtol=1e-4)
    fs = ref["fitstats"]
    assert m.aic_ == pytest.approx(fs["AIC"], abs=1e-5)
    assert m.bic_ == pytest.approx(fs["BIC"], abs=1e-5)
    assert m.aicc_ == pytest.approx(fs["AICc"], abs=1e-5)
    assert m.q_ == pytest.approx(ref["QE"], rel=1e-10)
    if "tau2" in ref:  # random slopes at the outer level, then intercept levels
        S = m._sigmas[0]
        # variances near 0 or correlations at the boundary are only as precise
        # as the optimizers' stopping rules: absolute tolerances
        np.testing.assert_allclose(np.diag(S), ref["tau2"], rtol=1e-3, atol=2e-6)
        np.testing.assert_allclose(
            np.diag(m.cov_params_), np.square(ref["se"]), rtol=2e-4
        )
        rho = S[0, 1] / np.sqrt(S[0, 0] * S[1, 1]) if S[1, 1] > 1e-8 else 0.0
        if np.diag(S).min() > 1e-4 or "rho" in ref["spec"]:
            assert rho == pytest.approx(ref["rho"], abs=1e-3)
        # (inner variances on the boundary: metafor stops at ~1e-8, we reach 0)
        np.testing.assert_allclose(
            m.sigma2_[1:], np.atleast_1d(ref["sigma2"]), rtol=1e-3, atol=1e-7
        )
    else:
        np.testing.assert_allclose(m.sigma2_, np.atleast_1d(ref["sigma2"]), rtol=1e-4)
    if not _as_list(ref["spec"]["X"]):
        pr = m.predict_interval()
        pf = ref["predict_first"]
        assert pr["mean"][0] == pytest.approx(pf["pred"], rel=1e-4)
        assert pr["se"][0] == pytest.approx(pf["se"], rel=1e-4)
        assert pr["pi_lower"][0] == pytest.approx(pf["pi_lb"], rel=1e-4)
        assert pr["pi_upper"][0] == pytest.approx(pf["pi_ub"], rel=1e-4)


@pytest.mark.parametrize(
    "name", [n for n in sorted(REF["fits"]) if "tau2" not in REF["fits"][n]]
)
def test_blups_against_metafor(fitted, name):
    ref = REF["fits"][name]
    m = fitted[name]
    for lev, key in enumerate(ref["ranef"]):
        r = ref["ranef"][key]["values"]
        frame = m.random_effects_[m.level_names_[lev]]
        # BLUPs inherit the ~1e-5 relative precision of the variance components
        # (both optimizers stop there; our log-likelihood is >= metafor's)
        np.testing.assert_allclose(
            frame["estimate"], r["intrcpt"], rtol=1e-4, atol=1e-6
        )
        np.testing.assert_allclose(frame["se"], r["se"], rtol=1e-4)


@pytest.mark.parametrize(
    "name", [n for n in sorted(REF["fits"]) if "tau2" in REF["fits"][n]]
)
def test_inner_blups_of_slope_models_against_metafor(fitted, name):
    """metafor 3.8.1's ranef() gives the BLUPs of the inner (sigma2) levels only
    for models with a G structure; these go through our dense batched path."""
    ref = REF["fits"][name]
    m = fitted[name]
    for lev, key in enumerate(ref["ranef"], start=1):
        r = ref["ranef"][key]["values"]
        frame = m.random_effects_[m.level_names_[lev]]
        np.testing.assert_allclose(
            frame["estimate"], r["intrcpt"], rtol=1e-3, atol=2e-5
        )
        # where metafor's inner variance stops at ~1e-8 instead of 0 (bimodal
        # data), its prediction-error SD is sqrt(~1e-8) ~ 1e-4 instead of ~0
        np.testing.assert_allclose(frame["se"], r["se"], rtol=1e-3, atol=1e-4)


def test_konstantopoulos_profile_ci(fitted):
    """Profile-likelihood CIs of sigma2 (metafor's confint, 4 printed digits)."""
    m = fitted["konst_3level_REML"]
    ref = REF["fits"]["konst_3level_REML"]["profile_ci"]
    for lev, key in [(0, "sigma2_1"), (1, "sigma2_2")]:
        ci = m.sigma2_confint(lev)
        est, lo, hi = ref[key]
        assert ci.loc["sigma2", "estimate"] == pytest.approx(est, rel=1e-5)
        # metafor stops its root search early (uniroot default tolerance), so
        # its bounds are exact to ~4 digits only: compare at that precision
        assert ci.loc["sigma2", "ci_lower"] == pytest.approx(lo, rel=1e-3)
        assert ci.loc["sigma2", "ci_upper"] == pytest.approx(hi, rel=1e-3)
        assert round(ci.loc["sigma2", "ci_lower"], 4) == round(lo, 4)
        assert round(ci.loc["sigma2", "ci_upper"], 4) == round(hi, 4)


def test_profile_ci_bound_is_exact(fitted):
    """At our bound the profile log-likelihood drops by exactly chi2_1(.95)/2."""
    from scipy import stats

    m = fitted["konst_3level_REML"]
    lo = m.sigma2_confint(1).loc["sigma2", "ci_lower"]
    y, v, X, codes, *_ = m._data
    des = ml.prepare_intercepts(y, v, X, codes)

    def prof(s2):
        res = optimize.minimize_scalar(
            lambda a: -ml.intercept_loglik(des, [a, s2], True, gradient=False).loglik,
            bounds=(0.0, 1.0),
            method="bounded",
            options={"xatol": 1e-12},
        )
        return -res.fun

    drop = m.loglik_ - prof(lo)
    assert drop == pytest.approx(stats.chi2.ppf(0.95, 1) / 2, abs=1e-6)


# ---------------------------------------------------------------- Stata seed
def _konst():
    return _data("konstantopoulos2011")


def _fit_konst(**kw):
    df = _konst()
    X = kw.pop("X", None)
    groups = kw.pop("groups", ["district", "school"])
    Z = df[["year_c"]] if "random_slopes" in kw else None
    return MultilevelMeta(**kw).fit(
        None if X is None else df[X],
        df["yi"],
        sample_var=df["vi"],
        groups=df[groups],
        Z=Z,
    )


def test_stata_example2_three_level():
    m = _fit_konst()
    assert m.intercept_ == pytest.approx(0.1847132, abs=5e-7)
    assert np.sqrt(m.cov_params_[0, 0]) == pytest.approx(0.0845559, abs=5e-7)
    sd = m.re_parameters("sd")["estimate"]
    assert sd[("district", "sd(intercept)")] == pytest.approx(0.2550724, abs=5e-7)
    assert sd[("school", "sd(intercept)")] == pytest.approx(0.1809324, abs=5e-7)
    # Stata's data (se = sqrt(var) in double) vs metadat's vi: 1e-7 apart
    assert m.loglik_ == pytest.approx(-7.9587239, abs=2e-7)
    assert m.q_ == pytest.approx(578.86, abs=0.005)
    assert m.dof_ == 55
    ci = m.summary().to_frame().loc["intercept"]
    assert ci["ci_lower"] == pytest.approx(0.0189866, abs=5e-7)
    assert ci["ci_upper"] == pytest.approx(0.3504397, abs=5e-7)
    assert list(m.n_groups_) == [11, 56]


def test_stata_example3_heterogeneity():
    i2 = _fit_konst().i2_
    assert i2["cochran"] == pytest.approx(90.50, abs=0.005)
    assert i2["district"] == pytest.approx(63.32, abs=0.005)
    assert i2["school"] == pytest.approx(31.86, abs=0.005)
    assert i2["total"] == pytest.approx(95.19, abs=0.005)


def test_stata_example4_lr_tests_and_information_criteria():
    m = _fit_konst()
    school = m.lr_test_level("school")  # H0: tau_2^2 = 0 (model || district:)
    dist = m.lr_test_level("district")  # H0: tau_3^2 = 0 (model || study:)
    assert school.statistic == pytest.approx(48.52, abs=0.005)
    assert dist.statistic == pytest.approx(17.77, abs=0.005)
    for t in (school, dist):
        assert t.df == 1
        # boundary-corrected p-value: half the naive chi2_1 one
        assert t.p_value_boundary == pytest.approx(0.5 * t.p_value, rel=1e-12)
    assert school.table.loc["reduced", "loglik"] == pytest.approx(-32.21648, abs=5e-6)
    assert dist.table.loc["reduced", "loglik"] == pytest.approx(-16.8455, abs=5e-5)
    # estimates stats main_model dist_effect school_effect, all n(55)
    assert (m.aic_, m.bic_, m.aicc_, m.caic_) == pytest.approx(
        (21.91745, 27.93945, 22.38804, 30.93945), abs=5e-6
    )
    df = _konst()
    for cols, ref in [
        (["study"], (37.691, 41.70566, 37.92177, 43.70566)),
        (["district"], (68.43295, 72.44762, 68.66372, 74.44762)),
    ]:
        r = MultilevelMeta().fit(None, df["yi"], sample_var=df["vi"], groups=df[cols])
        assert r.n_params_ == 2
        assert (r.aic_, r.bic_, r.aicc_, r.caic_) == pytest.approx(ref, abs=5e-5)


STATA_EX5 = {"sd_slope": 0.0335302, "sd_cons": 0.06437, "sd_school": 0.1808125}


def test_stata_example5_is_a_local_maximum_and_we_find_the_global_one():
    """Stata's printed example 5 (independent slopes) is a local optimum.

    Its log restricted-likelihood -7.2095301 is reproduced by evaluating our
    likelihood at Stata's printed estimates, an optimizer started there stays
    there (it is a genuine local maximum), yet the global maximum is -7.181389,
    which metafor (GDIAG) also finds, and which Stata's own example 7 reports
    (corr0: _cons 0.181, se 0.090), the same model fitted as a custom structure.
    """
    m = _fit_konst(X=["year_c"], random_slopes={"district": ["year_c"]})
    y, v, X, codes, Zlev, *_ = m._data
    des = ml.prepare_design(y, v, X, codes, Zlev)
    S = [
        np.diag([STATA_EX5["sd_cons"] ** 2, STATA_EX5["sd_slope"] ** 2]),
        np.array([[STATA_EX5["sd_school"] ** 2]]),
    ]
    stata = ml.profile_loglik(des, S, True, gradient=False)
    ll_stata = stata.loglik
    assert ll_stata == pytest.approx(-7.2095301, abs=2e-6)
    assert stata.beta == pytest.approx([0.1609612, 0.0096021], abs=2e-6)
    # a local maximum: L-BFGS from Stata's point stays at -7.2095
    specs = [mls.make_cov_spec("independent", 2), mls.make_cov_spec("independent", 1)]
    # (SDs of the slope level; the intercept-only school level is
    # parametrized by its variance)
    th0 = np.array(
        [STATA_EX5["sd_cons"], STATA_EX5["sd_slope"], STATA_EX5["sd_school"] ** 2]
    )
    res = optimize.minimize(
        mlf._objective, th0, args=(des, specs, True), jac=True, method="L-BFGS-B"
    )
    assert -res.fun == pytest.approx(-7.2095301, abs=1e-5)
    # ... while the multi-start fit finds the better maximum
    assert m.loglik_ == pytest.approx(-7.181389, abs=1e-6)
    assert m.loglik_ > ll_stata + 0.02
    assert len(m.optima_) >= 1 and m.optima_[0] == pytest.approx(m.loglik_, abs=1e-6)
    assert m.intercept_ == pytest.approx(0.1806, abs=5e-5)


def test_stata_example6_unstructured():
    m = _fit_konst(
        X=["year_c"],
        random_slopes={"district": ["year_c"]},
        covariance=["unstructured", "independent"],
    )
    sd = m.re_parameters("sd")["estimate"]
    assert round(sd[("district", "sd(year_c)")], 3) == 0.028
    assert round(sd[("district", "sd(intercept)")], 3) == 0.082
    assert round(sd[("district", "corr(year_c, intercept)")], 3) == 1.000
    assert round(sd[("school", "sd(intercept)")], 3) == 0.180
    se = np.sqrt(np.diag(m.cov_params_))
    assert np.round([m.intercept_, *m.coef_], 3).tolist() == [0.160, 0.007]
    assert np.round(se, 3).tolist() == [0.076, 0.010]
    assert m.q_ == pytest.approx(550.26, abs=0.005)


def test_stata_example6_custom_fixed_correlation():
    A = np.array([[np.nan, 0.5], [0.5, np.nan]], dtype=object)
    m = _fit_konst(
        X=["year_c"],
        random_slopes={"district": ["year_c"]},
        covariance=[A, "independent"],
    )
    p = m.re_parameters("sd")
    assert round(p["estimate"][("district", "sd(year_c)")], 3) == 0.026
    assert round(p["estimate"][("district", "sd(intercept)")], 3) == 0.116
    assert p["estimate"][("district", "corr(year_c, intercept)")] == 0.5
    assert bool(p["fixed"][("district", "corr(year_c, intercept)")])
    assert round(p["estimate"][("school", "sd(intercept)")], 3) == 0.180
    se = np.sqrt(np.diag(m.cov_params_))
    assert np.round([m.intercept_, *m.coef_], 3).tolist() == [0.170, 0.007]
    assert np.round(se, 3).tolist() == [0.082, 0.011]


def test_stata_example6_custom_equal_sds():
    B = np.array([["a", 0.5], [0.5, "a"]], dtype=object)
    m = _fit_konst(
        X=["year_c"],
        random_slopes={"district": ["year_c"]},
        covariance=[B, "independent"],
    )
    var = m.re_parameters("var")["estimate"]
    # estat recovariance: .0010852, .0005426, .0326401
    assert var[("district", "var(intercept)")] == pytest.approx(0.0010852, abs=5e-8)
    assert var[("district", "var(year_c)")] == pytest.approx(0.0010852, abs=5e-8)
    assert var[("district", "cov(year_c, intercept)")] == pytest.approx(
        0.0005426, abs=5e-8
    )
    assert var[("school", "var(intercept)")] == pytest.approx(0.0326401, abs=5e-8)
    se = np.sqrt(np.diag(m.cov_params_))
    assert np.round([m.intercept_, *m.coef_], 3).tolist() == [0.154, 0.010]
    assert np.round(se, 3).tolist() == [0.076, 0.012]


@pytest.mark.parametrize(
    "rho, ref",
    [
        (0.0, (0.181, 0.090, 0.006, 0.011)),
        (0.4, (0.172, 0.083, 0.007, 0.011)),
        (0.8, (0.164, 0.078, 0.007, 0.011)),
    ],
)
def test_stata_example7_sensitivity(rho, ref):
    C = np.array([[np.nan, rho], [rho, np.nan]], dtype=object)
    m = _fit_konst(
        X=["year_c"],
        random_slopes={"district": ["year_c"]},
        covariance=[C, "independent"],
    )
    se = np.sqrt(np.diag(m.cov_params_))
    got = (m.intercept_, se[0], m.coef_[0], se[1])
    assert np.round(got, 3).tolist() == list(ref)


def test_stata_example1_pupil_iq():
    """Two-level model with one effect per study (Stata's example 1).

    metadat's yi are rounded to 2 decimals and vi to 4, while Stata's stdmdiff
    and se are not: the numbers agree to the 4 significant digits that the data
    transcription supports (rel 5e-4); metafor on the same data is matched
    tightly in test_against_metafor.
    """
    df = _data("raudenbush1985")
    m = MultilevelMeta().fit(None, df["yi"], sample_var=df["vi"], groups=df["study"])
    rel = 5e-4
    assert m.intercept_ == pytest.approx(0.0836939, rel=rel)
    assert np.sqrt(m.cov_params_[0, 0]) == pytest.approx(0.0516531, rel=rel)
    # variance components are the most sensitive to the data rounding
    assert m.sigma2_[0] == pytest.approx(0.0188289, rel=1e-3)
    assert np.sqrt(m.sigma2_[0]) == pytest.approx(0.1372184, rel=rel)
    assert round(m.sigma2_[0], 4) == 0.0188  # meta summarize's tau2
    assert m.loglik_ == pytest.approx(-3.7365412, rel=rel)
    assert m.q_ == pytest.approx(35.83, abs=0.005)
    w = MultilevelMeta().fit(
        df[["weeks"]], df["yi"], sample_var=df["vi"], groups=df["study"]
    )
    assert w.intercept_ == pytest.approx(0.1941769, rel=rel)
    assert w.coef_[0] == pytest.approx(-0.0157453, rel=rel)
    np.testing.assert_allclose(
        np.sqrt(np.diag(w.cov_params_)), [0.0633561, 0.0057447], rtol=rel
    )
    assert w.sigma2_[0] == pytest.approx(0.011166, rel=2e-3)  # printed to 5 digits
    assert w.q_ == pytest.approx(27.66, abs=0.02)  # 27.673 on metadat's rounded yi
    assert w.qm_ == pytest.approx(7.51, abs=0.005)
    assert w.loglik_ == pytest.approx(-0.71388211, abs=1e-3)


def test_bimodal_likelihood_global_maximum():
    """A random-slope (unstructured) REML likelihood with two local maxima.

    metafor's optimizers disagree on these data: nlminb, optim and BFGS reach
    the global maximum (-8.0917), Nelder-Mead stops at the other local maximum
    (-8.1998, correlation -1). skmeta's multi-start search sees both optima and
    reports the global one.
    """
    ref = REF["fits"]["bimodal_GEN_REML"]
    by_opt = ref["logLik_by_optimizer"]
    assert by_opt["Nelder-Mead"] < by_opt["nlminb"] - 0.1  # metafor: two optima
    m = _fit_spec(ref["spec"])
    assert m.loglik_ == pytest.approx(max(by_opt.values()), abs=1e-6)
    assert len(m.optima_) == 2
    assert m.optima_[1] == pytest.approx(by_opt["Nelder-Mead"], abs=1e-5)
    np.testing.assert_allclose([m.intercept_, *m.coef_], ref["beta"], atol=1e-6)
    S = m._sigmas[0]
    np.testing.assert_allclose(np.diag(S), ref["tau2"], rtol=1e-4)
    # the starts matter: the first four end at the global maximum, the fifth
    # (the first random split of the heterogeneity) at the other one
    singles = []
    df = _data("bimodal")
    for n in (1, 4, 5):
        fit = MultilevelMeta(
            n_starts=n,
            random_slopes={0: ["x"]},
            covariance=["unstructured", "independent"],
        ).fit(
            df[["x"]],
            df["yi"],
            sample_var=df["vi"],
            groups=df[["cluster", "es"]],
            Z=df[["x"]],
        )
        singles.append(len(fit.optima_))
    assert singles == [1, 1, 2]


def test_generic_lr_test_reproduces_stata_example4():
    """skmeta.lr_test on two fits gives Stata's LR chi2 (17.77 and 48.52)."""
    from skmeta import lr_test

    df = _konst()
    full = _fit_konst()
    for cols, ref in [(["study"], 17.77), (["district"], 48.52)]:
        reduced = MultilevelMeta().fit(
            None, df["yi"], sample_var=df["vi"], groups=df[cols]
        )
        res = lr_test(full, reduced)
        assert res.statistic == pytest.approx(ref, abs=0.005)
        assert res.df == 1
        assert res.p_value_boundary == pytest.approx(0.5 * res.p_value, rel=1e-12)


def test_konstantopoulos_published_numbers():
    """notes/reference-conventions.md §3 (metafor's test of Konstantopoulos 2011)."""
    df = _konst()
    kw = {"sample_var": df["vi"], "groups": df[["district", "school"]]}
    ml_fit = MultilevelMeta(method="ml").fit(None, df["yi"], **kw)
    assert round(ml_fit.intercept_, 4) == 0.1845
    assert round(np.sqrt(ml_fit.cov_params_[0, 0]), 4) == 0.0805
    assert np.round(ml_fit.sigma2_, 4).tolist() == [0.0577, 0.0329]
    pi = ml_fit.predict_interval()
    assert (round(pi["pi_lower"][0], 4), round(pi["pi_upper"][0], 4)) == (
        -0.4262,
        0.7951,
    )
    ml_year = MultilevelMeta(method="ml").fit(
        df[["year"]] - df["year"].mean(), df["yi"], **kw
    )
    assert np.round([ml_year.intercept_, *ml_year.coef_], 4).tolist() == [
        0.1780,
        0.0051,
    ]
    assert np.round(np.sqrt(np.diag(ml_year.cov_params_)), 4).tolist() == [
        0.0805,
        0.0085,
    ]
    assert np.round(ml_year.sigma2_, 4).tolist() == [0.0565, 0.0329]
    reml = MultilevelMeta().fit(None, df["yi"], **kw)
    assert round(reml.intercept_, 4) == 0.1847
    assert round(np.sqrt(reml.cov_params_[0, 0]), 4) == 0.0846
    assert np.round(reml.sigma2_, 4).tolist() == [0.0651, 0.0327]
    assert round(reml.sigma2_.sum(), 4) == 0.0978  # total heterogeneity
    assert round(reml.sigma2_[0] / reml.sigma2_.sum(), 4) == 0.6653  # ICC
    assert round(reml.loglik_, 4) == -7.9587
    ci1, ci2 = reml.sigma2_confint(0), reml.sigma2_confint(1)
    assert np.round(ci1.loc["sigma2"].to_numpy(), 4).tolist() == [
        0.0651,
        0.0222,
        0.2072,
    ]
    assert np.round(ci1.loc["sigma"].to_numpy(), 4).tolist() == [0.2551, 0.1491, 0.4552]
    assert np.round(ci2.loc["sigma2"].to_numpy(), 4).tolist() == [
        0.0327,
        0.0163,
        0.0628,
    ]
    # metafor's lower bound 0.12757 carries its root finder's tolerance; the
    # exact bound is 0.127535 (see test_profile_ci_bound_is_exact), which
    # rounds to 0.1275: compare within one unit of the 4th decimal there
    np.testing.assert_allclose(
        ci2.loc["sigma"].to_numpy(), [0.1809, 0.1276, 0.2507], atol=1e-4
    )
    district = reml.random_effects_["district"]
    np.testing.assert_allclose(
        district["estimate"],
        [
            -0.18998596,
            -0.08467077,
            0.1407273,
            0.24064814,
            -0.1072942,
            -0.23650899,
            0.5342778,
            -0.2004695,
            0.05711692,
            -0.14168396,
            -0.01215679,
        ],
        atol=5e-7,
    )
    np.testing.assert_allclose(
        district["se"],
        [
            0.16653966,
            0.12407891,
            0.13724053,
            0.11885896,
            0.11895233,
            0.10112845,
            0.1297891,
            0.101322,
            0.11104458,
            0.12485549,
            0.15042221,
        ],
        rtol=1e-5,
    )
