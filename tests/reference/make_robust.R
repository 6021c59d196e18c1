# Reference numbers for RobustMeta's conventional (plug-in) inference.
#
# metafor's rma() with method = "DL", "SJ", "HE" and test = "z" / "knha" on the
# JIA data of Hanada & Sugimoto (SEs from the printed CIs: (CIU - CIL) / 3.92), the
# BCG vaccine data (log RR, intercept-only and with the moderator ablat), and a
# K = 2 example. The robust (M-estimator) numbers have no R implementation
# available offline; they are checked against notes/robust-method.md section 8.3.
#
# Run from the repository root:  Rscript tests/reference/make_robust.R

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(jsonlite)
})

jia_y <- c(-0.13, -0.24, -0.20)
jia_v <- ((c(0.08, -0.06, 0.07) - c(-0.33, -0.41, -0.47)) / 3.92)^2
bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg,
              data = dat.bcg)
k2_y <- c(0.42, -0.10)
k2_v <- c(0.04, 0.09)

one <- function(y, v, mods, method, test) {
  fit <- if (is.null(mods)) {
    rma(y, v, method = method, test = test)
  } else {
    rma(y, v, mods = mods, method = method, test = test)
  }
  list(
    method = method, test = test,
    beta = as.numeric(fit$beta), se = as.numeric(fit$se),
    ci_lb = as.numeric(fit$ci.lb), ci_ub = as.numeric(fit$ci.ub),
    pval = as.numeric(fit$pval), tau2 = fit$tau2, QE = fit$QE
  )
}

cases <- list()
add <- function(name, y, v, mods = NULL) {
  fits <- list()
  for (m in c("DL", "SJ", "HE")) for (t in c("z", "knha")) {
    fits[[length(fits) + 1]] <- one(y, v, mods, m, t)
  }
  cases[[name]] <<- list(
    y = y, v = v,
    mods = if (is.null(mods)) NULL else as.numeric(mods),
    fits = fits
  )
}
add("jia", jia_y, jia_v)
add("bcg", as.numeric(bcg$yi), as.numeric(bcg$vi))
add("bcg_ablat", as.numeric(bcg$yi), as.numeric(bcg$vi), bcg$ablat)
add("k2", k2_y, k2_v)

out <- list(
  R_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  cases = cases
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, null = "null", pretty = TRUE),
           file.path("tests", "reference", "robust.json"))
