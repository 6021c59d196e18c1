"""Loaders for the example meta-analysis datasets bundled with skmeta.

Every dataset is a small CSV file in ``skmeta/datasets/data/`` (no network access
is ever needed). The numbers are published facts from the cited papers; they
were transcribed from R's metadat 1.2.0 (which itself transcribes the papers) by
``tests/reference/export_datasets.R`` and cross-checked against it. The JIA data
were typed in from Table 1 of Hanada & Sugimoto.

Conventions shared by all loaders:

- each call returns a new :class:`pandas.DataFrame` (mutating it is safe);
- integer-valued columns without missing values have dtype ``int64``;
  integer-valued columns *with* missing values (e.g. ``minutes`` in
  :func:`load_writing_to_learn`) have dtype ``float64`` with ``NaN``;
- text columns have pandas' string dtype (``str``);
- metadat column names containing a dot are spelled with an underscore
  (``pre.nti`` becomes ``pre_nti``).
"""

from collections.abc import Callable
from importlib import resources
from types import MappingProxyType

import numpy as np
import pandas as pd

__all__ = [
    "DATASETS",
    "load_assink2016",
    "load_baskerville2012",
    "load_bcg",
    "load_cohen1981",
    "load_colditz1994",
    "load_collins1985b",
    "load_dataset",
    "load_hackshaw1998",
    "load_hine1989",
    "load_jia",
    "load_knapp2017",
    "load_laopaiboon2015",
    "load_linde2005",
    "load_nielweise2007",
    "load_pupil_iq",
    "load_school_calendar",
    "load_writing_to_learn",
]

_I, _F, _S = "int64", "float64", "str"


def _read(filename: str, schema: dict[str, str]) -> pd.DataFrame:
    """Read a bundled CSV file and enforce its column order and dtypes.

    Parameters
    ----------
    filename : str
        Name of the file in ``skmeta/datasets/data``.
    schema : dict of str to str
        Column name to dtype, in the expected column order.

    Returns
    -------
    frame : pandas.DataFrame
        The data, with exactly the columns of ``schema``.
    """
    path = resources.files("skmeta.datasets").joinpath("data", filename)
    with path.open("r", encoding="utf-8") as fh:
        frame = pd.read_csv(fh, dtype=schema, keep_default_na=False, na_values=[""])
    if list(frame.columns) != list(schema):
        raise RuntimeError(  # pragma: no cover - guards the bundled files
            f"bundled file {filename!r} has columns {list(frame.columns)}, "
            f"expected {list(schema)}"
        )
    return frame


def load_bcg() -> pd.DataFrame:
    """Load the BCG vaccine trials (Colditz et al., 1994).

    Thirteen controlled trials of the Bacillus Calmette-Guérin (BCG) vaccine
    against tuberculosis, each summarised as a 2x2 table::

                          TB positive   TB negative
        vaccinated group     tpos          tneg
        control group        cpos          cneg

    The classic example for random-effects meta-analysis and meta-regression
    (log risk ratio on absolute latitude): compute the effect sizes with
    ``skmeta.effect_sizes.log_risk_ratio(tpos, tneg, cpos, cneg)``.

    Transcribed from Colditz et al. (1994); cross-checked against R package
    metadat 1.2.0 (``dat.bcg``).

    Returns
    -------
    frame : pandas.DataFrame of shape (13, 9)
        Columns:

        - ``trial`` (int64): trial number, 1 to 13.
        - ``author`` (str): author(s) of the trial report.
        - ``year`` (int64): publication year.
        - ``tpos`` (int64): tuberculosis cases in the vaccinated group.
        - ``tneg`` (int64): vaccinated participants without tuberculosis.
        - ``cpos`` (int64): tuberculosis cases in the control group.
        - ``cneg`` (int64): control participants without tuberculosis.
        - ``ablat`` (int64): absolute latitude of the study location, in degrees.
        - ``alloc`` (str): treatment allocation, one of ``"random"``,
          ``"alternate"`` or ``"systematic"``.

    See Also
    --------
    load_colditz1994 : The same data under the name metadat also uses.

    References
    ----------
    .. [1] Colditz, G. A., Brewer, T. F., Berkey, C. S., Wilson, M. E., Burdick,
       E., Fineberg, H. V., & Mosteller, F. (1994). Efficacy of BCG vaccine in
       the prevention of tuberculosis: Meta-analysis of the published
       literature. JAMA, 271(9), 698-702. doi:10.1001/jama.1994.03510330076038
    .. [2] Berkey, C. S., Hoaglin, D. C., Mosteller, F., & Colditz, G. A.
       (1995). A random-effects regression model for meta-analysis. Statistics
       in Medicine, 14(4), 395-411. doi:10.1002/sim.4780140406

    Examples
    --------
    >>> from skmeta.datasets import load_bcg
    >>> bcg = load_bcg()
    >>> bcg.shape
    (13, 9)
    >>> bcg.loc[0, ["tpos", "tneg", "cpos", "cneg"]].tolist()
    [4, 119, 11, 128]
    """
    return _read(
        "bcg.csv",
        {
            "trial": _I,
            "author": _S,
            "year": _I,
            "tpos": _I,
            "tneg": _I,
            "cpos": _I,
            "cneg": _I,
            "ablat": _I,
            "alloc": _S,
        },
    )


