# Reference numbers for skmeta.LocationScaleMeta and the shared inference tools.
#
# metafor's rma(..., scale = ~ z) is the reference implementation (GPL: it is run
# here to produce numbers only; skmeta implements the published formulas).
# Writes tests/reference/location_scale.json with the data used, so that the
# Python tests never need R.
#
# Run from the repository root:  Rscript tests/reference/make_location_scale.R

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(jsonlite)
})

# ---- data ---------------------------------------------------------------------
bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg$random <- as.numeric(bcg$alloc == "random")

wtl <- dat.bangertdrowns2004
wtl$ni100 <- wtl$ni / 100
math <- c("Algebra", "Calculus", "Math", "Statistics", "Math in Science")
sci <- c("Biology", "Chemistry", "Comp Science and Chemistry", "Earth Science",
         "Natural Resources", "Science", "Nursing")
wtl$subj <- ifelse(wtl$subject %in% math, "math", ifelse(wtl$subject %in% sci, "sci", "soc"))
wtl$math <- as.numeric(wtl$subj == "math")
wtl$sci <- as.numeric(wtl$subj == "sci")
wtl$soc <- as.numeric(wtl$subj == "soc")
wtl$sqrt_ni <- sqrt(wtl$ni)
wtl$grade1 <- as.numeric(wtl$grade == 1)  # dummies of factor(grade), reference grade 1
wtl$grade2 <- as.numeric(wtl$grade == 2)
wtl$grade3 <- as.numeric(wtl$grade == 3)
wtl$grade4 <- as.numeric(wtl$grade == 4)

