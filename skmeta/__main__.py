"""Command line: ``python -m skmeta`` (or ``skmeta``).

Without arguments it runs the main job on the bundled BCG vaccine data
(Colditz et al., 1994): a random-effects meta-analysis and a location-scale
model of the log risk ratios, with printed summaries and a forest plot written
to ``bcg_forest.png``.  With a CSV file it fits the chosen model to the file's
columns and prints the summary::

    python -m skmeta data.csv --yi yi --vi vi --mods ablat --method reml
    python -m skmeta data.csv --scale ni --mods ni          # location-scale
    python -m skmeta data.csv --groups district school      # three-level
    python -m skmeta data.csv --model robust --plot forest.png
"""

import argparse
import sys
import warnings
from pathlib import Path

from skmeta._engine._univariate import ALL_METHODS

_MODELS = ("random-effects", "location-scale", "multilevel", "robust")
_METHODS = {
    # GENQ needs per-study weights, which the command line does not take.
    "random-effects": tuple(m for m in ALL_METHODS if m != "genq"),
    "location-scale": ("reml", "ml"),
    "multilevel": ("reml", "ml"),
    "robust": ("dl", "he", "sj"),
}


class CLIError(Exception):
    """A user error: printed as ``skmeta: error: ...`` with exit status 2."""


def _parser():
    parser = argparse.ArgumentParser(
        prog="skmeta",
        description=(
            "Meta-analysis with skmeta. Without arguments: the bundled BCG example "
            "(random-effects and location-scale models, forest plot). With a CSV "
            "file: fit a model to its columns and print the summary."
        ),
    )
    parser.add_argument(
        "csv", nargs="?", help="CSV file with one row per study (omit: BCG example)."
    )
    parser.add_argument("--yi", default="yi", help="column of effect sizes (yi)")
    parser.add_argument("--vi", default="vi", help="column of sampling variances (vi)")
    parser.add_argument(
        "--sei",
        help="column of standard errors, instead of --vi (variances = sei^2)",
    )
    parser.add_argument(
        "--model",
        choices=_MODELS,
        help="model (default: location-scale with --scale, multilevel with "
        "--groups, else random-effects)",
    )
    parser.add_argument(
        "--method",
        help="estimator: reml (default), ml, dl, pm, ... for random-effects; "
        "dl (default), he, sj for robust",
    )
    parser.add_argument(
        "--mods", nargs="+", default=[], metavar="COL", help="moderator columns"
    )
    parser.add_argument(
        "--scale",
        nargs="+",
        default=[],
        metavar="COL",
        help="scale (heterogeneity) moderator columns: a location-scale model",
    )
    parser.add_argument(
        "--groups",
        nargs="+",
        default=[],
        metavar="COL",
        help="grouping columns, outermost first: a multilevel model",
    )
    parser.add_argument(
        "--inference",
        help="reference distribution: z (default), t, knapp-hartung "
        "(random-effects), hksj (robust)",
    )
    parser.add_argument(
        "--level", type=float, default=0.95, help="confidence level (0.95)"
    )
    parser.add_argument("--label", metavar="COL", help="column of study labels")
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="write a forest plot to FILE (png, pdf, svg; needs matplotlib). "
        "Default without a CSV: bcg_forest.png",
    )
    parser.add_argument(
        "--no-plot", action="store_true", help="do not write the forest plot"
    )
    return parser


def _design(frame, columns, what):
    """Numeric design from columns; text columns become treatment dummies."""
    import pandas as pd

    if not columns:
        return None
    part = frame[list(columns)]
    text = [c for c in part.columns if not pd.api.types.is_numeric_dtype(part[c])]
    if text:
        part = pd.get_dummies(part, columns=text, drop_first=True, dtype=float)
    part = part.astype(float)
    if part.isna().any().any():
        bad = [c for c in part.columns if part[c].isna().any()]
        raise CLIError(f"{what} column(s) {bad} have missing values.")
    return part


def _read_csv(path):
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise CLIError(f"file not found: {path}")
    try:
        return pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read {path} as CSV: {exc}") from None


def _check_columns(frame, args):
    wanted = [args.yi, args.sei or args.vi, *args.mods, *args.scale, *args.groups]
    if args.label:
        wanted.append(args.label)
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise CLIError(
            f"column(s) {missing} not in the CSV file; its columns are "
            f"{list(frame.columns)}."
        )


def _numeric(frame, column, what):
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce")
    if values.isna().any():
        rows = list(values.index[values.isna()][:5])
        raise CLIError(
            f"{what} column {column!r} has missing or non-numeric values (rows {rows})."
        )
    return values.to_numpy(dtype=float)


