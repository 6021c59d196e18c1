"""skmeta.bias against metafor's regtest, ranktest, trimfill and fsn, and by hand.

Reference numbers: ``tests/reference/bias.json``, written by
``tests/reference/make_bias.R`` (R 4.2.2, metafor 3.8.1, metadat 1.2.0; versions in
the JSON) on five data sets: dat.bangertdrowns2004 (k = 48, ties in vi, sample
sizes), dat.bcg (log risk ratios, with absolute latitude as a moderator),
dat.hackshaw1998 (no sample sizes), dat.egger2001 (log odds ratios, missing studies
on the right) and dat.pritz1997 (logit proportions).  Every rma() fit of the script
runs to convergence (``threshold = tol = 1e-13``).

Tolerances
----------
* ``RTOL = 1e-7``: regression tests, trim-and-fill with closed-form tau^2 (EE, DL)
  or k0 = 0, the converged trimmed estimates, fail-safe numbers.  Iterative fits
  on both sides converge to ~1e-10 relative; 1e-7 leaves room for the conditioning
  of the tests' p-values.
* metafor's ``trimfill`` fits the *trimmed* data with its default controls (Fisher
  scoring stops at |change in tau^2| < 1e-5, whatever the input model's controls),
  and fits the final (filled) model with them too.  So for REML/ML with k0 > 0
  its filled values (mirror images about the trimmed estimate) are off by up to
  ~2e-6 from the converged ones, and its final model by up to ~1e-5 relative.
  skmeta converges every fit (metafor's numbers there are a stopping-rule
  artefact): the filled values are compared with those mirrored about metafor's
  trimmed estimate refitted to convergence (``center_converged``, at RTOL) and
  with metafor's filled values at ``TRIMFILL_ATOL = 1e-5``; the final model with
  metafor's at ``TRIMFILL_RTOL = 1e-4``, and, fitted to metafor's own filled
  values, with metafor's fit of them run to convergence (``refit_converged``) at
  RTOL.
"""

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from skmeta import RandomEffectsMeta
from skmeta._engine._bias import trim_and_fill as engine_trim_and_fill
from skmeta.bias import (
    fail_safe_n,
    rank_correlation_test,
    regression_test,
    trim_and_fill,
)
from skmeta.datasets import load_writing_to_learn

REF = json.loads(
    (Path(__file__).parent / "reference" / "bias.json").read_text(encoding="utf-8")
)
DATA = REF["datasets"]

RTOL = 1e-7
ATOL = 1e-10
TRIMFILL_ATOL = 1e-5
TRIMFILL_RTOL = 1e-4

METHOD = {"REML": "reml", "ML": "ml", "DL": "dl", "EE": "fe", "PM": "pm"}
TEST = {"z": "z", "t": "t", "knha": "knapp-hartung"}


def _data(name):
    d = DATA[name]
    ni = None if d["ni"] is None else np.asarray(d["ni"], dtype=float)
    X = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in d["X"].items()})
    return np.asarray(d["yi"], float), np.asarray(d["vi"], float), ni, X


def _case_id(case, keys):
    return "-".join(
        str(case[k]) if not isinstance(case[k], list) else "+".join(case[k]) or "1"
        for k in keys
        if case.get(k) is not None
    )


def test_fixture_provenance():
    assert REF["versions"]["metafor"] == "3.8.1"
    assert REF["versions"]["R"].startswith("R version 4.2.2")
    assert set(DATA) == {
        "bangertdrowns2004",
        "bcg",
        "hackshaw1998",
        "egger2001",
        "pritz1997",
    }
    # the bundled writing-to-learn data are metafor's dat.bangertdrowns2004
    data = load_writing_to_learn()
    ref = DATA["bangertdrowns2004"]
    np.testing.assert_array_equal(data["yi"], ref["yi"])
    np.testing.assert_array_equal(data["vi"], ref["vi"])
    np.testing.assert_array_equal(data["ni"], ref["ni"])


