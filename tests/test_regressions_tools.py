"""Regression tests of issue 10 for the inference tools, plots, CLI and examples.

Each test failed before its fix (the commit messages say how).
"""

import numpy as np
import pytest
from scipy import stats

from skmeta import heteroscedasticity_test
from skmeta.datasets import load_writing_to_learn

WTL = load_writing_to_learn()


# ---------------------------------------------- item 3: heteroscedasticity_test
def test_heteroscedasticity_test_without_sample_var_is_an_error():
    # used to run for minutes on zero variances and report statistic 0, p = 1
    with pytest.raises(ValueError, match="sample_var"):
        heteroscedasticity_test(None, WTL["yi"], sample_var=None)


@pytest.mark.parametrize("n_nodes", [0, -3, 2.5, "20"])
def test_heteroscedasticity_test_bad_n_nodes_is_an_error(n_nodes):
    with pytest.raises(ValueError, match="n_nodes"):
        heteroscedasticity_test(None, WTL["yi"], sample_var=WTL["vi"], n_nodes=n_nodes)


def test_heteroscedasticity_test_bad_kind_is_an_error_before_any_fit():
    with pytest.raises(ValueError, match="kind"):
        heteroscedasticity_test(None, WTL["yi"], sample_var=WTL["vi"], kind="both")


def test_heteroscedasticity_test_never_hides_a_nan_criterion(monkeypatch):
    """A NaN criterion of the full model used to become statistic 0, p = 1."""
    from skmeta._engine import _quadrature

    real = _quadrature.fit_random_scale

    def nan_fit(*args, **kwargs):
        return real(*args, **kwargs)._replace(loglik=np.nan)

    monkeypatch.setattr(_quadrature, "fit_random_scale", nan_fit)
    with pytest.warns(UserWarning, match="not finite"):
        res = heteroscedasticity_test(None, WTL["yi"], sample_var=WTL["vi"])
    assert np.isnan(res.statistic) and np.isnan(res.p_value)


def test_heteroscedasticity_test_zero_sample_var_is_an_error():
    # used to report LRT = 527.6 from an unbounded likelihood
    v = WTL["vi"].to_numpy().copy()
    v[3] = 0.0
    with pytest.raises(ValueError, match="positive sample_var: study 3"):
        heteroscedasticity_test(None, WTL["yi"], sample_var=v, kind="fixed")


# --------------------------------------- item 5: tools pass the fit's metadata
def _clustered_data():
    rng = np.random.default_rng(11)
    groups = np.repeat(np.arange(4), 2)
    x = np.array([0, 1, 1, 0, 0, 1, 1, 0], dtype=float)
    v = rng.uniform(0.02, 0.08, 8)
    y = 0.2 + 0.3 * x + rng.normal(0, 0.4, 4)[groups] + rng.normal(0, np.sqrt(v))
    return x[:, None], y, v, groups


def _z(est):
    return est._beta / np.sqrt(np.diag(est.cov_params_))


def test_permutation_test_passes_groups_to_a_multilevel_fit():
    """Used to refit with one group per row (no way to pass groups)."""
    import itertools

    from skmeta import MultilevelMeta, permutation_test

    X, y, v, groups = _clustered_data()
    res = permutation_test(
        MultilevelMeta(), X, y, sample_var=v, groups=groups, n_permutations=100
    )
    fitted = MultilevelMeta().fit(X, y, sample_var=v, groups=groups)
    ungrouped = MultilevelMeta().fit(X, y, sample_var=v)
    np.testing.assert_allclose(res.statistic, _z(fitted), rtol=1e-10)
    assert not np.allclose(_z(fitted), _z(ungrouped), rtol=1e-3)  # groups matter
    # every choice of the 4 rows with x = 1, the clusters staying with y
    zs = []
    for ones in itertools.combinations(range(8), 4):
        xp = np.zeros((8, 1))
        xp[list(ones)] = 1.0
        zs.append(_z(MultilevelMeta().fit(xp, y, sample_var=v, groups=groups)))
    expected = np.mean(np.abs(zs) >= np.abs(_z(fitted)) - 1e-8, axis=0)
    assert res.exact and res.n_permutations == 70
    np.testing.assert_allclose(res.p_value, expected)


