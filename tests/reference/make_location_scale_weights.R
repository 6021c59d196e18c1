# Reference numbers for LocationScaleMeta(...).fit(..., sample_weight=w), metafor's
# rma(yi, vi, mods =, scale =, weights = w).
#
# metafor 3.8.1 fits the scale model by (RE)ML as without weights; the location
# coefficients are then the weighted least-squares estimate with the user's weights,
# their covariance the sandwich (X'AX)^-1 X'A M A X (X'AX)^-1 with
# M = diag(vi + tau2_i), and logLik (AIC, BIC, AICc) is evaluated at those
# coefficients. metafor is run here to produce numbers only (GPL); skmeta
# implements the formulas. Writes tests/reference/location_scale_weights.json.
#
# Run from the repository root:  Rscript tests/reference/make_location_scale_weights.R

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(jsonlite)
})

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg$random <- as.numeric(bcg$alloc == "random")
bcg$n <- with(dat.bcg, tpos + tneg + cpos + cneg)
bcg$w_seq <- seq(1, 2, length.out = nrow(bcg))
bcg$w_zero <- bcg$w_seq
bcg$w_zero[c(2, 7)] <- 0  # two studies without weight in the location model

wtl <- dat.bangertdrowns2004
wtl$ni100 <- wtl$ni / 100

datasets <- list(
  bcg = data.frame(yi = as.numeric(bcg$yi), vi = as.numeric(bcg$vi), random = bcg$random,
                   ablat = bcg$ablat, n = bcg$n, w_seq = bcg$w_seq, w_zero = bcg$w_zero),
  wtl = data.frame(yi = wtl$yi, vi = wtl$vi, ni = wtl$ni, ni100 = wtl$ni100)
)

design <- function(d, cols) cbind(1, as.matrix(d[, cols, drop = FALSE]))
tight <- list(rel.tol = 1e-10, iter.max = 10000, eval.max = 10000)

fit_case <- function(data, xcols, zcols, wcol, method = "REML", link = "log",
                     newx = NULL) {
  d <- datasets[[data]]
  X <- design(d, xcols)
  Z <- design(d, zcols)
  args <- list(yi = d$yi, vi = d$vi, weights = d[[wcol]], mods = X, intercept = FALSE,
               scale = Z, method = method, link = link)
  res <- tryCatch(do.call(rma, c(args, list(control = tight))),
                  error = function(e) do.call(rma, args))
  out <- list(data = data, x = xcols, z = zcols, weights = wcol, method = tolower(method),
              link = link, beta = as.numeric(res$beta), se = as.numeric(res$se),
              vb = unname(res$vb), alpha = as.numeric(res$alpha),
              se_alpha = as.numeric(res$se.alpha), tau2 = as.numeric(res$tau2),
              loglik = as.numeric(res$fit.stats["ll", method]),
              aic = as.numeric(res$fit.stats["AIC", method]),
              bic = as.numeric(res$fit.stats["BIC", method]),
              aicc = as.numeric(res$fit.stats["AICc", method]),
              qm = res$QM, qmp = res$QMp, qs = res$QS, hat = as.numeric(hatvalues(res)))
  if (!is.null(newx)) {
    pr <- predict(res, newmods = newx, newscale = newx)
    out$predict <- list(new = newx, pred = as.numeric(pr$pred), se = as.numeric(pr$se),
                        ci_lb = as.numeric(pr$ci.lb), ci_ub = as.numeric(pr$ci.ub),
                        pi_lb = as.numeric(pr$pi.lb), pi_ub = as.numeric(pr$pi.ub))
  }
  out
}

cases <- list(
  bcg_alloc_seq_reml = fit_case("bcg", "random", "random", "w_seq", newx = c(0, 1)),
  bcg_alloc_seq_ml = fit_case("bcg", "random", "random", "w_seq", method = "ML"),
  bcg_alloc_n_reml = fit_case("bcg", "random", "random", "n"),
  bcg_ablat_n_reml = fit_case("bcg", "ablat", "ablat", "n", newx = c(20, 40)),
  bcg_alloc_zero_reml = fit_case("bcg", "random", "random", "w_zero"),
  bcg_ablat_seq_identity_ml = fit_case("bcg", "ablat", "ablat", "w_seq", method = "ML",
                                       link = "identity"),
  wtl_ni100_ni_reml = fit_case("wtl", "ni100", "ni100", "ni", newx = c(0.2, 2))
)

out <- list(
  versions = list(R = paste(R.version$major, R.version$minor, sep = "."),
                  metafor = as.character(packageVersion("metafor")),
                  metadat = as.character(packageVersion("metadat"))),
  datasets = datasets, cases = cases)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, dataframe = "columns",
                  na = "null"),
           file.path("tests", "reference", "location_scale_weights.json"))
cat("wrote", length(cases), "cases\n")
