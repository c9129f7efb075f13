"""The CGCNN convolution stack, shared by the property model and the pretraining code."""

from __future__ import annotations

from torch import Tensor, nn

from crysatom_featurizers.nn.layers import CGCNNConv

__all__ = ["CGCNNEncoder"]


class CGCNNEncoder(nn.Module):
    """Linear input map followed by ``num_layers`` CGCNN gated convolutions.

    This is the node encoder of CGCNN and of CrysAtom pretraining (paper Table 2: 5 layers,
    hidden size 200, input the 92-dim CGCNN features).

    Parameters
    ----------
    in_dim : int
        Size of the input node vectors.
    hidden_dim : int
        Node embedding size.
    num_layers : int
        Number of :class:`CGCNNConv` layers (0 gives just the linear map).
    edge_dim : int
        Edge feature size (41 Gaussians for the default expansion).
    batch_norm, outer_softplus : bool
        Passed to every :class:`CGCNNConv`.

    Shapes
    ------
    ``x: Float[N, in_dim]``, ``edge_index: Long[2, E]``, ``edge_attr: Float[E, edge_dim]``
    -> ``Float[N, hidden_dim]``.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        num_layers: int,
        edge_dim: int = 41,
        batch_norm: bool = True,
        outer_softplus: bool = True,
    ) -> None:
        super().__init__()
        if num_layers < 0:
            raise ValueError(f"num_layers must be non-negative, got {num_layers}")
        self.in_dim = int(in_dim)
        self.hidden_dim = int(hidden_dim)
        self.edge_dim = int(edge_dim)
        self.input = nn.Linear(in_dim, hidden_dim)
        self.convs = nn.ModuleList(
            CGCNNConv(hidden_dim, edge_dim, batch_norm=batch_norm, outer_softplus=outer_softplus)
            for _ in range(num_layers)
        )

    @property
    def num_layers(self) -> int:
        return len(self.convs)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"expected node features of size {self.in_dim}, got {x.shape[-1]}")
        if edge_attr.shape[-1] != self.edge_dim:
            raise ValueError(
                f"expected edge features of size {self.edge_dim}, got {edge_attr.shape[-1]} "
                "(check the Gaussian expansion settings of the graphs)"
            )
        h = self.input(x)
        for conv in self.convs:
            h = conv(h, edge_index, edge_attr)
        return h