def load_colditz1994() -> pd.DataFrame:
    """Load the BCG vaccine trials under their metadat alias (Colditz et al., 1994).

    metadat 1.2.0 ships ``dat.colditz1994`` as an exact copy of ``dat.bcg``
    (checked with R's ``identical`` in ``tests/reference/export_datasets.R``);
    this loader therefore returns the same frame as :func:`load_bcg`. It exists
    so that analyses citing van Houwelingen, Arends & Stijnen (2002), who used
    this name, can be reproduced verbatim.

    Transcribed from Colditz et al. (1994); cross-checked against R package
    metadat 1.2.0 (``dat.colditz1994``).

    Returns
    -------
    frame : pandas.DataFrame of shape (13, 9)
        Columns ``trial, author, year, tpos, tneg, cpos, cneg, ablat, alloc``,
        described in :func:`load_bcg`.

    See Also
    --------
    load_bcg : The same data.

    References
    ----------
    .. [1] Colditz, G. A., Brewer, T. F., Berkey, C. S., Wilson, M. E., Burdick,
       E., Fineberg, H. V., & Mosteller, F. (1994). Efficacy of BCG vaccine in
       the prevention of tuberculosis: Meta-analysis of the published
       literature. JAMA, 271(9), 698-702. doi:10.1001/jama.1994.03510330076038
    .. [2] van Houwelingen, H. C., Arends, L. R., & Stijnen, T. (2002).
       Advanced methods in meta-analysis: Multivariate approach and
       meta-regression. Statistics in Medicine, 21(4), 589-624.
       doi:10.1002/sim.1040
    """
    return load_bcg()


def load_pupil_iq() -> pd.DataFrame:
    """Load the teacher expectancy and pupil IQ studies (Raudenbush, 1984, 1985).

    Nineteen experiments on the "Pygmalion effect": teachers were told that a
    randomly chosen group of pupils would "bloom" intellectually, and the IQ of
    those pupils was later compared with that of a control group. The effect
    size is a standardized mean difference (positive: the designated pupils
    scored higher). The classic moderator is ``weeks``, the prior contact
    between teacher and pupils (usually capped at 3).

    Transcribed from Raudenbush & Bryk (1985), with ``setting`` and ``tester``
    from Raudenbush (1984); cross-checked against R package metadat 1.2.0
    (``dat.raudenbush1985``).

    Returns
    -------
    frame : pandas.DataFrame of shape (19, 10)
        Columns:

        - ``study`` (int64): study number, 1 to 19.
        - ``author`` (str): author(s) of the study.
        - ``year`` (int64): publication year.
        - ``weeks`` (int64): weeks of teacher-pupil contact before the
          expectancy induction.
        - ``setting`` (str): ``"group"`` or ``"indiv"``, whether the IQ test was
          administered to groups or individually.
        - ``tester`` (str): ``"aware"`` or ``"blind"``, whether the test
          administrator knew which pupils were designated.
        - ``n1i`` (int64): size of the experimental ("bloomer") group.
        - ``n2i`` (int64): size of the control group.
        - ``yi`` (float64): standardized mean difference.
        - ``vi`` (float64): its sampling variance.

    References
    ----------
    .. [1] Raudenbush, S. W. (1984). Magnitude of teacher expectancy effects on
       pupil IQ as a function of the credibility of expectancy induction: A
       synthesis of findings from 18 experiments. Journal of Educational
       Psychology, 76(1), 85-97. doi:10.1037/0022-0663.76.1.85
    .. [2] Raudenbush, S. W., & Bryk, A. S. (1985). Empirical Bayes
       meta-analysis. Journal of Educational Statistics, 10(2), 75-98.
       doi:10.3102/10769986010002075

    Examples
    --------
    >>> from skmeta.datasets import load_pupil_iq
    >>> iq = load_pupil_iq()
    >>> iq.loc[0, ["yi", "vi"]].tolist()
    [0.03, 0.0156]
    """
    return _read(
        "pupil_iq.csv",
        {
            "study": _I,
            "author": _S,
            "year": _I,
            "weeks": _I,
            "setting": _S,
            "tester": _S,
            "n1i": _I,
            "n2i": _I,
            "yi": _F,
            "vi": _F,
        },
    )


