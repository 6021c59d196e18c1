"""Every script in ``examples/`` runs (Agg backend) and draws what it promises."""

import runpy
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import sklearn  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))

# example -> number of figures it draws
EXPECTED = {
    "plot_cv_moderator_selection.py": 0,
    "plot_location_scale.py": 2,
    "plot_metafor_style.py": 4,
    "plot_multimodel_vs_cv.py": 2,
    "plot_robust_few_studies.py": 1,
    "plot_three_level.py": 1,
}


def test_examples_are_the_documented_ones():
    assert {p.name for p in SCRIPTS} == set(EXPECTED)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_runs(script, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    figures = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: figures.extend(plt.get_fignums()))
    try:
        with sklearn.config_context():  # examples may switch routing on
            runpy.run_path(str(script), run_name="__main__")
        assert len(set(figures)) == EXPECTED[script.name]
        assert capsys.readouterr().out.strip()  # printed its results
    finally:
        plt.close("all")
