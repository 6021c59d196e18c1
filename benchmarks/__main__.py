"""``python -m benchmarks``: skmeta beside its peers on the same data, in one run.

Usage (from the repository root)::

    python -m benchmarks                 # everything, a few minutes
    python -m benchmarks --quick         # tiny sizes, seconds (smoke test)
    python -m benchmarks --only re-k13   # one case, or a group: random_effects,
                                         # location_scale, multilevel, robust
    python -m benchmarks --no-r          # without metafor (Rscript)
    python -m benchmarks --threads 1     # BLAS/OpenMP threads limited to 1

Each family of estimators has a module ``benchmarks/bench_<group>.py``.  A module
exposing ``benchmark_rows(quick=False, only=None, use_r=True, timeout=None,
threads=None)`` (any subset of these keywords) contributes rows to the common
table; a module with only a ``main()`` is run as a script (``--quick`` and
``--no-r`` passed when its source mentions them) and its output is printed
verbatim after the table.  Missing modules are reported, never fatal.
"""

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GROUPS = {
    "random_effects": ("re", "RandomEffectsMeta"),
    "location_scale": ("ls", "LocationScaleMeta"),
    "multilevel": ("ml", "MultilevelMeta"),
    "robust": ("RobustMeta",),
    "bias": ("multimodel", "regtest", "trimfill"),
    "many": ("mo", "multi_output"),
    "selection": ("sel", "SelectionModelMeta"),
}
PEER_ORDER = ("metafor", "pimeta", "PyMARE", "statsmodels")


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time skmeta beside its peers on the same data.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and one timing batch: proves the harness works in seconds "
        "(targets are not assessed)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this group (random_effects, location_scale, multilevel, "
        "robust) or case (e.g. re-k13, re-k1e6); repeatable",
    )
    parser.add_argument(
        "--no-r", action="store_true", help="do not time metafor through Rscript"
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="limit BLAS/OpenMP threads to N in this process and in the peers' "
        "subprocesses (e.g. 1 on a loaded machine)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="seconds after which a slow peer's subprocess is killed "
        "(default 20; 10 with --quick)",
    )
    parser.add_argument(
        "--script-timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds allowed to a benchmark module run as a script "
        "(default 120; 60 with --quick)",
    )
    return parser


def _limit_threads(threads):
    """Limit BLAS threads; must run before numpy is imported to be complete."""
    if threads is None:
        return None
    from benchmarks._common import THREAD_VARIABLES

    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with scikit-learn
        return None
    return threadpool_limits(limits=threads)


def _owners(name):
    """Groups a ``--only`` name belongs to (empty: it names no group)."""
    return [
        g
        for g, aliases in GROUPS.items()
        if any(name == a or name.startswith(f"{a}-") for a in (g, *aliases))
    ]


def group_selected(group, only):
    """Whether a group runs under the ``--only`` names.

    A name selects a group when it is the group's name or alias, or starts with
    an alias and a dash (``re-k13`` selects ``random_effects``, ``ls-...``
    ``location_scale``); a name that matches no group is passed to every group.
    """
    if not only:
        return True
    return any(group in _owners(name) or not _owners(name) for name in only)


def case_names(group, only):
    """The ``--only`` names a selected group's ``benchmark_rows`` receives.

    None (all of its cases) when the group itself is named; otherwise the names
    that are the group's cases or belong to no group.
    """
    if not only:
        return None
    if any(name in (group, *GROUPS[group]) for name in only):
        return None
    return [n for n in only if group in _owners(n) or not _owners(n)] or None


def run_script(path, *, quick, timeout, threads=None, use_r=True):
    """Run a benchmark script; return its output (stdout and stderr) as text.

    Parameters
    ----------
    path : pathlib.Path
    quick : bool
        Pass ``--quick`` when the script's source mentions that option.
    timeout : float
        Seconds; the script is killed after that.
    threads : int, default=None
    use_r : bool, default=True
        When False, pass ``--no-r`` if the script's source mentions that option.

    Returns
    -------
    str
    """
    import subprocess

    from benchmarks._common import thread_env

    cmd = [sys.executable, str(path)]
    source = path.read_text(encoding="utf-8")
    if quick and "--quick" in source:
        cmd.append("--quick")
    if not use_r and "--no-r" in source:
        cmd.append("--no-r")
    env = thread_env(threads)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(path.parent.parent), env.get("PYTHONPATH")) if p
    )
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=path.parent.parent,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout or ""
        if isinstance(partial, bytes):
            partial = partial.decode(errors="replace")
        return f"{partial}\n[killed after {timeout:g} s]"
    out = proc.stdout
    if proc.returncode != 0:
        out += f"\n[exit status {proc.returncode}]\n{proc.stderr[-2000:]}"
    return out.rstrip()