def load_writing_to_learn() -> pd.DataFrame:
    """Load the writing-to-learn intervention studies (Bangert-Drowns et al., 2004).

    Forty-eight studies comparing students who received instruction with an
    increased emphasis on writing tasks against conventionally taught students,
    on a content-related achievement measure. The effect size is a
    bias-corrected standardized mean difference (positive: higher achievement
    with writing-to-learn), hence slightly different from the values printed in
    the article. Only the total sample size is reported, so the sampling
    variances assume equal group sizes ``ni / 2``.

    Transcribed from Bangert-Drowns et al. (2004); cross-checked against R
    package metadat 1.2.0 (``dat.bangertdrowns2004``).

    Returns
    -------
    frame : pandas.DataFrame of shape (48, 16)
        Columns (binary indicators are coded 0 = no, 1 = yes; ``NaN`` marks a
        value the article does not report):

        - ``id`` (int64): study number, 1 to 48.
        - ``author`` (str): author(s) of the study.
        - ``year`` (int64): publication year.
        - ``grade`` (int64): grade level, 1 = elementary, 2 = middle,
          3 = high school, 4 = college.
        - ``length`` (float64): treatment length in weeks.
        - ``minutes`` (float64): minutes per writing assignment.
        - ``wic`` (float64): writing tasks were completed in class.
        - ``feedback`` (float64): feedback on the writing was provided.
        - ``info`` (float64): writing had informational components.
        - ``pers`` (float64): writing had personal components.
        - ``imag`` (int64): writing had imaginative components.
        - ``meta`` (float64): prompts for metacognitive reflection were given.
        - ``subject`` (str): subject matter.
        - ``ni`` (int64): total sample size.
        - ``yi`` (float64): standardized mean difference.
        - ``vi`` (float64): its sampling variance.

    References
    ----------
    .. [1] Bangert-Drowns, R. L., Hurley, M. M., & Wilkinson, B. (2004). The
       effects of school-based writing-to-learn interventions on academic
       achievement: A meta-analysis. Review of Educational Research, 74(1),
       29-58. doi:10.3102/00346543074001029

    Examples
    --------
    >>> from skmeta.datasets import load_writing_to_learn
    >>> load_writing_to_learn().shape
    (48, 16)
    """
    return _read(
        "writing_to_learn.csv",
        {
            "id": _I,
            "author": _S,
            "year": _I,
            "grade": _I,
            "length": _F,
            "minutes": _F,
            "wic": _F,
            "feedback": _F,
            "info": _F,
            "pers": _F,
            "imag": _I,
            "meta": _F,
            "subject": _S,
            "ni": _I,
            "yi": _F,
            "vi": _F,
        },
    )


def load_school_calendar() -> pd.DataFrame:
    """Load the modified school calendar studies (Konstantopoulos, 2011).

    Fifty-six studies comparing the achievement of students on a modified
    school calendar (more frequent, shorter breaks) with that of students on a
    traditional calendar with a long summer break, meta-analysed by Cooper et
    al. (2003). The effect size is a standardized mean difference (positive:
    higher achievement with the modified calendar). Schools are nested in
    districts: the standard example for three-level meta-analysis
    (``district`` / ``school`` within district).

    Transcribed from Konstantopoulos (2011); cross-checked against R package
    metadat 1.2.0 (``dat.konstantopoulos2011``).

    Returns
    -------
    frame : pandas.DataFrame of shape (56, 6)
        Columns:

        - ``district`` (int64): district identifier (11 distinct districts).
        - ``school`` (int64): school number within its district.
        - ``study`` (int64): study identifier, 1 to 56 (one per row).
        - ``year`` (int64): year of the study.
        - ``yi`` (float64): standardized mean difference.
        - ``vi`` (float64): its sampling variance.

    References
    ----------
    .. [1] Konstantopoulos, S. (2011). Fixed effects and variance components
       estimation in three-level meta-analysis. Research Synthesis Methods,
       2(1), 61-76. doi:10.1002/jrsm.35
    .. [2] Cooper, H., Valentine, J. C., Charlton, K., & Melson, A. (2003). The
       effects of modified school calendars on student achievement and on
       school and community attitudes. Review of Educational Research, 73(1),
       1-52. doi:10.3102/00346543073001001

    Examples
    --------
    >>> from skmeta.datasets import load_school_calendar
    >>> cal = load_school_calendar()
    >>> cal["district"].nunique(), len(cal)
    (11, 56)
    """
    return _read(
        "school_calendar.csv",
        {
            "district": _I,
            "school": _I,
            "study": _I,
            "year": _I,
            "yi": _F,
            "vi": _F,
        },
    )


def load_jia() -> pd.DataFrame:
    """Load the CCR5 and juvenile idiopathic arthritis (JIA) studies.

    Three case-control studies of the association between a CCR5 gene variant
    and JIA, summarised as log odds ratios (Hinks et al., 2010). Hanada &
    Sugimoto use them as their real-data example of a meta-analysis with very
    few studies (their Table 1).

    The sampling variance is **not** the square of the printed standard error:
    the printed SEs are rounded to two decimals, which moves the pooled
    estimate (-0.1925 instead of the paper's -0.195) and its intervals. The
    variance is recovered from the printed 95% confidence interval, which
    carries more information (two numbers of two decimals each),

    .. math::

        v_i = \\left(\\frac{\\mathrm{CIU}_i - \\mathrm{CIL}_i}{2 \\times 1.96}
        \\right)^2,

    exactly as the authors' own code does, and reproduces the paper's Table 1.

    Transcribed from Hanada & Sugimoto, Table 1 (JIA data), with the studies
    of Hinks et al. (2010). Not in R's metadat 1.2.0.

    Returns
    -------
    frame : pandas.DataFrame of shape (3, 6)
        Columns:

        - ``study`` (str): study, e.g. ``"Prahalad et al. (2006)"``.
        - ``log_or`` (float64): log odds ratio, as printed.
        - ``se_printed`` (float64): standard error, as printed (rounded; do
          not use for inference).
        - ``ci_lower`` (float64): lower end of the printed 95% CI.
        - ``ci_upper`` (float64): upper end of the printed 95% CI.
        - ``vi`` (float64): sampling variance ``((ci_upper - ci_lower) /
          3.92) ** 2``.

    References
    ----------
    .. [1] Hanada, K., & Sugimoto, T. Random-effect meta-analysis with robust
       between-study variance. Osaka University (manuscript; software: R
       package metaMest).
    .. [2] Hinks, A., Martin, P., Flynn, E., Eyre, S., Packham, J., Barton, A.,
       Worthington, J., & Thomson, W. (2010). Association of the CCR5 gene with
       juvenile idiopathic arthritis. Genes & Immunity, 11, 584-589.
    .. [3] Prahalad, S., et al. (2006). Association of two functional
       polymorphisms in the CCR5 gene with juvenile rheumatoid arthritis.
       Genes & Immunity, 7, 468-475.
    .. [4] Hinks, A., Worthington, J., & Thomson, W. (2006). The association of
       PTPN22 with rheumatoid arthritis and juvenile idiopathic arthritis.
       Rheumatology, 45, 365-368.
    .. [5] Lindner, E., et al. (2007). Lack of association between the
       chemokine receptor 5 polymorphism CCR5delta32 in rheumatoid arthritis
       and juvenile idiopathic arthritis. BMC Medical Genetics, 8, 1-5.

    Examples
    --------
    >>> from skmeta.datasets import load_jia
    >>> jia = load_jia()
    >>> jia["vi"].round(8).tolist()
    [0.01093945, 0.00797194, 0.01897647]
    """
    frame = _read(
        "jia.csv",
        {
            "study": _S,
            "log_or": _F,
            "se_printed": _F,
            "ci_lower": _F,
            "ci_upper": _F,
        },
    )
    width = frame["ci_upper"].to_numpy() - frame["ci_lower"].to_numpy()
    frame["vi"] = np.square(width / (2.0 * 1.96))
    return frame


