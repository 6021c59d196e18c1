"""Tests of the weighted chi-square distribution (skmeta._engine._wchisq).

Exact references: scaled chi-square (one or all-equal weights), sums of distinct
weights each of multiplicity two (hypoexponential closed form: lambda*chi2_2 is an
exponential with mean 2*lambda), and lambda1*chi2_1 + lambda2*chi2_1 whose density has
the closed form exp(-x(l1+l2)/(4 l1 l2)) I0(x(l1-l2)/(4 l1 l2)) / (2 sqrt(l1 l2)),
integrated by adaptive quadrature of that smooth, bounded density. Generic cases are
compared with 10^6 Monte Carlo draws.
"""

import itertools

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

from skmeta._engine._wchisq import (
    clean_weights,
    leverage_complement,
    qf_cdf,
    qf_cdf_slope,
    qf_moments,
    qf_pdf,
    quadratic_form,
    wchisq_cdf,
    wchisq_pdf,
    wchisq_ppf,
    wchisq_sf,
)

ATOL = 1e-9  # required accuracy of the CDF on exact cases


def hypoexp_cdf(q, lams):
    """CDF of sum_i lam_i * chi2_2 (distinct lam_i): rates 1/(2 lam_i)."""
    b = 1.0 / (2.0 * np.asarray(lams, dtype=float))
    q = np.asarray(q, dtype=float)
    out = np.ones_like(q)
    for i, bi in enumerate(b):
        coef = np.prod([bj / (bj - bi) for j, bj in enumerate(b) if j != i])
        out -= coef * np.exp(-bi * q)
    return out


def hypoexp_pdf(q, lams):
    b = 1.0 / (2.0 * np.asarray(lams, dtype=float))
    q = np.asarray(q, dtype=float)
    out = np.zeros_like(q)
    for i, bi in enumerate(b):
        coef = np.prod([bj / (bj - bi) for j, bj in enumerate(b) if j != i])
        out += coef * bi * np.exp(-bi * q)
    return out


def bessel_pdf(x, l1, l2):
    a = x * (l1 + l2) / (4 * l1 * l2)
    b = x * abs(l1 - l2) / (4 * l1 * l2)
    return np.exp(b - a) * special.i0e(b) / (2 * np.sqrt(l1 * l2))


GRID = np.concatenate([np.logspace(-6, 0, 40), np.linspace(1.1, 60, 80)])


@pytest.mark.parametrize("lam", [0.3, 1.0, 250.0])
def test_single_weight_is_scaled_chi2_1(lam):
    q = GRID * lam
    assert np.max(np.abs(wchisq_cdf(q, [lam]) - stats.chi2.cdf(q / lam, 1))) < ATOL
    assert np.allclose(wchisq_pdf(q, [lam]), stats.chi2.pdf(q / lam, 1) / lam)


@pytest.mark.parametrize("r", [2, 3, 7, 19])
def test_equal_weights_are_scaled_chi2_r(r):
    q = GRID * 2.5
    got = wchisq_cdf(q, np.full(r, 2.5))
    assert np.max(np.abs(got - stats.chi2.cdf(q / 2.5, r))) < ATOL


@pytest.mark.parametrize(
    "lams",
    [
        (1.0, 0.5),
        (3.0, 0.01),
        (1e4, 1e-4),  # eight orders of magnitude apart
        (1.0, 0.999),  # nearly equal
        (7.3, 2.1, 0.4),
        (5.0, 2.0, 1.0, 0.25, 0.05),  # R = 10
    ],
)
def test_pairs_match_hypoexponential(lams):
    lam = np.repeat(lams, 2)  # the inversion path: weights are not all equal
    q = GRID * max(lams)
    err = np.abs(wchisq_cdf(q, lam) - hypoexp_cdf(q, lams))
    assert err.max() < ATOL
    dens = wchisq_pdf(q, lam)
    ref = hypoexp_pdf(q, lams)
    assert np.max(np.abs(dens - ref)) < 1e-9 * ref.max()


@pytest.mark.parametrize("l1, l2", [(1.0, 0.3), (2.0, 0.001), (5.0, 4.0)])
def test_two_distinct_weights_bessel(l1, l2):
    xs = np.array([0.01, 0.1, 0.5, 1, 2, 5, 10, 30]) * l1
    ref = np.array(
        [
            integrate.quad(
                bessel_pdf, 0, x, args=(l1, l2), epsabs=1e-14, epsrel=1e-13, limit=200
            )[0]
            for x in xs
        ]
    )
    assert np.max(np.abs(wchisq_cdf(xs, [l1, l2]) - ref)) < ATOL
    assert np.allclose(wchisq_pdf(xs, [l1, l2]), bessel_pdf(xs, l1, l2), rtol=1e-9)


