r"""
Voxel-wise meta-analysis of images
==================================

Image-based meta-analysis combines, voxel by voxel, the effect maps of several
studies (e.g. contrast estimates of fMRI studies with their sampling variances,
as NiMARE does with PyMARE): one random-effects meta-analysis per voxel, all
sharing the studies.  :func:`skmeta.distributed.fit_outputs` fits all of them at
once, vectorized over the voxels.  Here: 20 synthetic studies of a 64 x 64 image
with a blob of true effect, a region where the studies disagree (between-study
variance), and a few studies whose field of view misses the top of the image.
"""

# %%

import matplotlib.pyplot as plt
import numpy as np

from skmeta import RandomEffectsMeta
from skmeta.distributed import fit_outputs
from skmeta.plotting import show_or_save

rng = np.random.default_rng(0)
n_studies, side = 20, 64
rows, cols = np.mgrid[0:side, 0:side]

# true pooled effect: a Gaussian blob; heterogeneity: a band across its right half
effect = 0.6 * np.exp(-((rows - 32) ** 2 + (cols - 28) ** 2) / (2 * 7.0**2))
tau2 = np.where((cols > 30) & (cols < 50) & (rows > 10) & (rows < 54), 0.15, 0.005)

# each study: sample size -> sampling variance, smoothly varying over the image
size = rng.integers(15, 80, n_studies)
v = (4.0 / size)[:, None, None] * (1.0 + 0.3 * np.sin(cols / 9.0))[None]
y = effect + rng.normal(size=(n_studies, side, side)) * np.sqrt(v + tau2)

# five studies did not image the top 12 rows: missing there
y[:5, :12, :] = np.nan

# %%
# One meta-analysis per voxel
# ---------------------------
# Each study is a row, each voxel a column; with ``missing="drop"`` a voxel is
# fitted on the studies that cover it (``n_studies``).  ``fdr="bh"`` adds the
# Benjamini-Hochberg q-values of the pooled effect across the voxels.
Y = y.reshape(n_studies, -1)
V = v.reshape(n_studies, -1)
res = fit_outputs(RandomEffectsMeta(missing="drop"), None, Y, sample_var=V, fdr="bh")
print(res)

pooled = res.estimate[:, 0].reshape(side, side)
tau2_map = res.tau2.reshape(side, side)
significant = (res.q_value[:, 0] < 0.05).reshape(side, side)

truth = effect > 0.05
print(
    f"voxels with q < 0.05: {significant.sum()} "
    f"({(significant & truth).sum()} inside the blob, "
    f"{(significant & ~truth).sum()} outside)"
)
print(
    "median tau^2 inside / outside the heterogeneous band: "
    f"{np.median(tau2_map[tau2 > 0.1]):.3f} / {np.median(tau2_map[tau2 < 0.1]):.4f}"
)

# %%
# Maps
# ----
fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), constrained_layout=True)
panels = [
    (effect, "true effect", "viridis"),
    (pooled, "pooled effect (REML)", "viridis"),
    (tau2_map, r"$\hat\tau^2$", "magma"),
    (np.where(significant, pooled, np.nan), "q < 0.05 (BH)", "viridis"),
]
for ax, (image, title, cmap) in zip(axes, panels, strict=True):
    shown = ax.imshow(image, cmap=cmap, origin="upper")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(shown, ax=ax, shrink=0.8)
axes[0].contour(tau2 > 0.1, levels=[0.5], colors="white", linewidths=0.8)
axes[3].axhline(11.5, color="grey", linewidth=0.8, linestyle="--")

show_or_save("voxelwise_maps.png", fig)
