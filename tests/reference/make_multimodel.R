# Reference numbers for skmeta.model_selection.multimodel from R's metafor.
#
# Writes tests/reference/multimodel.json. The Python tests
# (tests/test_model_selection.py) read that file and never need R.
#
# Multimodel inference with metafor is usually run through MuMIn or glmulti, which
# are not installed here. This script does what they do with metafor, in plain R:
# it fits every subset of the candidate moderators with rma(method = "ML") on the
# same complete cases, ranks the fits by metafor's information criteria
# (fitstats()), and averages the coefficients with Burnham & Anderson's formulas:
#   Akaike weights       w_r = exp(-delta_r / 2) / sum exp(-delta / 2)
#   importance(x)        sum of w_r over the models containing x
#   full average         b = sum_r w_r b_r, with b_r = 0 and se_r = 0 where x is absent
#   conditional average  the same over the models containing x, weights renormalised
#   unconditional SE     sqrt(sum_r w_r (se_r^2 + (b_r - b)^2))   (revised formula,
#                        Burnham & Anderson 2004, eq. 4; MuMIn's revised.var = TRUE)
#   z = b / SE, p = 2 pnorm(-|z|), CI = b -/+ qnorm(0.975) SE
# metafor is GPL: this script only *runs* it to produce numbers.
#
# Run from the repository root:  Rscript tests/reference/make_multimodel.R
#
# Layout of the JSON:
#   versions  R, metafor, metadat, jsonlite
#   control   metafor's iteration settings (run to convergence)
#   cases     list of {id, source, yi, vi, X (named columns, complete cases),
#                      terms, criterion, max_terms, models, importance,
#                      full, conditional}
#     models       list of {terms, K, loglik, aic, bic, aicc, criterion, delta,
#                           weight, coef {name: b}, se {name: se}}, best first
#     full, conditional   {term: {estimate, se, z, p, ci_lb, ci_ub}}

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})
stopifnot(as.character(packageVersion("metafor")) == "3.8.1")

control <- list(threshold = 1e-13, maxiter = 10000)

average <- function(models, weights, names) {
  full <- list()
  conditional <- list()
  z975 <- qnorm(0.975)
  summarise <- function(b, se) {
    z <- b / se
    list(estimate = b, se = se, z = z, p = 2 * pnorm(-abs(z)),
         ci_lb = b - z975 * se, ci_ub = b + z975 * se)
  }
  for (nm in names) {
    b <- sapply(models, function(m) if (nm %in% names(m$coef)) m$coef[[nm]] else 0)
    se <- sapply(models, function(m) if (nm %in% names(m$se)) m$se[[nm]] else 0)
    has <- sapply(models, function(m) nm %in% names(m$coef))
    bf <- sum(weights * b)
    full[[nm]] <- summarise(bf, sqrt(sum(weights * (se^2 + (b - bf)^2))))
    wc <- weights[has] / sum(weights[has])
    bc <- sum(wc * b[has])
    conditional[[nm]] <- summarise(bc, sqrt(sum(wc * (se[has]^2 + (b[has] - bc)^2))))
  }
  list(full = full, conditional = conditional)
}

all_subsets <- function(id, source, dat, yi, vi, mods, criterion = "aicc",
                        max_terms = length(mods)) {
  keep <- complete.cases(dat[, c(yi, vi, mods)])
  d <- dat[keep, ]
  subsets <- list(character(0))
  for (size in seq_len(max_terms)) {
    subsets <- c(subsets, combn(mods, size, simplify = FALSE))
  }
  models <- lapply(subsets, function(terms) {
    if (length(terms)) {
      X <- as.matrix(d[, terms, drop = FALSE])
      res <- rma(d[[yi]], d[[vi]], mods = X, method = "ML", control = control)
    } else {
      res <- rma(d[[yi]], d[[vi]], method = "ML", control = control)
    }
    fs <- fitstats(res)
    b <- as.numeric(coef(res))
    names(b) <- c("intercept", terms)
    se <- as.numeric(res$se)
    names(se) <- names(b)
    list(terms = I(terms), K = res$parms, loglik = fs[["logLik:", 1]],
         aic = fs[["AIC:", 1]], bic = fs[["BIC:", 1]], aicc = fs[["AICc:", 1]],
         coef = as.list(b), se = as.list(se))
  })
  crit <- sapply(models, function(m) m[[criterion]])
  delta <- crit - min(crit)
  weights <- exp(-delta / 2) / sum(exp(-delta / 2))
  for (r in seq_along(models)) {
    models[[r]]$criterion <- crit[r]
    models[[r]]$delta <- delta[r]
    models[[r]]$weight <- weights[r]
  }
  order_ <- order(crit)
  importance <- sapply(mods, function(nm) {
    sum(weights[sapply(models, function(m) nm %in% m$terms)])
  })
  avg <- average(models, weights, c("intercept", mods))
  Xl <- list()
  for (nm in mods) Xl[[nm]] <- I(as.numeric(d[[nm]]))
  list(id = id, source = source, k = nrow(d), n_dropped = sum(!keep),
       yi = I(as.numeric(d[[yi]])), vi = I(as.numeric(d[[vi]])), X = Xl,
       terms = I(mods), criterion = criterion, max_terms = max_terms,
       models = models[order_], importance = as.list(importance),
       full = avg$full, conditional = avg$conditional)
}

cases <- list()
bd <- dat.bangertdrowns2004
cases[[1]] <- all_subsets(
  "bangertdrowns_3", "metadat dat.bangertdrowns2004; moderators length, imag, meta",
  bd, "yi", "vi", c("length", "imag", "meta"))
cases[[2]] <- all_subsets(
  "bangertdrowns_5", "metadat dat.bangertdrowns2004; moderators grade, length, info, imag, meta",
  bd, "yi", "vi", c("grade", "length", "info", "imag", "meta"))
cases[[3]] <- all_subsets(
  "bangertdrowns_5_bic", "as bangertdrowns_5, ranked by BIC",
  bd, "yi", "vi", c("grade", "length", "info", "imag", "meta"), criterion = "bic")
cases[[4]] <- all_subsets(
  "bangertdrowns_5_aic_max2", "as bangertdrowns_5, ranked by AIC, at most 2 moderators",
  bd, "yi", "vi", c("grade", "length", "info", "imag", "meta"), criterion = "aic",
  max_terms = 2)

bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg$random <- as.numeric(bcg$alloc == "random")
bcg$systematic <- as.numeric(bcg$alloc == "systematic")
cases[[5]] <- all_subsets(
  "bcg_4", paste("metadat dat.bcg; escalc('RR'); moderators ablat, year and",
                 "allocation dummies random, systematic (reference: alternate)"),
  bcg, "yi", "vi", c("ablat", "year", "random", "systematic"))

out <- list(
  description = paste("All-subsets multimodel inference over metafor ML fits for",
                      "skmeta.model_selection; generated by",
                      "tests/reference/make_multimodel.R"),
  versions = list(R = R.version.string, metafor = as.character(packageVersion("metafor")),
                  metadat = as.character(packageVersion("metadat")),
                  jsonlite = as.character(packageVersion("jsonlite"))),
  control = control,
  cases = cases
)
write_json(out, file.path("tests", "reference", "multimodel.json"), digits = NA,
           auto_unbox = TRUE, pretty = TRUE, null = "null")
cat("wrote tests/reference/multimodel.json\n")
