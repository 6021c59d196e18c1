"""Effect sizes and their sampling variances, as metafor's ``escalc`` computes them.

Every function takes per-study summary data (counts, means, correlations, ...)
as array-likes of shape ``(k,)`` and returns an :class:`EffectSize`, a named
tuple of two float64 arrays of shape ``(k,)``:

- ``yi``: the observed effect size of each study,
- ``vi``: its (large-sample) sampling variance,

so that ``yi, vi = log_risk_ratio(...)`` unpacks it, and
``log_risk_ratio(...).to_frame()`` gives a :class:`pandas.DataFrame` with
columns ``yi`` and ``vi``. ``vi`` is what the estimators take as
``sample_var``. :func:`escalc` dispatches on metafor's measure codes
(:data:`MEASURES`); arguments carry metafor's names. Each function documents
its formulas, variance types (``vtype``) and references; the table gives the
estimates (2x2 tables: cells ``a, b, c, d``, row totals :math:`n_1, n_2`,
column totals :math:`m_1, m_2`, :math:`p_1 = a/n_1`, :math:`p_2 = c/n_2`;
``bi, di`` may be replaced by ``n1i, n2i``; :math:`J` is Hedges' bias
correction).

**Two groups, binary outcome (2x2 tables)**

%(measure_table)s
   * - ``"RR"``
     - :func:`log_risk_ratio`
     - ``ai, bi, ci, di``
     - :math:`\\ln\\frac{a/n_1}{c/n_2}`
     - Fleiss & Berlin (2009)
   * - ``"OR"``
     - :func:`log_odds_ratio`
     - ``ai, bi, ci, di``
     - :math:`\\ln\\frac{ad}{bc}`
     - Woolf (1955)
   * - ``"RD"``
     - :func:`risk_difference`
     - ``ai, bi, ci, di``
     - :math:`p_1 - p_2`
     - Fleiss & Berlin (2009)
   * - ``"AS"``
     - :func:`arcsine_risk_difference`
     - ``ai, bi, ci, di``
     - :math:`\\arcsin\\sqrt{p_1} - \\arcsin\\sqrt{p_2}`
     - Rücker et al. (2009)
   * - ``"PBIT"``
     - :func:`probit_risk_difference`
     - ``ai, bi, ci, di``
     - :math:`\\Phi^{-1}(p_1) - \\Phi^{-1}(p_2)`
     - Sánchez-Meca et al. (2003)
   * - ``"OR2DN"``
     - :func:`odds_ratio_to_d_normal`
     - ``ai, bi, ci, di``
     - :math:`\\ln\\mathrm{OR} / 1.65`
     - Cox & Snell (1989)
   * - ``"OR2DL"``
     - :func:`odds_ratio_to_d_logistic`
     - ``ai, bi, ci, di``
     - :math:`\\sqrt3 \\ln\\mathrm{OR} / \\pi`
     - Chinn (2000)

**Association of two binary variables (2x2 tables)**

%(measure_table)s
   * - ``"PHI"``
     - :func:`phi_coefficient`
     - ``ai, bi, ci, di``, ``vtype``
     - :math:`\\frac{ad - bc}{\\sqrt{n_1 n_2 m_1 m_2}}`
     - Fleiss & Berlin (2009)
   * - ``"YUQ"``
     - :func:`yules_q`
     - ``ai, bi, ci, di``
     - :math:`\\frac{\\mathrm{OR}-1}{\\mathrm{OR}+1}`
     - Yule (1912)
   * - ``"YUY"``
     - :func:`yules_y`
     - ``ai, bi, ci, di``
     - :math:`\\frac{\\sqrt{\\mathrm{OR}}-1}{\\sqrt{\\mathrm{OR}}+1}`
     - Yule (1912)
   * - ``"RTET"``
     - :func:`tetrachoric_correlation`
     - ``ai, bi, ci, di``
     - :math:`\\hat\\rho:\\ \\Phi_2(h, k; \\hat\\rho) = a/n`
     - Pearson (1900)

**Two groups, quantitative outcome**

%(measure_table)s
   * - ``"MD"``
     - :func:`mean_difference`
     - ``m1i, sd1i, n1i, m2i, sd2i, n2i``
     - :math:`\\bar x_1 - \\bar x_2`
     - Borenstein (2009)
   * - ``"SMD"``
     - :func:`standardized_mean_difference`
     - ``m1i, sd1i, n1i, m2i, sd2i, n2i``
     - :math:`J(m) \\frac{\\bar x_1 - \\bar x_2}{s_p}`
     - Hedges (1981, 1982)
   * - ``"SMDH"``
     - :func:`standardized_mean_difference_heteroscedastic`
     - ``m1i, sd1i, n1i, m2i, sd2i, n2i``
     - :math:`J(m) \\frac{\\bar x_1 - \\bar x_2}{\\sqrt{(s_1^2+s_2^2)/2}}`
     - Bonett (2009)
   * - ``"ROM"``
     - :func:`log_ratio_of_means`
     - ``m1i, sd1i, n1i, m2i, sd2i, n2i``
     - :math:`\\ln\\frac{\\bar x_1}{\\bar x_2} + \\frac{c_1 - c_2}{2}`
     - Hedges et al. (1999); Lajeunesse (2015)
   * - ``"VR"``
     - :func:`log_variability_ratio`
     - ``sd1i, n1i, sd2i, n2i``
     - :math:`\\ln\\frac{s_1}{s_2} + b_1 - b_2`
     - Nakagawa et al. (2015)
   * - ``"CVR"``
     - :func:`log_coefficient_of_variation_ratio`
     - ``m1i, sd1i, n1i, m2i, sd2i, n2i``
     - :math:`\\ln\\frac{s_1/\\bar x_1}{s_2/\\bar x_2} + \\text{bias terms}`
     - Senior et al. (2020)
   * - ``"D2ORN"``
     - :func:`d_to_log_odds_ratio_normal`
     - ``m1i, sd1i, n1i, m2i, sd2i, n2i``
     - :math:`1.65\\, d`
     - Cox & Snell (1989)
   * - ``"D2ORL"``
     - :func:`d_to_log_odds_ratio_logistic`
     - ``m1i, sd1i, n1i, m2i, sd2i, n2i``
     - :math:`\\pi d / \\sqrt3`
     - Hasselblad & Hedges (1995)
   * - ``"AUC"``
     - :func:`area_under_curve`
     - ``ai, n1i, n2i``
     - :math:`A`
     - Hanley & McNeil (1982)
   * - ``"AUCN"``
     - :func:`area_under_curve_binormal`
     - ``m1i, sd1i, n1i, m2i, sd2i, n2i``
     - :math:`\\Phi\\Big(\\frac{\\bar x_1 - \\bar x_2}{\\sqrt{s_1^2 + s_2^2}}\\Big)`
     - Goddard & Hinberg (1990)

**Change scores and matched pairs**

%(measure_table)s
   * - ``"MC"``
     - :func:`mean_change`
     - ``m1i, sd1i, m2i, sd2i, ni, ri``
     - :math:`\\bar x_1 - \\bar x_2`
     - Morris & DeShon (2002)
   * - ``"SMCC"``
     - :func:`standardized_mean_change`
     - ``m1i, sd1i, m2i, sd2i, ni, ri``
     - :math:`J(n-1)\\frac{\\bar x_1 - \\bar x_2}{s_c}`
     - Gibbons et al. (1993)
   * - ``"SMCR"``
     - :func:`standardized_mean_change_raw`
     - ``m1i, sd1i, m2i, ni, ri``
     - :math:`J(n-1)\\frac{\\bar x_1 - \\bar x_2}{s_1}`
     - Becker (1988)
   * - ``"SMCRH"``
     - :func:`standardized_mean_change_raw_heteroscedastic`
     - ``m1i, sd1i, m2i, sd2i, ni, ri``
     - :math:`J(n-1)\\frac{\\bar x_1 - \\bar x_2}{s_1}`
     - Bonett (2008)

**Correlations**

%(measure_table)s
   * - ``"COR"``
     - :func:`correlation`
     - ``ri, ni``
     - :math:`r`
     - Borenstein (2009)
   * - ``"UCOR"``
     - :func:`unbiased_correlation`
     - ``ri, ni``
     - :math:`r\\,{}_2F_1(\\tfrac12, \\tfrac12; \\tfrac{n-2}2; 1-r^2)`
     - Olkin & Pratt (1958)
   * - ``"ZCOR"``
     - :func:`fisher_z`
     - ``ri, ni``
     - :math:`\\operatorname{artanh} r`
     - Fisher (1921)
   * - ``"PCOR"``
     - :func:`partial_correlation`
     - ``ti, ni, mi``
     - :math:`\\frac{t}{\\sqrt{t^2 + n - p - 1}}`
     - Aloe & Thompson (2013)
   * - ``"ZPCOR"``
     - :func:`fisher_z_partial_correlation`
     - ``ti, ni, mi``
     - :math:`\\operatorname{artanh} r_p`
     - Aloe & Thompson (2013)
   * - ``"SPCOR"``
     - :func:`semipartial_correlation`
     - ``ti, ni, mi, r2i``
     - :math:`t\\sqrt{\\frac{1-R^2}{n-p-1}}`
     - Aloe & Becker (2012)
   * - ``"ZSPCOR"``
     - :func:`fisher_z_semipartial_correlation`
     - ``ti, ni, mi, r2i``
     - :math:`\\operatorname{artanh} r_{sp}`
     - Aloe & Becker (2012)

**Single groups, quantitative**

%(measure_table)s
   * - ``"MN"``
     - :func:`raw_mean`
     - ``mi, sdi, ni``
     - :math:`\\bar x`
     - —
   * - ``"MNLN"``
     - :func:`log_mean`
     - ``mi, sdi, ni``
     - :math:`\\ln\\bar x`
     - Nakagawa et al. (2015)
   * - ``"SDLN"``
     - :func:`log_standard_deviation`
     - ``sdi, ni``
     - :math:`\\ln s + \\frac1{2(n-1)}`
     - Raudenbush & Bryk (1987)
   * - ``"CVLN"``
     - :func:`log_coefficient_of_variation`
     - ``mi, sdi, ni``
     - :math:`\\ln\\frac{s}{\\bar x} + \\frac1{2(n-1)}`
     - Nakagawa et al. (2015)

**Single groups, proportions**

%(measure_table)s
   * - ``"PR"``
     - :func:`proportion`
     - ``xi, ni``
     - :math:`p = x/n`
     - Fleiss & Berlin (2009)
   * - ``"PLN"``
     - :func:`log_proportion`
     - ``xi, ni``
     - :math:`\\ln p`
     - Fleiss & Berlin (2009)
   * - ``"PLO"``
     - :func:`logit_proportion`
     - ``xi, ni``
     - :math:`\\ln\\frac{x}{n-x}`
     - Fleiss & Berlin (2009)
   * - ``"PAS"``
     - :func:`arcsine_proportion`
     - ``xi, ni``
     - :math:`\\arcsin\\sqrt p`
     - Fleiss & Berlin (2009)
   * - ``"PFT"``
     - :func:`freeman_tukey_proportion`
     - ``xi, ni``
     - :math:`\\tfrac12\\sum_{j=0,1}\\arcsin\\sqrt{\\tfrac{x+j}{n+1}}`
     - Freeman & Tukey (1950)

**Incidence rates**

%(measure_table)s
   * - ``"IR"``
     - :func:`incidence_rate`
     - ``xi, ti``
     - :math:`x/t`
     - Rothman et al. (2008)
   * - ``"IRLN"``
     - :func:`log_incidence_rate`
     - ``xi, ti``
     - :math:`\\ln(x/t)`
     - Rothman et al. (2008)
   * - ``"IRS"``
     - :func:`sqrt_incidence_rate`
     - ``xi, ti``
     - :math:`\\sqrt{x/t}`
     - Freeman & Tukey (1950)
   * - ``"IRFT"``
     - :func:`freeman_tukey_incidence_rate`
     - ``xi, ti``
     - :math:`\\tfrac12\\big(\\sqrt{x/t} + \\sqrt{(x+1)/t}\\big)`
     - Freeman & Tukey (1950)
   * - ``"IRR"``
     - :func:`log_incidence_rate_ratio`
     - ``x1i, t1i, x2i, t2i``
     - :math:`\\ln\\frac{x_1/t_1}{x_2/t_2}`
     - Rothman et al. (2008)
   * - ``"IRD"``
     - :func:`incidence_rate_difference`
     - ``x1i, t1i, x2i, t2i``
     - :math:`\\frac{x_1}{t_1} - \\frac{x_2}{t_2}`
     - Rothman et al. (2008)
   * - ``"IRSD"``
     - :func:`sqrt_incidence_rate_difference`
     - ``x1i, t1i, x2i, t2i``
     - :math:`\\sqrt{x_1/t_1} - \\sqrt{x_2/t_2}`
     - Bagos & Nikolopoulos (2009)

Conventions (those of metafor's ``escalc``, checked against metafor 3.8.1 to
1e-10 in ``tests/test_effect_sizes.py`` unless noted below):

- **Continuity correction.** For count data, ``correction`` (metafor's ``add``,
  default 1/2) is added to the counts according to ``add_to`` (metafor's
  ``to``): ``"only0"`` (default) to every cell of the studies with at least one
  zero cell; ``"all"`` to every cell of all studies; ``"if0all"`` to every cell
  of all studies, but only if some study has a zero cell; ``"none"`` never
  (the same as ``correction=0``). For 2x2 tables "every cell" means
  ``ai, bi, ci, di`` (so each group size grows by ``2 * correction``); for
  proportions ``xi`` and ``ni - xi``; for incidence rates the event counts.
  As in metafor, AS, PHI, RTET, PAS, PFT, IRS, IRFT and IRSD default to
  ``correction=0``; pass a positive value to force one.
- **Uninformative studies.** With ``drop00=True``, 2x2 tables with
  ``ai = ci = 0`` or ``bi = di = 0`` (and rate data with ``x1i = x2i = 0``) get
  ``NaN`` for ``yi`` and ``vi``, and do not count as zero-cell studies for
  ``add_to="if0all"``.
- **Missing and undefined values.** ``NaN`` inputs mark missing data and give
  ``NaN`` for that study's ``yi`` and ``vi``. A value that is infinite or
  undefined (e.g. the log of a zero count with ``add_to="none"``, or a
  tetrachoric correlation of a table with a zero cell) is returned as ``NaN``,
  as metafor recodes it to ``NA``, with a :class:`RuntimeWarning` naming the
  studies.
- **Averaged variances.** ``vtype="AV"`` (and ``"AVHO"``) plug an average over
  all studies into the large-sample variance; studies with missing inputs are
  left out of the average.
- **Validation.** Inputs must be numeric and 1-D (scalars broadcast), of one
  common length and finite or ``NaN``. Impossible values (negative counts or
  SDs, events exceeding group sizes, correlations outside [-1, 1], too few
  observations for a variance, ...) raise a :class:`ValueError` naming the
  argument.
- **Later metafor versions.** Where metafor changed a measure after 3.8, this
  module follows the current metafor (5.x) as documented, with the published
  formula: the bias corrections of ROM (Lajeunesse, 2015) and CVR (Senior et
  al., 2020) that metafor applies by default since 5.0 (``correct=False``
  switches them off); ROM's ``vtype="LS2"``; ``vtype="H0"`` of SMD and COR;
  ``mi`` counting all predictors and the ZPCOR variance
  :math:`1/(n - p - 2)`; the measures AUC, AUCN and ZSPCOR. metafor 4.6
  adjusted the SMDH and SMCRH variances without documenting the formula:
  those two follow metafor 3.8 (Bonett, 2008, 2009). The tetrachoric
  correlation is the exact maximum-likelihood solution, which metafor
  approximates to about 4 significant digits.
"""

import inspect
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import special
from scipy.special import gamma

from skmeta._engine._binary import peto_terms
from skmeta.utils._docstrings import fill_doc, fill_docstring

__all__ = [
    "MEASURES",
    "EffectSize",
    "arcsine_proportion",
    "arcsine_risk_difference",
    "area_under_curve",
    "area_under_curve_binormal",
    "correlation",
    "d_to_log_odds_ratio_logistic",
    "d_to_log_odds_ratio_normal",
    "escalc",
    "fisher_z",
    "fisher_z_partial_correlation",
    "fisher_z_semipartial_correlation",
    "freeman_tukey_incidence_rate",
    "freeman_tukey_proportion",
    "hedges_g",
    "incidence_rate",
    "incidence_rate_difference",
    "log_coefficient_of_variation",
    "log_coefficient_of_variation_ratio",
    "log_incidence_rate",
    "log_incidence_rate_ratio",
    "log_mean",
    "log_odds_ratio",
    "log_proportion",
    "log_ratio_of_means",
    "log_risk_ratio",
    "log_standard_deviation",
    "log_variability_ratio",
    "logit_proportion",
    "mean_change",
    "mean_difference",
    "odds_ratio_to_d_logistic",
    "odds_ratio_to_d_normal",
    "partial_correlation",
    "peto_log_odds_ratio",
    "phi_coefficient",
    "probit_risk_difference",
    "proportion",
    "raw_mean",
    "risk_difference",
    "semipartial_correlation",
    "sqrt_incidence_rate",
    "sqrt_incidence_rate_difference",
    "standardized_mean_change",
    "standardized_mean_change_raw",
    "standardized_mean_change_raw_heteroscedastic",
    "standardized_mean_difference",
    "standardized_mean_difference_heteroscedastic",
    "tetrachoric_correlation",
    "unbiased_correlation",
    "yules_q",
    "yules_y",
]

