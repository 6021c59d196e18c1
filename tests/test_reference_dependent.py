"""Dependent effect sizes (rho, CR0/CR1/CR2) against metafor and clubSandwich.

Numbers: tests/reference/dependent.json, written by
tests/reference/make_dependent.R (R 4.2.2, metafor 3.8.1, clubSandwich 0.5.8,
metadat 1.2.0): the correlated-and-hierarchical-effects model
``rma.mv(yi, vcalc(vi, cluster = study, obs = es, rho), random = ~ 1 |
study/es)`` on dat.knapp2017 and dat.assink2016 for rho in {0, 0.3, 0.6, 0.9}
(knapp2017 also 0.5, the worked example of Pustejovsky & Tipton 2022), REML and
ML, intercept-only and with moderators (a three-level factor; assink2016 also
the centred year), followed by ``robust(fit, cluster = study)`` (CR1, metafor's
factor J/(J-p)), ``robust(..., adjust = FALSE)`` (CR0) and ``robust(...,
clubSandwich = TRUE)`` (CR2 with Satterthwaite df and the HTZ test), and
``predict`` on each.

metafor ran nlminb to rel.tol 1e-12 (or 1e-10 where that did not converge, as
recorded per fit): its variance components are precise to ~1e-7 relative, so
the comparisons are at 2e-5 relative (four significant digits and more);
p-values are compared on the log scale where they are tiny.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import linalg, stats

from skmeta import MultilevelMeta, impute_covariance
from skmeta.datasets import load_assink2016, load_knapp2017

REF = json.loads((Path(__file__).parent / "reference" / "dependent.json").read_text())
RTOL = 2e-5


def _data(name):
    if name == "knapp2017":
        df = load_knapp2017()
        df["es"] = np.arange(1, len(df) + 1)
        fam = np.where(
            df["task"].str.startswith("SOC"),
            "SOC",
            np.where(df["task"].str.startswith("TOL"), "TOL", "other"),
        )
        X = pd.DataFrame(
            {"famTOL": (fam == "TOL") * 1.0, "famother": (fam == "other") * 1.0}
        )
    else:
        df = load_assink2016()
        df["es"] = df["id"]
        X = pd.DataFrame(
            {
                "deltypecovert": (df["deltype"] == "covert") * 1.0,
                "deltypeovert": (df["deltype"] == "overt") * 1.0,
                "year": df["year"],
            }
        )
    return df, X


def test_data_equal_the_reference_data():
    for name in ("knapp2017", "assink2016"):
        df, _ = _data(name)
        ref = pd.DataFrame(REF["data"][name])
        np.testing.assert_array_equal(df["yi"], ref["yi"])
        np.testing.assert_array_equal(df["vi"], ref["vi"])
        np.testing.assert_array_equal(df["study"], ref["study"])
        np.testing.assert_array_equal(df["es"], ref["es"])
    knapp = pd.DataFrame(REF["data"]["knapp2017"])
    _, X = _data("knapp2017")
    np.testing.assert_array_equal(X["famTOL"], knapp["fam"] == "TOL")
    assert REF["versions"]["metafor"] == "3.8.1"
    assert REF["versions"]["clubSandwich"] == "0.5.8"


_FITTED = {}


def _fit(key, kind):
    if (key, kind) not in _FITTED:
        ref = REF["fits"][key]
        df, X = _data(ref["data"])
        est = MultilevelMeta(
            method=ref["method"].lower(), rho=ref["rho"], cluster_robust=kind
        )
        _FITTED[key, kind] = est.fit(
            None if ref["model"] == "intercept" else X,
            df["yi"],
            sample_var=df["vi"],
            groups=df[["study", "es"]],
        )
    return _FITTED[key, kind]


def _newmods(key):
    ref = REF["fits"][key]
    if ref.get("newmods") is None:
        return None
    return pd.DataFrame(np.array(ref["newmods"]), columns=_data(ref["data"])[1].columns)


def _close(got, want, rtol=RTOL, atol=0.0):
    np.testing.assert_allclose(
        np.atleast_1d(np.asarray(got, dtype=float)),
        np.atleast_1d(np.asarray(want, dtype=float)),
        rtol=rtol,
        atol=atol,
    )


def _close_p(got, want):
    """p-values: relative 2e-5 of p, or of log p when p < 1e-6."""
    got, want = np.atleast_1d(got), np.atleast_1d(want)
    small = want < 1e-6
    _close(got[~small], want[~small], rtol=1e-4)
    _close(np.log(got[small]), np.log(want[small]), rtol=1e-5)


def _close_interval(frame, ref):
    _close(frame["mean"], ref["pred"])
    _close(frame["se"], ref["se"])
    for ours, theirs in [
        ("ci_lower", "ci_lb"),
        ("ci_upper", "ci_ub"),
        ("pi_lower", "pi_lb"),
        ("pi_upper", "pi_ub"),
    ]:
        _close(frame[ours], ref[theirs], atol=1e-6)


KEYS = sorted(REF["fits"])


@pytest.mark.parametrize("key", KEYS)
def test_model_based_against_metafor(key):
    ref = REF["fits"][key]
    m = _fit(key, None)
    assert m.converged_
    # both optimizers converged tightly; ours is never lower
    assert m.loglik_ == pytest.approx(ref["logLik"], abs=1e-6)
    assert m.loglik_ >= ref["logLik"] - 1e-8
    _close(m._beta, ref["beta"])
    _close(np.sqrt(np.diag(m.cov_params_)), ref["se"])
    # variance components at the boundary: metafor stops at ~1e-9, we reach 0
    _close(m.sigma2_, ref["sigma2"], atol=1e-6)
    table = m.summary().to_frame()
    _close(table["statistic"], ref["zval"])
    _close_p(table["p_value"], ref["pval"])
    _close(table["ci_lower"], ref["ci_lb"], atol=1e-6)
    _close(table["ci_upper"], ref["ci_ub"], atol=1e-6)
    assert m.q_ == pytest.approx(ref["QE"], rel=1e-10)
    fs = ref["fitstats"]
    assert (m.aic_, m.bic_, m.aicc_) == pytest.approx(
        (fs["AIC"], fs["BIC"], fs["AICc"]), abs=1e-5
    )
    if ref["model"] != "intercept":
        assert m.qm_ == pytest.approx(ref["QM"], rel=RTOL)
        _close_p(m.qm_pvalue_, ref["QMp"])
    _close_interval(m.predict_interval(_newmods(key)), ref["predict"])


@pytest.mark.parametrize("key", KEYS)
def test_cr2_against_clubsandwich(key):
    """robust(fit, cluster = study, clubSandwich = TRUE): CR2 with the fitted
    marginal covariance as target, Satterthwaite df per coefficient and per
    predict() row, HTZ test of the moderators."""
    ref = REF["fits"][key]
    cr2 = ref["cr2"]
    m = _fit(key, "cr2")
    table = m.summary().to_frame()
    _close(m.cov_params_, np.array(cr2["vcov"]), atol=1e-10)
    _close(table["se"], cr2["se"])
    _close(table["statistic"], cr2["t"])
    _close(m.robust_dof_, cr2["df"])
    _close_p(table["p_value"], cr2["pval"])
    _close(table["ci_lower"], cr2["ci_lb"], atol=1e-6)
    _close(table["ci_upper"], cr2["ci_ub"], atol=1e-6)
    if ref["model"] != "intercept":
        htz = cr2["htz"]
        assert m.qm_ == pytest.approx(htz["Fstat"], rel=RTOL)
        assert m.qm_ == pytest.approx(cr2["QM"], rel=RTOL)
        assert m._qm_df[:2] == pytest.approx((htz["df_num"], htz["df_denom"]), rel=RTOL)
        assert m.qm_pvalue_ == pytest.approx(htz["p"], rel=1e-4)
    _close_interval(m.predict_interval(_newmods(key)), cr2["predict"])


@pytest.mark.parametrize("key", KEYS)
def test_cr1_and_cr0_against_metafor(key):
    """metafor's default robust(): CR1 with the factor J/(J-p) (clubSandwich's
    CR1p), t tests with J - p df, F(q, J - p); adjust = FALSE: CR0."""
    ref = REF["fits"][key]
    cr1 = ref["cr1"]
    m = _fit(key, "cr1")
    table = m.summary().to_frame()
    _close(table["se"], cr1["se"])
    _close(table["statistic"], cr1["t"])
    assert np.all(m.robust_dof_ == cr1["df"])
    _close_p(table["p_value"], cr1["pval"])
    _close(table["ci_lower"], cr1["ci_lb"], atol=1e-6)
    if ref["model"] != "intercept":
        assert m.qm_ == pytest.approx(cr1["QM"], rel=RTOL)
        assert m._qm_df[:2] == tuple(cr1["QMdf"])
        assert m.qm_pvalue_ == pytest.approx(cr1["QMp"], rel=1e-4)
    _close_interval(m.predict_interval(_newmods(key)), cr1["predict"])
    m0 = _fit(key, "cr0")
    _close(np.sqrt(np.diag(m0.cov_params_)), ref["cr0"]["se"])


# ------------------------------------------- the published worked example
def test_che_worked_example_knapp2017():
    """Pustejovsky & Tipton (2022)'s CHE recipe on dat.knapp2017, rho = 0.5,
    at the printed precision of the worked example."""
    df, X = _data("knapp2017")
    kw = {"sample_var": df["vi"], "groups": df[["study", "es"]]}
    m = MultilevelMeta(rho=0.5).fit(None, df["yi"], **kw)
    assert np.round(m.sigma2_, 7).tolist() == [0.0071206, 0.0554064]
    assert round(m.intercept_, 5) == 0.66881
    assert round(np.sqrt(m.cov_params_[0, 0]), 4) == 0.0551
    robust = {
        kind: MultilevelMeta(rho=0.5, cluster_robust=kind).fit(None, df["yi"], **kw)
        for kind in ("cr0", "cr1", "cr2")
    }
    assert round(np.sqrt(robust["cr0"].cov_params_[0, 0]), 6) == 0.053911
    assert round(np.sqrt(robust["cr1"].cov_params_[0, 0]), 6) == 0.054802
    assert robust["cr1"].robust_dof_[0] == 30
    cr2 = robust["cr2"]
    row = cr2.summary().to_frame().loc["intercept"]
    assert round(row["se"], 6) == 0.054830
    assert round(cr2.robust_dof_[0], 3) == 22.426
    assert round(row["statistic"], 3) == 12.198
    assert (round(row["ci_lower"], 4), round(row["ci_upper"], 4)) == (0.5552, 0.7824)
    pi = cr2.predict_interval()
    assert (round(pi["pi_lower"][0], 4), round(pi["pi_upper"][0], 4)) == (
        0.1385,
        1.1991,
    )
    fam = MultilevelMeta(rho=0.5, cluster_robust="cr2").fit(X, df["yi"], **kw)
    assert round(fam.sigma2_[1], 6) == 0.054044
    assert fam.sigma2_[0] < 1e-8  # at its boundary (metafor: 9.1e-10)
    t = fam.summary().to_frame()
    np.testing.assert_allclose(t["estimate"], [0.65308, -0.051686, 0.25195], atol=5e-6)
    np.testing.assert_allclose(t["se"], [0.065798, 0.11502, 0.11533], atol=5e-6)
    np.testing.assert_allclose(fam.robust_dof_, [8.3007, 17.520, 3.4438], atol=5e-4)
    # HTZ: Q = 6.2843, nu = 7.3041, F = 2.7119 on (2, 6.3041), p = 0.14132
    assert round(fam.qm_, 4) == 2.7119
    assert round(fam._qm_df[1], 4) == 6.3041
    assert round(fam.qm_pvalue_, 5) == 0.14132
    tol = fam.predict_interval(pd.DataFrame({"famTOL": [1.0], "famother": [0.0]}))
    assert round(tol["mean"][0], 4) == 0.6014
    assert round(tol["se"][0], 4) == 0.0943
    assert (round(tol["ci_lower"][0], 4), round(tol["ci_upper"][0], 4)) == (
        0.3890,
        0.8137,
    )
    cr1 = MultilevelMeta(rho=0.5, cluster_robust="cr1").fit(X, df["yi"], **kw)
    np.testing.assert_allclose(
        np.sqrt(np.diag(cr1.cov_params_)), [0.06628, 0.11639, 0.11062], atol=5e-6
    )
    assert round(cr1.qm_, 4) == 3.4378 and cr1._qm_df[:2] == (2, 28)
    assert round(cr1.qm_pvalue_, 6) == 0.046228


# ------------------------------------------- CR2 computed by hand (dense)
def _by_hand(y, v, X, study, sigma2, rho):
    """CR2, Satterthwaite df and HTZ of the CHE model, from the formulas with
    dense k x k matrices (Bell & McCaffrey 2002; Tipton & Pustejovsky 2015):
    target Theta, A_j = F'(F B F')^(-1/2) F with F the upper Cholesky factor of
    Theta_j and B_j = Theta_j - X_j M X_j'."""
    k, p = X.shape
    same = study[:, None] == study[None, :]
    R = np.where(same, rho * np.sqrt(np.outer(v, v)), 0.0)
    np.fill_diagonal(R, v)
    Theta = R + sigma2[0] * same + sigma2[1] * np.eye(k)
    W = np.linalg.inv(Theta)
    M = np.linalg.inv(X.T @ W @ X)
    beta = M @ X.T @ W @ y
    e = y - X @ beta
    clusters = np.unique(study)
    A = np.zeros((k, k))
    for c in clusters:
        j = np.flatnonzero(study == c)
        F = linalg.cholesky(Theta[np.ix_(j, j)], lower=False)
        B = Theta[np.ix_(j, j)] - X[j] @ M @ X[j].T
        w, U = np.linalg.eigh(F @ B @ F.T)
        inv_sqrt = (U * np.where(w > 1e-12, 1.0 / np.sqrt(np.abs(w)), 0.0)) @ U.T
        A[np.ix_(j, j)] = F.T @ inv_sqrt @ F
    # the working-model covariance of the residuals
    H = X @ M @ X.T @ W
    Omega_e = (np.eye(k) - H) @ Theta @ (np.eye(k) - H).T
    meat = np.zeros((p, p))
    G = []  # per coefficient the k-vector stacking g_j = A_j W_j X_j M c
    for c in clusters:
        j = np.flatnonzero(study == c)
        u = X[j].T @ W[np.ix_(j, j)] @ A[np.ix_(j, j)] @ e[j]
        meat += np.outer(u, u)
    V = M @ meat @ M
    for a in range(p):
        g = A @ W @ X @ M[:, a]
        G.append(g)
    dof = []
    index = [np.flatnonzero(study == c) for c in clusters]
    for g in G:
        P = np.array(
            [[g[i] @ Omega_e[np.ix_(i, j)] @ g[j] for j in index] for i in index]
        )
        dof.append(np.trace(P) ** 2 / np.sum(P**2))
    return beta, V, np.array(dof), index, G, Omega_e


