# Time metafor's selmodel() on data written by the Python benchmark harness.
#
# Usage: Rscript benchmarks/metafor_selmodel_timing.R DATA.csv TYPE STEPS [REPEAT MIN_BATCH BUDGET]
#
# DATA.csv has columns yi and vi (intercept-only model).  TYPE is a selmodel()
# type ("stepfun", "beta"); STEPS its cut points separated by ";" ("-" for
# none).  One timed call is what skmeta's SelectionModelMeta.fit does: the ML
# random-effects fit (rma(method = "ML")) and selmodel() on it, with metafor's
# default controls.  Timing follows benchmarks/_common.py: a warm-up call and a
# calibration call, then up to REPEAT batches, each long enough to last
# MIN_BATCH seconds; the best time per call is reported.  When the warm-up call
# alone exceeds BUDGET seconds, its time is reported (single = true).
#
# Prints one line of JSON: ms_per_fit, calls, single, tau2, beta, delta, ll,
# versions.  (This script only calls metafor; it contains no metafor code.)

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})
# the shared timing loop, beside this script
script_file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
source(file.path(dirname(script_file), "best_time.R"))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 3) {
  stop("usage: metafor_selmodel_timing.R DATA.csv TYPE STEPS [REPEAT MIN_BATCH BUDGET]")
}
dat <- read.csv(args[1])
type <- args[2]
steps <- if (args[3] == "-") NULL else as.numeric(strsplit(args[3], ";")[[1]])
repeats <- if (length(args) >= 4) as.integer(args[4]) else 5L
min_batch <- if (length(args) >= 5) as.numeric(args[5]) else 0.05
budget <- if (length(args) >= 6) as.numeric(args[6]) else 10

fit_once <- function() {
  res <- rma(dat$yi, dat$vi, method = "ML")
  if (is.null(steps)) selmodel(res, type = type) else selmodel(res, type = type, steps = steps)
}

timing <- best_time(fit_once, repeats, min_batch, budget)
fit <- timing$value

cat(toJSON(list(
  ms_per_fit = 1000 * timing$seconds,
  calls = timing$calls,
  single = timing$single,
  tau2 = fit$tau2,
  beta = I(as.numeric(fit$beta)),
  delta = I(as.numeric(fit$delta)),
  ll = as.numeric(logLik(fit)),
  R = paste(R.version$major, R.version$minor, sep = "."),
  metafor = as.character(packageVersion("metafor"))
), auto_unbox = TRUE, digits = NA), "\n")
