# Reference numbers for skmeta.RandomEffectsMeta from R's metafor (rma.uni).
#
# Writes tests/reference/rma_uni.json. The Python tests
# (tests/test_reference_random_effects.py) read that file and never need R.
# metafor, metadat and clubSandwich are GPL: this script only *runs* them to
# produce numbers; no code of theirs is ported into skmeta.
#
# Run from the repository root:  Rscript tests/reference/make_reference_rma.R
#
# Layout of the JSON:
#   versions   R, metafor, metadat, clubSandwich, jsonlite
#   control    metafor's iteration settings used (its defaults, listed)
#   designs    name -> {yi, vi, X (named columns, no intercept), clusters,
#                        extra (e.g. n for GENQ weights), source}
#   cases      list of {id, design, method, test, weights, tau2_fixed,
#                        fit, predict, confint, ranef, blup, robust, ...}
# Method / test names are metafor's; the tests map them to skmeta's names.

suppressPackageStartupMessages({
  library(metafor)
  library(clubSandwich)
  library(jsonlite)
})
stopifnot(as.character(packageVersion("metafor")) == "3.8.1")

# ---------------------------------------------------------------- designs
designs <- list()

add_design <- function(name, yi, vi, X = NULL, clusters = list(),
                       extra = list(), source = "") {
  yi <- as.numeric(yi)
  vi <- as.numeric(vi)
  Xl <- list()
  if (!is.null(X)) for (nm in colnames(X)) Xl[[nm]] <- I(as.numeric(X[, nm]))
  cl <- lapply(clusters, function(g) I(as.character(g)))
  ex <- lapply(extra, function(e) I(as.numeric(e)))
  designs[[name]] <<- list(
    yi = I(yi), vi = I(vi), X_names = I(if (is.null(X)) character(0) else colnames(X)),
    X = if (length(Xl)) Xl else setNames(list(), character(0)),
    clusters = if (length(cl)) cl else setNames(list(), character(0)),
    extra = if (length(ex)) ex else setNames(list(), character(0)),
    k = length(yi), source = source
  )
}

# (a) BCG, log risk ratios (Colditz et al. 1994)
bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg_X2 <- cbind(ablat = bcg$ablat, year = bcg$year)
bcg_cl <- list(trial = bcg$trial, alloc = bcg$alloc)
add_design("bcg", bcg$yi, bcg$vi, NULL, bcg_cl,
           source = "metadat dat.bcg; escalc('RR', ai=tpos, bi=tneg, ci=cpos, di=cneg)")
add_design("bcg_ablat", bcg$yi, bcg$vi, bcg_X2[, "ablat", drop = FALSE], bcg_cl,
           source = "dat.bcg, mods = ~ ablat")
add_design("bcg_ablat_year", bcg$yi, bcg$vi, bcg_X2, bcg_cl,
           source = "dat.bcg, mods = ~ ablat + year")
# SPEC seed: allocation 'random' (yes/no) as moderator; factor coding, 'no' is
# the reference level, so the coefficient is metafor's 'randomyes'.
bcg_random <- cbind(randomyes = as.numeric(bcg$alloc == "random"))
add_design("bcg_random", bcg$yi, bcg$vi, bcg_random, bcg_cl,
           source = "dat.bcg, mods = ~ factor(alloc == 'random', labels=c('no','yes'))")

# (b) pupil IQ (Raudenbush 1985; Raudenbush 2009 ch. 16)
iq <- dat.raudenbush1985
iq$weeks.c <- ifelse(iq$weeks > 3, 3, iq$weeks)
iq_cl <- list(study = iq$study, tester = iq$tester)
add_design("pupil_iq", iq$yi, iq$vi, NULL, iq_cl,
           source = "metadat dat.raudenbush1985 (yi, vi as given)")
