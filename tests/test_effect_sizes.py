"""Tests for skmeta.effect_sizes against metafor's escalc and published formulas.

``tests/reference/escalc.json`` is written by ``tests/reference/make_escalc.R``
(metafor 3.8.1): every measure that version computes, with zero cells, every
continuity-correction mode, drop00, missing values and the variance types. The
JSON holds 15 significant digits, so rtol 1e-10 is far above the printing error
and far below any formula difference.

Where skmeta follows a later metafor (measures added since 3.8.1: AUC, AUCN,
ZSPCOR; vtype "H0" and "LS2" of ROM; the default bias corrections of ROM and CVR
since metafor 5.0; the ZPCOR variance since 4.0), the reference values are
computed from the published formulas in plain R by
``tests/reference/make_escalc_current.R`` (``escalc_current.json``; each case
records the formula and the metafor version whose convention it follows). In
addition every measure is checked here on one study computed by hand.
"""

import inspect
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpydoc.docscrape import FunctionDoc
from scipy import special

from skmeta import effect_sizes as es
from skmeta.datasets import load_bcg, load_laopaiboon2015
from skmeta.effect_sizes import (
    MEASURES,
    EffectSize,
    correlation,
    escalc,
    fisher_z,
    log_incidence_rate_ratio,
    log_odds_ratio,
    log_risk_ratio,
    mean_difference,
    proportion,
    risk_difference,
    standardized_mean_difference,
    tetrachoric_correlation,
)

REFERENCE_DIR = Path(__file__).parent / "reference"
REFERENCE = json.loads((REFERENCE_DIR / "escalc.json").read_text(encoding="utf-8"))
CURRENT = json.loads(
    (REFERENCE_DIR / "escalc_current.json").read_text(encoding="utf-8")
)
RTOL = 1e-10
# metafor option name -> skmeta keyword
OPTION_NAMES = {
    "add": "correction",
    "to": "add_to",
    "drop00": "drop00",
    "vtype": "vtype",
}
# measures whose metafor 3.8.1 numbers differ from skmeta's by design; each has
# its own test below
DIFFERENT_IN_381 = {"CVR", "ZPCOR", "RTET"}
# measures metafor 3.8.1 does not have (checked against escalc_current.json)
NOT_IN_381 = {"AUC", "AUCN", "ZSPCOR"}


