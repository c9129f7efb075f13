"""Benchmark settings: experiments, properties and the YAML config."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.corpus import REPO_ROOT, SHARED_SOURCES

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


#: CGCNN experiments and their model family in ``results.csv``.
CGCNN_EXPERIMENTS = ("comparison", "dimension", "ssl", "scarce", "curve")

#: Keys of the ``curve`` section: training sizes (nested prefixes of the training list),
#: embeddings, seeds (``small_seeds`` at sizes up to ``small_max``), and the embedding that the
#: report judges against ``references`` with paired seeds; ``candidates`` (labels) are ranked
#: on validation MAE at ``select_sizes`` to choose the shipped vectors (``label_candidates`` at
#: ``label_select_sizes``: the label-trained vectors of ``training.supervised``; ``label_report``
#: names the options of :mod:`training.benchmark.label_vectors`). ``variants`` maps a
#: label to CGCNNRegressor parameters that replace those of the ``cgcnn`` section for that
#: label (``embedding`` included): transfer from a pretrained encoder (``finetune``,
#: ``distill``, ``distill_delta``) on the same curve. ``transfer`` names the labels of the
#: transfer report: ``vanilla``, ``vectors``, ``finetune`` (labels) and ``distill``,
#: ``distill_vectors`` (lists of labels, one per delta, the delta chosen on validation).
#: ``alignn_report`` and ``batch_report`` name the labels of :mod:`training.benchmark.alignn`
#: and :mod:`training.benchmark.full_data`; ``potential_report`` those of the graph-network
#: options of :mod:`training.benchmark.potential_report` (site vectors, distillation).
CURVE_KEYS = (
    "sizes",
    "embeddings",
    "seeds",
    "small_seeds",
    "small_max",
    "target",
    "references",
    "candidates",
    "select_sizes",
    "label_candidates",
    "label_select_sizes",
    "label_report",
    "alignn_report",
    "batch_report",
    "potential_report",
    "variants",
    "transfer",
)
BASELINE = "cgcnn"

#: The CrysAtom paper's test MAE (Tables 5 and 7; 1000 epochs on a GPU, full data, split seed
#: 123), from ``../shared/data/README.md``: property -> (CGCNN vanilla, CGCNN + CrysAtom).
PAPER_MAE: dict[str, tuple[float, float]] = {
    "formation_energy_peratom": (0.063, 0.040),
    "mbj_bandgap": (0.410, 0.333),
    "bulk_modulus_kv": (14.47, 12.37),
    "shear_modulus_gv": (11.75, 10.45),
}


DATASET_IDS = {**{k: v.id_column for k, v in SHARED_SOURCES.items()}, "synthetic": "synthetic_id"}


def resolve_path(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


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
    # learning curve: see CURVE_KEYS
    curve: dict[str, Any] = field(default_factory=dict)
    cgcnn: dict[str, Any] = field(default_factory=dict)
    matminer: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    experiment_properties: dict[str, list[str]] = field(default_factory=dict)
    save_predictions: str = "first_seed"  # first_seed | all | none
    # every GNN fit writes a checkpoint after each epoch (<run_dir>/checkpoints/<fit>.pt); a
    # fit cut off by a stopped process resumes from it on --resume, removed once its row is in
    checkpoint_fits: bool = False
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
        if not isinstance(self.checkpoint_fits, bool):
            raise ValueError(f"checkpoint_fits must be true or false, got {self.checkpoint_fits!r}")
        if self.save_predictions not in ("first_seed", "all", "none"):
            raise ValueError("save_predictions must be first_seed, all or none")
        names = [p.name for p in self.properties]
        if len(set(names)) != len(names):
            raise ValueError(f"property names must be unique: {names}")
        for exp, props in self.experiment_properties.items():
            missing = sorted(set(props) - set(names))
            if missing:
                raise ValueError(f"experiment_properties[{exp!r}] names unknown {missing}")
        unknown = sorted(set(self.curve) - set(CURVE_KEYS))
        if unknown:
            raise ValueError(f"unknown curve keys {unknown}; known: {list(CURVE_KEYS)}")
        sizes = self.curve.get("sizes", [])
        if any(not isinstance(n, int) or isinstance(n, bool) or n < 2 for n in sizes):
            raise ValueError(f"curve sizes must be integers >= 2, got {sizes}")
        from crysatom_featurizers.estimators import available_networks, get_estimator

        fixed = {"embedding", "dim", "random_state"}  # set by every fit
        table = available_networks()
        networks = {
            name: set(get_estimator(name)().get_params()) - fixed
            for name in table.loc[table["regressor"].notna(), "name"]
        }
        allowed = networks["cgcnn"]
        wrong = sorted(set(self.cgcnn) - allowed)
        if wrong:
            raise ValueError(f"cgcnn keys {wrong} are not CGCNNRegressor parameters")
        variants = self.curve.get("variants", {}) or {}
        if not isinstance(variants, dict):
            raise ValueError("curve variants must map labels to estimator parameters")
        from crysatom_featurizers.embeddings import spec_label

        plain = {spec_label(s) for s in self.curve.get("embeddings", self.embeddings)}
        for label, params in variants.items():
            if label in plain:
                raise ValueError(
                    f"curve variant {label!r} has the label of an embedding of the curve; "
                    "give it another name"
                )
            if not isinstance(params, dict) or "embedding" not in params:
                raise ValueError(f"curve variant {label!r} must give at least an embedding")
            network = params.get("model", "cgcnn")
            if network not in networks:
                raise ValueError(
                    f"curve variant {label!r}: model must be one of {sorted(networks)}, got "
                    f"{network!r}"
                )
            wrong = sorted(set(params) - (networks[network] | {"embedding", "model"}))
            if wrong:
                name = get_estimator(network).__name__
                raise ValueError(f"curve variant {label!r}: {wrong} are not {name} parameters")

    def properties_for(self, experiment: str) -> list[PropertySpec]:
        """Properties of an experiment (all unless ``experiment_properties`` narrows them)."""
        names = self.experiment_properties.get(experiment)
        if names is None:
            return list(self.properties)
        return [p for p in self.properties if p.name in names]
