r"""
A metafor-style meta-analysis: BCG vaccine trials
=================================================

The classic example of metafor's documentation (Viechtbauer, 2010): 13 trials of
the BCG vaccine against tuberculosis (Colditz et al., 1994).  We compute log risk
ratios with :func:`skmeta.effect_sizes.log_risk_ratio` (metafor's ``escalc``),
fit a random-effects model (``rma``), look at heterogeneity, forest and funnel
plots, and explain the heterogeneity by absolute latitude in a meta-regression
with a bubble plot (``regplot``).
"""

# %%
# Effect sizes
# ------------
# ``escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)``:

import numpy as np

from skmeta import RandomEffectsMeta
from skmeta.datasets import load_bcg
from skmeta.effect_sizes import log_risk_ratio
from skmeta.plotting import bubble_plot, forest_plot, funnel_plot, show_or_save

bcg = load_bcg()
yi, vi = log_risk_ratio(bcg["tpos"], bcg["tneg"], bcg["cpos"], bcg["cneg"])
labels = bcg["author"] + ", " + bcg["year"].astype(str)


# %%
# Random-effects model
# --------------------
# ``rma(yi, vi)``: REML estimate of :math:`\tau^2`, z tests.  ``X=None`` means an
# intercept-only model.
model = RandomEffectsMeta(method="reml").fit(None, yi, sample_var=vi)
print(model.summary())

# %%
# The pooled risk ratio and its confidence and prediction intervals
# (``predict(res, transf=exp)``), and Q-profile intervals for the heterogeneity
# (``confint(res)``):
print(np.exp(model.predict_interval()[["mean", "ci_lower", "ci_upper"]]).round(3))
print(np.exp(model.predict_interval()[["pi_lower", "pi_upper"]]).round(3))
print(model.tau2_confint().round(4))

# %%
# Forest plot
# -----------
# Squares are proportional to the weights :math:`1/(v_i + \hat\tau^2)`; the
# diamond is the pooled estimate, the dashed line the prediction interval.  The
# axis is on the log scale, labelled as risk ratios.
forest_plot(
    model, yi, vi, labels=labels, transform=np.exp, xlabel="Risk ratio (log scale)"
)
show_or_save("bcg_forest.png")

# %%
# Subgroups by the method of treatment allocation, each with its own
# random-effects summary:
forest_plot(model, yi, vi, labels=labels, subgroups=bcg["alloc"])
show_or_save("bcg_forest_subgroups.png")

# %%
# Funnel plot
# -----------
# A contour-enhanced funnel plot (Peters et al., 2008): shading shows where a
# study's effect would be significant at the 10%, 5% and 1% levels.
funnel_plot(model, yi, vi, contours=(0.90, 0.95, 0.99), xlabel="Log risk ratio")
show_or_save("bcg_funnel.png")

# %%
# Meta-regression on absolute latitude
# ------------------------------------
# ``rma(yi, vi, mods = ~ ablat)``: the moderator explains most of the
# heterogeneity (pseudo-:math:`R^2`).
X = bcg[["ablat"]]
reg = RandomEffectsMeta().fit(X, yi, sample_var=vi)
print(reg.summary())
print(f"R^2 = {reg.r2_:.1f}%")

# %%
# Bubble plot (``regplot``): bubble areas are proportional to the weights, with
# the confidence and prediction bands of the fitted line.
bubble_plot(
    reg,
    X,
    yi,
    vi,
    feature="ablat",
    show_prediction=True,
    xlabel="Absolute latitude",
    ylabel="Log risk ratio",
)
show_or_save("bcg_bubble.png")
