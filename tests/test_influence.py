"""RandomEffectsMeta.influence() against metafor's influence() (BCG data)."""

import json
from pathlib import Path

import numpy as np
import pytest

from skmeta import RandomEffectsMeta

REFERENCE = json.loads(
    (Path(__file__).parent / "reference" / "influence.json").read_text()
)
COLUMNS = [
    "rstudent",
    "dffits",
    "cook_d",
    "cov_r",
    "tau2_del",
    "qe_del",
    "hat",
    "weight",
]


@pytest.mark.parametrize(
    "case", REFERENCE["cases"], ids=lambda c: f"{c['method']} {c['mods']}"
)
def test_influence_matches_metafor(case):
    X = None if case["mods"] == "~ 1" else np.asarray(case["ablat"], float)[:, None]
    model = RandomEffectsMeta(method=case["method"].lower())
    model.fit(X, np.asarray(case["yi"]), sample_var=np.asarray(case["vi"]))
    frame = model.influence()
    assert len(frame) == 13
    for column in COLUMNS:
        # The fixture was run to convergence (threshold 1e-13), so the leave-one-out
        # refits agree to iteration precision.
        np.testing.assert_allclose(
            frame[column], case[column], rtol=1e-6, atol=1e-9, err_msg=column
        )
    dfbetas = frame.filter(like="dfbetas_").to_numpy()
    np.testing.assert_allclose(dfbetas, np.asarray(case["dfbetas"]), rtol=1e-6)


def test_influence_published_bcg_study_one():
    """metafor's test_misc_influence.r, RE REML model, study 1."""
    case = REFERENCE["cases"][0]
    model = RandomEffectsMeta().fit(
        None, np.asarray(case["yi"]), sample_var=np.asarray(case["vi"])
    )
    row = model.influence().iloc[0]
    assert row["rstudent"] == pytest.approx(-0.218142474344442, abs=5e-8)
    assert row["cook_d"] == pytest.approx(0.00171654236729195, rel=1e-5)
    assert row["hat"] == pytest.approx(0.0505948307931551, rel=1e-6)
    assert row["tau2_del"] == pytest.approx(0.336156745300306, rel=1e-6)
    assert row["qe_del"] == pytest.approx(151.582572747109, rel=1e-10)


DEGENERATE = {case["name"]: case for case in REFERENCE["degenerate"]}


def _fit_degenerate(name):
    case = DEGENERATE[name]
    X = np.asarray(case["X"], float) if case["X"] else None
    model = RandomEffectsMeta().fit(
        X, np.asarray(case["yi"]), sample_var=np.asarray(case["vi"])
    )
    return case, model


def _nan(values):
    return np.array([np.nan if x is None else x for x in values], dtype=float)


def test_influence_with_a_rank_deficient_refit_is_nan_for_that_study():
    """A dummy moderator only study 1 has: without it the design is
    rank-deficient. metafor reports NA for study 1 and the other studies as
    usual; influence() used to raise LinAlgError."""
    case, model = _fit_degenerate("dummy")
    with pytest.warns(UserWarning, match=r"1 study \(rows \[0\]"):
        frame = model.influence()
    for column in COLUMNS:
        np.testing.assert_allclose(
            frame[column], _nan(case[column]), rtol=1e-6, atol=1e-9, err_msg=column
        )
    dfbetas = np.array(
        [[np.nan if x is None else x for x in row] for row in case["dfbetas"]]
    )
    np.testing.assert_allclose(frame.filter(like="dfbetas_"), dfbetas, rtol=1e-6)


@pytest.mark.parametrize("name", ["k3_moderator", "k2"])
def test_influence_without_residual_degrees_of_freedom_is_nan(name):
    """k = 3 with a moderator (every refit has k = p) and k = 2 (every refit
    has one study) used to raise ZeroDivisionError. metafor reports NA for the
    former; for the latter it fits the single remaining study with tau^2 = 0,
    which RandomEffectsMeta does not (it needs more studies than parameters), so
    the rows are NaN here while hat and weight match."""
    case, model = _fit_degenerate(name)
    with pytest.warns(UserWarning, match="no residual degrees of freedom"):
        frame = model.influence()
    assert frame[COLUMNS[:6]].isna().all().all()
    assert frame.filter(like="dfbetas_").isna().all().all()
    np.testing.assert_allclose(frame["hat"], case["hat"], rtol=1e-6)
    np.testing.assert_allclose(frame["weight"], case["weight"], rtol=1e-6)


@pytest.mark.parametrize(
    "case", REFERENCE["weighted"], ids=lambda c: f"{c['method']} {c['mods']}"
)
def test_influence_with_user_weights_matches_metafor(case):
    """rma(weights=): hat values and weights from the user weights; dffits and
    dfbetas over the sandwich covariance of all studies at tau2_(-i)."""
    X = None if case["mods"] == "~ 1" else np.asarray(case["ablat"], float)[:, None]
    model = RandomEffectsMeta(method=case["method"].lower())
    model.fit(
        X,
        np.asarray(case["yi"]),
        sample_var=np.asarray(case["vi"]),
        sample_weight=np.asarray(case["weights"], float),
    )
    frame = model.influence()
    for column in COLUMNS:
        np.testing.assert_allclose(
            frame[column], case[column], rtol=1e-6, atol=1e-9, err_msg=column
        )
    dfbetas = frame.filter(like="dfbetas_").to_numpy()
    np.testing.assert_allclose(dfbetas, np.asarray(case["dfbetas"]), rtol=1e-6)
