# Reference numbers for skmeta.bias from R's metafor: regtest(), ranktest(),
# trimfill() and fsn().
#
# Writes tests/reference/bias.json. The Python tests (tests/test_bias.py) read
# that file and never need R. metafor and metadat are GPL: this script only *runs*
# them to produce numbers; no code of theirs is ported into skmeta.
#
# Run from the repository root:  Rscript tests/reference/make_bias.R
#
# Layout of the JSON:
#   versions   R, metafor, metadat, jsonlite
#   control    metafor's iteration settings of every rma() fit (run to convergence)
#   datasets   name -> {yi, vi, ni (or null), X (named moderator columns), source}
#   regtest    list of {dataset, mods, method, test, model, predictor,
#                       zval, pval, dfs, est, ci_lb, ci_ub, b, se}
#   ranktest   list of {dataset, tau, pval, ties}
#   trimfill   list of {dataset, method, estimator, side_arg, k0, se_k0, side, p_k0,
#                       beta, se, ci_lb, ci_ub, zval, pval, tau2, QE, k,
#                       filled_yi, filled_vi, center_converged, refit_converged}
#   trimfill_errors  list of {dataset, method, estimator, side_arg, error}: fits
#              where trimfill() itself stops (Q0 outside its domain)
#   fsn        list of {dataset, type, alpha, weighted, target_arg,
#                       fsnum, pval, meanes, target}
# Method / test names are metafor's; the tests map them to skmeta's names.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})
stopifnot(as.character(packageVersion("metafor")) == "3.8.1")

control <- list(threshold = 1e-13, maxiter = 10000, tol = 1e-13)

# ---------------------------------------------------------------- data sets
datasets <- list()
add_dataset <- function(name, yi, vi, ni = NULL, X = NULL, source = "") {
  Xl <- setNames(list(), character(0))
  if (!is.null(X)) for (nm in colnames(X)) Xl[[nm]] <- I(as.numeric(X[, nm]))
  datasets[[name]] <<- list(
    yi = I(as.numeric(yi)), vi = I(as.numeric(vi)),
    ni = if (is.null(ni)) NULL else I(as.numeric(ni)),
    X = Xl, k = length(yi), source = source
  )
}

bd <- dat.bangertdrowns2004
add_dataset("bangertdrowns2004", bd$yi, bd$vi, bd$ni,
            source = "metadat dat.bangertdrowns2004 (yi, vi, ni as shipped)")

bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
add_dataset("bcg", bcg$yi, bcg$vi, with(dat.bcg, tpos + tneg + cpos + cneg),
            X = cbind(ablat = bcg$ablat),
            source = "metadat dat.bcg; escalc('RR', ai=tpos, bi=tneg, ci=cpos, di=cneg); ni = total")

hs <- dat.hackshaw1998
add_dataset("hackshaw1998", hs$yi, hs$vi,
            source = "metadat dat.hackshaw1998 (log odds ratios yi, vi as shipped; no sample sizes)")

