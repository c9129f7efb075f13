"""CrystalTransformer (Jin et al., 2024): a Transformer over the atoms of a crystal whose
element input map learns "universal atomic embeddings" from property labels."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from crysatom_featurizers.graphs import GraphSettings, check_settings
from crysatom_featurizers.nn.layers import ElementEmbeddingLayer, GaussianExpansion

__all__ = ["DISTANCE_BIAS_GRAPH", "CrystalTransformer"]

#: Distance expansion of the attention bias: Gaussians every 0.5 Å up to 8 Å, width 0.5 Å
#: (all atoms of a cell attend; ``max_neighbors`` does not apply).
DISTANCE_BIAS_GRAPH = GraphSettings(
    radius=8.0, max_neighbors=None, gaussian_step=0.5, gaussian_width=0.5
)

_READOUTS = ("first", "mean")


class CrystalTransformer(nn.Module):
    """Transformer encoder over the sites of a crystal, with a linear property head.

    ``element vector -> Linear(emb_dim, d_model // 2)`` (the universal atomic embedding) and
    ``Cartesian coordinates -> Linear(3, d_model // 2)`` are concatenated per site and passed
    through ``n_layers`` Transformer encoder layers; the first site's output (``readout=
    "first"``, as published) or the mean over the sites goes to ``Linear(d_model, n_targets)``.

    The published model sees geometry only through the raw coordinates, which depend on the
    choice of cell and origin. ``distance_bias=True`` adds what it leaves out: the periodic
    minimum-image distance of every pair of sites, expanded in Gaussians (Å) and mapped to one
    additive attention bias per head and layer.

    Parameters
    ----------
    embedding : ElementEmbedding, str or path
        Input vectors of the elements (``"onehot"``: the input map's rows are then the learned
        element vectors, as in the paper).
    d_model : int
        Width of the tokens (the paper: 256, i.e. 128 for the element part).
    n_layers, n_heads, dim_feedforward : int
        Transformer encoder size (the paper's code: 8, 8, 512).
    n_targets : int
        Output size.
    readout : {"first", "mean"}
        Crystal read-out.
    coordinates : bool
        Use the Cartesian-coordinate tokens (the paper does).
    distance_bias : bool
        Add the minimum-image distance attention bias.
    graph : GraphSettings
        Distance expansion of the bias (Gaussians ``0, step, ..., radius``, Å); default
        :data:`DISTANCE_BIAS_GRAPH` (8 Å, every 0.5 Å, width 0.5 Å).
    dropout : float
        Dropout of the Transformer layers.

    Notes
    -----
    ``forward`` takes an :class:`~crysatom_featurizers.graphs.AtomSetBatch`.
    """

    def __init__(
        self,
        embedding: Any = "onehot",
        d_model: int = 128,
        n_layers: int = 3,
        n_heads: int = 4,
        dim_feedforward: int = 256,
        n_targets: int = 1,
        readout: str = "first",
        coordinates: bool = True,
        distance_bias: bool = False,
        graph: GraphSettings | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if readout not in _READOUTS:
            raise ValueError(f"readout must be one of {_READOUTS}, got {readout!r}")
        if d_model % 2 or d_model % n_heads:
            raise ValueError(
                f"d_model must be even and a multiple of n_heads, got {d_model} and {n_heads}"
            )
        self.readout = readout
        self.n_heads = int(n_heads)
        self.embedding = ElementEmbeddingLayer(embedding)
        part = d_model // 2 if coordinates else d_model
        self.atom_input = nn.Linear(self.embedding.dim, part)
        self.coordinate_input = nn.Linear(3, d_model - part) if coordinates else None
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward, dropout, batch_first=True)
            for _ in range(n_layers)
        )
        if distance_bias:
            self.distance_expansion = GaussianExpansion.from_settings(
                DISTANCE_BIAS_GRAPH if graph is None else check_settings(graph)
            )
            self.distance_bias = nn.ModuleList(
                nn.Linear(self.distance_expansion.num_gaussians, n_heads) for _ in range(n_layers)
            )
        else:
            self.distance_expansion = None
            self.distance_bias = None
        self.head = nn.Linear(d_model, n_targets)

    def element_input_vectors(self) -> tuple[Tensor, Tensor]:
        """``(Float[max_z + 1, d], Bool[max_z + 1])``: each element's token before the
        Transformer layers (its input map row), and which elements the table covers."""
        with torch.no_grad():
            return self.atom_input(self.embedding.weight), self.embedding.covered

    def encode(self, batch: Any) -> Tensor:
        """Site outputs ``Float[B, N, d_model]`` of the last layer (padding included)."""
        flat_z = batch.z[batch.mask]
        self.embedding.check(flat_z, torch.arange(flat_z.numel(), device=flat_z.device))
        tokens = self.atom_input(self.embedding.weight[batch.z])
        if self.coordinate_input is not None:
            tokens = torch.cat([tokens, self.coordinate_input(batch.pos)], dim=-1)
        pad = ~batch.mask
        b, n = batch.mask.shape
        key_block = torch.zeros((b, 1, 1, n), dtype=tokens.dtype, device=tokens.device)
        key_block = key_block.masked_fill(pad[:, None, None, :], float("-inf"))
        expanded = None
        if self.distance_expansion is not None:
            expanded = self.distance_expansion(batch.dist)  # [B, N, N, G]
        # PyTorch's inference fast path returns NaN with per-head float masks; the regular
        # path computes the same layers
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            for i, layer in enumerate(self.layers):
                mask = key_block.expand(b, self.n_heads, n, n)
                if expanded is not None:
                    mask = mask + self.distance_bias[i](expanded).permute(0, 3, 1, 2)
                tokens = layer(tokens, src_mask=mask.reshape(b * self.n_heads, n, n))
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
        return tokens

    def forward(self, batch: Any) -> Tensor:
        """Predictions ``Float[B, n_targets]`` for an ``AtomSetBatch``."""
        tokens = self.encode(batch)
        if self.readout == "first":
            crystal = tokens[:, 0]
        else:
            weights = batch.mask.to(tokens.dtype).unsqueeze(-1)
            crystal = (tokens * weights).sum(1) / weights.sum(1)
        return self.head(crystal)
