"""Many meta-analyses at once: ``skmeta.distributed.fit_outputs`` and its engine.

The bar: for every tau^2 method and every inference, output ``j`` of the
multi-output fit equals ``RandomEffectsMeta`` fitted to column ``j`` on its
complete rows (tau^2 and its SE, coefficients and their table, Q and its
p-value, I^2, H^2, the moderator test and the log-likelihood) to 1e-8 relative;
outputs without more studies than parameters (or rank-deficient on their
studies) are NaN, with one warning that counts them.  The engine follows the
single fit's algorithm step by step (same start, steps, stopping rules and
boundary check), so the two agree to rounding (~1e-13) and the tolerance 1e-8
needs no curvature argument: no example below has a likelihood flat enough for
rounding to move the optimum by 1e-8.  Absolute tolerances apply to quantities
that are 0 in exact arithmetic (tau^2 on the boundary, I^2 there, a coefficient
at 0) and are 1e-8 of the natural scale of the quantity (the output's variance
scale for tau^2, the standard error for a coefficient).

metafor: the multi-output fit of two copies of each reference data set equals
metafor's ``rma`` (run to convergence) on that data set, for all of its cases in
``tests/reference/rma_uni.json`` (R 4.2.2, metafor 3.8.1).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from skmeta import RandomEffectsMeta
from skmeta._engine import _multioutput as mo
from skmeta._engine import _univariate as uni
from skmeta._engine._inference import coefficient_table
from skmeta.distributed import OutputFits, fit_outputs

RTOL = 1e-8
METHODS = ("reml", "ml", "dl", "pm", "pmm", "he", "hs", "hsk", "sj", "eb", "genq", "fe")
INFERENCES = ("z", "t", "knapp-hartung", "knapp-hartung-adhoc")
#: methods that weight by 1/v (need every v > 0)
NEEDS_POSITIVE = ("dl", "hs", "hsk", "fe")


def _estimator(method, inference="z", **params):
    if method == "genq":
        params.setdefault("genq_weights", "inverse_var")
    return RandomEffectsMeta(method=method, inference=inference, **params)


def _column_fit(estimator, X, y, v):
    """The single fit of one output on its complete rows, or None if impossible."""
    keep = ~(np.isnan(y) | np.isnan(v))
    if X is not None:
        keep &= ~np.isnan(X).any(axis=1)
    if not keep.any():
        return None
    Xj = None if X is None else X[keep]
    est = clone(estimator).set_params(missing="raise")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(Xj, y[keep], sample_var=v[keep])
            est._training, est._training_v = (Xj, y[keep]), v[keep]
            return est
    except ValueError as exc:
        if "Too few studies" in str(exc) or "rank-deficient" in str(exc):
            return None
        raise


def _fit_all(estimator, X, Y, V, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fit_outputs(estimator, X, Y, sample_var=V, **kwargs)
    return res, caught


def _variance_scale(y, v):
    keep = ~(np.isnan(y) | np.isnan(v))
    y, v = y[keep], v[keep]
    scale = max(float(np.var(y)), float(v.mean())) if y.size else 1.0
    return scale if scale > 0 else 1.0


def assert_matches_columns(res, estimator, X, Y, V, caught=None):
    """Every output of ``res`` equals the single fit of its column.

    An output flagged as not converged (its likelihood terms lost their digits
    to an extreme weight; a ConvergenceWarning, checked when ``caught`` is
    given) is exempt, as is a single fit that crashes on it.
    """
    assert isinstance(res, OutputFits)
    m = Y.shape[1]
    assert res.tau2.shape == (m,)
    if caught is not None and not np.all(res.converged | np.isnan(res.tau2)):
        assert any(w.category is ConvergenceWarning for w in caught)
    for j in range(m):
        keep = ~(np.isnan(Y[:, j]) | np.isnan(V[:, j]))
        if X is not None:
            keep &= ~np.isnan(X).any(axis=1)
        assert res.n_studies[j] == keep.sum(), j
        try:
            est = _column_fit(estimator, X, Y[:, j], V[:, j])
        except ZeroDivisionError:  # the single fit's own failure at extreme weights
            continue
        if est is None:
            assert np.isnan(res.tau2[j]) and np.all(np.isnan(res.estimate[j])), j
            assert np.isnan(res.loglik[j]) and not res.converged[j], j
            continue
        if not res.converged[j]:
            continue
        scale = _variance_scale(Y[:, j], V[:, j])
        v = V[keep, j]
        # the fixed-effect weights 1/v (the floor for v = 0) spread the most
        floor = 1e-12 * scale if np.any(v == 0) else 0.0
        spread = (v.max() + floor) / (v.min() + floor)
        _assert_output(res, j, est, scale, spread=spread, floor=floor)


def _at_tau2(est, tau2):
    """The single fit's model with tau^2 fixed (a tau^2 reported as 0 at the
    floor of zero variances is fitted there).  method="fe" with a fixed tau^2
    is the same model and keeps summary()'s pseudo-R^2 from refitting."""
    return RandomEffectsMeta(
        method="fe",
        inference=est.inference,
        fit_intercept=est.fit_intercept,
        tau2=float(tau2),
    )


#: Log-likelihoods of the two fits at a flat optimum agree to this share of
#: (1 + |loglik|); tau^2 then to this many standard errors times sqrt(2 delta)
#: (a quadratic criterion drops by delta at sqrt(2 delta) standard errors).
LOGLIK_RTOL = 1e-9
CURVATURE_FACTOR = 10.0


#: Quantities computed from X'WX^-1 and the traces of P (standard errors, tests,
#: I^2) carry a forward error of a few hundred ulps times the condition number of
#: X'WX, at most the spread of the total variances (largest over smallest) times
#: that of X'X: this many ulps times the spread (1e-8 or less for data whose
#: variances span less than 500).
WEIGHT_ULPS = 1e5
SQUARED_WEIGHT_ULPS = 1e2
WEIGHT_SENSITIVE = (
    "estimate",
    "tau2_se",
    "se",
    "statistic",
    "p_value",
    "ci_lower",
    "ci_upper",
    "i2",
    "h2",
    "qm",
    "qm_pvalue",
)


