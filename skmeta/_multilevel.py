"""Multilevel (nested, random-slope) meta-regression: Stata's ``meta meregress``."""

import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from skmeta._base import MISSING_POLICIES, _BaseMeta
from skmeta._compat import Interval, StrOptions, _fit_context
from skmeta._engine import _multilevel as ml
from skmeta._engine._inference import wald_test

_STRUCTURES = ("independent", "identity", "exchangeable", "unstructured")


def _factorize_columns(G):
    """Integer codes of the labels of every column of G (any hashable labels)."""
    out = np.empty(G.shape, dtype=np.int64)
    for j in range(G.shape[1]):
        col = G[:, j]
        if col.dtype == object:
            col = pd.Series(col, dtype=object)
        out[:, j] = pd.factorize(col, sort=False)[0]
    return out


class MultilevelMeta(_BaseMeta):
    r"""Multilevel meta-regression with nested random intercepts and slopes.

    .. math::

        y = X\beta + \sum_{l=1}^{L} Z_l u_l + e,\qquad
        u_{l,g} \sim N(0, \Sigma_l),\qquad e \sim N(0, \mathrm{diag}(v)),

    where level :math:`l` (outermost first) has one random vector
    :math:`u_{l,g}` per group :math:`g`, with design row :math:`z_{l,i} = (1,
    Z_{i,S_l})` (a random intercept and random slopes on the columns
    :math:`S_l` of ``Z``), groups of level :math:`l+1` are nested in those of
    level :math:`l`, and the sampling variances :math:`v_i` are known.  This is
    Stata's ``meta meregress y X || g1: Z_S1 || g2: ...`` and metafor's
    ``rma.mv(yi, vi, mods = X, random = ~ 1 | g1/g2/...)`` (with
    ``struct = "GDIAG"`` / ``"GEN"`` for independent / unstructured random slopes).

    :math:`\Sigma_l` is estimated by REML or ML with :math:`\beta` profiled out;
    :math:`\hat\beta` is the GLS estimate with covariance
    :math:`(X^\top \hat V^{-1} X)^{-1}`.  The likelihood is evaluated cluster by
    cluster (outermost groups are independent): an O(k) nested Woodbury
    recursion for random-intercept models, batched per-cluster Cholesky
    factorizations with random slopes (cost O(sum of cubed cluster sizes));
    never a dense k×k matrix.  The optimizer
    (L-BFGS with analytic gradients on a parametrization that keeps every
    :math:`\Sigma_l` positive semi-definite) runs from ``n_starts`` starting
    points and keeps the best optimum, because the likelihood of random-slope
    models can have several local maxima (e.g. Stata's example 5, whose
    printed solution is a local maximum: see the tests).

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
        Parametrizations: a plain Cholesky factor for ``"unstructured"`` (so
        that boundary solutions such as a correlation of exactly 1, Stata's
        example 6, are reached), standard deviations and ``tanh``-correlations
        otherwise; a custom matrix that is not positive semi-definite has
        likelihood -inf.
    fit_intercept : bool, default=True
        Whether the fixed part has an intercept.
    max_iter : int, default=500
        Maximum number of optimizer iterations per start.
    tol : float, default=1e-10
        Relative tolerance (change of the log-likelihood) of the final run
        that polishes the best optimum.
    n_starts : int, default=None
        Number of starting points; ``None``: 3 for random-intercept models, 8
        with random slopes.

    Attributes
    ----------
    intercept_, coef_, cov_params_ : float, ndarray, ndarray
        Fixed effects and their covariance :math:`(X^\top\hat V^{-1}X)^{-1}`.
    sigma2_ : ndarray of shape (n_levels,)
        Random-intercept variance of every level.
    re_covariances_ : dict of DataFrame
        Per level name, the (q_l, q_l) covariance matrix :math:`\hat\Sigma_l`,
        indexed ``["intercept", *slopes]``. See :meth:`re_parameters` for the
        SD/correlation and variance/covariance tables.
    level_names_ : list of str
    n_groups_ : ndarray of shape (n_levels,)
    q_m_, q_m_pvalue_ : float
        Stata's multilevel Cochran :math:`Q_M` test of residual homogeneity
        (residual sum of squares of the fixed-effect fit, :math:`\chi^2_{k-p}`).
    wald_, wald_pvalue_ : float
        Wald :math:`\chi^2` test that all moderators are 0 (``nan`` without).
    i2_ : Series
        ``"cochran"``: :math:`I^2_Q = (Q_M - (k-p))/Q_M`; one entry per level:
        Higgins–Thompson :math:`I^2_l = \sigma^2_l/(\sum_j\sigma^2_j + \tilde v)`
        (Nakagawa and Santos 2012; :math:`\tilde v = (k-p)/\mathrm{tr}P_{FE}`),
        and ``"total"``; in percent, from the random-intercept variances.
    random_effects_ : dict of DataFrame
        Per level name, the BLUPs of the groups' random effects (columns
        ``intercept, *slopes``) and their standard errors (``se_intercept``, ...;
        prediction-error SDs, metafor's ``ranef``), indexed by group label.
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
    slopes at a level whose groups hold one observation each. Under metadata
    routing ``sample_var``, ``groups`` and ``Z`` are requested by default for
    ``fit`` and ``score``.

    References
    ----------
    Konstantopoulos, S. (2011). Fixed effects and variance components estimation
    in three-level meta-analysis. Research Synthesis Methods, 2, 61–76.
    Sera, F., Armstrong, B., Blangiardo, M., Gasparrini, A. (2019). An extended
    mixed-effects framework for meta-analysis. Statistics in Medicine, 38.

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

    _parameter_constraints: dict = {
        "method": [StrOptions({"reml", "ml"})],
        "random_slopes": [dict, list, None],
        "covariance": [str, list, tuple, "array-like"],
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
        fit_intercept=True,
        max_iter=500,
        tol=1e-10,
        n_starts=None,
        missing="raise",
    ):
        self.method = method
        self.random_slopes = random_slopes
        self.covariance = covariance
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.n_starts = n_starts
        self.missing = missing

    # ------------------------------------------------------------ validation
    def _check_groups(self, groups, k, *, fitting):
        if groups is None:
            if fitting:
                names = ["group"]
            else:
                names = self.level_names_
            if len(names) != 1:
                raise ValueError(
                    f"groups is required: the model has {len(names)} levels."
                )
            return np.arange(k).reshape(-1, 1).astype(object), names
        names = None
        if isinstance(groups, pd.DataFrame):
            names = [str(c) for c in groups.columns]
        elif isinstance(groups, pd.Series):
            names = [str(groups.name) if groups.name is not None else "level0"]
        if isinstance(groups, pd.DataFrame | pd.Series):
            G = groups.to_numpy()
        else:
            G = np.asarray(groups)
        if G.ndim == 1:
            G = G.reshape(-1, 1)
        if G.ndim != 2:
            raise ValueError(f"groups must be 1-D or 2-D, got {G.ndim} dimensions.")
        if G.shape[0] != k:
            raise ValueError(
                f"groups has {G.shape[0]} rows but X and y have n_samples={k}."
            )
        missing = pd.isna(G) if G.dtype.kind not in "iub" else np.zeros(G.shape, bool)
        if np.any(missing):
            raise ValueError(
                f"groups contains {int(np.sum(missing))} missing label(s) (NaN/None)."
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

    def _slope_columns(self, level_names, z_names):
        """Per level, the indices of the Z columns with random slopes."""
        L = len(level_names)
        rs = self.random_slopes
        out = [[] for _ in range(L)]
        if rs is None:
            return out
        items = rs.items() if isinstance(rs, dict) else enumerate(rs)
        if not isinstance(rs, dict) and len(rs) != L:
            raise ValueError(
                f"random_slopes has {len(rs)} entries but groups has {L} levels."
            )
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

    def _structures(self, L):
        cov = self.covariance
        if isinstance(cov, str):
            if cov not in _STRUCTURES:
                raise ValueError(
                    f"covariance must be one of {_STRUCTURES} or a custom matrix; "
                    f"got {cov!r}."
                )
            return [cov] * L
        if isinstance(cov, list | tuple) and (
            len(cov) == L and all(isinstance(c, str) or np.ndim(c) == 2 for c in cov)
        ):
            return list(cov)
        arr = np.asarray(cov, dtype=object)
        if arr.ndim == 2:
            return [arr] * L
        raise ValueError(
            f"covariance must be a structure name, a custom (q, q) matrix, or a "
            f"list of {L} of those (one per level)."
        )

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, *, sample_var=None, groups=None, Z=None):
        """Fit the multilevel model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
            Moderators (fixed effects); ``None``: intercept only.
        y : array-like of shape (n_samples,)
            Effect sizes.
        sample_var : array-like of shape (n_samples,), default=None
            Known sampling variances (>= 0); ``None`` means zeros.
        groups : array-like or DataFrame of shape (n_samples, n_levels)
            Group labels, outermost level first (1-D: one level); a label is
            nested in its parent. ``None``: one group per observation.
        Z : array-like or DataFrame of shape (n_samples, q), default=None
            Covariates that may get random slopes (see ``random_slopes``).

        Returns
        -------
        self : MultilevelMeta
        """
        X, y, v, design, meta = self._validate_training_data(
            X, y, sample_var, groups=groups, Z=Z
        )
        k, p = design.shape
        G, level_names = self._check_groups(meta["groups"], k, fitting=True)
        Zarr, z_names = self._check_Z(meta["Z"], k)
        L = G.shape[1]
        codes = ml.encode_nested_groups(_factorize_columns(G))
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
        Zlev = []
        for lev in range(L):
            if slopes[lev]:
                sizes = np.bincount(codes[:, lev])
                if sizes.max() < 2:
                    raise ValueError(
                        f"random_slopes at level {level_names[lev]!r}: every group "
                        "has a single observation, so slope variances are not "
                        "identifiable (Stata estimates them as practically 0)."
                    )
                Zlev.append(np.column_stack([np.ones(k), Zarr[:, slopes[lev]]]))
            else:
                Zlev.append(None)
        structures = self._structures(L)
        for lev in range(L):
            q = 1 + len(slopes[lev])
            try:
                ml.make_cov_spec(structures[lev], q)
            except ValueError as exc:
                raise ValueError(
                    f"covariance at level {level_names[lev]!r}: {exc}"
                ) from None
        reml = self.method == "reml"
        n_starts = self.n_starts or (8 if any(slopes) else 3)
        inner_sizes = np.bincount(codes[:, -1])
        if np.any(v == 0) and inner_sizes.max() > 1:
            zero_groups = np.unique(codes[v == 0, -1])
            if np.any(inner_sizes[zero_groups] > 1):
                raise ValueError(
                    "sample_var has zeros in innermost groups with several "
                    "observations, so their marginal covariance is singular. Add "
                    "an observation-level column to groups (e.g. np.arange(k)), "
                    "whose variance is then the residual variance."
                )
        # the linear algebra is on tiny matrices, where BLAS threads only add
        # wake-up latency (several ms per optimizer step on a loaded machine)
        with threadpool_limits(limits=1, user_api="blas"):
            res = ml.fit_multilevel(
                y,
                v,
                design,
                codes,
                Zlev,
                structures,
                reml=reml,
                max_iter=self.max_iter,
                tol=self.tol,
                n_starts=n_starts,
            )
        if not np.isfinite(res["loglik"]):
            raise ValueError(
                "The marginal covariance is singular at the optimum (e.g. zero "
                "sample_var and zero variance at the innermost level)."
            )
        self.converged_ = res["converged"]
        # at least the evaluation at the (best) start counts as one iteration
        self.n_iter_ = max(int(res["n_iter"]), 1)
        if not self.converged_:
            warnings.warn(
                "The (restricted) likelihood maximization did not converge; "
                "increase max_iter or n_starts.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._set_fixed_effects(res["beta"], res["cov_beta"])
        self.level_names_ = level_names
        self.n_groups_ = n_groups
        self.dof_ = k - p
        self.optima_ = list(res["optima"])
        self._specs = res["specs"]
        self._sigmas = [np.array(S) for S in res["sigmas"]]
        self._slopes = slopes
        self._z_names = z_names
        self._re_names = [
            ["intercept", *[z_names[c] for c in slopes[lev]]] for lev in range(L)
        ]
        self.sigma2_ = np.array([S[0, 0] for S in self._sigmas])
        self.re_covariances_ = {
            level_names[lev]: pd.DataFrame(
                self._sigmas[lev],
                index=self._re_names[lev],
                columns=self._re_names[lev],
            )
            for lev in range(L)
        }
        n_cov = sum(s.n_params for s in self._specs)
        self._set_fit_statistics(res["loglik"], p + n_cov, k, p, reml)
        n_ic = k - p if reml else k
        self.caic_ = -2.0 * self.loglik_ + self.n_params_ * (np.log(n_ic) + 1.0)
        qm, df, qp = ml.cochran_qm(y, v, design)
        self.q_m_, self.q_m_pvalue_ = qm, qp
        i2 = ml.i2_multilevel(v, design, self.sigma2_, qm, df)
        self.i2_ = pd.Series(
            [i2["cochran"], *i2["levels"], i2["total"]],
            index=["cochran", *level_names, "total"],
            name="I2 (%)",
        )
        test = wald_test(
            self._beta, self.cov_params_, self._moderator_index, float("inf")
        )
        self.wald_, self.wald_pvalue_ = test.statistic, test.p_value
        # BLUPs, labelled by the group's own label (the last element of its path)
        self.random_effects_ = {}
        for lev in range(L):
            u, se = res["blups"][lev]
            first = np.zeros(n_groups[lev], dtype=np.int64)
            first[codes[::-1, lev]] = np.arange(k)[::-1]
            if lev == 0:
                labels = pd.Index(G[first, 0], name=level_names[0])
            else:
                labels = pd.MultiIndex.from_arrays(
                    [G[first, j] for j in range(lev + 1)], names=level_names[: lev + 1]
                )
            cols = self._re_names[lev]
            frame = pd.DataFrame(u, index=labels, columns=cols)
            for j, c in enumerate(cols):
                frame[f"se_{c}"] = se[:, j]
            self.random_effects_[level_names[lev]] = frame
        self._train = (y, v, design, codes, Zlev, structures, reml)
        return self

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
            ``("district", "corr(year_c, intercept)")``; columns ``estimate`` and
            ``fixed`` (True where the custom structure fixed it).
        """
        check_is_fitted(self)
        if kind not in ("sd", "var"):
            raise ValueError(f"kind must be 'sd' or 'var'; got {kind!r}.")
        rows, idx = [], []
        for lev, name in enumerate(self.level_names_):
            S = self._sigmas[lev]
            spec = self._specs[lev]
            names = self._re_names[lev]
            sd = np.sqrt(np.maximum(np.diag(S), 0.0))
            for a, n in enumerate(names):
                fixed = spec.kind == "sdcorr" and spec.sd_index[a] < 0
                val = sd[a] if kind == "sd" else S[a, a]
                idx.append((name, f"{kind}({n})"))
                rows.append((val, fixed))
            for a in range(len(names)):
                for b in range(a):
                    if spec.kind == "sdcorr":
                        if spec.corr_index[a, b] < 0 and spec.corr_fixed[a, b] == 0:
                            continue  # structurally zero (independent/identity)
                        fixed = spec.corr_index[a, b] < 0
                    else:
                        fixed = False
                    if kind == "sd":
                        den = sd[a] * sd[b]
                        val = S[a, b] / den if den > 0 else np.nan
                        lab = f"corr({names[a]}, {names[b]})"
                    else:
                        val = S[a, b]
                        lab = f"cov({names[a]}, {names[b]})"
                    idx.append((name, lab))
                    rows.append((val, fixed))
        return pd.DataFrame(
            rows,
            index=pd.MultiIndex.from_tuples(idx, names=["level", "parameter"]),
            columns=["estimate", "fixed"],
        )

    def sigma2_confint(self, level=0, confidence_level=0.95):
        """Profile-likelihood confidence interval of a level's intercept variance.

        The bounds solve :math:`2(\\ell_{max} - \\ell_p(\\sigma^2_l)) =
        \\chi^2_{1}(\\text{confidence\\_level})`, re-maximizing all other
        variance parameters (metafor's ``confint(res, sigma2=l)``).

        Parameters
        ----------
        level : int or str, default=0
        confidence_level : float, default=0.95

        Returns
        -------
        DataFrame
            Index ``sigma2, sigma``; columns ``estimate, ci_lower, ci_upper``.
        """
        check_is_fitted(self)
        if isinstance(level, str):
            level = self.level_names_.index(level)
        y, v, design, codes, Zlev, structures, reml = self._train
        fit = {
            "loglik": self.loglik_,
            "specs": self._specs,
            "theta": None,
            "design": None,
        }
        # parameters and design of the original-scale problem
        thetas = []
        for spec, S in zip(self._specs, self._sigmas, strict=True):
            th = ml.theta_from_sigma(spec, S)
            thetas.append(th)
        fit["theta"] = np.concatenate(thetas)
        if all(z is None for z in Zlev):
            fit["design"] = ml.prepare_intercepts(y, v, design, codes)
        if fit["design"] is None:
            fit["design"] = ml.prepare_design(y, v, design, codes, Zlev)
        lo, hi = ml.profile_ci(
            y,
            v,
            design,
            codes,
            Zlev,
            structures,
            level,
            fit,
            reml=reml,
            confidence_level=confidence_level,
            max_iter=self.max_iter,
        )
        s2 = self.sigma2_[level]
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
        their nesting) and compares the (restricted) log-likelihoods. Under
        H0 the variance is on the boundary: the p-value of the 50:50 mixture
        of :math:`\\chi^2_0` and :math:`\\chi^2_{d}` (Self and Liang 1987) is
        reported beside the naive :math:`\\chi^2_d` one (d = number of
        covariance parameters of the level).

        Returns
        -------
        dict
            ``statistic, df, p_value, p_value_mixture, loglik_reduced``.
        """
        check_is_fitted(self)
        if isinstance(level, str):
            level = self.level_names_.index(level)
        y, v, design, codes, Zlev, structures, reml = self._train
        L = codes.shape[1]
        if L < 2:
            raise ValueError("the model has a single level; nothing to compare.")
        keep = [j for j in range(L) if j != level]
        res = ml.fit_multilevel(
            y,
            v,
            design,
            codes[:, keep],
            [Zlev[j] for j in keep],
            [structures[j] for j in keep],
            reml=reml,
            max_iter=self.max_iter,
            tol=self.tol,
            n_starts=self.n_starts or 3,
        )
        stat = max(0.0, 2.0 * (self.loglik_ - res["loglik"]))
        df = self._specs[level].n_params
        p_naive = float(stats.chi2.sf(stat, df))
        p_mix = 0.5 * p_naive + (
            0.5 * float(stats.chi2.sf(stat, df - 1))
            if df > 1
            else (0.5 if stat == 0 else 0.0)
        )
        return {
            "statistic": stat,
            "df": df,
            "p_value": p_naive,
            "p_value_mixture": p_mix,
            "loglik_reduced": res["loglik"],
        }

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
        groups at every level: :math:`\\hat\\mu \\pm z\\sqrt{SE^2 +
        \\sum_l z_l^\\top\\hat\\Sigma_l z_l}` (metafor's ``predict`` for
        ``rma.mv``).

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

    def score(self, X, y, sample_weight=None, *, sample_var=None, groups=None, Z=None):
        """Log-likelihood of ``y`` under the fitted model (a total).

        The Gaussian density of ``y`` with mean :math:`X\\hat\\beta` and the
        nested covariance :math:`\\mathrm{diag}(v) + \\sum_l Z_l(I\\otimes
        \\hat\\Sigma_l)Z_l^\\top` of the given ``groups``: groups are treated as
        new groups (their random effects are integrated out), so held-out
        clusters of ``GroupKFold`` are scored correctly. With ``method="ml"`` and
        the training data it equals ``loglik_``.

        Parameters
        ----------
        X, y : array-like
        sample_weight : None
            Must be None (or all ones): observations within a group are
            correlated, so per-observation weights are not defined.
        sample_var, groups, Z : array-like, default=None
            As in ``fit``; ``groups=None`` means one group per observation
            (valid only for a one-level model).

        Returns
        -------
        float
        """
        X, y, v, sample_weight = self._score_inputs(X, y, sample_weight, sample_var)
        k = X.shape[0]
        if sample_weight is not None and not np.all(sample_weight == 1):
            raise ValueError(
                "sample_weight is not supported by MultilevelMeta.score: the "
                "observations of a group are correlated."
            )
        G, _ = self._check_groups(groups, k, fitting=False)
        if G.shape[1] != len(self.level_names_):
            raise ValueError(
                f"groups has {G.shape[1]} level(s) but the model has "
                f"{len(self.level_names_)}."
            )
        codes = ml.encode_nested_groups(_factorize_columns(G))
        Zarr, _ = self._check_Z(Z, k)
        Zlev = []
        for cols in self._slopes:
            if cols:
                if Zarr is None:
                    raise ValueError("Z is required: the model has random slopes.")
                Zlev.append(np.column_stack([np.ones(k), Zarr[:, cols]]))
            else:
                Zlev.append(None)
        return ml.gaussian_loglik(
            y, v, self._design(X), codes, Zlev, self._sigmas, self._beta
        )

    # ------------------------------------------------------------------ summary
    def _summary_title(self):
        k = self.dof_ + self._beta.shape[0]
        return (
            f"Multilevel {'REML' if self.method == 'reml' else 'ML'} meta-regression "
            f"(k = {k}; levels: {', '.join(self.level_names_)})"
        )

    def _summary_info(self, confidence_level):
        info = [
            (f"groups ({n})", int(g))
            for n, g in zip(self.level_names_, self.n_groups_, strict=True)
        ]
        info += [
            (f"Q_M (df = {self.dof_})", self.q_m_),
            ("p-value (Q_M)", self.q_m_pvalue_),
        ]
        if np.isfinite(self.wald_):
            info += [("Wald chi2", self.wald_), ("p-value (Wald)", self.wald_pvalue_)]
        return info + self._fit_statistics_info() + [("CAIC", self.caic_)]

    def _summary_sections(self, confidence_level):
        re = self.re_parameters("sd")
        re.index = [f"{a}: {b}" for a, b in re.index]
        return [
            ("Random-effects parameters", re),
            ("Heterogeneity", self.i2_.to_frame()),
        ]

    def _summary_notes(self, confidence_level):
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
