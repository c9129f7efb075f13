"""Many crystal graphs as flat tensors, and mini-batches gathered from them.

:func:`pack_graphs` concatenates crystal graphs (from
:func:`~crysatom_featurizers.graphs.structures_to_graphs`) into flat tensors with per-crystal
counts; :class:`PackedGraphs` gathers any subset of crystals into a :class:`GraphBatch` with a
few vectorised index operations. This is the package's one batching path: the estimators and
the pretraining code use it, and the ``nn`` modules read a ``GraphBatch`` like a PyG ``Batch``.

The format is a set of :class:`PackedField` entries, each lying along a *segment* (nodes,
species entries, edges, or a segment a model adds, such as the line graph's bond pairs). The
core fields (:data:`PACKED_KEYS`) are always present; a model that needs more per-crystal data
registers it with :func:`register_packed_field`, and graphs carrying that attribute then pack,
batch and move between devices with it, index offsets included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

__all__ = [
    "PACKED_KEYS",
    "GraphBatch",
    "PackedField",
    "PackedGraphs",
    "pack_graphs",
    "packed_fields",
    "register_packed_field",
]


@dataclass(frozen=True)
class PackedField:
    """One per-crystal tensor of the packed format.

    Parameters
    ----------
    name : str
        Attribute name on a graph (``Data``) and on a :class:`GraphBatch`.
    segment : str
        What the entries are: ``"nodes"``, ``"species"``, ``"edges"``, or a new segment (e.g.
        ``"triplets"``), whose per-crystal count is stored as ``num_<segment>``.
    dtype : torch.dtype
        Storage dtype of the packed tensor (compact: int16 for atomic numbers, int32 for
        indices).
    batch_dtype : torch.dtype
        Dtype in a :class:`GraphBatch` (long for indices, float32 for features).
    index_of : str, optional
        The segment whose positions the values are (e.g. ``"nodes"`` for ``edge_index``). They
        are stored within each crystal and shifted to batch positions when batched.
    axis : int
        Axis along which the entries lie: 0, or 1 for index pairs of shape ``[2, K]``.
    """

    name: str
    segment: str
    dtype: torch.dtype
    batch_dtype: torch.dtype
    index_of: str | None = None
    axis: int = 0

    def count_key(self) -> str:
        return f"num_{self.segment}"


_CORE_FIELDS = (
    PackedField("z", "nodes", torch.int16, torch.long),
    PackedField("species_z", "species", torch.int16, torch.long),
    PackedField("species_weight", "species", torch.float32, torch.float32),
    PackedField("species_site_index", "species", torch.int32, torch.long, index_of="nodes"),
    PackedField("edge_index", "edges", torch.int32, torch.long, index_of="nodes", axis=1),
    PackedField("edge_dist", "edges", torch.float32, torch.float32),  # Å
)
_CORE_SEGMENTS = ("nodes", "species", "edges")
_CORE_NAMES = frozenset(f.name for f in _CORE_FIELDS)
_EXTRA_FIELDS: dict[str, PackedField] = {}

#: Tensors of a packed set of graphs (``C`` crystals, ``N`` nodes, ``S`` species entries,
#: ``E`` edges) that every packed set holds; node, species and edge indices are stored *within*
#: each crystal. ``rows`` is a caller-defined row of each crystal (e.g. its corpus position).
PACKED_KEYS = (
    "rows",
    *(f"num_{s}" for s in _CORE_SEGMENTS),
    *(f.name for f in _CORE_FIELDS),
)


def register_packed_field(spec: PackedField) -> PackedField:
    """Add an optional field to the packed format (e.g. bond vectors or line-graph edges).

    Registering the same field twice is a no-op; another field under a core or registered name
    raises ``ValueError``. An index field must point to a core segment or to one that a field
    registered before it defines.

    Returns
    -------
    PackedField
        ``spec``.
    """
    core = set(PACKED_KEYS) | set(GraphBatch.__dataclass_fields__)
    if spec.name in core:
        raise ValueError(f"{spec.name!r} is a core field of the packed graphs")
    known = _EXTRA_FIELDS.get(spec.name)
    if known is not None:
        if known != spec:
            raise ValueError(f"packed field {spec.name!r} is already registered as {known}")
        return spec
    segments = set(_CORE_SEGMENTS) | {f.segment for f in _EXTRA_FIELDS.values()}
    if spec.index_of is not None and spec.index_of not in segments | {spec.segment}:
        raise ValueError(f"{spec.name!r} indexes the unknown segment {spec.index_of!r}")
    if spec.axis not in (0, 1):
        raise ValueError(f"axis must be 0 or 1, got {spec.axis}")
    _EXTRA_FIELDS[spec.name] = spec
    return spec


def packed_fields() -> tuple[PackedField, ...]:
    """The core fields, then the registered ones, in registration order."""
    return _CORE_FIELDS + tuple(_EXTRA_FIELDS.values())


@dataclass
class GraphBatch:
    """A mini-batch of crystal graphs in the attribute layout of a PyG ``Batch``.

    All index tensors are global within the batch, so the CGCNN model and
    :class:`~crysatom_featurizers.nn.ElementEmbeddingLayer` read it like a ``Batch``, without
    one ``Data`` object per crystal being built. Registered fields (:func:`register_packed_field`)
    are in ``extra`` and read as attributes too (``batch.<name>``).
    """

    z: torch.Tensor  # Long[N]
    species_z: torch.Tensor  # Long[S]
    species_weight: torch.Tensor  # Float[S]
    species_site_index: torch.Tensor  # Long[S]
    edge_index: torch.Tensor  # Long[2, E]
    edge_dist: torch.Tensor  # Float[E], Å
    batch: torch.Tensor  # Long[N], crystal of each node
    ptr: torch.Tensor  # Long[B + 1], node offsets
    rows: torch.Tensor | None = None  # Long[B]
    edge_attr: torch.Tensor | None = None  # Float[E, G], precomputed Gaussian expansion
    node_targets: torch.Tensor | None = None  # Float[N, D], e.g. a teacher's node embeddings
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # registered fields

    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__.get("extra")
        if extra is not None and name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def from_graphs(cls, graphs: Sequence[Data]) -> GraphBatch:
        """One batch of all ``graphs`` (e.g. the output of
        :class:`~crysatom_featurizers.graphs.CrystalGraphTransformer`), in order.

        Only ``edge_dist`` is kept of the edge features; models expand it themselves.
        """
        return PackedGraphs.from_graphs(graphs).batch(torch.arange(len(graphs)))

    @property
    def num_nodes(self) -> int:
        return int(self.z.numel())

    @property
    def num_graphs(self) -> int:
        return int(self.ptr.numel() - 1)

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def to(self, device: torch.device | str) -> GraphBatch:
        moved = {
            k: None if getattr(self, k) is None else getattr(self, k).to(device)
            for k in self.__dataclass_fields__
            if k != "extra"
        }
        return GraphBatch(**moved, extra={k: v.to(device) for k, v in self.extra.items()})


def _ranges(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``cat([arange(s, s + n) for s, n in zip(starts, lengths)])`` without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long, device=lengths.device)
    offsets = torch.cumsum(lengths, 0) - lengths
    shift = torch.repeat_interleave(starts - offsets, lengths, output_size=total)
    return torch.arange(total, device=lengths.device) + shift


def _core_parts(g: Data) -> dict[str, torch.Tensor]:
    """The core fields of one graph; a graph without ``species_*`` attributes counts as ordered."""
    species_z = getattr(g, "species_z", None)
    if species_z is None:
        n = int(g.num_nodes)
        species = {
            "species_z": g.z,
            "species_weight": torch.ones(n),
            "species_site_index": torch.arange(n),
        }
    else:
        species = {
            "species_z": species_z,
            "species_weight": g.species_weight,
            "species_site_index": g.species_site_index,
        }
    return {"z": g.z, **species, "edge_index": g.edge_index, "edge_dist": g.edge_dist}


def pack_graphs(graphs: Sequence[Data], rows: Sequence[int] | None = None) -> dict:
    """Concatenate graphs from :func:`structures_to_graphs` into flat tensors (compact dtypes):
    the :data:`PACKED_KEYS`, plus every registered field the graphs carry.

    Raises
    ------
    ValueError
        If ``rows`` has another length than ``graphs``, if only some graphs carry a
        registered field, or if the fields of one segment disagree on its length.
    """
    if rows is None:
        rows = range(len(graphs))
    if len(graphs) != len(rows):
        raise ValueError(f"{len(graphs)} graphs but {len(rows)} rows")
    extras = []
    for spec in _EXTRA_FIELDS.values():
        has = [getattr(g, spec.name, None) is not None for g in graphs]
        if any(has):
            if not all(has):
                raise ValueError(
                    f"graph {has.index(False)} lacks {spec.name!r}, which other graphs carry"
                )
            extras.append(spec)
    fields = _CORE_FIELDS + tuple(extras)
    parts: dict[str, list[torch.Tensor]] = {f.name: [] for f in fields}
    for g in graphs:
        for name, value in _core_parts(g).items():
            parts[name].append(value)
        for spec in extras:
            parts[spec.name].append(getattr(g, spec.name))

    def cat(spec: PackedField) -> torch.Tensor:
        if not parts[spec.name]:
            return torch.zeros((2, 0) if spec.axis else (0,), dtype=spec.dtype)
        return torch.cat(parts[spec.name], dim=spec.axis).to(spec.dtype)

    counts: dict[str, torch.Tensor] = {
        "num_nodes": torch.tensor([int(g.num_nodes) for g in graphs], dtype=torch.int32)
    }
    for spec in fields:
        if spec.segment == "nodes":
            continue
        sizes = torch.tensor([int(p.shape[spec.axis]) for p in parts[spec.name]], dtype=torch.int32)
        known = counts.setdefault(spec.count_key(), sizes)
        if not torch.equal(known, sizes):
            raise ValueError(f"the fields of segment {spec.segment!r} disagree on its length")
    return {
        "rows": torch.as_tensor(np.asarray(list(rows), dtype=np.int64)),
        **counts,
        **{spec.name: cat(spec) for spec in fields},
    }


class PackedGraphs:
    """Many crystal graphs as flat tensors with per-crystal offsets; :meth:`batch` gathers any
    subset of crystals into a :class:`GraphBatch` with a few vectorized index operations.

    Parameters
    ----------
    tensors : dict
        The :data:`PACKED_KEYS` tensors and any registered fields with their segment counts,
        e.g. from :func:`pack_graphs` or a saved shard.
    """

    def __init__(self, tensors: dict) -> None:
        missing = [k for k in PACKED_KEYS if k not in tensors]
        if missing:
            raise ValueError(f"packed graphs are missing {missing}")
        self.tensors = dict(tensors)
        self.fields = tuple(f for f in packed_fields() if f.name in self.tensors)
        lacking = sorted({f.count_key() for f in self.fields} - set(self.tensors))
        if lacking:
            raise ValueError(f"packed graphs are missing the counts {lacking}")
        self.edge_attr: torch.Tensor | None = None
        # per-node tensor gathered with every batch (a teacher's node embeddings, for instance)
        self.node_targets: torch.Tensor | None = None
        self._offsets()

    @classmethod
    def from_graphs(cls, graphs: Sequence[Data], rows: Sequence[int] | None = None):
        """Pack ``graphs`` (see :func:`pack_graphs`)."""
        return cls(pack_graphs(graphs, rows))

    def _offsets(self) -> None:
        t = self.tensors
        segments = dict.fromkeys(f.segment for f in self.fields)
        self.counts = {s: t[f"num_{s}"].long() for s in segments}
        self.starts = {s: torch.cumsum(c, 0) - c for s, c in self.counts.items()}
        self.num_nodes, self.num_species, self.num_edges = (self.counts[s] for s in _CORE_SEGMENTS)
        self.node_start, self.species_start, self.edge_start = (
            self.starts[s] for s in _CORE_SEGMENTS
        )

    def __len__(self) -> int:
        return int(self.num_nodes.numel())

    @property
    def rows(self) -> torch.Tensor:
        return self.tensors["rows"]

    def to(self, device: torch.device | str) -> PackedGraphs:
        """Move every tensor to ``device`` (in place) and return ``self``."""
        self.tensors = {k: v.to(device) for k, v in self.tensors.items()}
        if self.edge_attr is not None:
            self.edge_attr = self.edge_attr.to(device)
        if self.node_targets is not None:
            self.node_targets = self.node_targets.to(device)
        self._offsets()
        return self

    def expand_edges(self, expansion: Any, max_bytes: int) -> None:
        """Store the Gaussian expansion of every edge once, if it fits in ``max_bytes``.

        Batches then gather the expanded rows instead of recomputing ``exp`` every epoch;
        above the limit the model expands the distances of each batch itself.
        """
        dist = self.tensors["edge_dist"]
        if dist.numel() * expansion.num_gaussians * 4 <= max_bytes:
            with torch.no_grad():
                self.edge_attr = expansion(dist).float()

    def batch(self, index: Any) -> GraphBatch:
        """Gather the crystals at positions ``index`` into one :class:`GraphBatch`."""
        device = self.num_nodes.device
        if isinstance(index, torch.Tensor):
            idx = index.to(device=device, dtype=torch.long)
        else:
            idx = torch.as_tensor(np.asarray(index, dtype=np.int64), device=device)
        counts = {s: c[idx] for s, c in self.counts.items()}
        positions = {s: _ranges(self.starts[s][idx], counts[s]) for s in counts}
        ptr = torch.zeros(idx.numel() + 1, dtype=torch.long, device=device)
        ptr[1:] = torch.cumsum(counts["nodes"], 0)
        batch_starts = {"nodes": ptr[:-1]}  # where each crystal's entries start in the batch

        def shift(segment: str) -> torch.Tensor:
            if segment not in batch_starts:
                batch_starts[segment] = torch.cumsum(counts[segment], 0) - counts[segment]
            return batch_starts[segment]

        values: dict[str, torch.Tensor] = {}
        for spec in self.fields:
            pos = positions[spec.segment]
            stored = self.tensors[spec.name]
            value = (stored[:, pos] if spec.axis else stored[pos]).to(spec.batch_dtype)
            if spec.index_of is not None:
                value = value + torch.repeat_interleave(
                    shift(spec.index_of), counts[spec.segment], output_size=int(pos.numel())
                )
            values[spec.name] = value
        n_total = int(positions["nodes"].numel())
        edges = positions["edges"]
        return GraphBatch(
            **{k: v for k, v in values.items() if k in _CORE_NAMES},
            batch=torch.repeat_interleave(
                torch.arange(idx.numel(), device=device), counts["nodes"], output_size=n_total
            ),
            ptr=ptr,
            rows=self.tensors["rows"][idx].long(),
            edge_attr=None if self.edge_attr is None else self.edge_attr[edges],
            node_targets=None
            if self.node_targets is None
            else self.node_targets[positions["nodes"]],
            extra={k: v for k, v in values.items() if k not in _CORE_NAMES},
        )
