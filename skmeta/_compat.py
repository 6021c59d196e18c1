"""The only module that imports private scikit-learn API.

scikit-learn's own estimators and its project template validate hyperparameters
with these helpers; keeping the imports here makes a future break a one-file fix.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

__all__ = ["Interval", "StrOptions", "_fit_context"]
