"""skmeta.mantel_haenszel and skmeta.peto against metafor's rma.mh / rma.peto.

Reference numbers: ``tests/reference/binary.json``, written by
``tests/reference/make_binary.R`` (R 4.2.2, metafor 3.8.1, metadat 1.2.0; the
versions are in the JSON). Every metafor quantity here is closed form (sums over
the tables, a quadratic root per table for Breslow-Day), so the comparisons use
``RTOL = 1e-8``, with ``ATOL = 1e-12`` for quantities that are 0 up to rounding
(e.g. the Breslow-Day statistic of a single table, 3e-31 in metafor).

Besides the fixture: the worked example on dat.nielweise2007 published with the
method notes of this project, a two-table case computed by hand from the
formulas (exact fractions in the comments), symmetry properties, bad input and
warnings.
"""

import dataclasses
import inspect
import json
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpydoc.docscrape import FunctionDoc

import skmeta
from skmeta._summary import COLUMNS
from skmeta.datasets import load_nielweise2007

REF = json.loads(
    (Path(__file__).parent / "reference" / "binary.json").read_text(encoding="utf-8")
)
TABLES = REF["tables"]
CASES = {case["id"]: case for case in REF["cases"]}

RTOL = 1e-8
ATOL = 1e-12

# metafor 3.8.1 subtracts the CMH continuity correction 1/2 even when the summed
# observed-minus-expected difference |Delta| is below 1/2, so that its corrected
# statistic exceeds the uncorrected one. skmeta, as R's mantelhaen.test, applies
# the correction only when |Delta| >= 1/2: the statistic is then the uncorrected
# one. Only this case
# of the fixture has |Delta| < 1/2; test_cmh_correction_never_increases_statistic
# checks metafor's number against its own formula and ours against ours.
CMH_OVERCORRECTED = {"small_delta_mh_or"}


def _arr(values):
    if not isinstance(values, list):
        values = [values]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _num(value):
    return np.nan if value is None else float(value)


def _counts(name):
    t = TABLES[name]
    return [_arr(t[cell]) for cell in ("ai", "bi", "ci", "di")]


def _kwargs(options):
    """Translate metafor's arguments to skmeta's."""
    translate = {
        "add": "correction",
        "to": "add_to",
        "drop00": "drop00",
        "correct": "correct",
    }
    out = {}
    for key, value in options.items():
        if key == "level":
            out["confidence_level"] = value / 100
        else:
            out[translate[key]] = tuple(value) if isinstance(value, list) else value
    return out


