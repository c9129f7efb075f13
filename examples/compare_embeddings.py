"""
One model on CrysAtom, SkipAtom, Atom2Vec and random vectors
============================================================

Run from the repository root (offline, under a minute)::

    python examples/compare_embeddings.py
    python examples/compare_embeddings.py --model cgcnn --epochs 20
    python examples/compare_embeddings.py --data ../shared/data/jarvis_dft_3d_2021.json.gz \\
        --target formation_energy_peratom --limit 3000

For each embedding the model is identical; only the element vectors change:

* ``--model ridge`` (default): structure-level features (mean, std_dev, min, max, range of
  the site vectors) -> StandardScaler -> RidgeCV;
* ``--model cgcnn``: ``CGCNNRegressor`` with the vectors as frozen input node features.

Every embedding is scored on the same rows and the same cross-validation folds; rows with an
element that one of the embeddings lacks are dropped for all of them. Embeddings whose vector
files have not been generated (``crysatom``, ``atom2vec`` come from this repository's
``training/``) are skipped with a note.

Without ``--data`` the task is the volume per atom (Å³/atom) of the 14 example crystals
(leave-one-out): it shows the protocol, not which embedding is better. The environment
variable ``CRYSATOM_EXAMPLE_EPOCHS`` overrides ``--epochs`` (the smoke tests use 2).
"""

from __future__ import annotations

import argparse
import os
import warnings

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, LeaveOneOut, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from crysatom_featurizers.datasets import load_example_structures
from crysatom_featurizers.embeddings import EmbeddingNotAvailableError, load
from crysatom_featurizers.featurizers import ElementEmbeddingStructureFeaturizer

EMBEDDINGS = ("crysatom", "skipatom", "atom2vec", "random")


def load_task(args: argparse.Namespace):
    """Structures (list), targets, target name with units, and the cross-validation splitter."""
    if args.data is None:
        examples = load_example_structures()
        structures = list(examples["structure"])
        volume = np.array([s.volume / len(s) for s in structures])
        return structures, volume, "volume per atom (Å³/atom)", LeaveOneOut()
    from matminer.utils.io import load_dataframe_from_json

    frame = load_dataframe_from_json(args.data, pbar=False)
    frame = frame.dropna(subset=[args.target]).iloc[: args.limit]
    cv = KFold(n_splits=5, shuffle=True, random_state=123)
    return list(frame["structure"]), frame[args.target].to_numpy(float), args.target, cv


def make_model(kind: str, embedding: str, epochs: int):
    if kind == "ridge":
        return Pipeline(
            [
                ("features", ElementEmbeddingStructureFeaturizer(embedding)),
                ("scale", StandardScaler()),
                ("ridge", RidgeCV(alphas=np.logspace(-3, 3, 13))),
            ]
        )
    from crysatom_featurizers.estimators import CGCNNRegressor

    return CGCNNRegressor(
        embedding=embedding,
        atom_fea_len=32,
        n_conv=2,
        h_fea_len=32,
        epochs=epochs,
        batch_size=16,
        validation_fraction=None,
        random_state=0,
        n_threads=1,
    )


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("ridge", "cgcnn"), default="ridge")
    parser.add_argument(
        "--epochs", type=int, default=int(os.environ.get("CRYSATOM_EXAMPLE_EPOCHS", 30))
    )
    parser.add_argument("--data", default=None, help="matminer JSON with a structure column")
    parser.add_argument("--target", default="formation_energy_peratom")
    parser.add_argument("--limit", type=int, default=3000)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)

    embeddings = {}
    for name in EMBEDDINGS:
        try:
            embeddings[name] = load(name)
        except EmbeddingNotAvailableError:
            print(f"note: skipping {name!r}: its vector file has not been generated yet")
    structures, y, target, cv = load_task(args)

    # Keep the rows every embedding covers, so that all are scored on the same crystals.
    covered = set.intersection(*(set(e.symbols) for e in embeddings.values()))
    keep = [
        i
        for i, s in enumerate(structures)
        if {el.symbol for el in s.composition.elements} <= covered
    ]
    if len(keep) < len(structures):
        print(f"note: {len(structures) - len(keep)} crystals dropped (elements not covered)")
    structures, y = [structures[i] for i in keep], y[keep]

    rows = []
    for name, embedding in embeddings.items():
        model = make_model(args.model, name, args.epochs)
        predicted = cross_val_predict(model, structures, y, cv=cv)
        rows.append(
            {
                "embedding": name,
                "dim": embedding.dim,
                "elements": len(embedding),
                "MAE": float(np.mean(np.abs(predicted - y))),
            }
        )
    results = pd.DataFrame(rows).sort_values("MAE").reset_index(drop=True)
    print(f"{target}, {args.model} model, {len(y)} crystals, cross-validated MAE:")
    print(results.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return results


if __name__ == "__main__":
    main()
