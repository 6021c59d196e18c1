"""Benchmarks of MultilevelMeta against metafor's rma.mv (dense and sparse) and pimeta.

Cases (with their performance targets):

* ``ml-3lev-2400``: three-level random-intercept model (REML), 2,400 effect
  sizes in 300 clusters of 8 (``random = ~ 1 | cluster/es``), one moderator
  (target <= 50 ms; metafor measured at 526 s dense, 4.1 s sparse).
* ``ml-3lev-1e6``: the same model with 10^6 effect sizes in 10^5 clusters
  (target <= 10 s; no peer can fit it: metafor's dense path needs 8 TB, its
  sparse path and pimeta are not attempted at this size).
* ``ml-slope-2400``: 2,400 effect sizes in 300 clusters with an unstructured
  random slope of the moderator at the cluster level (no target).
* ``ml-che-cr2-2400``: the correlated-and-hierarchical-effects model with
  robust variance estimation: sampling correlation rho = 0.6 within clusters,
  three levels, CR2 with Satterthwaite df and the HTZ test, 2,400 effect sizes
  in 300 clusters (target <= 100 ms and >= 50x metafor's ``rma.mv(V)`` +
  ``robust(clubSandwich = TRUE)``; V is built before metafor's timing starts).

Peers: metafor's ``rma.mv`` with ``sparse=TRUE`` (column "metafor") and its
dense default (a note under the table: it is killed after the timeout), and
pimeta's ``rma_mv`` (a dense NumPy transcription of metafor), run in a
subprocess killed after the timeout. Agreement of the estimates is reported
(``|delta tau2|`` is that of the outer-level variance).

Run:  python -m benchmarks --only multilevel
(or python -m benchmarks.bench_multilevel)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._common import (
    PeerResult,
    Row,
    best_time,
    default_options,
    fmt_time,
    peak_traced_bytes,
    python_child,
    render_rows,
    run_json_child,
    with_r_timing,
)

GROUP = "multilevel"
PEERS = ("metafor", "pimeta")

R_CODE = r"""
suppressPackageStartupMessages({library(metafor); library(jsonlite)})
a <- commandArgs(trailingOnly = TRUE)
dat <- read.csv(a[1]); sparse <- a[2] == "sparse"; slope <- a[3] == "slope"
repeats <- as.integer(a[4]); min_batch <- as.numeric(a[5]); budget <- as.numeric(a[6])
fit <- function() {
  if (slope) {
    rma.mv(yi, vi, mods = ~ x, random = list(~ x | cluster, ~ 1 | es), struct = "GEN",
           data = dat, sparse = sparse)
  } else {
    rma.mv(yi, vi, mods = ~ x, random = ~ 1 | cluster/es, data = dat, sparse = sparse)
  }
}
timing <- best_time(fit, repeats, min_batch, budget); r <- timing$value
tau2 <- if (slope) r$tau2[1] else r$sigma2[1]
out <- list(ms_per_fit = 1000 * timing$seconds, calls = timing$calls,
            single = timing$single,
            tau2 = tau2, beta = as.vector(coef(r)))
cat(toJSON(out, auto_unbox = TRUE, digits = NA), "\n")
"""


R_CHE_CODE = r"""
suppressPackageStartupMessages({library(metafor); library(clubSandwich);
  library(Matrix); library(jsonlite)})
a <- commandArgs(trailingOnly = TRUE)
dat <- read.csv(a[1]); rho <- as.numeric(a[2])
repeats <- as.integer(a[3]); min_batch <- as.numeric(a[4]); budget <- as.numeric(a[5])
# V = vcalc(vi, cluster, obs = es, rho) (distinct es), built block by block
# (vcalc's own R loop takes ~40 s at this size and is not what is timed)
blocks <- lapply(split(dat$vi, dat$cluster), function(v) {
  s <- sqrt(v); B <- rho * outer(s, s); diag(B) <- v; B })
V <- bdiag(blocks)
fit <- function() {
  r <- rma.mv(yi, V, mods = ~ x, random = ~ 1 | cluster/es, data = dat, sparse = TRUE)
  robust(r, cluster = dat$cluster, clubSandwich = TRUE)
}
timing <- best_time(fit, repeats, min_batch, budget); r <- timing$value
out <- list(ms_per_fit = 1000 * timing$seconds, calls = timing$calls,
            single = timing$single,
            tau2 = r$sigma2[1], beta = as.vector(coef(r)), se = as.vector(r$se),
            df = as.vector(r$ddf))