eg <- escalc("OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.egger2001)
add_dataset("egger2001", eg$yi, eg$vi, with(dat.egger2001, n1i + n2i),
            source = "metadat dat.egger2001; escalc('OR', ai, n1i, ci, n2i) (1/2 added to zero cells); ni = n1i + n2i")

pr <- escalc("PLO", xi = xi, ni = ni, data = dat.pritz1997)
add_dataset("pritz1997", pr$yi, pr$vi, dat.pritz1997$ni,
            source = "metadat dat.pritz1997; escalc('PLO', xi, ni) (1/2 added where xi = 0 or ni)")

get_data <- function(name) datasets[[name]]

fit_rma <- function(d, method = "REML", test = "z", mods = character(0)) {
  args <- list(yi = as.numeric(d$yi), vi = as.numeric(d$vi), method = method, test = test,
               control = control)
  if (!is.null(d$ni)) args$ni <- as.numeric(d$ni)
  if (length(mods)) args$mods <- do.call(cbind, d$X[mods])
  do.call(rma, args)
}

# ---------------------------------------------------------------- regtest
regtest_cases <- list()
add_regtest <- function(dataset, method = "REML", test = "z", model = "rma",
                        predictor = "sei", mods = character(0)) {
  d <- get_data(dataset)
  res <- fit_rma(d, method, test, mods)
  r <- regtest(res, model = model, predictor = predictor, ret.fit = TRUE)
  fit <- r$fit
  b <- as.numeric(coef(fit))
  se <- if (model == "lm") as.numeric(summary(fit)$coefficients[, 2]) else as.numeric(fit$se)
  regtest_cases[[length(regtest_cases) + 1]] <<- list(
    dataset = dataset, mods = I(mods), method = method, test = test, model = model,
    predictor = predictor, zval = r$zval, pval = r$pval,
    dfs = if (is.null(r$dfs)) NULL else r$dfs,
    est = if (is.null(r$est)) NULL else r$est,
    ci_lb = if (is.null(r$ci.lb)) NULL else r$ci.lb,
    ci_ub = if (is.null(r$ci.ub)) NULL else r$ci.ub,
    b = I(b), se = I(se)
  )
}

for (name in names(datasets)) {
  has_n <- !is.null(datasets[[name]]$ni)
  predictors <- c("sei", "vi", if (has_n) c("ni", "ninv", "sqrtni", "sqrtninv"))
  for (predictor in predictors) {
    add_regtest(name, test = "z", predictor = predictor)
    add_regtest(name, test = "knha", predictor = predictor)
    add_regtest(name, model = "lm", predictor = predictor)
  }
}
# other tau^2 methods and tests, inherited by the augmented model
for (method in c("ML", "DL", "EE", "PM")) add_regtest("bangertdrowns2004", method = method)
add_regtest("bangertdrowns2004", test = "t")
add_regtest("hackshaw1998", method = "DL", test = "knha", predictor = "vi")
# with a moderator (no limit estimate)
for (predictor in c("sei", "vi", "ninv")) {
  add_regtest("bcg", mods = "ablat", predictor = predictor)
  add_regtest("bcg", mods = "ablat", test = "knha", predictor = predictor)
  add_regtest("bcg", mods = "ablat", model = "lm", predictor = predictor)
}

# ---------------------------------------------------------------- ranktest
ranktest_cases <- list()
for (name in names(datasets)) {
  d <- get_data(name)
  res <- fit_rma(d)
  r <- suppressWarnings(ranktest(res))
  # ties as cor.test decides them: in the standardised effects or in vi
  w <- 1 / d$vi
  ystar <- (d$yi - sum(w * d$yi) / sum(w)) / sqrt(d$vi - 1 / sum(w))
  ties <- length(unique(ystar)) < d$k || length(unique(d$vi)) < d$k
  ranktest_cases[[length(ranktest_cases) + 1]] <- list(
    dataset = name, tau = r$tau, pval = r$pval, ties = ties
  )
}

# ---------------------------------------------------------------- trimfill
trimfill_cases <- list()
trimfill_errors <- list()
add_trimfill <- function(dataset, method = "REML", estimator = "L0", side = NULL) {
  d <- get_data(dataset)
  res <- fit_rma(d, method)
  tf <- tryCatch(
    suppressWarnings(if (is.null(side)) trimfill(res, estimator = estimator)
                     else trimfill(res, estimator = estimator, side = side)),
    error = function(e) e)
  if (inherits(tf, "error")) {
    # Q0 takes sqrt(2 k^2 - 4 S_r + 1/4), which is negative when nearly every
    # centred value lies on one side; trimfill() then stops with an R error
    trimfill_errors[[length(trimfill_errors) + 1]] <<- list(
      dataset = dataset, method = method, estimator = estimator,
      side_arg = if (is.null(side)) NULL else side, error = conditionMessage(tf))
    return(invisible())
  }
  fill <- if (is.null(tf$fill)) rep(FALSE, tf$k) else tf$fill
  # trimfill() fits the trimmed data with metafor's default controls (its
  # iterations stop at |change in tau^2| < 1e-5); the centre the filled studies
  # mirror, refitted to convergence on the same k - k0 trimmed studies:
  sgn <- if (tf$side == "right") -1 else 1
  o <- order(sgn * as.numeric(d$yi))
  keep <- o[seq_len(d$k - tf$k0)]
  center <- as.numeric(coef(rma(as.numeric(d$yi)[keep], as.numeric(d$vi)[keep],
                                method = method, control = control)))
  # and the final model (also fitted with the default controls), refitted to
  # convergence on trimfill's own augmented data
  refit <- rma(as.numeric(tf$yi), as.numeric(tf$vi), method = method, control = control)
  trimfill_cases[[length(trimfill_cases) + 1]] <<- list(
    dataset = dataset, method = method, estimator = estimator,
    side_arg = if (is.null(side)) NULL else side,
    k0 = tf$k0, se_k0 = tf$se.k0, side = tf$side,
    p_k0 = if (is.null(tf$p.k0) || is.na(tf$p.k0)) NULL else tf$p.k0,
    beta = as.numeric(tf$beta), se = tf$se, ci_lb = tf$ci.lb, ci_ub = tf$ci.ub,
    zval = tf$zval, pval = tf$pval, tau2 = tf$tau2, QE = tf$QE, k = tf$k,
    filled_yi = I(as.numeric(tf$yi[fill])), filled_vi = I(as.numeric(tf$vi[fill])),
    center_converged = center,
    refit_converged = list(beta = as.numeric(refit$beta), se = refit$se,
                           tau2 = refit$tau2, QE = refit$QE)
  )
}
for (name in names(datasets)) {
  for (estimator in c("L0", "R0", "Q0")) {
    for (method in c("REML", "EE")) add_trimfill(name, method, estimator)
  }
}
add_trimfill("bangertdrowns2004", "DL")
add_trimfill("bangertdrowns2004", "ML", "R0")
for (side in c("left", "right")) {
  add_trimfill("bangertdrowns2004", side = side)
  add_trimfill("egger2001", side = side)
  add_trimfill("bcg", estimator = "R0", side = side)
  add_trimfill("egger2001", estimator = "Q0", side = side)
}

# ---------------------------------------------------------------- fsn
fsn_cases <- list()
add_fsn <- function(dataset, type = "Rosenthal", alpha = 0.05, weighted = FALSE,
                    target = NULL) {
  d <- get_data(dataset)
  args <- list(yi = as.numeric(d$yi), vi = as.numeric(d$vi), type = type, alpha = alpha, weighted = weighted)
  if (!is.null(target)) args$target <- target
  f <- do.call(fsn, args)
  fsn_cases[[length(fsn_cases) + 1]] <<- list(
    dataset = dataset, type = type, alpha = alpha, weighted = weighted,
    target_arg = if (is.null(target)) NULL else target,
    fsnum = f$fsnum,
    pval = if (is.na(f$pval)) NULL else f$pval,
    meanes = if (is.na(f$meanes)) NULL else f$meanes,
    target = if (is.na(f$target)) NULL else f$target
  )
}
for (name in names(datasets)) {
  add_fsn(name)
  add_fsn(name, alpha = 0.01)
  add_fsn(name, "Orwin")
  add_fsn(name, "Orwin", weighted = TRUE)
  add_fsn(name, "Rosenberg")
  add_fsn(name, "Rosenberg", alpha = 0.01)
}
add_fsn("bangertdrowns2004", "Orwin", weighted = TRUE, target = 0.1)
add_fsn("bangertdrowns2004", "Orwin", target = 0.2)
add_fsn("bcg", "Orwin", target = 0.1)   # sign flipped to the mean's (negative)

# ---------------------------------------------------------------- write
out <- list(
  description = paste("metafor regtest/ranktest/trimfill/fsn reference values for",
                      "skmeta.bias; generated by tests/reference/make_bias.R"),
  versions = list(R = R.version.string, metafor = as.character(packageVersion("metafor")),
                  metadat = as.character(packageVersion("metadat")),
                  jsonlite = as.character(packageVersion("jsonlite"))),
  control = control,
  datasets = datasets,
  regtest = regtest_cases,
  ranktest = ranktest_cases,
  trimfill = trimfill_cases,
  trimfill_errors = trimfill_errors,
  fsn = fsn_cases
)
write_json(out, file.path("tests", "reference", "bias.json"), digits = NA,
           auto_unbox = TRUE, pretty = TRUE, null = "null")
cat("wrote tests/reference/bias.json\n")
