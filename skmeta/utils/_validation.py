"""Validation of the arguments that skmeta's estimators and functions take."""

from numbers import Real

import numpy as np
import pandas as pd


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


def check_sample_var(sample_var, n_samples):
    """Validate ``sample_var``: 1-D, length ``n_samples``, finite and >= 0.

    ``None`` means zeros: the model is then an ordinary linear (mixed) model.

    Returns
    -------
    ndarray of shape (n_samples,), dtype float64
    """
    if sample_var is None:
        return np.zeros(n_samples)
    try:
        v = np.asarray(sample_var, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sample_var must be numeric: {exc}") from None
    if v.ndim == 2 and 1 in v.shape:
        v = v.ravel()
    if v.ndim != 1:
        raise ValueError(f"sample_var must be 1-D, got an array of shape {v.shape}.")
    if v.shape[0] != n_samples:
        raise ValueError(
            f"sample_var has {v.shape[0]} entries but X and y have "
            f"n_samples={n_samples}."
        )
    if not np.all(np.isfinite(v)):
        raise ValueError("sample_var contains NaN or infinity.")
    if np.any(v < 0):
        raise ValueError(
            f"sample_var must be >= 0; got {np.sum(v < 0)} negative value(s)."
        )
    return v


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
    codes : ndarray of int of shape (n_samples,) or (n_samples, n_levels)
        For 2-D input, level ``l``'s code identifies the label *path* from the
        outermost level to ``l`` (a label is nested in its parent).
    """
    if isinstance(groups, pd.DataFrame | pd.Series):
        groups = groups.to_numpy()
    g = np.asarray(groups, dtype=object)
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
    missing = pd.isna(g)
    if np.any(missing):
        raise ValueError(f"{name} contains {int(np.sum(missing))} missing label(s).")
    if g.ndim == 1:
        return _encode(g)
    codes = np.empty(g.shape, dtype=np.intp)
    path = np.zeros(n_samples, dtype=np.intp)
    for level in range(g.shape[1]):
        inner = _encode(g[:, level])
        path = _encode(np.stack([path, inner], axis=1).tolist(), tuples=True)
        codes[:, level] = path
    return codes


def _encode(labels, tuples=False):
    if tuples:
        labels = [tuple(x) for x in labels]
    keys = {}
    return np.fromiter(
        (keys.setdefault(x, len(keys)) for x in labels),
        dtype=np.intp,
        count=len(labels),
    )


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
