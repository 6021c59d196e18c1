"""Tests for skmeta.effect_sizes against metafor's escalc and published numbers.

``tests/reference/escalc.json`` is written by ``tests/reference/make_escalc.R``
(metafor 3.8.1): every measure, with zero cells, every continuity-correction
mode, drop00, missing values and every variance type. The JSON holds 15
significant digits, so rtol 1e-10 is far above the printing error and far below
any formula difference.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
)

REFERENCE = json.loads(
    (Path(__file__).parent / "reference" / "escalc.json").read_text(encoding="utf-8")
)
RTOL = 1e-10
# metafor option name -> skmeta keyword
OPTION_NAMES = {
    "add": "correction",
    "to": "add_to",
    "drop00": "drop00",
    "vtype": "vtype",
}


def _float(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def test_reference_file_metadata():
    assert REFERENCE["metafor_version"] == "3.8.1"
    assert REFERENCE["metadat_version"] == "1.2.0"
    assert REFERENCE["r_version"].startswith("R version 4.2.2")
    measures = {case["measure"] for case in REFERENCE["cases"]}
    assert measures == set(MEASURES)


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=lambda c: c["name"])
def test_matches_metafor_escalc(case):
    inputs = {name: _float(values) for name, values in case["inputs"].items()}
    options = {OPTION_NAMES[k]: v for k, v in (case["options"] or {}).items()}
    result = escalc(case["measure"], **inputs, **options)
    yi, vi = _float(case["yi"]), _float(case["vi"])
    np.testing.assert_array_equal(np.isnan(result.yi), np.isnan(yi))
    np.testing.assert_array_equal(np.isnan(result.vi), np.isnan(vi))
    np.testing.assert_allclose(result.yi, yi, rtol=RTOL, atol=0)
    np.testing.assert_allclose(result.vi, vi, rtol=RTOL, atol=0)


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


def test_undefined_values_are_nan_not_inf():
    yi, vi = log_risk_ratio([0, 3], [10, 7], [2, 3], [8, 7], add_to="none")
    assert np.isnan(yi[0]) and np.isnan(vi[0])
    assert np.isfinite(yi[1])
    z = fisher_z([1.0, -1.0, 0.2], [10, 10, 10])
    assert np.isnan(z.yi[:2]).all() and np.isnan(z.vi[:2]).all()


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