def load_laopaiboon2015() -> pd.DataFrame:
    """Load the azithromycin trials for respiratory infections (Laopaiboon, 2015).

    Fifteen trials comparing azithromycin with amoxycillin or
    amoxycillin/clavulanic acid ("amoxyclav") for acute lower respiratory tract
    infections; the outcome is clinical failure. Effect sizes:
    ``skmeta.effect_sizes.log_risk_ratio(ai, n1i - ai, ci, n2i - ci)``.

    Transcribed from Laopaiboon et al. (2015); cross-checked against R package
    metadat 1.2.0 (``dat.laopaiboon2015``).

    Returns
    -------
    frame : pandas.DataFrame of shape (15, 11)
        Columns:

        - ``author`` (str): first author of the trial.
        - ``year`` (int64): publication year.
        - ``ai`` (int64): clinical failures in the azithromycin group.
        - ``n1i`` (int64): patients in the azithromycin group.
        - ``ci`` (int64): clinical failures in the comparator group.
        - ``n2i`` (int64): patients in the comparator group.
        - ``age`` (str): ``"adults"`` or ``"children"``.
        - ``diag_ab`` (int64): 1 if the trial included patients with acute
          bacterial bronchitis.
        - ``diag_cb`` (int64): 1 if it included patients with an acute
          exacerbation of chronic bronchitis.
        - ``diag_pn`` (int64): 1 if it included patients with pneumonia.
        - ``ctrl`` (str): comparator, ``"amoxycillin"`` or ``"amoxyclav"``.

    References
    ----------
    .. [1] Laopaiboon, M., Panpanich, R., & Swa Mya, K. (2015). Azithromycin for
       acute lower respiratory tract infections. Cochrane Database of
       Systematic Reviews, 3, CD001954. doi:10.1002/14651858.CD001954.pub4
    """
    return _read(
        "laopaiboon2015.csv",
        {
            "author": _S,
            "year": _I,
            "ai": _I,
            "n1i": _I,
            "ci": _I,
            "n2i": _I,
            "age": _S,
            "diag_ab": _I,
            "diag_cb": _I,
            "diag_pn": _I,
            "ctrl": _S,
        },
    )


def load_collins1985b() -> pd.DataFrame:
    """Load the trials of diuretics in pregnancy (Collins, Yusuf & Peto, 1985).

    Nine randomised trials of diuretics in pregnancy, with counts for
    pre-eclampsia and for three mortality outcomes (perinatal deaths,
    stillbirths, neonatal deaths). Effect sizes for pre-eclampsia:
    ``skmeta.effect_sizes.log_odds_ratio(pre_xti, pre_nti - pre_xti, pre_xci,
    pre_nci - pre_xci)``.

    Transcribed from Collins et al. (1985); cross-checked against R package
    metadat 1.2.0 (``dat.collins1985b``; dots in its column names are
    underscores here).

    Returns
    -------
    frame : pandas.DataFrame of shape (9, 16)
        Columns (``t``: treatment group, ``c``: control/placebo group):

        - ``id`` (int64): study number, 1 to 9.
        - ``author`` (str): author(s) of the trial.
        - ``year`` (int64): publication year.
        - ``pre_nti``, ``pre_nci`` (int64): women followed up for
          pre-eclampsia.
        - ``pre_xti``, ``pre_xci`` (int64): women with any form of
          pre-eclampsia.
        - ``oedema`` (int64): 1 if oedema was a diagnostic criterion.
        - ``fup_nti``, ``fup_nci`` (int64): women followed up for the
          mortality outcomes.
        - ``ped_xti``, ``ped_xci`` (int64): perinatal deaths.
        - ``stb_xti``, ``stb_xci`` (float64): stillbirths (``NaN`` where not
          reported).
        - ``ned_xti``, ``ned_xci`` (float64): neonatal deaths (``NaN`` where
          not reported).

    References
    ----------
    .. [1] Collins, R., Yusuf, S., & Peto, R. (1985). Overview of randomised
       trials of diuretics in pregnancy. British Medical Journal, 290(6461),
       17-23. doi:10.1136/bmj.290.6461.17
    """
    schema = {"id": _I, "author": _S, "year": _I}
    schema |= dict.fromkeys(["pre_nti", "pre_nci", "pre_xti", "pre_xci"], _I)
    schema |= {"oedema": _I, "fup_nti": _I, "fup_nci": _I}
    schema |= {"ped_xti": _I, "ped_xci": _I}
    schema |= dict.fromkeys(["stb_xti", "stb_xci", "ned_xti", "ned_xci"], _F)
    return _read("collins1985b.csv", schema)


