r"""Mantel–Haenszel and Peto meta-analysis of 2x2 tables (as metafor's ``rma.mh``,
``rma.peto``).

Both methods pool the tables' counts directly under an equal-effects model,
without estimating each study's effect first: they stay valid with many small
tables and zero cells, where inverse-variance pooling of per-study log odds
ratios is biased.  The per-study effect sizes are still computed (with the usual
continuity correction) for Cochran's Q, I^2, H^2 and forest plots.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skmeta import effect_sizes
from skmeta._engine import _binary as engine
from skmeta._engine._inference import coefficient_table, critical_value
from skmeta._summary import MetaSummary, coefficient_frame
from skmeta.effect_sizes import check_correction, two_by_two_tables
from skmeta.utils._docstrings import fill_doc
from skmeta.utils._validation import check_confidence_level

__all__ = ["MantelHaenszelResult", "PetoResult", "mantel_haenszel", "peto"]

#: Mantel–Haenszel measures: name, pooled estimator, per-study effect size.
_MEASURES = {
    "OR": (
        "log odds ratio",
        engine.mantel_haenszel_odds_ratio,
        effect_sizes.log_odds_ratio,
    ),
    "RR": (
        "log risk ratio",
        engine.mantel_haenszel_risk_ratio,
        effect_sizes.log_risk_ratio,
    ),
    "RD": (
        "risk difference",
        engine.mantel_haenszel_risk_difference,
        effect_sizes.risk_difference,
    ),
}
_RATIO_NAMES = {"OR": "odds ratio", "RR": "risk ratio"}
#: metafor's defaults for the pooled computation when one value is given:
#: raw counts, nothing added, nothing dropped.
_POOLED_DEFAULTS = {"correction": 0.0, "add_to": "none", "drop00": False}

#: Docstring fragments shared by :func:`mantel_haenszel` and :func:`peto`.
_DOC = {
    "tables": """\
ai, bi, ci, di : array-like of shape (n_tables,)
    Cell counts: events (``ai``) and non-events (``bi``) in group 1,
    events (``ci``) and non-events (``di``) in group 2.  Counts need not be
    integers.  A table with a missing (``NaN``) count is left out, with a
    warning.
n1i, n2i : array-like of shape (n_tables,), default=None
    Group sizes, instead of ``bi`` and ``di`` (``bi = n1i - ai``).""",
    "zero_cell_options": """\
