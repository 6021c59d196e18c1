# Export the datasets used by the selection-model examples and tests from R's
# metadat (skmeta.datasets.load_cohen1981, load_hackshaw1998,
# load_baskerville2012).
#
# Provenance only: the CSV files in skmeta/datasets/data/ were written by this
# script (R 4.2.2, metadat 1.2.0) and are committed; neither the package nor its
# tests need R. The conventions are those of tests/reference/export_datasets.R:
# '.' in column names becomes '_', missing values are empty fields, numbers are
# written with 15 significant digits.
#
# Run from the repository root:  Rscript tests/reference/export_selection_datasets.R

suppressPackageStartupMessages(library(metadat))
stopifnot(as.character(packageVersion("metadat")) == "1.2.0")

out <- file.path("skmeta", "datasets", "data")
sets <- c(
  cohen1981 = "dat.cohen1981",
  hackshaw1998 = "dat.hackshaw1998",
  baskerville2012 = "dat.baskerville2012"
)
for (name in names(sets)) {
  d <- as.data.frame(get(sets[[name]]))
  for (j in seq_along(d)) attributes(d[[j]]) <- NULL  # drop escalc attributes
  names(d) <- gsub(".", "_", names(d), fixed = TRUE)
  write.csv(d, file.path(out, paste0(name, ".csv")), row.names = FALSE, na = "")
  cat(name, ":", nrow(d), "x", ncol(d), "\n")
}