cat(toJSON(out, auto_unbox = TRUE, digits = NA), "\n")
"""

#: The correlated-and-hierarchical-effects case: sampling correlation and the
#: least time the metafor child gets (one rma.mv + robust fit takes ~10 s).
CHE_RHO = 0.6
CHE_MIN_TIMEOUT = 120.0


def simulated_data(n_clusters, per_cluster, *, slope=False, seed=2024):
    """Three-level data: effects (level 1) in clusters, one moderator ``x``."""
    rng = np.random.default_rng(seed)
    k = n_clusters * per_cluster
    cluster = np.repeat(np.arange(n_clusters), per_cluster)
    x = rng.normal(size=k)
    v = rng.uniform(0.01, 0.1, k)
    u = rng.normal(0, 0.3, n_clusters)[cluster]
    if slope:
        u = u + rng.normal(0, 0.1, n_clusters)[cluster] * x
    y = 0.2 + 0.1 * x + u + rng.normal(0, 0.2, k) + rng.normal(0, np.sqrt(v))
    groups = np.column_stack([cluster, np.arange(k)])
    return x, y, v, groups


def fit_skmeta(x, y, v, groups, slope=False):
    from skmeta import MultilevelMeta

    kw = {}
    Z = None
    if slope:
        kw = {"random_slopes": {0: [0]}, "covariance": ["unstructured", "independent"]}
        Z = x[:, None]
    m = MultilevelMeta(**kw).fit(x[:, None], y, sample_var=v, groups=groups, Z=Z)
    tau2 = float(m._sigmas[0][0, 0])
    return tau2, [m.intercept_, *m.coef_]


def fit_skmeta_che(x, y, v, groups):
    """The CHE working model with CR2: (sigma2 of the clusters, beta, CR2 SEs, df)."""
    from skmeta import MultilevelMeta

    m = MultilevelMeta(rho=CHE_RHO, cluster_robust="cr2").fit(
        x[:, None], y, sample_var=v, groups=groups
    )
    return (
        float(m.sigma2_[0]),
        [m.intercept_, *m.coef_],
        np.sqrt(np.diag(m.cov_params_)),
        m.robust_dof_,
    )


def run_metafor_che(x, y, v, groups, options):
    rscript = shutil.which("Rscript")
    if not options["use_r"]:
        return PeerResult(status="off (--no-r)"), None
    if rscript is None:
        return PeerResult(status="n/a"), None
    timeout = max(options["timeout"], CHE_MIN_TIMEOUT)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "data.csv"
        rfile = Path(tmp) / "che.R"
        _write_csv(csv, x, y, v, groups)
        rfile.write_text(with_r_timing(R_CHE_CODE))
        child = run_json_child(
            [
                rscript,
                str(rfile),
                str(csv),
                str(CHE_RHO),
                str(options["repeat"]),
                str(options["min_batch"]),
                str(options["budget"]),
            ],
            timeout=timeout,
            threads=options["threads"],
        )
    what = "rma.mv(V, sparse=TRUE) + robust(clubSandwich=TRUE)"
    if child.timed_out:
        return PeerResult(
            status=f"> {timeout:g} s (killed)", note=f"metafor {what}"
        ), None
    if child.data is None:
        return PeerResult(status="failed", note=f"metafor {what}: {child.error}"), None
    d = child.data
    peer = PeerResult(
        seconds=d["ms_per_fit"] / 1000.0,
        tau2=d["tau2"],
        beta=d["beta"],
        single=bool(d["single"]),
        note=f"metafor {what}",
    )
    return peer, (np.asarray(d["se"]), np.asarray(d["df"]))


def case_che_cr2_2400(options):
    n = 30 if options["quick"] else 300
    x, y, v, groups = simulated_data(n, 8)
    row = Row(GROUP, "ml-che-cr2-2400", "CHE rho = 0.6 + CR2, 8 per cluster", len(y))
    row.tau2, row.beta, se, dof = fit_skmeta_che(x, y, v, groups)
    timing = best_time(
        lambda: fit_skmeta_che(x, y, v, groups),
        repeat=options["repeat"],
        min_batch=options["min_batch"],
        budget=options["budget"],
    )
    row.seconds = timing.seconds
    row.peak_bytes = peak_traced_bytes(lambda: fit_skmeta_che(x, y, v, groups))
    _set_target(row, 0.1, options)
    peer, robust = run_metafor_che(x, y, v, groups, options)
    row.peers["metafor"] = peer
    row.peers["pimeta"] = PeerResult(status="n/a (no V)")
    if robust is not None:
        row.notes.append(
            f"ml-che-cr2-2400: CR2 SEs vs clubSandwich: max rel. diff "
            f"{np.max(np.abs(se - robust[0]) / robust[0]):.1e}; Satterthwaite df "
            f"max rel. diff {np.max(np.abs(dof - robust[1]) / robust[1]):.1e}"
        )
    if peer.seconds is not None and not options["quick"]:
        ratio = peer.seconds / row.seconds
        row.notes.append(
            f"ml-che-cr2-2400: metafor / skmeta = {ratio:.0f}x (target >= 50x: "
            f"{'met' if ratio >= 50 else 'NOT met'})"
        )
    return row


def _write_csv(path, x, y, v, groups):
    header = "yi,vi,x,cluster,es"
    data = np.column_stack([y, v, x, groups])
    np.savetxt(path, data, delimiter=",", header=header, comments="", fmt="%.17g")


def run_metafor(x, y, v, groups, options, *, sparse, slope):
    rscript = shutil.which("Rscript")
    if not options["use_r"]:
        return PeerResult(status="off (--no-r)")
    if rscript is None:
        return PeerResult(status="n/a")
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "data.csv"
        rfile = Path(tmp) / "timing.R"
        _write_csv(csv, x, y, v, groups)
        rfile.write_text(with_r_timing(R_CODE))
        child = run_json_child(
            [
                rscript,
                str(rfile),
                str(csv),
                "sparse" if sparse else "dense",
                "slope" if slope else "intercepts",
                str(options["repeat"]),
                str(options["min_batch"]),
                str(options["budget"]),
            ],
            timeout=options["timeout"],
            threads=options["threads"],
        )
    what = "rma.mv(sparse=TRUE)" if sparse else "rma.mv (dense)"
    if child.timed_out:
        return PeerResult(
            status=f"> {options['timeout']:g} s (killed)", note=f"metafor {what}"
        )
    if child.data is None:
        return PeerResult(status="failed", note=f"metafor {what}: {child.error}")
    d = child.data
    return PeerResult(
        seconds=d["ms_per_fit"] / 1000.0,
        tau2=d["tau2"],
        beta=d["beta"],
        single=bool(d["single"]),
        note=f"metafor {what}",
    )


def run_pimeta(x, y, v, groups, options, *, slope):
    if importlib.util.find_spec("pimeta") is None:
        return PeerResult(status="n/a")
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "data.npz"
        np.savez(npz, x=x, y=y, v=v, groups=groups)
        child = run_json_child(
            python_child(
                "benchmarks.bench_multilevel",
                "--worker",
                npz,
                "slope" if slope else "intercepts",
                options["repeat"],
                options["min_batch"],
                options["budget"],
            ),
            timeout=options["timeout"],
            threads=options["threads"],
            cwd=Path(__file__).resolve().parents[1],
        )
    if child.timed_out:
        return PeerResult(
            status=f"> {options['timeout']:g} s (killed)", note="pimeta rma_mv (dense)"
        )
    if child.data is None:
        return PeerResult(status="failed", note=f"pimeta: {child.error}")
    d = child.data
    return PeerResult(
        seconds=d["seconds"],
        tau2=d["tau2"],
        beta=d["beta"],
        single=d["single"],
        note="pimeta rma_mv (dense)",
    )


def _worker(argv):
    npz, kind, repeat, min_batch, budget = argv
    import pimeta

    d = np.load(npz)
    x, y, v, groups = d["x"], d["y"], d["v"], d["groups"]
    data = {"cluster": groups[:, 0], "es": groups[:, 1]}
    if kind == "slope":
        data["x"] = x

        def fit():
            return pimeta.rma_mv(
                y, v, mods=x[:, None], data=data, random="~ x | cluster", struct="GEN"
            )
    else:

        def fit():
            return pimeta.rma_mv(
                y, v, mods=x[:, None], data=data, random="~ 1 | cluster/es"
            )

    import time

    t0 = time.perf_counter()
    r = fit()
    warm = time.perf_counter() - t0
    if warm >= float(budget):  # a slow peer: its first fit is the timing
        seconds, single = warm, True
    else:
        t = best_time(
            fit, repeat=int(repeat), min_batch=float(min_batch), budget=float(budget)
        )
        seconds, single = t.seconds, t.single
    beta = [float(b) for b in np.ravel(getattr(r, "beta", getattr(r, "b", [])))]
    s2 = getattr(r, "tau2", None) if kind == "slope" else getattr(r, "sigma2", None)
    tau2 = float(np.ravel(s2)[0]) if s2 is not None else None
    print(
        json.dumps({"seconds": seconds, "single": single, "tau2": tau2, "beta": beta})
    )


def _set_target(row, target, options):
    if target is None:
        return
    row.target_seconds = target
    row.target_text = f"<= {fmt_time(target)}"
    if options["quick"]:
        row.target_text += " (quick: other k)"
    elif row.seconds is not None:
        row.met = row.seconds <= target


def _case(
    case, description, n_clusters, per, target, options, *, slope=False, peers=True
):
    x, y, v, groups = simulated_data(n_clusters, per, slope=slope)
    row = Row(GROUP, case, description, len(y))
    row.tau2, row.beta = fit_skmeta(x, y, v, groups, slope)
    timing = best_time(
        lambda: fit_skmeta(x, y, v, groups, slope),
        repeat=options["repeat"],
        min_batch=options["min_batch"],
        budget=options["budget"],
    )
    row.seconds = timing.seconds
    row.peak_bytes = peak_traced_bytes(lambda: fit_skmeta(x, y, v, groups, slope))
    _set_target(row, target, options)
    if peers:
        row.peers["metafor"] = run_metafor(
            x, y, v, groups, options, sparse=True, slope=slope
        )
        dense = run_metafor(x, y, v, groups, options, sparse=False, slope=slope)
        row.peers["pimeta"] = run_pimeta(x, y, v, groups, options, slope=slope)
        dense_text = (
            dense.status
            if dense.seconds is None
            else f"{fmt_time(dense.seconds, dense.single)} "
            f"({dense.seconds / row.seconds:.3g}x skmeta)"
        )
        row.notes.append(
            f"{case}: metafor column = rma.mv(sparse=TRUE); rma.mv dense: {dense_text}"
        )
    else:
        for name in PEERS:
            row.peers[name] = PeerResult(status="not run (size)")
    return row


def case_3lev_2400(options):
    n = 30 if options["quick"] else 300
    return _case(
        "ml-3lev-2400", "three-level REML, 8 effects per cluster", n, 8, 0.05, options
    )


def case_3lev_1e6(options):
    n = 1000 if options["quick"] else 100_000
    return _case(
        "ml-3lev-1e6",
        "three-level REML, 10 effects per cluster",
        n,
        10,
        10.0,
        options,
        peers=False,
    )


def case_slope_2400(options):
    n = 30 if options["quick"] else 300
    return _case(
        "ml-slope-2400",
        "unstructured random slope, 300 clusters",
        n,
        8,
        None,
        options,
        slope=True,
    )


CASES = {
    "ml-3lev-2400": case_3lev_2400,
    "ml-3lev-1e6": case_3lev_1e6,
    "ml-slope-2400": case_slope_2400,
    "ml-che-cr2-2400": case_che_cr2_2400,
}


def selected(case, only):
    if not only:
        return True
    return any(
        name in (GROUP, "ml", "MultilevelMeta") or case == name or case.startswith(name)
        for name in only
    )


def benchmark_rows(quick=False, only=None, use_r=True, timeout=None, threads=None):
    """Run the MultilevelMeta cases and return their rows (see module docstring)."""
    options = default_options(quick, use_r, timeout, threads)
    return [fn(options) for case, fn in CASES.items() if selected(case, only)]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        _worker(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_multilevel")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-r", action="store_true")
    parser.add_argument("--only", action="append")
    parser.add_argument("--timeout", type=float)
    args = parser.parse_args(argv)
    rows = benchmark_rows(
        quick=args.quick, only=args.only, use_r=not args.no_r, timeout=args.timeout
    )
    print(render_rows(rows, list(PEERS)))
    for row in rows:
        for note in row.notes:
            print("  " + note)
        for name, peer in row.peers.items():
            if peer.tau2 is not None and row.tau2 is not None:
                db = max(abs(a - b) for a, b in zip(peer.beta, row.beta, strict=False))
                print(
                    f"  {row.case}: {name}: |delta tau2| = "
                    f"{abs(peer.tau2 - row.tau2):.1e}, max |delta beta| = {db:.1e}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
