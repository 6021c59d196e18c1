# The timing method of benchmarks/_common.py (best_time), in R, shared by every
# metafor timing script of the benchmarks.
#
# best_time(fit_once, repeats, min_batch, budget): a warm-up call (its value is
# returned), then a calibration call that sizes the batches, then up to
# `repeats` batches each lasting at least `min_batch` seconds (proc.time() has a
# resolution of about 1 ms); the best time per call is reported.  When the
# warm-up call alone exceeds `budget` seconds (or `repeats` < 1) its time is
# reported (single = TRUE).  Returns list(seconds, calls, single, value).

best_time <- function(fit_once, repeats, min_batch, budget) {
  now <- function() as.numeric(proc.time()[["elapsed"]])
  t0 <- now()
  value <- fit_once()
  warm <- now() - t0
  if (warm >= budget || repeats < 1) {
    return(list(seconds = warm, calls = 1L, single = TRUE, value = value))
  }
  t0 <- now()
  fit_once()
  number <- max(1L, as.integer(ceiling(min_batch / max(now() - t0, 1e-4))))
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
  list(seconds = best, calls = calls, single = FALSE, value = value)
}
