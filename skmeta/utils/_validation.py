"""Validation of the arguments that skmeta's estimators and functions take."""

import warnings
from numbers import Real

import numpy as np
import pandas as pd
from sklearn.exceptions import DataConversionWarning

from skmeta._engine._gls import dependent_columns
from skmeta._engine._multilevel import encode_nested_groups


def check_confidence_level(confidence_level, name="confidence_level"):
    """Validate a confidence level: a real number strictly between 0 and 1.

    Python and NumPy scalars (``0.9``, ``np.float32(0.9)``, ``np.array(0.9)``) are
    accepted; strings, ``None``, booleans, NaN, 0, 1 and values outside (0, 1) are
    not.

    Returns
    -------
    float
    """
    value = confidence_level
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise ValueError(
            f"{name} must be a number strictly between 0 and 1, got {value!r}."
        )
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        value = str(value)  # np.float32(0.9) means 0.9, not 0.899999976...
    value = float(value)
    if not 0.0 < value < 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}.")
    return value


def as_float_array(values, name, *, ndim=(1,), allow_nan=False, warn_column=False):
    """Convert numeric data (lists, arrays, Series, DataFrames) to float64.

    ``None`` entries, strings and other non-numbers are an error naming
    ``name``, as are infinities, and NaN unless ``allow_nan`` (then NaN marks a
    missing value). A column vector of shape (n, 1) counts as 1-D when 2-D is not
    allowed.

    Parameters
    ----------
    values : array-like
    name : str
        The argument's name, for error messages.
    ndim : tuple of int, default=(1,)
        Allowed numbers of dimensions.
    allow_nan : bool, default=False
    warn_column : bool, default=False
        Warn (scikit-learn's ``DataConversionWarning``) when a column vector is
        used as 1-D, as scikit-learn does for a target ``y``.

    Returns
    -------
    ndarray of float64
    """
    if values is None:
        raise ValueError(
            f"{name} is None: this estimator requires {name} to be passed, but the "
            f"target {name} is None."
        )
    if isinstance(values, pd.DataFrame | pd.Series):
        values = values.to_numpy(dtype=object)
    arr = np.asarray(values)
    if arr.dtype.kind in "USa":
        raise ValueError(f"{name} must hold numbers, got strings.")
    if arr.dtype.kind == "O":
        flat = arr.ravel()
        if any(x is None for x in flat):
            raise ValueError(
                f"{name} contains None; use NaN for missing values "
                "(with missing='drop') or remove those studies."
            )
        if any(isinstance(x, str | bytes) for x in flat):
            raise ValueError(f"{name} must hold numbers, got strings.")
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} must hold real numbers.")
    try:
        arr = arr.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold numbers: {exc}") from None
    if arr.ndim == 2 and 2 not in ndim and arr.shape[1] == 1:
        if warn_column:
            warnings.warn(
                f"A column-vector {name} was passed when a 1d array was expected. "
                "Please change its shape to (n_samples,), e.g. using ravel().",
                DataConversionWarning,
                stacklevel=4,
            )
        arr = arr[:, 0]
    if arr.ndim not in ndim:
        allowed = " or ".join(f"{d}-D" for d in sorted(set(ndim)))
        raise ValueError(
            f"{name} must be {allowed}, got an array of shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise ValueError(
            f"{name} is empty: found 0 sample(s); at least one study is needed."
        )
    if np.isfinite(arr.sum()):
        return arr  # no NaN and no infinity (one pass; an overflowing sum of
        # finite values falls through to the checks below, which pass it)
    if allow_nan:
        if np.any(np.isinf(arr)):
            raise ValueError(
                f"{name} contains NaN or infinity: infinity is not a valid value."
            )
    elif np.any(np.isnan(arr)):
        raise ValueError(
            f"{name} contains NaN (a missing value; use missing='drop' to leave out "
            "studies with missing values)."
        )
    elif np.any(np.isinf(arr)):
        raise ValueError(f"{name} contains infinity.")
    return arr


