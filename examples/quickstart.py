"""
Quickstart
==========

Element-embedding features at three levels, then a scikit-learn model.

Run from the repository root (offline, under a minute)::

    python examples/quickstart.py
    python examples/quickstart.py --data ../shared/data/jarvis_dft_3d_2021.json.gz \\
        --target formation_energy_peratom --limit 2000

1. Featurize the example crystals that ship with the package at the site, composition and
   structure levels.
2. Fit ``Pipeline([featurizer, StandardScaler, RidgeCV])`` and report a cross-validated MAE
   next to the predict-the-mean baseline. Without ``--data`` the task is the volume per atom
   (Å³/atom) of the 14 example crystals (leave-one-out); it is tiny and only shows the API.
   With ``--data`` (a matminer DataFrame saved as JSON, with a ``structure`` column) it uses
   5-fold cross-validation on the first ``--limit`` rows.

The CrysAtom vectors are used when their file has been generated; otherwise SkipAtom, with a
note.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, LeaveOneOut, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from crysatom_featurizers.datasets import load_example_structures
from crysatom_featurizers.embeddings import available
from crysatom_featurizers.featurizers import (
    ElementEmbeddingCompositionFeaturizer,
    ElementEmbeddingSiteFeaturizer,
    ElementEmbeddingStructureFeaturizer,
)


def pick_embedding(preferred: str = "crysatom", fallback: str = "skipatom") -> str:
    """``preferred`` when its vectors are available, else ``fallback`` (with a note)."""
    dims = available().set_index("name").loc[preferred, "dims"]
    if dims:
        return preferred
    print(f"note: the {preferred!r} vectors are not generated yet; using {fallback!r} instead")
    return fallback


def load_task(args: argparse.Namespace) -> tuple[pd.Series, np.ndarray, str, object]:
    """Structures, targets, target name (with units) and the cross-validation splitter."""
    if args.data is None:
        examples = load_example_structures()
        volume = np.array([s.volume / len(s) for s in examples["structure"]])
        return examples["structure"], volume, "volume per atom (Å³/atom)", LeaveOneOut()
    from matminer.utils.io import load_dataframe_from_json

    frame = load_dataframe_from_json(args.data, pbar=False)
    frame = frame.dropna(subset=[args.target]).iloc[: args.limit]
    cv = KFold(n_splits=5, shuffle=True, random_state=0)
    return frame["structure"], frame[args.target].to_numpy(float), args.target, cv


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="matminer JSON with a structure column")
    parser.add_argument("--target", default="formation_energy_peratom")
    parser.add_argument("--limit", type=int, default=2000)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)  # pymatgen's data-quality notes

    embedding = pick_embedding()
    examples = load_example_structures()
    nacl = examples.loc["NaCl (rock salt)", "structure"]

    # 1a. Site level: one vector per site (occupancy-weighted for disordered sites).
    site = ElementEmbeddingSiteFeaturizer(embedding)
    print(
        f"site vector of {nacl[0].species_string} in NaCl: {len(site.featurize(nacl, 0))} numbers"
    )
    sites = site.featurize_dataframe(examples[["structure"]], "structure")
    print(f"site level: {sites.shape[0]} sites × {len(site.feature_labels())} features")

    # 1b. Composition level: statistics of the element vectors weighted by amount.
    composition = ElementEmbeddingCompositionFeaturizer(embedding, stats=("mean", "std_dev"))
    comps = examples.assign(composition=[s.composition for s in examples["structure"]])
    comps = composition.featurize_dataframe(comps, "composition")
    print(f"composition level: {len(comps)} rows, e.g. {composition.feature_labels()[0]!r}")

    # 1c. Structure level: statistics over the sites of the cell.
    structure = ElementEmbeddingStructureFeaturizer(embedding)
    table = structure.featurize_dataframe(examples, "structure")
    print(f"structure level: {table.shape[0]} rows × {len(structure.feature_labels())} features")

    # 2. A scikit-learn Pipeline: the featurizer is a transformer like any other.
    X, y, target, cv = load_task(args)
    model = Pipeline(
        [
            ("features", ElementEmbeddingStructureFeaturizer(embedding)),
            ("scale", StandardScaler()),
            ("ridge", RidgeCV(alphas=np.logspace(-3, 3, 13))),
        ]
    )
    predicted = cross_val_predict(model, list(X), y, cv=cv)
    mae = float(np.mean(np.abs(predicted - y)))
    # Baseline: the training-fold mean, under the same cross-validation.
    dummy = cross_val_predict(DummyRegressor(), np.zeros((len(y), 1)), y, cv=cv)
    baseline = float(np.mean(np.abs(dummy - y)))
    print(
        f"{target}: cross-validated MAE {mae:.3g} with {embedding} features vs {baseline:.3g} "
        f"for predicting the mean ({len(y)} crystals)"
    )


if __name__ == "__main__":
    main()
