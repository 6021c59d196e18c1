# Export the 2x2-table datasets that skmeta.datasets bundles for the
# Mantel-Haenszel and Peto examples, from R's metadat.
#
# Provenance only: skmeta/datasets/data/nielweise2007.csv was written by this
# script (R 4.2.2, metadat 1.2.0) and is committed; neither the package nor its
# tests need R. The data are published facts from Niel-Weise et al. (2007)
# (cited in the loader's docstring); metadat is the machine-readable
# transcription they were cross-checked against. Same conventions as
# tests/reference/export_datasets.R.
#
# Run from the repository root:  Rscript tests/reference/export_binary_datasets.R

suppressPackageStartupMessages(library(metadat))
stopifnot(as.character(packageVersion("metadat")) == "1.2.0")

out <- file.path("skmeta", "datasets", "data")
sets <- c(nielweise2007 = "dat.nielweise2007")

for (name in names(sets)) {
  d <- as.data.frame(get(sets[[name]]))
  for (j in seq_along(d)) attributes(d[[j]]) <- NULL
  names(d) <- gsub(".", "_", names(d), fixed = TRUE)
  write.csv(d, file.path(out, paste0(name, ".csv")), row.names = FALSE, na = "")
  cat(name, ":", nrow(d), "x", ncol(d), "\n")
}
