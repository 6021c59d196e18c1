"""Time RobustMeta: one fit plus every output, K = 3 ... 20 (target <= 20 ms).

"All outputs" = fit, robust and conventional intervals and p-values, the tau^2
sampling interval and the summary table. Deterministic, no Monte Carlo; the
authors' R code (metaMest, 10^4 Monte Carlo draws plus grid searches) is not
available offline, so no peer is timed.

Run:  python benchmarks/bench_robust.py
"""

import time

import numpy as np

from skmeta import RobustMeta


def all_outputs(model, y, v):
    model.fit(None, y, sample_var=v)
    model.conf_int()
    model.conf_int(robust=False)
    model.p_value()
    model.p_value(robust=False)
    model.tau2_sampling_interval()
    return model


def time_one(params, y, v, repeat=15):
    model = RobustMeta(**params)
    all_outputs(model, y, v)  # warm-up
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        all_outputs(model, y, v)
        best = min(best, time.perf_counter() - t0)
    t0 = time.perf_counter()
    model.summary()
    summary = time.perf_counter() - t0
    return 1e3 * best, 1e3 * summary


def main():
    rng = np.random.default_rng(1)
    settings = [
        {"tau2_estimator": "dl", "inference": "z"},
        {"tau2_estimator": "dl", "inference": "hksj"},
        {"tau2_estimator": "he", "inference": "z"},
        {"tau2_estimator": "sj", "inference": "z"},
        {"tau2_estimator": "sj", "inference": "hksj"},
        {"tau2_estimator": "dl", "inference": "hksj", "paper_compat": True},
    ]
    print(f"{'setting':<52} {'K':>3} {'ms/fit (all outputs)':>21} {'summary ms':>11}")
    worst = 0.0
    for k in (3, 5, 10, 20):
        v = rng.uniform(0.05, 1.0, k)
        y = rng.normal(size=k) * np.sqrt(v + 0.3)
        for params in settings:
            label = ", ".join(f"{a}={b}" for a, b in params.items())
            ms, ms_summary = time_one(params, y, v)
            worst = max(worst, ms)
            print(f"{label:<52} {k:>3} {ms:>21.2f} {ms_summary:>11.2f}")
    print(f"\nworst: {worst:.2f} ms per fit with all outputs (target <= 20 ms)")


if __name__ == "__main__":
    main()