add_design("pupil_iq_weeks_c", iq$yi, iq$vi, cbind(weeks_c = iq$weeks.c), iq_cl,
           source = "dat.raudenbush1985, weeks.c = ifelse(weeks > 3, 3, weeks)")
add_design("pupil_iq_weeks", iq$yi, iq$vi, cbind(weeks = iq$weeks), iq_cl,
           source = "dat.raudenbush1985, raw weeks (SPEC seed)")

# (c) Viechtbauer (2005), examples 1 and 2 (inline data of metafor's test)
v05_1 <- list(yi = c(-0.581, 0.530, 0.771, 1.031, 0.553, 0.295, 0.078, 0.573, -0.176, -0.232),
              vi = c(0.023, 0.052, 0.060, 0.115, 0.095, 0.203, 0.200, 0.211, 0.051, 0.040))
v05_2 <- list(yi = c(0.100, -0.162, -0.090, -0.049, -0.046, -0.010, -0.431, -0.261, 0.134,
                     0.019, 0.175, 0.056, 0.045, 0.103, 0.121, -0.482, 0.290, 0.342),
              vi = c(0.016, 0.015, 0.050, 0.050, 0.032, 0.052, 0.036, 0.024, 0.034, 0.033,
                     0.031, 0.034, 0.039, 0.167, 0.134, 0.096, 0.016, 0.035))
add_design("viechtbauer2005_ex1", v05_1$yi, v05_1$vi, source = "Viechtbauer (2005) example 1")
add_design("viechtbauer2005_ex2", v05_2$yi, v05_2$vi, source = "Viechtbauer (2005) example 2")

# (d) CLASP (DerSimonian & Kacker 2007), log odds ratios
clasp <- escalc(measure = "OR", ai = c(5, 5, 12, 69, 9, 313), n1i = c(156, 303, 565, 1570, 103, 4659),
                ci = c(8, 17, 9, 94, 11, 352), n2i = c(74, 303, 477, 1565, 105, 4650))
add_design("clasp", clasp$yi, clasp$vi,
           source = "DerSimonian & Kacker (2007) CLASP; escalc('OR')")

# (e) dat.linde2005 (Viechtbauer 2007b), log relative rates
li <- escalc(measure = "RR", ai = ai, ci = ci, n1i = n1i, n2i = n2i, data = dat.linde2005)
li <- li[c(7:10, 13:25), ]
li$dosage <- (li$dosage * 7) / 1000 * li$duration
li_X <- cbind(dosage_c = li$dosage - 34, baseline_c = li$baseline - 20)
li_X <- cbind(li_X, `dosage_c:baseline_c` = li_X[, 1] * li_X[, 2])
add_design("linde2005", li$yi, li$vi, NULL, extra = list(n = li$n1i + li$n2i),
           source = "dat.linde2005 rows c(7:10,13:25), escalc('RR')")
add_design("linde2005_mreg", li$yi, li$vi, li_X, extra = list(n = li$n1i + li$n2i),
           source = "dat.linde2005, mods = ~ I(dosage-34) * I(baseline-20), dosage = dosage*7/1000*duration")

# (f) school calendar (Konstantopoulos 2011): clusters of several studies
ko <- dat.konstantopoulos2011
add_design("konstantopoulos2011", ko$yi, ko$vi, NULL, list(district = ko$district),
           source = "metadat dat.konstantopoulos2011")
add_design("konstantopoulos2011_year", ko$yi, ko$vi, cbind(year_c = ko$year - mean(ko$year)),
           list(district = ko$district), source = "dat.konstantopoulos2011, year_c = year - mean(year)")

# (g) PyMARE's test data and Kacker (2004) Table 1
add_design("pymare", c(-1, 0.5, 0.5, 0.5, 1, 1, 2, 10), c(1, 1, 2.4, 0.5, 1, 1, 1.2, 1.5),
           cbind(x = c(1, 1, 2, 2, 4, 4, 2.8, 2.8)), source = "PyMARE tests/conftest.py")
