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
