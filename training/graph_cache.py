"""On-disk cache of crystal graphs for pretraining, and fast batching from it.

Graphs are built once (in parallel, with :func:`crysatom_featurizers.graphs.structures_to_graphs`)
and stored as shards of plain tensors: one ``torch.save`` file per shard holding the
concatenated per-crystal arrays plus per-crystal sizes. Only distances are stored (4 bytes per
edge); the Gaussian expansion (41 floats per edge) is computed on the fly by the model. Shards
are loaded with ``weights_only=True`` and one at a time, so memory stays bounded by one shard.

The cache directory name is derived from the corpus checksum, the graph parameters and the
cache format version, so a second run with the same corpus and settings reuses it and a
different corpus never collides with it.

Shard layout (:data:`crysatom_featurizers.graphs.PACKED_KEYS`; ``C`` crystals, ``N`` nodes, ``S``
species entries, ``E`` edges), loaded as :class:`crysatom_featurizers.graphs.PackedGraphs`::

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from crysatom_featurizers.graphs import PackedGraphs, pack_graphs
from crysatom_featurizers.io import atomic_write, atomic_write_text

CACHE_VERSION = 1


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: never a half-written file."""
    with atomic_write(path, "wb") as handle:
        torch.save(obj, handle)


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

    def load_shard(self, i: int) -> PackedGraphs:
        tensors = torch.load(self.shard_path(i), map_location="cpu", weights_only=True)
        return PackedGraphs(tensors)

    def iter_shards(self) -> Iterator[tuple[int, PackedGraphs]]:
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
            shard = pack_graphs(graphs, range(start, start + len(chunk)))
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
        atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1, default=str))
        return cls(out)
