"""Tests of the cluster-robust (sandwich) covariance engine.

Reference numbers come from metafor's ``robust()`` (CR0/CR1) and
``robust(..., clubSandwich = TRUE)`` (CR2, Satterthwaite, HTZ), written by
``tests/reference/make_sandwich.R`` to ``tests/reference/sandwich.json``; the
published values of metafor's own ``test_misc_robust.r`` are checked separately.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from skmeta._engine._sandwich import (
    cluster_codes,
    cluster_robust_covariance,
    cluster_robust_diagonal,
    cluster_wald_test,
    contrast_dof,
    htz_wald_test,
    whiten_diagonal,
)

REF = json.loads((Path(__file__).parent / "reference" / "sandwich.json").read_text())
CASES = REF["cases"]
UNIVARIATE = [name for name, c in CASES.items() if "tau2" in c]

#: metafor/clubSandwich and we evaluate the same closed forms at the same tau2;
#: differences are rounding only (observed <= 2e-10), so 1e-6 is far from loose.
RTOL = 1e-6


def _design(case):
    y = np.asarray(case["yi"], dtype=float)
    X = np.asarray(case["X"], dtype=float).reshape(y.size, -1)
    return X, y, np.asarray(case["vi"], dtype=float)


def _whitened(case):
    """WLS at metafor's tau2 with w = 1/(vi + tau2), whitened."""
    X, y, v = _design(case)
    w = 1.0 / (v + case["tau2"])
    beta = np.linalg.solve(X.T @ (X * w[:, None]), X.T @ (w * y))
    Xt, et, metric = whiten_diagonal(X, y - X @ beta, w)
    return beta, Xt, et, metric


def _fit(case, kind):
    beta, Xt, et, metric = _whitened(case)
    codes, J = cluster_codes(case["cluster"])
    res = cluster_robust_covariance(
        Xt, et, codes, J, kind, metric=metric if kind == "cr2" else None
    )
    return beta, res


def _btt(ref):
    return np.atleast_1d(np.asarray(ref["btt"], dtype=int)) - 1


@pytest.mark.parametrize("kind", ["cr0", "cr1", "cr2"])
@pytest.mark.parametrize("name", UNIVARIATE)
def test_sandwich_matches_metafor_robust(name, kind):
    case = CASES[name]
    ref = case[kind]
    beta, res = _fit(case, kind)
    p = beta.size
    np.testing.assert_allclose(beta, case["beta"], rtol=RTOL)
    assert res.kind == kind
    assert res.n_clusters == case["n_clusters"]
    np.testing.assert_allclose(
        res.cov, np.reshape(ref["vcov"], (p, p)), rtol=RTOL, atol=0
    )
    np.testing.assert_allclose(np.sqrt(np.diag(res.cov)), ref["se"], rtol=RTOL)
    np.testing.assert_allclose(res.dof, np.broadcast_to(ref["dfs"], p), rtol=RTOL)
    test = cluster_wald_test(res, beta, _btt(ref))
    assert test.test == ("HTZ" if kind == "cr2" else "F")
    np.testing.assert_allclose(test.statistic, ref["QM"], rtol=RTOL)
    np.testing.assert_allclose([test.df_num, test.df_denom], ref["QMdf"], rtol=RTOL)
    np.testing.assert_allclose(test.p_value, ref["QMp"], rtol=RTOL)


@pytest.mark.parametrize("kind", ["cr0", "cr1", "cr2"])
def test_cluster_robust_diagonal_matches_metafor(kind):
    # unbalanced clusters with unequal weights: CR2 depends on the metric here
    case = CASES["assink_study_deltype_year"]
    X, y, v = _design(case)
    w = 1.0 / (v + case["tau2"])
    beta = np.linalg.solve(X.T @ (X * w[:, None]), X.T @ (w * y))
    codes, J = cluster_codes(case["cluster"])
    res = cluster_robust_diagonal(X, y - X @ beta, w, codes, J, kind)
    p = beta.size
    np.testing.assert_allclose(
        res.cov, np.reshape(case[kind]["vcov"], (p, p)), rtol=RTOL
    )
    np.testing.assert_allclose(
        res.dof, np.broadcast_to(case[kind]["dfs"], p), rtol=RTOL
    )
    if kind == "cr2":
        # the whitened-symmetric variant (metric=None) is a different estimator
        Xt, et, _ = whiten_diagonal(X, y - X @ beta, w)
        sym = cluster_robust_covariance(Xt, et, codes, J, "cr2")
        assert not np.allclose(sym.cov, res.cov, rtol=1e-3)


