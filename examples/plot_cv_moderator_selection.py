r"""
Cross-validated moderator selection with a Pipeline
===================================================

Which moderators predict the effect of writing-to-learn interventions
(Bangert-Drowns et al., 2004) in *new* studies?  We put
:class:`skmeta.RandomEffectsMeta` at the end of a scikit-learn ``Pipeline`` whose
``ColumnTransformer`` selects and encodes the moderators, and let
``GridSearchCV`` choose the subset by the held-out log-likelihood.

Two things make this work:

* **Metadata routing.** ``sample_var`` must reach ``fit`` *and* ``score`` of the
  meta-analysis model, fold by fold.  With
  ``sklearn.set_config(enable_metadata_routing=True)`` the estimator requests
  ``sample_var`` by default, so ``GridSearchCV.fit(..., sample_var=vi)`` slices
  it with the folds and every held-out fold is scored with its own sampling
  variances.
* **Grouped folds.** Several studies share an author; ``GroupKFold`` keeps them
  in the same fold.  ``RandomEffectsMeta`` can also use ``groups`` (for
  cluster-robust standard errors), so we tell it *not* to take them here with
  ``set_fit_request(groups=False)``: the labels go to the splitter only.
"""

# %%
import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skmeta import RandomEffectsMeta
from skmeta.datasets import load_writing_to_learn

sklearn.set_config(enable_metadata_routing=True)

data = load_writing_to_learn()
math = {"Algebra", "Calculus", "Math", "Statistics", "Math in Science"}
science = {
    "Biology",
    "Chemistry",
    "Comp Science and Chemistry",
    "Earth Science",
    "Natural Resources",
    "Science",
    "Nursing",
}
data["area"] = np.where(
    data["subject"].isin(math),
    "math",
    np.where(data["subject"].isin(science), "science", "social"),
)
data["ni100"] = data["ni"] / 100
X = data[["ni100", "grade", "imag", "area"]]
yi, vi, author = data["yi"], data["vi"], data["author"]

# %%
# Candidate moderator sets
# ------------------------
# Each candidate is a ``ColumnTransformer``; the grid swaps the whole
# preprocessing step.  Numeric moderators are standardised (the meta-analysis
# model is invariant to that, the coefficients are per SD); the subject area is
# dummy-coded against "math".


def select(numeric=(), area=False):
    parts = []
    if numeric:
        parts.append(("num", StandardScaler(), list(numeric)))
    if area:
        encoder = OneHotEncoder(drop="first", sparse_output=False)
        parts.append(("area", encoder, ["area"]))
    selector = ColumnTransformer(
        parts, remainder="drop", verbose_feature_names_out=False
    )
    # pandas output keeps the moderator names (an empty selection stays an
    # ndarray of shape (n, 0): the intercept-only model)
    return selector.set_output(transform="pandas") if parts else selector


candidates = {
    "intercept only": select(),
    "ni100": select(["ni100"]),
    "area": select(area=True),
    "ni100 + area": select(["ni100"], area=True),
    "ni100 + grade": select(["ni100", "grade"]),
    "ni100 + grade + imag + area": select(["ni100", "grade", "imag"], area=True),
}
model = RandomEffectsMeta(method="ml").set_fit_request(groups=False)
pipe = Pipeline([("select", select()), ("meta", model)])

# %%
# Grid search with grouped folds
# ------------------------------
# The default score of the pipeline is the meta-analysis model's ``score``: the
# Gaussian log-likelihood of the held-out studies given their ``sample_var``
# (higher is better).
search = GridSearchCV(
    pipe,
    {"select": list(candidates.values()), "meta__method": ["ml", "reml"]},
    cv=GroupKFold(n_splits=5),
)
search.fit(X, yi, sample_var=vi, groups=author)

results = pd.DataFrame(
    {
        "moderators": [
            next(k for k, v in candidates.items() if v is p["select"])
            for p in search.cv_results_["params"]
        ],
        "method": search.cv_results_["param_meta__method"],
        "held-out log-lik": search.cv_results_["mean_test_score"],
        "sd": search.cv_results_["std_test_score"],
    }
).sort_values("held-out log-lik", ascending=False)
print(results.round(3).to_string(index=False))

# %%
# The refitted best pipeline; its meta-analysis step has the usual summary
# (``feature_names_in_`` come from the ``ColumnTransformer``):
best = search.best_estimator_
print(best.named_steps["meta"].summary())

# %%
# Routing in ``cross_validate``
# -----------------------------
# The same routing works for ``cross_validate``: ``sample_var`` is split by the
# folds for ``fit`` and ``score``, ``groups`` only feeds the splitter.
scores = cross_validate(
    best,
    X,
    yi,
    cv=GroupKFold(n_splits=5),
    params={"sample_var": vi, "groups": author},
)
print(np.round(scores["test_score"], 3))

sklearn.set_config(enable_metadata_routing=False)