_ADD_TO = ("only0", "all", "if0all", "none")

# --------------------------------------------------------------------------- #
# docstring fragments
# --------------------------------------------------------------------------- #


#: Docstring fragments shared by the functions of this module (see
#: :func:`fill_doc`). A ``*_parameters`` fragment is a whole Parameters section
#: followed by the Returns section; the others are parameter entries, sections
#: or references.
_DOC = {
    # the head of each table of measures in the module docstring
    "measure_table": """\
.. list-table::
   :header-rows: 1
   :widths: 9 27 20 30 14

   * - Measure
     - Function
     - Inputs
     - Estimate :math:`y_i`
     - Reference""",
    "returns": """\
Returns
-------
result : EffectSize
    Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).""",
    # 2x2 tables
    "table_parameters": """\
Parameters
----------
ai : array-like of shape (n_studies,)
    Events in group 1 (e.g. treated).
bi : array-like of shape (n_studies,), default=None
    Non-events in group 1. Give either ``bi`` or ``n1i``.
ci : array-like of shape (n_studies,)
    Events in group 2 (e.g. control).
di : array-like of shape (n_studies,), default=None
    Non-events in group 2. Give either ``di`` or ``n2i``.
n1i : array-like of shape (n_studies,), default=None
    Size of group 1, instead of ``bi`` (``bi = n1i - ai``).
n2i : array-like of shape (n_studies,), default=None
    Size of group 2, instead of ``di`` (``di = n2i - ci``).
%(table_options)s

%(returns)s""",
    "table_parameters_short": """\
Parameters
----------
%(table_cells_short)s
%(table_options)s

%(returns)s""",
    "table_cells_short": """\
ai, bi, ci, di : array-like of shape (n_studies,)
    Cell counts (``bi``/``di`` may be replaced by ``n1i``/``n2i``), as in
    :func:`log_odds_ratio`.
n1i, n2i : array-like of shape (n_studies,), default=None
    Row totals, instead of ``bi`` and ``di``.""",
    "table_options": """\
correction : float, default=%(correction)s
    Continuity correction added to the cells (metafor's ``add``).
add_to : {"only0", "all", "if0all", "none"}, default="only0"
    Which tables get the correction (metafor's ``to``); see the module
    docstring.
drop00 : bool, default=False
    Whether tables with ``ai = ci = 0`` or ``bi = di = 0`` give ``NaN``.""",
    # two groups, quantitative outcome
    "group_means": """\
m1i : array-like of shape (n_studies,)
    Means of group 1.
sd1i : array-like of shape (n_studies,)
    Standard deviations of group 1.
n1i : array-like of shape (n_studies,)
    Sizes of group 1.
m2i : array-like of shape (n_studies,)
    Means of group 2.
sd2i : array-like of shape (n_studies,)
    Standard deviations of group 2.
n2i : array-like of shape (n_studies,)
    Sizes of group 2.""",
    "group_summary_parameters": """\
Parameters
----------
m1i, m2i : array-like of shape (n_studies,)
    Means of groups 1 and 2.
sd1i, sd2i : array-like of shape (n_studies,)
    Standard deviations of groups 1 and 2.
n1i, n2i : array-like of shape (n_studies,)
    Sizes of groups 1 and 2.

%(returns)s""",
    "metafor_46_notes": """\
Notes
-----
metafor 4.6 "slightly adjusted" this variance "for consistency" (its NEWS)
without documenting the new formula; this function reproduces metafor 3.8.""",
    "variability_ratio": """\
sd1i, sd2i : array-like of shape (n_studies,)
    Standard deviations of groups 1 and 2 (positive).
n1i, n2i : array-like of shape (n_studies,)
    Sizes of groups 1 and 2 (at least 2).
correct : bool, default=True
    Whether to apply the bias correction to :math:`y_i`.""",
    # change scores and matched pairs
    "paired_means": """\
m1i, m2i : array-like of shape (n_studies,)
    Means at the two occasions (or of the two matched groups).""",
    "paired_sizes": """\
ni : array-like of shape (n_studies,)
    Number of individuals (pairs), at least 3.
ri : array-like of shape (n_studies,)
    Correlation between the two measurements, in [-1, 1].""",
    # regression results
    "regression": """\
ti : array-like of shape (n_studies,)
    t-statistics of the focal regression coefficient.
ni : array-like of shape (n_studies,)
    Sample sizes.
mi : array-like of shape (n_studies,)
    Numbers of predictors in the models, counting the focal predictor.""",
    "semipartial_parameters": """\
Parameters
----------
%(regression)s
r2i : array-like of shape (n_studies,)
    :math:`R^2` of the full models, in [0, 1).

%(returns)s""",
    # single groups
    "log_sd": """\
sdi : array-like of shape (n_studies,)
    Standard deviations (positive).
ni : array-like of shape (n_studies,)
    Sample sizes, at least 2.""",
    # counts
    "proportion_parameters": """\
Parameters
----------
xi : array-like of shape (n_studies,)
    Numbers of individuals with the event.
ni : array-like of shape (n_studies,)
    Sample sizes (positive, at least ``xi``).
correction : float, default=%(correction)s
    Continuity correction added to ``xi`` and ``ni - xi`` (metafor's
    ``add``).
add_to : {"only0", "all", "if0all", "none"}, default="only0"
    Which studies get the correction (metafor's ``to``): with ``"only0"``
    those with ``xi = 0`` or ``xi = ni``.

%(returns)s""",
    "event_rate_parameters": """\
Parameters
----------
xi : array-like of shape (n_studies,)
    Numbers of events.
ti : array-like of shape (n_studies,)
    Person-times at risk (positive).
correction : float, default=%(correction)s
    Continuity correction added to ``xi`` (metafor's ``add``).
add_to : {"only0", "all", "if0all", "none"}, default="only0"
    Which studies get the correction (metafor's ``to``): with ``"only0"``
    those with no event.

%(returns)s""",
    "two_group_rate_parameters": """\
Parameters
----------
x1i : array-like of shape (n_studies,)
    Events in group 1.
t1i : array-like of shape (n_studies,)
    Person-time at risk in group 1 (positive).
x2i : array-like of shape (n_studies,)
    Events in group 2.
t2i : array-like of shape (n_studies,)
    Person-time at risk in group 2 (positive).
correction : float, default=%(correction)s
    Continuity correction added to ``x1i`` and ``x2i`` (metafor's ``add``).
add_to : {"only0", "all", "if0all", "none"}, default="only0"
    Which studies get the correction (metafor's ``to``): with ``"only0"``
    those with a zero count in either group.
drop00 : bool, default=False
    Whether studies with ``x1i = x2i = 0`` give ``NaN``.

%(returns)s""",
    # references cited by several functions
    "fleiss_berlin_2009": """\
Fleiss, J. L., & Berlin, J. A. (2009). Effect sizes for dichotomous
   data. In H. Cooper, L. V. Hedges, & J. C. Valentine (Eds.), The handbook
   of research synthesis and meta-analysis (2nd ed., pp. 237-253).""",
    "nakagawa_2015": """\
Nakagawa, S., Poulin, R., Mengersen, K., Reinhold, K., Engqvist,
   L., Lagisz, M., & Senior, A. M. (2015). Meta-analysis of variation:
   Ecological and evolutionary applications and beyond. Methods in Ecology
   and Evolution, 6(2), 143-152.""",
    "rothman_2008": """\
Rothman, K. J., Greenland, S., & Lash, T. L. (2008). Modern
   epidemiology (3rd ed.). Lippincott Williams & Wilkins.""",
    "sanchez_meca_2003": """\
Sánchez-Meca, J., Marín-Martínez, F., & Chacón-Moscoso, S. (2003).
   Effect-size indices for dichotomized outcomes in meta-analysis.
   Psychological Methods, 8(4), 448-467.""",
    "freeman_tukey_1950": """\
Freeman, M. F., & Tukey, J. W. (1950). Transformations related to the
   angular and the square root. Annals of Mathematical Statistics, 21(4),
   607-611.""",
    "borenstein_2009": """\
Borenstein, M. (2009). Effect sizes for continuous data. In H.
   Cooper, L. V. Hedges, & J. C. Valentine (Eds.), The handbook of research
   synthesis and meta-analysis (2nd ed., pp. 221-235).""",
    "yule_1912": """\
Yule, G. U. (1912). On the methods of measuring association between
   two attributes. Journal of the Royal Statistical Society, 75(6),
   579-652.""",
    "senior_2020": """\
Senior, A. M., Viechtbauer, W., & Nakagawa, S. (2020). Revisiting
   and expanding the meta-analysis of variation: The log coefficient of
   variation ratio. Research Synthesis Methods, 11(4), 553-567.""",
    "morris_deshon_2002": """\
Morris, S. B., & DeShon, R. P. (2002). Combining effect size
   estimates in meta-analysis with repeated measures and independent-groups
   designs. Psychological Methods, 7(1), 105-125.""",
    "hasselblad_hedges_1995": """\
Hasselblad, V., & Hedges, L. V. (1995). Meta-analysis of screening
   and diagnostic tests. Psychological Bulletin, 117(1), 167-178.""",
    "cox_snell_1989": """\
Cox, D. R., & Snell, E. J. (1989). Analysis of binary data (2nd
   ed.). Chapman & Hall.""",
    "aloe_thompson_2013": """\
Aloe, A. M., & Thompson, C. G. (2013). The synthesis of partial
   effect sizes. Journal of the Society for Social Work and Research, 4(4),
   390-405.""",
    "aloe_becker_2012": """\
Aloe, A. M., & Becker, B. J. (2012). An effect size for regression
   predictors in meta-analysis. Journal of Educational and Behavioral
   Statistics, 37(2), 278-297.""",
}

__doc__ = fill_docstring(__doc__, _DOC)
_doc = fill_doc(_DOC)


class EffectSize(NamedTuple):
    """Observed effect sizes ``yi`` and sampling variances ``vi``.

    A named tuple, so ``yi, vi = log_risk_ratio(...)`` works.

    Parameters
    ----------
    yi : ndarray of shape (n_studies,)
        Observed effect sizes.
    vi : ndarray of shape (n_studies,)
        Their sampling variances.

    Attributes
    ----------
    yi : ndarray of shape (n_studies,)
        Observed effect size of each study (``NaN`` where missing or undefined).
    vi : ndarray of shape (n_studies,)
        Sampling variance of each ``yi`` (``NaN`` where missing or undefined).
    """

    yi: NDArray[np.float64]
    vi: NDArray[np.float64]

    def to_frame(self, index: ArrayLike | None = None) -> pd.DataFrame:
        """Return the effect sizes as a DataFrame with columns ``yi`` and ``vi``.

        Parameters
        ----------
        index : array-like of shape (n_studies,), default=None
            Row labels, e.g. the index of the data frame the inputs came from.
            ``None`` gives a ``RangeIndex``.

        Returns
        -------
        frame : pandas.DataFrame of shape (n_studies, 2)
            Columns ``yi`` and ``vi``.
        """
        return pd.DataFrame({"yi": self.yi, "vi": self.vi}, index=index)


# --------------------------------------------------------------------------- #
# validation helpers
# --------------------------------------------------------------------------- #
def _arrays(**named: ArrayLike) -> dict[str, NDArray[np.float64]]:
    """Convert the named inputs to float 1-D arrays of one common length."""
    out: dict[str, NDArray[np.float64]] = {}
    for name, value in named.items():
        if value is None:
            raise ValueError(f"{name} is required")
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numeric; got {value!r}") from None
        if arr.ndim > 1:
            raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
        if np.isinf(arr).any():
            raise ValueError(f"{name} must be finite (NaN marks a missing value)")
        out[name] = arr
    lengths = {name: arr.shape[0] for name, arr in out.items() if arr.ndim == 1}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}: {n}" for name, n in lengths.items())
        raise ValueError(f"inputs must have the same length; got {detail}")
    k = next(iter(lengths.values()), 1)
    return {name: np.broadcast_to(arr, (k,)).copy() for name, arr in out.items()}


def _nonneg(arrays: dict[str, NDArray[np.float64]], *names: str) -> None:
    for name in names:
        with np.errstate(invalid="ignore"):
            bad = arrays[name] < 0
        if np.any(bad):
            raise ValueError(f"{name} must be non-negative")


def _positive(arrays: dict[str, NDArray[np.float64]], *names: str) -> None:
    for name in names:
        with np.errstate(invalid="ignore"):
            bad = arrays[name] <= 0
        if np.any(bad):
            raise ValueError(f"{name} must be positive")


def check_correction(correction: float, add_to: str, drop00: bool = False) -> None:
    if not np.isscalar(correction) or not np.isfinite(correction) or correction < 0:
        raise ValueError(
            f"correction must be a finite non-negative number; got {correction!r}"
        )
    if add_to not in _ADD_TO:
        raise ValueError(f"add_to must be one of {_ADD_TO}; got {add_to!r}")
    _check_bool("drop00", drop00)


def _continuity_correction(
    has_zero: NDArray[np.bool_], correction: float, add_to: str
) -> NDArray[np.float64]:
    """Amount added to the counts of each study: ``correction`` or 0."""
    if add_to == "none" or correction == 0:
        corrected = np.zeros_like(has_zero)
    elif add_to == "all":
        corrected = np.ones_like(has_zero)
    elif add_to == "if0all":
        corrected = np.full_like(has_zero, bool(has_zero.any()))
    else:  # "only0"
        corrected = has_zero
    return correction * corrected


def _counts(
    named: dict[str, ArrayLike],
    counts: tuple[str, ...],
    totals: tuple[str, ...],
    correction: float,
    add_to: str,
    drop00: bool = False,
) -> dict[str, NDArray[np.float64]]:
    """Validate the correction options, event counts and their (positive) totals."""
    check_correction(correction, add_to, drop00)
    x = _arrays(**named)
    _nonneg(x, *counts)
    _positive(x, *totals)
    return x


def _missing(arrays: dict[str, NDArray[np.float64]]) -> NDArray[np.bool_]:
    """Studies with a missing (NaN) input."""
    k = next(iter(arrays.values())).shape[0]
    out = np.zeros(k, dtype=bool)
    for arr in arrays.values():
        out |= np.isnan(arr)
    return out


def _finish(
    yi: NDArray[np.float64], vi: NDArray[np.float64], skip: NDArray[np.bool_]
) -> EffectSize:
    """Recode non-finite results to NaN (metafor recodes them to NA).

    ``skip`` marks the studies that are NaN by design (a missing input, or
    ``drop00``); any other study whose ``yi`` or ``vi`` is infinite or undefined
    is reported in a :class:`RuntimeWarning`.
    """
    yi = np.asarray(yi, dtype=np.float64)
    vi = np.asarray(vi, dtype=np.float64)
    bad = ~np.isfinite(yi) | ~np.isfinite(vi)
    undefined = np.flatnonzero(bad & ~skip)
    if undefined.size:
        shown = ", ".join(str(i) for i in undefined[:_SHOWN_STUDIES])
        more = ", ..." if undefined.size > _SHOWN_STUDIES else ""
        warnings.warn(
            f"the effect size or its sampling variance is undefined (e.g. a zero "
            f"count without continuity correction) for {undefined.size} "
            f"stud{'y' if undefined.size == 1 else 'ies'} (positions {shown}{more}); "
            "returned as NaN",
            RuntimeWarning,
            stacklevel=_user_stacklevel(),
        )
    bad |= skip
    return EffectSize(np.where(bad, np.nan, yi), np.where(bad, np.nan, vi))


#: How many study positions a warning lists.
_SHOWN_STUDIES = 10


def _user_stacklevel() -> int:
    """``stacklevel`` that points a warning at the first caller outside this module."""
    frame, level = inspect.currentframe().f_back, 1  # the frame that warns
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame, level = frame.f_back, level + 1
    return level


def _check_vtype(vtype: str, allowed: tuple[str, ...]) -> None:
    if not isinstance(vtype, str) or vtype not in allowed:
        options = ", ".join(repr(v) for v in allowed)
        raise ValueError(f"vtype must be one of {options}; got {vtype!r}")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be a bool; got {value!r}")


def _average(values: NDArray[np.float64], weights: NDArray[np.float64]) -> float:
    """Weighted average over the studies where ``values`` is available.

    The ``vtype="AV"`` variances plug such an average over all studies into the
    large-sample formula (metafor's convention; missing studies are left out).
    """
    ok = np.isfinite(values) & np.isfinite(weights)
    if not ok.any():
        return np.nan
    return float(np.sum(weights[ok] * values[ok]) / np.sum(weights[ok]))


def _at_least(arrays: dict[str, NDArray[np.float64]], low: float, *names: str) -> None:
    for name in names:
        with np.errstate(invalid="ignore"):
            if np.any(arrays[name] < low):
                raise ValueError(f"{name} must be at least {low:g}")


def _in_range(
    arrays: dict[str, NDArray[np.float64]], name: str, low: float, high: float
) -> None:
    with np.errstate(invalid="ignore"):
        if np.any((arrays[name] < low) | (arrays[name] > high)):
            raise ValueError(f"{name} must lie in [{low:g}, {high:g}]")


