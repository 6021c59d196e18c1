"""Tests of the weighted chi-square distribution (skmeta._engine._wchisq).

Exact references: scaled chi-square (one or all-equal weights), sums of distinct
weights each of multiplicity two (hypoexponential closed form: lambda*chi2_2 is an
exponential with mean 2*lambda), and lambda1*chi2_1 + lambda2*chi2_1 whose density has
the closed form exp(-x(l1+l2)/(4 l1 l2)) I0(x(l1-l2)/(4 l1 l2)) / (2 sqrt(l1 l2)),
integrated by adaptive quadrature of that smooth, bounded density. Generic cases are
compared with 10^6 Monte Carlo draws.
"""

import numpy as np
import pytest
from scipy import integrate, special, stats

from skmeta._engine._wchisq import (
    clean_weights,
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
