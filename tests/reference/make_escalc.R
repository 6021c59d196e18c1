# Reference values for skmeta.effect_sizes from metafor's escalc().
#
# Writes tests/reference/escalc.json: for every case, the inputs (named as in
# escalc), the options (measure, add, to, drop00, vtype) and metafor's yi and
# vi (NA -> null). The tests in tests/test_effect_sizes.py read the JSON and
# never need R. metafor is GPL: it is only *run* here to produce numbers.
#
# Run from the repository root:  Rscript tests/reference/make_escalc.R

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(jsonlite)
})

cases <- list()
add_case <- function(name, measure, args, opts = list()) {
  res <- do.call(escalc, c(list(measure = measure), args, opts))
  cases[[length(cases) + 1]] <<- list(
    name = name, measure = measure, inputs = args, options = opts,
    yi = as.numeric(res$yi), vi = as.numeric(res$vi)
  )
}

## ---- 2x2 tables -----------------------------------------------------------
bcg <- dat.bcg
tab_bcg <- list(ai = bcg$tpos, bi = bcg$tneg, ci = bcg$cpos, di = bcg$cneg)
# hand-made tables with zero cells: a single zero, a zero in each group,
# double-zero events (ai = ci = 0) and double-zero non-events (bi = di = 0)
tab_zero <- list(
  ai = c(12, 0, 3, 0, 7, 10, 2.5),
  bi = c(30, 25, 0, 40, 0, 15, 11),
  ci = c(9, 4, 6, 0, 8, 0, 4.5),
  di = c(35, 21, 14, 38, 0, 20, 9)
)
for (m in c("RR", "OR", "RD", "AS")) {
  add_case(paste0(m, "_bcg"), m, tab_bcg)
  add_case(paste0(m, "_zero_default"), m, tab_zero)
  add_case(paste0(m, "_zero_all"), m, tab_zero, list(to = "all"))
  add_case(paste0(m, "_zero_if0all"), m, tab_zero, list(to = "if0all"))
  add_case(paste0(m, "_zero_none"), m, tab_zero, list(to = "none"))
  add_case(paste0(m, "_zero_add1"), m, tab_zero, list(add = 1))
  add_case(paste0(m, "_zero_drop00"), m, tab_zero, list(drop00 = TRUE))
  # if0all on data without any zero cell: no correction at all
  add_case(paste0(m, "_bcg_if0all"), m, tab_bcg, list(to = "if0all"))
  add_case(paste0(m, "_bcg_all_add1"), m, tab_bcg, list(to = "all", add = 1))
}
# drop00 with if0all: a dropped double-zero study does not trigger the correction
tab_00 <- list(ai = c(0, 5, 3), bi = c(10, 5, 7), ci = c(0, 4, 6), di = c(12, 6, 4))
for (m in c("RR", "OR", "RD")) {
  add_case(paste0(m, "_00_if0all"), m, tab_00, list(to = "if0all"))
  add_case(paste0(m, "_00_if0all_drop00"), m, tab_00, list(to = "if0all", drop00 = TRUE))
}
# ai, ci with group sizes n1i, n2i instead of bi, di
lao <- dat.laopaiboon2015
for (m in c("RR", "OR", "RD")) {
  add_case(paste0(m, "_laopaiboon_n"), m,
           list(ai = lao$ai, n1i = lao$n1i, ci = lao$ci, n2i = lao$n2i))
}
hine <- dat.hine1989
add_case("RD_hine_n", "RD",
         list(ai = hine$ai, n1i = hine$n1i, ci = hine$ci, n2i = hine$n2i))
# linde2005 has missing rows (NA), a 0/0 study and zero cells
lin <- dat.linde2005
add_case("RR_linde_na", "RR",
         list(ai = lin$ai, n1i = lin$n1i, ci = lin$ci, n2i = lin$n2i))
add_case("OR_linde_na_drop00", "OR",
         list(ai = lin$ai, n1i = lin$n1i, ci = lin$ci, n2i = lin$n2i),
         list(drop00 = TRUE))

## ---- two-group means ------------------------------------------------------
means <- list(
  m1i = c(10.2, 5.5, -1.3, 100, 0.42, 3.0),
  m2i = c(9.1, 6.25, -2.0, 96.5, 0.40, 2.0),
  sd1i = c(2.1, 1.4, 0.8, 15.2, 0.11, 1.0),
  sd2i = c(2.4, 1.1, 1.3, 13.9, 0.09, 2.5),
  n1i = c(20, 8, 3, 150, 45, 2),
  n2i = c(22, 7, 2, 140, 50, 2)
)
add_case("MD_default", "MD", means)
add_case("MD_HO", "MD", means, list(vtype = "HO"))
add_case("SMD_default", "SMD", means)
add_case("SMD_UB", "SMD", means, list(vtype = "UB"))
add_case("SMD_LS2", "SMD", means, list(vtype = "LS2"))

## ---- correlations ---------------------------------------------------------
cors <- list(ri = c(0.3, -0.45, 0, 0.92, -0.05, 0.6), ni = c(50, 20, 100, 12, 400, 5))
add_case("COR_default", "COR", cors)
add_case("ZCOR_default", "ZCOR", cors)

## ---- single proportions -----------------------------------------------------
props <- list(xi = c(5, 0, 12, 30, 1, 7), ni = c(40, 25, 12, 100, 3, 7))
props_nz <- list(xi = c(5, 2, 11, 30, 1, 6), ni = c(40, 25, 12, 100, 3, 7))
for (m in c("PR", "PLN", "PLO", "PAS", "PFT")) {
  add_case(paste0(m, "_zero_default"), m, props)
  add_case(paste0(m, "_zero_all"), m, props, list(to = "all"))
  add_case(paste0(m, "_zero_if0all"), m, props, list(to = "if0all"))
  add_case(paste0(m, "_zero_none"), m, props, list(to = "none"))
  add_case(paste0(m, "_zero_add1"), m, props, list(add = 1))
  add_case(paste0(m, "_nozero_if0all"), m, props_nz, list(to = "if0all"))
}

## ---- incidence rates --------------------------------------------------------
rates <- list(
  x1i = c(12, 0, 3, 40, 0, 7),
  t1i = c(1200, 800, 310.5, 5000, 90, 640),
  x2i = c(20, 4, 0, 37, 0, 9),
  t2i = c(1100, 750, 298, 4800, 100, 700)
)
add_case("IRR_default", "IRR", rates)
add_case("IRR_all", "IRR", rates, list(to = "all"))
add_case("IRR_if0all", "IRR", rates, list(to = "if0all"))
add_case("IRR_none", "IRR", rates, list(to = "none"))
add_case("IRR_drop00", "IRR", rates, list(drop00 = TRUE))
rates_00 <- list(x1i = c(0, 5, 2), t1i = c(10, 10, 8), x2i = c(0, 3, 6), t2i = c(10, 10, 9))
add_case("IRR_00_if0all", "IRR", rates_00, list(to = "if0all"))
add_case("IRR_00_if0all_drop00", "IRR", rates_00, list(to = "if0all", drop00 = TRUE))

out <- list(
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  generated_by = "tests/reference/make_escalc.R",
  cases = cases
)
writeLines(
  toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
  file.path("tests", "reference", "escalc.json")
)
cat(length(cases), "cases written\n")
