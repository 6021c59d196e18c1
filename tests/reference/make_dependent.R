# Reference numbers for dependent effect sizes in skmeta.MultilevelMeta
# (tests/test_reference_dependent.py).
#
# The correlated-and-hierarchical-effects (CHE) working model of Pustejovsky &
# Tipton (2022): V from metafor's vcalc (constant sampling correlation rho within
# a study), a three-level rma.mv (random = ~ 1 | study/es), and cluster-robust
# inference from robust() (CR1, CR0) and robust(clubSandwich = TRUE) (CR2,
# Satterthwaite df, HTZ test), plus clubSandwich's own vcovCR / Wald_test as a
# cross-check. Written to tests/reference/dependent.json with the data used; the
# tests read the JSON and never need R. metafor, metadat and clubSandwich are
# GPL: this script only runs them to produce numbers; skmeta implements the
# published formulas.
#
# Run from the repository root:  Rscript tests/reference/make_dependent.R
#
# Data: metadat's dat.knapp2017 (66 effects in 31 studies; es = 1..66; task
# families SOC*, TOL*, other = BACS-J/TOH, reference SOC) and dat.assink2016
# (100 effects in 17 studies; es = id; deltype with reference "general", year
# as shipped, i.e. centred).

suppressPackageStartupMessages({
  library(metafor)
  library(clubSandwich)
  library(jsonlite)
})
stopifnot(as.character(packageVersion("metafor")) == "3.8.1")
stopifnot(as.character(packageVersion("clubSandwich")) == "0.5.8")

ctrl <- list(rel.tol = 1e-12, iter.max = 5000, eval.max = 10000)
# rma.mv with tight nlminb tolerances; where nlminb reports non-convergence at
# that tolerance, fall back to 1e-10 and then to metafor's defaults (the control
# used is recorded with each fit).
controls <- list(ctrl, list(rel.tol = 1e-10, iter.max = 5000, eval.max = 10000), list())
rma_mv <- function(args) {
  for (i in seq_along(controls)) {
    args$control <- controls[[i]]
    r <- tryCatch(do.call(rma.mv, args), error = function(e) NULL)
    if (!is.null(r)) {
      attr(r, "control_used") <- i
      return(r)
    }
  }
  stop("rma.mv failed")
}

knapp <- as.data.frame(dat.knapp2017)
for (j in seq_along(knapp)) attributes(knapp[[j]]) <- NULL
knapp$es <- seq_len(nrow(knapp))
knapp$fam <- ifelse(grepl("^SOC", knapp$task), "SOC",
                    ifelse(grepl("^TOL", knapp$task), "TOL", "other"))
knapp$fam <- factor(knapp$fam, levels = c("SOC", "TOL", "other"))
knapp <- knapp[, c("study", "es", "task", "fam", "yi", "vi")]

assink <- as.data.frame(dat.assink2016)
for (j in seq_along(assink)) attributes(assink[[j]]) <- NULL
assink$es <- assink$id
assink$deltype <- relevel(factor(assink$deltype), ref = "general")
assink <- assink[, c("study", "esid", "es", "deltype", "year", "yi", "vi")]

datasets <- list(knapp2017 = knapp, assink2016 = assink)
models <- list(
  knapp2017 = list(
    intercept = list(mods = NULL, newmods = NULL),
    fam = list(mods = ~ fam, newmods = rbind(c(0, 0), c(1, 0), c(0, 1)))
  ),
  assink2016 = list(
    intercept = list(mods = NULL, newmods = NULL),
    deltype_year = list(
      mods = ~ deltype + year,
      newmods = rbind(c(0, 0, 0), c(1, 0, 2.5), c(0, 1, -6.5))
    )
  )
)
rhos <- list(knapp2017 = c(0, 0.3, 0.5, 0.6, 0.9), assink2016 = c(0, 0.3, 0.6, 0.9))

pred_list <- function(p) {
  list(pred = as.vector(p$pred), se = as.vector(p$se), ci_lb = as.vector(p$ci.lb),
       ci_ub = as.vector(p$ci.ub), pi_lb = as.vector(p$pi.lb), pi_ub = as.vector(p$pi.ub))
}

fit_one <- function(dat, spec, rho, method) {
  V <- vcalc(vi, cluster = study, obs = es, rho = rho, data = dat)
  args <- list(yi = dat$yi, V = V, random = ~ 1 | study / es, data = dat,
               method = method)
  if (!is.null(spec$mods)) args$mods <- spec$mods
  fit <- rma_mv(args)
  p <- length(fit$b)
  btt <- if (p > 1) 2:p else 1
  pr <- if (is.null(spec$newmods)) predict(fit) else predict(fit, newmods = spec$newmods)
  cr2 <- robust(fit, cluster = dat$study, clubSandwich = TRUE)
  pr2 <- if (is.null(spec$newmods)) predict(cr2) else predict(cr2, newmods = spec$newmods)
  cr1 <- robust(fit, cluster = dat$study)
  pr1 <- if (is.null(spec$newmods)) predict(cr1) else predict(cr1, newmods = spec$newmods)
  cr0 <- robust(fit, cluster = dat$study, adjust = FALSE)
  vc2 <- vcovCR(fit, cluster = dat$study, type = "CR2")
  htz <- Wald_test(fit, constraints = constrain_zero(btt), vcov = vc2, test = "HTZ")
  list(
    rho = rho, method = method, control = controls[[attr(fit, "control_used")]],
    terms = rownames(fit$b),
    beta = as.vector(fit$b), se = as.vector(fit$se), zval = as.vector(fit$zval),
    pval = as.vector(fit$pval), ci_lb = as.vector(fit$ci.lb), ci_ub = as.vector(fit$ci.ub),
    sigma2 = as.vector(fit$sigma2), logLik = as.numeric(logLik(fit)),
    fitstats = list(AIC = AIC(fit), BIC = BIC(fit), AICc = fitstats(fit)[["AICc:", 1]]),
    QE = fit$QE, QEp = fit$QEp, QM = fit$QM, QMp = fit$QMp,
    predict = pred_list(pr),
    cr2 = list(se = as.vector(cr2$se), t = as.vector(cr2$zval), df = as.vector(cr2$ddf),
               pval = as.vector(cr2$pval), ci_lb = as.vector(cr2$ci.lb),
               ci_ub = as.vector(cr2$ci.ub), QM = cr2$QM, QMdf = as.vector(cr2$QMdf),
               QMp = cr2$QMp, vcov = unname(as.matrix(vc2)),
               htz = list(Fstat = htz$Fstat, df_num = htz$df_num, df_denom = htz$df_denom,
                          p = htz$p_val),
               predict = pred_list(pr2)),
    cr1 = list(se = as.vector(cr1$se), t = as.vector(cr1$zval), df = as.vector(cr1$ddf),
               pval = as.vector(cr1$pval), ci_lb = as.vector(cr1$ci.lb),
               ci_ub = as.vector(cr1$ci.ub), QM = cr1$QM, QMdf = as.vector(cr1$QMdf),
               QMp = cr1$QMp, predict = pred_list(pr1)),
    cr0 = list(se = as.vector(cr0$se), QM = cr0$QM, QMp = cr0$QMp)
  )
}

