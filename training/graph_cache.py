"""On-disk cache of crystal graphs for pretraining, and fast batching from it.

Graphs are built once (in parallel, with :func:`crysatom_featurizers.graphs.structures_to_graphs`)
and stored as shards of plain tensors: one ``torch.save`` file per shard holding the
concatenated per-crystal arrays plus per-crystal sizes. Only distances are stored (4 bytes per
edge); the Gaussian expansion (41 floats per edge) is computed on the fly by the model. Shards
are loaded with ``weights_only=True`` and one at a time, so memory stays bounded by one shard.

The cache directory name is derived from the corpus checksum, the graph parameters and the
cache format version, so a second run with the same corpus and settings reuses it and a
different corpus never collides with it.

Shard layout (dict of tensors, ``C`` crystals, ``N`` nodes, ``S`` species entries, ``E`` edges)::

    rows               Long[C]    row position of the crystal in the corpus frame
    num_nodes          Int[C]     sites per crystal
    num_species        Int[C]     (site, species) entries per crystal
    num_edges          Int[C]     edges per crystal
    z                  Short[N]   majority atomic number of each site
    species_z          Short[S]
    species_weight     Float[S]   occupancy
    species_site_index Int[S]     site index *within* its crystal
    edge_index         Int[2, E]  (source, target) *within* its crystal
    edge_dist          Float[E]   Å
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

CACHE_VERSION = 1
SHARD_KEYS = (
    "rows",
    "num_nodes",
    "num_species",
    "num_edges",
    "z",
    "species_z",
    "species_weight",
    "species_site_index",
    "edge_index",
    "edge_dist",
)


@dataclass
class GraphBatch:
    """A batch of crystal graphs, in the attribute layout of a PyG ``Batch``.

    Works with :class:`crysatom_featurizers.nn.ElementEmbeddingLayer` (``species_*``,
    ``num_nodes``, ``batch``). All index tensors are global within the batch.
    """

    z: Tensor  # Long[N]
    species_z: Tensor  # Long[S]
    species_weight: Tensor  # Float[S]
    species_site_index: Tensor  # Long[S]
    edge_index: Tensor  # Long[2, E]
    edge_dist: Tensor  # Float[E], Å
    batch: Tensor  # Long[N], crystal of each node
    ptr: Tensor  # Long[B + 1], node offsets
    rows: Tensor  # Long[B], corpus rows

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
        return GraphBatch(**{k: getattr(self, k).to(device) for k in self.__dataclass_fields__})


def _ranges(starts: Tensor, lengths: Tensor) -> Tensor:
    """Concatenation of ``arange(s, s + l)`` for every (s, l), without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long)
    offsets = torch.cumsum(lengths, 0) - lengths
    within = torch.arange(total) - torch.repeat_interleave(offsets, lengths)
    return torch.repeat_interleave(starts, lengths) + within


