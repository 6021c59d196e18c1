"""Many meta-analyses on a Dask cluster: inputs chunked along the outputs.

``fit_outputs`` with Dask arrays fits each chunk of outputs on a worker of a
``dask.distributed.LocalCluster`` (two worker processes) and returns Dask arrays;
computed, they equal the in-memory fit of the same data output by output (the
same engine on the same columns: to rounding), including the false discovery
rate q-values, whose ranking gathers only the p-values.
"""

import warnings

import numpy as np
import pytest

from skmeta import RandomEffectsMeta
from skmeta.distributed import fit_outputs

da = pytest.importorskip("dask.array", reason="pip install '.[dask]'")
distributed = pytest.importorskip("distributed", reason="pip install '.[dask]'")

FIELDS = (
    "n_studies",
    "tau2",
    "tau2_se",
    "estimate",
    "se",
    "statistic",
    "p_value",
    "ci_lower",
    "ci_upper",
    "q",
    "q_pvalue",
    "i2",
    "h2",
    "qm",
    "qm_pvalue",
    "loglik",
    "converged",
    "q_value",
)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


def _data(seed=0, k=15, m=400):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(k, 1))
    V = rng.uniform(0.01, 0.3, size=(k, m))
    Y = 0.1 + 0.3 * X + rng.normal(size=(k, m)) * np.sqrt(V + rng.uniform(0, 0.2, m))
    Y[rng.random((k, m)) < 0.2] = np.nan  # studies missing for some outputs
    Y[:, 5] = np.nan  # an output with no study
    return X, Y, V


def _assert_equal_fits(lazy, eager):
    assert lazy.is_lazy and not eager.is_lazy
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        computed = lazy.compute()
    assert any("no more studies than" in str(w.message) for w in caught)
    assert computed.terms == eager.terms
    for name in FIELDS:
        ours, ref = getattr(computed, name), getattr(eager, name)
        assert ours.shape == ref.shape, name
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0, err_msg=name)
    return computed


@pytest.mark.parametrize("method", ["reml", "dl"])
def test_chunks_on_workers_equal_the_in_memory_fit(client, method):
    X, Y, V = _data()
    est = RandomEffectsMeta(method=method, inference="knapp-hartung", missing="drop")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eager = fit_outputs(est, X, Y, sample_var=V, fdr="bh")
    # chunked along the outputs, and (rechunked inside) along the studies
    Yd = da.from_array(Y, chunks=(5, 150))
    Vd = da.from_array(V, chunks=(15, 150))
    lazy = fit_outputs(est, X, Yd, sample_var=Vd, fdr="bh")
    assert lazy.tau2.chunks == ((150, 150, 100),)
    assert "lazy Dask arrays in 3 chunk(s)" in str(lazy)
    assert client.scheduler_info()["workers"]  # the cluster is there
    computed = _assert_equal_fits(lazy, eager)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the output without studies, counted
        frame = lazy.to_frame()
    np.testing.assert_array_equal(frame["tau2"], computed.tau2)


def test_shared_sampling_variances_and_lazy_inputs(client):
    """Inputs generated on the workers (nothing collected), v shared by outputs."""
    k, m = 12, 1_000
    rng = da.random.default_rng(1)
    Yd = rng.normal(size=(k, m), chunks=(k, 250)) * 0.4 + 0.2
    v = np.linspace(0.02, 0.2, k)
    lazy = fit_outputs(RandomEffectsMeta(), None, Yd, sample_var=v)
    significant = (lazy.p_value[:, 0] < 0.05).sum()  # reduced on the cluster
    assert 0 < int(significant.compute()) <= m
    Y = Yd.compute()
    eager = fit_outputs(RandomEffectsMeta(), None, Y, sample_var=v)
    np.testing.assert_allclose(lazy.tau2.compute(), eager.tau2, rtol=1e-12)


def test_invalid_chunks_raise_when_computed(client):
    X, Y, V = _data(m=100)
    lazy = fit_outputs(
        RandomEffectsMeta(), X, da.from_array(Y, chunks=(15, 50)), sample_var=V
    )
    with pytest.raises(ValueError, match="y contains NaN"):
        lazy.tau2.compute()
