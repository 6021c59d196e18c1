"""skmeta.plotting: every plot is rendered to PNG (Agg) and its content checked.

Set ``SKMETA_PLOT_DIR`` to keep the rendered images for inspection.
"""

import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

matplotlib.use("Agg")
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
from matplotlib.patches import Polygon

from skmeta import (
    LocationScaleMeta,
    MultilevelMeta,
    RandomEffectsMeta,
    RobustMeta,
    profile_likelihood,
)
from skmeta.datasets import (
    load_bcg,
    load_nielweise2007,
    load_school_calendar,
    load_writing_to_learn,
)
from skmeta.effect_sizes import log_risk_ratio
from skmeta.plotting import (
    bubble_plot,
    forest_plot,
    funnel_plot,
    profile_plot,
    scale_plot,
    study_weights,
)

Z95 = stats.norm.ppf(0.975)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def bcg():
    data = load_bcg()
    es = log_risk_ratio(data["tpos"], data["tneg"], data["cpos"], data["cneg"])
    labels = (data["author"] + ", " + data["year"].astype(str)).tolist()
    return data, es.yi, es.vi, labels


def _render(ax, tmp_path, name):
    """Save the figure as PNG, check it is a non-blank image, return its path."""
    out_dir = Path(os.environ.get("SKMETA_PLOT_DIR", tmp_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    ax.figure.savefig(path, dpi=60)
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.05  # something was drawn
    return path


def _patches(ax, gid):
    return [p for p in ax.patches if isinstance(p, Polygon) and p.get_gid() == gid]


def _collection(ax, gid):
    found = [c for c in ax.collections if c.get_gid() == gid]
    assert len(found) == 1
    return found[0]


def _diamond_bounds(poly):
    xy = poly.get_xy()
    return xy[:, 0].min(), xy[:, 0].max(), xy[1, 0]  # lower, upper, centre


# ---------------------------------------------------------------- forest plot
def test_forest_plot_rows_weights_diamond_and_prediction(bcg, tmp_path):
    _data, yi, vi, labels = bcg
    model = RandomEffectsMeta().fit(None, yi, sample_var=vi)
    ax = forest_plot(model, yi, vi, labels=labels)
    _render(ax, tmp_path, "forest_re")

    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks[: len(labels)] == labels  # one row per study, in order
    assert ticks[len(labels) :] == ["RE Model", "Prediction interval"]  # metafor
    squares = _collection(ax, "studies")
    assert squares.get_offsets().shape == (13, 2)
    np.testing.assert_allclose(squares.get_offsets()[:, 0], yi)
    # square area grows with the weight 1 / (v + tau^2)
    w = 1.0 / (vi + model.tau2_)
    assert np.all(np.diff(squares.get_sizes()[np.argsort(w)]) >= 0)

    (diamond,) = _patches(ax, "summary")
    lo, hi, centre = _diamond_bounds(diamond)
    row = model.summary().to_frame().loc["intercept"]
    np.testing.assert_allclose(
        [lo, hi, centre], row[["ci_lower", "ci_upper", "estimate"]], rtol=1e-12
    )
    (pi_line,) = [c for c in ax.collections if c.get_gid() == "prediction"]
    (segment,) = pi_line.get_segments()
    pi = model.predict_interval().iloc[0]
    np.testing.assert_allclose(
        sorted(segment[:, 0]), [pi["pi_lower"], pi["pi_upper"]], rtol=1e-12
    )
    # the axis shows every study's CI and the prediction interval
    xmin, xmax = ax.get_xlim()
    half = Z95 * np.sqrt(vi)
    assert xmin < np.min(yi - half) and xmax > np.max(yi + half)
    assert xmin < pi["pi_lower"] and xmax > pi["pi_upper"]
    # the right margin prints weight and interval of each study
    texts = [t.get_text() for t in ax.texts]
    pct = 100 * w / w.sum()
    assert f"{pct[0]:5.1f}%" in texts[0]
    assert f"{yi[0] - half[0]:6.2f}" in texts[0]


def test_forest_plot_of_a_mantel_haenszel_result(tmp_path):
    from skmeta import mantel_haenszel

    data = load_nielweise2007()
    with pytest.warns(UserWarning, match="per-study"):  # the double-zero table
        res = mantel_haenszel(
            data["ai"], n1i=data["n1i"], ci=data["ci"], n2i=data["n2i"],
            labels=data["author"],
        )  # fmt: skip
    with pytest.warns(UserWarning, match="get no row: Yucel"):
        ax = forest_plot(res, transform=np.exp)
    _render(ax, tmp_path, "forest_mh")
    defined = np.isfinite(res.yi)
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    expected = [a for a, keep in zip(data["author"], defined, strict=True) if keep]
    assert ticks == [*expected, "MH model"]  # an equal-effects model: no PI row
    np.testing.assert_allclose(
        _collection(ax, "studies").get_offsets()[:, 0], res.yi[defined]
    )
    (diamond,) = _patches(ax, "summary")
    np.testing.assert_allclose(
        _diamond_bounds(diamond), [res.ci_lower, res.ci_upper, res.estimate]
    )
    # squares grow with the Mantel-Haenszel weights
    order = np.argsort(res.weights[defined])
    assert np.all(np.diff(_collection(ax, "studies").get_sizes()[order]) >= 0)
    with pytest.raises(ValueError, match="taken from the Mantel-Haenszel"):
        forest_plot(res, res.yi, res.vi)


def test_forest_plot_transform_labels_round_ratios(bcg, tmp_path):
    _data, yi, vi, labels = bcg
    model = RandomEffectsMeta().fit(None, yi, sample_var=vi)
    ax = forest_plot(model, yi, vi, labels=labels, transform=np.exp)
    path = _render(ax, tmp_path, "forest_re_exp")
    assert path.exists()
    ticks = np.exp(ax.get_xticks())
    xmin, xmax = ax.get_xlim()
    assert ticks.size >= 3
    assert np.all((ax.get_xticks() >= xmin) & (ax.get_xticks() <= xmax))
    # round risk ratios (1, 2, 2.5 or 5 times a power of ten)
    mant = ticks / 10.0 ** np.floor(np.log10(ticks) + 1e-9)
    assert np.all(np.isin(np.round(mant, 6), [1.0, 2.0, 2.5, 5.0]))
    est = model.intercept_
    assert any(f"{np.exp(est):6.2f}" in t.get_text() for t in ax.texts)


def test_forest_plot_subgroups_refit_each_subgroup(bcg, tmp_path):
    data, yi, vi, labels = bcg
    model = RandomEffectsMeta().fit(None, yi, sample_var=vi)
    ax = forest_plot(model, yi, vi, labels=labels, subgroups=data["alloc"])
    _render(ax, tmp_path, "forest_subgroups")
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    order = list(pd.unique(data["alloc"]))
    assert [t for t in ticks if t in order] == order  # one header per subgroup
    assert sum(t in labels for t in ticks) == 13
    diamonds = _patches(ax, "subgroup")
    assert len(diamonds) == len(order)
    for key, poly in zip(order, diamonds, strict=True):
        mask = (data["alloc"] == key).to_numpy()
        sub = RandomEffectsMeta().fit(None, yi[mask], sample_var=vi[mask])
        lo, hi, centre = _diamond_bounds(poly)
        row = sub.summary().to_frame().loc["intercept"]
        np.testing.assert_allclose(
            [lo, hi, centre], row[["ci_lower", "ci_upper", "estimate"]]
        )
    assert len(_patches(ax, "summary")) == 1


def test_forest_plot_meta_regression_shows_fitted_values(bcg, tmp_path):
    data, yi, vi, labels = bcg
    X = data[["ablat"]]
    model = RandomEffectsMeta().fit(X, yi, sample_var=vi)
    ax = forest_plot(model, yi, vi, X=X, labels=labels)
    _render(ax, tmp_path, "forest_metareg")
    fitted = _patches(ax, "fitted")
    assert len(fitted) == 13
    np.testing.assert_allclose(
        [_diamond_bounds(p)[2] for p in fitted], model.predict(X), rtol=1e-12
    )
    assert not _patches(ax, "summary")  # no single summary with moderators
    with pytest.raises(ValueError, match="X is required"):
        forest_plot(model, yi, vi)


def test_forest_plot_multilevel_clusters_and_weights(tmp_path):
    sc = load_school_calendar()
    groups = sc[["district", "school"]]
    model = MultilevelMeta().fit(None, sc["yi"], sample_var=sc["vi"], groups=groups)
    ax = forest_plot(
        model,
        sc["yi"],
        sc["vi"],
        groups=groups,
        labels="school " + sc["school"].astype(str),
    )
    _render(ax, tmp_path, "forest_multilevel")
    n_districts = sc["district"].nunique()
    clusters = _patches(ax, "cluster")
    assert len(clusters) == n_districts
    blups = model.random_effects_["district"]
    first = pd.unique(sc["district"])[0]
    lo, hi, centre = _diamond_bounds(clusters[0])
    np.testing.assert_allclose(centre, model.intercept_ + blups.loc[first, "estimate"])
    np.testing.assert_allclose(hi - lo, 2 * Z95 * blups.loc[first, "se"])
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert sum(t.startswith("school ") for t in ticks) == len(sc)
    assert f"district {first}" in ticks
    # weights: diagonal of V^{-1} with V built densely here (k = 56 is small)
    k = len(sc)
    d = sc["district"].to_numpy()
    s = (sc["district"].astype(str) + "/" + sc["school"].astype(str)).to_numpy()
    V = (
        np.diag(sc["vi"].to_numpy())
        + model.sigma2_[0] * (d[:, None] == d[None, :])
        + model.sigma2_[1] * (s[:, None] == s[None, :])
    )
    w = np.diag(np.linalg.inv(V))
    np.testing.assert_allclose(
        study_weights(model, sc["vi"], groups=groups), 100 * w / w.sum(), rtol=1e-10
    )
    assert V.shape == (k, k)


def test_forest_plot_location_scale_and_robust(bcg, tmp_path):
    data, yi, vi, labels = bcg
    Z = (data[["alloc"]] == "random").astype(float)
    ls = LocationScaleMeta().fit(None, yi, sample_var=vi, Z=Z)
    ax = forest_plot(ls, yi, vi, labels=labels, Z=Z)
    _render(ax, tmp_path, "forest_location_scale")
    w = 1 / (vi + ls.tau2_)
    np.testing.assert_allclose(study_weights(ls, vi), 100 * w / w.sum())
    # tau^2 depends on Z: no single prediction interval
    assert not [c for c in ax.collections if c.get_gid() == "prediction"]

    rob = RobustMeta().fit(None, yi, sample_var=vi)
    ax = forest_plot(rob, yi, vi, labels=labels)
    _render(ax, tmp_path, "forest_robust")
    (diamond,) = _patches(ax, "summary")
    lo, hi, _ = _diamond_bounds(diamond)
    robust = rob.conf_int().loc[:, ["ci_lower", "ci_upper"]].iloc[0]
    np.testing.assert_allclose([lo, hi], robust)  # the robust interval


def test_forest_plot_rejects_bad_input(bcg):
    _data, yi, vi, _labels = bcg
    with pytest.raises(ValueError, match="not fitted"):
        forest_plot(RandomEffectsMeta(), yi, vi)
    model = RandomEffectsMeta().fit(None, yi, sample_var=vi)
    with pytest.raises(ValueError, match="sample_var has 12 entries"):
        forest_plot(model, yi, vi[:-1])
    with pytest.raises(ValueError, match="labels has 2 entries"):
        forest_plot(model, yi, vi, labels=["a", "b"])
    with pytest.raises(ValueError, match="confidence_level"):
        forest_plot(model, yi, vi, confidence_level=95)


# ---------------------------------------------------------------- funnel plot
def test_funnel_plot_points_and_pseudo_confidence_region(bcg, tmp_path):
    _data, yi, vi, _labels = bcg
    model = RandomEffectsMeta().fit(None, yi, sample_var=vi)
    ax = funnel_plot(model, yi, vi)
    _render(ax, tmp_path, "funnel")
    pts = _collection(ax, "studies")
    np.testing.assert_allclose(pts.get_offsets(), np.column_stack([yi, np.sqrt(vi)]))
    bottom, top = ax.get_ylim()
    assert top == 0 and bottom > np.sqrt(vi).max()  # inverted: precise on top
    left, right = ax.lines[0].get_data(), ax.lines[1].get_data()
    # the funnel meets at the estimate when SE = 0 and widens by z * SE
    np.testing.assert_allclose(left[0][0], model.intercept_)
    np.testing.assert_allclose(right[0] - left[0], 2 * Z95 * right[1])
    xmin, xmax = ax.get_xlim()
    assert xmin < yi.min() and xmax > yi.max()


def test_funnel_plot_contours_and_residuals(bcg, tmp_path):
    data, yi, vi, _labels = bcg
    model = RandomEffectsMeta().fit(None, yi, sample_var=vi)
    ax = funnel_plot(model, yi, vi, contours=(0.90, 0.95, 0.99))
    _render(ax, tmp_path, "funnel_contour")
    gids = {c.get_gid() for c in ax.collections}
    assert {"contour-0.9", "contour-0.95", "contour-0.99", "contour-outside"} <= gids
    ring = next(c for c in ax.collections if c.get_gid() == "contour-0.95")
    xs = ring.get_paths()[0].vertices
    se = np.sqrt(vi).max() * 1.1
    np.testing.assert_allclose(np.abs(xs[:, 0]).max(), Z95 * se, rtol=1e-10)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["0.1 < p ≤ 1", "0.05 < p ≤ 0.1", "0.01 < p ≤ 0.05", "p ≤ 0.01"]

    X = data[["ablat"]]
    reg = RandomEffectsMeta().fit(X, yi, sample_var=vi)
    ax = funnel_plot(reg, yi, vi, X=X)
    _render(ax, tmp_path, "funnel_residuals")
    np.testing.assert_allclose(
        _collection(ax, "studies").get_offsets()[:, 0], yi - reg.predict(X)
    )
    assert ax.get_xlabel() == "Residual value"


def test_funnel_plot_with_trim_and_fill_and_the_regression_line(tmp_path):
    from skmeta.bias import regression_test, trim_and_fill

    data = load_writing_to_learn()
    yi, vi = data["yi"].to_numpy(), data["vi"].to_numpy()
    model = RandomEffectsMeta().fit(None, yi, sample_var=vi)
    filled = trim_and_fill(yi, vi)
    egger = regression_test(yi, vi)
    ax = funnel_plot(model, yi, vi, trim_and_fill=filled, regression=egger)
    _render(ax, tmp_path, "funnel_trimfill")
    imputed = _collection(ax, "filled").get_offsets()
    assert imputed.shape == (filled.k0, 2) and filled.k0 == 7  # metafor: k0 = 7
    np.testing.assert_allclose(
        imputed,
        np.column_stack([filled.filled["y"], np.sqrt(filled.filled["sample_var"])]),
    )
    # the funnel is centred on the filled model's estimate (metafor's funnel of a
    # trimfill object), not on the original one
    left = ax.lines[0].get_data()
    np.testing.assert_allclose(left[0][0], filled.model.intercept_)
    assert filled.model.intercept_ < model.intercept_
    line = next(ln for ln in ax.lines if ln.get_gid() == "regression")
    x, se = line.get_data()
    b0, b1 = egger.coefficients["estimate"].to_numpy()
    np.testing.assert_allclose(x, b0 + b1 * se)
    assert x[0] == pytest.approx(egger.limit_estimate)  # the PET limit at SE = 0
    with pytest.raises(ValueError, match="standard error"):
        funnel_plot(
            model,
            yi,
            vi,
            regression=regression_test(yi, vi, predictor="ni", ni=data["ni"]),
        )


# ---------------------------------------------------------------- bubble plot
def test_bubble_plot_points_line_and_band(bcg, tmp_path):
    data, yi, vi, _labels = bcg
    X = data[["ablat", "year"]].astype(float)
    model = RandomEffectsMeta().fit(X, yi, sample_var=vi)
    ax = bubble_plot(model, X, yi, vi, feature="ablat", show_prediction=True)
    _render(ax, tmp_path, "bubble")
    pts = _collection(ax, "studies")
    np.testing.assert_allclose(pts.get_offsets(), np.column_stack([X["ablat"], yi]))
    w = 1 / (vi + model.tau2_)
    assert np.argmax(pts.get_sizes()) == np.argmax(w)
    (line,) = [ln for ln in ax.lines if ln.get_gid() == "fit"]
    xs, ys = line.get_data()
    grid = pd.DataFrame({"ablat": xs, "year": np.full(xs.size, X["year"].mean())})
    np.testing.assert_allclose(ys, model.predict(grid), rtol=1e-12)
    assert xs.min() == X["ablat"].min() and xs.max() == X["ablat"].max()
    assert ax.get_xlabel() == "ablat"
    with pytest.raises(ValueError, match="feature 'latitude'"):
        bubble_plot(model, X, yi, vi, feature="latitude")
    plain = RandomEffectsMeta().fit(None, yi, sample_var=vi)
    with pytest.raises(ValueError, match="at least one moderator"):
        bubble_plot(plain, X, yi, vi)


# ------------------------------------------------- location-scale figures
@pytest.fixture(scope="module")
def writing():
    data = load_writing_to_learn()
    Z = pd.DataFrame({"ni100": data["ni"] / 100})
    model = LocationScaleMeta().fit(Z, data["yi"], sample_var=data["vi"], Z=Z)
    return data, Z, model


def test_scale_plot_study_tau_and_regression_line(writing, tmp_path):
    data, Z, model = writing
    ax = scale_plot(model, Z, x_values=lambda z: 100 * z, xlabel="Sample size")
    _render(ax, tmp_path, "scale_writing_to_learn")
    pts = _collection(ax, "studies")
    tau_i = np.sqrt(np.clip(model.study_tau2_, 0, None))
    np.testing.assert_allclose(pts.get_offsets()[:, 0], data["ni"])
    np.testing.assert_allclose(pts.get_offsets()[:, 1], tau_i)
    (line,) = [ln for ln in ax.lines if ln.get_gid() == "fit"]
    xs, ys = line.get_data()
    new = pd.DataFrame({"ni100": xs / 100})
    np.testing.assert_allclose(ys, np.sqrt(model.predict_tau2(new)), rtol=1e-12)
    # seed figure: the line falls from about 0.35 (n = 16) to 0.03 (n = 542)
    assert 0.3 < ys[0] < 0.4 and ys[-1] < 0.05
    bottom, top = ax.get_ylim()
    assert bottom < 0 and top >= tau_i.max()  # every study visible
    band = next(c for c in ax.collections if "confidence" in c.get_label())
    verts = band.get_paths()[0].vertices
    assert verts[:, 1].min() < ys.min() and verts[:, 1].max() > ys.max()


def test_scale_plot_needs_location_scale_model(bcg):
    _data, yi, vi, _labels = bcg
    model = RandomEffectsMeta().fit(None, yi, sample_var=vi)
    with pytest.raises(ValueError, match="location-scale"):
        scale_plot(model, np.zeros((13, 1)))


def test_profile_plot_draws_the_profile(writing, tmp_path):
    data, Z, _ = writing
    result = profile_likelihood(
        LocationScaleMeta(),
        Z,
        data["yi"],
        sample_var=data["vi"],
        Z=Z,
        parameter="ni100",
        grid=np.linspace(-3.5, 1.0, 10),
    )
    ax = profile_plot(result)
    _render(ax, tmp_path, "profile_ni100")
    xs, ys = ax.lines[0].get_data()
    np.testing.assert_allclose(xs, result.grid)
    np.testing.assert_allclose(ys, result.loglik)
    assert np.nanmax(ys) <= result.loglik_max + 1e-8
