"""Rerun Hanada & Sugimoto's simulation (section 4) at a size that runs in minutes.

Design (IntHout et al. 2014, as in the paper): theta = 0; K = 2, ..., 10, 15, 20;
within-study variances
  1. equal:            sigma_k^2 = 1;
  2. one small study:  sigma_1..K-1^2 = 0.1, sigma_K^2 = 1;
  3. 50/50:            floor(K/2) studies with 0.1, the rest 1 (odd K unspecified in
                       the paper; floor is our choice);
  4. various:          sigma_k^2 = 0.1 + 0.9 (k-1)/(K-1);
heterogeneity I^2 in {0.25, 0.5, 0.9} with tau^2 = mean(sigma^2) I^2/(1-I^2);
y_k ~ N(0, sigma_k^2 + tau^2); 95% intervals.

Methods: DL, SJ (plug-in z), mDL, mSJ (robust z), HKSJ-DL, HKSJ-SJ (Knapp-Hartung,
t_{K-1}), HKSJ-mDL, HKSJ-mSJ (robust HKSJ). The paper used 10,000 replications per
setting; the default here is 300 (Monte Carlo SE of a coverage near 0.95: 0.013).

The script plots coverage and mean CI length against K (rows: variance scenarios,
columns: I^2) to PNG files, prints a table, and checks the paper's qualitative
findings (section 4.2), with a tolerance of two Monte Carlo standard errors where a
finding compares methods across different data:
  (a) mDL covers at least as well as DL, and mSJ at least as well as SJ;
  (b) with few studies, coverage falls as heterogeneity rises (DL, K <= 4);
  (c) with equal variances and I^2 = 0.25 all methods are near nominal, while DL
      under-covers in the unequal scenarios with high heterogeneity;
  (e) mSJ is the most conservative of the z-based methods;
  (f) HKSJ-mDL covers at least as well as HKSJ-DL (and HKSJ-mSJ as HKSJ-SJ).
Finding (d) concerns Michael et al.'s exact method, not implemented here.

The DL findings are asserted. The SJ ones ((a) and (f) for SJ, and (e)) are printed
but not asserted, because with the exact M-estimate they do not hold and should not
be expected to: mSJ's tau^2_M solves Q(tau^2) = median(chi2_{K-1}) (a
median-unbiased Paule-Mandel value, Viechtbauer 2021), which is often *below* the
feasible SJ estimate -- SJ is positively biased at small heterogeneity, where it
over-covers -- so mSJ is narrower than SJ there (it is wider at I^2 = 0.9). The
paper's own argument for (e) rests on "median >= mean" for the chi-square, which is
reversed (the chi-square is right-skewed: its median is below its mean). The
authors' grid version (paper_compat) is worse still: it often lands on the trivial
root tau^2 = 0.001 and under-covers badly.

Run:  python benchmarks/robust_simulation.py [--reps 300] [--seed 1] [--out DIR]
(about 4 minutes with the default size on one core: 6 ms per data set for
all eight methods).
"""

import argparse
import pathlib
import time

import numpy as np

from skmeta._engine import _robust as rob

KS = (2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)
I2S = (0.25, 0.5, 0.9)
SCENARIOS = ("equal", "one small", "50/50", "various")
METHODS = ("DL", "SJ", "mDL", "mSJ", "HKSJ-DL", "HKSJ-SJ", "HKSJ-mDL", "HKSJ-mSJ")
LEVEL = 0.95


