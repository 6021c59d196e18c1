"""Parametrizations of a multilevel model's random-effects covariance matrices.

Every level l of a multilevel model has a (q_l x q_l) covariance matrix Sigma_l of
its random intercept and slopes. The optimizer works on a parameter vector theta
that keeps every Sigma_l positive semi-definite:

* ``"unstructured"``: Sigma = L L^T with L lower triangular (a plain Cholesky
  factor rather than log-Cholesky, so that boundary solutions, e.g. a variance of
  exactly 0 or a correlation of exactly 1, are reached exactly); the diagonal of
  L is bounded below by 0;
* ``"independent"``, ``"identity"``, ``"exchangeable"`` and custom matrices:
  standard deviations s >= 0 (Sigma_aa = s_a^2) and correlations
  rho = tanh(kappa), with fixed values and equality labels (Stata's
  ``covariance(custom)``); a Sigma that is not positive semi-definite is
  inadmissible (the caller gives it likelihood -inf);
* a level with a random intercept only (q = 1, any structure): its variance
  sigma^2 >= 0 itself (kind ``"variance"``). Unlike an SD, whose derivative
  vanishes at 0 whatever the data (a spurious stationary point on the
  boundary), the variance has a one-signed derivative there, so the bound is a
  Karush-Kuhn-Tucker point exactly when the likelihood decreases into the
  interior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CovSpec",
    "make_cov_spec",
    "parameter_bounds",
    "sigma_and_jac",
    "theta_from_sigma",
]

#: Correlations of a start are clipped to +-this value so that their tanh
#: parametrization starts at a finite, well-conditioned point.
_START_CORR_LIMIT = 0.95


@dataclass(frozen=True)
class CovSpec:
    """Parametrization of one level's (q x q) random-effects covariance matrix.

    ``kind`` is ``"unstructured"`` (Cholesky factor), ``"variance"`` (q = 1: the
    variance) or ``"sdcorr"`` (standard deviations and correlations). For
    ``"sdcorr"``: ``sd_index[a]`` is the
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

    def scaled(self, sd_scale):
        """The same structure with the fixed SDs multiplied by ``sd_scale`` (q,)."""
        if self.kind != "sdcorr":
            return self
        return CovSpec(
            self.kind,
            self.q,
            self.n_params,
            self.sd_index,
            self.sd_fixed * sd_scale,
            self.corr_index,
            self.corr_fixed,
            self.n_sd_params,
            self.label,
        )

    @property
    def ties_sds(self):
        """Whether some SD parameter is shared by several random effects."""
        if self.kind != "sdcorr":
            return False
        used = self.sd_index[self.sd_index >= 0]
        return used.size != np.unique(used).size

    def intercept_parameter(self):
        """``(index, is_variance)`` of the parameter that is the intercept's SD
        (or variance) alone, or None."""
        if self.kind == "variance":
            return 0, True
        if self.kind == "unstructured":
            return None
        i = int(self.sd_index[0])
        if i < 0 or np.sum(self.sd_index == i) > 1:
            return None
        return i, False


def _is_free(value):
    return value is None or (isinstance(value, float | np.floating) and np.isnan(value))


def _custom_matrix(structure, q):
    """The (q, q) object matrix of a named structure (labels, NaN = free)."""
    if structure == "independent":
        diag, off = [np.nan] * q, 0.0
    elif structure == "identity":
        diag, off = ["sd"] * q, 0.0
    elif structure == "exchangeable":
        diag, off = ["sd"] * q, "rho"
    else:
        raise ValueError(
            "covariance must be 'independent', 'identity', 'exchangeable', "
            f"'unstructured' or a (q, q) custom matrix; got {structure!r}"
        )
    custom = np.empty((q, q), dtype=object)
    custom[:] = off
    for a in range(q):
        custom[a, a] = diag[a]
    return custom


