"""RandomEffectsMeta against metafor's rma.uni, case by case.

Reference numbers: ``tests/reference/rma_uni.json``, written by
``tests/reference/make_reference_rma.R`` (R 4.2.2, metafor 3.8.1, metadat 1.2.0,
clubSandwich 0.5.8; the versions are in the JSON). Each case is one metafor fit:
a design (data, moderators, cluster labels), a tau^2 method and a test.

Tolerances
----------
* ``RTOL = 1e-6`` (with ``ATOL = 1e-9`` for quantities at or near 0) for every
  comparison with a closed-form fit (DL, HE, HS, HSk, SJ, GENQ, EE, fixed tau^2)
  and with the iterative fits (REML, ML, EB, PM, PMM), which the script records
  with metafor's own algorithms run to convergence (``threshold = tol = 1e-13``;
  the controls are stored in each case).
* With metafor's *default* controls, Fisher scoring (REML, ML, EB) stops at
  ``|delta tau^2| < 1e-5`` and ``uniroot`` (PM, PMM) at ``tol = eps^0.25 = 1.2e-4``.
  Their tau^2 differ from the converged values by up to 2.4e-5 (ML, where Fisher
  scoring converges linearly: bcg ~ ablat + year) and 2.6e-5 (PM/PMM), so
  ``test_tau2_matches_metafor_default_controls`` uses ``atol = 5e-5`` (Fisher
  scoring) and ``1.3e-4`` (uniroot's tol): we converge tighter than metafor's
  defaults, not looser.

Conventions taken from metafor (and SPEC section 2-3): I^2, R^2 are percentages;
``loglik_`` is the REML criterion (with +1/2 log|X'X|) for ``method="reml"`` and the
ML log-likelihood for every other method; ``dof_`` is k - p; ``qm_`` is the omnibus
test of the moderators (the F statistic under Knapp-Hartung and t), checked only for
models with moderators.
"""

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REF = json.loads(
    (Path(__file__).parent / "reference" / "rma_uni.json").read_text(encoding="utf-8")
)
DESIGNS = REF["designs"]
CASES = REF["cases"]

RTOL = 1e-6
ATOL = 1e-9

METHOD = {
    "REML": "reml",
    "ML": "ml",
    "DL": "dl",
    "PM": "pm",
    "PMM": "pmm",
    "HE": "he",
    "HS": "hs",
    "HSk": "hsk",
    "SJ": "sj",
    "EB": "eb",
    "GENQ": "genq",
    "EE": "fe",
}
TEST = {"z": "z", "t": "t", "knha": "knapp-hartung", "adhoc": "knapp-hartung-adhoc"}
ITERATIVE = {"REML", "ML", "EB", "PM", "PMM"}
# atol for tau^2 against metafor's default controls (see module docstring)
DEFAULT_CONTROL_ATOL = {
    "REML": 5e-5,
    "ML": 5e-5,
    "EB": 5e-5,
    "PM": 1.3e-4,
    "PMM": 1.3e-4,
}


def _arr(values):
    if values is None:
        return np.array([np.nan])
    if not isinstance(values, list):
        values = [values]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _mat(rows):
    return np.array(rows, dtype=float)


def design_data(name):
    """Return ``X`` (DataFrame or None), ``y``, ``v`` and the cluster labels."""
    d = DESIGNS[name]
    y = _arr(d["yi"])
    v = _arr(d["vi"])
    names = d["X_names"]
    X = pd.DataFrame({n: _arr(d["X"][n]) for n in names}) if names else None
    clusters = {
        key: np.asarray(val, dtype=object) for key, val in d["clusters"].items()
    }
    return X, y, v, clusters


def _genq_weights(case):
    label = case["weights_label"]
    if label in ("inverse_var", "unit"):
        return label
    return _arr(case["weights"])