# --------------------------------------------------------------------------- #
# 2x2 tables
# --------------------------------------------------------------------------- #
def two_by_two_tables(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00):
    """Validate 2x2 tables and apply the continuity correction.

    Returns the corrected cells ``a, b, c, d`` and the mask of the studies that
    are NaN by design (a missing cell, or dropped by ``drop00``).
    """
    check_correction(correction, add_to, drop00)
    if (bi is None) == (n1i is None):
        raise ValueError("give exactly one of bi and n1i")
    if (di is None) == (n2i is None):
        raise ValueError("give exactly one of di and n2i")
    named = {"ai": ai, "ci": ci}
    named |= {"bi": bi} if n1i is None else {"n1i": n1i}
    named |= {"di": di} if n2i is None else {"n2i": n2i}
    x = _arrays(**named)
    _nonneg(x, *x)
    missing = _missing(x)
    if n1i is not None:
        with np.errstate(invalid="ignore"):
            if np.any(x["ai"] > x["n1i"]):
                raise ValueError("ai cannot exceed n1i")
        x["bi"] = x["n1i"] - x["ai"]
    if n2i is not None:
        with np.errstate(invalid="ignore"):
            if np.any(x["ci"] > x["n2i"]):
                raise ValueError("ci cannot exceed n2i")
        x["di"] = x["n2i"] - x["ci"]
    a, b, c, d = x["ai"], x["bi"], x["ci"], x["di"]
    if np.any(a + b == 0):
        raise ValueError("group 1 size (ai + bi, or n1i) must be positive")
    if np.any(c + d == 0):
        raise ValueError("group 2 size (ci + di, or n2i) must be positive")
    with np.errstate(invalid="ignore"):
        has_zero = (a == 0) | (b == 0) | (c == 0) | (d == 0)
        drop = ((a == 0) & (c == 0)) | ((b == 0) & (d == 0))
    drop = drop if drop00 else np.zeros_like(drop)
    # dropped studies do not trigger "if0all" (as in metafor)
    add = _continuity_correction(has_zero & ~drop, correction, add_to)
    return a + add, b + add, c + add, d + add, drop | missing


