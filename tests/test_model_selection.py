"""skmeta.model_selection.multimodel against an all-subsets loop over metafor fits.

Reference numbers: ``tests/reference/multimodel.json``, written by
``tests/reference/make_multimodel.R`` (R 4.2.2, metafor 3.8.1; versions in the JSON).
MuMIn and glmulti are not installed, so the script fits every subset of the
candidate moderators with ``rma(method = "ML")`` (run to convergence:
``threshold = 1e-13``) on the complete cases, takes the information criteria from
metafor's ``fitstats()`` and computes the Akaike weights, importance and the full
and conditional averages with Burnham & Anderson's revised unconditional SE from
the published formulas.  Cases: dat.bangertdrowns2004 with 3 moderators (the
classic writing-to-learn example) and with 5 (AICc, BIC, and AIC with at most 2
terms), and dat.bcg with 4 (k = 13: the AICc small-sample term matters).

Tolerances: ``RTOL = 1e-7`` (ML fits converged on both sides agree to ~1e-10;
the weights are smooth functions of the log-likelihoods) with ``ATOL = 1e-10``
for quantities near 0.
"""

import itertools
import json
import math
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import StrOptions

from skmeta import LocationScaleMeta, MultilevelMeta, RandomEffectsMeta, RobustMeta
from skmeta.datasets import load_school_calendar, load_writing_to_learn
from skmeta.model_selection import MultimodelResult, multimodel

REF = json.loads(
    (Path(__file__).parent / "reference" / "multimodel.json").read_text(
        encoding="utf-8"
    )
)
CASES = REF["cases"]
RTOL = 1e-7
ATOL = 1e-10
AVERAGE_COLUMNS = {
    "estimate": "estimate",
    "se": "se",
    "statistic": "z",
    "p_value": "p",
    "ci_lower": "ci_lb",
    "ci_upper": "ci_ub",
}


def _run(case, **kw):
    X = pd.DataFrame({k: np.asarray(v, float) for k, v in case["X"].items()})
    return multimodel(
        RandomEffectsMeta(method="ml"),
        X,
        case["yi"],
        sample_var=case["vi"],
        criterion=case["criterion"],
        max_terms=case["max_terms"],
        **kw,
    )


def test_fixture_provenance():
    assert REF["versions"]["metafor"] == "3.8.1"
    assert REF["versions"]["R"].startswith("R version 4.2.2")
    assert len(CASES) == 5
    assert max(len(c["terms"]) for c in CASES) >= 4


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_multimodel_matches_metafor_all_subsets(case):
    res = _run(case)
    models = pd.DataFrame(case["models"])
    assert isinstance(res, MultimodelResult)
    assert list(res.table.columns) == [
        "terms",
        "n_params",
        "loglik",
        "criterion",
        "delta",
        "weight",
    ]
    assert list(res.table["terms"]) == [tuple(t) for t in models["terms"]]
    np.testing.assert_array_equal(res.table["n_params"], models["K"])
    for ours, theirs in (
        ("loglik", "loglik"),
        ("criterion", "criterion"),
        ("delta", "delta"),
        ("weight", "weight"),
    ):
        np.testing.assert_allclose(
            res.table[ours], models[theirs], rtol=RTOL, atol=ATOL, err_msg=ours
        )
    # per-model coefficients and standard errors, NaN where a term is absent
    for r, model in enumerate(case["models"]):
        row = res.coefficients.iloc[r].dropna()
        assert list(row.index) == list(model["coef"])
        np.testing.assert_allclose(row, list(model["coef"].values()), rtol=1e-6)
        se = res.std_errors.iloc[r].dropna()
        np.testing.assert_allclose(se, list(model["se"].values()), rtol=1e-6)
    importance = pd.Series(case["importance"])
    assert list(res.importance.index) == list(
        importance.sort_values(ascending=False, kind="stable").index
    )
    np.testing.assert_allclose(
        res.importance[importance.index], importance, rtol=RTOL, atol=ATOL
    )
    for ours, key in (
        (res.full_average_table, "full"),
        (res.conditional_average_table, "conditional"),
    ):
        theirs = pd.DataFrame(case[key]).T
        assert list(ours.index) == ["intercept", *case["terms"]]
        for column, ref_column in AVERAGE_COLUMNS.items():
            np.testing.assert_allclose(
                ours[column],
                theirs[ref_column].astype(float),
                rtol=RTOL,
                atol=ATOL,
                err_msg=f"{key} {column}",
            )
    assert res.n_samples == case["k"] and res.n_dropped == 0
    n_models = sum(
        math.comb(len(case["terms"]), s) for s in range(case["max_terms"] + 1)
    )
    assert len(res.table) == n_models


