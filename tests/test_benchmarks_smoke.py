"""Smoke tests of the benchmark harness (``python -m benchmarks``).

They prove that the harness runs and reports; they assert nothing about speed
(SPEC section 9: speed is measured by the benchmarks, never in timed tests).
"""

import importlib.util
import re
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RE_CASES = ("re-k13", "re-k13-dl", "re-k1e4", "re-k1e6", "re-mem-k1e6", "re-cv-k1000")
DURATION = re.compile(r"^\d+(\.\d+)?(e[+-]\d+)? (us|ms|s)\*?$")


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import __main__ as harness
    from benchmarks import _common

    return harness, _common


def _run(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _table(stdout):
    """Rows of the main table, split on runs of 2+ spaces, keyed by case."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("case "))
    header = re.split(r"\s{2,}", lines[start].strip())
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = dict(zip(header, cells, strict=False))
    return header, rows


def test_quick_run_everything():
    """``python -m benchmarks --quick --no-r``: every module, one table, no failure."""
    proc = _run("--quick", "--no-r")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    # other engineers' modules: rows joined or script output included, none broken
    for marker in ("import failed", "benchmark_rows failed", "[exit status", "[killed"):
        assert marker not in proc.stdout, marker
    for group in ("location_scale", "multilevel", "robust"):
        path = ROOT / "benchmarks" / f"bench_{group}.py"
        if path.exists():
            assert f"bench_{group}.py not present" not in proc.stdout
    header, rows = _table(proc.stdout)
    assert header[:3] == ["case", "k", "skmeta"]
    for peer in ("metafor", "pimeta", "PyMARE", "statsmodels"):
        assert peer in header
    assert header[-3:] == ["skmeta peak", "target", "met"]
    assert set(RE_CASES) <= set(rows)
    for case in RE_CASES:
        if case != "re-mem-k1e6":
            assert DURATION.match(rows[case]["skmeta"]), rows[case]
        assert rows[case]["skmeta peak"].endswith("MB")
        assert rows[case]["metafor"] in ("off (--no-r)", "not run (k x k)", "-")
    # the statsmodels caveat is printed whenever statsmodels is timed
    if importlib.util.find_spec("statsmodels") is not None:
        assert "statsmodels has no random-effects meta-regression" in proc.stdout
    # peers that ran agree with skmeta on the estimates (same model, same data)
    if importlib.util.find_spec("pymare") is not None:
        assert re.search(r"re-k13\s+PyMARE\s+\S+\s+\S+", proc.stdout)
    assert "--quick: tiny sizes" in proc.stdout


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="needs Rscript")
def test_quick_run_with_metafor():
    check = subprocess.run(
        ["Rscript", "-e", "library(metafor); library(jsonlite)"],
        capture_output=True,
        check=False,
    )
    if check.returncode != 0:
        pytest.skip("R packages metafor and jsonlite are not installed")
    proc = _run("--quick", "--only", "re-k13-dl")
    assert proc.returncode == 0, proc.stderr
    _, rows = _table(proc.stdout)
    assert DURATION.match(rows["re-k13-dl"]["metafor"].split(" x")[0])
    # DL is closed form: metafor and skmeta agree to rounding on the same CSV data
    match = re.search(r"re-k13-dl\s+metafor\s+(\S+)\s+(\S+)", proc.stdout)
    assert match is not None
    for value in match.groups():
        assert value == "0" or float(value) < 1e-10


def test_script_modules_run_verbatim(bench, tmp_path):
    harness, _ = bench
    script = tmp_path / "benchmarks" / "bench_fake.py"
    script.parent.mkdir()
    script.write_text(
        "import sys\n# understands --quick\nprint('fake table', sys.argv[1:])\n",
        encoding="utf-8",
    )
    out = harness.run_script(script, quick=True, timeout=60)
    assert "fake table ['--quick']" in out
    script.write_text(
        "import sys\n# options: --quick, --no-r\nprint('args', sys.argv[1:])\n",
        encoding="utf-8",
    )
    out = harness.run_script(script, quick=False, timeout=60, use_r=False)
    assert "args ['--no-r']" in out
    script.write_text("print('no options')\n", encoding="utf-8")
    assert "no options" in harness.run_script(script, quick=True, timeout=60)
    script.write_text(
        "import time\nprint('started', flush=True)\ntime.sleep(30)\n", encoding="utf-8"
    )
    out = harness.run_script(script, quick=False, timeout=1)
    assert "[killed after 1 s]" in out
    script.write_text("raise SystemExit('boom')\n", encoding="utf-8")
    out = harness.run_script(script, quick=False, timeout=60)
    assert "[exit status 1]" in out and "boom" in out


def test_group_selection(bench):
    harness, _ = bench
    sel = harness.group_selected
    assert all(sel(g, None) for g in harness.GROUPS)
    assert sel("random_effects", ["re-k13"])
    assert not sel("robust", ["re-k13"])
    assert sel("location_scale", ["ls-k13"]) and not sel("multilevel", ["ls-k13"])
    assert sel("robust", ["robust"]) and not sel("random_effects", ["robust"])
    # a name of no group is passed to every module
    assert sel("multilevel", ["three-level"]) and sel("robust", ["three-level"])
    names = harness.case_names
    assert names("random_effects", None) is None
    assert names("random_effects", ["re", "ls-k13"]) is None
    assert names("random_effects", ["re-k13", "ls-k13", "x"]) == ["re-k13", "x"]


def test_timing_helpers(bench):
    _, common = bench
    calls = []
    timing = common.best_time(lambda: calls.append(1), repeat=3, min_batch=1e-3)
    assert timing.seconds > 0 and not timing.single
    assert len(calls) == timing.calls + 2  # warm-up and calibration are not timed

    def slow():
        time.sleep(0.02)

    timing = common.best_time(slow, repeat=5, budget=0.01)
    assert timing.single and timing.calls == 1 and timing.seconds >= 0.02

    nbytes = common.peak_traced_bytes(lambda: bytearray(5_000_000))
    assert 5_000_000 <= nbytes < 6_000_000

    assert common.fmt_time(1.5e-3) == "1.5 ms"
    assert common.fmt_time(2.5e-5) == "25 us"
    assert common.fmt_time(12.0, single=True) == "12 s*"
    assert common.fmt_time(None) == "n/a"
    assert common.fmt_ratio(3e-3, 1e-3) == "x3"
    assert common.fmt_ratio(None, 1e-3) == ""

    row = common.Row("g", "c", "d", 3, tau2=0.1, beta=[1.0, 2.0])
    row.peers["p"] = common.PeerResult(seconds=1.0, tau2=0.1 + 1e-6, beta=[1.0, 2.5])
    row.peers["q"] = common.PeerResult(seconds=1.0, tau2=0.1, beta=[1.0])
    dtau, dbeta = common.agreement(row, "p")
    assert dtau == pytest.approx(1e-6) and dbeta == pytest.approx(0.5)
    assert common.agreement(row, "q")[1] == float("inf")
    assert common.agreement(row, "absent") == (None, None)


def test_rows_from_other_modules(bench):
    harness, common = bench
    seen = {}

    def benchmark_rows(quick=False, only=None):
        seen.update(quick=quick, only=only)
        return [
            {"group": "ls", "case": "ls-k13", "description": "d", "k": 13, "x": 1},
            common.Row("ls", "ls-k1e5", "d", 100_000, seconds=1.0),
        ]

    module = types.SimpleNamespace(benchmark_rows=benchmark_rows)
    kwargs = {"quick": True, "only": ["ls-k13"], "use_r": False, "threads": 1}
    rows = harness._rows_from(module, kwargs)
    assert seen == {"quick": True, "only": ["ls-k13"]}  # unknown keywords dropped
    assert [r.case for r in rows] == ["ls-k13", "ls-k1e5"]
    assert rows[0].k == 13 and rows[0].seconds is None
    table = common.render_rows(rows, ["metafor"])
    assert "ls-k1e5" in table and "1 s" in table
