# Reference values for skmeta.effect_sizes from metafor's escalc().
#
# Writes tests/reference/escalc.json: for every case, the inputs (named as in
# escalc), the options (measure, add, to, drop00, vtype), metafor's yi and vi
# (NA -> null) and, under "skmeta", any extra skmeta keyword needed to select
# metafor 3.8's convention where skmeta follows a later metafor (e.g.
# correct = FALSE for ROM, whose bias correction metafor applies since 5.0).
# The tests in tests/test_effect_sizes.py read the JSON and never need R.
# metafor is GPL: it is only *run* here to produce numbers.
#
# Run from the repository root:  Rscript tests/reference/make_escalc.R

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
  library(jsonlite)
})

cases <- list()
add_case <- function(name, measure, args, opts = list(), skmeta = list()) {
  res <- suppressWarnings(do.call(escalc, c(list(measure = measure), args, opts)))
  cases[[length(cases) + 1]] <<- list(
    name = name, measure = measure, inputs = args, options = opts,
    skmeta = skmeta, yi = as.numeric(res$yi), vi = as.numeric(res$vi)
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
for (m in c("RR", "OR", "RD", "AS", "PETO")) {
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
for (m in c("RR", "OR", "RD", "PETO")) {
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

## ======================================================================== ##
## the other escalc families
## ======================================================================== ##

## ---- 2x2 tables: association measures and conversions ---------------------
# dat.bourassa1996: handedness x eyedness (rows 1-24; some tables with zero
# cells and zero margins)
bou <- dat.bourassa1996[1:24, ]
tab_bou <- list(ai = bou$lh.le, bi = bou$lh.re, ci = bou$rh.le, di = bou$rh.re)
for (m in c("PHI", "YUQ", "YUY", "PBIT", "OR2DN", "OR2DL")) {
  add_case(paste0(m, "_bourassa"), m, tab_bou)
  add_case(paste0(m, "_zero_default"), m, tab_zero)
  add_case(paste0(m, "_zero_all"), m, tab_zero, list(to = "all"))
  add_case(paste0(m, "_zero_add1"), m, tab_zero, list(add = 1))
  add_case(paste0(m, "_zero_drop00"), m, tab_zero, list(drop00 = TRUE))
}
add_case("PHI_bourassa_ST", "PHI", tab_bou, list(vtype = "ST"))
add_case("PHI_bourassa_CS", "PHI", tab_bou, list(vtype = "CS"))
add_case("PHI_zero_ST_add", "PHI", tab_zero, list(vtype = "ST", add = 1/2))
add_case("PHI_bcg_vector_vtype", "PHI", tab_bcg,
         list(vtype = rep(c("ST", "CS", "LS"), length.out = 13)))
add_case("YUQ_zero_none", "YUQ", tab_zero, list(to = "none"))
# gibson2002: 2x2 tables of some studies (the others are NA)
gib <- dat.gibson2002
tab_gib <- list(ai = gib$ai, bi = gib$bi, ci = gib$ci, di = gib$di)
for (m in c("PBIT", "OR2DN", "OR2DL")) add_case(paste0(m, "_gibson"), m, tab_gib)
# tetrachoric correlations: tables without zero cells, and zero cells with a
# continuity correction (metafor returns +-1 with an arbitrary huge variance
# for a zero cell without one; skmeta returns NaN, tested separately)
tab_tet <- list(ai = c(12, 40, 7, 55, 3, 20, 150),
                bi = c(30, 5, 11, 10, 19, 20, 40),
                ci = c(9, 3, 4.5, 8, 25, 20, 60),
                di = c(35, 60, 9, 70, 2, 20, 300))
add_case("RTET_default", "RTET", tab_tet)
add_case("RTET_zero_add", "RTET", tab_zero, list(add = 1/2))

## ---- two-group means: SMD variants, ratios, variability, conversions ------
add_case("SMD_AV", "SMD", means, list(vtype = "AV"))
norm <- dat.normand1999
means_norm <- list(m1i = norm$m1i, sd1i = norm$sd1i, n1i = norm$n1i,
                   m2i = norm$m2i, sd2i = norm$sd2i, n2i = norm$n2i)
add_case("SMD_normand_AV", "SMD", means_norm, list(vtype = "AV"))
# a missing study: left out of the averages of the "AV" variances
means_na <- means
means_na$m1i[2] <- NA
add_case("SMD_AV_missing", "SMD", means_na, list(vtype = "AV"))
for (m in c("SMDH", "D2ORN", "D2ORL")) {
  add_case(paste0(m, "_default"), m, means)
  add_case(paste0(m, "_normand"), m, means_norm)
}
add_case("MD_normand_HO", "MD", means_norm, list(vtype = "HO"))
# log ratio of means: dat.curtis1998 (ecology, positive means) and the
# hand-made means (one pair of negative means)
cur <- dat.curtis1998
means_cur <- list(m1i = cur$m1i, sd1i = cur$sd1i, n1i = cur$n1i,
                  m2i = cur$m2i, sd2i = cur$sd2i, n2i = cur$n2i)
for (v in c("LS", "HO", "AV", "AVHO")) {
  add_case(paste0("ROM_curtis_", v), "ROM", means_cur, list(vtype = v),
           skmeta = list(correct = FALSE))
  add_case(paste0("ROM_means_", v), "ROM", means, list(vtype = v),
           skmeta = list(correct = FALSE))
}
add_case("ROM_AV_missing", "ROM", means_na, list(vtype = "AV"),
         skmeta = list(correct = FALSE))
add_case("ROM_AVHO_missing", "ROM", means_na, list(vtype = "AVHO"),
         skmeta = list(correct = FALSE))
# variability ratios (VR needs only SDs and group sizes)
add_case("VR_normand", "VR", means_norm[c("sd1i", "n1i", "sd2i", "n2i")])
add_case("VR_means", "VR", means[c("sd1i", "n1i", "sd2i", "n2i")])
# metafor 3.8's CVR lacks the second-order bias terms of metafor >= 5.0: the
# tests compare its yi with skmeta's minus those terms (and vi directly)
add_case("CVR_curtis", "CVR", means_cur)
add_case("CVR_means", "CVR", means)

## ---- change scores / matched pairs ----------------------------------------
chg <- list(m1i = c(10.2, 5.5, 1.3, 100, 0.42, 7.1),
            m2i = c(9.1, 6.25, 2.0, 96.5, 0.40, 7.1),
            sd1i = c(2.1, 1.4, 0.8, 15.2, 0.11, 3.0),
            sd2i = c(2.4, 1.1, 1.3, 13.9, 0.09, 0),
            ni = c(20, 8, 5, 150, 45, 3),
            ri = c(0.5, -0.2, 0.9, 0, 0.7, 0))
add_case("MC_default", "MC", chg)
add_case("SMCC_default", "SMCC", chg)
add_case("SMCR_default", "SMCR", chg[c("m1i", "sd1i", "m2i", "ni", "ri")])
add_case("SMCRH_default", "SMCRH", chg)
chg_na <- chg
chg_na$ri[3] <- NA
add_case("SMCC_missing", "SMCC", chg_na)

## ---- correlations ---------------------------------------------------------
mol <- dat.molloy2014
cors_mol <- list(ri = mol$ri, ni = mol$ni)
add_case("COR_AV", "COR", cors, list(vtype = "AV"))
add_case("COR_molloy_AV", "COR", cors_mol, list(vtype = "AV"))
cors_big <- list(ri = c(0.3, -0.45, 0.01, 0.92, -0.05, 0.6, 0.2, -0.999),
                 ni = c(50, 20, 1000, 12, 400, 5, 100000, 30))
for (v in c("LS", "UB", "AV")) {
  add_case(paste0("UCOR_", v), "UCOR", cors_big, list(vtype = v))
  add_case(paste0("UCOR_molloy_", v), "UCOR", cors_mol, list(vtype = v))
}
# partial and semi-partial correlations: dat.aloe2013 and hand-made values
aloe <- dat.aloe2013
reg_aloe <- list(ti = aloe$tval, ni = aloe$n, mi = aloe$preds, r2i = aloe$R2)
reg <- list(ti = c(2.5, -1.2, 4.0, 0.3, -3.3), ni = c(50, 30, 120, 25, 15),
            mi = c(3, 1, 5, 2, 4), r2i = c(0.3, 0.1, 0.5, 0.2, 0.6))
for (m in c("PCOR", "ZPCOR")) {
  add_case(paste0(m, "_aloe"), m, reg_aloe[c("ti", "ni", "mi")])
  add_case(paste0(m, "_hand"), m, reg[c("ti", "ni", "mi")])
}
add_case("SPCOR_aloe", "SPCOR", reg_aloe)
add_case("SPCOR_hand", "SPCOR", reg)

## ---- single-group quantitative measures -----------------------------------
single <- list(mi = c(10.2, 5.5, 1.3, 100, 0.42, 3.7),
               sdi = c(2.1, 1.4, 0.8, 15.2, 0.11, 1e-3),
               ni = c(20, 8, 5, 150, 45, 2))
add_case("MN_default", "MN", single)
add_case("MN_negative", "MN", list(mi = c(-3, 0, 2), sdi = c(1, 0, 2), ni = c(4, 9, 16)))
add_case("MNLN_default", "MNLN", single)
add_case("CVLN_default", "CVLN", single)
add_case("SDLN_default", "SDLN", single[c("sdi", "ni")])
add_case("MN_normand", "MN", list(mi = norm$m1i, sdi = norm$sd1i, ni = norm$n1i))

## ---- proportions: further variance types ----------------------------------
add_case("PR_zero_UB", "PR", props, list(vtype = "UB"))
props_na <- props
props_na$xi[4] <- NA
for (m in c("PR", "PLN", "PLO")) {
  add_case(paste0(m, "_zero_AV"), m, props, list(vtype = "AV"))
  add_case(paste0(m, "_zero_AV_all"), m, props, list(vtype = "AV", to = "all"))
  add_case(paste0(m, "_AV_missing"), m, props_na, list(vtype = "AV"))
}
pri <- dat.pritz1997
add_case("PR_pritz_AV", "PR", list(xi = pri$xi, ni = pri$ni), list(vtype = "AV"))

## ---- incidence rates: single groups and differences -----------------------
ir1 <- list(xi = c(12, 0, 3, 40, 1, 0), ti = c(1200, 800, 310.5, 5000, 90, 10))
for (m in c("IR", "IRLN", "IRS", "IRFT")) {
  add_case(paste0(m, "_default"), m, ir1)
  add_case(paste0(m, "_all"), m, ir1, list(to = "all"))
  add_case(paste0(m, "_if0all"), m, ir1, list(to = "if0all"))
  add_case(paste0(m, "_none"), m, ir1, list(to = "none"))
  add_case(paste0(m, "_add1"), m, ir1, list(add = 1))
}
hart <- dat.hart1999
rates_hart <- list(x1i = hart$x1i, t1i = hart$t1i, x2i = hart$x2i, t2i = hart$t2i)
for (m in c("IRD", "IRSD")) {
  add_case(paste0(m, "_hart"), m, rates_hart)
  add_case(paste0(m, "_default"), m, rates)
  add_case(paste0(m, "_all"), m, rates, list(to = "all"))
  add_case(paste0(m, "_if0all"), m, rates, list(to = "if0all"))
  add_case(paste0(m, "_add1"), m, rates, list(add = 1))
  add_case(paste0(m, "_drop00"), m, rates, list(drop00 = TRUE))
}
add_case("IRR_hart", "IRR", rates_hart)

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
