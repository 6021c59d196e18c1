"""Benchmarks of skmeta.bias and skmeta.model_selection beside metafor.

Cases:

* ``multimodel-k100``: :func:`skmeta.model_selection.multimodel` over 8 candidate
  moderators (256 models, ML), k = 100 simulated studies; target <= 1 s.  Peer: an
  all-subsets loop over ``metafor::rma(method = "ML")`` fits in R with Akaike
  weights and the full model average (what glmulti/MuMIn do; neither is
  installed here), timed inside R (Rscript start-up excluded).
* ``regtest-k48``: Egger's regression test (``predictor="sei"``, REML) on the
  writing-to-learn data (k = 48); metafor: ``regtest(rma(yi, vi))``.
* ``trimfill-k48``: trim and fill (L0, REML) on the same data; metafor:
  ``trimfill(rma(yi, vi))``.

Both sides go from the data to the result (metafor's functions take a fitted
model, whose fit is timed with them).

Run:  python -m benchmarks --only bias   (or --only multimodel-k100)
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._common import (
    PeerResult,
    Row,
    best_time,
    peak_traced_bytes,
    run_json_child,
    with_r_timing,
)

MULTIMODEL_TARGET_SECONDS = 1.0
N_MODERATORS = 8
K_MULTIMODEL = 100

R_CODE = r"""
suppressPackageStartupMessages({library(metafor); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); task <- args[2]
repeats <- as.integer(args[3]); min_batch <- as.numeric(args[4])
budget <- as.numeric(args[5])
mods <- grep("^x", names(d), value = TRUE)
multimodel <- function() {
  subsets <- list(character(0))
  for (s in seq_along(mods)) subsets <- c(subsets, combn(mods, s, simplify = FALSE))
  fits <- lapply(subsets, function(m) {
    res <- if (length(m)) rma(d$yi, d$vi, mods = as.matrix(d[, m, drop = FALSE]),
                              method = "ML") else rma(d$yi, d$vi, method = "ML")
    b <- setNames(rep(0, length(mods) + 1), c("intrcpt", mods))
    b[c("intrcpt", m)] <- as.numeric(coef(res))
    list(aicc = fitstats(res)[["AICc:", 1]], b = b)
  })
  aicc <- sapply(fits, `[[`, "aicc")
  w <- exp(-(aicc - min(aicc)) / 2); w <- w / sum(w)
  as.numeric(Reduce(`+`, Map(function(f, wi) wi * f$b, fits, w)))
}
run <- switch(task,
  multimodel = multimodel,
  regtest = function() { r <- regtest(rma(d$yi, d$vi)); c(r$zval, r$est) },
  trimfill = function() { r <- trimfill(rma(d$yi, d$vi)); c(r$k0, r$beta, r$tau2) })
timing <- best_time(run, repeats, min_batch, budget)
cat(toJSON(list(seconds = timing$seconds, single = timing$single,
                estimates = timing$value,
                metafor = as.character(packageVersion("metafor"))),
           auto_unbox = TRUE, digits = NA), "\n")
"""


def multimodel_data(k=K_MULTIMODEL, p=N_MODERATORS, seed=11):
    """k studies, p standard-normal candidate moderators (two with effects)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(k, p))
    v = rng.uniform(0.01, 0.3, size=k)
    y = 0.2 + X[:, 0] * 0.3 - X[:, 1] * 0.15 + rng.normal(size=k) * np.sqrt(v + 0.08)
    return X, y, v


def writing_data():
    """Writing-to-learn effect sizes and sampling variances (k = 48)."""
    from skmeta.datasets import load_writing_to_learn

    data = load_writing_to_learn()
    return data["yi"].to_numpy(float), data["vi"].to_numpy(float)


def run_metafor(task, X, y, v, options):
    """Time the task in R through Rscript; None when R is off or absent."""
    if not options["use_r"]:
        return PeerResult(status="off (--no-r)")
    if shutil.which("Rscript") is None:
        return PeerResult(status="n/a", note="metafor: Rscript not found")
    import pandas as pd

    columns = {"yi": y, "vi": v}
    if X is not None:
        columns.update({f"x{j}": X[:, j] for j in range(X.shape[1])})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        pd.DataFrame(columns).to_csv(path, index=False, float_format="%.17g")
        script = Path(tmp) / "timing.R"
        script.write_text(with_r_timing(R_CODE), encoding="utf-8")
        cmd = [
            "Rscript",
            str(script),
            str(path),
            task,
            str(options["repeat"]),
            str(options["min_batch"]),
            str(options["budget"]),
        ]
        child = run_json_child(
            cmd, timeout=options["timeout"], threads=options["threads"]
        )
    if child.timed_out:
        return PeerResult(status=f"> {options['timeout']:g} s (timed out)")
    if child.data is None:
        return PeerResult(status="error", note=f"metafor: {child.error}")
    estimates = np.atleast_1d(child.data["estimates"]).astype(float)
    return PeerResult(
        seconds=child.data["seconds"],
        status="",
        tau2=float(estimates[2]) if task == "trimfill" else None,
        beta=estimates[:2].tolist() if task == "trimfill" else estimates.tolist(),
        single=bool(child.data["single"]),
        note=f"metafor {child.data['metafor']} (Rscript start-up not timed)",
    )


