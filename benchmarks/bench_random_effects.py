"""Benchmarks of RandomEffectsMeta against metafor, pimeta, PyMARE and statsmodels.

Cases (with their performance targets):

* ``re-k13``: REML meta-regression of the BCG log risk ratios on absolute
  latitude (k = 13; target <= 0.5 ms).
* ``re-k13-dl``: DerSimonian-Laird random-effects meta-analysis of the same
  data, intercept only (no target): the one model that statsmodels'
  ``combine_effects`` fits itself, so that statsmodels is timed on a full fit.
* ``re-k1e4``, ``re-k1e6``: REML meta-regression with two simulated moderators
  (targets <= 5 ms and <= 0.3 s).
* ``re-mem-k1e6``: peak memory at k = 10^5 and 10^6 (target: O(k)).
* ``re-cv-k1000``: 5-fold ``cross_validate`` of ``Pipeline(ColumnTransformer ->
  RandomEffectsMeta)`` at k = 1,000 with metadata routing, ``sample_var``
  routed to fit and score (target <= 50 ms).
* ``re-cr2-4x3000``: REML with the CR2 cluster-robust covariance, 4 clusters of
  3,000 studies (no target; skmeta only).

Every peer is optional; a missing one shows "n/a".  Peers that build dense k x k
matrices (metafor's ``rma``, pimeta's transcription of it) are run in a
subprocess killed after ``timeout`` seconds at large k, and not at all at
k = 10^6 (8 TB per k x k matrix).

Run:  python -m benchmarks --only random_effects   (or python -m
benchmarks.bench_random_effects); see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import resource
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._common import (
    PeerResult,
    Row,
    Timing,
    best_time,
    default_options,
    fmt_bytes,
    fmt_mb,
    fmt_time,
    peak_traced_bytes,
    python_child,
    render_rows,
    run_json_child,
)

GROUP = "random_effects"
PEERS = ("metafor", "pimeta", "PyMARE", "statsmodels", "LinearRegression")
HERE = Path(__file__).resolve().parent
R_SCRIPT = HERE / "metafor_timing.R"
# pimeta runs in the harness's process up to this k, in a killable child above
PIMETA_INPROCESS_MAX_K = 500
DENSE_BYTES_PER_MATRIX = 8  # float64
# largest k at which the peers with dense k x k algebra (metafor, pimeta) are tried
DENSE_MAX_K = 10_000

SIM_BETA = (0.2, 0.3, -0.1)
SIM_TAU2 = 0.1


# --------------------------------------------------------------------------- #
# data
# --------------------------------------------------------------------------- #
@functools.cache
def bcg_data(moderator=True):
    """BCG log risk ratios (k = 13); X = absolute latitude, or None."""
    from skmeta.datasets import load_bcg
    from skmeta.effect_sizes import log_risk_ratio

    bcg = load_bcg()
    es = log_risk_ratio(bcg["tpos"], bcg["tneg"], bcg["cpos"], bcg["cneg"])
    X = bcg[["ablat"]].to_numpy(dtype=float) if moderator else None
    return X, np.asarray(es.yi, dtype=float), np.asarray(es.vi, dtype=float)


@functools.cache
def simulated_data(k, seed=2024):
    """k studies, two standard-normal moderators, v ~ U(0.005, 0.5), tau^2 = 0.1."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(k, 2))
    v = rng.uniform(0.005, 0.5, size=k)
    y = SIM_BETA[0] + X @ np.asarray(SIM_BETA[1:])
    y = y + rng.normal(size=k) * np.sqrt(v + SIM_TAU2)
    return X, y, v


def _design(X, k):
    ones = np.ones((k, 1))
    return ones if X is None else np.column_stack([ones, X])


# --------------------------------------------------------------------------- #
# fitting functions: each returns (tau2, [intercept, *coef])
# --------------------------------------------------------------------------- #
def fit_skmeta(X, y, v, method):
    from skmeta import RandomEffectsMeta

    model = RandomEffectsMeta(method=method).fit(X, y, sample_var=v)
    return model.tau2_, [model.intercept_, *np.atleast_1d(model.coef_)]


