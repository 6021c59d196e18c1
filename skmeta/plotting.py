"""Plots for fitted meta-analysis models (needs matplotlib: the ``plot`` extra).

Every function takes a *fitted* skmeta estimator together with the data it was
fitted on (the estimators do not keep a copy of the training data) and draws into
a matplotlib :class:`~matplotlib.axes.Axes` (a new figure when ``ax=None``),
which it returns.  The functions only read public fitted attributes
(``tau2_``, ``summary()``, ``predict_interval``, ``random_effects_``, ...), so
they work with any of the four estimators where the plot makes sense.

- :func:`forest_plot`: studies with their confidence intervals and weights, the
  summary diamond and the prediction interval; subgroups; multilevel clusters.
- :func:`funnel_plot`: effect (or residual) against its standard error, with an
  optional contour-enhanced background.
- :func:`bubble_plot`: meta-regression of the effects on one moderator.
- :func:`profile_plot`: a profile likelihood (see
  :func:`skmeta.profile_likelihood`).
- :func:`scale_plot`: study-specific estimates of :math:`\\tau` against a scale
  moderator with the fitted location-scale regression line and its confidence
  band (Viechtbauer & López-López, 2022).
"""

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import clone

__all__ = [
    "bubble_plot",
    "forest_plot",
    "funnel_plot",
    "profile_plot",
    "scale_plot",
    "study_weights",
]


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
    plt = _pyplot()
    _, ax = plt.subplots(figsize=figsize)
    return ax


def _as_1d(name, values, k=None):
    arr = np.asarray(values, dtype=float).ravel()
    if k is not None and arr.shape[0] != k:
        raise ValueError(f"{name} has {arr.shape[0]} entries, expected {k}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity.")
    return arr


def _check_level(confidence_level):
    if not 0 < confidence_level < 1:
        raise ValueError(
            f"confidence_level must be in (0, 1), got {confidence_level!r}."
        )


def _check_fitted(estimator):
    if not hasattr(estimator, "intercept_"):
        raise ValueError(
            f"{type(estimator).__name__} is not fitted: call fit before plotting."
        )


def _study_tau2(estimator, k):
    """Per-study between-study variance of a fitted model (or None)."""
    tau2 = getattr(estimator, "tau2_", None)
    if tau2 is None:
        return None
    tau2 = np.asarray(tau2, dtype=float)
    return np.broadcast_to(tau2, (k,)) if tau2.ndim == 0 else tau2


def _group_matrix(groups, k):
    if isinstance(groups, pd.DataFrame):
        G = groups.to_numpy(dtype=object)
    else:
        G = np.asarray(groups, dtype=object)
    if G.ndim == 1:
        G = G.reshape(-1, 1)
    if G.shape[0] != k:
        raise ValueError(f"groups has {G.shape[0]} rows, expected {k}.")
    return G


def _multilevel_weights(estimator, v, groups, Z):
    """Diagonal of V^{-1} for a fitted MultilevelMeta, block by outermost cluster.

    V = diag(v) + sum_l sum_{g in level l} z_g Sigma_l z_g^T, where z_i = (1,
    Z[i, slopes]); outermost clusters are independent, so V^{-1} is computed one
    (small) cluster block at a time.
    """
    k = v.shape[0]
    G = _group_matrix(groups, k)
    levels = list(estimator.level_names_)
    if G.shape[1] != len(levels):
        raise ValueError(
            f"groups has {G.shape[1]} level(s); the model has {len(levels)}."
        )
    if Z is not None and not isinstance(Z, pd.DataFrame):
        Zarr = np.asarray(Z, dtype=float).reshape(k, -1)
        Z = pd.DataFrame(Zarr, columns=[f"z{j}" for j in range(Zarr.shape[1])])
    designs = []
    for name in levels:
        S = estimator.re_covariances_[name]
        slopes = list(S.index[1:])
        if slopes and Z is None:
            raise ValueError("Z is required: the model has random slopes.")
        cols = [np.ones(k)] + [np.asarray(Z[s], dtype=float) for s in slopes]
        designs.append((np.column_stack(cols), S.to_numpy()))
    # label paths: a group of level l is identified by the labels of levels <= l
    paths = [
        pd.Series([tuple(row[: lev + 1]) for row in G]).factorize()[0]
        for lev in range(len(levels))
    ]
    out = np.empty(k)
    for code in np.unique(paths[0]):
        idx = np.flatnonzero(paths[0] == code)
        V = np.diag(v[idx])
        for (zd, S), path in zip(designs, paths, strict=True):
            same = path[idx][:, None] == path[idx][None, :]
            V = V + same * (zd[idx] @ S @ zd[idx].T)
        out[idx] = np.diag(np.linalg.inv(V))
    return out