def test_sandwich_published_bcg_numbers():
    # metafor tests/testthat/test_misc_robust.r, to the digits printed there
    case = CASES["bcg_trial_intercept"]
    beta, cr1 = _fit(case, "cr1")
    _, cr0 = _fit(case, "cr0")
    _, cr2 = _fit(case, "cr2")
    np.testing.assert_allclose(cr1.cov[0, 0], 0.032106, rtol=2e-5)
    assert cr1.dof[0] == 12
    np.testing.assert_allclose(beta[0] / np.sqrt(cr1.cov[0, 0]), -3.98776, rtol=1e-6)
    np.testing.assert_allclose(cr0.cov[0, 0], 0.029636, rtol=2e-5)
    np.testing.assert_allclose(beta[0] / np.sqrt(cr0.cov[0, 0]), -4.150592, rtol=1e-6)
    np.testing.assert_allclose(cr2.cov[0, 0], 0.03229357, rtol=1e-6)
    np.testing.assert_allclose(cr2.dof[0], 11.04125, rtol=1e-6)
    np.testing.assert_allclose(beta[0] / np.sqrt(cr2.cov[0, 0]), -3.97616, rtol=2e-6)

    case = CASES["bcg_trial_ablat_year"]
    beta, cr1 = _fit(case, "cr1")
    np.testing.assert_allclose(
        np.sqrt(np.diag(cr1.cov)), [23.910483, 0.007857, 0.012079], rtol=5e-5
    )
    np.testing.assert_array_equal(cr1.dof, [10, 10, 10])
    np.testing.assert_allclose(
        cluster_wald_test(cr1, beta, [1, 2]).statistic, 11.8546, rtol=1e-5
    )
    beta, cr2 = _fit(case, "cr2")
    np.testing.assert_allclose(
        np.sqrt(np.diag(cr2.cov)), [33.655367, 0.011994, 0.016963], rtol=5e-5
    )
    np.testing.assert_allclose(cr2.dof, [2.724625, 2.112895, 2.745919], rtol=1e-6)
    test = htz_wald_test(cr2, beta, [1, 2])
    np.testing.assert_allclose(test.statistic, 6.708996, rtol=1e-6)
    np.testing.assert_allclose([test.df_num, test.df_denom], [2, 2.528214], rtol=1e-6)
    np.testing.assert_allclose(test.p_value, 0.097479, rtol=1e-5)


def test_sandwich_block_diagonal_whitening_matches_clubsandwich_rma_mv():
    # three-level model: working weights block-diagonal by district. Whitening
    # with L_j = chol(M_j)^{-1} (M_j = W_j^{-1}) and metric K_j^{-1} = R_j R_j^T
    # (R_j upper Cholesky factor of M_j) reproduces clubSandwich's CR2 for rma.mv.
    case = CASES["konstantopoulos_mv_district_intercept"]
    X, y, v = _design(case)
    s1, s2 = case["sigma2"]
    codes, J = cluster_codes(case["cluster"])
    Xt, yt, blocks = np.empty_like(X), np.empty_like(y), []
    for j in range(J):
        idx = np.flatnonzero(codes == j)
        Mj = np.diag(v[idx]) + s1 + s2 * np.eye(idx.size)
        L = np.linalg.cholesky(Mj)  # L L^T = M_j, R_j = L^T
        Xt[idx] = np.linalg.solve(L, X[idx])
        yt[idx] = np.linalg.solve(L, y[idx])
        blocks.append(L.T @ L)
    beta = np.linalg.lstsq(Xt, yt, rcond=None)[0]
    np.testing.assert_allclose(beta, case["beta"], rtol=RTOL)
    et = yt - Xt @ beta
    for kind in ("cr0", "cr1", "cr2"):
        ref = case[kind]
        res = cluster_robust_covariance(
            Xt, et, codes, J, kind, metric=blocks if kind == "cr2" else None
        )
        np.testing.assert_allclose(res.cov.ravel(), np.ravel(ref["vcov"]), rtol=RTOL)
        np.testing.assert_allclose(res.dof, np.atleast_1d(ref["dfs"]), rtol=RTOL)
        test = cluster_wald_test(res, beta, [0])
        np.testing.assert_allclose(test.statistic, ref["QM"], rtol=RTOL)
        np.testing.assert_allclose(test.df_denom, ref["QMdf"][1], rtol=RTOL)
        np.testing.assert_allclose(test.p_value, ref["QMp"], rtol=RTOL)


