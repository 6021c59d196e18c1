# Reference numbers at and near the boundary tau^2 = 0 (sigma^2 = 0) from metafor.
#
# Writes tests/reference/boundary.json, read by tests/test_properties.py (the
# tests never need R). metafor is GPL: it is only run here to produce numbers.
#
# Cases:
#   re_*   rma.uni (ML, REML) on data whose tau^2 estimate is exactly 0, or small
#          and positive, with and without a moderator; rescaled copies of one
#          design (y * c, v * c^2 for c = 1e-3, 1e3) check metafor's scale
#          behaviour against ours.
#   ls_*   rma(..., scale = ~ z): log link with tau^2 -> 0 in a subgroup (the
#          scale coefficient diverges; the log-likelihood is still defined),
#          identity link with the constraint tau_i^2 >= 0 active, and an
#          intercept-only scale model at tau^2 = 0.
#   mv_*   rma.mv three-level models with one variance component at 0 (or near).
#
# Run from the repository root:  Rscript tests/reference/make_boundary.R

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(jsonlite)
})

num <- function(x) as.numeric(x)
cases <- list()

add_uni <- function(id, yi, vi, x = NULL, method) {
  fit <- if (is.null(x)) rma(yi, vi, method = method) else rma(yi, vi, mods = ~ x, method = method)
  cases[[length(cases) + 1]] <<- list(
    id = id, kind = "uni", method = method,
    yi = I(num(yi)), vi = I(num(vi)), x = if (is.null(x)) NULL else I(num(x)),
    tau2 = fit$tau2, beta = I(num(fit$beta)), se = I(num(fit$se)),
    logLik = as.numeric(logLik(fit)), AIC = AIC(fit), BIC = BIC(fit),
    QE = fit$QE, pval = I(num(fit$pval))
  )
}

vi8 <- c(0.020, 0.030, 0.025, 0.040, 0.050, 0.020, 0.030, 0.045)
x8 <- c(-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)
# (a) homogeneous: Q < k - 1, tau^2 = 0 for ML and REML
y_homog <- c(0.10, 0.12, 0.08, 0.11, 0.09, 0.10, 0.13, 0.07)
# (b) near the boundary: small positive tau^2
y_near <- c(0.05, 0.38, -0.12, 0.41, -0.05, 0.30, 0.47, -0.20)
# (c) homogeneous around a line in x
y_line <- 0.1 + 0.2 * x8 + c(0.02, -0.01, 0.00, 0.01, -0.02, 0.01, -0.01, 0.00)
for (m in c("ML", "REML")) {
  add_uni(paste0("re_homog_", m), y_homog, vi8, NULL, m)
  add_uni(paste0("re_near_", m), y_near, vi8, NULL, m)
  add_uni(paste0("re_line_", m), y_line, vi8, x8, m)
  add_uni(paste0("re_near_x_", m), y_near, vi8, x8, m)
  for (c in c(1e-3, 1e3)) {
    add_uni(sprintf("re_near_scaled_%g_%s", c, m), y_near * c, vi8 * c^2, NULL, m)
  }
}
# the CLASP trials (k = 2 style tiny k): k = 3, tau^2 = 0 under ML
add_uni("re_k3_ML", c(0.2, 0.25, 0.22), c(0.01, 0.02, 0.015), NULL, "ML")
add_uni("re_k3_REML", c(0.2, 0.25, 0.22), c(0.01, 0.02, 0.015), NULL, "REML")

# ---- location-scale ----------------------------------------------------------
z12 <- rep(c(0, 1), each = 6)
vi12 <- c(0.02, 0.03, 0.025, 0.04, 0.05, 0.02, 0.03, 0.045, 0.02, 0.035, 0.03, 0.04)
# group z = 0 homogeneous, group z = 1 heterogeneous
y12 <- c(0.10, 0.12, 0.08, 0.11, 0.09, 0.10, 0.60, -0.40, 0.90, -0.10, 0.35, 1.20)
add_ls <- function(id, yi, vi, z, method, link, mods = NULL) {
  ctrl <- list()
  fit <- suppressWarnings(
    if (is.null(z)) {
      if (is.null(mods)) rma(yi, vi, scale = ~ 1, method = method, link = link)
      else rma(yi, vi, mods = ~ mods, scale = ~ 1, method = method, link = link)
    } else {
      if (is.null(mods)) rma(yi, vi, scale = ~ z, method = method, link = link)
      else rma(yi, vi, mods = ~ mods, scale = ~ z, method = method, link = link)
    }
  )
  tau2 <- if (link == "log") exp(num(fit$Z %*% fit$alpha)) else num(fit$Z %*% fit$alpha)
  cases[[length(cases) + 1]] <<- list(
    id = id, kind = "ls", method = method, link = link,
    yi = I(num(yi)), vi = I(num(vi)), z = if (is.null(z)) NULL else I(num(z)),
    x = if (is.null(mods)) NULL else I(num(mods)),
    alpha = I(num(fit$alpha)), tau2 = I(tau2), beta = I(num(fit$beta)),
    logLik = as.numeric(logLik(fit))
  )
}
for (m in c("ML", "REML")) {
  add_ls(paste0("ls_subgroup_zero_log_", m), y12, vi12, z12, m, "log")
  add_ls(paste0("ls_subgroup_zero_identity_", m), y12, vi12, z12, m, "identity")
  add_ls(paste0("ls_homog_intercept_identity_", m), y_homog, vi8, NULL, m, "identity")
  add_ls(paste0("ls_near_log_", m), y_near, vi8, x8, m, "log")
}

# ---- rma.mv: three levels, one variance at the boundary -----------------------
set.seed(20240611)
n_cl <- 8
per <- 3
cl <- rep(seq_len(n_cl), each = per)
st <- seq_len(n_cl * per)
vmv <- round(runif(n_cl * per, 0.01, 0.05), 4)
# no between-cluster variance in the simulation (estimate small, near 0);
# study-level variance 0.04
ymv0 <- round(0.2 + rnorm(n_cl * per, 0, sqrt(0.04 + vmv)), 4)
# between-cluster variance 0.05; no within-cluster (study) variance
ymv1 <- round(0.2 + rnorm(n_cl, 0, sqrt(0.05))[cl] + rnorm(n_cl * per, 0, sqrt(vmv)), 4)
add_mv <- function(id, yi, vi, method) {
  fit <- rma.mv(yi, vi, random = ~ 1 | cl / st, method = method)
  cases[[length(cases) + 1]] <<- list(
    id = id, kind = "mv", method = method,
    yi = I(num(yi)), vi = I(num(vi)), cluster = I(cl), study = I(st),
    sigma2 = I(num(fit$sigma2)), beta = I(num(fit$beta)), se = I(num(fit$se)),
    logLik = as.numeric(logLik(fit))
  )
}
for (m in c("ML", "REML")) {
  add_mv(paste0("mv_cluster_near_", m), ymv0, vmv, m)
  add_mv(paste0("mv_study_zero_", m), ymv1, vmv, m)
}

out <- list(
  description = paste(
    "metafor fits at and near the boundary tau^2 = 0 / sigma^2 = 0;",
    "generated by tests/reference/make_boundary.R"
  ),
  versions = list(
    R = R.version.string,
    metafor = as.character(packageVersion("metafor")),
    metadat = as.character(packageVersion("metadat")),
    jsonlite = as.character(packageVersion("jsonlite"))
  ),
  cases = cases
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE),
           "tests/reference/boundary.json")
cat("wrote", length(cases), "cases\n")
