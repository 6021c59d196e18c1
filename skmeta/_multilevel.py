"""Multilevel (nested, random-slope) meta-regression: Stata's ``meta meregress``
and metafor's ``rma.mv``, with dependent effect sizes and robust variance
estimation."""

import warnings
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import special
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from skmeta._base import MISSING_POLICIES, _BaseMeta
from skmeta._compat import Interval, StrOptions, _fit_context
from skmeta._engine import _dependence as dep
from skmeta._engine import _ml_fit, _sandwich
from skmeta._engine import _multilevel as ml
from skmeta._engine._inference import (
    boundary_pvalue,
    information_criteria,
    wald_test,
)
from skmeta._engine._ml_structures import make_cov_spec
from skmeta.utils._validation import (
    check_confidence_level,
    check_groups,
    check_sample_var,
)

_STRUCTURES = ("independent", "identity", "exchangeable", "unstructured")
_ROBUST_KINDS = ("cr0", "cr1", "cr2")


class _TrainingData(NamedTuple):
    """What the fit keeps for post-estimation and refits."""

    y: np.ndarray
    v: np.ndarray
    X: np.ndarray  # design with the intercept column
    codes: np.ndarray  # (k, L) nested group codes
    Zlev: list  # per level (k, q_l) design [1, Z_slopes] or None
    structures: list
    sampling: dep.BlockCovariance | None
    reml: bool


def _group_frame(values, index, effects, columns_name=None):
    """BLUP frame: columns ``estimate, se`` (intercept only) or a column
    MultiIndex (``estimate``/``se``, effect) with random slopes."""
    est, se = values
    if len(effects) == 1:
        return pd.DataFrame({"estimate": est[:, 0], "se": se[:, 0]}, index=index)
    columns = pd.MultiIndex.from_product(
        [["estimate", "se"], effects], names=[None, "effect"]
    )
    return pd.DataFrame(np.hstack([est, se]), index=index, columns=columns)


