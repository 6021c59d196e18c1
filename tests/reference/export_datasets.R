# Export the bundled example datasets of skmeta.datasets from R's metadat.
#
# Provenance only: the CSV files in skmeta/datasets/data/ were written by this
# script (R 4.2.2, metadat 1.2.0) and are committed; neither the package nor
# its tests need R. The data are published facts from the original papers
# (cited in each loader's docstring); metadat is the machine-readable
# transcription they were cross-checked against.
#
# Conventions:
# - column names: '.' is replaced by '_' (e.g. pre.nti -> pre_nti, diag.ab ->
#   diag_ab) so that they are valid Python identifiers;
# - missing values are written as empty fields (read as NaN by pandas);
# - numbers are written with 15 significant digits (R's write.csv default),
#   which round-trips every value typed in the papers exactly.
#
# Run from the repository root:  Rscript tests/reference/export_datasets.R

suppressPackageStartupMessages(library(metadat))
stopifnot(as.character(packageVersion("metadat")) == "1.2.0")

out <- file.path("skmeta", "datasets", "data")
sets <- c(
  bcg = "dat.bcg",
  pupil_iq = "dat.raudenbush1985",
  writing_to_learn = "dat.bangertdrowns2004",
  school_calendar = "dat.konstantopoulos2011",
  laopaiboon2015 = "dat.laopaiboon2015",
  collins1985b = "dat.collins1985b",
  linde2005 = "dat.linde2005",
  hine1989 = "dat.hine1989"
)
# dat.colditz1994 is identical to dat.bcg in metadat 1.2.0: it is served from
# bcg.csv by load_colditz1994().
stopifnot(identical(dat.bcg, dat.colditz1994))

for (name in names(sets)) {
  d <- as.data.frame(get(sets[[name]]))
  d <- d[, names(d), drop = FALSE]
  for (j in seq_along(d)) attributes(d[[j]]) <- NULL  # drop escalc attributes
  names(d) <- gsub(".", "_", names(d), fixed = TRUE)
  if (name == "school_calendar") d <- d[, c("district", "school", "study", "year", "yi", "vi")]
  write.csv(d, file.path(out, paste0(name, ".csv")), row.names = FALSE, na = "")
  cat(name, ":", nrow(d), "x", ncol(d), "\n")
}