add_design("kacker2004", c(61.00, 61.40, 62.21, 62.30, 62.34, 62.60, 62.70, 62.84, 65.90),
           c(0.2025, 1.2100, 0.0900, 0.2025, 0.3844, 0.5625, 0.0676, 0.0225, 1.8225),
           source = "Kacker (2004) Table 1 (statsmodels' test data)")

# ---------------------------------------------------------------- fitting
vec <- function(x) I(as.numeric(x))
num <- function(x) if (is.null(x) || length(x) == 0) NA_real_ else as.numeric(x)[1]
mat <- function(m) unname(as.matrix(m))

fit_design <- function(d, method, test, weights = NULL, tau2 = NULL, control = NULL) {
  D <- designs[[d]]
  yi <- as.numeric(D$yi); vi <- as.numeric(D$vi)
  args <- list(yi = yi, vi = vi, method = method, test = test)
  if (length(D$X_names)) {
    X <- sapply(D$X_names, function(nm) as.numeric(D$X[[nm]]))
    X <- matrix(X, nrow = length(yi), dimnames = list(NULL, D$X_names))
    args$mods <- X
  }
  if (!is.null(weights)) args$weights <- weights
  if (!is.null(tau2)) args$tau2 <- tau2
  if (!is.null(control)) args$control <- control
  suppressWarnings(do.call(rma.uni, args))
}

record_fit <- function(res) {
  fs <- fitstats(res)
  list(
    tau2 = num(res$tau2), se_tau2 = num(res$se.tau2),
    beta = vec(res$beta), se = vec(res$se), zval = vec(res$zval), pval = vec(res$pval),
    ci_lb = vec(res$ci.lb), ci_ub = vec(res$ci.ub), vcov = mat(vcov(res)),
    QE = num(res$QE), QEp = num(res$QEp), QM = num(res$QM), QMp = num(res$QMp),
    QMdf = vec(res$QMdf), I2 = num(res$I2), H2 = num(res$H2), R2 = num(res$R2),
    s2w = num(res$s2w),
    logLik = num(fs[1]), deviance = num(fs[2]), AIC = num(fs[3]), BIC = num(fs[4]), AICc = num(fs[5]),
    k = res$k, p = res$p, parms = res$parms, ddf = num(res$ddf), df_residual = df.residual(res),
    method = res$method, test = res$test
  )
}

record_predict <- function(res) {
  pr <- as.data.frame(predict(res))
  list(pred = vec(pr$pred), se = vec(pr$se), ci_lb = vec(pr$ci.lb), ci_ub = vec(pr$ci.ub),
       pi_lb = vec(if (is.null(pr$pi.lb)) pr$ci.lb else pr$pi.lb),
       pi_ub = vec(if (is.null(pr$pi.ub)) pr$ci.ub else pr$pi.ub))
}

record_confint <- function(res, type = NULL) {
  # Q-profile bounds are found by uniroot; its default tol (eps^0.25) is
  # tightened so that the recorded bounds are exact to ~1e-10.
  ci <- tryCatch(suppressWarnings(if (is.null(type)) confint(res, control = ci_control)
                                  else confint(res, type = type, control = ci_control)),
                 error = function(e) NULL)
  if (is.null(ci)) return(NULL)
  r <- ci$random
  list(type = if (is.null(type)) (if (res$method == "GENQ") "GENQ" else "QP") else type,
       rows = I(c("tau2", "tau", "i2", "h2")),
       estimate = vec(r[, 1]), ci_lb = vec(r[, 2]), ci_ub = vec(r[, 3]))
}

record_blup <- function(res) {
  re <- as.data.frame(ranef(res))
  bl <- as.data.frame(blup(res))
  list(ranef = list(pred = vec(re$pred), se = vec(re$se), pi_lb = vec(re$pi.lb), pi_ub = vec(re$pi.ub)),
       blup = list(pred = vec(bl$pred), se = vec(bl$se), pi_lb = vec(bl$pi.lb), pi_ub = vec(bl$pi.ub)))
}

