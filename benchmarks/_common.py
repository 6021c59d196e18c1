"""Timing, memory and formatting helpers shared by the benchmark scripts.

Methodology (the same for Python and for ``metafor_timing.R``):

* **time**: one warm-up call and one calibration call, then batches of
  ``number`` calls sized (from the calibration call) so that a batch lasts at
  least ``min_batch`` seconds; the reported time is the best per-call time over
  up to ``repeat`` batches (best-of-N wall time, as ``timeit``).  A call slower
  than the ``budget`` is reported from the warm-up call alone (flagged ``*``),
  so that a slow peer never stalls the harness.
* **memory**: the peak of traced allocations (``tracemalloc``) during one call
  after the warm-up; numpy reports its array buffers to ``tracemalloc``, so this
  is the peak extra memory of the fit, excluding the input data.  Allocations
  made inside LAPACK/OpenBLAS are not traced; a subprocess measurement of the
  resident set (``resource.getrusage``) complements it where it matters.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@dataclass
class Timing:
    """Best wall time per call, in seconds.

    Attributes
    ----------
    seconds : float
        Best time per call.
    calls : int
        Number of timed calls (including the warm-up when it is the only one).
    single : bool
        True when only the warm-up call was timed (slower than the budget).
    """

    seconds: float
    calls: int
    single: bool = False


#: The timing loop in R (``best_time``, the method of :func:`best_time`), shared
#: by the metafor timing scripts.
R_BEST_TIME = Path(__file__).with_name("best_time.R")


def with_r_timing(code):
    """An inline R script with ``best_time`` defined before it."""
    return R_BEST_TIME.read_text(encoding="utf-8") + "\n" + code


def best_time(fn, *, repeat=5, min_batch=0.05, budget=10.0):
    """Best-of-N wall time of ``fn()`` per call, after a warm-up call.

    Parameters
    ----------
    fn : callable
        Called without arguments.
    repeat : int, default=5
        Maximum number of timed batches.
    min_batch : float, default=0.05
        Minimum duration of a batch in seconds (fast calls are looped).
    budget : float, default=10.0
        Time budget in seconds for the timed batches; stops early when spent.
        When the warm-up call alone exceeds it, its time is returned.

    Returns
    -------
    Timing
    """
    t0 = time.perf_counter()
    fn()
    warm = time.perf_counter() - t0
    if warm >= budget or repeat < 1:
        return Timing(warm, 1, single=True)
    # size the batches from a second call: the first one carries start-up costs
    t0 = time.perf_counter()
    fn()
    calib = time.perf_counter() - t0
    number = max(1, math.ceil(min_batch / max(calib, 1e-7)))
    best = math.inf
    calls = 0
    start = time.perf_counter()
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
        calls += number
        if time.perf_counter() - start + best * number > budget:
            break
    return Timing(best, calls)


def peak_traced_bytes(fn):
    """Peak traced allocation (bytes) during one call of ``fn()``.

    Parameters
    ----------
    fn : callable
        Called once without arguments (call it once before, as a warm-up, so
        that lazy imports and caches are not counted).

    Returns
    -------
    int
        Peak of ``tracemalloc``'s traced memory above the level at the start.
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(0, peak - base)


def thread_env(threads=None, env=None):
    """Environment for a child process, with BLAS threads limited when asked.

    Parameters
    ----------
    threads : int, default=None
        Number of BLAS/OpenMP threads; None leaves the environment unchanged.
    env : dict, default=None
        Base environment (``os.environ`` when None).

    Returns
    -------
    dict
    """
    out = dict(os.environ if env is None else env)
    if threads is not None:
        for name in THREAD_VARIABLES:
            out[name] = str(int(threads))
    return out


@dataclass
class ChildResult:
    """Outcome of a child process that prints one JSON object on its last line.

    Attributes
    ----------
    data : dict or None
        The parsed JSON (None on failure or timeout).
    timed_out : bool
    error : str or None
        Short reason when the child failed.
    """

    data: dict | None
    timed_out: bool = False
    error: str | None = None


def run_json_child(cmd, *, timeout, threads=None, cwd=None):
    """Run ``cmd``; parse the last stdout line as JSON; kill it after ``timeout``.

    Parameters
    ----------
    cmd : list of str
    timeout : float
        Seconds.
    threads : int, default=None
        BLAS threads of the child (see `thread_env`).
    cwd : path-like, default=None

    Returns
    -------
    ChildResult
    """
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=thread_env(threads),
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ChildResult(None, timed_out=True)
    except OSError as exc:
        return ChildResult(None, error=str(exc))
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return ChildResult(None, error=f"exit {proc.returncode}: {tail[:120]}")
    try:
        return ChildResult(json.loads(lines[-1]))
    except json.JSONDecodeError:
        return ChildResult(None, error=f"unparsable output: {lines[-1][:120]}")