def fit_pymare(X, y, v, method):
    from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator

    if method == "dl":
        est = DerSimonianLaird()
    else:
        est = VarianceBasedLikelihoodEstimator(method=method.upper())
    est.fit(y[:, None], v[:, None], _design(X, len(y)))
    return (
        float(np.ravel(est.params_["tau2"])[0]),
        np.ravel(est.params_["fe_params"]).tolist(),
    )


def fit_pimeta(X, y, v, method):
    import pimeta

    result = pimeta.rma(y, v, mods=X, method=method.upper())
    return float(result.tau2), [float(b) for b in result.b]


def fit_statsmodels_combine(y, v, method):
    """statsmodels' own random-effects meta-analysis (intercept only)."""
    from statsmodels.stats.meta_analysis import combine_effects

    method_re = {"dl": "chi2", "pm": "iterated"}[method]
    res = combine_effects(y, v, method_re=method_re)
    return float(res.tau2), [float(res.mean_effect_re)]


def fit_statsmodels_wls(X, y, v, tau2):
    """statsmodels' WLS with weights 1/(v + tau2) at a given tau2."""
    import statsmodels.api as sm

    res = sm.WLS(y, _design(X, len(y)), weights=1.0 / (v + tau2)).fit()
    return float(tau2), np.asarray(res.params).tolist()


def fit_linear_regression(X, y, v):
    """scikit-learn's weighted least squares with weights 1/v: the yardstick of a
    scikit-learn estimator's fixed cost (no tau^2; not an agreement peer)."""
    from sklearn.linear_model import LinearRegression

    if X is None:  # intercept only: the column of ones, no separate intercept
        LinearRegression(fit_intercept=False).fit(
            np.ones((len(y), 1)), y, sample_weight=1.0 / v
        )
    else:
        LinearRegression().fit(X, y, sample_weight=1.0 / v)
    return None, []


def run_linear_regression(X, y, v, options):
    result = _timed_inprocess(lambda: fit_linear_regression(X, y, v), options)
    result.beta = None
    result.note = (
        "LinearRegression: scikit-learn's LinearRegression().fit(X, y, "
        "sample_weight=1/v) (fixed-effect weights, no tau^2): the cost of a plain "
        "scikit-learn fit on the same data"
    )
    return result


def _available(module):
    return importlib.util.find_spec(module) is not None


def _rscript():
    return shutil.which("Rscript")


# --------------------------------------------------------------------------- #
# peers
# --------------------------------------------------------------------------- #
def _timed_inprocess(fn, options):
    try:
        tau2, beta = fn()
        timing = best_time(
            fn,
            repeat=options["repeat"],
            min_batch=options["min_batch"],
            budget=options["budget"],
        )
    except Exception as exc:  # a peer's failure is reported, never fatal
        return PeerResult(status=f"error: {type(exc).__name__}", note=str(exc)[:200])
    return PeerResult(
        seconds=timing.seconds,
        status="",
        tau2=tau2,
        beta=list(beta),
        single=timing.single,
    )


def _from_child(child, timeout, what):
    if child.timed_out:
        return PeerResult(
            status=f"> {timeout:g} s (timed out)",
            note=(
                f"killed after {timeout:g} s: one fit did not finish (start-up "
                "included; the time shown is a lower bound)"
            ),
        )
    if child.data is None:
        return PeerResult(status="error", note=f"{what}: {child.error}")
    data = child.data
    seconds = data.get("seconds")
    if seconds is None and "ms_per_fit" in data:
        seconds = data["ms_per_fit"] / 1e3
    return PeerResult(
        seconds=seconds,
        status="",
        tau2=data.get("tau2"),
        beta=data.get("beta"),
        single=bool(data.get("single", False)),
    )


