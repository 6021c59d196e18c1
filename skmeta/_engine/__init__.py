"""Pure numerical functions shared by the skmeta estimators.

Nothing in this package imports scikit-learn or keeps state: every function
takes ndarrays and returns ndarrays or small named tuples.
"""
