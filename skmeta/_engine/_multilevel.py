"""Engine of the multilevel (nested, random-slope) meta-regression model.

Model (Konstantopoulos 2011; Sera et al. 2019; Stata's ``meta meregress``)::

    y = X beta + sum_l Z_l u_l + e,   e ~ N(0, diag(v)),
    u_{l,g} ~ N(0, Sigma_l)  independently for every group g of level l,

with levels l = 0 (outermost) .. L-1 nested in one another, and, at level l, the
design row ``z_{l,i} = [1, Z[i, slopes_l]]`` (random intercept and random slopes).
Observations of different outermost groups ("clusters") are independent, so the
marginal covariance is block diagonal over clusters::

    V_c = diag(v_c) + sum_l E_{l,c} o (Z_{l,c} Sigma_l Z_{l,c}^T),

where ``E_{l,c}[i, j] = 1`` when rows i and j share their level-l group and ``o``
is the elementwise product. Every likelihood evaluation works cluster by
cluster: clusters of equal size are stacked into one (n, s, s) batch and
factorized with a batched Cholesky decomposition, so memory and time are
O(sum_c m_c^2) and O(sum_c m_c^3) (m_c = cluster size), never a dense k x k
matrix.

The (restricted) log-likelihood with beta profiled out is::

    ll_ML   = -1/2 [n log 2pi + log|V| + r^T V^-1 r],
    ll_REML = -1/2 [(n-p) log 2pi + log|V| + log|X^T V^-1 X| + r^T V^-1 r]
              + 1/2 log|X^T X|,

with r = y - X beta_hat(Sigma); the REML constant +1/2 log|X^T X| is metafor's
(``REMLf = TRUE``) and is also what Stata prints (checked on the seed's
examples). Its gradient with respect to Sigma_l is::

    d ll / d Sigma_l = -1/2 sum_c Z_{l,c}^T (E_{l,c} o M_c) Z_{l,c},
    M = V^-1 - V^-1 r r^T V^-1 [- V^-1 X (X^T V^-1 X)^-1 X^T V^-1 under REML].

Covariance parametrizations keep every Sigma_l positive semi-definite:

* ``"unstructured"``: Sigma = L L^T with L lower triangular and free (a plain
  Cholesky factor rather than log-Cholesky, so that boundary solutions, e.g. a
  variance of exactly 0 or a correlation of exactly 1, are reached exactly);
* ``"independent"``, ``"identity"``, ``"exchangeable"`` and ``"custom"``:
  standard deviations s (Sigma_aa = s_a^2) and correlations rho = tanh(kappa),
  with fixed values and equality labels (Stata's ``covariance(custom)``); a
  Sigma that is not positive semi-definite has likelihood -inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize, stats

__all__ = [
    "CovSpec",
    "NestedDesign",
    "cochran_qm",
    "encode_nested_groups",
    "fit_multilevel",
    "i2_multilevel",
    "make_cov_spec",
    "prepare_design",
    "profile_ci",
    "profile_loglik",
    "random_effects_blups",
]

_LOG2PI = np.log(2.0 * np.pi)


# --------------------------------------------------------------------------
# covariance structures
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class CovSpec:
    """Parametrization of one level's (q x q) random-effects covariance matrix.

    ``kind`` is ``"unstructured"`` (Cholesky factor) or ``"sdcorr"`` (standard
    deviations and correlations). For ``"sdcorr"``: ``sd_index[a]`` is the
    parameter index of SD a (-1 = fixed at ``sd_fixed[a]``); ``corr_index[a, b]``
    the parameter index of the correlation (-1 = fixed at ``corr_fixed[a, b]``).
    """

    kind: str
    q: int
    n_params: int
    sd_index: np.ndarray | None = None
    sd_fixed: np.ndarray | None = None
    corr_index: np.ndarray | None = None
    corr_fixed: np.ndarray | None = None
    n_sd_params: int = 0
    label: str = ""


def _is_free(value):
    return value is None or (isinstance(value, float | np.floating) and np.isnan(value))


def make_cov_spec(structure, q):
    """Build a :class:`CovSpec` from a structure name or a custom (q x q) spec.

    Parameters
    ----------
    structure : str or array-like of shape (q, q)
        ``"independent"``, ``"identity"``, ``"exchangeable"``, ``"unstructured"``,
        or a custom matrix (object array): NaN/None = free, a number = fixed
        (SDs on the diagonal, correlations off it), equal strings = equal
        parameters (diagonal and off-diagonal labels are separate namespaces).
    q : int
        Number of random effects at the level (intercept + slopes).
    """
    if isinstance(structure, str):
        if structure == "unstructured":
            return CovSpec("unstructured", q, q * (q + 1) // 2, label="Unstructured")
        if structure == "independent":
            diag = [np.nan] * q
            off = 0.0
        elif structure == "identity":
            diag = ["sd"] * q
            off = 0.0
        elif structure == "exchangeable":
            diag = ["sd"] * q
            off = "rho"
        else:
            raise ValueError(
                "covariance must be 'independent', 'identity', 'exchangeable', "
                f"'unstructured' or a (q, q) custom matrix; got {structure!r}"
            )
        custom = np.empty((q, q), dtype=object)
        custom[:] = off
        for a in range(q):
            custom[a, a] = diag[a]
        label = structure.capitalize()
    else:
        custom = np.asarray(structure, dtype=object)
        if custom.shape != (q, q):
            raise ValueError(
                f"covariance: a custom matrix at this level must have shape ({q}, {q}) "
                f"(intercept + {q - 1} random slope(s)); got shape {custom.shape}"
            )
        label = "Custom"
    n = 0
    sd_index = np.full(q, -1)
    sd_fixed = np.zeros(q)
    labels = {}
    for a in range(q):
        val = custom[a, a]
        if isinstance(val, str):
            if ("d", val) not in labels:
                labels[("d", val)] = n
                n += 1
            sd_index[a] = labels[("d", val)]
        elif _is_free(val):
            sd_index[a] = n
            n += 1
        else:
            val = float(val)
            if not np.isfinite(val) or val < 0:
                raise ValueError(f"covariance: a fixed SD must be >= 0; got {val}")
            sd_fixed[a] = val
    n_sd = n
    corr_index = np.full((q, q), -1)
    corr_fixed = np.eye(q)
    for a in range(q):
        for b in range(a):
            val, other = custom[a, b], custom[b, a]
            if isinstance(other, str) or not _is_free(other):
                if (
                    not (isinstance(val, str) or not _is_free(val))
                    or (isinstance(val, str) != isinstance(other, str))
                    or (not isinstance(val, str) and float(val) != float(other))
                    or (isinstance(val, str) and val != other)
                ):
                    raise ValueError(
                        "covariance: a custom matrix must be symmetric "
                        f"(entries [{a}, {b}] and [{b}, {a}] differ)"
                    )
            if isinstance(val, str):
                if ("c", val) not in labels:
                    labels[("c", val)] = n
                    n += 1
                corr_index[a, b] = corr_index[b, a] = labels[("c", val)]
            elif _is_free(val):
                corr_index[a, b] = corr_index[b, a] = n
                n += 1
            else:
                val = float(val)
                if not -1.0 <= val <= 1.0:
                    raise ValueError(
                        f"covariance: a fixed correlation must be in [-1, 1]; got {val}"
                    )
                corr_fixed[a, b] = corr_fixed[b, a] = val
    return CovSpec(
        "sdcorr", q, n, sd_index, sd_fixed, corr_index, corr_fixed, n_sd, label
    )


def sigma_and_jac(spec, theta):
    """Sigma (q, q) and its Jacobian d Sigma / d theta (q, q, n_params)."""
    q = spec.q
    theta = np.asarray(theta, dtype=float)
    jac = np.zeros((q, q, spec.n_params))
    if spec.kind == "unstructured":
        L = np.zeros((q, q))
        rows, cols = np.tril_indices(q)
        L[rows, cols] = theta
        sigma = L @ L.T
        for k, (i, j) in enumerate(zip(rows, cols, strict=True)):
            # d(L L^T) / d L_ij = e_i (L e_j)^T + (L e_j) e_i^T
            jac[i, :, k] += L[:, j]
            jac[:, i, k] += L[:, j]
        return sigma, jac
    sd = spec.sd_fixed.copy()
    dsd = np.zeros(q)
    free = spec.sd_index >= 0
    raw = theta[spec.sd_index[free]]
    sd[free] = np.abs(raw)
    dsd[free] = np.where(raw >= 0, 1.0, -1.0)
    rho = spec.corr_fixed.copy()
    cfree = spec.corr_index >= 0
    rho[cfree] = np.tanh(theta[spec.corr_index[cfree]])
    sigma = rho * np.outer(sd, sd)
    for a in range(q):
        ia = spec.sd_index[a]
        if ia >= 0:
            # d (rho_ab s_a s_b) / d s_a for every b (diagonal: 2 s_a)
            jac[a, :, ia] += rho[a] * sd * dsd[a]
            jac[:, a, ia] += rho[:, a] * sd * dsd[a]
        for b in range(a):
            ic = spec.corr_index[a, b]
            if ic >= 0:
                d = (1.0 - rho[a, b] ** 2) * sd[a] * sd[b]
                jac[a, b, ic] += d
                jac[b, a, ic] += d
    return sigma, jac


def theta_from_sigma(spec, sigma):
    """Parameters reproducing (as nearly as the structure allows) a given Sigma."""
    sigma = np.asarray(sigma, dtype=float)
    if spec.kind == "unstructured":
        w, U = np.linalg.eigh(sigma)
        sig = (U * np.maximum(w, 1e-12 * max(w.max(), 1e-300))) @ U.T
        L = np.linalg.cholesky(sig + 1e-14 * np.eye(spec.q))
        return L[np.tril_indices(spec.q)]
    sd = np.sqrt(np.maximum(np.diag(sigma), 0.0))
    theta = np.zeros(spec.n_params)
    counts = np.zeros(spec.n_params)
    for a in range(spec.q):
        if spec.sd_index[a] >= 0:
            theta[spec.sd_index[a]] += sd[a]
            counts[spec.sd_index[a]] += 1
        for b in range(a):
            if spec.corr_index[a, b] >= 0:
                den = sd[a] * sd[b]
                r = sigma[a, b] / den if den > 0 else 0.0
                theta[spec.corr_index[a, b]] += np.arctanh(np.clip(r, -0.95, 0.95))
                counts[spec.corr_index[a, b]] += 1
    return theta / np.maximum(counts, 1)


# --------------------------------------------------------------------------
# data layout
# --------------------------------------------------------------------------
def encode_nested_groups(groups):
    """Integer codes (k, L) of nested groups; a label is nested in its parent.

    Parameters
    ----------
    groups : ndarray of shape (k, L)
        Numeric labels per level (outermost first), e.g. integer codes of the
        user's labels.

    Returns
    -------
    ndarray of int64, shape (k, L)
        ``codes[:, l]`` numbers the distinct paths (label_0, ..., label_l) in
        lexicographic order, so that school 1 of district 11 and school 1 of
        district 12 are different groups, and the groups of every level are
        contiguous within their parents once sorted.
    """
    groups = np.asarray(groups)
    k, L = groups.shape
    codes = np.empty((k, L), dtype=np.int64)
    parent = np.zeros(k, dtype=np.int64)
    for lev in range(L):
        _, lab = np.unique(groups[:, lev], return_inverse=True)
        lab = lab.reshape(-1).astype(np.int64)
        key = parent * (int(lab.max()) + 1) + lab
        _, codes[:, lev] = np.unique(key, return_inverse=True)
        parent = codes[:, lev]
    return codes


@dataclass(frozen=True)
class _Bucket:
    rows: np.ndarray  # (n, s) indices into the original arrays (-1 = padding)
    y: np.ndarray  # (n, s)
    v: np.ndarray  # (n, s)
    X: np.ndarray  # (n, s, p)
    Z: tuple  # per level: (n, s, q_l) or None for intercept-only
    E: tuple  # per level: (n, s, s) float same-group indicator; None at level 0


@dataclass(frozen=True)
class NestedDesign:
    """Data rearranged into batches of equally sized outermost clusters."""

    buckets: tuple
    n_obs: int
    n_coef: int
    q: tuple  # random effects per level
    codes: np.ndarray  # (k, L)
    n_groups: tuple
    logdet_xtx: float


def prepare_design(y, v, X, codes, Zlev, pad_ratio=1.6):
    """Arrange the data cluster by cluster.

    Parameters
    ----------
    y, v : ndarray (k,)
    X : ndarray (k, p)
    codes : ndarray (k, L) from :func:`encode_nested_groups`
    Zlev : list of L arrays (k, q_l) or None (None = random intercept only;
        otherwise the first column is the intercept column of ones).
    """
    k, L = codes.shape
    order = np.lexsort(codes.T[::-1])
    cl = codes[order, 0]
    starts = np.flatnonzero(np.r_[True, cl[1:] != cl[:-1]])
    sizes = np.diff(np.r_[starts, k])
    # clusters are padded up to the largest size of their bin (bins grow
    # geometrically by `pad_ratio`): padded rows have v = 1, y = 0, X = 0, Z = 0
    # and no group, so they add 0 to every log-determinant and quadratic form
    buckets = []
    usizes = np.unique(sizes)
    bins = []
    while usizes.size:
        top = usizes[-1]
        take = usizes > top / pad_ratio
        bins.append((usizes[take], top))
        usizes = usizes[~take]
    for members, s in bins:
        sel = np.isin(sizes, members)
        st, sz = starts[sel], sizes[sel]
        ar = np.arange(s)
        real = ar[None, :] < sz[:, None]
        rows = np.where(real, st[:, None] + np.minimum(ar[None, :], sz[:, None] - 1), 0)
        rows = order[rows]
        mask = real.astype(float)
        Zb, Eb = [], []
        for lev in range(L):
            if Zlev[lev] is None:
                Zb.append(None)
            else:
                Zb.append(Zlev[lev][rows] * mask[:, :, None])
            c = codes[rows, lev]
            if lev == 0:
                Eb.append(None if real.all() else mask[:, :, None] * mask[:, None, :])
            else:
                e = (
                    (c[:, :, None] == c[:, None, :])
                    & real[:, :, None]
                    & real[:, None, :]
                )
                Eb.append(e.astype(float))
        buckets.append(
            _Bucket(
                np.where(real, rows, -1),
                y[rows] * mask,
                np.where(real, v[rows], 1.0),
                X[rows] * mask[:, :, None],
                tuple(Zb),
                tuple(Eb),
            )
        )
    p = X.shape[1]
    if p:
        sign, ld = np.linalg.slogdet(X.T @ X)
        logdet_xtx = ld if sign > 0 else -np.inf
    else:
        logdet_xtx = 0.0
    q = tuple(1 if z is None else z.shape[1] for z in Zlev)
    n_groups = tuple(int(codes[:, lev].max()) + 1 for lev in range(L))
    return NestedDesign(tuple(buckets), k, p, q, codes, n_groups, float(logdet_xtx))


def _marginal_cov(b, sigmas):
    V = np.zeros((*b.y.shape, b.y.shape[1]))
    idx = np.arange(b.y.shape[1])
    V[:, idx, idx] = b.v
    for lev, S in enumerate(sigmas):
        if b.Z[lev] is None:
            term = S[0, 0]
        else:
            Zl = b.Z[lev]
            term = (Zl @ S) @ Zl.transpose(0, 2, 1)
        if b.E[lev] is None:
            V += term
        else:
            V += b.E[lev] * term
    return V


def _batched_inverse(V):
    """(log|V|, V^-1) per batch via Cholesky; None where V is not PD."""
    try:
        C = np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        return None, None
    d = np.diagonal(C, axis1=1, axis2=2)
    if np.any(d <= 0) or not np.all(np.isfinite(d)):
        return None, None
    logdet = 2.0 * np.log(d).sum()
    Ci = np.linalg.inv(C)
    Vi = Ci.transpose(0, 2, 1) @ Ci
    return logdet, Vi


def _gls_solve(xtvx, xtvy, p):
    """GLS coefficients from X'V^-1X and X'V^-1y.

    Returns ``(beta, log|X'V^-1X|, (X'V^-1X)^-1)``, or None when X'V^-1X is not
    positive definite.
    """
    if not p:
        return np.zeros(0), 0.0, np.zeros((0, 0))
    try:
        cf = linalg.cho_factor(xtvx)
    except linalg.LinAlgError:
        return None
    beta = linalg.cho_solve(cf, xtvy)
    logdet_h = 2.0 * np.log(np.diag(cf[0])).sum()
    return beta, logdet_h, linalg.cho_solve(cf, np.eye(p))


def profile_loglik(design, sigmas, reml, *, gradient=True, extras=False):
    """Profiled (restricted) log-likelihood and its gradient in the Sigma_l.

    Returns ``(ll, grads, info)``: ``grads[l] = d ll / d Sigma_l`` (q_l x q_l,
    symmetric, the derivative with respect to each element of the full matrix),
    ``info`` with ``beta``, ``xtvx`` (X^T V^-1 X) and the per-bucket inverses
    when ``extras``. ``ll = -inf`` where some V_c is not positive definite.
    """
    p, n = design.n_coef, design.n_obs
    logdet = 0.0
    xtvx = np.zeros((p, p))
    xtvy = np.zeros(p)
    ytvy = 0.0
    inv = []
    for b in design.buckets:
        ld, Vi = _batched_inverse(_marginal_cov(b, sigmas))
        if ld is None:
            return -np.inf, None, None
        logdet += ld
        Viy = (Vi @ b.y[:, :, None])[:, :, 0]
        ViX = Vi @ b.X
        Xf = b.X.reshape(-1, p)
        xtvx += Xf.T @ ViX.reshape(-1, p)
        xtvy += Xf.T @ Viy.ravel()
        ytvy += float(np.sum(b.y * Viy))
        inv.append((Vi, Viy, ViX))
    solved = _gls_solve(xtvx, xtvy, p)
    if solved is None:
        return -np.inf, None, None
    beta, logdet_h, hinv = solved
    rss = ytvy - float(beta @ xtvy)
    if reml:
        ll = -0.5 * ((n - p) * _LOG2PI + logdet + logdet_h + rss)
        ll += 0.5 * design.logdet_xtx
    else:
        ll = -0.5 * (n * _LOG2PI + logdet + rss)
    info = {"beta": beta, "xtvx": xtvx, "hinv": hinv, "rss": rss}
    if extras:
        info["inv"] = inv
    if not gradient:
        return ll, None, info
    grads = [np.zeros((q, q)) for q in design.q]
    for b, (Vi, Viy, ViX) in zip(design.buckets, inv, strict=True):
        a = Viy - ViX @ beta  # V^-1 r
        M = Vi - a[:, :, None] * a[:, None, :]
        if reml and p:
            M -= (ViX @ hinv) @ ViX.transpose(0, 2, 1)
        for lev in range(len(design.q)):
            Me = M if b.E[lev] is None else b.E[lev] * M
            if b.Z[lev] is None:
                grads[lev][0, 0] += -0.5 * Me.sum()
            else:
                Zl = b.Z[lev]
                q = Zl.shape[2]
                grads[lev] += -0.5 * (Zl.reshape(-1, q).T @ (Me @ Zl).reshape(-1, q))
    return ll, grads, info


# --------------------------------------------------------------------------
# random intercepts only: O(k) nested Woodbury recursion
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class InterceptDesign:
    """Nested random-intercept model arranged for the O(k) recursion.

    ``parent[l]`` maps each level-l group to its level-(l-1) group; ``leaf``
    maps each observation to its innermost group; ``A = [1, X, y]``.
    """

    A: np.ndarray  # (k, m) sorted by the innermost group
    AT: np.ndarray  # (m, k) the same, transposed (contiguous rows)
    leaf_P: np.ndarray  # packed a a^T per observation (singleton leaves) or
    # innermost-group sums of a a^T / v (fixed)
    v: np.ndarray  # (k,)
    leaf_starts: np.ndarray  # reduceat offsets of innermost groups in A
    parent_starts: tuple  # per level l >= 1: reduceat offsets of level-l groups
    parent: tuple  # per level l >= 1: (n_groups_l,) index of the parent group
    singleton_leaf: bool
    n_obs: int
    n_coef: int
    n_groups: tuple
    logdet_xtx: float


def prepare_intercepts(y, v, X, codes):
    """Arrange a random-intercept nested model for :func:`intercept_loglik`.

    Returns None when the recursion does not apply (some v = 0 while the
    innermost groups are not singletons); the dense path is used then.
    """
    k, L = codes.shape
    n_groups = tuple(int(codes[:, lev].max()) + 1 for lev in range(L))
    singleton = n_groups[-1] == k
    if not singleton and np.any(v <= 0):
        return None
    order = np.lexsort(codes.T[::-1])
    A = np.column_stack([np.ones(k), X, y])[order]
    leaf = codes[order, -1]
    leaf_starts = np.flatnonzero(np.r_[True, leaf[1:] != leaf[:-1]])
    parent, pstarts = [], []
    for lev in range(1, L):
        # codes are numbered in lexicographic order of the label paths, so the
        # groups of level lev are contiguous within their parents
        par = np.zeros(n_groups[lev], dtype=np.int64)
        par[codes[:, lev]] = codes[:, lev - 1]
        parent.append(par)
        pstarts.append(np.flatnonzero(np.r_[True, par[1:] != par[:-1]]))
    p = X.shape[1]
    if p:
        sign, ld = np.linalg.slogdet(X.T @ X)
        logdet_xtx = ld if sign > 0 else -np.inf
    else:
        logdet_xtx = 0.0
    iu, ju = np.triu_indices(A.shape[1])
    AT = np.ascontiguousarray(A.T)
    if singleton:
        leaf_P = AT[iu] * AT[ju]  # (m(m+1)/2, k) products a_i a_i^T, packed
    else:
        leaf_P = _group_sums(AT[iu] * (AT[ju] / v[order]), leaf_starts)
    return InterceptDesign(
        A,
        AT,
        leaf_P,
        v[order],
        leaf_starts,
        tuple(pstarts),
        tuple(parent),
        singleton,
        k,
        p,
        n_groups,
        float(logdet_xtx),
    )


def _group_sums(R, starts):
    """Sums of the columns of R (r, k) over contiguous segments -> (n_seg, r)."""
    return np.ascontiguousarray(np.add.reduceat(R, starts, axis=1).T)


def _unpack(P, m, iu, ju):
    S = np.empty((P.shape[0], m, m))
    S[:, iu, ju] = P
    S[:, ju, iu] = P
    return S


def _woodbury1(S, s2):
    """S - s2 r r^T / (1 + s2 s_0) for stacked S; returns (S_new, log(1+s2 s_0))."""
    s0 = S[:, 0, 0]
    den = 1.0 + s2 * s0
    if np.any(den <= 0):
        return None, None
    r0 = S[:, 0, :]
    return S - (s2 / den)[:, None, None] * (r0[:, :, None] * r0[:, None, :]), np.log(
        den
    )


def intercept_loglik(design, sigma2, reml, *, gradient=True, blups=False):
    """(Restricted) log-likelihood of a nested random-intercept model in O(k).

    Bottom-up, for every group g of level l (Woodbury identity with z = 1)::

        S_g = sum_children S_child - sigma2_l s s^T / (1 + sigma2_l s_0),
        log|V_g| = sum_children log|V_child| + log(1 + sigma2_l s_0),

    with S = A^T V^-1 A, A = [1, X, y], s = first row of the children's sum,
    s_0 its first element, and S_i = a_i a_i^T / v_i for observations (or
    a_i a_i^T / (v_i + sigma2_{L-1}) when the innermost groups are singletons).
    Top-down, the posterior mean operator m_g and variance P_g of the sum of the
    random intercepts of g and its ancestors::

        m_g = m_par + sigma2_l (s_g[1:] - s_g0 m_par),
        P_g = (1 - sigma2_l s_g0)^2 P_par + sigma2_l - sigma2_l^2 s_g0,

    give 1_g^T V^-1 1_g = s_g0 - s_g0^2 P_par and 1_g^T V^-1 [X, y] =
    s_g[1:] - s_g0 m_par, from which the gradient follows as in
    :func:`profile_loglik`.

    The same quantities give the BLUPs u_g = sigma2_l 1_g^T V^-1 r and their
    prediction-error SDs sqrt(sigma2_l - sigma2_l^2 1_g^T P 1_g) (``blups=True``:
    ``info["blups"]``, a list over levels of ``(u, se)`` of shape (n_groups, 1)).

    Returns ``(ll, grad (L,), info)``.
    """
    sigma2 = np.asarray(sigma2, dtype=float)
    gradient = gradient or blups
    L = sigma2.size
    A, v = design.A, design.v
    p, n = design.n_coef, design.n_obs
    m = A.shape[1]
    iu, ju = np.triu_indices(m)
    d = v + sigma2[-1] if design.singleton_leaf else v
    if np.any(d <= 0):
        return -np.inf, None, None
    logdet = float(np.log(d).sum())
    rows0 = [None] * L  # first row of S_g (after the level's update) per level
    if design.singleton_leaf:
        top = L - 2
        prods = design.leaf_P * (1.0 / d)  # packed a_i a_i^T / d_i
        if L > 1:
            P = _group_sums(prods, design.parent_starts[-1])
        else:
            P = prods.sum(axis=1)[None, :]
    else:
        top = L - 1
        P = design.leaf_P
    S = None
    for lev in range(top, -1, -1):
        S = (
            _unpack(P, m, iu, ju)
            if S is None
            else np.add.reduceat(S, design.parent_starts[lev], axis=0)
        )
        S, ld = _woodbury1(S, sigma2[lev])
        if S is None:
            return -np.inf, None, None
        logdet += float(ld.sum())
        rows0[lev] = S[:, 0, :]
    T = S.sum(axis=0) if S is not None else _unpack(P, m, iu, ju)[0]
    xtvx = T[1 : p + 1, 1 : p + 1]
    xtvy = T[1 : p + 1, -1]
    ytvy = T[-1, -1]
    solved = _gls_solve(xtvx, xtvy, p)
    if solved is None:
        return -np.inf, None, None
    beta, logdet_h, hinv = solved
    rss = float(ytvy - beta @ xtvy)
    if reml:
        ll = -0.5 * ((n - p) * _LOG2PI + logdet + logdet_h + rss)
        ll += 0.5 * design.logdet_xtx
    else:
        ll = -0.5 * (n * _LOG2PI + logdet + rss)
    info = {"beta": beta, "xtvx": xtvx, "hinv": hinv, "rss": rss}
    if not gradient:
        return ll, None, info
    grad = np.zeros(L)
    out_blups = []
    m_par = P_par = None  # posterior mean operator / variance of the parent
    for lev in range(L):
        if lev == 0:
            mp, Pp = 0.0, 0.0
        else:
            par = design.parent[lev - 1]
            Pp = P_par[par]
        if design.singleton_leaf and lev == L - 1:
            # the observations themselves, in the contiguous (m, k) layout:
            # s_0 = 1/d, s[1:] = [x, y]/d
            s0 = 1.0 / d
            bT = design.AT[1:] / d
            if lev > 0:
                bT -= m_par.T[:, par] * s0
            alpha = s0 - s0**2 * Pp
            bx = bT[:p].T
            br = bT[-1] - beta @ bT[:p]
        else:
            r0 = rows0[lev]
            if lev > 0:
                mp = m_par[par]
            s0 = r0[:, 0]
            alpha = s0 - s0**2 * Pp
            bvec = r0[:, 1:] - s0[:, None] * mp  # 1_g' V^-1 [X, y]
            bx = bvec[:, :p]
            br = bvec[:, -1] - bx @ beta
        need_quad = p and (reml or blups)
        quad = np.sum((bx @ hinv) * bx, axis=1) if need_quad else 0.0
        term = alpha - br**2
        if reml and p:
            term = term - quad
        grad[lev] = -0.5 * term.sum()
        if blups:
            s2 = sigma2[lev]
            pev = np.maximum(s2 - s2**2 * (alpha - quad), 0.0)
            out_blups.append(((s2 * br)[:, None], np.sqrt(pev)[:, None]))
        if lev < L - 1:
            s2 = sigma2[lev]
            m_par = mp + s2 * bvec
            P_par = (1.0 - s2 * s0) ** 2 * Pp + s2 - s2**2 * s0
    if blups:
        info["blups"] = out_blups
    return ll, grad, info


# --------------------------------------------------------------------------
# optimization
# --------------------------------------------------------------------------
def _split(theta, specs):
    out, i = [], 0
    for s in specs:
        out.append(theta[i : i + s.n_params])
        i += s.n_params
    return out


def _objective(theta, design, specs, reml):
    sig, jacs = [], []
    for spec, th in zip(specs, _split(theta, specs), strict=True):
        S, J = sigma_and_jac(spec, th)
        if spec.kind == "sdcorr" and spec.q > 1:
            if np.linalg.eigvalsh(S)[0] < -1e-12 * max(np.trace(S), 1e-300):
                return np.inf, np.zeros_like(theta)
        sig.append(S)
        jacs.append(J)
    if isinstance(design, InterceptDesign):
        ll, g, _ = intercept_loglik(design, np.array([S[0, 0] for S in sig]), reml)
        grads = None if g is None else [np.array([[gi]]) for gi in g]
    else:
        ll, grads, _ = profile_loglik(design, sig, reml)
    if not np.isfinite(ll):
        return np.inf, np.zeros_like(theta)
    g = np.concatenate(
        [
            np.tensordot(G, J, axes=([0, 1], [0, 1]))
            for G, J in zip(grads, jacs, strict=True)
        ]
    )
    return -ll, -g


def _starts(design, specs, y, v, X, n_starts, rng):
    """Starting values: total heterogeneity split over the levels in several ways.

    ``n_starts`` interior splits, then the boundary starts.
    """
    p = X.shape[1]
    if p:
        w = 1.0 / np.maximum(v, 1e-12 * max(np.mean(v), 1e-300) + 1e-300)
        beta = np.linalg.lstsq(X * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
        r = y - X @ beta
    else:
        r = y
    total = max(np.var(r) - np.mean(v), 0.05 * np.var(r), 1e-8)
    L = len(specs)
    shares = [np.full(L, 1.0 / L)]
    for lev in range(L):
        e = np.full(L, 0.1 / max(L - 1, 1))
        e[lev] = 0.9 if L > 1 else 1.0
        shares.append(e)
    while len(shares) < n_starts:
        shares.append(rng.dirichlet(np.ones(L)))
    shares = shares[: max(n_starts, 1)]
    # Boundary starts (a level's variance at zero, and all of them): the
    # likelihood can have an interior local maximum while the global one is on
    # the boundary (metafor's ll0check for the univariate model).
    for lev in range(L):
        if L > 1:
            e = np.full(L, 1.0 / (L - 1))
            e[lev] = 0.0
            shares.append(e)
    shares.append(np.zeros(L))
    corr_options = [0.0, 0.5, -0.5, 0.9, -0.9]
    starts = []
    for i, sh in enumerate(shares):
        th = []
        for lev, spec in enumerate(specs):
            q = spec.q
            var = sh[lev] * total
            diag = np.r_[var, np.full(q - 1, var)]  # slopes on standardized Z
            c = corr_options[i % len(corr_options)] if q > 1 else 0.0
            S = np.full((q, q), c) * np.sqrt(np.outer(diag, diag))
            S[np.diag_indices(q)] = diag
            if spec.kind == "sdcorr":
                # fixed SDs/correlations keep their values; free ones start at S
                th.append(theta_from_sigma(spec, S))
            else:
                th.append(theta_from_sigma(spec, S))
        starts.append(np.concatenate(th) if th else np.zeros(0))
    return starts


def fit_multilevel(
    y,
    v,
    X,
    codes,
    Zlev,
    structures,
    *,
    reml=True,
    max_iter=500,
    tol=1e-10,
    n_starts=6,
    random_state=0,
):
    """Fit the multilevel model by (RE)ML at the global optimum over several starts.

    The problem is first standardized (y and v by a scale c, each slope column
    of Z by its standard deviation, except at levels whose custom structure
    ties SDs of different columns) so that the optimizer works on O(1)
    parameters; the estimates are transformed back exactly. L-BFGS-B with the
    analytic gradient runs from ``n_starts`` starting points (the total
    heterogeneity split equally over the levels, then concentrated on each
    level in turn, then random splits; slope correlations 0, +-0.5, +-0.9).
    The first start runs to the working tolerance, the others only locate
    their basin (looser tolerance); the best optimum is polished when it comes
    from a basin search. All distinct local optima reached are returned
    (``optima``, best first), so that callers can see when the likelihood is
    multimodal.

    Parameters
    ----------
    y, v : ndarray of shape (k,)
        Effect sizes and sampling variances.
    X : ndarray of shape (k, p)
        Fixed-effects design (with its intercept column, if any).
    codes : ndarray of shape (k, L)
        Nested group codes from :func:`encode_nested_groups`.
    Zlev : list of L arrays (k, q_l) or None
        Random-effects design per level (first column = ones); None = random
        intercept only.
    structures : list of L structure specs (see :func:`make_cov_spec`).
    reml : bool
    max_iter : int
        Iterations per L-BFGS-B run.
    tol : float
        Relative tolerance of the final (polishing) run.
    n_starts : int
    random_state : int
        Seed of the random splits used beyond the deterministic starts.

    Returns
    -------
    dict
        ``sigmas`` (list of q_l x q_l), ``theta``, ``beta``, ``cov_beta``,
        ``loglik``, ``converged``, ``n_iter``, ``optima``, ``specs``,
        ``design`` (the original-scale dense design for random-slope models,
        None for random-intercept models) and ``blups`` (see
        :func:`random_effects_blups`).
    """
    k = y.shape[0]
    # standardization
    c = float(np.sqrt(np.var(y) + np.mean(v)))
    if not np.isfinite(c) or c <= 0:
        c = 1.0
    dlev = []
    Zs = []
    for Z in Zlev:
        if Z is None:
            dlev.append(None)
            Zs.append(None)
            continue
        d = Z.std(axis=0)
        d[0] = 1.0
        d[d <= 0] = 1.0
        spec = make_cov_spec(structures[len(dlev)], Z.shape[1])
        if spec.kind == "sdcorr":
            used = spec.sd_index[spec.sd_index >= 0]
            if used.size != np.unique(used).size:
                # SDs constrained equal across columns: keep Z's own units
                d = np.ones_like(d)
        dlev.append(d)
        Zs.append(Z / d)
    specs_s = []
    specs = []
    for lev, st in enumerate(structures):
        q = 1 if Zlev[lev] is None else Zlev[lev].shape[1]
        spec = make_cov_spec(st, q)
        specs.append(spec)
        if spec.kind == "sdcorr":
            d = np.ones(q) if dlev[lev] is None else dlev[lev]
            spec = CovSpec(
                spec.kind,
                q,
                spec.n_params,
                spec.sd_index,
                spec.sd_fixed * d / c,
                spec.corr_index,
                spec.corr_fixed,
                spec.n_sd_params,
                spec.label,
            )
        specs_s.append(spec)
    design_s = None
    if all(z is None for z in Zlev):
        design_s = prepare_intercepts(y / c, v / c**2, X, codes)
    if design_s is None:
        design_s = prepare_design(y / c, v / c**2, X, codes, Zs)
    rng = np.random.default_rng(random_state)
    starts = _starts(design_s, specs_s, y / c, v / c**2, X, n_starts, rng)
    n_interior = max(n_starts, 1)  # the rest are boundary starts
    n_par = sum(s.n_params for s in specs_s)
    results = []
    n_iter = 0
    for i, th0 in enumerate(starts):
        if n_par == 0:
            results.append(
                (float(_objective(th0, design_s, specs_s, reml)[0]), th0, True, False)
            )
            continue
        # the first start is run to the working tolerance; the others only
        # locate their basin (looser), and the best one is polished below
        opts = (
            {"maxiter": max_iter, "ftol": 1e-9, "gtol": 1e-6}
            if i == 0
            else {"maxiter": max_iter, "ftol": 1e-7, "gtol": 1e-5}
        )
        res = optimize.minimize(
            _objective,
            th0,
            args=(design_s, specs_s, reml),
            jac=True,
            method="L-BFGS-B",
            options=opts,
        )
        if not np.isfinite(res.fun):
            continue
        n_iter += int(res.nit)
        gnorm = np.max(np.abs(res.jac)) if res.jac.size else 0.0
        ok = (bool(res.success) or gnorm < 1e-5) and i == 0
        results.append((float(res.fun), res.x, ok, i >= n_interior))
    if not results:
        raise ValueError("could not find a starting point with a finite likelihood")
    results.sort(key=lambda t: t[0])
    fbest, thbest, conv, _ = results[0]
    # polish the best optimum with a tighter L-BFGS-B run when it comes from a
    # basin search or did not meet the gradient tolerance
    if n_par and not conv:
        res = optimize.minimize(
            _objective,
            thbest,
            args=(design_s, specs_s, reml),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "ftol": tol * 1e-1, "gtol": 1e-7},
        )
        n_iter += int(res.nit)
        gnorm = np.max(np.abs(res.jac)) if res.jac.size else 0.0
        if res.fun <= fbest:
            fbest, thbest = float(res.fun), res.x
        conv = bool(res.success) or gnorm < 1e-5
    # back to the original scale
    sigmas = []
    for spec, th, d in zip(specs_s, _split(thbest, specs_s), dlev, strict=True):
        S, _ = sigma_and_jac(spec, th)
        dd = np.ones(spec.q) if d is None else d
        sigmas.append(c**2 * S / np.outer(dd, dd))
    thetas = [
        theta_from_sigma_exact(spec, S, st)
        for spec, S, st in zip(specs, sigmas, _split(thbest, specs_s), strict=True)
    ]
    design = None
    shift = (k - X.shape[1] * reml) * np.log(c)
    if isinstance(design_s, InterceptDesign):
        # evaluate on the standardized design (no second O(k) copy): with
        # y/c, v/c^2 and Sigma/c^2, beta and the BLUPs scale by 1/c, the
        # covariances by 1/c^2 and the log-likelihood shifts by -shift
        ll, _, info = intercept_loglik(
            design_s, np.array([S[0, 0] for S in sigmas]) / c**2, reml, blups=True
        )
        ll = ll - shift
        info["beta"] = info["beta"] * c
        info["hinv"] = info["hinv"] * c**2
        info["blups"] = [(u * c, se * c) for u, se in info["blups"]]
    else:
        design = prepare_design(y, v, X, codes, Zlev)
        ll, _, info = profile_loglik(design, sigmas, reml, gradient=False)
        info["blups"] = random_effects_blups(design, sigmas, info["beta"], info["hinv"])
    # distinct local optima (the basin searches stop at a 1e-7 relative
    # tolerance, so close values are the same optimum); the best is polished
    # (a boundary start counts only when it gives the maximum)
    found = sorted(
        [-f - shift for f, _, _, at_bound in results if not at_bound], reverse=True
    )
    optima = [float(-fbest - shift)]
    same = max(1e-4, 1e-8 * abs(fbest))
    for val in found:
        if val < optima[-1] - same:
            optima.append(round(val, 6))
    return {
        "sigmas": sigmas,
        "theta": np.concatenate(thetas) if thetas else np.zeros(0),
        "beta": info["beta"],
        "cov_beta": info["hinv"],
        "loglik": float(ll),
        "converged": bool(conv),
        "n_iter": n_iter,
        "optima": optima,
        "specs": specs,
        "design": design,
        "blups": info["blups"],
    }


def theta_from_sigma_exact(spec, sigma, theta_scaled):
    """Parameters of the original-scale Sigma (signs of SDs dropped)."""
    if spec.kind == "unstructured":
        return theta_from_sigma(spec, sigma)
    th = np.array(theta_scaled, dtype=float)
    sd = np.sqrt(np.maximum(np.diag(sigma), 0.0))
    for a in range(spec.q):
        if spec.sd_index[a] >= 0:
            th[spec.sd_index[a]] = sd[a]
    return th


# --------------------------------------------------------------------------
# postestimation
# --------------------------------------------------------------------------
def random_effects_blups(design, sigmas, beta, hinv):
    """BLUPs of the random effects of every level, with their standard errors.

    u_hat_g = Sigma_l Z_g^T V^-1 (y - X beta); the standard error is that of the
    prediction error, sqrt(diag(Sigma_l - Sigma_l Z_g^T P Z_g Sigma_l)) with
    P = V^-1 - V^-1 X (X^T V^-1 X)^-1 X^T V^-1 (metafor's ``ranef`` convention).

    Returns a list over levels of ``(u, se)``, arrays (n_groups_l, q_l), rows
    in the order of the group codes.
    """
    out = []
    L = len(design.q)
    acc_u = [np.zeros((design.n_groups[lev], design.q[lev])) for lev in range(L)]
    acc_p = [
        np.zeros((design.n_groups[lev], design.q[lev], design.q[lev]))
        for lev in range(L)
    ]
    for b in design.buckets:
        _, Vi = _batched_inverse(_marginal_cov(b, sigmas))
        ViX = np.einsum("nij,njp->nip", Vi, b.X)
        a = np.einsum("nij,nj->ni", Vi, b.y - b.X @ beta)
        for lev in range(L):
            real = b.rows >= 0
            codes = np.where(real, design.codes[np.maximum(b.rows, 0), lev], 0)
            Z = np.ones((*b.y.shape, 1)) if b.Z[lev] is None else b.Z[lev]
            # group sums of z_i a_i
            Z = Z * real[:, :, None]
            zi_a = Z * a[:, :, None]
            np.add.at(acc_u[lev], codes.ravel(), zi_a.reshape(-1, Z.shape[2]))
            # Z_g^T P Z_g: rows i, j of group g; P = Vi - ViX H^-1 ViX^T
            P = Vi - np.einsum("nip,pq,njq->nij", ViX, hinv, ViX, optimize=True)
            Pe = P if b.E[lev] is None else b.E[lev] * P
            W = np.einsum("nij,njb->nib", Pe, Z)  # sum over j in the same group
            outer = Z[:, :, :, None] * W[:, :, None, :]
            np.add.at(
                acc_p[lev], codes.ravel(), outer.reshape(-1, Z.shape[2], Z.shape[2])
            )
    for lev in range(L):
        S = sigmas[lev]
        u = acc_u[lev] @ S
        pev = S[None] - np.einsum("ab,gbc,cd->gad", S, acc_p[lev], S)
        se = np.sqrt(np.maximum(np.diagonal(pev, axis1=1, axis2=2), 0.0))
        out.append((u, se))
    return out


def gaussian_loglik(y, v, X, codes, Zlev, sigmas, beta):
    """Log-density of y under N(X beta, V) with the nested covariance V.

    Cluster by cluster (batched Cholesky); used by ``score`` (groups not seen
    in training are new groups: their random effects are integrated out).
    """
    design = prepare_design(y, v, X, codes, Zlev)
    total = 0.0
    for b in design.buckets:
        V = _marginal_cov(b, sigmas)
        try:
            C = np.linalg.cholesky(V)
        except np.linalg.LinAlgError:
            return -np.inf
        r = b.y - b.X @ beta
        z = np.linalg.solve(C, r[:, :, None])[:, :, 0]
        d = np.diagonal(C, axis1=1, axis2=2)
        total += -0.5 * (2.0 * np.log(d).sum() + np.sum(z * z))
    return float(total - 0.5 * y.shape[0] * _LOG2PI)


def cochran_qm(y, v, X):
    """Multilevel Cochran Q_M (Stata): residual SS of the fixed-effect fit in 1/v.

    Returns (Q_M, df = n - p, p-value); None when some v is 0.
    """
    if np.any(v <= 0):
        return np.nan, y.shape[0] - X.shape[1], np.nan
    w = 1.0 / v
    if X.shape[1]:
        sw = np.sqrt(w)
        beta = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]
        r = y - X @ beta
    else:
        r = y
    qm = float(np.sum(w * r**2))
    df = y.shape[0] - X.shape[1]
    return qm, df, float(stats.chi2.sf(qm, df)) if df > 0 else np.nan


def i2_multilevel(v, X, sigma2, qm, df):
    """Cochran's I^2_Q and the Higgins-Thompson per-level and total I^2 (in %).

    Cochran: I^2_Q = max(0, (Q_M - df) / Q_M). Higgins-Thompson (Nakagawa and
    Santos 2012): I^2_l = sigma^2_l / (sum_l sigma^2_l + v_typ), with the
    "typical" sampling variance v_typ = (n - p) / tr(P_FE), P_FE = W - W X
    (X^T W X)^-1 X^T W, W = diag(1/v) (Higgins and Thompson 2002; metafor's
    I^2 for rma.uni). Returns a dict with ``"cochran"``, ``"levels"`` (array)
    and ``"total"``.
    """
    sigma2 = np.asarray(sigma2, dtype=float)
    if np.any(v <= 0):
        return {
            "cochran": np.nan,
            "levels": np.full(sigma2.shape, np.nan),
            "total": np.nan,
            "typical_v": np.nan,
        }
    w = 1.0 / v
    if X.shape[1]:
        XtWX = X.T @ (X * w[:, None])
        WX = X * w[:, None]
        tr = w.sum() - np.trace(np.linalg.solve(XtWX, WX.T @ WX))
    else:
        tr = w.sum()
    vt = df / tr
    tot = sigma2.sum()
    levels = 100.0 * sigma2 / (tot + vt)
    coch = 100.0 * max(0.0, (qm - df) / qm) if qm > 0 else 0.0
    return {
        "cochran": coch,
        "levels": levels,
        "total": 100.0 * tot / (tot + vt),
        "typical_v": vt,
    }


def profile_ci(
    y,
    v,
    X,
    codes,
    Zlev,
    structures,
    level,
    fit,
    *,
    reml=True,
    confidence_level=0.95,
    max_iter=500,
):
    """Profile-likelihood CI for the random-intercept variance of one level.

    The level's intercept variance sigma2_l is fixed on a grid and the other
    parameters re-maximized; the bounds solve 2 (ll_max - ll_p(sigma2_l)) =
    chi2_1(confidence_level) (Brent's method). Only for levels whose structure
    parametrizes the intercept SD by a parameter of its own ("independent" or
    a custom free SD, q_l = 1 for "identity"/"unstructured").
    """
    crit = stats.chi2.ppf(confidence_level, 1) / 2.0
    llmax = fit["loglik"]
    specs = fit["specs"]
    design = fit["design"]
    offs = np.cumsum([0] + [s.n_params for s in specs])
    spec = specs[level]
    if spec.kind == "unstructured":
        if spec.q != 1:
            raise ValueError("profile CI needs a level with its own intercept SD")
        idx = offs[level]
    else:
        i = spec.sd_index[0]
        if i < 0:
            raise ValueError("the intercept SD of this level is fixed")
        if np.sum(spec.sd_index == i) > 1:
            raise ValueError("the intercept SD is shared with other random effects")
        idx = offs[level] + i
    theta_hat = fit["theta"].copy()

    def prof(sd):
        free = np.ones(theta_hat.size, dtype=bool)
        free[idx] = False

        def obj(t):
            th = theta_hat.copy()
            th[free] = t
            th[idx] = sd
            f, g = _objective(th, design, specs, reml)
            return f, g[free]

        if free.sum() == 0:
            return -obj(np.zeros(0))[0]
        best = np.inf
        th0 = theta_hat[free]
        res = optimize.minimize(
            obj,
            th0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "ftol": 1e-14, "gtol": 1e-10},
        )
        best = res.fun
        return -best

    sd_hat = abs(theta_hat[idx])
    g = lambda sd: llmax - prof(sd) - crit
    if g(0.0) <= 0:
        lo = 0.0
    else:
        lo = optimize.brentq(g, 0.0, sd_hat, xtol=1e-10) if sd_hat > 0 else 0.0
    hi_b = max(sd_hat, 1e-3) * 2.0
    it = 0
    while g(hi_b) < 0 and it < 60:
        hi_b *= 2.0
        it += 1
    hi = optimize.brentq(g, sd_hat, hi_b, xtol=1e-10)
    return lo**2, hi**2