def run_metafor(X, y, v, method, options):
    """Time ``metafor::rma`` on the same data through ``Rscript``."""
    if not options["use_r"]:
        return PeerResult(status="off (--no-r)")
    rscript = _rscript()
    if rscript is None:
        return PeerResult(status="n/a", note="metafor: Rscript not found")
    import pandas as pd

    columns = {"yi": y, "vi": v}
    if X is not None:
        for j in range(X.shape[1]):
            columns[f"x{j}"] = X[:, j]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        pd.DataFrame(columns).to_csv(path, index=False, float_format="%.17g")
        cmd = [
            rscript,
            str(R_SCRIPT),
            str(path),
            method.upper(),
            str(options["repeat"]),
            str(options["min_batch"]),
            str(options["budget"]),
        ]
        child = run_json_child(
            cmd, timeout=options["timeout"], threads=options["threads"]
        )
    result = _from_child(child, options["timeout"], "metafor")
    if child.data is not None:
        result.note = (
            f"metafor {child.data.get('metafor')} on R {child.data.get('R')} "
            "(Rscript start-up not timed)"
        )
    return result


def run_pimeta(X, y, v, method, options):
    """Time ``pimeta.rma`` in process (small k) or in a killable child."""
    if not _available("pimeta"):
        return PeerResult(status="n/a", note="pimeta: not installed")
    k = len(y)
    if k <= PIMETA_INPROCESS_MAX_K:
        return _timed_inprocess(lambda: fit_pimeta(X, y, v, method), options)
    return _run_worker("pimeta", X, y, v, method, options)


def _run_worker(peer, X, y, v, method, options):
    child = _worker_child(peer, X, y, v, method, options)
    return _from_child(child, options["timeout"], peer)


def _worker_child(peer, X, y, v, method, options):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        arrays = {"y": y, "v": v}
        if X is not None:
            arrays["X"] = X
        np.savez(path, **arrays)
        cmd = python_child(
            "benchmarks.bench_random_effects",
            "--worker",
            peer,
            "--data",
            path,
            "--method",
            method,
            "--repeat",
            options["repeat"],
            "--min-batch",
            options["min_batch"],
            "--budget",
            options["budget"],
        )
        child = run_json_child(
            cmd,
            timeout=options["timeout"],
            threads=options["threads"],
            cwd=HERE.parent,
        )
    return child


def run_pymare(X, y, v, method, options):
    if not _available("pymare"):
        return PeerResult(status="n/a", note="PyMARE: not installed")
    return _timed_inprocess(lambda: fit_pymare(X, y, v, method), options)


def run_statsmodels(X, y, v, method, tau2, options):
    if not _available("statsmodels"):
        return PeerResult(status="n/a", note="statsmodels: not installed")
    if X is None and method in ("dl", "pm"):
        result = _timed_inprocess(
            lambda: fit_statsmodels_combine(y, v, method), options
        )
        result.note = "statsmodels: combine_effects (its own tau^2 estimator)"
        return result
    result = _timed_inprocess(lambda: fit_statsmodels_wls(X, y, v, tau2), options)
    result.note = (
        "statsmodels has no random-effects meta-regression: timed is WLS with "
        "weights 1/(v + tau^2) at skmeta's tau^2 (no tau^2 estimation; "
        "|d tau2| = 0 by construction)"
    )
    return result


def _dense_skip(name, k):
    size = DENSE_BYTES_PER_MATRIX * k * k
    what = {
        "metafor": "rma() forms dense k x k matrices",
        "pimeta": "a transcription of metafor's rma(), with its dense k x k matrices",
    }[name]
    return PeerResult(
        status="not run (k x k)",
        note=(
            f"not run: {what} ({fmt_bytes(size)} each at k = {k:,}; above "
            f"k = {DENSE_MAX_K:,} such a fit exceeds the time or memory limits)"
        ),
    )


