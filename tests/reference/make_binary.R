# Reference values for skmeta.mantel_haenszel and skmeta.peto from metafor's
# rma.mh() and rma.peto().
#
# Writes tests/reference/binary.json. The Python tests (tests/test_binary.py)
# read that file and never need R. metafor and metadat are GPL: this script only
# *runs* them to produce numbers; no code of theirs is ported into skmeta.
#
# Run from the repository root:  Rscript tests/reference/make_binary.R
#
# Layout of the JSON:
#   versions   R, metafor, metadat, jsonlite
#   tables     name -> {ai, bi, ci, di (NA -> null), source}
#   cases      list of {id, tables, method ("MH" or "PETO"), measure, options
#                       (add, to, drop00, correct, level as passed to metafor),
#                       and metafor's results: beta, se, zval, pval, ci_lb,
#                       ci_ub, QE, QEp, I2, H2, k, k_yi, (MH only) MH, MHp, BD,
#                       BDp, TA, TAp, k_pos, and the per-table yi_f, vi_f (all
#                       tables after omitting those with missing counts) and
#                       weights (%)}
# Every metafor result is closed form (no iteration), so no control settings.

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})
stopifnot(as.character(packageVersion("metafor")) == "3.8.1")
stopifnot(as.character(packageVersion("metadat")) == "1.2.0")

# ----------------------------------------------------------------- tables
tables <- list()
add_tables <- function(name, ai, bi, ci, di, source) {
  tables[[name]] <<- list(ai = I(as.numeric(ai)), bi = I(as.numeric(bi)),
                          ci = I(as.numeric(ci)), di = I(as.numeric(di)),
                          source = source)
}

d <- dat.nielweise2007
add_tables("nielweise2007", d$ai, d$n1i - d$ai, d$ci, d$n2i - d$ci,
           "metadat dat.nielweise2007 (ai, n1i - ai, ci, n2i - ci); 6 tables with a zero cell, table 15 double-zero")
d <- dat.bcg
add_tables("bcg", d$tpos, d$tneg, d$cpos, d$cneg,
           "metadat dat.bcg (tpos, tneg, cpos, cneg); no zero cells")
d <- dat.collins1985b
add_tables("collins1985b_ped", d$ped.xti, d$fup.nti - d$ped.xti, d$ped.xci, d$fup.nci - d$ped.xci,
           "metadat dat.collins1985b, perinatal deaths (ped.xti, fup.nti - ped.xti, ped.xci, fup.nci - ped.xci); tables 8 and 9 double-zero")
add_tables("collins1985b_ned", d$ned.xti, d$fup.nti - d$ned.xti, d$ned.xci, d$fup.nci - d$ned.xci,
           "metadat dat.collins1985b, neonatal deaths; table 6 missing (omitted by metafor), tables 8 and 9 double-zero, table 1 a zero cell")
d <- dat.li2007
add_tables("li2007", d$ai, d$n1i - d$ai, d$ci, d$n2i - d$ci,
           "metadat dat.li2007 (ai, n1i - ai, ci, n2i - ci); one zero cell in tables 16 and 20, very unequal table sizes")
# hand-made edge cases
add_tables("single_table", 1, 9, 2, 8, "one 2x2 table (k = 1)")
add_tables("no_events_group1", c(0, 0, 0), c(9, 9, 9), c(2, 3, 4), c(8, 7, 6),
           "no events in group 1 in any table: sum R = 0, MH OR undefined, RR undefined")
add_tables("small_delta", c(2, 3), c(8, 8), c(3, 2), c(7, 8),
           "|sum(a - E)| < 1/2: the continuity correction of the CMH test over-corrects in metafor")

# ----------------------------------------------------------------- cases
cases <- list()
num <- function(x) if (is.null(x)) NULL else unname(as.numeric(x))

add_case <- function(id, tab, method, measure = "OR", opts = setNames(list(), character(0))) {
  t <- tables[[tab]]
  args <- c(list(ai = as.numeric(t$ai), bi = as.numeric(t$bi), ci = as.numeric(t$ci),
                 di = as.numeric(t$di)), opts)
  res <- suppressWarnings(
    if (method == "MH") do.call(rma.mh, c(args, list(measure = measure)))
    else do.call(rma.peto, args))
  out <- list(
    id = id, tables = tab, method = method, measure = measure, options = opts,
    beta = num(res$beta), se = num(res$se), zval = num(res$zval), pval = num(res$pval),
    ci_lb = num(res$ci.lb), ci_ub = num(res$ci.ub),
    QE = num(res$QE), QEp = num(res$QEp), I2 = num(res$I2), H2 = num(res$H2),
    k = res$k, k_yi = res$k.yi,
    yi_f = I(num(res$yi.f)), vi_f = I(num(res$vi.f)),
    weights = I(num(suppressWarnings(weights(res))))
  )
  if (method == "MH" && measure == "OR") {
    out <- c(out, list(MH = num(res$MH), MHp = num(res$MHp), BD = num(res$BD), BDp = num(res$BDp),
                       TA = num(res$TA), TAp = num(res$TAp), k_pos = res$k.pos))
  }
  cases[[length(cases) + 1]] <<- out
}