def within_variances(scenario, k):
    if scenario == "equal":
        return np.ones(k)
    if scenario == "one small":
        return np.r_[np.full(k - 1, 0.1), 1.0]
    if scenario == "50/50":
        return np.r_[np.full(k // 2, 0.1), np.ones(k - k // 2)]
    return 0.1 + 0.9 * np.arange(k) / (k - 1)


def intervals(y, v):
    """95% intervals of the eight methods for one data set: array (8, 2)."""
    X = np.ones((y.size, 1))
    out = np.empty((len(METHODS), 2))
    dl = rob.robust_fit(X, y, v, method="dl")
    sj = rob.robust_fit(X, y, v, method="sj")
    for i, (fit, robust, inference) in enumerate(
        [
            (dl, False, "z"),
            (sj, False, "z"),
            (dl, True, "z"),
            (sj, True, "z"),
            (dl, False, "knapp-hartung"),
            (sj, False, "knapp-hartung"),
            (dl, True, "knapp-hartung"),
            (sj, True, "knapp-hartung"),
        ]
    ):
        out[i] = rob.robust_conf_int(fit, LEVEL, inference=inference, robust=robust)[0]
    return out


def simulate(reps, seed):
    rng = np.random.default_rng(seed)
    shape = (len(SCENARIOS), len(I2S), len(KS), len(METHODS))
    coverage = np.zeros(shape)
    length = np.zeros(shape)
    for a, scenario in enumerate(SCENARIOS):
        for b, i2 in enumerate(I2S):
            for c, k in enumerate(KS):
                v = within_variances(scenario, k)
                tau2 = v.mean() * i2 / (1 - i2)
                ys = rng.normal(size=(reps, k)) * np.sqrt(v + tau2)
                cis = np.array([intervals(y, v) for y in ys])  # (reps, 8, 2)
                coverage[a, b, c] = np.mean((cis[..., 0] <= 0) & (cis[..., 1] >= 0), 0)
                length[a, b, c] = np.mean(cis[..., 1] - cis[..., 0], 0)
    return coverage, length


def plot(values, methods, ylabel, path, nominal=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(SCENARIOS), len(I2S), figsize=(12, 12), sharex=True, squeeze=False
    )
    for a, scenario in enumerate(SCENARIOS):
        for b, i2 in enumerate(I2S):
            ax = axes[a, b]
            for name in methods:
                m = METHODS.index(name)
                style = "-" if name.startswith(("m", "HKSJ-m")) else "--"
                ax.plot(KS, values[a, b, :, m], style, marker="o", ms=3, label=name)
            if nominal is not None:
                ax.axhline(nominal, color="grey", lw=0.8)
            else:
                ax.set_yscale("log")
            ax.set_title(f"{scenario}, I² = {i2}", fontsize=10)
            if b == 0:
                ax.set_ylabel(ylabel)
            if a == len(SCENARIOS) - 1:
                ax.set_xlabel("K")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def check_findings(coverage, reps):
    se = np.sqrt(LEVEL * (1 - LEVEL) / reps)
    idx = {m: i for i, m in enumerate(METHODS)}
    cov = {m: coverage[..., i] for m, i in idx.items()}
    results = []

    def record(name, ok, detail, asserted=True):
        results.append((name, bool(ok), detail, asserted))

    # (a) paired comparisons on the same data sets: no tolerance needed beyond one
    # replicate (the robust interval need not contain the plug-in one every time).
    for plain, robust in (("DL", "mDL"), ("SJ", "mSJ")):
        diff = cov[robust] - cov[plain]
        record(
            f"(a) {robust} >= {plain} in every setting",
            np.all(diff >= -1.0 / reps),
            f"min difference {diff.min():+.4f}, mean {diff.mean():+.4f}",
            asserted=plain == "DL",
        )
    # (b) few studies: coverage at I2 = 0.25 above that at 0.9 (DL, K <= 4)
    small = [KS.index(k) for k in (2, 3, 4)]
    lo_het = cov["DL"][:, 0, small].mean()
    hi_het = cov["DL"][:, 2, small].mean()
    record(
        "(b) DL coverage falls with I^2 for K <= 4",
        lo_het > hi_het,
        f"I2=0.25: {lo_het:.3f}, I2=0.9: {hi_het:.3f}",
    )
    # (c) equal variances, I2 = 0.25: all methods near nominal for K >= 5; DL
    # under-covers with unequal variances and I2 = 0.9 (K <= 10)
    big = [KS.index(k) for k in KS if k >= 5]
    eq = coverage[0, 0][big].mean(axis=0)
    record(
        "(c) equal variances, I^2 = 0.25: all methods within 0.03 of 0.95 (K >= 5)",
        np.all(np.abs(eq - LEVEL) < 0.03 + 2 * se / np.sqrt(len(big))),
        ", ".join(f"{m} {c:.3f}" for m, c in zip(METHODS, eq, strict=True)),
    )
    mid = [KS.index(k) for k in KS if k <= 10]
    under = cov["DL"][1:, 2][:, mid].mean()
    record(
        "(c) DL under-covers with unequal variances, I^2 = 0.9 (K <= 10)",
        under < LEVEL - 2 * se,
        f"mean coverage {under:.3f}",
    )
    # (e) mSJ most conservative among the z-based methods (mean over settings)
    means = {m: cov[m].mean() for m in ("DL", "SJ", "mDL", "mSJ")}
    record(
        "(e) mSJ has the highest mean coverage of DL, SJ, mDL, mSJ",
        max(means, key=means.get) == "mSJ",
        ", ".join(f"{m} {c:.3f}" for m, c in means.items()),
        asserted=False,
    )
    # (f) HKSJ-M >= HKSJ (paired)
    for plain, robust in (("HKSJ-DL", "HKSJ-mDL"), ("HKSJ-SJ", "HKSJ-mSJ")):
        diff = cov[robust] - cov[plain]
        record(
            f"(f) {robust} >= {plain} in every setting",
            np.all(diff >= -1.0 / reps),
            f"min difference {diff.min():+.4f}, mean {diff.mean():+.4f}",
            asserted=plain == "HKSJ-DL",
        )
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="robust_simulation_output")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    coverage, length = simulate(args.reps, args.seed)
    elapsed = time.perf_counter() - t0
    n_fits = len(SCENARIOS) * len(I2S) * len(KS) * args.reps
    print(
        f"{n_fits} simulated meta-analyses x {len(METHODS)} methods in "
        f"{elapsed:.0f} s ({1e3 * elapsed / n_fits:.1f} ms each)\n"
    )
    main_methods = ("DL", "SJ", "mDL", "mSJ")
    hksj_methods = ("HKSJ-DL", "HKSJ-SJ", "HKSJ-mDL", "HKSJ-mSJ")
    plot(coverage, main_methods, "coverage", out / "coverage.png", LEVEL)
    plot(length, main_methods, "mean CI length", out / "length.png")
    plot(coverage, hksj_methods, "coverage", out / "coverage_hksj.png", LEVEL)
    plot(length, hksj_methods, "mean CI length", out / "length_hksj.png")

    header = f"{'scenario':<10} {'I2':>4} {'K':>3} " + " ".join(
        f"{m:>8}" for m in METHODS
    )
    print("Coverage of 95% intervals")
    print(header)
    for a, scenario in enumerate(SCENARIOS):
        for b, i2 in enumerate(I2S):
            for c, k in enumerate(KS):
                row = " ".join(f"{x:8.3f}" for x in coverage[a, b, c])
                print(f"{scenario:<10} {i2:>4} {k:>3} {row}")
    print(f"\nPlots written to {out.resolve()}\n")

    results = check_findings(coverage, args.reps)
    for name, ok, detail, asserted in results:
        tag = ("PASS" if ok else "FAIL") if asserted else ("holds" if ok else "no")
        print(f"[{tag}] {name}: {detail}")
    print(
        "\n[holds]/[no]: SJ findings, reported but not asserted (see the module "
        "docstring: exact mSJ can be narrower than SJ at small heterogeneity)."
    )
    failed = [name for name, ok, _, asserted in results if asserted and not ok]
    assert not failed, f"findings not reproduced: {failed}"


if __name__ == "__main__":
    main()