def _run(case):
    counts = _counts(case["tables"])
    kwargs = _kwargs(case["options"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if case["method"] == "PETO":
            return skmeta.peto(*counts, **kwargs)
        return skmeta.mantel_haenszel(*counts, measure=case["measure"], **kwargs)


def _pooled_mask(case):
    """Tables metafor pools: complete, and not dropped by a pooled ``drop00``."""
    a, b, c, d = _counts(case["tables"])
    complete = ~np.isnan(a + b + c + d)
    drop00 = case["options"].get("drop00", [True, False])
    if isinstance(drop00, bool):
        drop00 = [drop00, False]
    double_zero = ((a == 0) & (c == 0)) | ((b == 0) & (d == 0))
    return complete & ~(drop00[1] & double_zero)


def _close(actual, expected, name):
    np.testing.assert_allclose(
        actual, expected, rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=name
    )


FIELDS = {
    "estimate": "beta",
    "se": "se",
    "statistic": "zval",
    "p_value": "pval",
    "ci_lower": "ci_lb",
    "ci_upper": "ci_ub",
    "q": "QE",
    "q_pvalue": "QEp",
    "i2": "I2",
    "h2": "H2",
}
OR_TESTS = {
    "breslow_day": "BD",
    "breslow_day_pvalue": "BDp",
    "tarone": "TA",
    "tarone_pvalue": "TAp",
}


def test_fixture_versions_and_coverage():
    assert REF["versions"]["metafor"] == "3.8.1"
    assert REF["versions"]["metadat"] == "1.2.0"
    # >= 3 real data sets with zero cells and double-zero tables, all measures
    real = {"nielweise2007", "bcg", "collins1985b_ped", "collins1985b_ned", "li2007"}
    for name in real:
        for suffix in ("mh_or", "mh_or_nocorrect", "mh_rr", "mh_rd", "peto"):
            assert f"{name}_{suffix}" in CASES


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_matches_metafor(case_id):
    case = CASES[case_id]
    res = _run(case)
    for ours, theirs in FIELDS.items():
        _close(getattr(res, ours), _num(case[theirs]), f"{case_id}: {ours}")
    assert res.k == case["k"]
    assert res.k_yi == case["k_yi"]
    assert res.q_df == case["k_yi"] - 1
    _close(res.yi, _arr(case["yi_f"]), f"{case_id}: yi")
    _close(res.vi, _arr(case["vi_f"]), f"{case_id}: vi")
    mask = _pooled_mask(case)
    _close(res.weights[mask], _arr(case["weights"]), f"{case_id}: weights")
    assert np.all(res.weights[~mask] == 0)
    if case["measure"] == "RD":
        assert res.exp_estimate is None
    else:
        _close(res.exp_estimate, np.exp(_num(case["beta"])), "exp_estimate")
        _close(res.exp_ci_lower, np.exp(_num(case["ci_lb"])), "exp_ci_lower")
        _close(res.exp_ci_upper, np.exp(_num(case["ci_ub"])), "exp_ci_upper")
    if case["method"] == "MH" and case["measure"] == "OR":
        for ours, theirs in OR_TESTS.items():
            _close(getattr(res, ours), _num(case[theirs]), f"{case_id}: {ours}")
        assert res.k_pos == case["k_pos"]
        if case_id not in CMH_OVERCORRECTED:
            _close(res.cmh, case["MH"], f"{case_id}: cmh")
            _close(res.cmh_pvalue, case["MHp"], f"{case_id}: cmh_pvalue")
    elif case["method"] == "MH":
        assert res.cmh is None and res.tarone is None and res.k_pos is None


def test_cmh_correction_never_increases_statistic():
    case = CASES["small_delta_mh_or"]
    uncorrected = CASES["small_delta_mh_or_nocorrect"]
    a, b, c, d = _counts("small_delta")
    n1, n2, m1, m0 = a + b, c + d, a + c, b + d
    n = n1 + n2
    delta = abs(np.sum(a - n1 * m1 / n))
    var = np.sum(n1 * n2 * m1 * m0 / (n**2 * (n - 1)))
    assert delta < 0.5
    # metafor: (|Delta| - 1/2)^2 / var, larger than the uncorrected Delta^2 / var
    _close(case["MH"], (delta - 0.5) ** 2 / var, "metafor's corrected CMH")
    _close(uncorrected["MH"], delta**2 / var, "metafor's uncorrected CMH")
    assert case["MH"] > uncorrected["MH"]
    res = _run(case)
    _close(res.cmh, delta**2 / var, "CMH without a correction when |Delta| < 1/2")
    _close(res.cmh, uncorrected["MH"], "the uncorrected CMH")
    _close(_run(uncorrected).cmh, uncorrected["MH"], "uncorrected CMH")


def _printed(text):
    """A number as printed, with half a unit of its last digit as tolerance."""
    mantissa, _, exponent = text.partition("e")
    decimals = len(mantissa.partition(".")[2])
    half_unit = 0.5 * 10.0 ** (-decimals + int(exponent or 0))
    return pytest.approx(float(text), rel=0, abs=half_unit)


def test_nielweise2007_worked_example():
    """The worked example of the method notes (metafor 3.8-1), to its printed digits."""
    d = load_nielweise2007()
    data = (d["ai"], None, d["ci"], None)
    sizes = {"n1i": d["n1i"], "n2i": d["n2i"]}
    expected = {  # estimate, SE, Q (df 16), p(Q)
        "OR": ("-1.2087048", "0.22244542", "16.863657", "0.39447"),
        "RR": ("-1.1777719", "0.21816794", "16.388148", "0.42621"),
        "RD": ("-0.024262187", "0.0042243092", "56.251414", "2.21e-6"),
    }
    with pytest.warns(UserWarning, match="No per-study effect size for 1 table"):
        results = {
            m: skmeta.mantel_haenszel(*data, **sizes, measure=m) for m in expected
        }
        results["PETO"] = skmeta.peto(*data, **sizes)
    expected["PETO"] = ("-1.1057449", "0.19158734", "18.734509", "0.28267")
    for key, printed in expected.items():
        res = results[key]
        actual = (res.estimate, res.se, res.q, res.q_pvalue)
        assert actual == tuple(_printed(x) for x in printed), key
        assert (res.k, res.k_yi, res.q_df) == (18, 17, 16)
    odds = results["OR"]
    assert (odds.ci_lower, odds.ci_upper) == (_printed("-1.6447"), _printed("-0.7727"))
    assert odds.exp_estimate == _printed("0.2986")
    assert odds.exp_ci_lower == _printed("0.1931")
    assert odds.exp_ci_upper == _printed("0.4618")
    assert odds.cmh == _printed("32.213561")
    assert odds.cmh_pvalue == _printed("1.38e-8")
    assert odds.breslow_day == _printed("25.687369")
    assert odds.tarone == _printed("25.679489")
    assert odds.tarone_pvalue == _printed("0.058708")
    assert odds.k_pos == 17
    with pytest.warns(UserWarning):
        uncorrected = skmeta.mantel_haenszel(*data, **sizes, correct=False)
    assert uncorrected.cmh == _printed("33.310130")
    # RD with the double-zero table dropped from the pooled computation too
    with pytest.warns(UserWarning):
        rd = skmeta.mantel_haenszel(*data, **sizes, measure="RD", drop00=(True, True))
    assert rd.estimate == _printed("-0.025399")
    assert rd.k == 17


# ------------------------------------------------------------------ by hand
# Two tables (a, b, c, d) = (2, 8, 4, 6) and (3, 7, 5, 5); n1 = n2 = 10, N = 20.
# MH OR:  R_i = a d / N = 12/20, 15/20;  S_i = b c / N = 32/20, 35/20
#         OR = R / S = 1.35 / 3.35 = 27/67
#         P_i = (a + d)/N = 8/20, 8/20;  Q_i = (b + c)/N = 12/20, 12/20
#         Var = sum PR/(2R^2) + sum(PS + QR)/(2RS) + sum QS/(2S^2)
#             = 0.54/3.645 + 2.15/9.045 + 2.01/22.445
#             = 4/27 + 430/1809 + 6/67 = 860/1809
# MH RR:  R = sum a n2/N = 1 + 1.5 = 2.5;  S = sum c n1/N = 2 + 2.5 = 4.5;  RR = 5/9
#         Var = [(100*6/400 - 8/20) + (100*8/400 - 15/20)] / (R S) = 2.35/11.25 = 47/225
# MH RD:  w_i = n1 n2/N = 5, 5;  RD = [(20 - 40) + (30 - 50)]/20 / 10 = -1/5
#         Var = {RD * [(400 - 200)/400 + (500 - 300)/400 + 0]
#                + [(2*6 + 4*8) + (3*5 + 5*7)]/40} / 10^2 = (-0.2 + 2.35)/100 = 43/2000
# CMH:    E_i = n1 m1/N = 3, 4;  a - E = -1, -1;  Delta = -2
#         V_i = n1 n2 m1 m0/(N^2 (N-1)) = 8400/7600, 9600/7600 = 21/19, 24/19
#         corrected (2 - 1/2)^2 / (45/19) = 19/20;  uncorrected 4 / (45/19) = 76/45
# Peto:   log OR = -2 / (45/19) = -38/45, Var = 19/45
#         Q = 19/21 + 19/24 - 76/45 = 19/2520
HAND = (np.array([2.0, 3]), np.array([8.0, 7]), np.array([4.0, 5]), np.array([6.0, 5]))
HAND_EXPECTED = {  # measure: (estimate, variance)
    "OR": (np.log(27 / 67), Fraction(860, 1809)),
    "RR": (np.log(5 / 9), Fraction(47, 225)),
    "RD": (-0.2, Fraction(43, 2000)),
    "PETO": (-38 / 45, Fraction(19, 45)),
}


@pytest.mark.parametrize("measure", sorted(HAND_EXPECTED))
def test_two_tables_by_hand(measure):
    if measure == "PETO":
        res = skmeta.peto(*HAND)
    else:
        res = skmeta.mantel_haenszel(*HAND, measure=measure)
    estimate, variance = HAND_EXPECTED[measure]
    assert res.estimate == pytest.approx(estimate, rel=1e-14)
    assert res.se == pytest.approx(np.sqrt(float(variance)), rel=1e-14)
    z = 1.959963984540054
    assert res.ci_lower == pytest.approx(res.estimate - z * res.se, rel=1e-14)
    assert res.statistic == pytest.approx(res.estimate / res.se, rel=1e-14)
    assert (res.k, res.k_yi, res.q_df) == (2, 2, 1)
    if measure == "PETO":
        assert res.q == pytest.approx(19 / 2520, rel=1e-12)
    else:  # Q of the per-study effect sizes (no zero cells) around the MH estimate
        yi, vi = {
            "OR": skmeta.effect_sizes.log_odds_ratio,
            "RR": skmeta.effect_sizes.log_risk_ratio,
            "RD": skmeta.effect_sizes.risk_difference,
        }[measure](*HAND)
        assert res.q == pytest.approx(np.sum((yi - estimate) ** 2 / vi), rel=1e-14)
    # (the two risk differences are equal, -1/5: Q = 0 and I^2 = 0)
    i2 = max(0.0, 100 * (res.q - 1) / res.q) if res.q > 0 else 0.0
    assert res.i2 == pytest.approx(i2)
    assert res.h2 == pytest.approx(res.q)


def test_two_tables_by_hand_tests_of_the_odds_ratio():
    res = skmeta.mantel_haenszel(*HAND)
    assert res.cmh == pytest.approx(19 / 20, rel=1e-14)
    raw = skmeta.mantel_haenszel(*HAND, correct=False)
    assert raw.cmh == pytest.approx(76 / 45, rel=1e-14)
    # Breslow-Day: expected a-cells from the quadratic E (n2 - m1 + E) =
    # psi (n1 - E)(m1 - E), solved here with numpy.roots (another route than the
    # closed-form root of the implementation)
    psi = 27 / 67
    a, b, c, d = HAND
    n1, n2, m1 = a + b, c + d, a + c
    expected, var = [], []
    for i in range(2):
        roots = np.roots(
            [psi - 1, -(psi * (n1[i] + m1[i]) + n2[i] - m1[i]), psi * n1[i] * m1[i]]
        )
        e = roots[(roots > 0) & (roots < min(n1[i], m1[i]))].item()
        expected.append(e)
        var.append(
            1 / (1 / e + 1 / (n1[i] - e) + 1 / (m1[i] - e) + 1 / (n2[i] - m1[i] + e))
        )
    resid, var = a - np.array(expected), np.array(var)
    bd = np.sum(resid**2 / var)
    assert res.breslow_day == pytest.approx(bd, rel=1e-12)
    assert res.tarone == pytest.approx(bd - resid.sum() ** 2 / var.sum(), rel=1e-10)
    assert res.k_pos == 2


# ------------------------------------------------------------------ properties
tables = st.lists(
    st.tuples(*[st.integers(0, 40)] * 4).filter(lambda t: t[0] + t[1] and t[2] + t[3]),
    min_size=2,
    max_size=8,
)


def _quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return func(*args, **kwargs)


@given(tables)
def test_swapping_groups_negates_the_estimate(rows):
    a, b, c, d = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    try:
        forward = _quiet(skmeta.mantel_haenszel, a, b, c, d)
    except ValueError:  # no informative table
        return
    backward = _quiet(skmeta.mantel_haenszel, c, d, a, b)
    np.testing.assert_allclose(backward.estimate, -forward.estimate, atol=1e-12)
    np.testing.assert_allclose(backward.se, forward.se, rtol=1e-10)
    np.testing.assert_allclose(backward.cmh, forward.cmh, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(backward.q, forward.q, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        backward.breslow_day, forward.breslow_day, rtol=1e-7, atol=1e-9
    )
    peto_fwd = _quiet(skmeta.peto, a, b, c, d)
    peto_bwd = _quiet(skmeta.peto, c, d, a, b)
    np.testing.assert_allclose(peto_bwd.estimate, -peto_fwd.estimate, atol=1e-12)
    np.testing.assert_allclose(peto_bwd.q, peto_fwd.q, rtol=1e-9, atol=1e-12)
    rd_fwd = _quiet(skmeta.mantel_haenszel, a, b, c, d, measure="RD")
    rd_bwd = _quiet(skmeta.mantel_haenszel, c, d, a, b, measure="RD")
    np.testing.assert_allclose(rd_bwd.estimate, -rd_fwd.estimate, atol=1e-12)
    np.testing.assert_allclose(rd_bwd.se, rd_fwd.se, rtol=1e-10)


@given(tables, st.randoms(use_true_random=False))
def test_order_of_tables_does_not_matter(rows, random):
    order = list(range(len(rows)))
    random.shuffle(order)
    a, b, c, d = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    try:
        first = _quiet(skmeta.mantel_haenszel, a, b, c, d)
    except ValueError:
        return
    second = _quiet(skmeta.mantel_haenszel, a[order], b[order], c[order], d[order])
    for name in ("estimate", "se", "q", "cmh", "tarone"):
        np.testing.assert_allclose(
            getattr(second, name), getattr(first, name), rtol=1e-10, atol=1e-12
        )
    np.testing.assert_allclose(second.weights, first.weights[order], rtol=1e-12)


# ------------------------------------------------------------------ result
def test_result_object():
    res = skmeta.mantel_haenszel(*HAND, labels=["A", "B"])
    assert dataclasses.is_dataclass(res)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.estimate = 0.0
    with pytest.raises(ValueError, match="read-only"):
        res.yi[0] = 0.0
    frame = res.summary().to_frame()
    assert list(frame.columns) == COLUMNS
    assert list(frame.index) == ["intercept"]
    assert frame.loc["intercept", "estimate"] == res.estimate
    assert frame.loc["intercept", "ci_upper"] == res.ci_upper
    text = str(res)
    for piece in ("Mantel-Haenszel log odds ratio", "odds ratio", "CMH", "Tarone"):
        assert piece in text
    assert "<table>" in res._repr_html_()
    studies = res.per_study()
    assert list(studies.index) == ["A", "B"]
    assert list(studies.columns) == ["yi", "vi", "ci_lower", "ci_upper", "weight"]
    assert studies["weight"].sum() == pytest.approx(100)
    # weights are the Mantel-Haenszel weights S_i = b c / N: 32/20 and 35/20
    assert studies["weight"].tolist() == pytest.approx([3200 / 67, 3500 / 67])
    assert res.model_label == "MH model"
    rd = skmeta.mantel_haenszel(*HAND, measure="RD")
    assert rd.exp_estimate is None and "odds ratio" not in str(rd)
    assert "CMH" not in str(rd)
    peto = skmeta.peto(*HAND)
    assert peto.model_label == "Peto model"
    assert "Peto log odds ratio" in str(peto)
    assert peto.exp_estimate == pytest.approx(np.exp(-38 / 45))


def test_group_sizes_instead_of_non_events():
    a, b, c, d = HAND
    by_cells = skmeta.mantel_haenszel(a, b, c, d, measure="RR")
    by_sizes = skmeta.mantel_haenszel(a, ci=c, n1i=a + b, n2i=c + d, measure="RR")
    assert by_sizes.estimate == by_cells.estimate
    assert by_sizes.se == by_cells.se


def test_confidence_level():
    res = skmeta.mantel_haenszel(*HAND, confidence_level=0.9)
    assert res.confidence_level == 0.9
    half = 1.6448536269514722 * res.se
    assert (res.ci_lower, res.ci_upper) == pytest.approx(
        (res.estimate - half, res.estimate + half), rel=1e-14
    )


def test_nielweise2007_loader_matches_metadat():
    d = load_nielweise2007()
    a, b, c, dd = _counts("nielweise2007")
    np.testing.assert_array_equal(d["ai"], a)
    np.testing.assert_array_equal(d["n1i"] - d["ai"], b)
    np.testing.assert_array_equal(d["ci"], c)
    np.testing.assert_array_equal(d["n2i"] - d["ci"], dd)
    assert d.loc[14, ["author", "ai", "ci"]].tolist() == ["Yucel", 0, 0]


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ai": [-1, 2]}, "ai must be non-negative"),
        ({"di": [1, 2, 3]}, "same length"),
        ({"measure": "HR"}, "measure must be one of"),
        ({"measure": "or"}, "measure must be one of"),
        ({"correct": "yes"}, "correct must be a bool"),
        ({"confidence_level": 95}, "confidence_level"),
        ({"correction": -0.5}, "correction must be"),
        ({"correction": (0.5, 0.5, 0.5)}, "correction must be one value or a pair"),
        ({"add_to": ("only0", "sometimes")}, "add_to must be one of"),
        ({"drop00": (True, "no")}, "drop00 must be a bool"),
        ({"labels": ["A"]}, "labels has 1 entries but there are 2 tables"),
        ({"ai": [0, np.inf]}, "ai must be finite"),
        ({"bi": [0, 3], "ai": [0, 2]}, "group 1 size"),
        ({"ai": ["a", "b"]}, "ai must be numeric"),
    ],
)
def test_bad_input(kwargs, match):
    args = {"ai": [2, 3], "bi": [8, 7], "ci": [4, 5], "di": [6, 5]} | kwargs
    with pytest.raises(ValueError, match=match):
        skmeta.mantel_haenszel(**args)
    if "measure" not in kwargs and "correct" not in kwargs:
        with pytest.raises(ValueError, match=match):
            skmeta.peto(**args)


def test_uninformative_tables_are_an_error():
    # every table double-zero: nothing to pool (metafor: NA everywhere)
    for func in (skmeta.mantel_haenszel, skmeta.peto):
        with pytest.raises(ValueError, match="no table has both events and non-events"):
            func([0, 0], [9, 9], [0, 0], [8, 7])
        with pytest.raises(ValueError, match="no table has both events and non-events"):
            func([9, 9], [0, 0], [8, 7], [0, 0])
        with pytest.raises(ValueError, match="every table has a missing"):
            func([np.nan], [9], [1], [8])


def test_missing_counts_are_left_out_with_a_warning():
    a, b, c, d = (np.append(x, np.nan) for x in HAND)
    with pytest.warns(UserWarning, match=r"1 table\(s\) with missing counts left out"):
        res = skmeta.mantel_haenszel(a, b, c, d)
    ref = skmeta.mantel_haenszel(*HAND)
    assert res.estimate == ref.estimate and res.k == 2
    assert np.isnan(res.yi[2]) and res.weights[2] == 0
    assert len(res.labels) == 3


def test_single_table_warns_and_follows_metafor_convention():
    case = CASES["single_table_mh_or"]
    with pytest.warns(UserWarning) as record:
        res = skmeta.mantel_haenszel(*_counts("single_table"))
    messages = " ".join(str(w.message) for w in record)
    assert "heterogeneity cannot be assessed" in messages
    assert "Breslow-Day and Tarone tests have no degrees of freedom" in messages
    assert (res.q, res.q_pvalue, res.i2, res.h2) == (0.0, 1.0, 0.0, 1.0)
    assert np.isnan(res.tarone_pvalue) and case["TAp"] is None
    assert res.estimate == pytest.approx(np.log(8 / 18))


def test_undefined_odds_ratio_warns_and_is_nan():
    counts = _counts("no_events_group1")
    with pytest.warns(UserWarning, match="odds ratio is undefined"):
        res = skmeta.mantel_haenszel(*counts)
    assert np.isnan(res.estimate) and np.isnan(res.q) and np.isnan(res.tarone)
    assert res.cmh == pytest.approx(CASES["no_events_group1_mh_or"]["MH"], rel=RTOL)
    with pytest.warns(UserWarning, match="risk ratio is undefined"):
        rr = skmeta.mantel_haenszel(*counts, measure="RR")
    assert np.isnan(rr.estimate) and np.isnan(rr.exp_estimate)
    # RD and Peto stay defined (checked against metafor in test_matches_metafor)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(skmeta.mantel_haenszel(*counts, measure="RD").estimate)
        assert np.isfinite(skmeta.peto(*counts).estimate)


def test_no_per_study_effect_size_warns():
    # no correction: every table has a zero cell, so no log odds ratio exists
    counts = ([0, 1], [5, 0], [2, 3], [4, 5])
    with pytest.warns(UserWarning) as record:
        res = skmeta.mantel_haenszel(*counts, correction=0)
    assert any("Q, I^2 and H^2 are NaN" in str(w.message) for w in record)
    assert res.k_yi == 0 and np.isnan(res.q)
    assert np.isfinite(res.estimate)


@pytest.mark.parametrize("func", [skmeta.mantel_haenszel, skmeta.peto])
def test_docstrings_are_filled_and_state_the_signature_defaults(func):
    # the parameter descriptions and the zero-cell notes are shared fragments
    assert "%(" not in func.__doc__
    doc = FunctionDoc(func)
    assert "\n".join(doc["Notes"]).startswith("Zero cells are handled in two stages")
    parameters = inspect.signature(func).parameters
    documented = [
        name for entry in doc["Parameters"] for name in entry.name.split(", ")
    ]
    assert documented == list(parameters)
    for entry in doc["Parameters"]:
        _, stated, default = entry.type.partition("default=")
        for name in entry.name.split(", ") if stated else ():
            expected = parameters[name].default
            expected = f'"{expected}"' if isinstance(expected, str) else str(expected)
            assert default == expected, name