def test_tools_refuse_metadata_the_fit_does_not_take():
    from skmeta import RobustMeta, permutation_test, profile_likelihood

    X, y, v, groups = _clustered_data()
    with pytest.raises(ValueError, match=r"RobustMeta\.fit does not take groups"):
        permutation_test(RobustMeta(), X, y, sample_var=v, groups=groups)
    from skmeta import RandomEffectsMeta

    with pytest.raises(ValueError, match="does not take Z"):
        profile_likelihood(RandomEffectsMeta(), X, y, sample_var=v, Z=X)


def test_tools_refuse_when_a_required_fit_argument_is_missing():
    from skmeta import RandomEffectsMeta, permutation_test, profile_likelihood

    X, y, v, groups = _clustered_data()
    for tool in (permutation_test, profile_likelihood):
        with pytest.raises(ValueError, match="requires strata"):
            tool(_NeedsStrata(), X, y, sample_var=v)
    # given, it reaches the fit
    res = profile_likelihood(_NeedsStrata(), X, y, sample_var=v, strata=groups)
    direct = RandomEffectsMeta().fit(X, y, sample_var=v)
    assert res.estimate == pytest.approx(direct.tau2_)


def test_profile_likelihood_passes_groups_to_the_fit():
    from skmeta import profile_likelihood

    X, y, v, groups = _clustered_data()
    _Recording.seen.clear()
    profile_likelihood(_Recording(), X, y, sample_var=v, groups=groups, n_points=3)
    assert _Recording.seen and all(g is groups for g in _Recording.seen)


def _random_effects():
    from skmeta import RandomEffectsMeta

    return RandomEffectsMeta


class _NeedsStrata(_random_effects()):
    """A random-effects model whose fit requires a keyword (a new one's might)."""

    def fit(self, X, y, *, sample_var=None, strata):
        return super().fit(X, y, sample_var=sample_var)


class _Recording(_random_effects()):
    """Records the groups each refit receives."""

    seen = []

    def fit(self, X, y, *, sample_var=None, groups=None):
        type(self).seen.append(groups)
        return super().fit(X, y, sample_var=sample_var, groups=groups)


# ------------------ profile_likelihood: values outside the parameter space
class _TauAbove(_random_effects()):
    """tau^2 below EDGE is outside this model's parameter space: fit raises."""

    EDGE = 0.2

    def fit(self, X, y, *, sample_var=None, groups=None):
        if self.tau2 is not None and self.tau2 < self.EDGE:
            raise ValueError("tau2 is outside the parameter space")
        return super().fit(X, y, sample_var=sample_var, groups=groups)


class _TauAboveMinusInf(_random_effects()):
    """Same region, signalled by a log-likelihood of -inf."""

    EDGE = 0.2

    def fit(self, X, y, *, sample_var=None, groups=None):
        super().fit(X, y, sample_var=sample_var, groups=groups)
        if self.tau2 is not None and self.tau2 < self.EDGE:
            self.loglik_ = -np.inf
        return self


def _bcg():
    from skmeta.datasets import load_bcg
    from skmeta.effect_sizes import log_risk_ratio

    data = load_bcg()
    return log_risk_ratio(data["tpos"], data["tneg"], data["cpos"], data["cneg"])