class MultilevelMeta(_BaseMeta):
    r"""Multilevel meta-regression with nested random intercepts and slopes.

    .. math::

        y = X\beta + \sum_{l=1}^{L} Z_l u_l + e,\qquad
        u_{l,g} \sim N(0, \Sigma_l),\qquad e \sim N(0, V),

    where level :math:`l` (outermost first) has one random vector
    :math:`u_{l,g}` per group :math:`g`, with design row :math:`z_{l,i} = (1,
    Z_{i,S_l})` (a random intercept and random slopes on the columns
    :math:`S_l` of ``Z``), groups of level :math:`l+1` are nested in those of
    level :math:`l`, and the sampling covariance :math:`V` is known:
    :math:`\mathrm{diag}(v)` for independent sampling errors, or block diagonal
    by outermost group for dependent effect sizes (``rho`` or ``sample_cov``).
    This is Stata's ``meta meregress y X || g1: Z_S1 || g2: ...`` and metafor's
    ``rma.mv(yi, V, mods = X, random = ~ 1 | g1/g2/...)`` (with
    ``struct = "GDIAG"`` / ``"GEN"`` for independent / unstructured random slopes).

    :math:`\Sigma_l` is estimated by REML or ML with :math:`\beta` profiled out;
    :math:`\hat\beta` is the GLS estimate with model-based covariance
    :math:`(X^\top \hat\Theta^{-1} X)^{-1}`, :math:`\Theta` the marginal
    covariance, or a cluster-robust (sandwich) covariance (``cluster_robust``).
    The likelihood is evaluated cluster by cluster (outermost groups are
    independent): an O(k) nested Woodbury recursion for random-intercept models
    (also with correlated sampling errors in one- and two-level models whose
    inner groups are single effect sizes), batched per-cluster Cholesky
    factorizations otherwise (cost O(sum of cubed cluster sizes)); never a
    dense k×k matrix. The optimizer (projected BFGS with analytic gradients on a
    parametrization that keeps every :math:`\Sigma_l` positive semi-definite)
    runs from ``n_starts`` starting points, keeps the best optimum and certifies
    it with Newton steps (the likelihood of random-slope models can have several
    local maxima, e.g. Stata's example 5, whose printed solution is a local
    maximum: see the tests).

    Parameters
    ----------
    method : {"reml", "ml"}, default="reml"
        Restricted or full maximum likelihood.
    random_slopes : None, dict or list, default=None
        Which columns of ``Z`` (passed to ``fit``) get random slopes at which
        level: a dict ``{level: columns}`` or a list with one entry per level;
        ``level`` is a position (0 = outermost) or a level name (column of a
        ``groups`` DataFrame), ``columns`` a list of positions or names of ``Z``
        columns. ``None``: random intercepts only.
    covariance : str, array-like or list, default="independent"
        Structure of each level's (intercept, slopes) covariance matrix: one
        value for all levels or a list with one per level: ``"independent"``
        (distinct variances, no correlations), ``"identity"`` (one common
        variance), ``"exchangeable"`` (one variance, one correlation),
        ``"unstructured"``, or a custom (q_l, q_l) object array in the order
        ``[intercept, *slopes]``: NaN/None = free, a number = fixed (standard
        deviations on the diagonal, correlations off it), equal strings = equal
        parameters (Stata's ``covariance(custom)``; note that Stata orders the
        rows ``[slopes..., _cons]`` while skmeta puts the intercept first).
    rho : float in (-1, 1) or None, default=None
        Correlation of the sampling errors of effect sizes in the same
        outermost group: :math:`V_{ij} = \rho\sqrt{v_i v_j}` (metafor's
        ``vcalc(vi, cluster, obs, rho)``, clubSandwich's
        ``impute_covariance_matrix(vi, cluster, r)``). ``None`` (or 0):
        independent sampling errors. With ``groups = [study, effect]`` and
        ``cluster_robust="cr2"`` this is the correlated-and-hierarchical-effects
        (CHE) working model of Pustejovsky & Tipton (2022). A hyperparameter, so
        it passes through cross-validation (e.g. a sensitivity grid).
    cluster_robust : {None, "cr0", "cr1", "cr2"}, default=None
        Covariance of the fixed effects: ``None`` model-based (z tests, Wald
        chi-square); otherwise cluster-robust with the outermost groups as
        clusters and the fitted model as working model: ``"cr0"`` (no small-sample
        factor), ``"cr1"`` (factor J/(J-p), metafor's default ``robust()``,
        clubSandwich's ``"CR1p"``), both with t(J-p) tests and F(q, J-p)
        omnibus tests; ``"cr2"`` (bias-reduced linearization, metafor's
        ``robust(clubSandwich=TRUE)``) with Satterthwaite degrees of freedom per
        coefficient and per ``predict_interval`` row, and the HTZ small-sample F
        test for the moderators.
    fit_intercept : bool, default=True
        Whether the fixed part has an intercept.
    max_iter : int, default=500
        Maximum number of optimizer iterations per start.
    tol : float, default=1e-10
        Convergence tolerance: the optimum is certified when a Newton step
        would increase the log-likelihood by at most ``tol * (1 + |loglik|)``.
    n_starts : int, default=None
        Number of interior starting points (boundary starts are added);
        ``None``: 3 for random-intercept models, 8 with random slopes.
    missing : {"raise", "drop"}, default="raise"
        ``"drop"`` leaves out effect sizes whose y, sample_var, X, Z or groups
        hold NaN (the rows and columns of ``sample_cov`` too).

    Attributes
    ----------
    intercept_, coef_, cov_params_ : float, ndarray, ndarray
        Fixed effects and their covariance (model-based or cluster-robust).
    sigma2_ : ndarray of shape (n_levels,)
        Random-intercept variance of every level.
    re_covariances_ : dict of DataFrame
        Per level name, the (q_l, q_l) covariance matrix :math:`\hat\Sigma_l`,
        indexed ``["intercept", *slopes]``. See :meth:`re_parameters` for the
        SD/correlation and variance/covariance tables.
    level_names_ : list of str
    n_groups_ : Series of int
        Number of groups per level.
    q_, q_pvalue_ : float
        Cochran's test of residual heterogeneity :math:`Q = r^\top V^{-1} r`
        of the fixed-effect fit with the sampling covariance :math:`V`
        (metafor's ``QE``, Stata's multilevel :math:`Q_M`), :math:`\chi^2_{k-p}`.
    qm_, qm_pvalue_ : float
        Omnibus test that all moderators are 0: Wald :math:`\chi^2`, or F with
        (q, J-p) df under CR0/CR1, or the HTZ F under CR2 (``nan`` without
        moderators).
    i2_ : Series
        In percent, by level: Higgins–Thompson
        :math:`I^2_l = \sigma^2_l/(\sum_j\sigma^2_j + \tilde v)` (Nakagawa and
        Santos 2012; :math:`\tilde v = (k-p)/\mathrm{tr}\,P`, :math:`P = W - W X
        (X^\top W X)^{-1} X^\top W`, :math:`W = V^{-1}`), then ``"total"``
        and ``"cochran"``: :math:`I^2_Q = (Q - (k-p))/Q`; from the
        random-intercept variances.
    h2_ : Series
        :math:`H^2 = (\sigma^2 + \tilde v)/\tilde v` by level (the ratio the
        model would have with that level's variance alone), ``"total"``
        (:math:`\sum_l \sigma^2_l`) and ``"cochran"`` (:math:`Q/(k-p)`).
    random_effects_ : dict of DataFrame
        Per level name, the BLUPs of the groups' random effects and their
        standard errors (prediction-error SDs, metafor's ``ranef``), indexed by
        group label: columns ``estimate, se`` for a random intercept; with random
        slopes a column MultiIndex (``"estimate"``/``"se"``, effect), so that
        ``frame["estimate"]`` has one column per random effect.
    robust_dof_ : ndarray of shape (n_params,) or None
        Degrees of freedom of the coefficients' t tests under ``cluster_robust``
        (J - p, or Satterthwaite under CR2).
    optima_ : list of float
        Distinct local maxima of the (restricted) log-likelihood reached from
        the starts, best first.
    loglik_ : float
        Maximised (restricted) log-likelihood; REML includes metafor's
        :math:`+\tfrac12\log|X^\top X|`, which is also what Stata prints.
    aic_, bic_, aicc_, caic_ : float
        Information criteria; under REML, BIC, AICc and CAIC use :math:`k-p`
        observations (metafor; Stata's ``estimates stats, n(k-p)``).
    n_params_, dof_, n_iter_, converged_, n_features_in_, feature_names_in_

    Notes
    -----
    ``groups=None`` in ``fit`` means one group per observation (a standard
    random-effects meta-analysis) and ``sample_var=None`` means zero sampling
    variances (an ordinary linear mixed model). Levels with a single group
    raise (their variance is not identifiable from the intercept), as do random
    slopes at a level whose groups hold one observation each. With
    ``method="ml"``, sampling variances of 0 that the fixed effects can fit
    exactly make the likelihood unbounded (it increases as every variance
    component goes to 0): that is an error; use REML.

    **Metadata routing.** ``sample_var``, ``groups`` and ``Z`` are requested by
    default for ``fit`` and ``score``. ``GroupKFold`` also takes a metadata
    called ``groups`` (1-D: the clusters to keep together), so passing a 2-D
    ``groups`` to ``cross_validate`` reaches the splitter too, which fails with
    numpy's "object too deep for desired array". Route the levels under another
    name::

        est = MultilevelMeta().set_fit_request(groups="levels")
        est.set_score_request(groups="levels")
        cross_validate(est, X, y, cv=GroupKFold(5),
                       params={"sample_var": v, "levels": G, "groups": G[:, 0]})

    ``sample_cov`` is fit-only: it is not requested for routing (a k×k matrix
    cannot be split by rows); use ``rho`` to vary the correlation under
    cross-validation.

    References
    ----------
    Konstantopoulos, S. (2011). Fixed effects and variance components estimation
    in three-level meta-analysis. Research Synthesis Methods, 2, 61–76.
    Sera, F., Armstrong, B., Blangiardo, M., Gasparrini, A. (2019). An extended
    mixed-effects framework for meta-analysis. Statistics in Medicine, 38.
    Pustejovsky, J. E. & Tipton, E. (2022). Meta-analysis with robust variance
    estimation: expanding the range of working models. Prevention Science, 23,
    425–438.
    Tipton, E. & Pustejovsky, J. E. (2015). Small-sample adjustments for tests of
    moderators and model fit using robust variance estimation in
    meta-regression. Journal of Educational and Behavioral Statistics, 40,
    604–634.

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta import MultilevelMeta
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(10), 4)
    >>> y = 0.3 + rng.normal(0, 0.3, 10)[g] + rng.normal(0, 0.2, 40)
    >>> groups = np.column_stack([g, np.arange(40)])
    >>> m = MultilevelMeta().fit(None, y, sample_var=np.full(40, 0.02), groups=groups)
    >>> m.sigma2_.shape
    (2,)
    """

    __metadata_request__fit = {"sample_var": True, "groups": True, "Z": True}
    __metadata_request__score = {"sample_var": True, "groups": True, "Z": True}

    _model_name = "Multilevel meta-regression"

    _parameter_constraints: dict = {
        "method": [StrOptions({"reml", "ml"})],
        "random_slopes": [dict, list, None],
        "covariance": [str, list, tuple, "array-like"],
        "rho": [Interval(Real, -1, 1, closed="neither"), None],
        "cluster_robust": [StrOptions(set(_ROBUST_KINDS)), None],
        "fit_intercept": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "n_starts": [Interval(Integral, 1, None, closed="left"), None],
        "missing": [StrOptions(set(MISSING_POLICIES))],
    }

    def __init__(
        self,
        *,
        method="reml",
        random_slopes=None,
        covariance="independent",
        rho=None,
        cluster_robust=None,
        fit_intercept=True,
        max_iter=500,
        tol=1e-10,
        n_starts=None,
        missing="raise",
    ):
        self.method = method
        self.random_slopes = random_slopes
        self.covariance = covariance
        self.rho = rho
        self.cluster_robust = cluster_robust
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.n_starts = n_starts
        self.missing = missing

    # ------------------------------------------------------------ validation
    def _check_groups(self, groups, k, *, fitting):
        """Validated labels (k, L) of object dtype and the level names."""
        if groups is None:
            names = ["group"] if fitting else self.level_names_
            if len(names) != 1:
                raise ValueError(
                    f"groups is required: the model has {len(names)} levels."
                )
            return np.arange(k).reshape(-1, 1), names
        names = None
        if isinstance(groups, pd.DataFrame):
            names = [str(c) for c in groups.columns]
        elif isinstance(groups, pd.Series):
            names = [str(groups.name) if groups.name is not None else "level0"]
        G = np.asarray(
            groups.to_numpy()
            if isinstance(groups, pd.DataFrame | pd.Series)
            else groups
        )
        if G.ndim == 1:
            G = G.reshape(-1, 1)
        if G.ndim != 2:
            raise ValueError(f"groups must be 1-D or 2-D, got {G.ndim} dimensions.")
        if G.shape[0] != k:
            raise ValueError(
                f"groups has {G.shape[0]} rows but X and y have n_samples={k}."
            )
        if names is None:
            names = [f"level{j}" for j in range(G.shape[1])]
        return G, names

    def _check_Z(self, Z, k):
        if Z is None:
            return None, []
        names = None
        if isinstance(Z, pd.DataFrame):
            names = [str(c) for c in Z.columns]
            Z = Z.to_numpy(dtype=float)
        try:
            Z = np.asarray(Z, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Z must be numeric: {exc}") from None
        if Z.ndim == 1:
            Z = Z.reshape(-1, 1)
        if Z.ndim != 2 or Z.shape[0] != k:
            raise ValueError(
                f"Z must have shape (n_samples, q) with n_samples={k}; got {Z.shape}."
            )
        if not np.all(np.isfinite(Z)):
            raise ValueError("Z contains NaN or infinity.")
        if names is None:
            names = [f"z{j}" for j in range(Z.shape[1])]
        return Z, names

    def _level_index(self, level, name="level"):
        """Position of a level given by position (0 = outermost) or name."""
        names = self.level_names_
        if isinstance(level, str):
            if level not in names:
                raise ValueError(
                    f"{name}: unknown level {level!r}; levels are {names}."
                )
            return names.index(level)
        if isinstance(level, bool | np.bool_) or not isinstance(level, Integral):
            raise ValueError(
                f"{name} must be a level name {names} or a position "
                f"0..{len(names) - 1}; got {level!r}."
            )
        if not 0 <= int(level) < len(names):
            raise ValueError(
                f"{name}={level} is out of range: the model has {len(names)} level(s) "
                f"{names} (positions 0..{len(names) - 1}, 0 = outermost)."
            )
        return int(level)

    def _slope_columns(self, level_names, z_names):
        """Per level, the indices of the Z columns with random slopes."""
        L = len(level_names)
        rs = self.random_slopes
        out = [[] for _ in range(L)]
        if rs is None:
            return out
        if not isinstance(rs, dict) and len(rs) != L:
            raise ValueError(
                f"random_slopes has {len(rs)} entries but groups has {L} levels."
            )
        items = rs.items() if isinstance(rs, dict) else enumerate(rs)
        for lev, cols in items:
            if isinstance(lev, str):
                if lev not in level_names:
                    raise ValueError(
                        f"random_slopes: unknown level {lev!r}; levels are "
                        f"{level_names}."
                    )
                lev = level_names.index(lev)
            if not 0 <= int(lev) < L:
                raise ValueError(f"random_slopes: level {lev} out of range (L={L}).")
            if cols is None:
                continue
            if isinstance(cols, str | Integral):
                cols = [cols]
            for c in cols:
                if isinstance(c, str):
                    if c not in z_names:
                        raise ValueError(
                            f"random_slopes: Z has no column {c!r} (columns: "
                            f"{z_names})."
                        )
                    c = z_names.index(c)
                if not 0 <= int(c) < len(z_names):
                    raise ValueError(
                        f"random_slopes: Z column {c} out of range; Z has "
                        f"{len(z_names)} column(s) (pass Z to fit)."
                    )
                out[int(lev)].append(int(c))
        return out

    def _structures(self, L, slopes, level_names):
        cov = self.covariance
        if isinstance(cov, str):
            if cov not in _STRUCTURES:
                raise ValueError(
                    f"covariance must be one of {_STRUCTURES} or a custom matrix; "
                    f"got {cov!r}."
                )
            structures = [cov] * L
        elif isinstance(cov, list | tuple) and (
            len(cov) == L and all(isinstance(c, str) or np.ndim(c) == 2 for c in cov)
        ):
            structures = list(cov)
        elif np.asarray(cov, dtype=object).ndim == 2:
            structures = [np.asarray(cov, dtype=object)] * L
        else:
            raise ValueError(
                f"covariance must be a structure name, a custom (q, q) matrix, or a "
                f"list of {L} of those (one per level)."
            )
        for lev in range(L):
            try:
                make_cov_spec(structures[lev], 1 + len(slopes[lev]))
            except ValueError as exc:
                raise ValueError(
                    f"covariance at level {level_names[lev]!r}: {exc}"
                ) from None
        return structures

    def _sampling_covariance(self, v, codes, G, sample_cov):
        """The block-diagonal sampling covariance, or None when independent."""
        clusters = codes[:, 0]
        if sample_cov is not None:
            if self.rho is not None:
                raise ValueError(
                    "Pass either rho or sample_cov, not both: sample_cov is the full "
                    "sampling covariance."
                )
            cov = dep.matrix_covariance(sample_cov, clusters)
            if not np.allclose(cov.diag, v, rtol=1e-10, atol=0.0):
                raise ValueError(
                    "sample_var differs from the diagonal of sample_cov; pass "
                    "sample_var=None (the diagonal is used) or the same variances."
                )
            bad = dep.nonpositive_clusters(dep.cluster_blocks(cov, clusters))
            if bad.size:
                labels = [G[np.flatnonzero(clusters == c)[0], 0] for c in bad[:5]]
                raise ValueError(
                    f"sample_cov is not positive definite within {bad.size} "
                    f"cluster(s) of the outermost level, e.g. {labels}."
                )
            return None if cov.is_diagonal else cov
        if self.rho is None or self.rho == 0:
            return None
        sizes = np.bincount(clusters)
        if self.rho < 0 and sizes.max() > 1 and self.rho <= -1.0 / (sizes.max() - 1):
            raise ValueError(
                f"rho={self.rho} makes the sampling correlation matrix of the largest "
                f"cluster ({sizes.max()} effect sizes) not positive definite: a "
                f"constant correlation needs rho > -1/(n - 1) = "
                f"{-1.0 / (sizes.max() - 1):.4g}."
            )
        return dep.correlation_covariance(v, clusters, self.rho)

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, *, sample_var=None, groups=None, Z=None, sample_cov=None):
        """Fit the multilevel model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
            Moderators (fixed effects); ``None``: intercept only.
        y : array-like of shape (n_samples,)
            Effect sizes.
        sample_var : array-like of shape (n_samples,), default=None
            Known sampling variances (>= 0); ``None`` means zeros (or, with
            ``sample_cov``, its diagonal).
        groups : array-like or DataFrame of shape (n_samples, n_levels)
            Group labels, outermost level first (1-D: one level); a label is
            nested in its parent. ``None``: one group per observation.
        Z : array-like or DataFrame of shape (n_samples, q), default=None
            Covariates that may get random slopes (see ``random_slopes``).
        sample_cov : array-like or sparse matrix of shape (n_samples, n_samples)
            Known sampling covariance of dependent effect sizes (e.g. from
            :func:`skmeta.impute_covariance`): symmetric, positive definite
            within, and zero between, the outermost groups. Fit-only (not
            routed by default); excludes ``rho``.

        Returns
        -------
        self : MultilevelMeta
        """
        if sample_cov is not None and sample_var is None:
            sample_var = _diagonal(sample_cov)
        X, y, v, design, meta = self._validate_training_data(
            X, y, sample_var, groups=groups, Z=Z, sample_cov=sample_cov
        )
        data, G, level_names, slopes, z_names = self._training_data(y, v, design, meta)
        n_starts = self.n_starts or (8 if any(slopes) else 3)
        res = _ml_fit.fit_multilevel(
            data.y,
            data.v,
            data.X,
            data.codes,
            data.Zlev,
            data.structures,
            sampling=data.sampling,
            reml=data.reml,
            max_iter=self.max_iter,
            tol=self.tol,
            n_starts=n_starts,
        )
        if not np.isfinite(res.loglik):
            raise ValueError(
                "The marginal covariance is singular at the optimum (e.g. zero "
                "sample_var and zero variance at the innermost level)."
            )
        self._store_fit(res, data, G, level_names, slopes, z_names)
        return self

    def _training_data(self, y, v, design, meta):
        """Validate groups, Z and the structures; encode the levels."""
        k = design.shape[0]
        G, level_names = self._check_groups(meta["groups"], k, fitting=True)
        Zarr, z_names = self._check_Z(meta["Z"], k)
        L = G.shape[1]
        codes = check_groups(G, k, allow_2d=True)
        n_groups = codes.max(axis=0) + 1
        for lev in range(L):
            if n_groups[lev] < 2:
                raise ValueError(
                    f"groups: level {level_names[lev]!r} has a single group; its "
                    "variance cannot be separated from the intercept. Drop the level."
                )
        if self.random_slopes and Zarr is None:
            raise ValueError("random_slopes were given but Z was not passed to fit.")
        slopes = self._slope_columns(level_names, z_names)
        for lev in range(L):
            if slopes[lev] and np.bincount(codes[:, lev]).max() < 2:
                raise ValueError(
                    f"random_slopes at level {level_names[lev]!r}: every group "
                    "has a single observation, so slope variances are not "
                    "identifiable (Stata estimates them as practically 0)."
                )
        structures = self._structures(L, slopes, level_names)
        Zlev = ml.level_designs(Zarr, slopes, k)
        self._check_zero_variances(v, codes, design)
        sampling = self._sampling_covariance(v, codes, G, meta.get("sample_cov"))
        data = _TrainingData(
            y, v, design, codes, Zlev, structures, sampling, self.method == "reml"
        )
        return data, G, level_names, slopes, z_names

    def _check_zero_variances(self, v, codes, design):
        if not np.any(v == 0):
            return
        inner_sizes = np.bincount(codes[:, -1])
        zero_groups = np.unique(codes[v == 0, -1])
        if np.any(inner_sizes[zero_groups] > 1):
            raise ValueError(
                "sample_var has zeros in innermost groups with several "
                "observations, so their marginal covariance is singular. Add "
                "an observation-level column to groups (e.g. np.arange(k)), "
                "whose variance is then the residual variance."
            )
        zero = design[v == 0]
        if (
            self.method == "ml"
            and design.shape[1]
            and zero.shape[0] <= design.shape[1]
            and np.linalg.matrix_rank(zero) == zero.shape[0]
        ):
            raise ValueError(
                "method='ml' with sample_var = 0: the likelihood increases without "
                "bound as every variance component goes to 0 (the fixed effects fit "
                "the studies with zero sampling variance exactly). Use "
                "method='reml', or positive sample_var."
            )

    def _store_fit(self, res, data, G, level_names, slopes, z_names):
        k, p = data.X.shape
        L = len(level_names)
        self.converged_ = res.converged
        self.n_iter_ = res.n_iter
        if not self.converged_:
            warnings.warn(
                "The (restricted) likelihood maximization did not converge; "
                "increase max_iter or n_starts.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.level_names_ = level_names
        self.n_groups_ = pd.Series(
            data.codes.max(axis=0) + 1, index=level_names, name="n_groups"
        )
        self.dof_ = k - p
        self.optima_ = list(res.optima)
        self._fit = res
        self._data = data
        self._slopes = slopes
        self._z_names = z_names
        self._re_names = [
            ["intercept", *[z_names[c] for c in slopes[lev]]] for lev in range(L)
        ]
        self._sigmas = [np.array(S) for S in res.sigmas]
        self.sigma2_ = np.array([S[0, 0] for S in self._sigmas])
        self.re_covariances_ = {
            level_names[lev]: pd.DataFrame(
                self._sigmas[lev],
                index=self._re_names[lev],
                columns=self._re_names[lev],
            )
            for lev in range(L)
        }
        n_cov = sum(s.n_params for s in res.specs)
        self._set_fit_statistics(res.loglik, p + n_cov, k, p, data.reml)
        n_ic = k - p if data.reml else k
        self.caic_ = -2.0 * self.loglik_ + self.n_params_ * (np.log(n_ic) + 1.0)
        self._set_inference(res)
        self._set_heterogeneity()
        self.random_effects_ = self._blup_frames(res.blups, G)

    def _set_inference(self, res):
        """Fixed effects, their covariance (model-based or robust) and tests."""
        data = self._data
        self._robust = None
        self.robust_dof_ = None
        cov = res.cov
        if self.cluster_robust is not None:
            J = int(self.n_groups_.iloc[0])
            p = data.X.shape[1]
            if J <= p:
                raise ValueError(
                    f"cluster_robust needs more clusters (outermost groups) than "
                    f"fixed effects: groups has {J} cluster(s) and the model {p} "
                    "coefficient(s)."
                )
            self._robust = ml.robust_covariance(
                data.y,
                data.v,
                data.X,
                data.codes,
                data.Zlev,
                self._sigmas,
                res.beta,
                self.cluster_robust,
                data.sampling,
            )
            cov = self._robust.cov
            self.robust_dof_ = np.asarray(self._robust.dof, dtype=float)
        self._set_fixed_effects(res.beta, cov)
        index = self._moderator_index
        if self._robust is not None and index.size:
            test = _sandwich.cluster_wald_test(self._robust, res.beta, index)
            self.qm_, self.qm_pvalue_ = test.statistic, test.p_value
            self._qm_df = (test.df_num, test.df_denom, test.test)
        else:
            test = wald_test(self._beta, self.cov_params_, index, float("inf"))
            self.qm_, self.qm_pvalue_ = test.statistic, test.p_value
            self._qm_df = (test.df1, test.df2, "chi2")

    def _set_heterogeneity(self):
        data = self._data
        stats_fe = ml.fixed_effect_statistics(
            data.y, data.v, data.X, data.sampling, data.codes[:, 0]
        )
        self.q_, self.q_pvalue_ = stats_fe.q, stats_fe.p_value
        self._typical_var = stats_fe.typical_var
        s2 = self.sigma2_
        vt = stats_fe.typical_var
        total = float(s2.sum())
        df = stats_fe.df
        q = stats_fe.q
        cochran_i2 = 100.0 * max(0.0, (q - df) / q) if q > 0 else 0.0
        index = [*self.level_names_, "total", "cochran"]
        self.i2_ = pd.Series(
            [*(100.0 * s2 / (total + vt)), 100.0 * total / (total + vt), cochran_i2],
            index=index,
            name="I2 (%)",
        )
        self.h2_ = pd.Series(
            [*((s2 + vt) / vt), (total + vt) / vt, q / df if df > 0 else np.nan],
            index=index,
            name="H2",
        )

    def _blup_frames(self, blups, G):
        """BLUPs labelled by the group's own label path."""
        codes = self._data.codes
        k = codes.shape[0]
        out = {}
        for lev, name in enumerate(self.level_names_):
            first = np.zeros(int(self.n_groups_.iloc[lev]), dtype=np.int64)
            first[codes[::-1, lev]] = np.arange(k)[::-1]
            if lev == 0:
                labels = pd.Index(G[first, 0], name=self.level_names_[0])
            else:
                labels = pd.MultiIndex.from_arrays(
                    [G[first, j] for j in range(lev + 1)],
                    names=self.level_names_[: lev + 1],
                )
            b = blups[lev]
            out[name] = _group_frame((b.estimate, b.se), labels, self._re_names[lev])
        return out

    # ------------------------------------------------------------ reporting
    def re_parameters(self, kind="sd"):
        """Random-effects parameters as Stata prints them.

        Parameters
        ----------
        kind : {"sd", "var"}, default="sd"
            ``"sd"``: standard deviations and correlations (Stata's default,
            ``stddeviations``); ``"var"``: variances and covariances.

        Returns
        -------
        DataFrame
            Index (level, parameter), e.g. ``("district", "sd(intercept)")``,
            ``("district", "corr(year_c, intercept)")``; column ``estimate``, and
            a boolean column ``fixed`` when a custom structure fixes some of
            them.
        """
        check_is_fitted(self)
        if kind not in ("sd", "var"):
            raise ValueError(f"kind must be 'sd' or 'var'; got {kind!r}.")
        rows, idx = [], []
        for lev, name in enumerate(self.level_names_):
            S = self._sigmas[lev]
            spec = self._fit.specs[lev]
            names = self._re_names[lev]
            sd = np.sqrt(np.maximum(np.diag(S), 0.0))
            for a, n in enumerate(names):
                fixed = spec.kind == "sdcorr" and spec.sd_index[a] < 0
                if fixed:  # report the fixed value itself, not its round trip
                    sd[a] = spec.sd_fixed[a]
                idx.append((name, f"{kind}({n})"))
                rows.append((sd[a] if kind == "sd" else S[a, a], fixed))
            for a in range(len(names)):
                for b in range(a):
                    fixed = False
                    if spec.kind == "sdcorr":
                        if spec.corr_index[a, b] < 0 and spec.corr_fixed[a, b] == 0:
                            continue  # structurally zero (independent/identity)
                        fixed = spec.corr_index[a, b] < 0
                    if kind == "sd":
                        den = sd[a] * sd[b]
                        val = S[a, b] / den if den > 0 else np.nan
                        if fixed:
                            val = float(spec.corr_fixed[a, b])
                        lab = f"corr({names[a]}, {names[b]})"
                    else:
                        val = S[a, b]
                        lab = f"cov({names[a]}, {names[b]})"
                    idx.append((name, lab))
                    rows.append((val, fixed))
        frame = pd.DataFrame(
            rows,
            index=pd.MultiIndex.from_tuples(idx, names=["level", "parameter"]),
            columns=["estimate", "fixed"],
        )
        return frame if frame["fixed"].any() else frame[["estimate"]]

    def sigma2_confint(self, level=0, confidence_level=0.95):
        """Profile-likelihood confidence interval of a level's intercept variance.

        The bounds solve :math:`2(\\ell_{max} - \\ell_p(\\sigma^2_l)) =
        \\chi^2_{1}(\\text{confidence\\_level})`, re-maximizing all other
        variance parameters (metafor's ``confint(res, sigma2=l)``).

        Parameters
        ----------
        level : int or str, default=0
            Position (0 = outermost) or name of the level.
        confidence_level : float, default=0.95

        Returns
        -------
        DataFrame
            Index ``sigma2, sigma``; columns ``estimate, ci_lower, ci_upper``.
        """
        check_is_fitted(self)
        lev = self._level_index(level)
        confidence_level = check_confidence_level(confidence_level)
        lo, hi = _ml_fit.profile_ci(self._fit, lev, confidence_level)
        s2 = self.sigma2_[lev]
        return pd.DataFrame(
            {
                "estimate": [s2, np.sqrt(s2)],
                "ci_lower": [lo, np.sqrt(lo)],
                "ci_upper": [hi, np.sqrt(hi)],
            },
            index=["sigma2", "sigma"],
        )

    def lr_test_level(self, level):
        """Likelihood-ratio test that a level's random effects are all zero.

        Refits the model without level ``level`` (the remaining levels keep
        their nesting; the same starts and tolerances as the fit) and compares
        the (restricted) log-likelihoods. Under H0 the variance is on the
        boundary: the p-value of the 50:50 mixture of :math:`\\chi^2_{d-1}` and
        :math:`\\chi^2_{d}` (Self and Liang 1987) is reported beside the naive
        :math:`\\chi^2_d` one (d = number of covariance parameters of the level).

        Parameters
        ----------
        level : int or str
            Position (0 = outermost) or name of the level.

        Returns
        -------
        LRTestResult
            ``statistic, df, p_value, p_value_boundary`` and ``table`` (rows
            ``full`` and ``reduced`` with ``n_params, aic, bic, aicc, loglik``).
        """
        from skmeta._tools import LRTestResult

        check_is_fitted(self)
        lev = self._level_index(level)
        data = self._data
        L = data.codes.shape[1]
        if L < 2:
            raise ValueError("the model has a single level; nothing to compare.")
        if lev == 0 and data.sampling is not None:
            raise ValueError(
                "the outermost level defines the clusters of the correlated "
                "sampling errors (rho or sample_cov): it cannot be dropped."
            )
        keep = [j for j in range(L) if j != lev]
        codes = ml.encode_nested_groups(data.codes[:, keep])
        res = _ml_fit.fit_multilevel(
            data.y,
            data.v,
            data.X,
            codes,
            [data.Zlev[j] for j in keep],
            [data.structures[j] for j in keep],
            sampling=data.sampling,
            reml=data.reml,
            max_iter=self.max_iter,
            tol=self.tol,
            n_starts=self.n_starts or (8 if any(self._slopes) else 3),
        )
        stat = max(0.0, 2.0 * (self.loglik_ - res.loglik))
        df = self._fit.specs[lev].n_params
        k, p = data.X.shape
        n_params = p + sum(s.n_params for s in res.specs)
        aic, bic, aicc = information_criteria(res.loglik, n_params, k, p, data.reml)
        table = pd.DataFrame(
            {
                "n_params": [self.n_params_, n_params],
                "aic": [self.aic_, aic],
                "bic": [self.bic_, bic],
                "aicc": [self.aicc_, aicc],
                "loglik": [self.loglik_, res.loglik],
            },
            index=["full", "reduced"],
        )
        p_naive = float(special.chdtrc(df, stat))
        return LRTestResult(float(stat), df, p_naive, boundary_pvalue(stat, df), table)

    # ----------------------------------------------------------- prediction
    def _new_level_var(self, Zarr, n):
        """Per row, the variance of sum_l z_l' u_l for new groups at every level."""
        total = np.zeros(n)
        for lev, S in enumerate(self._sigmas):
            cols = self._slopes[lev]
            if cols:
                if Zarr is None:
                    raise ValueError(
                        "Z is required: the model has random slopes on Z columns."
                    )
                z = np.column_stack([np.ones(n), Zarr[:, cols]])
                total += np.einsum("ia,ab,ib->i", z, S, z)
            else:
                total += S[0, 0]
        return total

    def predict_interval(self, X=None, *, confidence_level=0.95, Z=None):
        """Mean effect with confidence and prediction intervals.

        The prediction interval is for the true effect of a new study in new
        groups at every level: :math:`\\hat\\mu \\pm c\\sqrt{SE^2 +
        \\sum_l z_l^\\top\\hat\\Sigma_l z_l}` (metafor's ``predict`` for
        ``rma.mv``); c is the normal quantile, or under ``cluster_robust`` the
        t quantile with J - p (CR0, CR1) or the row's Satterthwaite degrees of
        freedom (CR2, clubSandwich's ``linear_contrast``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), default=None
        confidence_level : float, default=0.95
        Z : array-like of shape (n_samples, q), default=None
            Needed when the model has random slopes.

        Returns
        -------
        DataFrame
            Columns ``mean, se, ci_lower, ci_upper, pi_lower, pi_upper``.
        """
        X = self._validate_new_X(X)
        n = X.shape[0]
        Zarr, _ = self._check_Z(Z, n) if Z is not None else (None, [])
        return self._interval_frame(
            self._design(X), confidence_level, self._new_level_var(Zarr, n)
        )

    def _coef_dof(self):
        if self.robust_dof_ is not None:
            return self.robust_dof_
        return float("inf")

    def _contrast_dof(self, design):
        if self._robust is None:
            return float("inf")
        if self._robust.kind == "cr2":
            return _sandwich.contrast_dof(self._robust, design)
        return float(self._robust.n_clusters - design.shape[1])

    def _new_levels(self, v, groups, Z, sample_cov):
        """Group codes, level designs and sampling covariance of new data."""
        k = v.shape[0]
        G, _ = self._check_groups(groups, k, fitting=False)
        if G.shape[1] != len(self.level_names_):
            raise ValueError(
                f"groups has {G.shape[1]} level(s) but the model has "
                f"{len(self.level_names_)}."
            )
        codes = check_groups(G, k, allow_2d=True)
        Zarr, _ = self._check_Z(Z, k)
        if any(self._slopes) and Zarr is None:
            raise ValueError("Z is required: the model has random slopes.")
        Zlev = ml.level_designs(Zarr, self._slopes, k)
        if sample_cov is None and self._data.sampling is not None and self.rho is None:
            raise ValueError(
                "The model was fitted with sample_cov: pass the sampling "
                "covariance of these effect sizes as sample_cov."
            )
        sampling = self._sampling_covariance(v, codes, G, sample_cov)
        return codes, Zlev, sampling

    def score(
        self,
        X,
        y,
        sample_weight=None,
        *,
        sample_var=None,
        groups=None,
        Z=None,
        sample_cov=None,
    ):
        """Log-likelihood of ``y`` under the fitted model (a total).

        The Gaussian density of ``y`` with mean :math:`X\\hat\\beta` and the
        nested covariance :math:`V + \\sum_l Z_l(I\\otimes \\hat\\Sigma_l)Z_l^\\top`
        of the given ``groups``: groups are treated as new groups (their random
        effects are integrated out), so held-out clusters of ``GroupKFold`` are
        scored correctly; the sampling covariance V uses ``rho`` with these
        studies' ``sample_var``. With ``method="ml"`` and the training data it
        equals ``loglik_``.

        Parameters
        ----------
        X, y : array-like
        sample_weight : None
            Must be None (or all ones): observations within a group are
            correlated, so per-observation weights are not defined.
        sample_var, groups, Z : array-like, default=None
            As in ``fit``; ``groups=None`` means one group per observation
            (valid only for a one-level model).
        sample_cov : array-like or sparse matrix, default=None
            The held-out sampling covariance, required for a model fitted with
            ``sample_cov`` (not routed by default).

        Returns
        -------
        float
        """
        if sample_cov is not None and sample_var is None:
            sample_var = _diagonal(sample_cov)
        X, y, v, sample_weight = self._score_inputs(X, y, sample_weight, sample_var)
        if sample_weight is not None and not np.all(sample_weight == 1):
            raise ValueError(
                "sample_weight is not supported by MultilevelMeta.score: the "
                "observations of a group are correlated."
            )
        codes, Zlev, sampling = self._new_levels(v, groups, Z, sample_cov)
        return ml.marginal_loglik(
            y, v, self._design(X), codes, Zlev, self._sigmas, self._beta, sampling
        )

    # ------------------------------------------------------------------ summary
    def _summary_title(self):
        k = self.dof_ + self._beta.shape[0]
        method = "REML" if self.method == "reml" else "ML"
        return (
            f"Multilevel {method} meta-regression "
            f"(k = {k}; levels: {', '.join(self.level_names_)})"
        )

    def _summary_info(self, confidence_level):
        info = [(f"groups ({n})", int(g)) for n, g in self.n_groups_.items()]
        if self.rho is not None:
            info.append(("sampling correlation (rho)", float(self.rho)))
        elif self._data.sampling is not None:
            info.append(("sampling covariance", "sample_cov"))
        info += [(f"Q (df = {self.dof_})", self.q_), ("p-value (Q)", self.q_pvalue_)]
        if np.isfinite(self.qm_):
            df1, df2, kind = self._qm_df
            if kind == "chi2":
                label = f"QM (df = {df1})"
            else:
                name = "F (HTZ)" if kind == "HTZ" else "F"
                label = f"{name} (df = {df1:g}, {df2:.4g})"
            info += [(label, self.qm_), ("p-value (QM)", self.qm_pvalue_)]
        return info + self._fit_statistics_info() + [("CAIC", self.caic_)]

    def _summary_sections(self, confidence_level):
        re = self.re_parameters("sd")
        re.index = [f"{a}: {b}" for a, b in re.index]
        het = pd.DataFrame({"I2 (%)": self.i2_, "H2": self.h2_})
        sections = [("Random-effects parameters", re), ("Heterogeneity", het)]
        if self.robust_dof_ is not None:
            dof = pd.DataFrame(
                {"df": self.robust_dof_}, index=pd.Index(self._term_names, name="term")
            )
            kind = "Satterthwaite" if self.cluster_robust == "cr2" else "J - p"
            sections.insert(0, (f"Degrees of freedom of the t tests ({kind})", dof))
        return sections

    def _summary_notes(self, confidence_level):
        if self._robust is not None:
            notes = [
                f"Cluster-robust covariance ({self.cluster_robust.upper()}, "
                f"{self._robust.n_clusters} clusters of {self.level_names_[0]}); "
                "t tests with the degrees of freedom listed."
            ]
        else:
            notes = super()._summary_notes(confidence_level)
        if len(self.optima_) > 1:
            notes.append(
                f"The likelihood has {len(self.optima_)} local maxima among the "
                f"starts; the best ({self.optima_[0]:.4f}) is reported."
            )
        return notes

    # --------------------------------------------------------- self-description
    def _model_label(self):
        return f"Multilevel Model ({self.method.upper()})"

    def _study_weights(self, sample_var, *, groups=None, Z=None, sample_cov=None):
        """Percentage weights: the diagonal of :math:`\\hat\\Theta^{-1}`.

        metafor's ``weights(type = "diagonal")`` of ``rma.mv``, with
        :math:`\\hat\\Theta` the fitted marginal covariance of the given
        studies (their ``groups``, ``Z`` and sampling covariance), normalised to
        sum to 100. Cluster by cluster, never a k x k matrix.
        """
        check_is_fitted(self)
        if sample_cov is not None and sample_var is None:
            sample_var = _diagonal(sample_cov)
        if sample_var is None:
            raise ValueError("sample_var is required for the weights.")
        v = check_sample_var(sample_var, (np.shape(sample_var)[0],))
        k = v.shape[0]
        codes, Zlev, sampling = self._new_levels(v, groups, Z, sample_cov)
        w = ml.inverse_variance_diagonal(
            np.zeros(k), v, np.zeros((k, 0)), codes, Zlev, self._sigmas, sampling
        )
        return 100.0 * w / w.sum()


def _diagonal(matrix):
    """The diagonal of a dense or scipy sparse square matrix."""
    if hasattr(matrix, "diagonal") and hasattr(matrix, "tocoo"):
        return np.asarray(matrix.diagonal(), dtype=float).reshape(-1)
    arr = np.asarray(matrix)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(
            f"sample_cov must be a square (n_samples, n_samples) matrix; got shape "
            f"{arr.shape}."
        )
    return np.diagonal(arr).astype(float)
