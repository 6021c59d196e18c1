"""Assertions shared by several test modules."""

import numpy as np


def assert_summary_printout(est):
    """The printed and HTML summaries show the title and every coefficient.

    Each term of ``summary().to_frame()`` must appear in ``str(summary)`` and in
    its HTML form, on a line that also shows the term's estimate.
    """
    summary = est.summary()
    text = str(summary)
    html = summary._repr_html_()
    assert text.startswith(summary.title)
    assert "<table" in html
    lines = text.splitlines()
    for term, row in summary.to_frame().iterrows():
        name = term[-1] if isinstance(term, tuple) else term
        assert name in html, name
        estimate = float(row["estimate"])
        shown = [ln for ln in lines if ln.split()[:1] == [name] or f" {name} " in ln]
        assert shown, f"term {name!r} missing from the printout"
        if np.isfinite(estimate) and 1e-4 <= abs(estimate) < 1e6:
            assert any(f"{estimate:.4f}" in ln for ln in shown), (name, estimate)


#: Two fits of the same optimum agree to this fraction of a standard error: a
#: maximised criterion accurate to ~1e-10 fixes a parameter only to about
#: SE * sqrt(2e-10) ~ 1.4e-5 SE where the likelihood is flat (the conditioning of
#: the comparison), however tight the optimizer's own tolerance.
SE_FRACTION = 1e-4


def coefficient_tolerance(est):
    """Absolute tolerance of the fixed effects ``[intercept, *coef]``."""
    beta = np.concatenate([[est.intercept_], est.coef_])
    se = np.sqrt(np.clip(np.diag(est.cov_params_), 0.0, None))
    return SE_FRACTION * se + 1e-12 * (1.0 + np.abs(beta))


def heterogeneity_tolerance(est, fallback):
    """Absolute tolerance of the heterogeneity estimates of ``est``.

    RandomEffectsMeta: a fraction of ``tau2_se_``; LocationScaleMeta without
    scale moderators (log link): of the delta-method SE of ``tau2_``; otherwise
    ``fallback`` (e.g. multilevel variances, which have no standard error).
    """
    tau2_se = getattr(est, "tau2_se_", None)
    if tau2_se is not None and np.isfinite(tau2_se) and tau2_se > 0:
        return SE_FRACTION * tau2_se + 1e-14
    cov = getattr(est, "scale_cov_params_", None)
    if cov is not None and cov.shape == (1, 1) and est.link == "log":
        return SE_FRACTION * est.tau2_ * np.sqrt(cov[0, 0]) + 1e-14
    return fallback


def assert_within(actual, desired, atol, what="values"):
    """``|actual - desired| <= atol`` elementwise (``atol`` may be an array)."""
    actual, desired = np.asarray(actual, float), np.asarray(desired, float)
    diff = np.abs(actual - desired)
    bad = ~(diff <= atol)
    assert not np.any(bad), (
        f"{what} differ beyond tolerance: actual {actual}, desired {desired}, "
        f"|difference| {diff}, tolerance {np.broadcast_to(atol, diff.shape)}"
    )