def _same_entry(val, other):
    if isinstance(val, str) or isinstance(other, str):
        return isinstance(val, str) and isinstance(other, str) and val == other
    if _is_free(val) or _is_free(other):
        return _is_free(val) and _is_free(other)
    return float(val) == float(other)


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

    Returns
    -------
    CovSpec
    """
    if isinstance(structure, str):
        if structure not in ("unstructured", "independent", "identity", "exchangeable"):
            _custom_matrix(structure, q)  # raises the error naming the options
        if q == 1:
            return _variance_spec(structure.capitalize())
        if structure == "unstructured":
            return CovSpec("unstructured", q, q * (q + 1) // 2, label="Unstructured")
        custom = _custom_matrix(structure, q)
        label = structure.capitalize()
    else:
        custom = np.asarray(structure, dtype=object)
        if custom.shape != (q, q):
            raise ValueError(
                f"covariance: a custom matrix at this level must have shape ({q}, {q}) "
                f"(intercept + {q - 1} random slope(s)); got shape {custom.shape}"
            )
        label = "Custom"
        entry = custom[0, 0] if q == 1 else None
        if q == 1 and (_is_free(entry) or isinstance(entry, str)):
            return _variance_spec(label)
    sd_index, sd_fixed, labels = _sd_parameters(custom, q)
    n_sd = len(labels)
    corr_index, corr_fixed = _correlation_parameters(custom, q, labels)
    return CovSpec(
        "sdcorr",
        q,
        len(labels),
        sd_index,
        sd_fixed,
        corr_index,
        corr_fixed,
        n_sd,
        label,
    )


def _sd_parameters(custom, q):
    """Parameter index (-1 = fixed) and fixed value of every SD of a custom
    matrix, and the labels dict (label or position -> parameter index)."""
    sd_index = np.full(q, -1)
    sd_fixed = np.zeros(q)
    labels = {}
    for a in range(q):
        val = custom[a, a]
        if isinstance(val, str) or _is_free(val):
            key = ("d", val) if isinstance(val, str) else ("free", a)
            sd_index[a] = labels.setdefault(key, len(labels))
            continue
        val = float(val)
        if not np.isfinite(val) or val < 0:
            raise ValueError(f"covariance: a fixed SD must be >= 0; got {val}")
        sd_fixed[a] = val
    return sd_index, sd_fixed, labels


def _correlation_parameters(custom, q, labels):
    """Parameter index (-1 = fixed) and fixed value of every correlation;
    adds the correlation parameters to ``labels``."""
    corr_index = np.full((q, q), -1)
    corr_fixed = np.eye(q)
    for a in range(q):
        for b in range(a):
            val, other = custom[a, b], custom[b, a]
            if not _same_entry(val, other):
                raise ValueError(
                    "covariance: a custom matrix must be symmetric "
                    f"(entries [{a}, {b}] and [{b}, {a}] differ)"
                )
            if isinstance(val, str) or _is_free(val):
                key = ("c", val) if isinstance(val, str) else ("free", a, b)
                corr_index[a, b] = corr_index[b, a] = labels.setdefault(
                    key, len(labels)
                )
                continue
            val = float(val)
            if not -1.0 <= val <= 1.0:
                raise ValueError(
                    f"covariance: a fixed correlation must be in [-1, 1]; got {val}"
                )
            corr_fixed[a, b] = corr_fixed[b, a] = val
    return corr_index, corr_fixed


def _variance_spec(label):
    return CovSpec(
        "variance",
        1,
        1,
        np.zeros(1, dtype=int),
        np.zeros(1),
        np.full((1, 1), -1),
        np.eye(1),
        1,
        label,
    )


def parameter_bounds(spec):
    """Box constraints (lower, upper) of the parameters: SDs and the diagonal of
    the Cholesky factor are >= 0, correlations (tanh scale) are free."""
    lower = np.full(spec.n_params, -np.inf)
    if spec.kind == "unstructured":
        rows, cols = np.tril_indices(spec.q)
        lower[rows == cols] = 0.0
    else:
        lower[: spec.n_sd_params] = 0.0
    return lower, np.full(spec.n_params, np.inf)


def sigma_and_jac(spec, theta):
    """Sigma (q, q) and its Jacobian d Sigma / d theta (q, q, n_params)."""
    q = spec.q
    theta = np.asarray(theta, dtype=float)
    if spec.kind == "variance":
        return theta.reshape(1, 1).copy(), np.ones((1, 1, 1))
    jac = np.zeros((q, q, spec.n_params))
    if spec.kind == "unstructured":
        L = np.zeros((q, q))
        rows, cols = np.tril_indices(q)
        L[rows, cols] = theta
        for k, (i, j) in enumerate(zip(rows, cols, strict=True)):
            # d(L L^T) / d L_ij = e_i (L e_j)^T + (L e_j) e_i^T
            jac[i, :, k] += L[:, j]
            jac[:, i, k] += L[:, j]
        return L @ L.T, jac
    sd = spec.sd_fixed.copy()
    free = spec.sd_index >= 0
    sd[free] = theta[spec.sd_index[free]]
    rho = spec.corr_fixed.copy()
    cfree = spec.corr_index >= 0
    rho[cfree] = np.tanh(theta[spec.corr_index[cfree]])
    for a in range(q):
        ia = spec.sd_index[a]
        if ia >= 0:
            # d (rho_ab s_a s_b) / d s_a for every b (diagonal: 2 s_a)
            jac[a, :, ia] += rho[a] * sd
            jac[:, a, ia] += rho[:, a] * sd
        for b in range(a):
            ic = spec.corr_index[a, b]
            if ic >= 0:
                d = (1.0 - rho[a, b] ** 2) * sd[a] * sd[b]
                jac[a, b, ic] += d
                jac[b, a, ic] += d
    return rho * np.outer(sd, sd), jac


def theta_from_sigma(spec, sigma):
    """Parameters reproducing (as nearly as the structure allows) a given Sigma.

    Used for starting values and to map a fitted Sigma to another scale:
    shared parameters get the mean of their entries, correlations of a start are
    clipped to +-0.95.
    """
    sigma = np.asarray(sigma, dtype=float)
    if spec.kind == "variance":
        return np.array([max(float(sigma[0, 0]), 0.0)])
    if spec.kind == "unstructured":
        w, U = np.linalg.eigh(sigma)
        w = np.maximum(w, 0.0)
        # the Cholesky factor of the PSD part, via QR of its symmetric square
        # root (exact at a boundary, where Cholesky itself fails)
        _, r = np.linalg.qr((U * np.sqrt(w)) @ U.T)
        L = r.T * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]
        L = np.where(np.isfinite(L), L, 0.0)
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
                r = np.clip(r, -_START_CORR_LIMIT, _START_CORR_LIMIT)
                theta[spec.corr_index[a, b]] += np.arctanh(r)
                counts[spec.corr_index[a, b]] += 1
    return theta / np.maximum(counts, 1)
