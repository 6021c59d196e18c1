"""Regression tests of issue 10 for the inference tools, plots, CLI and examples.

Each test failed before its fix (the commit messages say how).
"""

import numpy as np
import pytest

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
