"""Figures of fitted meta-analysis models (needs matplotlib: the ``plot`` extra).

Each function takes a *fitted* skmeta estimator together with the data it was
fitted on (the estimators keep no copy of the training data), draws into a
matplotlib :class:`~matplotlib.axes.Axes` (a new figure when ``ax=None``) and
returns it.  What a plot shows of the model comes from the estimator's own
description of itself: its ``summary()`` (the summary diamond, with robust or
Knapp–Hartung intervals where the model uses them), ``predict_interval`` (fitted
values, bands, the prediction interval), its study weights and the label of the
model, so the plots work with every skmeta estimator without knowing its class.

- :func:`forest_plot`: studies with their confidence intervals and weights, the
  summary diamond and the prediction interval; subgroups; clusters of a
  multilevel model with their predicted effects.
- :func:`funnel_plot`: effect (or residual) against its standard error, with an
  optional contour-enhanced background (Peters et al., 2008).
- :func:`bubble_plot`: meta-regression of the effects on one moderator
  (metafor's ``regplot``).
- :func:`profile_plot`: a profile likelihood from
  :func:`skmeta.profile_likelihood`.
- :func:`scale_plot`: study-specific estimates of :math:`\\tau` against a scale
  moderator with the fitted location-scale regression line and its confidence
  band (Viechtbauer & López-López, 2022).
- :func:`study_weights`: the percentage weights the plots draw.
"""

import inspect
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import optimize, stats
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from skmeta._engine._location_scale import link_tau2
from skmeta.utils._validation import (
    as_float_array,
    check_confidence_level,
    check_groups,
    check_sample_var,
)

if TYPE_CHECKING:  # matplotlib is optional (the ``plot`` extra)
    from matplotlib.axes import Axes

__all__ = [
    "bubble_plot",
    "forest_plot",
    "funnel_plot",
    "profile_plot",
    "scale_plot",
    "study_weights",
]


# -------------------------------------------------------------------- helpers
def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "skmeta.plotting needs matplotlib: pip install 'skmeta[plot]'."
        ) from exc
    return plt


def _new_axes(ax, figsize):
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots(figsize=figsize)
    return ax


def _study_data(y, sample_var):
    """Validated ``(y, v)`` of the training studies."""
    y = as_float_array(y, "y")
    return y, check_sample_var(sample_var, y.shape)


def _metadata(**metadata):
    """The metadata that were given (``None`` means not given)."""
    return {name: value for name, value in metadata.items() if value is not None}


def _accepted(method, metadata):
    """The part of ``metadata`` that ``method`` takes as keywords."""
    parameters = inspect.signature(method).parameters
    return {name: value for name, value in metadata.items() if name in parameters}


#: matplotlib backends that cannot open a window.
NON_INTERACTIVE_BACKENDS = frozenset(
    {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}
)


def show_or_save(filename: str, fig=None) -> str | None:
    """Show a figure, or save it when matplotlib cannot display one.

    In a session with a display, this is ``plt.show()``.  On a server, in a
    script run without a display or in continuous integration (a
    non-interactive backend such as Agg), the figure is saved as ``filename``
    (PNG at 100 dpi) and closed, and the path is printed, so that running a
    script always leaves its figures behind.  Inside a sphinx-gallery build the
    gallery collects the figures itself and nothing is saved.

    Parameters
    ----------
    filename : str
        Where to save the figure when there is no display.
    fig : matplotlib Figure, default=None
        The figure (the current one when None).

    Returns
    -------
    str or None
        The absolute path of the saved file, or None when the figure was shown.
    """
    import sys
    from pathlib import Path

    plt = _pyplot()
    headless = plt.get_backend().lower() in NON_INTERACTIVE_BACKENDS
    if not headless or "sphinx_gallery" in sys.modules:
        plt.show()
        return None
    fig = plt.gcf() if fig is None else fig
    fig.savefig(filename, dpi=100, bbox_inches="tight")
    plt.close(fig)
    path = str(Path(filename).resolve())
    print(f"Figure saved to {path}")
    return path


def study_weights(estimator, sample_var, **metadata) -> np.ndarray:
    """Return the percentage weights of the studies in a fitted model.

    The weights are the model's own (its ``_study_weights``): :math:`w_i =
    1/(v_i + \\hat\\tau_i^2)` for random-effects, location-scale and robust
    models; the diagonal of :math:`\\hat V^{-1}` for multilevel models
    (metafor's ``weights(type="diagonal")``); normalised to sum to 100.

    Parameters
    ----------
    estimator : fitted skmeta estimator
    sample_var : array-like of shape (n_samples,)
        Sampling variances of the training studies.
    **metadata : array-like
        What the model was fitted with besides ``sample_var`` and needs for its
        weights: ``groups`` (multilevel models), ``Z`` (random-slope covariates).
        ``None`` values are ignored.

    Returns
    -------
    ndarray of shape (n_samples,)
        Weights in percent.
    """
    check_is_fitted(estimator)
    v = as_float_array(sample_var, "sample_var")
    return np.asarray(estimator._study_weights(v, **_metadata(**metadata)), dtype=float)


def _summary_row(estimator, confidence_level):
    """(estimate, ci_lower, ci_upper) of the intercept from ``summary()``."""
    frame = estimator.summary(confidence_level).to_frame()
    if isinstance(frame.index, pd.MultiIndex):
        frame = frame.xs("location", level=0)
    row = frame.loc["intercept"]
    return float(row["estimate"]), float(row["ci_lower"]), float(row["ci_upper"])


def _prediction_interval(estimator, confidence_level):
    """(pi_lower, pi_upper) for a new study, or None when it needs more.

    A model whose heterogeneity depends on scale moderators or random-slope
    covariates has no single prediction interval (``predict_interval`` needs
    them and raises); an equal-effects result (Mantel–Haenszel, Peto) has none.
    """
    if not hasattr(estimator, "predict_interval"):
        return None
    try:
        frame = estimator.predict_interval(confidence_level=confidence_level)
    except ValueError:
        return None
    return float(frame["pi_lower"].iloc[0]), float(frame["pi_upper"].iloc[0])