lao <- escalc(measure = "RR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = dat.laopaiboon2015)
lao$ni <- lao$n1i + lao$n2i
# (metafor's test file reproduces its numbers with the plain total sample size;
# escalc adds 1/2 to the cells of the Whitlock study, which has a zero cell)
lao$inv_ni <- 1 / lao$ni

datasets <- list(
  bcg = data.frame(yi = as.numeric(bcg$yi), vi = as.numeric(bcg$vi), random = bcg$random,
                   ablat = bcg$ablat, year = bcg$year),
  wtl = data.frame(id = wtl$id, yi = wtl$yi, vi = wtl$vi, ni = wtl$ni, ni100 = wtl$ni100,
                   grade = wtl$grade, meta = wtl$meta, sqrt_ni = wtl$sqrt_ni,
                   subject = wtl$subject, subj = wtl$subj, math = wtl$math, sci = wtl$sci,
                   soc = wtl$soc, grade2 = wtl$grade2, grade3 = wtl$grade3, grade4 = wtl$grade4),
  lao = data.frame(yi = as.numeric(lao$yi), vi = as.numeric(lao$vi), ni = lao$ni,
                   inv_ni = lao$inv_ni)
)
# 'meta' is missing for some writing-to-learn studies: models that use it are
# fitted on the complete cases, whose (1-based) row numbers are stored as 'rows'.

# ---- helpers --------------------------------------------------------------------
design <- function(d, cols, intercept) {
  m <- if (length(cols)) as.matrix(d[, cols, drop = FALSE]) else matrix(0, nrow(d), 0)
  if (intercept) m <- cbind(1, m)
  m
}

fit_ls <- function(data, xcols, zcols, method = "REML", link = "log", xint = TRUE,
                   zint = TRUE, profile = FALSE, cc = character(0)) {
  d <- datasets[[data]]
  rows <- which(complete.cases(d[, c("yi", "vi", xcols, zcols, cc), drop = FALSE]))
  d <- d[rows, , drop = FALSE]
  X <- design(d, xcols, xint)
  Z <- design(d, zcols, zint)
  # tight nlminb tolerances where they converge (metafor's defaults stop earlier)
  ctrl <- if (profile) list() else list(rel.tol = 1e-12, iter.max = 10000, eval.max = 10000)
  res <- tryCatch(
    rma(d$yi, d$vi, mods = X, intercept = FALSE, scale = Z, method = method, link = link,
        control = ctrl),
    error = function(e) rma(d$yi, d$vi, mods = X, intercept = FALSE, scale = Z,
                            method = method, link = link))
  out <- list(data = data, x = xcols, z = zcols, method = tolower(method), link = link,
              rows = rows, fit_intercept = xint, scale_fit_intercept = zint,
              beta = as.numeric(res$beta), se = as.numeric(res$se), vb = unname(res$vb),
              alpha = as.numeric(res$alpha), se_alpha = as.numeric(res$se.alpha),
              va = unname(res$va), tau2 = as.numeric(res$tau2),
              loglik = as.numeric(res$fit.stats["ll", method]),
              aic = as.numeric(res$fit.stats["AIC", method]),
              bic = as.numeric(res$fit.stats["BIC", method]),
              aicc = as.numeric(res$fit.stats["AICc", method]),
              qm = res$QM, qs = res$QS,
              hat = as.numeric(hatvalues(res)))
  if (profile) {
    ci <- lapply(seq_along(out$alpha), function(j) as.numeric(confint(res, alpha = j)$random[1, ]))
    out$alpha_pl_ci <- ci
  }
  list(res = res, out = out)
}

models <- list()
add <- function(name, ...) {
  f <- fit_ls(...)
  models[[name]] <<- f$out
  invisible(f$res)
}

# seed 000 and reference-conventions §3
b_alloc <- add("bcg_alloc_reml", "bcg", "random", "random")
b_int <- add("bcg_alloc_scale1_reml", "bcg", "random", character(0))
add("bcg_alloc_ml", "bcg", "random", "random", method = "ML")
add("bcg_alloc_scale1_ml", "bcg", "random", character(0), method = "ML")
add("bcg_alloc_identity_reml", "bcg", "random", "random", link = "identity")
add("bcg_alloc_identity_ml", "bcg", "random", "random", method = "ML", link = "identity")
add("bcg_ablat_reml", "bcg", "ablat", "ablat")
add("bcg_ablat_ml", "bcg", "ablat", "ablat", method = "ML")
add("bcg_ablat_identity_ml", "bcg", "ablat", "ablat", method = "ML", link = "identity")
add("bcg_ablat_scale_random_reml", "bcg", "ablat", "random")
add("bcg_int_only_reml", "bcg", character(0), character(0))
add("bcg_int_only_ml", "bcg", character(0), character(0), method = "ML")
w1 <- add("wtl_ni100_reml", "wtl", "ni100", "ni100", profile = TRUE)
add("wtl_ni100_ml", "wtl", "ni100", "ni100", method = "ML")
add("wtl_ni100_subj_reml", "wtl", c("ni100", "sci", "soc"), c("ni100", "sci", "soc"))
wg <- add("wtl_grade_reml", "wtl", character(0), "grade", profile = TRUE)
add("wtl_grade_ml", "wtl", character(0), "grade", method = "ML")
add("wtl_grade_identity_reml", "wtl", character(0), "grade", link = "identity", profile = TRUE)
w3 <- add("wtl_grade_meta_sqrtni_reml", "wtl", character(0), c("grade", "meta", "sqrt_ni"))
wfull <- add("wtl_fgrade_meta_sqrtni_both_reml", "wtl", c("grade2", "grade3", "grade4", "meta", "sqrt_ni"),
             c("grade2", "grade3", "grade4", "meta", "sqrt_ni"))
w0 <- add("wtl_int_only_reml", "wtl", character(0), character(0))
w0m <- add("wtl_int_only_reml_meta_rows", "wtl", character(0), character(0), cc = "meta")
add("wtl_int_only_ml", "wtl", character(0), character(0), method = "ML")
add("wtl_meta_reml", "wtl", character(0), "meta")
add("lao_invni_noint_identity_ml", "lao", character(0), "inv_ni", method = "ML", link = "identity", zint = FALSE)
add("lao_invni_identity_ml", "lao", character(0), "inv_ni", method = "ML", link = "identity")
add("lao_invni_noint_log_reml", "lao", character(0), "inv_ni", zint = FALSE)
add("lao_invni_log_reml", "lao", character(0), "inv_ni")

# ---- tests and extras --------------------------------------------------------------
extras <- list()
a <- anova(b_alloc, b_int)
extras$bcg_lrt <- list(lrt = a$LRT, pval = a$pval)
a <- suppressWarnings(anova(wfull, w0m))
extras$wtl_full_vs_int_lrt <- list(lrt = a$LRT, pval = a$pval)
# same location model, scale ~ 1: the note's anova (LRT 3.146726)
wloc <- add("wtl_fgrade_meta_sqrtni_loc_scale1_reml", "wtl",
            c("grade2", "grade3", "grade4", "meta", "sqrt_ni"), character(0), cc = "meta")
a <- anova(wfull, wloc)
extras$wtl_full_vs_scale1_lrt <- list(lrt = a$LRT, pval = a$pval)
a <- anova(wfull, btt = 2:4); extras$wtl_full_btt <- list(stat = a$QM, pval = a$QMp)
a <- anova(wfull, att = 2:4); extras$wtl_full_att <- list(stat = a$QS, pval = a$QSp)
a <- anova(wfull, X = c(0, 1, -1, 0, 0, 0)); extras$wtl_full_xcontrast <- list(stat = a$QM, pval = a$QMp)
a <- anova(wfull, Z = c(0, 1, -1, 0, 0, 0)); extras$wtl_full_zcontrast <- list(stat = a$QS, pval = a$QSp)

# subgroup tau2 (separate REML fits) and the infinite-estimate model
extras$wtl_subgroup_tau2 <- sapply(c("soc", "math", "sci"), function(g)
  rma(yi, vi, data = wtl, subset = subj == g)$tau2)
extras$bcg_subgroup_tau2 <- sapply(c(0, 1), function(g)
  rma(yi, vi, data = bcg, subset = random == g)$tau2)
inf <- suppressWarnings(rma(yi, vi, mods = ~ math + sci, scale = ~ math + sci, data = wtl))
extras$wtl_subj_infinite <- list(alpha = as.numeric(inf$alpha), beta = as.numeric(inf$beta),
                                 loglik = as.numeric(logLik(inf)))

# predictions: location + tau2 for new studies
pr <- predict(w1, newmods = c(0.2, 2, 5), newscale = c(0.2, 2, 5))
extras$wtl_ni100_predict <- list(ni100 = c(0.2, 2, 5), pred = as.numeric(pr$pred), se = as.numeric(pr$se),
                                 ci_lb = as.numeric(pr$ci.lb), ci_ub = as.numeric(pr$ci.ub),
                                 pi_lb = as.numeric(pr$pi.lb), pi_ub = as.numeric(pr$pi.ub))
pt <- predict(w1, newscale = c(0.2, 2, 5), transf = exp)
extras$wtl_ni100_predict_tau2 <- as.numeric(pt$pred)

# permutation tests (Monte Carlo, so only agreement within MC error is expected)
set.seed(1234)
pm <- permutest(w3, iter = 1000, progbar = FALSE)
extras$wtl_grade_meta_sqrtni_permutest <- list(iter = 1000, pval_location = as.numeric(pm$pval),
                                                pval_scale = as.numeric(pm$pval.alpha),
                                                qsp = pm$QSp)
set.seed(42)
pb <- permutest(b_alloc, iter = 1000, progbar = FALSE)
extras$bcg_alloc_permutest <- list(iter = 1000, pval_location = as.numeric(pb$pval),
                                   pval_scale = as.numeric(pb$pval.alpha))

# heteroscedasticity test with fixed study effects (REML), seed table
# (~ 0 + factor(id) does not converge with nlminb or optim; ~ factor(id) is the same model)
rf <- rma(yi, vi, scale = ~ factor(id), data = wtl, control = list(optimizer = "optim"))
extras$wtl_fixed_study_scale <- list(loglik = as.numeric(logLik(rf)), loglik_re = as.numeric(logLik(w0)),
                                     half_log_k = 0.5 * log(nrow(wtl)))

timing <- system.time(for (i in 1:50) rma(yi, vi, mods = ~ random, scale = ~ random, data = bcg))
extras$metafor_ms_per_fit_k13 <- 1000 * timing[["elapsed"]] / 50

out <- list(
  versions = list(R = paste(R.version$major, R.version$minor, sep = "."),
                  metafor = as.character(packageVersion("metafor")),
                  metadat = as.character(packageVersion("metadat"))),
  datasets = datasets, models = models, extras = extras)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, dataframe = "columns", na = "null"),
           file.path("tests", "reference", "location_scale.json"))
cat("wrote", length(models), "models\n")