correction : float or (float, float), default=0.5
    Amount added to the cells (metafor's ``add``); see Notes.
add_to : {"only0", "all", "if0all", "none"} or pair of them, default="only0"
    Which tables get ``correction`` (metafor's ``to``); see Notes and
    :mod:`skmeta.effect_sizes`.
drop00 : bool or (bool, bool), default=True
    Whether tables with no events or only events in both groups are
    dropped; see Notes.""",
    "labels_level": """\
labels : array-like of shape (n_tables,), default=None
    Study labels (``"Study 1"``, ... when None).
confidence_level : float, default=0.95
    Level of the confidence interval.""",
    "result": """\
Frozen dataclass; ``summary()`` gives the printed summary and the
coefficient table, ``per_study()`` the per-study effect sizes.""",
    "zero_cells": """\
Zero cells are handled in two stages, as in metafor.  Each of
``correction``, ``add_to`` and ``drop00`` is either one value, which applies to
the per-study effect sizes ``yi``, ``vi`` (used for Q, I^2, H^2 and plots
only), or a pair ``(per_study, pooled)``.  One value leaves the pooled
computation on the raw counts (``correction=0``, ``add_to="none"``,
``drop00=False``).  So by default:

- per study: tables with a zero cell get ``correction = 1/2`` added to all
  four cells; tables with no events in both groups (``ai = ci = 0``) or only
  events (``bi = di = 0``) get ``NaN`` (for the risk difference too, as
  in metafor) and are left out of Q, I^2 and H^2, with a warning;
- pooled estimate, its standard error and the tests: the raw counts of all
  tables.  Double-zero tables stay in: they add nothing to the odds ratio,
  risk ratio or Peto sums but do add to the denominator of the risk
  difference.""",
}
_doc = fill_doc(_DOC)


@dataclass(frozen=True, eq=False)
class _PooledTables:
    """Fields and methods shared by the Mantel–Haenszel and Peto results."""

    method: str
    measure: str
    estimate: float
    se: float
    statistic: float
    p_value: float
    ci_lower: float
    ci_upper: float
    confidence_level: float
    k: int
    k_yi: int
    q: float
    q_df: int
    q_pvalue: float
    i2: float
    h2: float
    yi: np.ndarray
    vi: np.ndarray
    weights: np.ndarray
    labels: tuple

    @property
    def exp_estimate(self):
        """Odds ratio or risk ratio (``exp(estimate)``); ``None`` for ``"RD"``."""
        return None if self.measure == "RD" else float(np.exp(self.estimate))

    @property
    def exp_ci_lower(self):
        """Lower confidence bound of the ratio; ``None`` for ``"RD"``."""
        return None if self.measure == "RD" else float(np.exp(self.ci_lower))

    @property
    def exp_ci_upper(self):
        """Upper confidence bound of the ratio; ``None`` for ``"RD"``."""
        return None if self.measure == "RD" else float(np.exp(self.ci_upper))

    @property
    def model_label(self):
        """Label of the pooled row in a forest plot: "MH model" or "Peto model"."""
        return "MH model" if self.method == "Mantel-Haenszel" else "Peto model"

    def per_study(self):
        """Return the per-study effect sizes, their intervals and weights.

        Returns
        -------
        DataFrame
            Indexed by study label, columns ``yi``, ``vi``, ``ci_lower``,
            ``ci_upper`` (``yi`` ± z ``sqrt(vi)`` at ``confidence_level``) and
            ``weight`` (% of the pooled estimate's weight).
        """
        half = critical_value(self.confidence_level, np.inf) * np.sqrt(self.vi)
        return pd.DataFrame(
            {
                "yi": self.yi,
                "vi": self.vi,
                "ci_lower": self.yi - half,
                "ci_upper": self.yi + half,
                "weight": self.weights,
            },
            index=pd.Index(self.labels, name="study"),
        )

    def _scale_name(self):
        if self.method == "Peto":
            return "Peto log odds ratio"
        return f"Mantel-Haenszel {_MEASURES[self.measure][0]}"

    def _info(self):
        level = f"{100 * self.confidence_level:g}%"
        info = [
            ("k (tables)", self.k),
            ("k with a per-study effect size", self.k_yi),
            (f"Q (df = {self.q_df})", self.q),
            ("p(Q)", self.q_pvalue),
            ("I^2 (%)", self.i2),
            ("H^2", self.h2),
        ]
        if self.measure != "RD":
            name = _RATIO_NAMES[self.measure]
            info += [
                (name, self.exp_estimate),
                (f"{name} {level} CI lower", self.exp_ci_lower),
                (f"{name} {level} CI upper", self.exp_ci_upper),
            ]
        return info

    def summary(self, confidence_level=None):
        """Return the summary: heterogeneity, tests and the coefficient table.

        Parameters
        ----------
        confidence_level : float, default=None
            Level of the interval in the table; ``None``: the level the result
            was computed with.

        Returns
        -------
        MetaSummary
            ``to_frame()`` has one row, ``"intercept"`` (the pooled estimate on
            the analysis scale: log odds ratio, log risk ratio or risk
            difference), and the columns ``estimate, se, statistic, p_value,
            ci_lower, ci_upper``; the ratio and its interval are in the printed
            information.
        """
        level = (
            self.confidence_level
            if confidence_level is None
            else check_confidence_level(confidence_level)
        )
        table = coefficient_table(
            np.array([self.estimate]), np.array([[self.se**2]]), np.inf, level
        )
        return MetaSummary(
            title=f"Equal-effects model: {self._scale_name()} (k = {self.k})",
            info=self._info(),
            table=coefficient_frame(["intercept"], table),
            notes=[
                "z tests and intervals; Q, I^2 and H^2 from the per-study effect "
                "sizes around the pooled estimate."
            ],
        )

    # the plotting protocol of skmeta's estimators (forest_plot draws results)
    def _model_label(self):
        return self.model_label

    def _study_weights(self, sample_var=None):
        """Percentage weights of the tables in the pooled estimate."""
        return self.weights

    def __str__(self):
        return str(self.summary())

    def _repr_html_(self):
        return self.summary()._repr_html_()


@dataclass(frozen=True, eq=False)
class MantelHaenszelResult(_PooledTables):
    """Result of :func:`mantel_haenszel`.

    All statistics are floats; those of the tests of the odds ratio are ``None``
    for ``measure="RR"`` and ``"RD"``.

    Attributes
    ----------
    method : str
        ``"Mantel-Haenszel"``.
    measure : {"OR", "RR", "RD"}
        Effect size measure.
    estimate, se, statistic, p_value, ci_lower, ci_upper : float
        Pooled log odds ratio, log risk ratio or risk difference, its standard
        error, z statistic, two-sided p-value and confidence interval.
    confidence_level : float
        Level of the intervals.
    k : int
        Number of tables pooled.
    k_yi : int
        Number of tables with a per-study effect size (the others have ``NaN``
        in ``yi``).
    q, q_df, q_pvalue : float, int, float
        Cochran's Q of the per-study effect sizes around the pooled estimate,
        on ``k_yi - 1`` degrees of freedom, and its p-value.
    i2, h2 : float
        :math:`I^2 = 100\\max(0, (Q - df)/Q)` (%) and :math:`H^2 = Q/df`.
    yi, vi : ndarray of shape (n_tables,)
        Per-study effect sizes and sampling variances, one per table given
        (``NaN`` where undefined or where counts are missing); for plots.
    weights : ndarray of shape (n_tables,)
        Weight (%) of each table in the pooled estimate: the Mantel–Haenszel
        weights :math:`b_i c_i/N_i` (OR), :math:`c_i n_{1i}/N_i` (RR),
        :math:`n_{1i} n_{2i}/N_i` (RD); 0 for tables not pooled; ``NaN``
        when the pooled ratio is undefined.
    labels : tuple of str
        Study labels, one per table given.
    correct : bool
        Whether the CMH statistic has the continuity correction.
    cmh, cmh_pvalue : float or None
        Cochran–Mantel–Haenszel statistic (1 df) and its p-value.
    breslow_day, breslow_day_pvalue : float or None
        Breslow–Day statistic (``k_pos - 1`` df) and its p-value.
    tarone, tarone_pvalue : float or None
        Tarone's corrected Breslow–Day statistic and its p-value.
    k_pos : int or None
        Number of tables in the Breslow–Day and Tarone tests: those with events
        (:math:`a_i + c_i > 0`) and non-events (:math:`b_i + d_i > 0`); 0 when
        the odds ratio is undefined.
    exp_estimate, exp_ci_lower, exp_ci_upper : float or None
        Odds ratio or risk ratio and its confidence interval (``None`` for RD).
    model_label : str
        ``"MH model"``, the label of the pooled row in a forest plot.
    """

    correct: bool
    cmh: float | None
    cmh_pvalue: float | None
    breslow_day: float | None
    breslow_day_pvalue: float | None
    tarone: float | None
    tarone_pvalue: float | None
    k_pos: int | None

    def _info(self):
        info = super()._info()
        if self.measure == "OR":
            kind = "continuity-corrected" if self.correct else "uncorrected"
            df = max(self.k_pos - 1, 0)
            info += [
                (f"CMH test (df = 1, {kind})", self.cmh),
                ("p(CMH)", self.cmh_pvalue),
                (f"Tarone's test (df = {df})", self.tarone),
                ("p(Tarone)", self.tarone_pvalue),
                (f"Breslow-Day test (df = {df})", self.breslow_day),
                ("p(Breslow-Day)", self.breslow_day_pvalue),
            ]
        return info


@dataclass(frozen=True, eq=False)
class PetoResult(_PooledTables):
    """Result of :func:`peto`.

    Attributes
    ----------
    method : str
        ``"Peto"``.
    measure : str
        ``"OR"``: the estimates are (log) odds ratios.
    estimate, se, statistic, p_value, ci_lower, ci_upper : float
        Peto's pooled log odds ratio, its standard error, z statistic,
        two-sided p-value and confidence interval.
    confidence_level : float
        Level of the intervals.
    k : int
        Number of tables pooled.
    k_yi : int
        Number of tables with a per-study effect size.
    q, q_df, q_pvalue : float, int, float
        Peto's heterogeneity statistic on ``k_yi - 1`` degrees of freedom and
        its p-value.
    i2, h2 : float
        :math:`I^2` (%) and :math:`H^2` from ``q``.
    yi, vi : ndarray of shape (n_tables,)
        Per-study Peto log odds ratios :math:`(O_i - E_i)/V_i` and their
        variances :math:`1/V_i` (``NaN`` where undefined); for plots.
    weights : ndarray of shape (n_tables,)
        Weight (%) of each table: :math:`V_i / \\sum V_i`; 0 for tables not
        pooled.
    labels : tuple of str
        Study labels, one per table given.
    exp_estimate, exp_ci_lower, exp_ci_upper : float
        Odds ratio and its confidence interval.
    model_label : str
        ``"Peto model"``, the label of the pooled row in a forest plot.
    """


@_doc
def mantel_haenszel(
    ai,
    bi=None,
    ci=None,
    di=None,
    *,
    n1i=None,
    n2i=None,
    measure: str = "OR",
    correction: float | tuple = 0.5,
    add_to: str | tuple = "only0",
    drop00: bool | tuple = True,
    correct: bool = True,
    labels=None,
    confidence_level: float = 0.95,
) -> MantelHaenszelResult:
    r"""Mantel–Haenszel equal-effects meta-analysis of 2x2 tables.

    As metafor's ``rma.mh``.  Table :math:`i` has :math:`a_i, b_i` events and
    non-events in group 1 and :math:`c_i, d_i` in group 2;
    :math:`n_{1i} = a_i + b_i`, :math:`n_{2i} = c_i + d_i`,
    :math:`N_i = n_{1i} + n_{2i}`.

    - Odds ratio (Mantel & Haenszel 1959): :math:`\widehat{OR} = R/S` with
      :math:`R = \sum a_i d_i/N_i`, :math:`S = \sum b_i c_i/N_i`; the variance of
      its log is that of Robins, Breslow & Greenland (1986).
    - Risk ratio (Greenland & Robins 1985): :math:`\widehat{RR} = \sum a_i
      n_{2i}/N_i \,/\, \sum c_i n_{1i}/N_i`, with their variance of the log.
    - Risk difference (Greenland & Robins 1985): :math:`\widehat{RD} = \sum
      (a_i n_{2i} - c_i n_{1i})/N_i \,/\, \sum n_{1i} n_{2i}/N_i`, with the
      variance of Sato, Greenland & Robins (1989).

    Inference is z-based.  Cochran's Q is :math:`\sum (y_i - \hat\theta)^2 / v_i`
    over the per-study effect sizes (log odds ratios, log risk ratios or risk
    differences) around the pooled estimate, on :math:`k_{yi} - 1` degrees of
    freedom; :math:`I^2 = 100 \max(0, (Q - df)/Q)`, :math:`H^2 = Q/df`.

    For the odds ratio, also: the Cochran–Mantel–Haenszel test of
    :math:`OR = 1` (Cochran 1954; Mantel & Haenszel 1959),

    .. math::

        \chi^2_{CMH} = \frac{\left(|\sum_i (a_i - n_{1i} m_{1i}/N_i)| - \delta
        \right)^2}{\sum_i n_{1i} n_{2i} m_{1i} m_{0i} / (N_i^2 (N_i - 1))}

    (:math:`m_{1i} = a_i + c_i`, :math:`m_{0i} = b_i + d_i`; continuity
    correction :math:`\delta = 1/2` if ``correct``, but never more than the
    absolute difference itself), and the Breslow–Day test of homogeneous odds
    ratios with Tarone's (1985) correction, on :math:`k_{pos} - 1` degrees of
    freedom, :math:`k_{pos}` being the number of tables with events and
    non-events.

    Parameters
    ----------
    %(tables)s
    measure : {"OR", "RR", "RD"}, default="OR"
        Odds ratio, risk ratio or risk difference.  OR and RR are pooled and
        reported on the log scale; ``exp_estimate`` gives the ratio.
    %(zero_cell_options)s
    correct : bool, default=True
        Continuity correction of the CMH statistic.
    %(labels_level)s

    Returns
    -------
    MantelHaenszelResult
        %(result)s

    Raises
    ------
    ValueError
        For counts that are negative, infinite or of different lengths, an
        empty group, an unknown ``measure``, no complete table, or when no table
        has both events and non-events (nothing to pool).

    Warns
    -----
    UserWarning
        When tables with missing counts are left out; when some per-study
        effect sizes are undefined (left out of Q); when fewer than two tables
        have one (Q = 0, I^2 = 0, H^2 = 1 by convention, as in metafor); when
        the pooled ratio is undefined because :math:`R = 0` or :math:`S = 0`
        (e.g. no events in one group in any table): the estimate, its interval,
        Q, Breslow–Day and Tarone are then ``NaN`` (the CMH test remains
        defined); and when fewer than two tables enter the Breslow–Day test.

    Notes
    -----
    %(zero_cells)s

    The CMH continuity correction 1/2 is applied when the summed difference
    :math:`|\Delta|` between observed and expected events is at least 1/2, as in
    R's ``mantelhaen.test``.  metafor 3.8 subtracts 1/2 below that too, which
    makes the "corrected" statistic larger than the uncorrected one; the two
    agree otherwise.

    Equivalents: R ``metafor::rma.mh(ai, bi, ci, di, measure = "OR")``; Stata
    ``meta esize`` with ``esize(lnoratio)`` and ``common(mhaenszel)``, or
    ``metan ..., or mh``.

    References
    ----------
    .. [1] Mantel, N., & Haenszel, W. (1959). Statistical aspects of the
       analysis of data from retrospective studies of disease. Journal of the
       National Cancer Institute, 22(4), 719-748.
    .. [2] Cochran, W. G. (1954). Some methods for strengthening the common
       chi-square tests. Biometrics, 10(4), 417-451.
    .. [3] Robins, J., Breslow, N., & Greenland, S. (1986). Estimators of the
       Mantel-Haenszel variance consistent in both sparse data and
       large-strata limiting models. Biometrics, 42(2), 311-323.
    .. [4] Greenland, S., & Robins, J. M. (1985). Estimation of a common effect
       parameter from sparse follow-up data. Biometrics, 41(1), 55-68.
    .. [5] Sato, T., Greenland, S., & Robins, J. M. (1989). On the variance
       estimator for the Mantel-Haenszel risk difference. Biometrics, 45(4),
       1323-1324.
    .. [6] Breslow, N. E., & Day, N. E. (1980). Statistical methods in cancer
       research, Vol. I: The analysis of case-control studies. IARC Scientific
       Publications No. 32.
    .. [7] Tarone, R. E. (1985). On heterogeneity tests based on efficient
       scores. Biometrika, 72(1), 91-95.
    .. [8] Viechtbauer, W. (2010). Conducting meta-analyses in R with the
       metafor package. Journal of Statistical Software, 36(3), 1-48.

    Examples
    --------
    >>> import skmeta
    >>> from skmeta.datasets import load_nielweise2007
    >>> d = load_nielweise2007()
    >>> res = skmeta.mantel_haenszel(d["ai"], n1i=d["n1i"], ci=d["ci"], n2i=d["n2i"])
    >>> round(res.estimate, 4), round(res.se, 4), round(res.exp_estimate, 4)
    (-1.2087, 0.2224, 0.2986)
    >>> round(res.cmh, 4), round(res.tarone, 4)
    (32.2136, 25.6795)
    """
    confidence_level = check_confidence_level(confidence_level)
    if measure not in _MEASURES:
        raise ValueError(f"measure must be one of {tuple(_MEASURES)}; got {measure!r}")
    if not isinstance(correct, bool | np.bool_):
        raise ValueError(f"correct must be a bool; got {correct!r}")
    _, pooled_estimator, effect_size = _MEASURES[measure]
    data = _prepare(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00, labels)
    a, b, c, d = data.pooled
    pooled = pooled_estimator(a, b, c, d)
    if np.isnan(pooled.estimate):
        reason = {
            "OR": "R = sum(ai * di / Ni) or S = sum(bi * ci / Ni) is 0",
            "RR": "no table has events in group 1, or none has events in group 2",
        }[measure]
        also = " and the Breslow-Day and Tarone tests" if measure == "OR" else ""
        warnings.warn(
            f"The Mantel-Haenszel {_RATIO_NAMES[measure]} is undefined ({reason}): "
            f"the estimate, its interval, Q, I^2, H^2{also} are NaN.",
            UserWarning,
            stacklevel=2,
        )
    yi, vi = _per_study(effect_size, data)
    defined = np.isfinite(yi)
    het = engine.heterogeneity_around(yi[defined], vi[defined], pooled.estimate)
    _warn_per_study(data, defined)
    tests = (
        _odds_ratio_tests(a, b, c, d, pooled.estimate, bool(correct))
        if measure == "OR"
        else dict.fromkeys(_ODDS_RATIO_TESTS)
    )
    return MantelHaenszelResult(
        method="Mantel-Haenszel",
        measure=measure,
        **_pooled_fields(pooled, het, data, yi, vi, confidence_level),
        correct=bool(correct),
        **tests,
    )


@_doc
def peto(
    ai,
    bi=None,
    ci=None,
    di=None,
    *,
    n1i=None,
    n2i=None,
    correction: float | tuple = 0.5,
    add_to: str | tuple = "only0",
    drop00: bool | tuple = True,
    labels=None,
    confidence_level: float = 0.95,
) -> PetoResult:
    r"""Peto's one-step equal-effects meta-analysis of odds ratios.

    As metafor's ``rma.peto`` (Yusuf, Peto, Lewis, Collins & Sleight 1985).
    With the observed and expected events in group 1 and the hypergeometric
    variance of table :math:`i`,

    .. math::

        O_i - E_i = a_i - \frac{n_{1i} m_{1i}}{N_i},\qquad
        V_i = \frac{n_{1i} n_{2i} m_{1i} m_{0i}}{N_i^2 (N_i - 1)},

    (:math:`n_{1i} = a_i + b_i`, :math:`n_{2i} = c_i + d_i`,
    :math:`m_{1i} = a_i + c_i`, :math:`m_{0i} = b_i + d_i`,
    :math:`N_i = n_{1i} + n_{2i}`) the pooled log odds ratio and its variance
    are

    .. math::

        \log\widehat{OR}_{Peto} = \frac{\sum (O_i - E_i)}{\sum V_i},\qquad
        \operatorname{Var} = \frac{1}{\sum V_i},

    with z-based inference, and the heterogeneity statistic is

    .. math::

        Q = \sum_{V_i > 0} \frac{(O_i - E_i)^2}{V_i}
        - \frac{\left(\sum (O_i - E_i)\right)^2}{\sum V_i}

    on :math:`k_{yi} - 1` degrees of freedom; :math:`I^2 = 100 \max(0,
    (Q - df)/Q)`, :math:`H^2 = Q/df`.  The per-study Peto log odds ratios are
    :math:`y_i = (O_i - E_i)/V_i`, :math:`v_i = 1/V_i`.  The method is accurate
    for rare events, balanced groups and odds ratios not far from 1 (Greenland &
    Salvan 1990; Bradburn et al. 2007).

    Parameters
    ----------
    %(tables)s
    %(zero_cell_options)s
    %(labels_level)s

    Returns
    -------
    PetoResult
        %(result)s

    Raises
    ------
    ValueError
        For counts that are negative, infinite or of different lengths, an
        empty group, no complete table, or when no table has both events and
        non-events (:math:`\sum V_i = 0`).

    Warns
    -----
    UserWarning
        When tables with missing counts are left out, when some per-study
        effect sizes are undefined, and when fewer than two tables have one
        (Q = 0, I^2 = 0, H^2 = 1 by convention, as in metafor).

    Notes
    -----
    %(zero_cells)s

    Equivalents: R ``metafor::rma.peto(ai, bi, ci, di)``; Stata ``meta esize``
    with ``esize(lnorpeto)`` and ``common``, or ``metan ..., peto``.

    References
    ----------
    .. [1] Yusuf, S., Peto, R., Lewis, J., Collins, R., & Sleight, P. (1985).
       Beta blockade during and after myocardial infarction: An overview of
       the randomized trials. Progress in Cardiovascular Diseases, 27(5),
       335-371.
    .. [2] Greenland, S., & Salvan, A. (1990). Bias in the one-step method for
       pooling study results. Statistics in Medicine, 9(3), 247-252.
    .. [3] Bradburn, M. J., Deeks, J. J., Berlin, J. A., & Localio, A. R.
       (2007). Much ado about nothing: A comparison of the performance of
       meta-analytical methods with rare events. Statistics in Medicine,
       26(1), 53-77.
    .. [4] Viechtbauer, W. (2010). Conducting meta-analyses in R with the
       metafor package. Journal of Statistical Software, 36(3), 1-48.

    Examples
    --------
    >>> import skmeta
    >>> from skmeta.datasets import load_nielweise2007
    >>> d = load_nielweise2007()
    >>> res = skmeta.peto(d["ai"], n1i=d["n1i"], ci=d["ci"], n2i=d["n2i"])
    >>> round(res.estimate, 4), round(res.se, 4), round(res.exp_estimate, 4)
    (-1.1057, 0.1916, 0.331)
    """
    confidence_level = check_confidence_level(confidence_level)
    data = _prepare(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00, labels)
    a, b, c, d = data.pooled
    pooled = engine.peto_odds_ratio(a, b, c, d)
    # per-study Peto log odds ratios from the per-study-corrected counts
    yi, vi = _per_study(effect_sizes.peto_log_odds_ratio, data)
    defined = np.isfinite(yi)
    het = engine.heterogeneity_from_q(engine.peto_q(a, b, c, d), int(defined.sum()) - 1)
    _warn_per_study(data, defined)
    return PetoResult(
        method="Peto",
        measure="OR",
        **_pooled_fields(pooled, het, data, yi, vi, confidence_level),
    )


# --------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tables:
    """Validated tables: complete ones, per-study and pooled counts, labels."""

    counts: tuple  # raw a, b, c, d of the complete tables
    pooled: tuple  # a, b, c, d entering the pooled computation
    complete: np.ndarray  # (n_tables,) bool: no missing count
    in_pool: np.ndarray  # (n_complete,) bool: pooled (not dropped)
    correction: tuple
    add_to: tuple
    drop00: tuple
    labels: tuple

    @property
    def k(self):
        return int(self.in_pool.sum())

    def full(self, values):
        """Spread values of the complete tables over all tables (NaN elsewhere)."""
        out = np.full(self.complete.shape, np.nan)
        out[self.complete] = values
        return out

    def full_weights(self, weights):
        """Percentage weights of the pooled tables over all tables (0 elsewhere)."""
        out = np.zeros(self.complete.shape)
        with np.errstate(invalid="ignore"):  # 0/0: the pooled ratio is undefined
            out[np.flatnonzero(self.complete)[self.in_pool]] = (
                100.0 * weights / weights.sum()
            )
        return out


def _per_study(effect_size, data):
    """Per-study ``(yi, vi)`` over all tables, with the per-study corrections.

    Undefined studies are NaN; ``_warn_per_study`` reports them.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yi, vi = effect_size(
            *data.counts,
            correction=data.correction[0],
            add_to=data.add_to[0],
            drop00=data.drop00[0],
        )
    return data.full(yi), data.full(vi)


def _prepare(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00, labels):
    correction = _pair(correction, "correction")
    add_to = _pair(add_to, "add_to")
    drop00 = _pair(drop00, "drop00")
    for stage in (0, 1):
        check_correction(correction[stage], add_to[stage], drop00[stage])
    a, b, c, d, _ = two_by_two_tables(ai, bi, ci, di, n1i, n2i, 0.0, "none", False)
    n_tables = a.size
    labels = _labels(labels, n_tables)
    complete = ~(np.isnan(a) | np.isnan(b) | np.isnan(c) | np.isnan(d))
    if not complete.any():
        raise ValueError("every table has a missing (NaN) count: nothing to pool.")
    if not complete.all():
        missing = [labels[i] for i in np.flatnonzero(~complete)]
        warnings.warn(
            f"{len(missing)} table(s) with missing counts left out: {_names(missing)}.",
            UserWarning,
            stacklevel=3,
        )
    counts = (a[complete], b[complete], c[complete], d[complete])
    *pooled, dropped = two_by_two_tables(
        *counts, None, None, correction[1], add_to[1], drop00[1]
    )
    in_pool = ~dropped
    pooled = tuple(x[in_pool] for x in pooled)
    pa, pb, pc, pd_ = pooled
    if not np.any((pa + pc > 0) & (pb + pd_ > 0)):
        raise ValueError(
            "no table has both events and non-events (every table has ai = ci = 0 "
            "or bi = di = 0): the tables carry no information on the effect."
        )
    return _Tables(
        counts, pooled, complete, in_pool, correction, add_to, drop00, labels
    )


def _pair(value, name):
    """Expand ``value`` to ``(per_study, pooled)``, as metafor's two-element form."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(
                f"{name} must be one value or a pair (per_study, pooled); got {value!r}"
            )
        return tuple(value)
    return (value, _POOLED_DEFAULTS[name])


def _labels(labels, n_tables):
    if labels is None:
        return tuple(f"Study {i + 1}" for i in range(n_tables))
    labels = tuple(str(x) for x in np.asarray(labels, dtype=object).ravel())
    if len(labels) != n_tables:
        raise ValueError(
            f"labels has {len(labels)} entries but there are {n_tables} tables."
        )
    return labels


def _names(labels, shown=5):
    more = f" and {len(labels) - shown} more" if len(labels) > shown else ""
    return ", ".join(labels[:shown]) + more


def _warn_per_study(data, defined):
    """Warn about tables without a per-study effect size and a too small k_yi."""
    complete_labels = [
        lab for lab, ok in zip(data.labels, data.complete, strict=True) if ok
    ]
    undefined = [
        lab
        for lab, ok in zip(complete_labels, defined[data.complete], strict=True)
        if not ok
    ]
    if undefined:
        warnings.warn(
            f"No per-study effect size for {len(undefined)} table(s) "
            f"({_names(undefined)}): no events or only events in both groups, or a "
            "zero cell without correction. They have NaN yi, vi and are left out "
            "of Q, I^2 and H^2.",
            UserWarning,
            stacklevel=3,
        )
    n_defined = int(defined.sum())
    if n_defined == 0:
        warnings.warn(
            "No table has a per-study effect size: Q, I^2 and H^2 are NaN.",
            UserWarning,
            stacklevel=3,
        )
    elif n_defined == 1:
        warnings.warn(
            "Only one table has a per-study effect size: heterogeneity cannot be "
            "assessed (Q = 0 on 0 df, I^2 = 0, H^2 = 1 by convention).",
            UserWarning,
            stacklevel=3,
        )


_ODDS_RATIO_TESTS = (
    "cmh",
    "cmh_pvalue",
    "breslow_day",
    "breslow_day_pvalue",
    "tarone",
    "tarone_pvalue",
    "k_pos",
)


def _odds_ratio_tests(a, b, c, d, log_odds_ratio, correct):
    """CMH, Breslow-Day and Tarone tests, as ``MantelHaenszelResult`` fields."""
    cmh = engine.cochran_mantel_haenszel(a, b, c, d, correct=correct)
    bd = engine.breslow_day(a, b, c, d, log_odds_ratio)
    if np.isfinite(log_odds_ratio) and bd.n_tables < 2:
        warnings.warn(
            f"Only {bd.n_tables} table(s) have events and non-events: the "
            "Breslow-Day and Tarone tests have no degrees of freedom (p-values NaN).",
            UserWarning,
            stacklevel=3,
        )
    values = (
        cmh.statistic,
        cmh.p_value,
        bd.breslow_day.statistic,
        bd.breslow_day.p_value,
        bd.tarone.statistic,
        bd.tarone.p_value,
        bd.n_tables,
    )
    return dict(zip(_ODDS_RATIO_TESTS, values, strict=True))


def _pooled_fields(pooled, het, data, yi, vi, confidence_level):
    """Fields of :class:`_PooledTables` other than ``method`` and ``measure``."""
    table = coefficient_table(
        np.array([pooled.estimate]),
        np.array([[pooled.variance]]),
        np.inf,
        confidence_level,
    )
    return {
        "estimate": float(pooled.estimate),
        "se": float(table.se[0]),
        "statistic": float(table.statistic[0]),
        "p_value": float(table.p_value[0]),
        "ci_lower": float(table.ci_lower[0]),
        "ci_upper": float(table.ci_upper[0]),
        "confidence_level": confidence_level,
        "q": het.q,
        "q_df": het.df,
        "q_pvalue": het.q_pvalue,
        "i2": het.i2,
        "h2": het.h2,
        "k": data.k,
        "k_yi": int(np.isfinite(yi).sum()),
        "yi": _frozen(yi),
        "vi": _frozen(vi),
        "weights": _frozen(data.full_weights(pooled.weights)),
        "labels": data.labels,
    }


def _frozen(values):
    values = np.asarray(values, dtype=float)
    values.setflags(write=False)
    return values
