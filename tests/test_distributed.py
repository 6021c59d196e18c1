"""Permutation tests and likelihood profiles run on a Dask cluster through joblib.

``joblib.parallel_config(backend="dask")`` sends skmeta's ``n_jobs`` refits to a
``dask.distributed`` cluster; a fixed ``random_state`` gives the serial answer.
"""

import distributed
import joblib
import numpy as np
import pytest

from skmeta import (
    LocationScaleMeta,
    RandomEffectsMeta,
    permutation_test,
    profile_likelihood,
)
from skmeta.datasets import load_bcg
from skmeta.effect_sizes import log_risk_ratio


@pytest.fixture(scope="module")
def client():
    with distributed.Client(
        processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def bcg():
    data = load_bcg()
    es = log_risk_ratio(data["tpos"], data["tneg"], data["cpos"], data["cneg"])
    return data[["ablat"]], np.asarray(es.yi), np.asarray(es.vi)


def test_permutation_test_on_dask_equals_serial(client, bcg):
    X, y, v = bcg
    kwargs = {"sample_var": v, "n_permutations": 200, "random_state": 0, "n_jobs": 2}
    serial = permutation_test(RandomEffectsMeta(), X, y, **kwargs)
    with joblib.parallel_config(backend="dask"):
        on_dask = permutation_test(RandomEffectsMeta(), X, y, **kwargs)
    assert client.scheduler_info()["workers"]  # the cluster was there
    np.testing.assert_array_equal(on_dask.p_value, serial.p_value)
    np.testing.assert_array_equal(on_dask.null_statistics, serial.null_statistics)


def test_scale_permutation_and_profile_on_dask_equal_serial(client, bcg):
    X, y, v = bcg
    Z = X.to_numpy() / 10.0
    model = LocationScaleMeta()
    kwargs = {
        "sample_var": v,
        "Z": Z,
        "part": "scale",
        "n_permutations": 60,
        "random_state": 1,
    }
    serial = permutation_test(model, X, y, **kwargs, n_jobs=1)
    grid = np.linspace(-3.0, 3.0, 7)
    profile_serial = profile_likelihood(
        model, X, y, sample_var=v, Z=Z, parameter=1, grid=grid
    )
    with joblib.parallel_config(backend="dask"):
        on_dask = permutation_test(model, X, y, **kwargs, n_jobs=2)
        profile_dask = profile_likelihood(
            model, X, y, sample_var=v, Z=Z, parameter=1, grid=grid, n_jobs=2
        )
    np.testing.assert_array_equal(on_dask.p_value, serial.p_value)
    np.testing.assert_allclose(profile_dask.loglik, profile_serial.loglik, rtol=1e-12)
