"""Experiment harness: element embeddings compared downstream, with one command per protocol.

Usage::

    python -m training.benchmark --config training/configs/bench_cpu.yaml \\
        [--experiments comparison,dimension,ssl,scarce,matminer,probe,figures] [--resume] \\
        [--max-minutes 60] [--properties a,b] [--out-dir training/results] [--name NAME] \
        [--data-dir ../shared/data] [--report-only]

``--resume`` keeps the rows already in ``results.csv`` and skips them (chunked runs under a
command time limit: repeat the same command with ``--max-minutes`` below the limit); without
it, the rows of the experiments being run are removed first. ``--properties`` (with
``--resume``) lets two processes share one run directory, each on its own properties; rows
are appended under a file lock.

Everything goes to ``<out_dir>/<name>/`` (``out_dir`` defaults to ``training/results``):

* ``results.csv``: one row per experiment x property x embedding x seed x train fraction
  (columns :data:`COLUMNS`), appended as soon as a fit ends;
* ``results.md``: mean ± standard deviation over seeds of the test MAE per table, with the
  relative change against the ``cgcnn`` features (the "vanilla" CGCNN input) in %;
* ``summary.csv``: the numbers behind ``results.md``;
* ``figures/``, ``probe/``, ``histories/`` (per-epoch CGCNN curves), ``predictions/``
  (test-set predictions of the first seed);
* ``config.yaml`` (the exact config file), ``run_info.json`` (git commit and dirty flag, host,
  CPU/GPU, load averages, versions, per invocation), ``data.json`` (rows used per property),
  ``benchmark.log`` and ``notes.json`` (embeddings or experiments that were skipped, and why).

Experiments
-----------
``comparison``
    :class:`~crysatom_featurizers.estimators.CGCNNRegressor` with identical hyperparameters and
    budget for every embedding of ``embeddings``, for ``seeds`` model seeds.
``dimension``
    The same for ``dimension_embeddings`` (CrysAtom at 50, 100 and 200 dimensions). A fit that
    is identical to one already done (same property, vectors, seed, rows and hyperparameters)
    is copied instead of repeated.
``ssl``
    The same for vector files pretrained with other self-supervised losses (``ssl_vectors``,
    label -> path); missing files are skipped with a note.
``scarce``
    ``scarce.embeddings`` trained on ``scarce.fractions`` of the training set.
``matminer``
    The classic workflow: :class:`ElementEmbeddingCompositionFeaturizer` (``matminer.stats``)
    or :class:`ElementEmbeddingStructureFeaturizer` site statistics plus the structure
    descriptors of ``matminer.structure_extras``, then
    ``HistGradientBoostingRegressor(random_state=seed)``, fitted on the training rows only
    (the same rows as the CGCNN runs; the validation rows are not used, there is no early
    stopping), scored on the same test rows.
``probe``
    ``training/probe.py`` on ``probe.embeddings``, written to ``probe/`` next to the
    CrystalTransformer paper's Table VI values.
``figures``
    PCA and t-SNE maps coloured by group and by block and a cosine-similarity heatmap for each
    of ``figures.embeddings``; parity plots and learning curves of the CGCNN runs found in
    ``results.csv``; MAE bar charts.

Splits
------
For each property, the rows with a finite target are split 80/10/10 by a permutation seeded
with ``split_seed`` (123) of the ids sorted in ascending order: the first 80 % of the permuted
ids train, the next 10 % validate, the last 10 % test. The split is written to
``<splits_dir>/<property>.json`` (ids: ``jarvis_index`` or ``material_id``), in permuted order,
and read back on later runs (a mismatch with the data is an error, never a silent re-split).
Rows with an element outside ``elements`` (default: the 86 elements every comparator
embedding covers, :data:`training.probe.COMMON_ELEMENTS`) are then dropped from all three
parts, so every embedding sees the same rows. A training budget of N crystals is the first N
remaining ids of the training list, a fraction f of it the first ``round(f N)``; the first
``max_val`` remaining validation ids are used for early stopping (model selection by
validation loss only); the test part is used in full and only for the reported scores.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import yaml

from crysatom_featurizers.embeddings import spec_label
from training.corpus import REPO_ROOT, SHARED_SOURCES, shared_source_path
from training.provenance import git_state

LOG = logging.getLogger("training.benchmark")

#: Experiments in the order they run by default.
EXPERIMENTS: tuple[str, ...] = (
    "comparison",
    "dimension",
    "ssl",
    "scarce",
    "curve",
    "matminer",
    "probe",
    "figures",
)

#: Columns of ``results.csv``; the first sixteen are the documented schema, the rest bookkeeping.
COLUMNS: tuple[str, ...] = (
    "experiment",
    "property",
    "unit",
    "embedding",
    "dim",
    "seed",
    "train_fraction",
    "n_train",
    "n_val",
    "n_test",
    "test_mae",
    "test_rmse",
    "test_r2",
    "best_epoch",
    "epochs_run",
    "fit_seconds",
    "model",
    "embedding_checksum",
    "run_key",
    "reused_from",
    "finished_at",
)

#: CGCNN experiments and their model family in ``results.csv``.
CGCNN_EXPERIMENTS = ("comparison", "dimension", "ssl", "scarce", "curve")
BASELINE = "cgcnn"

#: The CrysAtom paper's test MAE (Tables 5 and 7; 1000 epochs on a GPU, full data, split seed
#: 123), from ``../shared/data/README.md``: property -> (CGCNN vanilla, CGCNN + CrysAtom).
PAPER_MAE: dict[str, tuple[float, float]] = {
    "formation_energy_peratom": (0.063, 0.040),
    "mbj_bandgap": (0.410, 0.333),
    "bulk_modulus_kv": (14.47, 12.37),
    "shear_modulus_gv": (11.75, 10.45),
}

#: Structure descriptors available to the ``matminer`` structure workflow.
STRUCTURE_EXTRAS = {
    "volume_per_atom": lambda s: s.volume / len(s),  # Å^3/atom
    "density": lambda s: float(s.density),  # g/cm^3
    "n_sites": lambda s: float(len(s)),
}

DATASET_IDS = {**{k: v.id_column for k, v in SHARED_SOURCES.items()}, "synthetic": "synthetic_id"}


# ------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------


@dataclass
class PropertySpec:
    """A regression target: ``column`` of ``dataset`` (``jarvis``, ``mp`` or ``synthetic``)."""

    name: str
    dataset: str
    column: str
    unit: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PropertySpec:
        data = dict(data)
        data.setdefault("name", data.get("column"))
        data.setdefault("column", data.get("name"))
        unknown = sorted(set(data) - {"name", "dataset", "column", "unit"})
        if unknown:
            raise ValueError(f"unknown property keys {unknown} in {data}")
        if data.get("dataset") not in DATASET_IDS:
            raise ValueError(
                f"property {data.get('name')!r}: dataset must be one of {sorted(DATASET_IDS)}"
            )
        return cls(
            name=str(data["name"]),
            dataset=str(data["dataset"]),
            column=str(data["column"]),
            unit=str(data.get("unit", "")),
        )


@dataclass
class BenchConfig:
    """Settings of one benchmark protocol, loaded from YAML (see ``training/configs/bench_*``).

    Paths are relative to the repository root.
    """

    name: str
    description: str = ""
    properties: list[PropertySpec] = field(default_factory=list)
    experiments: list[str] = field(default_factory=lambda: list(EXPERIMENTS))
    # --- splits and budgets --------------------------------------------------------------
    split_seed: int = 123
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    splits_dir: str | None = "training/results/splits"  # None: <run_dir>/splits
    elements: str | list[str] = "common"  # "common", "all" or a list of symbols
    max_train: int | None = None  # crystals (None: the whole training part)
    max_val: int | None = None
    # --- models ---------------------------------------------------------------------------
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    embeddings: list[str] = field(default_factory=list)
    dimension_embeddings: list[str] = field(default_factory=list)
    ssl_vectors: dict[str, str] = field(default_factory=dict)
    scarce: dict[str, Any] = field(default_factory=dict)
    # learning curve: {sizes, embeddings, seeds, small_seeds, small_max}
    curve: dict[str, Any] = field(default_factory=dict)
    cgcnn: dict[str, Any] = field(default_factory=dict)
    matminer: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    experiment_properties: dict[str, list[str]] = field(default_factory=dict)
    save_predictions: str = "first_seed"  # first_seed | all | none
    data_dir: str | None = None
    source_path: str | None = None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> BenchConfig:
        """Read a config file (a path, or a name in ``training/configs``)."""
        p = Path(path)
        if not p.exists():
            for candidate in (REPO_ROOT / p, REPO_ROOT / "training" / "configs" / f"{p}.yaml"):
                if candidate.exists():
                    p = candidate
                    break
            else:
                raise FileNotFoundError(f"benchmark config not found: {path}")
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        cfg = cls.from_dict(data)
        cfg.source_path = str(p.resolve())
        return cfg

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchConfig:
        known = set(cls.__dataclass_fields__) - {"source_path"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown benchmark config keys {unknown}; known: {sorted(known)}")
        data = dict(data)
        data["properties"] = [PropertySpec.from_dict(p) for p in data.get("properties", [])]
        if "split_fractions" in data:
            data["split_fractions"] = tuple(float(x) for x in data["split_fractions"])
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if not self.properties:
            raise ValueError("the config lists no properties")
        bad = sorted(set(self.experiments) - set(EXPERIMENTS))
        if bad:
            raise ValueError(f"unknown experiments {bad}; expected some of {list(EXPERIMENTS)}")
        if len(self.split_fractions) != 3 or abs(sum(self.split_fractions) - 1.0) > 1e-9:
            raise ValueError(f"split_fractions must be three numbers summing to 1: {self}")
        if self.save_predictions not in ("first_seed", "all", "none"):
            raise ValueError("save_predictions must be first_seed, all or none")
        names = [p.name for p in self.properties]
        if len(set(names)) != len(names):
            raise ValueError(f"property names must be unique: {names}")
        for exp, props in self.experiment_properties.items():
            missing = sorted(set(props) - set(names))
            if missing:
                raise ValueError(f"experiment_properties[{exp!r}] names unknown {missing}")
        from crysatom_featurizers.estimators import CGCNNRegressor

        embedding_keys = {"embedding", "dim", "atom_features"}
        allowed = set(CGCNNRegressor().get_params()) - embedding_keys - {"random_state"}
        wrong = sorted(set(self.cgcnn) - allowed)
        if wrong:
            raise ValueError(f"cgcnn keys {wrong} are not CGCNNRegressor parameters")

    def properties_for(self, experiment: str) -> list[PropertySpec]:
        """Properties of an experiment (all unless ``experiment_properties`` narrows them)."""
        names = self.experiment_properties.get(experiment)
        if names is None:
            return list(self.properties)
        return [p for p in self.properties if p.name in names]


# ------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------


def _native(value: Any) -> Any:
    """JSON-friendly id (numpy integers -> int)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _atomic_write_text(path: Path, text: str) -> None:
    """Write through a temporary file, so a concurrent reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _resolve_path(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def load_embedding(spec: str):
    """The embedding of a config spec; a relative file path is taken from the repository."""
    from crysatom_featurizers.embeddings import resolve

    return resolve(spec, base_dir=REPO_ROOT)


def regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE (target units) and R² of predictions."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    err = y_pred - y_true
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    return {
        "test_mae": float(np.mean(np.abs(err))),
        "test_rmse": float(np.sqrt(np.mean(err**2))),
        "test_r2": 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else math.nan,
    }


def _run_key(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _sized(experiment: str) -> bool:
    """Whether an experiment names its training budgets by size (the learning curve)."""
    return experiment.startswith("curve")


def _row_run_id(row: Any) -> str:
    """:func:`_run_id` of a results row (a dict or a mapping-like record)."""
    return _run_id(
        str(row["experiment"]),
        str(row["property"]),
        str(row["embedding"]),
        int(row["seed"]),
        float(row["train_fraction"]),
        int(row["n_train"]) if _sized(str(row["experiment"])) else None,
    )


def _run_id(
    experiment: str, prop: str, label: str, seed: int, fraction: float, size: int | None = None
) -> str:
    """File stem of a fit: the training budget as a fraction, or as a size (learning curve)."""
    budget = f"f{fraction:g}" if size is None else f"n{int(size)}"
    return f"{experiment}__{prop}__{label}__s{seed}__{budget}"


def git_info() -> dict[str, Any]:
    """Commit of the repository and whether the working tree differs from it."""
    commit, status = git_state()
    return {"commit": commit, "dirty": bool(status), "n_changed_paths": len(status or [])}


def hardware_info() -> dict[str, Any]:
    """Host, CPU, GPU and load average at call time."""
    import sklearn
    import torch

    info: dict[str, Any] = {
        "time": _dt.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "cuda": torch.cuda.is_available(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------


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
    ordered = sorted(_native(i) for i in ids)
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


# ------------------------------------------------------------------------------------------
# CGCNN with the harness's validation rows
# ------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------
# Results file
# ------------------------------------------------------------------------------------------


class ResultsFile:
    """``results.csv`` with row-by-row appends under a file lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.parent / f".{path.name}.lock"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self) -> pd.DataFrame:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return pd.DataFrame(columns=list(COLUMNS))
        frame = pd.read_csv(self.path)
        for col in COLUMNS:
            if col not in frame.columns:
                frame[col] = np.nan
        return frame

    def append(self, row: dict[str, Any]) -> None:
        frame = pd.DataFrame([{c: row.get(c, np.nan) for c in COLUMNS}])
        with self.locked():
            header = not self.path.exists() or self.path.stat().st_size == 0
            frame.to_csv(self.path, mode="a", header=header, index=False)

    def drop_rows(self, mask_fn: Callable[[pd.DataFrame], pd.Series]) -> int:
        """Remove the rows where ``mask_fn(frame)`` is true; returns how many."""
        with self.locked():
            frame = self.read()
            drop = mask_fn(frame).to_numpy(bool)
            if drop.any():
                frame.loc[~drop].to_csv(self.path, index=False)
        return int(drop.sum())

    def drop_experiments(self, experiments: Sequence[str]) -> int:
        """Remove the rows of ``experiments`` (a fresh, non-resumed run of them)."""
        with self.locked():
            frame = self.read()
            keep = ~frame["experiment"].isin(list(experiments))
            removed = int((~keep).sum())
            if removed:
                frame.loc[keep].to_csv(self.path, index=False)
        return removed