def _random_problem(rng, sizes, p=2):
    codes = np.repeat(np.arange(len(sizes)), sizes)
    k = codes.size
    X = np.column_stack([np.ones(k), rng.normal(size=(k, p - 1))])
    w = rng.uniform(0.3, 3.0, size=k)
    y = X @ rng.normal(size=p) + rng.normal(size=k) / np.sqrt(w)
    beta = np.linalg.solve(X.T @ (X * w[:, None]), X.T @ (w * y))
    Xt, et, metric = whiten_diagonal(X, y - X @ beta, w)
    return beta, Xt, et, metric, codes, len(sizes)


def test_cr1_with_singleton_clusters_is_hc1():
    rng = np.random.default_rng(1)
    _, Xt, et, _, codes, J = _random_problem(rng, [1] * 15, p=3)
    res = cluster_robust_covariance(Xt, et, codes, J, "cr1")
    k, p = Xt.shape
    M = np.linalg.inv(Xt.T @ Xt)
    hc1 = k / (k - p) * M @ (Xt.T @ np.diag(et**2) @ Xt) @ M
    np.testing.assert_allclose(res.cov, hc1, rtol=1e-12)
    np.testing.assert_array_equal(res.dof, np.full(p, k - p))


@pytest.mark.parametrize("kind", ["cr0", "cr1", "cr2"])
def test_sandwich_invariant_to_labels_and_row_order(kind):
    rng = np.random.default_rng(2)
    sizes = [1, 3, 2, 5, 1, 4, 2, 3]
    beta, Xt, et, metric, codes, J = _random_problem(rng, sizes, p=3)
    base = cluster_robust_covariance(Xt, et, codes, J, kind, metric=metric)
    labels = np.array(["d", "b", "a", "h", "c", "e", "g", "f"])[codes]
    perm = rng.permutation(codes.size)
    for groups in (labels, codes * 7 + 100, labels.astype(object)):
        c2, J2 = cluster_codes(groups[perm])
        res = cluster_robust_covariance(
            Xt[perm], et[perm], c2, J2, kind, metric=metric[perm]
        )
        np.testing.assert_allclose(res.cov, base.cov, rtol=1e-10)
        np.testing.assert_allclose(res.dof, base.dof, rtol=1e-10)
        t1 = cluster_wald_test(base, beta, [1, 2])
        t2 = cluster_wald_test(res, beta, [1, 2])
        np.testing.assert_allclose(t2[:4], t1[:4], rtol=1e-10)


def test_cr2_is_unbiased_under_working_model():
    # V is a quadratic form in e_tilde = (I - H) eps with E[eps eps^T] = I, so
    # E[V] = sum_i V((I - H) u_i) over unit vectors u_i, which must equal
    # M = (X'WX)^{-1} for CR2 (Bell & McCaffrey's defining property), whatever the
    # metric; CR0 is biased downwards.
    rng = np.random.default_rng(3)
    _, Xt, _, metric, codes, J = _random_problem(rng, [2, 3, 1, 4, 2, 3], p=2)
    k = Xt.shape[0]
    M = np.linalg.inv(Xt.T @ Xt)
    IH = np.eye(k) - Xt @ M @ Xt.T
    for met in (metric, None):
        EV = sum(
            cluster_robust_covariance(Xt, IH[:, i], codes, J, "cr2", metric=met).cov
            for i in range(k)
        )
        np.testing.assert_allclose(EV, M, rtol=1e-10)
    EV0 = sum(
        cluster_robust_covariance(Xt, IH[:, i], codes, J, "cr0").cov for i in range(k)
    )
    assert np.all(np.diag(EV0) < np.diag(M))


def test_satterthwaite_dof_matches_dense_computation():
    # Build the k x k quadratic form B with c'Vc = e'Be by polarization, then
    # A = (I - H) B (I - H) and nu = tr(A)^2 / tr(A^2): independent of the
    # p x p reduction used by contrast_dof.
    rng = np.random.default_rng(4)
    _, Xt, _, metric, codes, J = _random_problem(rng, [3, 1, 2, 4, 2, 1, 3], p=2)
    k = Xt.shape[0]
    M = np.linalg.inv(Xt.T @ Xt)
    IH = np.eye(k) - Xt @ M @ Xt.T
    c = np.array([0.3, -1.2])

    def quad(e):
        cov = cluster_robust_covariance(Xt, e, codes, J, "cr2", metric=metric).cov
        return c @ cov @ c

    eye = np.eye(k)
    diag = np.array([quad(eye[a]) for a in range(k)])
    B = np.diag(diag)
    for a in range(k):
        for b in range(a + 1, k):
            B[a, b] = B[b, a] = (quad(eye[a] + eye[b]) - diag[a] - diag[b]) / 2
    A = IH @ B @ IH
    nu = np.trace(A) ** 2 / np.trace(A @ A)
    res = cluster_robust_covariance(Xt, IH[:, 0], codes, J, "cr2", metric=metric)
    np.testing.assert_allclose(contrast_dof(res, c), [nu], rtol=1e-9)
    # unit contrasts give the per-coefficient dof
    np.testing.assert_allclose(contrast_dof(res, np.eye(2)), res.dof, rtol=1e-12)