def test_cr2_satterthwaite_and_htz_by_hand():
    df, X = _data("knapp2017")
    y, v = df["yi"].to_numpy(), df["vi"].to_numpy()
    study = df["study"].to_numpy()
    m = MultilevelMeta(rho=0.6, cluster_robust="cr2").fit(
        X, y, sample_var=v, groups=df[["study", "es"]]
    )
    design = np.column_stack([np.ones(y.size), X])
    beta, V, dof, index, G, Omega_e = _by_hand(y, v, design, study, m.sigma2_, 0.6)
    np.testing.assert_allclose(m._beta, beta, rtol=1e-10)
    np.testing.assert_allclose(m.cov_params_, V, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(m.robust_dof_, dof, rtol=1e-8)
    # HTZ for the two family coefficients
    C = np.eye(3)[1:]
    q = C.shape[0]
    Q = float((C @ beta) @ np.linalg.solve(C @ V @ C.T, C @ beta))
    Gc = [C[s] @ np.array(G) for s in range(q)]  # g_s = sum_a C[s, a] g_a
    Pst = np.array(
        [
            [
                [
                    [Gc[s][i] @ Omega_e[np.ix_(i, j)] @ Gc[t][j] for j in index]
                    for i in index
                ]
                for t in range(q)
            ]
            for s in range(q)
        ]
    )  # (q, q, J, J)
    Omega = np.einsum("stjj->st", Pst)
    w, U = np.linalg.eigh(Omega)
    Om_half = U @ np.diag(w**-0.5) @ U.T
    Bjk = np.einsum("ab,bcjk,cd->adjk", Om_half, Pst, Om_half)
    S = np.einsum("abjk,bajk->", Bjk, Bjk) + np.sum(np.einsum("aajk->jk", Bjk) ** 2)
    nu = q * (q + 1) / S
    F = (nu - q + 1) / nu * Q / q
    assert m.qm_ == pytest.approx(F, rel=1e-8)
    assert m._qm_df[1] == pytest.approx(nu - q + 1, rel=1e-8)
    assert m.qm_pvalue_ == pytest.approx(stats.f.sf(F, q, nu - q + 1), rel=1e-8)


def test_rho_equals_an_imputed_sample_cov_on_the_reference_data():
    df, X = _data("assink2016")
    V = impute_covariance(df["vi"], df["study"], 0.6)
    a = MultilevelMeta(rho=0.6, cluster_robust="cr2").fit(
        X, df["yi"], sample_var=df["vi"], groups=df[["study", "es"]]
    )
    b = MultilevelMeta(cluster_robust="cr2").fit(
        X, df["yi"], sample_cov=V, groups=df[["study", "es"]]
    )
    assert a.loglik_ == pytest.approx(b.loglik_, rel=1e-12)
    np.testing.assert_allclose(a.cov_params_, b.cov_params_, rtol=1e-9)
    np.testing.assert_allclose(a.robust_dof_, b.robust_dof_, rtol=1e-9)


# ------------------------------------------------------ vcalc
def _vcalc_dense(case, k):
    dense = np.zeros((k, k))
    dense[case["i"], case["j"]] = case["value"]
    return dense


def _vcalc_arguments(name):
    if name.startswith("knapp"):
        d = pd.DataFrame(REF["data"]["knapp2017"])
    elif name.startswith("assink"):
        d = pd.DataFrame(REF["data"]["assink2016"])
    else:
        d = pd.DataFrame(REF["contrasts"])
        if name == "contrasts_between" or name == "contrasts_weighted":
            d = d[d["study"] != 2].reset_index(drop=True)
    kwargs = {
        "knapp_rho06": {"obs": d.get("es"), "rho": 0.6},
        "assink_ar1": {"time": d.get("esid"), "phi": 0.8},
        "assink_rho_ar1": {
            "obs": d.get("es"),
            "rho": 0.5,
            "time": d.get("esid"),
            "phi": 0.8,
        },
        "assink_type": {
            "construct": d.get("deltype"),
            "obs": d.get("esid"),
            "rho": (0.7, 0.5),
        },
        "contrasts_between": {
            "condition1": d.get("grp1"),
            "condition2": d.get("grp2"),
        },
        "contrasts_weighted": {
            "condition1": d.get("grp1"),
            "condition2": d.get("grp2"),
            "weight1": d.get("w1"),
            "weight2": d.get("w2"),
        },
        "contrasts_full": {
            "condition1": d.get("grp1"),
            "condition2": d.get("grp2"),
            "weight1": d.get("w1"),
            "weight2": d.get("w2"),
            "time": d.get("time1"),
            "time2": d.get("time2"),
            "phi": 0.6,
            "construct": d.get("type"),
            "obs": d.get("obs"),
            "rho": (0.7, 0.4),
        },
    }[name]
    return d, kwargs


@pytest.mark.parametrize("name", sorted(REF["vcalc"]))
def test_impute_covariance_matches_vcalc(name):
    d, kwargs = _vcalc_arguments(name)
    k = len(d)
    expected = _vcalc_dense(REF["vcalc"][name], k) + np.diag(d["vi"].to_numpy())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        V = impute_covariance(d["vi"], d["study"], sparse=False, **kwargs)
    np.testing.assert_allclose(V, expected, rtol=1e-13, atol=1e-16)
    # metafor's checkpd flags the same blocks: without time points, contrast
    # studies 1 (C - B is the difference of the other two contrasts) and 3 (the
    # same two contrasts twice) are singular
    messages = [str(w.message) for w in caught]
    if name in ("contrasts_between", "contrasts_weighted"):
        assert len(messages) == 1 and "within 2 cluster(s)" in messages[0]
    else:
        assert messages == []
