# Reference numbers for skmeta.MultilevelMeta (tests/test_reference_multilevel.py).
#
# metafor's rma.mv fits of nested (multilevel) random-effects models, written to
# tests/reference/multilevel.json together with the data used. The tests read
# the JSON and never need R. metafor/metadat are GPL: this script only runs
# them to produce numbers; skmeta implements the published formulas.
#
# Run from the repository root:  Rscript tests/reference/make_multilevel.R
#
# Conventions: logLik is metafor's (REML includes the +1/2 log|X'X| constant);
# AIC/BIC/AICc are metafor's (BIC and AICc use k - p under REML). Random slopes
# are written with the outer factor first: list(~ x | outer, ~ 1 | inner, ...),
# where the inner factors are given unique ids so that nesting is explicit.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})
stopifnot(as.character(packageVersion("metafor")) == "3.8.1")

ctrl <- list(rel.tol = 1e-12, iter.max = 5000, eval.max = 10000)
# rma.mv with tight nlminb tolerances; where nlminb reports non-convergence at
# that tolerance, fall back to 1e-10 and then to metafor's defaults.
rma_mv <- function(...) {
  mc <- match.call()
  mc[[1]] <- quote(rma.mv)
  for (cc in list(ctrl, list(rel.tol = 1e-10, iter.max = 5000, eval.max = 10000), list())) {
    mc$control <- cc
    r <- tryCatch(eval(mc, parent.frame()), error = function(e) NULL)
    if (!is.null(r)) return(r)
  }
  stop("rma.mv failed")
}

## ---------------------------------------------------------------- data
konst <- as.data.frame(dat.konstantopoulos2011)
for (j in seq_along(konst)) attributes(konst[[j]]) <- NULL
konst$year_c <- konst$year - 1990

pupil <- as.data.frame(dat.raudenbush1985)
for (j in seq_along(pupil)) attributes(pupil[[j]]) <- NULL
pupil <- pupil[, c("study", "weeks", "yi", "vi")]

# Simulated four-level data: effect sizes in studies in countries in regions,
# with a random slope of x at the region level (true SD 0.15, correlation 0.5
# with the region intercept) and a binary moderator x2.
set.seed(20240611)
sim4 <- local({
rows <- list()
for (r in 1:8) {
  u_r <- MASS::mvrnorm(1, c(0, 0), matrix(c(0.09, 0.5 * 0.3 * 0.15, 0.5 * 0.3 * 0.15, 0.0225), 2))
  for (c in 1:sample(2:4, 1)) {
    u_c <- rnorm(1, 0, 0.2)
    for (s in 1:sample(1:3, 1)) {
      u_s <- rnorm(1, 0, 0.15)
      for (e in 1:sample(1:3, 1)) {
        x <- round(rnorm(1), 3)
        x2 <- rbinom(1, 1, 0.4)
        vi <- round(runif(1, 0.01, 0.08), 4)
        yi <- 0.3 + 0.1 * x - 0.2 * x2 + u_r[1] + u_r[2] * x + u_c + u_s +
          rnorm(1, 0, 0.1) + rnorm(1, 0, sqrt(vi))
        rows[[length(rows) + 1]] <- data.frame(region = r, country = c, study = s,
          es = e, x = x, x2 = x2, yi = round(yi, 4), vi = vi)
      }
    }
  }
}
do.call(rbind, rows)
})  # local(): keeps the loop variables (yi, vi, x, ...) out of the global scope
sim4$country_id <- sim4$region * 10 + sim4$country
sim4$study_id <- sim4$country_id * 10 + sim4$study
sim4$es_id <- seq_len(nrow(sim4))

# A small simulated data set (22 effects in 5 clusters, random slope of x) on
# which the REML likelihood of the unstructured (GEN) random-slope model has two
# local maxima (found by skmeta's multi-start search; the values are typed in).
bimodal <- data.frame(
  cluster = c(0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4),
  x = c(-6, -4, -2, -2, -1, -1, -3, 0, 2, 1, 3, 5, -2, 5, -3, 0, 3, 4, 2, 2, 4, 0),
  yi = c(0.34, 0.636, 0.3075, 1.1737, 1.1587, -0.0453, 0.4468, 0.6366, -0.5373,
         0.2377, 0.1043, 0.2254, -0.1413, 0.3907, 0.1779, -0.1386, 0.272, -0.1184,
         0.2588, 0.0424, -0.1101, 0.0369),
  vi = c(0.1436, 0.1423, 0.1109, 0.1123, 0.1076, 0.0868, 0.0508, 0.0695, 0.1363,
         0.1492, 0.1292, 0.1036, 0.0734, 0.1008, 0.1311, 0.1419, 0.1453, 0.0122,
         0.0982, 0.043, 0.0136, 0.0171))
