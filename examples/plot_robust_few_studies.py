r"""
Few studies: inference robust to the uncertainty of tau^2
=========================================================

With three studies the between-study variance is estimated very imprecisely,
and the usual random-effects interval, which treats :math:`\hat\tau^2` as
known, is too narrow.  :class:`skmeta.RobustMeta` (Hanada & Sugimoto) treats the
observed :math:`\hat\tau^2` as the median of its exact sampling distribution and
averages the inference over that distribution.  Data: CCR5 and juvenile
idiopathic arthritis, three studies (log odds ratios).
"""

# %%

import numpy as np
import pandas as pd

from skmeta import RandomEffectsMeta, RobustMeta
from skmeta.datasets import load_jia
from skmeta.plotting import forest_plot, show_or_save

jia = load_jia()
yi, vi = jia["log_or"], jia["vi"]
print(jia[["study", "log_or", "vi"]])


# %%
# Conventional and robust analyses
# --------------------------------
rows = {}
for name, est in {
    "DL (z)": RandomEffectsMeta(method="dl"),
    "DL, Knapp-Hartung": RandomEffectsMeta(method="dl", inference="knapp-hartung"),
}.items():
    frame = est.fit(None, yi, sample_var=vi).summary().to_frame().loc["intercept"]
    rows[name] = frame[["estimate", "ci_lower", "ci_upper", "p_value"]]
for name, est in {
    "robust mDL (z)": RobustMeta(method="dl"),
    "robust HKSJ-M": RobustMeta(method="dl", inference="knapp-hartung"),
}.items():
    frame = est.fit(None, yi, sample_var=vi).summary().to_frame().loc["intercept"]
    rows[name] = frame[["estimate", "ci_lower", "ci_upper", "p_value"]]
print(pd.DataFrame(rows).T.round(4))

# %%
# The robust summary shows the plug-in and M-estimates of :math:`\tau^2`:
robust = RobustMeta().fit(None, yi, sample_var=vi)
print(robust.summary())

# %%
# Forest plot with the robust interval as the diamond, on the odds-ratio scale:
forest_plot(
    robust,
    yi,
    vi,
    labels=jia["study"],
    transform=np.exp,
    xlabel="Odds ratio (log scale)",
)
show_or_save("jia_forest.png")
