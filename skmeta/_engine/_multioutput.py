r"""Many random-effects meta-analyses over the same studies, vectorized over outputs.

For a shared design :math:`X` (k x p) and outcomes :math:`y_{\cdot j}` with known
sampling variances :math:`v_{\cdot j}`, output :math:`j = 1, \dots, m` is the
model of :mod:`skmeta._engine._univariate`,

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
whose ``(k, chunk)`` work arrays stay small (see :data:`CHUNK_BYTES`); one
output (``m = 1``) is the special case.

The estimators and their safeguards are those of the single fit
(:func:`skmeta._engine._univariate.estimate_tau2`,
:func:`~skmeta._engine._univariate.maximize_likelihood`,
:func:`~skmeta._engine._univariate.tau2_standard_error`,
:func:`~skmeta._engine._univariate.heterogeneity`): the same starting values,
step rules, tolerances relative to each output's variance scale, boundary check
and standard-error formulas (Viechtbauer 2005, 2007; Raudenbush 2009), so that
output ``j`` equals the single fit of column ``j`` on its complete rows.

Zero sampling variances put a floor under :math:`\tau^2` where one study's
weight :math:`1/\tau^2` dominates the moment sums of the likelihood terms; there
(and wherever the terms come out impossible) the likelihood estimates are
certified against the criterion computed from the residuals on a grid of
:math:`\tau^2` (:func:`_certify_floor`), and ML, which is unbounded as
:math:`\tau^2 \to 0` when the zero-variance studies can be fitted exactly, is
reported at the floor (as the single fit reports it, as :math:`\tau^2 = 0`).

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

from skmeta._engine._gls import LOG_2PI, RANK_RTOL
from skmeta._engine._tau2 import tau2_method

#: Size in bytes of one ``(k, chunk)`` work array of an evaluation: the
#: arithmetic runs chunk by chunk so that its temporaries stay in the CPU caches
#: (about a core's second-level cache; measured best between 0.5 and 2 MB).
CHUNK_BYTES = 2**20
#: Fewest outputs per chunk (bounds the Python overhead per output at large k).
MIN_CHUNK = 16
#: Size in bytes of the (k, outputs) arrays of the outputs fitted together.
#: The iterative estimators update all of them at once, so that the few slow
#: outputs (many step halvings, or the 90% cuts towards tau^2 = 0) cost one
#: evaluation per iteration for the whole pass, while the working memory beyond
#: the inputs stays a few times this size.
PASS_BYTES = 2**25
#: Methods that iterate over subsets of the outputs.
ITERATIVE_METHODS = frozenset({"reml", "ml", "pm", "pmm", "eb"})
#: Step-halving attempts per likelihood iteration (as the single fit).
MAX_HALVINGS = 60
#: Relative slack of the ascent test of a step (rounding of the criterion).
ASCENT_RTOL = 1e-13
#: The observed information is used where it exceeds this share of the
#: expected one (Newton); elsewhere Fisher scoring.
CURVATURE_RTOL = 1e-12
#: One likelihood step never cuts tau^2 by more than 90% (the ML profile can
#: be bimodal with a local maximum at 0; a jump to the bound could pass over an
#: interior maximum).
LARGEST_CUT = 0.9
#: Smallest admissible tau^2 relative to the variance scale when some sampling
#: variances are zero (the likelihood is unbounded at tau^2 = 0 there).
FLOOR_RTOL = 1e-12
#: Grid of the certification of likelihood estimates with zero sampling
#: variances: points evenly spaced in log tau^2 from the floor (1e-12 of the
#: variance scale) to 100 times the scale (about 4 per decade).
CERTIFY_GRID_POINTS = 57
#: A grid point beats an estimate when its criterion is larger by more than
#: this share of the criterion (the rounding of the criterion).
CERTIFY_RTOL = 1e-12
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
#: Rows of weights multiplied together before one logarithm is taken: four
#: factors, each within 1e+-75, stay within the range of doubles (other columns
#: take one logarithm per entry).
LOG_GROUP = 4
#: Knapp-Hartung: weighted residuals below this multiple of the rounding noise of
#: ``y`` mean an exact fit (s^2 is then 0, not evidence).
KH_NOISE = 1e4


class RandomEffectsFits(NamedTuple):
    """Per-output results of :func:`fit_random_effects` (leading axis: output).

    Outputs that cannot be estimated (``estimable`` False: no more studies
    than parameters, or a design that is rank-deficient on their studies) hold
    NaN in every float field.
    """

    tau2: np.ndarray  # (m,) reported tau^2 (0 where `unbounded`)
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
    unbounded: np.ndarray  # (m,) bool: zero-variance exact fit, tau^2 reported 0
    kh_degenerate: np.ndarray  # (m,) bool: Knapp-Hartung s^2 is rounding noise


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

    y: np.ndarray  # (k, b) zeros where missing
    v: np.ndarray  # (k, b) zeros where missing
    mask: np.ndarray | None  # (k, b) bool, None when every study is present
    n: np.ndarray  # (b,) studies per output
    scale: np.ndarray  # (b,) variance scale (tolerances are relative to it)
    lower: np.ndarray  # (b,) smallest admissible tau^2
    positive: np.ndarray  # (b,) bool: every present v > 0
    mean_y: np.ndarray  # (b,) mean of y over the studies present


def _make_block(y, v, iterative):
    """Outputs from raw ``(k, b)`` columns with NaN marking missing entries.

    ``iterative``: an iterative estimator will evaluate subsets of the outputs
    (it needs the variance scales, and contiguous columns to gather from).
    """
    sum_y = y.sum(axis=0)
    sum_v = v.sum(axis=0)
    if np.isnan(sum_y + sum_v).any():  # NaN propagates to the column sums
        mask = ~(np.isnan(y) | np.isnan(v))
        y = np.where(mask, y, 0.0)
        v = np.where(mask, v, 0.0)
        n = mask.sum(axis=0)
        sum_y = y.sum(axis=0)
        sum_v = v.sum(axis=0)
        positive = ~((v <= 0) & mask).any(axis=0)
    else:
        mask = None
        if iterative:
            y = np.ascontiguousarray(y)
            v = np.ascontiguousarray(v)
        n = np.full(y.shape[1], y.shape[0])
        positive = v.min(axis=0) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_y = np.where(n > 0, sum_y / n, 0.0)
        mean_v = sum_v / n
    b = y.shape[1]
    block = _Block(y, v, mask, n, np.full(b, np.nan), np.zeros(b), positive, mean_y)
    if not iterative and positive.all():
        return block  # the scale is not used
    # the variance scale of the single fit: max(var(y), mean(v)), or 1
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.maximum(_chunked(_squared_deviations, None, block) / n, mean_v)
    scale = np.where(scale > 0, scale, 1.0)
    lower = np.where(positive, 0.0, FLOOR_RTOL * scale)
    return block._replace(scale=scale, lower=lower)


def _deviations(block):
    """y minus its mean over the studies present (0 where missing)."""
    return _present(block, block.y - block.mean_y)


def _squared_deviations(design, block):
    r""":math:`\sum_i (y_{ij} - \bar y_j)^2` over the studies present."""
    r = _deviations(block)
    return np.einsum("kb,kb->b", r, r)


def _max_abs_y(block):
    """Largest |y| over the studies present (missing entries hold 0)."""
    return np.maximum(block.y.max(axis=0), -block.y.min(axis=0))


def _take(block, index):
    """Outputs ``index`` (a slice gives views; integers or booleans copies)."""
    if isinstance(index, slice):
        columns = [a[:, index] for a in block[:3] if a is not None]
    else:
        if index.dtype == bool:
            index = np.flatnonzero(index)
        columns = [np.take(a, index, axis=1) for a in block[:3] if a is not None]
    mask = None if block.mask is None else columns[2]
    return _Block(columns[0], columns[1], mask, *(a[index] for a in block[3:]))


def _present(block, values):
    """``values`` (k, b) with the missing entries set to 0."""
    return values if block.mask is None else values * block.mask


def _inverse_variance(block, extra=None):
    """Weights :math:`1/(v + extra)` with 0 for the missing entries."""
    total = block.v if extra is None else block.v + extra
    if block.mask is None:
        return 1.0 / total
    w = np.zeros_like(total)
    np.divide(1.0, total, out=w, where=block.mask)
    return w


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


def _chunked(kernel, design, block, *per_output, index=None, **options):
    """``kernel(design, chunk, *per_output, **options)`` over chunks of outputs.

    The chunks are the outputs ``index`` of ``block`` (all of them if None),
    gathered chunk by chunk so that no large copy is made; ``per_output``
    arrays are aligned with those outputs (output axis last).  The kernel
    returns an array, a dict or a tuple of arrays with the output axis last,
    which are concatenated.
    """
    b = block.n.shape[0] if index is None else index.shape[0]
    size = _chunk_size(block.y.shape[0])

    def part(lo, hi):
        cols = slice(lo, hi) if index is None else index[lo:hi]
        chunk = block if index is None and hi - lo == b else _take(block, cols)
        return kernel(design, chunk, *(a[..., lo:hi] for a in per_output), **options)

    if b <= size:
        return part(0, b)
    parts = [part(lo, min(lo + size, b)) for lo in range(0, b, size)]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=-1)
    if isinstance(parts[0], dict):
        return {
            key: np.concatenate([part[key] for part in parts], axis=-1)
            for key in parts[0]
        }
    joined = (np.concatenate(arrays, axis=-1) for arrays in zip(*parts, strict=True))
    if type(parts[0]) is tuple:
        return tuple(joined)
    return type(parts[0])(*joined)


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
    bad = ~np.isfinite(total) | (product < np.finfo(float).tiny).any(axis=0)
    if rows and bad.any():
        total[bad] = np.log(x[:, bad]).sum(axis=0)
    return total


def _loglik(n, p, sum_log_var, rss, reml, logdet_xtvx, logdet_xtx):
    r"""The formula of :func:`skmeta._engine._gls.profiled_loglik`, per output.

    :math:`-\tfrac12[(n-p)\log 2\pi + \log|V| + \log|X^\top V^{-1}X| + r^\top
    V^{-1} r] + \tfrac12\log|X^\top X|` (REML, metafor's constant), or
    :math:`-\tfrac12[n\log 2\pi + \log|V| + r^\top V^{-1} r]` (ML).
    """
    if reml:
        return -0.5 * ((n - p) * LOG_2PI + sum_log_var + logdet_xtvx + rss) + (
            0.5 * logdet_xtx
        )
    return -0.5 * (n * LOG_2PI + sum_log_var + rss)


def _fixed_effect_moments(design, block, *, trace_pp, loglik):
    r"""What the fixed-effect fit (weights 1 / v, all v > 0) gives the methods.

    :math:`Q_E`, :math:`\operatorname{tr}P` and :math:`\sum 1/v` always;
    :math:`\operatorname{tr}P^2` (``trace_pp``: the standard errors of DL, HS,
    HSk); :math:`\log|X^\top W X|` and :math:`\sum \log v` (``loglik``: the
    likelihood at :math:`\tau^2 = 0`).  (:math:`\operatorname{tr}(PV) = k - p`
    exactly for these weights.)
    """
    w = _inverse_variance(block)
    fit = _weighted_fits(design, block.y, w)
    trp, trpp = _projection_traces(design, fit, trace_pp)
    out = {"q": fit.rss, "trp": trp, "sum_w": fit.sum_w}
    if trace_pp:
        out["trpp"] = trpp
    if loglik:
        out["logdet"] = fit.logdet
        out["sum_log_v"] = _sum_log_var(block, w)
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
    ones = np.ones_like(block.y) if block.mask is None else block.mask * 1.0
    return _moment_fit(design, block, ones)


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
    fit = _weighted_fits(design, block.y, w)
    out = {
        "beta": fit.beta,
        "cov": fit.cov,
        "rss": fit.rss,
        "logdet": fit.logdet,
        "sum_log_var": _sum_log_var(block, w),
        "sum_w": fit.sum_w,
    }
    if trace_pp:
        out["trpp"] = _projection_traces(design, fit, True)[1]
    if sum_w2:
        out["sum_w2"] = np.einsum("kb,kb->b", w, w)
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


def _weighted_moments(design, block, w, powers):
    r"""Moment matrices :math:`S_j = \sum_i w_i^j z_i z_i^\top`, :math:`z = (x, y)`.

    Returns
    -------
    ndarray of shape (powers, p + 1, p + 1, b)
        :math:`S_1, \dots, S_{powers}` of every output.
    """
    p = design.X.shape[1]
    # With an intercept, y centred at its mean: P, the residuals and the
    # likelihood are unchanged and the moments lose no precision to an offset.
    y = _deviations(block) if design.intercept else block.y
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
            if p == 1 and design.intercept:
                xy = np.einsum("kb,kb->b", wj, y)
            else:
                xy = design.X.T @ (wj * y)
            S[j, :p, p] = xy
            S[j, p, :p] = xy
        S[j, p, p] = np.einsum("kb,kb,kb->b", wj, y, y)
    return S


def _profile_moments(S, p):
    r"""What the profiled likelihood needs, from the moments of :math:`(x, y)`.

    With :math:`A = S_{1,xx}`, :math:`\hat\beta = A^{-1} S_{1,xy}` and
    :math:`c = (-\hat\beta, 1)`: :math:`y^\top P y = c^\top S_1 c`,
    :math:`y^\top P^2 y = c^\top S_2 c`, :math:`y^\top P^3 y = c^\top S_3 c -
    g^\top A^{-1} g` with :math:`g = (S_2 c)_x`, :math:`\operatorname{tr}P =
    \sum w - \operatorname{tr}(A^{-1} S_{2,xx})` and :math:`\operatorname{tr}P^2
    = \sum w^2 - 2\operatorname{tr}(A^{-1} S_{3,xx}) + \operatorname{tr}((A^{-1}
    S_{2,xx})^2)` (the sums of :math:`w` and :math:`w^2` are added by the caller).
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
    criterion = _loglik(
        block.n,
        p,
        _sum_log_var(block, w),
        prof["rss"],
        reml,
        prof["logdet"],
        logdet_xtx,
    )
    if reml:
        score = 0.5 * (prof["ypy2"] - (sum_w - prof["trp_x"]))
        expected = 0.5 * (sum_w2 - prof["trpp_x"])
    else:
        score = 0.5 * (prof["ypy2"] - sum_w)
        expected = 0.5 * sum_w2
    return _Terms(criterion, score, prof["upu"] - expected, expected)


def _maximize_likelihood(design, block, *, reml, start, max_iter, tol, logdet_xtx):
    r"""Maximise the (restricted) likelihood of every output over :math:`\tau^2`.

    The rules of the single fit
    (:func:`skmeta._engine._univariate.maximize_likelihood`), applied output by
    output on arrays: Newton's method where the observed information is
    positive, Fisher scoring elsewhere; a Newton step below
    :math:`\sqrt{tol}(\tau^2 + s)` in a concave region is taken and ends the
    iteration; a step that cuts :math:`\tau^2` by more than 90% is shortened;
    a step that lowers the criterion is halved (up to 60 times); convergence
    when the change is below :math:`tol(\tau^2 + s)` (``s`` the output's
    variance scale) or at the bound with a non-positive score.  Only the
    outputs still iterating are evaluated.

    Returns
    -------
    tau2, n_iter, converged, last_criterion, invalid : ndarray of shape (b,)
        ``last_criterion`` is the criterion at the last evaluated point (the
        boundary check compares it with the criterion at 0); ``invalid`` marks
        the outputs whose terms were numerically impossible somewhere on the
        path (not converged).
    """
    b = start.shape[0]
    tau2 = np.maximum(start, block.lower)
    n_iter = np.zeros(b, dtype=int)
    converged = np.zeros(b, dtype=bool)
    active = np.arange(b)
    terms = _chunked(_likelihood_terms, design, block, tau2, logdet_xtx, reml=reml)
    last = terms.criterion.copy()
    invalid = ~_valid(terms)
    sqrt_tol = np.sqrt(tol)
    for iteration in range(1, max_iter + 1):
        n_iter[active] = iteration
        cur = tau2[active]
        low, scale = block.lower[active], block.scale[active]
        info = np.where(
            terms.observed > CURVATURE_RTOL * terms.expected,
            terms.observed,
            terms.expected,
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            step = terms.score / info
        at_bound = (cur <= low) & (step <= 0)
        newton = (
            ~at_bound
            & (np.abs(step) <= sqrt_tol * (cur + scale))
            & (terms.observed > 0)
        )
        # a small Newton step in a concave region leaves an O(tol) error: taken
        tau2[active[newton]] = np.maximum(cur + step, low)[newton]
        converged[active[at_bound | newton]] = True
        lost = ~np.isfinite(step)  # no step from these terms: stop, uncertified
        invalid[active[lost]] = True
        go = ~(at_bound | newton | lost)
        if not go.any():
            break
        active, cur, step = active[go], cur[go], step[go]
        low, scale = low[go], scale[go]
        ll = terms.criterion[go]
        # never cut tau2 by more than 90%; near the bound, halve from the bound
        kept = 1.0 - LARGEST_CUT
        smallest = np.where(kept * cur > tol * scale, kept * cur, low)
        step = np.maximum(step, np.maximum(smallest, low) - cur)
        new = np.maximum(cur + step, low)
        xtx = logdet_xtx[active]
        terms = _chunked(
            _likelihood_terms, design, block, new, xtx, index=active, reml=reml
        )
        slack = ASCENT_RTOL * (1.0 + np.abs(ll))
        worse = terms.criterion < ll - slack
        for _ in range(MAX_HALVINGS - 1):
            if not worse.any():
                break
            bad = np.flatnonzero(worse)
            step[bad] *= 0.5
            new[bad] = np.maximum(cur[bad] + step[bad], low[bad])
            retry = _chunked(
                _likelihood_terms,
                design,
                block,
                new[bad],
                xtx[bad],
                index=active[bad],
                reml=reml,
            )
            for mine, theirs in zip(terms, retry, strict=True):
                mine[bad] = theirs
            worse[bad] = retry.criterion < ll[bad] - slack[bad]
        invalid[active[~_valid(terms)]] = True
        tau2[active] = new
        last[active] = terms.criterion
        done = np.abs(new - cur) <= tol * (new + scale)
        converged[active[done]] = True
        keep = ~done
        if not keep.any():
            break
        active = active[keep]
        terms = _Terms(*(a[keep] for a in terms))
    # Terms that cannot be right (a non-positive expected information: tr P^2
    # and sum w^2 are positive) come from weights so extreme that the moment
    # sums lost every digit; the path they steered is not certified.
    return tau2, n_iter, converged & ~invalid, last, invalid


def _valid(terms):
    """Evaluations whose terms are finite with a positive expected information."""
    return (
        np.isfinite(terms.criterion)
        & np.isfinite(terms.score)
        & np.isfinite(terms.observed)
        & (terms.expected > 0)
    )


def _criterion(design, block, tau2, logdet_xtx, *, reml):
    """The (restricted) log-likelihood from the residuals of the weighted fit.

    Accurate where the moment sums of :func:`_likelihood_terms` are not: a zero
    sampling variance gives its study the weight 1/tau^2 near the floor.
    """
    w = _inverse_variance(block, tau2)
    fit = _weighted_fits(design, block.y, w)
    p = design.X.shape[1]
    logdet = fit.logdet
    return _loglik(
        block.n, p, _sum_log_var(block, w), fit.rss, reml, logdet, logdet_xtx
    )


def _interpolable_zero_variances(design, block):
    r"""Whether the studies with zero sampling variance can be fitted exactly.

    They can when their rows of the design are linearly independent (at most p
    of them).  Then, as :math:`\tau^2 \to 0`, their terms of the likelihood
    grow as :math:`\tfrac12\log(1/\tau^2)` each while the fit passes through
    them: the likelihood is unbounded (the restricted likelihood is not: its
    :math:`\log|X^\top W X|` grows as fast).  The rank is the number of
    pivots of the Gram matrix of those rows (normalised) above ``RANK_RTOL``.
    """
    zero = (block.v <= 0) if block.mask is None else (block.v <= 0) & block.mask
    count = zero.sum(axis=0)
    p = design.X.shape[1]
    X = design.X.copy()
    X[:, 1:] += design.means[1:]
    upper = np.triu_indices(p)
    pairs = (X[:, upper[0]] * X[:, upper[1]]).T
    packed = pairs @ zero.astype(float)
    G = np.empty((p, p, count.shape[0]))
    G[upper] = packed
    G[upper[::-1]] = packed
    norms = np.sqrt(np.einsum("iib->ib", G))
    with np.errstate(invalid="ignore", divide="ignore"):
        G = G / (norms[:, None] * norms[None, :])
    G = np.nan_to_num(G)
    # Cholesky that skips dependent columns: the number of pivots is the rank
    L = np.zeros_like(G)
    rank = np.zeros(count.shape[0], dtype=int)
    for j in range(p):
        d = G[j, j] - np.einsum("lb,lb->b", L[j, :j], L[j, :j])
        independent = d > RANK_RTOL
        rank += independent
        root = np.sqrt(np.where(independent, d, 1.0))
        L[j, j] = np.where(independent, root, 0.0)
        for i in range(j + 1, p):
            s = G[i, j] - np.einsum("lb,lb->b", L[i, :j], L[j, :j])
            L[i, j] = np.where(independent, s / root, 0.0)
    return (count > 0) & (rank == count)


def _certify_floor(design, block, which, state, *, reml, max_iter, tol, logdet_xtx):
    r"""Certify the likelihood estimates of outputs ``which`` against a grid.

    With zero sampling variances (a floor above 0) the likelihood terms near
    the floor come from moment sums dominated by a weight :math:`1/\tau^2`, so
    the Newton path can stop there although the optimum is inside; the same
    holds wherever the terms were found invalid (not converged).  The criterion
    computed from the residuals (:func:`_criterion`) is compared on a grid of
    :data:`CERTIFY_GRID_POINTS` values spaced evenly in :math:`\log\tau^2` from
    the floor to 100 times the variance scale; from a grid point that beats the
    estimate, the maximisation restarts.  An output whose final estimate is
    still beaten by the grid is not converged.
    """
    tau2, n_iter, converged = (a.copy() for a in state)
    index = np.flatnonzero(which)
    sub = _take(block, index)
    xtx = logdet_xtx[index]
    low, scale = sub.lower, sub.scale
    tiny = np.where(low > 0, low, FLOOR_RTOL * scale)
    steps = np.geomspace(1.0, 1e2 * scale / tiny, CERTIFY_GRID_POINTS)  # (g, b)
    grid = np.concatenate([np.maximum(low, 0.0)[None], tiny * steps])
    values = np.stack(
        [_chunked(_criterion, design, sub, t, xtx, reml=reml) for t in grid]
    )
    best = np.nanargmax(values, axis=0)
    best_tau2 = grid[best, np.arange(index.size)]
    best_value = values[best, np.arange(index.size)]
    current = _chunked(_criterion, design, sub, tau2[index], xtx, reml=reml)
    current = np.where(np.isnan(current), -np.inf, current)
    slack = CERTIFY_RTOL * (1.0 + np.abs(best_value))
    beaten = best_value > current + slack
    # Highest at the floor: the criterion increases towards tau^2 = 0 (zero
    # variances fitted exactly; unbounded for ML), which the caller reports.
    at_floor = beaten & (best == 0) & (low > 0)
    tau2[index[at_floor]] = low[at_floor]
    converged[index[at_floor]] = True
    beaten &= ~at_floor
    if beaten.any():
        restart = np.flatnonzero(beaten)
        again = _maximize_likelihood(
            design,
            _take(sub, restart),
            reml=reml,
            start=best_tau2[restart],
            max_iter=max_iter,
            tol=tol,
            logdet_xtx=xtx[restart],
        )[:3]
        where = index[restart]
        found = _chunked(
            _criterion, design, _take(sub, restart), again[0], xtx[restart], reml=reml
        )
        better = found >= current[restart]
        tau2[where] = np.where(better, again[0], best_tau2[restart])
        n_iter[where] += again[1]
        still_beaten = best_value[restart] > found + slack[restart]
        converged[where] = again[2] & ~still_beaten
    converged[index[~beaten & ~at_floor]] = True
    return tau2, n_iter, converged


# --------------------------------------------------------------------------------------
# estimators of tau^2 (vector logic over the outputs of a pass)
# --------------------------------------------------------------------------------------


def _generalized_q_root(design, block, target):
    r"""Solve :math:`Q(\tau^2) = y^\top P_{\tau^2} y =` ``target`` for every output.

    :math:`Q` is decreasing (:math:`Q' = -y^\top P^2 y`) and convex
    (:math:`Q'' = 2 y^\top P^3 y \ge 0`), so Newton's method started at the
    lower bound rises monotonically to the root; where :math:`Q` is already
    at or below ``target`` at the bound, the bound is the answer.  Stops when a
    step is below :data:`ROOT_XTOL` times the variance scale plus
    :data:`ROOT_RTOL` times :math:`\tau^2`.

    Returns
    -------
    tau2 : ndarray of shape (b,)
    converged : ndarray of bool
    """
    t = block.lower.copy()
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
    y = block.y
    n = block.n
    r = _present(block, y - y.sum(axis=0) / n)
    var = np.einsum("kb,kb->b", r, r) / n
    if block.mask is None:
        spread = y.max(axis=0) > y.min(axis=0)
    else:
        spread = np.where(block.mask, y, -np.inf).max(axis=0) > np.where(
            block.mask, y, np.inf
        ).min(axis=0)
    return np.where(spread, var, 0.0)


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


def _estimate_tau2(design, block, method, *, weights, fe, max_iter, tol, logdet_xtx):
    """tau^2 of every output by ``method`` (the single fit's rules).

    ``fe`` holds the fixed-effect moments (:func:`_fixed_effect_moments`, NaN
    where some sampling variance is 0), or None when no output has all v > 0.

    Returns
    -------
    tau2, n_iter, converged : ndarray of shape (b,)
    moments : dict
        Moments the standard errors reuse.
    """
    b = block.n.shape[0]
    p = design.X.shape[1]
    n_iter = np.ones(b, dtype=int)
    converged = np.ones(b, dtype=bool)
    pos = block.positive
    moments = {}
    if method == "fe":
        return np.zeros(b), n_iter, converged, moments
    if tau2_method(method).likelihood:
        reml = method == "reml"
        # DL where every v > 0 (then lower = 0), else 0; HE where that is <= lower
        start = np.zeros(b)
        if fe is not None:
            dl = np.maximum((fe["q"] - (block.n - p)) / fe["trp"], 0.0)
            start[pos] = dl[pos]
        low_start = start <= block.lower
        he = _subset_moments(_unit_weight_moments, design, block, low_start)
        if he is not None:
            he_tau2 = np.maximum((he["rss"] - he["trpv"]) / (block.n - p), 0.0)
            start[low_start] = np.maximum(he_tau2, block.lower)[low_start]
        xtx = logdet_xtx if reml else np.zeros(b)
        tau2, n_iter, converged, last, invalid = _maximize_likelihood(
            design,
            block,
            reml=reml,
            start=start,
            max_iter=max_iter,
            tol=tol,
            logdet_xtx=xtx,
        )
        if fe is not None:
            # As metafor (ll0check): the bound against the optimum found.
            at_zero = _loglik(
                block.n, p, fe["sum_log_v"], fe["q"], reml, fe["logdet"], xtx
            )
            tau2 = np.where(pos & (tau2 > 0.0) & (at_zero > last), 0.0, tau2)
        if not reml and not pos.all():
            # ML with zero variances: unbounded as tau^2 -> 0 where their studies
            # can be fitted exactly; reported at the floor (as tau^2 = 0).
            interpolated = _interpolable_zero_variances(design, block) & ~pos
            tau2 = np.where(interpolated, block.lower, tau2)
            converged = converged | interpolated
            pos = pos | interpolated  # nothing to certify there
        floor = ~pos | invalid
        if floor.any():
            tau2, n_iter, converged = _certify_floor(
                design,
                block,
                floor,
                (tau2, n_iter, converged),
                reml=reml,
                max_iter=max_iter,
                tol=tol,
                logdet_xtx=xtx,
            )
        return tau2, n_iter, converged, moments
    if method == "he":
        moments = _chunked(_unit_weight_moments, design, block)
        tau2 = (moments["rss"] - moments["trpv"]) / (block.n - p)
    elif method == "dl":
        tau2 = (fe["q"] - (block.n - p)) / fe["trp"]
    elif method == "genq":
        moments = _chunked(_fixed_weight_moments, design, block, weights)
        tau2 = (moments["rss"] - moments["trpv"]) / moments["trp"]
    elif method in ("hs", "hsk"):
        factor = block.n / (block.n - p) if method == "hsk" else 1.0
        tau2 = (factor * fe["q"] - block.n) / fe["sum_w"]
    elif method == "sj":
        start = _sidik_jonkman_start(block)
        moments = _subset_moments(
            _inverse_variance_moments, design, block, start > 0, start
        )
        tau2 = np.zeros(b)
        if moments is not None:
            sj = start * moments["rss"] / (block.n - p)
            tau2 = np.where(start > 0, sj, 0.0)
        moments = {"start": start, **(moments or {})}
    elif method in ("pm", "eb", "pmm"):
        df = block.n - p
        target = stats.chi2.median(df) if method == "pmm" else df.astype(float)
        tau2, converged = _generalized_q_root(design, block, target)
    else:
        raise ValueError(f"unknown method {method!r}")
    return np.maximum(tau2, block.lower), n_iter, converged, moments


def _tau2_standard_error(method, tau2, n, p, final, fe, moments):
    """metafor's standard error of the tau^2 estimate (``tau2_standard_error``).

    ``final`` holds the moments of the fit at the estimate, ``fe`` those of the
    fixed-effect fit and ``moments`` those the estimator computed.
    """
    if method == "reml":
        with np.errstate(invalid="ignore"):  # where the fit is not converged
            return np.sqrt(2.0 / final["trpp"])
    if method == "ml":
        return np.sqrt(2.0 / final["sum_w2"])
    if method in ("pm", "pmm", "eb"):
        return np.sqrt(2.0 * n**2 / (n - p) / final["sum_w"] ** 2)
    t = np.maximum(tau2, 0.0)
    if method == "he":
        df = n - p
        core = 2 * moments["pvpv"] + 4 * t * moments["trpv"] + 2 * t * t * df
        return np.sqrt(core / df**2)
    if method in ("dl", "hs", "hsk"):
        core = 2 * (n - p) + 4 * t * fe["trp"] + 2 * t * t * fe["trpp"]
        if method == "dl":
            return np.sqrt(core / fe["trp"] ** 2)
        se = np.sqrt(core / fe["sum_w"] ** 2)
        return se * n / (n - p) if method == "hsk" else se

    def moment_se(scale):
        core = 2 * moments["pvpv"] + 4 * t * moments["pvp"] + 2 * t * t * moments["pp"]
        return np.sqrt(core / scale)

    if method == "genq":
        return moment_se(moments["trp"] ** 2)
    if method == "sj":
        # P is the one of the estimator itself, i.e. at the initial value tau2_0
        # (0 for constant y, where tau2 = 0 exactly)
        start = moments["start"]
        if "pvpv" not in moments:
            return np.zeros_like(start)
        return np.where(start > 0, start / (n - p) * moment_se(1.0), 0.0)
    return np.full(n.shape, np.nan)


# --------------------------------------------------------------------------------------
# the fit of a pass of outputs, and of all outputs
# --------------------------------------------------------------------------------------


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
        if df % 2 == 0:
            term = np.ones_like(h)
            start, shift = 1, 0.0
            base = 0.0
        else:
            term = np.sqrt(h) * (2.0 / np.sqrt(np.pi))
            start, shift = 1, 0.5
            base = special.erfc(np.sqrt(h))
        total = term.copy()
        for j in range(start, (df - 1) // 2 + (df % 2 == 0)):
            term = term * h / (j + shift)
            total += term
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
    (``dof`` infinite), or :math:`F = Q_M / s \sim F_{s, \mathrm{dof}}` (as
    :func:`skmeta._engine._inference.wald_test`); NaN without moderators or where
    the covariance is singular (an exact fit under Knapp-Hartung).
    """
    b = beta.shape[1]
    s = len(index)
    if s == 0:
        return np.full(b, np.nan), np.full(b, np.nan)
    inv, _ = _cholesky_inverse(cov[np.ix_(index, index)])
    qm = _quadratic(inv, beta[index])
    if np.all(np.isinf(dof)):
        return qm, _chi2_sf(qm, s)
    f = qm / s
    return f, special.fdtrc(s, dof, f)


def _heterogeneity(df, tau2, fe, fixed_effect):
    r"""Cochran's :math:`Q_E`, its p-value, :math:`I^2`, :math:`H^2` and
    :math:`\tilde v = (k-p)/\operatorname{tr}(P_{FE})` (``heterogeneity`` of the
    single fit); NaN where some sampling variance is 0 (``fe`` is NaN there)."""
    q = fe["q"]
    with np.errstate(divide="ignore", invalid="ignore"):
        q_pvalue = np.where(df > 0, _chi2_sf(q, df), 1.0)
        typical = np.where(df > 0, df / fe["trp"], 0.0)
        if fixed_effect:
            i2 = np.where(q > 0, np.maximum(0.0, 100.0 * (q - df) / q), 0.0)
            h2 = np.where(df > 0, q / df, np.nan)
        else:
            i2 = np.where(typical + tau2 > 0, 100.0 * tau2 / (typical + tau2), 0.0)
            h2 = np.where(typical > 0, tau2 / typical + 1.0, np.inf)
    nan = np.isnan(q)
    return [np.where(nan, np.nan, a) for a in (q, q_pvalue, i2, h2, typical)]


def _fit_pass(design, block, logdet_xtx, options):
    """Fit every output of a pass (all estimable); a dict of per-output arrays."""
    method, tau2_fixed, inference, max_iter, tol, weights, moderators = options
    p = design.X.shape[1]
    b = block.n.shape[0]
    estimated = tau2_fixed is None and method != "fe"
    pos = block.positive
    fe = _subset_moments(
        _fixed_effect_moments,
        design,
        block,
        pos,
        trace_pp=estimated and method in ("dl", "hs", "hsk"),
        loglik=estimated and tau2_method(method).likelihood,
    )
    if tau2_fixed is None:
        tau2, n_iter, converged, moments = _estimate_tau2(
            design,
            block,
            method,
            weights=weights,
            fe=fe,
            max_iter=max_iter,
            tol=tol,
            logdet_xtx=logdet_xtx,
        )
        # Zero sampling variances and an exact fit: the likelihood increases up
        # to the floor, where the model degenerates; tau^2 is reported as 0.
        unbounded = ~pos & (tau2 <= block.lower)
    else:
        tau2 = np.full(b, float(tau2_fixed))
        n_iter = np.ones(b, dtype=int)
        converged = np.ones(b, dtype=bool)
        unbounded = np.zeros(b, dtype=bool)
        moments = {}
    reml = method == "reml"
    knapp_hartung = inference in ("knapp-hartung", "knapp-hartung-adhoc")
    final = _chunked(
        _final_moments,
        design,
        block,
        tau2,
        trace_pp=estimated and reml,
        sum_w2=estimated and method == "ml",
        max_w=knapp_hartung,
    )
    dof = block.n - p
    cov = final["cov"]
    kh_degenerate = np.zeros(b, dtype=bool)
    if knapp_hartung:
        noise = KH_NOISE * block.n * (np.finfo(float).eps * _max_abs_y(block)) ** 2
        # weighted residuals zero to rounding: y is fitted exactly, s^2 is 0
        kh_degenerate = final["rss"] <= noise * final["max_w"]
        s2 = np.where(kh_degenerate, 0.0, final["rss"] / dof)
        if inference == "knapp-hartung-adhoc":
            s2 = np.maximum(1.0, s2)
        cov = cov * s2
    coef_dof = np.full(b, np.inf) if inference == "z" else dof.astype(float)
    tau2_se = np.full(b, np.nan)
    if estimated:
        tau2_se = _tau2_standard_error(method, tau2, block.n, p, final, fe, moments)
    het = [np.full(b, np.nan)] * 5
    if fe is not None:
        fixed_effect = not estimated and tau2_fixed in (None, 0.0)
        het = _heterogeneity(dof, tau2, fe, fixed_effect)
    beta, cov = _uncentre(design, final["beta"], cov)
    qm, qm_pvalue = _wald_tests(beta, cov, moderators, coef_dof)
    loglik = _loglik(
        block.n,
        p,
        final["sum_log_var"],
        final["rss"],
        reml,
        final["logdet"],
        logdet_xtx if reml else 0.0,
    )
    if not reml:  # the warned-about unbounded likelihood at the limit
        loglik = np.where(unbounded & (tau2 > 0.0), np.inf, loglik)
    return {
        "tau2": np.where(unbounded, 0.0, tau2),
        "tau2_se": tau2_se,
        "beta": beta,
        "cov": cov,
        "coef_dof": coef_dof,
        "q": het[0],
        "q_pvalue": het[1],
        "i2": het[2],
        "h2": het[3],
        "typical_var": het[4],
        "qm": qm,
        "qm_pvalue": qm_pvalue,
        "loglik": loglik,
        "n_iter": n_iter,
        "converged": converged,
        "unbounded": unbounded,
        "kh_degenerate": kh_degenerate,
    }


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
        One of :data:`skmeta._engine._tau2.ALL_METHODS`. The methods that need
        positive sampling variances (``Tau2Method.needs_positive_var``) need
        every present ``v > 0`` (not checked here).
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
    p = design.shape[1]
    m = y.shape[1]
    prepared = _prepare_design(design)
    moderators = np.asarray(moderators, dtype=int)
    iterative = tau2 is None and method in ITERATIVE_METHODS
    size = max(1, PASS_BYTES // (8 * max(y.shape[0], 1)))
    passes = []
    for start in range(0, m, size):
        cols = slice(start, min(start + size, m))
        block = _make_block(y[:, cols], v[:, cols], iterative)
        rank = _estimable(prepared, block)
        ok = rank["ok"]
        result = {"n_studies": block.n, "estimable": ok}
        if ok.any():
            a = None if weights is None else weights[:, cols]
            logdet_xtx = rank["logdet_xtx"]
            if not ok.all():
                block, logdet_xtx = _take(block, ok), logdet_xtx[ok]
                a = None if a is None else a[:, ok]
            options = (method, tau2, inference, max_iter, tol, a, moderators)
            fitted = _fit_pass(prepared, block, logdet_xtx, options)
            if not ok.all():
                fitted = {name: _scatter(value, ok) for name, value in fitted.items()}
            result.update(fitted)
        else:
            result.update(_not_estimable(ok.shape[0], p))
        passes.append(result)
    out = {
        name: np.concatenate([part[name] for part in passes], axis=-1)
        for name in passes[0]
    }
    out["beta"] = np.moveaxis(out["beta"], -1, 0)
    out["cov"] = np.moveaxis(out["cov"], -1, 0)
    return RandomEffectsFits(
        dof=out["n_studies"] - p, qm_df=int(moderators.size), **out
    )


def _scatter(value, where):
    """Per-output ``value`` (output axis last) placed at ``where``; NaN/0 elsewhere."""
    full = np.zeros((*value.shape[:-1], where.shape[0]), dtype=value.dtype)
    if value.dtype.kind == "f":
        full[...] = np.nan
    full[..., where] = value
    return full


def _not_estimable(b, p):
    """The per-output fields of ``b`` outputs that cannot be estimated."""
    nan = np.full(b, np.nan)
    out = dict.fromkeys(_FLOAT_FIELDS, nan)
    out["beta"] = np.full((p, b), np.nan)
    out["cov"] = np.full((p, p, b), np.nan)
    out.update(
        n_iter=np.zeros(b, dtype=int),
        converged=np.zeros(b, dtype=bool),
        unbounded=np.zeros(b, dtype=bool),
        kh_degenerate=np.zeros(b, dtype=bool),
    )
    return out


_FLOAT_FIELDS = (
    "tau2",
    "tau2_se",
    "coef_dof",
    "q",
    "q_pvalue",
    "i2",
    "h2",
    "typical_var",
    "qm",
    "qm_pvalue",
    "loglik",
)


def q_profile_intervals(design, y, v, confidence_level):
    r"""Q-profile confidence interval of :math:`\tau^2` of every output.

    The vectorized ``q_profile_interval`` of the single fit (Viechtbauer 2007):
    the bounds solve :math:`y^\top P_{\tau^2} y = \chi^2_{k-p;\,1-\alpha/2}` and
    :math:`\chi^2_{k-p;\,\alpha/2}` on each output's studies; a bound is the
    floor (0 unless some sampling variances are 0) where :math:`Q` at the floor
    is already below its quantile.

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
    p = design.shape[1]
    m = y.shape[1]
    prepared = _prepare_design(design)
    alpha = 1.0 - confidence_level
    lower = np.full(m, np.nan)
    upper = np.full(m, np.nan)
    size = max(1, PASS_BYTES // (8 * max(y.shape[0], 1)))
    for start in range(0, m, size):
        cols = slice(start, min(start + size, m))
        block = _make_block(y[:, cols], v[:, cols], True)
        ok = _estimable(prepared, block)["ok"]
        if not ok.any():
            continue
        block = _take(block, np.flatnonzero(ok)) if not ok.all() else block
        df = block.n - p
        index = np.arange(cols.start, cols.stop)[ok]
        lower[index] = _generalized_q_root(
            prepared, block, stats.chi2.ppf(1.0 - alpha / 2.0, df)
        )[0]
        upper[index] = _generalized_q_root(
            prepared, block, stats.chi2.ppf(alpha / 2.0, df)
        )[0]
    return lower, upper