def test_worked_example_writing_to_learn():
    """Bangert-Drowns et al. (2004): length, imag, meta; complete cases k = 44."""
    data = load_writing_to_learn()
    with pytest.raises(ValueError, match="4 studies have missing values"):
        multimodel(
            RandomEffectsMeta(method="ml"),
            data[["length", "imag", "meta"]],
            data["yi"],
            sample_var=data["vi"],
        )
    res = multimodel(
        RandomEffectsMeta(method="ml"),
        data[["length", "imag", "meta"]],
        data["yi"],
        sample_var=data["vi"],
        missing="drop",
    )
    assert (res.n_samples, res.n_dropped) == (44, 4)
    expected = [
        (("meta",), 3, -13.0649, 32.7298, 0.26146),
        (("length", "meta"), 4, -11.9297, 32.8851, 0.24193),
        (("length",), 3, -13.5263, 33.6526, 0.16483),
        (("imag", "meta"), 4, -12.7536, 34.5329, 0.10614),
        (("length", "imag", "meta"), 5, -11.7849, 35.1487, 0.07801),
        ((), 2, -15.6290, 35.5506, 0.06381),
        (("length", "imag"), 4, -13.3984, 35.8225, 0.05570),
        (("imag",), 3, -15.2948, 37.1896, 0.02812),
    ]
    for row, (terms, K, loglik, aicc, weight) in zip(
        res.table.itertuples(), expected, strict=True
    ):
        assert (row.terms, row.n_params) == (terms, K)
        assert (round(row.loglik, 4), round(row.criterion, 4)) == (loglik, aicc)
        assert round(row.weight, 5) == weight
    assert res.importance.round(5).to_dict() == {
        "meta": 0.68754,
        "length": 0.54047,
        "imag": 0.26797,
    }
    full = res.full_average_table[["estimate", "se"]].to_numpy()
    cond = res.conditional_average_table[["estimate", "se"]].to_numpy()
    np.testing.assert_allclose(
        full,
        [
            [0.082460, 0.085000],
            [0.0065096, 0.0080641],
            [0.032801, 0.10532],
            [0.12684, 0.11405],
        ],
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        cond,
        [
            [0.082460, 0.085000],
            [0.012045, 0.0073238],
            [0.12241, 0.17443],
            [0.18448, 0.091012],
        ],
        rtol=1e-4,
    )


