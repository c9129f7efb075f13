"""
Element vectors from your own labels
====================================

Train a CGCNN on one-hot element inputs, read its
learned element table out as an ``ElementEmbedding``, and use it like any registry embedding.

Run from the repository root (offline, under a minute)::

    python examples/your_own_vectors.py                      # built-in toy task
    python examples/your_own_vectors.py --out my_vectors.json
    python examples/your_own_vectors.py --data ../shared/data/jarvis_dft_3d_2021.json.gz \\
        --target formation_energy_peratom --n 2000

This is how the shipped ``uae`` vectors are made (``training/supervised.py``), on a larger
scale, several labels at once and with every benchmark test formula removed first: with
one-hot inputs, the first linear layer of the CGCNN is a table of one learned vector per
element, and ``element_embedding_from_model`` returns it. Use the vectors on *other*
properties or as frozen inputs of a small-data model; scoring them on crystals whose labels
trained them says nothing. Without ``--data`` the task is the volume per atom (Å³/atom) of
strained copies of the 14 example crystals. ``CRYSATOM_EXAMPLE_EPOCHS`` overrides the number
of epochs (the smoke tests use 2).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from crysatom_featurizers import CGCNNRegressor
from crysatom_featurizers.featurizers import ElementEmbeddingCompositionFeaturizer
from crysatom_featurizers.nn import element_embedding_from_model


def load_task(args: argparse.Namespace):
    """Structures and targets."""
    if args.data is None:
        from crysatom_featurizers.datasets import load_example_structures

        rng = np.random.default_rng(0)
        base = list(load_example_structures()["structure"])
        structures = []
        for i in range(args.n):
            s = base[i % len(base)].copy()
            s.apply_strain(rng.uniform(-0.06, 0.06, size=3))
            structures.append(s)
        return structures, np.array([s.volume / len(s) for s in structures])
    from matminer.utils.io import load_dataframe_from_json

    frame = load_dataframe_from_json(args.data, pbar=False).dropna(subset=[args.target])
    frame = frame.sample(n=min(args.n, len(frame)), random_state=0)
    return list(frame["structure"]), frame[args.target].to_numpy(dtype=float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="matminer JSON with a structure column")
    parser.add_argument("--target", default="formation_energy_peratom")
    parser.add_argument("--n", type=int, default=210, help="crystals to train on")
    parser.add_argument("--out", default=None, help="write the vectors here (a new JSON file)")
    args = parser.parse_args()
    if args.out is not None and Path(args.out).exists():
        parser.error(f"{args.out} exists; choose a new file name")

    structures, y = load_task(args)
    epochs = int(os.environ.get("CRYSATOM_EXAMPLE_EPOCHS", 60))
    model = CGCNNRegressor(
        embedding="onehot", atom_fea_len=32, n_conv=2, epochs=epochs, patience=10,
        random_state=0,
    ).fit(structures, y)  # fmt: skip
    print(f"trained on {len(structures)} crystals, best epoch {model.best_epoch_}")

    elements = sorted({el.symbol for s in structures for el in s.composition.elements})
    vectors = element_embedding_from_model(
        model, "my_vectors", elements=elements, metadata={"trained_on": args.data or "toy"}
    )
    print(f"{vectors.name}: {len(vectors)} elements x {vectors.dim} dims")
    if args.out is not None:
        vectors.to_json(args.out)
        print(f"wrote {args.out}")

    # The vectors work wherever an embedding does: featurizers, CGCNN inputs, the registry.
    featurizer = ElementEmbeddingCompositionFeaturizer(vectors, stats=("mean",))
    features = featurizer.featurize(structures[0].composition)
    print(f"composition features of {structures[0].composition.reduced_formula}: {len(features)}")


if __name__ == "__main__":
    main()