# ------------------------------------------------------------------------------------------
# The harness
# ------------------------------------------------------------------------------------------


class TimeBudgetExceeded(RuntimeError):
    """Raised to stop launching fits once ``--max-minutes`` is spent."""


class Benchmark:
    """Runs the experiments of a :class:`BenchConfig` into ``run_dir``."""

    def __init__(
        self,
        cfg: BenchConfig,
        run_dir: str | os.PathLike,
        *,
        resume: bool = False,
        max_minutes: float | None = None,
        data_dir: str | os.PathLike | None = None,
        properties: Sequence[str] | None = None,
        embeddings: Sequence[str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.only_embeddings = None if embeddings is None else set(embeddings)
        if properties is not None:
            unknown = sorted(set(properties) - {p.name for p in cfg.properties})
            if unknown:
                raise ValueError(
                    f"unknown properties {unknown}; the config has "
                    f"{[p.name for p in cfg.properties]}"
                )
        self.only_properties = None if properties is None else list(properties)
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.resume = resume
        self.deadline = None if max_minutes is None else time.monotonic() + 60.0 * max_minutes
        self.data_dir = data_dir if data_dir is not None else cfg.data_dir
        self.splits_dir = (
            _resolve_path(cfg.splits_dir) if cfg.splits_dir else self.run_dir / "splits"
        )
        self.results = ResultsFile(self.run_dir / "results.csv")
        self._datasets: dict[str, pd.DataFrame] = {}
        self._elements: dict[str, pd.Series] = {}
        self._graphs: dict[str, dict[Any, Any]] = {}
        self._properties: dict[str, PropertyData] = {}
        self._embeddings: dict[str, Any] = {}
        self._done: dict[tuple, str] = {}
        self._by_key: dict[str, dict[str, Any]] = {}
        self.notes_path = self.run_dir / "notes.json"
        self.notes: dict[str, str] = (
            json.loads(self.notes_path.read_text()) if self.notes_path.exists() else {}
        )

    # ---- bookkeeping ----------------------------------------------------------------------

    def properties_for(self, experiment: str) -> list[PropertySpec]:
        """The config's properties of ``experiment``, narrowed by ``--properties``."""
        specs = self.cfg.properties_for(experiment)
        if self.only_properties is None:
            return specs
        return [p for p in specs if p.name in self.only_properties]

    def note(self, key: str, message: str) -> None:
        """Record (and log) why something was skipped; shown in ``results.md``."""
        LOG.warning("%s: %s", key, message)
        with self.results.locked():
            if self.notes_path.exists():  # another process may share the run directory
                self.notes.update(json.loads(self.notes_path.read_text()))
            self.notes[key] = message
            self.notes_path.write_text(json.dumps(self.notes, indent=1, sort_keys=True))

    def clear_note(self, key: str) -> None:
        """Forget a note whose cause is gone (an embedding now available, a fit now done)."""
        if key not in self.notes:
            return
        with self.results.locked():
            if self.notes_path.exists():
                self.notes.update(json.loads(self.notes_path.read_text()))
            self.notes.pop(key, None)
            self.notes_path.write_text(json.dumps(self.notes, indent=1, sort_keys=True))

    def _check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeBudgetExceeded("the --max-minutes budget is spent")

    def write_run_info(self, experiments: Sequence[str], argv: Sequence[str]) -> None:
        """Copy the config and append git, hardware and invocation details to run_info.json."""
        if self.cfg.source_path:
            src = Path(self.cfg.source_path)
            dst = self.run_dir / "config.yaml"
            if dst.exists() and dst.read_bytes() != src.read_bytes():
                stamp = _dt.datetime.now().strftime("%Y%m%dT%H%M%S")
                shutil.copyfile(dst, self.run_dir / f"config.prev-{stamp}.yaml")
            shutil.copyfile(src, dst)
        info_path = self.run_dir / "run_info.json"
        self._invocation = f"{os.getpid()}-{time.time():.0f}"
        entry = {
            "invocation": self._invocation,
            "argv": list(argv),
            "experiments": list(experiments),
            "resume": self.resume,
            "config": self.cfg.source_path,
            "git": git_info(),
            "hardware": hardware_info(),
        }
        with self.results.locked():
            runs = json.loads(info_path.read_text()) if info_path.exists() else []
            runs.append(entry)
            info_path.write_text(json.dumps(runs, indent=1))

    def _finish_run_info(self) -> None:
        info_path = self.run_dir / "run_info.json"
        with self.results.locked():
            if not info_path.exists():
                return
            runs = json.loads(info_path.read_text())
            for entry in runs:
                if entry.get("invocation") == getattr(self, "_invocation", None):
                    entry["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
                    entry["loadavg_end"] = (
                        list(os.getloadavg()) if hasattr(os, "getloadavg") else None
                    )
            info_path.write_text(json.dumps(runs, indent=1))

    def _load_done(self) -> None:
        frame = self.results.read()
        # a fit is identified by its training size (unique within an experiment and property)
        self._done = {
            (r.experiment, r.property, r.embedding, int(r.seed), int(r.n_train)): str(
                r.embedding_checksum
            )
            for r in frame.itertuples()
        }
        self._by_key = {
            str(r["run_key"]): r
            for r in frame.to_dict("records")
            if isinstance(r.get("run_key"), str) and not isinstance(r.get("reused_from"), str)
        }

    # ---- data -----------------------------------------------------------------------------

    def dataset(self, name: str) -> pd.DataFrame:
        if name not in self._datasets:
            t0 = time.perf_counter()
            self._datasets[name] = load_dataset(name, self.data_dir)
            LOG.info(
                "loaded %s: %d rows in %.1f s",
                name,
                len(self._datasets[name]),
                time.perf_counter() - t0,
            )
        return self._datasets[name]

    def _row_elements(self, dataset: str) -> pd.Series:
        """Element symbols of each row (frozenset), from the structures."""
        if dataset not in self._elements:
            frame = self.dataset(dataset)
            self._elements[dataset] = pd.Series(
                [frozenset(el.symbol for el in s.composition.elements) for s in frame["structure"]],
                index=frame.index,
            )
        return self._elements[dataset]

    def _allowed_elements(self) -> set[str] | None:
        if self.cfg.elements == "all":
            return None
        if self.cfg.elements == "common":
            from training.probe import COMMON_ELEMENTS

            return set(COMMON_ELEMENTS)
        return set(self.cfg.elements)

    def property_data(self, spec: PropertySpec) -> PropertyData:
        """Split (written once, then reused) and element filter of a property."""
        if spec.name in self._properties:
            return self._properties[spec.name]
        frame = self.dataset(spec.dataset)
        if spec.column not in frame.columns:
            raise KeyError(f"dataset {spec.dataset!r} has no column {spec.column!r}")
        target = pd.to_numeric(frame[spec.column], errors="coerce")
        ids = target.index[np.isfinite(target.to_numpy(dtype=float))]
        path = self.splits_dir / f"{spec.name}.json"
        if path.exists():
            stored = json.loads(path.read_text())
            if stored.get("seed") != self.cfg.split_seed or tuple(
                stored.get("fractions", ())
            ) != tuple(self.cfg.split_fractions):
                raise ValueError(
                    f"{path} was made with seed {stored.get('seed')} and fractions "
                    f"{stored.get('fractions')}, the config asks for {self.cfg.split_seed} and "
                    f"{list(self.cfg.split_fractions)}; move the file away to re-split"
                )
            parts = {k: stored[k] for k in ("train", "val", "test")}
            stored_ids = {i for part in parts.values() for i in part}
            current = {_native(i) for i in ids}
            if stored_ids != current:
                raise ValueError(
                    f"{path} does not match the data: {len(stored_ids ^ current)} ids differ "
                    f"(stored {len(stored_ids)}, data {len(current)}); move it away to re-split"
                )
        else:
            parts = make_split(list(ids), self.cfg.split_seed, self.cfg.split_fractions)
            path.parent.mkdir(parents=True, exist_ok=True)
            document = {
                "property": spec.name,
                "dataset": spec.dataset,
                "column": spec.column,
                "id_column": DATASET_IDS[spec.dataset],
                "seed": self.cfg.split_seed,
                "fractions": list(self.cfg.split_fractions),
                "method": (
                    "rows with a finite target, ids sorted ascending, permuted with "
                    "numpy.random.default_rng(seed).permutation; first 80 % train, next 10 % "
                    "val, last 10 % test; lists are in permuted order (a training budget of N "
                    "crystals is a prefix of train)"
                ),
                "n": {k: len(v) for k, v in parts.items()},
                "created": _dt.datetime.now().isoformat(timespec="seconds"),
                **parts,
            }
            _atomic_write_text(path, json.dumps(document))
            LOG.info("wrote split %s", path)
        allowed = self._allowed_elements()
        excluded: dict[str, int] = {}
        if allowed is not None:
            elements = self._row_elements(spec.dataset)
            for part in ("train", "val", "test"):
                keep = [i for i in parts[part] if elements.loc[i] <= allowed]
                excluded[part] = len(parts[part]) - len(keep)
                parts[part] = keep
        data = PropertyData(spec, parts["train"], parts["val"], parts["test"], excluded, path)
        self._properties[spec.name] = data
        self._write_data_summary()
        return data

    def _write_data_summary(self) -> None:
        summary = {}
        for name, data in self._properties.items():
            summary[name] = {
                "dataset": data.spec.dataset,
                "column": data.spec.column,
                "unit": data.spec.unit,
                "split_file": str(data.split_path),
                "after_element_filter": {
                    "train": len(data.train),
                    "val": len(data.val),
                    "test": len(data.test),
                },
                "excluded_by_element_filter": data.n_excluded,
                "elements": self.cfg.elements
                if isinstance(self.cfg.elements, str)
                else list(self.cfg.elements),
                "max_train": self.cfg.max_train,
                "max_val": self.cfg.max_val,
                "budget_rule": "first max_train ids of train (split order), first max_val of val",
            }
        path = self.run_dir / "data.json"
        with self.results.locked():
            previous = json.loads(path.read_text()) if path.exists() else {}
            previous.update(summary)
            _atomic_write_text(path, json.dumps(previous, indent=1))

    def graphs(self, dataset: str, ids: Sequence[Any]) -> list[Any]:
        """Crystal graphs of rows ``ids`` (built once per dataset row, reused by every fit)."""
        from crysatom_featurizers.estimators import CGCNNRegressor
        from crysatom_featurizers.graphs import CGCNN_GRAPH, structures_to_graphs

        cache = self._graphs.setdefault(dataset, {})
        missing = [i for i in ids if i not in cache]
        if missing:
            defaults = CGCNNRegressor().get_params()
            params = {**defaults, **self.cfg.cgcnn}
            frame = self.dataset(dataset)
            t0 = time.perf_counter()
            built = structures_to_graphs(
                frame.loc[missing, "structure"],
                radius=float(params["radius"]),
                max_neighbors=int(params["max_neighbors"]),
                gaussian_step=CGCNN_GRAPH.gaussian_step,
                gaussian_width=CGCNN_GRAPH.gaussian_width,
                expand_edges=False,
                allow_isolated=bool(params["allow_isolated"]),
                n_jobs=1,
            )
            cache.update(zip(missing, built))
            LOG.info(
                "built %d %s graphs in %.1f s", len(missing), dataset, time.perf_counter() - t0
            )
        return [cache[i] for i in ids]

    def targets(self, spec: PropertySpec, ids: Sequence[Any]) -> np.ndarray:
        frame = self.dataset(spec.dataset)
        return frame.loc[list(ids), spec.column].to_numpy(dtype=np.float64)

    def embedding(self, label: str, spec: str) -> Any | None:
        """The embedding of a spec, or None (with a note) when it is not available."""
        if label not in self._embeddings:
            try:
                self._embeddings[label] = load_embedding(spec)
                self.clear_note(f"embedding {label}")
            except Exception as exc:  # unavailable files, unknown names
                self.note(f"embedding {label}", f"skipped, not available: {exc}")
                self._embeddings[label] = None
        return self._embeddings[label]

    # ---- row writing ----------------------------------------------------------------------

    def _wanted(self, label: str) -> bool:
        """Whether ``--embeddings`` (if given) selects ``label``."""
        return self.only_embeddings is None or label in self.only_embeddings

    def _is_done(
        self, experiment: str, prop: str, label: str, seed: int, frac: float, n_train: int
    ) -> bool:
        """Whether the row exists for the current vectors of ``label``.

        A row computed from an older vector file of the same label (another checksum) is
        stale: it is removed from ``results.csv`` and the fit runs again.
        """
        key = (experiment, prop, label, int(seed), int(n_train))
        if key not in self._done:
            return False
        emb = self._embeddings.get(label)
        if emb is None or self._done[key] == str(emb.checksum):
            return True
        removed = self.results.drop_rows(
            lambda f: (
                (f["experiment"] == experiment)
                & (f["property"] == prop)
                & (f["embedding"] == label)
                & (f["seed"].astype(int) == int(seed))
                & (f["n_train"].astype(int) == int(n_train))
            )
        )
        LOG.info(
            "%s: %d row(s) from other vectors (checksum %s, now %s) removed; refitting",
            _run_id(experiment, prop, label, seed, frac, n_train if _sized(experiment) else None),
            removed,
            self._done[key],
            emb.checksum,
        )
        del self._done[key]
        return False

    def _record(self, row: dict[str, Any]) -> None:
        row["finished_at"] = _dt.datetime.now().isoformat(timespec="seconds")
        self.results.append(row)
        self.clear_note(_row_run_id(row))
        self._done[
            (
                row["experiment"],
                row["property"],
                row["embedding"],
                int(row["seed"]),
                int(row["n_train"]),
            )
        ] = str(row["embedding_checksum"])
        if not isinstance(row.get("reused_from"), str):
            self._by_key[row["run_key"]] = row
        LOG.info(
            "%s | %s | %s | seed %s | frac %g: MAE %.4g %s (%.0f s)",
            row["experiment"],
            row["property"],
            row["embedding"],
            row["seed"],
            row["train_fraction"],
            row["test_mae"],
            row["unit"],
            row["fit_seconds"],
        )

    def _reuse(self, key: str, experiment: str, label: str, fraction: float) -> bool:
        """Copy a finished identical fit (same run key) into ``experiment``."""
        source = self._by_key.get(key)
        if source is None:
            return False
        row = dict(source)
        source_id = _row_run_id(source)
        target_id = _run_id(
            experiment,
            str(row["property"]),
            label,
            int(row["seed"]),
            fraction,
            int(row["n_train"]) if _sized(experiment) else None,
        )
        for folder, suffix in (("histories", ".csv"), ("predictions", ".csv.gz")):
            src = self.run_dir / folder / f"{source_id}{suffix}"
            if src.exists():
                shutil.copyfile(src, self.run_dir / folder / f"{target_id}{suffix}")
        row.update(
            experiment=experiment, embedding=label, train_fraction=fraction, reused_from=source_id
        )
        self._record(row)
        return True

    def _save_predictions(self, run_id: str, seed: int, ids, y_true, y_pred) -> None:
        mode = self.cfg.save_predictions
        if mode == "none" or (mode == "first_seed" and seed != self.cfg.seeds[0]):
            return
        folder = self.run_dir / "predictions"
        folder.mkdir(exist_ok=True)
        pd.DataFrame({"id": list(ids), "y_true": y_true, "y_pred": y_pred}).to_csv(
            folder / f"{run_id}.csv.gz", index=False, float_format="%.6g"
        )

    # ---- CGCNN experiments ----------------------------------------------------------------

    def _cgcnn_jobs(
        self, experiment: str
    ) -> tuple[list[tuple[str, str]], list[tuple[float, int | None, list[int]]]]:
        """(label, spec) pairs and training budgets of a CGCNN experiment.

        A budget is ``(fraction, size, seeds)``: ``size`` is None for a fraction of
        ``max_train``, else the number of training crystals (the learning curve, whose small
        sizes may have more seeds).
        """
        cfg = self.cfg
        seeds = list(cfg.seeds)
        if experiment == "comparison":
            return [(spec_label(s), s) for s in cfg.embeddings], [(1.0, None, seeds)]
        if experiment == "dimension":
            return [(spec_label(s), s) for s in cfg.dimension_embeddings], [(1.0, None, seeds)]
        if experiment == "ssl":
            return [(f"crysatom_ssl_{k}", v) for k, v in cfg.ssl_vectors.items()], [
                (1.0, None, seeds)
            ]
        if experiment == "scarce":
            specs = cfg.scarce.get("embeddings", cfg.embeddings)
            fractions = [float(f) for f in cfg.scarce.get("fractions", [0.05, 0.2, 0.6])]
            return [(spec_label(s), s) for s in specs], [(f, None, seeds) for f in fractions]
        if experiment == "curve":
            cc = cfg.curve
            specs = cc.get("embeddings", cfg.embeddings)
            seeds = [int(x) for x in cc.get("seeds", seeds)]
            small = [int(x) for x in cc.get("small_seeds", seeds)]
            small_max = int(cc.get("small_max", 300))
            budgets = [
                (math.nan, int(n), small if int(n) <= small_max else seeds)
                for n in cc.get("sizes", [100, 300, 1000])
            ]
            return [(spec_label(s), s) for s in specs], budgets
        raise ValueError(experiment)

    def _claim(self, run_id: str) -> bool:
        """Claim a fit for this process, so processes sharing a run directory split the work.

        A claim is a file holding the owner's process id; one left by a process that is no
        longer running is taken over.
        """
        folder = self.run_dir / "claims"
        folder.mkdir(exist_ok=True)
        path = folder / run_id
        with self.results.locked():
            if path.exists():
                try:
                    owner = int(path.read_text().strip() or 0)
                except (OSError, ValueError):
                    owner = 0
                if owner and owner != os.getpid():
                    try:
                        os.kill(owner, 0)
                        return False  # another live process fits it
                    except ProcessLookupError:
                        pass
                    except PermissionError:
                        return False
            path.write_text(str(os.getpid()))
        return True

    def _release(self, run_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / "claims" / run_id).unlink()

    def run_cgcnn_experiment(self, experiment: str) -> None:
        """Fit CGCNN for every budget x seed x property x embedding of ``experiment``."""
        jobs, budgets = self._cgcnn_jobs(experiment)
        if not jobs:
            self.note(f"experiment {experiment}", "skipped: the config lists no embeddings")
            return
        available = [
            (label, spec)
            for label, spec in jobs
            if self._wanted(label) and self.embedding(label, spec)
        ]
        if not available:
            self.note(f"experiment {experiment}", "skipped: none of its embeddings is available")
            return
        self.clear_note(f"experiment {experiment}")
        # Budgets and seeds outside properties: a run stopped early by --max-minutes still has
        # every property and embedding of the smallest budgets and first seeds.
        for fraction, size, seeds in budgets:
            for seed in seeds:
                for spec in self.properties_for(experiment):
                    data = self.property_data(spec)
                    n_train = len(data.budget(self.cfg.max_train, fraction, size))
                    frac = fraction if size is None else n_train / len(data.train)
                    for label, _ in available:
                        if self._is_done(experiment, spec.name, label, seed, frac, n_train):
                            continue
                        self._check_time()
                        run_id = _run_id(experiment, spec.name, label, seed, frac, size)
                        if not self._claim(run_id):
                            continue
                        try:
                            self._load_done()  # another process may have finished it
                            if self._is_done(experiment, spec.name, label, seed, frac, n_train):
                                continue
                            self._fit_cgcnn(experiment, data, label, seed, frac, size)
                        except Exception as exc:  # one failing fit must not stop the run
                            LOG.exception("fit failed")
                            self.note(run_id, f"failed: {type(exc).__name__}: {exc}")
                        finally:
                            self._release(run_id)

    def _fit_cgcnn(
        self,
        experiment: str,
        data: PropertyData,
        label: str,
        seed: int,
        fraction: float,
        size: int | None = None,
    ) -> None:
        spec = data.spec
        emb = self._embeddings[label]
        train = data.budget(self.cfg.max_train, fraction, size)
        val = data.val if self.cfg.max_val is None else data.val[: self.cfg.max_val]
        test = data.test
        params = dict(self.cfg.cgcnn)
        key = _run_key(
            {
                "model": "cgcnn",
                "property": spec.name,
                "dataset": spec.dataset,
                "embedding": emb.checksum,
                "seed": seed,
                "train": hashlib.sha256(json.dumps(train, default=str).encode()).hexdigest(),
                "val": len(val),
                "test": len(test),
                "params": params,
                "split": str(data.split_path.name),
            }
        )
        if self._reuse(key, experiment, label, fraction):
            return
        run_id = _run_id(experiment, spec.name, label, seed, fraction, size)
        g_train = self.graphs(spec.dataset, train)
        y_train = self.targets(spec, train)
        g_val = self.graphs(spec.dataset, val)
        y_val = self.targets(spec, val)
        g_test = self.graphs(spec.dataset, test)
        y_test = self.targets(spec, test)
        LOG.info(
            "fit %s (n_train %d, n_val %d, n_test %d)", run_id, len(train), len(val), len(test)
        )
        from crysatom_featurizers.estimators import CGCNNRegressor

        # every embedding and seed is selected on the same, fixed validation crystals
        model = CGCNNRegressor(embedding=emb, random_state=seed, **params)
        if not val:  # no validation crystals: the last epoch is kept
            model.set_params(validation_fraction=0)
        t0 = time.perf_counter()
        model.fit(g_train, y_train, X_val=g_val if val else None, y_val=y_val if val else None)
        fit_seconds = time.perf_counter() - t0
        y_pred = model.predict(g_test)
        folder = self.run_dir / "histories"
        folder.mkdir(exist_ok=True)
        model.history_.to_csv(folder / f"{run_id}.csv", index=False, float_format="%.6g")
        self._save_predictions(run_id, seed, test, y_test, y_pred)
        self._record(
            {
                "experiment": experiment,
                "property": spec.name,
                "unit": spec.unit,
                "embedding": label,
                "dim": int(emb.dim),
                "seed": int(seed),
                "train_fraction": float(fraction),
                "n_train": len(train),
                "n_val": len(val),
                "n_test": len(test),
                **regression_scores(y_test, y_pred),
                "best_epoch": int(model.best_epoch_),
                "epochs_run": int(model.n_iter_),
                "fit_seconds": fit_seconds,
                "model": "cgcnn",
                "embedding_checksum": emb.checksum,
                "run_key": key,
                "reused_from": np.nan,
            }
        )

    # ---- matminer workflow ----------------------------------------------------------------

    def run_matminer(self) -> None:
        """Composition and structure featurizers + HistGradientBoostingRegressor."""
        from sklearn.ensemble import HistGradientBoostingRegressor
        from threadpoolctl import threadpool_limits

        from crysatom_featurizers.featurizers import (
            ElementEmbeddingCompositionFeaturizer,
            ElementEmbeddingStructureFeaturizer,
        )

        mm = self.cfg.matminer
        specs = mm.get("embeddings", self.cfg.embeddings)
        stats = tuple(mm.get("stats", ("mean", "std_dev", "min", "max", "range")))
        seeds = [int(s) for s in mm.get("seeds", self.cfg.seeds)]
        max_train = mm.get("max_train", self.cfg.max_train)
        hgb_params = dict(mm.get("hgb", {}))
        extras = list(mm.get("structure_extras", list(STRUCTURE_EXTRAS)))
        workflows = list(mm.get("workflows", ["composition", "structure"]))
        n_threads = mm.get("n_threads")
        unknown = sorted(set(extras) - set(STRUCTURE_EXTRAS))
        if unknown:
            raise ValueError(f"unknown structure_extras {unknown}; known {list(STRUCTURE_EXTRAS)}")
        available = [(spec_label(s), s) for s in specs]
        available = [
            (lab, s) for lab, s in available if self._wanted(lab) and self.embedding(lab, s)
        ]
        inputs: dict[tuple, tuple] = {}

        def prepare(spec: PropertySpec, size: int | None) -> tuple:
            """Training/test rows, targets, structures, compositions and descriptors."""
            if (spec.name, size) not in inputs:
                data = self.property_data(spec)
                train, test = data.budget(max_train, 1.0, size), data.test
                frame = self.dataset(spec.dataset)
                s_train = list(frame.loc[train, "structure"])
                s_test = list(frame.loc[test, "structure"])
                inputs[(spec.name, size)] = (
                    train,
                    test,
                    self.targets(spec, train),
                    self.targets(spec, test),
                    s_train,
                    s_test,
                    [s.composition for s in s_train],
                    [s.composition for s in s_test],
                    np.array([[STRUCTURE_EXTRAS[e](s) for e in extras] for s in s_train]),
                    np.array([[STRUCTURE_EXTRAS[e](s) for e in extras] for s in s_test]),
                )
            return inputs[(spec.name, size)]

        # (experiment, workflow, size): the max_train budget of each workflow, then the
        # composition workflow on the learning-curve sizes (experiment "curve_matminer").
        plans: list[tuple[str, str, int | None]] = [
            (f"matminer_{w}", w, None) for w in workflows if w in mm.get("at_max_train", workflows)
        ]
        plans += [("curve_matminer", "composition", int(n)) for n in mm.get("curve_sizes", [])]
        # Workflows outside properties: a run stopped by --max-minutes has the first workflow
        # on every property.
        for experiment, workflow, size in plans:
            for spec in self.properties_for("matminer"):
                data = self.property_data(spec)
                n_train = len(data.budget(max_train, 1.0, size))
                frac = 1.0 if size is None else n_train / len(data.train)
                for label, _ in available:
                    todo = [
                        s
                        for s in seeds
                        if not self._is_done(experiment, spec.name, label, s, frac, n_train)
                    ]
                    if not todo:
                        continue
                    self._check_time()
                    (
                        train,
                        test,
                        y_train,
                        y_test,
                        s_train,
                        s_test,
                        comp_train,
                        comp_test,
                        extra_train,
                        extra_test,
                    ) = prepare(spec, size)
                    emb = self._embeddings[label]
                    t0 = time.perf_counter()
                    try:
                        if workflow == "composition":
                            feat = ElementEmbeddingCompositionFeaturizer(emb, stats=stats)
                            x_train = feat.featurize_many(comp_train)
                            x_test = feat.featurize_many(comp_test)
                        elif workflow == "structure":
                            feat = ElementEmbeddingStructureFeaturizer(emb, stats=stats)
                            x_train = np.hstack([feat.featurize_many(s_train), extra_train])
                            x_test = np.hstack([feat.featurize_many(s_test), extra_test])
                        else:
                            raise ValueError(f"unknown matminer workflow {workflow!r}")
                    except ValueError as exc:  # e.g. an element the embedding lacks
                        self.note(
                            _run_id(experiment, spec.name, label, todo[0], frac, size),
                            f"failed: {type(exc).__name__}: {exc}",
                        )
                        continue
                    featurize_s = time.perf_counter() - t0
                    for seed in todo:
                        self._check_time()
                        model = HistGradientBoostingRegressor(random_state=seed, **hgb_params)
                        t1 = time.perf_counter()
                        with threadpool_limits(limits=n_threads):
                            model.fit(x_train, y_train)
                            y_pred = model.predict(x_test)
                        fit_seconds = time.perf_counter() - t1 + featurize_s
                        run_id = _run_id(experiment, spec.name, label, seed, frac, size)
                        self._save_predictions(run_id, seed, test, y_test, y_pred)
                        self._record(
                            {
                                "experiment": experiment,
                                "property": spec.name,
                                "unit": spec.unit,
                                "embedding": label,
                                "dim": int(emb.dim),
                                "seed": int(seed),
                                "train_fraction": frac,
                                "n_train": len(train),
                                "n_val": 0,
                                "n_test": len(test),
                                **regression_scores(y_test, y_pred),
                                "best_epoch": np.nan,
                                "epochs_run": int(model.n_iter_),
                                "fit_seconds": fit_seconds,
                                "model": f"hgb_{workflow}",
                                "embedding_checksum": emb.checksum,
                                "run_key": _run_key(
                                    {
                                        "model": experiment,
                                        "property": spec.name,
                                        "embedding": emb.checksum,
                                        "seed": seed,
                                        "n_train": len(train),
                                        "hgb": hgb_params,
                                    }
                                ),
                                "reused_from": np.nan,
                            }
                        )

    # ---- probe ----------------------------------------------------------------------------

    def run_probe(self) -> None:
        """Element-property probe (``training/probe.py``) of the configured embeddings."""
        from training import probe as probe_mod

        pc = self.cfg.probe
        specs = list(pc.get("embeddings", self.cfg.embeddings))
        settings = {
            "n_splits": int(pc.get("n_splits", 5)),
            "n_repeats": int(pc.get("n_repeats", 3)),
            "n_estimators": int(pc.get("n_estimators", 200)),
            "models": list(pc.get("models", probe_mod.MODELS)),
        }
        out = self.run_dir / "probe"
        long_path = out / "probe_long.csv"
        done = set()
        if self.resume and long_path.exists():
            done = set(pd.read_csv(long_path)["embedding"])
        elif long_path.exists():
            long_path.unlink()
        for spec in specs:
            label = spec_label(spec)
            emb = self.embedding(label, spec)
            if emb is None or label in done:
                continue
            self._check_time()
            t0 = time.perf_counter()
            long = probe_mod.probe_embedding(
                emb,
                n_repeats=settings["n_repeats"],
                n_splits=settings["n_splits"],
                n_estimators=settings["n_estimators"],
                models=settings["models"],
            )
            long.insert(0, "dim", int(emb.dim))
            long.insert(0, "embedding", label)
            probe_mod.write_results(
                long,
                out,
                {
                    **settings,
                    "elements": f"COMMON_ELEMENTS ({len(probe_mod.COMMON_ELEMENTS)})",
                    "date": _dt.date.today().isoformat(),
                },
                merge=True,
            )
            LOG.info(
                "probe %s: mean R² %.3f (%.0f s)",
                label,
                long["r2_best"].mean(),
                time.perf_counter() - t0,
            )

    # ---- figures --------------------------------------------------------------------------

    def run_figures(self) -> None:
        """Embedding maps, similarity heatmaps, parity plots, learning curves, MAE bars."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from crysatom_featurizers import plotting

        fc = self.cfg.figures
        folder = self.run_dir / "figures"
        folder.mkdir(exist_ok=True)
        methods = list(fc.get("methods", ["pca", "tsne"]))
        colorings = list(fc.get("color_by", ["group", "block"]))
        for spec in fc.get("embeddings", self.cfg.embeddings):
            label = spec_label(spec)
            emb = self.embedding(label, spec)
            if emb is None:
                continue
            maps = (folder / f"map_{label}.png", folder / f"similarity_{label}.png")
            if self.resume and all(p.exists() for p in maps):
                continue
            self._check_time()
            fig, axes = plt.subplots(
                len(colorings),
                len(methods),
                figsize=(8.5 * len(methods), 6.5 * len(colorings)),
                layout="constrained",
                squeeze=False,
            )
            for i, color_by in enumerate(colorings):
                for j, method in enumerate(methods):
                    plotting.plot_embedding_map(
                        emb,
                        method=method,
                        color_by=color_by,
                        ax=axes[i, j],
                        legend=j == len(methods) - 1,
                    )
            fig.savefig(folder / f"map_{label}.png", dpi=int(fc.get("dpi", 110)))
            plt.close(fig)
            ax = plotting.plot_similarity_heatmap(emb)
            ax.figure.savefig(folder / f"similarity_{label}.png", dpi=int(fc.get("dpi", 110)))
            plt.close(ax.figure)
        self._run_figures(plt, plotting, folder, fc)

    def _run_figures(self, plt, plotting, folder: Path, fc: dict[str, Any]) -> None:
        frame = self.results.read()
        if frame.empty:
            return
        first_seed = self.cfg.seeds[0]
        dpi = int(fc.get("dpi", 110))
        for (experiment, prop), group in frame.groupby(["experiment", "property"], sort=False):
            runs = group[(group["seed"] == first_seed) & (group["train_fraction"] == 1.0)]
            labels = list(dict.fromkeys(runs["embedding"]))
            unit = str(group["unit"].iloc[0])
            pred_files = [
                (
                    lab,
                    self.run_dir
                    / "predictions"
                    / f"{_run_id(experiment, prop, lab, first_seed, 1.0)}.csv.gz",
                )
                for lab in labels
            ]
            pred_files = [(lab, p) for lab, p in pred_files if p.exists()]
            if pred_files and fc.get("parity", True):
                fig, axes = _grid(plt, len(pred_files), 4.2)
                for ax, (lab, path) in zip(axes, pred_files):
                    pred = pd.read_csv(path)
                    plotting.plot_parity(
                        pred["y_true"], pred["y_pred"], ax=ax, units=unit, label=prop, title=lab
                    )
                for ax in axes[len(pred_files) :]:
                    ax.set_visible(False)
                fig.suptitle(f"{experiment}: {prop}, test set, seed {first_seed}")
                fig.savefig(folder / f"parity_{experiment}_{prop}.png", dpi=dpi)
                plt.close(fig)
            hist_files = [
                (
                    lab,
                    self.run_dir
                    / "histories"
                    / f"{_run_id(experiment, prop, lab, first_seed, 1.0)}.csv",
                )
                for lab in labels
            ]
            hist_files = [(lab, p) for lab, p in hist_files if p.exists()]
            if hist_files and fc.get("learning_curves", True):
                fig, axes = _grid(plt, len(hist_files), 4.2)
                best = dict(zip(runs["embedding"], runs["best_epoch"]))
                for ax, (lab, path) in zip(axes, hist_files):
                    fitted = SimpleNamespace(history_=pd.read_csv(path))
                    if np.isfinite(best.get(lab, np.nan)):
                        fitted.best_epoch_ = int(best[lab])
                    plotting.plot_learning_curve(fitted, ax=ax, units=unit)
                    ax.set_title(lab)
                for ax in axes[len(hist_files) :]:
                    ax.set_visible(False)
                fig.suptitle(f"{experiment}: {prop}, seed {first_seed}")
                fig.savefig(folder / f"learning_{experiment}_{prop}.png", dpi=dpi)
                plt.close(fig)
        summary = summarize(frame)
        for experiment, group in summary.groupby("experiment", sort=False):
            full = group[group["train_fraction"] == 1.0]
            props = list(dict.fromkeys(full["property"]))
            if not props:
                continue
            fig, axes = _grid(plt, len(props), 4.0)
            for ax, prop in zip(axes, props):
                rows = full[full["property"] == prop]
                ax.barh(rows["embedding"], rows["mae_mean"], xerr=rows["mae_std"].fillna(0))
                ax.invert_yaxis()
                ax.set_xlabel(f"test MAE ({rows['unit'].iloc[0]})")
                ax.set_title(prop)
            for ax in axes[len(props) :]:
                ax.set_visible(False)
            fig.suptitle(f"{experiment}: test MAE, mean ± std over seeds")
            fig.savefig(folder / f"mae_{experiment}.png", dpi=dpi)
            plt.close(fig)
        scarce = summary[summary["experiment"] == "scarce"]
        if not scarce.empty:
            props = list(dict.fromkeys(scarce["property"]))
            fig, axes = _grid(plt, len(props), 4.2)
            for ax, prop in zip(axes, props):
                rows = scarce[scarce["property"] == prop]
                for lab, sub in rows.groupby("embedding", sort=False):
                    sub = sub.sort_values("n_train")
                    ax.errorbar(
                        sub["n_train"], sub["mae_mean"], yerr=sub["mae_std"].fillna(0), label=lab
                    )
                ax.set_xscale("log")
                ax.set_xlabel("training crystals")
                ax.set_ylabel(f"test MAE ({rows['unit'].iloc[0]})")
                ax.set_title(prop)
                ax.legend(fontsize=7)
            for ax in axes[len(props) :]:
                ax.set_visible(False)
            fig.savefig(folder / "scarce.png", dpi=dpi)
            plt.close(fig)

    # ---- driver ---------------------------------------------------------------------------

    def run(self, experiments: Sequence[str], argv: Sequence[str] = ()) -> None:
        """Run ``experiments`` in order, then write the report."""
        self.write_run_info(experiments, argv)
        if not self.resume:
            if self.only_properties is not None or self.only_embeddings is not None:
                raise ValueError(
                    "--properties/--embeddings need --resume (rows of the others stay)"
                )
            dropped = self.results.drop_experiments(_result_experiments(experiments))
            if dropped:
                LOG.info("removed %d earlier rows of %s (no --resume)", dropped, experiments)
        self._load_done()
        try:
            for experiment in experiments:
                LOG.info("=== experiment %s ===", experiment)
                t0 = time.perf_counter()
                if experiment in CGCNN_EXPERIMENTS:
                    self.run_cgcnn_experiment(experiment)
                elif experiment == "matminer":
                    self.run_matminer()
                elif experiment == "probe":
                    self.run_probe()
                elif experiment == "figures":
                    self.run_figures()
                else:
                    raise ValueError(f"unknown experiment {experiment!r}")
                LOG.info("experiment %s done in %.0f s", experiment, time.perf_counter() - t0)
        except TimeBudgetExceeded:
            LOG.warning("time budget spent: stopping; rerun with --resume to continue")
        finally:
            write_report(self.run_dir, self.cfg, self.notes)
            self._finish_run_info()


def _result_experiments(experiments: Sequence[str]) -> list[str]:
    out = []
    for e in experiments:
        if e == "matminer":
            out += ["matminer_composition", "matminer_structure", "curve_matminer"]
        elif e in CGCNN_EXPERIMENTS:
            out.append(e)
    return out


def _grid(plt, n: int, size: float):
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(size * cols, size * rows), layout="constrained", squeeze=False
    )
    return fig, list(axes.ravel())


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds, and the change against ``cgcnn`` in %.

    The baseline of a row is the ``cgcnn`` row of the same model family (CGCNN, or the same
    matminer workflow), property and train fraction, taken from the same experiment or, for
    the dimension and SSL ablations, from the comparison experiment.
    """
    if frame.empty:
        return pd.DataFrame()
    keys = ["experiment", "model", "property", "unit", "embedding", "dim", "train_fraction"]
    grouped = frame.groupby(keys, sort=False, dropna=False)
    summary = grouped.agg(
        mae_mean=("test_mae", "mean"),
        mae_std=("test_mae", "std"),
        rmse_mean=("test_rmse", "mean"),
        r2_mean=("test_r2", "mean"),
        n_seeds=("seed", "nunique"),
        n_train=("n_train", "first"),
        n_val=("n_val", "first"),
        n_test=("n_test", "first"),
        epochs_run=("epochs_run", "mean"),
        fit_seconds=("fit_seconds", "mean"),
    ).reset_index()
    base = summary[summary["embedding"] == BASELINE]
    lookup = {
        (r.experiment, r.model, r.property, r.train_fraction): (r.mae_mean, r.mae_std)
        for r in base.itertuples()
    }
    rel, base_mae, base_std = [], [], []
    for r in summary.itertuples():
        ref = lookup.get((r.experiment, r.model, r.property, r.train_fraction))
        if ref is None:
            ref = lookup.get(("comparison", r.model, r.property, r.train_fraction))
        if ref is None:
            rel.append(math.nan)
            base_mae.append(math.nan)
            base_std.append(math.nan)
        else:
            rel.append(100.0 * (r.mae_mean - ref[0]) / ref[0])
            base_mae.append(ref[0])
            base_std.append(ref[1])
    summary["rel_vs_cgcnn_pct"] = rel
    summary["cgcnn_mae"] = base_mae
    summary["cgcnn_std"] = base_std
    return summary


def _verdict(row) -> str:
    """win / tie / loss against cgcnn: a tie when the gap is within the seed noise."""
    if not np.isfinite(row.cgcnn_mae) or row.embedding == BASELINE:
        return ""
    gap = row.mae_mean - row.cgcnn_mae
    if not np.isfinite(row.mae_std) and not np.isfinite(row.cgcnn_std):
        return "lower" if gap < 0 else "higher"  # one model each: no seed spread to judge by
    noise = math.sqrt(np.nan_to_num(row.mae_std) ** 2 + np.nan_to_num(row.cgcnn_std) ** 2)
    if abs(gap) <= noise:
        return "tie"
    return "win" if gap < 0 else "loss"


def _cell(row) -> str:
    std = "" if not np.isfinite(row.mae_std) else f" ± {row.mae_std:.3g}"
    if row.embedding == BASELINE:
        rel = " (ref.)"
    elif np.isfinite(row.rel_vs_cgcnn_pct):
        rel = f" ({row.rel_vs_cgcnn_pct:+.1f}%)"
    else:
        rel = ""
    return f"{row.mae_mean:.4g}{std}{rel}"


def markdown_tables(summary: pd.DataFrame) -> list[str]:
    """One table per experiment: rows embeddings, columns properties (and fractions)."""
    lines: list[str] = []
    titles = {
        "comparison": "Experiment 1: embeddings as CGCNN input features",
        "dimension": "Experiment 2: CrysAtom dimension",
        "ssl": "Experiment 3: self-supervised loss of the pretraining",
        "scarce": "Experiment 4: data-scarce regime (fraction of the training budget)",
        "matminer_composition": (
            "Experiment 5a: composition featurizer (5 statistics) + HistGradientBoosting"
        ),
        "matminer_structure": (
            "Experiment 5b: structure featurizer site statistics + structure descriptors "
            "+ HistGradientBoosting"
        ),
    }
    order = [*CGCNN_EXPERIMENTS, "matminer_composition", "matminer_structure"]
    present = list(dict.fromkeys(summary["experiment"]))
    present = [e for e in order if e in present] + [e for e in present if e not in order]
    for experiment in present:
        group = summary[summary["experiment"] == experiment].copy()
        group["column"] = [
            p if f == 1.0 else f"{p} @{f:g} (n={n})"
            for p, f, n in zip(group["property"], group["train_fraction"], group["n_train"])
        ]
        columns = list(dict.fromkeys(group["column"]))
        units = dict(zip(group["column"], group["unit"]))
        embeddings = list(dict.fromkeys(group["embedding"]))
        lines += [f"### {titles.get(experiment, experiment)}", ""]
        lines.append(
            "| embedding | dim | " + " | ".join(f"{c} ({units[c]})" for c in columns) + " |"
        )
        lines.append("|---|---:|" + "---:|" * len(columns))
        for emb in embeddings:
            rows = group[group["embedding"] == emb]
            cells = []
            for c in columns:
                match = rows[rows["column"] == c]
                cells.append(_cell(next(match.itertuples())) if len(match) else "–")
            dim = rows["dim"].iloc[0]
            lines.append(f"| {emb} | {int(dim)} | " + " | ".join(cells) + " |")
        sizes = group.drop_duplicates("column")[["column", "n_train", "n_val", "n_test"]]
        seeds = sorted(set(group["n_seeds"]))
        lines += [
            "",
            "Rows: "
            + "; ".join(
                f"{r.column}: {r.n_train} train / {r.n_val} val / {r.n_test} test"
                for r in sizes.itertuples()
            )
            + f". Seeds per cell: {', '.join(map(str, seeds))}.",
            "",
        ]
        verdicts = [
            (r.property, r.train_fraction, r.embedding, _verdict(r))
            for r in group.itertuples()
            if str(r.embedding).startswith("crysatom") and _verdict(r)
        ]
        if verdicts:
            text = "; ".join(
                f"{emb} on {prop}{'' if f == 1.0 else f' @{f:g}'}: {v}"
                for prop, f, emb, v in verdicts
            )
            lines += [
                "CrysAtom against cgcnn (tie = gap within the seed std; lower/higher: one "
                f"model each, no seed spread to judge by): {text}.",
                "",
            ]
    return lines


def write_report(run_dir: Path, cfg: BenchConfig, notes: dict[str, str]) -> Path:
    """Write ``summary.csv`` and ``results.md`` from ``results.csv`` (and ``probe/``)."""
    run_dir = Path(run_dir)
    frame = ResultsFile(run_dir / "results.csv").read()
    summary = summarize(frame)
    if not summary.empty:
        summary.to_csv(run_dir / "summary.csv", index=False, float_format="%.6g")
    lines = [
        f"# Benchmark `{cfg.name}`",
        "",
        cfg.description.strip(),
        "",
        "Test MAE, mean ± standard deviation over model seeds; in brackets the change against "
        "the `cgcnn` input features (CGCNN's own element features, the 'vanilla' baseline) "
        "under the same protocol, in % (negative: lower error than cgcnn). Every embedding of a "
        "table is scored on the same test rows. Produced by `python -m training.benchmark`; "
        "the exact config is `config.yaml`, commit and hardware are in `run_info.json`, the "
        "rows per property in `data.json`.",
        "",
    ]
    if cfg.cgcnn:
        lines += [
            "CGCNN settings (identical for every embedding): "
            + ", ".join(f"{k}={v}" for k, v in sorted(cfg.cgcnn.items()))
            + f"; max_train={cfg.max_train}, max_val={cfg.max_val}, seeds={cfg.seeds}.",
            "",
        ]
    if not summary.empty:
        lines += markdown_tables(summary)
    paper_rows = [p for p in cfg.properties if p.name in PAPER_MAE]
    if paper_rows and "comparison" in set(frame.get("experiment", [])):
        lines += [
            "### The paper's numbers (not ours: another protocol)",
            "",
            "CrysAtom paper, Tables 5 and 7: 1000 epochs on a GPU, all training data, split "
            "seed 123. Not comparable with the tables above unless the same protocol was run.",
            "",
            "| property | CGCNN vanilla (paper) | CGCNN + CrysAtom (paper) |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {p.name} ({p.unit}) | {PAPER_MAE[p.name][0]} | {PAPER_MAE[p.name][1]} |"
            for p in paper_rows
        ]
        lines.append("")
    probe_md = run_dir / "probe" / "probe_summary.csv"
    if probe_md.exists():
        wide = pd.read_csv(probe_md)
        lines += [
            "### Experiment 6: element-property probe (cross-validated R², see probe/probe.md)",
            "",
            "| " + " | ".join(wide.columns) + " |",
            "|" + "---|" * len(wide.columns),
        ]
        for row in wide.itertuples(index=False):
            lines.append(
                "| "
                + " | ".join(
                    "–"
                    if (isinstance(v, float) and math.isnan(v))
                    else (f"{v:.3f}" if isinstance(v, float) else str(v))
                    for v in row
                )
                + " |"
            )
        lines.append("")
    if notes:
        lines += ["### Skipped or failed", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(notes.items())]
        lines.append("")
    lines += [
        "The downstream crystals overlap with the unlabelled pretraining corpus of the CrysAtom "
        "vectors (JARVIS + MP structures), as in the paper; the targets are never used in "
        "pretraining.",
        "",
    ]
    path = run_dir / "results.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m training.benchmark",
        description="Compare element embeddings downstream (CGCNN, matminer workflow, probe).",
    )
    parser.add_argument("--config", required=True, help="YAML file (training/configs/bench_*)")
    parser.add_argument(
        "--experiments",
        default=None,
        help=f"comma-separated subset of {','.join(EXPERIMENTS)} (default: the config's list)",
    )
    parser.add_argument("--resume", action="store_true", help="skip rows already in results.csv")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop launching new fits after this many minutes (resume later)",
    )
    parser.add_argument("--out-dir", default="training/results", help="parent of <name>/")
    parser.add_argument("--name", default=None, help="run name (default: the config's name)")
    parser.add_argument("--data-dir", default=None, help="folder of the shared json.gz files")
    parser.add_argument(
        "--properties",
        default=None,
        help="comma-separated subset of the config's properties (needs --resume); lets two "
        "processes share one run directory",
    )
    parser.add_argument(
        "--embeddings",
        default=None,
        help="comma-separated subset of embedding labels for the CGCNN and matminer "
        "experiments (needs --resume), e.g. to run the baselines while new vectors train",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite results.md from results.csv"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout
    )
    cfg = BenchConfig.from_yaml(args.config)
    if args.name:
        cfg.name = args.name
    run_dir = _resolve_path(args.out_dir) / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "benchmark.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    experiments = (
        [e.strip() for e in args.experiments.split(",") if e.strip()]
        if args.experiments
        else list(cfg.experiments)
    )
    bad = sorted(set(experiments) - set(EXPERIMENTS))
    if bad:
        parser.error(f"unknown experiments {bad}; expected some of {','.join(EXPERIMENTS)}")
    properties = (
        [p.strip() for p in args.properties.split(",") if p.strip()] if args.properties else None
    )
    bench = Benchmark(
        cfg,
        run_dir,
        resume=args.resume,
        max_minutes=args.max_minutes,
        data_dir=args.data_dir,
        properties=properties,
        embeddings=(
            [e.strip() for e in args.embeddings.split(",") if e.strip()]
            if args.embeddings
            else None
        ),
    )
    try:
        if args.report_only:
            write_report(run_dir, cfg, bench.notes)
        else:
            bench.run(experiments, argv=sys.argv if argv is None else list(argv))
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    print(f"results in {run_dir}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