def check_sample_var(sample_var, shape, *, allow_nan=False):
    """Validate ``sample_var``: the shape of ``y``, finite (or NaN) and >= 0.

    ``None`` means zeros: the model is then an ordinary linear (mixed) model. A
    scalar is broadcast (``sample_var=0``: zeros on purpose). For multi-output
    ``y`` of shape (k, m), a 1-D ``sample_var`` of length k applies to every
    output.

    Parameters
    ----------
    sample_var : array-like, scalar or None
    shape : int or tuple of int
        The shape of ``y`` (an int means ``(n_samples,)``).
    allow_nan : bool, default=False
        NaN marks a missing value (``missing="drop"``).

    Returns
    -------
    ndarray of float64 of shape ``shape``
    """
    shape = tuple(shape) if isinstance(shape, tuple | list) else (int(shape),)
    if (
        type(sample_var) is np.ndarray
        and sample_var.dtype == np.float64
        and sample_var.shape == shape
        and sample_var.size
        and sample_var.min() >= 0
        and np.isfinite(sample_var.sum())
    ):
        # Fast path: a float64 array of y's shape whose minimum is >= 0 (so no
        # NaN and no negative value) and whose sum is finite (no infinity) is
        # what the checks below return unchanged.
        return sample_var
    if sample_var is None:
        return np.zeros(shape)
    if np.ndim(sample_var) == 0 and not isinstance(sample_var, str):
        v = np.full(
            shape, as_float_array([sample_var], "sample_var", allow_nan=True)[0]
        )
    else:
        v = as_float_array(
            sample_var, "sample_var", ndim=(1, len(shape)), allow_nan=True
        )
        if v.ndim == 1 and len(shape) == 2 and v.shape[0] == shape[0]:
            # one variance per study for every output: a read-only view
            v = np.broadcast_to(v[:, None], shape)
    if v.shape != shape:
        got = f"{v.shape[0]} entries" if v.ndim == 1 else f"shape {v.shape}"
        raise ValueError(
            f"sample_var has {got} but y has shape {shape} (n_samples={shape[0]})."
        )
    if v.min() >= 0:  # no NaN (it would propagate) and no negative value
        return v
    if not allow_nan and np.any(np.isnan(v)):
        raise ValueError(
            "sample_var contains NaN or infinity (use missing='drop' to leave out "
            "studies with missing values)."
        )
    if np.any(v < 0):
        raise ValueError(
            f"sample_var must be >= 0; got {int(np.sum(v < 0))} negative value(s)."
        )
    return v


def check_sample_weight(sample_weight, n_samples):
    """Validate per-study weights: ``None``, or finite and >= 0, one per study.

    Returns
    -------
    ndarray of shape (n_samples,) or None
    """
    if sample_weight is None:
        return None
    w = as_float_array(sample_weight, "sample_weight")
    if w.shape != (n_samples,):
        raise ValueError(
            f"sample_weight has {w.shape[0]} entries but n_samples={n_samples}."
        )
    if np.any(w < 0):
        raise ValueError("sample_weight must be >= 0.")
    return w


def check_user_weights(sample_weight, design, coefficients="fixed effect(s)"):
    """User weights of a weighted fit, scaled to a largest weight of 1, or None.

    Validated as by :func:`check_sample_weight`; the studies with a positive
    weight must identify the ``p`` coefficients of ``design`` (more of them than
    ``p``, with a full-rank design).
    """
    if sample_weight is None:
        return None
    k, p = design.shape
    a = check_sample_weight(sample_weight, k)
    positive = a > 0
    if not positive.any():
        raise ValueError(
            "sample_weight must contain at least one non-zero weight (all are 0)."
        )
    if positive.sum() <= p or dependent_columns(design[positive]):
        raise ValueError(
            "sample_weight: the studies with positive weight must identify the "
            f"{p} {coefficients} (more of them than that, with a full-rank design)."
        )
    return a / a.max()