bimodal$es <- seq_len(nrow(bimodal))

datasets <- list(konstantopoulos2011 = konst, raudenbush1985 = pupil, sim4 = sim4,
                 bimodal = bimodal)

## ---------------------------------------------------------------- fits
extract <- function(res, spec) {
  out <- list(
    spec = spec,
    beta = unname(as.vector(coef(res))), se = unname(res$se), vcov = unname(vcov(res)),
    sigma2 = unname(res$sigma2), logLik = as.numeric(logLik(res)),
    fitstats = as.list(setNames(as.vector(fitstats(res)), c("logLik", "deviance", "AIC", "BIC", "AICc"))),
    QE = res$QE, QEp = res$QEp, QM = res$QM, QMp = res$QMp, k = res$k, p = res$p
  )
  if (!is.null(res$tau2) && res$withG) {
    out$tau2 <- unname(res$tau2); out$rho <- unname(res$rho); out$G <- unname(res$G)
  }
  pr <- predict(res)
  out$predict_first <- list(pred = pr$pred[1], se = pr$se[1], ci_lb = pr$ci.lb[1], ci_ub = pr$ci.ub[1],
                            pi_lb = pr$pi.lb[1], pi_ub = pr$pi.ub[1])
  re <- ranef(res)
  out$ranef <- lapply(re, function(df) list(names = rownames(df), values = lapply(as.list(df), unname)))
  out
}

fits <- list()
add <- function(name, res, spec) fits[[name]] <<- extract(res, spec)

for (m in c("REML", "ML")) {
  # Konstantopoulos (2011): three levels, intercept only and with year_c.
  r <- rma_mv(yi, vi, random = ~ 1 | district/school, data = konst, method = m)
  add(paste0("konst_3level_", m), r, list(data = "konstantopoulos2011", X = list(),
      groups = c("district", "school"), method = m))
  if (m == "REML") {
    # profile CIs with metafor's default control (its strict-control refits stall)
    r0 <- rma.mv(yi, vi, random = ~ 1 | district/school, data = konst, method = m)
    ci1 <- confint(r0, sigma2 = 1); ci2 <- confint(r0, sigma2 = 2)
    fits[[paste0("konst_3level_", m)]]$profile_ci <- list(
      sigma2_1 = unname(ci1$random[1, ]), sigma_1 = unname(ci1$random[2, ]),
      sigma2_2 = unname(ci2$random[1, ]), sigma_2 = unname(ci2$random[2, ]))
  }
  r <- rma_mv(yi, vi, mods = ~ year_c, random = ~ 1 | district/school, data = konst, method = m)
  add(paste0("konst_3level_year_", m), r, list(data = "konstantopoulos2011", X = list("year_c"),
      groups = c("district", "school"), method = m))
  # two-level reductions used by the likelihood-ratio tests
  r <- rma_mv(yi, vi, random = ~ 1 | district, data = konst, method = m)
  add(paste0("konst_district_", m), r, list(data = "konstantopoulos2011", X = list(),
      groups = c("district"), method = m))
  r <- rma_mv(yi, vi, random = ~ 1 | study, data = konst, method = m)
  add(paste0("konst_study_", m), r, list(data = "konstantopoulos2011", X = list(),
      groups = c("study"), method = m))
  # random slope of year_c at the district level
  for (s in c("GDIAG", "GEN")) {
    r <- rma_mv(yi, vi, mods = ~ year_c, random = list(~ year_c | district, ~ 1 | study),
                struct = s, data = konst, method = m)
    add(paste0("konst_slope_", s, "_", m), r, list(data = "konstantopoulos2011",
        X = list("year_c"), groups = c("district", "study"), slopes = list("year_c"),
        struct = s, method = m))
  }
  # Raudenbush (1985) pupil IQ: two levels, one effect per group.
  r <- rma_mv(yi, vi, random = ~ 1 | study, data = pupil, method = m)
  add(paste0("pupil_", m), r, list(data = "raudenbush1985", X = list(), groups = c("study"), method = m))
  r <- rma_mv(yi, vi, mods = ~ weeks, random = ~ 1 | study, data = pupil, method = m)
  add(paste0("pupil_weeks_", m), r, list(data = "raudenbush1985", X = list("weeks"),
      groups = c("study"), method = m))
  # Four levels, simulated.
  r <- rma_mv(yi, vi, random = ~ 1 | region/country_id/study_id/es_id, data = sim4, method = m)
  add(paste0("sim4_4level_", m), r, list(data = "sim4", X = list(),
      groups = c("region", "country_id", "study_id", "es_id"), method = m))
  r <- rma_mv(yi, vi, mods = ~ x + x2, random = ~ 1 | region/country_id/study_id/es_id, data = sim4,
              method = m)
  add(paste0("sim4_4level_mods_", m), r, list(data = "sim4", X = list("x", "x2"),
      groups = c("region", "country_id", "study_id", "es_id"), method = m))
  for (s in c("GDIAG", "GEN")) {
    r <- rma_mv(yi, vi, mods = ~ x + x2,
                random = list(~ x | region, ~ 1 | country_id, ~ 1 | study_id, ~ 1 | es_id),
                struct = s, data = sim4, method = m)
    add(paste0("sim4_slope_", s, "_", m), r, list(data = "sim4", X = list("x", "x2"),
        groups = c("region", "country_id", "study_id", "es_id"), slopes = list("x"),
        struct = s, method = m))
  }
}