def _build(args):
    """Return (estimator, fit keyword arguments) for the chosen model."""
    from skmeta import LocationScaleMeta, MultilevelMeta, RandomEffectsMeta, RobustMeta

    model = args.model or (
        "location-scale"
        if args.scale
        else "multilevel"
        if args.groups
        else "random-effects"
    )
    if args.scale and model != "location-scale":
        raise CLIError("--scale needs --model location-scale.")
    if args.groups and model not in ("multilevel", "random-effects"):
        raise CLIError("--groups is for multilevel (or cluster-robust RE) models.")
    method = args.method or ("dl" if model == "robust" else "reml")
    if method not in _METHODS[model]:
        raise CLIError(
            f"--method {method!r} is not available for {model}; choose from "
            f"{list(_METHODS[model])}."
        )
    params = {}
    if args.inference is not None:
        params["inference"] = args.inference
    if model == "random-effects":
        est = RandomEffectsMeta(method=method, **params)
    elif model == "location-scale":
        est = LocationScaleMeta(method=method, **params)
    elif model == "multilevel":
        if not args.groups:
            raise CLIError("a multilevel model needs --groups COL [COL ...].")
        if args.inference is not None:
            raise CLIError("--inference is not an option of the multilevel model.")
        est = MultilevelMeta(method=method)
    else:
        est = RobustMeta(method=method, **params)
    return model, est


def _fit(est, X, y, v, **meta):
    try:
        return est.fit(X, y, sample_var=v, **meta)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _write_plot(path, est, y, v, **kw):
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        print(
            "\nmatplotlib is not installed: no plot written "
            "(pip install 'skmeta[plot]').",
            file=sys.stderr,
        )
        return
    from skmeta.plotting import forest_plot

    ax = forest_plot(est, y, v, **kw)
    try:
        ax.figure.savefig(path, dpi=120, bbox_inches="tight")
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot write the plot to {path}: {exc}") from None
    finally:
        import matplotlib.pyplot as plt

        plt.close(ax.figure)
    print(f"\nForest plot written to {path}")


def _run_csv(args):
    import numpy as np

    frame = _read_csv(args.csv)
    _check_columns(frame, args)
    model, est = _build(args)
    y = _numeric(frame, args.yi, "effect size")
    if args.sei:
        v = _numeric(frame, args.sei, "standard error") ** 2
    else:
        v = _numeric(frame, args.vi, "sampling variance")
    if np.any(v < 0):
        raise CLIError(f"sampling variance column {args.vi!r} has negative values.")
    X = _design(frame, args.mods, "moderator")
    meta, plot_kw = {}, {}
    if model == "location-scale":
        Z = _design(frame, args.scale, "scale moderator")
        meta["Z"] = Z
        plot_kw["Z"] = Z
    elif args.groups:
        groups = frame[list(args.groups)]
        if groups.isna().any().any():
            raise CLIError(f"grouping column(s) {args.groups} have missing values.")
        meta["groups"] = groups
        if model == "multilevel":
            plot_kw["groups"] = groups
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit(est, X, y, v, **meta)
    print(f"{args.csv}: {len(frame)} studies, {model} model\n")
    print(est.summary(args.level))
    for w in caught:
        print(f"\nWarning: {w.message}", file=sys.stderr)
    if args.plot and not args.no_plot:
        labels = frame[args.label].astype(str) if args.label else None
        _write_plot(
            args.plot,
            est,
            y,
            v,
            X=X,
            labels=labels,
            confidence_level=args.level,
            **plot_kw,
        )
    return 0


def _run_example(args):
    from skmeta import LocationScaleMeta, RandomEffectsMeta, lr_test
    from skmeta.datasets import load_bcg
    from skmeta.effect_sizes import log_risk_ratio

    bcg = load_bcg()
    yi, vi = log_risk_ratio(bcg["tpos"], bcg["tneg"], bcg["cpos"], bcg["cneg"])
    random = (bcg["alloc"] == "random").astype(float).to_frame("random")
    print("BCG vaccine trials (Colditz et al., 1994): log risk ratios, k = 13")
    print("=" * 68 + "\n")
    re = RandomEffectsMeta().fit(None, yi, sample_var=vi)
    print(re.summary(args.level))
    print("\n" + "=" * 68 + "\n")
    print("Location-scale model: random allocation in the location and scale parts\n")
    ls = LocationScaleMeta().fit(random, yi, sample_var=vi, Z=random)
    print(ls.summary(args.level))
    homogeneous = LocationScaleMeta().fit(random, yi, sample_var=vi)
    test = lr_test(ls, homogeneous)
    print(
        "\nLikelihood-ratio test of the scale moderator (scale ~ random vs ~ 1): "
        f"LRT = {test.statistic:.4f}, df = {test.df}, p = {test.p_value:.4f}"
    )
    if not args.no_plot:
        import numpy as np

        labels = bcg["author"] + ", " + bcg["year"].astype(str)
        _write_plot(
            args.plot or "bcg_forest.png",
            re,
            yi,
            vi,
            labels=labels,
            transform=np.exp,
            xlabel="Risk ratio (log scale)",
            confidence_level=args.level,
        )
    return 0


def main(argv=None):
    """Run the command line.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        Exit status: 0 on success, 2 for a usage or data error.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if not 0 < args.level < 1:
        parser.error(f"--level must be in (0, 1), got {args.level}.")
    known = ("z", "t", "knapp-hartung", "knapp-hartung-adhoc", "hksj")
    if args.inference is not None and args.inference not in known:
        parser.error(
            f"--inference {args.inference!r}: choose z, t, knapp-hartung, "
            "knapp-hartung-adhoc (random-effects) or hksj (robust)."
        )
    try:
        if args.csv is None:
            if args.mods or args.scale or args.groups or args.model:
                raise CLIError("model options need a CSV file (see --help).")
            return _run_example(args)
        return _run_csv(args)
    except CLIError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # invalid combination of estimator options
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
