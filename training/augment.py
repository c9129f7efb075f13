"""Graph augmentations for the SSL views of CrysAtom pretraining, on batched cached tensors.

Both augmentations act on a :class:`crysatom_featurizers.graphs.GraphBatch` and never recompute
neighbour lists: they select nodes or edges of the cached graphs. They are vectorised over the
batch (a random key per node or edge, ranked within its crystal or centre node with one sort).

They live in ``training/`` rather than in the library: they are specific to the pretraining
objective and to the cache's batch layout, and the library's ``nn`` package is meant for
inference and supervised models.
"""

from __future__ import annotations

import torch
from torch import Tensor

from crysatom_featurizers.graphs import GraphBatch

__all__ = ["atom_masking", "augment_salt", "edge_masking", "group_ranks", "hashed_uniform"]


def augment_salt(seed: int, epoch: int) -> int:
    """Salt of the augmentation hash: new views every epoch, independent of rank and batch."""
    return (seed * 1_000_003 + epoch) % (1 << 40)


_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def hashed_uniform(ids: Tensor, salt: int) -> Tensor:
    """Deterministic uniform numbers in [0, 1) from integer ids (a splitmix64-style hash).

    The draw of an item depends only on its id and ``salt``, not on which batch or process it
    is in, so distributed ranks that see slices of a global batch mask exactly as a single
    process would.
    """
    z = ids.long() * 0x2545F491 + _signed(salt * 0x9E3779B1 + 0x632BE5AB) + _GOLDEN
    z = (z ^ _shift_right(z, 30)) * _MIX1  # int64 products wrap around, as in uint64 arithmetic
    z = (z ^ _shift_right(z, 27)) * _MIX2
    z = z ^ _shift_right(z, 31)
    return _shift_right(z, 11).double() / float(1 << 53)


def _shift_right(z: Tensor, k: int) -> Tensor:
    """Logical (unsigned) right shift of int64 values: torch's ``>>`` is arithmetic."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def _node_ids(batch: GraphBatch) -> Tensor:
    """Stable id of every node: (corpus row, site index within the crystal)."""
    local = torch.arange(batch.num_nodes) - batch.ptr[batch.batch]
    return batch.rows[batch.batch] * 100_003 + local


def _edge_ids(batch: GraphBatch) -> Tensor:
    """Stable id of every edge: (corpus row, centre site, rank of the edge at its centre)."""
    dst = batch.edge_index[1]
    node_ids = _node_ids(batch)
    order = torch.argsort(dst, stable=True)
    deg = torch.bincount(dst, minlength=batch.num_nodes)
    start = torch.cumsum(deg, 0) - deg
    within = torch.empty_like(dst)
    within[order] = torch.arange(dst.numel()) - start[dst[order]]
    return node_ids[dst] * 1_009 + within


def group_ranks(
    group: Tensor, generator: torch.Generator | None = None, keys: Tensor | None = None
) -> Tensor:
    """Random rank of every item within its group (0 .. size-1), groups given by ``group``.

    Parameters
    ----------
    group : LongTensor, shape (M,)
        Group id of each item (need not be sorted).
    generator : torch.Generator, optional
        Source of randomness.
    keys : Tensor, optional
        Random keys in [0, 1) to use instead of drawing from ``generator``.

    Returns
    -------
    LongTensor, shape (M,)
        A uniformly random permutation of ``0..size_g-1`` inside each group ``g``.
    """
    m = group.numel()
    if m == 0:
        return torch.zeros(0, dtype=torch.long)
    key = keys if keys is not None else torch.rand(m, generator=generator, dtype=torch.float64)
    # sort by (group, key): group dominates because key is in [0, 1)
    order = torch.argsort(group.double() + key)
    sorted_group = group[order]
    sizes = torch.bincount(sorted_group)
    starts = torch.cumsum(sizes, 0) - sizes
    rank_sorted = torch.arange(m) - starts[sorted_group]
    ranks = torch.empty(m, dtype=torch.long)
    ranks[order] = rank_sorted
    return ranks


def atom_masking(
    batch: GraphBatch,
    ratio: float = 0.1,
    generator: torch.Generator | None = None,
    salt: int | None = None,
) -> GraphBatch:
    """Remove ``ratio`` of the sites of each crystal (at least one, never all).

    A crystal with ``n`` sites loses ``min(max(1, round(ratio * n)), n - 1)`` sites, so a
    single-site crystal is left intact. Edges touching a removed site are dropped, and the
    remaining nodes, species entries and edges are re-indexed. With ``salt`` the choice is a
    hash of (corpus row, site, salt) instead of a draw from ``generator``.
    """
    counts = batch.ptr[1:] - batch.ptr[:-1]
    n_drop = torch.clamp(torch.round(counts.double() * ratio).long(), min=1)
    n_drop = torch.minimum(n_drop, counts - 1).clamp(min=0)
    keys = hashed_uniform(_node_ids(batch), salt) if salt is not None else None
    ranks = group_ranks(batch.batch, generator, keys)
    keep = ranks >= n_drop[batch.batch]
    new_index = torch.cumsum(keep.long(), 0) - 1
    src, dst = batch.edge_index
    keep_edge = keep[src] & keep[dst]
    keep_species = keep[batch.species_site_index]
    new_counts = counts - n_drop
    ptr = torch.zeros_like(batch.ptr)
    ptr[1:] = torch.cumsum(new_counts, 0)
    return GraphBatch(
        z=batch.z[keep],
        species_z=batch.species_z[keep_species],
        species_weight=batch.species_weight[keep_species],
        species_site_index=new_index[batch.species_site_index[keep_species]],
        edge_index=new_index[batch.edge_index[:, keep_edge]],
        edge_dist=batch.edge_dist[keep_edge],
        batch=batch.batch[keep],
        ptr=ptr,
        rows=batch.rows,
    )


def edge_masking(
    batch: GraphBatch,
    ratio: float = 0.1,
    generator: torch.Generator | None = None,
    salt: int | None = None,
) -> GraphBatch:
    """Drop ``round(ratio * d)`` of the ``d`` incoming edges of every node (keep the rest).

    With the default 12 neighbours and ``ratio=0.1`` each centre keeps 11 edges. Nodes are
    untouched. With ``salt`` the choice is a hash of (corpus row, centre, edge, salt).
    """
    dst = batch.edge_index[1]
    if dst.numel() == 0:
        return batch
    degree = torch.bincount(dst, minlength=batch.num_nodes)
    n_drop = torch.round(degree.double() * ratio).long()
    keys = hashed_uniform(_edge_ids(batch), salt) if salt is not None else None
    ranks = group_ranks(dst, generator, keys)
    keep = ranks >= n_drop[dst]
    return GraphBatch(
        z=batch.z,
        species_z=batch.species_z,
        species_weight=batch.species_weight,
        species_site_index=batch.species_site_index,
        edge_index=batch.edge_index[:, keep],
        edge_dist=batch.edge_dist[keep],
        batch=batch.batch,
        ptr=batch.ptr,
        rows=batch.rows,
    )
