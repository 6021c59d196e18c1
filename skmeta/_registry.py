"""The registry of skmeta's estimators: the one place that lists them.

Each entry maps the estimator's command-line name (``python -m skmeta --model
NAME``) to the import path of its public class and says which columns of a CSV
file the command line may pass to its ``fit``.  Everything else the command
line needs comes from the class itself: the choices of ``--method`` and
``--inference`` from its ``_parameter_constraints``, their defaults from its
``__init__`` signature, the keywords its ``fit`` takes from the ``fit``
signature, and the printout from ``summary()``.  Adding an estimator means
adding one entry here.
"""

from collections.abc import Mapping
from importlib import import_module
from typing import NamedTuple

__all__ = ["ESTIMATORS", "RegisteredEstimator", "estimator_class", "public_classes"]


class RegisteredEstimator(NamedTuple):
    """One estimator of the registry.

    Attributes
    ----------
    path : str
        ``"module:Class"`` of the public class.
    cli_metadata : Mapping of str to str
        Command-line options whose columns the command line passes to ``fit``:
        option -> ``fit`` keyword (e.g. ``{"--scale": "Z"}``).
    cli_required : tuple of str
        Options without which the command line refuses the model; giving them
        (and no ``--model``) selects the first model that requires them.
    """

    path: str
    cli_metadata: Mapping[str, str] = {}
    cli_required: tuple[str, ...] = ()


#: Command-line name -> estimator, in the order of the command line's choices;
#: the first is the default model.
ESTIMATORS: dict[str, RegisteredEstimator] = {
    "random-effects": RegisteredEstimator(
        "skmeta._random_effects:RandomEffectsMeta",
        cli_metadata={"--groups": "groups"},
    ),
    "location-scale": RegisteredEstimator(
        "skmeta._location_scale:LocationScaleMeta",
        cli_metadata={"--scale": "Z"},
        cli_required=("--scale",),
    ),
    "multilevel": RegisteredEstimator(
        "skmeta._multilevel:MultilevelMeta",
        cli_metadata={"--groups": "groups"},
        cli_required=("--groups",),
    ),
    "robust": RegisteredEstimator("skmeta._robust:RobustMeta"),
    "selection": RegisteredEstimator("skmeta._selection:SelectionModelMeta"),
}


def estimator_class(name: str) -> type:
    """Import and return the class registered under ``name``."""
    module, _, attribute = ESTIMATORS[name].path.partition(":")
    return getattr(import_module(module), attribute)


def public_classes() -> dict[str, str]:
    """Public class name -> its module, for ``skmeta``'s lazy imports."""
    return {
        entry.path.partition(":")[2]: entry.path.partition(":")[0]
        for entry in ESTIMATORS.values()
    }
