# Reference numbers for skmeta.SelectionModelMeta from R's metafor (selmodel).
#
# Writes tests/reference/selection.json. The Python tests
# (tests/test_selection.py) read that file and never need R. metafor and
# metadat are GPL: this script only *runs* them to produce numbers; no code of
# theirs is ported into skmeta.
#
# Run from the repository root:  Rscript tests/reference/make_selection.R
#
# Every model is fitted twice:
#   "tight"   optim (BFGS) run to convergence (reltol = 1e-15) and, for the beta
#             model, R's integrate() at rel.tol = 1e-10 (1e-8 for two-sided
#             p-values; default eps^0.25 = 1.2e-4), so that metafor's maximum and numerical Hessian are
#             accurate to many digits;
#   "default" metafor's default controls (what a user gets).
# Layout of the JSON:
#   versions  R, metafor, metadat, jsonlite
#   designs   name -> {yi, vi, X_names, X (named columns, no intercept), k, source}
#   cases     list of {id, design, type, alternative, steps, delta, control,
#                      warnings, fit = {...}}  (NA -> null)
#   errors    list of {id, design, type, alternative, steps, delta, message}

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})
stopifnot(as.character(packageVersion("metafor")) == "3.8.1")

designs <- list()
add_design <- function(name, yi, vi, X = NULL, source = "") {
  Xl <- list()
  if (!is.null(X)) for (nm in colnames(X)) Xl[[nm]] <- I(as.numeric(X[, nm]))
  designs[[name]] <<- list(
    yi = I(as.numeric(yi)), vi = I(as.numeric(vi)),
    X_names = I(if (is.null(X)) character(0) else colnames(X)),
    X = if (length(Xl)) Xl else setNames(list(), character(0)),
    k = length(yi), source = source
  )
}

cohen <- escalc("ZCOR", ri = ri, ni = ni, data = dat.cohen1981)
add_design("cohen1981", cohen$yi, cohen$vi,
           source = "metadat dat.cohen1981; escalc('ZCOR', ri=ri, ni=ni)")
add_design("hackshaw1998", dat.hackshaw1998$yi, dat.hackshaw1998$vi,
           source = "metadat dat.hackshaw1998 (yi, vi as shipped)")
bd <- dat.bangertdrowns2004
add_design("bangertdrowns2004_imag", bd$yi, bd$vi, cbind(imag = bd$imag),
           source = "metadat dat.bangertdrowns2004 (yi, vi as shipped), mods = ~ imag")
bask <- dat.baskerville2012
add_design("baskerville2012", bask$smd, bask$se^2,
           source = "metadat dat.baskerville2012; yi = smd, vi = se^2")
add_design("baskerville2012_blind", bask$smd, bask$se^2, cbind(blind = bask$blind),
           source = "metadat dat.baskerville2012; yi = smd, vi = se^2, mods = ~ blind")
bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
add_design("bcg", bcg$yi, bcg$vi,
           source = "metadat dat.bcg; escalc('RR', ai=tpos, bi=tneg, ci=cpos, di=cneg)")

ml_model <- function(design, tau2 = NA) {
  d <- designs[[design]]
  if (length(d$X_names)) {
    X <- sapply(d$X_names, function(nm) as.numeric(d$X[[nm]]))
    rma(as.numeric(d$yi), as.numeric(d$vi), mods = X, method = "ML", tau2 = tau2)
  } else {
    rma(as.numeric(d$yi), as.numeric(d$vi), method = "ML", tau2 = tau2)
  }
}

control_for <- function(type, control, alternative) {
  if (control == "default") return(list())
  out <- list(reltol = 1e-15, maxit = 10000)
  # the beta likelihood is only as smooth as integrate() makes it: BFGS would
  # not meet 1e-15 and would run to maxit, so it stops at 1e-12
  # two-sided p-values put a kink (|z|^(delta_2 - 1)) into the beta integrand at
  # z = 0, where integrate() fails at rel.tol = 1e-10; 1e-8 succeeds
  rel_tol <- if (alternative == "two.sided") 1e-8 else 1e-10
  if (type == "beta") {
    out <- list(reltol = 1e-12, maxit = 1000,
                intCtrl = list(rel.tol = rel_tol, subdivisions = 1000L))
  }
  out
}

na_null <- function(x) {
  x <- as.numeric(x)
  lapply(x, function(v) if (is.na(v)) NULL else v)
}