def _assert_output(res, j, est, scale, skip=(), spread=1.0, floor=0.0):
    """Output ``j`` equals the single fit ``est``; ``skip``: names not compared.

    Where tau^2 differs by more than 1e-8 in a likelihood fit, the optimum must
    be flat: equal log-likelihoods (LOGLIK_RTOL) and a tau^2 within the
    curvature's tolerance; the other quantities, functions of tau^2, are then
    compared with the single fit at our tau^2.
    """
    eps = np.finfo(float).eps
    weighted_rtol = max(RTOL, WEIGHT_ULPS * eps * spread)
    # tr(P^2) (the standard errors of tau^2) is quadratic in the weights
    squared_rtol = max(RTOL, SQUARED_WEIGHT_ULPS * eps * spread**2)
    ref_tau2 = est.tau2_
    gap = abs(res.tau2[j] - ref_tau2)
    near = gap <= RTOL * (scale + abs(ref_tau2))
    if "tau2" not in skip and near and gap > RTOL * abs(ref_tau2):
        # equal on the scale of the data, but tau^2 is tiny (at the floor of zero
        # variances, where the rest changes fast with it): compare the rest at ours
        skip = (*skip, "tau2_se", "loglik", "i2", "h2")
        floor_fit = _column_fit(
            _at_tau2(est, max(float(res.tau2[j]), floor)),
            est._training[0],
            est._training[1],
            est._training_v,
        )
        est = floor_fit if floor_fit is not None else est
    if "tau2" not in skip and not near and est.method in ("reml", "ml"):
        delta = LOGLIK_RTOL * (1.0 + abs(est.loglik_))
        # ours is the maximum: at least as high as the single fit's criterion
        assert res.loglik[j] >= est.loglik_ - delta, (j, res.loglik[j], est.loglik_)
        if res.loglik[j] <= est.loglik_ + delta:  # the same maximum, flat
            allowed = CURVATURE_FACTOR * est.tau2_se_ * np.sqrt(2.0 * delta)
            assert abs(res.tau2[j] - ref_tau2) <= allowed, (j, res.tau2[j], ref_tau2)
        # else the single fit stopped short of the maximum (its path at extreme
        # weights): ours is higher. Either way, the rest is a function of tau^2.
        t = float(res.tau2[j])
        typical = est._typical_var
        i2 = 100.0 * t / (typical + t) if typical + t > 0 else 0.0
        if weighted_rtol < 1.0:
            np.testing.assert_allclose(
                res.i2[j],
                np.nan if np.isnan(est.i2_) else i2,
                rtol=weighted_rtol,
                atol=RTOL,
            )
        skip = (*skip, "tau2", "tau2_se", "loglik", "i2", "h2")
        at_ours = _at_tau2(est, max(t, floor))
        est = at_ours.fit(*est._training, sample_var=est._training_v)

    def close(name, ours, ref, atol=0.0):
        if name in skip or ("coefficients" in skip and name in COEFFICIENT_TABLE):
            return
        rtol = weighted_rtol if name in WEIGHT_SENSITIVE else RTOL
        rtol = squared_rtol if name == "tau2_se" else rtol
        if rtol >= 1.0:  # no digit is left in either fit
            return
        ours = np.atleast_1d(np.asarray(ours, dtype=float))
        ref = np.atleast_1d(np.asarray(ref, dtype=float))
        same = (ours == ref) | (np.isnan(ours) & np.isnan(ref))
        with np.errstate(invalid="ignore"):  # inf - inf where both are inf
            near = np.abs(ours - ref) <= atol + rtol * np.abs(ref)
        assert np.all(same | near), f"{name}[{j}]: ours {ours} vs single fit {ref}"

    # the single fit's summary table (without summary(), whose pseudo-R^2 refits)
    table = coefficient_table(est._beta, est.cov_params_, est._coef_dof(), 0.95)
    table = pd.DataFrame(table._asdict())
    se = table["se"].to_numpy()
    close("tau2", res.tau2[j], est.tau2_, atol=RTOL * scale)
    close("tau2_se", res.tau2_se[j], est.tau2_se_, atol=RTOL * scale)
    close("estimate", res.estimate[j], table["estimate"], atol=RTOL * se)
    close("se", res.se[j], se)
    close("statistic", res.statistic[j], table["statistic"], atol=RTOL)
    close("p_value", res.p_value[j], table["p_value"], atol=RTOL)
    close("ci_lower", res.ci_lower[j], table["ci_lower"], atol=RTOL * se)
    close("ci_upper", res.ci_upper[j], table["ci_upper"], atol=RTOL * se)
    close("q", res.q[j], est.q_, atol=RTOL)
    close("q_pvalue", res.q_pvalue[j], est.q_pvalue_, atol=1e-14)
    close("i2", res.i2[j], est.i2_, atol=RTOL)
    close("h2", res.h2[j], est.h2_, atol=RTOL)  # Q / df for a common-effect fit
    close("qm", res.qm[j], est.qm_, atol=RTOL)
    close("qm_pvalue", res.qm_pvalue[j], est.qm_pvalue_, atol=1e-14)
    if not (res.loglik[j] == np.inf and est.method == "ml"):
        # (inf: the ML likelihood is unbounded as tau^2 -> 0, which the single
        # fit reports only when its path reaches the floor; warned about)
        close("loglik", res.loglik[j], est.loglik_, atol=RTOL)
    if "tau2" not in skip:
        assert bool(res.converged[j]) == bool(est.converged_), j


COEFFICIENT_TABLE = ("estimate", "se", "statistic", "p_value", "ci_lower", "ci_upper")


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------