# --------------------------------------------------------------------------- #
# cases
# --------------------------------------------------------------------------- #
def _fit_case(case, description, X, y, v, method, target, options):
    k = len(y)
    row = Row(GROUP, case, description, k)
    tau2, beta = fit_skmeta(X, y, v, method)
    row.tau2, row.beta = tau2, beta
    timing = best_time(
        lambda: fit_skmeta(X, y, v, method),
        repeat=options["repeat"],
        min_batch=options["min_batch"],
        budget=options["budget"],
    )
    row.seconds = timing.seconds
    row.peak_bytes = peak_traced_bytes(lambda: fit_skmeta(X, y, v, method))
    _set_target(row, target, options)

    dense_ok = k <= DENSE_MAX_K
    row.peers["metafor"] = (
        run_metafor(X, y, v, method, options) if dense_ok else _dense_skip("metafor", k)
    )
    row.peers["pimeta"] = (
        run_pimeta(X, y, v, method, options) if dense_ok else _dense_skip("pimeta", k)
    )
    row.peers["PyMARE"] = run_pymare(X, y, v, method, options)
    row.peers["statsmodels"] = run_statsmodels(X, y, v, method, tau2, options)
    row.peers["LinearRegression"] = run_linear_regression(X, y, v, options)
    if target is not None and k <= 100 and row.met is not None:
        # small k: also no slower than a plain scikit-learn fit in the same run
        plain = row.peers["LinearRegression"].seconds
        row.target_text += ", <= LinearRegression"
        row.met = row.met and plain is not None and row.seconds <= plain
    return row


def _set_target(row, target, options, seconds=None):
    if target is None:
        return
    row.target_seconds = target
    row.target_text = f"<= {fmt_time(target)}"
    if options["quick"]:
        row.target_text += " (quick: other k)"
        return
    value = row.seconds if seconds is None else seconds
    if value is not None:
        row.met = value <= target


def case_k13(options):
    X, y, v = bcg_data(True)
    return _fit_case(
        "re-k13",
        "REML meta-regression, BCG log RR ~ ablat",
        X,
        y,
        v,
        "reml",
        0.5e-3,
        options,
    )


def case_k13_dl(options):
    X, y, v = bcg_data(False)
    return _fit_case(
        "re-k13-dl",
        "DL random-effects meta-analysis, BCG log RR (intercept only)",
        X,
        y,
        v,
        "dl",
        None,
        options,
    )


def case_k1e4(options):
    k = 1_000 if options["quick"] else 10_000
    X, y, v = simulated_data(k)
    return _fit_case(
        "re-k1e4",
        "REML meta-regression, 2 simulated moderators",
        X,
        y,
        v,
        "reml",
        5e-3,
        options,
    )


def case_k1e6(options):
    k = 20_000 if options["quick"] else 1_000_000
    X, y, v = simulated_data(k)
    return _fit_case(
        "re-k1e6",
        "REML meta-regression, 2 simulated moderators",
        X,
        y,
        v,
        "reml",
        0.3,
        options,
    )


def case_memory(options):
    """Peak traced memory of one REML fit at k/10 and k; O(k) means ratio ~10."""
    k_big = 20_000 if options["quick"] else 1_000_000
    k_small = k_big // 10
    peaks = {}
    for k in (k_small, k_big):
        X, y, v = simulated_data(k)
        fit_skmeta(X, y, v, "reml")  # warm-up
        peaks[k] = peak_traced_bytes(lambda X=X, y=y, v=v: fit_skmeta(X, y, v, "reml"))
    row = Row(GROUP, "re-mem-k1e6", "peak memory of one REML fit", k_big)
    row.peak_bytes = peaks[k_big]
    for name in PEERS:
        row.peers[name] = PeerResult(status="-")
    ratio = peaks[k_big] / max(peaks[k_small], 1)
    row.target_text = "O(k) memory"
    if options["quick"]:
        row.target_text += " (quick: other k)"
    else:
        # linear growth gives ~10; anything from a k x k matrix would give ~100
        row.met = ratio <= 12.0
    rss = _worker_child("skmeta-rss", *simulated_data(k_big), "reml", options)
    if rss.data is not None:
        rss_text = (
            f"{fmt_bytes(rss.data['rss_bytes'])} (growth of the peak resident set "
            f"[{rss.data['how']}] during the fit, in a fresh process)"
        )
    elif rss.timed_out:
        rss_text = "not measured (timed out)"
    else:
        rss_text = f"not measured ({rss.error})"
    row.notes.append(
        f"re-mem-k1e6: traced peak {fmt_mb(peaks[k_small])} at k = {k_small:,}, "
        f"{fmt_mb(peaks[k_big])} at k = {k_big:,} (ratio {ratio:.3g}; O(k) gives "
        f"~10, O(k^2) ~100; {peaks[k_big] / k_big:.0f} bytes per study); "
        f"resident set: {rss_text}; one dense k x k matrix would need "
        f"{fmt_bytes(DENSE_BYTES_PER_MATRIX * k_big**2)}"
    )
    return row