# predict() after robust(clubSandwich = TRUE): per-row Satterthwaite df
# (clubSandwich's linear_contrast) for the CI and the PI. New moderator rows: the
# minimum, median and maximum of every moderator (one row each).
record_robust_predict <- function(rr) {
  X <- rr$X[, -1, drop = FALSE]
  if (ncol(X) == 0) {
    newmods <- matrix(numeric(0), nrow = 1, ncol = 0)
    pr <- predict(rr)
  } else {
    newmods <- apply(X, 2, function(x) c(min(x), median(x), max(x)))
    pr <- predict(rr, newmods = newmods)
  }
  # an equal-effects model has no PI (tau^2 = 0): it is the CI
  list(newmods = mat(newmods), pred = vec(pr$pred), se = vec(pr$se),
       ci_lb = vec(pr$ci.lb), ci_ub = vec(pr$ci.ub),
       pi_lb = vec(if (is.null(pr$pi.lb)) pr$ci.lb else pr$pi.lb),
       pi_ub = vec(if (is.null(pr$pi.ub)) pr$ci.ub else pr$pi.ub), ddf = vec(pr$ddf))
}

record_robust <- function(res, cluster, kind) {
  rr <- suppressWarnings(switch(kind,
    cr1 = do.call(robust, list(res, cluster = cluster, adjust = TRUE)),
    cr0 = do.call(robust, list(res, cluster = cluster, adjust = FALSE)),
    cr2 = do.call(robust, list(res, cluster = cluster, clubSandwich = TRUE))))
  out <- list(kind = kind, n_clusters = length(unique(cluster)),
       beta = vec(rr$beta), se = vec(rr$se), tval = vec(rr$zval), pval = vec(rr$pval),
       ci_lb = vec(rr$ci.lb), ci_ub = vec(rr$ci.ub), vcov = mat(vcov(rr)),
       dfs = vec(rep_len(rr$dfs, length(rr$beta))), QM = num(rr$QM), QMdf = vec(rr$QMdf),
       QMp = num(rr$QMp), test = rr$test)
  if (kind == "cr2") out$predict <- record_robust_predict(rr)
  out
}

# Iterative estimators: metafor's defaults stop Fisher scoring (REML, ML, EB)
# at |delta tau2| < 1e-5 and uniroot (PM, PMM) at tol = eps^0.25 = 1.2e-4,
# which leaves tau2 errors of up to ~3e-5 (e.g. PM on dat.bcg). Every record of
# these methods is therefore computed with tight controls (still metafor's
# algorithm, run to convergence); the default-control fit is kept in
# 'fit_default' for reference.
iterative_methods <- c("REML", "ML", "EB", "PM", "PMM")
precise_control <- list(threshold = 1e-13, maxiter = 10000, tol = 1e-13)
ci_control <- list(tol = 1e-13)

methods <- c("REML", "ML", "DL", "PM", "PMM", "HE", "HS", "HSk", "SJ", "EB", "GENQ", "EE")
tests <- c("z", "t", "knha", "adhoc")
main_designs <- c("bcg", "bcg_ablat", "bcg_ablat_year", "bcg_random", "pupil_iq", "pupil_iq_weeks_c",
                  "pupil_iq_weeks", "viechtbauer2005_ex1", "viechtbauer2005_ex2", "clasp",
                  "linde2005", "linde2005_mreg", "konstantopoulos2011", "konstantopoulos2011_year",
                  "pymare", "kacker2004")
# designs (and cluster variables) on which robust() is recorded
robust_on <- list(bcg = c("trial", "alloc"), bcg_ablat = "alloc", bcg_ablat_year = "trial",
                  pupil_iq = c("study", "tester"), pupil_iq_weeks_c = "study",
                  konstantopoulos2011 = "district", konstantopoulos2011_year = "district")