def load_linde2005() -> pd.DataFrame:
    """Load the St John's wort trials for depression (Linde et al., 2005).

    Twenty-six double-blind placebo-controlled trials of Hypericum perforatum
    extracts for depression; the outcome is treatment response. Two trials do
    not report responses (``NaN`` counts), and one has no response in either
    group. Effect sizes: ``skmeta.effect_sizes.log_risk_ratio(ai, n1i - ai, ci,
    n2i - ci)`` on the complete rows.

    Transcribed from Linde et al. (2005), Table 1 and Figure 3; cross-checked
    against R package metadat 1.2.0 (``dat.linde2005``).

    Returns
    -------
    frame : pandas.DataFrame of shape (26, 17)
        Columns (``NaN`` marks a value the article does not report):

        - ``id`` (int64): study number, 1 to 26.
        - ``study`` (str): author(s) of the trial.
        - ``year`` (float64): publication year.
        - ``country`` (str): study location.
        - ``ni`` (int64): total sample size.
        - ``major`` (int64): 1 if restricted to patients with major
          depression.
        - ``baseline`` (float64): baseline Hamilton (HRSD) score.
        - ``version`` (float64): HRSD version, 17 or 21 items.
        - ``duration`` (int64): study duration (or assessment week), in weeks.
        - ``prep`` (str): Hypericum extract preparation.
        - ``dosage`` (float64): daily dosage in mg (midpoint of a range).
        - ``response`` (float64): definition of response: 1 = HRSD reduction
          of at least 50% or HRSD below 10 after therapy, 2 = HRSD reduction of
          at least 50%, 3 = based on the HRSD but not defined exactly,
          4 = global patient assessment, 5 = at least "much improved" on the
          Clinical Global Impression scale.
        - ``ai`` (float64): responders in the treatment group.
        - ``n1i`` (float64): patients in the treatment group.
        - ``ci`` (float64): responders in the placebo group.
        - ``n2i`` (float64): patients in the placebo group.
        - ``group`` (float64): the authors' stratum: 1/2 = smaller/larger
          trials restricted to major depression, 3/4 = smaller/larger trials
          not so restricted.

    References
    ----------
    .. [1] Linde, K., Berner, M., Egger, M., & Mulrow, C. (2005). St John's wort
       for depression: Meta-analysis of randomised controlled trials. British
       Journal of Psychiatry, 186(2), 99-107. doi:10.1192/bjp.186.2.99
    .. [2] Viechtbauer, W. (2007). Accounting for heterogeneity via
       random-effects models and moderator analyses in meta-analysis.
       Zeitschrift für Psychologie, 215(2), 104-121.
       doi:10.1027/0044-3409.215.2.104
    """
    return _read(
        "linde2005.csv",
        {
            "id": _I,
            "study": _S,
            "year": _F,
            "country": _S,
            "ni": _I,
            "major": _I,
            "baseline": _F,
            "version": _F,
            "duration": _I,
            "prep": _S,
            "dosage": _F,
            "response": _F,
            "ai": _F,
            "n1i": _F,
            "ci": _F,
            "n2i": _F,
            "group": _F,
        },
    )


def load_hine1989() -> pd.DataFrame:
    """Load the prophylactic lidocaine trials (Hine et al., 1989).

    Six randomised trials of intravenous lidocaine after a confirmed or
    suspected myocardial infarction; the outcome is death by the end of the
    treatment period. The usual effect size is the risk difference:
    ``skmeta.effect_sizes.risk_difference(ai, n1i - ai, ci, n2i - ci)``.

    Transcribed from Normand (1999), Table I, reporting Hine et al. (1989);
    cross-checked against R package metadat 1.2.0 (``dat.hine1989``).

    Returns
    -------
    frame : pandas.DataFrame of shape (6, 6)
        Columns:

        - ``study`` (int64): study number, 1 to 6.
        - ``source`` (str): source of the data (authors).
        - ``n1i`` (int64): patients in the lidocaine group.
        - ``n2i`` (int64): patients in the control group.
        - ``ai`` (int64): deaths in the lidocaine group.
        - ``ci`` (int64): deaths in the control group.

    References
    ----------
    .. [1] Hine, L. K., Laird, N., Hewitt, P., & Chalmers, T. C. (1989).
       Meta-analytic evidence against prophylactic use of lidocaine in acute
       myocardial infarction. Archives of Internal Medicine, 149(12),
       2694-2698. doi:10.1001/archinte.1989.00390120056011
    .. [2] Normand, S. T. (1999). Meta-analysis: Formulating, evaluating,
       combining, and reporting. Statistics in Medicine, 18(3), 321-359.
    """
    return _read(
        "hine1989.csv",
        {
            "study": _I,
            "source": _S,
            "n1i": _I,
            "n2i": _I,
            "ai": _I,
            "ci": _I,
        },
    )