def _data(seed, k, m, n_mods, missing=0.0, zero_v=0.0, spread=0.0, scales=False):
    """Random outputs over shared studies; heterogeneity from 0 to large."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(k, n_mods)) if n_mods else None
    tau2 = rng.choice([0.0, 0.01, 0.1, 1.0], size=m)
    V = rng.uniform(0.01, 0.5, size=(k, m)) * 10.0 ** rng.uniform(
        -spread, spread, (k, m)
    )
    mean = 0.2 + (X @ rng.normal(size=(n_mods, m)) if n_mods else 0.0)
    Y = mean + rng.normal(size=(k, m)) * np.sqrt(V + tau2)
    if scales:  # huge and small scales per output: y * c, v * c^2
        c = 10.0 ** rng.uniform(-6, 6, size=m)
        Y, V = Y * c, V * c**2
    if zero_v:
        V[rng.random((k, m)) < zero_v] = 0.0
    if missing:
        Y[rng.random((k, m)) < missing] = np.nan
    return X, Y, V


# --------------------------------------------------------------------------------------
# the bar: every method and inference against the column-by-column fits
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("inference", INFERENCES)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_equals_the_column_fits(method, inference):
    """Moderators, missing studies per output (some outputs with k_j <= p)."""
    X, Y, V = _data(7, k=10, m=30, n_mods=2, missing=0.25)
    Y[:, 0] = np.nan  # no study
    Y[3:, 1] = np.nan  # 3 studies for 3 parameters
    est = _estimator(method, inference, missing="drop")
    res, caught = _fit_all(est, X, Y, V)
    assert_matches_columns(res, est, X, Y, V)
    not_estimable = int(np.isnan(res.tau2).sum())
    assert not_estimable >= 2
    counted = [w for w in caught if "no more studies than" in str(w.message)]
    assert len(counted) == 1 and f"{not_estimable} of 30" in str(counted[0].message)


@pytest.mark.parametrize("method", METHODS)
def test_intercept_only_with_scales_per_output(method):
    """Outputs whose y and v are scaled by 1e-6 .. 1e6 (equivariant tolerances)."""
    X, Y, V = _data(11, k=15, m=25, n_mods=0, scales=True, missing=0.1)
    est = _estimator(method, missing="drop")
    res, _ = _fit_all(est, X, Y, V)
    assert_matches_columns(res, est, X, Y, V)


@pytest.mark.parametrize("method", METHODS)
def test_boundary_and_exact_fits(method):
    """tau^2 = 0 on the boundary; a constant y (Q = 0, exact fit)."""
    rng = np.random.default_rng(3)
    k, m = 12, 8
    V = rng.uniform(0.05, 0.2, size=(k, m))
    Y = 0.5 + 0.05 * rng.normal(size=(k, m)) * np.sqrt(V)  # far less than sqrt(v)
    Y[:, 0] = 0.5  # constant
    Y[:, 1] = np.linspace(-1, 1, k)  # heterogeneous
    for inference in ("z", "knapp-hartung"):
        est = _estimator(method, inference)
        res, caught = _fit_all(est, None, Y, V)
        assert_matches_columns(res, est, None, Y, V)
        if method not in ("fe", "sj"):  # SJ is positive unless y is constant
            assert np.all(res.tau2[[0, *range(2, m)]] == 0.0)
        assert res.tau2[0] == 0.0
        if inference == "knapp-hartung":  # the constant column is an exact fit
            assert any("fitted exactly" in str(w.message) for w in caught)


def _extreme_data(method, extreme):
    """Outputs 0, 2, 4, ... hold one v at 1e-12 or 1e6 times the median, or 0."""
    X, Y, V = _data(5, k=14, m=12, n_mods=1)
    factor = {"tiny": 1e-12, "huge": 1e6, "zero": 0.0}[extreme]
    V[2, ::2] = factor * np.median(V[:, ::2], axis=0)
    est = _estimator(method, "t")
    if method == "genq" and extreme == "zero":
        est.set_params(genq_weights="unit")
    return est, X, Y, V


@pytest.mark.parametrize("method", METHODS)
def test_one_huge_sampling_variance(method):
    est, X, Y, V = _extreme_data(method, "huge")
    res, caught = _fit_all(est, X, Y, V)
    assert_matches_columns(res, est, X, Y, V, caught)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("extreme", ["tiny", "zero"])
def test_one_tiny_or_zero_sampling_variance(method, extreme):
    """One v at 1e-12 of the median (or 0) in the even outputs.

    The odd outputs are unaffected (1e-8); in the even ones, the quantities
    computed through X'WX^-1 or tr(P) are compared with the tolerance of their
    conditioning (the spread of the weights, 1e12: they lose every digit in
    both fits), the likelihood estimates are the maximum (at least the single
    fit's criterion) and outputs flagged as not converged are warned about.
    DL and GENQ estimate tau^2 from tr(P) itself: for them the coefficient
    table is compared with the single fit at our tau^2.
    """
    if extreme == "zero" and method in NEEDS_POSITIVE:
        pytest.skip("weights 1/v: zero variances are an error (tested below)")
    est, X, Y, V = _extreme_data(method, extreme)
    res, caught = _fit_all(est, X, Y, V)
    if method not in ("dl", "genq"):
        assert_matches_columns(res, est, X, Y, V, caught)
        return
    for j in range(12):
        single = _column_fit(est, X, Y[:, j], V[:, j])
        np.testing.assert_allclose(res.q[j], single.q_, rtol=RTOL)
        if j % 2:
            _assert_output(res, j, single, _variance_scale(Y[:, j], V[:, j]))
            continue
        scale = _variance_scale(Y[:, j], V[:, j])
        floor = 1e-12 * scale if np.any(V[:, j] == 0) else 0.0
        at_ours = _at_tau2(est, max(res.tau2[j], floor))
        single = _column_fit(at_ours, X, Y[:, j], V[:, j])
        spread = (V[:, j].max() + floor) / (V[:, j].min() + floor)
        skip = ("tau2", "tau2_se", "loglik", "q", "i2", "h2")
        _assert_output(res, j, single, scale, skip=skip, spread=spread)


def test_tiny_sampling_variance_heterogeneity_shares_are_within_bounds():
    """One sampling variance at 1e-12 of the median: tr(P) = sum w - tr(A^-1
    X'W^2X) would cancel every digit; the dominant study is eliminated exactly,
    so I^2 stays below 100."""
    est, X, Y, V = _extreme_data("reml", "tiny")
    res, _ = _fit_all(est, X, Y, V)
    assert np.all(res.i2[::2] <= 100.0)


def test_zero_variances_with_an_exact_fit_report_tau2_zero():
    """Zero sampling variances and y fitted exactly: the likelihood is unbounded
    at tau^2 -> 0; tau^2 is reported as 0 with a warning (as the single fit)."""
    k, m = 6, 3
    Y = np.tile(np.linspace(0.0, 1.0, k)[:, None], (1, m))
    X = np.linspace(0.0, 1.0, k)[:, None]
    V = np.zeros((k, m))
    V[:, 2] = 0.1
    for method in ("reml", "ml"):
        est = _estimator(method)
        res, caught = _fit_all(est, X, Y, V)
        assert_matches_columns(res, est, X, Y, V)
        assert res.tau2[0] == res.tau2[1] == 0.0
        assert any("increases without bound" in str(w.message) for w in caught)


def test_rank_deficient_on_the_studies_of_an_output_is_nan():
    """A binary moderator constant among an output's studies: NaN, counted."""
    X = np.array([[0.0], [0.0], [0.0], [1.0], [1.0], [1.0], [0.0], [1.0]])
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(8, 3))
    V = np.full((8, 3), 0.1)
    Y[[3, 4, 5, 7], 1] = np.nan  # only x = 0 left
    est = RandomEffectsMeta(missing="drop")
    res, caught = _fit_all(est, X, Y, V)
    assert_matches_columns(res, est, X, Y, V)
    assert np.isnan(res.tau2[1]) and not np.isnan(res.tau2[[0, 2]]).any()
    assert sum("no more studies than" in str(w.message) for w in caught) == 1


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(2, 25),
    m=st.integers(1, 12),
    n_mods=st.integers(0, 2),
    method=st.sampled_from(METHODS),
    inference=st.sampled_from(INFERENCES),
    missing=st.sampled_from([0.0, 0.2, 0.5]),
    zero_v=st.sampled_from([0.0, 0.1]),
    spread=st.sampled_from([0.0, 3.0]),
    scales=st.booleans(),
    intercept=st.booleans(),
)
def test_random_shapes_and_methods_equal_the_column_fits(
    seed, k, m, n_mods, method, inference, missing, zero_v, spread, scales, intercept
):
    if method in NEEDS_POSITIVE:
        zero_v = 0.0
    if not intercept and n_mods == 0:
        intercept = True
    X, Y, V = _data(seed, k, m, n_mods, missing, zero_v, spread, scales)
    est = _estimator(method, inference, missing="drop", fit_intercept=intercept)
    if method == "genq" and zero_v:
        est.set_params(genq_weights="unit")
    p = n_mods + int(intercept)
    if k <= p:
        with pytest.raises(ValueError, match="Too few studies"):
            fit_outputs(est, X, Y, sample_var=V)
        return
    res, caught = _fit_all(est, X, Y, V)
    assert_matches_columns(res, est, X, Y, V, caught)


