# Reference numbers for skmeta/_engine/_sandwich.py (cluster-robust covariance).
#
# Fits random-effects (meta-)regressions with metafor's rma() (REML) and applies
#   robust(res, cluster = ..., adjust = TRUE)          # CR1, df = J - p
#   robust(res, cluster = ..., adjust = FALSE)         # CR0, df = J - p
#   robust(res, cluster = ..., clubSandwich = TRUE)    # CR2 + Satterthwaite + HTZ
# and records the data (yi, vi, X, cluster labels), tau2, the coefficients and,
# for each kind, vcov, se, dfs, zval, pval, QM, QMdf, QMp. For the multilevel case
# (rma.mv, block-diagonal working weights) it records the fitted variance
# components as well.
#
# Tests read tests/reference/sandwich.json and never need R.
# Run from the repository root:  Rscript tests/reference/make_sandwich.R

suppressPackageStartupMessages({
  library(metafor)
  library(clubSandwich)
  library(jsonlite)
})

versions <- list(
  R = paste(R.version$major, R.version$minor, sep = "."),
  metafor = as.character(packageVersion("metafor")),
  metadat = as.character(packageVersion("metadat")),
  clubSandwich = as.character(packageVersion("clubSandwich"))
)

robust_numbers <- function(rob) {
  list(
    vcov = unname(as.matrix(rob$vb)),
    se = unname(as.vector(rob$se)),
    dfs = unname(as.vector(rob$dfs)),
    zval = unname(as.vector(rob$zval)),
    pval = unname(as.vector(rob$pval)),
    QM = unname(rob$QM),
    QMdf = unname(as.vector(rob$QMdf)),
    QMp = unname(rob$QMp),
    btt = unname(as.vector(rob$btt))
  )
}

one_case <- function(res, cluster, description) {
  cluster <- as.character(cluster)
  out <- list(
    description = description,
    yi = unname(as.vector(res$yi)),
    vi = unname(as.vector(res$vi)),
    X = unname(as.matrix(res$X)),
    cluster = cluster,
    n_clusters = length(unique(cluster)),
    beta = unname(as.vector(res$beta)),
    model_vcov = unname(as.matrix(res$vb))
  )
  if (inherits(res, "rma.mv")) {
    out$sigma2 <- unname(res$sigma2)
  } else {
    out$tau2 <- unname(res$tau2)
  }
  out$cr1 <- robust_numbers(robust(res, cluster = cluster, adjust = TRUE))
  out$cr0 <- robust_numbers(robust(res, cluster = cluster, adjust = FALSE))
  out$cr2 <- robust_numbers(robust(res, cluster = cluster, clubSandwich = TRUE))
  out
}

cases <- list()

# BCG log risk ratios (Colditz et al. 1994), one trial per cluster.
bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
res <- rma(yi, vi, data = bcg, method = "REML")
cases$bcg_trial_intercept <- one_case(res, bcg$trial,
  "BCG log RR, REML, intercept only, clustered by trial (test_misc_robust.r)")

res <- rma(yi, vi, mods = ~ ablat + year, data = bcg, method = "REML")
cases$bcg_trial_ablat_year <- one_case(res, bcg$trial,
  "BCG log RR, REML, ~ ablat + year, clustered by trial (test_misc_robust.r)")

# BCG clustered by allocation (3 clusters of sizes 7, 2, 4).
res <- rma(yi, vi, data = bcg, method = "REML")
cases$bcg_alloc_intercept <- one_case(res, bcg$alloc,
  "BCG log RR, REML, intercept only, clustered by alloc (3 clusters)")

res <- rma(yi, vi, mods = ~ ablat, data = bcg, method = "REML")
cases$bcg_alloc_ablat <- one_case(res, bcg$alloc,
  "BCG log RR, REML, ~ ablat, clustered by alloc (3 clusters, J - p = 1)")

# School calendar (Konstantopoulos 2011): 56 studies in 11 districts.
dat <- dat.konstantopoulos2011
res <- rma(yi, vi, data = dat, method = "REML")
cases$konstantopoulos_district_intercept <- one_case(res, dat$district,
  "Konstantopoulos 2011, REML (rma), intercept only, clustered by district")

res <- rma(yi, vi, mods = ~ I(year - 1990), data = dat, method = "REML")
cases$konstantopoulos_district_year <- one_case(res, dat$district,
  "Konstantopoulos 2011, REML (rma), ~ I(year - 1990), clustered by district")

# Unbalanced clusters (1 to 22 effect sizes per study): Assink et al. 2016.
dat <- dat.assink2016
res <- rma(yi, vi, mods = ~ deltype + year, data = dat, method = "REML")
cases$assink_study_deltype_year <- one_case(res, dat$study,
  "Assink 2016, REML (rma), ~ deltype + year, clustered by study (sizes 1-22)")

# Block-diagonal working weights: three-level model, clustered by district.
dat <- dat.konstantopoulos2011
res <- rma.mv(yi, vi, random = ~ 1 | district / school, data = dat,
  method = "REML")
cases$konstantopoulos_mv_district_intercept <- one_case(res, dat$district,
  "Konstantopoulos 2011, REML rma.mv(random = ~ 1 | district/school), clustered by district")
cases$konstantopoulos_mv_district_intercept$school <- as.character(dat$school)

out <- list(versions = versions, cases = cases)
writeLines(
  toJSON(out, digits = I(17), auto_unbox = TRUE, matrix = "rowmajor", pretty = TRUE),
  file.path("tests", "reference", "sandwich.json")
)