def load_nielweise2007() -> pd.DataFrame:
    """Load the anti-infective catheter trials (Niel-Weise et al., 2007).

    Eighteen randomised trials comparing catheter-related bloodstream
    infections (CRBSI) with anti-infective-treated versus standard central
    venous catheters in acute care. Infections are rare: six trials have a
    zero cell and one (``study`` 15) has no infection in either group, the
    textbook case for Mantel-Haenszel and Peto pooling:
    ``skmeta.mantel_haenszel(ai, n1i=n1i, ci=ci, n2i=n2i)``.

    Transcribed from Niel-Weise et al. (2007); cross-checked against R package
    metadat 1.2.0 (``dat.nielweise2007``).

    Returns
    -------
    frame : pandas.DataFrame of shape (18, 7)
        Columns:

        - ``study`` (int64): study number, 1 to 18.
        - ``author`` (str): first author.
        - ``year`` (int64): publication year.
        - ``ai`` (int64): CRBSIs with an anti-infective-treated catheter.
        - ``n1i`` (int64): patients with an anti-infective-treated catheter.
        - ``ci`` (int64): CRBSIs with a standard catheter.
        - ``n2i`` (int64): patients with a standard catheter.

    References
    ----------
    .. [1] Niel-Weise, B. S., Stijnen, T., & van den Broek, P. J. (2007).
       Anti-infective-treated central venous catheters: A systematic review of
       randomized controlled trials. Intensive Care Medicine, 33(12),
       2058-2068. doi:10.1007/s00134-007-0897-3
    .. [2] Stijnen, T., Hamza, T. H., & Ozdemir, P. (2010). Random effects
       meta-analysis of event outcome in the framework of the generalized
       linear mixed model with applications in sparse data. Statistics in
       Medicine, 29(29), 3046-3067. doi:10.1002/sim.4040
    """
    schema = {"study": _I, "author": _S, "year": _I}
    schema |= dict.fromkeys(["ai", "n1i", "ci", "n2i"], _I)
    return _read("nielweise2007.csv", schema)


#: Registry of the bundled datasets: name -> loader (read-only mapping).
def load_cohen1981() -> pd.DataFrame:
    """Load the instructor-rating validity studies (Cohen, 1981).

    Twenty multisection validity studies of the correlation between the mean
    instructor rating of a course section and the section's mean achievement
    on a common final examination (studies with at least 10 sections, Table
    A.3 of Cooper & Hedges, 1994). The unit of analysis is the section, so
    ``ni`` counts sections. Compute Fisher's z with
    ``skmeta.effect_sizes.fisher_z(ri, ni)``; metafor's documentation uses it
    as an example of selection models (``selmodel``).

    Transcribed from Cooper & Hedges (1994, Appendix A); cross-checked against
    R package metadat 1.2.0 (``dat.cohen1981``).

    Returns
    -------
    frame : pandas.DataFrame of shape (20, 5)
        Columns:

        - ``study`` (str): study author(s) and year.
        - ``sample`` (str): course type.
        - ``control`` (str): how prior ability was controlled for.
        - ``ni`` (int64): sample size of the study (number of sections).
        - ``ri`` (float64): observed correlation.

    References
    ----------
    .. [1] Cohen, P. A. (1981). Student ratings of instruction and student
       achievement: A meta-analysis of multisection validity studies. Review
       of Educational Research, 51(3), 281-309. doi:10.3102/00346543051003281
    .. [2] Cooper, H., & Hedges, L. V. (1994). Appendix A: Data sets. In H.
       Cooper & L. V. Hedges (Eds.), The handbook of research synthesis
       (pp. 543-547). New York: Russell Sage Foundation.

    Examples
    --------
    >>> from skmeta.datasets import load_cohen1981
    >>> data = load_cohen1981()
    >>> data.shape
    (20, 5)
    >>> int(data.loc[0, "ni"]), float(data.loc[0, "ri"])
    (10, 0.68)
    """
    return _read(
        "cohen1981.csv",
        {"study": _S, "sample": _S, "control": _S, "ni": _I, "ri": _F},
    )


