"""Command line: ``python -m skmeta`` (or ``skmeta``).

Without arguments it runs the main job on the bundled BCG vaccine data
(Colditz et al., 1994): a random-effects meta-analysis and a location-scale
model of the log risk ratios, with printed summaries and a forest plot written
to ``bcg_forest.png``.  With a CSV file it fits the chosen model to the file's
columns and prints the model's summary::

    python -m skmeta data.csv --yi yi --vi vi --mods ablat --method reml
    python -m skmeta data.csv --scale ni --mods ni          # location-scale
    python -m skmeta data.csv --groups district school      # three-level
    python -m skmeta data.csv --mods arm --factors arm      # codes as categories
    python -m skmeta data.csv --model robust --plot forest.png

The models, their ``--method`` and ``--inference`` choices and the columns
their ``fit`` takes come from the estimator registry (:mod:`skmeta._registry`)
and the estimator classes themselves.
"""

import argparse
import inspect
import sys
import textwrap
import warnings
from pathlib import Path

from skmeta._registry import ESTIMATORS, estimator_class

#: Width of the --help text that is wrapped here (argparse wraps the rest).
_HELP_WIDTH = 79


class CLIError(Exception):
    """A user error: printed as ``skmeta: error: ...`` with exit status 2."""


# ------------------------------------------------------------------ arguments
def _default_model_text():
    defaults = [
        f"{name} with {', '.join(entry.cli_required)}"
        for name, entry in ESTIMATORS.items()
        if entry.cli_required
    ]
    return ", ".join([*defaults, f"else {next(iter(ESTIMATORS))}"])


def _options_text():
    """Per model, the choices of --method and --inference (for --help)."""
    lines = ["choices of --method / --inference by model (default first):"]
    for name in ESTIMATORS:
        cls = estimator_class(name)
        parts = []
        for option in ("method", "inference"):
            choices = _choices(cls, option)
            if choices:
                default = inspect.signature(cls).parameters[option].default
                ordered = [default, *(c for c in choices if c != default)]
                parts.append(f"--{option} {{{', '.join(ordered)}}}")
        lines.append(
            textwrap.fill(
                f"{name}: {'; '.join(parts) or '(none)'}",
                width=_HELP_WIDTH,
                initial_indent="  ",
                subsequent_indent="      ",
            )
        )
    return "\n".join(lines)