def make_estimator(case, **extra):
    from skmeta import RandomEffectsMeta

    params = {
        "method": METHOD[case["method"]],
        "inference": TEST[case["test"]],
        "tau2": case.get("tau2_fixed"),
    }
    if case["method"] == "GENQ":
        params["genq_weights"] = _genq_weights(case)
    params.update(extra)
    return RandomEffectsMeta(**params)


@functools.cache
def fitted(case_index):
    case = CASES[case_index]
    X, y, v, _ = design_data(case["design"])
    return make_estimator(case).fit(X, y, sample_var=v)


@functools.cache
def fitted_robust(case_index, robust_index):
    case = CASES[case_index]
    rob = case["robust"][robust_index]
    X, y, v, clusters = design_data(case["design"])
    est = make_estimator(case, cluster_robust=rob["kind"])
    return est.fit(X, y, sample_var=v, groups=clusters[rob["cluster"]])


class Mismatches:
    """Collect every mismatch of a case, so that one failure reports them all."""

    def __init__(self, case_id):
        self.case_id = case_id
        self.errors = []

    def check(self, name, ours, ref, rtol=RTOL, atol=ATOL):
        ours = np.atleast_1d(np.asarray(ours, dtype=float))
        ref = np.atleast_1d(np.asarray(ref, dtype=float))
        if ours.shape != ref.shape:
            if ours.size == ref.size:
                ours = ours.reshape(ref.shape)
            else:
                self.errors.append(f"{name}: shape {ours.shape} vs metafor {ref.shape}")
                return
        if not np.allclose(ours, ref, rtol=rtol, atol=atol, equal_nan=True):
            self.errors.append(
                f"{name}: ours {ours.tolist()} vs metafor {ref.tolist()}"
            )

    def check_equal(self, name, ours, ref):
        if ours != ref:
            self.errors.append(f"{name}: ours {ours!r} vs metafor {ref!r}")

    def assert_ok(self):
        assert not self.errors, f"[{self.case_id}]\n" + "\n".join(self.errors)


def _is_genq(case):
    return case["method"] == "GENQ"


def _beta_record(case):
    """metafor record for the fixed effects.

    metafor fits the coefficients of a GENQ model by WLS with the GENQ weights
    themselves (sandwich covariance); skmeta uses the usual random-effects weights
    1/(v + tau^2) at the GENQ tau^2, whose metafor reference is
    ``rma(yi, vi, tau2 = <GENQ tau2>)`` (``fit_re_weights``, ``predict_re_weights``).
    """
    if _is_genq(case):
        return case["fit_re_weights"], case["predict_re_weights"]
    return case["fit"], case["predict"]


def _sqrt_scale_atol(case, est):
    """atol for quantities on the tau scale (tau, se of the BLUPs) at tau^2 = 0.

    Where the optimum is on the boundary, metafor run to convergence stops at a
    tau^2 of ~1e-15 (not exactly 0) and ours is 0; tau and the BLUP se (both in
    [0, tau]) then differ by up to sqrt(tau^2) ~ 5e-8, beyond ATOL although tau^2
    itself agrees to 1e-15. Off the boundary this returns ATOL.
    """
    tau2 = max(case["fit"]["tau2"], float(est.tau2_))
    return 1.01 * np.sqrt(tau2) if tau2 < 1e-10 else ATOL


def _has_mods(case):
    return bool(DESIGNS[case["design"]]["X_names"])


def _term_names(case):
    return ["intercept", *DESIGNS[case["design"]]["X_names"]]


def _ids(indices):
    return [CASES[i]["id"] for i in indices]


ALL = list(range(len(CASES)))
ESTIMATED = [i for i in ALL if CASES[i]["tau2_fixed"] is None]
RANDOM = [i for i in ESTIMATED if CASES[i]["method"] != "EE"]
MODS = [i for i in ALL if _has_mods(CASES[i])]
R2_CASES = [
    i for i in MODS if CASES[i]["fit"]["R2"] is not None and CASES[i]["method"] != "EE"
]
R2_FE = [i for i in MODS if CASES[i]["method"] == "EE"]
ITER = [i for i in ESTIMATED if CASES[i]["method"] in ITERATIVE]
RANEF = [i for i in ALL if "ranef_blup" in CASES[i]]
CONFINT = [i for i in ALL if "confint" in CASES[i]]
ROBUST = [(i, j) for i in ALL for j in range(len(CASES[i].get("robust", [])))]