@pytest.mark.parametrize(
    "lam",
    [
        [5, 2, 1, 0.5, 0.1, 0.01],
        [1.0, 0.9, 0.8, 0.1],
        list(np.linspace(0.05, 3.0, 19)),  # K = 20 studies
        [100.0, 1.0],
    ],
)
def test_generic_weights_within_monte_carlo_error(lam):
    lam = np.asarray(lam, dtype=float)
    rng = np.random.default_rng(20240704)
    n = 10**6
    draws = np.zeros(n)
    for lr in lam:  # accumulate to keep memory O(n)
        draws += lr * rng.standard_normal(n) ** 2
    qs = np.quantile(draws, [0.001, 0.05, 0.3, 0.5, 0.8, 0.99, 0.9999])
    p = wchisq_cdf(qs, lam)
    emp = (draws[:, None] <= qs).mean(axis=0)
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(emp - p) < 5 * se + 1e-7)


def test_moments_of_density():
    # E[Q] = sum lam and Var[Q] = 2 sum lam^2, from the density by quadrature.
    # The inversion has an absolute floor of ~1e-14 on the density in the far tail
    # (round-off of e^{2N/5}); weighted by q^2 over [0, 400] it adds ~2e-7 to E[Q^2],
    # hence the variance check at rel 1e-7 while the mean is exact to 1e-9.
    lam = np.array([3.0, 1.5, 0.7, 0.2])

    def moment(j):
        return integrate.quad(
            lambda q: q**j * wchisq_pdf(q, lam), 0, 400, limit=400, epsabs=1e-13
        )[0]

    mean, m2 = moment(1), moment(2)
    assert moment(0) == pytest.approx(1.0, abs=1e-10)
    assert mean == pytest.approx(lam.sum(), rel=1e-9)
    assert m2 - mean**2 == pytest.approx(2 * (lam**2).sum(), rel=1e-7)
    far = wchisq_pdf(np.array([200.0, 300.0, 400.0]), lam)
    assert np.all(np.abs(far) < 1e-12)


def test_ppf_inverts_cdf_and_matches_chi2():
    lam = np.array([4.0, 1.0, 0.5])
    p = np.array([1e-6, 0.025, 0.5, 0.975, 0.999999])
    q = wchisq_ppf(p, lam)
    assert np.allclose(wchisq_cdf(q, lam), p, rtol=1e-9, atol=1e-12)
    assert np.all(np.diff(q) > 0)
    assert np.allclose(wchisq_ppf(p, [2.0, 2.0]), 2 * stats.chi2.ppf(p, 2))
    assert wchisq_ppf(0.0, lam) == 0.0


def test_edge_cases():
    lam = [2.0, 1.0, 0.0, 1e-20]  # zero (and numerically zero) weights are dropped
    assert np.array_equal(clean_weights(lam), [2.0, 1.0])
    assert np.allclose(wchisq_cdf([3.0, 7.0], lam), wchisq_cdf([3.0, 7.0], [2.0, 1.0]))
    q = np.array([-1.0, 0.0, -np.inf])
    assert np.array_equal(wchisq_cdf(q, [2.0, 1.0]), [0.0, 0.0, 0.0])
    assert np.array_equal(wchisq_pdf(q, [2.0, 1.0]), [0.0, 0.0, 0.0])
    # no positive weight: a point mass at zero
    assert np.array_equal(wchisq_cdf([-1.0, 0.0, 1.0], [0.0, 0.0]), [0.0, 1.0, 1.0])
    # shape is kept for vectorised input
    qq = np.linspace(0.1, 10, 12).reshape(3, 4)
    assert wchisq_cdf(qq, [2.0, 1.0]).shape == (3, 4)
    assert np.allclose(wchisq_sf(qq, [2.0, 1.0]), 1 - wchisq_cdf(qq, [2.0, 1.0]))
    # extreme upper tail is 1 and far lower tail 0, within the tolerance
    assert wchisq_cdf(1e4, [2.0, 1.0]) == pytest.approx(1.0, abs=ATOL)
    assert wchisq_cdf(1e-12, [2.0, 1.0]) == pytest.approx(0.0, abs=ATOL)


@pytest.mark.parametrize("lam", [[1.0, -0.5], [np.nan, 1.0], [np.inf]])
def test_bad_weights(lam):
    with pytest.raises(ValueError, match="lam"):
        wchisq_cdf(1.0, lam)


def test_bad_probability():
    with pytest.raises(ValueError, match="p must"):
        wchisq_ppf(1.0, [1.0, 2.0])


