"""skmeta: scikit-learn-compatible estimators for meta-analysis.

The four estimators share one numerical engine (:mod:`skmeta._engine`):

- :class:`RandomEffectsMeta`: random-effects meta-analysis and meta-regression.
- :class:`LocationScaleMeta`: location-scale models (heterogeneity with moderators).
- :class:`MultilevelMeta`: nested multilevel meta-regression with random slopes.
- :class:`RobustMeta`: inference robust to the randomness of the tau^2 estimate.
"""

import importlib

__version__ = "0.1.0"

# Public names, imported on first use so that ``import skmeta`` stays fast.
_LAZY = {
    "RandomEffectsMeta": "skmeta._random_effects",
    "LocationScaleMeta": "skmeta._location_scale",
    "MultilevelMeta": "skmeta._multilevel",
    "RobustMeta": "skmeta._robust",
    "lr_test": "skmeta._tools",
    "permutation_test": "skmeta._tools",
    "profile_likelihood": "skmeta._tools",
    "heteroscedasticity_test": "skmeta._tools",
    "plot_profile": "skmeta._tools",
    "InfiniteScaleWarning": "skmeta.exceptions",
    "SampleVarWarning": "skmeta.exceptions",
    "exceptions": "skmeta.exceptions",
    "datasets": "skmeta.datasets",
    "effect_sizes": "skmeta.effect_sizes",
    "impute_covariance": "skmeta._dependence",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if module.__name__.endswith(name) else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'skmeta' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
