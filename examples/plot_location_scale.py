r"""
Location-scale model: does heterogeneity shrink with sample size?
=================================================================

Writing-to-learn interventions (Bangert-Drowns et al., 2004): 48 standardized
mean differences.  A location-scale model (Viechtbauer & López-López, 2022)
lets sample size moderate both the mean effect and the heterogeneity,
:math:`\log\tau_i^2 = \alpha_0 + \alpha_1 n_i/100`.  We test the scale
coefficient by Wald, likelihood-ratio and permutation tests, look at its
profile likelihood, and draw study-specific estimates of :math:`\tau` against
sample size with the fitted regression line.
"""

# %%
# Fit
# ---
# ``rma(yi, vi, mods = ~ ni100, scale = ~ ni100)``:

import numpy as np
import pandas as pd

from skmeta import (
    LocationScaleMeta,
    RandomEffectsMeta,
    lr_test,
    permutation_test,
    profile_likelihood,
)
from skmeta.datasets import load_writing_to_learn
from skmeta.plotting import profile_plot, scale_plot, show_or_save

data = load_writing_to_learn()
ni100 = pd.DataFrame({"ni100": data["ni"] / 100})
yi, vi = data["yi"], data["vi"]
model = LocationScaleMeta().fit(ni100, yi, sample_var=vi, Z=ni100)
print(model.summary())


# %%
# Predicted :math:`\tau^2` for studies of 20, 200 and 500 participants
# (seed: 0.122, 0.023, 0.001):
print(model.predict_tau2(pd.DataFrame({"ni100": [0.2, 2.0, 5.0]})).round(3))

# %%
# Tests of the scale coefficient
# ------------------------------
# Likelihood-ratio test against the model with a homogeneous :math:`\tau^2`
# (same location part, so the REML likelihoods are comparable):
homogeneous = LocationScaleMeta().fit(ni100, yi, sample_var=vi)
test = lr_test(model, homogeneous)
print(f"LRT = {test.statistic:.3f}, df = {test.df}, p = {test.p_value:.4f}")
print(test.table)

# %%
# A permutation test reshuffles the rows of ``Z`` (few permutations here to
# keep the example fast; use 1000 or more in practice):
perm = permutation_test(
    LocationScaleMeta(),
    ni100,
    yi,
    sample_var=vi,
    Z=ni100,
    part="scale",
    n_permutations=99,
    random_state=0,
)
print(perm.to_frame())

# %%
# Profile likelihood
# ------------------
# The profile of :math:`\alpha_1`, with the profile-likelihood confidence
# interval (dotted) where the curve drops by :math:`\chi^2_{1,0.95}/2`:
profile = profile_likelihood(
    LocationScaleMeta(),
    ni100,
    yi,
    sample_var=vi,
    Z=ni100,
    parameter="ni100",
    grid=np.linspace(-3.5, 1.0, 16),
)
print(f"95% profile CI: [{profile.ci_lower:.3f}, {profile.ci_upper:.3f}]")
profile_plot(profile)
show_or_save("location_scale_profile.png")

# %%
# Study-specific heterogeneity
# ----------------------------
# :math:`\hat\tau_i^2 = e_i^2/(1-h_i) - v_i` (truncated at zero) against sample
# size, with the fitted :math:`\hat\tau(n) = \exp\{(\hat\alpha_0 +
# \hat\alpha_1 n/100)/2\}` and its 95% confidence band, as drawn by
# Viechtbauer & López-López (2022).
scale_plot(model, ni100, x_values=lambda z: 100 * z, xlabel="Sample size")
show_or_save("location_scale_tau.png")

# %%
# With ``Z=None`` the model is the ordinary random-effects model:
re = RandomEffectsMeta().fit(ni100, yi, sample_var=vi)
print(f"RE tau^2 = {re.tau2_:.4f}, LS exp(alpha_0) = {homogeneous.tau2_[0]:.4f}")
