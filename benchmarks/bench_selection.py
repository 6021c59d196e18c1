"""Benchmarks of SelectionModelMeta against metafor's ``selmodel`` (performance target).

Cases (hackshaw1998: 37 log odds ratios of lung cancer and environmental tobacco
smoke, bundled as ``skmeta.datasets.load_hackshaw1998``):

* ``sel-3psm-k37``: the three-parameter selection model (one cut at .025,
  one-sided p-values); target: at least 10 times faster than metafor.
* ``sel-beta-k37``: the beta selection model of Citkowicz & Vevea (no
  target).

One timed call is a complete fit as the user runs it: for skmeta
``SelectionModelMeta(...).fit`` (the ML random-effects start, the selection
model, the fit with tau^2 = 0 for its LR test, the analytic Hessian); for
metafor ``rma(method = "ML")`` followed by ``selmodel`` with its defaults (which
also refits with tau^2 = 0 and takes a numerical Hessian).  The agreement table
compares tau^2 and the intercept; the notes add the selection parameters and
log-likelihoods.

Run:  python -m benchmarks --only selection   (or python -m
benchmarks.bench_selection [--quick] [--no-r]).
"""

from __future__ import annotations

import argparse
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
    render_rows,
    run_json_child,
)

GROUP = "selection"
HERE = Path(__file__).resolve().parent
R_SCRIPT = HERE / "metafor_selmodel_timing.R"
#: Target: the 3PSM at k = 37 at least this many times faster than metafor
SPEEDUP_TARGET = 10.0


def hackshaw():
    """Log odds ratios and sampling variances of hackshaw1998 (k = 37)."""
    from skmeta.datasets import load_hackshaw1998

    data = load_hackshaw1998()
    return data["yi"].to_numpy(), data["vi"].to_numpy()


def fit_skmeta(y, v, params):
    """One complete fit; returns the estimator."""
    from skmeta import SelectionModelMeta

    return SelectionModelMeta(**params).fit(None, y, sample_var=v)


def run_metafor(y, v, selmodel_type, steps, options):
    """Time ``rma(method = "ML")`` + ``selmodel`` through ``Rscript``."""
    if not options["use_r"]:
        return PeerResult(status="off (--no-r)"), None
    rscript = shutil.which("Rscript")
    if rscript is None:
        return PeerResult(status="n/a", note="metafor: Rscript not found"), None
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        pd.DataFrame({"yi": y, "vi": v}).to_csv(path, index=False, float_format="%.17g")
        cmd = [
            rscript,
            str(R_SCRIPT),
            str(path),
            selmodel_type,
            ";".join(f"{s:g}" for s in steps) if steps else "-",
            str(options["repeat"]),
            str(options["min_batch"]),
            str(options["budget"]),
        ]
        child = run_json_child(
            cmd, timeout=options["timeout"], threads=options["threads"]
        )
    if child.timed_out:
        return PeerResult(status=f"> {options['timeout']:g} s (timed out)"), None
    if child.data is None:
        return PeerResult(status="error", note=f"metafor: {child.error}"), None
    data = child.data
    peer = PeerResult(
        seconds=data["ms_per_fit"] / 1e3,
        status="",
        tau2=data["tau2"],
        beta=data["beta"],
        single=bool(data.get("single", False)),
        note=(
            f"metafor {data.get('metafor')} on R {data.get('R')}: rma(method='ML') "
            "+ selmodel() with default controls (Rscript start-up not timed)"
        ),
    )
    return peer, data


def _case(case, description, params, selmodel_type, steps, target, options):
    y, v = hackshaw()
    row = Row(GROUP, case, description, len(y))
    est = fit_skmeta(y, v, params)
    row.tau2, row.beta = float(est.tau2_), [float(est.intercept_)]
    timing = best_time(
        lambda: fit_skmeta(y, v, params),
        repeat=options["repeat"],
        min_batch=options["min_batch"],
        budget=options["budget"],
    )
    row.seconds = timing.seconds
    row.peak_bytes = peak_traced_bytes(lambda: fit_skmeta(y, v, params))
    peer, data = run_metafor(y, v, selmodel_type, steps, options)
    row.peers["metafor"] = peer
    if data is not None:
        row.notes.append(
            f"{case}: delta skmeta {np.round(est.delta_, 6).tolist()} vs metafor "
            f"{np.round(np.asarray(data['delta'], dtype=float), 6).tolist()}; "
            f"log-likelihood skmeta {est.loglik_:.8f} vs metafor {data['ll']:.8f}"
        )
    if target is not None:
        row.target_text = f">= {target:g}x metafor"
        if peer.seconds is not None:
            row.target_seconds = peer.seconds / target
            row.target_text += f" (<= {fmt_time(row.target_seconds)})"
            if not options["quick"]:
                row.met = row.seconds <= row.target_seconds
    return row


def case_3psm(options):
    return _case(
        "sel-3psm-k37",
        "3PSM (step at .025), hackshaw1998 log OR",
        {"selection": "step", "steps": (0.025,)},
        "stepfun",
        (0.025,),
        SPEEDUP_TARGET,
        options,
    )


def case_beta(options):
    return _case(
        "sel-beta-k37",
        "beta selection model, hackshaw1998 log OR",
        {"selection": "beta"},
        "beta",
        (),
        None,
        options,
    )


CASES = {"sel-3psm-k37": case_3psm, "sel-beta-k37": case_beta}


def selected(case, only):
    """Whether ``case`` is selected by the ``--only`` names (None: all)."""
    if not only:
        return True
    return any(
        name in (GROUP, "sel", "SelectionModelMeta") or case.startswith(name)
        for name in only
    )


def benchmark_rows(quick=False, only=None, use_r=True, timeout=None, threads=None):
    """Run the SelectionModelMeta cases and return their rows.

    Parameters
    ----------
    quick : bool, default=False
        One short timing batch (for the smoke test); the target is then not
        assessed.
    only : list of str, default=None
        Case names, prefixes or the group name ``"selection"``.
    use_r : bool, default=True
        Time metafor through ``Rscript`` when available.
    timeout : float, default=None
        Seconds after which metafor's subprocess is killed (20, or 10 when
        quick).
    threads : int, default=None
        BLAS threads of the subprocess.

    Returns
    -------
    list of benchmarks._common.Row
    """
    options = default_options(quick, use_r, timeout, threads)
    return [fn(options) for case, fn in CASES.items() if selected(case, only)]


def main(argv=None):
    """Print the SelectionModelMeta table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-r", action="store_true")
    parser.add_argument("--only", action="append")
    parser.add_argument("--timeout", type=float)
    args = parser.parse_args(argv)
    rows = benchmark_rows(args.quick, args.only, not args.no_r, args.timeout)
    print(render_rows(rows, ["metafor"]))
    for row in rows:
        for note in row.notes:
            print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