robust_methods <- c("REML", "ML", "DL", "HE", "EE")

cases <- list()
add_case <- function(case) cases[[length(cases) + 1]] <<- case

run_case <- function(d, method, test, weights = NULL, weights_label = NULL, tau2 = NULL) {
  iterative <- method %in% iterative_methods && is.null(tau2)
  res <- fit_design(d, method, test, weights, tau2, if (iterative) precise_control else NULL)
  id <- paste(d, method, test, sep = "|")
  if (!is.null(weights_label)) id <- paste0(id, "|w=", weights_label)
  if (!is.null(tau2)) id <- paste0(id, "|tau2=", tau2)
  case <- list(id = id, design = d, method = method, test = test,
               weights_label = if (is.null(weights_label)) NA else weights_label,
               weights = if (is.null(weights)) NA else vec(weights),
               tau2_fixed = if (is.null(tau2)) NA else tau2,
               control = if (iterative) precise_control else setNames(list(), character(0)),
               fit = record_fit(res), predict = record_predict(res))
  if (iterative) case$fit_default <- record_fit(fit_design(d, method, test, weights, tau2))
  if (method != "EE" && is.null(tau2)) {
    if (method == "GENQ") {
      # metafor's default for GENQ fits is the generalized Q-profile CI
      # (type="GENQ"), which needs the CompQuadForm package; it is not
      # installed here (no CRAN access), so only the Q-profile CI is recorded.
      case$confint_qp <- record_confint(res, "QP")
    } else {
      case$confint <- record_confint(res)
    }
  }
  if (method %in% c("REML", "ML", "DL") && is.null(tau2)) case$ranef_blup <- record_blup(res)
  if (method == "GENQ") {
    # metafor fits beta with the GENQ weights themselves (WLS with a sandwich
    # vcov). Also record the usual RE-weighted fit at the GENQ tau2:
    # rma(yi, vi, tau2 = <GENQ tau2>, method = "ML"). metafor reports the ML
    # log-likelihood for every method but REML; the information criteria are
    # recomputed (ML conventions) with parms = p + 1 because tau2 was estimated.
    re <- fit_design(d, "ML", test, NULL, res$tau2)
    rec <- record_fit(re)
    parms <- res$p + 1; n <- res$k
    rec$parms <- parms
    rec$AIC <- -2 * rec$logLik + 2 * parms
    rec$BIC <- -2 * rec$logLik + parms * log(n)
    rec$AICc <- -2 * rec$logLik + 2 * parms * max(n, parms + 2) / (max(n, parms + 2) - parms - 1)
    case$fit_re_weights <- rec
    case$predict_re_weights <- record_predict(re)
  }
  if (test == "z" && is.null(tau2) && method %in% robust_methods && d %in% names(robust_on)) {
    rob <- list()
    for (cv in robust_on[[d]]) {
      g <- as.character(designs[[d]]$clusters[[cv]])
      for (kind in c("cr1", "cr0", "cr2")) {
        rob[[length(rob) + 1]] <- c(list(cluster = cv), record_robust(res, g, kind))
      }
    }
    case$robust <- rob
  }
  add_case(case)
}

for (d in main_designs) {
  for (method in methods) {
    for (test in tests) {
      if (method == "GENQ") {
        run_case(d, method, test, 1 / as.numeric(designs[[d]]$vi), "inverse_var")
      } else {
        run_case(d, method, test)
      }
    }
  }
}
# GENQ with unit weights (= HE) and with sample-size weights (Viechtbauer 2007b)
for (d in c("bcg", "bcg_ablat", "pupil_iq")) for (test in tests)
  run_case(d, "GENQ", test, rep(1, designs[[d]]$k), "unit")
for (d in c("linde2005", "linde2005_mreg")) for (test in tests)
  run_case(d, "GENQ", test, as.numeric(designs[[d]]$extra$n), "n")