def test_metric_irrelevant_when_weights_constant_within_clusters():
    rng = np.random.default_rng(5)
    sizes = [2, 3, 1, 4, 2, 3]
    codes = np.repeat(np.arange(len(sizes)), sizes)
    k = codes.size
    X = np.column_stack([np.ones(k), rng.normal(size=k)])
    w = rng.uniform(0.3, 3.0, size=len(sizes))[codes]
    Xt, et, metric = whiten_diagonal(X, rng.normal(size=k), w)
    a = cluster_robust_covariance(Xt, et, codes, 6, "cr2", metric=metric)
    b = cluster_robust_covariance(Xt, et, codes, 6, "cr2")
    np.testing.assert_allclose(a.cov, b.cov, rtol=1e-10)
    np.testing.assert_allclose(a.dof, b.dof, rtol=1e-10)


def test_cr2_identity_metric_invariant_to_whitening_rotation():
    rng = np.random.default_rng(6)
    _, Xt, et, _, codes, J = _random_problem(rng, [3, 2, 4, 2, 3], p=2)
    base = cluster_robust_covariance(Xt, et, codes, J, "cr2")
    Xr, er = Xt.copy(), et.copy()
    for j in range(J):
        idx = np.flatnonzero(codes == j)
        Q = np.linalg.qr(rng.normal(size=(idx.size, idx.size)))[0]
        Xr[idx], er[idx] = Q @ Xt[idx], Q @ et[idx]
    res = cluster_robust_covariance(Xr, er, codes, J, "cr2")
    np.testing.assert_allclose(res.cov, base.cov, rtol=1e-10)
    np.testing.assert_allclose(res.dof, base.dof, rtol=1e-10)


def test_htz_single_constraint_is_squared_t_with_satterthwaite_dof():
    case = CASES["assink_study_deltype_year"]
    beta, res = _fit(case, "cr2")
    for j in range(beta.size):
        test = htz_wald_test(res, beta, [j])
        np.testing.assert_allclose(test.statistic, beta[j] ** 2 / res.cov[j, j])
        np.testing.assert_allclose(test.df_denom, res.dof[j], rtol=1e-10)
    # a constraint matrix equals its index form, and scaling rows changes nothing
    a = htz_wald_test(res, beta, [1, 3])
    C = np.zeros((2, beta.size))
    C[0, 1], C[1, 3] = 2.0, -0.5
    b = htz_wald_test(res, beta, C)
    np.testing.assert_allclose(b[:4], a[:4], rtol=1e-10)


def test_cluster_codes_label_types():
    codes, J = cluster_codes(["b", "a", "b", "c"])
    np.testing.assert_array_equal(codes, [1, 0, 1, 2])
    assert J == 3
    codes, J = cluster_codes([10, 3, 10])
    np.testing.assert_array_equal(codes, [1, 0, 1])
    codes, J = cluster_codes(np.array([1, "x", 1, (2, 3)], dtype=object))
    assert J == 3 and codes[0] == codes[2] and len(set(codes.tolist())) == 3
    with pytest.raises(ValueError, match="groups"):
        cluster_codes([1.0, np.nan])
    with pytest.raises(ValueError, match="groups"):
        cluster_codes(np.array(["a", None], dtype=object))
    with pytest.raises(ValueError, match="groups"):
        cluster_codes(np.zeros((3, 2)))


@pytest.mark.parametrize("kind", ["cr0", "cr1", "cr2"])
def test_too_few_clusters_raises(kind):
    rng = np.random.default_rng(7)
    _, Xt, et, metric, codes, J = _random_problem(rng, [3, 4, 2], p=3)
    with pytest.raises(ValueError, match="n_clusters=3 <= p=3"):
        cluster_robust_covariance(Xt, et, codes, J, kind, metric=metric)


