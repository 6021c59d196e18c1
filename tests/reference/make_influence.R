# Reference values for RandomEffectsMeta.influence(): metafor's influence() and
# hatvalues() on the BCG data (log risk ratios), REML and DL, with and without
# moderators. Writes tests/reference/influence.json. Run: Rscript make_influence.R
suppressMessages({library(metafor); library(jsonlite)})
dat <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
cases <- list()
for (method in c("REML", "DL")) {
  for (mods in c("~ 1", "~ ablat")) {
    res <- rma(yi, vi, mods = as.formula(mods), data = dat, method = method,
               control = list(threshold = 1e-13, maxiter = 1000))
    inf <- influence(res)
    cases[[length(cases) + 1]] <- list(
      method = method, mods = mods,
      yi = as.numeric(dat$yi), vi = as.numeric(dat$vi), ablat = dat$ablat,
      rstudent = inf$inf$rstudent, dffits = inf$inf$dffits, cook_d = inf$inf$cook.d,
      cov_r = inf$inf$cov.r, tau2_del = inf$inf$tau2.del, qe_del = inf$inf$QE.del,
      hat = inf$inf$hat, weight = inf$inf$weight,
      dfbetas = as.matrix(inf$dfbs)
    )
  }
}
# Leave-one-out fits that cannot be made: metafor reports NA for that study and
# goes on. (a) a dummy moderator that only study 1 has (its refit is
# rank-deficient); (b) k = 3 with one moderator (every refit has k = p = 2);
# (c) k = 2 without moderators (every refit has one study: metafor fits it with
# tau^2 = 0).
degenerate_case <- function(name, yi, vi, X) {
  ctrl <- list(threshold = 1e-13, maxiter = 1000)
  res <- if (is.null(X)) rma(yi, vi, control = ctrl) else rma(yi, vi, mods = X, control = ctrl)
  inf <- suppressWarnings(influence(res))
  list(name = name, yi = yi, vi = vi, X = if (is.null(X)) NULL else unname(X),
       rstudent = inf$inf$rstudent, dffits = inf$inf$dffits, cook_d = inf$inf$cook.d,
       cov_r = inf$inf$cov.r, tau2_del = inf$inf$tau2.del, qe_del = inf$inf$QE.del,
       hat = inf$inf$hat, weight = inf$inf$weight, dfbetas = unname(as.matrix(inf$dfbs)))
}
x1 <- c(0.3, -1.2, 0.8, 0.1, -0.5, 1.4, -0.9, 0.6)
degenerate <- list(
  degenerate_case("dummy", c(0.5, 0.1, 0.3, -0.2, 0.4, 0.2, 0.0, 0.35),
                  c(0.05, 0.06, 0.04, 0.08, 0.05, 0.07, 0.06, 0.05),
                  cbind(x1 = x1, d = c(1, 0, 0, 0, 0, 0, 0, 0))),
  degenerate_case("k3_moderator", c(0.2, 0.5, -0.1), c(0.05, 0.08, 0.06), cbind(x = c(1, 2, 4))),
  degenerate_case("k2", c(0.2, 0.5), c(0.05, 0.08), NULL)
)
# User weights (rma(weights = )): hat values and weights from the user weights,
# dffits and dfbetas scaled by the sandwich covariance at tau^2_(-i).
weighted <- list()
w <- 1 + (seq_len(nrow(dat)) - 1) %% 4
for (method in c("REML", "DL")) {
  for (mods in c("~ 1", "~ ablat")) {
    res <- rma(yi, vi, mods = as.formula(mods), data = dat, method = method, weights = w,
               control = list(threshold = 1e-13, maxiter = 1000))
    inf <- influence(res)
    weighted[[length(weighted) + 1]] <- list(
      method = method, mods = mods, weights = w,
      yi = as.numeric(dat$yi), vi = as.numeric(dat$vi), ablat = dat$ablat,
      rstudent = inf$inf$rstudent, dffits = inf$inf$dffits, cook_d = inf$inf$cook.d,
      cov_r = inf$inf$cov.r, tau2_del = inf$inf$tau2.del, qe_del = inf$inf$QE.del,
      hat = inf$inf$hat, weight = inf$inf$weight, dfbetas = as.matrix(inf$dfbs))
  }
}
out <- list(
  versions = list(R = R.version.string, metafor = as.character(packageVersion("metafor"))),
  cases = cases, degenerate = degenerate, weighted = weighted
)
write_json(out, "tests/reference/influence.json", digits = NA, auto_unbox = TRUE,
           pretty = FALSE, na = "null")
