"""
Maps of the element embeddings
==============================

Where the elements sit in three embeddings: CrysAtom (learned from crystal structures without
labels), ``uae`` (learned from property labels) and CGCNN's hand-made one-hot features,
projected to two dimensions with PCA and coloured by periodic-table group; then the cosine
similarity of the CrysAtom vectors of the first 40 elements, and one CrysAtom dimension on the
periodic table.

Run from the repository root (offline, seconds)::

    python examples/embedding_maps.py
    python examples/embedding_maps.py --out maps.png
"""

from __future__ import annotations

import argparse

import matplotlib.pyplot as plt

from crysatom_featurizers.embeddings import load
from crysatom_featurizers.plotting import (
    plot_embedding_map,
    plot_periodic_table_heatmap,
    plot_similarity_heatmap,
)


def main() -> None:
    parser = argparse.ArgumentParser(description="Maps of the element embeddings")
    parser.add_argument("--out", default=None, help="also save the maps to this image file")
    args = parser.parse_args()

    # %%
    # Three embeddings, projected with PCA (the axes show the explained variance).
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), layout="constrained")
    for ax, name in zip(axes, ("crysatom", "uae", "cgcnn")):
        plot_embedding_map(name, method="pca", ax=ax, legend=name == "cgcnn")
        ax.set_title(f"{name} ({load(name).dim} numbers per element)")
    if args.out:
        fig.savefig(args.out, dpi=120)

    # %%
    # Cosine similarity of the CrysAtom vectors (elements ordered by atomic number).
    crysatom = load("crysatom")
    first = [s for s in crysatom.symbols][:40]
    plot_similarity_heatmap(crysatom, elements=first)

    # %%
    # The first CrysAtom dimension of every element, on the periodic table.
    values = dict(zip(crysatom.symbols, crysatom.vectors[:, 0]))
    plot_periodic_table_heatmap(values, title="CrysAtom, dimension 0")
    print(f"{len(crysatom.symbols)} elements, {crysatom.dim} numbers each")


if __name__ == "__main__":
    main()
