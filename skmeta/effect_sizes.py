"""Effect sizes and their sampling variances, as metafor's ``escalc`` computes them.

Every function takes per-study summary data (counts, means, correlations, ...)
as array-likes of shape ``(k,)`` and returns an :class:`EffectSize`, a named
tuple of two float64 arrays of shape ``(k,)``:

- ``yi``: the observed effect size of each study,
- ``vi``: its (large-sample) sampling variance,

so that ``yi, vi = log_risk_ratio(...)`` unpacks it, and
``log_risk_ratio(...).to_frame()`` gives a :class:`pandas.DataFrame` with
columns ``yi`` and ``vi``. ``vi`` is what the estimators take as
``sample_var``. :func:`escalc` dispatches on metafor's measure codes.

==========  ====================================  ==============================
measure     function                              data
==========  ====================================  ==============================
``"RR"``    :func:`log_risk_ratio`                2x2 tables
``"OR"``    :func:`log_odds_ratio`                2x2 tables
``"RD"``    :func:`risk_difference`               2x2 tables
``"AS"``    :func:`arcsine_risk_difference`       2x2 tables
``"MD"``    :func:`mean_difference`               means, SDs, group sizes
``"SMD"``   :func:`standardized_mean_difference`  means, SDs, group sizes
``"COR"``   :func:`correlation`                   correlations, sample sizes
``"ZCOR"``  :func:`fisher_z`                      correlations, sample sizes
``"PR"``    :func:`proportion`                    events, sample sizes
``"PLN"``   :func:`log_proportion`                events, sample sizes
``"PLO"``   :func:`logit_proportion`              events, sample sizes
``"PAS"``   :func:`arcsine_proportion`            events, sample sizes
``"PFT"``   :func:`freeman_tukey_proportion`      events, sample sizes
``"IRR"``   :func:`log_incidence_rate_ratio`      events, person-times
==========  ====================================  ==============================

Conventions (all those of metafor 3.8 ``escalc``, checked against it to
1e-10 in ``tests/test_effect_sizes.py``):

- **Continuity correction.** For count data, ``correction`` (metafor's ``add``,
  default 1/2) is added to the counts according to ``add_to`` (metafor's
  ``to``): ``"only0"`` (default) to every cell of the studies with at least one
  zero cell; ``"all"`` to every cell of all studies; ``"if0all"`` to every cell
  of all studies, but only if some study has a zero cell; ``"none"`` never
  (the same as ``correction=0``). For 2x2 tables "every cell" means
  ``ai, bi, ci, di`` (so each group size grows by ``2 * correction``); for
  proportions ``xi`` and ``ni - xi``; for incidence rates ``x1i`` and ``x2i``.
  As in metafor, the arcsine-type measures (AS, PAS, PFT) default to
  ``correction=0``; pass a positive value to force one.
- **Uninformative studies.** With ``drop00=True``, 2x2 tables with
  ``ai = ci = 0`` or ``bi = di = 0`` (and rate data with ``x1i = x2i = 0``) get
  ``NaN`` for ``yi`` and ``vi``, and do not count as zero-cell studies for
  ``add_to="if0all"``.
- **Missing and undefined values.** ``NaN`` inputs mark missing data and give
  ``NaN`` outputs for that study. A value that is infinite or undefined (e.g. a
  log of zero count with ``add_to="none"``) is returned as ``NaN``, as metafor
  recodes it to ``NA``.
- **Validation.** Inputs must be numeric and 1-D (scalars broadcast), of one
  common length and finite or ``NaN``; counts and person-times must be
  non-negative, events cannot exceed group sizes, group sizes must be
  positive, correlations must lie in [-1, 1]. Anything else raises a
  :class:`ValueError` naming the argument.

The formulas are the standard published ones (references in each function).
"""

import inspect
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.special import gamma

__all__ = [
    "MEASURES",
    "EffectSize",
    "arcsine_proportion",
    "arcsine_risk_difference",
    "correlation",
    "escalc",
    "fisher_z",
    "freeman_tukey_proportion",
    "hedges_g",
    "log_incidence_rate_ratio",
    "log_odds_ratio",
    "log_proportion",
    "log_risk_ratio",
    "logit_proportion",
    "mean_difference",
    "proportion",
    "risk_difference",
    "standardized_mean_difference",
]

_ADD_TO = ("only0", "all", "if0all", "none")


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


