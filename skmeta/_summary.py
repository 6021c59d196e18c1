"""Printable, HTML-renderable and tabular summaries of fitted models."""

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: Columns of every coefficient table (``MetaSummary.to_frame()``).
COLUMNS = ["estimate", "se", "statistic", "p_value", "ci_lower", "ci_upper"]


def _format_value(value):
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-4 or abs(value) >= 1e6):
            return f"{value:.4e}"
        return f"{value:.4f}"
    return str(value)


def _format_frame(frame):
    return frame.to_string(float_format=lambda x: _format_value(float(x)))


@dataclass(frozen=True)
class MetaSummary:
    """Summary of a fitted skmeta model.

    Parameters
    ----------
    title : str
        Model name, e.g. ``"Random-effects model (k = 13; tau^2 estimator: REML)"``.
    info : list of (str, object)
        Model-level quantities printed before the tables (tau^2, I^2, tests, fit).
    table : DataFrame
        Coefficient table with columns ``estimate, se, statistic, p_value,
        ci_lower, ci_upper``.
    sections : list of (str, DataFrame)
        Further tables (e.g. variance components), printed after ``table``.
    notes : list of str
        Footnotes (reference distribution, robust covariance, warnings).
    """

    title: str
    info: list = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS))
    sections: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def to_frame(self):
        """Return the coefficient table as a DataFrame.

        Returns
        -------
        DataFrame
            Columns ``estimate, se, statistic, p_value, ci_lower, ci_upper``, indexed
            by term name.
        """
        return self.table.copy()

    def __str__(self):
        lines = [self.title, ""]
        if self.info:
            width = max(len(str(label)) for label, _ in self.info)
            lines += [
                f"{label:<{width}} : {_format_value(v)}" for label, v in self.info
            ]
            lines.append("")
        lines += ["Model results:", _format_frame(self.table)]
        for name, frame in self.sections:
            lines += ["", f"{name}:", _format_frame(frame)]
        if self.notes:
            lines += [""] + [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __repr__(self):
        return str(self)

    def _repr_html_(self):
        parts = [f"<h4>{html.escape(self.title)}</h4>"]
        if self.info:
            rows = "".join(
                f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_format_value(v))}"
                "</td></tr>"
                for k, v in self.info
            )
            parts.append(f"<table>{rows}</table>")
        parts.append(self.table.to_html(float_format=lambda x: _format_value(float(x))))
        for name, frame in self.sections:
            parts.append(f"<h5>{html.escape(name)}</h5>")
            parts.append(frame.to_html(float_format=lambda x: _format_value(float(x))))
        parts += [f"<p><em>{html.escape(note)}</em></p>" for note in self.notes]
        return "\n".join(parts)


def coefficient_frame(names, table):
    """Build the fixed-column coefficient DataFrame from a ``CoefficientTable``."""
    return pd.DataFrame(
        {col: np.asarray(getattr(table, col), dtype=float) for col in COLUMNS},
        index=pd.Index(list(names), name="term"),
    )