def _float(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _run(case, skmeta_options=True):
    """skmeta's result for a fixture case (undefined-value warnings silenced)."""
    inputs = {name: _float(values) for name, values in case["inputs"].items()}
    options = {OPTION_NAMES[k]: v for k, v in (case["options"] or {}).items()}
    if skmeta_options:
        options |= case.get("skmeta") or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return escalc(case["measure"], **inputs, **options)


def _cases(measures=None, exclude=()):
    return [
        case
        for case in REFERENCE["cases"]
        if (measures is None or case["measure"] in measures)
        and case["measure"] not in exclude
    ]


def test_reference_file_metadata():
    assert REFERENCE["metafor_version"] == "3.8.1"
    assert REFERENCE["metadat_version"] == "1.2.0"
    assert REFERENCE["r_version"].startswith("R version 4.2.2")
    measures = {case["measure"] for case in REFERENCE["cases"]}
    assert measures | NOT_IN_381 == set(MEASURES)
    assert not measures & NOT_IN_381
    current = {case["measure"] for case in CURRENT["cases"]}
    assert NOT_IN_381 <= current
    assert all(case["version"] and case["formula"] for case in CURRENT["cases"])


@pytest.mark.parametrize(
    "case", _cases(exclude=DIFFERENT_IN_381), ids=lambda c: c["name"]
)
def test_matches_metafor_escalc(case):
    result = _run(case)
    yi, vi = _float(case["yi"]), _float(case["vi"])
    # NaN where metafor gives NA. A study with a missing input (or dropped by
    # drop00) is NaN in both yi and vi, also where metafor still reports a vi
    # that does not depend on the missing value.
    expected_nan = np.isnan(yi) | np.isnan(vi)
    np.testing.assert_array_equal(np.isnan(result.yi), expected_nan)
    np.testing.assert_array_equal(np.isnan(result.vi), expected_nan)
    np.testing.assert_allclose(result.yi, np.where(expected_nan, np.nan, yi), rtol=RTOL)
    np.testing.assert_allclose(result.vi, np.where(expected_nan, np.nan, vi), rtol=RTOL)


@pytest.mark.parametrize("case", CURRENT["cases"], ids=lambda c: c["name"])
def test_matches_published_formulas_of_later_metafor(case):
    inputs = {name: _float(values) for name, values in case["inputs"].items()}
    result = escalc(case["measure"], **inputs, **(case["options"] or {}))
    yi, vi = _float(case["yi"]), _float(case["vi"])
    # RTET: an exact root; one table is independent (rho = 0 up to 1e-16)
    atol = 1e-14 if case["measure"] == "RTET" else 0
    np.testing.assert_allclose(result.yi, yi, rtol=RTOL, atol=atol)
    np.testing.assert_allclose(result.vi, vi, rtol=RTOL)


@pytest.mark.parametrize("case", _cases({"CVR"}), ids=lambda c: c["name"])
def test_cvr_matches_metafor_381_up_to_second_order_bias_terms(case):
    # metafor 3.8.1 corrects ln CVR with 1/(2(n1-1)) - 1/(2(n2-1)) only; since
    # metafor 5.0 (and in skmeta) the second-order terms of ln(mean),
    # -s1^2/(2 n1 m1^2) + s2^2/(2 n2 m2^2) (Senior et al. 2020, eq. 6), are added.
    # metafor 3.8.1 logs sd/m separately, so a pair of negative means is NA
    # there; skmeta logs the (positive) ratio of the two CVs.
    x = {name: _float(values) for name, values in case["inputs"].items()}
    result = _run(case)
    second_order = -(x["sd1i"] ** 2) / (2 * x["n1i"] * x["m1i"] ** 2) + x[
        "sd2i"
    ] ** 2 / (2 * x["n2i"] * x["m2i"] ** 2)
    yi, vi = _float(case["yi"]), _float(case["vi"])
    negative = (x["m1i"] < 0) & (x["m2i"] < 0)
    np.testing.assert_array_equal(np.isnan(yi), negative)
    assert np.all(np.isfinite(result.yi))
    ok = ~negative
    np.testing.assert_allclose(result.yi[ok] - second_order[ok], yi[ok], rtol=RTOL)
    np.testing.assert_allclose(result.vi[ok], vi[ok], rtol=RTOL)


@pytest.mark.parametrize("case", _cases({"ZPCOR"}), ids=lambda c: c["name"])
def test_zpcor_matches_metafor_381_with_later_variance(case):
    # same z; metafor 3.8.1's variance is 1/(n - mi - 1), metafor >= 4.0 (and
    # skmeta) use 1/(n - mi - 2), the analogue of 1/(n - 3) for ZCOR
    result = _run(case)
    np.testing.assert_allclose(result.yi, _float(case["yi"]), rtol=RTOL)
    np.testing.assert_allclose(1 / result.vi - 1 / _float(case["vi"]), -1.0, atol=1e-9)


@pytest.mark.parametrize("case", _cases({"RTET"}), ids=lambda c: c["name"])
def test_rtet_matches_metafor_381_to_its_optimizer_accuracy(case):
    # metafor 3.8.1 maximizes the likelihood numerically and takes the variance
    # from a numerical Hessian: its estimates are off the exact ML solution by
    # up to 6e-5 (relative) and its variances by up to 0.5% (e.g. table 2 of
    # RTET_default: 0.000350563 vs the exact 0.000352230). skmeta solves the
    # likelihood equation to machine precision (checked against the exact
    # solution in escalc_current.json and by the likelihood below).
    result = _run(case)
    yi, vi = _float(case["yi"]), _float(case["vi"])
    np.testing.assert_allclose(result.yi, yi, rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(result.vi, vi, rtol=1e-2)


def _rtet_loglik(table, rho):
    a, b, c, d = table
    n = a + b + c + d
    h, k = special.ndtri((a + b) / n), special.ndtri((a + c) / n)
    p11 = es._bvn_lower(np.array([h]), np.array([k]), np.array([rho]))[0]
    p1, q1 = special.ndtr(h), special.ndtr(k)
    cells = np.array([p11, p1 - p11, q1 - p11, 1 - p1 - q1 + p11])
    return float(np.sum(np.array(table) * np.log(cells)))


def test_rtet_maximizes_the_likelihood_better_than_metafor():
    case = next(c for c in REFERENCE["cases"] if c["name"] == "RTET_default")
    tables = np.column_stack(
        [_float(case["inputs"][k]) for k in ("ai", "bi", "ci", "di")]
    )
    result = _run(case)
    for table, ours, theirs in zip(tables, result.yi, _float(case["yi"]), strict=True):
        assert _rtet_loglik(table, ours) >= _rtet_loglik(table, theirs) - 1e-12
        for step in (-1e-5, 1e-5):  # a maximum: both neighbours are lower
            assert _rtet_loglik(table, ours + step) < _rtet_loglik(table, ours)


def test_bcg_log_risk_ratio_first_study():
    bcg = load_bcg()
    yi, vi = log_risk_ratio(bcg["tpos"], bcg["tneg"], bcg["cpos"], bcg["cneg"])
    assert yi[0] == pytest.approx(-0.8893, abs=5e-5)
    assert vi[0] == pytest.approx(0.3256, abs=5e-5)


@pytest.mark.parametrize(
    ("func", "estimate", "q"),
    [
        # notes/reference-conventions.md, metafor vs Stata metan on dat.bcg
        (log_risk_ratio, -0.4303, 152.2330),
        (log_odds_ratio, -0.4361, 163.1649),
    ],
)
def test_bcg_equal_effects_summary_matches_published(func, estimate, q):
    bcg = load_bcg()
    yi, vi = func(bcg["tpos"], bcg["tneg"], bcg["cpos"], bcg["cneg"])
    w = 1 / vi
    mu = np.sum(w * yi) / np.sum(w)
    assert mu == pytest.approx(estimate, abs=5e-5)
    assert np.sum(w * (yi - mu) ** 2) == pytest.approx(q, abs=5e-5)


def test_group_sizes_equal_cells():
    lao = load_laopaiboon2015()
    from_n = log_risk_ratio(lao["ai"], ci=lao["ci"], n1i=lao["n1i"], n2i=lao["n2i"])
    from_cells = log_risk_ratio(
        lao["ai"], lao["n1i"] - lao["ai"], lao["ci"], lao["n2i"] - lao["ci"]
    )
    np.testing.assert_array_equal(from_n.yi, from_cells.yi)
    np.testing.assert_array_equal(from_n.vi, from_cells.vi)


def test_effect_size_tuple_and_frame():
    result = risk_difference([2, 4], [37, 40], [1, 4], [42, 40])
    assert isinstance(result, EffectSize)
    yi, vi = result
    assert yi.dtype == vi.dtype == np.float64
    assert yi.shape == vi.shape == (2,)
    frame = result.to_frame(index=["a", "b"])
    assert list(frame.columns) == ["yi", "vi"]
    assert list(frame.index) == ["a", "b"]
    np.testing.assert_array_equal(frame["yi"], yi)
    assert isinstance(result.to_frame().index, pd.RangeIndex)


def test_scalars_broadcast():
    one = fisher_z([0.3, 0.5], 30)
    two = fisher_z([0.3, 0.5], [30, 30])
    np.testing.assert_array_equal(one.yi, two.yi)
    np.testing.assert_array_equal(one.vi, two.vi)


def test_missing_values_propagate_row_wise():
    yi, vi = log_odds_ratio([3, np.nan, 5], [10, 12, 9], [4, 6, 0], [9, 8, 11])
    assert np.isnan(yi[1]) and np.isnan(vi[1])
    assert np.isfinite(yi[[0, 2]]).all() and np.isfinite(vi[[0, 2]]).all()
    # the correction of study 3 does not depend on the missing study
    ref = log_odds_ratio([5], [9], [0], [11])
    assert yi[2] == ref.yi[0]


def test_undefined_values_are_nan_not_inf_with_a_warning():
    with pytest.warns(RuntimeWarning, match=r"undefined .* 1 study \(positions 0\)"):
        yi, vi = log_risk_ratio([0, 3], [10, 7], [2, 3], [8, 7], add_to="none")
    assert np.isnan(yi[0]) and np.isnan(vi[0])
    assert np.isfinite(yi[1])
    with pytest.warns(RuntimeWarning, match=r"2 studies \(positions 0, 1\)"):
        z = fisher_z([1.0, -1.0, 0.2], [10, 10, 10])
    assert np.isnan(z.yi[:2]).all() and np.isnan(z.vi[:2]).all()


def test_missing_and_dropped_studies_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = log_odds_ratio([np.nan, 0, 3], [4, 10, 7], [2, 0, 3], [8, 7, 7],
                             drop00=True)  # fmt: skip
        assert np.isnan(res.yi[:2]).all() and np.isfinite(res.yi[2])
        res = es.raw_mean(mi=[1.0, np.nan], sdi=[1.0, 2.0], ni=[10, 10])
        assert np.isnan(res.vi[1]) and np.isfinite(res.vi[0])


def test_tetrachoric_zero_cell_is_nan_with_warning():
    with pytest.warns(RuntimeWarning, match="undefined"):
        res = tetrachoric_correlation([0, 12], [30, 30], [9, 9], [35, 35])
    assert np.isnan(res.yi[0]) and np.isnan(res.vi[0])
    assert np.isfinite(res.yi[1])
    corrected = tetrachoric_correlation([0], [30], [9], [35], correction=0.5)
    assert -1 < corrected.yi[0] < 0


# J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2)) (Hedges 1981), computed with
# mpmath at 50 digits (independent of skmeta), rounded to 20 significant digits.
HEDGES_J = {
    2: 0.56418958354775628695,
    5: 0.8407486824596893049,
    27: 0.97191863960090619359,
    340: 0.99779222355924944734,
    341: 0.99779870352038784854,
    1000: 0.99924978117971636752,
    12345: 0.99993924522315221218,
    1999998: 0.99999962499957031201,
    1e9: 0.99999999924999999978,
}


@pytest.mark.parametrize("m", list(HEDGES_J))
def test_hedges_j_is_exact(m):
    # g = J(m) * d with d = 1 (means 1 and 0, unit SDs); 2 ulp relative accuracy,
    # also for huge m where exp(lgamma - lgamma) loses ~1e-9 (metafor does).
    n1 = m // 2 + 1
    n2 = m + 2 - n1
    g = standardized_mean_difference(
        m1i=[1.0], sd1i=[1.0], n1i=[n1], m2i=[0.0], sd2i=[1.0], n2i=[n2]
    )
    assert g.yi[0] == pytest.approx(HEDGES_J[m], rel=5e-16)
    if m == 2:  # vs the usual approximation 1 - 3 / (4m - 1) = 0.5714...
        assert g.yi[0] < 1 - 3 / (4 * m - 1) - 0.007


def test_hedges_g_alias():
    assert es.hedges_g is standardized_mean_difference


counts = st.integers(min_value=0, max_value=500)


@settings(max_examples=60, deadline=None)
@given(counts, counts, counts, counts)
def test_swapping_groups_negates_log_ratios(a, b, c, d):
    if a + b == 0 or c + d == 0:
        return
    for func in (log_risk_ratio, log_odds_ratio, risk_difference):
        fwd = func([a], [b], [c], [d])
        rev = func([c], [d], [a], [b])
        np.testing.assert_allclose(rev.yi, -fwd.yi, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(rev.vi, fwd.vi, rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(counts, counts, counts, counts)
def test_swapping_events_negates_log_odds_ratio(a, b, c, d):
    if a + b == 0 or c + d == 0:
        return
    fwd = log_odds_ratio([a], [b], [c], [d])
    rev = log_odds_ratio([b], [a], [d], [c])
    np.testing.assert_allclose(rev.yi, -fwd.yi, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rev.vi, fwd.vi, rtol=1e-12)


def test_correlation_formulas_closed_form():
    r, n = np.array([0.5, -0.2]), np.array([28, 11])
    np.testing.assert_allclose(correlation(r, n).vi, (1 - r**2) ** 2 / (n - 1))
    np.testing.assert_allclose(fisher_z(r, n).yi, 0.5 * np.log((1 + r) / (1 - r)))
    np.testing.assert_allclose(fisher_z(r, n).vi, 1 / (n - 3))


# --------------------------------------------------------------------------- #
# validation
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: log_risk_ratio([-1], [3], [2], [4]), "ai must be non-negative"),
        (lambda: log_odds_ratio([1], [3], [2], [-4]), "di must be non-negative"),
        (lambda: log_risk_ratio([0], [0], [2], [4]), "group 1 size"),
        (lambda: log_risk_ratio([1], [3], [0], [0]), "group 2 size"),
        (lambda: risk_difference([1], ci=[2], n1i=[0], n2i=[4]), "ai cannot exceed"),
        (lambda: risk_difference([1, 2], [3], [2], [4]), "same length"),
        (lambda: log_risk_ratio([1], [3], [2]), "exactly one of di and n2i"),
        (
            lambda: log_risk_ratio([1], [3], [2], [4], n1i=[4]),
            "exactly one of bi and n1i",
        ),
        (lambda: log_risk_ratio([1], [3], None, [4]), "ci is required"),
        (lambda: log_risk_ratio([[1]], [[3]], [[2]], [[4]]), "ai must be 1-D"),
        (lambda: log_risk_ratio([np.inf], [3], [2], [4]), "ai must be finite"),
        (lambda: log_risk_ratio(["a"], [3], [2], [4]), "ai must be numeric"),
        (lambda: log_risk_ratio([1], [3], [2], [4], add_to="always"), "add_to"),
        (lambda: log_risk_ratio([1], [3], [2], [4], correction=-1), "correction"),
        (lambda: log_risk_ratio([1], [3], [2], [4], drop00="yes"), "drop00"),
        (lambda: correlation([1.2], [10]), r"ri must lie in \[-1, 1\]"),
        (lambda: fisher_z([-1.01], [10]), r"ri must lie in \[-1, 1\]"),
        (lambda: fisher_z([0.1], [3]), "ni must be at least 4"),
        (lambda: correlation([0.1], [1]), "ni must be at least 2"),
        (lambda: proportion([5], [4]), "xi cannot exceed ni"),
        (lambda: proportion([0], [0]), "ni must be positive"),
        (lambda: proportion([-1], [4]), "xi must be non-negative"),
        (
            lambda: mean_difference(
                m1i=[1], sd1i=[-1], n1i=[5], m2i=[0], sd2i=[1], n2i=[5]
            ),
            "sd1i must be non-negative",
        ),
        (
            lambda: mean_difference(
                m1i=[1], sd1i=[1], n1i=[0], m2i=[0], sd2i=[1], n2i=[5]
            ),
            "n1i must be positive",
        ),
        (
            lambda: mean_difference(
                m1i=[1], sd1i=[1], n1i=[5], m2i=[0], sd2i=[1], n2i=[5], vtype="UB"
            ),
            "vtype",
        ),
        (
            lambda: standardized_mean_difference(
                m1i=[1], sd1i=[1], n1i=[2], m2i=[0], sd2i=[1], n2i=[1]
            ),
            "at least 4",
        ),
        (
            lambda: standardized_mean_difference(
                m1i=[1], sd1i=[1], n1i=[5], m2i=[0], sd2i=[1], n2i=[5], vtype="HO"
            ),
            "vtype",
        ),
        (
            lambda: log_incidence_rate_ratio(x1i=[1], t1i=[0], x2i=[2], t2i=[10]),
            "t1i must be positive",
        ),
        (
            lambda: log_incidence_rate_ratio(x1i=[-1], t1i=[5], x2i=[2], t2i=[10]),
            "x1i must be non-negative",
        ),
        (lambda: escalc("XYZ", ai=[1]), "measure must be one of"),
        (lambda: escalc("ZCOR", ri=[0.1], ni=[10], add=1), "invalid arguments"),
    ],
)
def test_invalid_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_escalc_is_case_insensitive_dispatcher():
    a = escalc("rr", ai=[4], bi=[119], ci=[11], di=[128])
    b = log_risk_ratio([4], [119], [11], [128])
    np.testing.assert_array_equal(a.yi, b.yi)
    np.testing.assert_array_equal(a.vi, b.vi)


# --------------------------------------------------------------------------- #
# docstrings assembled from shared fragments
# --------------------------------------------------------------------------- #
def _as_documented(default):
    return f'"{default}"' if isinstance(default, str) else str(default)


@pytest.mark.parametrize(
    "func", [*MEASURES.values(), escalc], ids=lambda func: func.__name__
)
def test_docstrings_are_filled_and_state_the_signature_defaults(func):
    assert "%(" not in func.__doc__
    doc = FunctionDoc(func)
    assert [r.type for r in doc["Returns"]] == ["EffectSize"]
    parameters = inspect.signature(func).parameters
    for entry in doc["Parameters"]:
        _, stated, default = entry.type.partition("default=")
        for name in entry.name.split(", ") if stated else ():
            assert default == _as_documented(parameters[name].default), name


def test_module_docstring_tables_are_filled():
    assert "%(" not in es.__doc__
    assert es.__doc__.count(".. list-table::") == 8


# --------------------------------------------------------------------------- #
# every measure on one study, computed by hand from its formula
# --------------------------------------------------------------------------- #
def _j(m):
    """Hedges' J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))."""
    return math.exp(math.lgamma(m / 2) - math.lgamma((m - 1) / 2)) / math.sqrt(m / 2)


def _hyp2f1_series(a, b, c, z, terms=2000):
    total, term = 1.0, 1.0
    for k in range(terms):
        term *= (k + a) * (k + b) / ((k + c) * (k + 1)) * z
        total += term
    return total


def _phi(z):
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def _hand_cases():
    cases = {}
    # 2x2 table
    a, b, c, d = 12.0, 30.0, 9.0, 35.0
    n1, n2, n = a + b, c + d, a + b + c + d
    p1, p2 = a / n1, c / n2
    tab = {"ai": [a], "bi": [b], "ci": [c], "di": [d]}
    lor, vlor = math.log(a * d / (b * c)), 1 / a + 1 / b + 1 / c + 1 / d
    cases["RR"] = (tab, math.log(p1 / p2), 1 / a - 1 / n1 + 1 / c - 1 / n2)
    cases["OR"] = (tab, lor, vlor)
    n, m1, m0 = n1 + n2, a + c, b + d
    v_peto = n1 * n2 * m1 * m0 / (n**2 * (n - 1))
    cases["PETO"] = (tab, (a - n1 * m1 / n) / v_peto, 1 / v_peto)
    cases["RD"] = (tab, p1 - p2, p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    cases["AS"] = (
        tab,
        math.asin(math.sqrt(p1)) - math.asin(math.sqrt(p2)),
        1 / (4 * n1) + 1 / (4 * n2),
    )
    m1, m2 = a + c, b + d
    phi = (a * d - b * c) / math.sqrt(n1 * n2 * m1 * m2)
    r1, r2, c1, c2 = n1 / n, n2 / n, m1 / n, m2 / n
    v_phi = (
        1
        - phi**2
        + phi * (1 + phi**2 / 2) * (r1 - r2) * (c1 - c2) / math.sqrt(r1 * r2 * c1 * c2)
        - 0.75 * phi**2 * ((r1 - r2) ** 2 / (r1 * r2) + (c1 - c2) ** 2 / (c1 * c2))
    ) / n
    cases["PHI"] = (tab, phi, v_phi)
    odds = a * d / (b * c)
    q = (odds - 1) / (odds + 1)
    cases["YUQ"] = (tab, q, 0.25 * (1 - q**2) ** 2 * vlor)
    y = (math.sqrt(odds) - 1) / (math.sqrt(odds) + 1)
    cases["YUY"] = (tab, y, (1 - y**2) ** 2 * vlor / 16)
    # tetrachoric: with equal margins h = k = 0 and Phi2(0, 0, rho) =
    # 1/4 + asin(rho)/(2 pi) (Sheppard), so rho = sin(2 pi (p_a - 1/4)); the
    # variance reduces to (p_b + p_c)(1 - p_b - p_c) / (4 n phi2(0, 0, rho)^2)
    sym = {"ai": [30.0], "bi": [10.0], "ci": [10.0], "di": [30.0]}
    rho = math.sin(2 * math.pi * (30 / 80 - 0.25))
    density = 1 / (2 * math.pi * math.sqrt(1 - rho**2))
    cases["RTET"] = (sym, rho, 0.25 * 0.75 / (4 * 80 * density**2))
    z1 = special.ndtri(p1)
    z2 = special.ndtri(p2)
    cases["PBIT"] = (
        tab,
        z1 - z2,
        2 * math.pi * p1 * (1 - p1) * math.exp(z1**2) / n1
        + 2 * math.pi * p2 * (1 - p2) * math.exp(z2**2) / n2,
    )
    cases["OR2DN"] = (tab, lor / 1.65, vlor / 1.65**2)
    cases["OR2DL"] = (tab, lor * math.sqrt(3) / math.pi, vlor * 3 / math.pi**2)

    # two groups, means and SDs
    xm1, s1, k1, xm2, s2, k2 = 10.2, 2.1, 20.0, 9.1, 2.4, 22.0
    means = {"m1i": [xm1], "sd1i": [s1], "n1i": [k1],
             "m2i": [xm2], "sd2i": [s2], "n2i": [k2]}  # fmt: skip
    cases["MD"] = (means, xm1 - xm2, s1**2 / k1 + s2**2 / k2)
    sp = math.sqrt(((k1 - 1) * s1**2 + (k2 - 1) * s2**2) / (k1 + k2 - 2))
    dd = (xm1 - xm2) / sp
    g = _j(k1 + k2 - 2) * dd
    cases["SMD"] = (means, g, 1 / k1 + 1 / k2 + g**2 / (2 * (k1 + k2)))
    savg = (s1**2 + s2**2) / 2
    jh = _j(k1 + k2 - 2)
    gh = jh * (xm1 - xm2) / math.sqrt(savg)
    cases["SMDH"] = (
        means,
        gh,
        jh**2
        * (
            gh**2 * (s1**4 / (k1 - 1) + s2**4 / (k2 - 1)) / (8 * savg**2)
            + (s1**2 / (k1 - 1) + s2**2 / (k2 - 1)) / savg
        ),
    )
    cv1, cv2 = s1**2 / (k1 * xm1**2), s2**2 / (k2 * xm2**2)
    cases["ROM"] = (means, math.log(xm1 / xm2) + (cv1 - cv2) / 2, cv1 + cv2)
    b1, b2 = 1 / (2 * (k1 - 1)), 1 / (2 * (k2 - 1))
    cases["VR"] = (
        {"sd1i": [s1], "n1i": [k1], "sd2i": [s2], "n2i": [k2]},
        math.log(s1 / s2) + b1 - b2,
        b1 + b2,
    )
    cases["CVR"] = (
        means,
        math.log((s1 / xm1) / (s2 / xm2)) + b1 - cv1 / 2 - b2 + cv2 / 2,
        b1 + cv1 + b2 + cv2,
    )
    vd = 1 / k1 + 1 / k2 + dd**2 / (2 * (k1 + k2))
    cases["D2ORN"] = (means, 1.65 * dd, 1.65**2 * vd)
    cases["D2ORL"] = (means, math.pi / math.sqrt(3) * dd, math.pi**2 / 3 * vd)
    tot = s1**2 + s2**2
    zz = (xm1 - xm2) / math.sqrt(tot)
    var_z = (s1**2 / (k1 - 1) + s2**2 / (k2 - 1)) / tot + zz**2 * (
        s1**4 / (k1 - 1) + s2**4 / (k2 - 1)
    ) / (2 * tot**2)
    cases["AUCN"] = (means, special.ndtr(zz), _phi(zz) ** 2 * var_z)
    auc, a1, a2 = 0.7, 20.0, 25.0
    q1, q2 = (1 - auc) / (2 - auc), auc / (1 + auc)
    cases["AUC"] = (
        {"ai": [auc], "n1i": [a1], "n2i": [a2]},
        auc,
        auc * (1 - auc) * (1 + ((a1 + a2) / 2 - 1) * (q1 + q2)) / ((a1 - 1) * (a2 - 1)),
    )

    # change scores
    r, nc = 0.5, 20.0
    chg = {"m1i": [xm1], "sd1i": [s1], "m2i": [xm2], "sd2i": [s2],
           "ni": [nc], "ri": [r]}  # fmt: skip
    var_c = s1**2 + s2**2 - 2 * r * s1 * s2
    cases["MC"] = (chg, xm1 - xm2, var_c / nc)
    gc = _j(nc - 1) * (xm1 - xm2) / math.sqrt(var_c)
    cases["SMCC"] = (chg, gc, 1 / nc + gc**2 / (2 * nc))
    gr = _j(nc - 1) * (xm1 - xm2) / s1
    raw = {k: v for k, v in chg.items() if k != "sd2i"}
    cases["SMCR"] = (raw, gr, 2 * (1 - r) / nc + gr**2 / (2 * nc))
    cases["SMCRH"] = (
        chg,
        gr,
        _j(nc - 1) ** 2 * (gr**2 / (2 * (nc - 1)) + var_c / ((nc - 1) * s1**2)),
    )

    # correlations
    rr, nr = 0.3, 50.0
    cor = {"ri": [rr], "ni": [nr]}
    cases["COR"] = (cor, rr, (1 - rr**2) ** 2 / (nr - 1))
    u = rr * _hyp2f1_series(0.5, 0.5, (nr - 2) / 2, 1 - rr**2)
    cases["UCOR"] = (cor, u, (1 - u**2) ** 2 / (nr - 1))
    cases["ZCOR"] = (cor, math.atanh(rr), 1 / (nr - 3))
    t, nt, p, r2 = 2.5, 50.0, 3.0, 0.3
    df = nt - p - 1
    pr = t / math.sqrt(t**2 + df)
    reg = {"ti": [t], "ni": [nt], "mi": [p]}
    cases["PCOR"] = (reg, pr, (1 - pr**2) ** 2 / df)
    cases["ZPCOR"] = (reg, math.atanh(pr), 1 / (nt - p - 2))
    sr = t * math.sqrt((1 - r2) / df)
    red = r2 - sr**2
    v_sr = (r2**2 - 2 * r2 + red + 1 - red**2) / nt
    cases["SPCOR"] = ({**reg, "r2i": [r2]}, sr, v_sr)
    cases["ZSPCOR"] = ({**reg, "r2i": [r2]}, math.atanh(sr), v_sr / (1 - sr**2) ** 2)

    # single groups
    single = {"mi": [xm1], "sdi": [s1], "ni": [k1]}
    cases["MN"] = (single, xm1, s1**2 / k1)
    cases["MNLN"] = (single, math.log(xm1), s1**2 / (k1 * xm1**2))
    cases["SDLN"] = ({"sdi": [s1], "ni": [k1]}, math.log(s1) + b1, b1)
    cases["CVLN"] = (single, math.log(s1 / xm1) + b1, b1 + s1**2 / (k1 * xm1**2))
    x, nx = 5.0, 40.0
    pp = x / nx
    prop = {"xi": [x], "ni": [nx]}
    cases["PR"] = (prop, pp, pp * (1 - pp) / nx)
    cases["PLN"] = (prop, math.log(pp), 1 / x - 1 / nx)
    cases["PLO"] = (prop, math.log(x / (nx - x)), 1 / x + 1 / (nx - x))
    cases["PAS"] = (prop, math.asin(math.sqrt(pp)), 1 / (4 * nx))
    cases["PFT"] = (
        prop,
        (math.asin(math.sqrt(x / (nx + 1))) + math.asin(math.sqrt((x + 1) / (nx + 1))))
        / 2,
        1 / (4 * nx + 2),
    )

    # incidence rates
    e1, t1, e2, t2 = 12.0, 1200.0, 20.0, 1100.0
    one = {"xi": [e1], "ti": [t1]}
    cases["IR"] = (one, e1 / t1, e1 / t1**2)
    cases["IRLN"] = (one, math.log(e1 / t1), 1 / e1)
    cases["IRS"] = (one, math.sqrt(e1 / t1), 1 / (4 * t1))
    cases["IRFT"] = (
        one,
        (math.sqrt(e1 / t1) + math.sqrt((e1 + 1) / t1)) / 2,
        1 / (4 * t1),
    )
    two = {"x1i": [e1], "t1i": [t1], "x2i": [e2], "t2i": [t2]}
    cases["IRR"] = (two, math.log((e1 / t1) / (e2 / t2)), 1 / e1 + 1 / e2)
    cases["IRD"] = (two, e1 / t1 - e2 / t2, e1 / t1**2 + e2 / t2**2)
    cases["IRSD"] = (
        two,
        math.sqrt(e1 / t1) - math.sqrt(e2 / t2),
        1 / (4 * t1) + 1 / (4 * t2),
    )
    return cases


HAND = _hand_cases()


def test_every_measure_has_a_hand_computed_case():
    assert set(HAND) == set(MEASURES)


@pytest.mark.parametrize("measure", sorted(HAND))
def test_matches_formula_computed_by_hand(measure):
    kwargs, yi, vi = HAND[measure]
    result = escalc(measure, **kwargs)
    assert result.yi[0] == pytest.approx(yi, rel=1e-12)
    assert result.vi[0] == pytest.approx(vi, rel=1e-12)
    # the named function and the dispatcher agree
    named = MEASURES[measure](**kwargs)
    assert named.yi[0] == result.yi[0] and named.vi[0] == result.vi[0]


# --------------------------------------------------------------------------- #
# impossible inputs: a ValueError naming the argument, for every measure
# --------------------------------------------------------------------------- #
_TABLE_MEASURES = ("RR", "OR", "RD", "AS", "PHI", "YUQ", "YUY", "RTET", "PBIT",
                   "OR2DN", "OR2DL")  # fmt: skip
_BAD = [(m, {"ai": [-1.0]}, "ai must be non-negative") for m in _TABLE_MEASURES]
_BAD += [(m, {"ci": [50.0], "di": None, "n2i": [44.0]}, "ci cannot exceed n2i")
         for m in _TABLE_MEASURES]  # fmt: skip
_BAD += [
    ("MD", {"sd2i": [-2.4]}, "sd2i must be non-negative"),
    ("SMD", {"n1i": [0.0]}, "n1i must be positive"),
    ("SMD", {"vtype": "HO"}, "vtype must be one of"),
    ("SMDH", {"n2i": [1.0]}, "n2i must be at least 2"),
    ("SMDH", {"sd1i": [0.0], "sd2i": [0.0]}, "sd1i and sd2i cannot both be zero"),
    ("ROM", {"m2i": [-9.1]}, "m1i and m2i must be non-zero and of the same sign"),
    ("ROM", {"m1i": [0.0]}, "m1i and m2i must be non-zero"),
    ("ROM", {"vtype": "UB"}, "vtype must be one of"),
    ("ROM", {"correct": "yes"}, "correct must be a bool"),
    ("VR", {"sd1i": [0.0]}, "sd1i must be positive"),
    ("VR", {"n2i": [1.0]}, "n2i must be at least 2"),
    ("CVR", {"sd2i": [0.0]}, "sd2i must be positive"),
    ("CVR", {"m1i": [-10.2]}, "m1i and m2i must be non-zero and of the same sign"),
    ("D2ORN", {"sd1i": [-1.0]}, "sd1i must be non-negative"),
    ("D2ORL", {"n1i": [1.0], "n2i": [1.0]}, "n1i \\+ n2i must exceed 2"),
    ("AUC", {"ai": [1.2]}, r"ai must lie in \[0, 1\]"),
    ("AUC", {"n1i": [1.0]}, "n1i must be at least 2"),
    ("AUC", {"vtype": "HO"}, "vtype must be one of"),
    ("AUCN", {"sd1i": [0.0], "sd2i": [0.0]}, "sd1i and sd2i cannot both be zero"),
    ("AUCN", {"n2i": [1.0]}, "n2i must be at least 2"),
    ("MC", {"ri": [1.5]}, r"ri must lie in \[-1, 1\]"),
    ("MC", {"sd1i": [-2.1]}, "sd1i must be non-negative"),
    ("SMCC", {"ni": [2.0]}, "ni must be at least 3"),
    ("SMCC", {"sd1i": [1.0], "sd2i": [1.0], "ri": [1.0]}, "positive change-score SD"),
    ("SMCR", {"sd1i": [0.0]}, "sd1i must be positive"),
    ("SMCR", {"ri": [-1.01]}, r"ri must lie in \[-1, 1\]"),
    ("SMCRH", {"ni": [0.0]}, "ni must be positive"),
    ("SMCRH", {"sd1i": [0.0]}, "sd1i must be positive"),
    ("COR", {"ri": [1.2]}, r"ri must lie in \[-1, 1\]"),
    ("COR", {"vtype": "UB"}, "vtype must be one of"),
    ("UCOR", {"ni": [4.0]}, "ni must be at least 5"),
    ("UCOR", {"ri": [-1.5]}, r"ri must lie in \[-1, 1\]"),
    ("ZCOR", {"ni": [3.0]}, "ni must be at least 4"),
    ("PCOR", {"mi": [0.0]}, "mi must be at least 1"),
    ("PCOR", {"ni": [4.0]}, "ni must exceed mi \\+ 1"),
    ("ZPCOR", {"ni": [5.0]}, "ni must exceed mi \\+ 2"),
    ("SPCOR", {"r2i": [1.0]}, r"r2i must lie in \[0, 1\)"),
    ("SPCOR", {"ti": [30.0]}, "ti and r2i are inconsistent"),
    ("ZSPCOR", {"r2i": [-0.1]}, r"r2i must lie in \[0, 1\)"),
    ("ZSPCOR", {"mi": [0.5]}, "mi must be at least 1"),
    ("PETO", {"ci": [-1.0]}, "ci must be non-negative"),
    ("MN", {"sdi": [-1.0]}, "sdi must be non-negative"),
    ("MN", {"ni": [0.0]}, "ni must be positive"),
    ("MNLN", {"mi": [-10.2]}, "mi must be positive"),
    ("SDLN", {"sdi": [0.0]}, "sdi must be positive"),
    ("SDLN", {"ni": [1.0]}, "ni must be at least 2"),
    ("CVLN", {"mi": [0.0]}, "mi must be positive"),
    ("CVLN", {"ni": [1.0]}, "ni must be at least 2"),
    ("PR", {"xi": [41.0]}, "xi cannot exceed ni"),
    ("PR", {"vtype": "HO"}, "vtype must be one of"),
    ("PLN", {"xi": [-1.0]}, "xi must be non-negative"),
    ("PLO", {"ni": [0.0]}, "ni must be positive"),
    ("PAS", {"xi": [41.0]}, "xi cannot exceed ni"),
    ("PFT", {"xi": [-5.0]}, "xi must be non-negative"),
    ("IR", {"ti": [0.0]}, "ti must be positive"),
    ("IRLN", {"xi": [-1.0]}, "xi must be non-negative"),
    ("IRS", {"ti": [-3.0]}, "ti must be positive"),
    ("IRFT", {"correction": -0.5}, "correction must be a finite non-negative"),
    ("IRR", {"x2i": [-1.0]}, "x2i must be non-negative"),
    ("IRD", {"t1i": [0.0]}, "t1i must be positive"),
    ("IRSD", {"add_to": "sometimes"}, "add_to must be one of"),
    ("IRSD", {"drop00": 1}, "drop00 must be a bool"),
    ("PHI", {"vtype": "XX"}, "vtype must be one of"),
    ("PHI", {"vtype": ["ST", "CS"]}, "vtype must be a string or have one entry"),
]


def test_every_measure_has_a_bad_input_case():
    assert {measure for measure, _, _ in _BAD} == set(MEASURES)


@pytest.mark.parametrize(
    ("measure", "override", "match"),
    _BAD,
    ids=[f"{m}-{next(iter(o))}" for m, o, _ in _BAD],
)
def test_impossible_input_raises_value_error_naming_the_argument(
    measure, override, match
):
    kwargs = {**HAND[measure][0], **override}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    with pytest.raises(ValueError, match=match):
        escalc(measure, **kwargs)


@pytest.mark.parametrize("measure", sorted(MEASURES))
def test_missing_inputs_propagate_and_scalars_broadcast(measure):
    kwargs = HAND[measure][0]
    first = next(iter(kwargs))
    doubled = {k: v * 2 if k == first else v[0] for k, v in kwargs.items()}
    res = escalc(measure, **doubled)  # scalars broadcast against the first array
    assert res.yi.shape == (2,) and res.yi[0] == res.yi[1]
    missing = {**doubled, first: [np.nan, kwargs[first][0]]}
    res = escalc(measure, **missing)
    assert np.isnan(res.yi[0]) and np.isnan(res.vi[0])
    assert res.yi[1] == pytest.approx(HAND[measure][1], rel=1e-12)
    empty = escalc(measure, **{k: [] for k in kwargs})
    assert empty.yi.shape == (0,) == empty.vi.shape


# --------------------------------------------------------------------------- #
# symmetries
# --------------------------------------------------------------------------- #
positive_counts = st.integers(min_value=1, max_value=500)


@settings(max_examples=40, deadline=None)
@given(positive_counts, positive_counts, positive_counts, positive_counts)
def test_association_measures_are_odd_in_the_rows_and_even_in_transposition(a, b, c, d):
    for measure in ("PHI", "YUQ", "YUY", "RTET"):
        func = MEASURES[measure]
        fwd = func([a], [b], [c], [d])
        swapped = func([c], [d], [a], [b])  # rows swapped: sign flips
        transposed = func([a], [c], [b], [d])  # variables swapped: unchanged
        np.testing.assert_allclose(swapped.yi, -fwd.yi, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(swapped.vi, fwd.vi, rtol=1e-9)
        np.testing.assert_allclose(transposed.yi, fwd.yi, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(transposed.vi, fwd.vi, rtol=1e-9)


means_strategy = st.tuples(
    st.floats(0.5, 50), st.floats(0.1, 10), st.integers(2, 200),
    st.floats(0.5, 50), st.floats(0.1, 10), st.integers(2, 200),
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(means_strategy)
def test_two_group_measures_are_odd_when_the_groups_are_swapped(values):
    m1, s1, n1, m2, s2, n2 = values
    fwd = {"m1i": [m1], "sd1i": [s1], "n1i": [n1],
           "m2i": [m2], "sd2i": [s2], "n2i": [n2]}  # fmt: skip
    rev = {"m1i": [m2], "sd1i": [s2], "n1i": [n2],
           "m2i": [m1], "sd2i": [s1], "n2i": [n1]}  # fmt: skip
    for measure in ("MD", "SMDH", "ROM", "CVR", "D2ORN"):
        a, b = escalc(measure, **fwd), escalc(measure, **rev)
        np.testing.assert_allclose(b.yi, -a.yi, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(b.vi, a.vi, rtol=1e-10)
    vr = ("sd1i", "n1i", "sd2i", "n2i")
    a = escalc("VR", **{k: fwd[k] for k in vr})
    b = escalc("VR", **{k: rev[k] for k in vr})
    np.testing.assert_allclose(b.yi, -a.yi, rtol=1e-10, atol=1e-13)
    a, b = escalc("AUCN", **fwd), escalc("AUCN", **rev)
    np.testing.assert_allclose(b.yi, 1 - a.yi, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(b.vi, a.vi, rtol=1e-10)
    auc = 0.3 + m1 / 100  # in (0.3, 0.8)
    for vtype in ("LS", "LS2"):
        a = escalc("AUC", ai=[auc], n1i=[n1], n2i=[n2], vtype=vtype)
        b = escalc("AUC", ai=[1 - auc], n1i=[n2], n2i=[n1], vtype=vtype)
        np.testing.assert_allclose(b.vi, a.vi, rtol=1e-10)


@settings(max_examples=40, deadline=None)
@given(st.floats(-0.999, 0.999), st.integers(5, 100_000))
def test_unbiased_correlation_is_odd_and_moves_r_away_from_zero(r, n):
    pos = es.unbiased_correlation([r], [n])
    neg = es.unbiased_correlation([-r], [n])
    np.testing.assert_allclose(neg.yi, -pos.yi, rtol=1e-12, atol=1e-15)
    # Olkin & Pratt (1958): r (1 + (1 - r^2) / (2 (n - 3))) to first order, so
    # |u| >= |r| and the correction is below |r| (1 - r^2) / (n - 3)
    assert abs(pos.yi[0]) >= abs(r) - 1e-15
    assert abs(pos.yi[0]) - abs(r) <= abs(r) * (1 - r**2) / (n - 3) + 1e-15
