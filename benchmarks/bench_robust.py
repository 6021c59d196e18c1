"""Time RobustMeta: one fit plus every output.

* K = 3 ... 20 (the paper's sizes; target <= 20 ms per fit with all outputs);
* K = 200, 2,000 and 10^4 studies ("in seconds"): the distribution of the moment
  statistic is never reduced to eigenvalues (a diagonal matrix minus a
  projection), so one evaluation costs O(K).

"All outputs" = fit, robust and conventional intervals and p-values, the tau^2
sampling interval and the summary table. Deterministic, no Monte Carlo; the
authors' R code (metaMest, 10^4 Monte Carlo draws plus grid searches) is not
available offline, so no peer is timed.

Run:  python benchmarks/bench_robust.py [--quick]
"""

import argparse
import time

import numpy as np

from skmeta import RobustMeta

SMALL = (3, 5, 10, 20)
LARGE = (200, 2_000, 10_000)
SETTINGS = [
    {"method": "dl", "inference": "z"},
    {"method": "dl", "inference": "knapp-hartung"},
    {"method": "he", "inference": "z"},
    {"method": "sj", "inference": "z"},
    {"method": "sj", "inference": "knapp-hartung"},
    {"method": "dl", "inference": "knapp-hartung", "paper_compat": True},
]


def all_outputs(model, y, v):
    model.fit(None, y, sample_var=v)
    model.conf_int()
    model.conf_int(robust=False)
    model.p_value()
    model.p_value(robust=False)
    model.tau2_sampling_interval()
    return model


def time_one(params, y, v, repeat):
    model = RobustMeta(**params)
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        all_outputs(model, y, v)
        best = min(best, time.perf_counter() - t0)
    t0 = time.perf_counter()
    model.summary()
    summary = time.perf_counter() - t0
    return 1e3 * best, 1e3 * summary


def data(rng, k):
    v = rng.uniform(0.05, 1.0, k)
    return rng.normal(size=k) * np.sqrt(v + 0.3), v


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes, one run")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(1)
    print(f"{'setting':<52} {'K':>6} {'ms/fit (all outputs)':>21} {'summary ms':>11}")
    worst = 0.0
    for k in SMALL[:2] if args.quick else SMALL:
        y, v = data(rng, k)
        for params in SETTINGS:
            label = ", ".join(f"{a}={b}" for a, b in params.items())
            time_one(params, y, v, 1)  # warm-up
            ms, ms_summary = time_one(params, y, v, 1 if args.quick else 15)
            worst = max(worst, ms)
            print(f"{label:<52} {k:>6} {ms:>21.2f} {ms_summary:>11.2f}")
    print(f"worst: {worst:.2f} ms per fit with all outputs (target <= 20 ms)\n")
    for k in LARGE[:2] if args.quick else LARGE:
        y, v = data(rng, k)
        for params in SETTINGS[:2] + SETTINGS[3:4]:
            label = ", ".join(f"{a}={b}" for a, b in params.items())
            ms, ms_summary = time_one(params, y, v, 1)
            print(f"{label:<52} {k:>6} {ms:>21.1f} {ms_summary:>11.1f}")
    print("\nK = 2,000 took 14-41 s and K = 2,500 67 s before (and a wrong tau2_M).")


if __name__ == "__main__":
    main()
