# Reference values for the effect sizes that metafor 3.8.1 (the installed
# version) cannot produce: measures and variance types added in later metafor
# versions, and conventions that changed since (NEWS.md of metafor). Each value
# is computed here *from the published formula*, in plain R arithmetic, not
# by metafor; every case records the formula and the metafor version whose
# convention it follows.
#
# The tetrachoric correlations are the exact maximum-likelihood solutions,
# with the bivariate normal probability from mvtnorm's TVPACK algorithm
# (accurate to ~1e-16) and a root search to 1e-15: metafor's own numbers are
# accurate to only about 4 digits (numerical optimisation).
#
# Writes tests/reference/escalc_current.json (options are skmeta keywords).
#
# Run from the repository root:  Rscript tests/reference/make_escalc_current.R

suppressPackageStartupMessages({
  library(jsonlite)
  library(mvtnorm)
})

cases <- list()
add_case <- function(name, measure, inputs, options, yi, vi, version, formula) {
  cases[[length(cases) + 1]] <<- list(
    name = name, measure = measure, inputs = inputs, options = options,
    yi = as.numeric(yi), vi = as.numeric(vi), version = version, formula = formula
  )
}

# Hedges' exact bias correction J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))
hedges_j <- function(m) exp(lgamma(m / 2) - log(sqrt(m / 2)) - lgamma((m - 1) / 2))

means <- list(m1i = c(10.2, 5.5, 1.3, 100, 0.42, 3.0),
              sd1i = c(2.1, 1.4, 0.8, 15.2, 0.11, 1.0),
              n1i = c(20, 8, 3, 150, 45, 2),
              m2i = c(9.1, 6.25, 2.0, 96.5, 0.40, 2.0),
              sd2i = c(2.4, 1.1, 1.3, 13.9, 0.09, 2.5),
              n2i = c(22, 7, 2, 140, 50, 2))

## ---- ROM: bias correction by default since metafor 5.0; LS2 since 4.8 -----
with(means, {
  c1 <- sd1i^2 / (n1i * m1i^2)
  c2 <- sd2i^2 / (n2i * m2i^2)
  yi <- log(m1i / m2i) + (c1 - c2) / 2
  add_case("ROM_correct_LS", "ROM", means, list(vtype = "LS"), yi, c1 + c2,
           "metafor >= 5.0 (bias correction applied by default)",
           "Lajeunesse (2015) eq. 8; Hedges et al. (1999) eq. 1")
  add_case("ROM_correct_LS2", "ROM", means, list(vtype = "LS2"), yi,
           c1 + c1^2 / 2 + c2 + c2^2 / 2,
           "metafor >= 5.0 (vtype LS2 and the default bias correction)",
           "Lajeunesse (2015) eqs. 8 and 9")
  add_case("ROM_nocorrect_LS2", "ROM", means, list(vtype = "LS2", correct = FALSE),
           log(m1i / m2i), c1 + c1^2 / 2 + c2 + c2^2 / 2,
           "metafor >= 5.0 with correct=FALSE",
           "Lajeunesse (2015) eq. 9")
})

## ---- CVR: second-order bias terms by default since metafor 5.0 ------------
cvr_means <- means
cvr_means$m1i[3] <- -1.3  # both means negative: the ratio of CVs is positive
cvr_means$m2i[3] <- -2.0
with(cvr_means, {
  b1 <- 1 / (2 * (n1i - 1))
  b2 <- 1 / (2 * (n2i - 1))
  c1 <- sd1i^2 / (n1i * m1i^2)
  c2 <- sd2i^2 / (n2i * m2i^2)
  lcvr <- log((sd1i / m1i) / (sd2i / m2i))
  add_case("CVR_correct", "CVR", cvr_means, list(),
           lcvr + (b1 - c1 / 2) - (b2 - c2 / 2), b1 + c1 + b2 + c2,
           "metafor >= 5.0 (second-order bias correction by default)",
           "Senior et al. (2020) eqs. 6 and 13")
  add_case("CVR_nocorrect", "CVR", cvr_means, list(correct = FALSE),
           lcvr, b1 + c1 + b2 + c2,
           "metafor >= 4.8 with correct=FALSE",
           "Senior et al. (2020) eq. 13")
})

## ---- SMD and COR: vtype H0 (metafor >= 4.8) -------------------------------
with(means, {
  m <- n1i + n2i - 2
  sp <- sqrt(((n1i - 1) * sd1i^2 + (n2i - 1) * sd2i^2) / m)
  add_case("SMD_H0", "SMD", means, list(vtype = "H0"),
           hedges_j(m) * (m1i - m2i) / sp, 1 / n1i + 1 / n2i,
           "metafor >= 4.8 (vtype H0)", "Hedges (1981); variance under delta = 0")
})
cors <- list(ri = c(0.3, -0.45, 0, 0.92, -0.05, 0.6), ni = c(50, 20, 100, 12, 400, 5))
add_case("COR_H0", "COR", cors, list(vtype = "H0"), cors$ri, 1 / (cors$ni - 1),
         "metafor >= 4.8 (vtype H0)", "variance of r under rho = 0: 1/(n-1)")

