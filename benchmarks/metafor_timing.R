# Time metafor's rma() on data written by the Python benchmark harness.
#
# Usage: Rscript benchmarks/metafor_timing.R DATA.csv METHOD [REPEAT MIN_BATCH BUDGET]
#
# DATA.csv has columns yi, vi and any number of moderator columns (every other
# column); an intercept is added by rma().  METHOD is an rma() method ("REML",
# "DL", ...).  Timing follows benchmarks/_common.py: a warm-up fit and a
# calibration fit, then up to
# REPEAT batches of fits, each batch long enough to last MIN_BATCH seconds; the
# best time per fit is reported.  When the warm-up fit alone exceeds BUDGET
# seconds, its time is reported (single = true).
#
# Prints one line of JSON: ms_per_fit, calls, single, tau2, beta, versions.
# (This script only calls metafor; it contains no metafor code.)

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 2) {
  stop("usage: metafor_timing.R DATA.csv METHOD [REPEAT MIN_BATCH BUDGET]")
}
path <- args[1]
method <- args[2]
repeats <- if (length(args) >= 3) as.integer(args[3]) else 5L
min_batch <- if (length(args) >= 4) as.numeric(args[4]) else 0.05
budget <- if (length(args) >= 5) as.numeric(args[5]) else 10

dat <- read.csv(path)
mod_names <- setdiff(names(dat), c("yi", "vi"))
yi <- dat$yi
vi <- dat$vi
mods <- if (length(mod_names) > 0) as.matrix(dat[, mod_names, drop = FALSE]) else NULL

fit_once <- function() {
  if (is.null(mods)) rma(yi, vi, method = method) else rma(yi, vi, mods = mods, method = method)
}

now <- function() as.numeric(proc.time()[["elapsed"]])

t0 <- now()
fit <- fit_once()
warm <- now() - t0
single <- warm >= budget || repeats < 1
best <- warm
calls <- 1L
if (!single) {
  # proc.time() has a resolution of about 1 ms: batches of at least min_batch,
  # sized from a second (calibration) fit, as the first one carries start-up costs
  t0 <- now()
  fit_once()
  calib <- now() - t0
  number <- max(1L, as.integer(ceiling(min_batch / max(calib, 1e-4))))
  best <- Inf
  calls <- 0L
  start <- now()
  for (r in seq_len(repeats)) {
    t0 <- now()
    for (i in seq_len(number)) fit_once()
    best <- min(best, (now() - t0) / number)
    calls <- calls + number
    if (now() - start + best * number > budget) break
  }
}

cat(toJSON(list(
  ms_per_fit = 1000 * best,
  calls = calls,
  single = single,
  tau2 = fit$tau2,
  beta = I(as.numeric(coef(fit))),
  R = paste(R.version$major, R.version$minor, sep = "."),
  metafor = as.character(packageVersion("metafor"))
), auto_unbox = TRUE, digits = NA), "\n")
