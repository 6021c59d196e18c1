"""Time whichever PyMARE is installed on the many-outputs benchmark data.

PyMARE 0.0.10 and earlier fitted REML with one call of SciPy's optimizer per
output; 0.0.11 and later search all outputs at once.  This script needs only
numpy and PyMARE (skmeta is not imported), so that an older PyMARE can be timed
from its own environment::

    python -m venv /tmp/pymare10 && /tmp/pymare10/bin/pip install "pymare==0.0.10"
    PYTHONPATH=. /tmp/pymare10/bin/python -m benchmarks.pymare_versions 2000

The argument is the number of outputs REML is timed on (the per-output time is
printed and scaled to the benchmark's 10^5 outputs; the older releases take about
a second and a half per thousand outputs).  DerSimonian-Laird is timed on all
10^5 outputs.  Compare with ``python -m benchmarks --only many`` run on the same
machine.
"""

from __future__ import annotations

import sys
import warnings
from importlib.metadata import version

import numpy as np

from benchmarks._common import best_time
from benchmarks.bench_many import many_data

#: Studies and outputs of the benchmark data.
K, M = 20, 100_000


def main(argv=None):
    from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator

    argv = sys.argv[1:] if argv is None else argv
    m = int(argv[0]) if argv else 2000
    X = np.ones((K, 1))
    y, v = many_data(K, M)
    warnings.simplefilter("ignore")
    print(f"PyMARE {version('pymare')}")
    dl = best_time(lambda: DerSimonianLaird().fit(y=y, v=v, X=X)).seconds
    print(f"DerSimonian-Laird, {M:,} outputs x {K}: {dl * 1e3:.1f} ms")
    ys, vs = np.ascontiguousarray(y[:, :m]), np.ascontiguousarray(v[:, :m])
    # one call (seconds each): no budget for repeats
    reml = best_time(
        lambda: VarianceBasedLikelihoodEstimator(method="REML").fit(y=ys, v=vs, X=X),
        budget=0.0,
    ).seconds
    print(
        f"REML, first {m:,} outputs: {reml:.2f} s = {reml / m * 1e3:.3f} ms per "
        f"output, {reml / m * M:.1f} s for {M:,} outputs"
    )


if __name__ == "__main__":
    main()