cases <- list()
errors <- list()

run <- function(id, design, type, steps = NULL, alternative = "greater",
                delta = NULL, controls = c("tight", "default"), predict_at = NULL,
                tau2 = NA) {
  res <- ml_model(design, tau2)
  for (control in controls) {
    warns <- character(0)
    args <- list(res, type = type, alternative = alternative,
                 control = control_for(type, control, alternative))
    if (!is.null(steps)) args$steps <- steps
    if (!is.null(delta)) args$delta <- delta
    fit_with <- function(args) {
      warns <<- character(0)
      withCallingHandlers(
        do.call(selmodel, args),
        warning = function(w) {
          warns <<- c(warns, conditionMessage(w))
          invokeRestart("muffleWarning")
        }
      )
    }
    sel <- try(fit_with(args), silent = TRUE)
    if (inherits(sel, "try-error") && control == "tight") {
      # BFGS can step to parameters where integrate() fails at the tight
      # tolerance (hackshaw1998, beta); nlminb (a PORT quasi-Newton method with
      # bounds) then reaches the maximum
      # (with its default convergence criteria; tighter ones are not met)
      args$control <- c(list(optimizer = "nlminb"),
                        args$control[setdiff(names(args$control), c("reltol", "maxit"))])
      sel <- fit_with(args)
    }
    if (inherits(sel, "try-error")) stop(sel)
    fit <- list(
      beta = I(as.numeric(sel$beta)), se = na_null(sel$se),
      zval = na_null(sel$zval), pval = na_null(sel$pval),
      ci_lb = na_null(sel$ci.lb), ci_ub = na_null(sel$ci.ub),
      vb = lapply(seq_len(nrow(sel$vb)), function(i) na_null(sel$vb[i, ])),
      tau2 = sel$tau2, se_tau2 = if (is.na(sel$se.tau2)) NULL else sel$se.tau2,
      delta = I(as.numeric(sel$delta)), se_delta = na_null(sel$se.delta),
      zval_delta = na_null(sel$zval.delta), pval_delta = na_null(sel$pval.delta),
      ci_lb_delta = na_null(sel$ci.lb.delta), ci_ub_delta = na_null(sel$ci.ub.delta),
      ll = as.numeric(logLik(sel)), ll_ml_re = as.numeric(logLik(res)),
      LRT = sel$LRT, LRTdf = sel$LRTdf, LRTp = if (is.na(sel$LRTp)) NULL else sel$LRTp,
      LRT_tau2 = sel$LRT.tau2, LRTp_tau2 = sel$LRTp.tau2,
      QM = if (is.null(sel$QM) || is.na(sel$QM)) NULL else sel$QM,
      QMp = if (is.null(sel$QMp) || is.na(sel$QMp)) NULL else sel$QMp,
      AIC = AIC(sel), BIC = BIC(sel), AICc = fitstats(sel)["AICc:", 1],
      n_params = attr(logLik(sel), "df"),
      ptable_k = if (is.data.frame(sel$ptable)) I(as.integer(sel$ptable$k)) else NULL
    )
    pred <- NULL
    if (!is.null(predict_at)) {
      pr <- if (length(predict_at) && !identical(predict_at, "intercept"))
        predict(sel, newmods = predict_at) else predict(sel)
      pred <- list(newmods = if (identical(predict_at, "intercept")) NULL else I(predict_at),
                   pred = I(as.numeric(pr$pred)), se = I(as.numeric(pr$se)),
                   ci_lb = I(as.numeric(pr$ci.lb)), ci_ub = I(as.numeric(pr$ci.ub)),
                   pi_lb = I(as.numeric(pr$pi.lb)), pi_ub = I(as.numeric(pr$pi.ub)))
    }
    cases[[length(cases) + 1]] <<- list(
      id = paste0(id, "_", control), design = design, type = type,
      tau2_fixed = if (is.na(tau2)) NULL else tau2,
      alternative = alternative, steps = if (is.null(steps)) NULL else I(steps),
      delta = if (is.null(delta)) NULL else na_null(delta), control = control,
      control_args = args$control,
      warnings = I(warns), fit = fit, predict = pred
    )
    cat(sprintf("%-34s ll = %.8f  beta = %s  tau2 = %.8g  delta = %s\n",
                paste0(id, "_", control), fit$ll,
                paste(signif(fit$beta, 8), collapse = " "), fit$tau2,
                paste(signif(fit$delta, 8), collapse = " ")))
  }
}