def _predict_interval_at(estimator, X, confidence_level, **metadata):
    """``predict_interval(X)`` with the metadata it takes (``Z``)."""
    kwargs = _accepted(estimator.predict_interval, _metadata(**metadata))
    return estimator.predict_interval(X, confidence_level=confidence_level, **kwargs)


def _check_has_moderators(estimator, X):
    has_mods = getattr(estimator, "n_features_in_", 0) > 0
    if has_mods and X is None:
        raise ValueError("X is required: the model has moderators.")
    return has_mods


def _column_index(feature, names, n_columns, matrix):
    """Index of ``feature`` (a column name or position) in ``matrix`` ("X"/"Z")."""
    if isinstance(feature, str):
        if names is None or feature not in list(names):
            raise ValueError(f"feature {feature!r} is not a column of {matrix}.")
        return list(names).index(feature)
    j = int(feature)
    if not 0 <= j < n_columns:
        raise ValueError(f"feature index {j} out of range for {matrix}.")
    return j


def _as_2d(values, name, k):
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[0] != k:
        raise ValueError(f"{name} has {arr.shape[0]} rows, expected {k}.")
    return arr


# ---------------------------------------------------------------- forest plot
@dataclass(frozen=True)
class _Row:
    """One row of a forest plot, top to bottom."""

    kind: str  # "study", "header", "group_summary", "summary", "gap"
    label: str
    study: int | None = None
    key: object = None  # group label (group_summary)
    members: np.ndarray | None = None  # studies of the group (group_summary)


@dataclass
class _Margins:
    """What the forest plot collects while drawing: y ticks, right-margin text."""

    ticks: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    bold: list = field(default_factory=list)
    text: list = field(default_factory=list)  # (y, text, bold)
    x_extent: list = field(default_factory=list)

    def tick(self, y, label, bold=False):
        self.ticks.append(y)
        self.labels.append(label)
        self.bold.append(bold)


@dataclass(frozen=True)
class _Forest:
    """The data and settings of one forest plot."""

    estimator: object
    y: np.ndarray
    v: np.ndarray
    weights: np.ndarray | None
    z: float  # critical value of the studies' intervals
    level: float
    fmt: object  # transform of the printed numbers
    cluster_blups: pd.DataFrame | None

    @property
    def show_weights(self):
        return self.weights is not None


def _row_text(forest, est, lo, hi, weight=None):
    """Right-margin text: ``weight%  estimate [lower, upper]`` in fixed width."""
    fmt = forest.fmt
    est_txt = f"{fmt(est):6.2f}" if est is not None else " " * 6
    text = f"{est_txt} [{fmt(lo):6.2f}, {fmt(hi):6.2f}]"
    if forest.show_weights:
        w_txt = f"{weight:5.1f}%" if weight is not None else " " * 6
        text = f"{w_txt}  {text}"
    return text


def _study_labels(labels, k):
    if labels is None:
        return [f"Study {i + 1}" for i in range(k)]
    labels = [str(s) for s in np.asarray(labels, dtype=object).ravel()]
    if len(labels) != k:
        raise ValueError(f"labels has {len(labels)} entries, expected {k}.")
    return labels


def _grouping(subgroups, groups, k):
    """``(keys, header prefix)`` of the row groups, or ``(None, "")``.

    ``groups`` (several levels: the outermost) or ``subgroups``; the order is
    that of first appearance.
    """
    if subgroups is not None and groups is not None:
        raise ValueError("Pass either subgroups or groups, not both.")
    if groups is not None:
        check_groups(groups, k, allow_2d=True)
        table = pd.DataFrame(groups).reset_index(drop=True)
        name = str(table.columns[0]) if isinstance(groups, pd.DataFrame) else None
        if isinstance(groups, pd.Series) and groups.name is not None:
            name = str(groups.name)
        return table.iloc[:, 0].to_numpy(dtype=object), f"{name or 'group'} "
    if subgroups is not None:
        check_groups(subgroups, k, name="subgroups")
        return np.asarray(subgroups, dtype=object).ravel(), ""
    return None, ""


def _forest_rows(labels, keys, prefix, has_mods, model_label):
    """The rows of the plot: studies (by group), group summaries, the summary."""
    rows = []
    if keys is None:
        rows += [_Row("study", label, study=i) for i, label in enumerate(labels)]
        rows.append(_Row("gap", ""))
    else:
        for key in pd.unique(pd.Series(keys)):
            members = np.flatnonzero(keys == key)
            rows.append(_Row("header", f"{prefix}{key}"))
            rows += [_Row("study", labels[i], study=i) for i in members]
            rows.append(
                _Row("group_summary", f"{prefix}{key}", key=key, members=members)
            )
            rows.append(_Row("gap", ""))
    if has_mods:
        rows.pop()  # no summary row: drop the trailing gap
    else:
        rows.append(_Row("summary", model_label))
    return rows


#: Inches of one row label character (10 pt) and of one margin text character
#: (small monospace), of a data row, and the width of the plotting area.
_LABEL_CHAR_IN, _ROW_IN, _PANEL_IN = 0.075, 0.25, 3.6


def _forest_axes(rows, show_weights):
    """A new figure sized to the rows and the labels' lengths."""
    plt = _pyplot()
    longest = max(len(row.label) for row in rows) + 3
    left_in = 0.2 + _LABEL_CHAR_IN * longest
    right_in = 0.3 + _LABEL_CHAR_IN * (31 if show_weights else 23)
    width = left_in + _PANEL_IN + right_in
    height = 1.2 + _ROW_IN * len(rows)
    fig, ax = plt.subplots(figsize=(width, height))
    fig.subplots_adjust(
        left=left_in / width,
        right=1 - right_in / width,
        top=1 - 0.45 / height,
        bottom=0.6 / height,
    )
    return ax


