r"""Many random-effects meta-analyses over the same studies, vectorized over outputs.

For a shared design :math:`X` (k x p) and outcomes :math:`y_{\cdot j}` with known
sampling variances :math:`v_{\cdot j}`, output :math:`j = 1, \dots, m` is the
model of :mod:`skmeta._engine._random_effects`,

.. math::

    y_{ij} = x_i^\top \beta_j + u_{ij} + e_{ij},\qquad
    u_{ij} \sim N(0, \tau_j^2),\qquad e_{ij} \sim N(0, v_{ij}),

fitted to the studies that cover output :math:`j` (``NaN`` in ``y`` or ``v``
marks a study missing for that output; it gets weight zero).  Every quantity is
an array expression over the outputs: the weighted moments
:math:`\sum_i w_{ij} x_i x_i^\top` of all outputs are one matrix product, the
:math:`p \times p` systems are solved by a Cholesky factorisation unrolled over
``p`` (vectors of length ``m`` in each entry), and the iterative estimators
(REML, ML by Newton/Fisher scoring, PM/PMM/EB by Newton's method on the
generalised Q) update every output at once, each with its own convergence
test.  No ``k x k`` or ``m x m`` array is formed; memory is O(k m) for the
inputs and O(m p^2) for the results.  Evaluations run over chunks of outputs
whose ``(k, chunk)`` work arrays stay small (see :data:`CHUNK_BYTES`).

The algorithm is the single fit's
(:func:`skmeta._engine._random_effects.fit_random_effects`), step by step: the
same starting values, Newton/Fisher-scoring rules and tolerances
(:func:`skmeta._engine._univariate.maximize_likelihood`), the same certification
of the (restricted) likelihood's maximum -- a search of the profile on the
single fit's grid of :math:`\tau^2` wherever the path ends on the bound
:math:`\tau^2 = 0` or the criterion at 0 beats it -- and the same formulas for
the estimators, their standard errors, :math:`Q`, :math:`I^2` and the
log-likelihood (shared functions of :mod:`skmeta._engine._univariate`,
:mod:`skmeta._engine._tau2` and :mod:`skmeta._engine._gls`).  Output ``j``
therefore equals the single fit of column ``j`` on its complete rows.

Outputs whose data need the single fit's safeguards for extreme weights --
sampling variances of zero, total variances spanning more than
:data:`~skmeta._engine._univariate.CERTIFY_SPREAD` (likelihood methods) or
:data:`~skmeta._engine._univariate.DOMINANT_WEIGHT_RATIO` (the others), effects
or variances beyond :math:`2^{\pm 64}` -- and the rare outputs whose path did not
converge are fitted by the single fit itself, one by one (a few per million in
ordinary data).

References
----------
Viechtbauer, W. (2005). Bias and efficiency of meta-analytic variance
estimators in the random-effects model. Journal of Educational and Behavioral
Statistics, 30(3), 261-293.

Raudenbush, S. W. (2009). Analyzing effect sizes: random-effects models. In
H. Cooper, L. V. Hedges & J. C. Valentine (Eds.), The handbook of research
synthesis and meta-analysis (2nd ed., pp. 295-315).
"""

from typing import NamedTuple

import numpy as np
from scipy import special, stats

from skmeta._engine import _random_effects as single
from skmeta._engine import _univariate as uni
from skmeta._engine._gls import RANK_RTOL, profiled_loglik
from skmeta._engine._tau2 import (
    hunter_schmidt_estimate,
    information_se,
    inverse_variance_se,
    paule_mandel_se,
    quadratic_se,
    tau2_method,
)

#: Size in bytes of one ``(k, chunk)`` work array of an evaluation: the
#: arithmetic runs chunk by chunk so that its temporaries stay in the CPU caches
#: (about a core's second-level cache; measured best between 1 and 4 MB).
CHUNK_BYTES = 2**21
#: Fewest outputs per chunk (bounds the Python overhead per output at large k).
MIN_CHUNK = 16
#: A window of outputs of which at least this share is requested is evaluated
#: whole (a view) rather than gathered (a copy): gathering an output's columns
#: costs about as much as evaluating it (see :func:`_chunked`).
DENSE_SHARE = 0.5
#: Size in bytes of the (k, outputs) arrays of the outputs fitted together.
#: The iterative estimators update all of them at once, so that the few slow
#: outputs cost one evaluation per iteration for the whole pass, while the
#: working memory beyond the inputs stays a few times this size.
PASS_BYTES = 2**25
#: Methods whose tau^2 is a closed-form function of the fixed-effect moments.
CLOSED_FORM_METHODS = frozenset({"fe", "dl", "hs", "hsk"})
#: Methods that iterate over subsets of the outputs.
ITERATIVE_METHODS = frozenset({"reml", "ml", "pm", "pmm", "eb"})
#: Methods with a vectorized estimator here; the outputs of any other method of
#: :data:`~skmeta._engine._tau2.TAU2_METHODS` are fitted by the single fit.
VECTORIZED_METHODS = frozenset(
    {"fe", "reml", "ml", "he", "dl", "genq", "hs", "hsk", "sj", "pm", "eb", "pmm"}
)
#: Newton's method on the generalised Q stops at a step below
#: ``ROOT_XTOL * scale + ROOT_RTOL * tau2`` (brentq's tolerances in the single fit).
ROOT_XTOL = 1e-15
ROOT_RTOL = 4 * np.finfo(float).eps
#: Newton's method from below on the convex, decreasing Q converges
#: monotonically (quadratically near the root); this bounds its iterations.
MAX_ROOT_ITER = 200
#: Largest degrees of freedom whose chi-square tail probability is summed as a
#: finite series (its cost grows with the degrees of freedom; beyond this the
#: general incomplete gamma function is as fast).
SERIES_MAX_DF = 64
#: Rows of weights multiplied together before one logarithm is taken: ten
#: factors, each within 1e+-30, stay within the range of normal doubles; the
#: columns whose product leaves it take one logarithm per entry (checked).  The
#: product's rounding changes each logarithm by at most ten units of 2**-52.
LOG_GROUP = 10
#: Studies after the first whose differences from it bound each output's range
#: of y from below in the screen of :func:`_screened` (a few rows: one
#: difference of continuous data is almost never 0, and a zero bound only sends
#: the block to the per-output checks).
RANGE_PROBE_ROWS = 3
#: Allowance for the rounding of the logarithms in the bounds of the rescaling
#: exponent in :func:`_screened` (their errors are a few ulps).
EXPONENT_MARGIN = 0.25

#: Smallest normal double (looked up once, not at every evaluation of a chunk).
TINY = np.finfo(float).tiny

#: Codes of :attr:`RandomEffectsFits.limit` (the single fit's ``limit``).
LIMITS = (None, "exact", "diverges")


class RandomEffectsFits(NamedTuple):
    """Per-output results of :func:`fit_random_effects` (leading axis: output).

    Outputs that cannot be estimated (``estimable`` False: no more studies
    than parameters, or a design that is rank-deficient on their studies) hold
    NaN in every float field.
    """

    tau2: np.ndarray  # (m,) reported tau^2 (0 at a degenerate limit)
    fit_tau2: np.ndarray  # (m,) tau^2 of the fit (the floor at such a limit)
    tau2_se: np.ndarray  # (m,) metafor's se.tau2 (NaN for FE / fixed tau^2)
    beta: np.ndarray  # (m, p) coefficients in design order
    cov: np.ndarray  # (m, p, p) their covariance (scaled under Knapp-Hartung)
    dof: np.ndarray  # (m,) residual degrees of freedom n_studies - p
    coef_dof: np.ndarray  # (m,) df of the coefficient tests (inf for z)
    n_studies: np.ndarray  # (m,) studies that cover each output
    q: np.ndarray  # (m,) Cochran's Q_E (NaN when some v are 0)
    q_pvalue: np.ndarray
    i2: np.ndarray
    h2: np.ndarray
    typical_var: np.ndarray  # (m,) (k - p) / tr(P_FE)
    qm: np.ndarray  # (m,) omnibus test of the moderators (chi^2 or F)
    qm_pvalue: np.ndarray
    qm_df: int  # number of moderators tested (0: none)
    loglik: np.ndarray  # (m,) REML criterion (method "reml") or log-likelihood
    n_iter: np.ndarray  # (m,)
    converged: np.ndarray  # (m,) bool
    estimable: np.ndarray  # (m,) bool
    limit: np.ndarray  # (m,) int8: index into LIMITS (zero-variance limits)
    kh_degenerate: np.ndarray  # (m,) bool: Knapp-Hartung s^2 is rounding noise
    one_by_one: np.ndarray  # (m,) bool: fitted by the single fit


# --------------------------------------------------------------------------------------
# design and blocks of outputs
# --------------------------------------------------------------------------------------


class _Design(NamedTuple):
    """The shared design, centred, with the products its moment matrices need."""

    X: np.ndarray  # (k, p) columns after the intercept centred at their means
    means: np.ndarray  # (p,) the subtracted means (0 for the intercept column)
    pairs: np.ndarray  # (n_pairs, k) products x_a x_b, a <= b
    upper: tuple  # index arrays (a, b) of those pairs
    intercept: bool  # whether the first column is the intercept


def _prepare_design(design):
    p = design.shape[1]
    intercept = bool(p) and bool(np.all(design[:, 0] == 1.0))
    means = np.zeros(p)
    X = np.array(design, dtype=float)
    if intercept and p > 1:
        # Centring the other columns is a unit-triangular reparametrisation: P,
        # the residuals and log|X'WX| are unchanged, and moment sums lose no
        # precision to large offsets (e.g. calendar years).
        means[1:] = X[:, 1:].mean(axis=0)
        X[:, 1:] -= means[1:]
    upper = np.triu_indices(p)
    pairs = np.ascontiguousarray((X[:, upper[0]] * X[:, upper[1]]).T)
    return _Design(X, means, pairs, upper, intercept)


class _Block(NamedTuple):
    """Outputs with their missing entries zeroed, and per-output constants."""

    y: np.ndarray  # (k, b) centred at offset (unless deferred); 0 where missing
    v: np.ndarray  # (k, b) zeros where missing
    mask: np.ndarray | None  # (k, b) bool, None when every study is present
    n: np.ndarray  # (b,) studies per output
    offset: np.ndarray  # (b,) mean of y over the studies present (or 0)
    # (b,) smallest and largest sampling variance and y (not centred) present;
    # None when the screen of _make_block made them unnecessary
    vmin: np.ndarray | None
    vmax: np.ndarray | None
    ymin: np.ndarray | None
    ymax: np.ndarray | None
    mean_v: np.ndarray  # (b,)
    var_y: np.ndarray  # (b,) population variance of y (NaN until needed)
    scale: np.ndarray  # (b,) max(var(y), mean(v)), or 1 (NaN until needed)


