"""CGCNN property model (Xie & Grossman, PRL 120, 145301, 2018) on element-embedding inputs."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

from crysatom_featurizers.embeddings import DEFAULT_EMBEDDING
from crysatom_featurizers.graphs import CGCNN_GRAPH, GraphSettings, check_settings
from crysatom_featurizers.nn.encoder import CGCNNEncoder
from crysatom_featurizers.nn.layers import (
    ElementEmbeddingLayer,
    GaussianExpansion,
    edge_features,
)

__all__ = ["CGCNN"]

_POOLS = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool}


class CGCNN(nn.Module):
    """Crystal graph convolutional network for graph-level property prediction.

    ``embedding lookup -> Linear(emb_dim, atom_fea_len) -> n_conv x CGCNNConv -> pooling
    -> softplus -> Linear(atom_fea_len, h_fea_len) -> softplus -> (n_h - 1) x
    [Linear(h_fea_len, h_fea_len) -> softplus] -> Linear(h_fea_len, n_targets)``,
    as in the original CGCNN. The element vectors are frozen by default, as in CrysAtom.

    Parameters
    ----------
    embedding : ElementEmbedding, str or path
        Input node vectors: anything :func:`crysatom_featurizers.embeddings.resolve` accepts
        (a registry name such as ``"crysatom"`` or ``"cgcnn"``, ``"name:dim"``, a vector file,
        an ``ElementEmbedding``).
    atom_fea_len : int
        Node embedding size of the convolutions (64 in CGCNN).
    n_conv : int
        Number of convolutions (3).
    h_fea_len : int
        Hidden size after pooling (128).
    n_h : int
        Number of hidden layers after pooling (1).
    n_targets : int
        Output size (number of targets, or of classes for logits).
    pooling : {"mean", "sum", "max"}
        Readout over the nodes of each graph.
    dim : int, optional
        Dimension requested from the registry when ``embedding`` is a name.
    trainable_embeddings : bool
        Fine-tune the element vectors.
    dropout : float
        Dropout after the first hidden layer (CGCNN uses it for classification).
    graph : GraphSettings
        Settings of the crystal graphs the model reads; their Gaussian distance expansion
        (centres ``0, step, ..., radius``, Å) is used when a batch has only ``edge_dist``, and
        its number of centres is the edge feature size the convolutions expect. Default
        :data:`~crysatom_featurizers.graphs.CGCNN_GRAPH`.
    batch_norm : bool
        Use the two batch norms of each convolution.
    site_dim : int
        Width of the per-site vectors the graphs carry as ``site_features`` (e.g. a universal
        potential's), appended to the node inputs; 0: none (see
        :class:`~crysatom_featurizers.nn.ElementEmbeddingLayer`).
    use_elements : bool
        Feed the element vectors; False (with ``site_dim``): the site vectors alone.

    Notes
    -----
    ``forward`` takes a :class:`~crysatom_featurizers.graphs.GraphBatch` (the package batches
    crystal graphs with :class:`~crysatom_featurizers.graphs.PackedGraphs` or
    :meth:`GraphBatch.from_graphs <crysatom_featurizers.graphs.GraphBatch.from_graphs>`), or a
    PyG ``Data``/``Batch`` with the same attributes. It uses the batch's ``edge_attr`` when
    present and otherwise expands ``edge_dist`` itself.
    """

    def __init__(
        self,
        embedding: Any = DEFAULT_EMBEDDING,
        atom_fea_len: int = 64,
        n_conv: int = 3,
        h_fea_len: int = 128,
        n_h: int = 1,
        n_targets: int = 1,
        pooling: str = "mean",
        dim: int | None = None,
        trainable_embeddings: bool = False,
        dropout: float = 0.0,
        graph: GraphSettings = CGCNN_GRAPH,
        batch_norm: bool = True,
        site_dim: int = 0,
        use_elements: bool = True,
    ) -> None:
        super().__init__()
        graph = check_settings(graph)
        if pooling not in _POOLS:
            raise ValueError(f"pooling must be one of {sorted(_POOLS)}, got {pooling!r}")
        if n_h < 1:
            raise ValueError(f"n_h must be at least 1, got {n_h}")
        self.pooling = pooling
        self.embedding = ElementEmbeddingLayer(
            embedding,
            dim=dim,
            trainable=trainable_embeddings,
            site_dim=site_dim,
            use_elements=use_elements,
        )
        self.graph = graph
        self.distance_expansion = GaussianExpansion.from_settings(graph)
        edge_dim = self.distance_expansion.num_gaussians
        self.encoder = CGCNNEncoder(
            self.embedding.out_dim, atom_fea_len, n_conv, edge_dim=edge_dim, batch_norm=batch_norm
        )
        self.conv_to_fc = nn.Linear(atom_fea_len, h_fea_len)
        self.hidden = nn.ModuleList(nn.Linear(h_fea_len, h_fea_len) for _ in range(n_h - 1))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc_out = nn.Linear(h_fea_len, n_targets)

    def edge_features(self, batch: Any) -> Tensor:
        """``edge_attr`` of the batch, or the Gaussian expansion of its ``edge_dist``."""
        return edge_features(batch, self.distance_expansion)

    @classmethod
    def from_encoder(cls, encoder: CGCNNEncoder, embedding: Any, **kwargs: Any) -> CGCNN:
        """A CGCNN whose input map and convolutions are a copy of ``encoder`` (weights too).

        The pooling and the layers after it are new. This is the CrysXPP way of starting a
        property model from a pretrained encoder.

        Parameters
        ----------
        encoder : CGCNNEncoder
            The pretrained encoder (e.g. from :func:`~crysatom_featurizers.nn.load_encoder`);
            it is copied, never shared.
        embedding : ElementEmbedding, str or path
            The element vectors the encoder reads; their dimension must be ``encoder.in_dim``.
        **kwargs
            Other :class:`CGCNN` arguments (``h_fea_len``, ``n_h``, ``n_targets``, ``pooling``,
            the Gaussian expansion, ...); ``atom_fea_len``, ``n_conv`` and ``batch_norm`` come
            from the encoder.

        Raises
        ------
        ValueError
            If the embedding's dimension or the edge feature size of the expansion does not
            match the encoder's.
        """
        fixed = sorted(k for k in ("atom_fea_len", "n_conv", "batch_norm") if k in kwargs)
        if fixed:
            raise TypeError(f"{fixed} come from the encoder; do not pass them")
        first = encoder.convs[0] if len(encoder.convs) else None
        batch_norm = first is None or isinstance(first.bn_message, nn.BatchNorm1d)
        model = cls(
            embedding,
            atom_fea_len=encoder.hidden_dim,
            n_conv=encoder.num_layers,
            batch_norm=batch_norm,
            **kwargs,
        )
        if model.embedding.out_dim != encoder.in_dim:
            raise ValueError(
                f"the encoder reads {encoder.in_dim}-dim element vectors (node inputs), the embedding "
                f"{getattr(model.embedding, 'name', '')!r} gives {model.embedding.out_dim}"
            )
        if model.distance_expansion.num_gaussians != encoder.edge_dim:
            raise ValueError(
                f"the encoder expects {encoder.edge_dim} Gaussian edge features, this distance "
                f"expansion gives {model.distance_expansion.num_gaussians} (another radius?)"
            )
        model.encoder = copy.deepcopy(encoder)
        model.encoder.checkpoint_convs = False
        return model

    def config(self) -> dict[str, Any]:
        """The architecture as plain data: with the element table, :meth:`from_config`
        rebuilds this model (weights aside)."""
        first = self.encoder.convs[0] if len(self.encoder.convs) else None
        return {
            "atom_fea_len": int(self.encoder.hidden_dim),
            "n_conv": int(self.encoder.num_layers),
            "h_fea_len": int(self.conv_to_fc.out_features),
            "n_h": len(self.hidden) + 1,
            "n_targets": int(self.fc_out.out_features),
            "pooling": self.pooling,
            "trainable_embeddings": bool(self.embedding.trainable),
            "dropout": float(getattr(self.dropout, "p", 0.0)),
            "graph": self._graph_settings().as_dict(),
            "batch_norm": first is None or isinstance(first.bn_message, nn.BatchNorm1d),
            "outer_softplus": first is None or bool(first.outer_softplus),
            **self.embedding.input_config(),
        }

    def _graph_settings(self) -> GraphSettings:
        """``graph``; for a model pickled before it was stored, read off the expansion."""
        graph = getattr(self, "graph", None)
        if graph is not None:
            return graph
        c = self.distance_expansion.centers.double()
        step = round(float(c[1] - c[0]), 6) if c.numel() > 1 else CGCNN_GRAPH.gaussian_step
        width = float(self.distance_expansion.width)
        return GraphSettings(
            radius=round(float(c[-1]), 6), gaussian_step=step, gaussian_width=width
        )

    @classmethod
    def from_config(cls, embedding: Any, config: dict[str, Any]) -> CGCNN:
        """A newly initialised model of the architecture :meth:`config` describes."""
        config = dict(config)
        graph = GraphSettings.from_dict(config.pop("graph", {}))
        outer_softplus = bool(config.pop("outer_softplus", True))
        model = cls(embedding, graph=graph, **config)
        if not outer_softplus:
            for conv in model.encoder.convs:
                conv.outer_softplus = False
        return model

    @property
    def node_dim(self) -> int:
        """Width of the node embeddings (``atom_fea_len``)."""
        return int(self.encoder.hidden_dim)

    @property
    def num_node_layers(self) -> int:
        """Entries of :meth:`encode_layers`: the input map and each convolution."""
        return int(self.encoder.num_layers) + 1

    def element_input_vectors(self) -> tuple[Tensor, Tensor]:
        """``(Float[max_z + 1, atom_fea_len], Bool[max_z + 1])``: each element's node vector
        after the input map (before any convolution), and which elements the table covers.

        Raises
        ------
        ValueError
            If the node inputs hold site vectors: a node's input then depends on its
            environment, not on its element alone.
        """
        if self.embedding.site_dim:
            raise ValueError(
                "this network reads per-site vectors (site_features): its node inputs are not "
                "a function of the element alone"
            )
        with torch.no_grad():
            return self.encoder.input(self.embedding.weight), self.embedding.covered

    def encode(self, batch: Any) -> Tensor:
        """Node embeddings ``Float[N, atom_fea_len]`` after the convolutions."""
        return self.encode_layers(batch)[-1]

    def encode_layers(self, batch: Any) -> list[Tensor]:
        """Node embeddings after the input map (entry 0) and after each convolution."""
        x = self.embedding(batch)
        return self.encoder.forward_layers(x, batch.edge_index, self.edge_features(batch))

    def pool(self, batch: Any, node_embeddings: Tensor) -> Tensor:
        """Graph embeddings ``Float[B, atom_fea_len]`` (before the hidden layers)."""
        index = getattr(batch, "batch", None)
        if index is None:
            index = torch.zeros(
                node_embeddings.shape[0], dtype=torch.long, device=node_embeddings.device
            )
            size = 1
        else:
            size = int(batch.num_graphs)
        return _POOLS[self.pooling](node_embeddings, index, size)

    def forward(self, batch: Any) -> Tensor:
        """Predictions ``Float[B, n_targets]`` for a ``GraphBatch`` or ``Batch`` (or one
        ``Data``)."""
        return self.head(self.pool(batch, self.encode(batch)))

    def head(self, crystal: Tensor) -> Tensor:
        """Predictions ``Float[B, n_targets]`` from pooled graph embeddings."""
        h = F.softplus(self.conv_to_fc(F.softplus(crystal)))
        h = self.dropout(h)
        for layer in self.hidden:
            h = F.softplus(layer(h))
        return self.fc_out(h)