def _diamond(ax, est, lo, hi, y, *, color, height=0.4, gid=None):
    from matplotlib.patches import Polygon

    poly = Polygon(
        [(lo, y), (est, y + height), (hi, y), (est, y - height)],
        closed=True,
        facecolor=color,
        edgecolor="black",
        linewidth=0.8,
        zorder=3,
    )
    if gid is not None:
        poly.set_gid(gid)
    ax.add_patch(poly)
    return poly


def _draw_study(ax, forest, margins, row, ypos, fitted):
    i = row.study
    half = forest.z * np.sqrt(forest.v[i])
    lo, hi = forest.y[i] - half, forest.y[i] + half
    ax.hlines(ypos, lo, hi, color="black", linewidth=1.0, zorder=2)
    margins.x_extent += [lo, hi]
    weight = None if forest.weights is None else forest.weights[i]
    margins.text.append((ypos, _row_text(forest, forest.y[i], lo, hi, weight), False))
    margins.tick(ypos, row.label)
    if fitted is not None:
        r = fitted.iloc[i]
        _diamond(
            ax,
            r["mean"],
            r["ci_lower"],
            r["ci_upper"],
            ypos,
            color="0.75",
            height=0.25,
            gid="fitted",
        )
        margins.x_extent += [r["ci_lower"], r["ci_upper"]]


def _cluster_blups(estimator, groups, has_mods):
    """BLUPs of the outermost level's clusters (intercept-only), or None.

    A model with cluster random effects (``random_effects_`` a dict level ->
    DataFrame with columns ``estimate, se``, outermost level first) predicts a
    cluster's effect as the fixed intercept plus the cluster's BLUP.
    """
    blups = getattr(estimator, "random_effects_", None)
    if groups is None or has_mods or not isinstance(blups, dict) or not blups:
        return None
    outermost = blups[next(iter(blups))]
    if not {"estimate", "se"} <= set(outermost.columns):
        return None  # random slopes at that level: no single cluster effect
    return outermost


def _group_summary(forest, row):
    """(estimate, lower, upper, gid, label) of a group's diamond, or None."""
    estimator = forest.estimator
    if forest.cluster_blups is not None:
        if row.key not in forest.cluster_blups.index:
            return None
        blup = forest.cluster_blups.loc[row.key]
        est = float(estimator.intercept_) + float(blup["estimate"])
        half = forest.z * float(blup["se"])
        return est, est - half, est + half, "cluster", f"{row.label} (BLUP)"
    if row.members.size < 2:
        return None  # one study is its own summary
    sub = clone(estimator)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sub.fit(None, forest.y[row.members], sample_var=forest.v[row.members])
        est, lo, hi = _summary_row(sub, forest.level)
    except ValueError as exc:
        warnings.warn(
            f"forest_plot: no summary for subgroup {row.label!r} ({exc})",
            UserWarning,
            stacklevel=4,
        )
        return None
    return est, lo, hi, "subgroup", f"{sub._model_label()}: {row.label}"


def _draw_group_summary(ax, forest, margins, row, ypos):
    summary = _group_summary(forest, row)
    if summary is None:
        return
    est, lo, hi, gid, label = summary
    _diamond(ax, est, lo, hi, ypos, color="0.6", gid=gid)
    margins.x_extent += [lo, hi]
    margins.tick(ypos, label)
    margins.text.append((ypos, _row_text(forest, est, lo, hi), True))


def _draw_summary(ax, forest, margins, row, ypos, show_prediction):
    est, lo, hi = _summary_row(forest.estimator, forest.level)
    _diamond(ax, est, lo, hi, ypos, color="black", gid="summary")
    margins.x_extent += [lo, hi]
    margins.text.append((ypos, _row_text(forest, est, lo, hi, 100.0), True))
    margins.tick(ypos, row.label, bold=True)
    pi = (
        _prediction_interval(forest.estimator, forest.level)
        if show_prediction
        else None
    )
    if pi is None:
        return
    pi_y = ypos - 0.75
    line = ax.hlines(pi_y, pi[0], pi[1], color="black", linestyle="--", linewidth=1.0)
    line.set_gid("prediction")
    ax.vlines(pi, pi_y - 0.15, pi_y + 0.15, color="black", linewidth=1.0)
    margins.x_extent += list(pi)
    margins.tick(pi_y, "Prediction interval")
    margins.text.append((pi_y, _row_text(forest, None, pi[0], pi[1]), False))


def _draw_squares(ax, forest, rows, ypos):
    """The studies' effects as squares with area proportional to the weight."""
    studies = [(row.study, yy) for row, yy in zip(rows, ypos, strict=True)]
    studies = [(i, yy) for i, yy in studies if i is not None]
    index = np.array([i for i, _ in studies], dtype=int)
    w = forest.weights[index] if forest.show_weights else np.ones(index.size)
    squares = ax.scatter(
        forest.y[index],
        [yy for _, yy in studies],
        s=15.0 + 150.0 * w / w.max(),
        marker="s",
        color="black",
        zorder=3,
    )
    squares.set_gid("studies")


def _finish_forest_axes(ax, margins, ypos, refline, xlabel, transform):
    if refline is not None:
        ax.axvline(refline, color="0.5", linestyle=":", linewidth=1.0, zorder=1)
        margins.x_extent.append(refline)
    lo_x, hi_x = min(margins.x_extent), max(margins.x_extent)
    pad = 0.05 * (hi_x - lo_x if hi_x > lo_x else 1.0)
    ax.set_xlim(lo_x - pad, hi_x + pad)
    ax.set_ylim(min(ypos.min(), min(margins.ticks)) - 1.0, ypos.max() + 0.8)
    ax.set_yticks(margins.ticks)
    ax.set_yticklabels(margins.labels)
    for tick, is_bold in zip(ax.get_yticklabels(), margins.bold, strict=True):
        if is_bold:
            tick.set_fontweight("bold")
    ax.tick_params(axis="y", length=0)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(xlabel)
    if transform is not None:
        _nice_transformed_ticks(ax, transform)


