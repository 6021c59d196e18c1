r"""Information-theoretic multimodel inference (Burnham & Anderson 2002, 2004).

For candidate models :math:`r = 1, \dots, R` with information criteria
:math:`c_r` (AIC, AICc or BIC):

* Akaike weights :math:`w_r = e^{-\Delta_r/2} / \sum_s e^{-\Delta_s/2}` with
  :math:`\Delta_r = c_r - \min_s c_s`;
* the importance of a term: the sum of the weights of the models containing it;
* the **full** average of a coefficient :math:`\bar\beta = \sum_r w_r
  \hat\beta_r`, with :math:`\hat\beta_r = 0` and :math:`SE_r = 0` in the models
  without the term, and the **conditional** average over the models containing
  it (weights renormalised);
* the revised unconditional standard error (Burnham & Anderson 2004, eq. 4)
  :math:`SE_u = \{\sum_r w_r [SE_r^2 + (\hat\beta_r - \bar\beta)^2]\}^{1/2}`,
  and its matrix form :math:`\sum_r w_r [V_r + (\hat\beta_r - \bar\beta)
  (\hat\beta_r - \bar\beta)^\top]` for the full average.

Arrays are indexed ``[model, coefficient]``; absent coefficients are stored as 0
together with a boolean ``included`` mask.
"""

from typing import NamedTuple

import numpy as np


def akaike_weights(criterion):
    """Differences to the best model and Akaike weights.

    Parameters
    ----------
    criterion : ndarray of shape (n_models,)

    Returns
    -------
    delta, weights : ndarray of shape (n_models,)
    """
    delta = criterion - criterion.min()
    raw = np.exp(-0.5 * delta)
    return delta, raw / raw.sum()


def term_importance(included, weights):
    """Sum of the weights of the models that contain each coefficient."""
    return weights @ included


class ModelAverage(NamedTuple):
    """Model-averaged coefficients with their unconditional standard errors."""

    estimate: np.ndarray  # (n_coef,)
    se: np.ndarray  # (n_coef,)


def model_average(estimates, std_errors, included, weights, *, conditional):
    """Full or conditional model average with the revised unconditional SE.

    Parameters
    ----------
    estimates, std_errors : ndarray of shape (n_models, n_coef)
        Zero where a coefficient is absent from a model.
    included : ndarray of bool, shape (n_models, n_coef)
    weights : ndarray of shape (n_models,)
        Akaike weights (summing to 1).
    conditional : bool
        Average over the models that contain each coefficient (weights
        renormalised) instead of over all models.

    Returns
    -------
    ModelAverage
    """
    w = np.broadcast_to(weights[:, None], estimates.shape)
    if conditional:
        w = np.where(included, w, 0.0)
        w = w / w.sum(axis=0)
    mean = np.sum(w * estimates, axis=0)
    spread = std_errors**2 + (estimates - mean) ** 2
    return ModelAverage(mean, np.sqrt(np.sum(w * spread, axis=0)))


def averaged_covariance(estimates, covariances, weights):
    r"""Unconditional covariance of the full model average.

    :math:`\sum_r w_r [V_r + (\hat\beta_r - \bar\beta)(\hat\beta_r -
    \bar\beta)^\top]`, with :math:`V_r` zero in the rows and columns of the
    coefficients absent from model :math:`r`; its diagonal is the squared
    revised unconditional standard error of the full average.

    Parameters
    ----------
    estimates : ndarray of shape (n_models, n_coef)
    covariances : ndarray of shape (n_models, n_coef, n_coef)
    weights : ndarray of shape (n_models,)

    Returns
    -------
    ndarray of shape (n_coef, n_coef)
    """
    dev = estimates - weights @ estimates
    return np.einsum("r,rij->ij", weights, covariances) + (dev.T * weights) @ dev
