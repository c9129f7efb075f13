"""Datasets, deterministic splits and training budgets of the benchmark."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.benchmark.config import (
    DATASET_IDS,
    PropertySpec,
)
from training.corpus import shared_source_path

#: Structure descriptors available to the ``matminer`` structure workflow.
STRUCTURE_EXTRAS = {
    "volume_per_atom": lambda s: s.volume / len(s),  # Å^3/atom
    "density": lambda s: float(s.density),  # g/cm^3
    "n_sites": lambda s: float(len(s)),
}


def native(value: Any) -> Any:
    """JSON-friendly id (numpy integers -> int)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def synthetic_dataset(n_variants: int = 6, seed: int = 0) -> pd.DataFrame:
    """A small built-in dataset with a computable target, for smoke runs without shared data.

    Each example crystal of :func:`crysatom_featurizers.datasets.load_example_structures` is
    strained isotropically (lattice scale 0.94-1.06) and its sites displaced (normal noise,
    0.03 Å per Cartesian component) ``n_variants`` times. Targets: ``volume_per_atom``
    (Å^3/atom) and ``density`` (g/cm^3).
    """
    from pymatgen.core import Lattice, Structure

    from crysatom_featurizers.datasets import load_example_structures

    rng = np.random.default_rng(seed)
    rows = []
    for proto, structure in load_example_structures()["structure"].items():
        for k in range(n_variants):
            scale = rng.uniform(0.94, 1.06)
            lattice = Lattice(structure.lattice.matrix * scale)
            cart = structure.cart_coords * scale + rng.normal(0.0, 0.03, (len(structure), 3))
            s = Structure(lattice, structure.species, cart, coords_are_cartesian=True)
            rows.append(
                {
                    "synthetic_id": f"{proto.split(' ')[0]}-{k}",
                    "formula": s.composition.reduced_formula,
                    "structure": s,
                    "volume_per_atom": s.volume / len(s),
                    "density": float(s.density),
                }
            )
    return pd.DataFrame(rows)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The frame of a dataset, indexed by its row id (``jarvis_index``, ``material_id``)."""
    if name == "synthetic":
        frame = synthetic_dataset()
    else:
        from matminer.utils.io import load_dataframe_from_json

        path = shared_source_path(name, data_dir)
        frame = load_dataframe_from_json(str(path), pbar=False)
    id_col = DATASET_IDS[name]
    if id_col not in frame.columns:
        raise KeyError(f"dataset {name!r} has no id column {id_col!r}")
    frame = frame.set_index(id_col, drop=True)
    if not frame.index.is_unique:
        raise ValueError(f"dataset {name!r}: the ids in {id_col!r} are not unique")
    return frame


def make_split(
    ids: Sequence[Any], seed: int, fractions: tuple[float, float, float]
) -> dict[str, list]:
    """Train/val/test ids: a seeded permutation of the sorted ids cut 80/10/10 (in that order)."""
    ordered = sorted(native(i) for i in ids)
    n = len(ordered)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    perm = np.random.default_rng(seed).permutation(n)
    shuffled = [ordered[i] for i in perm]
    return {
        "train": shuffled[:n_train],
        "val": shuffled[n_train : n_train + n_val],
        "test": shuffled[n_train + n_val :],
    }


@dataclass
class PropertyData:
    """Rows of one property after the split and the element filter."""

    spec: PropertySpec
    train: list  # ids in split order, filtered
    val: list
    test: list
    n_excluded: dict[str, int]
    split_path: Path

    def budget(self, max_train: int | None, fraction: float = 1.0, size: int | None = None) -> list:
        """Training ids: a prefix of the training list, so each budget nests in the next.

        ``size`` (learning curve) takes the first ``size`` ids of the whole training part;
        otherwise the first ``round(fraction * min(max_train, n))``.
        """
        if size is not None:
            if size > len(self.train):
                raise ValueError(
                    f"{self.spec.name}: a training size of {size} exceeds the "
                    f"{len(self.train)} training crystals"
                )
            return list(self.train[:size])
        pool = self.train if max_train is None else self.train[:max_train]
        if fraction >= 1.0:
            return list(pool)
        return list(pool[: max(2, int(round(fraction * len(pool))))])