## ---- ZPCOR / ZSPCOR (mi counts all predictors: metafor >= 4.4) ------------
reg <- list(ti = c(2.5, -1.2, 4.0, 0.3, -3.3), ni = c(50, 30, 120, 25, 15),
            mi = c(3, 1, 5, 2, 4), r2i = c(0.3, 0.1, 0.5, 0.2, 0.6))
with(reg, {
  df <- ni - mi - 1
  r <- ti / sqrt(ti^2 + df)
  add_case("ZPCOR_hand", "ZPCOR", reg[c("ti", "ni", "mi")], list(),
           atanh(r), 1 / (ni - mi - 2),
           "metafor >= 4.4 (1/(n - 3) analogue, mi counting the focal predictor)",
           "Fisher z of the partial correlation, Aloe & Thompson (2013)")
  sr <- ti * sqrt((1 - r2i) / df)
  red <- r2i - sr^2
  v_sr <- (r2i^2 - 2 * r2i + red + 1 - red^2) / ni
  add_case("ZSPCOR_hand", "ZSPCOR", reg, list(), atanh(sr), v_sr / (1 - sr^2)^2,
           "metafor >= 4.0 (measure ZSPCOR; not in 3.8.1)",
           "Aloe & Becker (2012) variance, delta method for atanh")
})

## ---- AUC / AUCN (metafor >= 4.8) ------------------------------------------
auc <- list(ai = c(0.5, 0.62, 0.75, 0.9, 0.98, 0.35, 1),
            n1i = c(20, 35, 12, 100, 8, 50, 10),
            n2i = c(25, 30, 15, 80, 9, 45, 12))
with(auc, {
  q1 <- (1 - ai) / (2 - ai)
  q2 <- ai / (1 + ai)
  den <- (n1i - 1) * (n2i - 1)
  add_case("AUC_LS", "AUC", auc, list(vtype = "LS"), ai,
           ai * (1 - ai) * (1 + ((n1i + n2i) / 2 - 1) * (q1 + q2)) / den,
           "metafor >= 4.8 (measure AUC/CLES, vtype LS)",
           "Newcombe (2006) method 4 with (n1-1)(n2-1) (Cho et al., 2019)")
  add_case("AUC_LS2", "AUC", auc, list(vtype = "LS2"), ai,
           ai * (1 - ai) * (1 + (n1i - 1) * q1 + (n2i - 1) * q2) / den,
           "metafor >= 4.8 (measure AUC/CLES, vtype LS2)",
           "Hanley & McNeil (1982) eqs. 1-2 with (n1-1)(n2-1)")
})
with(means, {
  tot <- sd1i^2 + sd2i^2
  z <- (m1i - m2i) / sqrt(tot)
  var_z <- (sd1i^2 / (n1i - 1) + sd2i^2 / (n2i - 1)) / tot +
    z^2 * (sd1i^4 / (n1i - 1) + sd2i^4 / (n2i - 1)) / (2 * tot^2)
  add_case("AUCN_LS", "AUCN", means, list(), pnorm(z), dnorm(z)^2 * var_z,
           "metafor >= 4.8 (measure AUCN/CLESN, vtype LS)",
           "binormal AUC, delta method (Goddard & Hinberg, 1990, eqs. 3-4, n-1)")
})

## ---- RTET: exact maximum-likelihood tetrachoric correlations --------------
bvn <- function(h, k, rho) {
  as.numeric(pmvnorm(upper = c(h, k), corr = matrix(c(1, rho, rho, 1), 2),
                     algorithm = TVPACK(abseps = 1e-15)))
}
tab <- list(ai = c(12, 40, 7, 55, 3, 20, 150, 1000),
            bi = c(30, 5, 11, 10, 19, 20, 40, 1),
            ci = c(9, 3, 4.5, 8, 25, 20, 60, 1),
            di = c(35, 60, 9, 70, 2, 20, 300, 1000))
rtet <- with(tab, t(sapply(seq_along(ai), function(i) {
  n <- ai[i] + bi[i] + ci[i] + di[i]
  p <- c(ai[i], bi[i], ci[i]) / n
  h <- qnorm(p[1] + p[2])
  k <- qnorm(p[1] + p[3])
  rho <- uniroot(function(r) bvn(h, k, r) - p[1], c(-1 + 1e-12, 1 - 1e-12),
                 tol = 1e-15)$root
  s <- sqrt(1 - rho^2)
  dens <- exp(-(h^2 - 2 * rho * h * k + k^2) / (2 * s^2)) / (2 * pi * s)
  A <- pnorm((k - rho * h) / s)
  B <- pnorm((h - rho * k) / s)
  g <- c(1 - A - B, -A, -B) / dens
  c(rho, (sum(g^2 * p) - sum(g * p)^2) / n)
})))
add_case("RTET_exact", "RTET", tab, list(), rtet[, 1], rtet[, 2],
         "exact ML solution (metafor 3.8.1 agrees to ~4 digits)",
         "Pearson (1900); delta-method (inverse information) variance")

out <- list(
  r_version = R.version.string,
  mvtnorm_version = as.character(packageVersion("mvtnorm")),
  generated_by = "tests/reference/make_escalc_current.R",
  cases = cases
)
writeLines(
  toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
  file.path("tests", "reference", "escalc_current.json")
)
cat(length(cases), "cases written\n")