def load_hackshaw1998() -> pd.DataFrame:
    """Load the environmental tobacco smoke and lung cancer studies (Hackshaw, 1998).

    Thirty-seven studies (4 cohort, 33 case-control) of lung cancer in
    lifelong non-smoking women exposed to environmental tobacco smoke from a
    smoking spouse. The log odds ratios ``yi`` and their sampling variances
    ``vi`` were back-calculated (by metadat) from the reported odds ratios and
    95% confidence limits, which were rounded: the back-calculation is
    approximate, but it reproduces the published pooled estimate.

    Transcribed from Hackshaw, Law & Wald (1997) and Hackshaw (1998);
    cross-checked against R package metadat 1.2.0 (``dat.hackshaw1998``).

    Returns
    -------
    frame : pandas.DataFrame of shape (37, 11)
        Columns:

        - ``study`` (int64): study number.
        - ``author`` (str): first author.
        - ``year`` (int64): publication year.
        - ``country`` (str): country where the study was conducted.
        - ``design`` (str): ``"cohort"`` or ``"case-control"``.
        - ``cases`` (int64): number of lung cancer cases.
        - ``or`` (float64): odds ratio.
        - ``or_lb`` (float64): lower 95% confidence limit of the odds ratio.
        - ``or_ub`` (float64): upper 95% confidence limit of the odds ratio.
        - ``yi`` (float64): log odds ratio.
        - ``vi`` (float64): its sampling variance.

    References
    ----------
    .. [1] Hackshaw, A. K., Law, M. R., & Wald, N. J. (1997). The accumulated
       evidence on lung cancer and environmental tobacco smoke. British
       Medical Journal, 315(7114), 980-988. doi:10.1136/bmj.315.7114.980
    .. [2] Hackshaw, A. K. (1998). Lung cancer and passive smoking. Statistical
       Methods in Medical Research, 7(2), 119-136.
       doi:10.1177/096228029800700203

    Examples
    --------
    >>> from skmeta.datasets import load_hackshaw1998
    >>> data = load_hackshaw1998()
    >>> data.shape
    (37, 11)
    >>> str(data.loc[0, "author"]), float(data.loc[0, "or"])
    ('Garfinkel', 1.18)
    """
    return _read(
        "hackshaw1998.csv",
        {
            "study": _I,
            "author": _S,
            "year": _I,
            "country": _S,
            "design": _S,
            "cases": _I,
            "or": _F,
            "or_lb": _F,
            "or_ub": _F,
            "yi": _F,
            "vi": _F,
        },
    )


def load_baskerville2012() -> pd.DataFrame:
    """Load the practice-facilitation trials (Baskerville, Liddy & Hogg, 2012).

    Twenty-three studies of practice facilitation (outreach) interventions in
    primary care, each summarised by a standardized mean difference of the
    change in an evidence-based practice behaviour (``smd``) with its
    standard error (``se``; the sampling variance is ``se**2``).
    Citkowicz & Vevea (2017) used the data to illustrate the beta selection
    model, with blinding (``blind``) as a moderator in metafor's example.

    Transcribed from Baskerville, Liddy & Hogg (2012); cross-checked against R
    package metadat 1.2.0 (``dat.baskerville2012``).

    Returns
    -------
    frame : pandas.DataFrame of shape (23, 18)
        Columns:

        - ``author`` (str): study author(s).
        - ``year`` (int64): publication year.
        - ``score`` (int64): quality score (0 to 12).
        - ``design`` (str): ``"cct"`` (controlled clinical trial), ``"rct"``
          (randomized) or ``"crct"`` (cluster randomized).
        - ``alloconc`` (int64): allocation concealed (0 = no, 1 = yes).
        - ``blind`` (int64): single- or double-blind (0 = no, 1 = yes).
        - ``itt`` (int64): intention-to-treat analysis (0 = no, 1 = yes).
        - ``fumonths`` (int64): follow-up in months.
        - ``retention`` (float64): retention in percent (missing for some).
        - ``country`` (str): country where the study was conducted.
        - ``outcomes`` (int64): number of outcomes assessed.
        - ``duration`` (int64): duration of the intervention.
        - ``pperf`` (float64): practices per facilitator (missing for some).
        - ``meetings`` (float64): (average) number of meetings.
        - ``hours`` (float64): (average) hours per meeting.
        - ``tailor`` (int64): intervention tailored to the practice (0 = no,
          1 = yes).
        - ``smd`` (float64): standardized mean difference.
        - ``se`` (float64): its standard error.

    References
    ----------
    .. [1] Baskerville, N. B., Liddy, C., & Hogg, W. (2012). Systematic review
       and meta-analysis of practice facilitation within primary care
       settings. Annals of Family Medicine, 10(1), 63-74. doi:10.1370/afm.1312
    .. [2] Citkowicz, M., & Vevea, J. L. (2017). A parsimonious weight function
       for modeling publication bias. Psychological Methods, 22(1), 28-41.
       doi:10.1037/met0000119

    Examples
    --------
    >>> from skmeta.datasets import load_baskerville2012
    >>> data = load_baskerville2012()
    >>> data.shape
    (23, 18)
    >>> data.loc[0, ["smd", "se"]].tolist()
    [1.01, 0.52]
    """
    return _read(
        "baskerville2012.csv",
        {
            "author": _S,
            "year": _I,
            "score": _I,
            "design": _S,
            "alloconc": _I,
            "blind": _I,
            "itt": _I,
            "fumonths": _I,
            "retention": _F,
            "country": _S,
            "outcomes": _I,
            "duration": _I,
            "pperf": _F,
            "meetings": _F,
            "hours": _F,
            "tailor": _I,
            "smd": _F,
            "se": _F,
        },
    )


