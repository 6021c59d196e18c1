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
out <- list(
  versions = list(R = R.version.string, metafor = as.character(packageVersion("metafor"))),
  cases = cases
)
write_json(out, "tests/reference/influence.json", digits = NA, auto_unbox = TRUE, pretty = FALSE)