def _check_correction(correction: float, add_to: str, drop00: bool = False) -> None:
    if not np.isscalar(correction) or not np.isfinite(correction) or correction < 0:
        raise ValueError(
            f"correction must be a finite non-negative number; got {correction!r}"
        )
    if add_to not in _ADD_TO:
        raise ValueError(f"add_to must be one of {_ADD_TO}; got {add_to!r}")
    if not isinstance(drop00, bool | np.bool_):
        raise ValueError(f"drop00 must be a bool; got {drop00!r}")


def _correction_mask(
    has_zero: NDArray[np.bool_], correction: float, add_to: str
) -> NDArray[np.bool_]:
    """Studies that receive the continuity correction."""
    if add_to == "none" or correction == 0:
        return np.zeros_like(has_zero)
    if add_to == "all":
        return np.ones_like(has_zero)
    if add_to == "if0all":
        return np.full_like(has_zero, bool(has_zero.any()))
    return has_zero  # "only0"


def _finish(yi: NDArray[np.float64], vi: NDArray[np.float64]) -> EffectSize:
    """Recode non-finite results to NaN (metafor recodes them to NA)."""
    bad = ~np.isfinite(yi) | ~np.isfinite(vi)
    yi = np.where(bad, np.nan, yi)
    vi = np.where(bad, np.nan, vi)
    return EffectSize(yi, vi)


