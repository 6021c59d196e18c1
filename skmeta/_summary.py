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


def _column_format(values):
    """Formatter for one table column: fixed point when its numbers are ordinary.

    A column whose largest magnitude lies in [1e-4, 1e6) is printed with four
    decimals throughout, so that numerically-zero entries (e.g. an I^2 of 1e-11
    beside 90.19) read as 0.0000 instead of switching notation row by row.
    """
    finite = np.abs(values[np.isfinite(values)])
    if finite.size and 1e-4 <= finite.max() < 1e6:
        return lambda x: f"{x:.4f}" if np.isfinite(x) else str(x)
    return lambda x: _format_value(float(x))


def _format_frame(frame):
    formatters = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_float_dtype(column):
            formatters[name] = _column_format(column.to_numpy(dtype=float))
    return frame.to_string(formatters=formatters)


def _frame_html(frame):
    formatters = {
        name: _column_format(frame[name].to_numpy(dtype=float))
        for name in frame.columns
        if pd.api.types.is_float_dtype(frame[name])
    }
    return frame.to_html(formatters=formatters)


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
        parts.append(_frame_html(self.table))
        for name, frame in self.sections:
            parts.append(f"<h5>{html.escape(name)}</h5>")
            parts.append(_frame_html(frame))
        parts += [f"<p><em>{html.escape(note)}</em></p>" for note in self.notes]
        return "\n".join(parts)


def coefficient_frame(names, table):
    """Build the fixed-column coefficient DataFrame from a ``CoefficientTable``."""
    return pd.DataFrame(
        {col: np.asarray(getattr(table, col), dtype=float) for col in COLUMNS},
        index=pd.Index(list(names), name="term"),
    )
