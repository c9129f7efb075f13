"""Leak-free property labels for element vectors and encoders learned from labels.

The label-trained front-ends of :mod:`training.supervised` learn from the labelled crystals of
``../shared/data``: JARVIS formation energy (eV/atom), JARVIS MBJ band gap (eV) and Materials
Project formation energy (eV/atom). The benchmark scores models on held-out crystals of the
same sets, so a label of a benchmark validation or test crystal must never reach this training.

The guard works by reduced formula, across both sets: every crystal whose reduced formula
occurs in any validation or test row of any benchmark split (``training/results/splits``: the
80/10/10 splits of the five properties, which contain the learning curve's fixed validation
crystals and the MP split) is removed from the training labels, whatever its own dataset or
property. The moduli (``bulk_modulus_kv``, ``shear_modulus_gv``) are never training labels:
they stay *unseen* properties.

The remaining crystals are split once more, by reduced formula, into the front-end's own
training and validation parts (:data:`FRONTEND_VAL_MODULUS`), so that the front-ends are
compared on crystals whose compounds they never saw.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pymatgen.core import Composition

from training.corpus import REPO_ROOT

__all__ = [
    "FRONTEND_VAL_MODULUS",
    "LABEL_TASKS",
    "SEEN_PROPERTIES",
    "UNSEEN_PROPERTIES",
    "LabelSet",
    "LabelTask",
    "build_label_set",
    "excluded_formulas",
    "formula_checksum",
    "reduced_formula",
    "remove_excluded",
    "split_datasets",
]

DEFAULT_SPLITS_DIR = REPO_ROOT / "training" / "results" / "splits"


@dataclass(frozen=True)
class LabelTask:
    """One training label: a column of a shared dataset, and the benchmark property it is."""

    name: str  #: name of the task (a column of the label table)
    dataset: str  #: "jarvis" or "mp"
    column: str  #: column of the dataset
    unit: str  #: unit of the label (eV/atom, eV)
    benchmark_property: str  #: the name of the same property in the benchmark config


#: The training labels (the properties they cover are *seen* in the benchmark).
LABEL_TASKS: tuple[LabelTask, ...] = (
    LabelTask(
        "jarvis_formation_energy", "jarvis", "formation_energy_peratom", "eV/atom",
        "formation_energy_peratom",
    ),
    LabelTask("jarvis_mbj_bandgap", "jarvis", "mbj_bandgap", "eV", "mbj_bandgap"),
    LabelTask(
        "mp_formation_energy", "mp", "formation_energy_per_atom", "eV/atom",
        "formation_energy_per_atom",
    ),
)  # fmt: skip
SEEN_PROPERTIES = tuple(t.benchmark_property for t in LABEL_TASKS)
#: Benchmark properties that no label-trained front-end ever sees.
UNSEEN_PROPERTIES = ("bulk_modulus_kv", "shear_modulus_gv")
#: A reduced formula goes to the front-end's validation part when its SHA-256 is 0 modulo this
#: (about 1 in 20 formulas).
FRONTEND_VAL_MODULUS = 20


def reduced_formula(formula: str) -> str:
    """pymatgen's reduced formula of ``formula`` (``"Fe4O6"`` -> ``"Fe2O3"``)."""
    return Composition(formula).reduced_formula


def _reduced_formulas(frame: pd.DataFrame) -> list[str]:
    """Reduced formula of every row: from its structure when there is a ``structure`` column
    (the crystal itself decides, whatever its ``formula`` text says), else from ``formula``."""
    if "structure" in frame.columns:
        return [s.composition.reduced_formula for s in frame["structure"]]
    cache: dict[str, str] = {}
    out = []
    for f in frame["formula"]:
        if f not in cache:
            cache[f] = reduced_formula(f)
        out.append(cache[f])
    return out


def split_datasets(splits_dir: str | os.PathLike = DEFAULT_SPLITS_DIR) -> list[str]:
    """The datasets that the benchmark split files in ``splits_dir`` hold out rows of."""
    names = {json.loads(p.read_text()).get("dataset") for p in Path(splits_dir).glob("*.json")}
    return sorted(str(n) for n in names)