class GraphShard:
    """One loaded shard with per-crystal offsets; :meth:`batch` gathers any crystals."""

    def __init__(self, tensors: dict[str, Tensor]) -> None:
        missing = [k for k in SHARD_KEYS if k not in tensors]
        if missing:
            raise ValueError(f"graph shard is missing {missing}")
        self.t = tensors
        self.num_nodes = tensors["num_nodes"].long()
        self.num_species = tensors["num_species"].long()
        self.num_edges = tensors["num_edges"].long()
        self.node_start = torch.cumsum(self.num_nodes, 0) - self.num_nodes
        self.species_start = torch.cumsum(self.num_species, 0) - self.num_species
        self.edge_start = torch.cumsum(self.num_edges, 0) - self.num_edges

    def __len__(self) -> int:
        return int(self.num_nodes.numel())

    @property
    def rows(self) -> Tensor:
        return self.t["rows"]

    def batch(self, index: Tensor | Sequence[int] | np.ndarray) -> GraphBatch:
        """Gather the crystals at positions ``index`` of this shard into a :class:`GraphBatch`."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        n = self.num_nodes[idx]
        s = self.num_species[idx]
        e = self.num_edges[idx]
        ptr = torch.zeros(idx.numel() + 1, dtype=torch.long)
        ptr[1:] = torch.cumsum(n, 0)
        graph_of_node = torch.repeat_interleave(torch.arange(idx.numel()), n)
        nodes = _ranges(self.node_start[idx], n)
        species = _ranges(self.species_start[idx], s)
        edges = _ranges(self.edge_start[idx], e)
        t = self.t
        edge_index = t["edge_index"][:, edges].long() + torch.repeat_interleave(ptr[:-1], e)
        species_site = t["species_site_index"][species].long() + torch.repeat_interleave(
            ptr[:-1], s
        )
        return GraphBatch(
            z=t["z"][nodes].long(),
            species_z=t["species_z"][species].long(),
            species_weight=t["species_weight"][species].float(),
            species_site_index=species_site,
            edge_index=edge_index,
            edge_dist=t["edge_dist"][edges].float(),
            batch=graph_of_node,
            ptr=ptr,
            rows=t["rows"][idx].long(),
        )


def graphs_to_shard(graphs: Sequence[Any], rows: Sequence[int]) -> dict[str, Tensor]:
    """Pack PyG ``Data`` graphs (from ``structures_to_graphs``) into the shard tensor layout."""
    if len(graphs) != len(rows):
        raise ValueError(f"{len(graphs)} graphs but {len(rows)} rows")

    def cat(key: str, dtype: torch.dtype, dim: int = 0) -> Tensor:
        parts = [getattr(g, key) for g in graphs]
        if not parts:
            return torch.zeros((2, 0) if key == "edge_index" else (0,), dtype=dtype)
        return torch.cat(parts, dim=dim).to(dtype)

    return {
        "rows": torch.as_tensor(np.asarray(rows, dtype=np.int64)),
        "num_nodes": torch.tensor([int(g.num_nodes) for g in graphs], dtype=torch.int32),
        "num_species": torch.tensor([int(g.species_z.numel()) for g in graphs], dtype=torch.int32),
        "num_edges": torch.tensor([int(g.edge_index.shape[1]) for g in graphs], dtype=torch.int32),
        "z": cat("z", torch.int16),
        "species_z": cat("species_z", torch.int16),
        "species_weight": cat("species_weight", torch.float32),
        "species_site_index": cat("species_site_index", torch.int32),
        "edge_index": cat("edge_index", torch.int32, dim=1),
        "edge_dist": cat("edge_dist", torch.float32),
    }


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cache_key(corpus_checksum: str, graph_params: dict[str, Any]) -> str:
    """Directory name of the cache for a corpus checksum and graph parameters."""
    payload = json.dumps(
        {"version": CACHE_VERSION, "corpus": corpus_checksum, "graph": graph_params},
        sort_keys=True,
    )
    return f"graphs_{corpus_checksum[:12]}_{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


class GraphCache:
    """A directory of graph shards plus a ``manifest.json``.

    Use :meth:`build` (or :meth:`open_or_build`) to create it and :meth:`load_shard` /
    :meth:`iter_shards` to stream it.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        manifest = self.path / "manifest.json"
        if not manifest.exists():
            raise FileNotFoundError(f"no graph cache at {self.path} (manifest.json missing)")
        self.manifest = json.loads(manifest.read_text())
        self.shard_sizes: list[int] = list(self.manifest["shard_sizes"])

    @property
    def num_crystals(self) -> int:
        return int(sum(self.shard_sizes))

    @property
    def num_shards(self) -> int:
        return len(self.shard_sizes)

    def shard_path(self, i: int) -> Path:
        return self.path / f"shard_{i:05d}.pt"

    def load_shard(self, i: int) -> GraphShard:
        tensors = torch.load(self.shard_path(i), map_location="cpu", weights_only=True)
        return GraphShard(tensors)

    def iter_shards(self) -> Iterator[tuple[int, GraphShard]]:
        for i in range(self.num_shards):
            yield i, self.load_shard(i)

    @staticmethod
    def exists(path: str | os.PathLike) -> bool:
        return (Path(path) / "manifest.json").exists()

    @classmethod
    def build(
        cls,
        path: str | os.PathLike,
        structures: Sequence[Any],
        graph_params: dict[str, Any],
        *,
        info: dict[str, Any] | None = None,
        shard_size: int = 4096,
        n_jobs: int = 1,
        progress: bool = False,
    ) -> GraphCache:
        """Build graphs for ``structures`` shard by shard and write the cache atomically.

        Parameters
        ----------
        path : path-like
            Cache directory; the manifest is written last, so a partial build is rebuilt.
        structures : sequence of pymatgen Structure
            In corpus row order; row ``i`` of the corpus is crystal ``i`` of the cache.
        graph_params : dict
            Keyword arguments of ``structures_to_graphs`` (``radius``, ``max_neighbors``, ...);
            ``expand_edges`` is forced to False.
        info : dict, optional
            Extra JSON-serialisable record stored in the manifest (corpus record).
        shard_size : int
            Crystals per shard.
        n_jobs : int
            joblib workers for graph construction.
        """
        from crysatom_featurizers.graphs import structures_to_graphs

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        params = dict(graph_params)
        params["expand_edges"] = False
        sizes = []
        starts = range(0, len(structures), shard_size)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(structures), desc="graph cache", mininterval=5)
        for i, start in enumerate(starts):
            chunk = list(structures[start : start + shard_size])
            graphs = structures_to_graphs(chunk, n_jobs=n_jobs, **params)
            shard = graphs_to_shard(graphs, range(start, start + len(chunk)))
            atomic_torch_save(shard, out / f"shard_{i:05d}.pt")
            sizes.append(len(chunk))
            if bar is not None:
                bar.update(len(chunk))
            del graphs, shard
        if bar is not None:
            bar.close()
        manifest = {
            "version": CACHE_VERSION,
            "graph_params": params,
            "shard_size": shard_size,
            "shard_sizes": sizes,
            "num_crystals": len(structures),
            "info": info or {},
        }
        tmp = out / ".manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=1, default=str))
        os.replace(tmp, out / "manifest.json")
        return cls(out)