@_doc
def log_risk_ratio(
    ai: ArrayLike,
    bi: ArrayLike | None = None,
    ci: ArrayLike | None = None,
    di: ArrayLike | None = None,
    *,
    n1i: ArrayLike | None = None,
    n2i: ArrayLike | None = None,
    correction: float = 0.5,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    """Compute log risk ratios from 2x2 tables (metafor ``measure="RR"``).

    With events ``a`` and non-events ``b`` in group 1 (size ``n1 = a + b``) and
    ``c``, ``d`` in group 2 (size ``n2 = c + d``), after the continuity
    correction,

    .. math::

        y_i = \\log\\frac{a_i / n_{1i}}{c_i / n_{2i}}, \\qquad
        v_i = \\frac{1}{a_i} - \\frac{1}{n_{1i}} + \\frac{1}{c_i} - \\frac{1}{n_{2i}}.

    %(table_parameters)s

    References
    ----------
    .. [1] %(fleiss_berlin_2009)s
    .. [2] Viechtbauer, W. (2010). Conducting meta-analyses in R with the
       metafor package. Journal of Statistical Software, 36(3), 1-48.

    Examples
    --------
    >>> from skmeta.effect_sizes import log_risk_ratio
    >>> yi, vi = log_risk_ratio([4], [119], [11], [128])
    >>> round(float(yi[0]), 4), round(float(vi[0]), 4)
    (-0.8893, 0.3256)
    """
    a, b, c, d, skip = two_by_two_tables(
        ai, bi, ci, di, n1i, n2i, correction, add_to, drop00
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        n1, n2 = a + b, c + d
        yi = np.log(a / n1) - np.log(c / n2)
        vi = 1 / a - 1 / n1 + 1 / c - 1 / n2
    return _finish(yi, vi, skip)


@_doc
def log_odds_ratio(
    ai: ArrayLike,
    bi: ArrayLike | None = None,
    ci: ArrayLike | None = None,
    di: ArrayLike | None = None,
    *,
    n1i: ArrayLike | None = None,
    n2i: ArrayLike | None = None,
    correction: float = 0.5,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    """Compute log odds ratios from 2x2 tables (metafor ``measure="OR"``).

    After the continuity correction,

    .. math::

        y_i = \\log\\frac{a_i d_i}{b_i c_i}, \\qquad
        v_i = \\frac{1}{a_i} + \\frac{1}{b_i} + \\frac{1}{c_i} + \\frac{1}{d_i}

    (Woolf's variance).

    %(table_parameters)s

    References
    ----------
    .. [1] Woolf, B. (1955). On estimating the relation between blood group and
       disease. Annals of Human Genetics, 19(4), 251-253.
    .. [2] %(fleiss_berlin_2009)s
    """
    return _log_odds_ratio_scaled(
        ai, bi, ci, di, n1i, n2i, correction, add_to, drop00, 1.0
    )


@_doc
def peto_log_odds_ratio(
    ai: ArrayLike,
    bi: ArrayLike | None = None,
    ci: ArrayLike | None = None,
    di: ArrayLike | None = None,
    *,
    n1i: ArrayLike | None = None,
    n2i: ArrayLike | None = None,
    correction: float = 0.5,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    r"""Compute Peto's log odds ratios from 2x2 tables (metafor ``measure="PETO"``).

    After the continuity correction, with :math:`E_i = n_{1i} m_{1i}/N_i` the
    expected events in group 1 and :math:`V_i = n_{1i} n_{2i} m_{1i} m_{0i} /
    (N_i^2 (N_i - 1))` their hypergeometric variance,

    .. math::

        y_i = \frac{a_i - E_i}{V_i}, \qquad v_i = \frac{1}{V_i}.

    %(table_parameters)s

    References
    ----------
    .. [1] Yusuf, S., Peto, R., Lewis, J., Collins, R., & Sleight, P. (1985).
       Beta blockade during and after myocardial infarction: an overview of the
       randomized trials. Progress in Cardiovascular Diseases, 27(5), 335-371.
    """
    a, b, c, d, skip = two_by_two_tables(
        ai, bi, ci, di, n1i, n2i, correction, add_to, drop00
    )
    o_minus_e, v = peto_terms(a, b, c, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _finish(o_minus_e / v, 1.0 / v, skip)


def _risks(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00):
    """Event proportions and sizes of the two groups of the corrected tables.

    Returns ``p1, p2, n1, n2`` and the mask of the studies that are NaN by
    design (see :func:`two_by_two_tables`).
    """
    a, b, c, d, skip = two_by_two_tables(
        ai, bi, ci, di, n1i, n2i, correction, add_to, drop00
    )
    n1, n2 = a + b, c + d
    return a / n1, c / n2, n1, n2, skip


def _woolf(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00):
    """Log odds ratios and Woolf's variances of the validated, corrected tables.

    Also returns the mask of the studies that are NaN by design (see
    :func:`two_by_two_tables`).
    """
    a, b, c, d, skip = two_by_two_tables(
        ai, bi, ci, di, n1i, n2i, correction, add_to, drop00
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(a / b) - np.log(c / d), 1 / a + 1 / b + 1 / c + 1 / d, skip


@_doc
def risk_difference(
    ai: ArrayLike,
    bi: ArrayLike | None = None,
    ci: ArrayLike | None = None,
    di: ArrayLike | None = None,
    *,
    n1i: ArrayLike | None = None,
    n2i: ArrayLike | None = None,
    correction: float = 0.5,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    """Compute risk differences from 2x2 tables (metafor ``measure="RD"``).

    With :math:`p_{1i} = a_i / n_{1i}` and :math:`p_{2i} = c_i / n_{2i}` after
    the continuity correction (which metafor applies to this measure too),

    .. math::

        y_i = p_{1i} - p_{2i}, \\qquad
        v_i = \\frac{p_{1i}(1 - p_{1i})}{n_{1i}} + \\frac{p_{2i}(1 - p_{2i})}{n_{2i}}.

    %(table_parameters)s

    References
    ----------
    .. [1] %(fleiss_berlin_2009)s
    """
    p1, p2, n1, n2, skip = _risks(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00)
    yi = p1 - p2
    vi = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
    return _finish(yi, vi, skip)


@_doc
def arcsine_risk_difference(
    ai: ArrayLike,
    bi: ArrayLike | None = None,
    ci: ArrayLike | None = None,
    di: ArrayLike | None = None,
    *,
    n1i: ArrayLike | None = None,
    n2i: ArrayLike | None = None,
    correction: float = 0.0,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    """Compute arcsine square-root risk differences (metafor ``measure="AS"``).

    .. math::

        y_i = \\arcsin\\sqrt{p_{1i}} - \\arcsin\\sqrt{p_{2i}}, \\qquad
        v_i = \\frac{1}{4 n_{1i}} + \\frac{1}{4 n_{2i}},

    with :math:`p_{1i} = a_i / n_{1i}`, :math:`p_{2i} = c_i / n_{2i}`. Twice
    :math:`y_i` is Cohen's *h*. As in metafor, no continuity correction is
    applied by default.

    %(table_parameters)s

    References
    ----------
    .. [1] Rücker, G., Schwarzer, G., Carpenter, J., & Olkin, I. (2009). Why add
       anything to nothing? The arcsine difference as a measure of treatment
       effect in meta-analysis with zero cells. Statistics in Medicine, 28(5),
       721-738.
    """
    p1, p2, n1, n2, skip = _risks(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00)
    yi = np.arcsin(np.sqrt(p1)) - np.arcsin(np.sqrt(p2))
    vi = 1 / (4 * n1) + 1 / (4 * n2)
    return _finish(yi, vi, skip)


# --------------------------------------------------------------------------- #
# 2x2 tables: association and conversions to the SMD scale
# --------------------------------------------------------------------------- #
#: Threshold relating log odds ratios and standardized mean differences under
#: normal distributions (Cox, 1970): ln OR ~ 1.65 d.
_LOGIT_PROBIT_SCALE = 1.65
#: ln OR = pi / sqrt(3) d under logistic distributions (Hasselblad & Hedges, 1995).
_LOGISTIC_SCALE = np.pi / np.sqrt(3)

_PHI_VTYPES = ("CS", "ST", "LS")


def _per_study_vtype(vtype, allowed, k):
    """``vtype`` as an array of k strings (a scalar applies to every study)."""
    if isinstance(vtype, str):
        _check_vtype(vtype, allowed)
        return np.full(k, vtype, dtype=object)
    values = np.asarray(vtype, dtype=object)
    if values.ndim != 1 or values.shape[0] != k:
        raise ValueError(
            f"vtype must be a string or have one entry per study ({k}); "
            f"got shape {values.shape}"
        )
    for value in values:
        _check_vtype(value, allowed)
    return values


@_doc
def phi_coefficient(
    ai: ArrayLike,
    bi: ArrayLike | None = None,
    ci: ArrayLike | None = None,
    di: ArrayLike | None = None,
    *,
    n1i: ArrayLike | None = None,
    n2i: ArrayLike | None = None,
    vtype: str | ArrayLike = "CS",
    correction: float = 0.0,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    """Compute phi coefficients of 2x2 tables (metafor ``measure="PHI"``).

    With :math:`n_i` the table total, row totals :math:`n_{1i}, n_{2i}` and
    column totals :math:`m_{1i} = a_i + c_i`, :math:`m_{2i} = b_i + d_i`,

    .. math::

        y_i = \\varphi_i = \\frac{a_i d_i - b_i c_i}
            {\\sqrt{n_{1i} n_{2i} m_{1i} m_{2i}}}.

    The sampling variance depends on how the table was sampled (``vtype``):

    - ``"CS"`` (cross-sectional, i.e. multinomial sampling; ``"LS"`` is a
      synonym, metafor's default), with the cell proportions
      :math:`p_{1\\cdot} = n_{1i}/n_i`, :math:`p_{\\cdot 1} = m_{1i}/n_i` and
      their complements (Bishop, Fienberg & Holland, 1975; Fleiss & Berlin,
      2009):

      .. math::

          v_i = \\frac{1}{n_i}\\Big(1 - \\varphi^2
              + \\varphi\\big(1 + \\tfrac{1}{2}\\varphi^2\\big)
              \\frac{(p_{1\\cdot} - p_{2\\cdot})(p_{\\cdot 1} - p_{\\cdot 2})}
                   {\\sqrt{p_{1\\cdot} p_{2\\cdot} p_{\\cdot 1} p_{\\cdot 2}}}
              - \\tfrac{3}{4}\\varphi^2\\Big(
                \\frac{(p_{1\\cdot} - p_{2\\cdot})^2}{p_{1\\cdot} p_{2\\cdot}}
              + \\frac{(p_{\\cdot 1} - p_{\\cdot 2})^2}{p_{\\cdot 1} p_{\\cdot 2}}
              \\Big)\\Big);

    - ``"ST"`` (stratified sampling: the row totals are fixed by design), the
      delta-method variance of
      :math:`\\varphi = \\sqrt{w_1 w_2}\\,(p_1 - p_2) / \\sqrt{\\bar p(1 - \\bar p)}`
      with independent binomial :math:`p_1 = a_i/n_{1i}`,
      :math:`p_2 = c_i/n_{2i}`, :math:`w_j = n_{ji}/n_i` and
      :math:`\\bar p = w_1 p_1 + w_2 p_2`.

    As in metafor, no continuity correction is applied by default.

    Parameters
    ----------
    %(table_cells_short)s
    vtype : {"CS", "ST", "LS"} or array-like of these, default="CS"
        Sampling scheme, for all studies or per study.
    %(table_options)s

    %(returns)s

    References
    ----------
    .. [1] Bishop, Y. M. M., Fienberg, S. E., & Holland, P. W. (1975). Discrete
       multivariate analysis: Theory and practice. MIT Press.
    .. [2] %(fleiss_berlin_2009)s
    """
    a, b, c, d, skip = two_by_two_tables(
        ai, bi, ci, di, n1i, n2i, correction, add_to, drop00
    )
    stratified = _per_study_vtype(vtype, _PHI_VTYPES, a.shape[0]) == "ST"
    n1, n2, m1, m2 = a + b, c + d, a + c, b + d
    n = n1 + n2
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = (a * d - b * c) / np.sqrt(n1 * n2 * m1 * m2)
        r1, r2, c1, c2 = n1 / n, n2 / n, m1 / n, m2 / n
        skew = (r1 - r2) * (c1 - c2) / np.sqrt(r1 * r2 * c1 * c2)
        imbalance = (r1 - r2) ** 2 / (r1 * r2) + (c1 - c2) ** 2 / (c1 * c2)
        v_cs = (
            1 - phi**2 + phi * (1 + phi**2 / 2) * skew - 0.75 * phi**2 * imbalance
        ) / n
        p1, p2 = a / n1, c / n2
        pbar = r1 * p1 + r2 * p2
        q = pbar * (1 - pbar)
        scale = np.sqrt(r1 * r2)
        slope = -0.5 * (p1 - p2) * (1 - 2 * pbar) / q**1.5
        g1 = scale * (1 / np.sqrt(q) + slope * r1)
        g2 = scale * (-1 / np.sqrt(q) + slope * r2)
        v_st = g1**2 * p1 * (1 - p1) / n1 + g2**2 * p2 * (1 - p2) / n2
    return _finish(phi, np.where(stratified, v_st, v_cs), skip)


def _yule(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00, k):
    """Yule's coefficient ``tanh(ln OR / k)`` and its delta-method variance.

    ``k = 2`` gives Q = (OR - 1) / (OR + 1), ``k = 4`` gives
    Y = (sqrt(OR) - 1) / (sqrt(OR) + 1); the variance is
    ``(1 - y**2)**2 / k**2`` times Woolf's variance of ln OR.
    """
    log_or, v_log_or, skip = _woolf(
        ai, bi, ci, di, n1i, n2i, correction, add_to, drop00
    )
    y = np.tanh(log_or / k)
    return _finish(y, (1 - y**2) ** 2 * v_log_or / k**2, skip)


@_doc
def yules_q(
    ai: ArrayLike,
    bi: ArrayLike | None = None,
    ci: ArrayLike | None = None,
    di: ArrayLike | None = None,
    *,
    n1i: ArrayLike | None = None,
    n2i: ArrayLike | None = None,
    correction: float = 0.5,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    """Compute Yule's Q of 2x2 tables (metafor ``measure="YUQ"``).

    With the odds ratio :math:`\\mathrm{OR}_i = a_i d_i / (b_i c_i)` after the
    continuity correction and Woolf's variance of its log,
    :math:`v^{\\mathrm{OR}}_i = 1/a_i + 1/b_i + 1/c_i + 1/d_i`,

    .. math::

        y_i = Q_i = \\frac{\\mathrm{OR}_i - 1}{\\mathrm{OR}_i + 1}, \\qquad
        v_i = \\frac{1}{4}(1 - Q_i^2)^2\\, v^{\\mathrm{OR}}_i

    (the delta method; Yule, 1912).

    %(table_parameters_short)s

    References
    ----------
    .. [1] %(yule_1912)s
    """
    return _yule(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00, 2)


@_doc
def yules_y(
    ai: ArrayLike,
    bi: ArrayLike | None = None,
    ci: ArrayLike | None = None,
    di: ArrayLike | None = None,
    *,
    n1i: ArrayLike | None = None,
    n2i: ArrayLike | None = None,
    correction: float = 0.5,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    """Compute Yule's Y (coefficient of colligation) of 2x2 tables (``"YUY"``).

    With the odds ratio and Woolf's variance as in :func:`yules_q`,

    .. math::

        y_i = Y_i = \\frac{\\sqrt{\\mathrm{OR}_i} - 1}{\\sqrt{\\mathrm{OR}_i} + 1},
        \\qquad v_i = \\frac{1}{16}(1 - Y_i^2)^2\\, v^{\\mathrm{OR}}_i.

    %(table_parameters_short)s

    References
    ----------
    .. [1] %(yule_1912)s
    """
    return _yule(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00, 4)


#: Gauss-Legendre rule for the bivariate normal probability: 128 nodes give an
#: absolute error below 1e-15 for |rho| <= 0.9999 (checked against 30-digit
#: quadrature), far below the 1/n resolution of a cell proportion.
_BVN_NODES, _BVN_WEIGHTS = np.polynomial.legendre.leggauss(128)
#: Newton iterations stop when the correlation changes by less than this.
_RTET_TOL = 1e-14
#: Enough for bisection alone to shrink the bracket [-1, 1] below _RTET_TOL.
_RTET_MAX_ITER = 100


def _bvn_lower(h, k, rho):
    """P(X < h, Y < k) for a standard bivariate normal with correlation rho.

    Sheppard's formula integrated over theta = arcsin(r) from 0 to arcsin(rho):
    P = Phi(h) Phi(k) + 1/(2 pi) int exp(-(h^2 - 2hk sin t + k^2)/(2 cos^2 t)) dt
    (Drezner & Wesolowsky, 1990), by Gauss-Legendre quadrature. Vectorized.
    """
    upper = np.arcsin(rho)[:, None]
    theta = upper * (_BVN_NODES + 1) / 2
    sin, cos2 = np.sin(theta), np.cos(theta) ** 2
    hk, hs = (h * k)[:, None], (h * h + k * k)[:, None]
    integrand = np.exp(-(hs - 2 * hk * sin) / (2 * cos2))
    integral = upper[:, 0] / 2 * (integrand @ _BVN_WEIGHTS)
    return special.ndtr(h) * special.ndtr(k) + integral / (2 * np.pi)


def _bvn_density(h, k, rho):
    s2 = 1 - rho**2
    return np.exp(-(h * h - 2 * rho * h * k + k * k) / (2 * s2)) / (
        2 * np.pi * np.sqrt(s2)
    )


def _tetrachoric(p11, p12, p21, n):
    """Maximum-likelihood tetrachoric correlation and its sampling variance.

    For a 2x2 table the bivariate normal model with two thresholds and rho is
    saturated, so the ML estimates reproduce the observed proportions: the
    thresholds are h = Phi^-1(p11 + p12), k = Phi^-1(p11 + p21) and rho solves
    Phi2(h, k, rho) = p11 (safeguarded Newton, derivative phi2). The variance is
    the inverse Fisher information, here the delta-method variance of rho as a
    function of the multinomial cell proportions.
    """
    h, k = special.ndtri(p11 + p12), special.ndtri(p11 + p21)
    lo, hi = np.full_like(h, -1.0), np.full_like(h, 1.0)
    # Pearson's cosine approximation as the starting value
    odds = p11 * (1 - p11 - p12 - p21) / (p12 * p21)
    rho = np.cos(np.pi / (1 + np.sqrt(odds)))
    for _ in range(_RTET_MAX_ITER):
        f = _bvn_lower(h, k, rho) - p11
        lo, hi = np.where(f < 0, rho, lo), np.where(f > 0, rho, hi)
        step = f / _bvn_density(h, k, rho)
        new = rho - step
        # a Newton step leaving the bracket is replaced by bisection
        bisect = ~((new > lo) & (new < hi)) & ~(np.abs(step) < _RTET_TOL)
        new = np.where(bisect, (lo + hi) / 2, new)
        done = np.abs(new - rho) < _RTET_TOL
        rho = new
        if np.all(done):
            break
    s = np.sqrt(1 - rho**2)
    below_h = special.ndtr((k - rho * h) / s)  # dPhi2/dh / phi(h)
    below_k = special.ndtr((h - rho * k) / s)
    density = _bvn_density(h, k, rho)
    g11 = (1 - below_h - below_k) / density
    g12, g21 = -below_h / density, -below_k / density
    # the gradient is zero for the fourth cell
    mean = g11 * p11 + g12 * p12 + g21 * p21
    vi = (g11**2 * p11 + g12**2 * p12 + g21**2 * p21 - mean**2) / n
    return rho, vi


@_doc
def tetrachoric_correlation(
    ai: ArrayLike,
    bi: ArrayLike | None = None,
    ci: ArrayLike | None = None,
    di: ArrayLike | None = None,
    *,
    n1i: ArrayLike | None = None,
    n2i: ArrayLike | None = None,
    correction: float = 0.0,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    """Compute tetrachoric correlations of 2x2 tables (metafor ``"RTET"``).

    The two dichotomies are taken to be cuts of a standard bivariate normal
    pair :math:`(X, Y)` with correlation :math:`\\rho` at thresholds
    :math:`h, k`: cell ``a`` is :math:`X < h, Y < k`. The maximum-likelihood
    estimate (Pearson, 1900) reproduces the cell proportions
    :math:`p_a, p_b, p_c` exactly:

    .. math::

        h = \\Phi^{-1}(p_a + p_b), \\quad k = \\Phi^{-1}(p_a + p_c), \\quad
        \\Phi_2(h, k; \\hat\\rho) = p_a,

    solved to machine precision with the bivariate normal probability
    :math:`\\Phi_2` computed by quadrature of Sheppard's formula (Drezner &
    Wesolowsky, 1990). The sampling variance is the inverse Fisher information,
    i.e. the delta-method variance under multinomial sampling,

    .. math::

        v_i = \\frac{1}{n_i}\\Big(\\sum_j g_j^2 p_j
              - \\big(\\sum_j g_j p_j\\big)^2\\Big), \\quad
        (g_a, g_b, g_c, g_d) = \\frac{(1 - A - B,\\, -A,\\, -B,\\, 0)}
              {\\phi_2(h, k; \\hat\\rho)},

    with :math:`A = \\Phi((k - \\hat\\rho h)/\\sqrt{1-\\hat\\rho^2})` and
    :math:`B = \\Phi((h - \\hat\\rho k)/\\sqrt{1-\\hat\\rho^2})`.

    A table with a zero cell has its estimate on the boundary
    (:math:`\\hat\\rho = \\pm 1`, infinite variance) and gives ``NaN`` with a
    :class:`RuntimeWarning`; pass ``correction=0.5`` to use such tables. As in
    metafor, no continuity correction is applied by default.

    %(table_parameters_short)s

    Notes
    -----
    metafor 3.8 maximizes the likelihood numerically: its estimates agree with
    the exact solution to about 4 significant digits and its variances (from a
    numerical Hessian) to about 2-3.

    References
    ----------
    .. [1] Pearson, K. (1900). Mathematical contributions to the theory of
       evolution. VII. On the correlation of characters not quantitatively
       measurable. Philosophical Transactions of the Royal Society of London,
       Series A, 195, 1-47.
    .. [2] Kirk, D. B. (1973). On the numerical approximation of the bivariate
       normal (tetrachoric) correlation coefficient. Psychometrika, 38(2),
       259-268.
    .. [3] Drezner, Z., & Wesolowsky, G. O. (1990). On the computation of the
       bivariate normal integral. Journal of Statistical Computation and
       Simulation, 35(1-2), 101-107.

    Examples
    --------
    With symmetric margins the solution is Sheppard's
    :math:`\\sin(2\\pi(p_a - 1/4))`, here :math:`\\sin(\\pi/4)`:

    >>> from skmeta.effect_sizes import tetrachoric_correlation
    >>> yi, vi = tetrachoric_correlation([30], [10], [10], [30])
    >>> round(float(yi[0]), 4), round(float(vi[0]), 4)
    (0.7071, 0.0116)
    """
    a, b, c, d, skip = two_by_two_tables(
        ai, bi, ci, di, n1i, n2i, correction, add_to, drop00
    )
    n = a + b + c + d
    interior = (a > 0) & (b > 0) & (c > 0) & (d > 0)
    rho = np.full(a.shape, np.nan)
    vi = np.full(a.shape, np.nan)
    if np.any(interior):
        rho[interior], vi[interior] = _tetrachoric(
            a[interior] / n[interior],
            b[interior] / n[interior],
            c[interior] / n[interior],
            n[interior],
        )
    return _finish(rho, vi, skip)


@_doc
def probit_risk_difference(
    ai: ArrayLike,
    bi: ArrayLike | None = None,
    ci: ArrayLike | None = None,
    di: ArrayLike | None = None,
    *,
    n1i: ArrayLike | None = None,
    n2i: ArrayLike | None = None,
    correction: float = 0.5,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    """Compute probit-transformed risk differences, an SMD estimate (``"PBIT"``).

    With :math:`p_{1i} = a_i/n_{1i}`, :math:`p_{2i} = c_i/n_{2i}` after the
    continuity correction and :math:`z_{ji} = \\Phi^{-1}(p_{ji})`,

    .. math::

        y_i = z_{1i} - z_{2i}, \\qquad
        v_i = \\frac{2\\pi p_{1i}(1 - p_{1i}) e^{z_{1i}^2}}{n_{1i}}
            + \\frac{2\\pi p_{2i}(1 - p_{2i}) e^{z_{2i}^2}}{n_{2i}},

    the standardized mean difference of an underlying normal variable
    dichotomized at a common threshold (Sánchez-Meca et al., 2003).

    %(table_parameters_short)s

    References
    ----------
    .. [1] %(sanchez_meca_2003)s
    """
    p1, p2, n1, n2, skip = _risks(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z1, z2 = special.ndtri(p1), special.ndtri(p2)
        vi = (
            2
            * np.pi
            * (p1 * (1 - p1) * np.exp(z1**2) / n1 + p2 * (1 - p2) * np.exp(z2**2) / n2)
        )
        return _finish(z1 - z2, vi, skip)


def _log_odds_ratio_scaled(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00, f):
    """``f`` times the log odds ratio, with variance ``f**2`` times Woolf's."""
    log_or, v_log_or, skip = _woolf(
        ai, bi, ci, di, n1i, n2i, correction, add_to, drop00
    )
    return _finish(f * log_or, f**2 * v_log_or, skip)


@_doc
def odds_ratio_to_d_normal(
    ai: ArrayLike,
    bi: ArrayLike | None = None,
    ci: ArrayLike | None = None,
    di: ArrayLike | None = None,
    *,
    n1i: ArrayLike | None = None,
    n2i: ArrayLike | None = None,
    correction: float = 0.5,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    """Convert log odds ratios to standardized mean differences (``"OR2DN"``).

    Assuming normal distributions of the underlying variable (Cox, 1970),

    .. math::

        y_i = \\frac{\\ln \\mathrm{OR}_i}{1.65}, \\qquad
        v_i = \\frac{v^{\\mathrm{OR}}_i}{1.65^2},

    with the log odds ratio and Woolf's variance of :func:`log_odds_ratio`.

    %(table_parameters_short)s

    References
    ----------
    .. [1] %(cox_snell_1989)s
    .. [2] %(sanchez_meca_2003)s
    """
    return _log_odds_ratio_scaled(
        ai, bi, ci, di, n1i, n2i, correction, add_to, drop00, 1 / _LOGIT_PROBIT_SCALE
    )


@_doc
def odds_ratio_to_d_logistic(
    ai: ArrayLike,
    bi: ArrayLike | None = None,
    ci: ArrayLike | None = None,
    di: ArrayLike | None = None,
    *,
    n1i: ArrayLike | None = None,
    n2i: ArrayLike | None = None,
    correction: float = 0.5,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    """Convert log odds ratios to standardized mean differences (``"OR2DL"``).

    Assuming logistic distributions of the underlying variable (Hasselblad &
    Hedges, 1995; Chinn, 2000),

    .. math::

        y_i = \\frac{\\sqrt 3}{\\pi} \\ln \\mathrm{OR}_i, \\qquad
        v_i = \\frac{3}{\\pi^2} v^{\\mathrm{OR}}_i,

    with the log odds ratio and Woolf's variance of :func:`log_odds_ratio`.

    %(table_parameters_short)s

    References
    ----------
    .. [1] %(hasselblad_hedges_1995)s
    .. [2] Chinn, S. (2000). A simple method for converting an odds ratio to
       effect size for use in meta-analysis. Statistics in Medicine, 19(22),
       3127-3131.
    """
    return _log_odds_ratio_scaled(
        ai, bi, ci, di, n1i, n2i, correction, add_to, drop00, 1 / _LOGISTIC_SCALE
    )


# --------------------------------------------------------------------------- #
# two-group means
# --------------------------------------------------------------------------- #
def _means(m1i, sd1i, n1i, m2i, sd2i, n2i):
    x = _arrays(m1i=m1i, sd1i=sd1i, n1i=n1i, m2i=m2i, sd2i=sd2i, n2i=n2i)
    _nonneg(x, "sd1i", "sd2i")
    _positive(x, "n1i", "n2i")
    return x, _missing(x)


def _unpooled_means(m1i, sd1i, n1i, m2i, sd2i, n2i):
    """Validate two-group summaries for a variance that does not pool the SDs.

    Each group needs its own variance (n >= 2), and the SDs cannot both be 0.
    """
    x, skip = _means(m1i, sd1i, n1i, m2i, sd2i, n2i)
    _at_least(x, 2, "n1i", "n2i")
    if np.any(x["sd1i"] ** 2 + x["sd2i"] ** 2 == 0):
        raise ValueError("sd1i and sd2i cannot both be zero")
    return x, skip


def _pooled_sd(x):
    """Pooled SD of two groups (needs n1i + n2i > 2)."""
    n1, n2 = x["n1i"], x["n2i"]
    if np.any(n1 + n2 <= 2):
        raise ValueError("n1i + n2i must exceed 2 for a pooled standard deviation")
    m = n1 + n2 - 2
    return np.sqrt(((n1 - 1) * x["sd1i"] ** 2 + (n2 - 1) * x["sd2i"] ** 2) / m)


@_doc
def mean_difference(
    *,
    m1i: ArrayLike,
    sd1i: ArrayLike,
    n1i: ArrayLike,
    m2i: ArrayLike,
    sd2i: ArrayLike,
    n2i: ArrayLike,
    vtype: str = "LS",
) -> EffectSize:
    """Compute raw mean differences (metafor ``measure="MD"``).

    .. math::

        y_i = \\bar x_{1i} - \\bar x_{2i}, \\qquad
        v_i = \\frac{s_{1i}^2}{n_{1i}} + \\frac{s_{2i}^2}{n_{2i}}
        \\quad (\\text{vtype="LS"}),

    the default, which does not assume equal variances in the two groups
    (Borenstein, 2009, eq. 12.5). ``vtype="HO"`` assumes them equal:
    :math:`v_i = s_{pi}^2 (1/n_{1i} + 1/n_{2i})` with the pooled variance
    :math:`s_{pi}^2 = ((n_{1i}-1)s_{1i}^2 + (n_{2i}-1)s_{2i}^2)/(n_{1i}+n_{2i}-2)`
    (eq. 12.3).

    Parameters
    ----------
    %(group_means)s
    vtype : {"LS", "HO"}, default="LS"
        Heteroscedastic ("LS") or homoscedastic ("HO") sampling variance.

    %(returns)s

    References
    ----------
    .. [1] %(borenstein_2009)s
    """
    _check_vtype(vtype, ("LS", "HO"))
    x, skip = _means(m1i, sd1i, n1i, m2i, sd2i, n2i)
    n1, n2 = x["n1i"], x["n2i"]
    yi = x["m1i"] - x["m2i"]
    if vtype == "LS":
        vi = x["sd1i"] ** 2 / n1 + x["sd2i"] ** 2 / n2
    else:
        vi = _pooled_sd(x) ** 2 * (1 / n1 + 1 / n2)
    return _finish(yi, vi, skip)


#: Coefficients of the asymptotic series
#: Gamma(x + 1/2) / (sqrt(x) Gamma(x)) = sum_k c_k x^-k, used for large m where
#: a difference of two log-gamma values of size ~m log m would lose precision.
#: At x >= 169.5 the truncation error is below 1e-18.
_J_SERIES = np.array(
    [1.0, -1 / 8, 1 / 128, 5 / 1024, -21 / 32768, -399 / 262144, 869 / 4194304]
)
#: Largest m for which Gamma(m / 2) is evaluated directly (Gamma(171) overflows).
_J_DIRECT_MAX = 340


def _hedges_j(m: NDArray[np.float64]) -> NDArray[np.float64]:
    """Exact small-sample bias correction :math:`J(m)` of Hedges (1981).

    :math:`J(m) = \\Gamma(m/2) / (\\sqrt{m/2}\\,\\Gamma((m-1)/2))`, evaluated
    with the gamma function for :math:`m \\le 340` and with its asymptotic
    series beyond, both accurate to about 1e-15 for every :math:`m \\ge 2`.
    """
    m = np.asarray(m, dtype=np.float64)
    small = m <= _J_DIRECT_MAX
    m_small = np.where(small, m, 2.0)
    with np.errstate(over="ignore", invalid="ignore"):
        direct = gamma(m_small / 2) / (np.sqrt(m_small / 2) * gamma((m_small - 1) / 2))
    m_large = np.where(small, 1000.0, m)
    x = (m_large - 1) / 2
    series = np.polynomial.polynomial.polyval(1 / x, _J_SERIES)
    asymptotic = np.sqrt(2 * x / m_large) * series
    return np.where(small, direct, asymptotic)


@_doc
def standardized_mean_difference(
    *,
    m1i: ArrayLike,
    sd1i: ArrayLike,
    n1i: ArrayLike,
    m2i: ArrayLike,
    sd2i: ArrayLike,
    n2i: ArrayLike,
    vtype: str = "LS",
) -> EffectSize:
    """Compute bias-corrected standardized mean differences, Hedges' g (``"SMD"``).

    With the pooled standard deviation
    :math:`s_{pi} = \\sqrt{((n_{1i}-1)s_{1i}^2 + (n_{2i}-1)s_{2i}^2)/m_i}`,
    :math:`m_i = n_{1i} + n_{2i} - 2`, Cohen's
    :math:`d_i = (\\bar x_{1i} - \\bar x_{2i}) / s_{pi}` is multiplied by the
    exact bias correction of Hedges (1981),

    .. math::

        J(m) = \\frac{\\Gamma(m/2)}{\\sqrt{m/2}\\,\\Gamma((m-1)/2)}, \\qquad
        y_i = g_i = J(m_i)\\, d_i,

    (the familiar :math:`1 - 3/(4m - 1)` is its approximation). The sampling
    variance (``vtype``) is

    - ``"LS"`` (default; Hedges, 1982, eq. 8):
      :math:`v_i = 1/n_{1i} + 1/n_{2i} + g_i^2 / (2(n_{1i}+n_{2i}))`;
    - ``"UB"`` (unbiased; Hedges, 1983, eq. 9):
      :math:`v_i = 1/n_{1i} + 1/n_{2i} + g_i^2 \\,(1 - (m_i-2)/(m_i J(m_i)^2))`;
    - ``"LS2"`` (Borenstein, 2009, eq. 12.17):
      :math:`v_i = J(m_i)^2 (1/n_{1i} + 1/n_{2i} + d_i^2 / (2(n_{1i}+n_{2i})))`;
    - ``"AV"``: the ``"LS"`` formula with :math:`g_i` replaced by the
      average :math:`\\bar g = \\sum_i (n_{1i}+n_{2i}) g_i / \\sum_i (n_{1i}+n_{2i})`
      over all studies;
    - ``"H0"``: the variance when the true SMD is zero,
      :math:`v_i = 1/n_{1i} + 1/n_{2i}` (metafor 4.8 or later).

    Parameters
    ----------
    %(group_means)s
    vtype : {"LS", "UB", "LS2", "AV", "H0"}, default="LS"
        Which sampling variance to compute.

    %(returns)s

    References
    ----------
    .. [1] Hedges, L. V. (1981). Distribution theory for Glass's estimator of
       effect size and related estimators. Journal of Educational Statistics,
       6(2), 107-128.
    .. [2] Hedges, L. V. (1982). Estimation of effect size from a series of
       independent experiments. Psychological Bulletin, 92(2), 490-499.
    .. [3] Hedges, L. V. (1983). A random effects model for effect sizes.
       Psychological Bulletin, 93(2), 388-395.
    .. [4] %(borenstein_2009)s

    Examples
    --------
    >>> from skmeta.effect_sizes import standardized_mean_difference
    >>> g = standardized_mean_difference(
    ...     m1i=[10.2], sd1i=[2.1], n1i=[20], m2i=[9.1], sd2i=[2.4], n2i=[22]
    ... )
    >>> round(float(g.yi[0]), 4), round(float(g.vi[0]), 4)
    (0.477, 0.0982)
    """
    _check_vtype(vtype, ("LS", "UB", "LS2", "AV", "H0"))
    x, skip = _means(m1i, sd1i, n1i, m2i, sd2i, n2i)
    n1, n2 = x["n1i"], x["n2i"]
    m = n1 + n2 - 2
    if np.any(m < 2):
        raise ValueError("n1i + n2i must be at least 4 for the standardized mean")
    j = _hedges_j(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (x["m1i"] - x["m2i"]) / _pooled_sd(x)
        g = j * d
        if vtype == "LS":
            vi = 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))
        elif vtype == "UB":
            vi = 1 / n1 + 1 / n2 + g**2 * (1 - (m - 2) / (m * j**2))
        elif vtype == "LS2":
            vi = j**2 * (1 / n1 + 1 / n2 + d**2 / (2 * (n1 + n2)))
        elif vtype == "AV":
            g_bar = _average(g, n1 + n2)
            vi = 1 / n1 + 1 / n2 + g_bar**2 / (2 * (n1 + n2))
        else:  # "H0"
            vi = 1 / n1 + 1 / n2
    return _finish(g, vi, skip)


#: Alias of :func:`standardized_mean_difference`.
hedges_g = standardized_mean_difference


@_doc
def standardized_mean_difference_heteroscedastic(
    *,
    m1i: ArrayLike,
    sd1i: ArrayLike,
    n1i: ArrayLike,
    m2i: ArrayLike,
    sd2i: ArrayLike,
    n2i: ArrayLike,
) -> EffectSize:
    """Compute SMDs without assuming equal variances (metafor ``"SMDH"``).

    The mean difference is standardized by the square root of the average of
    the two variances, :math:`s_i = \\sqrt{(s_{1i}^2 + s_{2i}^2)/2}`, and
    bias-corrected with Hedges' :math:`J` (see
    :func:`standardized_mean_difference`) at :math:`m_i = n_{1i} + n_{2i} - 2`:

    .. math::

        y_i = g_i = J(m_i) \\frac{\\bar x_{1i} - \\bar x_{2i}}{s_i}, \\qquad
        v_i = J(m_i)^2 \\left(
            \\frac{g_i^2 (s_{1i}^4/(n_{1i}-1) + s_{2i}^4/(n_{2i}-1))}{8 s_i^4}
            + \\frac{s_{1i}^2/(n_{1i}-1) + s_{2i}^2/(n_{2i}-1)}{s_i^2}\\right)

    (Bonett, 2009, with the bias-corrected :math:`g_i` plugged in, as metafor
    3.8 computes it).

    Parameters
    ----------
    m1i, m2i : array-like of shape (n_studies,)
        Means of groups 1 and 2.
    sd1i, sd2i : array-like of shape (n_studies,)
        Standard deviations of groups 1 and 2 (non-negative, not both zero).
    n1i, n2i : array-like of shape (n_studies,)
        Sizes of groups 1 and 2 (at least 2 each).

    %(returns)s

    %(metafor_46_notes)s

    References
    ----------
    .. [1] Bonett, D. G. (2009). Meta-analytic interval estimation for
       standardized and unstandardized mean differences. Psychological Methods,
       14(3), 225-238.
    """
    x, skip = _unpooled_means(m1i, sd1i, n1i, m2i, sd2i, n2i)
    n1, n2, s1, s2 = x["n1i"], x["n2i"], x["sd1i"], x["sd2i"]
    j = _hedges_j(n1 + n2 - 2)
    s2avg = (s1**2 + s2**2) / 2
    g = j * (x["m1i"] - x["m2i"]) / np.sqrt(s2avg)
    vi = j**2 * (
        g**2 * (s1**4 / (n1 - 1) + s2**4 / (n2 - 1)) / (8 * s2avg**2)
        + (s1**2 / (n1 - 1) + s2**2 / (n2 - 1)) / s2avg
    )
    return _finish(g, vi, skip)


def _same_sign_ratio(x, top, bottom):
    """m1/m2 for a log ratio: both means non-zero and of the same sign."""
    m1, m2 = x[top], x[bottom]
    with np.errstate(invalid="ignore"):
        bad = ~(m1 * m2 > 0) & ~np.isnan(m1) & ~np.isnan(m2)
    if np.any(bad):
        raise ValueError(
            f"{top} and {bottom} must be non-zero and of the same sign "
            "(their ratio is logged)"
        )
    return m1 / m2


@_doc
def log_ratio_of_means(
    *,
    m1i: ArrayLike,
    sd1i: ArrayLike,
    n1i: ArrayLike,
    m2i: ArrayLike,
    sd2i: ArrayLike,
    n2i: ArrayLike,
    vtype: str = "LS",
    correct: bool = True,
) -> EffectSize:
    """Compute log ratios of means, the log response ratio (metafor ``"ROM"``).

    With :math:`c_{ji} = s_{ji}^2 / (n_{ji} \\bar x_{ji}^2)` (the squared
    coefficient of variation of each mean),

    .. math::

        y_i = \\ln\\frac{\\bar x_{1i}}{\\bar x_{2i}}
              + \\tfrac{1}{2}(c_{1i} - c_{2i}), \\qquad
        v_i = c_{1i} + c_{2i} \\quad (\\text{vtype="LS"}),

    where the second term of :math:`y_i` is the bias correction of Lajeunesse
    (2015, eq. 8), applied unless ``correct=False`` (metafor applies it by
    default since version 5.0; metafor 3.8 never does). The sampling variance
    (``vtype``):

    - ``"LS"``: the large-sample variance (Hedges et al., 1999, eq. 1);
    - ``"HO"``: assuming equal variances in the two groups, :math:`s_{ji}^2`
      replaced by the pooled variance (Hedges et al., 1999);
    - ``"LS2"``: second-order, :math:`v_i = c_{1i} + c_{1i}^2/2 + c_{2i} +
      c_{2i}^2/2` (Lajeunesse, 2015, eq. 9);
    - ``"AV"``: :math:`v_i = \\overline{CV}_1^2/n_{1i} + \\overline{CV}_2^2/n_{2i}`
      with :math:`\\overline{CV}_j = \\sum_i n_{ji} (s_{ji}/\\bar x_{ji}) /
      \\sum_i n_{ji}`, the sample-size weighted average coefficient of
      variation of group :math:`j` over the studies where it is available
      (Nakagawa et al., 2023);
    - ``"AVHO"``: as ``"AV"`` with one average over both groups (of the
      studies where both are available),
      :math:`v_i = \\overline{CV}^2 (1/n_{1i} + 1/n_{2i})`.

    Parameters
    ----------
    m1i, m2i : array-like of shape (n_studies,)
        Means of groups 1 and 2 (non-zero, of the same sign).
    sd1i, sd2i : array-like of shape (n_studies,)
        Standard deviations of groups 1 and 2.
    n1i, n2i : array-like of shape (n_studies,)
        Sizes of groups 1 and 2.
    vtype : {"LS", "HO", "LS2", "AV", "AVHO"}, default="LS"
        Which sampling variance to compute.
    correct : bool, default=True
        Whether to apply the bias correction to :math:`y_i`.

    %(returns)s

    References
    ----------
    .. [1] Hedges, L. V., Gurevitch, J., & Curtis, P. S. (1999). The
       meta-analysis of response ratios in experimental ecology. Ecology,
       80(4), 1150-1156.
    .. [2] Lajeunesse, M. J. (2015). Bias and correction for the log response
       ratio in ecological meta-analysis. Ecology, 96(8), 2056-2063.
    .. [3] Nakagawa, S., Noble, D. W. A., Lagisz, M., Spake, R., Viechtbauer,
       W., & Senior, A. M. (2023). A robust and readily implementable method
       for the meta-analysis of response ratios with and without missing
       standard deviations. Ecology Letters, 26(2), 232-244.

    Examples
    --------
    >>> from skmeta.effect_sizes import log_ratio_of_means
    >>> means = dict(m1i=[10.2], sd1i=[2.1], n1i=[20], m2i=[9.1], sd2i=[2.4], n2i=[22])
    >>> yi, vi = log_ratio_of_means(**means)
    >>> round(float(yi[0]), 4), round(float(vi[0]), 4)
    (0.1136, 0.0053)
    >>> round(float(log_ratio_of_means(**means, correct=False).yi[0]), 4)
    0.1141
    """
    _check_vtype(vtype, ("LS", "HO", "LS2", "AV", "AVHO"))
    _check_bool("correct", correct)
    x, skip = _means(m1i, sd1i, n1i, m2i, sd2i, n2i)
    ratio = _same_sign_ratio(x, "m1i", "m2i")
    n1, n2, m1, m2 = x["n1i"], x["n2i"], x["m1i"], x["m2i"]
    c1 = x["sd1i"] ** 2 / (n1 * m1**2)
    c2 = x["sd2i"] ** 2 / (n2 * m2**2)
    yi = np.log(ratio)
    if correct:
        yi = yi + (c1 - c2) / 2
    if vtype == "LS":
        vi = c1 + c2
    elif vtype == "HO":
        vi = _pooled_sd(x) ** 2 * (1 / (n1 * m1**2) + 1 / (n2 * m2**2))
    elif vtype == "LS2":
        vi = c1 + c1**2 / 2 + c2 + c2**2 / 2
    else:
        cv1, cv2 = x["sd1i"] / m1, x["sd2i"] / m2
        if vtype == "AV":
            vi = _average(cv1, n1) ** 2 / n1 + _average(cv2, n2) ** 2 / n2
        else:  # "AVHO", over the studies where both CVs are available
            both = np.isfinite(cv1) & np.isfinite(cv2)
            pooled = _average(
                np.concatenate([cv1[both], cv2[both]]),
                np.concatenate([n1[both], n2[both]]),
            )
            vi = pooled**2 * (1 / n1 + 1 / n2)
    return _finish(yi, vi, skip)


@_doc
def log_variability_ratio(
    *,
    sd1i: ArrayLike,
    n1i: ArrayLike,
    sd2i: ArrayLike,
    n2i: ArrayLike,
    correct: bool = True,
) -> EffectSize:
    """Compute log ratios of standard deviations (metafor ``"VR"``).

    .. math::

        y_i = \\ln\\frac{s_{1i}}{s_{2i}} + \\frac{1}{2(n_{1i}-1)}
              - \\frac{1}{2(n_{2i}-1)}, \\qquad
        v_i = \\frac{1}{2(n_{1i}-1)} + \\frac{1}{2(n_{2i}-1)}

    (Nakagawa et al., 2015; Senior et al., 2020, eqs. 5 and 11); the bias
    correction (the last two terms of :math:`y_i`) is applied unless
    ``correct=False``.

    Parameters
    ----------
    %(variability_ratio)s

    %(returns)s

    References
    ----------
    .. [1] %(nakagawa_2015)s
    .. [2] %(senior_2020)s
    """
    _check_bool("correct", correct)
    x = _arrays(sd1i=sd1i, n1i=n1i, sd2i=sd2i, n2i=n2i)
    _positive(x, "sd1i", "sd2i")
    _at_least(x, 2, "n1i", "n2i")
    b1, b2 = 1 / (2 * (x["n1i"] - 1)), 1 / (2 * (x["n2i"] - 1))
    yi = np.log(x["sd1i"] / x["sd2i"])
    if correct:
        yi = yi + b1 - b2
    return _finish(yi, b1 + b2, _missing(x))


@_doc
def log_coefficient_of_variation_ratio(
    *,
    m1i: ArrayLike,
    sd1i: ArrayLike,
    n1i: ArrayLike,
    m2i: ArrayLike,
    sd2i: ArrayLike,
    n2i: ArrayLike,
    correct: bool = True,
) -> EffectSize:
    """Compute log ratios of coefficients of variation (metafor ``"CVR"``).

    With :math:`c_{ji} = s_{ji}^2/(n_{ji} \\bar x_{ji}^2)` and
    :math:`b_{ji} = 1/(2(n_{ji}-1))`,

    .. math::

        y_i = \\ln\\frac{s_{1i}/\\bar x_{1i}}{s_{2i}/\\bar x_{2i}}
              + (b_{1i} - \\tfrac{1}{2}c_{1i}) - (b_{2i} - \\tfrac{1}{2}c_{2i}),
        \\qquad v_i = b_{1i} + c_{1i} + b_{2i} + c_{2i}.

    The correction terms remove the first- and second-order biases of
    :math:`\\ln s` and :math:`\\ln \\bar x` (Senior et al., 2020, eq. 6; applied
    unless ``correct=False``) and :math:`v_i` is eq. 13 there: Nakagawa et al.
    (2015, eq. 12) without the covariance terms, since mean and variance of
    normal data are independent.

    Parameters
    ----------
    m1i, m2i : array-like of shape (n_studies,)
        Means of groups 1 and 2 (non-zero, of the same sign).
    %(variability_ratio)s

    %(returns)s

    Notes
    -----
    metafor applies the second-order terms :math:`c_{ji}/2` by default since
    version 5.0; metafor 3.8 corrects with :math:`b_{1i} - b_{2i}` only.

    References
    ----------
    .. [1] %(nakagawa_2015)s
    .. [2] %(senior_2020)s
    """
    _check_bool("correct", correct)
    x, skip = _means(m1i, sd1i, n1i, m2i, sd2i, n2i)
    _positive(x, "sd1i", "sd2i")
    _at_least(x, 2, "n1i", "n2i")
    ratio = _same_sign_ratio(x, "m1i", "m2i")
    n1, n2 = x["n1i"], x["n2i"]
    b1, b2 = 1 / (2 * (n1 - 1)), 1 / (2 * (n2 - 1))
    c1 = x["sd1i"] ** 2 / (n1 * x["m1i"] ** 2)
    c2 = x["sd2i"] ** 2 / (n2 * x["m2i"] ** 2)
    yi = np.log(x["sd1i"] / x["sd2i"] / ratio)
    if correct:
        yi = yi + (b1 - c1 / 2) - (b2 - c2 / 2)
    return _finish(yi, b1 + c1 + b2 + c2, skip)


def _d_to_log_odds_ratio(m1i, sd1i, n1i, m2i, sd2i, n2i, f):
    """``f`` times Cohen's d (no bias correction), with its large-sample variance."""
    x, skip = _means(m1i, sd1i, n1i, m2i, sd2i, n2i)
    n1, n2 = x["n1i"], x["n2i"]
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (x["m1i"] - x["m2i"]) / _pooled_sd(x)
    vd = 1 / n1 + 1 / n2 + d**2 / (2 * (n1 + n2))
    return _finish(f * d, f**2 * vd, skip)


@_doc
def d_to_log_odds_ratio_normal(
    *,
    m1i: ArrayLike,
    sd1i: ArrayLike,
    n1i: ArrayLike,
    m2i: ArrayLike,
    sd2i: ArrayLike,
    n2i: ArrayLike,
) -> EffectSize:
    """Convert standardized mean differences to log odds ratios (``"D2ORN"``).

    With Cohen's :math:`d_i = (\\bar x_{1i} - \\bar x_{2i})/s_{pi}` (pooled SD,
    no bias correction, as metafor) and, assuming normal distributions (Cox,
    1970),

    .. math::

        y_i = 1.65\\, d_i, \\qquad
        v_i = 1.65^2 \\left(\\frac{1}{n_{1i}} + \\frac{1}{n_{2i}}
              + \\frac{d_i^2}{2(n_{1i}+n_{2i})}\\right).

    %(group_summary_parameters)s

    References
    ----------
    .. [1] %(cox_snell_1989)s
    .. [2] %(sanchez_meca_2003)s
    """
    return _d_to_log_odds_ratio(m1i, sd1i, n1i, m2i, sd2i, n2i, _LOGIT_PROBIT_SCALE)


@_doc
def d_to_log_odds_ratio_logistic(
    *,
    m1i: ArrayLike,
    sd1i: ArrayLike,
    n1i: ArrayLike,
    m2i: ArrayLike,
    sd2i: ArrayLike,
    n2i: ArrayLike,
) -> EffectSize:
    """Convert standardized mean differences to log odds ratios (``"D2ORL"``).

    With Cohen's :math:`d_i` as in :func:`d_to_log_odds_ratio_normal` and,
    assuming logistic distributions (Hasselblad & Hedges, 1995),

    .. math::

        y_i = \\frac{\\pi}{\\sqrt 3} d_i, \\qquad
        v_i = \\frac{\\pi^2}{3} \\left(\\frac{1}{n_{1i}} + \\frac{1}{n_{2i}}
              + \\frac{d_i^2}{2(n_{1i}+n_{2i})}\\right).

    %(group_summary_parameters)s

    References
    ----------
    .. [1] %(hasselblad_hedges_1995)s
    """
    return _d_to_log_odds_ratio(m1i, sd1i, n1i, m2i, sd2i, n2i, _LOGISTIC_SCALE)


@_doc
def area_under_curve(
    *,
    ai: ArrayLike,
    n1i: ArrayLike,
    n2i: ArrayLike,
    vtype: str = "LS",
) -> EffectSize:
    """Use areas under the ROC curve (common-language effect sizes) (``"AUC"``).

    :math:`y_i = A_i`, the reported estimate of :math:`P(X > Y) + P(X = Y)/2`
    for :math:`X` from group 1 and :math:`Y` from group 2 (the Mann-Whitney
    :math:`U / (n_{1i} n_{2i})`). With
    :math:`q_{1i} = (1 - A_i)/(2 - A_i)` and :math:`q_{2i} = A_i/(1 + A_i)`,
    the sampling variance (``vtype``) is

    - ``"LS"`` (Newcombe, 2006, method 4):
      :math:`v_i = A_i(1-A_i)\\,(1 + (N_i/2 - 1)(q_{1i} + q_{2i})) /
      ((n_{1i}-1)(n_{2i}-1))`, :math:`N_i = n_{1i} + n_{2i}`;
    - ``"LS2"`` (Hanley & McNeil, 1982, eqs. 1-2):
      :math:`v_i = A_i(1-A_i)\\,(1 + (n_{1i}-1) q_{1i} + (n_{2i}-1) q_{2i}) /
      ((n_{1i}-1)(n_{2i}-1))`,

    both with :math:`(n_{1i}-1)(n_{2i}-1)` in the denominator as suggested by
    Cho et al. (2019), as metafor (4.8 or later) documents them.

    Parameters
    ----------
    ai : array-like of shape (n_studies,)
        Areas under the curve, in [0, 1].
    n1i, n2i : array-like of shape (n_studies,)
        Sizes of groups 1 and 2 (at least 2).
    vtype : {"LS", "LS2"}, default="LS"
        Which sampling variance to compute.

    %(returns)s

    Notes
    -----
    metafor's adjustment of ``"LS2"`` for a known proportion of ties (its
    ``mi`` argument) is not implemented.

    References
    ----------
    .. [1] Hanley, J. A., & McNeil, B. J. (1982). The meaning and use of the
       area under a receiver operating characteristic (ROC) curve. Radiology,
       143(1), 29-36.
    .. [2] Newcombe, R. G. (2006). Confidence intervals for an effect size
       measure based on the Mann-Whitney statistic. Part 2: Asymptotic methods
       and evaluation. Statistics in Medicine, 25(4), 559-573.
    .. [3] Cho, H., Matthews, G. J., & Harel, O. (2019). Confidence intervals
       for the area under the receiver operating characteristic curve in the
       presence of ignorable missing data. International Statistical Review,
       87(1), 152-177.
    """
    _check_vtype(vtype, ("LS", "LS2"))
    x = _arrays(ai=ai, n1i=n1i, n2i=n2i)
    _in_range(x, "ai", 0, 1)
    _at_least(x, 2, "n1i", "n2i")
    a, n1, n2 = x["ai"], x["n1i"], x["n2i"]
    q1, q2 = (1 - a) / (2 - a), a / (1 + a)
    if vtype == "LS":
        inflation = 1 + ((n1 + n2) / 2 - 1) * (q1 + q2)
    else:
        inflation = 1 + (n1 - 1) * q1 + (n2 - 1) * q2
    vi = a * (1 - a) * inflation / ((n1 - 1) * (n2 - 1))
    return _finish(a.copy(), vi, _missing(x))


@_doc
def area_under_curve_binormal(
    *,
    m1i: ArrayLike,
    sd1i: ArrayLike,
    n1i: ArrayLike,
    m2i: ArrayLike,
    sd2i: ArrayLike,
    n2i: ArrayLike,
) -> EffectSize:
    """Compute areas under the curve from means and SDs, binormal (``"AUCN"``).

    Under normal distributions in both groups (the binormal model),
    :math:`P(X > Y) = \\Phi(z_i)` with
    :math:`z_i = (\\bar x_{1i} - \\bar x_{2i}) / S_i`,
    :math:`S_i^2 = s_{1i}^2 + s_{2i}^2`. The sampling variance is the
    delta-method variance (Goddard & Hinberg, 1990, eqs. 3-4, with
    :math:`n_{ji} - 1` in the denominators, as metafor 4.8 documents it):

    .. math::

        y_i = \\Phi(z_i), \\qquad
        v_i = \\phi(z_i)^2 \\left(
            \\frac{s_{1i}^2/(n_{1i}-1) + s_{2i}^2/(n_{2i}-1)}{S_i^2}
            + \\frac{z_i^2\\, (s_{1i}^4/(n_{1i}-1) + s_{2i}^4/(n_{2i}-1))}
                   {2 S_i^4}\\right).

    The variances are not assumed equal.

    Parameters
    ----------
    m1i, m2i : array-like of shape (n_studies,)
        Means of groups 1 and 2.
    sd1i, sd2i : array-like of shape (n_studies,)
        Standard deviations of groups 1 and 2 (non-negative, not both zero).
    n1i, n2i : array-like of shape (n_studies,)
        Sizes of groups 1 and 2 (at least 2).

    %(returns)s

    References
    ----------
    .. [1] Goddard, M. J., & Hinberg, I. (1990). Receiver operator
       characteristic (ROC) curves and non-normal data: An empirical study.
       Statistics in Medicine, 9(3), 325-337.
    .. [2] McGraw, K. O., & Wong, S. P. (1992). A common language effect size
       statistic. Psychological Bulletin, 111(2), 361-365.
    """
    x, skip = _unpooled_means(m1i, sd1i, n1i, m2i, sd2i, n2i)
    n1, n2, s1, s2 = x["n1i"], x["n2i"], x["sd1i"], x["sd2i"]
    total = s1**2 + s2**2
    z = (x["m1i"] - x["m2i"]) / np.sqrt(total)
    var_z = (s1**2 / (n1 - 1) + s2**2 / (n2 - 1)) / total + z**2 * (
        s1**4 / (n1 - 1) + s2**4 / (n2 - 1)
    ) / (2 * total**2)
    density = np.exp(-(z**2) / 2) / np.sqrt(2 * np.pi)
    return _finish(special.ndtr(z), density**2 * var_z, skip)


# --------------------------------------------------------------------------- #
# change scores and matched pairs
# --------------------------------------------------------------------------- #
def _changes(**named):
    """Validate paired-design summaries (means, SDs, ni, ri)."""
    x = _arrays(**named)
    _nonneg(x, *(name for name in ("sd1i", "sd2i") if name in x))
    _positive(x, "ni")
    _in_range(x, "ri", -1, 1)
    return x, _missing(x)


def _change_variance(x):
    """Variance of the change scores, s1^2 + s2^2 - 2 r s1 s2."""
    s1, s2 = x["sd1i"], x["sd2i"]
    return s1**2 + s2**2 - 2 * x["ri"] * s1 * s2


@_doc
def mean_change(
    *,
    m1i: ArrayLike,
    sd1i: ArrayLike,
    m2i: ArrayLike,
    sd2i: ArrayLike,
    ni: ArrayLike,
    ri: ArrayLike,
) -> EffectSize:
    """Compute raw mean changes or matched-pair differences (metafor ``"MC"``).

    .. math::

        y_i = \\bar x_{1i} - \\bar x_{2i}, \\qquad
        v_i = \\frac{s_{1i}^2 + s_{2i}^2 - 2 r_i s_{1i} s_{2i}}{n_i}.

    If only the SD of the change scores is known, pass it as ``sd1i`` with
    ``sd2i = ri = 0``.

    Parameters
    ----------
    %(paired_means)s
    sd1i, sd2i : array-like of shape (n_studies,)
        Their standard deviations.
    ni : array-like of shape (n_studies,)
        Number of individuals (pairs).
    ri : array-like of shape (n_studies,)
        Correlation between the two measurements, in [-1, 1].

    %(returns)s

    References
    ----------
    .. [1] %(morris_deshon_2002)s
    """
    x, skip = _changes(m1i=m1i, sd1i=sd1i, m2i=m2i, sd2i=sd2i, ni=ni, ri=ri)
    return _finish(x["m1i"] - x["m2i"], _change_variance(x) / x["ni"], skip)


@_doc
def standardized_mean_change(
    *,
    m1i: ArrayLike,
    sd1i: ArrayLike,
    m2i: ArrayLike,
    sd2i: ArrayLike,
    ni: ArrayLike,
    ri: ArrayLike,
) -> EffectSize:
    """Compute standardized mean changes, change-score SD (metafor ``"SMCC"``).

    The mean change is standardized by the SD of the change scores,
    :math:`s_{ci} = \\sqrt{s_{1i}^2 + s_{2i}^2 - 2 r_i s_{1i} s_{2i}}`, and
    bias-corrected with Hedges' :math:`J(n_i - 1)`:

    .. math::

        y_i = J(n_i - 1) \\frac{\\bar x_{1i} - \\bar x_{2i}}{s_{ci}}, \\qquad
        v_i = \\frac{1}{n_i} + \\frac{y_i^2}{2 n_i}

    (Gibbons et al., 1993; Morris & DeShon, 2002).

    Parameters
    ----------
    %(paired_means)s
    sd1i, sd2i : array-like of shape (n_studies,)
        Their standard deviations.
    %(paired_sizes)s

    %(returns)s

    References
    ----------
    .. [1] Gibbons, R. D., Hedeker, D. R., & Davis, J. M. (1993). Estimation of
       effect size from a series of experiments involving paired comparisons.
       Journal of Educational Statistics, 18(3), 271-279.
    .. [2] %(morris_deshon_2002)s
    """
    x, skip = _changes(m1i=m1i, sd1i=sd1i, m2i=m2i, sd2i=sd2i, ni=ni, ri=ri)
    _at_least(x, 3, "ni")
    var_change = _change_variance(x)
    with np.errstate(invalid="ignore"):
        if np.any(var_change <= 0):
            raise ValueError(
                "sd1i, sd2i and ri must give a positive change-score SD "
                "(sd1i^2 + sd2i^2 - 2 ri sd1i sd2i > 0)"
            )
    n = x["ni"]
    g = _hedges_j(n - 1) * (x["m1i"] - x["m2i"]) / np.sqrt(var_change)
    return _finish(g, 1 / n + g**2 / (2 * n), skip)


@_doc
def standardized_mean_change_raw(
    *,
    m1i: ArrayLike,
    sd1i: ArrayLike,
    m2i: ArrayLike,
    ni: ArrayLike,
    ri: ArrayLike,
) -> EffectSize:
    """Compute standardized mean changes, raw-score SD (metafor ``"SMCR"``).

    The mean change is standardized by the SD at the first occasion (usually
    the pre-test) and bias-corrected with Hedges' :math:`J(n_i - 1)`:

    .. math::

        y_i = J(n_i - 1) \\frac{\\bar x_{1i} - \\bar x_{2i}}{s_{1i}}, \\qquad
        v_i = \\frac{2(1 - r_i)}{n_i} + \\frac{y_i^2}{2 n_i}

    (Becker, 1988; Morris, 2000). The SD at the second occasion is not needed.

    Parameters
    ----------
    %(paired_means)s
    sd1i : array-like of shape (n_studies,)
        Standard deviation at the first occasion (positive).
    %(paired_sizes)s

    %(returns)s

    References
    ----------
    .. [1] Becker, B. J. (1988). Synthesizing standardized mean-change
       measures. British Journal of Mathematical and Statistical Psychology,
       41(2), 257-278.
    .. [2] Morris, S. B. (2000). Distribution of the standardized mean change
       effect size for meta-analysis on repeated measures. British Journal of
       Mathematical and Statistical Psychology, 53(1), 17-29.
    """
    x, skip = _changes(m1i=m1i, sd1i=sd1i, m2i=m2i, ni=ni, ri=ri)
    _positive(x, "sd1i")
    _at_least(x, 3, "ni")
    n = x["ni"]
    g = _hedges_j(n - 1) * (x["m1i"] - x["m2i"]) / x["sd1i"]
    return _finish(g, 2 * (1 - x["ri"]) / n + g**2 / (2 * n), skip)


@_doc
def standardized_mean_change_raw_heteroscedastic(
    *,
    m1i: ArrayLike,
    sd1i: ArrayLike,
    m2i: ArrayLike,
    sd2i: ArrayLike,
    ni: ArrayLike,
    ri: ArrayLike,
) -> EffectSize:
    """Compute raw-score standardized mean changes, unequal SDs (``"SMCRH"``).

    As :func:`standardized_mean_change_raw`, standardized by :math:`s_{1i}`,
    but with the variance of Bonett (2008), which does not assume equal
    variances at the two occasions:

    .. math::

        y_i = J(n_i - 1) \\frac{\\bar x_{1i} - \\bar x_{2i}}{s_{1i}}, \\qquad
        v_i = J(n_i - 1)^2 \\left(\\frac{y_i^2}{2(n_i - 1)}
              + \\frac{s_{1i}^2 + s_{2i}^2 - 2 r_i s_{1i} s_{2i}}
                     {(n_i - 1) s_{1i}^2}\\right)

    (the bias-corrected :math:`y_i` plugged in, as metafor 3.8 computes it).

    Parameters
    ----------
    %(paired_means)s
    sd1i, sd2i : array-like of shape (n_studies,)
        Their standard deviations (``sd1i`` positive).
    %(paired_sizes)s

    %(returns)s

    %(metafor_46_notes)s

    References
    ----------
    .. [1] Bonett, D. G. (2008). Confidence intervals for standardized linear
       contrasts of means. Psychological Methods, 13(2), 99-109.
    """
    x, skip = _changes(m1i=m1i, sd1i=sd1i, m2i=m2i, sd2i=sd2i, ni=ni, ri=ri)
    _positive(x, "sd1i")
    _at_least(x, 3, "ni")
    n = x["ni"]
    j = _hedges_j(n - 1)
    g = j * (x["m1i"] - x["m2i"]) / x["sd1i"]
    vi = j**2 * (
        g**2 / (2 * (n - 1)) + _change_variance(x) / ((n - 1) * x["sd1i"] ** 2)
    )
    return _finish(g, vi, skip)


# --------------------------------------------------------------------------- #
# correlations
# --------------------------------------------------------------------------- #
def _correlations(ri, ni, min_n):
    x = _arrays(ri=ri, ni=ni)
    with np.errstate(invalid="ignore"):
        if np.any(np.abs(x["ri"]) > 1):
            raise ValueError("ri must lie in [-1, 1]")
        if np.any(x["ni"] < min_n):
            raise ValueError(f"ni must be at least {min_n}")
    return x["ri"], x["ni"], _missing(x)


@_doc
def correlation(ri: ArrayLike, ni: ArrayLike, *, vtype: str = "LS") -> EffectSize:
    """Use raw correlation coefficients as effect sizes (metafor ``"COR"``).

    .. math::

        y_i = r_i, \\qquad v_i = \\frac{(1 - r_i^2)^2}{n_i - 1}
        \\quad (\\text{vtype="LS"}),

    the large-sample variance (Borenstein, 2009, eq. 12.27). ``vtype="AV"``
    plugs the sample-size weighted average :math:`\\bar r = \\sum_i n_i r_i /
    \\sum_i n_i` over all studies into it instead of :math:`r_i`;
    ``vtype="H0"`` is the variance when the true correlation is zero,
    :math:`v_i = 1/(n_i - 1)` (metafor 4.8 or later).

    Parameters
    ----------
    ri : array-like of shape (n_studies,)
        Pearson correlations, in [-1, 1].
    ni : array-like of shape (n_studies,)
        Sample sizes, at least 2.
    vtype : {"LS", "AV", "H0"}, default="LS"
        Which sampling variance to compute.

    %(returns)s

    References
    ----------
    .. [1] %(borenstein_2009)s
    """
    _check_vtype(vtype, ("LS", "AV", "H0"))
    r, n, skip = _correlations(ri, ni, 2)
    if vtype == "LS":
        vi = (1 - r**2) ** 2 / (n - 1)
    elif vtype == "AV":
        vi = (1 - _average(r, n) ** 2) ** 2 / (n - 1)
    else:  # "H0"
        vi = 1 / (n - 1)
    return _finish(r.copy(), vi, skip)


#: Below this value of c, 2F1(a, b; c; z) is left to scipy (whose transformations
#: are accurate there); at or above it the power series converges within a few
#: dozen terms for every z in [0, 1] (its terms decay like k^(a + b - c - 1)),
#: while scipy fails near z = 1 (it returns NaN for c >= 150, z >= 0.99).
_HYP2F1_SERIES_MIN_C = 50.0
_HYP2F1_MAX_TERMS = 10_000


def _hyp2f1(a: float, b: float, c, z):
    """Gauss hypergeometric function 2F1(a, b; c; z) for 0 <= z <= 1, c > a + b."""
    c, z = np.broadcast_arrays(np.asarray(c, float), np.asarray(z, float))
    out = special.hyp2f1(a, b, c, z)
    use_series = c >= _HYP2F1_SERIES_MIN_C
    if np.any(use_series):
        cs, zs = c[use_series], z[use_series]
        term = np.ones_like(cs)
        total = np.ones_like(cs)
        for k in range(_HYP2F1_MAX_TERMS):
            term = term * (k + a) * (k + b) / ((k + cs) * (k + 1)) * zs
            total = total + term
            if np.all(term <= np.finfo(float).eps * total):
                break
        out = np.array(out, copy=True)
        out[use_series] = total
    return out


@_doc
def unbiased_correlation(
    ri: ArrayLike, ni: ArrayLike, *, vtype: str = "LS"
) -> EffectSize:
    """Compute bias-corrected correlation coefficients (metafor ``"UCOR"``).

    The exact minimum-variance unbiased estimator of Olkin & Pratt (1958,
    eq. 2.3),

    .. math::

        y_i = u_i = r_i \\, {}_2F_1\\!\\left(\\tfrac12, \\tfrac12;
              \\tfrac{n_i - 2}{2}; 1 - r_i^2\\right),

    with sampling variance (``vtype``)

    - ``"LS"``: :math:`v_i = (1 - u_i^2)^2/(n_i - 1)`;
    - ``"UB"``: the unbiased estimate (Hedges, 1989, exact form)
      :math:`v_i = u_i^2 - \\big(1 - \\frac{n_i-3}{n_i-2}(1 - r_i^2)\\,
      {}_2F_1(1, 1; \\tfrac{n_i}{2}; 1 - r_i^2)\\big)`;
    - ``"AV"``: ``"LS"`` with the sample-size weighted average
      :math:`\\bar u = \\sum_i n_i u_i / \\sum_i n_i` instead of :math:`u_i`.

    Parameters
    ----------
    ri : array-like of shape (n_studies,)
        Pearson correlations, in [-1, 1].
    ni : array-like of shape (n_studies,)
        Sample sizes, at least 5.
    vtype : {"LS", "UB", "AV"}, default="LS"
        Which sampling variance to compute.

    %(returns)s

    References
    ----------
    .. [1] Olkin, I., & Pratt, J. W. (1958). Unbiased estimation of certain
       correlation coefficients. Annals of Mathematical Statistics, 29(1),
       201-211.
    .. [2] Hedges, L. V. (1989). An unbiased correction for sampling error in
       validity generalization studies. Journal of Applied Psychology, 74(3),
       469-477.
    """
    _check_vtype(vtype, ("LS", "UB", "AV"))
    r, n, skip = _correlations(ri, ni, 5)
    z = (1 - r) * (1 + r)
    u = r * _hyp2f1(0.5, 0.5, (n - 2) / 2, z)
    if vtype == "LS":
        vi = (1 - u**2) ** 2 / (n - 1)
    elif vtype == "AV":
        vi = (1 - _average(u, n) ** 2) ** 2 / (n - 1)
    else:  # "UB"
        vi = u**2 - (1 - (n - 3) / (n - 2) * z * _hyp2f1(1.0, 1.0, n / 2, z))
    return _finish(u, vi, skip)


@_doc
def fisher_z(ri: ArrayLike, ni: ArrayLike) -> EffectSize:
    """Compute Fisher's r-to-z transformed correlations (metafor ``"ZCOR"``).

    .. math::

        y_i = \\operatorname{artanh}(r_i)
            = \\frac{1}{2}\\log\\frac{1 + r_i}{1 - r_i}, \\qquad
        v_i = \\frac{1}{n_i - 3}.

    :math:`|r_i| = 1` gives ``NaN`` (infinite :math:`z`) with a warning.

    Parameters
    ----------
    ri : array-like of shape (n_studies,)
        Pearson correlations, in [-1, 1].
    ni : array-like of shape (n_studies,)
        Sample sizes, at least 4.

    %(returns)s

    References
    ----------
    .. [1] Fisher, R. A. (1921). On the "probable error" of a coefficient of
       correlation deduced from a small sample. Metron, 1, 1-32.
    """
    r, n, skip = _correlations(ri, ni, 4)
    with np.errstate(divide="ignore"):
        yi = np.arctanh(r)
    return _finish(yi, 1 / (n - 3), skip)


def _regressions(extra_df, **named):
    """Validate regression t-statistics; return them with the residual df.

    ``extra_df`` is how many more residual degrees of freedom than one the
    variance formula needs (n - p - 1 - extra_df > 0).
    """
    x = _arrays(**named)
    _at_least(x, 1, "mi")
    df = x["ni"] - x["mi"] - 1
    with np.errstate(invalid="ignore"):
        if np.any(df - extra_df <= 0):
            raise ValueError(
                f"ni must exceed mi + {1 + extra_df} (the residual degrees of "
                "freedom of the regression, ni - mi - 1, are too few)"
            )
    return x, df


def _partial(ti, df):
    return ti / np.sqrt(ti**2 + df)


@_doc
def partial_correlation(ti: ArrayLike, ni: ArrayLike, mi: ArrayLike) -> EffectSize:
    """Compute partial correlations from regression t-statistics (``"PCOR"``).

    For the t-statistic :math:`t_i` of the focal coefficient in a linear
    regression with :math:`p_i` predictors (``mi``, counting the focal one, not
    the intercept) fitted to :math:`n_i` observations, with residual degrees
    of freedom :math:`\\nu_i = n_i - p_i - 1`,

    .. math::

        y_i = \\frac{t_i}{\\sqrt{t_i^2 + \\nu_i}}, \\qquad
        v_i = \\frac{(1 - y_i^2)^2}{\\nu_i}

    (Aloe & Thompson, 2013).

    Parameters
    ----------
    ti : array-like of shape (n_studies,)
        t-statistics of the focal regression coefficient (their sign is the
        sign of the correlation).
    ni : array-like of shape (n_studies,)
        Sample sizes.
    mi : array-like of shape (n_studies,)
        Numbers of predictors in the models, counting the focal predictor (at
        least 1).

    %(returns)s

    Notes
    -----
    ``mi`` counts all predictors, as in metafor 4.4 or later; metafor 3.8's
    ``mi`` enters the same formulas.

    References
    ----------
    .. [1] %(aloe_thompson_2013)s
    """
    x, df = _regressions(0, ti=ti, ni=ni, mi=mi)
    r = _partial(x["ti"], df)
    return _finish(r, (1 - r**2) ** 2 / df, _missing(x))


@_doc
def fisher_z_partial_correlation(
    ti: ArrayLike, ni: ArrayLike, mi: ArrayLike
) -> EffectSize:
    """Compute Fisher-z transformed partial correlations (metafor ``"ZPCOR"``).

    With the partial correlation :math:`r_i` of :func:`partial_correlation`
    (predictors counted by ``mi``, including the focal one),

    .. math::

        y_i = \\operatorname{artanh}(r_i), \\qquad
        v_i = \\frac{1}{n_i - p_i - 2},

    the variance of Fisher's z for a correlation controlled for
    :math:`p_i - 1` variables (as :math:`1/(n_i - 3)` for a simple
    correlation).

    Parameters
    ----------
    %(regression)s

    %(returns)s

    Notes
    -----
    metafor 3.8 used :math:`1/(n_i - p_i - 1)`; metafor 4.0 changed it to this
    analogue of :math:`1/(n_i - 3)` (its NEWS), with ``mi`` counting all
    predictors since 4.4.

    References
    ----------
    .. [1] %(aloe_thompson_2013)s
    """
    x, df = _regressions(1, ti=ti, ni=ni, mi=mi)
    return _finish(np.arctanh(_partial(x["ti"], df)), 1 / (df - 1), _missing(x))


def _semipartial(ti, ni, mi, r2i):
    x, df = _regressions(0, ti=ti, ni=ni, mi=mi, r2i=r2i)
    with np.errstate(invalid="ignore"):
        if np.any((x["r2i"] < 0) | (x["r2i"] >= 1)):
            raise ValueError("r2i must lie in [0, 1)")
    sr = x["ti"] * np.sqrt((1 - x["r2i"]) / df)
    reduced = x["r2i"] - sr**2  # R^2 of the model without the focal predictor
    with np.errstate(invalid="ignore"):
        if np.any(reduced < 0):
            raise ValueError(
                "ti and r2i are inconsistent: the squared semi-partial "
                "correlation ti^2 (1 - r2i) / (ni - mi - 1) exceeds r2i"
            )
    r2 = x["r2i"]
    vi = (r2**2 - 2 * r2 + reduced + 1 - reduced**2) / x["ni"]
    return sr, vi, _missing(x)


@_doc
def semipartial_correlation(
    ti: ArrayLike, ni: ArrayLike, mi: ArrayLike, r2i: ArrayLike
) -> EffectSize:
    """Compute semi-partial correlations from regression results (``"SPCOR"``).

    With :math:`R_i^2` of the full model, residual degrees of freedom
    :math:`\\nu_i = n_i - p_i - 1` and the :math:`R^2` without the focal
    predictor, :math:`R_{(i)}^2 = R_i^2 - y_i^2`,

    .. math::

        y_i = t_i \\sqrt{\\frac{1 - R_i^2}{\\nu_i}}, \\qquad
        v_i = \\frac{R_i^4 - 2R_i^2 + R_{(i)}^2 + 1 - R_{(i)}^4}{n_i}

    (Aloe & Becker, 2012).

    %(semipartial_parameters)s

    References
    ----------
    .. [1] %(aloe_becker_2012)s
    """
    sr, vi, skip = _semipartial(ti, ni, mi, r2i)
    return _finish(sr, vi, skip)


@_doc
def fisher_z_semipartial_correlation(
    ti: ArrayLike, ni: ArrayLike, mi: ArrayLike, r2i: ArrayLike
) -> EffectSize:
    """Compute Fisher-z transformed semi-partial correlations (``"ZSPCOR"``).

    With the semi-partial correlation :math:`r_i` and its variance
    :math:`v^{sr}_i` of :func:`semipartial_correlation`, by the delta method

    .. math::

        y_i = \\operatorname{artanh}(r_i), \\qquad
        v_i = \\frac{v^{sr}_i}{(1 - r_i^2)^2}.

    The transformation does not stabilize the variance of a semi-partial
    correlation (metafor's documentation makes the same remark).

    %(semipartial_parameters)s

    References
    ----------
    .. [1] %(aloe_becker_2012)s
    """
    sr, vi, skip = _semipartial(ti, ni, mi, r2i)  # |sr| <= sqrt(r2i) < 1
    return _finish(np.arctanh(sr), vi / (1 - sr**2) ** 2, skip)


# --------------------------------------------------------------------------- #
# single-group means and variability
# --------------------------------------------------------------------------- #
def _single_means(mi, sdi, ni):
    x = _arrays(mi=mi, sdi=sdi, ni=ni)
    _nonneg(x, "sdi")
    _positive(x, "ni")
    return x, _missing(x)


@_doc
def raw_mean(*, mi: ArrayLike, sdi: ArrayLike, ni: ArrayLike) -> EffectSize:
    """Use raw means as effect sizes (metafor ``"MN"``).

    .. math::

        y_i = \\bar x_i, \\qquad v_i = \\frac{s_i^2}{n_i}.

    Parameters
    ----------
    mi : array-like of shape (n_studies,)
        Means.
    sdi : array-like of shape (n_studies,)
        Standard deviations of the observations (not standard errors).
    ni : array-like of shape (n_studies,)
        Sample sizes.

    %(returns)s
    """
    x, skip = _single_means(mi, sdi, ni)
    return _finish(x["mi"].copy(), x["sdi"] ** 2 / x["ni"], skip)


@_doc
def log_mean(*, mi: ArrayLike, sdi: ArrayLike, ni: ArrayLike) -> EffectSize:
    """Compute log-transformed means (metafor ``"MNLN"``).

    .. math::

        y_i = \\ln \\bar x_i, \\qquad v_i = \\frac{s_i^2}{n_i \\bar x_i^2}

    (the delta method; for ratio-scale data, Nakagawa et al., 2015).

    Parameters
    ----------
    mi : array-like of shape (n_studies,)
        Means (positive).
    sdi : array-like of shape (n_studies,)
        Standard deviations of the observations.
    ni : array-like of shape (n_studies,)
        Sample sizes.

    %(returns)s

    References
    ----------
    .. [1] %(nakagawa_2015)s
    """
    x, skip = _single_means(mi, sdi, ni)
    _positive(x, "mi")
    m = x["mi"]
    return _finish(np.log(m), x["sdi"] ** 2 / (x["ni"] * m**2), skip)


@_doc
def log_standard_deviation(*, sdi: ArrayLike, ni: ArrayLike) -> EffectSize:
    """Compute bias-corrected log standard deviations (metafor ``"SDLN"``).

    .. math::

        y_i = \\ln s_i + \\frac{1}{2(n_i - 1)}, \\qquad
        v_i = \\frac{1}{2(n_i - 1)}

    (Raudenbush & Bryk, 1987; Nakagawa et al., 2015).

    Parameters
    ----------
    %(log_sd)s

    %(returns)s

    References
    ----------
    .. [1] Raudenbush, S. W., & Bryk, A. S. (1987). Examining correlates of
       diversity. Journal of Educational Statistics, 12(3), 241-269.
    .. [2] %(nakagawa_2015)s
    """
    x = _arrays(sdi=sdi, ni=ni)
    _positive(x, "sdi")
    _at_least(x, 2, "ni")
    b = 1 / (2 * (x["ni"] - 1))
    return _finish(np.log(x["sdi"]) + b, b, _missing(x))


@_doc
def log_coefficient_of_variation(
    *, mi: ArrayLike, sdi: ArrayLike, ni: ArrayLike
) -> EffectSize:
    """Compute bias-corrected log coefficients of variation (metafor ``"CVLN"``).

    .. math::

        y_i = \\ln\\frac{s_i}{\\bar x_i} + \\frac{1}{2(n_i - 1)}, \\qquad
        v_i = \\frac{1}{2(n_i - 1)} + \\frac{s_i^2}{n_i \\bar x_i^2}

    (Nakagawa et al., 2015, eq. 27 without the covariance term, since mean
    and variance of normal data are independent).

    Parameters
    ----------
    mi : array-like of shape (n_studies,)
        Means (positive).
    %(log_sd)s

    %(returns)s

    References
    ----------
    .. [1] %(nakagawa_2015)s
    """
    x, skip = _single_means(mi, sdi, ni)
    _positive(x, "mi", "sdi")
    _at_least(x, 2, "ni")
    m, s, n = x["mi"], x["sdi"], x["ni"]
    b = 1 / (2 * (n - 1))
    return _finish(np.log(s / m) + b, b + s**2 / (n * m**2), skip)


# --------------------------------------------------------------------------- #
# single proportions
# --------------------------------------------------------------------------- #
def _proportions(xi, ni, correction, add_to):
    """Validate event counts and apply the continuity correction to x and n-x."""
    x = _counts({"xi": xi, "ni": ni}, ("xi",), ("ni",), correction, add_to)
    with np.errstate(invalid="ignore"):
        if np.any(x["xi"] > x["ni"]):
            raise ValueError("xi cannot exceed ni")
        has_zero = (x["xi"] == 0) | (x["xi"] == x["ni"])
    add = _continuity_correction(has_zero, correction, add_to)
    return x["xi"] + add, x["ni"] + 2 * add, _missing(x)


@_doc
def proportion(
    xi: ArrayLike,
    ni: ArrayLike,
    *,
    vtype: str = "LS",
    correction: float = 0.5,
    add_to: str = "only0",
) -> EffectSize:
    """Use raw proportions as effect sizes (metafor ``"PR"``).

    With :math:`p_i = x_i / n_i` after the continuity correction,

    .. math::

        y_i = p_i, \\qquad v_i = \\frac{p_i (1 - p_i)}{n_i}
        \\quad (\\text{vtype="LS"}).

    ``vtype="UB"`` gives the unbiased :math:`p_i(1 - p_i)/(n_i - 1)`;
    ``vtype="AV"`` plugs the pooled proportion
    :math:`\\bar p = \\sum_i x_i / \\sum_i n_i` (of all studies, after the
    correction) into the ``"LS"`` formula (both as metafor 3.8 computes them).

    %(proportion_parameters)s

    References
    ----------
    .. [1] %(fleiss_berlin_2009)s
    """
    _check_vtype(vtype, ("LS", "UB", "AV"))
    x, n, skip = _proportions(xi, ni, correction, add_to)
    p = x / n
    with np.errstate(divide="ignore", invalid="ignore"):
        if vtype == "LS":
            vi = p * (1 - p) / n
        elif vtype == "UB":
            vi = p * (1 - p) / (n - 1)
        else:  # "AV"
            p_bar = _average(p, n)
            vi = p_bar * (1 - p_bar) / n
    return _finish(p, vi, skip)


@_doc
def log_proportion(
    xi: ArrayLike,
    ni: ArrayLike,
    *,
    vtype: str = "LS",
    correction: float = 0.5,
    add_to: str = "only0",
) -> EffectSize:
    """Compute log-transformed proportions (metafor ``"PLN"``).

    After the continuity correction,

    .. math::

        y_i = \\log\\frac{x_i}{n_i}, \\qquad v_i = \\frac{1}{x_i} - \\frac{1}{n_i}
        \\quad (\\text{vtype="LS"});

    ``vtype="AV"`` uses :math:`v_i = 1/(\\bar p n_i) - 1/n_i` with the pooled
    proportion :math:`\\bar p = \\sum_i x_i / \\sum_i n_i` (as metafor 3.8).

    %(proportion_parameters)s

    References
    ----------
    .. [1] %(fleiss_berlin_2009)s
    """
    _check_vtype(vtype, ("LS", "AV"))
    x, n, skip = _proportions(xi, ni, correction, add_to)
    with np.errstate(divide="ignore", invalid="ignore"):
        if vtype == "LS":
            vi = 1 / x - 1 / n
        else:  # "AV"
            vi = 1 / (_average(x / n, n) * n) - 1 / n
        return _finish(np.log(x / n), vi, skip)


@_doc
def logit_proportion(
    xi: ArrayLike,
    ni: ArrayLike,
    *,
    vtype: str = "LS",
    correction: float = 0.5,
    add_to: str = "only0",
) -> EffectSize:
    """Compute logit-transformed proportions, i.e. log odds (metafor ``"PLO"``).

    After the continuity correction,

    .. math::

        y_i = \\log\\frac{x_i}{n_i - x_i}, \\qquad
        v_i = \\frac{1}{x_i} + \\frac{1}{n_i - x_i}
        \\quad (\\text{vtype="LS"});

    ``vtype="AV"`` uses :math:`v_i = 1/(n_i \\bar p (1 - \\bar p))` with the
    pooled proportion :math:`\\bar p = \\sum_i x_i / \\sum_i n_i` (as metafor 3.8).

    %(proportion_parameters)s

    References
    ----------
    .. [1] %(fleiss_berlin_2009)s
    """
    _check_vtype(vtype, ("LS", "AV"))
    x, n, skip = _proportions(xi, ni, correction, add_to)
    with np.errstate(divide="ignore", invalid="ignore"):
        if vtype == "LS":
            vi = 1 / x + 1 / (n - x)
        else:  # "AV"
            p_bar = _average(x / n, n)
            vi = 1 / (n * p_bar * (1 - p_bar))
        return _finish(np.log(x) - np.log(n - x), vi, skip)


@_doc
def arcsine_proportion(
    xi: ArrayLike, ni: ArrayLike, *, correction: float = 0.0, add_to: str = "only0"
) -> EffectSize:
    """Compute arcsine square-root transformed proportions (metafor ``"PAS"``).

    .. math::

        y_i = \\arcsin\\sqrt{x_i / n_i}, \\qquad v_i = \\frac{1}{4 n_i}.

    As in metafor, no continuity correction is applied by default.

    %(proportion_parameters)s

    References
    ----------
    .. [1] %(fleiss_berlin_2009)s
    """
    x, n, skip = _proportions(xi, ni, correction, add_to)
    return _finish(np.arcsin(np.sqrt(x / n)), 1 / (4 * n), skip)


@_doc
def freeman_tukey_proportion(
    xi: ArrayLike, ni: ArrayLike, *, correction: float = 0.0, add_to: str = "only0"
) -> EffectSize:
    """Compute Freeman-Tukey double arcsine transformed proportions (``"PFT"``).

    .. math::

        y_i = \\frac{1}{2}\\left(\\arcsin\\sqrt{\\frac{x_i}{n_i + 1}}
            + \\arcsin\\sqrt{\\frac{x_i + 1}{n_i + 1}}\\right), \\qquad
        v_i = \\frac{1}{4 n_i + 2}.

    As in metafor, no continuity correction is applied by default.

    %(proportion_parameters)s

    References
    ----------
    .. [1] %(freeman_tukey_1950)s
    """
    x, n, skip = _proportions(xi, ni, correction, add_to)
    yi = 0.5 * (np.arcsin(np.sqrt(x / (n + 1))) + np.arcsin(np.sqrt((x + 1) / (n + 1))))
    return _finish(yi, 1 / (4 * n + 2), skip)


# --------------------------------------------------------------------------- #
# incidence rates
# --------------------------------------------------------------------------- #
def _single_rates(xi, ti, correction, add_to):
    """Validate event counts over person-times and correct zero counts."""
    x = _counts({"xi": xi, "ti": ti}, ("xi",), ("ti",), correction, add_to)
    with np.errstate(invalid="ignore"):
        has_zero = x["xi"] == 0
    add = _continuity_correction(has_zero, correction, add_to)
    return x["xi"] + add, x["ti"], _missing(x)


@_doc
def incidence_rate(
    *, xi: ArrayLike, ti: ArrayLike, correction: float = 0.5, add_to: str = "only0"
) -> EffectSize:
    """Use raw incidence rates as effect sizes (metafor ``"IR"``).

    With :math:`x_i` events over person-time :math:`t_i` (after the continuity
    correction of zero counts),

    .. math::

        y_i = \\frac{x_i}{t_i}, \\qquad v_i = \\frac{x_i}{t_i^2}.

    With the expected number of events as ``ti``, this is the standardized
    incidence ratio.

    %(event_rate_parameters)s

    References
    ----------
    .. [1] %(rothman_2008)s
    """
    x, t, skip = _single_rates(xi, ti, correction, add_to)
    return _finish(x / t, x / t**2, skip)


@_doc
def log_incidence_rate(
    *, xi: ArrayLike, ti: ArrayLike, correction: float = 0.5, add_to: str = "only0"
) -> EffectSize:
    """Compute log incidence rates (metafor ``"IRLN"``).

    .. math::

        y_i = \\ln\\frac{x_i}{t_i}, \\qquad v_i = \\frac{1}{x_i},

    after the continuity correction of zero counts.

    %(event_rate_parameters)s

    References
    ----------
    .. [1] %(rothman_2008)s
    """
    x, t, skip = _single_rates(xi, ti, correction, add_to)
    with np.errstate(divide="ignore"):
        return _finish(np.log(x / t), 1 / x, skip)


@_doc
def sqrt_incidence_rate(
    *, xi: ArrayLike, ti: ArrayLike, correction: float = 0.0, add_to: str = "only0"
) -> EffectSize:
    """Compute square-root transformed incidence rates (metafor ``"IRS"``).

    .. math::

        y_i = \\sqrt{x_i / t_i}, \\qquad v_i = \\frac{1}{4 t_i}.

    As in metafor, no continuity correction is applied by default.

    %(event_rate_parameters)s

    References
    ----------
    .. [1] %(freeman_tukey_1950)s
    """
    x, t, skip = _single_rates(xi, ti, correction, add_to)
    return _finish(np.sqrt(x / t), 1 / (4 * t), skip)


@_doc
def freeman_tukey_incidence_rate(
    *, xi: ArrayLike, ti: ArrayLike, correction: float = 0.0, add_to: str = "only0"
) -> EffectSize:
    """Compute Freeman-Tukey transformed incidence rates (metafor ``"IRFT"``).

    .. math::

        y_i = \\frac{1}{2}\\left(\\sqrt{\\frac{x_i}{t_i}}
              + \\sqrt{\\frac{x_i + 1}{t_i}}\\right), \\qquad
        v_i = \\frac{1}{4 t_i}.

    As in metafor, no continuity correction is applied by default.

    %(event_rate_parameters)s

    References
    ----------
    .. [1] %(freeman_tukey_1950)s
    """
    x, t, skip = _single_rates(xi, ti, correction, add_to)
    yi = (np.sqrt(x / t) + np.sqrt((x + 1) / t)) / 2
    return _finish(yi, 1 / (4 * t), skip)


def _rates(x1i, t1i, x2i, t2i, correction, add_to, drop00):
    """Validate two-group event counts and person-times; correct zero counts.

    Returns the corrected counts, the person-times and the mask of studies that
    are NaN by design (a missing input, or dropped by ``drop00``).
    """
    named = {"x1i": x1i, "t1i": t1i, "x2i": x2i, "t2i": t2i}
    x = _counts(named, ("x1i", "x2i"), ("t1i", "t2i"), correction, add_to, drop00)
    x1, x2 = x["x1i"], x["x2i"]
    with np.errstate(invalid="ignore"):
        has_zero = (x1 == 0) | (x2 == 0)
        drop = (x1 == 0) & (x2 == 0) if drop00 else np.zeros_like(has_zero)
    add = _continuity_correction(has_zero & ~drop, correction, add_to)
    return x1 + add, x["t1i"], x2 + add, x["t2i"], drop | _missing(x)


@_doc
def log_incidence_rate_ratio(
    *,
    x1i: ArrayLike,
    t1i: ArrayLike,
    x2i: ArrayLike,
    t2i: ArrayLike,
    correction: float = 0.5,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    """Compute log incidence rate ratios (metafor ``measure="IRR"``).

    With events :math:`x_{1i}, x_{2i}` over person-times :math:`t_{1i}, t_{2i}`,
    after the continuity correction (added to both event counts),

    .. math::

        y_i = \\log\\frac{x_{1i} / t_{1i}}{x_{2i} / t_{2i}}, \\qquad
        v_i = \\frac{1}{x_{1i}} + \\frac{1}{x_{2i}}.

    %(two_group_rate_parameters)s

    References
    ----------
    .. [1] %(rothman_2008)s
    """
    x1, t1, x2, t2, skip = _rates(x1i, t1i, x2i, t2i, correction, add_to, drop00)
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = np.log(x1 / t1) - np.log(x2 / t2)
        vi = 1 / x1 + 1 / x2
    return _finish(yi, vi, skip)


@_doc
def incidence_rate_difference(
    *,
    x1i: ArrayLike,
    t1i: ArrayLike,
    x2i: ArrayLike,
    t2i: ArrayLike,
    correction: float = 0.5,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    """Compute incidence rate differences (metafor ``measure="IRD"``).

    After the continuity correction (added to both event counts),

    .. math::

        y_i = \\frac{x_{1i}}{t_{1i}} - \\frac{x_{2i}}{t_{2i}}, \\qquad
        v_i = \\frac{x_{1i}}{t_{1i}^2} + \\frac{x_{2i}}{t_{2i}^2}.

    %(two_group_rate_parameters)s

    References
    ----------
    .. [1] %(rothman_2008)s
    """
    x1, t1, x2, t2, skip = _rates(x1i, t1i, x2i, t2i, correction, add_to, drop00)
    return _finish(x1 / t1 - x2 / t2, x1 / t1**2 + x2 / t2**2, skip)


@_doc
def sqrt_incidence_rate_difference(
    *,
    x1i: ArrayLike,
    t1i: ArrayLike,
    x2i: ArrayLike,
    t2i: ArrayLike,
    correction: float = 0.0,
    add_to: str = "only0",
    drop00: bool = False,
) -> EffectSize:
    """Compute square-root transformed incidence rate differences (``"IRSD"``).

    .. math::

        y_i = \\sqrt{\\frac{x_{1i}}{t_{1i}}} - \\sqrt{\\frac{x_{2i}}{t_{2i}}},
        \\qquad v_i = \\frac{1}{4 t_{1i}} + \\frac{1}{4 t_{2i}}.

    As in metafor, no continuity correction is applied by default.

    %(two_group_rate_parameters)s

    References
    ----------
    .. [1] Bagos, P. G., & Nikolopoulos, G. K. (2009). Mixed-effects Poisson
       regression models for meta-analysis of follow-up studies with constant
       or varying durations. The International Journal of Biostatistics, 5(1).
    """
    x1, t1, x2, t2, skip = _rates(x1i, t1i, x2i, t2i, correction, add_to, drop00)
    yi = np.sqrt(x1 / t1) - np.sqrt(x2 / t2)
    return _finish(yi, 1 / (4 * t1) + 1 / (4 * t2), skip)


# --------------------------------------------------------------------------- #
# dispatcher
# --------------------------------------------------------------------------- #
#: metafor measure code -> effect-size function.
MEASURES = {
    "RR": log_risk_ratio,
    "OR": log_odds_ratio,
    "PETO": peto_log_odds_ratio,
    "RD": risk_difference,
    "AS": arcsine_risk_difference,
    "PHI": phi_coefficient,
    "YUQ": yules_q,
    "YUY": yules_y,
    "RTET": tetrachoric_correlation,
    "PBIT": probit_risk_difference,
    "OR2DN": odds_ratio_to_d_normal,
    "OR2DL": odds_ratio_to_d_logistic,
    "MD": mean_difference,
    "SMD": standardized_mean_difference,
    "SMDH": standardized_mean_difference_heteroscedastic,
    "ROM": log_ratio_of_means,
    "VR": log_variability_ratio,
    "CVR": log_coefficient_of_variation_ratio,
    "D2ORN": d_to_log_odds_ratio_normal,
    "D2ORL": d_to_log_odds_ratio_logistic,
    "AUC": area_under_curve,
    "AUCN": area_under_curve_binormal,
    "MC": mean_change,
    "SMCC": standardized_mean_change,
    "SMCR": standardized_mean_change_raw,
    "SMCRH": standardized_mean_change_raw_heteroscedastic,
    "COR": correlation,
    "UCOR": unbiased_correlation,
    "ZCOR": fisher_z,
    "PCOR": partial_correlation,
    "ZPCOR": fisher_z_partial_correlation,
    "SPCOR": semipartial_correlation,
    "ZSPCOR": fisher_z_semipartial_correlation,
    "MN": raw_mean,
    "MNLN": log_mean,
    "SDLN": log_standard_deviation,
    "CVLN": log_coefficient_of_variation,
    "PR": proportion,
    "PLN": log_proportion,
    "PLO": logit_proportion,
    "PAS": arcsine_proportion,
    "PFT": freeman_tukey_proportion,
    "IR": incidence_rate,
    "IRLN": log_incidence_rate,
    "IRS": sqrt_incidence_rate,
    "IRFT": freeman_tukey_incidence_rate,
    "IRR": log_incidence_rate_ratio,
    "IRD": incidence_rate_difference,
    "IRSD": sqrt_incidence_rate_difference,
}


@_doc
def escalc(measure: str, **kwargs: object) -> EffectSize:
    """Compute effect sizes by metafor measure code.

    A thin dispatcher over the functions of this module: ``escalc("RR",
    ai=..., bi=..., ci=..., di=...)`` is ``log_risk_ratio(ai=..., bi=...,
    ci=..., di=...)``. Data arguments use metafor's names (``ai, bi, ci, di,
    n1i, n2i, m1i, sd1i, m2i, sd2i, ri, ti, mi, r2i, sdi, ni, xi, x1i, t1i,
    x2i, t2i``); the options are this module's (``correction``, ``add_to``,
    ``drop00``, ``vtype``, ``correct``), not metafor's ``add`` and ``to``.
    The measures and their functions are tabulated in the module docstring.

    Parameters
    ----------
    measure : str
        One of the keys of :data:`MEASURES` (case-insensitive), metafor's
        measure codes.
    **kwargs : dict
        Keyword arguments of the corresponding function.

    %(returns)s

    Examples
    --------
    >>> from skmeta.effect_sizes import escalc
    >>> yi, vi = escalc("ZCOR", ri=[0.5], ni=[28])
    >>> round(float(yi[0]), 4), round(float(vi[0]), 4)
    (0.5493, 0.04)
    """
    key = measure.upper() if isinstance(measure, str) else measure
    if key not in MEASURES:
        raise ValueError(f"measure must be one of {sorted(MEASURES)}; got {measure!r}")
    func = MEASURES[key]
    try:
        inspect.signature(func).bind(**kwargs)
    except TypeError as exc:  # unknown or missing keyword for this measure
        raise ValueError(f"invalid arguments for measure {key!r}: {exc}") from None
    return func(**kwargs)
