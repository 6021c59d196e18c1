"""Benchmarks of many meta-analyses at once (``skmeta.distributed.fit_outputs``).

Cases (performance targets for "many meta-analyses"):

* ``mo-reml-m1e5``: m = 10^5 outputs x k = 20 studies, intercept-only REML
  (target <= 0.5 s and >= 20x PyMARE's ``VarianceBasedLikelihoodEstimator``).
* ``mo-dl-m1e5``: the same data, DerSimonian-Laird (target >= 5x PyMARE's
  ``DerSimonianLaird``).
* ``mo-m1-k13``, ``mo-m1-k1e6``: one output (m = 1) through the vectorized engine,
  beside ``RandomEffectsMeta().fit`` on the same data (REML meta-regression; BCG
  k = 13, and k = 10^6 simulated) -- no target: whether the engine can be the
  single fit's too.
* ``mo-dask-m1e7``: m = 10^7 outputs x k = 30 studies on a Dask ``LocalCluster``
  (2 worker processes, 1 thread each), inputs generated lazily on the workers in
  chunks of outputs, REML; reported: wall time and the peak resident memory of
  each worker (target <= 2 GB per worker).  The workers' malloc thresholds are
  raised as the user guide recommends (Dask's default makes the fits about three
  times slower; the memory is within the target either way).

skmeta and PyMARE fit the same model to the same data (Wald inference:
``small_sample_correction="wald"``); the agreement printed is that of output 0 in
the table and the largest over all outputs in the notes.  skmeta's fits compute
more than PyMARE's ``fit`` does: also tau^2's standard error, Q and its p-value,
I^2, H^2, the log-likelihood and each output's coefficient table (z, p-values,
confidence intervals).

Run:  python -m benchmarks --only many   (or python -m benchmarks.bench_many).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks._common import (
    PeerResult,
    Row,
    best_time,
    default_options,
    fmt_bytes,
    fmt_time,
    peak_traced_bytes,
    render_rows,
)

GROUP = "many"
ALIASES = ("many", "mo", "multi_output")
SINGLE_FIT = "RE single fit"
PEERS = ("PyMARE", SINGLE_FIT)
SIM_TAU2 = (0.0, 0.2)  # tau^2 of the outputs: uniform on this range
WORKER_MEMORY_TARGET = 2e9
#: The workers' allocator as the user guide recommends: Dask's nanny sets
#: MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's mmap threshold at 128 kB
#: so that every large NumPy temporary is mapped afresh (three times slower fits).
WORKER_MALLOC = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 2**28,
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 2**27,
}
#: Seconds allowed to the Dask run (10^7 x 30 REML on two workers)
DASK_TIMEOUT = 1800
HERE = Path(__file__).resolve().parent


def many_data(k, m, seed=2024):
    """k studies x m outputs, v ~ U(0.01, 0.5), tau^2 ~ U(0, 0.2), mean 0.2."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.01, 0.5, size=(k, m))
    tau2 = rng.uniform(*SIM_TAU2, size=m)
    y = 0.2 + rng.standard_normal(size=(k, m)) * np.sqrt(v + tau2)
    return y, v


def fit_skmeta(y, v, method):
    from skmeta import RandomEffectsMeta
    from skmeta.distributed import fit_outputs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_outputs(RandomEffectsMeta(method=method), None, y, sample_var=v)


def pymare_estimator(method):
    """PyMARE's estimator of ``method`` with Wald inference (as skmeta's)."""
    from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator

    if method == "dl":
        return DerSimonianLaird(small_sample_correction="wald")
    return VarianceBasedLikelihoodEstimator(
        method=method.upper(), small_sample_correction="wald"
    )