@pytest.mark.parametrize("method", ["reml", "ml", "pm", "dl"])
def test_fixed_tau2_and_missing_rows_of_x(method):
    """A fixed tau^2 (no estimate); NaN in X drops the study from every output."""
    X, Y, V = _data(2, k=12, m=6, n_mods=1, missing=0.1)
    X[4, 0] = np.nan
    est = _estimator(method, "knapp-hartung", tau2=0.05, missing="drop")
    res, _ = _fit_all(est, X, Y, V)
    assert_matches_columns(res, est, X, Y, V)
    assert np.all(np.isnan(res.tau2_se))


def test_genq_weights_forms():
    X, Y, V = _data(4, k=10, m=5, n_mods=1)
    a = np.linspace(1.0, 2.0, 10)
    for weights in ("unit", "inverse_var", a, lambda v: 1.0 / np.sqrt(v)):
        est = RandomEffectsMeta(method="genq", genq_weights=weights)
        res, _ = _fit_all(est, X, Y, V)
        assert_matches_columns(res, est, X, Y, V)


def test_one_output_and_one_dimensional_y_equal_the_single_fit():
    """m = 1 is the special case: 1-D y and v give one output."""
    X, Y, V = _data(9, k=13, m=1, n_mods=2)
    est = RandomEffectsMeta(inference="knapp-hartung")
    res, _ = _fit_all(est, X, Y[:, 0], V[:, 0])
    assert res.estimate.shape == (1, 3)
    assert_matches_columns(res, est, X, Y, V)


def test_shared_sampling_variances_for_all_outputs():
    """A 1-D sample_var (one per study) applies to every output."""
    _, Y, V = _data(12, k=9, m=7, n_mods=0)
    v = V[:, 0]
    res, _ = _fit_all(RandomEffectsMeta(), None, Y, v)
    expected, _ = _fit_all(RandomEffectsMeta(), None, Y, np.tile(v[:, None], (1, 7)))
    np.testing.assert_array_equal(res.tau2, expected.tau2)
    np.testing.assert_array_equal(res.estimate, expected.estimate)


def test_chunks_and_passes_do_not_change_the_results(monkeypatch):
    """Outputs split into many evaluation chunks and passes: the same numbers."""
    X, Y, V = _data(8, k=10, m=200, n_mods=1, missing=0.2)
    est = RandomEffectsMeta(missing="drop")
    whole, _ = _fit_all(est, X, Y, V)
    monkeypatch.setattr(mo, "CHUNK_BYTES", 8 * 10 * 16)  # 16 outputs per chunk
    monkeypatch.setattr(mo, "PASS_BYTES", 8 * 10 * 50)  # 50 outputs per pass
    split, _ = _fit_all(est, X, Y, V)
    for name in ("tau2", "tau2_se", "estimate", "se", "q", "loglik"):
        np.testing.assert_allclose(
            getattr(split, name), getattr(whole, name), rtol=1e-13, err_msg=name
        )


# --------------------------------------------------------------------------------------
# metafor
# --------------------------------------------------------------------------------------

REF = json.loads(
    (Path(__file__).parent / "reference" / "rma_uni.json").read_text(encoding="utf-8")
)
_METHOD = {
    "REML": "reml",
    "ML": "ml",
    "DL": "dl",
    "PM": "pm",
    "PMM": "pmm",
    "HE": "he",
    "HS": "hs",
    "HSk": "hsk",
    "SJ": "sj",
    "EB": "eb",
    "GENQ": "genq",
    "EE": "fe",
}
_TEST = {"z": "z", "t": "t", "knha": "knapp-hartung", "adhoc": "knapp-hartung-adhoc"}