# ------------------------------------------------- structured forms, large K
def two_gamma_cdf(q, r1, r2, a=1.0, b=2.0):
    """P(a chi2_r1 + b chi2_r2 <= q) by one-dimensional quadrature."""

    def f(t):
        return stats.chi2.pdf(t / b, r2) / b * stats.chi2.cdf((q - t) / a, r1)

    return integrate.quad(
        f, 0, q, limit=1000, epsabs=1e-15, epsrel=1e-13, points=[max(r2 - 2, 0) * b]
    )[0]


@pytest.mark.parametrize("r", [30, 200, 1000, 3000])
def test_many_weights_are_exact(r):
    """The fixed Talbot rule alone was wrong from ~50 comparable weights on (4e-9
    at 45, O(1) at 200, which made RobustMeta's tau^2_M wrong for K >= ~50)."""
    r1, r2 = r // 2, r - r // 2
    lam = np.r_[np.ones(r1), 2.0 * np.ones(r2)]
    mean, sd = lam.sum(), np.sqrt(2 * (lam**2).sum())
    q = mean + sd * np.array([-4.0, -1.5, 0.0, 1.0, 3.0, 6.0])
    ref = np.array([two_gamma_cdf(x, r1, r2) for x in q])
    assert np.max(np.abs(wchisq_cdf(q, lam) - ref)) < 1e-11
    pdf_ref = np.array(
        [
            integrate.quad(
                lambda t, x=x: (
                    stats.chi2.pdf(t / 2, r2) / 2 * stats.chi2.pdf(x - t, r1)
                ),
                0,
                x,
                limit=1000,
                epsabs=1e-15,
            )[0]
            for x in q
        ]
    )
    assert np.max(np.abs(wchisq_pdf(q, lam) - pdf_ref)) < 1e-11 / sd


@pytest.mark.parametrize("n_small", [10, 100, 1000])
@pytest.mark.parametrize("shift", [0.5, 2.0, 10.0])
def test_one_large_weight_and_many_small_ones(n_small, shift):
    """A chi2_1 shifted by many small weights (a study with a dominant weight):
    Talbot's rule fails there (errors up to O(1)); the Gil-Pelaez series does not."""
    eps = shift / n_small
    q = np.array([0.3, 1.0, 2.0, 5.0, 20.0]) + shift
    lam = np.r_[1.0, np.full(n_small, eps)]

    def exact(x):  # integrate over the small part's scaled chi-square
        bulk = n_small + np.sqrt(2 * n_small) * np.array([-6, -3, -1, 0, 1, 3, 6])
        return integrate.quad(
            lambda t: stats.chi2.pdf(t, n_small) * stats.chi2.cdf(x - eps * t, 1),
            0,
            x / eps,
            limit=2000,
            epsabs=1e-16,
            epsrel=1e-14,
            points=bulk[(bulk > 0) & (bulk < x / eps)],
        )[0]

    ref = np.array([exact(x) for x in q])
    assert np.max(np.abs(wchisq_cdf(q, lam) - ref)) < 1e-11


def dense_form_eigenvalues(form):
    delta, basis = form.delta, form.basis
    q_1, _ = np.linalg.qr(basis)
    g = np.sqrt(delta)
    m = (np.eye(delta.size) - q_1 @ q_1.T) * g[:, None] * g[None, :]
    return np.clip(np.linalg.eigvalsh(m), 0.0, None)


@pytest.mark.parametrize(("k", "p"), [(6, 1), (25, 1), (25, 3), (300, 2)])
def test_structured_form_equals_its_eigenvalues(k, p):
    """Q = z' M z with M = Delta^1/2 (I - P_B) Delta^1/2, never decomposed, has
    the distribution of the eigenvalues of M (dense reference)."""
    rng = np.random.default_rng(k + p)
    delta = rng.uniform(0.2, 3.0, k)
    basis = np.column_stack([np.ones(k), rng.normal(size=(k, p - 1))])
    basis = basis * rng.uniform(0.5, 2.0, k)[:, None]
    form = quadratic_form(delta, basis)
    lam = dense_form_eigenvalues(form)
    mean, sd = lam.sum(), np.sqrt(2 * (lam**2).sum())
    q = np.maximum(mean + sd * np.array([-2.0, -0.5, 0.5, 2.0, 5.0]), 0.01)
    assert np.max(np.abs(qf_cdf(q, form) - wchisq_cdf(q, lam))) < 1e-12
    assert np.max(np.abs(qf_pdf(q, form) - wchisq_pdf(q, lam))) < 1e-12 / sd
    moments = qf_moments(form)
    assert moments.mean == pytest.approx(mean, rel=1e-12)
    assert moments.trace2 == pytest.approx((lam**2).sum(), rel=1e-10)
    assert moments.top >= lam.max() * (1 - 1e-12)
    # the density integrates the CDF
    x = np.linspace(q[0], q[-1], 2001)
    cdf_diff = qf_cdf(q[-1], form) - qf_cdf(q[0], form)
    assert integrate.trapezoid(qf_pdf(x, form), x) == pytest.approx(cdf_diff, abs=1e-5)