def fit_pymare(y, v, method):
    est = pymare_estimator(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(y, v, np.ones((y.shape[0], 1)))
    return np.ravel(est.params_["tau2"]), np.ravel(est.params_["fe_params"])


def fit_pymare_with_statistics(y, v, method):
    """PyMARE's fit plus the statistics skmeta's fit returns and PyMARE's ``fit``
    leaves out: each output's z, p-value and confidence interval
    (``get_fe_stats``) and Q, its p-value, I^2 and H (``get_heterogeneity_stats``,
    which needs the fit to hold a ``Dataset``)."""
    from pymare import Dataset

    est = pymare_estimator(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit_dataset(Dataset(y, v, add_intercept=True))
        results = est.summary()
        return results.get_fe_stats(), results.get_heterogeneity_stats()


def _timing(fn, options):
    return best_time(
        fn,
        repeat=options["repeat"],
        min_batch=options["min_batch"],
        budget=options["budget"],
    )


def _set_target(row, target_seconds, min_ratio, options):
    parts = []
    if target_seconds is not None:
        parts.append(f"<= {fmt_time(target_seconds)}")
    if min_ratio is not None:
        parts.append(f">= {min_ratio:g}x PyMARE")
    row.target_text = ", ".join(parts)
    if options["quick"]:
        row.target_text += " (quick: other m)"
        return
    peer = row.peers.get("PyMARE")
    met = True
    if target_seconds is not None:
        met &= row.seconds <= target_seconds
    if min_ratio is not None:
        met &= peer is not None and peer.seconds is not None
        met = met and peer.seconds / row.seconds >= min_ratio
    row.met = bool(met)


def case_many(name, method, target_seconds, min_ratio, options):
    k = 20
    m = 10_000 if options["quick"] else 100_000
    y, v = many_data(k, m)
    row = Row(GROUP, name, f"{method.upper()}, m = {m:,} outputs x k = {k}", k)
    res = fit_skmeta(y, v, method)
    row.seconds = _timing(lambda: fit_skmeta(y, v, method), options).seconds
    row.peak_bytes = peak_traced_bytes(lambda: fit_skmeta(y, v, method))
    row.tau2, row.beta = float(res.tau2[0]), [float(res.estimate[0, 0])]
    if importlib.util.find_spec("pymare") is None:
        row.peers["PyMARE"] = PeerResult(status="n/a", note="PyMARE: not installed")
    else:
        tau2, beta = fit_pymare(y, v, method)
        timing = _timing(lambda: fit_pymare(y, v, method), options)
        row.peers["PyMARE"] = PeerResult(
            seconds=timing.seconds,
            status="",
            tau2=float(tau2[0]),
            beta=[float(beta[0])],
            single=timing.single,
        )
        row.notes.append(
            f"{name}: over all {m:,} outputs, max |d tau2| = "
            f"{np.max(np.abs(tau2 - res.tau2)):.1e}, max |d beta| = "
            f"{np.max(np.abs(beta - res.estimate[:, 0])):.1e} (PyMARE's bounded "
            "scalar search stops at its default xtol; skmeta converges to 1e-10)"
            if method != "dl"
            else f"{name}: over all {m:,} outputs, max |d tau2| = "
            f"{np.max(np.abs(tau2 - res.tau2)):.1e}, max |d beta| = "
            f"{np.max(np.abs(beta - res.estimate[:, 0])):.1e}"
        )
        from importlib.metadata import version

        same = _timing(lambda: fit_pymare_with_statistics(y, v, method), options)
        row.notes.append(
            f"{name}: PyMARE {version('pymare')}; with the statistics skmeta also "
            f"returns (fit_dataset, get_fe_stats, get_heterogeneity_stats) "
            f"{fmt_time(same.seconds)}, {same.seconds / row.seconds:.1f}x skmeta's "
            "time (the target is judged on the fit alone)"
        )
    row.peers[SINGLE_FIT] = PeerResult(status="-")
    _set_target(row, target_seconds, min_ratio, options)
    return row


def case_reml(options):
    return case_many("mo-reml-m1e5", "reml", 0.5, 20.0, options)


def case_dl(options):
    return case_many("mo-dl-m1e5", "dl", None, 5.0, options)


def _single_case(name, X, y, v, options):
    """One output through the engine, beside RandomEffectsMeta().fit."""
    from skmeta import RandomEffectsMeta
    from skmeta._engine._multioutput import fit_random_effects
    from skmeta.distributed import fit_outputs

    design = np.column_stack([np.ones(len(y)), X])
    moderators = list(range(1, design.shape[1]))

    def engine():
        return fit_random_effects(
            design, y[:, None], v[:, None], method="reml", moderators=moderators
        )

    def single():
        return RandomEffectsMeta().fit(X, y, sample_var=v)

    def public():
        return fit_outputs(RandomEffectsMeta(), X, y, sample_var=v)

    row = Row(GROUP, name, "REML meta-regression, one output (m = 1)", len(y))
    fits = engine()
    row.seconds = _timing(engine, options).seconds
    row.peak_bytes = peak_traced_bytes(engine)
    row.tau2, row.beta = float(fits.tau2[0]), fits.beta[0].tolist()
    est = single()
    timing = _timing(single, options)
    row.peers[SINGLE_FIT] = PeerResult(
        seconds=timing.seconds,
        status="",
        tau2=float(est.tau2_),
        beta=[float(est.intercept_), *np.atleast_1d(est.coef_)],
        note="RandomEffectsMeta().fit on the same data (validation included)",
        single=timing.single,
    )
    row.peers["PyMARE"] = PeerResult(status="-")
    row.notes.append(
        f"{name}: fit_outputs (validation, coefficient table) takes "
        f"{fmt_time(_timing(public, options).seconds)}; the engine alone "
        f"{fmt_time(row.seconds)}"
    )
    return row


def case_m1_k13(options):
    from benchmarks.bench_random_effects import bcg_data

    X, y, v = bcg_data(True)
    return _single_case("mo-m1-k13", X, y, v, options)


def case_m1_k1e6(options):
    from benchmarks.bench_random_effects import simulated_data

    X, y, v = simulated_data(20_000 if options["quick"] else 1_000_000)
    return _single_case("mo-m1-k1e6", X, y, v, options)


def _peak_rss_bytes():
    """Peak resident set of this process (run on each Dask worker)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _import_skmeta():
    import skmeta.distributed  # noqa: F401 - the import itself is the point


def dask_run(m, chunk, k=30):
    """Fit m outputs x k studies, generated on a LocalCluster's workers.

    Returns
    -------
    dict
        ``seconds`` (wall time of the computation), ``peak`` and ``baseline``
        (peak resident bytes of each worker, after the work and after importing
        skmeta) and summaries of the results.
    """
    import dask
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    from skmeta import RandomEffectsMeta
    from skmeta.distributed import fit_outputs

    with (
        dask.config.set(WORKER_MALLOC),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_import_skmeta)
        baseline = client.run(_peak_rss_bytes)
        rng = da.random.default_rng(7)
        v = rng.uniform(0.01, 0.5, size=(k, m), chunks=(k, chunk))
        tau2 = rng.uniform(*SIM_TAU2, size=m, chunks=chunk)
        y = 0.2 + rng.standard_normal(size=(k, m), chunks=(k, chunk)) * da.sqrt(
            v + tau2
        )
        res = fit_outputs(RandomEffectsMeta(), None, y, sample_var=v)
        start = time.perf_counter()
        hits, mean_tau2, failed, studies = dask.compute(
            (res.p_value[:, 0] < 5e-8).sum(),
            res.tau2.mean(),
            (~res.converged).sum(),
            res.n_studies.sum(),
        )
        seconds = time.perf_counter() - start
        peak = client.run(_peak_rss_bytes)
    return {
        "seconds": seconds,
        "peak": list(peak.values()),
        "baseline": list(baseline.values()),
        "hits": int(hits),
        "mean_tau2": float(mean_tau2),
        "failed": int(failed),
        "studies": int(studies),
    }


def case_dask(options):
    """m = 10^7 x k = 30 on a LocalCluster of 2 worker processes, lazy inputs.

    Run in a fresh process, so that the workers' memory is theirs alone.
    """
    from benchmarks._common import python_child, run_json_child

    name = "mo-dask-m1e7"
    k = 30
    m, chunk = (100_000, 25_000) if options["quick"] else (10_000_000, 250_000)
    row = Row(GROUP, name, f"REML on Dask, m = {m:,} x k = {k}", k)
    for peer in PEERS:
        row.peers[peer] = PeerResult(status="-")
    row.target_text = "<= 2 GB/worker"
    if importlib.util.find_spec("distributed") is None:
        row.notes.append(f"{name}: not run (dask.distributed not installed)")
        return row
    child = run_json_child(
        python_child("benchmarks.bench_many", "--dask", m, chunk),
        timeout=DASK_TIMEOUT,
        threads=options["threads"],
        cwd=HERE.parent,
    )
    if child.data is None:
        reason = "timed out" if child.timed_out else child.error
        row.notes.append(f"{name}: not measured ({reason})")
        return row
    data = child.data
    row.seconds = data["seconds"]
    row.peak_bytes = max(data["peak"])
    if not options["quick"]:
        row.met = row.peak_bytes <= WORKER_MEMORY_TARGET
    else:
        row.target_text += " (quick: other m)"
    row.notes.append(
        f"{name}: {m:,} outputs x {k} studies in chunks of {chunk:,} outputs "
        f"({m // chunk} tasks; y and v generated on the workers, nothing "
        "collected; workers' malloc thresholds raised as the user guide "
        f"recommends); {fmt_time(row.seconds)} wall; peak resident memory per "
        f"worker {', '.join(fmt_bytes(b) for b in data['peak'])} (after importing "
        f"skmeta: {', '.join(fmt_bytes(b) for b in data['baseline'])}); "
        f"{data['hits']:,} outputs with p < 5e-8, mean tau^2 "
        f"{data['mean_tau2']:.4f}, {data['failed']} not converged, "
        f"{data['studies']:,} study-outputs"
    )
    return row


CASES = {
    "mo-reml-m1e5": case_reml,
    "mo-dl-m1e5": case_dl,
    "mo-m1-k13": case_m1_k13,
    "mo-m1-k1e6": case_m1_k1e6,
    "mo-dask-m1e7": case_dask,
}


def selected(case, only):
    """Whether ``case`` is selected by the ``--only`` names (None: all)."""
    if not only:
        return True
    return any(name in ALIASES or case.startswith(name) for name in only)


def benchmark_rows(quick=False, only=None, use_r=True, timeout=None, threads=None):
    """Run the many-outputs cases and return their rows.

    Parameters
    ----------
    quick : bool, default=False
        Small sizes and one timing batch (for the smoke test); targets are then
        not assessed.
    only : list of str, default=None
        Case names, prefixes or the group's names.
    use_r : bool, default=True
        Unused (metafor fits one output at a time).
    timeout : float, default=None
        Unused (the peers run in this process).
    threads : int, default=None
        Unused (see ``python -m benchmarks --threads``).

    Returns
    -------
    list of benchmarks._common.Row
    """
    options = default_options(quick, use_r, timeout, threads)
    return [fn(options) for case, fn in CASES.items() if selected(case, only)]


def main(argv=None):
    """Print the table of the many-outputs cases."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append")
    parser.add_argument("--dask", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dask:  # the child of case_dask: one JSON line
        print(json.dumps(dask_run(*args.dask)))
        return 0
    rows = benchmark_rows(args.quick, args.only)
    print(render_rows(rows, list(PEERS)))
    for row in rows:
        for note in row.notes:
            print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
