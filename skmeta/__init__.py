"""skmeta: scikit-learn-compatible estimators for meta-analysis.

The estimators share one numerical engine (``skmeta._engine``):

- :class:`RandomEffectsMeta`: random-effects meta-analysis and meta-regression.
- :class:`LocationScaleMeta`: location-scale models (heterogeneity with moderators).
- :class:`MultilevelMeta`: nested multilevel meta-regression with random slopes
  and dependent effect sizes.
- :class:`RobustMeta`: inference robust to the randomness of the tau^2 estimate.
- :class:`SelectionModelMeta`: random-effects models under publication
  selection (step-function and beta selection models).

Functions for binary outcomes (:func:`mantel_haenszel`, :func:`peto`), inference
tools (:func:`lr_test`, :func:`permutation_test`, :func:`profile_likelihood`,
:func:`heteroscedasticity_test`) and the modules :mod:`skmeta.effect_sizes`,
:mod:`skmeta.bias`, :mod:`skmeta.model_selection`, :mod:`skmeta.datasets`,
:mod:`skmeta.plotting` and :mod:`skmeta.exceptions` complete the library.
"""

import importlib

from skmeta._registry import public_classes

__version__ = "0.1.0"

#: Public submodules, imported on first use.
_SUBMODULES = (
    "bias",
    "datasets",
    "distributed",
    "effect_sizes",
    "exceptions",
    "model_selection",
    "plotting",
)

#: Public names -> their module, imported on first use so that ``import skmeta``
#: stays fast. The estimators come from the registry.
_LAZY = {
    **public_classes(),
    "lr_test": "skmeta._tools",
    "permutation_test": "skmeta._tools",
    "profile_likelihood": "skmeta._tools",
    "heteroscedasticity_test": "skmeta._tools",
    "InfiniteScaleWarning": "skmeta.exceptions",
    "SampleVarWarning": "skmeta.exceptions",
    "mantel_haenszel": "skmeta._binary",
    "peto": "skmeta._binary",
    "MantelHaenszelResult": "skmeta._binary",
    "PetoResult": "skmeta._binary",
    "impute_covariance": "skmeta._dependence",
}

__all__ = ["__version__", *_LAZY, *_SUBMODULES]


def __getattr__(name):
    if name in _SUBMODULES:
        value = importlib.import_module(f"skmeta.{name}")
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'skmeta' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