def _timed(fn, options):
    fn()  # warm-up (imports, caches)
    timing = best_time(
        fn,
        repeat=options["repeat"],
        min_batch=options["min_batch"],
        budget=options["budget"],
    )
    return timing.seconds, peak_traced_bytes(fn)


def benchmark_rows(quick=False, only=None, use_r=True, timeout=None, threads=None):
    """Rows of the common benchmark table for the bias and multimodel cases.

    Parameters
    ----------
    quick : bool, default=False
        Tiny sizes (4 moderators, k = 30) and one short timing batch.
    only : list of str, default=None
        Case names to run (all when None).
    use_r : bool, default=True
        Time metafor through Rscript.
    timeout : float, default=None
        Seconds after which the R child is killed.
    threads : int, default=None
        BLAS threads of the R child.

    Returns
    -------
    list of Row
    """
    from skmeta import RandomEffectsMeta
    from skmeta.bias import regression_test, trim_and_fill
    from skmeta.model_selection import multimodel

    options = {
        "use_r": use_r,
        "timeout": timeout or (10.0 if quick else 20.0),
        "threads": threads,
        "repeat": 1 if quick else 5,
        "min_batch": 0.005 if quick else 0.05,
        "budget": 0.5 if quick else 5.0,
    }
    rows = []

    def wanted(case):
        return only is None or case in only

    if wanted("multimodel-k100"):
        p, k = (4, 30) if quick else (N_MODERATORS, K_MULTIMODEL)
        X, y, v = multimodel_data(k, p)
        estimator = RandomEffectsMeta(method="ml")

        def fit():
            return multimodel(estimator, X, y, sample_var=v)

        seconds, peak = _timed(fit, options)
        result = fit()
        row = Row(
            "bias",
            "multimodel-k100",
            f"multimodel, {p} moderators ({2**p} ML fits), AICc, full average",
            k,
            seconds=seconds,
            peak_bytes=peak,
            target_seconds=None if quick else MULTIMODEL_TARGET_SECONDS,
            target_text="<= 1 s",
            met=None if quick else seconds <= MULTIMODEL_TARGET_SECONDS,
            beta=result.full_average.tolist(),
        )
        row.peers["metafor"] = run_metafor("multimodel", X, y, v, options)
        rows.append(row)

    y48, v48 = writing_data()
    if wanted("regtest-k48"):

        def egger():
            return regression_test(y48, v48)

        seconds, peak = _timed(egger, options)
        res = egger()
        row = Row(
            "bias",
            "regtest-k48",
            "Egger regression test (sei, REML), writing-to-learn",
            len(y48),
            seconds=seconds,
            peak_bytes=peak,
            beta=[res.statistic, res.limit_estimate],
        )
        row.peers["metafor"] = run_metafor("regtest", None, y48, v48, options)
        row.notes.append(
            "regtest-k48: metafor's REML fits stop at its default threshold "
            "(|change in tau^2| < 1e-5), hence differences ~1e-4 in the z statistic"
        )
        rows.append(row)

    if wanted("trimfill-k48"):

        def fill():
            return trim_and_fill(y48, v48)

        seconds, peak = _timed(fill, options)
        res = fill()
        row = Row(
            "bias",
            "trimfill-k48",
            "trim and fill (L0, REML), writing-to-learn",
            len(y48),
            seconds=seconds,
            peak_bytes=peak,
            tau2=res.model.tau2_,
            beta=[float(res.k0), res.model.intercept_],
        )
        row.peers["metafor"] = run_metafor("trimfill", None, y48, v48, options)
        row.notes.append(
            "trimfill-k48: metafor fits the trimmed and filled data with its default "
            "convergence threshold, so its estimates differ from skmeta's "
            "(converged) ones by ~1e-6"
        )
        rows.append(row)
    return rows