def _write_margin(ax, forest, margins, top):
    """Weight and estimate [CI] of each row, aligned in a monospace column."""
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(ax.transAxes, ax.transData)
    style = {"transform": trans, "ha": "left", "family": "monospace"}
    style.update(fontsize="small", clip_on=False)
    for yy, text, is_bold in margins.text:
        weight = "bold" if is_bold else "normal"
        ax.text(1.03, yy, text, va="center", fontweight=weight, **style)
    header = f"Estimate [{100 * forest.level:g}% CI]"
    header = (
        f"{'Weight':>6s}  {header:>23s}" if forest.show_weights else f"{header:>23s}"
    )
    ax.text(1.03, top, header, va="bottom", fontweight="bold", **style)


def _nice_transformed_ticks(ax, transform):
    """Ticks at round values of ``transform(x)`` (monotone) within the x limits."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    lo, hi = ax.get_xlim()
    xs = np.linspace(lo, hi, 512)
    with np.errstate(all="ignore"):
        ts = np.asarray(transform(xs), dtype=float)
    if not np.all(np.isfinite(ts)) or not (
        np.all(np.diff(ts) > 0) or np.all(np.diff(ts) < 0)
    ):
        return
    if ts[0] > ts[-1]:
        xs, ts = xs[::-1], ts[::-1]
    positions = [
        _inverse_on_grid(transform, xs, ts, c) for c in _round_values(ts[0], ts[-1])
    ]
    ax.xaxis.set_major_locator(FixedLocator(positions))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{transform(t):.3g}"))


def _round_values(t_lo, t_hi):
    """Round tick values in [t_lo, t_hi]: 1, 2, 5 (and 2.5) x 10^n over a wide
    positive range (ratios), else the usual linear ticks."""
    from matplotlib.ticker import MaxNLocator

    if t_lo > 0 and t_hi / t_lo > 4:
        decades = np.arange(np.floor(np.log10(t_lo)), np.ceil(np.log10(t_hi)) + 1)
        span = t_hi / t_lo
        # about eight labels at most: fewer mantissas over more decades
        if span >= 1e4:
            mantissas = (1.0,)
        elif span >= 40:
            mantissas = (1.0, 2.0, 5.0) if span < 500 else (1.0, 3.0)
        else:
            mantissas = (1.0, 2.0, 2.5, 5.0)
        cand = np.sort(np.concatenate([m * 10.0**decades for m in mantissas]))
    else:
        cand = MaxNLocator(6).tick_values(t_lo, t_hi)
    return cand[(cand >= t_lo) & (cand <= t_hi)]


def _inverse_on_grid(transform, xs, ts, c):
    """x with ``transform(x) == c``: exact within the bracketing grid cell."""
    j = int(np.clip(np.searchsorted(ts, c), 1, xs.size - 1))
    a, b = sorted((xs[j - 1], xs[j]))

    def f(x):
        return float(transform(x)) - c

    if f(a) * f(b) < 0:
        return optimize.brentq(f, a, b, xtol=1e-12)
    return float(np.interp(c, ts, xs))


def forest_plot(
    estimator,
    y=None,
    sample_var=None,
    *,
    X=None,
    labels=None,
    subgroups=None,
    groups=None,
    Z=None,
    confidence_level: float = 0.95,
    show_weights: bool = True,
    show_prediction: bool = True,
    transform=None,
    refline: float | None = 0.0,
    xlabel: str = "Observed outcome",
    ax=None,
) -> "Axes":
    """Draw a forest plot of a fitted model.

    One row per study: the observed effect :math:`y_i` as a square whose area is
    proportional to its weight in the model, with the confidence interval
    :math:`y_i \\pm z_{1-\\alpha/2}\\sqrt{v_i}` (as metafor's ``forest``).  At the
    bottom, the summary estimate as a diamond spanning its confidence interval
    (from ``estimator.summary()``, so robust or Knapp–Hartung intervals are
    shown as the model reports them), labelled with the model's name, and the
    prediction interval for the true effect of a new study as a line with end
    marks.  The right margin gives the weight (%) and "estimate [CI]" of each
    row.

    With moderators (``X``), the fitted values :math:`\\hat\\mu_i` of the studies
    are drawn as grey diamonds instead of a single summary (metafor's forest
    plot of a meta-regression).  With ``subgroups``, the studies are grouped
    under a header per subgroup and each subgroup of two or more studies gets
    its own summary diamond from a clone of ``estimator`` fitted to that
    subgroup (intercept only).  With ``groups``, the rows are grouped by the
    outermost level; for a model with cluster random effects (a
    :class:`~skmeta.MultilevelMeta` without moderators) each cluster gets a grey
    diamond at the fixed effect plus the cluster's BLUP, spanning ± z times the
    BLUP's prediction error SD, otherwise the diamonds of subgroups.

    The results of :func:`skmeta.mantel_haenszel` and :func:`skmeta.peto` are
    drawn the same way, from their own per-study effect sizes and weights
    (``y`` and ``sample_var`` are then taken from the result; tables without a
    per-study effect size, e.g. double-zero tables, get no row, with a warning).

    Parameters
    ----------
    estimator : fitted skmeta estimator, or a Mantel–Haenszel or Peto result
        Fitted to ``(X, y, sample_var)`` (and ``groups``, ``Z``).
    y : array-like of shape (n_samples,), default=None
        Observed effect sizes (required for estimators).
    sample_var : array-like of shape (n_samples,), default=None
        Their sampling variances (required for estimators).
    X : array-like of shape (n_samples, n_features), default=None
        Moderators the model was fitted with.
    labels : array-like of shape (n_samples,), default=None
        Study labels (``"Study 1"``, ... when None).
    subgroups : array-like of shape (n_samples,), default=None
        Subgroup labels; subgroups are drawn in order of first appearance.
    groups : array-like of shape (n_samples,) or (n_samples, n_levels), \
default=None
        Group labels the model was fitted with (outermost level first); also
        used for the weights of a multilevel model.
    Z : array-like of shape (n_samples, q), default=None
        Scale moderators (location-scale models) or random-slope covariates
        (multilevel models), as passed to ``fit``; used for the weights and the
        fitted values.
    confidence_level : float, default=0.95
        Level of all intervals.
    show_weights : bool, default=True
        Write the weights (%) in the right margin.
    show_prediction : bool, default=True
        Draw the prediction interval (when the model defines one without
        moderators).
    transform : callable, default=None
        Applied to the numbers in the right margin and the x tick labels (e.g.
        ``numpy.exp`` to show risk ratios for a model of log risk ratios); the
        plot itself stays on the analysis scale.
    refline : float or None, default=0.0
        Position of the vertical reference line (analysis scale).
    xlabel : str, default="Observed outcome"
    ax : matplotlib Axes, default=None
        Axes to draw into; a new figure sized to the number of rows when None.

    Returns
    -------
    matplotlib Axes
        The y tick labels are the row labels (studies, headers, summaries);
        the summary diamonds are the axes' patches with gid ``"summary"``
        (and ``"subgroup"``, ``"fitted"``, ``"cluster"``).

    Warns
    -----
    UserWarning
        When a subgroup's model cannot be fitted (it gets no diamond).
    """
    level = check_confidence_level(confidence_level)
    if hasattr(estimator, "fit"):
        check_is_fitted(estimator)
        y, v = _study_data(y, sample_var)
    else:
        y, v, labels = _pooled_tables_rows(estimator, y, sample_var, labels)
    k = y.shape[0]
    labels = _study_labels(labels, k)
    has_mods = _check_has_moderators(estimator, X)
    metadata = _metadata(groups=groups, Z=Z)
    keys, prefix = _grouping(subgroups, groups, k)
    if not show_weights:
        weights = None
    elif hasattr(estimator, "fit"):
        weights = study_weights(estimator, v, **metadata)
    else:
        weights = estimator._study_weights()[np.isfinite(estimator.yi)]
    forest = _Forest(
        estimator=estimator,
        y=y,
        v=v,
        weights=weights,
        z=float(stats.norm.ppf(0.5 + level / 2)),
        level=level,
        fmt=transform if transform is not None else (lambda t: t),
        cluster_blups=_cluster_blups(estimator, groups, has_mods),
    )
    rows = _forest_rows(labels, keys, prefix, has_mods, estimator._model_label())
    if ax is None:
        ax = _forest_axes(rows, show_weights)
    ypos = len(rows) - np.arange(len(rows), dtype=float)
    fitted = _predict_interval_at(estimator, X, level, Z=Z) if has_mods else None
    margins = _Margins()
    for row, yy in zip(rows, ypos, strict=True):
        if row.kind == "header":
            margins.tick(yy, row.label, bold=True)
        elif row.kind == "study":
            _draw_study(ax, forest, margins, row, yy, fitted)
        elif row.kind == "group_summary":
            _draw_group_summary(ax, forest, margins, row, yy)
        elif row.kind == "summary":
            _draw_summary(ax, forest, margins, row, yy, show_prediction)
    _draw_squares(ax, forest, rows, ypos)
    _finish_forest_axes(ax, margins, ypos, refline, xlabel, transform)
    _write_margin(ax, forest, margins, ypos.max() + 0.8)
    return ax


def _pooled_tables_rows(result, y, sample_var, labels):
    """Rows of a Mantel–Haenszel or Peto result: tables with an effect size."""
    if y is not None or sample_var is not None:
        raise ValueError(
            "y and sample_var are taken from the Mantel-Haenszel/Peto result; "
            "do not pass them."
        )
    if not hasattr(result, "yi"):
        raise TypeError(
            f"forest_plot draws fitted skmeta estimators and the results of "
            f"mantel_haenszel and peto, not {type(result).__name__}."
        )
    labels = list(result.labels if labels is None else labels)
    defined = np.isfinite(result.yi)
    if not defined.all():
        omitted = [str(labels[i]) for i in np.flatnonzero(~defined)]
        warnings.warn(
            f"{len(omitted)} table(s) without a per-study effect size get no row: "
            f"{', '.join(omitted)}.",
            UserWarning,
            stacklevel=3,
        )
    labels = [labels[i] for i in np.flatnonzero(defined)]
    return result.yi[defined], result.vi[defined], labels


# ---------------------------------------------------------------- funnel plot
def _draw_contours(ax, levels, ref, y, se_max, grid):
    """Contour-enhanced background: shaded regions of the studies' p-values."""
    shades = np.linspace(1.0, 0.55, len(levels) + 1)  # inner ring is white
    cuts = [1.0 - c for c in levels]  # p-value thresholds, decreasing
    widest = stats.norm.ppf(0.5 + levels[-1] / 2) * se_max
    half = max(widest, np.max(np.abs(y - ref))) * 1.1
    outer = ax.fill_betweenx(
        [0, se_max],
        ref - half,
        ref + half,
        color=str(shades[-1]),
        zorder=0,
        label=f"p ≤ {cuts[-1]:g}",
    )
    outer.set_gid("contour-outside")
    # from the widest region inwards; region j holds cuts[j] < p <= cuts[j-1]
    for j in range(len(levels) - 1, -1, -1):
        zc = stats.norm.ppf(0.5 + levels[j] / 2)
        upper = "1" if j == 0 else f"{cuts[j - 1]:g}"
        patch = ax.fill_betweenx(
            grid,
            ref - zc * grid,
            ref + zc * grid,
            color=str(shades[j]),
            edgecolor="0.5",
            linewidth=0.5,
            zorder=0,
            label=f"{cuts[j]:g} < p ≤ {upper}",
        )
        patch.set_gid(f"contour-{levels[j]:g}")
    ax.axvline(ref, color="0.4", linewidth=0.8)
    handles, texts = ax.get_legend_handles_labels()
    n = len(levels) + 1
    ax.legend(handles[::-1][:n], texts[::-1][:n], loc="lower right", fontsize="small")
    ax.set_xlim(ref - half, ref + half)


def _draw_pseudo_ci(ax, level, centre, y, se_max, grid):
    """The pseudo-confidence funnel ``centre +- z SE``."""
    zc = stats.norm.ppf(0.5 + level / 2)
    ax.plot(centre - zc * grid, grid, color="0.3", linestyle="--", linewidth=1.0)
    ax.plot(centre + zc * grid, grid, color="0.3", linestyle="--", linewidth=1.0)
    ax.axvline(centre, color="0.3", linewidth=1.0)
    lo = min(np.min(y), centre - zc * se_max)
    hi = max(np.max(y), centre + zc * se_max)
    pad = 0.05 * (hi - lo)
    ax.set_xlim(lo - pad, hi + pad)


def funnel_plot(
    estimator,
    y,
    sample_var,
    *,
    X=None,
    contours=None,
    confidence_level: float = 0.95,
    refline: float | None = None,
    xlabel: str | None = None,
    trim_and_fill=None,
    regression=None,
    ax=None,
) -> "Axes":
    """Draw a funnel plot: effect sizes against their standard errors.

    The y axis is the standard error :math:`\\sqrt{v_i}`, inverted so that the
    most precise studies are at the top.  The pseudo-confidence region
    :math:`\\hat\\mu \\pm z_{1-\\alpha/2}\\,\\mathrm{SE}` is drawn around the
    estimate (the intercept, or 0 for the residuals of a meta-regression, which
    are plotted instead of the effects, as metafor does).

    With ``contours`` (e.g. ``(0.90, 0.95, 0.99)``) the plot is
    contour-enhanced (Peters et al., 2008): regions where a study's two-sided
    p-value for :math:`H_0: \\theta_i = \\text{refline}` falls between the
    levels are shaded, centred on ``refline`` (default 0).

    Parameters
    ----------
    estimator : fitted skmeta estimator
    y : array-like of shape (n_samples,)
    sample_var : array-like of shape (n_samples,)
    X : array-like of shape (n_samples, n_features), default=None
        Moderators of a meta-regression: residuals :math:`y_i - \\hat\\mu_i` are
        plotted.
    contours : sequence of float, default=None
        Confidence levels of the contour-enhanced funnel.
    confidence_level : float, default=0.95
        Level of the pseudo-confidence funnel (without ``contours``).
    refline : float, default=None
        Centre of the contours (0 when None); without contours, where the
        funnel is centred (the model's estimate when None).
    xlabel : str, default=None
    trim_and_fill : TrimAndFillResult, default=None
        A result of :func:`skmeta.bias.trim_and_fill` on these studies: its
        imputed studies are drawn as open circles (gid ``"filled"``) and the
        funnel is centred on the estimate of the filled model, as metafor's
        ``funnel(trimfill(res))``.
    regression : RegressionTestResult, default=None
        A result of :func:`skmeta.bias.regression_test` with ``predictor="sei"``
        or ``"vi"`` and no moderators: its fitted line (Egger's line, or the
        PET/PEESE curve) is drawn against the standard error (gid
        ``"regression"``), as metafor's ``regtest`` plot option.
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib Axes
        The studies are the collection with gid ``"studies"``.

    References
    ----------
    Duval, S., & Tweedie, R. (2000). Trim and fill: a simple funnel-plot-based
    method of testing and adjusting for publication bias in meta-analysis.
    Biometrics, 56, 455-463.

    Egger, M., Davey Smith, G., Schneider, M., & Minder, C. (1997). Bias in
    meta-analysis detected by a simple, graphical test. BMJ, 315, 629-634.

    Peters, J. L., Sutton, A. J., Jones, D. R., Abrams, K. R., & Rushton, L.
    (2008). Contour-enhanced meta-analysis funnel plots help distinguish
    publication bias from other causes of asymmetry. Journal of Clinical
    Epidemiology, 61, 991-996.
    """
    check_is_fitted(estimator)
    level = check_confidence_level(confidence_level)
    y, v = _study_data(y, sample_var)
    se = np.sqrt(v)
    if _check_has_moderators(estimator, X):
        y = y - estimator.predict(X)
        centre, default_label = 0.0, "Residual value"
    else:
        model = estimator if trim_and_fill is None else trim_and_fill.model
        centre = _summary_row(model, level)[0]
        default_label = "Observed outcome"
    filled_y = filled_se = np.empty(0)
    if trim_and_fill is not None:
        filled_y = trim_and_fill.filled["y"].to_numpy(dtype=float)
        filled_se = np.sqrt(trim_and_fill.filled["sample_var"].to_numpy(dtype=float))
    ax = _new_axes(ax, (6.0, 4.5))
    se_all = np.concatenate([se, filled_se])
    se_max = se_all.max() * 1.1 if se_all.max() > 0 else 1.0
    grid = np.linspace(0.0, se_max, 50)
    if contours is not None:
        levels = sorted(check_confidence_level(c, name="contours") for c in contours)
        ref = 0.0 if refline is None else float(refline)
        _draw_contours(ax, levels, ref, y, se_max, grid)
    else:
        c0 = centre if refline is None else float(refline)
        _draw_pseudo_ci(ax, level, c0, y, se_max, grid)
    pts = ax.scatter(y, se, color="black", edgecolor="white", s=30, zorder=3)
    pts.set_gid("studies")
    if filled_y.size:
        imputed = ax.scatter(
            filled_y, filled_se, facecolor="white", edgecolor="black", s=30, zorder=3
        )
        imputed.set_gid("filled")
    if regression is not None:
        (line,) = ax.plot(
            regression.line(grid), grid, color="tab:red", lw=1.2, zorder=2
        )
        line.set_gid("regression")
    ax.set_ylim(se_max, 0.0)
    ax.set_ylabel("Standard error")
    ax.set_xlabel(xlabel if xlabel is not None else default_label)
    return ax


# ---------------------------------------------------------------- bubble plot
def _line_inputs(X, j, n_points, Z):
    """New X along column ``j`` (others at their means) and Z at its means."""
    Xarr = _as_2d(X, "X", np.shape(X)[0])
    xs = np.linspace(Xarr[:, j].min(), Xarr[:, j].max(), n_points)
    newX = np.tile(Xarr.mean(axis=0), (n_points, 1))
    newX[:, j] = xs
    if isinstance(X, pd.DataFrame):
        newX = pd.DataFrame(newX, columns=X.columns)
    newZ = None
    if Z is not None:
        newZ = np.tile(_as_2d(Z, "Z", Xarr.shape[0]).mean(axis=0), (n_points, 1))
        if isinstance(Z, pd.DataFrame):
            newZ = pd.DataFrame(newZ, columns=Z.columns)
    return xs, newX, newZ


def bubble_plot(
    estimator,
    X,
    y,
    sample_var,
    *,
    feature: int | str = 0,
    Z=None,
    groups=None,
    confidence_level: float = 0.95,
    show_prediction: bool = False,
    n_points: int = 100,
    xlabel: str | None = None,
    ylabel: str = "Observed outcome",
    ax=None,
) -> "Axes":
    """Draw a bubble plot of a meta-regression on one moderator.

    Each study is a circle at (moderator, :math:`y_i`) whose area is
    proportional to its weight in the model.  The fitted line
    :math:`\\hat\\mu(x)` is drawn with its confidence band (and, optionally,
    the prediction band) from ``estimator.predict_interval``; the other
    moderators (and ``Z``) are held at their means (metafor's ``regplot``).

    Parameters
    ----------
    estimator : fitted skmeta estimator
        A model with moderators, fitted to ``(X, y, sample_var)``.
    X : array-like or DataFrame of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    sample_var : array-like of shape (n_samples,)
    feature : int or str, default=0
        Column of ``X`` on the x axis (position or name).
    Z, groups : array-like, default=None
        As passed to ``fit`` (for the weights of location-scale and multilevel
        models, and the bands of models whose heterogeneity depends on ``Z``).
    confidence_level : float, default=0.95
    show_prediction : bool, default=False
        Also draw the prediction band (at the mean of ``Z``).
    n_points : int, default=100
        Points of the fitted line.
    xlabel : str, default=None
        The feature's name when None.
    ylabel : str, default="Observed outcome"
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib Axes
        The studies are the collection with gid ``"studies"``, the fitted line
        the line with gid ``"fit"``.
    """
    check_is_fitted(estimator)
    level = check_confidence_level(confidence_level)
    y, v = _study_data(y, sample_var)
    Xarr = _as_2d(X, "X", y.shape[0])
    if Xarr.shape[1] == 0 or estimator.n_features_in_ == 0:
        raise ValueError("bubble_plot needs a model with at least one moderator.")
    names = getattr(estimator, "feature_names_in_", None)
    j = _column_index(feature, names, Xarr.shape[1], "X")
    w = study_weights(estimator, v, groups=groups, Z=Z)
    xs, newX, newZ = _line_inputs(X, j, n_points, Z)
    pred = _predict_interval_at(estimator, newX, level, Z=newZ)
    ax = _new_axes(ax, (6.0, 4.5))
    if show_prediction:
        ax.fill_between(
            xs,
            pred["pi_lower"],
            pred["pi_upper"],
            color="0.92",
            label="prediction interval",
        )
    pct = f"{100 * level:g}%"
    ax.fill_between(
        xs, pred["ci_lower"], pred["ci_upper"], color="0.8", label=f"{pct} CI"
    )
    (line,) = ax.plot(xs, pred["mean"], color="black", linewidth=1.5, label="fit")
    line.set_gid("fit")
    pts = ax.scatter(
        Xarr[:, j],
        y,
        s=20.0 + 400.0 * w / w.max(),
        facecolor="none",
        edgecolor="black",
        linewidth=0.8,
        zorder=3,
    )
    pts.set_gid("studies")
    label = str(names[j]) if names is not None else f"x{j}"
    ax.set_xlabel(xlabel if xlabel is not None else label)
    ax.set_ylabel(ylabel)
    ax.legend(loc="best", fontsize="small")
    return ax


# --------------------------------------------------------------- profile plot
def profile_plot(result, ax=None) -> "Axes":
    """Plot a profile likelihood with its maximum and confidence bounds.

    The profile (points joined by a line; values outside the parameter space,
    whose criterion is ``-inf``, are left out), the estimate and the maximum
    (dashed), the cut-off :math:`\\hat\\ell - \\chi^2_{1,\\text{level}}/2` and the
    confidence bounds (dotted), as metafor's ``profile``.

    Parameters
    ----------
    result : ProfileLikelihoodResult
        From :func:`skmeta.profile_likelihood`.
    ax : matplotlib Axes, default=None
        Axes to draw into (a new figure when None).

    Returns
    -------
    matplotlib Axes
        The profile is the line with gid ``"profile"``.
    """
    ax = _new_axes(ax, (5.0, 4.0))
    finite = np.isfinite(result.loglik)
    (line,) = ax.plot(
        result.grid[finite], result.loglik[finite], "o-", color="0.2", ms=3
    )
    line.set_gid("profile")
    ax.axvline(result.estimate, ls="--", color="0.5")
    ax.axhline(result.loglik_max, ls="--", color="0.5")
    cut = result.loglik_max - 0.5 * stats.chi2.ppf(result.confidence_level, 1)
    ax.axhline(cut, ls=":", color="tab:red")
    for bound in (result.ci_lower, result.ci_upper):
        if np.isfinite(bound):
            ax.axvline(bound, ls=":", color="tab:red")
    ax.set_xlabel(f"{result.parameter} value")
    ax.set_ylabel("(restricted) log-likelihood")
    ax.set_title(f"Profile plot for {result.parameter}")
    return ax


# ----------------------------------------------------------------- scale plot
def _scale_line(estimator, Zarr, j, n_points, level):
    """``(z values, tau, tau lower, tau upper)`` of the fitted scale regression.

    The band transforms the Wald interval of the linear predictor; under the
    identity link it is truncated at tau = 0.
    """
    zs = np.linspace(Zarr[:, j].min(), Zarr[:, j].max(), n_points)
    design = np.tile(Zarr.mean(axis=0), (n_points, 1))
    design[:, j] = zs
    alpha = np.asarray(estimator.scale_coef_, dtype=float)
    if estimator.scale_fit_intercept:
        design = np.column_stack([np.ones(n_points), design])
        alpha = np.concatenate([[estimator.scale_intercept_], alpha])
    eta = design @ alpha
    se = np.sqrt(np.einsum("ij,jk,ik->i", design, estimator.scale_cov_params_, design))
    zc = stats.norm.ppf(0.5 + level / 2)

    def tau(linear_predictor):
        return np.sqrt(np.maximum(link_tau2(linear_predictor, estimator.link), 0.0))

    return zs, tau(eta), tau(eta - zc * se), tau(eta + zc * se)


def _study_tau(estimator, Zarr, j, xmap):
    """Studies' ``(x, tau_i)``; studies without an estimate are left out (warned)."""
    tau2 = np.asarray(estimator.study_tau2_, dtype=float)
    defined = np.isfinite(tau2)
    if not defined.all():
        warnings.warn(
            f"scale_plot: {int((~defined).sum())} stud(ies) have no estimate of "
            "tau_i (leverage 1) and are not drawn.",
            UserWarning,
            stacklevel=3,
        )
    return xmap(Zarr[defined, j]), np.sqrt(np.maximum(tau2[defined], 0.0))


def _scale_legend(ax):
    handles, texts = ax.get_legend_handles_labels()
    order = [texts.index(t) for t in ("Studies", "Regression line")]
    order += [i for i in range(len(texts)) if i not in order]
    ax.legend(
        [handles[i] for i in order],
        [texts[i] for i in order],
        loc="upper right",
        fontsize="small",
    )


def scale_plot(
    estimator,
    Z,
    *,
    feature: int | str = 0,
    confidence_level: float = 0.95,
    n_points: int = 100,
    x_values=None,
    xlabel: str | None = None,
    ax=None,
) -> "Axes":
    """Plot study-specific estimates of tau against a scale moderator.

    The points are :math:`\\hat\\tau_i = \\sqrt{\\max(0,\\ e_i^2/(1-h_i) - v_i)}`
    (``estimator.study_tau2_``), the line is the fitted
    :math:`\\hat\\tau(z) = \\sqrt{g^{-1}(z^\\top\\hat\\alpha)}` with the other scale
    moderators at their means, and the band its pointwise confidence interval,
    obtained by transforming the Wald interval of the linear predictor
    :math:`z^\\top\\hat\\alpha \\pm z_{1-\\alpha/2}
    \\sqrt{z^\\top \\hat\\Sigma_\\alpha z}`
    (Viechtbauer & López-López, 2022, the figure of the writing-to-learn
    example).

    Parameters
    ----------
    estimator : fitted LocationScaleMeta
    Z : array-like or DataFrame of shape (n_samples, n_scale_features)
        Scale moderators the model was fitted with.
    feature : int or str, default=0
        Column of ``Z`` on the x axis.
    confidence_level : float, default=0.95
    n_points : int, default=100
    x_values : callable, default=None
        Maps the moderator to the values shown on the x axis (e.g.
        ``lambda z: 100 * z`` for a moderator in units of 100).
    xlabel : str, default=None
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib Axes
        The studies are the collection with gid ``"studies"``, the line the
        line with gid ``"fit"``.

    Warns
    -----
    UserWarning
        When some studies have no estimate of :math:`\\tau_i` (not drawn).

    References
    ----------
    Viechtbauer, W., & López-López, J. A. (2022). Location-scale models for
    meta-analysis. Research Synthesis Methods, 13, 697-715.
    """
    check_is_fitted(estimator)
    level = check_confidence_level(confidence_level)
    if not hasattr(estimator, "study_tau2_"):
        raise ValueError(
            "scale_plot needs a fitted location-scale model (study_tau2_, scale_coef_)."
        )
    k, q = estimator.study_tau2_.shape[0], estimator.scale_coef_.shape[0]
    Zarr = _as_2d(Z, "Z", k)
    if Zarr.shape[1] != q:
        raise ValueError(f"Z must have shape ({k}, {q}), got {Zarr.shape}.")
    if q == 0:
        raise ValueError("scale_plot needs a scale model with at least one moderator.")
    names = getattr(estimator, "scale_feature_names_in_", None)
    j = _column_index(feature, names, q, "Z")
    xmap = x_values if x_values is not None else (lambda t: t)
    zs, tau_fit, tau_lo, tau_hi = _scale_line(estimator, Zarr, j, n_points, level)
    x_i, tau_i = _study_tau(estimator, Zarr, j, xmap)
    ax = _new_axes(ax, (6.0, 4.5))
    pct = f"{100 * level:g}%"
    ax.fill_between(
        xmap(zs), tau_lo, tau_hi, color="0.85", label=f"{pct} confidence interval"
    )
    pts = ax.scatter(
        x_i, tau_i, color="0.3", edgecolor="black", s=25, zorder=3, label="Studies"
    )
    pts.set_gid("studies")
    (line,) = ax.plot(
        xmap(zs), tau_fit, color="black", linewidth=1.5, label="Regression line"
    )
    line.set_gid("fit")
    top = max(np.max(tau_i, initial=0.0), np.max(tau_hi))
    top = 1.05 * top if top > 0 else 1.0
    ax.set_ylim(-0.03 * top, top)  # studies with tau_i = 0 stay visible
    label = str(names[j]) if names is not None else f"z{j}"
    ax.set_xlabel(xlabel if xlabel is not None else label)
    ax.set_ylabel("Estimate of τ")
    _scale_legend(ax)
    return ax