def test_bad_input_raises():
    rng = np.random.default_rng(8)
    _, Xt, et, metric, codes, J = _random_problem(rng, [3, 4, 2, 2], p=2)
    with pytest.raises(ValueError, match="kind"):
        cluster_robust_covariance(Xt, et, codes, J, "cr3")
    with pytest.raises(ValueError, match="e_tilde"):
        cluster_robust_covariance(Xt, et[:-1], codes, J)
    with pytest.raises(ValueError, match="codes"):
        cluster_robust_covariance(Xt, et, codes.astype(float), J)
    with pytest.raises(ValueError, match="n_clusters"):
        cluster_robust_covariance(Xt, et, codes, J + 1)
    with pytest.raises(ValueError, match="rank-deficient"):
        cluster_robust_covariance(np.column_stack([Xt, Xt[:, 0]]), et, codes, J)
    with pytest.raises(ValueError, match="metric"):
        cluster_robust_covariance(Xt, et, codes, J, "cr2", metric=-metric)
    res = cluster_robust_covariance(Xt, et, codes, J, "cr1")
    with pytest.raises(ValueError, match="cr2"):
        htz_wald_test(res, np.zeros(2), [1])
    with pytest.raises(ValueError, match="constraints"):
        cluster_wald_test(res, np.zeros(2), [5])


# --------------------------------------------------------------------------- #
# Large clusters: quadrature for G_j^{-1/2} Q_j instead of an eigendecomposition
# --------------------------------------------------------------------------- #
def _large_clusters(seed, sizes, dummy=False, spread=20.0):
    r = np.random.default_rng(seed)
    k = sum(sizes)
    codes = np.repeat(np.arange(len(sizes)), sizes)
    X = np.column_stack([np.ones(k), r.normal(size=(k, 2))])
    if dummy:  # a moderator that only cluster 0 has: a singular CR2 block
        X = np.column_stack([X, (codes == 0) * r.normal(size=k)])
    w = 1.0 / np.exp(r.uniform(0.0, np.log(spread), k))
    y = X @ np.full(X.shape[1], 0.2) + r.normal(size=k) / np.sqrt(w)
    beta = np.linalg.solve(X.T @ (X * w[:, None]), X.T @ (w * y))
    return X, y - X @ beta, w, codes


def _cr2_with_eigendecompositions(monkeypatch, *args):
    from skmeta._engine import _sandwich

    with monkeypatch.context() as m:
        m.setattr(_sandwich, "_QUADRATURE_MIN_SIZE", 10**9)
        return cluster_robust_diagonal(*args, kind="cr2")


@pytest.mark.parametrize("dummy", [False, True])
def test_cr2_quadrature_equals_the_eigendecomposition(monkeypatch, dummy):
    """Clusters of 300, 150 and 80 rows take the quadrature (the singular block of
    a cluster-specific dummy falls back to the eigendecomposition, whose
    pseudo-inverse clubSandwich uses); covariance, Satterthwaite df and HTZ agree
    with the all-eigendecomposition path to rounding."""
    X, resid, w, codes = _large_clusters(4, [300, 150, 80, 80, 2, 1], dummy=dummy)
    J = 6
    fast = cluster_robust_diagonal(X, resid, w, codes, J, kind="cr2")
    exact = _cr2_with_eigendecompositions(monkeypatch, X, resid, w, codes, J)
    np.testing.assert_allclose(fast.cov, exact.cov, rtol=1e-11, atol=0)
    np.testing.assert_allclose(fast.dof, exact.dof, rtol=1e-11)
    index = np.arange(1, X.shape[1])
    assert htz_wald_test(fast, np.zeros(X.shape[1]), index).df_denom == pytest.approx(
        htz_wald_test(exact, np.zeros(X.shape[1]), index).df_denom, rel=1e-10
    )


@pytest.mark.parametrize("spread", [1.0, 1e3, 1e9])
def test_quadrature_inverse_square_root_identity(spread):
    """Y = G^{-1/2} Q for G = D(I - QQ')D satisfies Y'GY = Q'Q and Q'Y = Q'G^{-1/2}Q
    is symmetric; with weights spread over 1e9 (where an eigendecomposition
    loses the small eigenvalues' relative precision) too."""
    from skmeta._engine._sandwich import _quadrature_inv_sqrt

    r = np.random.default_rng(0)
    X = np.column_stack([np.ones(800), r.normal(size=(800, 2))])
    Q = np.linalg.qr(X)[0][:200]
    d = np.exp(r.uniform(0.0, np.log(spread), 200))
    Y = _quadrature_inv_sqrt(Q, d)
    G_Y = d[:, None] * (d[:, None] * Y - Q @ (Q.T @ (d[:, None] * Y)))
    np.testing.assert_allclose(Y.T @ G_Y, Q.T @ Q, rtol=1e-12, atol=1e-14)
    QY = Q.T @ Y
    np.testing.assert_allclose(QY, QY.T, rtol=1e-12)