# --------------------------------------------------------------- regression test
@pytest.mark.parametrize(
    "case",
    REF["regtest"],
    ids=[
        _case_id(c, ["dataset", "mods", "method", "test", "model", "predictor"])
        for c in REF["regtest"]
    ],
)
def test_regression_test_matches_metafor(case):
    y, v, ni, X = _data(case["dataset"])
    result = regression_test(
        y,
        v,
        X[case["mods"]] if case["mods"] else None,
        predictor=case["predictor"],
        model=case["model"],
        method=METHOD[case["method"]],
        inference=TEST[case["test"]],
        ni=ni,
    )
    np.testing.assert_allclose(result.statistic, case["zval"], rtol=RTOL)
    np.testing.assert_allclose(result.p_value, case["pval"], rtol=RTOL)
    if case["dfs"] is None:
        assert math.isinf(result.dof)
    else:
        assert result.dof == case["dfs"]
    table = result.coefficients
    np.testing.assert_allclose(table["estimate"], case["b"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(table["se"], case["se"], rtol=RTOL)
    assert list(table.index) == ["intercept", *case["mods"], case["predictor"]]
    if case["est"] is None:
        assert result.limit_estimate is None
        assert result.limit_ci_lower is None and result.limit_ci_upper is None
    else:
        limits = [result.limit_estimate, result.limit_ci_lower, result.limit_ci_upper]
        expected = [case["est"], case["ci_lb"], case["ci_ub"]]
        np.testing.assert_allclose(limits, expected, rtol=RTOL, atol=ATOL)


def test_regression_test_worked_example():
    """The published-style numbers (4 significant digits) of the writing data."""
    data = load_writing_to_learn()
    y, v, n = data["yi"], data["vi"], data["ni"]
    res = regression_test(y, v)
    assert round(res.statistic, 4) == 2.4905  # metafor default controls: 2.4904
    assert res.p_value == pytest.approx(0.012758, rel=1e-3)
    assert res.limit_estimate == pytest.approx(-0.036172, rel=1e-3)
    lm = regression_test(y, v, model="lm")
    assert (round(lm.statistic, 4), lm.dof) == (2.7077, 46)
    assert lm.p_value == pytest.approx(0.0094795, rel=1e-4)
    assert [lm.limit_estimate, lm.limit_ci_lower, lm.limit_ci_upper] == pytest.approx(
        [-0.055803, -0.23746, 0.12585], rel=1e-4
    )
    peese = regression_test(y, v, predictor="vi")
    assert peese.limit_estimate == pytest.approx(0.10446, rel=1e-3)
    assert regression_test(y, v, predictor="ni", ni=n).statistic == pytest.approx(
        -2.1176, rel=1e-4
    )
    knha = regression_test(y, v, inference="knapp-hartung")
    assert (round(knha.statistic, 4), knha.dof) == (2.2533, 46)


def test_egger_lm_is_regression_of_standardized_effect_on_precision():
    """Egger et al. (1997): y/se = a + b/se by OLS; a is the slope on se."""
    y, v, _, _ = _data("hackshaw1998")
    se = np.sqrt(v)
    A = np.column_stack([np.ones_like(y), 1.0 / se])
    coef, rss, *_ = np.linalg.lstsq(A, y / se, rcond=None)
    k = y.shape[0]
    s2 = rss[0] / (k - 2)
    cov = s2 * np.linalg.inv(A.T @ A)
    t = coef[0] / np.sqrt(cov[0, 0])
    res = regression_test(y, v, model="lm")
    np.testing.assert_allclose(res.statistic, t, rtol=1e-10)
    np.testing.assert_allclose(res.p_value, 2 * stats.t.sf(abs(t), k - 2), rtol=1e-9)
    # the limit estimate is the slope on precision, with a t_{k-2} interval
    crit = stats.t.ppf(0.975, k - 2)
    half = crit * np.sqrt(cov[1, 1])
    np.testing.assert_allclose(
        [res.limit_estimate, res.limit_ci_lower, res.limit_ci_upper],
        [coef[1], coef[1] - half, coef[1] + half],
        rtol=1e-10,
    )


def test_regression_test_rma_is_meta_regression_on_the_predictor():
    y, v, ni, _ = _data("egger2001")
    res = regression_test(y, v, predictor="sqrtninv", ni=ni, method="dl")
    fit = RandomEffectsMeta(method="dl").fit(1 / np.sqrt(ni)[:, None], y, sample_var=v)
    table = fit.summary(confidence_level=0.9).to_frame()
    assert res.statistic == pytest.approx(table["statistic"].iloc[1], rel=1e-12)
    res90 = regression_test(
        y, v, predictor="sqrtninv", ni=ni, method="dl", confidence_level=0.9
    )
    assert res90.limit_ci_lower == pytest.approx(table["ci_lower"].iloc[0], rel=1e-12)
    assert res90.limit_ci_lower > res.limit_ci_lower


def test_regression_line_for_funnel_plots():
    y, v, _, X = _data("bcg")
    for predictor, power in (("sei", 1), ("vi", 2)):
        res = regression_test(y, v, predictor=predictor)
        b0, b1 = res.coefficients["estimate"]
        se = np.array([0.0, 0.2, 0.5])
        np.testing.assert_allclose(res.line(se), b0 + b1 * se**power)
        assert res.line(0.0) == pytest.approx(res.limit_estimate)
    with pytest.raises(ValueError, match="not a function of the standard error"):
        regression_test(y, v, predictor="ni", ni=np.arange(13) + 10.0).line(0.1)
    with pytest.raises(ValueError, match="moderators"):
        regression_test(y, v, X).line(0.1)


def test_invariances():
    """Row order; y -> c y with v -> c^2 v (the statistics are scale-free)."""
    y, v, _, _ = _data("pritz1997")
    base = regression_test(y, v)
    perm = np.random.default_rng(0).permutation(y.shape[0])
    assert regression_test(y[perm], v[perm]).statistic == pytest.approx(
        base.statistic, rel=1e-8
    )
    for c in (1e-5, 3.0, 1e3):  # sampling variances from ~1e-12 to ~1e5
        scaled = regression_test(c * y, c * c * v)
        assert scaled.statistic == pytest.approx(base.statistic, rel=1e-8)
        assert scaled.limit_estimate == pytest.approx(c * base.limit_estimate, rel=1e-8)
        filled = trim_and_fill(c * y, c * c * v)
        assert filled.k0 == trim_and_fill(y, v).k0
        rank = rank_correlation_test(c * y, c * c * v)
        assert rank.p_value == pytest.approx(rank_correlation_test(y, v).p_value)
    flipped = regression_test(-y, v)
    assert flipped.statistic == pytest.approx(-base.statistic, rel=1e-8)


def test_regression_test_printout():
    y, v, _, _ = _data("bangertdrowns2004")
    text = str(regression_test(y, v))
    assert "z = 2.4905" in text and "standard error" in text
    assert "limit estimate (as sei -> 0): b = -0.0362" in text
    text = str(regression_test(y, v, model="lm"))
    assert "t (df = 46) = 2.7077" in text and "dispersion" in text


# ---------------------------------------------------------- rank correlation test
@pytest.mark.parametrize("case", REF["ranktest"], ids=lambda c: c["dataset"])
def test_rank_correlation_matches_metafor(case):
    y, v, _, _ = _data(case["dataset"])
    res = rank_correlation_test(y, v)
    np.testing.assert_allclose(res.statistic, case["tau"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(res.p_value, case["pval"], rtol=1e-10)
    assert res.exact is not case["ties"]
    assert res.k == len(y)


def _kendall_counts(x, y):
    pairs = itertools.combinations(range(len(x)), 2)
    signs = [np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in pairs]
    return sum(s > 0 for s in signs), sum(s < 0 for s in signs)


def test_rank_correlation_exact_p_by_enumeration():
    """No ties: p = 2 min(P(T <= t), P(T >= t)) over all k! orderings."""
    y = np.array([0.31, -0.12, 0.55, 0.08, 0.92, 0.40, 0.21])
    v = np.array([0.05, 0.02, 0.09, 0.03, 0.20, 0.12, 0.07])
    res = rank_correlation_test(y, v)
    assert res.exact
    w = 1 / v
    ystar = (y - w @ y / w.sum()) / np.sqrt(v - 1 / w.sum())
    concordant, discordant = _kendall_counts(ystar, v)
    k = len(y)
    n_pairs = k * (k - 1) // 2
    assert res.statistic == pytest.approx((concordant - discordant) / n_pairs)
    counts = np.array(
        [_kendall_counts(np.arange(k), perm)[0] for perm in itertools.permutations(v)]
    )
    lower, upper = np.mean(counts <= concordant), np.mean(counts >= concordant)
    assert res.p_value == pytest.approx(min(1.0, 2 * min(lower, upper)), rel=1e-12)


def test_rank_correlation_ties_use_corrected_normal_approximation():
    """Kendall's tie-corrected variance of S, no continuity correction."""
    y, v, _, _ = _data("bangertdrowns2004")
    w = 1 / v
    ystar = (y - w @ y / w.sum()) / np.sqrt(v - 1 / w.sum())
    concordant, discordant = _kendall_counts(ystar, v)
    S = concordant - discordant
    k = len(y)
    t = np.unique(ystar, return_counts=True)[1]
    u = np.unique(v, return_counts=True)[1]
    var = (
        (k * (k - 1) * (2 * k + 5) - np.sum(t * (t - 1) * (2 * t + 5)))
        - np.sum(u * (u - 1) * (2 * u + 5))
    ) / 18
    var += np.sum(t * (t - 1)) * np.sum(u * (u - 1)) / (2 * k * (k - 1))
    var += (
        np.sum(t * (t - 1) * (t - 2))
        * np.sum(u * (u - 1) * (u - 2))
        / (9 * k * (k - 1) * (k - 2))
    )
    res = rank_correlation_test(y, v)
    assert not res.exact
    assert res.p_value == pytest.approx(2 * special.ndtr(-abs(S) / np.sqrt(var)))
    assert round(res.statistic, 5) == 0.21788
    assert "Kendall's tau = 0.2179, p = 0.02939" in str(res)


# ------------------------------------------------------------------ trim and fill
@pytest.mark.parametrize(
    "case",
    REF["trimfill"],
    ids=[
        _case_id(c, ["dataset", "method", "estimator", "side_arg"])
        for c in REF["trimfill"]
    ],
)
def test_trim_and_fill_matches_metafor(case):
    y, v, _, _ = _data(case["dataset"])
    method = METHOD[case["method"]]
    res = trim_and_fill(
        y, v, estimator=case["estimator"], side=case["side_arg"], method=method
    )
    assert (res.k0, res.side) == (case["k0"], case["side"])
    np.testing.assert_allclose(res.k0_se, case["se_k0"], rtol=RTOL)
    if case["estimator"] == "R0":
        assert res.k0_pvalue == pytest.approx(case["p_k0"], rel=1e-14)
    else:
        assert res.k0_pvalue is None
    assert res.model.dof_ + 1 == case["k"] == len(y) + res.k0
    assert list(res.filled.columns) == ["y", "sample_var"]

    # filled studies: the k0 most extreme on the side opposite the gap, mirrored
    # about the trimmed estimate (metafor's, refitted to convergence)
    sign = -1.0 if res.side == "right" else 1.0
    extreme = np.sort(sign * y)[len(y) - res.k0 :]
    expected = sign * (2 * sign * case["center_converged"] - extreme)
    order = np.argsort(sign * res.filled["y"].to_numpy())[::-1]
    np.testing.assert_allclose(
        res.filled["y"].to_numpy()[order], expected, rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(
        np.sort(res.filled["y"]), np.sort(case["filled_yi"]), atol=TRIMFILL_ATOL
    )
    np.testing.assert_allclose(
        np.sort(res.filled["sample_var"]), np.sort(case["filled_vi"]), rtol=1e-15
    )

    converged_inner = method in ("fe", "dl") or res.k0 == 0
    rtol = RTOL if converged_inner else TRIMFILL_RTOL
    table = res.model.summary().to_frame().iloc[0]
    np.testing.assert_allclose(
        [table["estimate"], table["ci_lower"], table["ci_upper"]],
        [case["beta"], case["ci_lb"], case["ci_ub"]],
        rtol=rtol,
        atol=ATOL,
    )
    np.testing.assert_allclose(
        [table["se"], table["statistic"], res.model.q_],
        [case["se"], case["zval"], case["QE"]],
        rtol=rtol,
    )
    np.testing.assert_allclose(res.model.tau2_, case["tau2"], rtol=rtol, atol=1e-12)

    # the same model fitted to metafor's own filled values agrees tightly with
    # metafor's fit of them run to convergence
    refit = RandomEffectsMeta(method=method).fit(
        None,
        np.concatenate([y, case["filled_yi"]]),
        sample_var=np.concatenate([v, case["filled_vi"]]),
    )
    ref = case["refit_converged"]
    np.testing.assert_allclose(
        [refit.intercept_, np.sqrt(refit.cov_params_[0, 0]), refit.q_],
        [ref["beta"], ref["se"], ref["QE"]],
        rtol=RTOL,
    )
    np.testing.assert_allclose(refit.tau2_, ref["tau2"], rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize(
    "case",
    REF["trimfill_errors"],
    ids=[
        _case_id(c, ["dataset", "method", "estimator", "side_arg"])
        for c in REF["trimfill_errors"]
    ],
)
def test_trim_and_fill_q0_outside_its_domain_is_an_error(case):
    # metafor's trimfill() stops here with an R error (a NaN in its loop test)
    y, v, _, _ = _data(case["dataset"])
    with pytest.raises(ValueError, match="Q0 estimator is undefined"):
        trim_and_fill(
            y,
            v,
            estimator=case["estimator"],
            side=case["side_arg"],
            method=METHOD[case["method"]],
        )


def test_trim_and_fill_q0_standard_error_by_hand():
    # delta method: SE(Q0) = 2 sqrt(Var S_r) / sqrt(2k^2 - 4 S_r + 1/4), with
    # S_r recovered from the unrounded Q0 of the last pass
    y, v, _, _ = _data("bangertdrowns2004")
    res = engine_trim_and_fill(
        y, v, side="left", method="fe", estimator="Q0", max_iter=100
    )
    k, k0 = len(y), res.k0_raw
    assert res.k0 == round(k0) > 0
    root = k - 0.5 - k0
    var_s = (
        k * (k + 1) * (2 * k + 1)
        + 10 * k0**3
        + 27 * k0**2
        + 17 * k0
        - 18 * k * k0**2
        - 18 * k * k0
        + 6 * k**2 * k0
    ) / 24
    assert res.k0_se == pytest.approx(2 * np.sqrt(var_s) / root, rel=1e-12)


def test_trim_and_fill_worked_example():
    data = load_writing_to_learn()
    res = trim_and_fill(data["yi"], data["vi"])
    assert (res.k0, res.side, res.n_iter) == (7, "left", 5)
    assert res.k0_se == pytest.approx(4.5551, rel=1e-4)
    table = res.model.summary().to_frame().iloc[0]
    assert table["estimate"] == pytest.approx(0.15858, rel=1e-4)
    assert table["se"] == pytest.approx(0.052675, rel=1e-4)
    assert res.model.tau2_ == pytest.approx(0.090547, rel=1e-4)
    assert res.model.q_ == pytest.approx(145.14, rel=1e-4)
    fe = trim_and_fill(data["yi"], data["vi"], method="fe")
    assert fe.k0 == 10 and fe.model.intercept_ == pytest.approx(0.10098, rel=1e-4)
    r0 = trim_and_fill(data["yi"], data["vi"], estimator="R0")
    assert (r0.k0, r0.k0_pvalue) == (0, 0.5)
    assert r0.k0_se == pytest.approx(math.sqrt(2))
    text = str(res)
    assert "7 (SE = 4.5551)" in text and "left" in text and "k = 55" in text


def _trim_fill_by_hand(y, v, estimator):
    """Equal-effects L0/R0/Q0 trim and fill on the left, written out plainly."""
    order = np.argsort(y, kind="stable")
    y, v = y[order], v[order]
    k = len(y)
    k0 = 0
    while True:
        w = 1 / v[: k - k0]
        center = np.sum(w * y[: k - k0]) / np.sum(w)
        dev = y - center
        ranks = np.empty(k)
        ranks[np.argsort(np.abs(dev), kind="stable")] = np.arange(1, k + 1)
        signed = np.sign(dev) * ranks
        if estimator == "L0":
            new = (4 * signed[signed > 0].sum() - k * (k + 1)) / (2 * k - 1)
        elif estimator == "Q0":
            new = k - 0.5 - np.sqrt(2 * k**2 - 4 * signed[signed > 0].sum() + 0.25)
        else:
            new = k - (-signed[signed < 0]).max() - 1
        new = max(0, round(new))
        if new == k0:
            return k0, 2 * center - y[k - k0 :], v[k - k0 :]
        k0 = new


@pytest.mark.parametrize("estimator", ["L0", "R0", "Q0"])
def test_trim_and_fill_by_hand(estimator):
    y, v, _, _ = _data("bangertdrowns2004")
    k0, filled, filled_v = _trim_fill_by_hand(y, v, estimator)
    res = trim_and_fill(y, v, estimator=estimator, side="left", method="fe")
    assert res.k0 == k0 > 0
    np.testing.assert_allclose(res.filled["y"], filled, rtol=1e-12)
    np.testing.assert_array_equal(res.filled["sample_var"], filled_v)
    # the right side is the left side of -y
    mirrored = trim_and_fill(-y, v, estimator=estimator, side="right", method="fe")
    assert mirrored.k0 == k0
    np.testing.assert_allclose(mirrored.filled["y"], -filled, rtol=1e-12)


def test_trim_and_fill_invariant_to_row_order():
    y, v, _, _ = _data("egger2001")
    base = trim_and_fill(y, v)
    perm = np.random.default_rng(3).permutation(len(y))
    other = trim_and_fill(y[perm], v[perm])
    assert (other.k0, other.side) == (base.k0, base.side)
    assert other.model.intercept_ == pytest.approx(base.model.intercept_, rel=1e-9)


# -------------------------------------------------------------------- fail-safe N
@pytest.mark.parametrize(
    "case",
    REF["fsn"],
    ids=[
        _case_id(c, ["dataset", "type", "alpha", "weighted", "target_arg"])
        for c in REF["fsn"]
    ],
)
def test_fail_safe_n_matches_metafor(case):
    y, v, _, _ = _data(case["dataset"])
    kind = case["type"].lower()
    if kind == "orwin":
        kw = {"weighted": case["weighted"], "target": case["target_arg"]}
    else:
        kw = {"alpha": case["alpha"]}
    res = fail_safe_n(y, v, kind=kind, **kw)
    assert res.fail_safe_n == case["fsnum"]
    assert isinstance(res.fail_safe_n, int)
    for field, key in (("p_value", "pval"), ("mean_effect", "meanes")):
        if case[key] is None:
            assert getattr(res, field) is None
        else:
            np.testing.assert_allclose(getattr(res, field), case[key], rtol=1e-10)
    if kind == "orwin":
        assert res.target == pytest.approx(case["target"], rel=1e-12)
        assert res.alpha is None


def test_fail_safe_n_worked_example_and_formulas():
    data = load_writing_to_learn()
    y, v = data["yi"].to_numpy(), data["vi"].to_numpy()
    k = len(y)
    res = fail_safe_n(y, v)
    z = abs(np.sum(y / np.sqrt(v))) / np.sqrt(k)
    raw = k * (z / stats.norm.ppf(0.95)) ** 2 - k
    assert res.raw == pytest.approx(raw, rel=1e-12)
    assert (res.fail_safe_n, round(res.raw, 2)) == (871, 870.61)
    assert res.p_value == pytest.approx(stats.norm.sf(z), rel=1e-10)
    orwin = fail_safe_n(y, v, kind="orwin")
    assert (round(orwin.mean_effect, 4), round(orwin.target, 4)) == (0.2598, 0.1299)
    assert orwin.fail_safe_n == 48  # k (mean - mean/2) / (mean/2) = k exactly
    weighted = fail_safe_n(y, v, kind="orwin", weighted=True, target=0.1)
    assert (round(weighted.mean_effect, 4), weighted.fail_safe_n) == (0.1656, 32)
    rosenberg = fail_safe_n(y, v, kind="rosenberg")
    w = 1 / v
    raw = k * ((w @ y / stats.norm.ppf(0.975)) ** 2 - w.sum()) / w.sum()
    assert rosenberg.raw == pytest.approx(raw, rel=1e-12)
    assert (rosenberg.fail_safe_n, round(rosenberg.raw, 2)) == (425, 424.59)
    assert "fail-safe N: 871 (k = 48)" in str(res)
    assert "target effect size: 0.1299" in str(orwin)


def test_fail_safe_n_rounding_and_orwin_without_variances():
    y = np.array([0.8, 1.2, 1.0, 1.0])  # mean exactly 1
    assert fail_safe_n(y, None, kind="orwin", target=0.5).fail_safe_n == 4
    res = fail_safe_n(y, None, kind="orwin", target=0.3)  # 4 * 0.7 / 0.3 = 9.33
    assert (res.fail_safe_n, res.raw) == (10, pytest.approx(28 / 3))
    assert fail_safe_n(y, None, kind="orwin", target=0.0).fail_safe_n == math.inf
    # the target takes the sign of the mean; a target beyond the mean needs none
    assert fail_safe_n(-y, None, kind="orwin", target=0.5).target == -0.5
    assert fail_safe_n(y, None, kind="orwin", target=2.0).fail_safe_n == 0


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call",
    [
        lambda y, v: regression_test(y, v),
        lambda y, v: rank_correlation_test(y, v),
        lambda y, v: trim_and_fill(y, v),
    ],
    ids=["regression", "rank", "trimfill"],
)
def test_bad_input_is_a_clear_error(call):
    y, v = np.array([0.1, 0.3, 0.2, 0.5]), np.array([0.01, 0.02, 0.04, 0.05])
    with pytest.raises(ValueError, match="at least 3 studies; got k=2"):
        call(y[:2], v[:2])
    with pytest.raises(ValueError, match="y contains 4 NaN"):
        call(np.full(4, np.nan), v)
    with pytest.raises(ValueError, match="sample_var has 3 entries"):
        call(y, v[:3])
    with pytest.raises(ValueError, match="sample_var must be > 0"):
        call(y, np.array([0.01, 0.0, 0.04, 0.05]))
    with pytest.raises(ValueError, match="needs the sampling variances"):
        call(y, None)
    with pytest.raises(ValueError, match="sample_var contains NaN"):
        call(y, np.array([0.01, np.nan, 0.04, 0.05]))


def test_regression_test_bad_input():
    y, v, ni, X = _data("bcg")
    with pytest.raises(ValueError, match="predictor='ninv' needs the sample sizes"):
        regression_test(y, v, predictor="ninv")
    with pytest.raises(ValueError, match="ni has 12 entries"):
        regression_test(y, v, predictor="ni", ni=ni[:12])
    with pytest.raises(ValueError, match="ni must hold finite sample sizes > 0"):
        regression_test(y, v, predictor="ni", ni=np.where(ni > 500, np.nan, ni))
    with pytest.raises(ValueError, match="collinear"):
        regression_test(y, np.full_like(v, 0.1))
    with pytest.raises(ValueError, match="collinear"):
        regression_test(y, v, pd.DataFrame({"se": np.sqrt(v)}))
    with pytest.raises(ValueError, match="more studies than the 4 coefficients"):
        regression_test(y[:4], v[:4], X.iloc[:4, :].assign(year=[1, 2, 3, 5]))
    with pytest.raises(ValueError, match="predictor must be one of"):
        regression_test(y, v, predictor="se")
    with pytest.raises(ValueError, match="model must be one of"):
        regression_test(y, v, model="glm")
    with pytest.raises(ValueError, match="method must be one of"):
        regression_test(y, v, method="genq")
    with pytest.raises(ValueError, match="inference must be one of"):
        regression_test(y, v, inference="knha")
    with pytest.raises(ValueError, match="confidence_level"):
        regression_test(y, v, confidence_level=95)
    with pytest.raises(ValueError, match="X has 12 rows"):
        regression_test(y, v, X.iloc[:12])


def test_trim_and_fill_and_fail_safe_bad_input():
    y, v, _, _ = _data("bcg")
    with pytest.raises(ValueError, match="All sampling variances are equal"):
        trim_and_fill(y, np.full_like(v, 0.1))
    assert trim_and_fill(y, np.full_like(v, 0.1), side="left").side == "left"
    with pytest.raises(ValueError, match="estimator must be one of"):
        trim_and_fill(y, v, estimator="Q1")
    with pytest.raises(ValueError, match="side must be one of"):
        trim_and_fill(y, v, side="up")
    with pytest.raises(ValueError, match="max_iter must be a positive integer"):
        trim_and_fill(y, v, max_iter=0)
    with pytest.raises(RuntimeError, match="did not converge in max_iter=1"):
        trim_and_fill(y, v, method="fe", max_iter=1)
    with pytest.raises(ValueError, match="kind must be one of"):
        fail_safe_n(y, v, kind="fisher")
    with pytest.raises(ValueError, match="apply to kind='orwin' only"):
        fail_safe_n(y, v, target=0.1)
    with pytest.raises(ValueError, match="alpha must be strictly between 0 and 1"):
        fail_safe_n(y, v, alpha=1.5)
    with pytest.raises(ValueError, match="needs the sampling variances"):
        fail_safe_n(y, None)
    with pytest.raises(ValueError, match="target must be a finite number"):
        fail_safe_n(y, v, kind="orwin", target=np.nan)