for (tab in c("nielweise2007", "bcg", "collins1985b_ped", "collins1985b_ned", "li2007")) {
  add_case(paste0(tab, "_mh_or"), tab, "MH", "OR")
  add_case(paste0(tab, "_mh_or_nocorrect"), tab, "MH", "OR", list(correct = FALSE))
  add_case(paste0(tab, "_mh_rr"), tab, "MH", "RR")
  add_case(paste0(tab, "_mh_rd"), tab, "MH", "RD")
  add_case(paste0(tab, "_peto"), tab, "PETO")
}
# the two-stage zero-cell conventions: (per-study estimates, pooled computation)
add_case("nielweise2007_mh_rd_drop00_both", "nielweise2007", "MH", "RD", list(drop00 = c(TRUE, TRUE)))
add_case("nielweise2007_mh_or_drop00_both", "nielweise2007", "MH", "OR", list(drop00 = c(TRUE, TRUE)))
add_case("nielweise2007_mh_or_add_both", "nielweise2007", "MH", "OR",
         list(add = c(1/2, 1/2), to = c("only0", "only0")))
add_case("nielweise2007_mh_or_if0all_drop00_both", "nielweise2007", "MH", "OR",
         list(add = c(1/2, 1/2), to = c("only0", "if0all"), drop00 = c(TRUE, TRUE)))
add_case("nielweise2007_mh_rr_all", "nielweise2007", "MH", "RR",
         list(add = c(1/2, 1/2), to = c("only0", "all")))
add_case("nielweise2007_mh_or_keep00", "nielweise2007", "MH", "OR", list(drop00 = FALSE))
add_case("nielweise2007_mh_or_none", "nielweise2007", "MH", "OR",
         list(add = 0, to = "none", drop00 = FALSE))
add_case("nielweise2007_peto_add_both", "nielweise2007", "PETO", "OR",
         list(add = c(1/2, 1/2), to = c("only0", "only0")))
add_case("nielweise2007_peto_drop00_both", "nielweise2007", "PETO", "OR",
         list(drop00 = c(TRUE, TRUE)))
add_case("nielweise2007_peto_keep00", "nielweise2007", "PETO", "OR", list(drop00 = FALSE))
add_case("collins1985b_ped_mh_rd_drop00_both", "collins1985b_ped", "MH", "RD",
         list(drop00 = c(TRUE, TRUE)))
# confidence level
add_case("bcg_mh_rr_level90", "bcg", "MH", "RR", list(level = 90))
add_case("li2007_peto_level99", "li2007", "PETO", "OR", list(level = 99))
# hand-made edge cases
for (m in c("OR", "RR", "RD")) add_case(paste0("single_table_mh_", tolower(m)), "single_table", "MH", m)
add_case("single_table_peto", "single_table", "PETO")
add_case("no_events_group1_mh_or", "no_events_group1", "MH", "OR")
add_case("no_events_group1_mh_rd", "no_events_group1", "MH", "RD")
add_case("no_events_group1_peto", "no_events_group1", "PETO")
add_case("small_delta_mh_or", "small_delta", "MH", "OR")
add_case("small_delta_mh_or_nocorrect", "small_delta", "MH", "OR", list(correct = FALSE))

out <- list(
  description = paste(
    "metafor rma.mh / rma.peto reference results for skmeta.mantel_haenszel and",
    "skmeta.peto; generated by tests/reference/make_binary.R"),
  versions = list(R = R.version.string, metafor = as.character(packageVersion("metafor")),
                  metadat = as.character(packageVersion("metadat")),
                  jsonlite = as.character(packageVersion("jsonlite"))),
  tables = tables,
  cases = cases
)
write_json(out, file.path("tests", "reference", "binary.json"), digits = NA, auto_unbox = TRUE,
           na = "null", pretty = FALSE)
cat("wrote", length(cases), "cases\n")
