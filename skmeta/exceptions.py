"""Warnings that skmeta emits, so that users can filter them by class.

Convergence problems use scikit-learn's
:class:`sklearn.exceptions.ConvergenceWarning`.
"""

__all__ = ["InfiniteScaleWarning", "SampleVarWarning"]


class SampleVarWarning(UserWarning):
    """``fit`` or ``score`` ran without sampling variances.

    ``sample_var=None`` means zero sampling variances (an ordinary linear model).
    That is almost never what a meta-analysis wants: usually ``sample_var`` was
    forgotten, or metadata routing did not deliver it (e.g. ``cross_validate``
    without ``params={"sample_var": v}``). Pass ``sample_var=0`` explicitly to fit
    zero sampling variances without this warning.
    """


class InfiniteScaleWarning(UserWarning):
    """A scale coefficient diverges (tau^2 -> 0 in a subgroup).

    The likelihood increases without bound along that coefficient; its estimate
    and standard error are arbitrary, while the fitted tau^2 values are not.
    Bound or penalize the coefficient (``scale_bounds``, ``scale_penalty``) to
    get finite estimates.
    """