def case_cv(options):
    """5-fold cross_validate of Pipeline(ColumnTransformer -> RandomEffectsMeta)."""
    import pandas as pd
    import sklearn
    from sklearn.compose import ColumnTransformer
    from sklearn.model_selection import KFold, cross_validate
    from sklearn.pipeline import Pipeline

    from skmeta import RandomEffectsMeta

    k = 200 if options["quick"] else 1_000
    X, y, v = simulated_data(k)
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"x0": X[:, 0], "x1": X[:, 1], "noise": rng.normal(size=k)})
    pipe = Pipeline(
        [
            ("select", ColumnTransformer([("mods", "passthrough", ["x0", "x1"])])),
            ("meta", RandomEffectsMeta()),
        ]
    )
    cv = KFold(5, shuffle=True, random_state=0)

    def run():
        return cross_validate(pipe, frame, y, cv=cv, params={"sample_var": v})

    with sklearn.config_context(enable_metadata_routing=True):
        scores = run()["test_score"]
        timing = best_time(
            run,
            repeat=options["repeat"],
            min_batch=options["min_batch"],
            budget=options["budget"],
        )
        peak = peak_traced_bytes(run)
    row = Row(
        GROUP,
        "re-cv-k1000",
        "5-fold cross_validate, Pipeline(ColumnTransformer -> RandomEffectsMeta), "
        "sample_var routed",
        k,
    )
    row.seconds = timing.seconds
    row.peak_bytes = peak
    _set_target(row, 50e-3, options)
    for name in PEERS:
        row.peers[name] = PeerResult(status="-")
    row.notes.append(
        f"re-cv-k1000: held-out log-likelihoods {np.round(scores, 1).tolist()} "
        "(time is per cross_validate call: 5 fits + 5 scores)"
    )
    return row


def case_cr2_large_clusters(options):
    """CR2 cluster-robust REML fit with 4 clusters of 3,000 studies each."""
    from skmeta import RandomEffectsMeta

    n = 300 if options["quick"] else 3_000
    X, y, v = simulated_data(4 * n)
    groups = np.repeat(np.arange(4), n)
    model = RandomEffectsMeta(cluster_robust="cr2")

    def run():
        return model.fit(X, y, sample_var=v, groups=groups)

    timing = best_time(
        run,
        repeat=options["repeat"],
        min_batch=options["min_batch"],
        budget=options["budget"],
    )
    row = Row(
        GROUP,
        "re-cr2-4x3000",
        "REML + CR2 cluster-robust covariance, 4 clusters of 3,000 studies",
        4 * n,
    )
    row.seconds = timing.seconds
    row.peak_bytes = peak_traced_bytes(run)
    row.tau2, row.beta = model.tau2_, model._beta
    for name in PEERS:
        row.peers[name] = PeerResult(status="-")
    row.notes.append(
        "re-cr2-4x3000: the CR2 blocks G_j^{-1/2} Q_j come from a quadrature with "
        "Woodbury solves (O(n_j p^2) per node), not from 3,000 x 3,000 "
        "eigendecompositions (which took 18.5 s and 1.5 GB stacked); peers not "
        "timed (clubSandwich forms the dense blocks)"
    )
    return row