def _values(values):
    values = values if isinstance(values, list) else [values]
    return np.array([np.nan if x is None else x for x in values], dtype=float)


@pytest.mark.parametrize("design", sorted(REF["designs"]))
def test_two_copies_of_each_reference_data_set_match_metafor(design):
    """Every metafor case (method x test x fixed tau^2) of the design, to 1e-6
    (metafor run to convergence; 1e-9 absolute for quantities at 0)."""
    d = REF["designs"][design]
    y, v = _values(d["yi"]), _values(d["vi"])
    X = (
        np.column_stack([_values(d["X"][n]) for n in d["X_names"]])
        if d["X_names"]
        else None
    )
    Y, V = np.column_stack([y, y]), np.column_stack([v, v])
    cases = [c for c in REF["cases"] if c["design"] == design]
    assert cases
    for case in cases:
        params = {"method": _METHOD[case["method"]], "inference": _TEST[case["test"]]}
        params["tau2"] = case["tau2_fixed"]
        if case["method"] == "GENQ":
            label = case["weights_label"]
            named = label in ("inverse_var", "unit")
            params["genq_weights"] = label if named else _values(case["weights"])
        res, _ = _fit_all(RandomEffectsMeta(**params), X, Y, V)
        fit = case["fit"]
        # metafor fits GENQ coefficients with the GENQ weights; ours (as the
        # estimator) use 1/(v + tau^2): their reference is fit_re_weights
        coef = case["fit_re_weights"] if case["method"] == "GENQ" else fit
        for j in range(2):
            checks = [
                ("tau2", res.tau2[j], fit["tau2"]),
                ("estimate", res.estimate[j], _values(coef["beta"])),
                ("se", res.se[j], _values(coef["se"])),
                ("statistic", res.statistic[j], _values(coef["zval"])),
                ("p_value", res.p_value[j], _values(coef["pval"])),
                ("ci_lower", res.ci_lower[j], _values(coef["ci_lb"])),
                ("ci_upper", res.ci_upper[j], _values(coef["ci_ub"])),
                ("q", res.q[j], fit["QE"]),
                ("i2", res.i2[j], fit["I2"]),
                ("h2", res.h2[j], fit["H2"]),
                ("loglik", res.loglik[j], coef["logLik"]),
            ]
            if case["method"] != "EE" and case["tau2_fixed"] is None:
                checks.append(("tau2_se", res.tau2_se[j], fit["se_tau2"]))
            if d["X_names"]:
                checks.append(("qm", res.qm[j], coef["QM"]))
            for name, ours, ref in checks:
                np.testing.assert_allclose(
                    ours, ref, rtol=1e-6, atol=1e-9, err_msg=f"{case['id']} {name}"
                )
            np.testing.assert_allclose(
                res.q_pvalue[j], fit["QEp"], rtol=1e-6, err_msg=f"{case['id']} QEp"
            )


# --------------------------------------------------------------------------------------
# a case by hand
# --------------------------------------------------------------------------------------


def test_dersimonian_laird_by_hand():
    """DL from its formula: tau^2 = max(0, (Q - (k - 1)) / (sum w - sum w^2 /
    sum w)), w = 1/v; the pooled effect with weights 1/(v + tau^2)."""
    y = np.array([[0.1, 1.0], [0.3, -1.0], [0.35, 0.5], [0.65, 2.0], [0.45, 0.0]])
    v = np.array([[0.01, 0.2], [0.02, 0.2], [0.015, 0.3], [0.03, 0.1], [0.02, 0.4]])
    res, _ = _fit_all(RandomEffectsMeta(method="dl"), None, y, v)
    for j in range(2):
        w = 1.0 / v[:, j]
        mu_fe = w @ y[:, j] / w.sum()
        q = w @ (y[:, j] - mu_fe) ** 2
        tau2 = max(0.0, (q - 4) / (w.sum() - (w @ w) / w.sum()))
        w_re = 1.0 / (v[:, j] + tau2)
        mu = w_re @ y[:, j] / w_re.sum()
        assert res.q[j] == pytest.approx(q, rel=1e-13)
        assert res.tau2[j] == pytest.approx(tau2, rel=1e-13)
        assert res.estimate[j, 0] == pytest.approx(mu, rel=1e-13)
        assert res.se[j, 0] == pytest.approx(1.0 / np.sqrt(w_re.sum()), rel=1e-13)
        assert res.q_pvalue[j] == pytest.approx(stats.chi2.sf(q, 4), rel=1e-12)


# --------------------------------------------------------------------------------------
# multiple testing, results object
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fdr", ["bh", "by"])
def test_q_values_are_scipys_false_discovery_control(fdr):
    X, Y, V = _data(13, k=8, m=300, n_mods=1, missing=0.4)
    res, _ = _fit_all(RandomEffectsMeta(missing="drop"), X, Y, V, fdr=fdr)
    assert res.q_value.shape == res.p_value.shape
    for j in range(2):
        p = res.p_value[:, j]
        ok = ~np.isnan(p)
        assert (~ok).any()  # some outputs are not estimable: no q-value
        np.testing.assert_array_equal(np.isnan(res.q_value[:, j]), ~ok)
        expected = stats.false_discovery_control(p[ok], method=fdr)
        np.testing.assert_allclose(res.q_value[ok, j], expected, rtol=1e-15)


def test_to_frame_and_printout():
    X, Y, V = _data(1, k=10, m=40, n_mods=1, missing=0.05)
    frame_res, _ = _fit_all(
        RandomEffectsMeta(missing="drop"),
        pd.DataFrame(X, columns=["dose"]),
        Y,
        V,
        fdr="bh",
    )
    assert frame_res.terms == ("intercept", "dose")
    frame = frame_res.to_frame()
    assert frame.index.name == "output" and len(frame) == 40
    expected = ["n_studies", "tau2", "tau2_se"]
    for term in ("intercept", "dose"):
        expected += [
            f"{c}_{term}"
            for c in (
                "estimate",
                "se",
                "statistic",
                "p_value",
                "ci_lower",
                "ci_upper",
                "q_value",
            )
        ]
    expected += ["q", "q_pvalue", "i2", "h2", "qm", "qm_pvalue", "loglik", "converged"]
    assert list(frame.columns) == expected
    np.testing.assert_array_equal(frame["tau2"], frame_res.tau2)
    np.testing.assert_array_equal(frame["p_value_dose"], frame_res.p_value[:, 1])
    text = str(frame_res)
    assert "40 outputs" in text and "reml" in text
    assert "dose: p < 0.05 in" in text and "q-value (BH) < 0.05" in text
    # intercept-only: no moderator test columns
    res, _ = _fit_all(RandomEffectsMeta(), None, np.nan_to_num(Y), V)
    assert "qm" not in res.to_frame().columns