# ----------------------------------------------------------------- tau^2


@pytest.mark.parametrize("idx", ALL, ids=_ids(ALL))
def test_tau2(idx):
    case = CASES[idx]
    est = fitted(idx)
    m = Mismatches(case["id"])
    m.check("tau2_", est.tau2_, case["fit"]["tau2"])
    if case["method"] != "EE" and case["tau2_fixed"] is None:
        m.check("tau2_se_", est.tau2_se_, case["fit"]["se_tau2"])
    m.assert_ok()


@pytest.mark.parametrize("idx", ITER, ids=_ids(ITER))
def test_tau2_matches_metafor_default_controls(idx):
    """Against metafor's default stopping rules, with the atol they justify."""
    case = CASES[idx]
    atol = DEFAULT_CONTROL_ATOL[case["method"]]
    assert fitted(idx).tau2_ == pytest.approx(case["fit_default"]["tau2"], abs=atol)


def test_clasp_ml_is_on_the_boundary():
    """CLASP, ML: metafor (default controls) prints tau = 0.0023, i.e. tau^2 =
    5.2e-6, an artefact of stopping Fisher scoring at |delta| < 1e-5 while creeping
    towards the boundary. The ML criterion is maximized at tau^2 = 0 (metafor run to
    convergence gives 7e-15), so ours must be 0 up to 1e-8."""
    idx = next(i for i in ALL if CASES[i]["id"] == "clasp|ML|z")
    assert CASES[idx]["fit_default"]["tau2"] == pytest.approx(5.21e-6, rel=1e-2)
    assert 0.0 <= fitted(idx).tau2_ <= 1e-8


# --------------------------------------------------------- fixed effects


@pytest.mark.parametrize("idx", ALL, ids=_ids(ALL))
def test_coefficients(idx):
    case = CASES[idx]
    fit, _ = _beta_record(case)
    est = fitted(idx)
    beta = _arr(fit["beta"])
    m = Mismatches(case["id"])
    m.check("intercept_", est.intercept_, beta[0])
    m.check("coef_", est.coef_, beta[1:])
    m.check("cov_params_", est.cov_params_, _mat(fit["vcov"]))
    m.assert_ok()


@pytest.mark.parametrize("idx", ALL, ids=_ids(ALL))
def test_summary_table(idx):
    case = CASES[idx]
    fit, _ = _beta_record(case)
    frame = fitted(idx).summary(confidence_level=0.95).to_frame()
    m = Mismatches(case["id"])
    m.check_equal("index", list(frame.index), _term_names(case))
    m.check_equal(
        "columns",
        list(frame.columns),
        ["estimate", "se", "statistic", "p_value", "ci_lower", "ci_upper"],
    )
    if not m.errors:
        for col, key in [
            ("estimate", "beta"),
            ("se", "se"),
            ("statistic", "zval"),
            ("p_value", "pval"),
            ("ci_lower", "ci_lb"),
            ("ci_upper", "ci_ub"),
        ]:
            m.check(f"summary[{col}]", frame[col].to_numpy(), _arr(fit[key]))
    m.assert_ok()


# --------------------------------------------------------- heterogeneity


@pytest.mark.parametrize("idx", ALL, ids=_ids(ALL))
def test_heterogeneity(idx):
    """Q_E and its p-value, I^2 (percent) and H^2."""
    case = CASES[idx]
    est = fitted(idx)
    fit = case["fit"]
    m = Mismatches(case["id"])
    m.check("q_", est.q_, fit["QE"])
    m.check("q_pvalue_", est.q_pvalue_, fit["QEp"], atol=0.0)
    m.check("i2_", est.i2_, fit["I2"])
    m.check("h2_", est.h2_, fit["H2"])
    m.assert_ok()