def load_knapp2017() -> pd.DataFrame:
    """Load the planning-performance studies of Knapp et al. (2017).

    Standardized mean differences in planning performance (tower of London and
    similar tasks) between schizophrenia patients and healthy controls: 66
    effect sizes from 31 studies (positive: the controls performed better).
    Several studies compared more than one patient group with one control
    group, used several tasks or reported subgroups, so their effect sizes are
    dependent: the worked example of dependent effect sizes with correlated
    sampling errors.

    Transcribed from Knapp et al. (2017); cross-checked against R package
    metadat 1.2.0 (``dat.knapp2017``).

    Returns
    -------
    frame : pandas.DataFrame of shape (66, 14)
        Columns:

        - ``authors`` (str): author(s) of the study.
        - ``year`` (int64): publication year.
        - ``study`` (int64): study id, 1 to 31.
        - ``task`` (str): type of task (e.g. ``"SOC (CANTAB)"``, ``"TOL"``).
        - ``difficulty`` (float64): task difficulty (average number of moves;
          NaN where not reported).
        - ``group1`` (str): patient group within the study.
        - ``group2`` (str): control group within the study.
        - ``comp`` (int64): comparison within the study.
        - ``yi`` (float64): standardized mean difference.
        - ``vi`` (float64): its sampling variance.
        - ``n_sz`` (int64): number of patients.
        - ``n_hc`` (int64): number of healthy controls.
        - ``yi_iq`` (float64): standardized mean difference in IQ (NaN where
          not reported).
        - ``vi_iq`` (float64): its sampling variance.

    References
    ----------
    .. [1] Knapp, F., Viechtbauer, W., Leonhart, R., Nitschke, K., & Kaller, C.
       P. (2017). Planning performance in schizophrenia patients: A
       meta-analysis of the influence of task difficulty and clinical and
       sociodemographic variables. Psychological Medicine, 47(11), 2002-2016.
       doi:10.1017/S0033291717000459

    Examples
    --------
    >>> from skmeta.datasets import load_knapp2017
    >>> knapp = load_knapp2017()
    >>> knapp.groupby("study").size().max()
    np.int64(8)
    """
    return _read(
        "knapp2017.csv",
        {
            "authors": _S,
            "year": _I,
            "study": _I,
            "task": _S,
            "difficulty": _F,
            "group1": _S,
            "group2": _S,
            "comp": _I,
            "yi": _F,
            "vi": _F,
            "n_sz": _I,
            "n_hc": _I,
            "yi_iq": _F,
            "vi_iq": _F,
        },
    )


def load_assink2016() -> pd.DataFrame:
    """Load the recidivism and mental-health studies of Assink & Wibbelink (2016).

    Standardized mean differences in recidivism between delinquent juveniles
    with and without a mental health disorder: 100 effect sizes from 17
    studies, several per study (different delinquent behaviours), the
    three-level example of Assink & Wibbelink's tutorial (a subset of the data
    of Assink et al., 2015; positive: more recidivism with a disorder).

    Transcribed from Assink & Wibbelink (2016); cross-checked against R package
    metadat 1.2.0 (``dat.assink2016``).

    Returns
    -------
    frame : pandas.DataFrame of shape (100, 8)
        Columns:

        - ``study`` (int64): study id, 1 to 17.
        - ``esid`` (int64): effect size within the study.
        - ``id`` (int64): row id, 1 to 100.
        - ``yi`` (float64): standardized mean difference.
        - ``vi`` (float64): its sampling variance.
        - ``pubstatus`` (int64): 1 = published, 0 = not.
        - ``year`` (float64): publication year, approximately mean centred.
        - ``deltype`` (str): type of delinquent behaviour, ``"general"``,
          ``"overt"`` or ``"covert"``.

    References
    ----------
    .. [1] Assink, M., & Wibbelink, C. J. M. (2016). Fitting three-level
       meta-analytic models in R: A step-by-step tutorial. The Quantitative
       Methods for Psychology, 12(3), 154-174. doi:10.20982/tqmp.12.3.p154
    .. [2] Assink, M., van der Put, C. E., Hoeve, M., de Vries, S. L. A.,
       Stams, G. J. J. M., & Oort, F. J. (2015). Risk factors for persistent
       delinquent behavior among juveniles: A meta-analytic review. Clinical
       Psychology Review, 42, 47-61. doi:10.1016/j.cpr.2015.08.002

    Examples
    --------
    >>> from skmeta.datasets import load_assink2016
    >>> assink = load_assink2016()
    >>> assink["deltype"].value_counts().to_dict()
    {'general': 78, 'overt': 13, 'covert': 9}
    """
    return _read(
        "assink2016.csv",
        {
            "study": _I,
            "esid": _I,
            "id": _I,
            "yi": _F,
            "vi": _F,
            "pubstatus": _I,
            "year": _F,
            "deltype": _S,
        },
    )


DATASETS: MappingProxyType[str, Callable[[], pd.DataFrame]] = MappingProxyType(
    {
        "bcg": load_bcg,
        "pupil_iq": load_pupil_iq,
        "writing_to_learn": load_writing_to_learn,
        "school_calendar": load_school_calendar,
        "jia": load_jia,
        "laopaiboon2015": load_laopaiboon2015,
        "collins1985b": load_collins1985b,
        "linde2005": load_linde2005,
        "colditz1994": load_colditz1994,
        "hine1989": load_hine1989,
        "nielweise2007": load_nielweise2007,
        "cohen1981": load_cohen1981,
        "hackshaw1998": load_hackshaw1998,
        "baskerville2012": load_baskerville2012,
        "knapp2017": load_knapp2017,
        "assink2016": load_assink2016,
    }
)


def load_dataset(name: str) -> pd.DataFrame:
    """Load a bundled dataset by name.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`, e.g. ``"bcg"`` or ``"school_calendar"``.

    Returns
    -------
    frame : pandas.DataFrame
        The dataset; see the corresponding ``load_<name>`` function.

    Raises
    ------
    ValueError
        If ``name`` is not a bundled dataset.
    """
    try:
        loader = DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"name must be one of {sorted(DATASETS)}; got {name!r}"
        ) from None
    return loader()