def _parser():
    parser = argparse.ArgumentParser(
        prog="skmeta",
        description=textwrap.fill(
            "Meta-analysis with skmeta. Without arguments: the bundled BCG example "
            "(random-effects and location-scale models, forest plot). With a CSV "
            "file: fit a model to its columns and print the summary.",
            width=_HELP_WIDTH,
        ),
        epilog=_options_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("csv", nargs="?", help="CSV file with one row per study (omit: BCG example).")
    add("--yi", default="yi", help="column of effect sizes (yi)")
    add("--vi", default="vi", help="column of sampling variances (vi)")
    add("--sei", help="column of standard errors, instead of --vi (variances = sei^2)")
    add(
        "--model",
        choices=list(ESTIMATORS),
        help=f"model (default: {_default_model_text()})",
    )
    add("--method", help="heterogeneity estimator (choices depend on --model)")
    columns = {"nargs": "+", "default": [], "metavar": "COL"}
    add("--mods", **columns, help="moderator columns")
    add(
        "--scale",
        **columns,
        help="scale (heterogeneity) moderator columns: a location-scale model",
    )
    add(
        "--factors",
        **columns,
        help="columns of --mods/--scale to treat as categorical (dummy-coded) "
        "although they hold numbers; text columns are categorical anyway",
    )
    add(
        "--groups",
        **columns,
        help="grouping columns, outermost first: a multilevel model (or "
        "cluster-robust standard errors of a random-effects model)",
    )
    add("--inference", help="reference distribution, e.g. z, t, knapp-hartung")
    add("--level", type=float, default=0.95, help="confidence level (0.95)")
    add("--label", metavar="COL", help="column of study labels")
    add(
        "--plot",
        metavar="FILE",
        help="write a forest plot to FILE (png, pdf, svg; needs matplotlib). "
        "Default without a CSV: bcg_forest.png",
    )
    add("--no-plot", action="store_true", help="do not write the forest plot")
    return parser


# ------------------------------------------------------------- the CSV file
def _read_csv(path):
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise CLIError(f"file not found: {path}")
    try:
        frame = pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read {path} as CSV: {exc}") from None
    return frame.reset_index(drop=True)


def _where(row):
    """A row of the file, for messages (rows counted from 1 below the header)."""
    return f"row {row + 1} (line {row + 2} of the file)"


def _cells(values, rows, limit=3):
    """``row i (line j): 'value'`` for the first ``limit`` of ``rows``."""
    text = "; ".join(f"{_where(i)}: {values.iloc[i]!r}" for i in rows[:limit])
    return text + (f"; and {len(rows) - limit} more" if len(rows) > limit else "")


def _check_columns(frame, args):
    for option in ("--mods", "--scale", "--groups", "--factors"):
        listed = getattr(args, option[2:])
        repeated = sorted({c for c in listed if listed.count(c) > 1})
        if repeated:
            raise CLIError(f"{option} lists column {repeated[0]!r} twice.")
    wanted = [args.yi, args.sei or args.vi, *args.mods, *args.scale, *args.groups]
    wanted += args.factors + ([args.label] if args.label else [])
    missing = [c for c in dict.fromkeys(wanted) if c not in frame.columns]
    if missing:
        raise CLIError(
            f"column(s) {missing} not in the CSV file; its columns are "
            f"{list(frame.columns)}."
        )
    stray = [c for c in args.factors if c not in args.mods + args.scale]
    if stray:
        raise CLIError(
            f"--factors names column {stray[0]!r}, which is not in --mods or --scale."
        )


def _numeric(frame, column, what):
    """A column of numbers, or an error naming the offending rows and values."""
    import numpy as np
    import pandas as pd

    values = frame[column]
    parsed = pd.to_numeric(values, errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        raise CLIError(
            f"{what} column {column!r} has missing or non-numeric values: "
            f"{_cells(values, bad)}."
        )
    parsed = parsed.to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(parsed))
    if bad.size:
        raise CLIError(
            f"{what} column {column!r} has NaN or infinity: {_cells(values, bad)}."
        )
    return parsed


def _nonnegative(frame, column, what):
    import numpy as np

    values = _numeric(frame, column, what)
    bad = np.flatnonzero(values < 0)
    if bad.size:
        raise CLIError(
            f"{what} column {column!r} has negative values: "
            f"{_cells(frame[column], bad)}."
        )
    return values


def _is_text(values):
    """Whether a column holds no numbers at all (missing cells aside)."""
    import pandas as pd

    present = values.dropna()
    return pd.to_numeric(present, errors="coerce").isna().all() and len(present) > 0


def _dummies(values, column, what):
    """Treatment dummies against the first level (in sorted order)."""
    import pandas as pd

    levels = sorted(values.unique())
    if len(levels) < 2:
        raise CLIError(
            f"{what} column {column!r} has a single level ({levels[0]!r}): it "
            "cannot be a moderator."
        )
    return pd.DataFrame(
        {f"{column}_{level}": (values == level).astype(float) for level in levels[1:]}
    )


def _design(frame, columns, option, factors):
    """Moderators from columns: numbers as they are, categories as dummies.

    A column is categorical when declared with ``--factors`` or when it holds no
    numbers at all; a numeric column with a text cell is an error naming it.
    """
    import numpy as np
    import pandas as pd

    if not columns:
        return None
    what = "scale moderator" if option == "--scale" else "moderator"
    parts = []
    for column in columns:
        values = frame[column]
        missing = np.flatnonzero(values.isna().to_numpy())
        if missing.size:
            raise CLIError(
                f"{what} column {column!r} has missing values: "
                f"{_cells(values, missing)}."
            )
        if column in factors or _is_text(values):
            parts.append(_dummies(values, column, what))
            continue
        parsed = pd.to_numeric(values, errors="coerce")
        text = np.flatnonzero(parsed.isna().to_numpy())
        if text.size:
            raise CLIError(
                f"{what} column {column!r} holds numbers but also text: "
                f"{_cells(values, text)}. Fix the values, or declare the column "
                f"categorical with --factors {column}."
            )
        bad = np.flatnonzero(~np.isfinite(parsed.to_numpy(dtype=float)))
        if bad.size:
            raise CLIError(
                f"{what} column {column!r} has infinity: {_cells(values, bad)}."
            )
        parts.append(parsed.astype(float).to_frame(column))
    return pd.concat(parts, axis=1)


def _groups(frame, columns):
    import numpy as np

    groups = frame[list(columns)]
    missing = np.flatnonzero(groups.isna().any(axis=1).to_numpy())
    if missing.size:
        rows = ", ".join(_where(i) for i in missing[:3])
        raise CLIError(
            f"grouping column(s) {list(columns)} have missing labels: {rows}."
        )
    return groups


# ----------------------------------------------------------------- the model
def _choose_model(args):
    given = {"--scale": bool(args.scale), "--groups": bool(args.groups)}
    if args.model is not None:
        name = args.model
    else:
        name = next(
            (
                name
                for name, entry in ESTIMATORS.items()
                if entry.cli_required and all(given[o] for o in entry.cli_required)
            ),
            next(iter(ESTIMATORS)),
        )
    entry = ESTIMATORS[name]
    for option, present in given.items():
        if present and option not in entry.cli_metadata:
            raise CLIError(f"{option} is not an option of the {name} model.")
    for option in entry.cli_required:
        if not given[option]:
            raise CLIError(f"a {name} model needs {option} COL [COL ...].")
    return name


def _choices(cls, parameter):
    """Allowed string values of a hyperparameter (None: not a hyperparameter)."""
    constraints = getattr(cls, "_parameter_constraints", {}).get(parameter)
    if constraints is None:
        return None
    options = set()
    for constraint in constraints:
        options |= set(getattr(constraint, "options", ()))
    return sorted(options)


def _estimator(name, args):
    """The registered estimator with the --method and --inference given."""
    cls = estimator_class(name)
    params = {}
    for option, value in (("method", args.method), ("inference", args.inference)):
        if value is None:
            continue
        choices = _choices(cls, option)
        if choices is None:
            raise CLIError(
                f"--{option} is not available for the {name} model (it has no "
                f"{option} option)."
            )
        if value not in choices:
            raise CLIError(
                f"--{option} {value!r} is not available for the {name} model; "
                f"choose from {choices}."
            )
        params[option] = value
    return cls(**params)


def _fit_metadata(name, frame, args):
    """``fit`` keyword arguments from the metadata options (--scale, --groups)."""
    entry = ESTIMATORS[name]
    accepted = inspect.signature(estimator_class(name).fit).parameters
    metadata = {}
    for option, keyword in entry.cli_metadata.items():
        columns = getattr(args, option[2:])
        if not columns:
            continue
        if keyword not in accepted:  # a registry entry out of step with its class
            raise CLIError(f"{option} is not an option of the {name} model.")
        metadata[keyword] = (
            _groups(frame, columns)
            if option == "--groups"
            else _design(frame, columns, option, args.factors)
        )
    return metadata


def _fit(est, X, y, v, metadata):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est.fit(X, y, sample_var=v, **metadata)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    return caught


# -------------------------------------------------------------------- output
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
    import matplotlib.pyplot as plt

    from skmeta.plotting import forest_plot

    try:
        ax = forest_plot(est, y, v, **kw)
    except ValueError as exc:
        raise CLIError(f"cannot draw the forest plot: {exc}") from None
    try:
        ax.figure.savefig(path, dpi=120, bbox_inches="tight")
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot write the plot to {path}: {exc}") from None
    finally:
        plt.close(ax.figure)
    print(f"\nForest plot written to {path}")


def _run_csv(args):
    frame = _read_csv(args.csv)
    _check_columns(frame, args)
    name = _choose_model(args)
    est = _estimator(name, args)
    y = _numeric(frame, args.yi, "effect size")
    if args.sei:
        v = _nonnegative(frame, args.sei, "standard error") ** 2
    else:
        v = _nonnegative(frame, args.vi, "sampling variance")
    X = _design(frame, args.mods, "--mods", args.factors)
    metadata = _fit_metadata(name, frame, args)
    caught = _fit(est, X, y, v, metadata)
    print(f"{args.csv}: {len(frame)} studies, {name} model\n")
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
            **metadata,
        )
    return 0


def _run_example(args):
    import numpy as np

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


def main(argv: list[str] | None = None) -> int:
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
    from skmeta.utils._validation import check_confidence_level

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        check_confidence_level(args.level, name="--level")
    except ValueError:
        parser.error(f"--level must be in (0, 1), got {args.level}.")
    try:
        if args.csv is None:
            if args.mods or args.scale or args.groups or args.model or args.factors:
                raise CLIError("model options need a CSV file (see --help).")
            return _run_example(args)
        return _run_csv(args)
    except (CLIError, ValueError) as exc:  # ValueError: invalid estimator options
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