@pytest.mark.parametrize("model", [_TauAbove, _TauAboveMinusInf])
def test_profile_search_stops_at_the_edge_of_the_parameter_space(model):
    """The bound search treats failing fits (error or -inf) as outside the
    parameter space: the lower bound is the edge when the profile is still
    above the cut-off there, and the search goes on past nothing."""
    from skmeta import RandomEffectsMeta, profile_likelihood

    yi, vi = _bcg()
    free = profile_likelihood(RandomEffectsMeta(tol=1e-12), None, yi, sample_var=vi)
    # the free profile's bounds are where the criterion drops by chi2(.95)/2
    cut = free.loglik_max - 0.5 * stats.chi2.ppf(0.95, 1)
    for bound in (free.ci_lower, free.ci_upper):
        fixed = RandomEffectsMeta(tau2=bound).fit(None, yi, sample_var=vi)
        assert fixed.loglik_ == pytest.approx(cut, abs=1e-8)
    assert free.ci_lower < model.EDGE < free.estimate  # the edge cuts the interval
    with pytest.warns(UserWarning, match="outside the parameter space"):
        res = profile_likelihood(
            model(tol=1e-12), None, yi, sample_var=vi, grid=[0.1, 0.3, 0.5]
        )
    assert res.loglik[0] == -np.inf and np.all(np.isfinite(res.loglik[1:]))
    se = RandomEffectsMeta().fit(None, yi, sample_var=vi).tau2_se_
    assert model.EDGE <= res.ci_lower <= model.EDGE + 1e-7 * se
    assert res.ci_upper == pytest.approx(free.ci_upper, rel=1e-8)


def test_profile_of_an_identity_link_scale_coefficient_crossing_negative_tau2():
    """Used to crash as soon as the search crossed into negative tau_i^2."""
    from skmeta import LocationScaleMeta, profile_likelihood

    rng = np.random.default_rng(3)
    z = (np.arange(20) % 2).astype(float)
    v = rng.uniform(0.01, 0.1, 20)
    y = rng.normal(0, np.sqrt(v + 0.05 + 0.1 * z))
    model = LocationScaleMeta(link="identity")
    fitted = model.fit(None, y, sample_var=v, Z=z[:, None])
    res = profile_likelihood(
        model, None, y, sample_var=v, Z=z[:, None], parameter="intercept", n_points=5
    )
    # tau_i^2 = alpha_0 for the studies with z = 0: the intercept cannot go below 0
    assert -1e-6 <= res.ci_lower < fitted.scale_intercept_ < res.ci_upper


# ----------------------------------------------- item 8: command-line columns
def _cli(tmp_path, capsys, frame, *args):
    from skmeta.__main__ import main

    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    code = main([str(path), *args, "--no-plot"])
    out, err = capsys.readouterr()
    return code, out, err


def _studies():
    import pandas as pd

    data = _bcg()
    frame = load_bcg_frame()
    return pd.DataFrame(
        {
            "yi": data.yi,
            "vi": data.vi,
            "ablat": frame["ablat"],
            "alloc": frame["alloc"],
            "t": "same",
        }
    )


def load_bcg_frame():
    from skmeta.datasets import load_bcg

    return load_bcg()


def test_cli_text_cell_in_a_numeric_moderator_is_an_error(tmp_path, capsys):
    # used to turn the column into 9 dummy columns on 13 studies
    frame = _studies().astype({"ablat": object})
    frame.loc[3, "ablat"] = "forty"
    code, _, err = _cli(tmp_path, capsys, frame, "--mods", "ablat")
    assert code == 2
    assert "'ablat'" in err and "row 4" in err and "'forty'" in err
    assert "--factors" in err  # says how to mean it


def test_cli_single_level_text_moderator_is_an_error(tmp_path, capsys):
    # used to drop the moderator silently (no dummy column left)
    code, _, err = _cli(tmp_path, capsys, _studies(), "--mods", "t")
    assert code == 2
    assert "'t'" in err and "single level" in err and "'same'" in err


def test_cli_repeated_moderator_is_an_error(tmp_path, capsys):
    # used to one-hot encode the numeric column
    code, _, err = _cli(tmp_path, capsys, _studies(), "--mods", "ablat", "ablat")
    assert code == 2
    assert "'ablat'" in err and "twice" in err


def test_cli_negative_standard_error_is_an_error(tmp_path, capsys):
    # used to be squared silently
    frame = _studies().assign(se=np.sqrt(_studies()["vi"]))
    frame.loc[5, "se"] = -0.2
    code, _, err = _cli(tmp_path, capsys, frame, "--sei", "se")
    assert code == 2
    assert "'se'" in err and "row 6" in err and "-0.2" in err