def _make_block(y, v, centre, screen=None, defer=False):
    """Outputs from raw ``(k, b)`` columns with NaN marking missing entries.

    With ``centre`` (a design with an intercept) y is centred at its mean over
    the studies present: the fits' residuals, traces and criteria are
    unchanged, their moment sums lose no precision to an offset, and the mean
    is added back to the intercept.  With ``defer`` the mean is found but y is
    left as it is: the kernel that reads it centres each chunk (:func:`_centre`)
    while it is in the caches, instead of a centred copy of the whole block.

    ``screen`` (the ``(ratio, extra)`` of :func:`_screen_limits`): where every
    study is present and the bounds over all outputs prove that none needs the
    single fit (:func:`_screened`), the per-output extremes are not formed
    (``vmin``, ``vmax``, ``ymin``, ``ymax`` are None).
    """
    ones = np.ones(y.shape[0])
    sum_y = ones @ y
    sum_v = ones @ v
    if np.isnan(sum_y + sum_v).any():  # NaN propagates to the column sums
        mask = ~(np.isnan(y) | np.isnan(v))
        y = np.where(mask, y, 0.0)
        v = np.where(mask, v, 0.0)
        n = mask.sum(axis=0)
        sum_y = y.sum(axis=0)
        sum_v = v.sum(axis=0)
        vmin = np.where(mask, v, np.inf).min(axis=0)
        vmax = np.where(mask, v, -np.inf).max(axis=0)
        ymin = np.where(mask, y, np.inf).min(axis=0)
        ymax = np.where(mask, y, -np.inf).max(axis=0)
    else:
        mask = None
        v = np.ascontiguousarray(v)
        n = np.full(y.shape[1], y.shape[0])
        if screen is not None and _screened(y, v, *screen):
            vmin = vmax = ymin = ymax = None
        else:
            vmin, vmax = v.min(axis=0), v.max(axis=0)
            ymin, ymax = y.min(axis=0), y.max(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = np.where(n > 0, sum_y / n, 0.0) if centre else np.zeros(n.shape)
        mean_v = sum_v / n
    nan = np.full(n.shape, np.nan)
    block = _Block(y, v, mask, n, offset, vmin, vmax, ymin, ymax, mean_v, nan, nan)
    if centre and not defer:
        return _centre(block)
    return block._replace(y=np.ascontiguousarray(y)) if not centre else block


def _centre(block):
    """``block`` with y centred at ``offset`` (0 where missing)."""
    y = block.y - block.offset
    if block.mask is not None:
        y *= block.mask
    return block._replace(y=y)


def _screen_limits(method, tau2):
    """``(ratio, extra)`` of the spread test of :func:`_needs_single_fit`: the
    largest ratio of total variances :math:`(v + extra)` the vectorized fit takes."""
    extra = 0.0 if tau2 is None else tau2
    estimated = tau2 is None and method != "fe"
    likelihood = estimated and tau2_method(method).likelihood
    return (uni.CERTIFY_SPREAD if likelihood else uni.DOMINANT_WEIGHT_RATIO), extra


def _screened(y, v, ratio, extra):
    """Whether bounds over all outputs prove that none needs the single fit.

    Complete columns (no NaN) of ``y`` and ``v``. The tests of
    :func:`_needs_single_fit` on each output's extremes follow from bounds
    over all outputs: with ``v_lo``, ``v_hi`` the extremes of all of ``v``,
    every output has ``vmin >= v_lo > 0`` and ``(vmax + extra) <= v_hi +
    extra <= ratio (v_lo + extra) <= ratio (vmin + extra)`` (rounding is
    monotone); its rescaling exponent is the rounded mean of ``log2(sqrt(vmax))``,
    within ``[log2(v_lo), log2(v_hi)] / 2``, and ``log2(range of y)``, within
    ``[log2(gap), log2(range of all y)]`` where ``gap`` (the largest difference
    of the first study's y from those of the next :data:`RANGE_PROBE_ROWS`) is
    a lower bound of the output's range -- positive, so that logarithm is
    finite.  When the mean's bounds lie within
    ``SAFE_EXPONENT + 1/2 - EXPONENT_MARGIN`` of 0, no exponent rounds beyond
    ``SAFE_EXPONENT``. These are four reductions over the whole array and a few
    rows, instead of four per output.
    """
    k = y.shape[0]
    if k < 2 or not y.size:
        return False
    v_lo, v_hi = v.min(), v.max()
    if not v_lo > 0 or not v_hi + extra <= ratio * (v_lo + extra):
        return False
    gap = np.abs(y[1] - y[0])
    for i in range(2, min(k, RANGE_PROBE_ROWS + 1)):
        np.maximum(gap, np.abs(y[i] - y[0]), out=gap)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        gap_lo = gap.min()
        y_range = y.max() - y.min()
        low = 0.5 * (0.5 * np.log2(v_lo) + np.log2(gap_lo))
        high = 0.5 * (0.5 * np.log2(v_hi) + np.log2(y_range))
    limit = single.SAFE_EXPONENT + 0.5 - EXPONENT_MARGIN
    return bool(gap_lo > 0 and -limit < low and high < limit)


def _vmin(block):
    """Smallest sampling variance of each output (formed here if screened)."""
    return block.v.min(axis=0) if block.vmin is None else block.vmin


def _with_spread(block, centred):
    """``block`` with the variance of y and the variance scale of the single
    fit (``variance_scale``: max(var(y), mean(v)), or 1)."""
    if not np.isnan(block.var_y).all():
        return block
    with np.errstate(invalid="ignore", divide="ignore"):
        var_y = _chunked(_squared_deviations, None, block, centred=centred) / block.n
        scale = np.maximum(var_y, block.mean_v)
    scale = np.where(scale > 0, scale, 1.0)
    return block._replace(var_y=var_y, scale=scale)


def _squared_deviations(design, block, *, centred):
    r""":math:`\sum_i (y_{ij} - \bar y_j)^2` over the studies present."""
    if centred:
        r = block.y
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            r = _present(block, block.y - block.y.sum(axis=0) / block.n)
    return np.einsum("kb,kb->b", r, r)


def _max_abs_y(block):
    """Largest |y| over the studies present."""
    return np.maximum(block.ymax, -block.ymin)


def _take(block, index):
    """Outputs ``index`` (a slice gives views; integers or booleans copies)."""
    if isinstance(index, slice):
        columns = [a[:, index] for a in block[:3] if a is not None]
    else:
        if index.dtype == bool:
            index = np.flatnonzero(index)
        columns = [np.take(a, index, axis=1) for a in block[:3] if a is not None]
    mask = None if block.mask is None else columns[2]
    rest = (None if a is None else a[index] for a in block[3:])
    return _Block(columns[0], columns[1], mask, *rest)


def _present(block, values):
    """``values`` (k, b) with the missing entries set to 0."""
    return values if block.mask is None else values * block.mask


def _inverse_variance(block, extra=None):
    """Weights :math:`1/(v + extra)` with 0 for the missing entries."""
    if block.mask is None:
        if extra is None:
            return 1.0 / block.v
        w = block.v + extra
        return np.divide(1.0, w, out=w)
    total = block.v if extra is None else block.v + extra
    w = np.zeros_like(total)
    np.divide(1.0, total, out=w, where=block.mask)
    return w


def _order_statistic(block, values, rank):
    """The ``rank``-th smallest (0-based, per output) of ``values`` (k, b) over
    the studies present."""
    if block.mask is None and np.all(rank == rank[0]):
        return np.partition(values, rank[0], axis=0)[rank[0]]
    ordered = np.sort(np.where(block.mask, values, np.inf), axis=0)
    return np.take_along_axis(ordered, rank[None], axis=0)[0]


def _median_v(block):
    """``np.median`` of the sampling variances present (mean of the two middle
    ones for an even number)."""
    if block.mask is None and np.all(block.n == block.n[0]):
        # every output has all studies: one sort along the studies serves both
        # middle ones (faster than two partitions along the strided axis)
        ordered = np.sort(block.v, axis=0)
        n = int(block.n[0])
        return 0.5 * (ordered[(n - 1) // 2] + ordered[n // 2])
    upper = _order_statistic(block, block.v, block.n // 2)
    lower = _order_statistic(block, block.v, (block.n - 1) // 2)
    return 0.5 * (lower + upper)


def _needs_single_fit(block, method, tau2, weights):
    """Outputs whose data need the single fit's safeguards for extreme weights.

    Zero sampling variances (a floor under tau^2 and its degenerate limits),
    total variances whose spread makes the single fit search the profile
    (likelihood methods: :data:`~skmeta._engine._univariate.CERTIFY_SPREAD`) or
    eliminate dominant studies (:data:`~skmeta._engine._univariate.
    DOMINANT_WEIGHT_RATIO`), GENQ weights of that spread, and data that the
    single fit rescales (beyond 2**+-SAFE_EXPONENT).
    """
    ratio, extra = _screen_limits(method, tau2)
    if block.vmin is None:  # every output passed the screen of _make_block
        out = np.zeros(block.n.shape, dtype=bool)
        if weights is not None:
            out |= weights.max(axis=0) > uni.DOMINANT_WEIGHT_RATIO * weights.min(axis=0)
        return out
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        out = ~(block.vmin > 0) | (block.vmax + extra > ratio * (block.vmin + extra))
        if weights is not None:
            a_min = (
                np.where(block.mask, weights, np.inf)
                if block.mask is not None
                else weights
            )
            a_max = (
                np.where(block.mask, weights, -np.inf)
                if block.mask is not None
                else weights
            )
            out |= a_max.max(axis=0) > uni.DOMINANT_WEIGHT_RATIO * a_min.min(axis=0)
        # the exponent of the single fit's rescaling (standardise): the mean of
        # the finite ones of log2(sqrt(max v)) and log2(range of y)
        a = 0.5 * np.log2(block.vmax)
        b = np.log2(block.ymax - block.ymin)
        fa, fb = np.isfinite(a), np.isfinite(b)
        total = np.where(fa, a, 0.0) + np.where(fb, b, 0.0)
        exponent = np.round(total / np.maximum(fa * 1 + fb, 1))
    return out | (np.abs(exponent) > single.SAFE_EXPONENT)


# --------------------------------------------------------------------------------------
# batched p x p algebra: arrays of shape (p, p, b), output axis last
# --------------------------------------------------------------------------------------


def _gram(design, u):
    r""":math:`\sum_i u_{ij} x_i x_i^\top` for every output ``j``: shape (p, p, b)."""
    p = design.X.shape[1]
    packed = design.pairs @ u
    G = np.empty((p, p, u.shape[1]))
    a, b = design.upper
    G[a, b] = packed
    G[b, a] = packed
    return G


def _cholesky(A):
    """Lower Cholesky factors of the (p, p, b) stack and the squared pivots.

    The pivots :math:`L_{jj}^2` are returned as they are computed (a pivot
    <= 0 marks a matrix that is not positive definite; its factor is NaN).
    """
    p = A.shape[0]
    L = np.zeros_like(A)
    pivots = np.empty(A.shape[::2])
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(p):
            d = A[j, j] - np.einsum("lb,lb->b", L[j, :j], L[j, :j])
            pivots[j] = d
            L[j, j] = np.sqrt(np.where(d > 0, d, np.nan))
            for i in range(j + 1, p):
                s = A[i, j] - np.einsum("lb,lb->b", L[i, :j], L[j, :j])
                L[i, j] = s / L[j, j]
    return L, pivots


def _cholesky_inverse(A):
    """Inverse and log-determinant of a (p, p, b) stack of s.p.d. matrices.

    A matrix that is not positive definite gets NaN.
    """
    p = A.shape[0]
    if p == 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(A[0, 0] > 0, A[0, 0], np.nan)
            return (1.0 / a)[None, None], np.log(a)
    L, _ = _cholesky(A)
    # inverse of the triangular factor by forward substitution, then L^-T L^-1
    Linv = np.zeros_like(L)
    for j in range(p):
        Linv[j, j] = 1.0 / L[j, j]
        for i in range(j + 1, p):
            s = np.einsum("lb,lb->b", L[i, j:i], Linv[j:i, j])
            Linv[i, j] = -s / L[i, i]
    inv = np.einsum("cab,ceb->aeb", Linv, Linv)
    logdet = 2.0 * np.log(np.einsum("iib->ib", L)).sum(axis=0)
    return inv, logdet


def _matmul(A, B):
    return np.einsum("acb,ceb->aeb", A, B)


def _trace_product(A, B):
    r""":math:`\operatorname{tr}(A B)` for every output."""
    return np.einsum("acb,cab->b", A, B)


def _quadratic(A, g):
    r""":math:`g^\top A g` for every output (``g`` of shape (p, b))."""
    return np.einsum("ab,acb,cb->b", g, A, g)


def _chunk_size(k):
    """Outputs per chunk for ``k`` studies (see :data:`CHUNK_BYTES`)."""
    return max(MIN_CHUNK, CHUNK_BYTES // (8 * max(k, 1)))


def _as_slice(index):
    """``index`` as a slice when it is a run of consecutive outputs (a view
    instead of a copy), else unchanged."""
    if index.size and index[-1] - index[0] == index.size - 1:
        if index.size < 3 or np.all(np.diff(index) == 1):
            return slice(int(index[0]), int(index[-1]) + 1)
    return index


def _chunked(kernel, design, block, *per_output, index=None, **options):
    """``kernel(design, chunk, *per_output, **options)`` over chunks of outputs.

    The chunks are the outputs ``index`` of ``block`` (all of them if None);
    ``per_output`` arrays are aligned with those outputs (output axis last).
    The kernel returns an array, a dict or a tuple of arrays with the output
    axis last, which are concatenated.

    A sorted ``index`` is taken window by window of the block's outputs: a
    window holding at least :data:`DENSE_SHARE` of its outputs is evaluated
    whole, as a view (the other outputs' results are dropped), the outputs of
    the sparser windows are gathered into chunks (copies).  Each output's result
    depends on its own column only, so this changes no number.
    """
    total = block.n.shape[0]
    size = _chunk_size(block.y.shape[0])
    run = None if index is None else _as_slice(index)
    if index is None or isinstance(run, slice):
        start, stop = (0, total) if index is None else (run.start, run.stop)
        spans = [(lo, min(lo + size, stop)) for lo in range(start, stop, size)]
        parts = [
            kernel(
                design,
                block if hi - lo == total else _take(block, slice(lo, hi)),
                *(a[..., lo - start : hi - start] for a in per_output),
                **options,
            )
            for lo, hi in spans
        ]
        return _join(parts)
    parts = []
    pending = []  # positions in index of sparse windows, gathered together

    def gather(positions):
        cols = _as_slice(index[positions])
        chunk = _take(block, cols)
        parts.append(
            kernel(design, chunk, *(a[..., positions] for a in per_output), **options)
        )

    def flush():
        if pending:
            positions = np.concatenate(pending)
            for lo in range(0, positions.size, size):
                gather(positions[lo : lo + size])
            pending.clear()

    b = index.shape[0]
    if b and np.all(index[1:] > index[:-1]):
        bounds = np.searchsorted(index, np.arange(0, total + size, size))
        for w in range(bounds.size - 1):
            lo, hi = int(bounds[w]), int(bounds[w + 1])
            if lo == hi:
                continue
            first, last = w * size, min((w + 1) * size, total)
            if hi - lo < DENSE_SHARE * (last - first):
                pending.append(np.arange(lo, hi))
                continue
            flush()
            where = index[lo:hi] - first
            chunk = block if last - first == total else _take(block, slice(first, last))
            spread = [a[..., lo:hi] for a in per_output]
            if hi - lo < last - first:
                for j, a in enumerate(spread):
                    # the dropped outputs get a value of an evaluated one
                    spread[j] = np.repeat(a[..., :1], last - first, axis=-1)
                    spread[j][..., where] = a
            whole = kernel(design, chunk, *spread, **options)
            parts.append(_select(whole, None if hi - lo == last - first else where))
        flush()
    else:
        for lo in range(0, b, size):
            gather(np.arange(lo, min(lo + size, b)))
    return _join(parts)


def _select(result, where):
    """The outputs ``where`` (last axis) of a kernel's result (all if None)."""
    if where is None:
        return result
    if isinstance(result, np.ndarray):
        return result[..., where]
    if isinstance(result, dict):
        return {key: value[..., where] for key, value in result.items()}
    values = (value[..., where] for value in result)
    return tuple(values) if type(result) is tuple else type(result)(*values)


def _join(parts):
    """Concatenate the kernel results of consecutive chunks (output axis last):
    arrays, or dicts and tuples of them (nested)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(parts, axis=-1)
    if isinstance(first, dict):
        return {key: _join([part[key] for part in parts]) for key in first}
    joined = (_join(list(items)) for items in zip(*parts, strict=True))
    if type(first) is tuple:
        return tuple(joined)
    return type(first)(*joined)


# --------------------------------------------------------------------------------------
# weighted least squares and traces of the projection (kernels on a chunk)
# --------------------------------------------------------------------------------------


class _Fits(NamedTuple):
    beta: np.ndarray  # (p, b), centred parametrisation
    cov: np.ndarray  # (p, p, b), (X' W X)^{-1}
    resid: np.ndarray  # (k, b)
    weights: np.ndarray  # (k, b)
    rss: np.ndarray  # (b,)
    logdet: np.ndarray  # (b,) log |X' W X|
    sum_w: np.ndarray  # (b,)


def _weighted_fits(design, y, w):
    """Weighted least squares of every output: the vectorized ``weighted_fit``.

    As there, with an intercept the other columns are centred at their
    *weighted* means (per output): one study with a dominant weight then costs
    no precision.  The coefficients and their covariance are returned in the
    parametrisation of ``design.X``.
    """
    p = design.X.shape[1]
    b = y.shape[1]
    if p == 0:
        rss = np.einsum("kb,kb,kb->b", w, y, y)
        empty = (np.zeros((0, b)), np.zeros((0, 0, b)))
        return _Fits(*empty, y, w, rss, np.zeros(b), w.sum(axis=0))
    if not design.intercept or p == 1:
        gram = _gram(design, w)
        cov, logdet = _cholesky_inverse(gram)
        if p == 1 and design.intercept:
            beta = cov[0] * np.einsum("kb,kb->b", w, y)
            resid = y - beta[0]
        else:
            beta = np.einsum("acb,cb->ab", cov, design.X.T @ (w * y))
            resid = y - design.X @ beta
        rss = np.einsum("kb,kb,kb->b", w, resid, resid)
        sum_w = gram[0, 0] if design.intercept else w.sum(axis=0)
        return _Fits(beta, cov, resid, w, rss, logdet, sum_w)
    sum_w = w.sum(axis=0)
    means = (design.X[:, 1:].T @ w) / sum_w  # (p - 1, b) weighted means
    centred = [design.X[:, a, None] - means[a - 1] for a in range(1, p)]
    A = np.empty((p, p, b))
    A[0, 0] = sum_w
    xwy = np.empty((p, b))
    xwy[0] = np.einsum("kb,kb->b", w, y)
    for a in range(1, p):
        wx = w * centred[a - 1]
        xwy[a] = np.einsum("kb,kb->b", wx, y)
        # not 0 in floating point: with a dominant weight, the rounding of the
        # weighted mean matters, and the solve must see it
        A[0, a] = A[a, 0] = wx.sum(axis=0)
        for c in range(a, p):
            A[a, c] = A[c, a] = np.einsum("kb,kb->b", wx, centred[c - 1])
    cov, logdet = _cholesky_inverse(A)
    beta = np.einsum("acb,cb->ab", cov, xwy)
    resid = y - beta[0]
    for a in range(1, p):
        resid = resid - centred[a - 1] * beta[a]
    rss = np.einsum("kb,kb,kb->b", w, resid, resid)
    # back to the columns of design.X: beta_0 - means . beta_rest
    T = np.zeros((p, p, b))
    T[np.arange(p), np.arange(p)] = 1.0
    T[0, 1:] = -means
    beta = np.einsum("acb,cb->ab", T, beta)
    cov = np.einsum("acb,cdb,edb->aeb", T, cov, T)
    return _Fits(beta, cov, resid, w, rss, logdet, sum_w)


def _projection_traces(design, fit, squared):
    r""":math:`\operatorname{tr}P` and (if ``squared``) :math:`\operatorname{tr}P^2`.

    :math:`\operatorname{tr}P = \sum w - \operatorname{tr}(A^{-1} S_2)` and
    :math:`\operatorname{tr}P^2 = \sum w^2 - 2\operatorname{tr}(A^{-1} S_3) +
    \operatorname{tr}((A^{-1}S_2)^2)` with :math:`S_j = X^\top W^j X`.
    """
    w = fit.weights
    w2 = w * w
    if not design.X.shape[1]:
        return fit.sum_w, (w2.sum(axis=0) if squared else None)
    S2 = _gram(design, w2)
    M2 = _matmul(fit.cov, S2)
    trp = fit.sum_w - np.einsum("aab->b", M2)
    if not squared:
        return trp, None
    sum_w2 = S2[0, 0] if design.intercept else w2.sum(axis=0)
    S3 = _gram(design, w2 * w)
    return trp, sum_w2 - 2.0 * _trace_product(fit.cov, S3) + _trace_product(M2, M2)


def _trace_pd(design, fit, d=None):
    r""":math:`\operatorname{tr}(P D)` for diagonal ``D`` (identity if None).

    :math:`\sum_i w_i d_i - \operatorname{tr}(A^{-1} X^\top
    \operatorname{diag}(w^2 d) X)` with :math:`A = X^\top W X`.
    """
    wd = fit.weights if d is None else fit.weights * d
    total = wd.sum(axis=0)
    if design.X.shape[1]:
        total = total - _trace_product(fit.cov, _gram(design, fit.weights * wd))
    return total


def _trace_pdpd(design, fit, d1=None, d2=None):
    r""":math:`\operatorname{tr}(P D_1 P D_2)` for diagonal ``D_1``, ``D_2``.

    With :math:`e_j = w \circ d_j` and :math:`B_j = X^\top
    \operatorname{diag}(w e_j) X`: :math:`\sum_i e_{1i} e_{2i} -
    2\operatorname{tr}(A^{-1} X^\top \operatorname{diag}(w e_1 e_2) X) +
    \operatorname{tr}(A^{-1} B_1 A^{-1} B_2)`.
    """
    w = fit.weights
    e1 = w if d1 is None else w * d1
    e2 = w if d2 is None else w * d2
    e12 = e1 * e2
    total = e12.sum(axis=0)
    if design.X.shape[1]:
        total = total - 2.0 * _trace_product(fit.cov, _gram(design, w * e12))
        M1 = _matmul(fit.cov, _gram(design, w * e1))
        M2 = M1 if d2 is d1 else _matmul(fit.cov, _gram(design, w * e2))
        total = total + _trace_product(M1, M2)
    return total


def _sum_log_var(block, w):
    r""":math:`\sum_i \log(v_{ij} + \tau_j^2) = -\sum_i \log w_{ij}` over the
    studies present."""
    if block.mask is not None:
        w = np.where(block.mask, w, 1.0)
    return -_sum_log(w)


def _sum_log(x):
    """Column sums of ``log(x)`` for positive ``x`` of shape (k, b).

    Groups of :data:`LOG_GROUP` rows are multiplied before one logarithm is
    taken (the logarithm costs several multiplications); columns where a
    product is not a normal positive double take the logarithm of each entry.
    """
    k = x.shape[0]
    if k < 2 * LOG_GROUP:
        return np.log(x).sum(axis=0)
    product = x[0::LOG_GROUP].copy()
    rows = product.shape[0]
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        for j in range(1, LOG_GROUP):
            part = x[j::LOG_GROUP]
            product[: part.shape[0]] *= part
        total = np.log(product).sum(axis=0)
    bad = ~np.isfinite(total) | (product < TINY).any(axis=0)
    if rows and bad.any():
        total[bad] = np.log(x[:, bad]).sum(axis=0)
    return total


def _fixed_effect_moments(design, block, *, trace_pp, loglik):
    r"""What the fixed-effect fit (weights 1 / v, all v > 0) gives the methods.

    :math:`Q_E`, :math:`\operatorname{tr}P` and :math:`\sum 1/v` always;
    :math:`\operatorname{tr}P^2` (``trace_pp``: the standard errors of DL, HS,
    HSk); :math:`\log|X^\top W X|` and :math:`\sum \log v` (``loglik``: the
    likelihood at :math:`\tau^2 = 0`).  (:math:`\operatorname{tr}(PV) = k - p`
    exactly for these weights.)  From the weighted moments of :math:`(x, y)`
    (:func:`_moment_summary`).
    """
    w = _inverse_variance(block)
    fit = _moment_summary(design, block, w, 3 if trace_pp else 2)
    out = {"q": fit["rss"], "trp": fit["trp"], "sum_w": fit["sum_w"]}
    if trace_pp:
        out["trpp"] = fit["trpp"]
    if loglik:
        out["logdet"] = fit["logdet"]
        out["sum_log_v"] = _sum_log_var(block, w)
    return out


def _moment_summary(design, block, w, powers):
    r"""The weighted fit with weights ``w`` from the moments of :math:`(x, y)`.

    :func:`_profile_moments` of :math:`S_1, \dots, S_{powers}`: the
    coefficients (centred parametrisation), their covariance
    :math:`(X^\top W X)^{-1}`, :math:`y^\top P y` (``rss``),
    :math:`\log|X^\top W X|` and :math:`\sum w`; with ``powers`` >= 2
    :math:`\operatorname{tr}P` and :math:`\sum w^2`, with 3
    :math:`\operatorname{tr}P^2`.  One pass over the data per power.
    """
    p = design.X.shape[1]
    b = w.shape[1]
    S = _weighted_moments(design, block, w, powers, y_powers=1)
    out = _profile_moments(S, p, y_powers=1)
    if not p:
        out["beta"], out["cov"] = np.zeros((0, b)), np.zeros((0, 0, b))
    if design.intercept:
        out["sum_w"] = S[0, 0, 0]
        if powers > 1:
            out["sum_w2"] = S[1, 0, 0]
    else:
        out["sum_w"] = w.sum(axis=0)
        if powers > 1:
            out["sum_w2"] = np.einsum("kb,kb->b", w, w)
    if powers > 1:
        out["trp"] = out["sum_w"] - out["trp_x"]
    if powers > 2:
        out["trpp"] = out["sum_w2"] - out["trpp_x"]
    return out


def _moment_fit(design, block, weights):
    r"""Residual sum of squares and the traces of a fit with fixed weights.

    ``rss`` (:math:`Q_a`), :math:`\operatorname{tr}(P_A)`,
    :math:`\operatorname{tr}(P_A V)` and the traces of the moment estimators'
    variance: :math:`\operatorname{tr}(P_A V P_A V)`, :math:`\operatorname{tr}(P_A
    V P_A)`, :math:`\operatorname{tr}(P_A^2)`.
    """
    fit = _weighted_fits(design, block.y, weights)
    v = block.v
    return {
        "rss": fit.rss,
        "trp": _trace_pd(design, fit),
        "trpv": _trace_pd(design, fit, v),
        "pvpv": _trace_pdpd(design, fit, v, v),
        "pvp": _trace_pdpd(design, fit, v, None),
        "pp": _trace_pdpd(design, fit),
    }


def _unit_weight_moments(design, block):
    """:func:`_moment_fit` with unit weights (ordinary least squares; HE)."""
    return _moment_fit(design, block, _unit_weights(block))


def _unit_weights(block):
    return np.ones_like(block.y) if block.mask is None else block.mask * 1.0


def _hedges_start(design, block):
    """What the HE estimate needs of :func:`_unit_weight_moments` (``rss`` and
    ``trpv``, by the same formulas): the likelihood methods' start where DL's
    is 0, without the traces of its standard error."""
    fit = _weighted_fits(design, block.y, _unit_weights(block))
    return {"rss": fit.rss, "trpv": _trace_pd(design, fit, block.v)}


def _fixed_weight_moments(design, block, weights):
    """:func:`_moment_fit` with ``weights`` (k, b) (GENQ)."""
    return _moment_fit(design, block, _present(block, weights))


def _inverse_variance_moments(design, block, extra):
    """:func:`_moment_fit` with weights 1 / (v + extra) (SJ at its start)."""
    return _moment_fit(design, block, _inverse_variance(block, extra))


def _generalized_q(design, block, tau2):
    r""":math:`Q(\tau^2) = y^\top P y` and :math:`y^\top P^2 y = -Q'(\tau^2)`.

    From the residuals of the weighted fit (as the single fit's
    ``generalized_q``), which stay accurate when a zero sampling variance gives
    a study the weight :math:`1/\tau^2` at the floor.
    """
    fit = _weighted_fits(design, block.y, _inverse_variance(block, tau2))
    wr = fit.weights * fit.resid
    return fit.rss, np.einsum("kb,kb->b", wr, wr)


def _final_moments(design, block, tau2, *, trace_pp, sum_w2, max_w):
    """The fit at the estimate: coefficients, covariance, what the tests need.

    Always the coefficients, their covariance, the weighted residual sum of
    squares, :math:`\\log|X^\\top W X|`, :math:`\\sum\\log(v + \\tau^2)` and
    :math:`\\sum w`; on request :math:`\\operatorname{tr}P^2` (REML standard
    error), :math:`\\sum w^2` (ML) and the largest weight (Knapp-Hartung).
    """
    w = _inverse_variance(block, tau2)
    powers = 3 if trace_pp else (2 if sum_w2 else 1)
    fit = _moment_summary(design, block, w, powers)
    out = {name: fit[name] for name in ("beta", "cov", "rss", "logdet", "sum_w")}
    out["sum_log_var"] = _sum_log_var(block, w)
    if trace_pp:
        out["trpp"] = fit["trpp"]
    if sum_w2:
        out["sum_w2"] = fit["sum_w2"]
    if max_w:
        out["max_w"] = w.max(axis=0)
    return out


def _estimable(design, block):
    """More studies than parameters and a full-rank design on them; log|X'X|.

    The rank test is the one of ``dependent_columns``: with the columns of the
    (uncentred) design on the output's studies normalised to unit length, a
    squared Cholesky pivot of their Gram matrix -- the share of a column not
    explained by the columns before it -- at or below ``RANK_RTOL`` marks a
    dependent column.  ``log|X'X|`` (metafor's REML constant) comes from the same
    factorisation.  Without missing studies every output has the same answer.
    """
    X = design.X.copy()
    p = X.shape[1]
    b = block.n.shape[0]
    if p == 0:
        return {"ok": block.n > 0, "logdet_xtx": np.zeros(b)}
    X[:, 1:] += design.means[1:]
    upper = np.triu_indices(p)
    pairs = (X[:, upper[0]] * X[:, upper[1]]).T
    if block.mask is None:
        packed = pairs.sum(axis=1)[:, None]
    else:
        packed = pairs @ block.mask.astype(float)
    G = np.empty((p, p, packed.shape[1]))
    G[upper] = packed
    G[upper[::-1]] = packed
    norms = np.sqrt(np.einsum("iib->ib", G))
    with np.errstate(invalid="ignore", divide="ignore"):
        _, pivots = _cholesky(G / (norms[:, None] * norms[None, :]))
        full_rank = np.all(pivots > RANK_RTOL, axis=0)
        logdet = np.log(pivots).sum(axis=0) + 2.0 * np.log(norms).sum(axis=0)
    return {
        "ok": (block.n > p) & np.broadcast_to(full_rank, (b,)),
        "logdet_xtx": np.broadcast_to(np.where(full_rank, logdet, -np.inf), (b,)),
    }


# --------------------------------------------------------------------------------------
# likelihood optimisation
# --------------------------------------------------------------------------------------


class _Terms(NamedTuple):
    criterion: np.ndarray
    score: np.ndarray
    observed: np.ndarray
    expected: np.ndarray


def _weighted_moments(design, block, w, powers, y_powers=None):
    r"""Moment matrices :math:`S_j = \sum_i w_i^j z_i z_i^\top`, :math:`z = (x, y)`.

    The entries holding ``y`` are computed for the first ``y_powers`` powers
    (all by default; NaN beyond: the fits need only :math:`S_{1,xy}` and
    :math:`S_{1,yy}`, the likelihood's score and information all of them).

    Returns
    -------
    ndarray of shape (powers, p + 1, p + 1, b)
        :math:`S_1, \dots, S_{powers}` of every output.
    """
    p = design.X.shape[1]
    y_powers = powers if y_powers is None else y_powers
    y = block.y  # centred at its mean with an intercept (see _make_block)
    if p == 1 and design.intercept:
        return _intercept_moments(design, y, w, powers, y_powers)
    S = np.empty((powers, p + 1, p + 1, w.shape[1]))
    a, c = design.upper
    wj = w
    for j in range(powers):
        if j:
            wj = wj * w
        if p:
            packed = design.pairs @ wj
            S[j, a, c] = packed
            S[j, c, a] = packed
        if j >= y_powers:
            S[j, p, :] = S[j, :p, p] = np.nan
            continue
        if p:
            if p == 1 and design.intercept:
                xy = np.einsum("kb,kb->b", wj, y)
            else:
                xy = design.X.T @ (wj * y)
            S[j, :p, p] = xy
            S[j, p, :p] = xy
        S[j, p, p] = np.einsum("kb,kb,kb->b", wj, y, y)
    return S


def _intercept_moments(design, y, w, powers, y_powers):
    r""":func:`_weighted_moments` of the intercept-only design (:math:`x = 1`).

    The sums :math:`\sum_i w_i^j y_i^c` with the fewest passes over the
    ``(k, b)`` arrays: the powers ``w^2`` and ``u = w y`` are formed once, the
    sums of ``w``, ``u`` and ``w^2`` are matrix products with the row of ones
    (BLAS), and every other sum is one fused product-sum (``einsum``) of arrays
    already formed -- no temporary for a product that is only summed.
    """
    b = w.shape[1]
    S = np.empty((powers, 2, 2, b))
    einsum = np.einsum
    ones = design.pairs  # (1, k): the products x_i x_i = 1
    np.matmul(ones, w, out=S[0, 0, :1])
    u = None
    if y_powers > 1:
        u = w * y
        np.matmul(ones, u, out=S[0, 0, 1:])
        einsum("kb,kb->b", u, y, out=S[0, 1, 1])
    else:
        einsum("kb,kb->b", w, y, out=S[0, 0, 1])
        einsum("kb,kb,kb->b", w, y, y, out=S[0, 1, 1])
    if powers > 1:
        w2 = w * w
        np.matmul(ones, w2, out=S[1, 0, :1])
        if y_powers > 1:
            einsum("kb,kb->b", w, u, out=S[1, 0, 1])
            einsum("kb,kb->b", u, u, out=S[1, 1, 1])
        if powers > 2:
            einsum("kb,kb->b", w2, w, out=S[2, 0, 0])
            if y_powers > 2:
                einsum("kb,kb->b", w2, u, out=S[2, 0, 1])
                einsum("kb,kb,kb->b", w, u, u, out=S[2, 1, 1])
    S[y_powers:, 0, 1] = S[y_powers:, 1, 1] = np.nan
    S[:, 1, 0] = S[:, 0, 1]
    return S


def _profile_moments(S, p, y_powers=None):
    r"""What the profiled likelihood needs, from the moments of :math:`(x, y)`.

    With :math:`A = S_{1,xx}`, :math:`\hat\beta = A^{-1} S_{1,xy}` and
    :math:`c = (-\hat\beta, 1)`: :math:`y^\top P y = c^\top S_1 c`,
    :math:`y^\top P^2 y = c^\top S_2 c`, :math:`y^\top P^3 y = c^\top S_3 c -
    g^\top A^{-1} g` with :math:`g = (S_2 c)_x`, :math:`\operatorname{tr}P =
    \sum w - \operatorname{tr}(A^{-1} S_{2,xx})` and :math:`\operatorname{tr}P^2
    = \sum w^2 - 2\operatorname{tr}(A^{-1} S_{3,xx}) + \operatorname{tr}((A^{-1}
    S_{2,xx})^2)` (the sums of :math:`w` and :math:`w^2` are added by the caller).
    ``y_powers``: the powers whose entries in ``y`` are filled (all if None; with
    one column the terms in ``y`` of the others are not formed).
    """
    powers = S.shape[0]
    if p == 0:
        out = {"logdet": np.zeros(S.shape[-1]), "rss": S[0, 0, 0]}
        if powers > 1:
            out["ypy2"] = S[1, 0, 0]
            out["trp_x"] = out["trpp_x"] = 0.0
        if powers > 2:
            out["upu"] = S[2, 0, 0]
        return out
    if p == 1:
        return _profile_moments_one(S, powers if y_powers is None else y_powers)
    cov, logdet = _cholesky_inverse(S[0, :p, :p])
    beta = np.einsum("acb,cb->ab", cov, S[0, :p, p])
    c = np.concatenate([-beta, np.ones((1, beta.shape[1]))])
    Sc = np.einsum("jacb,cb->jab", S, c)
    quad = np.einsum("jab,ab->jb", Sc, c)
    out = {"cov": cov, "beta": beta, "logdet": logdet, "rss": quad[0]}
    if powers > 1:
        M2 = _matmul(cov, S[1, :p, :p])
        out["ypy2"] = quad[1]
        out["trp_x"] = np.einsum("aab->b", M2)
    if powers > 2:
        out["upu"] = quad[2] - _quadratic(cov, Sc[1, :p])
        out["trpp_x"] = 2.0 * _trace_product(cov, S[2, :p, :p]) - _trace_product(M2, M2)
    return out


def _profile_moments_one(S, y_powers):
    """:func:`_profile_moments` for one column (e.g. intercept only), in
    scalar arithmetic per output: the same formulas, no p x p products, few
    temporaries (in-place operations leave every rounding as it is); the
    terms in ``y`` only for the first ``y_powers`` powers."""
    powers = S.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        a = S[0, 0, 0]
        if not a.min(initial=np.inf) > 0:
            a = np.where(a > 0, a, np.nan)
        cov = 1.0 / a
        beta = cov * S[0, 0, 1]
        neg = -beta

        def quad(j):  # c' S_j c with c = (-beta, 1), as (S_j c) . c
            first = beta * S[j, 0, 0]
            np.subtract(S[j, 0, 1], first, out=first)
            first *= neg
            second = beta * S[j, 0, 1]
            np.subtract(S[j, 1, 1], second, out=second)
            first += second
            return first

        out = {
            "cov": cov[None, None],
            "beta": beta[None],
            "logdet": np.log(a),
            "rss": quad(0),
        }
        if powers > 1:
            m2 = cov * S[1, 0, 0]
            if y_powers > 1:
                out["ypy2"] = quad(1)
            out["trp_x"] = m2
        if powers > 2:
            if y_powers > 2:
                g = beta * S[1, 0, 0]
                np.subtract(S[1, 0, 1], g, out=g)
                g *= g
                g *= cov
                upu = quad(2)
                upu -= g
                out["upu"] = upu
            trpp = 2.0 * cov
            trpp *= S[2, 0, 0]
            trpp -= m2 * m2
            out["trpp_x"] = trpp
    return out


def _likelihood_terms(design, block, tau2, logdet_xtx, *, reml):
    r"""Criterion, score and informations at ``tau2`` for every output of a chunk.

    The REML score is :math:`\tfrac12(y^\top P^2 y - \operatorname{tr}P)` and
    its expected information :math:`\tfrac12\operatorname{tr}P^2`; for ML,
    :math:`\sum w` and :math:`\sum w^2` replace the traces.  The observed
    information is :math:`y^\top P^3 y` minus the expected one (see
    :func:`_profile_moments`).
    """
    p = design.X.shape[1]
    w = _inverse_variance(block, tau2)
    S = _weighted_moments(design, block, w, 3)
    prof = _profile_moments(S, p)
    if design.intercept:
        sum_w, sum_w2 = S[0, 0, 0], S[1, 0, 0]
    else:
        sum_w, sum_w2 = w.sum(axis=0), np.einsum("kb,kb->b", w, w)
    criterion = profiled_loglik(
        block.n,
        p,
        _sum_log_var(block, w),
        prof["rss"],
        reml=reml,
        logdet_xtvx=prof["logdet"],
        logdet_xtx=logdet_xtx,
    )
    if reml:
        score = 0.5 * (prof["ypy2"] - (sum_w - prof["trp_x"]))
        expected = 0.5 * (sum_w2 - prof["trpp_x"])
    else:
        score = 0.5 * (prof["ypy2"] - sum_w)
        expected = 0.5 * sum_w2
    return _Terms(criterion, score, prof["upu"] - expected, expected)


def _moment_criterion(design, block, tau2, logdet_xtx, *, reml):
    """The criterion alone from the weighted moments (the single fit's
    ``_profile_on_grid``)."""
    p = design.X.shape[1]
    w = _inverse_variance(block, tau2)
    prof = _profile_moments(_weighted_moments(design, block, w, 1), p)
    return profiled_loglik(
        block.n,
        p,
        _sum_log_var(block, w),
        prof["rss"],
        reml=reml,
        logdet_xtvx=prof["logdet"],
        logdet_xtx=logdet_xtx,
    )


def _criterion(design, block, tau2, logdet_xtx, *, reml):
    """The criterion from the residuals of the weighted fit (the single fit's
    ``_profile_value``: accurate whatever the spread of the weights)."""
    w = _inverse_variance(block, tau2)
    fit = _weighted_fits(design, block.y, w)
    return profiled_loglik(
        block.n,
        design.X.shape[1],
        _sum_log_var(block, w),
        fit.rss,
        reml=reml,
        logdet_xtvx=fit.logdet,
        logdet_xtx=logdet_xtx,
    )


def _newton(design, block, start, lower, upper, scale, logdet_xtx, *, reml,
            max_iter, tol, index=None):  # fmt: skip
    """The single fit's ``_newton`` on every output of ``block`` at once.

    ``index`` (optional) selects the outputs of ``block`` to maximise (with
    repeats: several starts per output); ``start``, ``lower``, ``upper``,
    ``scale`` and ``logdet_xtx`` are aligned with them. Newton's method where
    the observed information is positive, Fisher scoring elsewhere; step
    halving; doubling of Fisher-scoring steps in convex regions; the same
    convergence rules, output by output. Only the outputs still iterating are
    evaluated.

    Returns
    -------
    tau2, last_criterion, n_iter, converged : ndarray
        ``last_criterion`` is the criterion at the last evaluated point (before
        a final Newton step), as the single fit's.
    """
    b = start.shape[0]
    tau2 = start.astype(float)
    last = np.full(b, np.nan)
    n_iter = np.zeros(b, dtype=int)
    converged = np.zeros(b, dtype=bool)
    sqrt_tol = np.sqrt(tol)
    # The problems still iterating, compacted as they finish (one index array
    # taken from each per-problem array: cheaper than a boolean mask per array
    # or gathers from the full arrays at every iteration): their positions, the
    # column of each in the block being evaluated (itself compacted below), the
    # current point, its bounds and constants.
    active = np.arange(b)
    columns = np.arange(block.n.shape[0]) if index is None else np.asarray(index)
    cur, low, high, sc, logdet = tau2.copy(), lower, upper, scale, logdet_xtx

    def evaluate(values, which=None):
        if which is None:
            cols, ld = columns, logdet
        else:
            cols, ld = columns[which], logdet[which]
        return _chunked(
            _likelihood_terms, design, block, values, ld, index=cols, reml=reml
        )

    terms = evaluate(cur)
    for iteration in range(1, max_iter + 1):
        criterion, score, observed, expected = terms
        concave = observed > uni.CONCAVE_RTOL * expected
        info = np.where(concave, observed, expected)
        usable = (info > 0) & np.isfinite(info) & np.isfinite(score)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(usable, score / info, 0.0)
        at_bound = usable & (
            ((cur <= low) & (step <= 0)) | ((cur >= high) & (step >= 0))
        )
        small = (
            usable & ~at_bound
            & (np.abs(step) <= sqrt_tol * (cur + sc))
            & (observed > 0)
        )  # fmt: skip
        go = usable & ~at_bound & ~small  # (unusable terms: not converged)
        if not go.all():
            stop = np.flatnonzero(~go)
            out = active[stop]
            n_iter[out] = iteration
            last[out] = criterion[stop]
            # a small Newton step in a concave region leaves an O(tol) error:
            # taken
            taken = small[stop]
            tau2[out] = np.where(
                taken,
                np.clip(cur[stop] + step[stop], low[stop], high[stop]),
                cur[stop],
            )
            converged[out] = at_bound[stop] | taken
            if stop.size == go.size:
                break
            keep = np.flatnonzero(go)
            active, columns, cur, step, low, high, sc, logdet, concave = (
                a[keep]
                for a in (active, columns, cur, step, low, high, sc, logdet, concave)
            )
            terms = _subset(terms, keep)
            if active.size < DENSE_SHARE * block.n.shape[0]:
                # the outputs still iterating are gathered once (a copy) rather
                # than at every evaluation (gathers of scattered columns are slow)
                block = _take(block, columns)
                columns = np.arange(active.size)
        ll = terms.criterion
        # never cut tau2 by more than 90%; near the bound, halve from the bound
        smallest = np.where(0.1 * cur > tol * sc, 0.1 * cur, low)
        bound = np.maximum(smallest, low) - cur
        accelerate = ~concave & (step > bound)
        step = np.maximum(step, bound)
        new = np.clip(cur + step, low, high)
        terms = evaluate(new)
        slack = uni.ACCEPT_RTOL * (1.0 + np.abs(ll))
        worse = ~(terms.criterion >= ll - slack)
        for _ in range(uni.MAX_HALVINGS - 1):
            if not worse.any():
                break
            bad = np.flatnonzero(worse)
            step[bad] *= 0.5
            accelerate[bad] = False
            new[bad] = np.clip(cur[bad] + step[bad], low[bad], high[bad])
            _assign(terms, bad, evaluate(new[bad], bad))
            worse[bad] = ~(terms.criterion[bad] >= ll[bad] - slack[bad])
        accelerate &= ~worse
        for _ in range(uni.MAX_DOUBLINGS):
            more = np.flatnonzero(accelerate)
            if not more.size:
                break
            step[more] = np.maximum(2.0 * step[more], bound[more])
            further = np.clip(cur[more] + step[more], low[more], high[more])
            moved = further != new[more]
            more, further = more[moved], further[moved]
            accelerate[:] = False
            if not more.size:
                break
            trial = evaluate(further, more)
            better = trial.criterion > terms.criterion[more]
            more = more[better]
            new[more] = further[better]
            _assign(terms, more, _subset(trial, better))
            accelerate[more] = True
        done = np.abs(new - cur) <= tol * (new + sc)
        cur = new
        if done.any():
            fin = np.flatnonzero(done)
            out = active[fin]
            tau2[out] = cur[fin]
            last[out] = terms.criterion[fin]
            n_iter[out] = iteration
            converged[out] = True
            if fin.size == done.size:
                break
            keep = np.flatnonzero(~done)
            active, columns, cur, low, high, sc, logdet = (
                a[keep] for a in (active, columns, cur, low, high, sc, logdet)
            )
            terms = _subset(terms, keep)
    else:
        if max_iter > 0:  # the iterations ran out: the last point
            tau2[active] = cur
            last[active] = terms.criterion
            n_iter[active] = max_iter
    return tau2, last, n_iter, converged


def _subset(terms, which):
    return _Terms(*(a[which] for a in terms))


def _assign(terms, which, values):
    for mine, theirs in zip(terms, values, strict=True):
        mine[which] = theirs


def _search_grid(block):
    """The single fit's ``_search_grid`` (lower bound 0) of every output.

    Returns
    -------
    ndarray of shape (points, b)
        Column ``j``: 0, then a geometric grid of ratio
        :data:`~skmeta._engine._univariate.SEARCH_RATIO` from
        ``SEARCH_BELOW * min(v)`` to ``SEARCH_ABOVE * max(var(y), median(v),
        min(v))``; NaN after its last point.
    """
    smallest = _vmin(block)
    start = uni.SEARCH_BELOW * smallest
    stop = uni.SEARCH_ABOVE * np.maximum(
        np.maximum(block.var_y, _median_v(block)), smallest
    )
    count = np.maximum(
        2,
        np.ceil((np.log(stop) - np.log(start)) / np.log(uni.SEARCH_RATIO)).astype(int)
        + 1,
    )
    steps = np.arange(count.max())[:, None]
    # np.geomspace: powers of 10 on an even grid of exponents, exact endpoints
    low, high = np.log10(start), np.log10(stop)
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = 10.0 ** (low + steps * ((high - low) / (count - 1)))
    grid[0] = start
    grid[count - 1, np.arange(count.shape[0])] = stop
    grid[steps >= count] = np.nan
    return np.concatenate([np.zeros((1, count.shape[0])), grid])


def _first_argmax(values):
    """``np.argmax(values, axis=0)`` (the first maximum of each column) for
    values without NaN, from reductions along the leading axis: the maximum,
    then the smallest row that attains it (an argmax along a strided axis is
    several times slower)."""
    rows = np.arange(values.shape[0])[:, None]
    hit = values == values.max(axis=0)
    return np.where(hit, rows, values.shape[0]).min(axis=0)


def _best_peaks(values, peaks, count):
    """The ``count`` best grid points of every output, peaks first.

    The first rows of ``np.lexsort((rows, -values, ~peaks), axis=0)``: the
    peaks by decreasing value, the earlier point first on ties, then other
    points (whose order does not matter: they are not candidates).  By repeated
    ``argmax`` (its first maximum is the earlier point), several times faster
    than sorting every column.

    Returns
    -------
    order : ndarray of int, shape (min(count, points), b)
        Row of each pick.
    cand : ndarray of bool, same shape
        Whether the pick is a peak.
    """
    points, b = values.shape
    columns = np.arange(b)
    # a peak at -inf still ranks before every other point
    key = np.where(peaks, np.maximum(values, -np.finfo(float).max), -np.inf)
    remaining = peaks.copy()
    picks = min(count, points)
    order = np.empty((picks, b), dtype=np.intp)
    cand = np.empty((picks, b), dtype=bool)
    for r in range(picks):
        best = _first_argmax(key)
        order[r] = best
        cand[r] = remaining[best, columns]
        remaining[best, columns] = False
        key[best, columns] = -np.inf
    return order, cand


def _search_profile(design, block, incumbent, scale, logdet_xtx, *, reml,
                    max_iter, tol):  # fmt: skip
    """The single fit's ``_search_profile`` (lower bound 0) of every output.

    The criterion on :func:`_search_grid`; up to
    :data:`~skmeta._engine._univariate.SEARCH_CANDIDATES` of its local maxima
    (best first) are refined by Newton's method between their neighbours,
    except the one whose bracket holds ``incumbent`` (a local maximum found
    already); the best of the incumbent and the refined points by the accurate
    criterion (:func:`_criterion`) wins, the earlier on ties.

    Returns
    -------
    tau2, n_iter, converged : ndarray of shape (b,)
        ``n_iter``: iterations of the refinement that won (0: the incumbent).
    """
    b = incumbent.shape[0]
    block = _with_spread(block, design.intercept)
    grid = _search_grid(block)
    points = grid.shape[0]
    values = np.full(grid.shape, -np.inf)
    for g in range(points):
        cols = np.flatnonzero(~np.isnan(grid[g]))
        values[g, cols] = _chunked(
            _moment_criterion, design, block, grid[g, cols], logdet_xtx[cols],
            index=cols, reml=reml,
        )  # fmt: skip
    values = np.where(np.isnan(values), -np.inf, values)
    valid = ~np.isnan(grid)
    padded = np.concatenate(
        [np.full((1, b), -np.inf), values, np.full((1, b), -np.inf)]
    )
    padded[1:-1][~valid] = -np.inf
    peaks = valid & (values >= padded[:-2]) & (values >= padded[2:])
    order, cand = _best_peaks(values, peaks, uni.SEARCH_CANDIDATES)
    count = valid.sum(axis=0)
    lo_row = np.maximum(order - 1, 0)
    hi_row = order + 1
    columns = np.broadcast_to(np.arange(b), order.shape)
    left = grid[lo_row, columns]
    right = np.where(
        hi_row < count, grid[np.minimum(hi_row, points - 1), columns], np.inf
    )
    start = grid[order, columns]
    inside = (left <= incumbent) & (incumbent <= right)
    cand &= ~inside  # the incumbent is this local maximum
    which = np.nonzero(cand)  # (candidate rank, output)
    found = np.full(order.shape, np.nan)
    iters = np.zeros(order.shape, dtype=int)
    conv = np.zeros(order.shape, dtype=bool)
    if which[0].size:
        outs = which[1]
        res = _newton(
            design, block, start[which], left[which], right[which], scale[outs],
            logdet_xtx[outs], reml=reml, max_iter=max_iter, tol=tol, index=outs,
        )  # fmt: skip
        found[which], iters[which], conv[which] = res[0], res[2], res[3]
    # compare by the accurate criterion: [incumbent, candidates in order]
    tried = np.concatenate([incumbent[None], found])
    scores = np.full(tried.shape, -np.inf)
    # without a refined candidate the incumbent wins whatever its score (the
    # others are -inf; argmax takes the first on ties): it is scored only where
    # it is compared
    compared = ~np.isnan(found).all(axis=0)
    for r in range(tried.shape[0]):
        valid = ~np.isnan(tried[r])
        cols = np.flatnonzero(valid & compared if r == 0 else valid)
        if cols.size:
            scores[r, cols] = _chunked(
                _criterion, design, block, tried[r, cols], logdet_xtx[cols],
                index=cols, reml=reml,
            )  # fmt: skip
    scores = np.where(np.isnan(scores), -np.inf, scores)
    best = _first_argmax(scores)
    out = np.arange(b)
    tau2 = tried[best, out]
    n_iter = np.concatenate([np.zeros((1, b), dtype=int), iters])[best, out]
    converged = np.concatenate([np.ones((1, b), dtype=bool), conv])[best, out]
    return tau2, n_iter, converged


def _estimate_likelihood(design, block, fe, *, reml, max_iter, tol, logdet_xtx):
    """(RE)ML estimate of every output: the single fit's ``maximize_likelihood``.

    From the DL estimate (HE where that is 0), Newton's method on
    :math:`[0, \\infty)`; where it ends on the bound, or where the criterion at
    0 (metafor's ``ll0check``, from the fixed-effect fit) beats the path's, the
    profile is searched (:func:`_search_profile`).

    Returns
    -------
    tau2, n_iter, converged : ndarray of shape (b,)
    """
    b = block.n.shape[0]
    p = design.X.shape[1]
    df = block.n - p
    start = uni.generalized_q_estimate(fe["q"], df, fe["trp"])
    low = start <= 0.0
    if low.any():
        he = _chunked(_hedges_start, design, block, index=np.flatnonzero(low))
        start[low] = uni.generalized_q_estimate(he["rss"], he["trpv"], df[low])
    scale = block.n / fe["sum_w"]  # newton_scale: the harmonic mean of v
    zeros = np.zeros(b)
    tau2, last, n_iter, converged = _newton(
        design, block, start, zeros, np.full(b, np.inf), scale, logdet_xtx,
        reml=reml, max_iter=max_iter, tol=tol,
    )  # fmt: skip
    at_zero = profiled_loglik(
        block.n, p, fe["sum_log_v"], fe["q"], reml=reml, logdet_xtvx=fe["logdet"],
        logdet_xtx=logdet_xtx,
    )  # fmt: skip
    search = converged & ((tau2 <= 0.0) | (at_zero > last))
    if search.any():
        index = np.flatnonzero(search)
        found, extra, ok = _search_profile(
            design, _take(block, index), tau2[index], scale[index],
            logdet_xtx[index], reml=reml, max_iter=max_iter, tol=tol,
        )  # fmt: skip
        tau2[index] = found
        n_iter[index] += extra
        converged[index] = ok
    return tau2, n_iter, converged


def _generalized_q_root(design, block, target):
    r"""Solve :math:`Q(\tau^2) = y^\top P_{\tau^2} y =` ``target`` for every output.

    The single fit's ``tau2_paule_mandel`` on :math:`[0, \infty)`: :math:`Q` is
    decreasing (:math:`Q' = -y^\top P^2 y`) and convex (:math:`Q'' = 2 y^\top
    P^3 y \ge 0`), so Newton's method started at 0 rises monotonically to the
    root; where :math:`Q(0)` is already at or below ``target``, 0 is the answer.
    Stops when a step is below :data:`ROOT_XTOL` times the variance scale plus
    :data:`ROOT_RTOL` times :math:`\tau^2` (brentq's tolerances there).

    Returns
    -------
    tau2 : ndarray of shape (b,)
    converged : ndarray of bool
    """
    t = np.zeros(block.n.shape[0])
    converged = np.zeros(t.shape, dtype=bool)
    active = np.arange(t.shape[0])
    goal = np.broadcast_to(target, t.shape)
    for _ in range(MAX_ROOT_ITER):
        q, slope = _chunked(_generalized_q, design, block, t[active], index=active)
        cur = t[active]
        excess = q - goal
        with np.errstate(divide="ignore", invalid="ignore"):
            step = excess / slope
        rising = (excess > 0) & np.isfinite(step)
        t[active] = np.where(rising, cur + step, cur)
        tolerance = ROOT_XTOL * block.scale[active] + ROOT_RTOL * cur
        done = ~(rising & (step > tolerance))
        # a slope that is not a positive number cannot be right: not converged
        converged[active[done & ((excess <= 0) | (slope > 0))]] = True
        keep = ~done
        if not keep.any():
            break
        active, goal = active[keep], goal[keep]
    return t, converged


def _sidik_jonkman_start(block):
    """var(y) (population variance over the studies present), 0 for constant y."""
    return np.where(block.ymax > block.ymin, block.var_y, 0.0)


def _estimate_tau2(design, block, method, *, weights, fe, max_iter, tol, logdet_xtx):
    """tau^2 of every output by ``method`` (the single fit's ``estimate_tau2``;
    the methods of :data:`CLOSED_FORM_METHODS`: :func:`_closed_form_tau2`).

    ``fe`` holds the fixed-effect moments (:func:`_fixed_effect_moments`).

    Returns
    -------
    tau2, n_iter, converged : ndarray of shape (b,)
    moments : dict
        Moments the standard errors reuse.
    """
    b = block.n.shape[0]
    p = design.X.shape[1]
    df = block.n - p
    n_iter = np.ones(b, dtype=int)
    converged = np.ones(b, dtype=bool)
    moments = {}
    if tau2_method(method).likelihood:
        reml = method == "reml"
        tau2, n_iter, converged = _estimate_likelihood(
            design, block, fe, reml=reml, max_iter=max_iter, tol=tol,
            logdet_xtx=logdet_xtx if reml else np.zeros(b),
        )  # fmt: skip
    elif method == "he":
        moments = _chunked(_unit_weight_moments, design, block)
        tau2 = uni.generalized_q_estimate(moments["rss"], moments["trpv"], df)
    elif method == "genq":
        moments = _chunked(_fixed_weight_moments, design, block, weights)
        tau2 = uni.generalized_q_estimate(
            moments["rss"], moments["trpv"], moments["trp"]
        )
    elif method == "sj":
        block = _with_spread(block, design.intercept)
        start = _sidik_jonkman_start(block)
        moments = _subset_moments(
            _inverse_variance_moments, design, block, start > 0, start
        )
        tau2 = np.zeros(b)
        if moments is not None:
            tau2 = uni.sidik_jonkman_estimate(start, moments["rss"], df)
        moments = {"start": start, **(moments or {})}
    elif method in ("pm", "eb", "pmm"):
        target = stats.chi2.median(df) if method == "pmm" else df.astype(float)
        block = _with_spread(block, design.intercept)
        tau2, converged = _generalized_q_root(design, block, target)
    else:
        raise ValueError(f"unknown method {method!r}")
    return tau2, n_iter, converged, moments


def _tau2_standard_error(method, tau2, n, p, final, fe, moments):
    """metafor's standard error of the tau^2 estimate (the formulas of
    :mod:`skmeta._engine._tau2`).

    ``final`` holds the moments of the fit at the estimate, ``fe`` those of the
    fixed-effect fit and ``moments`` those the estimator computed.
    """
    df = n - p
    if method == "reml":
        return information_se(final["trpp"])
    if method == "ml":
        return information_se(final["sum_w2"])
    if method in ("pm", "pmm", "eb"):
        return paule_mandel_se(n, p, final["sum_w"])
    if method == "he":
        return quadratic_se(2 * moments["pvpv"], 4 * moments["trpv"], 2 * df, tau2, df)
    if method in ("dl", "hs", "hsk"):
        denominator = {"dl": "trace", "hs": "sum", "hsk": "corrected"}[method]
        return inverse_variance_se(
            n, p, fe["trp"], fe["trpp"], fe["sum_w"], tau2, denominator
        )
    if method == "genq":
        return quadratic_se(
            2 * moments["pvpv"], 4 * moments["pvp"], 2 * moments["pp"], tau2,
            moments["trp"],
        )  # fmt: skip
    if method == "sj":
        # P is the one of the estimator itself, i.e. at the initial value tau2_0
        # (0 for constant y, where tau2 = 0 exactly)
        start = moments["start"]
        if "pvpv" not in moments:
            return np.zeros_like(start)
        se = quadratic_se(
            2 * moments["pvpv"], 4 * moments["pvp"], 2 * moments["pp"], tau2, 1.0
        )
        with np.errstate(invalid="ignore"):
            return np.where(start > 0, start / df * se, 0.0)
    return np.full(n.shape, np.nan)


def _subset_moments(kernel, design, block, where, *per_output, **options):
    """``kernel``'s moments on the outputs ``where``; NaN for the others."""
    b = block.n.shape[0]
    if not where.any():
        return None
    if where.all():
        return _chunked(kernel, design, block, *per_output, **options)
    index = np.flatnonzero(where)
    part = _chunked(
        kernel,
        design,
        block,
        *(a[..., where] for a in per_output),
        index=index,
        **options,
    )
    out = {}
    for key, value in part.items():
        full = np.full((*value.shape[:-1], b), np.nan)
        full[..., where] = value
        out[key] = full
    return out


def _chi2_sf(x, df):
    r"""Upper tail :math:`P(\chi^2_{df} > x)` for integer degrees of freedom.

    For :math:`df \le` :data:`SERIES_MAX_DF` the finite series of the
    regularised incomplete gamma function at integer or half-integer shape
    (Abramowitz & Stegun 26.4.4-5), with :math:`h = x/2`:
    :math:`e^{-h}\sum_{j<df/2} h^j/j!` for even ``df`` and
    :math:`\operatorname{erfc}\sqrt h + e^{-h}\sum_{j<(df-1)/2}
    h^{j+1/2}/\Gamma(j+3/2)` for odd ``df``: positive terms, accurate to a few
    ulps and several times faster than the general incomplete gamma function
    (:func:`scipy.special.chdtrc`), which serves larger ``df``.
    """
    x = np.asarray(x, dtype=float)
    df = np.broadcast_to(df, x.shape)
    if not x.size:
        return np.empty_like(x)
    if df.min() == df.max():  # the common case: every output has all studies
        return _chi2_sf_one(x, int(df.flat[0]))
    out = np.empty_like(x)
    for d in np.unique(df):
        sel = df == d
        out[sel] = _chi2_sf_one(x[sel], int(d))
    return out


def _chi2_sf_one(x, df):
    if df > SERIES_MAX_DF or df < 1:
        return special.chdtrc(df, x)
    h = 0.5 * np.maximum(x, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shift = 0.5 * (df % 2)
        # the series' coefficients c_j = 1 / prod_{i <= j} (i + shift), summed
        # by Horner's rule (positive terms: no cancellation)
        coefficients = np.cumprod(
            [1.0, *(1.0 / (j + shift) for j in range(1, df // 2))]
        )
        total = np.full_like(h, coefficients[-1])
        for c in coefficients[-2::-1]:
            total *= h
            total += c
        if df % 2 == 0:
            base = 0.0
        else:
            root = np.sqrt(h)
            total *= root * (2.0 / np.sqrt(np.pi))
            base = special.erfc(root)
        # e^{-h} times the sum, in logarithms so that neither factor overflows
        tail = np.exp(np.log(total) - h) if df > 1 or df % 2 == 0 else 0.0
        out = base + tail
    bad = ~np.isfinite(out)
    if bad.any():
        out[bad] = special.chdtrc(df, x[bad])
    return out


def _uncentre(design, beta, cov):
    """Coefficients and covariance in the parametrisation of the design."""
    if not design.means.any():
        return beta, cov
    T = np.eye(beta.shape[0])
    T[0, 1:] = -design.means[1:]
    return T @ beta, np.einsum("ac,cdb,ed->aeb", T, cov, T)


def _wald_tests(beta, cov, index, dof):
    r"""Omnibus test that ``beta[index]`` are zero, for every output.

    :math:`Q_M = \hat\beta_S^\top \hat V_{SS}^{-1} \hat\beta_S \sim \chi^2_s`
    where ``dof`` is infinite, or :math:`F = Q_M / s \sim F_{s, \mathrm{dof}}`
    (as :func:`skmeta._engine._inference.wald_test`); NaN without moderators,
    for NaN ``dof`` or where the covariance is singular (an exact fit under
    Knapp-Hartung).
    """
    b = beta.shape[1]
    s = len(index)
    if s == 0:
        return np.full(b, np.nan), np.full(b, np.nan)
    inv, _ = _cholesky_inverse(cov[np.ix_(index, index)])
    qm = _quadratic(inv, beta[index])
    statistic = np.full(b, np.nan)
    p_value = np.full(b, np.nan)
    chi2 = np.isinf(dof)
    statistic[chi2] = qm[chi2]
    p_value[chi2] = _chi2_sf(qm[chi2], s)
    f = np.isfinite(dof)
    statistic[f] = qm[f] / s
    p_value[f] = special.fdtrc(s, dof[f], statistic[f])
    return statistic, p_value


def _closed_form_tau2(method, tau2_fixed, fe, n, p):
    """tau^2 of the methods of :data:`CLOSED_FORM_METHODS` (or a fixed one)
    from the fixed-effect moments ``fe`` (:func:`_fixed_effect_moments`)."""
    if tau2_fixed is not None:
        return np.full(n.shape, float(tau2_fixed))
    if method == "fe":
        return np.zeros(n.shape)
    if method == "dl":
        return uni.generalized_q_estimate(fe["q"], n - p, fe["trp"])
    return hunter_schmidt_estimate(
        fe["q"], n, p, fe["sum_w"], corrected=method == "hsk"
    )


def _closed_form_fits(
    design, block, *, method, tau2_fixed, fe_options, final_options, centre
):
    """The fixed-effect moments, tau^2 and the fit at it of a chunk of outputs
    (:data:`CLOSED_FORM_METHODS` or a fixed tau^2); ``centre``: y is centred
    here (a block made with ``defer``)."""
    if centre:
        block = _centre(block)
    fe = _fixed_effect_moments(design, block, **fe_options)
    tau2 = _closed_form_tau2(method, tau2_fixed, fe, block.n, design.X.shape[1])
    return fe, tau2, _final_moments(design, block, tau2, **final_options)


def _fit_pass(design, block, logdet_xtx, options, weights, deferred=False):
    """Fit every output of ``block`` (all estimable, every v > 0) at once; a
    dict of per-output arrays (output axis last).  ``deferred``: y of the block
    is not centred yet (closed-form tau^2 only, see :func:`_make_block`)."""
    method, tau2_fixed, inference, max_iter, tol = options
    p = design.X.shape[1]
    b = block.n.shape[0]
    estimated = tau2_fixed is None and method != "fe"
    record = tau2_method(method)
    reml = method == "reml"
    knapp_hartung = inference in single.KNAPP_HARTUNG
    fe_options = {
        "trace_pp": estimated and method in ("dl", "hs", "hsk"),
        "loglik": estimated and record.likelihood,
    }
    final_options = {
        "trace_pp": estimated and reml,
        "sum_w2": estimated and method == "ml",
        "max_w": knapp_hartung,
    }
    n_iter = np.ones(b, dtype=int)
    converged = np.ones(b, dtype=bool)
    moments = {}
    if tau2_fixed is not None or method in CLOSED_FORM_METHODS:
        # tau^2 of an output is a function of its fixed-effect moments: both
        # fits of a chunk run while its data are in the caches
        fe, tau2, final = _chunked(
            _closed_form_fits, design, block, method=method, tau2_fixed=tau2_fixed,
            fe_options=fe_options, final_options=final_options, centre=deferred,
        )  # fmt: skip
    else:
        fe = _chunked(_fixed_effect_moments, design, block, **fe_options)
        tau2, n_iter, converged, moments = _estimate_tau2(
            design, block, method, weights=weights, fe=fe, max_iter=max_iter,
            tol=tol, logdet_xtx=logdet_xtx,
        )  # fmt: skip
        final = _chunked(_final_moments, design, block, tau2, **final_options)
    dof = block.n - p
    cov = final["cov"]
    kh_degenerate = np.zeros(b, dtype=bool)
    if knapp_hartung:
        eps = np.finfo(float).eps
        noise = single.EXACT_RSS * block.n * (eps * _max_abs_y(block)) ** 2
        # weighted residuals zero to rounding: y is fitted exactly, s^2 is 0
        kh_degenerate = final["rss"] <= noise * final["max_w"]
        s2 = np.where(kh_degenerate, 0.0, final["rss"] / dof)
        if inference == "knapp-hartung-adhoc":
            s2 = np.maximum(1.0, s2)
        cov = cov * s2
    tau2_se = np.full(b, np.nan)
    if estimated:
        tau2_se = _tau2_standard_error(method, tau2, block.n, p, final, fe, moments)
    fixed_effect = not estimated and tau2_fixed in (None, 0.0)
    i2, h2, typical = uni.heterogeneity_shares(
        fe["q"], dof, fe["trp"], tau2, fixed_effect
    )
    with np.errstate(invalid="ignore"):
        q_pvalue = np.where(dof > 0, _chi2_sf(fe["q"], dof), 1.0)
    beta = final["beta"]
    if design.intercept:
        beta[0] += block.offset  # y was centred at its mean (_make_block)
    beta, cov = _uncentre(design, beta, cov)
    loglik = profiled_loglik(
        block.n, p, final["sum_log_var"], final["rss"], reml=reml,
        logdet_xtvx=final["logdet"], logdet_xtx=logdet_xtx if reml else 0.0,
    )  # fmt: skip
    return {
        "tau2": tau2,
        "fit_tau2": tau2,
        "tau2_se": tau2_se,
        "beta": beta,
        "cov": cov,
        "q": fe["q"],
        "q_pvalue": q_pvalue,
        "i2": i2,
        "h2": h2,
        "typical_var": typical,
        "loglik": loglik,
        "n_iter": n_iter,
        "converged": converged,
        "kh_degenerate": kh_degenerate,
    }


def _fit_one_by_one(design, y, v, weights, columns, options):
    """The single fit of each output ``columns`` on its studies (a dict of
    per-output arrays, output axis last)."""
    method, tau2, inference, max_iter, tol = options
    p = design.shape[1]
    out = _not_estimable(columns.shape[0], p)
    for i, j in enumerate(columns):
        keep = ~(np.isnan(y[:, j]) | np.isnan(v[:, j]))
        fit = single.fit_random_effects(
            design[keep], y[keep, j], v[keep, j], method=method, tau2=tau2,
            genq_weights=None if weights is None else weights[keep, j],
            inference=inference, max_iter=max_iter, tol=tol,
        )  # fmt: skip
        for name in ("tau2", "tau2_se", "q", "q_pvalue", "i2", "h2", "loglik"):
            out[name][i] = getattr(fit, name)
        out["typical_var"][i] = fit.typical_var
        out["fit_tau2"][i] = (
            fit.tau2
            if fit.limit is None
            else uni.variance_floor(v[keep, j], y[keep, j])
        )
        out["beta"][:, i] = fit.beta
        out["cov"][:, :, i] = fit.cov
        out["n_iter"][i] = fit.n_iter
        out["converged"][i] = fit.converged
        out["limit"][i] = LIMITS.index(fit.limit)
        out["kh_degenerate"][i] = fit.exact_fit
    out["one_by_one"][:] = True
    return out


def _not_estimable(b, p):
    """The per-output fields of ``b`` outputs that cannot be estimated."""
    out = {name: np.full(b, np.nan) for name in _FLOAT_FIELDS}
    out["beta"] = np.full((p, b), np.nan)
    out["cov"] = np.full((p, p, b), np.nan)
    out.update(
        n_iter=np.zeros(b, dtype=int),
        converged=np.zeros(b, dtype=bool),
        limit=np.zeros(b, dtype=np.int8),
        kh_degenerate=np.zeros(b, dtype=bool),
        one_by_one=np.zeros(b, dtype=bool),
    )
    return out


_FLOAT_FIELDS = (
    "tau2",
    "fit_tau2",
    "tau2_se",
    "q",
    "q_pvalue",
    "i2",
    "h2",
    "typical_var",
    "loglik",
)


def _place(result, fitted, where):
    """Copy the per-output arrays ``fitted`` into ``result`` at ``where``."""
    for name, value in fitted.items():
        result[name][..., where] = value


def fit_random_effects(
    design,
    y,
    v,
    *,
    method="reml",
    tau2=None,
    inference="z",
    max_iter=100,
    tol=1e-10,
    weights=None,
    moderators=(),
):
    r"""Fit the random-effects model to every output (column) of ``y``.

    Parameters
    ----------
    design : ndarray of shape (k, p)
        The shared design, with its intercept column if any (an intercept is a
        first column of ones).
    y, v : ndarray of shape (k, m)
        Effect sizes and sampling variances (finite, >= 0); NaN in either marks
        a study missing for that output.
    method : str
        One of :data:`skmeta._engine._tau2.TAU2_METHODS` (those outside
        :data:`VECTORIZED_METHODS` are fitted output by output). The methods that need
        positive sampling variances (``Tau2Method.needs_positive_var``) need
        every present ``v > 0``, and a fixed ``tau2`` of 0 needs it too (not
        checked here).
    tau2 : float or None
        Fixed :math:`\tau^2` instead of an estimate.
    inference : {"z", "t", "knapp-hartung", "knapp-hartung-adhoc"}
    max_iter : int
    tol : float
        Relative convergence tolerance of the likelihood methods.
    weights : ndarray of shape (k, m), optional
        The fixed weights of ``method="genq"`` (positive where present).
    moderators : sequence of int
        Columns of ``design`` tested by the omnibus test (all but the
        intercept).

    Returns
    -------
    RandomEffectsFits
        Leading axis of length ``m``; NaN for the outputs that are not
        ``estimable``.
    """
    k, p = design.shape
    m = y.shape[1]
    prepared = _prepare_design(design)
    moderators = np.asarray(moderators, dtype=int)
    options = (method, tau2, inference, max_iter, tol)
    estimated_iteratively = tau2 is None and method in ITERATIVE_METHODS
    # the per-output extremes of y are needed by Sidik-Jonkman's start and the
    # Knapp-Hartung exact-fit test; otherwise only to screen for the single fit
    extremes = (tau2 is None and method == "sj") or inference in single.KNAPP_HARTUNG
    screen = None if extremes else _screen_limits(method, tau2)
    # closed-form tau^2: one kernel reads y, and centres it chunk by chunk
    deferred = prepared.intercept and (
        tau2 is not None or method in CLOSED_FORM_METHODS
    )
    size = max(1, PASS_BYTES // (8 * max(k, 1)))
    passes = []
    for first in range(0, m, size):
        cols = slice(first, min(first + size, m))
        block = _make_block(
            y[:, cols], v[:, cols], prepared.intercept, screen, defer=deferred
        )
        a = None if weights is None else weights[:, cols]
        if a is not None and block.mask is not None:
            a = np.where(block.mask, a, 0.0)
        rank = _estimable(prepared, block)
        ok = rank["ok"]
        alone = ok & (
            _needs_single_fit(block, method, tau2, a)
            | (tau2 is None and method not in VECTORIZED_METHODS)
        )
        vectorized = ok & ~alone
        if vectorized.all():  # the common case: no copy
            result = _fit_pass(
                prepared, block, rank["logdet_xtx"], options, a, deferred
            )
            result.update(
                limit=np.zeros(ok.shape[0], dtype=np.int8),
                one_by_one=np.zeros(ok.shape[0], dtype=bool),
            )
        else:
            result = _not_estimable(ok.shape[0], p)
        if vectorized.any() and not vectorized.all():
            fitted = _fit_pass(
                prepared,
                _take(block, vectorized),
                rank["logdet_xtx"][vectorized],
                options,
                None if a is None else a[:, vectorized],
                deferred,
            )
            _place(result, fitted, vectorized)
        if vectorized.any() and estimated_iteratively:
            # a path that did not converge: the single fit decides
            alone |= vectorized & ~result["converged"]
        if alone.any():
            fitted = _fit_one_by_one(
                design, y[:, cols], v[:, cols], a, np.flatnonzero(alone), options
            )
            _place(result, fitted, alone)
        dof = (block.n - p).astype(float)
        result["coef_dof"] = np.where(ok, np.inf if inference == "z" else dof, np.nan)
        result["qm"], result["qm_pvalue"] = _wald_tests(
            result["beta"], result["cov"], moderators, result["coef_dof"]
        )
        result["n_studies"] = block.n
        result["estimable"] = ok
        passes.append(result)
    out = passes[0]
    if len(passes) > 1:
        out = {
            name: np.concatenate([part[name] for part in passes], axis=-1)
            for name in passes[0]
        }
    out["beta"] = np.moveaxis(out["beta"], -1, 0)
    out["cov"] = np.moveaxis(out["cov"], -1, 0)
    return RandomEffectsFits(
        dof=out["n_studies"] - p, qm_df=int(moderators.size), **out
    )


def q_profile_intervals(design, y, v, confidence_level):
    r"""Q-profile confidence interval of :math:`\tau^2` of every output.

    The single fit's ``q_profile_interval`` (Viechtbauer 2007), vectorized: the
    bounds solve :math:`y^\top P_{\tau^2} y = \chi^2_{k-p;\,1-\alpha/2}` and
    :math:`\chi^2_{k-p;\,\alpha/2}` on each output's studies; a bound is 0
    where :math:`Q(0)` is already below its quantile. Outputs with zero
    sampling variances or dominant weights get the single fit's interval.

    Parameters
    ----------
    design : ndarray of shape (k, p)
    y, v : ndarray of shape (k, m)
        NaN marks a study missing for that output.
    confidence_level : float

    Returns
    -------
    lower, upper : ndarray of shape (m,)
        NaN for the outputs that cannot be estimated.
    """
    k, p = design.shape
    m = y.shape[1]
    prepared = _prepare_design(design)
    alpha = 1.0 - confidence_level
    lower = np.full(m, np.nan)
    upper = np.full(m, np.nan)
    size = max(1, PASS_BYTES // (8 * max(k, 1)))
    for first in range(0, m, size):
        cols = slice(first, min(first + size, m))
        block = _make_block(
            y[:, cols], v[:, cols], prepared.intercept, _screen_limits("pm", None)
        )
        ok = _estimable(prepared, block)["ok"]
        alone = ok & _needs_single_fit(block, "pm", None, None)
        index = np.arange(cols.start, cols.stop)
        vectorized = ok & ~alone
        if vectorized.any():
            sub = _with_spread(_take(block, vectorized), prepared.intercept)
            df = sub.n - p
            where = index[vectorized]
            lower[where] = _generalized_q_root(
                prepared, sub, stats.chi2.ppf(1.0 - alpha / 2.0, df)
            )[0]
            upper[where] = _generalized_q_root(
                prepared, sub, stats.chi2.ppf(alpha / 2.0, df)
            )[0]
        for j in index[alone]:
            keep = ~(np.isnan(y[:, j]) | np.isnan(v[:, j]))
            lower[j], upper[j] = uni.q_profile_interval(
                design[keep], y[keep, j], v[keep, j], confidence_level
            )
    return lower, upper