def test_convergence_failures_are_counted():
    X, Y, V = _data(6, k=12, m=20, n_mods=0)
    res, caught = _fit_all(RandomEffectsMeta(max_iter=1), X, Y, V)
    failed = int((~res.converged).sum())
    assert failed > 0
    messages = [str(w.message) for w in caught if w.category is ConvergenceWarning]
    assert len(messages) == 1 and f"{failed} of 20" in messages[0]


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------


def test_missing_values_raise_by_default():
    _, Y, V = _data(0, k=6, m=3, n_mods=0)
    Y[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"y contains NaN.*missing='drop'"):
        fit_outputs(RandomEffectsMeta(), None, Y, sample_var=V)
    Y[1, 1] = 0.0
    V[2, 0] = np.nan
    with pytest.raises(ValueError, match="sample_var contains NaN"):
        fit_outputs(RandomEffectsMeta(), None, Y, sample_var=V)
    Xn = np.arange(6.0)[:, None]
    Xn[0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        fit_outputs(RandomEffectsMeta(), Xn, Y, sample_var=np.nan_to_num(V))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_var": -np.ones((6, 3))}, "sample_var must be >= 0"),
        ({"sample_var": np.ones((6, 2))}, "sample_var has shape"),
        ({"sample_var": np.ones(5)}, "sample_var has 5 entries"),
        ({"sample_var": None}, "sample_var is required"),
        ({"sample_var": np.ones((6, 3)), "fdr": "holm"}, "fdr must be one of"),
        ({"sample_var": np.ones((6, 3)), "confidence_level": 95}, "confidence_level"),
    ],
)
def test_bad_arguments(kwargs, message):
    Y = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(ValueError, match=message):
        fit_outputs(RandomEffectsMeta(), None, Y, **kwargs)


def test_bad_estimator_and_design():
    Y = np.random.default_rng(0).normal(size=(6, 3))
    V = np.full((6, 3), 0.1)
    with pytest.raises(ValueError, match="must be a RandomEffectsMeta"):
        fit_outputs(object(), None, Y, sample_var=V)
    with pytest.raises(ValueError, match="method"):
        fit_outputs(RandomEffectsMeta(method="bogus"), None, Y, sample_var=V)
    X = np.column_stack([np.arange(6.0), 2 * np.arange(6.0)])
    with pytest.raises(ValueError, match=r"rank-deficient.*\['x1'\]"):
        fit_outputs(RandomEffectsMeta(), X, Y, sample_var=V)
    with pytest.raises(ValueError, match="Too few studies"):
        fit_outputs(RandomEffectsMeta(), np.ones((6, 6)).cumsum(0), Y, sample_var=V)
    with pytest.raises(ValueError, match="requires genq_weights"):
        fit_outputs(RandomEffectsMeta(method="genq"), None, Y, sample_var=V)


@pytest.mark.parametrize("method", NEEDS_POSITIVE)
def test_zero_variances_with_inverse_variance_weights_raise(method):
    Y = np.random.default_rng(0).normal(size=(6, 3))
    V = np.full((6, 3), 0.1)
    V[0, 2] = 0.0
    with pytest.raises(ValueError, match="weights studies by 1/sample_var"):
        fit_outputs(RandomEffectsMeta(method=method), None, Y, sample_var=V)
    with pytest.raises(ValueError, match="Zero total variance"):
        fit_outputs(RandomEffectsMeta(tau2=0.0), None, Y, sample_var=V)


# --------------------------------------------------------------------------------------
# engine helpers
# --------------------------------------------------------------------------------------


def test_chi_square_tail_equals_the_incomplete_gamma_function():
    rng = np.random.default_rng(0)
    for df in range(1, mo.SERIES_MAX_DF + 5):
        x = np.concatenate(
            [rng.chisquare(df, 500), [0.0, 1e-300, 1e-8, 0.5, 700.0, 1500.0, 1e300]]
        )
        ref = special.chdtrc(df, x)
        got = mo._chi2_sf(x, np.full(x.shape, df))
        normal = ref > 1e-300
        # relative error ~ eps * x/2 from exp(-x/2) (as the reference's)
        np.testing.assert_allclose(got[normal], ref[normal], rtol=1e-12)
        assert np.all(np.abs(got[~normal]) <= 1e-290)


def test_sum_of_logs_in_groups_is_exact_and_falls_back_on_extremes():
    rng = np.random.default_rng(0)
    x = rng.uniform(1e-3, 1e3, size=(23, 50))
    x[:, 3] = 1e-200  # products would underflow
    x[:, 7] = 1e200  # products would overflow
    np.testing.assert_allclose(
        mo._sum_log(x), np.log(x).sum(axis=0), rtol=1e-14, atol=1e-12
    )


@pytest.mark.parametrize("confidence_level", [0.9, 0.95])
def test_q_profile_intervals_equal_the_single_fit(confidence_level):
    """The vectorized Q-profile interval of tau^2 (for tau2_confint per output)
    equals the single fit's, on each output's studies (zero variances too)."""
    X, Y, V = _data(21, k=12, m=40, n_mods=1, missing=0.2, zero_v=0.05)
    design = np.column_stack([np.ones(12), X])
    lower, upper = mo.q_profile_intervals(design, Y, V, confidence_level)
    for j in range(40):
        keep = ~np.isnan(Y[:, j])
        lo, hi = uni.q_profile_interval(
            design[keep], Y[keep, j], V[keep, j], confidence_level
        )
        scale = _variance_scale(Y[:, j], V[:, j])
        np.testing.assert_allclose(lower[j], lo, rtol=1e-10, atol=1e-12 * scale)
        np.testing.assert_allclose(upper[j], hi, rtol=1e-10, atol=1e-12 * scale)