def _rows_from(module, kwargs):
    import inspect

    from benchmarks._common import Row

    fn = module.benchmark_rows
    accepted = inspect.signature(fn).parameters
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    call = {k: v for k, v in kwargs.items() if has_var_kw or k in accepted}
    rows = []
    for item in fn(**call):
        if isinstance(item, Row):
            rows.append(item)
        elif isinstance(item, dict):
            fields = Row.__dataclass_fields__
            rows.append(Row(**{k: v for k, v in item.items() if k in fields}))
        else:
            raise TypeError(f"benchmark_rows returned {type(item).__name__}")
    return rows


def _header(args):
    import platform
    from importlib import metadata

    import numpy as np

    versions = []
    for dist in ("skmeta", "numpy", "scipy", "scikit-learn", *PEER_ORDER):
        try:
            versions.append(f"{dist} {metadata.version(dist.lower())}")
        except metadata.PackageNotFoundError:
            if dist != "metafor":
                versions.append(f"{dist} -")
    try:
        load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = ""
    blas = "default BLAS threads" if args.threads is None else f"threads={args.threads}"
    timeout = args.timeout or (10 if args.quick else 20)
    method = (
        "time: warm-up, then best of <= 1 batch >= 5 ms, budget 0.5 s"
        if args.quick
        else "time: warm-up, then best of <= 5 batches >= 50 ms, budget 5 s"
    )
    lines = [
        f"skmeta benchmarks{'  [--quick]' if args.quick else ''}",
        f"Python {platform.python_version()}, numpy {np.__version__}; "
        f"{os.cpu_count()} CPUs, {load}; {blas}",
        "; ".join(versions),
        f"{method}; slow peers' subprocesses killed after {timeout:g} s",
    ]
    return "\n".join(lines)


def main(argv=None):
    """Run the benchmarks and print the table.

    Parameters
    ----------
    argv : list of str, default=None

    Returns
    -------
    int
        Exit status (0 unless the harness itself failed).
    """
    args = _parser().parse_args(argv)
    limiter = _limit_threads(args.threads)  # noqa: F841 - keeps the limit alive
    import importlib

    from benchmarks._common import agreement, fmt_delta, render_rows, render_table

    print(_header(args), flush=True)
    kwargs = {
        "quick": args.quick,
        "only": args.only,
        "use_r": not args.no_r,
        "timeout": args.timeout,
        "threads": args.threads,
    }
    script_timeout = args.script_timeout or (60.0 if args.quick else 120.0)
    rows, notes, verbatim = [], [], []
    for group in GROUPS:
        if not group_selected(group, args.only):
            continue
        path = HERE / f"bench_{group}.py"
        if not path.exists():
            notes.append(f"{group}: benchmarks/bench_{group}.py not present (skipped)")
            continue
        module = None
        # import only modules that offer rows; the others run as scripts
        if "def benchmark_rows" in path.read_text(encoding="utf-8"):
            try:
                module = importlib.import_module(f"benchmarks.bench_{group}")
            except Exception as exc:  # someone else's module: report, go on
                notes.append(f"{group}: import failed ({type(exc).__name__}: {exc})")
        if module is not None and hasattr(module, "benchmark_rows"):
            try:
                names = case_names(group, args.only)
                rows.extend(_rows_from(module, {**kwargs, "only": names}))
            except Exception as exc:
                notes.append(f"{group}: benchmark_rows failed ({exc!r})")
            continue
        print(f"[running {path.name} as a script]", flush=True)
        text = run_script(
            path,
            quick=args.quick,
            timeout=script_timeout,
            threads=args.threads,
            use_r=not args.no_r,
        )
        verbatim.append((path.name, text))

    if rows:
        peers = [p for p in PEER_ORDER if any(p in r.peers for r in rows)]
        peers += sorted({p for r in rows for p in r.peers} - set(peers))
        print()
        print(render_rows(rows, peers))
        print(
            "\ntimes: best wall time per fit (ratio = peer / skmeta; "
            "* = a single call, slower than the time budget); "
            "skmeta peak = traced (tracemalloc) peak memory of one fit"
        )
        agree = []
        for row in rows:
            for name in peers:
                dtau, dbeta = agreement(row, name)
                if dtau is not None or dbeta is not None:
                    agree.append([row.case, name, fmt_delta(dtau), fmt_delta(dbeta)])
        if agree:
            print("\nAgreement with skmeta's estimates (same data, same estimator):")
            print(render_table(["case", "peer", "|d tau2|", "max |d beta|"], agree))
        peer_notes = {}
        for row in rows:
            notes.extend(row.notes)
            for name, peer in row.peers.items():
                if peer.note:
                    peer_notes.setdefault((name, peer.note), []).append(row.case)
        for (name, note), cases in peer_notes.items():
            notes.append(f"{name} ({', '.join(cases)}): {note}")
    if notes:
        print("\nNotes:")
        for note in notes:
            print(f"- {note}")
    for name, text in verbatim:
        print(f"\n==== {name} (run as a script; output verbatim) ====")
        print(text)
    if args.quick:
        print("\n--quick: tiny sizes; targets are not assessed.")
    else:
        print(
            "\nTimings on a shared, loaded machine are indicative only; rerun "
            "with --threads 1 to remove BLAS thread contention."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
