"""Line graphs of crystal graphs (bond pairs that share an atom) and their bond angles.

ALIGNN (Choudhary & DeCost, npj Comput. Mater. 7, 185, 2021) passes messages on the crystal
graph and on its *line graph*: a node per bond and an edge per pair of bonds ``a -> b``,
``b -> c`` that meet at atom ``b``, carrying the angle ``a-b-c``. Here the line graph is built
once for a whole packed set, with a few vectorised index operations and no loop over crystals,
and stored with the packed graphs as two registered fields:

``edge_vec`` : ``Float[E, 3]``
    Bond vectors from :func:`~crysatom_featurizers.graphs.structure_to_graph` with
    ``edge_vectors=True`` (centre to neighbour image, Å).
``triplet_index`` : ``Long[2, T]``
    ``triplet_index[0]`` is the incoming bond ``a -> b`` and ``triplet_index[1]`` the outgoing
    bond ``b -> c`` (edge positions, offset like node indices when batched). Every pair is
    kept, as in ALIGNN, including a bond followed by its own reverse.
"""

from __future__ import annotations

import torch
from torch import Tensor

from crysatom_featurizers.graphs.packing import (
    PackedField,
    PackedGraphs,
    _ranges,
    register_packed_field,
)

__all__ = ["EDGE_VEC", "TRIPLET_INDEX", "add_line_graph", "bond_cosines", "line_graph_index"]

#: Bond vectors of the edges (``Float[E, 3]``, Å).
EDGE_VEC = register_packed_field(PackedField("edge_vec", "edges", torch.float32, torch.float32))
#: Bond pairs of the line graph (``Long[2, T]``, edge positions).
TRIPLET_INDEX = register_packed_field(
    PackedField("triplet_index", "triplets", torch.int32, torch.long, index_of="edges", axis=1)
)


def line_graph_index(edge_index: Tensor, num_nodes: int) -> Tensor:
    """The bond pairs of a graph: every ``(e_in, e_out)`` with ``dst(e_in) == src(e_out)``.

    Parameters
    ----------
    edge_index : LongTensor
        ``[2, E]``, row 0 the source and row 1 the target of each edge.
    num_nodes : int
        Number of nodes ``N``.

    Returns
    -------
    LongTensor
        ``[2, T]`` edge positions, grouped by ``e_out`` (ascending) and, within a group, in the
        order of ``e_in``. ``T`` is the sum over edges of the in-degree of their source.
    """
    src, dst = edge_index[0].long(), edge_index[1].long()
    order = torch.argsort(dst, stable=True)
    in_degree = torch.bincount(dst, minlength=int(num_nodes))
    in_start = torch.cumsum(in_degree, 0) - in_degree
    per_edge = in_degree[src]
    e_in = order[_ranges(in_start[src], per_edge)]
    e_out = torch.repeat_interleave(
        torch.arange(src.numel(), device=src.device), per_edge, output_size=int(e_in.numel())
    )
    return torch.stack([e_in, e_out])


def add_line_graph(packed: PackedGraphs) -> PackedGraphs:
    """``packed`` with the line graph of every crystal (``triplet_index``, ``num_triplets``).

    The graphs must carry ``edge_vec`` (built with ``edge_vectors=True``). Bond pairs never
    cross crystals, since edges only join atoms of one crystal. A set that already has a line
    graph is returned as it is.

    Raises
    ------
    ValueError
        If the packed graphs have no bond vectors.
    """
    t = packed.tensors
    if TRIPLET_INDEX.name in t:
        return packed
    if EDGE_VEC.name not in t:
        raise ValueError(
            "the graphs have no bond vectors (edge_vec); build them with edge_vectors=True "
            "(structure_to_graph, structures_to_graphs or CrystalGraphTransformer)"
        )
    crystal_of_edge = torch.repeat_interleave(
        torch.arange(len(packed), device=packed.num_edges.device), packed.num_edges
    )
    shift = packed.node_start[crystal_of_edge]
    global_edges = t["edge_index"].long() + shift
    pairs = line_graph_index(global_edges, int(packed.num_nodes.sum()))
    owner = crystal_of_edge[pairs[1]]
    local = pairs - packed.edge_start[owner]
    counts = torch.bincount(owner, minlength=len(packed)).to(torch.int32)
    tensors = {
        **t,
        TRIPLET_INDEX.name: local.to(TRIPLET_INDEX.dtype),
        TRIPLET_INDEX.count_key(): counts,
    }
    out = PackedGraphs(tensors)
    out.edge_attr, out.node_targets = packed.edge_attr, packed.node_targets
    return out


def bond_cosines(edge_vec: Tensor, triplet_index: Tensor) -> Tensor:
    """Cosine of the angle ``a-b-c`` of each bond pair (``Float[T]``, in [-1, 1]).

    With ``edge_vec`` pointing from each bond's centre (its target) to the neighbour (its
    source), the bonds from ``b`` are ``edge_vec[e_in]`` (to ``a``) and ``-edge_vec[e_out]``
    (to ``c``).
    """
    v_in = edge_vec[triplet_index[0]]
    v_out = edge_vec[triplet_index[1]]
    norms = v_in.norm(dim=1) * v_out.norm(dim=1)
    cos = -(v_in * v_out).sum(dim=1) / norms.clamp_min(1e-12)
    return cos.clamp(-1.0, 1.0)