record_error <- function(id, design, type, steps = NULL, alternative = "greater", delta = NULL) {
  res <- ml_model(design)
  args <- list(res, type = type, alternative = alternative)
  if (!is.null(steps)) args$steps <- steps
  if (!is.null(delta)) args$delta <- delta
  msg <- tryCatch({ do.call(selmodel, args); NA_character_ },
                  error = function(e) conditionMessage(e))
  stopifnot(!is.na(msg))
  errors[[length(errors) + 1]] <<- list(
    id = id, design = design, type = type, alternative = alternative,
    steps = if (is.null(steps)) NULL else I(steps),
    delta = if (is.null(delta)) NULL else na_null(delta), message = msg
  )
  cat(sprintf("%-34s error: %s\n", id, msg))
}

vh <- c(0.025, 0.10, 0.50, 1)  # Vevea-Hedges style cut points

# cohen1981 (Fisher z): the worked example of metafor's documentation
run("cohen_3psm", "cohen1981", "stepfun", steps = 0.025, predict_at = "intercept")
run("cohen_3psm_two_sided", "cohen1981", "stepfun", steps = 0.025, alternative = "two.sided")
run("cohen_vh", "cohen1981", "stepfun", steps = vh)
run("cohen_beta", "cohen1981", "beta")
run("cohen_beta_two_sided", "cohen1981", "beta", alternative = "two.sided")
run("cohen_fixed_delta", "cohen1981", "stepfun", steps = 0.025, delta = c(1, 0.5))
run("cohen_empty_fixed", "cohen1981", "stepfun", steps = c(0.025, 0.03), delta = c(1, 1, NA))
record_error("cohen_empty", "cohen1981", "stepfun", steps = c(0.025, 0.03))
run("cohen_3psm_less", "cohen1981", "stepfun", steps = 0.025, alternative = "less")

# hackshaw1998 (log odds ratios, k = 37): the 3PSM of the benchmark
run("hackshaw_3psm", "hackshaw1998", "stepfun", steps = 0.025)
run("hackshaw_vh", "hackshaw1998", "stepfun", steps = vh)
run("hackshaw_two_sided", "hackshaw1998", "stepfun", steps = c(0.05, 0.10), alternative = "two.sided")
run("hackshaw_beta", "hackshaw1998", "beta")

# bangertdrowns2004 with a moderator (imag)
run("bangertdrowns_3psm", "bangertdrowns2004_imag", "stepfun", steps = 0.025,
    predict_at = c(0, 1))
run("bangertdrowns_vh", "bangertdrowns2004_imag", "stepfun", steps = vh)
run("bangertdrowns_beta", "bangertdrowns2004_imag", "beta")
# metafor's BFGS stops at a local maximum of the beta model above (log-likelihood
# -14.53, tau^2 = 0.33); the global maximum is on tau^2 = 0 (-11.72), which
# metafor reaches when tau^2 is fixed at 0:
run("bangertdrowns_beta_tau2_zero", "bangertdrowns2004_imag", "beta", tau2 = 0,
    controls = "tight")

# baskerville2012 (Citkowicz & Vevea 2017's example of the beta model)
run("baskerville_beta", "baskerville2012", "beta")
run("baskerville_beta_blind", "baskerville2012_blind", "beta", predict_at = c(0, 1))
run("baskerville_3psm", "baskerville2012", "stepfun", steps = 0.025)
run("baskerville_vh_fixed", "baskerville2012", "stepfun", steps = vh, delta = c(1, NA, NA, 0.5))
record_error("baskerville_vh_empty", "baskerville2012", "stepfun", steps = vh)

# bcg (log risk ratios, negative effects): sidedness matters
run("bcg_less", "bcg", "stepfun", steps = 0.025, alternative = "less")
run("bcg_greater_bound", "bcg", "stepfun", steps = 0.025)

out <- list(
  versions = list(
    R = paste(R.version$major, R.version$minor, sep = "."),
    metafor = as.character(packageVersion("metafor")),
    metadat = as.character(packageVersion("metadat")),
    jsonlite = as.character(packageVersion("jsonlite"))
  ),
  designs = designs,
  cases = cases,
  errors = errors
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", pretty = FALSE),
           file.path("tests", "reference", "selection.json"))
cat("wrote tests/reference/selection.json\n")
