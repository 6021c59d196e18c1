# Export the datasets of dependent effect sizes bundled with skmeta.datasets
# (load_knapp2017, load_assink2016) from R's metadat.
#
# Provenance only: the CSV files in skmeta/datasets/data/ were written by this
# script (R 4.2.2, metadat 1.2.0) and are committed; neither the package nor its
# tests need R. Same conventions as tests/reference/export_datasets.R (missing
# values as empty fields, 15 significant digits, '.' in names replaced by '_').
#
# Run from the repository root:  Rscript tests/reference/export_dependent_datasets.R

suppressPackageStartupMessages(library(metadat))
stopifnot(as.character(packageVersion("metadat")) == "1.2.0")

out <- file.path("skmeta", "datasets", "data")
sets <- c(knapp2017 = "dat.knapp2017", assink2016 = "dat.assink2016")
for (name in names(sets)) {
  d <- as.data.frame(get(sets[[name]]))
  for (j in seq_along(d)) attributes(d[[j]]) <- NULL
  names(d) <- gsub(".", "_", names(d), fixed = TRUE)
  write.csv(d, file.path(out, paste0(name, ".csv")), row.names = FALSE, na = "")
  cat(name, ":", nrow(d), "x", ncol(d), "\n")
}
