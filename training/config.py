"""Pretraining configuration: a flat dataclass loaded from YAML (``training/configs/*.yaml``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crysatom_featurizers.graphs import CGCNN_GRAPH

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class PretrainConfig:
    """Hyperparameters and run settings of CrysAtom pretraining.

    Defaults are the paper's (CrysAtom, Mukherjee et al., LoG 2024, Table 2 top block) where it
    gives them; the rest follow the reference implementation.
    """

    name: str = "paper"
    seed: int = 123

    # --- corpus -------------------------------------------------------------------------
    # "jarvis" and "mp" are the shared sets (see training/corpus.py); "smoke" is a tiny
    # built-in set of prototype structures; anything else is a path (CIF folder, json).
    corpus_sources: list[str] = field(default_factory=lambda: ["jarvis", "mp"])
    subset_size: int | None = None  # None: the whole corpus
    subset_seed: int = 0
    max_sites: int | None = None  # drop larger crystals (subset only)
    # Crystals the element vectors are averaged over after training: "full" is the whole
    # de-duplicated corpus of corpus_sources (subset_size and max_sites ignored), as in the
    # paper's extraction over the corpus; "train" is the training crystals only.
    extract_corpus: str = "full"

    # --- graphs (Table 2: r = 8 Å; CGCNN defaults otherwise; see GraphSettings) -----------
    radius: float = CGCNN_GRAPH.radius  # Å
    max_neighbors: int = CGCNN_GRAPH.max_neighbors
    gaussian_step: float = CGCNN_GRAPH.gaussian_step  # Å
    gaussian_width: float = CGCNN_GRAPH.gaussian_width  # Å

    # --- model (Table 2: five convolution layers, embedding dimension 200) ---------------
    dim: int = 200
    num_layers: int = 5
    input_embedding: str = "cgcnn"  # frozen 92-dim CGCNN one-hot features
    batch_norm: bool = True  # CGCNN's batch norms in every convolution (reference: on)
    # Softplus after each convolution's residual sum, as in CGCNN's code (reference: on).
    # Off gives the plain residual update of paper Eq. 1, x^l = x^(l-1) + sum of messages.
    outer_softplus: bool = True
    connectivity_hidden: int = 16  # output size of the bilinear pair layer
    projection_dim: int = 128  # projector Linear(dim,128)-softplus-...-Linear(128,128)

    # --- loss (Table 2: alpha = beta = 0.25, gamma = 0.5) ---------------------------------
    alpha: float = 0.25  # L_FR
    # L_FR normalisation: "node" sums the BCE over the 92 features of a node (the dot products
    # of paper Eq. 3) and averages over nodes; "element" averages over all node-feature entries.
    fr_reduction: str = "node"
    beta: float = 0.25  # L_CR
    gamma: float = 0.5  # L_SSL
    ssl: str = "bt"  # bt | vicreg | ntxent | none (paper Table 10)
    bt_lambda: float = 0.0051
    ntxent_temperature: float = 0.1
    atom_mask_ratio: float = 0.1
    edge_mask_ratio: float = 0.1
    max_edge_count: int = 5  # connectivity classes 0..5

    # --- optimisation (Table 2: Adam, lr 0.03, batch 128, 110 epochs) ---------------------
    lr: float = 0.03
    weight_decay: float = 0.0
    batch_size: int = 128  # global batch (split across DDP ranks)
    epochs: int = 110
    grad_clip: float | None = None
    # "joint": both SSL views are encoded with autograd and backpropagated together (two
    # encoder graphs in memory). "sequential": view 2 is first encoded without autograd to get
    # the SSL loss, whose backward runs through view 1 and gives the gradient w.r.t. view 2's
    # projection; view 2 is then re-encoded and backpropagated with it (one encoder graph in
    # memory, one extra forward pass; same gradient; one process only).
    ssl_views: str = "joint"
    # Activation checkpointing of the encoder's convolutions (CGCNNEncoder.checkpoint_convs):
    # edge-level activations are recomputed in backward instead of stored. Same result, less
    # peak memory, about one extra encoder forward pass per view.
    activation_checkpointing: bool = False
    # Compile each convolution with torch.compile (TorchInductor, dynamic shapes; needs a C++
    # compiler on CPU). The fused kernels keep only the pre-norm edge tensor for backward and
    # recompute the rest, so an encoder graph holds about a third of the eager memory at the same
    # speed. The first batches pay the compilation (about half a minute per mode).
    compile_convs: bool = False
    min_batch: int = 4  # smaller trailing batches are skipped (BatchNorm and BT need > 1)
    # Wall-clock budget for training in this invocation, seconds (None: no limit). Training
    # stops at the first epoch boundary where the next epoch would exceed it (judged from the
    # slowest of the last three epochs); the epochs actually run are recorded.
    time_budget_s: float | None = None

    # --- runtime ----------------------------------------------------------------------------
    threads: int | None = None  # torch intra-op threads; None leaves torch's default
    shard_size: int = 4096  # crystals per graph-cache shard
    graph_jobs: int = 2  # joblib workers for building the graph cache
    cache_dir: str = "training/cache"
    runs_dir: str = "training/runs"
    progress: bool = True

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> PretrainConfig:
        """Load a YAML file (a named config in ``training/configs`` or a path)."""
        p = Path(path)
        if not p.exists() and (CONFIG_DIR / f"{p.name}.yaml").exists():
            p = CONFIG_DIR / f"{p.name}.yaml"
        data = yaml.safe_load(p.read_text()) or {}
        return cls.from_dict({**data, **{k: v for k, v in overrides.items() if v is not None}})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys: {sorted(names)}")
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.fr_reduction not in ("node", "element"):
            raise ValueError(f"fr_reduction must be node or element; got {self.fr_reduction!r}")
        if self.ssl_views not in ("joint", "sequential"):
            raise ValueError(f"ssl_views must be joint or sequential; got {self.ssl_views!r}")
        if self.extract_corpus not in ("full", "train"):
            raise ValueError(f"extract_corpus must be full or train; got {self.extract_corpus!r}")
        if self.ssl not in ("bt", "vicreg", "ntxent", "none"):
            raise ValueError(f"ssl must be bt, vicreg, ntxent or none; got {self.ssl!r}")
        for key in ("dim", "batch_size", "epochs", "num_layers"):
            if getattr(self, key) < 1 and not (key == "num_layers" and self.num_layers == 0):
                raise ValueError(f"{key} must be positive, got {getattr(self, key)}")
        if not 0.0 <= self.atom_mask_ratio < 1.0 or not 0.0 <= self.edge_mask_ratio < 1.0:
            raise ValueError("mask ratios must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> PretrainConfig:
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    def graph_params(self) -> dict[str, Any]:
        """Keyword arguments for ``structures_to_graphs``."""
        return {
            "radius": self.radius,
            "max_neighbors": self.max_neighbors,
            "gaussian_step": self.gaussian_step,
            "gaussian_width": self.gaussian_width,
            "allow_isolated": True,
        }
