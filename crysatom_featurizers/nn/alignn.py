"""ALIGNN (Choudhary & DeCost, npj Comput. Mater. 7, 185, 2021) in plain torch, on packed graphs.

The atomistic line graph neural network passes messages on the crystal graph (atoms, bonds)
and on its line graph (bonds, bond pairs with their angle). Its building block is the
edge-gated graph convolution (Bresson & Laurent, 2017), which updates node *and* edge
features; an ALIGNN layer applies one on the crystal graph (updating atoms and bonds) and then
one on the line graph, whose nodes are those updated bonds and whose edges are bond angles (the
order of the authors' code). Plain edge-gated convolutions on
the crystal graph follow, then mean pooling and a linear head.

The input node vectors come from any element embedding
(:class:`~crysatom_featurizers.nn.ElementEmbeddingLayer`), as for :class:`CGCNN
<crysatom_featurizers.nn.CGCNN>`. Batches are :class:`~crysatom_featurizers.graphs.GraphBatch`
objects whose graphs carry bond vectors and a line graph
(:func:`~crysatom_featurizers.graphs.add_line_graph`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool

from crysatom_featurizers.graphs.line_graph import bond_cosines
from crysatom_featurizers.graphs.settings import ALIGNN_GRAPH, GraphSettings
from crysatom_featurizers.nn.layers import ElementEmbeddingLayer, GaussianExpansion, edge_features

__all__ = ["ALIGNN", "ALIGNNConv", "ALIGNN_PRESETS", "EdgeGatedGraphConv"]

_N_ANGLE_BINS = 40  # ALIGNN's radial basis of the bond-angle cosines in [-1, 1]


#: Architectures: ``"paper"`` as published (width 256, 4 ALIGNN + 4 GCN layers); ``"cpu"``
#: (width 64, 1 + 1) chosen on validation among the sizes whose converged fit on 1,000 crystals
#: ends within 30 min on one CPU core (JARVIS formation energy; see the README).
ALIGNN_PRESETS: dict[str, dict[str, int]] = {
    "paper": {"hidden_features": 256, "alignn_layers": 4, "gcn_layers": 4},
    "cpu": {"hidden_features": 64, "alignn_layers": 1, "gcn_layers": 1},
}


def _norm(bn: nn.Module, x: Tensor) -> Tensor:
    """Batch norm that lets a single row (or none) through unchanged while training."""
    if bn.training and x.shape[0] < 2:
        return x
    return bn(x)


class _MLP(nn.Sequential):
    """``Linear -> BatchNorm -> SiLU`` (ALIGNN's embedding block)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(
            nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features), nn.SiLU()
        )

    def forward(self, x: Tensor) -> Tensor:
        linear, bn, act = self
        return act(_norm(bn, linear(x)))


