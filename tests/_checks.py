"""Assertions shared by several test modules."""

import numpy as np


def assert_summary_printout(est):
    """The printed and HTML summaries show the title and every coefficient.

    Each term of ``summary().to_frame()`` must appear in ``str(summary)`` and in
    its HTML form, on a line that also shows the term's estimate.
    """
    summary = est.summary()
    text = str(summary)
    html = summary._repr_html_()
    assert text.startswith(summary.title)
    assert "<table" in html
    lines = text.splitlines()
    for term, row in summary.to_frame().iterrows():
        name = term[-1] if isinstance(term, tuple) else term
        assert name in html, name
        estimate = float(row["estimate"])
        shown = [ln for ln in lines if ln.split()[:1] == [name] or f" {name} " in ln]
        assert shown, f"term {name!r} missing from the printout"
        if np.isfinite(estimate) and 1e-4 <= abs(estimate) < 1e6:
            assert any(f"{estimate:.4f}" in ln for ln in shown), (name, estimate)