def study_weights(estimator, sample_var, *, groups=None, Z=None):
    """Return the percentage weights of the studies in a fitted model.

    :math:`w_i = 1/(v_i + \\hat\\tau_i^2)` (random-effects, location-scale and
    robust models) or the diagonal of :math:`\\hat V^{-1}` (multilevel models,
    metafor's ``weights(type="diagonal")``), normalised to sum to 100.

    Parameters
    ----------
    estimator : fitted skmeta estimator
    sample_var : array-like of shape (n_samples,)
        Sampling variances of the training studies.
    groups : array-like of shape (n_samples,) or (n_samples, n_levels), default=None
        Group labels (multilevel models).
    Z : array-like or DataFrame of shape (n_samples, q), default=None
        Random-slope covariates (multilevel models with random slopes).

    Returns
    -------
    ndarray of shape (n_samples,)
        Weights in percent.
    """
    v = _as_1d("sample_var", sample_var)
    if hasattr(estimator, "re_covariances_"):
        if groups is None:
            raise ValueError(
                "groups is required for the weights of a multilevel model."
            )
        w = _multilevel_weights(estimator, v, groups, Z)
    else:
        tau2 = _study_tau2(estimator, v.shape[0])
        if tau2 is None:
            raise ValueError(
                f"{type(estimator).__name__} has no tau2_: cannot compute weights."
            )
        with np.errstate(divide="ignore"):
            w = 1.0 / (v + tau2)
    if not np.all(np.isfinite(w)):
        raise ValueError("Infinite weights: some studies have zero total variance.")
    return 100.0 * w / w.sum()


def _summary_row(estimator, confidence_level):
    """(estimate, ci_lower, ci_upper) of the intercept from ``summary()``."""
    frame = estimator.summary(confidence_level).to_frame()
    if isinstance(frame.index, pd.MultiIndex):
        frame = frame.xs("location", level=0)
    row = frame.loc["intercept"]
    return float(row["estimate"]), float(row["ci_lower"]), float(row["ci_upper"])


def _prediction_interval(estimator, confidence_level):
    """(pi_lower, pi_upper) for a new study, or None when not defined."""
    if not hasattr(estimator, "predict_interval"):
        return None
    try:
        frame = estimator.predict_interval(confidence_level=confidence_level)
    except ValueError:  # e.g. scale moderators or random slopes need Z
        return None
    return float(frame["pi_lower"].iloc[0]), float(frame["pi_upper"].iloc[0])


def _row_text(fmt, est, lo, hi, weight=None, show_weight=False):
    """Right-margin text: ``weight%  estimate [lower, upper]`` in fixed width."""
    est_txt = f"{fmt(est):6.2f}" if est is not None else " " * 6
    text = f"{est_txt} [{fmt(lo):6.2f}, {fmt(hi):6.2f}]"
    if show_weight:
        w_txt = f"{weight:5.1f}%" if weight is not None else " " * 6
        text = f"{w_txt}  {text}"
    return text