fits <- list()
for (dname in names(datasets)) {
  dat <- datasets[[dname]]
  for (mname in names(models[[dname]])) {
    spec <- models[[dname]][[mname]]
    for (rho in rhos[[dname]]) {
      for (method in c("REML", "ML")) {
        key <- sprintf("%s_%s_rho%s_%s", dname, mname, format(rho), method)
        res <- fit_one(dat, spec, rho, method)
        res$data <- dname
        res$model <- mname
        res$newmods <- if (is.null(spec$newmods)) NULL else unname(spec$newmods)
        fits[[key]] <- res
        cat(key, ": logLik", res$logLik, "\n")
      }
    }
  }
}

# A design with contrasts: study 1 has two arms against a shared control plus
# their difference, study 2 a within-subject design (time points 2 and 3 against
# 1 in one group), study 3 two arms against a control at two time points and two
# constructs, study 4 a single contrast.
contrasts <- data.frame(
  study = c(1, 1, 1, 2, 2, 3, 3, 3, 3, 4),
  vi = c(0.04, 0.05, 0.06, 0.02, 0.03, 0.05, 0.07, 0.04, 0.08, 0.1),
  grp1 = c("B", "C", "C", "A", "A", "T1", "T2", "T1", "T2", "X"),
  grp2 = c("A", "A", "B", "A", "A", "C", "C", "C", "C", "Y"),
  w1 = c(30, 25, 25, 40, 40, 20, 22, 20, 22, 50),
  w2 = c(40, 40, 30, 40, 40, 35, 35, 35, 35, 45),
  time1 = c(0, 0, 0, 2, 3, 1, 1, 2, 2, 0),
  time2 = c(0, 0, 0, 1, 1, 1, 1, 2, 2, 0),
  type = c(1, 1, 1, 1, 1, 1, 1, 2, 2, 1),
  obs = seq_len(10),
  stringsAsFactors = FALSE
)
between <- contrasts[contrasts$study != 2, ]

# vcalc itself (0-based row/column indices of the nonzero off-diagonal entries)
triplets <- function(V) {
  V <- as.matrix(V)
  idx <- which(V != 0 & row(V) != col(V), arr.ind = TRUE)
  list(i = idx[, 1] - 1L, j = idx[, 2] - 1L, value = V[idx])
}
vcalc_ref <- list(
  knapp_rho06 = triplets(vcalc(vi, cluster = study, obs = es, rho = 0.6, data = knapp)),
  assink_ar1 = triplets(vcalc(vi, cluster = study, time1 = esid, phi = 0.8, data = assink)),
  assink_rho_ar1 = triplets(vcalc(vi, cluster = study, obs = es, rho = 0.5,
                                  time1 = esid, phi = 0.8, data = assink)),
  # constructs: rho = c(within, between), with esid unique within study
  assink_type = triplets(vcalc(vi, cluster = study, type = deltype, obs = esid,
                               rho = c(0.7, 0.5), data = assink)),
  # contrasts sharing conditions (a small made-up design, in "contrasts" below)
  contrasts_between = triplets(vcalc(vi, cluster = study, grp1 = grp1, grp2 = grp2,
                                     data = between)),
  contrasts_weighted = triplets(vcalc(vi, cluster = study, grp1 = grp1, grp2 = grp2,
                                      w1 = w1, w2 = w2, data = between)),
  contrasts_full = triplets(vcalc(vi, cluster = study, grp1 = grp1, grp2 = grp2,
                                  w1 = w1, w2 = w2, time1 = time1, time2 = time2,
                                  phi = 0.6, type = type, obs = obs,
                                  rho = c(0.7, 0.4), data = contrasts))
)

out <- list(
  versions = list(R = R.version.string,
                  metafor = as.character(packageVersion("metafor")),
                  clubSandwich = as.character(packageVersion("clubSandwich")),
                  metadat = as.character(packageVersion("metadat"))),
  control = ctrl,
  data = list(knapp2017 = transform(knapp, fam = as.character(fam)),
              assink2016 = transform(assink, deltype = as.character(deltype))),
  fits = fits,
  vcalc = vcalc_ref,
  contrasts = contrasts
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", pretty = FALSE),
           file.path("tests", "reference", "dependent.json"))
cat("wrote tests/reference/dependent.json\n")
