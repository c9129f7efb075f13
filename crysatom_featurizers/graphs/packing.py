"""Many crystal graphs as flat tensors, and mini-batches gathered from them.

:func:`pack_graphs` concatenates crystal graphs (from
:func:`~crysatom_featurizers.graphs.structures_to_graphs`) into the :data:`PACKED_KEYS` tensors;
:class:`PackedGraphs` gathers any subset of crystals into a :class:`GraphBatch` with a few
vectorised index operations. This is the package's one batching
path: the estimators and the pretraining code use it, and the ``nn`` modules read a
``GraphBatch`` like a PyG ``Batch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

__all__ = ["PACKED_KEYS", "GraphBatch", "PackedGraphs", "pack_graphs"]


#: Tensors of a packed set of graphs (``C`` crystals, ``N`` nodes, ``S`` species entries,
#: ``E`` edges); node, species and edge indices are stored *within* each crystal.
PACKED_KEYS = (
    "rows",  # Long[C]: caller-defined row of each crystal (e.g. its corpus position)
    "num_nodes",  # Int[C]
    "num_species",  # Int[C]
    "num_edges",  # Int[C]
    "z",  # Short[N]
    "species_z",  # Short[S]
    "species_weight",  # Float[S]
    "species_site_index",  # Int[S]
    "edge_index",  # Int[2, E]
    "edge_dist",  # Float[E], Å
)


@dataclass
class GraphBatch:
    """A mini-batch of crystal graphs in the attribute layout of a PyG ``Batch``.

    All index tensors are global within the batch, so the CGCNN model and
    :class:`~crysatom_featurizers.nn.ElementEmbeddingLayer` read it like a ``Batch``, without
    one ``Data`` object per crystal being built.
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
        return GraphBatch(
            **{
                k: None if getattr(self, k) is None else getattr(self, k).to(device)
                for k in self.__dataclass_fields__
            }
        )


def _ranges(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``cat([arange(s, s + n) for s, n in zip(starts, lengths)])`` without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long, device=lengths.device)
    offsets = torch.cumsum(lengths, 0) - lengths
    shift = torch.repeat_interleave(starts - offsets, lengths, output_size=total)
    return torch.arange(total, device=lengths.device) + shift


def pack_graphs(graphs: Sequence[Data], rows: Sequence[int] | None = None) -> dict:
    """Concatenate graphs from :func:`structures_to_graphs` into the :data:`PACKED_KEYS`
    tensors (compact dtypes). A graph without ``species_*`` attributes counts as ordered."""
    if rows is None:
        rows = range(len(graphs))
    if len(graphs) != len(rows):
        raise ValueError(f"{len(graphs)} graphs but {len(rows)} rows")
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in PACKED_KEYS[4:]}
    for g in graphs:
        n = int(g.num_nodes)
        species_z = getattr(g, "species_z", None)
        parts["z"].append(g.z)
        if species_z is None:
            parts["species_z"].append(g.z)
            parts["species_weight"].append(torch.ones(n))
            parts["species_site_index"].append(torch.arange(n))
        else:
            parts["species_z"].append(species_z)
            parts["species_weight"].append(g.species_weight)
            parts["species_site_index"].append(g.species_site_index)
        parts["edge_index"].append(g.edge_index)
        parts["edge_dist"].append(g.edge_dist)
    dtypes = {
        "z": torch.int16,
        "species_z": torch.int16,
        "species_weight": torch.float32,
        "species_site_index": torch.int32,
        "edge_index": torch.int32,
        "edge_dist": torch.float32,
    }

    def cat(key: str) -> torch.Tensor:
        dim = 1 if key == "edge_index" else 0
        if not parts[key]:
            return torch.zeros((2, 0) if dim else (0,), dtype=dtypes[key])
        return torch.cat(parts[key], dim=dim).to(dtypes[key])

    def sizes(key: str, dim: int = 0) -> torch.Tensor:
        return torch.tensor([int(p.shape[dim]) for p in parts[key]], dtype=torch.int32)

    return {
        "rows": torch.as_tensor(np.asarray(list(rows), dtype=np.int64)),
        "num_nodes": torch.tensor([int(g.num_nodes) for g in graphs], dtype=torch.int32),
        "num_species": sizes("species_z"),
        "num_edges": sizes("edge_index", 1),
        **{key: cat(key) for key in parts},
    }


class PackedGraphs:
    """Many crystal graphs as flat tensors with per-crystal offsets; :meth:`batch` gathers any
    subset of crystals into a :class:`GraphBatch` with a few vectorized index operations.

    Parameters
    ----------
    tensors : dict
        The :data:`PACKED_KEYS` tensors, e.g. from :func:`pack_graphs` or a saved shard.
    """

    def __init__(self, tensors: dict) -> None:
        missing = [k for k in PACKED_KEYS if k not in tensors]
        if missing:
            raise ValueError(f"packed graphs are missing {missing}")
        self.tensors = dict(tensors)
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
        self.num_nodes = t["num_nodes"].long()
        self.num_species = t["num_species"].long()
        self.num_edges = t["num_edges"].long()
        self.node_start = torch.cumsum(self.num_nodes, 0) - self.num_nodes
        self.species_start = torch.cumsum(self.num_species, 0) - self.num_species
        self.edge_start = torch.cumsum(self.num_edges, 0) - self.num_edges

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
        n, s, e = self.num_nodes[idx], self.num_species[idx], self.num_edges[idx]
        ptr = torch.zeros(idx.numel() + 1, dtype=torch.long, device=device)
        ptr[1:] = torch.cumsum(n, 0)
        nodes = _ranges(self.node_start[idx], n)
        species = _ranges(self.species_start[idx], s)
        edges = _ranges(self.edge_start[idx], e)
        t = self.tensors
        n_total, n_species, n_edges = int(nodes.numel()), int(species.numel()), int(edges.numel())
        return GraphBatch(
            z=t["z"][nodes].long(),
            species_z=t["species_z"][species].long(),
            species_weight=t["species_weight"][species].float(),
            species_site_index=t["species_site_index"][species].long()
            + torch.repeat_interleave(ptr[:-1], s, output_size=n_species),
            edge_index=t["edge_index"][:, edges].long()
            + torch.repeat_interleave(ptr[:-1], e, output_size=n_edges),
            edge_dist=t["edge_dist"][edges].float(),
            batch=torch.repeat_interleave(
                torch.arange(idx.numel(), device=device), n, output_size=n_total
            ),
            ptr=ptr,
            rows=t["rows"][idx].long(),
            edge_attr=None if self.edge_attr is None else self.edge_attr[edges],
            node_targets=None if self.node_targets is None else self.node_targets[nodes],
        )