CASES = {
    "re-k13": case_k13,
    "re-k13-dl": case_k13_dl,
    "re-k1e4": case_k1e4,
    "re-k1e6": case_k1e6,
    "re-mem-k1e6": case_memory,
    "re-cv-k1000": case_cv,
    "re-cr2-4x3000": case_cr2_large_clusters,
}


def selected(case, only):
    """Whether ``case`` is selected by the ``--only`` names (None: all)."""
    if not only:
        return True
    return any(
        name in (GROUP, "re", "random_effects", "RandomEffectsMeta")
        or case == name
        or case.startswith(name)
        for name in only
    )


def benchmark_rows(quick=False, only=None, use_r=True, timeout=None, threads=None):
    """Run the RandomEffectsMeta cases and return their rows.

    Parameters
    ----------
    quick : bool, default=False
        Small sizes and one timing batch (for the smoke test); targets are then
        not assessed.
    only : list of str, default=None
        Case names, prefixes or the group name ``"random_effects"``.
    use_r : bool, default=True
        Time metafor through ``Rscript`` when available.
    timeout : float, default=None
        Seconds after which a peer's subprocess is killed (20, or 10 when quick).
    threads : int, default=None
        BLAS threads of the peers' subprocesses.

    Returns
    -------
    list of benchmarks._common.Row
    """
    options = default_options(quick, use_r, timeout, threads)
    rows = []
    for case, fn in CASES.items():
        if selected(case, only):
            rows.append(fn(options))
    return rows


# --------------------------------------------------------------------------- #
# subprocess worker
# --------------------------------------------------------------------------- #
def _proc_status_kb(field):
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(field)


def rss_growth(fn):
    """Growth of the peak resident set during ``fn()``, in bytes.

    On Linux the peak (``VmHWM``) is first reset to the current resident set
    through ``/proc/self/clear_refs``; elsewhere ``ru_maxrss`` is used, which
    is inherited from the parent process across ``exec`` on Linux and can hide
    the growth.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        before = _proc_status_kb("VmRSS")
        fn()
        return {"rss_bytes": 1024 * (_proc_status_kb("VmHWM") - before), "how": "VmHWM"}
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # kilobytes on Linux, bytes on macOS
        scale = 1 if sys.platform == "darwin" else 1024
        return {"rss_bytes": scale * (after - before), "how": "ru_maxrss"}


# --------------------------------------------------------------------------- #
# worker entry point
# --------------------------------------------------------------------------- #
def _worker(args):
    data = np.load(args.data)
    X = data["X"] if "X" in data.files else None
    y, v = data["y"], data["v"]
    if args.worker == "skmeta-rss":
        fit_skmeta(X[:10], y[:10], v[:10], args.method)  # imports, caches
        print(json.dumps(rss_growth(lambda: fit_skmeta(X, y, v, args.method))))
        return 0
    fit = {"pimeta": fit_pimeta, "pymare": fit_pymare}[args.worker]
    tau2, beta = fit(X, y, v, args.method)
    timing: Timing = best_time(
        lambda: fit(X, y, v, args.method),
        repeat=args.repeat,
        min_batch=args.min_batch,
        budget=args.budget,
    )
    print(
        json.dumps(
            {
                "seconds": timing.seconds,
                "calls": timing.calls,
                "single": timing.single,
                "tau2": float(tau2),
                "beta": [float(b) for b in beta],
            }
        )
    )
    return 0


def main(argv=None):
    """Print the RandomEffectsMeta table (or run as a peer worker)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-r", action="store_true")
    parser.add_argument("--only", action="append")
    parser.add_argument("--timeout", type=float)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="reml", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument("--min-batch", type=float, default=0.05, help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=float, default=5.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args)
    rows = benchmark_rows(args.quick, args.only, not args.no_r, args.timeout)
    print(render_rows(rows, list(PEERS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