@pytest.mark.parametrize("idx", MODS, ids=_ids(MODS))
def test_moderator_test(idx):
    """QM (chi^2 under z, F = QM/m under t / Knapp-Hartung) and its p-value."""
    case = CASES[idx]
    fit, _ = _beta_record(case)
    est = fitted(idx)
    m = Mismatches(case["id"])
    m.check("qm_", est.qm_, fit["QM"])
    m.check("qm_pvalue_", est.qm_pvalue_, fit["QMp"], atol=0.0)
    m.assert_ok()


@pytest.mark.parametrize("idx", R2_CASES, ids=_ids(R2_CASES))
def test_r2(idx):
    """Pseudo-R^2 (percent): 100 (tau2_0 - tau2) / tau2_0, truncated at 0, tau2_0
    from the intercept-only model with the same method (and GENQ weights)."""
    case = CASES[idx]
    assert fitted(idx).r2_ == pytest.approx(case["fit"]["R2"], rel=RTOL, abs=ATOL)


@pytest.mark.parametrize("idx", R2_FE, ids=_ids(R2_FE))
def test_r2_fixed_effect_model(idx):
    """metafor 3.8 also reports R^2 for EE models with moderators: there it is
    100 (H2_0 - H2) / H2_0 with H^2 = Q_E/(k - p) of the model and of the
    intercept-only EE model (verified on the 7 designs with an intercept-only
    counterpart in the JSON)."""
    case = CASES[idx]
    assert fitted(idx).r2_ == pytest.approx(case["fit"]["R2"], rel=RTOL, abs=ATOL)


@pytest.mark.parametrize("idx", ALL, ids=_ids(ALL))
def test_fit_statistics(idx):
    case = CASES[idx]
    fit, _ = _beta_record(case)
    est = fitted(idx)
    m = Mismatches(case["id"])
    m.check("loglik_", est.loglik_, fit["logLik"])
    m.check("aic_", est.aic_, fit["AIC"])
    m.check("bic_", est.bic_, fit["BIC"])
    m.check("aicc_", est.aicc_, fit["AICc"])
    m.check_equal("n_params_", int(est.n_params_), int(fit["parms"]))
    m.check_equal("dof_", int(est.dof_), int(case["fit"]["df_residual"]))
    m.assert_ok()


# ------------------------------------------------------------ prediction


@pytest.mark.parametrize("idx", ALL, ids=_ids(ALL))
def test_predict_interval(idx):
    """metafor's predict(res): the pooled effect for intercept-only models (one row,
    compared with every row we return), the fitted values for models with
    moderators (predicted at the training moderators)."""
    case = CASES[idx]
    _, pred = _beta_record(case)
    X, _, _, _ = design_data(case["design"])
    frame = fitted(idx).predict_interval(X, confidence_level=0.95)
    m = Mismatches(case["id"])
    m.check_equal(
        "columns",
        list(frame.columns),
        ["mean", "se", "ci_lower", "ci_upper", "pi_lower", "pi_upper"],
    )
    if not m.errors:
        n = len(frame)
        for col, key in [
            ("mean", "pred"),
            ("se", "se"),
            ("ci_lower", "ci_lb"),
            ("ci_upper", "ci_ub"),
            ("pi_lower", "pi_lb"),
            ("pi_upper", "pi_ub"),
        ]:
            ref = _arr(pred[key])
            if ref.size == 1:
                ref = np.repeat(ref, n)
            m.check(f"predict_interval[{col}]", frame[col].to_numpy(), ref)
    m.assert_ok()