def missing_rows(values, name, n_samples=None):
    """Boolean mask of the rows of ``values`` that hold a missing value.

    Numeric data: NaN; labels (``groups``): None or NaN. A (k, k) matrix whose
    name ends in ``"cov"`` (``sample_cov``) marks no row: NaN there is an error.
    """
    if name.endswith("cov"):
        return np.zeros(n_samples, dtype=bool)
    if isinstance(values, pd.DataFrame | pd.Series):
        values = values.to_numpy(dtype=object)
    arr = np.asarray(values)
    if arr.dtype.kind in "fc":
        miss = np.isnan(arr)
    else:
        miss = pd.isna(arr.astype(object))
    if miss.ndim == 2:
        miss = miss.any(axis=1)
    if n_samples is not None and miss.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {miss.shape[0]} rows but X and y have n_samples={n_samples}."
        )
    return miss


def take_rows(values, keep, name):
    """Rows ``keep`` of per-study metadata (rows and columns of a ``*cov``)."""
    if values is None:
        return None
    if hasattr(values, "iloc"):
        return (
            values.iloc[keep] if not name.endswith("cov") else values.iloc[keep, keep]
        )
    if name.endswith("cov"):
        if hasattr(values, "tocsr"):  # scipy sparse
            idx = np.flatnonzero(keep)
            return values.tocsr()[idx][:, idx]
        arr = np.asarray(values)
        return arr[np.ix_(keep, keep)]
    return np.asarray(values)[keep]


def check_groups(groups, n_samples, *, name="groups", allow_2d=False):
    """Validate cluster labels and encode them as integer codes.

    Parameters
    ----------
    groups : array-like of shape (n_samples,) or (n_samples, n_levels)
        Labels (any hashable). Missing labels (None/NaN) are an error.
    n_samples : int
    name : str
    allow_2d : bool

    Returns
    -------
    codes : ndarray of int64 of shape (n_samples,) or (n_samples, n_levels)
        1-D: labels numbered in order of first appearance. 2-D: level ``l``'s
        code identifies the label *path* from the outermost level to ``l`` (a
        label is nested in its parent: school 1 of district 11 and school 1 of
        district 12 are different schools).
    """
    if isinstance(groups, pd.DataFrame | pd.Series):
        groups = groups.to_numpy()
    g = np.asarray(groups)
    if g.ndim == 2 and not allow_2d:
        if g.shape[1] == 1:
            g = g[:, 0]
        else:
            raise ValueError(f"{name} must be 1-D, got an array of shape {g.shape}.")
    if g.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D, got {g.ndim} dimensions.")
    if g.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {g.shape[0]} rows but X and y have n_samples={n_samples}."
        )
    if g.ndim == 2 and g.shape[1] == 0:
        raise ValueError(f"{name} has no columns: give at least one level.")
    missing = pd.isna(g) if g.dtype.kind not in "iub" else np.zeros(g.shape, bool)
    if np.any(missing):
        raise ValueError(
            f"{name} contains {int(np.sum(missing))} missing label(s) (NaN/None)."
        )
    if g.ndim == 1:
        return factorize_labels(g[:, None])[:, 0]
    return encode_nested_groups(factorize_labels(g))


def factorize_labels(G):
    """Integer codes of the labels of every column of ``G`` (any hashable labels),
    numbered in order of first appearance."""
    out = np.empty(G.shape, dtype=np.int64)
    for j in range(G.shape[1]):
        col = G[:, j]
        if col.dtype == object:
            col = pd.Series(col, dtype=object)
        out[:, j] = pd.factorize(col, sort=False)[0]
    return out


def check_design(Z, n_samples, *, name="Z"):
    """Validate a 2-D numeric design given as metadata (e.g. the scale design ``Z``).

    Returns
    -------
    values : ndarray of shape (n_samples, q)
    names : ndarray of str or None
        Column names for DataFrame input.
    """
    names = None
    if isinstance(Z, pd.DataFrame):
        names = np.asarray(Z.columns.astype(str), dtype=object)
        Z = Z.to_numpy()
    elif isinstance(Z, pd.Series):
        names = np.asarray([str(Z.name)], dtype=object)
        Z = Z.to_numpy()
    try:
        values = np.asarray(Z, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got an array of shape {values.shape}.")
    if values.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {values.shape[0]} rows but X and y have n_samples={n_samples}."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or infinity.")
    return values, names