class EdgeGatedGraphConv(nn.Module):
    """Edge-gated graph convolution with residual updates of nodes and edges.

    For an edge ``j -> i`` with node features ``h`` and edge features ``e``::

        m_ij  = A h_i + B h_j + C e_ij,     sigma_ij = sigmoid(m_ij)
        h_i' = h_i + SiLU(BN(U h_i + sum_j sigma_ij * V h_j / (sum_j sigma_ij + 1e-6)))
        e_ij' = e_ij + SiLU(BN(m_ij))

    Parameters
    ----------
    channels : int
        Width of node and edge features.

    Notes
    -----
    **Tensor shapes.**

    ``x: Float[N, C]``, ``edge_index: Long[2, E]`` (row 0 source ``j``, row 1 target ``i``),
    ``edge_attr: Float[E, C]`` -> ``(Float[N, C], Float[E, C])``.

    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = int(channels)
        self.gate_dst = nn.Linear(channels, channels)  # A
        self.gate_src = nn.Linear(channels, channels)  # B
        self.gate_edge = nn.Linear(channels, channels)  # C
        self.update_self = nn.Linear(channels, channels)  # U
        self.update_neighbor = nn.Linear(channels, channels)  # V
        self.bn_nodes = nn.BatchNorm1d(channels)
        self.bn_edges = nn.BatchNorm1d(channels)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> tuple[Tensor, Tensor]:
        src, dst = edge_index[0], edge_index[1]
        m = self.gate_dst(x)[dst] + self.gate_src(x)[src] + self.gate_edge(edge_attr)
        sigma = torch.sigmoid(m)
        weighted = torch.zeros_like(x).index_add_(0, dst, sigma * self.update_neighbor(x)[src])
        total = torch.zeros_like(x).index_add_(0, dst, sigma)
        h = self.update_self(x) + weighted / (total + 1e-6)
        x = x + F.silu(_norm(self.bn_nodes, h))
        edge_attr = edge_attr + F.silu(_norm(self.bn_edges, m))
        return x, edge_attr

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class ALIGNNConv(nn.Module):
    """One ALIGNN layer: an edge-gated convolution on the crystal graph (atoms, bonds), then
    one on the line graph (bonds as nodes, bond pairs as edges) with the bonds it updated, in
    the order of the authors' code.

    Notes
    -----
    **Tensor shapes.**

    ``x: Float[N, C]`` atoms, ``y: Float[E, C]`` bonds, ``z: Float[T, C]`` bond pairs,
    ``edge_index: Long[2, E]``, ``triplet_index: Long[2, T]`` -> updated ``(x, y, z)``.

    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.line_graph = EdgeGatedGraphConv(channels)
        self.crystal_graph = EdgeGatedGraphConv(channels)

    def forward(
        self, x: Tensor, y: Tensor, z: Tensor, edge_index: Tensor, triplet_index: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        x, y = self.crystal_graph(x, edge_index, y)
        y, z = self.line_graph(y, triplet_index, z)
        return x, y, z


class ALIGNN(nn.Module):
    """Atomistic line graph neural network for graph-level property prediction.

    ``element vectors -> MLP -> atoms``; ``bond lengths -> 80 Gaussians -> 2 MLPs -> bonds``;
    ``angle cosines -> 40 Gaussians -> 2 MLPs -> bond pairs``; ``alignn_layers x``
    :class:`ALIGNNConv`; ``gcn_layers x`` :class:`EdgeGatedGraphConv`; mean pooling;
    ``Linear(hidden_features, n_targets)``. The MLPs are ``Linear -> BatchNorm -> SiLU``.

    Parameters
    ----------
    embedding : ElementEmbedding, str or path
        Input node vectors: anything :func:`crysatom_featurizers.embeddings.resolve` accepts
        (ALIGNN's own inputs are CGCNN's 92 features, ``"cgcnn"``).
    hidden_features : int
        Width of atoms, bonds and bond pairs in the convolutions (256 in the paper).
    alignn_layers : int
        ALIGNN layers (4).
    gcn_layers : int
        Edge-gated convolutions on the crystal graph after them (4).
    embedding_features : int
        Width between the two MLPs of the bond and angle expansions (64).
    n_targets : int
        Output size (targets, or classes for logits).
    dim : int, optional
        Dimension requested from the registry when ``embedding`` is a name.
    trainable_embeddings : bool
        Fine-tune the element vectors.
    graph : GraphSettings
        The crystal graphs the model reads; its Gaussians expand the bond lengths (default
        :data:`~crysatom_featurizers.graphs.ALIGNN_GRAPH`, 80 centres to 8 Å).
    site_dim, use_elements : int, bool
        Per-site vectors (``site_features``) in the node inputs, as for
        :class:`~crysatom_featurizers.nn.CGCNN`.

    Notes
    -----
    ``forward`` takes a :class:`~crysatom_featurizers.graphs.GraphBatch` with ``edge_vec`` and
    ``triplet_index``: graphs built with ``graph`` (:data:`ALIGNN_GRAPH
    <crysatom_featurizers.graphs.ALIGNN_GRAPH>` is undirected, every bond in both directions,
    so that the bond pairs at an atom are all pairs of its bonds) and ``edge_vectors=True``,
    packed, then :func:`~crysatom_featurizers.graphs.add_line_graph`. Without ALIGNN layers
    (``alignn_layers=0``) no line graph is read.
    """

    def __init__(
        self,
        embedding: Any = "cgcnn",
        hidden_features: int = 256,
        alignn_layers: int = 4,
        gcn_layers: int = 4,
        embedding_features: int = 64,
        n_targets: int = 1,
        dim: int | None = None,
        trainable_embeddings: bool = False,
        graph: GraphSettings = ALIGNN_GRAPH,
        site_dim: int = 0,
        use_elements: bool = True,
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("hidden_features", hidden_features, 1),
            ("alignn_layers", alignn_layers, 0),
            ("gcn_layers", gcn_layers, 0),
            ("embedding_features", embedding_features, 1),
            ("n_targets", n_targets, 1),
        ):
            if int(value) < low:
                raise ValueError(f"{name} must be at least {low}, got {value}")
        width = int(hidden_features)
        self.graph = graph
        self.embedding = ElementEmbeddingLayer(
            embedding,
            dim=dim,
            trainable=trainable_embeddings,
            site_dim=site_dim,
            use_elements=use_elements,
        )
        self.atom_embedding = _MLP(self.embedding.out_dim, width)
        self.distance_expansion = GaussianExpansion.from_settings(graph)
        self.bond_embedding = nn.Sequential(
            _MLP(self.distance_expansion.num_gaussians, embedding_features),
            _MLP(embedding_features, width),
        )
        angle_step = 2.0 / (_N_ANGLE_BINS - 1)
        self.angle_expansion = GaussianExpansion(-1.0, 1.0, angle_step, math.sqrt(angle_step))
        self.angle_embedding = nn.Sequential(
            _MLP(_N_ANGLE_BINS, embedding_features), _MLP(embedding_features, width)
        )
        self.alignn = nn.ModuleList(ALIGNNConv(width) for _ in range(int(alignn_layers)))
        self.gcn = nn.ModuleList(EdgeGatedGraphConv(width) for _ in range(int(gcn_layers)))
        self.fc_out = nn.Linear(width, int(n_targets))

    def config(self) -> dict[str, Any]:
        """The architecture as plain data (see :meth:`from_config`)."""
        return {
            "hidden_features": self.node_dim,
            "alignn_layers": len(self.alignn),
            "gcn_layers": len(self.gcn),
            "embedding_features": int(self.bond_embedding[0][0].out_features),
            "n_targets": int(self.fc_out.out_features),
            "trainable_embeddings": bool(self.embedding.trainable),
            "graph": self.graph.as_dict(),
            **self.embedding.input_config(),
        }

    @classmethod
    def from_config(cls, embedding: Any, config: dict[str, Any]) -> ALIGNN:
        """A newly initialised model of the architecture :meth:`config` describes."""
        config = dict(config)
        graph = GraphSettings.from_dict(config.pop("graph", {}))
        return cls(embedding, graph=graph, **config)

    @property
    def node_dim(self) -> int:
        """Width of the atom embeddings (``hidden_features``)."""
        return int(self.fc_out.in_features)

    @property
    def num_node_layers(self) -> int:
        """Entries of :meth:`encode_layers`: the input map and each layer."""
        return 1 + len(self.alignn) + len(self.gcn)

    def encode_layers(self, batch: Any) -> list[Tensor]:
        """Atom embeddings ``Float[N, hidden_features]`` after the input map (entry 0), after
        each ALIGNN layer and after each edge-gated convolution."""
        x = self.atom_embedding(self.embedding(batch))
        y = self.bond_embedding(edge_features(batch, self.distance_expansion))
        layers = [x]
        if len(self.alignn):
            triplet_index = getattr(batch, "triplet_index", None)
            edge_vec = getattr(batch, "edge_vec", None)
            if triplet_index is None or edge_vec is None:
                raise ValueError(
                    "ALIGNN needs graphs with bond vectors and a line graph: build them with "
                    "edge_vectors=True and pack them with add_line_graph"
                )
            z = self.angle_embedding(self.angle_expansion(bond_cosines(edge_vec, triplet_index)))
        for layer in self.alignn:
            x, y, z = layer(x, y, z, batch.edge_index, triplet_index)
            layers.append(x)
        for layer in self.gcn:
            x, y = layer(x, batch.edge_index, y)
            layers.append(x)
        return layers

    def encode(self, batch: Any) -> Tensor:
        """Atom embeddings after the last layer."""
        return self.encode_layers(batch)[-1]

    def pool(self, batch: Any, node_embeddings: Tensor) -> Tensor:
        """Crystal embeddings ``Float[B, hidden_features]``: the mean over its atoms."""
        return global_mean_pool(node_embeddings, batch.batch, int(batch.num_graphs))

    def head(self, crystal: Tensor) -> Tensor:
        """Predictions ``Float[B, n_targets]`` from crystal embeddings."""
        return self.fc_out(crystal)

    def forward(self, batch: Any) -> Tensor:
        return self.head(self.pool(batch, self.encode(batch)))