# Fixed correlation (Stata's covariance(custom)): GEN with rho fixed.
for (rho in c(0, 0.4, 0.5, 0.8)) {
  r <- rma_mv(yi, vi, mods = ~ year_c, random = list(~ year_c | district, ~ 1 | study),
              struct = "GEN", rho = rho, data = konst)
  add(paste0("konst_slope_rho", rho), r, list(data = "konstantopoulos2011", X = list("year_c"),
      groups = c("district", "study"), slopes = list("year_c"), struct = "GEN", rho = rho,
      method = "REML"))
}

# The bimodal data: metafor's default fit, and the likelihood-maximizing runs of
# several optimizers (the best of which is the global maximum). REML only: the ML
# likelihood of these data has a single maximum.
for (m in c("REML")) {
  r <- rma_mv(yi, vi, mods = ~ x, random = list(~ x | cluster, ~ 1 | es), struct = "GEN",
              data = bimodal, method = m)
  add(paste0("bimodal_GEN_", m), r, list(data = "bimodal", X = list("x"),
      groups = c("cluster", "es"), slopes = list("x"), struct = "GEN", method = m))
  lls <- c()
  for (opt in c("nlminb", "optim", "bobyqa", "uobyqa", "Nelder-Mead", "BFGS")) {
    rr <- tryCatch(rma.mv(yi, vi, mods = ~ x, random = list(~ x | cluster, ~ 1 | es),
                          struct = "GEN", data = bimodal, method = m,
                          control = list(optimizer = opt)), error = function(e) NULL)
    if (!is.null(rr)) lls[opt] <- as.numeric(logLik(rr))
  }
  fits[[paste0("bimodal_GEN_", m)]]$logLik_by_optimizer <- as.list(lls)
}

# The bimodal data: metafor's default fit, and the likelihood-maximizing runs of
# several optimizers (the best of which is the global maximum). REML only: the ML
# likelihood of these data has a single maximum.
local({
  r <- rma.mv(yi, vi, mods = ~ x, random = list(~ x | cluster, ~ 1 | es), struct = "GEN",
              data = bimodal, method = "REML", control = list(rel.tol = 1e-10))
  add("bimodal_GEN_REML", r, list(data = "bimodal", X = list("x"),
      groups = c("cluster", "es"), slopes = list("x"), struct = "GEN", method = "REML"))
  lls <- c()
  for (opt in c("nlminb", "optim", "Nelder-Mead", "BFGS")) {
    rr <- tryCatch(rma.mv(yi, vi, mods = ~ x, random = list(~ x | cluster, ~ 1 | es),
                          struct = "GEN", data = bimodal, method = "REML",
                          control = list(optimizer = opt)), error = function(e) NULL)
    if (!is.null(rr)) lls[opt] <- as.numeric(logLik(rr))
  }
  fits$bimodal_GEN_REML$logLik_by_optimizer <<- as.list(lls)
})

  out <- list(
  versions = list(R = R.version.string, metafor = as.character(packageVersion("metafor")),
                  metadat = as.character(packageVersion("metadat"))),
  data = datasets, fits = fits)
write_json(out, "tests/reference/multilevel.json", digits = NA, auto_unbox = TRUE, pretty = FALSE)
cat("wrote tests/reference/multilevel.json with", length(fits), "fits\n")
