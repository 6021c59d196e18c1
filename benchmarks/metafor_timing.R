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
# the shared timing loop, beside this script
script_file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
source(file.path(dirname(script_file), "best_time.R"))

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

timing <- best_time(fit_once, repeats, min_batch, budget)
fit <- timing$value

cat(toJSON(list(
  ms_per_fit = 1000 * timing$seconds,
  calls = timing$calls,
  single = timing$single,
  tau2 = fit$tau2,
  beta = I(as.numeric(coef(fit))),
  R = paste(R.version$major, R.version$minor, sep = "."),
  metafor = as.character(packageVersion("metafor"))
), auto_unbox = TRUE, digits = NA), "\n")