@pytest.mark.parametrize("idx", RANEF, ids=_ids(RANEF))
def test_random_effects(idx):
    """metafor's ranef() (BLUPs of u_i and their se) and blup() (x_i'b + u_i)."""
    case = CASES[idx]
    rec = case["ranef_blup"]
    est = fitted(idx)
    X, _, _, _ = design_data(case["design"])
    m = Mismatches(case["id"])
    m.check(
        "random_effects_", est.random_effects_["estimate"], _arr(rec["ranef"]["pred"])
    )
    m.check_equal(
        "random_effects_ columns", list(est.random_effects_.columns), ["estimate", "se"]
    )
    m.check("random_effects_[se]", est.random_effects_["se"], est.random_effects_se_)
    m.check(
        "random_effects_se_",
        est.random_effects_se_,
        _arr(rec["ranef"]["se"]),
        atol=_sqrt_scale_atol(case, est),
    )
    mean = est.intercept_ + (0.0 if X is None else X.to_numpy() @ est.coef_)
    m.check(
        "intercept_ + X coef_ + random_effects_ (blup)",
        mean + est.random_effects_["estimate"].to_numpy(),
        _arr(rec["blup"]["pred"]),
    )
    m.assert_ok()


@pytest.mark.parametrize("idx", CONFINT, ids=_ids(CONFINT))
def test_tau2_confint(idx):
    """Q-profile interval for tau^2 (and tau, I^2, H^2 as its transforms); metafor
    run with uniroot tol 1e-13."""
    case = CASES[idx]
    rec = case["confint"]
    est = fitted(idx)
    frame = est.tau2_confint(confidence_level=0.95)
    m = Mismatches(case["id"])
    m.check_equal("index", list(frame.index), rec["rows"])
    if not m.errors:
        for col, key in [
            ("estimate", "estimate"),
            ("ci_lower", "ci_lb"),
            ("ci_upper", "ci_ub"),
        ]:
            ours, ref = frame[col].to_numpy(), _arr(rec[key])
            for row in (0, 2, 3):  # tau2, I2, H2
                name = f"tau2_confint[{rec['rows'][row]}, {col}]"
                m.check(name, ours[row], ref[row])
            atol = _sqrt_scale_atol(case, est) if col == "estimate" else ATOL
            m.check(f"tau2_confint[tau, {col}]", ours[1], ref[1], atol=atol)
    m.assert_ok()


# ---------------------------------------------------------------- robust


def _robust_ids():
    return [
        f"{CASES[i]['id']}|{CASES[i]['robust'][j]['cluster']}|"
        f"{CASES[i]['robust'][j]['kind']}"
        for i, j in ROBUST
    ]


@pytest.mark.parametrize(("idx", "j"), ROBUST, ids=_robust_ids())
def test_cluster_robust(idx, j):
    """metafor's robust(): CR1 = adjust=TRUE, CR0 = adjust=FALSE (both t with
    df = clusters - p), CR2 = clubSandwich=TRUE (Satterthwaite df per coefficient,
    HTZ F test for the moderators)."""
    case = CASES[idx]
    rob = case["robust"][j]
    est = fitted_robust(idx, j)
    m = Mismatches(f"{case['id']}|{rob['cluster']}|{rob['kind']}")
    beta = _arr(rob["beta"])
    m.check("tau2_", est.tau2_, case["fit"]["tau2"])
    m.check("intercept_", est.intercept_, beta[0])
    m.check("coef_", est.coef_, beta[1:])
    m.check("cov_params_", est.cov_params_, _mat(rob["vcov"]))
    m.check("robust_dof_", est.robust_dof_, _arr(rob["dfs"]))
    frame = est.summary(confidence_level=0.95).to_frame()
    for col, key in [
        ("estimate", "beta"),
        ("se", "se"),
        ("statistic", "tval"),
        ("p_value", "pval"),
        ("ci_lower", "ci_lb"),
        ("ci_upper", "ci_ub"),
    ]:
        m.check(f"summary[{col}]", frame[col].to_numpy(), _arr(rob[key]))
    if _has_mods(case):
        m.check("qm_", est.qm_, rob["QM"])
        m.check("qm_pvalue_", est.qm_pvalue_, rob["QMp"], atol=0.0)
    m.assert_ok()


