"""Every script in ``examples/`` runs headless and saves what it draws.

Run without a display (matplotlib's Agg backend), an example saves each figure
as a PNG in the current directory and prints where it went; each image is
checked to hold a drawing.
"""

import runpy
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import sklearn

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))

# example -> the figures it saves when there is no display
EXPECTED = {
    "plot_cv_moderator_selection.py": [],
    "plot_location_scale.py": ["location_scale_profile.png", "location_scale_tau.png"],
    "plot_metafor_style.py": [
        "bcg_forest.png",
        "bcg_forest_subgroups.png",
        "bcg_funnel.png",
        "bcg_bubble.png",
    ],
    "plot_robust_few_studies.py": ["jia_forest.png"],
    "plot_three_level.py": ["school_calendar_forest.png"],
    "plot_multimodel_vs_cv.py": ["multimodel_importance.png", "multimodel_vs_cv.png"],
    "plot_voxelwise.py": ["voxelwise_maps.png"],
    "plot_dependent_effects.py": ["dependent_effects_sensitivity.png"],
}


def test_examples_are_the_documented_ones():
    assert {p.name for p in SCRIPTS} == set(EXPECTED)


@pytest.mark.parametrize(
    "script",
    SCRIPTS,
    ids=lambda p: p.name,
)  # fmt: skip
def test_example_runs_headless_and_saves_its_figures(
    script, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "sphinx_gallery", raising=False)

    def no_display(*args, **kwargs):
        raise AssertionError("plt.show() called without a display")

    monkeypatch.setattr(plt, "show", no_display)
    try:
        with sklearn.config_context():  # examples may switch routing on
            runpy.run_path(str(script), run_name="__main__")
    finally:
        plt.close("all")
    out = capsys.readouterr().out
    assert out.strip()  # printed its results
    saved = sorted(p.name for p in tmp_path.glob("*.png"))
    assert saved == sorted(EXPECTED[script.name])
    for name in saved:
        assert f"Figure saved to {tmp_path / name}" in out
        image = mpimg.imread(tmp_path / name)
        assert image.shape[0] > 200 and image.shape[1] > 200
        assert image[..., :3].std() > 0.05  # something was drawn