def python_child(module, *args):
    """Command line running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *map(str, args)]


# --------------------------------------------------------------------------- #
# results and formatting
# --------------------------------------------------------------------------- #
@dataclass
class PeerResult:
    """One peer's run on one case.

    Attributes
    ----------
    seconds : float or None
        Best time per fit; None when not run (see ``status``).
    status : str
        Short text shown instead of a time ("n/a", "> 20 s (timed out)", ...).
    tau2 : float or None
        The peer's estimate of the heterogeneity variance, for the agreement check.
    beta : list of float or None
        The peer's fixed effects ``[intercept, *coef]``.
    note : str
        What exactly was run, shown under the table.
    single : bool
        True when timed from one call only.
    """

    seconds: float | None = None
    status: str = "n/a"
    tau2: float | None = None
    beta: list | None = None
    note: str = ""
    single: bool = False


@dataclass
class Row:
    """One benchmark case.

    Attributes
    ----------
    group : str
        Estimator family ("random_effects", "location_scale", ...).
    case : str
        Case identifier (used by ``--only``).
    description : str
    k : int
        Number of studies (effect sizes).
    seconds : float or None
        skmeta's best time per fit (or per operation, see ``description``).
    peak_bytes : int or None
        skmeta's peak traced memory during one fit.
    target_seconds : float or None
        performance target for ``seconds``.
    target_text : str
        The target as printed (e.g. "<= 0.5 ms").
    met : bool or None
        Whether the target is met (None: no target, or not comparable).
    peers : dict of str to PeerResult
    tau2 : float or None
    beta : list of float or None
    notes : list of str
    """

    group: str
    case: str
    description: str
    k: int
    seconds: float | None = None
    peak_bytes: int | None = None
    target_seconds: float | None = None
    target_text: str = "-"
    met: bool | None = None
    peers: dict = field(default_factory=dict)
    tau2: float | None = None
    beta: list | None = None
    notes: list = field(default_factory=list)


def fmt_time(seconds, single=False):
    """Format a duration: microseconds, milliseconds or seconds, 3 digits."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds < 1e-3:
        text = f"{seconds * 1e6:.3g} us"
    elif seconds < 1.0:
        text = f"{seconds * 1e3:.3g} ms"
    else:
        text = f"{seconds:.3g} s"
    return text + ("*" if single else "")


def fmt_ratio(peer_seconds, ref_seconds):
    """Format the ratio peer/skmeta, e.g. ``x5.8`` (``x0.5`` when skmeta is slower)."""
    if (
        peer_seconds is None
        or ref_seconds is None
        or ref_seconds <= 0
        or not math.isfinite(peer_seconds)
    ):
        return ""
    ratio = peer_seconds / ref_seconds
    return f"x{ratio:.3g}" if ratio < 1000 else f"x{ratio:.2e}"


def fmt_mb(nbytes):
    """Format a byte count in MB (3 significant digits)."""
    if nbytes is None:
        return "-"
    return f"{nbytes / 1e6:.3g} MB"


def fmt_bytes(nbytes):
    """Format a byte count with a decimal unit (B, kB, MB, GB, TB)."""
    if nbytes is None:
        return "-"
    value = float(nbytes)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000:
            return f"{value:.3g} {unit}"
        value /= 1000
    return f"{value:.3g} TB"


def fmt_met(met):
    """Format a met/not met flag."""
    return {True: "met", False: "NOT met", None: "-"}[met]


def peer_cell(peer, ref_seconds):
    """Table cell of one peer: its time and the ratio to skmeta, or its status."""
    if peer is None:
        return "n/a"
    if peer.seconds is None:
        return peer.status
    ratio = fmt_ratio(peer.seconds, ref_seconds)
    return f"{fmt_time(peer.seconds, peer.single)} {ratio}".strip()


def render_table(headers, rows):
    """Render a plain-text table with left-aligned text and a rule under the header.

    Parameters
    ----------
    headers : list of str
    rows : list of list of str

    Returns
    -------
    str
    """
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(str(c))) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = zip(row, widths, strict=True)
        lines.append("  ".join(str(c).ljust(w) for c, w in cells))
    return "\n".join(line.rstrip() for line in lines)


def render_rows(rows, peer_names):
    """The main table: one line per case with skmeta, the peers, memory, target.

    Parameters
    ----------
    rows : list of Row
    peer_names : list of str
        Column order of the peers.

    Returns
    -------
    str
    """
    headers = ["case", "k", "skmeta", *peer_names, "skmeta peak", "target", "met"]
    body = []
    for row in rows:
        body.append(
            [
                row.case,
                f"{row.k:,}",
                fmt_time(row.seconds),
                *(peer_cell(row.peers.get(name), row.seconds) for name in peer_names),
                fmt_mb(row.peak_bytes),
                row.target_text,
                fmt_met(row.met),
            ]
        )
    return render_table(headers, body)


def agreement(row, name):
    """Largest absolute differences of a peer's estimates from skmeta's.

    Parameters
    ----------
    row : Row
    name : str
        Peer name.

    Returns
    -------
    tuple of (float or None, float or None)
        ``|delta tau2|`` and ``max |delta beta|``.
    """
    peer = row.peers.get(name)
    if peer is None:
        return None, None
    dtau = None
    if peer.tau2 is not None and row.tau2 is not None:
        dtau = abs(float(peer.tau2) - float(row.tau2))
    dbeta = None
    if peer.beta is not None and row.beta is not None:
        import numpy as np  # not at module level: --threads must precede numpy

        peer_beta = [float(b) for b in np.atleast_1d(peer.beta)]
        row_beta = [float(b) for b in np.atleast_1d(row.beta)]
        if len(peer_beta) != len(row_beta):
            return dtau, math.inf
        pairs = zip(peer_beta, row_beta, strict=True)
        dbeta = max(abs(a - b) for a, b in pairs)
    return dtau, dbeta


def fmt_delta(value):
    """Format an absolute difference."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    return f"{value:.1e}"


def default_options(quick=False, use_r=True, timeout=None, threads=None):
    """Timing options: full runs take a few minutes, quick runs seconds."""
    return {
        "quick": quick,
        "use_r": use_r,
        "timeout": (10.0 if quick else 20.0) if timeout is None else float(timeout),
        "threads": threads,
        "repeat": 1 if quick else 5,
        "min_batch": 0.005 if quick else 0.05,
        "budget": 0.5 if quick else 5.0,
    }