CR2_PREDICT = [(i, j) for i, j in ROBUST if "predict" in CASES[i]["robust"][j]]


@pytest.mark.parametrize(
    ("idx", "j"),
    CR2_PREDICT,
    ids=[
        f"{CASES[i]['id']}|{CASES[i]['robust'][j]['cluster']}" for i, j in CR2_PREDICT
    ],
)
def test_cr2_predict_interval_matches_metafor(idx, j):
    """predict() after robust(clubSandwich=TRUE): each new row's CI and PI use
    the Satterthwaite df of its own contrast (clubSandwich's linear_contrast),
    not k - p; new rows at the minimum, median and maximum of each moderator."""
    case = CASES[idx]
    rec = case["robust"][j]["predict"]
    est = fitted_robust(idx, j)
    names = DESIGNS[case["design"]]["X_names"]
    newmods = _mat(rec["newmods"]) if names else None
    X = pd.DataFrame(newmods, columns=names) if names else None
    frame = est.predict_interval(X)
    m = Mismatches(f"{case['id']}|{case['robust'][j]['cluster']}|cr2 predict")
    design = est._design(np.empty((1, 0)) if X is None else newmods)
    m.check("contrast df", est._contrast_dof(design), _arr(rec["ddf"]))
    for col, key in [
        ("mean", "pred"),
        ("se", "se"),
        ("ci_lower", "ci_lb"),
        ("ci_upper", "ci_ub"),
        ("pi_lower", "pi_lb"),
        ("pi_upper", "pi_ub"),
    ]:
        m.check(f"predict_interval[{col}]", frame[col].to_numpy(), _arr(rec[key]))
    m.assert_ok()


# ----------------------------------------------------------- user weights
USER_WEIGHTS = REF["user_weight_cases"]


@functools.cache
def fitted_user_weights(index):
    case = USER_WEIGHTS[index]
    X, y, v, _ = design_data(case["design"])
    model = make_estimator(case)
    return model.fit(X, y, sample_var=v, sample_weight=_arr(case["weights"]))


@pytest.mark.parametrize(
    "index", range(len(USER_WEIGHTS)), ids=[c["id"] for c in USER_WEIGHTS]
)
def test_user_weights_match_metafor(index):
    """rma(yi, vi, weights = w, ...): tau^2 (and its SE), Q_E, I^2, H^2, R^2 as
    without weights; beta by WLS with w, the sandwich vcov (times the usual
    Knapp-Hartung factor), the tests and intervals built on it, logLik at that
    beta, predictions at new moderator values; iterative methods run to
    convergence by the fixture."""
    case = USER_WEIGHTS[index]
    fit = case["fit"]
    est = fitted_user_weights(index)
    m = Mismatches(case["id"])
    m.check("tau2_", est.tau2_, fit["tau2"])
    m.check("tau2_se_", est.tau2_se_, fit["se_tau2"])
    beta = _arr(fit["beta"])
    m.check("intercept_", est.intercept_, beta[0])
    m.check("coef_", est.coef_, beta[1:])
    m.check("cov_params_", est.cov_params_, _mat(fit["vcov"]))
    frame = est.summary().to_frame()
    for col, key in [
        ("se", "se"),
        ("statistic", "zval"),
        ("p_value", "pval"),
        ("ci_lower", "ci_lb"),
        ("ci_upper", "ci_ub"),
    ]:
        m.check(f"summary[{col}]", frame[col].to_numpy(), _arr(fit[key]))
    m.check("q_", est.q_, fit["QE"])
    m.check("i2_", est.i2_, fit["I2"])
    m.check("h2_", est.h2_, fit["H2"])
    if _has_mods(case):
        m.check("qm_", est.qm_, fit["QM"])
        m.check("qm_pvalue_", est.qm_pvalue_, fit["QMp"], atol=0.0)
        if fit["R2"] is not None:
            m.check("r2_", est.r2_, fit["R2"])
    m.check("loglik_", est.loglik_, fit["logLik"])
    m.check("aic_", est.aic_, fit["AIC"])
    m.check("bic_", est.bic_, fit["BIC"])
    pred = case["predict"]
    names = DESIGNS[case["design"]]["X_names"]
    X = pd.DataFrame(_mat(pred["newmods"]), columns=names) if names else None
    frame = est.predict_interval(X)
    for col, key in [
        ("mean", "pred"),
        ("se", "se"),
        ("ci_lower", "ci_lb"),
        ("ci_upper", "ci_ub"),
        ("pi_lower", "pi_lb"),
        ("pi_upper", "pi_ub"),
    ]:
        m.check(f"predict_interval[{col}]", frame[col].to_numpy(), _arr(pred[key]))
    m.assert_ok()