def test_cli_numeric_codes_are_categorical_only_when_declared(tmp_path, capsys):
    from skmeta import RandomEffectsMeta

    frame = _studies()
    frame["arm"] = np.arange(13) % 3 + 1  # codes 1, 2, 3
    code, out, err = _cli(tmp_path, capsys, frame, "--mods", "arm")
    assert code == 0, err
    numeric = RandomEffectsMeta().fit(
        frame[["arm"]], frame["yi"], sample_var=frame["vi"]
    )
    assert f"{numeric.coef_[0]:.4f}" in out and "arm_2" not in out
    code, out, err = _cli(tmp_path, capsys, frame, "--mods", "arm", "--factors", "arm")
    assert code == 0, err
    dummies = (frame[["arm"]].to_numpy() == [2, 3]).astype(float)
    coded = RandomEffectsMeta().fit(dummies, frame["yi"], sample_var=frame["vi"])
    assert "arm_2" in out and "arm_3" in out
    assert f"{coded.coef_[0]:.4f}" in out and f"{coded.coef_[1]:.4f}" in out
    code, _, err = _cli(tmp_path, capsys, frame, "--mods", "ablat", "--factors", "arm")
    assert code == 2 and "--factors" in err and "'arm'" in err


# ------------------------------------------------------- examples and plots
def test_three_level_forest_plot_names_the_fitted_model():
    """The summary row of a REML multilevel fit used to read "ML model"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skmeta import MultilevelMeta
    from skmeta.datasets import load_school_calendar
    from skmeta.plotting import forest_plot

    data = load_school_calendar()
    groups = data[["district", "school"]]
    for method in ("reml", "ml"):
        model = MultilevelMeta(method=method).fit(
            None, data["yi"], sample_var=data["vi"], groups=groups
        )
        ax = forest_plot(
            model, data["yi"], data["vi"], groups=groups, show_weights=False
        )
        ticks = [t.get_text() for t in ax.get_yticklabels()]
        assert model._model_label() in ticks
        assert method.upper() in model._model_label()
        plt.close("all")


def _plot_calls():
    """(name, call(confidence_level)) for every plot and tool taking a level."""
    import pandas as pd

    from skmeta import LocationScaleMeta, RandomEffectsMeta, profile_likelihood
    from skmeta.plotting import bubble_plot, forest_plot, funnel_plot, scale_plot

    yi, vi = _bcg()
    X = pd.DataFrame({"ablat": load_bcg_frame()["ablat"]})
    re = RandomEffectsMeta().fit(None, yi, sample_var=vi)
    reg = RandomEffectsMeta().fit(X, yi, sample_var=vi)
    ls = LocationScaleMeta().fit(None, yi, sample_var=vi, Z=X / 10)
    return {
        "forest_plot": lambda c: forest_plot(re, yi, vi, confidence_level=c),
        "funnel_plot": lambda c: funnel_plot(re, yi, vi, confidence_level=c),
        "funnel contours": lambda c: funnel_plot(re, yi, vi, contours=(c, 0.99)),
        "bubble_plot": lambda c: bubble_plot(reg, X, yi, vi, confidence_level=c),
        "scale_plot": lambda c: scale_plot(ls, X / 10, confidence_level=c),
        "profile_likelihood": lambda c: profile_likelihood(
            RandomEffectsMeta(), None, yi, sample_var=vi, n_points=2,
            confidence_level=c,
        ),
    }  # fmt: skip


@pytest.mark.parametrize("bad", ["0.95", None, 0, 1, 1.5, np.nan, True])
def test_plots_and_tools_validate_confidence_level(bad):
    """A string or None used to raise TypeError from a comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, call in _plot_calls().items():
        with pytest.raises(ValueError, match=r"confidence_level|contours"):
            call(bad)
        assert call(np.float32(0.9)) is not None, name  # a NumPy scalar is a level
        plt.close("all")