# --------------------------------------------------------------------------- #
# 2x2 tables
# --------------------------------------------------------------------------- #
def _tables(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00):
    """Validate 2x2 tables and apply the continuity correction.

    Returns the corrected cells ``a, b, c, d`` and the ``drop`` mask.
    """
    _check_correction(correction, add_to, drop00)
    if (bi is None) == (n1i is None):
        raise ValueError("give exactly one of bi and n1i")
    if (di is None) == (n2i is None):
        raise ValueError("give exactly one of di and n2i")
    named = {"ai": ai, "ci": ci}
    named |= {"bi": bi} if n1i is None else {"n1i": n1i}
    named |= {"di": di} if n2i is None else {"n2i": n2i}
    x = _arrays(**named)
    _nonneg(x, *x)
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
    add = correction * _correction_mask(has_zero & ~drop, correction, add_to)
    return a + add, b + add, c + add, d + add, drop


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
    correction : float, default=0.5
        Continuity correction added to the cells (metafor's ``add``).
    add_to : {"only0", "all", "if0all", "none"}, default="only0"
        Which tables get the correction (metafor's ``to``); see the module
        docstring.
    drop00 : bool, default=False
        Whether tables with ``ai = ci = 0`` or ``bi = di = 0`` give ``NaN``.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

    References
    ----------
    .. [1] Fleiss, J. L., & Berlin, J. A. (2009). Effect sizes for dichotomous
       data. In H. Cooper, L. V. Hedges, & J. C. Valentine (Eds.), The handbook
       of research synthesis and meta-analysis (2nd ed., pp. 237-253).
    .. [2] Viechtbauer, W. (2010). Conducting meta-analyses in R with the
       metafor package. Journal of Statistical Software, 36(3), 1-48.

    Examples
    --------
    >>> from skmeta.effect_sizes import log_risk_ratio
    >>> yi, vi = log_risk_ratio([4], [119], [11], [128])
    >>> round(float(yi[0]), 4), round(float(vi[0]), 4)
    (-0.8893, 0.3256)
    """
    a, b, c, d, drop = _tables(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00)
    with np.errstate(divide="ignore", invalid="ignore"):
        n1, n2 = a + b, c + d
        yi = np.log(a / n1) - np.log(c / n2)
        vi = 1 / a - 1 / n1 + 1 / c - 1 / n2
    return _finish(np.where(drop, np.nan, yi), np.where(drop, np.nan, vi))


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

    Parameters
    ----------
    ai : array-like of shape (n_studies,)
        Events in group 1.
    bi : array-like of shape (n_studies,), default=None
        Non-events in group 1. Give either ``bi`` or ``n1i``.
    ci : array-like of shape (n_studies,)
        Events in group 2.
    di : array-like of shape (n_studies,), default=None
        Non-events in group 2. Give either ``di`` or ``n2i``.
    n1i : array-like of shape (n_studies,), default=None
        Size of group 1, instead of ``bi``.
    n2i : array-like of shape (n_studies,), default=None
        Size of group 2, instead of ``di``.
    correction : float, default=0.5
        Continuity correction added to the cells (metafor's ``add``).
    add_to : {"only0", "all", "if0all", "none"}, default="only0"
        Which tables get the correction (metafor's ``to``).
    drop00 : bool, default=False
        Whether tables with ``ai = ci = 0`` or ``bi = di = 0`` give ``NaN``.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

    References
    ----------
    .. [1] Woolf, B. (1955). On estimating the relation between blood group and
       disease. Annals of Human Genetics, 19(4), 251-253.
    .. [2] Fleiss, J. L., & Berlin, J. A. (2009). Effect sizes for dichotomous
       data. In The handbook of research synthesis and meta-analysis (2nd ed.).
    """
    a, b, c, d, drop = _tables(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00)
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = np.log(a / b) - np.log(c / d)
        vi = 1 / a + 1 / b + 1 / c + 1 / d
    return _finish(np.where(drop, np.nan, yi), np.where(drop, np.nan, vi))


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

    Parameters
    ----------
    ai : array-like of shape (n_studies,)
        Events in group 1.
    bi : array-like of shape (n_studies,), default=None
        Non-events in group 1. Give either ``bi`` or ``n1i``.
    ci : array-like of shape (n_studies,)
        Events in group 2.
    di : array-like of shape (n_studies,), default=None
        Non-events in group 2. Give either ``di`` or ``n2i``.
    n1i : array-like of shape (n_studies,), default=None
        Size of group 1, instead of ``bi``.
    n2i : array-like of shape (n_studies,), default=None
        Size of group 2, instead of ``di``.
    correction : float, default=0.5
        Continuity correction added to the cells (metafor's ``add``).
    add_to : {"only0", "all", "if0all", "none"}, default="only0"
        Which tables get the correction (metafor's ``to``).
    drop00 : bool, default=False
        Whether tables with ``ai = ci = 0`` or ``bi = di = 0`` give ``NaN``.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

    References
    ----------
    .. [1] Fleiss, J. L., & Berlin, J. A. (2009). Effect sizes for dichotomous
       data. In The handbook of research synthesis and meta-analysis (2nd ed.).
    """
    a, b, c, d, drop = _tables(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00)
    n1, n2 = a + b, c + d
    p1, p2 = a / n1, c / n2
    yi = p1 - p2
    vi = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
    return _finish(np.where(drop, np.nan, yi), np.where(drop, np.nan, vi))


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

    Parameters
    ----------
    ai : array-like of shape (n_studies,)
        Events in group 1.
    bi : array-like of shape (n_studies,), default=None
        Non-events in group 1. Give either ``bi`` or ``n1i``.
    ci : array-like of shape (n_studies,)
        Events in group 2.
    di : array-like of shape (n_studies,), default=None
        Non-events in group 2. Give either ``di`` or ``n2i``.
    n1i : array-like of shape (n_studies,), default=None
        Size of group 1, instead of ``bi``.
    n2i : array-like of shape (n_studies,), default=None
        Size of group 2, instead of ``di``.
    correction : float, default=0.0
        Continuity correction added to the cells (metafor's ``add``).
    add_to : {"only0", "all", "if0all", "none"}, default="only0"
        Which tables get the correction (metafor's ``to``).
    drop00 : bool, default=False
        Whether tables with ``ai = ci = 0`` or ``bi = di = 0`` give ``NaN``.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

    References
    ----------
    .. [1] Rücker, G., Schwarzer, G., Carpenter, J., & Olkin, I. (2009). Why add
       anything to nothing? The arcsine difference as a measure of treatment
       effect in meta-analysis with zero cells. Statistics in Medicine, 28(5),
       721-738.
    """
    a, b, c, d, drop = _tables(ai, bi, ci, di, n1i, n2i, correction, add_to, drop00)
    n1, n2 = a + b, c + d
    yi = np.arcsin(np.sqrt(a / n1)) - np.arcsin(np.sqrt(c / n2))
    vi = 1 / (4 * n1) + 1 / (4 * n2)
    return _finish(np.where(drop, np.nan, yi), np.where(drop, np.nan, vi))


# --------------------------------------------------------------------------- #
# two-group means
# --------------------------------------------------------------------------- #
def _means(m1i, sd1i, n1i, m2i, sd2i, n2i):
    x = _arrays(m1i=m1i, sd1i=sd1i, n1i=n1i, m2i=m2i, sd2i=sd2i, n2i=n2i)
    _nonneg(x, "sd1i", "sd2i")
    _positive(x, "n1i", "n2i")
    return x


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
        Sizes of group 2.
    vtype : {"LS", "HO"}, default="LS"
        Heteroscedastic ("LS") or homoscedastic ("HO") sampling variance.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

    References
    ----------
    .. [1] Borenstein, M. (2009). Effect sizes for continuous data. In H.
       Cooper, L. V. Hedges, & J. C. Valentine (Eds.), The handbook of research
       synthesis and meta-analysis (2nd ed., pp. 221-235).
    """
    if vtype not in ("LS", "HO"):
        raise ValueError(f"vtype must be 'LS' or 'HO'; got {vtype!r}")
    x = _means(m1i, sd1i, n1i, m2i, sd2i, n2i)
    n1, n2 = x["n1i"], x["n2i"]
    yi = x["m1i"] - x["m2i"]
    if vtype == "LS":
        vi = x["sd1i"] ** 2 / n1 + x["sd2i"] ** 2 / n2
    else:
        if np.any(n1 + n2 <= 2):
            raise ValueError("n1i + n2i must exceed 2 for vtype='HO'")
        sp2 = ((n1 - 1) * x["sd1i"] ** 2 + (n2 - 1) * x["sd2i"] ** 2) / (n1 + n2 - 2)
        vi = sp2 * (1 / n1 + 1 / n2)
    return _finish(yi, vi)


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
      :math:`v_i = J(m_i)^2 (1/n_{1i} + 1/n_{2i} + d_i^2 / (2(n_{1i}+n_{2i})))`.

    Parameters
    ----------
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
        Sizes of group 2.
    vtype : {"LS", "UB", "LS2"}, default="LS"
        Which sampling variance to compute.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

    References
    ----------
    .. [1] Hedges, L. V. (1981). Distribution theory for Glass's estimator of
       effect size and related estimators. Journal of Educational Statistics,
       6(2), 107-128.
    .. [2] Hedges, L. V. (1982). Estimation of effect size from a series of
       independent experiments. Psychological Bulletin, 92(2), 490-499.
    .. [3] Hedges, L. V. (1983). A random effects model for effect sizes.
       Psychological Bulletin, 93(2), 388-395.
    .. [4] Borenstein, M. (2009). Effect sizes for continuous data. In The
       handbook of research synthesis and meta-analysis (2nd ed.).

    Examples
    --------
    >>> from skmeta.effect_sizes import standardized_mean_difference
    >>> g = standardized_mean_difference(
    ...     m1i=[10.2], sd1i=[2.1], n1i=[20], m2i=[9.1], sd2i=[2.4], n2i=[22]
    ... )
    >>> round(float(g.yi[0]), 4), round(float(g.vi[0]), 4)
    (0.477, 0.0982)
    """
    if vtype not in ("LS", "UB", "LS2"):
        raise ValueError(f"vtype must be one of 'LS', 'UB', 'LS2'; got {vtype!r}")
    x = _means(m1i, sd1i, n1i, m2i, sd2i, n2i)
    n1, n2 = x["n1i"], x["n2i"]
    m = n1 + n2 - 2
    if np.any(m < 2):
        raise ValueError("n1i + n2i must be at least 4 for the standardized mean")
    sp = np.sqrt(((n1 - 1) * x["sd1i"] ** 2 + (n2 - 1) * x["sd2i"] ** 2) / m)
    j = _hedges_j(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (x["m1i"] - x["m2i"]) / sp
        g = j * d
        if vtype == "LS":
            vi = 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))
        elif vtype == "UB":
            vi = 1 / n1 + 1 / n2 + g**2 * (1 - (m - 2) / (m * j**2))
        else:
            vi = j**2 * (1 / n1 + 1 / n2 + d**2 / (2 * (n1 + n2)))
    return _finish(g, vi)


#: Alias of :func:`standardized_mean_difference`.
hedges_g = standardized_mean_difference


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
    return x["ri"], x["ni"]


def correlation(ri: ArrayLike, ni: ArrayLike) -> EffectSize:
    """Use raw correlation coefficients as effect sizes (metafor ``"COR"``).

    .. math::

        y_i = r_i, \\qquad v_i = \\frac{(1 - r_i^2)^2}{n_i - 1}

    (the large-sample variance, Borenstein, 2009, eq. 12.27).

    Parameters
    ----------
    ri : array-like of shape (n_studies,)
        Pearson correlations, in [-1, 1].
    ni : array-like of shape (n_studies,)
        Sample sizes, at least 2.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

    References
    ----------
    .. [1] Borenstein, M. (2009). Effect sizes for continuous data. In The
       handbook of research synthesis and meta-analysis (2nd ed.).
    """
    r, n = _correlations(ri, ni, 2)
    return _finish(r.copy(), (1 - r**2) ** 2 / (n - 1))


def fisher_z(ri: ArrayLike, ni: ArrayLike) -> EffectSize:
    """Compute Fisher's r-to-z transformed correlations (metafor ``"ZCOR"``).

    .. math::

        y_i = \\operatorname{artanh}(r_i)
            = \\frac{1}{2}\\log\\frac{1 + r_i}{1 - r_i}, \\qquad
        v_i = \\frac{1}{n_i - 3}.

    :math:`|r_i| = 1` gives ``NaN`` (infinite :math:`z`).

    Parameters
    ----------
    ri : array-like of shape (n_studies,)
        Pearson correlations, in [-1, 1].
    ni : array-like of shape (n_studies,)
        Sample sizes, at least 4.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

    References
    ----------
    .. [1] Fisher, R. A. (1921). On the "probable error" of a coefficient of
       correlation deduced from a small sample. Metron, 1, 1-32.
    """
    r, n = _correlations(ri, ni, 4)
    with np.errstate(divide="ignore"):
        yi = np.arctanh(r)
    return _finish(yi, 1 / (n - 3))


# --------------------------------------------------------------------------- #
# single proportions
# --------------------------------------------------------------------------- #
def _proportions(xi, ni, correction, add_to):
    """Validate event counts and apply the continuity correction to x and n-x."""
    _check_correction(correction, add_to)
    x = _arrays(xi=xi, ni=ni)
    _nonneg(x, "xi")
    _positive(x, "ni")
    with np.errstate(invalid="ignore"):
        if np.any(x["xi"] > x["ni"]):
            raise ValueError("xi cannot exceed ni")
        has_zero = (x["xi"] == 0) | (x["xi"] == x["ni"])
    add = correction * _correction_mask(has_zero, correction, add_to)
    return x["xi"] + add, x["ni"] + 2 * add


def proportion(
    xi: ArrayLike, ni: ArrayLike, *, correction: float = 0.5, add_to: str = "only0"
) -> EffectSize:
    """Use raw proportions as effect sizes (metafor ``"PR"``).

    With :math:`p_i = x_i / n_i` after the continuity correction,

    .. math::

        y_i = p_i, \\qquad v_i = \\frac{p_i (1 - p_i)}{n_i}.

    Parameters
    ----------
    xi : array-like of shape (n_studies,)
        Numbers of individuals with the event.
    ni : array-like of shape (n_studies,)
        Sample sizes (positive, at least ``xi``).
    correction : float, default=0.5
        Continuity correction added to ``xi`` and ``ni - xi`` (metafor's
        ``add``).
    add_to : {"only0", "all", "if0all", "none"}, default="only0"
        Which studies get the correction (metafor's ``to``): with ``"only0"``
        those with ``xi = 0`` or ``xi = ni``.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

    References
    ----------
    .. [1] Fleiss, J. L., & Berlin, J. A. (2009). Effect sizes for dichotomous
       data. In The handbook of research synthesis and meta-analysis (2nd ed.).
    """
    x, n = _proportions(xi, ni, correction, add_to)
    p = x / n
    return _finish(p, p * (1 - p) / n)


def log_proportion(
    xi: ArrayLike, ni: ArrayLike, *, correction: float = 0.5, add_to: str = "only0"
) -> EffectSize:
    """Compute log-transformed proportions (metafor ``"PLN"``).

    After the continuity correction,

    .. math::

        y_i = \\log\\frac{x_i}{n_i}, \\qquad v_i = \\frac{1}{x_i} - \\frac{1}{n_i}.

    Parameters
    ----------
    xi : array-like of shape (n_studies,)
        Numbers of individuals with the event.
    ni : array-like of shape (n_studies,)
        Sample sizes (positive, at least ``xi``).
    correction : float, default=0.5
        Continuity correction added to ``xi`` and ``ni - xi`` (metafor's
        ``add``).
    add_to : {"only0", "all", "if0all", "none"}, default="only0"
        Which studies get the correction (metafor's ``to``): with ``"only0"``
        those with ``xi = 0`` or ``xi = ni``.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

    References
    ----------
    .. [1] Fleiss, J. L., & Berlin, J. A. (2009). Effect sizes for dichotomous
       data. In The handbook of research synthesis and meta-analysis (2nd ed.).
    """
    x, n = _proportions(xi, ni, correction, add_to)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _finish(np.log(x / n), 1 / x - 1 / n)


def logit_proportion(
    xi: ArrayLike, ni: ArrayLike, *, correction: float = 0.5, add_to: str = "only0"
) -> EffectSize:
    """Compute logit-transformed proportions, i.e. log odds (metafor ``"PLO"``).

    After the continuity correction,

    .. math::

        y_i = \\log\\frac{x_i}{n_i - x_i}, \\qquad
        v_i = \\frac{1}{x_i} + \\frac{1}{n_i - x_i}.

    Parameters
    ----------
    xi : array-like of shape (n_studies,)
        Numbers of individuals with the event.
    ni : array-like of shape (n_studies,)
        Sample sizes (positive, at least ``xi``).
    correction : float, default=0.5
        Continuity correction added to ``xi`` and ``ni - xi`` (metafor's
        ``add``).
    add_to : {"only0", "all", "if0all", "none"}, default="only0"
        Which studies get the correction (metafor's ``to``): with ``"only0"``
        those with ``xi = 0`` or ``xi = ni``.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

    References
    ----------
    .. [1] Fleiss, J. L., & Berlin, J. A. (2009). Effect sizes for dichotomous
       data. In The handbook of research synthesis and meta-analysis (2nd ed.).
    """
    x, n = _proportions(xi, ni, correction, add_to)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _finish(np.log(x) - np.log(n - x), 1 / x + 1 / (n - x))


def arcsine_proportion(
    xi: ArrayLike, ni: ArrayLike, *, correction: float = 0.0, add_to: str = "only0"
) -> EffectSize:
    """Compute arcsine square-root transformed proportions (metafor ``"PAS"``).

    .. math::

        y_i = \\arcsin\\sqrt{x_i / n_i}, \\qquad v_i = \\frac{1}{4 n_i}.

    As in metafor, no continuity correction is applied by default.

    Parameters
    ----------
    xi : array-like of shape (n_studies,)
        Numbers of individuals with the event.
    ni : array-like of shape (n_studies,)
        Sample sizes (positive, at least ``xi``).
    correction : float, default=0.0
        Continuity correction added to ``xi`` and ``ni - xi`` (metafor's
        ``add``).
    add_to : {"only0", "all", "if0all", "none"}, default="only0"
        Which studies get the correction (metafor's ``to``): with ``"only0"``
        those with ``xi = 0`` or ``xi = ni``.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

    References
    ----------
    .. [1] Fleiss, J. L., & Berlin, J. A. (2009). Effect sizes for dichotomous
       data. In The handbook of research synthesis and meta-analysis (2nd ed.).
    """
    x, n = _proportions(xi, ni, correction, add_to)
    return _finish(np.arcsin(np.sqrt(x / n)), 1 / (4 * n))


def freeman_tukey_proportion(
    xi: ArrayLike, ni: ArrayLike, *, correction: float = 0.0, add_to: str = "only0"
) -> EffectSize:
    """Compute Freeman-Tukey double arcsine transformed proportions (``"PFT"``).

    .. math::

        y_i = \\frac{1}{2}\\left(\\arcsin\\sqrt{\\frac{x_i}{n_i + 1}}
            + \\arcsin\\sqrt{\\frac{x_i + 1}{n_i + 1}}\\right), \\qquad
        v_i = \\frac{1}{4 n_i + 2}.

    As in metafor, no continuity correction is applied by default.

    Parameters
    ----------
    xi : array-like of shape (n_studies,)
        Numbers of individuals with the event.
    ni : array-like of shape (n_studies,)
        Sample sizes (positive, at least ``xi``).
    correction : float, default=0.0
        Continuity correction added to ``xi`` and ``ni - xi`` (metafor's
        ``add``).
    add_to : {"only0", "all", "if0all", "none"}, default="only0"
        Which studies get the correction (metafor's ``to``): with ``"only0"``
        those with ``xi = 0`` or ``xi = ni``.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

    References
    ----------
    .. [1] Freeman, M. F., & Tukey, J. W. (1950). Transformations related to the
       angular and the square root. Annals of Mathematical Statistics, 21(4),
       607-611.
    """
    x, n = _proportions(xi, ni, correction, add_to)
    yi = 0.5 * (np.arcsin(np.sqrt(x / (n + 1))) + np.arcsin(np.sqrt((x + 1) / (n + 1))))
    return _finish(yi, 1 / (4 * n + 2))


# --------------------------------------------------------------------------- #
# incidence rates
# --------------------------------------------------------------------------- #
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
    correction : float, default=0.5
        Continuity correction added to ``x1i`` and ``x2i`` (metafor's ``add``).
    add_to : {"only0", "all", "if0all", "none"}, default="only0"
        Which studies get the correction (metafor's ``to``): with ``"only0"``
        those with a zero count in either group.
    drop00 : bool, default=False
        Whether studies with ``x1i = x2i = 0`` give ``NaN``.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

    References
    ----------
    .. [1] Rothman, K. J., Greenland, S., & Lash, T. L. (2008). Modern
       epidemiology (3rd ed.). Lippincott Williams & Wilkins.
    """
    _check_correction(correction, add_to, drop00)
    x = _arrays(x1i=x1i, t1i=t1i, x2i=x2i, t2i=t2i)
    _nonneg(x, "x1i", "x2i")
    _positive(x, "t1i", "t2i")
    x1, x2 = x["x1i"], x["x2i"]
    with np.errstate(invalid="ignore"):
        has_zero = (x1 == 0) | (x2 == 0)
        drop = (x1 == 0) & (x2 == 0) if drop00 else np.zeros_like(has_zero)
    add = correction * _correction_mask(has_zero & ~drop, correction, add_to)
    x1, x2 = x1 + add, x2 + add
    with np.errstate(divide="ignore", invalid="ignore"):
        yi = np.log(x1 / x["t1i"]) - np.log(x2 / x["t2i"])
        vi = 1 / x1 + 1 / x2
    return _finish(np.where(drop, np.nan, yi), np.where(drop, np.nan, vi))


# --------------------------------------------------------------------------- #
# dispatcher
# --------------------------------------------------------------------------- #
#: metafor measure code -> effect-size function.
MEASURES = {
    "RR": log_risk_ratio,
    "OR": log_odds_ratio,
    "RD": risk_difference,
    "AS": arcsine_risk_difference,
    "MD": mean_difference,
    "SMD": standardized_mean_difference,
    "COR": correlation,
    "ZCOR": fisher_z,
    "PR": proportion,
    "PLN": log_proportion,
    "PLO": logit_proportion,
    "PAS": arcsine_proportion,
    "PFT": freeman_tukey_proportion,
    "IRR": log_incidence_rate_ratio,
}


def escalc(measure: str, **kwargs: object) -> EffectSize:
    """Compute effect sizes by metafor measure code.

    A thin dispatcher over the functions of this module: ``escalc("RR",
    ai=..., bi=..., ci=..., di=...)`` is ``log_risk_ratio(ai=..., bi=...,
    ci=..., di=...)``. Data arguments use metafor's names (``ai, bi, ci, di,
    n1i, n2i, m1i, sd1i, m2i, sd2i, ri, ni, xi, x1i, t1i, x2i, t2i``); the
    options are this module's (``correction``, ``add_to``, ``drop00``,
    ``vtype``), not metafor's ``add`` and ``to``.

    Parameters
    ----------
    measure : str
        One of the keys of :data:`MEASURES` (case-insensitive): ``"RR"``,
        ``"OR"``, ``"RD"``, ``"AS"``, ``"MD"``, ``"SMD"``, ``"COR"``,
        ``"ZCOR"``, ``"PR"``, ``"PLN"``, ``"PLO"``, ``"PAS"``, ``"PFT"``,
        ``"IRR"``.
    **kwargs : dict
        Keyword arguments of the corresponding function.

    Returns
    -------
    result : EffectSize
        Named tuple ``(yi, vi)`` of float arrays of shape (n_studies,).

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