# --------------------------------------------------------------------------------------
# RandomEffectsMeta with 2-D y: attributes, predictions, intervals and summaries
# --------------------------------------------------------------------------------------


def _fit_2d(estimator, X, Y, V, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = clone(estimator).fit(X, Y, sample_var=V, **kwargs)
    return est, caught


def _attr_close(name, ours, ref, scale):
    ours, ref = float(ours), float(ref)
    if np.isnan(ref) or np.isinf(ref):
        assert ours == ref or (np.isnan(ours) and np.isnan(ref)), (name, ours, ref)
        return
    assert abs(ours - ref) <= RTOL * (abs(ref) + scale), (name, ours, ref)


@pytest.mark.parametrize("method", ["reml", "ml", "dl", "pm", "sj", "he", "fe"])
def test_estimator_attributes_per_output_equal_the_column_fits(method):
    """Every fitted attribute of output j (tau^2 and its SE, intercept, coef,
    cov_params, Q, I^2, H^2, QM, log-likelihood, AIC/BIC/AICc, dof, n_iter,
    converged) equals the single fit of column j on its complete rows, among
    outputs at the boundary, with missing studies and one not estimable."""
    X, Y, V = _data(31, k=11, m=12, n_mods=1, missing=0.2)
    Y[:, 1] = 0.4  # constant: tau^2 = 0, Q = 0
    Y[2:, 2] = np.nan  # 2 studies for 2 parameters: not estimable
    est, caught = _fit_2d(_estimator(method, "t", missing="drop"), X, Y, V)
    assert sum("no more studies than" in str(w.message) for w in caught) == 1
    m = Y.shape[1]
    shapes = {
        "tau2_": (m,), "tau2_se_": (m,), "intercept_": (m,), "coef_": (m, 1),
        "cov_params_": (m, 2, 2), "q_": (m,), "q_pvalue_": (m,), "i2_": (m,),
        "h2_": (m,), "qm_": (m,), "qm_pvalue_": (m,), "dof_": (m,), "n_iter_": (m,),
        "converged_": (m,), "loglik_": (m,), "aic_": (m,), "bic_": (m,),
        "aicc_": (m,), "n_studies_": (m,),
    }  # fmt: skip
    for name, shape in shapes.items():
        assert np.shape(getattr(est, name)) == shape, name
    assert np.isnan(est.tau2_[2]) and np.isnan(est.coef_[2]).all()
    for j in range(m):
        single = _column_fit(est, X, Y[:, j], V[:, j])
        assert est.n_studies_[j] == np.sum(~np.isnan(Y[:, j]))
        if single is None:
            continue
        scale = _variance_scale(Y[:, j], V[:, j])
        for name in ("tau2_", "tau2_se_", "q_", "q_pvalue_", "i2_", "h2_", "qm_"):
            _attr_close(
                name, getattr(est, name)[j], getattr(single, name), RTOL * scale
            )
        for name in ("loglik_", "aic_", "bic_", "aicc_", "intercept_"):
            _attr_close(name, getattr(est, name)[j], getattr(single, name), 1.0)
        np.testing.assert_allclose(est.coef_[j], single.coef_, rtol=RTOL, atol=1e-12)
        np.testing.assert_allclose(
            est.cov_params_[j], single.cov_params_, rtol=RTOL, atol=1e-15
        )
        assert est.dof_[j] == single.dof_ and est.n_params_ == single.n_params_
        assert est.converged_[j] == single.converged_
        if method in ("reml", "ml"):
            assert est.n_iter_[j] == single.n_iter_
    assert est.tau2_[1] == 0.0


def test_predictions_scores_intervals_and_summaries_per_output():
    """predict (n, m), score (the total over outputs), predict_interval and
    tau2_confint indexed by output, summary().to_frame() by (output, term),
    random_effects_ by (output, study), r2_ per output: each output's part
    equals the single fit of its column."""
    X, Y, V = _data(32, k=12, m=4, n_mods=1, missing=0.15)
    labels = ["left", "right", "top", "bottom"]
    Yf = pd.DataFrame(Y, columns=labels)
    est, _ = _fit_2d(RandomEffectsMeta(method="ml", missing="drop"), X, Yf, V)
    Xnew = np.array([[-1.0], [0.0], [2.0]])
    prediction = est.predict(Xnew)
    assert prediction.shape == (3, 4)
    frame = est.summary().to_frame()
    assert list(frame.columns) == ["estimate", "se", "statistic", "p_value",
                                   "ci_lower", "ci_upper"]  # fmt: skip
    assert frame.index.names == ["output", "term"] and len(frame) == 8
    intervals = est.predict_interval(Xnew)
    assert intervals.index.names == ["output", "row"] and len(intervals) == 12
    confint = est.tau2_confint(0.9)
    assert confint.index.names == ["output", "parameter"]
    blups = est.random_effects_
    assert blups.index.names == ["output", "study"] and len(blups) == 4 * 12
    assert est.random_effects_se_.shape == (4, 12)
    assert est.r2_.shape == (4,)
    complete = ~np.isnan(Y).any(axis=1)
    total = 0.0
    for j, label in enumerate(labels):
        single = _column_fit(est, X, Y[:, j], V[:, j])
        np.testing.assert_allclose(prediction[:, j], single.predict(Xnew), rtol=1e-9)
        np.testing.assert_allclose(
            frame.loc[label].to_numpy(),
            single.summary().to_frame().to_numpy(),
            rtol=1e-8,
            atol=1e-12,
        )
        np.testing.assert_allclose(
            intervals.loc[label].to_numpy(),
            single.predict_interval(Xnew).to_numpy(),
            rtol=1e-8,
        )
        np.testing.assert_allclose(
            confint.loc[label].to_numpy(),
            single.tau2_confint(0.9).to_numpy(),
            rtol=1e-8,
            atol=1e-12,
        )
        present = ~np.isnan(Y[:, j])
        ours = blups.loc[label].to_numpy()
        np.testing.assert_allclose(
            ours[present], single.random_effects_.to_numpy(), rtol=1e-7, atol=1e-12
        )
        assert np.isnan(ours[~present]).all()
        assert est.r2_[j] == pytest.approx(single.r2_, rel=1e-7, abs=1e-9)
        total += single.score(X[complete], Y[complete, j], sample_var=V[complete, j])
    # the total log-likelihood over outputs (of studies that cover every output)
    score = est.score(X[complete], Y[complete], sample_var=V[complete])
    assert score == pytest.approx(total, rel=1e-10)


def test_score_of_an_ml_fit_is_the_sum_of_the_log_likelihoods():
    X, Y, V = _data(33, k=15, m=6, n_mods=1)
    est, _ = _fit_2d(RandomEffectsMeta(method="ml"), X, Y, V)
    assert est.score(X, Y, sample_var=V) == pytest.approx(est.loglik_.sum(), rel=1e-8)
    # shared sampling variances, and a shape that does not match the fit
    with pytest.raises(ValueError, match="fitted to 6 outputs"):
        est.score(X, Y[:, :2], sample_var=V[:, :2])


def test_one_dimensional_y_with_missing_drop_equals_the_complete_rows():
    X, Y, V = _data(34, k=14, m=1, n_mods=2, missing=0.25)
    y, v = Y[:, 0], V[:, 0]
    keep = ~np.isnan(y)
    assert (~keep).any()
    dropped = RandomEffectsMeta(missing="drop").fit(X, y, sample_var=v)
    complete = RandomEffectsMeta().fit(X[keep], y[keep], sample_var=v[keep])
    for name in ("tau2_", "tau2_se_", "intercept_", "q_", "i2_", "loglik_", "aic_"):
        assert getattr(dropped, name) == getattr(complete, name), name
    np.testing.assert_array_equal(dropped.coef_, complete.coef_)
    np.testing.assert_array_equal(dropped.cov_params_, complete.cov_params_)
    assert dropped.n_missing_ == (~keep).sum()


def test_two_dimensional_y_errors():
    X, Y, V = _data(35, k=10, m=3, n_mods=1)
    est = RandomEffectsMeta().fit(X, Y, sample_var=V)
    with pytest.raises(ValueError, match="influence\\(\\) is not available"):
        est.influence()
    with pytest.raises(ValueError, match="groups is not available with 2-D y"):
        RandomEffectsMeta().fit(X, Y, sample_var=V, groups=np.arange(10) // 2)
    with pytest.raises(ValueError, match="sample_weight is not available"):
        RandomEffectsMeta().fit(X, Y, sample_var=V, sample_weight=np.ones(10))
    Y[0, 1] = np.nan
    with pytest.raises(ValueError, match="y contains NaN"):
        RandomEffectsMeta().fit(X, Y, sample_var=V)


def test_a_study_missing_from_every_output_is_not_a_crash():
    """Outputs without enough studies are NaN (one warning), also when a study
    covers no output and when no output is estimable at all."""
    _, Y, V = _data(36, k=6, m=3, n_mods=0)
    Y[0] = np.nan
    Y[2:, 1] = np.nan  # 1 study
    est, caught = _fit_2d(RandomEffectsMeta(missing="drop"), None, Y, V)
    assert np.isnan(est.tau2_[1]) and not np.isnan(est.tau2_[[0, 2]]).any()
    assert sum("1 of 3 outputs" in str(w.message) for w in caught) == 1
    Y[1:, :] = np.nan
    Y[1, 0] = 0.3
    est, caught = _fit_2d(RandomEffectsMeta(missing="drop"), None, Y, V)
    assert np.isnan(est.tau2_).all()
    assert sum("3 of 3 outputs" in str(w.message) for w in caught) == 1


def test_memory_is_linear_in_studies_times_outputs():
    """No (k, k) or (m, m) array: the peak traced memory of a fit stays a small
    multiple of the inputs for many studies (k = 3000) and many outputs."""
    import tracemalloc

    for k, m in [(3000, 3), (8, 40_000)]:
        rng = np.random.default_rng(0)
        V = rng.uniform(0.01, 0.5, size=(k, m))
        Y = rng.normal(size=(k, m)) * np.sqrt(V + 0.1)
        X = rng.normal(size=(k, 1))
        tracemalloc.start()
        RandomEffectsMeta().fit(X, Y, sample_var=V)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        inputs = 8 * k * m
        # a (k, k) array alone would be 72 MB at k = 3000, an (m, m) one 13 GB
        assert peak <= 40 * inputs + 2**21, (k, m, peak)


@pytest.mark.parametrize("method", ["reml", "dl"])
def test_screen_over_all_outputs_equals_the_per_output_checks(method):
    """The screen of complete blocks (bounds over all outputs) sends the same
    outputs to the single fit as the per-output extremes do, and applies to
    ordinary data (no per-output extremes formed)."""
    rng = np.random.default_rng(5)
    k, m = 12, 40
    V = rng.uniform(0.01, 0.5, size=(k, m))
    Y = 0.2 + rng.normal(size=(k, m)) * np.sqrt(V + 0.1)
    screen = mo._screen_limits(method, None)
    design = np.ones((k, 1))

    def flagged(Y, V, screen):
        block = mo._make_block(Y, V, True, screen)
        return block.vmin is None, mo._needs_single_fit(block, method, None, None)

    screened, flags = flagged(Y, V, screen)
    assert screened and not flags.any()
    for change in ("tiny y", "huge y", "spread v", "ties"):
        Yc, Vc = Y.copy(), V.copy()
        if change == "tiny y":  # rescaled by the single fit (range 2**-150)
            Yc[:, 3] = 2.0**-150 * rng.normal(size=k)
        elif change == "huge y":
            Yc[:, 7], Vc[:, 7] = Yc[:, 7] * 2.0**90, Vc[:, 7] * 2.0**180
        elif change == "spread v":
            Vc[0, 9] = 1e-9
        else:  # equal first studies: no lower bound of the range
            Yc[:4, 11] = 0.5
        expected = flagged(Yc, Vc, None)[1]
        screened, flags = flagged(Yc, Vc, screen)
        np.testing.assert_array_equal(flags, expected, err_msg=change)
        assert expected.any() or change == "ties", change
        assert not screened or not expected.any(), change
        fits = mo.fit_random_effects(design, Yc, Vc, method=method)
        np.testing.assert_array_equal(fits.one_by_one, expected, err_msg=change)
