"""Sphinx configuration of the skmeta documentation.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (needs the ``docs``
extra: ``pip install ".[docs]"``).  The example gallery is generated from
``examples/`` by sphinx-gallery, which runs every script.
"""

import os
import warnings

import matplotlib

import skmeta

matplotlib.use("Agg")

project = "skmeta"
author = "skmeta developers"
copyright = "skmeta developers"
release = skmeta.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "sphinx_gallery.gen_gallery",
]

# numpydoc: no automatic member tables (the API pages list members explicitly)
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
autodoc_member_order = "bysource"

sphinx_gallery_conf = {
    "examples_dirs": os.path.join("..", "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "show_memory": False,
    "plot_gallery": "True",
    "write_computation_times": False,
}

plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 80)]
plot_rcparams = {"savefig.bbox": "tight"}

templates_path = []
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
html_theme = "alabaster"
html_static_path = []
html_theme_options = {"description": "Meta-analysis estimators for scikit-learn"}

# The examples set sklearn's routing flag and run estimators whose warnings are
# part of the story; keep the build output quiet but never hide Sphinx warnings.
warnings.filterwarnings("ignore", category=UserWarning, module="matplotlib")


def _join_continued_lines(app, what, name, obj, options, lines):
    """Join docstring lines ending in a backslash with the next line.

    scikit-learn style wraps long parameter types with ``\\`` + newline; in a
    raw docstring the backslash stays, and numpydoc would read the rest of the
    type as the description.
    """
    i = 0
    while i < len(lines) - 1:
        if lines[i].endswith("\\") and not lines[i].endswith("\\\\"):
            lines[i] = lines[i][:-1] + lines.pop(i + 1).lstrip()
        else:
            i += 1


def setup(app):
    # before numpydoc (priority 500) parses the sections
    app.connect("autodoc-process-docstring", _join_continued_lines, priority=100)