# fixed tau2 (sensitivity analysis)
for (d in c("bcg", "bcg_ablat", "pupil_iq")) for (test in tests)
  run_case(d, "REML", test, tau2 = 0.1)

# User weights (rma(weights = )): tau^2, QE, I^2 as without them; beta by WLS
# with the user weights and a sandwich vcov; logLik at that beta. Weights
# 1, 2, 3, 4, 1, 2, ... (only their ratios matter); predictions at the minimum,
# median and maximum of each moderator; robust() CR1 and CR0.
record_predict_at <- function(res) {
  X <- res$X[, -1, drop = FALSE]
  if (ncol(X) == 0) {
    newmods <- matrix(numeric(0), nrow = 1, ncol = 0)
    pr <- predict(res)
  } else {
    newmods <- apply(X, 2, function(x) c(min(x), median(x), max(x)))
    pr <- predict(res, newmods = newmods)
  }
  list(newmods = mat(newmods), pred = vec(pr$pred), se = vec(pr$se),
       ci_lb = vec(pr$ci.lb), ci_ub = vec(pr$ci.ub),
       pi_lb = vec(if (is.null(pr$pi.lb)) pr$ci.lb else pr$pi.lb),
       pi_ub = vec(if (is.null(pr$pi.ub)) pr$ci.ub else pr$pi.ub))
}
user_weight_designs <- list(bcg = "alloc", bcg_ablat = "alloc", pupil_iq_weeks_c = "study")
user_weight_cases <- list()
for (d in names(user_weight_designs)) {
  k <- designs[[d]]$k
  w <- 1 + (seq_len(k) - 1) %% 4
  for (method in c("REML", "ML", "DL", "PM", "HE", "SJ", "EE")) {
    for (test in tests) {
      iterative <- method %in% iterative_methods
      res <- fit_design(d, method, test, w, NULL, if (iterative) precise_control else NULL)
      case <- list(id = paste(d, method, test, "user weights", sep = "|"), design = d,
                   method = method, test = test, weights = vec(w),
                   fit = record_fit(res), predict = record_predict_at(res))
      if (test == "z") {
        g <- as.character(designs[[d]]$clusters[[user_weight_designs[[d]]]])
        case$robust <- lapply(c("cr1", "cr0"), function(kind)
          c(list(cluster = user_weight_designs[[d]]), record_robust(res, g, kind)))
      }
      user_weight_cases[[length(user_weight_cases) + 1]] <- case
    }
  }
}

out <- list(
  description = paste(
    "metafor rma.uni reference fits for skmeta.RandomEffectsMeta;",
    "generated by tests/reference/make_reference_rma.R"),
  versions = list(R = R.version.string, metafor = as.character(packageVersion("metafor")),
                  metadat = as.character(packageVersion("metadat")),
                  clubSandwich = as.character(packageVersion("clubSandwich")),
                  jsonlite = as.character(packageVersion("jsonlite"))),
  control = list(
    note = paste("metafor 3.8.1 defaults (listed here) for non-iterative methods and for",
                 "'fit_default'; iterative methods (REML, ML, EB, PM, PMM) use 'precise' for",
                 "all other records (each case stores its control); confint() uses 'confint'"),
    defaults = list(threshold = 1e-5, maxiter = 100, stepadj = 1,
                    tau2.init = "HE estimate (ML/REML/EB)", tau2.max = 100,
                    tol = .Machine$double.eps^0.25, ll0check = TRUE, level = 95),
    precise = precise_control, confint = ci_control,
    genq_confint = "type='GENQ' needs CompQuadForm (not installed): only type='QP' recorded"),
  designs = designs,
  cases = cases,
  user_weight_cases = user_weight_cases
)
write_json(out, file.path("tests", "reference", "rma_uni.json"), digits = NA, auto_unbox = TRUE,
           na = "null", pretty = FALSE)
cat("wrote", length(cases), "cases\n")