USER_WEIGHTS_ROBUST = [
    (i, j) for i, c in enumerate(USER_WEIGHTS) for j in range(len(c.get("robust", [])))
]


@pytest.mark.parametrize(
    ("index", "j"),
    USER_WEIGHTS_ROBUST,
    ids=[
        f"{USER_WEIGHTS[i]['id']}|{USER_WEIGHTS[i]['robust'][j]['kind']}"
        for i, j in USER_WEIGHTS_ROBUST
    ],
)
def test_user_weights_cluster_robust_match_metafor(index, j):
    """robust() of a model with user weights: the meat of the sandwich weights
    the residuals by the user weights, (X'AX)^{-1} sum_j X_j'A e_j e_j'A X_j
    (X'AX)^{-1}, times J/(J-p) for CR1."""
    case = USER_WEIGHTS[index]
    rob = case["robust"][j]
    X, y, v, clusters = design_data(case["design"])
    est = make_estimator(case, cluster_robust=rob["kind"]).fit(
        X,
        y,
        sample_var=v,
        sample_weight=_arr(case["weights"]),
        groups=clusters[rob["cluster"]],
    )
    m = Mismatches(f"{case['id']}|{rob['kind']}")
    m.check("cov_params_", est.cov_params_, _mat(rob["vcov"]))
    frame = est.summary().to_frame()
    m.check("summary[p_value]", frame["p_value"].to_numpy(), _arr(rob["pval"]))
    m.check("summary[ci_lower]", frame["ci_lower"].to_numpy(), _arr(rob["ci_lb"]))
    if _has_mods(case):
        m.check("qm_", est.qm_, rob["QM"])
    m.assert_ok()


# ---------------------------------------------------------- GENQ weights


GENQ_NAMED = [
    i for i in ALL if CASES[i]["method"] == "GENQ" and CASES[i]["weights_label"] != "n"
]


@pytest.mark.parametrize("idx", GENQ_NAMED, ids=_ids(GENQ_NAMED))
def test_genq_weights_as_array_and_callable(idx):
    """``genq_weights`` as an explicit array and as a callable of the sampling
    variances give metafor's tau^2 for the same weights."""
    case = CASES[idx]
    X, y, v, _ = design_data(case["design"])
    weights = _arr(case["weights"])
    label = case["weights_label"]
    as_array = make_estimator(case, genq_weights=weights).fit(X, y, sample_var=v)
    func = (
        (lambda s: 1.0 / s) if label == "inverse_var" else (lambda s: np.ones_like(s))
    )
    as_callable = make_estimator(case, genq_weights=func).fit(X, y, sample_var=v)
    ref = case["fit"]["tau2"]
    assert as_array.tau2_ == pytest.approx(ref, rel=RTOL, abs=ATOL)
    assert as_callable.tau2_ == pytest.approx(ref, rel=RTOL, abs=ATOL)


def test_reference_file_versions():
    """The fixture is what the generating script says it is."""
    assert REF["versions"]["metafor"] == "3.8.1"
    assert REF["versions"]["metadat"] == "1.2.0"
    assert len(CASES) == 800