def _nice_transformed_ticks(ax, transform):
    """Ticks at round values of ``transform(x)`` (monotone) within the x limits."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

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
    t_lo, t_hi = ts[0], ts[-1]
    if t_lo > 0 and t_hi / t_lo > 4:
        decades = np.arange(np.floor(np.log10(t_lo)), np.ceil(np.log10(t_hi)) + 1)
        cand = np.concatenate([m * 10.0**decades for m in (1.0, 2.0, 5.0)])
        if t_hi / t_lo < 40:
            cand = np.concatenate([cand, 2.5 * 10.0**decades])
        cand = np.sort(cand)
    else:
        cand = MaxNLocator(6).tick_values(t_lo, t_hi)
    cand = cand[(cand >= t_lo) & (cand <= t_hi)]
    from scipy.optimize import brentq

    positions = []
    for c in cand:  # exact inverse within the bracketing grid cell
        j = int(np.clip(np.searchsorted(ts, c), 1, xs.size - 1))
        a, b = sorted((xs[j - 1], xs[j]))
        f = lambda x, c=c: float(transform(x)) - c
        positions.append(
            brentq(f, a, b, xtol=1e-12) if f(a) * f(b) < 0 else np.interp(c, ts, xs)
        )
    ax.xaxis.set_major_locator(FixedLocator(positions))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda t, _: f"{transform(t):.3g}"))


def _predict_interval_at(estimator, X, Z, confidence_level):
    """``predict_interval(X)``, passing the scale design ``Z`` where needed."""
    if getattr(estimator, "n_scale_features_in_", 0):
        if Z is None:
            raise ValueError("Z is required: the scale model has moderators.")
        return estimator.predict_interval(X, Z=Z, confidence_level=confidence_level)
    return estimator.predict_interval(X, confidence_level=confidence_level)


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


def forest_plot(
    estimator,
    y,
    sample_var,
    *,
    X=None,
    labels=None,
    subgroups=None,
    groups=None,
    Z=None,
    confidence_level=0.95,
    show_weights=True,
    show_prediction=True,
    transform=None,
    refline=0.0,
    xlabel="Observed outcome",
    ax=None,
):
    """Draw a forest plot of a fitted model.

    One row per study: the observed effect :math:`y_i` as a square whose area is
    proportional to its weight in the model, with the confidence interval
    :math:`y_i \\pm z_{1-\\alpha/2}\\sqrt{v_i}` (as metafor's ``forest``).  At the
    bottom, the summary estimate as a diamond spanning its confidence interval
    (from ``estimator.summary()``, so robust or Knapp–Hartung intervals are
    shown as the model reports them) and the prediction interval for the true
    effect of a new study as a line with end marks.  The right margin gives the
    weight (%) and "estimate [CI]" of each row.

    With moderators (``X``), the fitted values :math:`\\hat\\mu_i` of the studies
    are drawn as grey diamonds instead of a single summary (metafor's forest
    plot of a meta-regression).  With ``subgroups``, the studies are grouped
    under a header per subgroup and each subgroup gets its own summary diamond
    from a clone of ``estimator`` fitted to that subgroup (intercept only).  For
    a :class:`~skmeta.MultilevelMeta`, pass ``groups``: the studies are grouped
    by the outermost level, and each cluster gets a grey diamond at the fixed
    effect plus the cluster's BLUP, spanning ± z times the BLUP's prediction
    error SD (intercept-only models).

    Parameters
    ----------
    estimator : fitted skmeta estimator
        Fitted to ``(X, y, sample_var)``.
    y : array-like of shape (n_samples,)
        Observed effect sizes.
    sample_var : array-like of shape (n_samples,)
        Their sampling variances.
    X : array-like of shape (n_samples, n_features), default=None
        Moderators the model was fitted with.
    labels : array-like of shape (n_samples,), default=None
        Study labels (``"Study 1"``, ... when None).
    subgroups : array-like of shape (n_samples,), default=None
        Subgroup labels; subgroups are drawn in order of first appearance.
    groups : array-like of shape (n_samples,) or (n_samples, n_levels), \
default=None
        Group labels of a multilevel model (outermost level first).
    Z : array-like of shape (n_samples, q), default=None
        Scale moderators (location-scale models) or random-slope covariates
        (multilevel models), as passed to ``fit``; used for the weights.
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
    """
    _check_fitted(estimator)
    _check_level(confidence_level)
    y = _as_1d("y", y)
    k = y.shape[0]
    v = _as_1d("sample_var", sample_var, k)
    if np.any(v < 0):
        raise ValueError("sample_var must be >= 0.")
    if labels is None:
        labels = [f"Study {i + 1}" for i in range(k)]
    labels = [str(s) for s in np.asarray(labels, dtype=object).ravel()]
    if len(labels) != k:
        raise ValueError(f"labels has {len(labels)} entries, expected {k}.")
    has_mods = getattr(estimator, "n_features_in_", 0) > 0
    if has_mods and X is None:
        raise ValueError("X is required: the model has moderators.")
    z = stats.norm.ppf(0.5 + confidence_level / 2)
    weights = study_weights(estimator, v, groups=groups, Z=Z) if show_weights else None
    fmt = transform if transform is not None else (lambda t: t)
    show_w = weights is not None

    def w_of(i):
        return None if weights is None else weights[i]

    # ----- row layout (top to bottom)
    rows = []  # (kind, label, payload)
    if subgroups is not None and groups is not None:
        raise ValueError("Pass either subgroups or groups, not both.")
    if subgroups is not None or groups is not None:
        if subgroups is not None:
            keys = np.asarray(subgroups, dtype=object).ravel()
            if keys.shape[0] != k:
                raise ValueError(
                    f"subgroups has {keys.shape[0]} entries, expected {k}."
                )
            level_name = ""
        else:
            keys = _group_matrix(groups, k)[:, 0]
            names = getattr(estimator, "level_names_", None)
            level_name = f"{names[0]} " if names else "group "
        order = pd.unique(pd.Series(keys))
        for key in order:
            idx = np.flatnonzero(keys == key)
            rows.append(("header", f"{level_name}{key}", None))
            rows += [("study", labels[i], i) for i in idx]
            rows.append(("group_summary", str(key), (key, idx)))
            rows.append(("gap", "", None))
    else:
        rows += [("study", labels[i], i) for i in range(k)]
        rows.append(("gap", "", None))
    if has_mods:
        rows.pop()  # no summary row: drop the trailing gap
    else:
        rows.append(("summary", estimator._model_label(), None))

    n_rows = len(rows)
    if ax is None:
        plt = _pyplot()
        longest = max(len(label) for _, label, _ in rows) + 3
        left_in = 0.2 + 0.075 * longest  # inches for the row labels (10 pt)
        right_in = 0.3 + 0.075 * (31 if show_w else 23)
        width = left_in + 3.6 + right_in
        height = 1.2 + 0.25 * n_rows
        fig, ax = plt.subplots(figsize=(width, height))
        fig.subplots_adjust(
            left=left_in / width,
            right=1 - right_in / width,
            top=1 - 0.45 / height,
            bottom=0.6 / height,
        )
    ypos = n_rows - np.arange(n_rows, dtype=float)

    fitted = None
    if has_mods:
        fitted = _predict_interval_at(estimator, X, Z, confidence_level)
    cluster_blups = None
    if groups is not None and hasattr(estimator, "random_effects_") and not has_mods:
        first = estimator.level_names_[0]
        cluster_blups = estimator.random_effects_[first]

    study_y, study_idx = [], []
    right_text = []
    ticks, ticklabels, bold = [], [], []
    x_extent = []
    for (kind, label, payload), yy in zip(rows, ypos, strict=True):
        if kind == "gap":
            continue
        if kind == "header":
            ticks.append(yy)
            ticklabels.append(label)
            bold.append(True)
            continue
        if kind == "study":
            i = payload
            lo, hi = y[i] - z * np.sqrt(v[i]), y[i] + z * np.sqrt(v[i])
            ax.hlines(yy, lo, hi, color="black", linewidth=1.0, zorder=2)
            study_y.append(yy)
            study_idx.append(i)
            x_extent += [lo, hi]
            text = _row_text(fmt, y[i], lo, hi, w_of(i), show_w)
            right_text.append((yy, text, False))
            if fitted is not None:
                r = fitted.iloc[i]
                _diamond(
                    ax,
                    r["mean"],
                    r["ci_lower"],
                    r["ci_upper"],
                    yy,
                    color="0.75",
                    height=0.25,
                    gid="fitted",
                )
                x_extent += [r["ci_lower"], r["ci_upper"]]
        elif kind == "group_summary":
            key, idx = payload
            res = None
            if cluster_blups is not None:
                if key in cluster_blups.index:
                    b = cluster_blups.loc[key]
                    est = estimator.intercept_ + float(b["intercept"])
                    half = z * float(b["se_intercept"])
                    res = (
                        est,
                        est - half,
                        est + half,
                        "cluster",
                        f"{level_name}{label} (BLUP)",
                    )
            elif not has_mods and idx.size >= 2:
                sub = clone(estimator)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        sub.fit(None, y[idx], sample_var=v[idx])
                    est, lo, hi = _summary_row(sub, confidence_level)
                    res = (est, lo, hi, "subgroup", f"{sub._model_label()}: {label}")
                except (ValueError, TypeError):
                    res = None
            if res is None:
                continue
            est, lo, hi, gid, text_label = res
            _diamond(ax, est, lo, hi, yy, color="0.6", gid=gid)
            x_extent += [lo, hi]
            ticks.append(yy)
            ticklabels.append(text_label)
            bold.append(False)
            right_text.append((yy, _row_text(fmt, est, lo, hi, None, show_w), True))
            continue
        elif kind == "summary":
            est, lo, hi = _summary_row(estimator, confidence_level)
            _diamond(ax, est, lo, hi, yy, color="black", gid="summary")
            x_extent += [lo, hi]
            text = _row_text(fmt, est, lo, hi, 100.0, show_w)
            right_text.append((yy, text, True))
            ticks.append(yy)
            ticklabels.append(label)
            bold.append(True)
            pi = (
                _prediction_interval(estimator, confidence_level)
                if show_prediction
                else None
            )
            if pi is not None:
                pi_y = yy - 0.75
                line = ax.hlines(
                    pi_y, pi[0], pi[1], color="black", linestyle="--", linewidth=1.0
                )
                line.set_gid("prediction")
                ax.vlines(pi, pi_y - 0.15, pi_y + 0.15, color="black", linewidth=1.0)
                x_extent += list(pi)
                ticks.append(pi_y)
                ticklabels.append("Prediction interval")
                bold.append(False)
                right_text.append(
                    (pi_y, _row_text(fmt, None, pi[0], pi[1], None, show_w), False)
                )
            continue
        ticks.append(yy)
        ticklabels.append(label)
        bold.append(False)

    # squares with area proportional to the weight
    study_idx = np.asarray(study_idx, dtype=int)
    w = weights[study_idx] if weights is not None else np.full(study_idx.size, 5.0)
    sizes = 15.0 + 150.0 * w / w.max()
    squares = ax.scatter(
        y[study_idx], study_y, s=sizes, marker="s", color="black", zorder=3
    )
    squares.set_gid("studies")

    if refline is not None:
        ax.axvline(refline, color="0.5", linestyle=":", linewidth=1.0, zorder=1)
        x_extent.append(refline)
    lo_x, hi_x = min(x_extent), max(x_extent)
    pad = 0.05 * (hi_x - lo_x if hi_x > lo_x else 1.0)
    ax.set_xlim(lo_x - pad, hi_x + pad)
    ax.set_ylim(min(ypos.min(), min(ticks)) - 1.0, ypos.max() + 0.8)
    ax.set_yticks(ticks)
    ax.set_yticklabels(ticklabels)
    for tick, is_bold in zip(ax.get_yticklabels(), bold, strict=True):
        if is_bold:
            tick.set_fontweight("bold")
    ax.tick_params(axis="y", length=0)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(xlabel)
    if transform is not None:
        _nice_transformed_ticks(ax, transform)

    # right margin: weight and estimate [CI], aligned in a monospace column
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(ax.transAxes, ax.transData)
    for yy, text, is_bold in right_text:
        ax.text(
            1.03,
            yy,
            text,
            transform=trans,
            ha="left",
            va="center",
            family="monospace",
            fontsize="small",
            fontweight="bold" if is_bold else "normal",
            clip_on=False,
        )
    header = f"Estimate [{100 * confidence_level:g}% CI]"
    header = f"{'Weight':>6s}  {header:>23s}" if show_w else f"{header:>23s}"
    ax.text(
        1.03,
        ypos.max() + 0.8,
        header,
        transform=trans,
        ha="left",
        va="bottom",
        family="monospace",
        fontsize="small",
        fontweight="bold",
        clip_on=False,
    )
    return ax


def funnel_plot(
    estimator,
    y,
    sample_var,
    *,
    X=None,
    contours=None,
    confidence_level=0.95,
    refline=None,
    xlabel=None,
    ax=None,
):
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
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib Axes
        The studies are the collection with gid ``"studies"``.
    """
    _check_fitted(estimator)
    _check_level(confidence_level)
    y = _as_1d("y", y)
    k = y.shape[0]
    v = _as_1d("sample_var", sample_var, k)
    if np.any(v < 0):
        raise ValueError("sample_var must be >= 0.")
    se = np.sqrt(v)
    has_mods = getattr(estimator, "n_features_in_", 0) > 0
    if has_mods:
        if X is None:
            raise ValueError("X is required: the model has moderators.")
        y = y - estimator.predict(X)
        centre = 0.0
        default_label = "Residual value"
    else:
        centre = _summary_row(estimator, confidence_level)[0]
        default_label = "Observed outcome"
    ax = _new_axes(ax, (6.0, 4.5))
    se_max = se.max() * 1.1 if se.max() > 0 else 1.0
    grid = np.linspace(0.0, se_max, 50)
    if contours is not None:
        levels = sorted(float(c) for c in contours)
        for c in levels:
            _check_level(c)
        ref = 0.0 if refline is None else float(refline)
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
        ax.legend(
            handles[::-1][: len(levels) + 1],
            texts[::-1][: len(levels) + 1],
            loc="lower right",
            fontsize="small",
        )
        ax.set_xlim(ref - half, ref + half)
    else:
        zc = stats.norm.ppf(0.5 + confidence_level / 2)
        c0 = centre if refline is None else float(refline)
        ax.plot(c0 - zc * grid, grid, color="0.3", linestyle="--", linewidth=1.0)
        ax.plot(c0 + zc * grid, grid, color="0.3", linestyle="--", linewidth=1.0)
        ax.axvline(c0, color="0.3", linewidth=1.0)
        lo = min(np.min(y), c0 - zc * se_max)
        hi = max(np.max(y), c0 + zc * se_max)
        pad = 0.05 * (hi - lo)
        ax.set_xlim(lo - pad, hi + pad)
    pts = ax.scatter(y, se, color="black", edgecolor="white", s=30, zorder=3)
    pts.set_gid("studies")
    ax.set_ylim(se_max, 0.0)
    ax.set_ylabel("Standard error")
    ax.set_xlabel(xlabel if xlabel is not None else default_label)
    return ax


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


def bubble_plot(
    estimator,
    X,
    y,
    sample_var,
    *,
    feature=0,
    Z=None,
    groups=None,
    confidence_level=0.95,
    show_prediction=False,
    n_points=100,
    xlabel=None,
    ylabel="Observed outcome",
    ax=None,
):
    """Draw a bubble plot of a meta-regression on one moderator.

    Each study is a circle at (moderator, :math:`y_i`) whose area is
    proportional to its weight in the model.  The fitted line
    :math:`\\hat\\mu(x)` is drawn with its confidence band (and, optionally,
    the prediction band) from ``estimator.predict_interval``; the other
    moderators are held at their means (metafor's ``regplot``).

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
        models).
    confidence_level : float, default=0.95
    show_prediction : bool, default=False
        Also draw the prediction band (for location-scale models with scale
        moderators: at the mean of ``Z``).
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
    _check_fitted(estimator)
    _check_level(confidence_level)
    y = _as_1d("y", y)
    k = y.shape[0]
    v = _as_1d("sample_var", sample_var, k)
    names = getattr(estimator, "feature_names_in_", None)
    Xarr = np.asarray(X, dtype=float)
    if Xarr.ndim == 1:
        Xarr = Xarr.reshape(-1, 1)
    if Xarr.shape[0] != k:
        raise ValueError(f"X has {Xarr.shape[0]} rows, expected {k}.")
    if Xarr.shape[1] == 0 or getattr(estimator, "n_features_in_", 0) == 0:
        raise ValueError("bubble_plot needs a model with at least one moderator.")
    j = _column_index(feature, names, Xarr.shape[1], "X")
    label = str(names[j]) if names is not None else f"x{j}"
    w = study_weights(estimator, v, groups=groups, Z=Z)
    ax = _new_axes(ax, (6.0, 4.5))
    xs = np.linspace(Xarr[:, j].min(), Xarr[:, j].max(), n_points)
    newX = np.tile(Xarr.mean(axis=0), (n_points, 1))
    newX[:, j] = xs
    if isinstance(X, pd.DataFrame):
        newX = pd.DataFrame(newX, columns=X.columns)
    newZ = None
    if getattr(estimator, "n_scale_features_in_", 0):
        if Z is None:
            raise ValueError("Z is required: the scale model has moderators.")
        Zmean = pd.DataFrame(Z).mean(axis=0).to_numpy(dtype=float)
        newZ = np.tile(Zmean, (n_points, 1))
        if isinstance(Z, pd.DataFrame):
            newZ = pd.DataFrame(newZ, columns=Z.columns)
    pred = _predict_interval_at(estimator, newX, newZ, confidence_level)
    if show_prediction:
        ax.fill_between(
            xs,
            pred["pi_lower"],
            pred["pi_upper"],
            color="0.92",
            label="prediction interval",
        )
    pct = f"{100 * confidence_level:g}%"
    ax.fill_between(
        xs, pred["ci_lower"], pred["ci_upper"], color="0.8", label=f"{pct} CI"
    )
    (line,) = ax.plot(xs, pred["mean"], color="black", linewidth=1.5, label="fit")
    line.set_gid("fit")
    sizes = 20.0 + 400.0 * w / w.max()
    pts = ax.scatter(
        Xarr[:, j],
        y,
        s=sizes,
        facecolor="none",
        edgecolor="black",
        linewidth=0.8,
        zorder=3,
    )
    pts.set_gid("studies")
    ax.set_xlabel(xlabel if xlabel is not None else label)
    ax.set_ylabel(ylabel)
    ax.legend(loc="best", fontsize="small")
    return ax


def profile_plot(result, ax=None):
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


def scale_plot(
    estimator,
    Z,
    *,
    feature=0,
    confidence_level=0.95,
    n_points=100,
    x_values=None,
    xlabel=None,
    ax=None,
):
    """Plot study-specific estimates of tau against a scale moderator.

    The points are :math:`\\hat\\tau_i = \\sqrt{\\max(0,\\ e_i^2/(1-h_i) - v_i)}`
    (``estimator.study_tau2_``), the line is the fitted
    :math:`\\hat\\tau(z) = \\sqrt{g^{-1}(z^\\top\\hat\\alpha)}` with the other scale
    moderators at their means, and the band its pointwise confidence interval,
    obtained by transforming the Wald interval of the linear predictor
    :math:`z^\\top\\hat\\alpha \\pm z_{1-\\alpha/2}
    \\sqrt{z^\\top \\hat\\Sigma_\\alpha z}`
    (Viechtbauer & López-López, 2022, Figure of the writing-to-learn example).

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
    """
    _check_fitted(estimator)
    _check_level(confidence_level)
    if not hasattr(estimator, "study_tau2_"):
        raise ValueError(
            "scale_plot needs a fitted location-scale model (study_tau2_, scale_coef_)."
        )
    names = getattr(estimator, "scale_feature_names_in_", None)
    Zarr = np.asarray(Z, dtype=float)
    if Zarr.ndim == 1:
        Zarr = Zarr.reshape(-1, 1)
    k = estimator.study_tau2_.shape[0]
    if Zarr.shape != (k, estimator.scale_coef_.shape[0]):
        raise ValueError(
            f"Z must have shape ({k}, {estimator.scale_coef_.shape[0]}), got "
            f"{Zarr.shape}."
        )
    if Zarr.shape[1] == 0:
        raise ValueError("scale_plot needs a scale model with at least one moderator.")
    j = _column_index(feature, names, Zarr.shape[1], "Z")
    label = str(names[j]) if names is not None else f"z{j}"
    xmap = x_values if x_values is not None else (lambda t: t)
    zs = np.linspace(Zarr[:, j].min(), Zarr[:, j].max(), n_points)
    newZ = np.tile(Zarr.mean(axis=0), (n_points, 1))
    newZ[:, j] = zs
    design = newZ
    alpha = np.asarray(estimator.scale_coef_, dtype=float)
    if getattr(estimator, "scale_fit_intercept", True):
        design = np.column_stack([np.ones(n_points), newZ])
        alpha = np.concatenate([[estimator.scale_intercept_], alpha])
    eta = design @ alpha
    se = np.sqrt(np.einsum("ij,jk,ik->i", design, estimator.scale_cov_params_, design))
    zc = stats.norm.ppf(0.5 + confidence_level / 2)
    if getattr(estimator, "link", "log") == "log":
        inv = np.exp
    else:

        def inv(t):
            return np.maximum(t, 0.0)

    tau_fit = np.sqrt(inv(eta))
    tau_lo = np.sqrt(inv(eta - zc * se))
    tau_hi = np.sqrt(inv(eta + zc * se))
    tau_i = np.sqrt(np.maximum(np.nan_to_num(estimator.study_tau2_, nan=0.0), 0.0))
    ax = _new_axes(ax, (6.0, 4.5))
    x_line = xmap(zs)
    pct = f"{100 * confidence_level:g}%"
    ax.fill_between(
        x_line, tau_lo, tau_hi, color="0.85", label=f"{pct} confidence interval"
    )
    pts = ax.scatter(
        xmap(Zarr[:, j]),
        tau_i,
        color="0.3",
        edgecolor="black",
        s=25,
        zorder=3,
        label="Studies",
    )
    pts.set_gid("studies")
    (line,) = ax.plot(
        x_line, tau_fit, color="black", linewidth=1.5, label="Regression line"
    )
    line.set_gid("fit")
    top = max(np.max(tau_i), np.max(tau_hi))
    top = 1.05 * top if top > 0 else 1.0
    ax.set_ylim(-0.03 * top, top)  # studies with tau_i = 0 stay visible
    ax.set_xlabel(xlabel if xlabel is not None else label)
    ax.set_ylabel("Estimate of τ")
    handles, texts = ax.get_legend_handles_labels()
    order = [texts.index(t) for t in ("Studies", "Regression line")]
    order += [i for i in range(len(texts)) if i not in order]
    ax.legend(
        [handles[i] for i in order],
        [texts[i] for i in order],
        loc="upper right",
        fontsize="small",
    )
    return ax