def formula_checksum(formulas: Iterable[str]) -> str:
    """SHA-256 of the sorted, de-duplicated formulas joined by newlines."""
    return hashlib.sha256("\n".join(sorted(set(formulas))).encode("utf-8")).hexdigest()


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def excluded_formulas(
    frames: Mapping[str, pd.DataFrame],
    splits_dir: str | os.PathLike = DEFAULT_SPLITS_DIR,
) -> tuple[set[str], dict[str, Any]]:
    """Reduced formulas of every validation and test crystal of the benchmark splits.

    Parameters
    ----------
    frames : mapping of str to DataFrame
        The datasets by name (``"jarvis"``, ``"mp"``), indexed by their row ids, with a
        ``structure`` column (or, without one, a ``formula`` column). Every dataset that a
        split file names must be given: a held-out formula of one dataset is removed from
        the labels of all.
    splits_dir : path-like
        Folder of the split files (one JSON per benchmark property, with ``dataset``,
        ``val`` and ``test`` id lists).

    Returns
    -------
    formulas : set of str
        The reduced formulas (pymatgen's ``reduced_formula``) of the held-out crystals.
    info : dict
        The split files read (name and SHA-256), the number of held-out rows per file, and
        the number and checksum of the formulas.

    Raises
    ------
    FileNotFoundError
        If ``splits_dir`` has no split file.
    KeyError
        If a split names a dataset that ``frames`` lacks, or ids that its frame lacks.
    """
    splits_dir = Path(splits_dir)
    files = sorted(splits_dir.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no benchmark split files in {splits_dir}")
    formulas: set[str] = set()
    per_file = {}
    for path in files:
        split = json.loads(path.read_text())
        dataset = split.get("dataset")
        if dataset not in frames:
            raise KeyError(f"{path.name}: dataset {dataset!r} is not among {sorted(frames)}")
        held_out = [*split["val"], *split["test"]]
        frame = frames[dataset]
        missing = pd.Index(held_out).difference(frame.index)
        if len(missing):
            raise KeyError(
                f"{path.name}: {len(missing)} held-out ids are not in the {dataset!r} data "
                f"(first: {list(missing[:3])})"
            )
        formulas.update(_reduced_formulas(frame.loc[held_out]))
        per_file[path.name] = {"sha256": _file_sha256(path), "held_out_rows": len(held_out)}
    info = {
        "splits": per_file,
        "n_formulas": len(formulas),
        "formula_checksum": formula_checksum(formulas),
        "rule": "every crystal whose reduced formula occurs in a validation or test row of "
        "any benchmark split (both datasets, all properties) is removed from the labels",
    }
    return formulas, info


def remove_excluded(
    frame: pd.DataFrame, excluded: set[str], formula_column: str = "reduced_formula"
) -> tuple[pd.DataFrame, int]:
    """``frame`` without the rows whose reduced formula is in ``excluded``; the count removed."""
    drop = frame[formula_column].isin(excluded).to_numpy()
    return frame.loc[~drop], int(drop.sum())


def _frontend_fold(formula: str, modulus: int) -> str:
    h = int.from_bytes(hashlib.sha256(formula.encode("utf-8")).digest()[:8], "little")
    return "val" if h % modulus == 0 else "train"


@dataclass
class LabelSet:
    """The leak-free labelled crystals of the front-ends.

    Attributes
    ----------
    frame : DataFrame
        One row per crystal: ``dataset``, ``source_id``, ``reduced_formula``, ``structure``,
        ``fold`` (``"train"`` or ``"val"``: the front-end's own split) and one column per
        task (NaN where the crystal has no such label).
    tasks : tuple of LabelTask
    info : dict
        Provenance for the vector and encoder metadata: the guard (split files, number and
        checksum of the excluded formulas, crystals removed per dataset) and label counts.
    """

    frame: pd.DataFrame
    tasks: tuple[LabelTask, ...]
    info: dict[str, Any]

    @property
    def task_names(self) -> list[str]:
        """Names of the tasks, in column order."""
        return [t.name for t in self.tasks]

    def targets(self) -> np.ndarray:
        """``Float[C, T]`` labels (NaN where absent), in row and task order."""
        return self.frame[self.task_names].to_numpy(dtype=np.float64)


def build_label_set(
    frames: Mapping[str, pd.DataFrame],
    tasks: Sequence[LabelTask] = LABEL_TASKS,
    splits_dir: str | os.PathLike = DEFAULT_SPLITS_DIR,
    max_sites: int | None = None,
    val_modulus: int = FRONTEND_VAL_MODULUS,
) -> LabelSet:
    """The labelled crystals of ``tasks``, with every benchmark held-out formula removed.

    Parameters
    ----------
    frames : mapping of str to DataFrame
        Datasets by name, indexed by row id, with ``formula``, ``structure`` and the tasks'
        columns (:func:`training.benchmark.data.load_dataset` gives them).
    tasks : sequence of LabelTask
        The labels to keep (default: all of :data:`LABEL_TASKS`).
    splits_dir : path-like
        Benchmark split files, see :func:`excluded_formulas`.
    max_sites : int, optional
        Drop crystals with more sites (a cost limit of a front-end; recorded in ``info``).
    val_modulus : int
        A formula goes to the front-end's validation part when its SHA-256 is 0 modulo this.

    Returns
    -------
    LabelSet

    Raises
    ------
    ValueError
        If a task names a benchmark property the guard treats as unseen.
    KeyError
        If ``frames`` lacks a dataset that a split file names (see :func:`excluded_formulas`).
    """
    bad = [t.name for t in tasks if t.benchmark_property in UNSEEN_PROPERTIES]
    if bad:
        raise ValueError(f"tasks {bad} are unseen benchmark properties and may not be labels")
    excluded, guard = excluded_formulas(frames, splits_dir)
    parts = []
    removed: dict[str, int] = {}
    candidates: dict[str, int] = {}
    for dataset in sorted({t.dataset for t in tasks}):
        columns = [t for t in tasks if t.dataset == dataset]
        frame = frames[dataset]
        labels = frame[[t.column for t in columns]].to_numpy(dtype=np.float64)
        labelled = np.isfinite(labels).any(axis=1)
        part = pd.DataFrame(
            {
                "dataset": dataset,
                "source_id": frame.index[labelled],
                "reduced_formula": _reduced_formulas(frame.loc[labelled]),
                "structure": frame["structure"].to_numpy()[labelled],
            }
        )
        for t in tasks:
            if t.dataset == dataset:
                part[t.name] = frame[t.column].to_numpy(dtype=np.float64)[labelled]
            else:
                part[t.name] = np.nan
        candidates[dataset] = len(part)
        part, removed[dataset] = remove_excluded(part, excluded)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    n_before_size = len(frame)
    if max_sites is not None:
        frame = frame[[len(s) <= max_sites for s in frame["structure"]]].reset_index(drop=True)
    frame["fold"] = [_frontend_fold(f, val_modulus) for f in frame["reduced_formula"]]
    counts = {
        t.name: {
            fold: int(np.isfinite(frame.loc[frame["fold"] == fold, t.name]).sum())
            for fold in ("train", "val")
        }
        for t in tasks
    }
    info = {
        "tasks": [
            {"name": t.name, "dataset": t.dataset, "column": t.column, "unit": t.unit,
             "benchmark_property": t.benchmark_property}
            for t in tasks
        ],
        "seen_properties": [t.benchmark_property for t in tasks],
        "unseen_properties": list(UNSEEN_PROPERTIES),
        "leak_guard": {
            **guard,
            "labelled_crystals": candidates,
            "removed_crystals": removed,
            "kept_crystals": {d: candidates[d] - removed[d] for d in candidates},
        },
        "max_sites": max_sites,
        "removed_by_max_sites": n_before_size - len(frame),
        "frontend_split": f"by reduced formula: sha256(formula) % {val_modulus} == 0 "
        "-> validation",
        "label_counts": counts,
        "n_crystals": len(frame),
    }  # fmt: skip
    return LabelSet(frame, tuple(tasks), info)