def test_averages_by_hand():
    """Full/conditional averages, covariance and predictions from the per-model fits."""
    case = CASES[1]
    res = _run(case)
    w = res.table["weight"].to_numpy()
    beta = res.coefficients.to_numpy()
    se = res.std_errors.to_numpy()
    present = ~np.isnan(beta)
    b0, s0 = np.nan_to_num(beta), np.nan_to_num(se)
    full = w @ b0
    full_se = np.sqrt(w @ (s0**2 + (b0 - full) ** 2))
    np.testing.assert_allclose(res.full_average, full, rtol=1e-12)
    pd.testing.assert_series_equal(
        res.full_average, res.full_average_table["estimate"], check_names=False
    )
    np.testing.assert_allclose(res.full_average_table["se"], full_se, rtol=1e-12)
    for j, term in enumerate(res.coefficients.columns):
        wc = w[present[:, j]] / w[present[:, j]].sum()
        bc = wc @ beta[present[:, j], j]
        sc = np.sqrt(
            wc @ (se[present[:, j], j] ** 2 + (beta[present[:, j], j] - bc) ** 2)
        )
        assert res.conditional_average[term] == pytest.approx(bc)
        assert res.conditional_average_table.loc[term, "se"] == pytest.approx(sc)
    for term in res.terms:
        contains = np.array([term in t for t in res.table["terms"]])
        assert res.importance[term] == pytest.approx(w[contains].sum(), rel=1e-12)
    assert w.sum() == pytest.approx(1.0)
    assert (
        res.table["delta"].iloc[0] == 0 and res.table["delta"].is_monotonic_increasing
    )
    # the averaged covariance has the revised SE^2 on its diagonal, is symmetric
    # and positive definite
    cov = res.full_average_cov.to_numpy()
    np.testing.assert_allclose(np.diag(cov), full_se**2, rtol=1e-12)
    np.testing.assert_allclose(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() > 0
    # z tests and 95% intervals of the averages
    z = full / full_se
    np.testing.assert_allclose(res.full_average_table["statistic"], z, rtol=1e-12)
    np.testing.assert_allclose(
        res.full_average_table["ci_upper"],
        full + 1.959963984540054 * full_se,
        rtol=1e-12,
    )
    # predictions: the weighted average of the models' predictions
    X = pd.DataFrame(case["X"]).iloc[:5]
    design = np.column_stack([np.ones(5), X.to_numpy()])
    by_model = design @ b0.T
    np.testing.assert_allclose(res.predict(X), by_model @ w, rtol=1e-12)
    np.testing.assert_allclose(res.predict(X.to_numpy()), by_model @ w, rtol=1e-12)
    np.testing.assert_allclose(
        res.predict(X[X.columns[::-1]].assign(extra=1.0)), by_model @ w, rtol=1e-12
    )


def test_criteria_follow_metafor_conventions():
    """AICc with n* = max(k, K + 2) and K counting tau^2 (k = 6, up to K = 5)."""
    rng = np.random.default_rng(4)
    X = pd.DataFrame(rng.normal(size=(6, 3)), columns=["a", "b", "c"])
    v = rng.uniform(0.02, 0.1, 6)
    y = 0.3 + X["a"].to_numpy() * 0.2 + rng.normal(size=6) * np.sqrt(v + 0.05)
    for criterion in ("aicc", "aic", "bic"):
        res = multimodel(
            RandomEffectsMeta(method="ml"), X, y, sample_var=v, criterion=criterion
        )
        for row in res.table.itertuples():
            K, ll, k = row.n_params, row.loglik, 6
            n_star = max(k, K + 2)
            expected = {
                "aic": -2 * ll + 2 * K,
                "bic": -2 * ll + K * np.log(k),
                "aicc": -2 * ll + 2 * K * n_star / (n_star - K - 1),
            }[criterion]
            assert row.criterion == pytest.approx(expected, rel=1e-12)
            assert K == len(row.terms) + 2
    # the equal-effects model keeps its likelihood: K counts no tau^2
    res = multimodel(RandomEffectsMeta(method="fe"), X, y, sample_var=v)
    assert list(res.table["n_params"]) == [len(t) + 1 for t in res.table["terms"]]


def test_method_other_than_ml_is_switched_with_a_warning():
    case = CASES[0]
    X = pd.DataFrame(case["X"])
    ml = _run(case)
    with pytest.warns(UserWarning, match="method='ml' instead of method='reml'"):
        res = multimodel(RandomEffectsMeta(), X, case["yi"], sample_var=case["vi"])
    pd.testing.assert_frame_equal(res.table, ml.table)
    # RobustMeta's tau^2 estimators are moment-based (no likelihood)
    with pytest.raises(ValueError, match="maximum likelihood"):
        multimodel(RobustMeta(), X, case["yi"], sample_var=case["vi"])

    class MomentOnly(RandomEffectsMeta):
        _parameter_constraints = {
            **RandomEffectsMeta._parameter_constraints,
            "method": [StrOptions({"dl", "he"})],
        }

    with pytest.raises(ValueError, match="cannot be fitted by maximum likelihood"):
        multimodel(MomentOnly(method="dl"), X, case["yi"], sample_var=case["vi"])
    with pytest.raises(ValueError, match="has no 'method' hyperparameter"):
        from sklearn.linear_model import LinearRegression

        multimodel(LinearRegression(), X, case["yi"], sample_var=case["vi"])


def test_other_estimators_and_routed_fit_params():
    """MultilevelMeta with groups, LocationScaleMeta with Z: as a manual loop."""
    data = load_school_calendar()
    data["year_c"] = data["year"] - 1990
    data["wave"] = np.cos(np.arange(len(data)))
    X = data[["year_c", "wave"]]
    groups = data[["district", "school"]]
    res = multimodel(
        MultilevelMeta(method="ml"), X, data["yi"], sample_var=data["vi"], groups=groups
    )
    for row in res.table.itertuples():
        fit = MultilevelMeta(method="ml").fit(
            X[list(row.terms)], data["yi"], sample_var=data["vi"], groups=groups
        )
        assert row.loglik == pytest.approx(fit.loglik_, rel=1e-10)
        assert row.criterion == pytest.approx(fit.aicc_, rel=1e-10)
        assert row.n_params == len(row.terms) + 3  # intercept and two sigma^2
    Z = (data[["year_c"]] > 0).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # diverging scale coefficients, if any
        res = multimodel(
            LocationScaleMeta(method="ml"), X, data["yi"], sample_var=data["vi"], Z=Z
        )
        for row in res.table.itertuples():
            fit = LocationScaleMeta(method="ml").fit(
                X[list(row.terms)], data["yi"], sample_var=data["vi"], Z=Z
            )
            assert row.loglik == pytest.approx(fit.loglik_, rel=1e-8)
            assert row.n_params == len(row.terms) + 3  # intercept, two scale coefs


def test_missing_drop_restricts_every_argument_to_complete_cases():
    data = load_school_calendar()
    data["year_c"] = (data["year"] - 1990).astype(float)
    data.loc[[3, 17], "year_c"] = np.nan
    groups = data[["district", "school"]]
    res = multimodel(
        MultilevelMeta(method="ml"),
        data[["year_c"]],
        data["yi"],
        sample_var=data["vi"],
        groups=groups,
        missing="drop",
    )
    keep = data["year_c"].notna()
    ref = multimodel(
        MultilevelMeta(method="ml"),
        data.loc[keep, ["year_c"]],
        data.loc[keep, "yi"],
        sample_var=data.loc[keep, "vi"],
        groups=groups.loc[keep].to_numpy(),
    )
    assert (res.n_samples, res.n_dropped) == (54, 2)
    pd.testing.assert_frame_equal(res.table, ref.table)
    assert "2 dropped for missing values" in str(res)


def test_parallel_and_joblib_backends_give_the_same_result():
    case = CASES[1]
    serial = _run(case)
    pd.testing.assert_frame_equal(_run(case, n_jobs=2).table, serial.table)
    with joblib.parallel_config(backend="threading", n_jobs=2):
        threaded = _run(case)
    pd.testing.assert_frame_equal(threaded.table, serial.table)
    pd.testing.assert_frame_equal(
        threaded.full_average_table, serial.full_average_table
    )


def test_ndarray_input_max_terms_and_printout():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    v = rng.uniform(0.01, 0.2, 30)
    y = X[:, 0] * 0.3 + rng.normal(size=30) * np.sqrt(v + 0.05)
    res = multimodel(
        RandomEffectsMeta(method="ml"), X, y, sample_var=v, max_terms=2, criterion="bic"
    )
    assert res.terms == ["x0", "x1", "x2", "x3"]
    assert len(res.table) == 1 + 4 + 6
    assert max(len(t) for t in res.table["terms"]) == 2
    assert res.importance.index[0] == "x0"
    text = str(res)
    assert "11 candidate models" in text and "ranked by BIC" in text
    assert "Full model average" in text and "x0" in text
    # itertools order for the ties-free enumeration: every subset once
    subsets = {tuple(t) for t in res.table["terms"]}
    assert subsets == {
        tuple(f"x{j}" for j in c)
        for s in range(3)
        for c in itertools.combinations(range(4), s)
    }


def test_plot_importance():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = _run(CASES[1])
    ax = res.plot_importance()
    try:
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels[-1] == res.importance.index[0]  # most important on top
        widths = sorted(p.get_width() for p in ax.patches)
        np.testing.assert_allclose(widths, np.sort(res.importance.to_numpy()))
        assert ax.get_xlim() == (0.0, 1.0)
    finally:
        plt.close("all")


def test_convergence_problems_are_reported():
    case = CASES[0]
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        multimodel(
            RandomEffectsMeta(method="ml", max_iter=1),
            pd.DataFrame(case["X"]),
            case["yi"],
            sample_var=case["vi"],
        )


def test_bad_input():
    case = CASES[0]
    X, y, v = pd.DataFrame(case["X"]), np.asarray(case["yi"]), np.asarray(case["vi"])
    est = RandomEffectsMeta(method="ml")
    with pytest.raises(ValueError, match="criterion must be one of"):
        multimodel(est, X, y, sample_var=v, criterion="dic")
    with pytest.raises(ValueError, match="max_terms must be a positive integer"):
        multimodel(est, X, y, sample_var=v, max_terms=0)
    with pytest.raises(ValueError, match="missing must be"):
        multimodel(est, X, y, sample_var=v, missing="omit")
    with pytest.raises(ValueError, match="needs the sampling variances"):
        multimodel(est, X, y, sample_var=None)
    with pytest.raises(ValueError, match="sample_var has 43 entries"):
        multimodel(est, X, y, sample_var=v[:-1])
    with pytest.raises(ValueError, match="X has 43 rows"):
        multimodel(est, X.iloc[:-1], y, sample_var=v)
    with pytest.raises(ValueError, match="no candidate moderators"):
        multimodel(est, X.iloc[:, :0], y, sample_var=v)
    with pytest.raises(ValueError, match="numeric moderators"):
        multimodel(est, X.assign(s="a"), y, sample_var=v)
    with pytest.raises(ValueError, match="confidence_level"):
        multimodel(est, X, y, sample_var=v, confidence_level=1.0)
    with pytest.raises(ValueError, match="44 studies have missing"):
        multimodel(est, X, np.full_like(y, np.nan), sample_var=v)
    with pytest.raises(ValueError, match="lacks the moderator column"):
        multimodel(est, X, y, sample_var=v).predict(X[["length"]])
    with pytest.raises(ValueError, match="rank-deficient"):
        multimodel(est, X.assign(twice=2 * X["length"]), y, sample_var=v)


def test_dask_backend():
    """``joblib.parallel_config(backend="dask")`` distributes the batches."""
    import dask.distributed as distributed

    case = CASES[0]
    serial = _run(case)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
        joblib.parallel_config(backend="dask"),
    ):
        distributed_result = _run(case)
    pd.testing.assert_frame_equal(distributed_result.table, serial.table)
