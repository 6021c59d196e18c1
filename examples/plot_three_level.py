r"""
Three-level meta-analysis with a random slope
=============================================

Modified school calendars and achievement (Cooper et al., 2003; Konstantopoulos,
2011): 56 studies (schools) nested in 11 school districts.  Effects from the same
district are more alike than effects from different districts, so we fit the
three-level model of Stata's ``meta meregress`` / metafor's
``rma.mv(yi, vi, random = ~ 1 | district/school)``, test each level, and let the
effect of the publication year vary between districts (a random slope).
"""

# %%

from skmeta import MultilevelMeta
from skmeta.datasets import load_school_calendar
from skmeta.plotting import forest_plot, show_or_save

data = load_school_calendar()
groups = data[["district", "school"]]  # outermost level first
yi, vi = data["yi"], data["vi"]


# %%
# Random intercepts at two levels
# -------------------------------
# Stata: theta 0.1847 (se 0.0846), sd 0.2551 (district) and 0.1809 (school).
model = MultilevelMeta().fit(None, yi, sample_var=vi, groups=groups)
print(model.summary())
print(model.i2_.round(2))

# %%
# Likelihood-ratio tests of each level (the variance is on the boundary under
# the null hypothesis: the 50:50 mixture p-value):
for level in model.level_names_:
    test = model.lr_test_level(level)
    print(
        f"{level:>8}: LR = {test.statistic:.2f}, "
        f"p (mixture) = {test.p_value_boundary:.2g}"
    )

# %%
# Forest plot by district
# -----------------------
# Grey diamonds: each district's predicted effect, the overall estimate plus the
# district's BLUP, with its prediction-error interval.
forest_plot(
    model,
    yi,
    vi,
    groups=groups,
    labels="school " + data["school"].astype(str),
    xlabel="Standardized mean difference",
)
show_or_save("school_calendar_forest.png")

# %%
# Random slope of year at the district level
# ------------------------------------------
# ``year_c`` = year - 1990 is a moderator (fixed slope) and gets a random slope
# between districts with an unstructured covariance (Stata's example: corr
# 1.000, sd 0.028 / 0.082, theta 0.160, slope 0.007).
data["year_c"] = data["year"] - 1990
slopes = MultilevelMeta(
    random_slopes={"district": ["year_c"]}, covariance="unstructured"
)
slopes.fit(data[["year_c"]], yi, sample_var=vi, groups=groups, Z=data[["year_c"]])
print(slopes.summary())
print(slopes.re_parameters("sd"))
