"""The documentation builds without warnings (``sphinx-build -W``).

Needs the documentation tools (sphinx, numpydoc, sphinx-gallery, matplotlib),
which the ``test`` extra installs: a missing one is a failure, not a skip.  The
build runs on a copy of ``docs/`` and ``examples/`` so that it never writes into
the source tree.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib  # noqa: F401  (the documentation tools are test requirements)
import numpydoc  # noqa: F401
import sphinx  # noqa: F401
import sphinx_gallery  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_without_warnings(tmp_path):
    ignore = shutil.ignore_patterns("_build", "auto_examples", "gen_modules")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=ignore)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    out = tmp_path / "html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(tmp_path / "docs"),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr[-5000:]
    # the API reference, the user guide and the rendered gallery are there
    api = (out / "api.html").read_text(encoding="utf-8")
    for name in ("RandomEffectsMeta", "LocationScaleMeta", "MultilevelMeta"):
        assert f"skmeta.{name}" in api
    assert "forest_plot" in api and "RobustMeta" in api
    assert (out / "user_guide" / "translation.html").exists()
    images = sorted(p.name for p in (out / "_images").glob("*.png"))
    for example in (
        "plot_metafor_style",
        "plot_location_scale",
        "plot_three_level",
        "plot_robust_few_studies",
    ):
        assert f"sphx_glr_{example}_001.png" in images
    assert sum(name.startswith("plotting-") for name in images) == 4