@pytest.mark.parametrize(("l1", "l2"), [(0.3, 1.7), (2.0, 0.05)])
def test_cdf_slope_matches_hypoexponential_derivative(l1, l2):
    """d/dl1 of P(l1 chi2_2 + l2 chi2_2 <= q) in closed form: with rates
    b_i = 1/(2 l_i), F = 1 - sum_i c_i e^{-b_i q}, differentiated exactly."""
    form = quadratic_form([l1, l1, l2, l2])
    direction = np.array([1.0, 1.0, 0.0, 0.0])
    b1, b2 = 1 / (2 * l1), 1 / (2 * l2)
    db1 = -1 / (2 * l1 * l1)
    for q in (0.2, 1.0, 4.0, 15.0):
        cdf, slope = qf_cdf_slope(q, form, direction)
        assert cdf == qf_cdf(q, form)  # the same evaluation, bit for bit
        # F = 1 - b2/(b2-b1) e^{-b1 q} - b1/(b1-b2) e^{-b2 q}
        d_c1 = b2 / (b2 - b1) ** 2 * db1
        d_c2 = -b2 / (b1 - b2) ** 2 * db1
        c1 = b2 / (b2 - b1)
        exact = -(d_c1 - c1 * q * db1) * np.exp(-b1 * q) - d_c2 * np.exp(-b2 * q)
        assert slope == pytest.approx(exact, rel=1e-9, abs=1e-13)


@pytest.mark.parametrize(("k", "p"), [(6, 1), (15, 3)])
def test_cdf_slope_of_structured_form_is_the_derivative(k, p):
    """The slope along ``direction`` of a form with a basis is the derivative of
    the CDF (central differences, error ~1e-9); clamped CDFs have slope 0, and
    exact chi-square forms give None (their callers use another method)."""
    rng = np.random.default_rng(k * p)
    delta = rng.uniform(0.2, 3.0, k)
    direction = rng.uniform(0.1, 1.0, k)
    basis = np.column_stack([np.ones(k), rng.normal(size=(k, p - 1))])
    form = quadratic_form(delta, basis)
    eps = 1e-5
    up = quadratic_form(delta + eps * direction, basis)
    down = quadratic_form(delta - eps * direction, basis)
    mean = qf_moments(form).mean
    for q in mean * np.array([0.3, 1.0, 2.5]):
        cdf, slope = qf_cdf_slope(q, form, direction)
        assert cdf == qf_cdf(q, form)
        numeric = (qf_cdf(q, up) - qf_cdf(q, down)) / (2 * eps)
        assert slope == pytest.approx(float(numeric), abs=1e-7)
    assert qf_cdf_slope(1e6 * mean, form, direction) == (1.0, 0.0)
    assert qf_cdf_slope(-1.0, form, direction) == (0.0, 0.0)
    assert qf_cdf_slope(1.0, quadratic_form(np.ones(k), basis), direction) is None


def test_dominant_weight_costs_no_precision():
    """A study with weight 1e12 times the others: the projection's diagonal and
    the distribution are computed without cancellation (the dense eigenvalues of
    such a matrix have errors ~1e-4 of the small ones; the reference solves the
    secular equation of the rank-one projection instead)."""
    k = 12
    rng = np.random.default_rng(4)
    v = rng.uniform(0.05, 0.3, k)
    v[0] = 1e-12
    a = 1.0 / v
    a = a / a.max()
    tau2 = 0.1
    basis = np.sqrt(a)[:, None] * np.ones((k, 1))
    form = quadratic_form(a * (v + tau2), basis)
    # intercept only: 1 - h_i = 1 - a_i / sum(a), exact from the sum of the others
    comp = leverage_complement(basis)
    assert comp[0] == pytest.approx(a[1:].sum() / a.sum(), rel=1e-12)
    # eigenvalues of Delta^1/2 (I - w w') Delta^1/2 solve sum w_i^2/(delta_i - x) = 0
    w2 = a / a.sum()
    d = np.sort(form.delta)
    order = np.argsort(form.delta)
    w2 = w2[order]
    roots = []
    for lo, hi in itertools.pairwise(d):
        roots.append(
            optimize.brentq(
                lambda x: np.sum(w2 / (d - x)),
                lo * (1 + 1e-15),
                hi * (1 - 1e-15),
                xtol=1e-300,
                rtol=1e-15,
            )
        )
    lam = np.array(roots)
    mean, sd = lam.sum(), np.sqrt(2 * (lam**2).sum())
    q = mean + sd * np.array([-1.0, 0.0, 1.0, 3.0])
    assert np.max(np.abs(qf_cdf(q, form) - wchisq_cdf(q, lam))) < 1e-10
